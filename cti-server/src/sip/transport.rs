//! SIP over UDP and TCP on one configured address, over TLS on another, and over WebSocket
//! (RFC 7118) through the HTTP listener: the async shell that only moves bytes.
//!
//! Receive paths parse messages (parsing is pure and cheap) and hand them to the SIP core
//! through one bounded channel; when the core lags, UDP datagrams are dropped (as the network
//! would) and stream readers wait (back-pressure on that connection only). TCP and TLS
//! connections are bounded in number, framed in two steps (`message::frame`, then parse),
//! closed when idle, and reused for requests to the same peer (RFC 3261 §18.1.1, RFC 5626
//! flows in spirit). A WebSocket carries one SIP message per WebSocket message. TLS and
//! WebSocket connections are only accepted, never opened: phones and browsers register over
//! them and are reached over the connection they keep open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};

use super::message::{self, Frame, HeaderName, ParseError, Response, SipHeaders, SipMessage};
use super::transaction::Peer;
use super::types::{Method, Transport};

/// What a transport hands to the core.
#[derive(Debug)]
pub enum Inbound {
    Message {
        message: Result<SipMessage, ParseError>,
        peer: Peer,
    },
    /// A connection (TCP, TLS, WebSocket) is up; bytes for `peer` go to `sender`.
    Connected {
        peer: Peer,
        sender: mpsc::Sender<Vec<u8>>,
    },
    Disconnected {
        peer: Peer,
    },
}

/// Limits of the transports.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub tcp_idle_timeout: Duration,
    pub max_tcp_connections: usize,
}

/// The channel from the transports to the SIP task: room for bursts.
pub fn channel() -> (mpsc::Sender<Inbound>, mpsc::Receiver<Inbound>) {
    mpsc::channel(8192)
}

/// The bound sockets.
pub struct Transports {
    pub udp: Arc<UdpSocket>,
    pub tcp: TcpListener,
    pub local_addr: SocketAddr,
    /// SIP over TLS, when configured.
    pub tls: Option<TcpListener>,
}

impl Transports {
    /// Binds UDP and TCP on `addr` (port 0 picks one free port for both).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Transports> {
        // With port 0 the UDP socket picks a port and TCP must get the same one; retry a few
        // times in the unlikely case that TCP port is taken.
        for _ in 0..16 {
            let udp = UdpSocket::bind(addr).await?;
            let local = udp.local_addr()?;
            match TcpListener::bind(local).await {
                Ok(tcp) => {
                    set_udp_buffers(&udp);
                    return Ok(Transports {
                        udp: Arc::new(udp),
                        tcp,
                        local_addr: local,
                        tls: None,
                    });
                }
                Err(e) if addr.port() != 0 => return Err(e),
                Err(_) => continue,
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no port free for both UDP and TCP",
        ))
    }
}

fn set_udp_buffers(sock: &UdpSocket) {
    let s = socket2::SockRef::from(sock);
    // Large buffers absorb bursts (sipp at hundreds of messages per second); best effort.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
}

/// Receives datagrams forever, parsing each into an [`Inbound::Message`].
///
/// Overload (RFC 6357 §3): once `shed_backlog` messages wait for the SIP task, a new
/// out-of-dialog request is answered here with a stateless 503 + Retry-After, at the source
/// address (as `force_rport` would), and never reaches the SIP task; responses, in-dialog
/// requests, ACK and CANCEL still go through, so the calls already accepted finish instead
/// of timing out behind new work. Only a full queue drops datagrams.
pub async fn run_udp(sock: Arc<UdpSocket>, to_core: mpsc::Sender<Inbound>, shed_backlog: usize) {
    let mut buf = vec![0u8; 65_535];
    let mut dropped: u64 = 0;
    let mut shed: u64 = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port-unreachable from an earlier send surfaces here on Linux; not fatal.
                tracing::debug!(error = %e, "udp recv error");
                continue;
            }
        };
        let data = &buf[..n];
        // RFC 5626 §4.4.1 keep-alives and stray CRLFs carry no message.
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        let message = SipMessage::parse(data);
        let backlog = to_core.max_capacity() - to_core.capacity();
        if backlog >= shed_backlog
            && let Ok(SipMessage::Request(req)) = &message
            && is_new_work(req)
        {
            let mut r = req.response(503, "Service Unavailable (overload)", Some(&shed_tag()));
            r.headers.push(HeaderName::RetryAfter, "5");
            send_udp(&sock, from, &SipMessage::Response(r).to_bytes()).await;
            shed += 1;
            if shed.is_power_of_two() {
                tracing::warn!(shed, backlog, "SIP overload: new requests refused with 503");
            }
            continue;
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) =
            to_core.try_send(Inbound::Message { message, peer })
        {
            dropped += 1;
            // Logged sparingly: a log line per datagram would add to the overload.
            if dropped.is_power_of_two() {
                tracing::warn!(%from, dropped, "SIP core overloaded: datagram dropped");
            }
        }
    }
}

