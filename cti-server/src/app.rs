//! Wiring: configuration in, running planes out. `main.rs` only parses arguments.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::call::CallConfig;
use crate::call::actor::ActorConfig;
use crate::call::router::{AgentRoute, Router, TrunkCredentials, TrunkRoute};
use crate::config::{Config, TrunkTransport};
use crate::http::{self, AppState};
use crate::sdp::Codec;
use crate::sip::core::{CoreConfig, SipCore};
use crate::sip::dialog::LocalVia;
use crate::sip::registrar::RegistrarConfig;
use crate::sip::service::{AgentDirectory, CallPlane, SipHealth, SipService};
use crate::sip::transaction::{Peer, TimerConfig};
use crate::sip::transport::{TransportConfig, Transports};
use crate::sip::types::Transport;
use crate::store::Store;
use media::engine::EngineConfig;

/// Starts every plane and runs until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
        format!(
            "cannot create storage.data_dir {}",
            config.storage.data_dir.display()
        )
    })?;
    std::fs::create_dir_all(&config.storage.recordings_dir).with_context(|| {
        format!(
            "cannot create storage.recordings_dir {}",
            config.storage.recordings_dir.display()
        )
    })?;
    let store = Store::open(&config.storage.database_url()).await?;
    store.sync_agents(&config.agents).await?;
    let (writer, writer_task) = store.spawn_writer(4096);

    let transports = Transports::bind(config.sip.listen)
        .await
        .with_context(|| format!("cannot bind sip.listen {}", config.sip.listen))?;
    let sip_addr = transports.local_addr;
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot bind http.listen {}", config.http.listen))?;
    let http_addr = http_listener.local_addr()?;

    // Where peers reach us: SIP Contact/Via host and the SDP address.
    let listen_ip = config.sip.listen.ip();
    let media_ip = config
        .media
        .advertised_ip
        .or_else(|| {
            config
                .sip
                .advertised_host
                .as_deref()
                .and_then(|h| h.parse().ok())
        })
        .unwrap_or(if listen_ip.is_unspecified() {
            tracing::warn!(
                "sip.listen is a wildcard and no media.advertised_ip / sip.advertised_host is set: \
                 using 127.0.0.1 in SDP, reachable from this machine only"
            );
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            listen_ip
        });
    let sip_host = config.sip.advertised_host.clone().unwrap_or_else(|| {
        if listen_ip.is_unspecified() {
            media_ip.to_string()
        } else {
            listen_ip.to_string()
        }
    });
    let (lo, hi) = config.media.port_range().map_err(anyhow::Error::msg)?;
    let (media, media_events, _engine_task, _ports) = media::engine::start(EngineConfig {
        bind_ip: if listen_ip.is_unspecified() {
            listen_ip
        } else {
            media_ip
        },
        ports: lo..=hi,
        command_queue: 4096,
        event_queue: 4096,
        shards: config.media.shards,
        tick: Duration::from_millis(20),
        advertised_ip: Some(media_ip),
    });
    let router = Router::new(config.agents.iter().map(|a| {
        (
            a.extension.clone(),
            AgentRoute {
                static_contact: a
                    .contact
                    .as_deref()
                    .and_then(|c| crate::sip::Uri::parse(c).ok()),
                lines: a.lines,
            },
        )
    }));
    let router = match trunk_route(&config) {
        Some(t) => {
            tracing::info!(peer = %t.peer.addr, domain = %t.domain, "outbound trunk configured");
            router.with_trunk(t)
        }
        None => router,
    };
    let user_agent = format!("cti-server/{}", env!("CARGO_PKG_VERSION"));
    let call_config = CallConfig {
        ring_timeout: Duration::from_secs(config.call.ring_timeout_s),
        end_timeout: Duration::from_millis(64 * config.sip.t1_ms),
        via: LocalVia::new(Transport::Udp, sip_host.clone(), Some(sip_addr.port())),
        host: sip_host,
        sip_port: sip_addr.port(),
        media_ip,
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        user_agent: user_agent.clone(),
    };

    let core = SipCore::new(
        CoreConfig {
            timers: TimerConfig {
                t1: Duration::from_millis(config.sip.t1_ms),
                t2: Duration::from_millis(config.sip.t2_ms),
                t4: Duration::from_millis(config.sip.t4_ms),
            },
            registrar: RegistrarConfig {
                min_expires: config.sip.min_expires,
                max_expires: config.sip.max_expires,
                default_expires: config.sip.default_expires,
                max_contacts_per_agent: config.sip.max_contacts_per_agent,
            },
            realm: config.sip.domain.clone(),
            nonce_ttl: Duration::from_secs(config.sip.nonce_ttl_s),
            digest_algorithms: config.digest_algorithms(),
            force_rport: config.sip.force_rport,
            user_agent,
            max_transactions: config.sip.max_transactions,
            max_calls: config.call.max_concurrent,
            first_call_key: crate::store::now_ms() as u64 * 1000,
            max_call_rate_per_source: config.call.max_rate_per_source,
        },
        router,
    );
    let health = Arc::new(SipHealth::default());
    let service = SipService {
        core,
        transports,
        transport_config: TransportConfig {
            tcp_idle_timeout: Duration::from_secs(config.sip.tcp_idle_timeout_s),
            max_tcp_connections: config.sip.max_tcp_connections,
        },
        directory: Arc::new(AgentDirectory::new(&config.agents)),
        health: health.clone(),
        store: Some(writer),
        calls: CallPlane {
            media,
            media_events,
            call_config,
            actor_config: ActorConfig {
                media_timeout: Duration::from_secs(config.media.timeout_s),
            },
            shutdown_grace: Duration::from_secs(config.call.shutdown_grace_s),
        },
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sip_task = tokio::spawn(service.run(shutdown_rx.clone()));
    let app = http::router(AppState {
        sip: health,
        store: store.clone(),
        sip_addr,
    });
    let mut http_shutdown = shutdown_rx.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|v| *v).await;
            })
            .await
    });

    // Tests and scripts read this line to find the ports (port 0 in the config picks free ones).
    println!("cti-server ready sip={sip_addr} http={http_addr}");
    tracing::info!(sip = %sip_addr, http = %http_addr, "cti-server ready");

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    // The SIP task drains calls (up to call.shutdown_grace_s, then ends them with BYE).
    let grace = Duration::from_secs(config.call.shutdown_grace_s + 15);
    let _ = tokio::time::timeout(grace, sip_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    // Every sender is gone with the SIP task and the call actors: the writer finishes the
    // last records (the calls just ended) and stops.
    if tokio::time::timeout(Duration::from_secs(10), writer_task)
        .await
        .is_err()
    {
        tracing::warn!("store writer did not finish in time: last records may be missing");
    }
    store.pool().close().await;
    Ok(())
}

/// The outbound trunk from `[trunk]` (validated by [`Config::load`]); `None` without a host.
fn trunk_route(config: &Config) -> Option<TrunkRoute> {
    let t = &config.trunk;
    let host = t.host?;
    Some(TrunkRoute {
        peer: Peer {
            transport: match t.transport {
                TrunkTransport::Udp => Transport::Udp,
                TrunkTransport::Tcp => Transport::Tcp,
            },
            addr: std::net::SocketAddr::new(host, t.port),
        },
        domain: t.domain()?,
        port: t.port,
        credentials: t
            .username
            .clone()
            .zip(t.password.clone())
            .map(|(username, password)| TrunkCredentials { username, password }),
        from_user: t.from_user.clone(),
        min_digits: t.min_digits,
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
