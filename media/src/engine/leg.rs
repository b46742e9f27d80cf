//! The sans-IO core of one plain RTP leg: jitter buffer, codec, DTMF both ways, RTCP,
//! symmetric RTP latching and the media timeout. The engine feeds it datagrams and ticks and
//! drains [`Transmit`]s and [`LegEvent`]s after every input (STYLE 1).

use crate::codec::g711::FRAME_SAMPLES;
use crate::codec::telephone_event::{Digit, DtmfEvent, DtmfReceiver, DtmfSender};
use crate::codec::{Codec, CodecError, Decoder, Encoder};
use crate::dtmf::ToneDetector;
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::rtp::rtcp::{
    self, ReceiverStats, ReceptionSummary, RtcpPacket, SenderInfo, round_trip_time,
};
use crate::rtp::{OutgoingStream, PacketKind, PayloadType, RtpError, RtpPacket, Ssrc, classify};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// How a leg is set up (from the SDP offer/answer the call actor negotiated).
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// The audio codec.
    pub codec: Codec,
    /// Its negotiated payload type.
    pub payload_type: PayloadType,
    /// The telephone-event payload type, if negotiated (RFC 4733 §7.1.1).
    pub telephone_event: Option<PayloadType>,
    /// The address from SDP. With symmetric RTP it is replaced by where packets come from.
    pub remote: Option<SocketAddr>,
    /// Latch onto the source address of received RTP (RFC 4961 symmetric RTP, for NAT).
    pub symmetric: bool,
    /// Silence on the wire for this long raises [`LegEvent::MediaTimeout`].
    pub media_timeout: Duration,
    /// RTCP report interval (RFC 3550 §6.2: 5 s minimum for the fixed part). Each actual
    /// interval is this times a random factor in [0.5, 1.5] (RFC 3550 §6.3.1), the first
    /// one half of that (§6.3.2: initial `Tmin` is 2.5 s).
    pub rtcp_interval: Duration,
    /// The peer multiplexes RTCP on the RTP port (RFC 5761, `a=rtcp-mux`). Without it our
    /// reports go from our RTP port + 1 to the peer's RTCP address (RFC 3550 §11): see
    /// [`LegConfig::rtcp_remote`], and [`Leg::poll_rtcp_transmit`] for the socket.
    pub rtcp_mux: bool,
    /// The peer's RTCP address from SDP `a=rtcp` (RFC 3605) when it is not the RTP port
    /// plus one. `None` (the default) means the remote RTP address with port + 1. Ignored
    /// with `rtcp_mux`. With `symmetric`, RTCP received on our RTCP port from the remote's
    /// IP address overrides it (symmetric RTCP, RFC 4961).
    pub rtcp_remote: Option<SocketAddr>,
    /// Run the Goertzel detector on received audio (phones sending in-band DTMF).
    pub detect_inband_dtmf: bool,
    /// RTCP CNAME.
    pub cname: String,
    /// SDES-SRTP keys (RFC 4568) when the leg's SDP said `RTP/SAVP`: everything sent is
    /// protected, everything received must be.
    pub srtp: Option<crate::rtp::srtp::SrtpKeying>,
}

impl LegConfig {
    /// Defaults for a leg with `codec` at its default payload type.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            payload_type: codec.default_payload_type(),
            telephone_event: PayloadType::new(101),
            remote: None,
            symmetric: true,
            media_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
            rtcp_mux: false,
            rtcp_remote: None,
            detect_inband_dtmf: false,
            cname: "media@cti".into(),
            srtp: None,
        }
    }
}

/// Where a DTMF key was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event.
    Rfc4733,
    /// Tones in the audio.
    InBand,
}

/// Reception and transmission figures for the call actor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegStats {
    /// What we received (RFC 3550 A.3 / A.8).
    pub reception: ReceptionSummary,
    /// Jitter buffer counters.
    pub jitter_buffer: JitterStats,
    /// Packets we sent.
    pub packets_sent: u32,
    /// Loss the far end reports for our stream, in 1/256.
    pub remote_fraction_lost: Option<u8>,
    /// Round-trip time from the far end's report blocks.
    pub round_trip: Option<Duration>,
    /// RTP packets received over the leg's life, across source (SSRC) changes — `reception`
    /// restarts with each new source as RFC 3550 requires; call records want the total.
    pub packets_received_total: u64,
    /// Packets lost over the leg's life, summed over every source seen.
    pub packets_lost_total: i64,
}