/// A request that starts something (no To tag, not ACK or CANCEL): what overload refuses.
pub fn is_new_work(req: &crate::sip::message::Request) -> bool {
    req.to_tag().is_none() && !matches!(req.method, Method::Ack | Method::Cancel)
}

/// A To tag for stateless answers (the request has none; RFC 3261 §8.2.6.2).
fn shed_tag() -> String {
    crate::sip::types::Tag::generate().as_str().to_string()
}

/// Sends bytes over UDP; errors are logged (a datagram may be lost anyway).
pub async fn send_udp(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
    if let Err(e) = sock.send_to(bytes, to).await {
        tracing::debug!(%to, error = %e, "udp send failed");
    }
}

/// Accepts TCP connections, at most `max_tcp_connections` at once.
pub async fn run_tcp_listener(
    listener: TcpListener,
    config: TransportConfig,
    to_core: mpsc::Sender<Inbound>,
) {
    let slots = Arc::new(Semaphore::new(config.max_tcp_connections));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%from, "too many TCP connections: refused");
            drop(stream);
            continue;
        };
        let to_core = to_core.clone();
        let idle = config.tcp_idle_timeout;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            run_stream(stream, Peer::new(Transport::Tcp, from), idle, to_core).await;
            drop(permit);
        });
    }
}

/// Accepts SIP over TLS, at most `max_tcp_connections` at once; each handshake runs in the
/// connection's own task (bounded by [`crate::tls::HANDSHAKE_TIMEOUT`]).
pub async fn run_tls_listener(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    config: TransportConfig,
    to_core: mpsc::Sender<Inbound>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(config.max_tcp_connections));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "tls accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%from, "too many TLS connections: refused");
            drop(stream);
            continue;
        };
        let (to_core, acceptor, metrics) = (to_core.clone(), acceptor.clone(), metrics.clone());
        let idle = config.tcp_idle_timeout;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let handshake =
                tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => {
                    use std::sync::atomic::Ordering;
                    metrics.sip_tls_connections.fetch_add(1, Ordering::Relaxed);
                    run_stream(tls, Peer::new(Transport::Tls, from), idle, to_core).await;
                    metrics.sip_tls_connections.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => tracing::info!(%from, error = %e, "SIP TLS handshake failed"),
                Err(_) => tracing::info!(%from, "SIP TLS handshake timed out"),
            }
            drop(permit);
        });
    }
}

/// How often a SIP WebSocket is pinged: browsers send nothing between their REGISTERs, and
/// the ping's answer keeps the connection counted as alive.
const WS_PING: Duration = Duration::from_secs(30);

/// Runs a SIP WebSocket (RFC 7118) the HTTP listener accepted: each text or binary message
/// is one SIP message; what the core sends goes out as text (binary if not UTF-8). The
/// connection closes after `idle` without any frame from the client (pongs count).
pub async fn run_websocket(
    socket: axum::extract::ws::WebSocket,
    peer: Peer,
    idle: Duration,
    to_core: mpsc::Sender<Inbound>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    use axum::extract::ws::Message;
    use futures_util::{SinkExt, StreamExt};
    use std::sync::atomic::Ordering;
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    if to_core
        .send(Inbound::Connected {
            peer,
            sender: tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    metrics.sip_websockets.fetch_add(1, Ordering::Relaxed);
    tracing::info!(from = %peer.addr, transport = %peer.transport, "SIP WebSocket open");
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(WS_PING);
        ping.tick().await;
        loop {
            let msg = tokio::select! {
                bytes = rx.recv() => match bytes {
                    Some(b) => match String::from_utf8(b) {
                        Ok(t) => Message::Text(t.into()),
                        Err(e) => Message::Binary(e.into_bytes().into()),
                    },
                    None => break,
                },
                _ = ping.tick() => Message::Ping(Default::default()),
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let idle = idle.max(WS_PING * 3);
    loop {
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) => {
                tracing::debug!(from = %peer.addr, error = %e, "SIP WebSocket error");
                break;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::info!(from = %peer.addr, "SIP WebSocket idle: closing");
                break;
            }
        };
        let data: &[u8] = match &frame {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        let message = SipMessage::parse(data);
        if to_core
            .send(Inbound::Message { message, peer })
            .await
            .is_err()
        {
            break;
        }
    }
    metrics.sip_websockets.fetch_sub(1, Ordering::Relaxed);
    let _ = to_core.send(Inbound::Disconnected { peer }).await;
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    tracing::info!(from = %peer.addr, "SIP WebSocket closed");
}

/// Opens an outgoing TCP connection and runs it like an accepted one.
pub fn connect_tcp(to: SocketAddr, idle: Duration, to_core: mpsc::Sender<Inbound>) {
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                run_stream(stream, Peer::new(Transport::Tcp, to), idle, to_core).await
            }
            _ => {
                tracing::info!(%to, "tcp connect failed");
                let _ = to_core
                    .send(Inbound::Disconnected {
                        peer: Peer {
                            transport: Transport::Tcp,
                            addr: to,
                        },
                    })
                    .await;
            }
        }
    });
}