/// Something the call actor should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    /// A DTMF key.
    Dtmf(Digit, DtmfSource),
    /// No RTP for the configured time.
    MediaTimeout,
    /// Media resumed after a timeout.
    MediaResumed,
    /// Symmetric RTP latched onto this address.
    Latched(SocketAddr),
    /// Periodic statistics (after each RTCP report we send).
    Stats(LegStats),
    /// A browser leg's ICE and DTLS are up.
    Connected,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Errors from the network for one datagram; the datagram is dropped, the leg lives on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    /// Bad RTP.
    #[error(transparent)]
    Rtp(#[from] RtpError),
    /// Bad RTCP.
    #[error(transparent)]
    Rtcp(#[from] rtcp::RtcpError),
    /// Bad telephone-event.
    #[error(transparent)]
    TelephoneEvent(#[from] crate::codec::telephone_event::TelephoneEventError),
    /// A payload type we did not negotiate.
    #[error("unexpected payload type {0}")]
    UnexpectedPayloadType(u8),
    /// Not RTP or RTCP.
    #[error("not an RTP or RTCP datagram")]
    NotRtp,
    /// Undecodable audio.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An SRTP packet that failed authentication or replay checks, or keys that do not fit.
    #[error(transparent)]
    Srtp(#[from] crate::rtp::srtp::SrtpError),
}

/// Time a latched address must be silent before another source may take over.
const RELATCH_AFTER: Duration = Duration::from_millis(500);

/// Packets decoded at most for one 20 ms frame (10 ms packets take two; a bound against a
/// stream of empty payloads).
const MAX_PULLS_PER_FRAME: usize = 4;

/// One plain RTP leg.
#[derive(Debug)]
pub struct Leg {
    cfg: LegConfig,
    remote: Option<SocketAddr>,
    last_from_remote: Option<Instant>,
    jitter: JitterBuffer,
    decoder: Decoder,
    encoder: Encoder,
    stream: OutgoingStream,
    rx_stats: ReceiverStats,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: DtmfSender,
    tone: Option<ToneDetector>,
    /// The phone sends RFC 4733: tones it also leaves in the audio are not reported twice.
    seen_rfc4733: bool,
    last_rtp: Instant,
    timed_out: bool,
    next_report: Instant,
    remote_fraction_lost: Option<u8>,
    round_trip: Option<Duration>,
    packets_at_last_report: u32,
    transmits: VecDeque<Transmit>,
    /// RTCP to send from the RTCP port (no rtcp-mux).
    rtcp_transmits: VecDeque<Transmit>,
    /// Where the peer's RTCP came from (symmetric RTCP), if it did.
    rtcp_latched: Option<SocketAddr>,
    /// SplitMix64 state for the RTCP interval's random factor.
    rng: u64,
    events: VecDeque<LegEvent>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    received_total: u64,
    lost_previous_sources: i64,
    /// SRTP contexts, when the leg is keyed ([`LegConfig::srtp`]).
    srtp: Option<crate::rtp::srtp::SrtpSession>,
}

impl Leg {
    /// A leg created at `now`, sending as `ssrc` from a random initial sequence and
    /// timestamp (RFC 3550 §5.1). The RTCP interval's random factor is seeded from these
    /// three (random in the engine), so a test that fixes them gets a fixed schedule.
    pub fn new(
        cfg: LegConfig,
        now: Instant,
        ssrc: Ssrc,
        initial_seq: u16,
        initial_ts: u32,
    ) -> Result<Self, LegError> {
        let jitter = JitterBuffer::new(JitterConfig {
            clock_rate: cfg.codec.rtp_clock_rate(),
            ..JitterConfig::default()
        });
        let mut rng =
            (u64::from(ssrc.0) << 32 | u64::from(initial_ts)) ^ u64::from(initial_seq) << 16;
        let first = rtcp_delay(&mut rng, cfg.rtcp_interval / 2);
        Ok(Self {
            remote: cfg.remote,
            last_from_remote: None,
            jitter,
            decoder: Decoder::new(cfg.codec)?,
            encoder: Encoder::new(cfg.codec)?,
            stream: OutgoingStream::new(ssrc, initial_seq, initial_ts),
            rx_stats: ReceiverStats::new(cfg.codec.rtp_clock_rate()),
            dtmf_rx: DtmfReceiver::default(),
            dtmf_tx: DtmfSender::default(),
            tone: cfg.detect_inband_dtmf.then(ToneDetector::new),
            seen_rfc4733: false,
            last_rtp: now,
            timed_out: false,
            next_report: now + first,
            remote_fraction_lost: None,
            round_trip: None,
            packets_at_last_report: 0,
            transmits: VecDeque::new(),
            rtcp_transmits: VecDeque::new(),
            rtcp_latched: None,
            rng,
            events: VecDeque::new(),
            pcm: Vec::with_capacity(960),
            payload: Vec::with_capacity(1500),
            received_total: 0,
            lost_previous_sources: 0,
            srtp: cfg
                .srtp
                .map(crate::rtp::srtp::SrtpSession::new)
                .transpose()?,
            cfg,
        })
    }

    /// Applies a renegotiated configuration (an SDP answer or re-INVITE changed codec, payload
    /// types or address) while keeping the outgoing stream: same SSRC, sequence numbers and
    /// timestamps continue (RFC 3550 §5.1), so the far end sees one stream.
    pub fn reconfigure(&mut self, cfg: LegConfig) -> Result<(), LegError> {
        // New keys (a re-INVITE re-keyed, or switched SRTP on or off) mean new contexts.
        if cfg.srtp != self.cfg.srtp {
            self.srtp = cfg
                .srtp
                .map(crate::rtp::srtp::SrtpSession::new)
                .transpose()?;
        }
        if cfg.codec != self.cfg.codec {
            self.decoder = Decoder::new(cfg.codec)?;
            self.encoder = Encoder::new(cfg.codec)?;
            self.jitter = JitterBuffer::new(JitterConfig {
                clock_rate: cfg.codec.rtp_clock_rate(),
                ..JitterConfig::default()
            });
            self.rx_stats = ReceiverStats::new(cfg.codec.rtp_clock_rate());
        }
        if let Some(remote) = cfg.remote
            && Some(remote) != self.remote
        {
            self.remote = Some(remote);
            self.last_from_remote = None;
            self.rtcp_latched = None;
        }
        if cfg.rtcp_remote != self.cfg.rtcp_remote {
            self.rtcp_latched = None;
        }
        self.tone = if cfg.detect_inband_dtmf {
            self.tone.take().or_else(|| Some(ToneDetector::new()))
        } else {
            None
        };
        self.cfg = cfg;
        Ok(())
    }

    /// Where we send to now.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// Sets the remote address (a re-INVITE changed the SDP).
    pub fn set_remote(&mut self, remote: SocketAddr) {
        self.remote = Some(remote);
        self.last_from_remote = None;
        self.rtcp_latched = None;
    }

    /// Where our RTCP goes now: the RTP remote with rtcp-mux; else the address the peer's
    /// RTCP came from (symmetric legs), the SDP `a=rtcp` address, or the RTP remote's
    /// port + 1 (RFC 3550 §11).
    pub fn rtcp_destination(&self) -> Option<SocketAddr> {
        let remote = self.remote?;
        if self.cfg.rtcp_mux {
            return Some(remote);
        }
        if self.cfg.symmetric
            && let Some(latched) = self.rtcp_latched
        {
            return Some(latched);
        }
        if let Some(r) = self.cfg.rtcp_remote {
            return Some(r);
        }
        let mut d = remote;
        d.set_port(remote.port().wrapping_add(1));
        Some(d)
    }

    /// Our outgoing stream (SSRC, counters).
    pub fn stream(&self) -> &OutgoingStream {
        &self.stream
    }

    /// Feeds one datagram received from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), LegError> {
        let kind = classify(data);
        if let Some(srtp) = self.srtp.as_mut() {
            // SRTP: nothing is taken in before it is authenticated (RFC 3711 §3.3).
            return match kind {
                PacketKind::Rtp => {
                    let plain = srtp.unprotect_rtp(data)?;
                    self.handle_rtp(now, from, &plain)
                }
                PacketKind::Rtcp => {
                    let plain = srtp.unprotect_rtcp(data)?;
                    self.handle_rtcp(now, &plain)
                }
                PacketKind::Other => Err(LegError::NotRtp),
            };
        }
        match kind {
            PacketKind::Rtp => self.handle_rtp(now, from, data),
            PacketKind::Rtcp => self.handle_rtcp(now, data),
            PacketKind::Other => Err(LegError::NotRtp),
        }
    }

    /// Feeds one datagram received on our RTCP port (RTP port + 1, RFC 3550 §11). Only RTCP
    /// is accepted there ([`LegError::NotRtp`] otherwise): RTP arriving on the RTCP port
    /// must not move the symmetric-RTP latch. With `symmetric`, a valid report from the
    /// remote's IP address makes its source our RTCP destination (NAT).
    pub fn handle_rtcp_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), LegError> {
        if classify(data) != PacketKind::Rtcp {
            return Err(LegError::NotRtp);
        }
        match self.srtp.as_mut() {
            Some(srtp) => {
                let plain = srtp.unprotect_rtcp(data)?;
                self.handle_rtcp(now, &plain)?;
            }
            None => self.handle_rtcp(now, data)?,
        }
        if self.cfg.symmetric
            && !self.cfg.rtcp_mux
            && self.remote.is_some_and(|r| r.ip() == from.ip())
        {
            self.rtcp_latched = Some(from);
        }
        Ok(())
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(), LegError> {
        let p = RtpPacket::parse(data)?;
        let pt = p.header.payload_type;
        let is_audio = pt == self.cfg.payload_type;
        let is_event = Some(pt) == self.cfg.telephone_event;
        if !is_audio && !is_event {
            return Err(LegError::UnexpectedPayloadType(pt.get()));
        }
        if is_event {
            // Validate before the packet may move the latch.
            crate::codec::telephone_event::EventPayload::parse(p.payload)?;
        }
        self.latch(now, from);
        self.last_rtp = now;
        if self.timed_out {
            self.timed_out = false;
            self.events.push_back(LegEvent::MediaResumed);
        }
        // RFC 3550 statistics cover the whole SSRC, events included, or every key press
        // would look like loss in our reports. They restart with a new source, so the loss
        // of the previous one is folded into the leg's total first.
        if self
            .rx_stats
            .current_ssrc()
            .is_some_and(|s| s != p.header.ssrc)
        {
            self.lost_previous_sources += i64::from(self.rx_stats.summary().lost.max(0));
        }
        self.rx_stats.on_packet(now, &p.header);
        self.received_total += 1;
        if is_event {
            self.seen_rfc4733 = true;
            for e in self.dtmf_rx.on_packet(&p.header, p.payload)? {
                if let DtmfEvent::Pressed(d) = e {
                    self.events
                        .push_back(LegEvent::Dtmf(d, DtmfSource::Rfc4733));
                }
            }
            return Ok(());
        }
        self.jitter.push(now, &p.header, p.payload);
        Ok(())
    }

    // RFC 4961 §3: send to the address packets come from. A phone behind NAT sends from an
    // address its SDP does not know; we latch on the first packet, and move only when the
    // latched address has been silent a while (NAT rebinding), so a stray packet from
    // elsewhere cannot hijack the stream.
    fn latch(&mut self, now: Instant, from: SocketAddr) {
        if !self.cfg.symmetric {
            return;
        }
        if self.remote == Some(from) {
            self.last_from_remote = Some(now);
            return;
        }
        let silent = self
            .last_from_remote
            .is_none_or(|t| now.saturating_duration_since(t) >= RELATCH_AFTER);
        if silent {
            self.remote = Some(from);
            self.last_from_remote = Some(now);
            self.events.push_back(LegEvent::Latched(from));
        }
    }

    fn handle_rtcp(&mut self, now: Instant, data: &[u8]) -> Result<(), LegError> {
        let our = self.stream.ssrc();
        for packet in rtcp::parse_compound(data)? {
            let reports = match &packet {
                RtcpPacket::SenderReport { info, reports, .. } => {
                    self.rx_stats.on_sender_report(now, info);
                    reports.as_slice()
                }
                RtcpPacket::ReceiverReport { reports, .. } => reports.as_slice(),
                _ => &[],
            };
            for block in reports.iter().filter(|b| b.ssrc == our) {
                self.remote_fraction_lost = Some(block.fraction_lost);
                if let Some(rtt) = round_trip_time(rtcp::ntp_timestamp(SystemTime::now()), block) {
                    self.round_trip = Some(rtt);
                }
            }
        }
        Ok(())
    }

    /// The 20 ms of received audio due at this tick: decoded, or concealed, or silence.
    pub fn receive_frame(&mut self, now: Instant) -> [i16; FRAME_SAMPLES] {
        // A packet may carry more or less than one 20 ms frame (ptime 10, 30, 40, 60: some
        // carriers and phones send 30 ms of G.711): whole packets are decoded into a queue of
        // samples until a frame's worth is there, and what is left waits for the next tick.
        // With 20 ms packets that is one packet a tick, as before.
        let mut pulls = 0;
        while self.pcm.len() < FRAME_SAMPLES && pulls < MAX_PULLS_PER_FRAME {
            pulls += 1;
            let before = self.pcm.len();
            let result = match self.jitter.pop(now) {
                Playout::Frame { payload, .. } => self.decoder.decode(payload, &mut self.pcm),
                Playout::Conceal => self.decoder.conceal(&mut self.pcm),
                // Nothing to play: what is queued plays, then silence.
                Playout::Silence => break,
            };
            if result.is_err() {
                // An undecodable frame is treated as lost.
                self.pcm.truncate(before);
                let _ = self.decoder.conceal(&mut self.pcm);
            }
            if self.pcm.len() == before {
                break; // a decoder that gives nothing must not spin
            }
        }
        let mut frame = [0; FRAME_SAMPLES];
        let n = self.pcm.len().min(FRAME_SAMPLES);
        frame[..n].copy_from_slice(&self.pcm[..n]);
        self.pcm.drain(..n);
        if let Some(det) = self.tone.as_mut() {
            for d in det.feed(&frame) {
                if !self.seen_rfc4733 {
                    self.events.push_back(LegEvent::Dtmf(d, DtmfSource::InBand));
                }
            }
        }
        frame
    }

    /// Sends 20 ms of audio (or, while a DTMF key is being sent, the event packet instead).
    pub fn send_frame(&mut self, frame: &[i16]) -> Result<(), CodecError> {
        let Some(destination) = self.remote else {
            // Nowhere to send yet: keep the media clock running.
            self.stream.skip(self.cfg.codec.rtp_samples_per_frame());
            return Ok(());
        };
        let samples = self.cfg.codec.rtp_samples_per_frame();
        if let Some(te) = self.cfg.telephone_event
            && let Some((h, p)) = self.dtmf_tx.tick(&mut self.stream, te, samples)
        {
            let mut out = Vec::with_capacity(16);
            h.write(&p, &mut out);
            self.stream.count_sent(p.len());
            self.transmits.push_back(Transmit {
                destination,
                payload: out,
            });
            return Ok(());
        }
        self.payload.clear();
        self.encoder.encode(frame, &mut self.payload)?;
        let h = self.stream.next_frame(self.cfg.payload_type, samples);
        let mut out = Vec::with_capacity(12 + self.payload.len());
        h.write(&self.payload, &mut out);
        self.stream.count_sent(self.payload.len());
        self.transmits.push_back(Transmit {
            destination,
            payload: out,
        });
        Ok(())
    }

    /// Sends pre-encoded audio (a cached prompt frame) in this tick's slot.
    pub fn send_encoded(&mut self, payload: &[u8]) {
        let samples = self.cfg.codec.rtp_samples_per_frame();
        let Some(destination) = self.remote else {
            self.stream.skip(samples);
            return;
        };
        let h = self.stream.next_frame(self.cfg.payload_type, samples);
        let mut out = Vec::with_capacity(12 + payload.len());
        h.write(payload, &mut out);
        self.stream.count_sent(payload.len());
        self.transmits.push_back(Transmit {
            destination,
            payload: out,
        });
    }

    /// Nothing to send this tick: the timestamp still advances (RFC 3550 §5.1).
    pub fn send_nothing(&mut self) {
        self.stream.skip(self.cfg.codec.rtp_samples_per_frame());
    }

    /// The leg's audio source changed (prompt → agent): the far end sees a marker bit but
    /// the same SSRC and continuous numbering.
    pub fn source_changed(&mut self) {
        self.stream.source_changed();
    }

    /// Queues a DTMF key to send as RFC 4733 events (100 ms). False if busy or not
    /// negotiated.
    pub fn send_dtmf(&mut self, digit: Digit) -> bool {
        self.cfg.telephone_event.is_some()
            && self
                .dtmf_tx
                .start(digit, self.cfg.codec.rtp_clock_rate() / 10)
    }

    /// The codec this leg speaks.
    pub fn codec(&self) -> Codec {
        self.cfg.codec
    }

    /// Runs timers: the media timeout and RTCP reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.timed_out && now.saturating_duration_since(self.last_rtp) >= self.cfg.media_timeout
        {
            self.timed_out = true;
            self.events.push_back(LegEvent::MediaTimeout);
        }
        if now >= self.next_report {
            self.next_report = now + rtcp_delay(&mut self.rng, self.cfg.rtcp_interval);
            self.send_report(now);
        }
    }

    /// When [`Leg::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Instant {
        let timeout = self.last_rtp + self.cfg.media_timeout;
        if self.timed_out {
            self.next_report
        } else {
            self.next_report.min(timeout)
        }
    }

    // RFC 3550 §6.4: SR if we sent since the last report, else RR; always with SDES CNAME.
    fn send_report(&mut self, now: Instant) {
        let Some(destination) = self.rtcp_destination() else {
            return;
        };
        let block = self.rx_stats.report_block(now);
        let blocks: Vec<_> = block.into_iter().collect();
        let mut out = Vec::new();
        let sent = self.stream.packets_sent();
        if sent != self.packets_at_last_report {
            let info = SenderInfo {
                ntp: rtcp::ntp_timestamp(SystemTime::now()),
                rtp_timestamp: self.stream.last_timestamp(),
                packet_count: sent,
                octet_count: self.stream.octets_sent(),
            };
            rtcp::write_sender_report(
                self.stream.ssrc(),
                &info,
                &blocks,
                &self.cfg.cname,
                &mut out,
            );
        } else {
            rtcp::write_receiver_report(self.stream.ssrc(), &blocks, &self.cfg.cname, &mut out);
        }
        self.packets_at_last_report = sent;
        let queue = if self.cfg.rtcp_mux {
            &mut self.transmits
        } else {
            &mut self.rtcp_transmits
        };
        queue.push_back(Transmit {
            destination,
            payload: out,
        });
        self.events.push_back(LegEvent::Stats(self.stats()));
    }

    /// Current figures.
    pub fn stats(&self) -> LegStats {
        LegStats {
            reception: self.rx_stats.summary(),
            packets_received_total: self.received_total,
            packets_lost_total: self.lost_previous_sources
                + i64::from(self.rx_stats.summary().lost.max(0)),
            jitter_buffer: self.jitter.stats(),
            packets_sent: self.stream.packets_sent(),
            remote_fraction_lost: self.remote_fraction_lost,
            round_trip: self.round_trip,
        }
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        loop {
            let t = self.transmits.pop_front()?;
            match self.protect(t) {
                Some(t) => return Some(t),
                None => continue,
            }
        }
    }

    /// A datagram as it goes on the wire: SRTP or SRTCP when the leg is keyed. A packet the
    /// transform refuses (it cannot happen with packets we built) is dropped and logged.
    fn protect(&mut self, mut t: Transmit) -> Option<Transmit> {
        let Some(srtp) = self.srtp.as_mut() else {
            return Some(t);
        };
        let protected = match classify(&t.payload) {
            PacketKind::Rtcp => srtp.protect_rtcp(&t.payload),
            _ => srtp.protect_rtp(&t.payload),
        };
        match protected {
            Ok(p) => {
                t.payload = p;
                Some(t)
            }
            Err(e) => {
                tracing::warn!(error = %e, "SRTP protect failed: packet dropped");
                None
            }
        }
    }

    /// Next RTCP datagram to send from our RTCP port (RTP port + 1): without rtcp-mux our
    /// reports leave from there (RFC 3550 §11), so that a peer that checks source ports
    /// sees them on the RTCP flow. With rtcp-mux everything is in [`Leg::poll_transmit`].
    pub fn poll_rtcp_transmit(&mut self) -> Option<Transmit> {
        loop {
            let t = self.rtcp_transmits.pop_front()?;
            if let Some(t) = self.protect(t) {
                return Some(t);
            }
        }
    }

    /// Next event for the call actor.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }
}