/// Runs a stream connection (TCP or TLS): framing, parsing, keep-alive pongs, idle timeout.
async fn run_stream<S>(stream: S, peer: Peer, idle: Duration, to_core: mpsc::Sender<Inbound>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let from = peer.addr;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    if to_core
        .send(Inbound::Connected {
            peer,
            sender: tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let mut buf = BytesMut::with_capacity(8192);
    'conn: loop {
        // Step 1: frame whatever is buffered; step 2: parse each whole message.
        loop {
            match message::frame(&buf) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::Skip(n)) => buf.advance(n),
                Ok(Frame::Ping(n)) => {
                    buf.advance(n);
                    // RFC 5626 §3.5.1: a CRLFCRLF ping gets a CRLF pong.
                    let _ = tx.send(b"\r\n".to_vec()).await;
                }
                Ok(Frame::Message(n)) => {
                    let message = SipMessage::parse_framed(&buf[..n]);
                    buf.advance(n);
                    if to_core
                        .send(Inbound::Message { message, peer })
                        .await
                        .is_err()
                    {
                        break 'conn;
                    }
                }
                Err(e) => {
                    tracing::info!(%from, error = %e, "unframeable SIP stream: closing");
                    // Answer 400 when the head is readable, then close (RFC 3261 §18.3).
                    if let Err(pe) = SipMessage::parse(&buf)
                        && let Some(raw) = pe.raw
                        && let Some(r) = Response::for_raw_request(&raw, 400, "Bad Content-Length")
                    {
                        let _ = tx.send(r.to_bytes()).await;
                    }
                    break 'conn;
                }
            }
        }
        if buf.len() > message::MAX_HEAD_LEN + message::MAX_BODY_LEN {
            break;
        }
        match tokio::time::timeout(idle, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::debug!(%from, "tcp idle timeout");
                break;
            }
        }
    }
    let _ = to_core.send(Inbound::Disconnected { peer }).await;
    drop(tx);
    // Let queued responses (e.g. the 400 above) drain before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

/// The core's view of open connections (TCP, TLS, WebSocket), by transport and address.
#[derive(Default)]
pub struct Connections {
    map: HashMap<Peer, mpsc::Sender<Vec<u8>>>,
}

impl Connections {
    pub fn insert(&mut self, peer: Peer, sender: mpsc::Sender<Vec<u8>>) {
        self.map.insert(peer, sender);
    }

    pub fn remove(&mut self, peer: &Peer) {
        self.map.remove(peer);
    }

    /// Queues bytes on a connection; false when there is none (or it is gone or jammed).
    pub fn send(&mut self, peer: &Peer, bytes: Vec<u8>) -> bool {
        match self.map.get(peer) {
            Some(s) => match s.try_send(bytes) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(addr = %peer.addr, transport = %peer.transport, "connection jammed: message dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.map.remove(peer);
                    false
                }
            },
            None => false,
        }
    }

    /// Open connections over `transport`.
    pub fn count(&self, transport: Transport) -> usize {
        self.map.keys().filter(|p| p.transport == transport).count()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, to_tag: &str) -> crate::sip::message::Request {
        let raw = format!(
            "{method} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKt\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:x@127.0.0.1>{to_tag}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match SipMessage::parse(raw.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn overload_refuses_new_work_only() {
        for m in ["INVITE", "REGISTER", "OPTIONS", "SUBSCRIBE"] {
            assert!(is_new_work(&req(m, "")), "{m}");
        }
        // What finishes accepted work passes: in-dialog requests, ACK, CANCEL.
        assert!(!is_new_work(&req("BYE", ";tag=t")));
        assert!(!is_new_work(&req("INVITE", ";tag=t")));
        assert!(!is_new_work(&req("ACK", "")));
        assert!(!is_new_work(&req("CANCEL", "")));
    }
}