/// One RTCP interval: `base` times a random factor uniform in [0.5, 1.5] (RFC 3550
/// §6.3.1), so that endpoints started together do not report in lockstep. The
/// reconsideration compensation (÷ e − 3/2) is not applied: a leg is a two-party session
/// with a fixed minimum, not a group whose membership the timer tracks.
fn rtcp_delay(state: &mut u64, base: Duration) -> Duration {
    // SplitMix64: statistically sound, tiny, and deterministic for a given seed.
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // 53 random bits → [0, 1).
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.5 + unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;
    use proptest::prelude::*;

    /// Two legs keyed against each other (SDES: each protects with its own key and
    /// unprotects with the other's): audio crosses encrypted, RTCP too; plain RTP and
    /// packets under a wrong key are refused.
    #[test]
    fn srtp_legs_exchange_encrypted_audio_and_refuse_plain_rtp() {
        use crate::rtp::srtp::{SrtpKeying, SrtpSuite};
        let t0 = Instant::now();
        let (ka, kb) = ([7u8; 30], [9u8; 30]);
        let (addr_a, addr_b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:4000".parse().unwrap(),
            "10.0.0.2:5000".parse().unwrap(),
        );
        let keyed = |local, remote, to: SocketAddr| {
            let mut cfg = LegConfig::new(Codec::Pcmu);
            cfg.remote = Some(to);
            cfg.rtcp_mux = true;
            cfg.srtp = Some(SrtpKeying {
                suite: SrtpSuite::AesCm128HmacSha1_80,
                local,
                remote,
            });
            cfg
        };
        let mut a = Leg::new(keyed(ka, kb, addr_b), t0, Ssrc(1), 100, 0).unwrap();
        let mut b = Leg::new(keyed(kb, ka, addr_a), t0, Ssrc(2), 200, 0).unwrap();
        let tone = crate::test_signal::sine(1000.0, 8000.0, 8000, 8000);
        let mut heard = Vec::new();
        for i in 0..50 {
            let now = t0 + Duration::from_millis(20 * i as u64);
            a.send_frame(&tone[i * 160..(i + 1) * 160]).unwrap();
            while let Some(t) = a.poll_transmit() {
                assert_eq!(t.payload.len(), 12 + 160 + 10, "G.711 plus the 80-bit tag");
                b.handle_datagram(now, addr_a, &t.payload).unwrap();
            }
            heard.extend_from_slice(&b.receive_frame(now));
        }
        let tail = &heard[heard.len() - 4000..];
        assert!((crate::test_signal::dominant_frequency(tail, 8000) - 1000.0).abs() < 5.0);
        // What went over the wire is not G.711 of the tone.
        a.send_frame(&tone[..160]).unwrap();
        let wire = a.poll_transmit().unwrap().payload;
        let mut plain = Vec::new();
        crate::codec::Encoder::new(Codec::Pcmu)
            .unwrap()
            .encode(&tone[..160], &mut plain)
            .unwrap();
        assert_ne!(&wire[12..172], &plain[..]);
        // Plain RTP from the peer's address is refused, as is SRTP under another key.
        let mut rtp = vec![0x80, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 2];
        rtp.extend(std::iter::repeat_n(0xff, 160));
        assert!(matches!(
            b.handle_datagram(t0, addr_a, &rtp),
            Err(LegError::Srtp(_))
        ));
        let mut stranger = Leg::new(keyed([1; 30], kb, addr_b), t0, Ssrc(3), 0, 0).unwrap();
        stranger.send_frame(&tone[..160]).unwrap();
        let forged = stranger.poll_transmit().unwrap().payload;
        assert!(b.handle_datagram(t0, addr_a, &forged).is_err());
        // RTCP: a's report reaches b through SRTCP.
        let later = t0 + Duration::from_secs(10);
        a.handle_timeout(later);
        let mut reports = 0;
        while let Some(t) = a.poll_transmit() {
            if classify(&t.payload) == PacketKind::Rtcp {
                b.handle_datagram(later, addr_a, &t.payload).unwrap();
                reports += 1;
            }
        }
        assert!(reports > 0, "a sent an SRTCP report");
        // Re-keying (a re-INVITE) makes new contexts: the old key no longer opens packets.
        let rekeyed = keyed(kb, [5u8; 30], addr_a);
        b.reconfigure(rekeyed).unwrap();
        a.send_frame(&tone[..160]).unwrap();
        let old = a.poll_transmit().unwrap().payload;
        assert!(b.handle_datagram(later, addr_a, &old).is_err());
    }

    proptest! {
        /// Whatever arrives on the socket — random bytes, or RTP/RTCP-looking headers with
        /// random bodies for every codec — the leg returns Ok or Err and keeps working.
        #[test]
        fn no_datagram_panics_a_leg(
            datagrams in proptest::collection::vec(
                (0u8..4, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 1..40),
            codec in prop_oneof![Just(Codec::Pcmu), Just(Codec::Pcma), Just(Codec::Opus)],
        ) {
            let _serial = crate::test_signal::REALTIME.blocking_lock();
            let t0 = Instant::now();
            let mut cfg = LegConfig::new(codec);
            cfg.detect_inband_dtmf = true;
            let mut l = Leg::new(cfg, t0, Ssrc(1), 0, 0).unwrap();
            for (i, (shape, b1, body)) in datagrams.into_iter().enumerate() {
                let now = t0 + Duration::from_millis(20 * i as u64);
                let mut d = match shape {
                    0 => vec![],
                    1 => vec![0x80, b1],                      // RTP-ish, random PT
                    2 => vec![0x80, 200 + b1 % 24],           // RTCP-ish
                    _ => vec![0x80, codec.default_payload_type().get()],
                };
                d.extend_from_slice(&body);
                let _ = l.handle_datagram(now, addr(9), &d);
                let _ = l.handle_rtcp_datagram(now, addr(10), &d);
                let _ = l.receive_frame(now);
                l.send_frame(&[0; 160]).unwrap();
                l.handle_timeout(now);
                while l.poll_transmit().is_some() {}
                while l.poll_rtcp_transmit().is_some() {}
                while l.poll_event().is_some() {}
            }
        }
    }
    use crate::test_signal::{dominant_frequency, sine};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn rtp(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        RtpHeader {
            marker: false,
            payload_type: PayloadType::new(pt).unwrap(),
            sequence: seq,
            timestamp: seq as u32 * 160,
            ssrc: Ssrc(77),
        }
        .write(payload, &mut out);
        out
    }

    fn leg(now: Instant) -> Leg {
        Leg::new(LegConfig::new(Codec::Pcmu), now, Ssrc(1), 0, 0).unwrap()
    }

    /// 2 s of a 1 kHz tone sent in packets of `ptime_ms`, played on the 20 ms clock: what
    /// the leg hears, frame by frame.
    fn heard_with_ptime(ptime_ms: u64) -> Vec<[i16; 160]> {
        let t0 = Instant::now();
        let mut l = leg(t0);
        let tone = sine(1000.0, 8000.0, 16000, 8000);
        let per = (ptime_ms * 8) as usize;
        let mut packets = tone.chunks_exact(per).enumerate().peekable();
        let mut frames = Vec::new();
        for tick in 0..100u64 {
            let now = t0 + Duration::from_millis(20 * tick);
            // Packets sent up to now have arrived.
            while let Some((i, chunk)) = packets.peek() {
                if t0 + Duration::from_millis(ptime_ms * *i as u64) > now {
                    break;
                }
                let mut payload = Vec::new();
                crate::codec::g711::encode_ulaw(chunk, &mut payload);
                let mut d = Vec::new();
                RtpHeader {
                    marker: false,
                    payload_type: PayloadType::new(0).unwrap(),
                    sequence: *i as u16,
                    timestamp: (*i * per) as u32,
                    ssrc: Ssrc(77),
                }
                .write(&payload, &mut d);
                l.handle_datagram(now, addr(9), &d).unwrap();
                packets.next();
            }
            frames.push(l.receive_frame(now));
        }
        frames
    }

    #[test]
    fn packets_of_30_and_10_ms_play_as_continuous_20_ms_frames() {
        for ptime in [30, 10, 20, 40] {
            let frames = heard_with_ptime(ptime);
            // After the jitter buffer primed, every frame is the tone at its level: no frame
            // of silence or concealment between packets, no samples lost at packet ends.
            let playing: Vec<&[i16; 160]> = frames
                .iter()
                .skip_while(|f| f.iter().all(|&x| x == 0))
                .take(60)
                .collect();
            assert_eq!(playing.len(), 60, "ptime {ptime}: the tone never played");
            for (i, f) in playing.iter().enumerate() {
                let rms = (f.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 160.0).sqrt();
                assert!(
                    (rms / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.05,
                    "ptime {ptime}: frame {i} at rms {rms:.0}"
                );
            }
            let all: Vec<i16> = playing.iter().flat_map(|f| f.iter().copied()).collect();
            let crossings = all.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
            // 1.2 s of 1 kHz: 2,400 zero crossings, give or take the ends.
            assert!(
                (2395..=2405).contains(&crossings),
                "ptime {ptime}: {crossings} zero crossings (the audio is not continuous)"
            );
        }
    }

    #[test]
    fn symmetric_rtp_latches_and_resists_hijack() {
        let t0 = Instant::now();
        let mut l = leg(t0);
        l.set_remote(addr(4000)); // from SDP: the phone's private address
        l.handle_datagram(t0, addr(5000), &rtp(1, 0, &[0xFF; 160]))
            .unwrap();
        assert_eq!(l.remote(), Some(addr(5000)), "latched to the NAT address");
        assert_eq!(l.poll_event(), Some(LegEvent::Latched(addr(5000))));
        // A stray packet from elsewhere while the phone is talking does not move us.
        l.handle_datagram(
            t0 + Duration::from_millis(20),
            addr(6666),
            &rtp(2, 0, &[0xFF; 160]),
        )
        .unwrap();
        assert_eq!(l.remote(), Some(addr(5000)));
        // After the NAT rebinding silence, the new address takes over.
        l.handle_datagram(
            t0 + Duration::from_secs(1),
            addr(5001),
            &rtp(3, 0, &[0xFF; 160]),
        )
        .unwrap();
        assert_eq!(l.remote(), Some(addr(5001)));
        l.send_frame(&[0; 160]).unwrap();
        assert_eq!(l.poll_transmit().unwrap().destination, addr(5001));
    }

    #[test]
    fn garbage_and_unknown_payload_types_are_errors_not_panics() {
        let t0 = Instant::now();
        let mut l = leg(t0);
        assert_eq!(
            l.handle_datagram(t0, addr(1), &[0x80]),
            Err(LegError::NotRtp)
        );
        assert_eq!(
            l.handle_datagram(t0, addr(1), &rtp(1, 18, &[0; 20])),
            Err(LegError::UnexpectedPayloadType(18))
        );
        assert!(
            l.handle_datagram(t0, addr(1), &[0x80, 0x00, 0, 1, 0])
                .is_err()
        );
        assert!(l.handle_datagram(t0, addr(1), &[0x80, 200, 0, 40]).is_err());
        assert!(l.handle_datagram(t0, addr(1), &rtp(1, 101, &[1])).is_err());
        assert_eq!(l.remote(), None, "nothing valid, nothing latched");
    }

    #[test]
    fn audio_in_audio_out_with_rfc4733_and_inband_dtmf() {
        let t0 = Instant::now();
        let mut cfg = LegConfig::new(Codec::Pcma);
        cfg.detect_inband_dtmf = true;
        let mut l = Leg::new(cfg, t0, Ssrc(1), 0, 0).unwrap();
        // 1 s of a 1 kHz tone arriving every 20 ms.
        let tone = sine(1000.0, 8000.0, 8000, 8000);
        let mut heard = Vec::new();
        for (i, f) in tone.chunks(160).enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            let mut p = Vec::new();
            crate::codec::g711::encode_alaw(f, &mut p);
            l.handle_datagram(now, addr(9), &rtp(i as u16, 8, &p))
                .unwrap();
            heard.extend_from_slice(&l.receive_frame(now));
        }
        assert!((dominant_frequency(&heard[1000..], 8000) - 1000.0).abs() < 2.0);
        // RFC 4733 '5' arrives.
        let ev = crate::codec::telephone_event::EventPayload {
            event: 5,
            end: false,
            volume: 10,
            duration: 160,
        };
        l.handle_datagram(t0, addr(9), &rtp(60, 101, &ev.to_bytes()))
            .unwrap();
        let events: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert!(events.contains(&LegEvent::Dtmf(
            Digit::from_code(5).unwrap(),
            DtmfSource::Rfc4733
        )));
        // The far end receives what we send, and RFC 4733 while a key is sent.
        l.send_frame(&[100; 160]).unwrap();
        assert!(l.send_dtmf(Digit::from_char('#').unwrap()));
        for _ in 0..8 {
            l.send_frame(&[100; 160]).unwrap();
        }
        l.send_frame(&[100; 160]).unwrap();
        let sent: Vec<_> = std::iter::from_fn(|| l.poll_transmit()).collect();
        let pts: Vec<u8> = sent
            .iter()
            .map(|t| {
                RtpPacket::parse(&t.payload)
                    .unwrap()
                    .header
                    .payload_type
                    .get()
            })
            .collect();
        assert_eq!(pts, [8, 101, 101, 101, 101, 101, 101, 101, 8, 8]);
        let seqs: Vec<u16> = sent
            .iter()
            .map(|t| RtpPacket::parse(&t.payload).unwrap().header.sequence)
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    }

    /// A phone without RFC 4733 sends the key as tones: detected in-band. Once a phone has
    /// used RFC 4733, tones left in its audio are not reported a second time.
    #[test]
    fn inband_keys_are_detected_unless_the_phone_uses_rfc4733() {
        let t0 = Instant::now();
        let keypress = |l: &mut Leg, first_seq: u16| {
            // '5' = 770 Hz + 1336 Hz for 100 ms, then 100 ms of silence.
            let tone: Vec<i16> = (0..1600)
                .map(|i| {
                    if i >= 800 {
                        return 0;
                    }
                    let t = i as f64 / 8000.0;
                    let v = 6000.0 * (2.0 * std::f64::consts::PI * 770.0 * t).sin()
                        + 6000.0 * (2.0 * std::f64::consts::PI * 1336.0 * t).sin();
                    v as i16
                })
                .collect();
            let mut found = Vec::new();
            for (i, f) in tone.chunks(160).enumerate() {
                let seq = first_seq + i as u16;
                let now = t0 + Duration::from_millis(20 * seq as u64);
                let mut p = Vec::new();
                crate::codec::g711::encode_ulaw(f, &mut p);
                l.handle_datagram(now, addr(9), &rtp(seq, 0, &p)).unwrap();
                l.receive_frame(now);
                while let Some(e) = l.poll_event() {
                    if let LegEvent::Dtmf(d, src) = e {
                        found.push((d.to_char(), src));
                    }
                }
            }
            found
        };
        let mut cfg = LegConfig::new(Codec::Pcmu);
        cfg.detect_inband_dtmf = true;
        let mut l = Leg::new(cfg, t0, Ssrc(1), 0, 0).unwrap();
        // Prime the jitter buffer with two silent frames so playout runs in step.
        for seq in 0..2u16 {
            l.handle_datagram(t0, addr(9), &rtp(seq, 0, &[0xFF; 160]))
                .unwrap();
        }
        assert_eq!(keypress(&mut l, 2), [('5', DtmfSource::InBand)]);
        let ev = crate::codec::telephone_event::EventPayload {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        let now = t0 + Duration::from_millis(20 * 12);
        l.handle_datagram(now, addr(9), &rtp(12, 101, &ev.to_bytes()))
            .unwrap();
        assert_eq!(
            l.poll_event(),
            Some(LegEvent::Dtmf(
                Digit::from_code(5).unwrap(),
                DtmfSource::Rfc4733
            ))
        );
        assert!(keypress(&mut l, 13).is_empty());
    }

    #[test]
    fn key_presses_do_not_count_as_loss() {
        let t0 = Instant::now();
        let mut l = leg(t0);
        let ev = crate::codec::telephone_event::EventPayload {
            event: 1,
            end: false,
            volume: 10,
            duration: 160,
        };
        // Audio 0..10, events 10..14 in the same sequence space, audio 14..30.
        for seq in 0..30u16 {
            let d = if (10..14).contains(&seq) {
                rtp(seq, 101, &ev.to_bytes())
            } else {
                rtp(seq, 0, &[0xFF; 160])
            };
            l.handle_datagram(t0 + Duration::from_millis(20 * seq as u64), addr(9), &d)
                .unwrap();
        }
        assert_eq!(l.stats().reception.lost, 0);
        assert_eq!(
            l.stats().reception.expected,
            29,
            "first packet spent on probation"
        );
    }

    #[test]
    fn without_rtcp_mux_reports_go_to_the_next_port() {
        let t0 = Instant::now();
        let mut cfg = LegConfig::new(Codec::Pcmu);
        cfg.remote = Some(addr(4000));
        cfg.symmetric = false;
        let mut l = Leg::new(cfg, t0, Ssrc(1), 0, 0).unwrap();
        l.handle_timeout(l.poll_timeout());
        assert_eq!(l.poll_transmit(), None, "RTCP leaves from the RTCP port");
        let report = l.poll_rtcp_transmit().unwrap();
        assert_eq!(report.destination, addr(4001));
        // Nothing sent yet: a receiver report.
        assert!(matches!(
            rtcp::parse_compound(&report.payload).unwrap()[0],
            RtcpPacket::ReceiverReport { .. }
        ));
    }

    #[test]
    fn sdp_rtcp_address_overrides_port_plus_one() {
        let t0 = Instant::now();
        let mut cfg = LegConfig::new(Codec::Pcmu);
        cfg.remote = Some(addr(4000));
        cfg.rtcp_remote = Some(addr(4444));
        let mut l = Leg::new(cfg.clone(), t0, Ssrc(1), 0, 0).unwrap();
        assert_eq!(l.rtcp_destination(), Some(addr(4444)));
        cfg.rtcp_mux = true;
        l.reconfigure(cfg).unwrap();
        assert_eq!(l.rtcp_destination(), Some(addr(4000)), "rtcp-mux wins");
    }

    /// RTCP from the peer's RTCP port feeds the remote loss and round trip; RTP on the
    /// RTCP port is refused and does not latch; a symmetric leg answers the RTCP source.
    #[test]
    fn rtcp_port_accepts_reports_only() {
        let t0 = Instant::now();
        let mut cfg = LegConfig::new(Codec::Pcmu);
        cfg.remote = Some(addr(4000));
        let mut l = Leg::new(cfg, t0, Ssrc(1), 0, 0).unwrap();
        assert_eq!(
            l.handle_rtcp_datagram(t0, addr(4001), &rtp(1, 0, &[0xFF; 160])),
            Err(LegError::NotRtp)
        );
        assert_eq!(l.remote(), Some(addr(4000)));
        assert_eq!(l.poll_event(), None, "no latch from the RTCP port");
        // Our SR first, so the peer's block can carry LSR/DLSR.
        for _ in 0..5 {
            l.send_frame(&[0; 160]).unwrap();
        }
        l.handle_timeout(l.poll_timeout());
        let sr = l.poll_rtcp_transmit().unwrap();
        let RtcpPacket::SenderReport { info, .. } = &rtcp::parse_compound(&sr.payload).unwrap()[0]
        else {
            panic!("expected an SR");
        };
        let mut rr = Vec::new();
        let block = rtcp::ReportBlock {
            ssrc: Ssrc(1),
            fraction_lost: 26,
            cumulative_lost: 3,
            highest_seq: 5,
            jitter: 0,
            last_sr: (info.ntp >> 16) as u32,
            delay_since_last_sr: 0,
        };
        rtcp::write_receiver_report(Ssrc(77), &[block], "phone", &mut rr);
        // From a NAT-mapped RTCP port on the phone's address.
        let nat = SocketAddr::new(addr(4000).ip(), 6001);
        l.handle_rtcp_datagram(t0, nat, &rr).unwrap();
        let s = l.stats();
        assert_eq!(s.remote_fraction_lost, Some(26));
        assert!(
            s.round_trip.is_some_and(|r| r < Duration::from_secs(1)),
            "{s:?}"
        );
        assert_eq!(l.rtcp_destination(), Some(nat), "symmetric RTCP");
        // From another host: used, but not latched.
        let elsewhere: SocketAddr = "198.51.100.7:9".parse().unwrap();
        l.handle_rtcp_datagram(t0, elsewhere, &rr).unwrap();
        assert_eq!(l.rtcp_destination(), Some(nat));
        // A new remote address forgets the RTCP latch.
        l.set_remote(addr(5000));
        assert_eq!(l.rtcp_destination(), Some(addr(5001)));
    }

    /// RFC 3550 §6.3.1: each interval is the configured one × U[0.5, 1.5]; the first is
    /// half that (§6.3.2). Deterministic for a given SSRC/sequence/timestamp seed.
    #[test]
    fn rtcp_intervals_are_randomised_and_seeded() {
        let schedule = |ssrc: u32| {
            let t0 = Instant::now();
            let mut cfg = LegConfig::new(Codec::Pcmu);
            cfg.remote = Some(addr(4000));
            cfg.rtcp_mux = true;
            cfg.media_timeout = Duration::from_secs(100_000);
            let mut l = Leg::new(cfg, t0, Ssrc(ssrc), 7, 9).unwrap();
            let mut at = vec![l.poll_timeout() - t0];
            for _ in 0..400 {
                let t = l.poll_timeout();
                l.handle_timeout(t);
                assert!(l.poll_transmit().is_some(), "a report at each deadline");
                at.push(l.poll_timeout() - t0);
            }
            at
        };
        let a = schedule(1);
        assert_eq!(a, schedule(1), "same seed, same schedule");
        assert_ne!(a, schedule(2), "another seed, another schedule");
        let five = Duration::from_secs(5);
        assert!(a[0] >= five / 4 && a[0] <= five * 3 / 4, "first {:?}", a[0]);
        let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        assert!(gaps.iter().all(|g| (2.5..=7.5).contains(g)), "{gaps:?}");
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 5.0).abs() < 0.25, "mean {mean}");
        let (lo, hi) = gaps
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), g| (l.min(*g), h.max(*g)));
        assert!(lo < 3.0 && hi > 7.0, "spread over the range: {lo}..{hi}");
    }

    #[test]
    fn media_timeout_and_rtcp_reports() {
        let t0 = Instant::now();
        let mut cfg = LegConfig::new(Codec::Pcmu);
        cfg.media_timeout = Duration::from_secs(2);
        cfg.remote = Some(addr(7));
        cfg.rtcp_mux = true;
        cfg.rtcp_interval = Duration::from_secs(20);
        let mut l = Leg::new(cfg, t0, Ssrc(1), 0, 0).unwrap();
        for i in 0..10u16 {
            l.handle_datagram(t0, addr(7), &rtp(i, 0, &[0xFF; 160]))
                .unwrap();
            l.send_frame(&[0; 160]).unwrap();
        }
        while l.poll_transmit().is_some() {}
        while l.poll_event().is_some() {}
        l.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(l.poll_event(), None);
        l.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(l.poll_event(), Some(LegEvent::MediaTimeout));
        l.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(l.poll_event(), None, "reported once");
        let due = l.poll_timeout();
        assert!(
            due > t0 + Duration::from_secs(3),
            "first report in [5, 15] s"
        );
        l.handle_timeout(due);
        let report = l.poll_transmit().expect("an RTCP report");
        assert_eq!(report.destination, addr(7), "rtcp-mux: same port as RTP");
        let parsed = rtcp::parse_compound(&report.payload).unwrap();
        match &parsed[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info,
                reports,
            } => {
                assert_eq!(*ssrc, Ssrc(1));
                assert_eq!(info.packet_count, 10);
                assert_eq!(reports[0].ssrc, Ssrc(77));
                assert_eq!(reports[0].cumulative_lost, 0);
            }
            other => panic!("expected SR, got {other:?}"),
        }
        assert!(matches!(l.poll_event(), Some(LegEvent::Stats(s)) if s.packets_sent == 10));
        l.handle_datagram(
            due + Duration::from_secs(1),
            addr(7),
            &rtp(10, 0, &[0xFF; 160]),
        )
        .unwrap();
        assert_eq!(l.poll_event(), Some(LegEvent::MediaResumed));
    }
}
