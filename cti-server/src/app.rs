//! Wiring: configuration in, running planes out. `main.rs` only parses arguments.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::call::CallConfig;
use crate::call::actor::{ActorConfig, Hosting};
use crate::call::host::HostConfig;
use crate::call::prompts::Prompts;
use crate::call::router::Service;
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
    store.sync_users(&config.agents).await?;
    let metrics = Arc::new(crate::metrics::Metrics::default());
    {
        // Calls per second, from a sample of the started calls each second.
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                metrics.sample_call_rate();
            }
        });
    }
    let (writer, writer_task) = store.spawn_writer(4096, metrics.clone());
    let retention = config.retention();
    if !retention.keeps_all() {
        let (store, every) = (
            store.clone(),
            Duration::from_secs(config.recording.retention_sweep_s),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let n = crate::retention::sweep(&store, &retention).await;
                if n > 0 {
                    tracing::info!(deleted = n, "retention sweep");
                }
            }
        });
    }
    {
        // Hot-lead reports nobody answered in time are accepted (silence is consent): settled
        // each minute, so the leads' timelines say so without anyone listing the reports.
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match store.settle_hot_leads(crate::store::now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(accepted = n, "hot-lead reports accepted by silence"),
                    Err(e) => tracing::warn!("settling hot-lead reports: {e}"),
                }
            }
        });
    }

    let mut transports = Transports::bind(config.sip.listen)
        .await
        .with_context(|| format!("cannot bind sip.listen {}", config.sip.listen))?;
    let sip_addr = transports.local_addr;
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot bind http.listen {}", config.http.listen))?;
    let http_addr = http_listener.local_addr()?;
    // HTTPS, WSS and SIP over TLS share one certificate: the configured one or our own.
    let tls = if config.https_listen().is_some() || config.sips_listen().is_some() {
        let names = crate::tls::default_names(
            config
                .tls
                .names
                .iter()
                .cloned()
                .chain(config.sip.advertised_host.clone())
                .chain(config.media.advertised_ip.map(|ip| ip.to_string())),
        );
        let (cert, key) = config.tls.files();
        let id = crate::tls::load(cert, key, &config.storage.data_dir, &names)
            .map_err(anyhow::Error::msg)?;
        // An admin compares this with what the browser shows before trusting it.
        println!(
            "cti-server tls certificate {} sha256={} ({})",
            if id.self_signed {
                "self-signed"
            } else {
                "configured"
            },
            id.fingerprint,
            id.cert_path.display()
        );
        tracing::info!(fingerprint = %id.fingerprint, cert = %id.cert_path.display(), self_signed = id.self_signed, "TLS certificate");
        Some(id)
    } else {
        None
    };
    let https_listener = match config.https_listen() {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind http.tls_listen {addr}"))?;
            let identity = tls.as_ref().expect("loaded above");
            Some(crate::tls::TlsListener::new(l, identity.http.clone())?)
        }
        None => None,
    };
    let https_addr = match &https_listener {
        Some(l) => Some(axum::serve::Listener::local_addr(l)?),
        None => None,
    };
    if let Some(addr) = config.sips_listen() {
        transports.tls = Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind sip.tls_listen {addr}"))?,
        );
    }
    let sips_addr = match &transports.tls {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let (to_sip_core, sip_inbound) = crate::sip::transport::channel();

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
    let cti = crate::cti::CtiHub::default();
    let softphones =
        crate::softphone::Softphones::new(Duration::from_secs(config.softphone.reattach_grace_s))
            .with_outputs(cti.clone(), Some(writer.clone()));
    let router = router
        .with_softphones(softphones.clone())
        .with_services(service_numbers(&config))
        .with_supervision(&config.supervision.monitor_prefix, access(&config));

    // The control plane of hosted calls: IVR flows, the ACD actor, shared prompts.
    let flows = load_ivr(&config).map_err(anyhow::Error::msg)?;
    let acd_config = crate::acd::AcdConfig::from_config(&config);
    let (acd, _acd_task) =
        crate::acd::actor::spawn(crate::acd::Acd::new(acd_config), Some(writer.clone()));
    // Phones with a static contact are there from the start (registering phones are made
    // reachable, and their agents logged in, when they register).
    for a in config.agents.iter().filter(|a| a.contact.is_some()) {
        acd.send(crate::acd::actor::AcdInput::Event(
            crate::acd::AcdEvent::AgentReachable {
                agent: a.extension.clone(),
                reachable: true,
            },
        ));
        acd.send(crate::acd::actor::AcdInput::Event(
            crate::acd::AcdEvent::AgentLogin {
                agent: a.extension.clone(),
            },
        ));
    }
    let prompts = Arc::new(Prompts::new());
    // Every prompt is read at start: callers arriving together would otherwise each wait
    // for the same file on first use (measured: greetings starting 4-7 s late).
    let mut audio: Vec<_> = std::iter::once(config.ivr.hold_music.clone())
        .chain(config.queues.iter().filter_map(|q| q.hold_music.clone()))
        .collect();
    // The flows name their prompts under the set's canonical directory: the same paths here,
    // so the cache is hit.
    let prompts_dir = flows.current().dir().join("prompts");
    if let Ok(dir) = std::fs::read_dir(&prompts_dir) {
        audio.extend(
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav"))),
        );
    }
    for (path, e) in prompts.preload(audio).await {
        tracing::warn!(path = %path.display(), error = %e, "prompt cannot be played");
    }
    // An empty path (`--set storage.seed_leads=""`) loads none.
    if let Some(leads) = config
        .storage
        .seed_leads
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        match store.seed_leads(leads).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(n, file = %leads.display(), "demo leads loaded"),
            Err(e) => tracing::warn!(error = %e, "demo leads not loaded"),
        }
    }
    let hosting = Arc::new(Hosting {
        config: Arc::new(HostConfig {
            prompts_dir,
            hold_music: config.ivr.hold_music.clone(),
            queue_music: config
                .queues
                .iter()
                .filter_map(|q| q.hold_music.clone().map(|m| (q.name.clone(), m)))
                .collect(),
            voicemail_dir: config.voicemail.dir.clone(),
            voicemail_max: Duration::from_secs(config.voicemail.max_s),
            direct_ring_timeout: Duration::from_secs(config.call.ring_timeout_s),
            fallback_voicemail: config.voicemail.fallback_box.clone(),
            queue_recording: config
                .queues
                .iter()
                .map(|q| {
                    (
                        q.name.clone(),
                        q.recording.unwrap_or(config.recording.policy),
                    )
                })
                .collect(),
            lead_country: config.leads.default_country.clone(),
            dispositions: crate::disposition::Dispositions::from_config(&config),
        }),
        flows,
        acd: acd.clone(),
        store: Some(store.clone()),
        cti: cti.clone(),
        softphones: softphones.clone(),
    });
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
        record: config.recording.policy,
        record_keys: config.recording.keypad_code.clone(),
        beep: Some(config.ivr.dir.join("prompts/beep.wav")).filter(|p| p.exists()),
        hold_music: Some(config.ivr.hold_music.clone()),
        recordings_dir: config.storage.recordings_dir.clone(),
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
            overload_backlog: config.sip.overload_backlog,
            max_calls: config.call.max_concurrent,
            first_call_key: crate::store::now_ms() as u64 * 1000,
            max_call_rate_per_source: config.call.max_rate_per_source,
        },
        router,
    );
    let hosting_api = hosting.clone();
    let prompts_api = prompts.clone();
    let health = Arc::new(SipHealth::default());
    let media_dropped_events = media.dropped_events_counter();
    let media_clock = media.clock();
    let media_counters = media.counters();
    let recording_failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let live_calls = crate::call::live::LiveCalls::default();
    let (places, placements) = tokio::sync::mpsc::channel(64);
    let dialing = crate::dial::Dialing {
        places,
        store: store.clone(),
        hours: crate::dial::CallingHours::from_config(&config.dialing)
            .map_err(|e| anyhow::anyhow!(e))?,
        country: config.leads.default_country.clone(),
        names: config
            .agents
            .iter()
            .map(|a| (a.extension.clone(), a.name.clone()))
            .collect(),
    };
    let console = crate::softphone::Console {
        phones: softphones,
        media: media.clone(),
        live: live_calls.clone(),
        acd: Some(acd.clone()),
        access: Arc::new(access(&config)),
        dialing: Some(Arc::new(dialing)),
    };
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
        placements,
        metrics: metrics.clone(),
        inbound: (to_sip_core.clone(), sip_inbound),
        tls: tls.as_ref().map(|t| t.sip.clone()),
        calls: CallPlane {
            media,
            media_events,
            call_config,
            actor_config: ActorConfig {
                media_timeout: Duration::from_secs(config.media.timeout_s),
                prompts,
                hosting: Some(hosting),
                recording_failures: recording_failures.clone(),
                live: live_calls.clone(),
                metrics: metrics.clone(),
                live_agents: Arc::new(config.agents.iter().map(|a| a.extension.clone()).collect()),
            },
            shutdown_grace: Duration::from_secs(config.call.shutdown_grace_s),
        },
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sip_task = tokio::spawn(service.run(shutdown_rx.clone()));
    let state = AppState {
        sip: health,
        store: store.clone(),
        sip_addr,
        acd: Some(acd),
        api_token: config.http.api_token.clone(),
        access: Arc::new(access(&config)),
        throttle: Arc::new(std::sync::Mutex::new(crate::users::Throttle::new(
            config.http.login_max_failures,
            Duration::from_secs(config.http.login_window_s),
        ))),
        session_ttl: crate::login::session_ttl(config.http.session_ttl_h),
        agents_hear_own: config.recording.agents_hear_own,
        leads: Arc::new(config.leads.clone()),
        cti,
        media_dropped_events,
        media_clock,
        recording_failures,
        live: live_calls,
        hosting: Some(hosting_api),
        prompts: Some(prompts_api),
        console: Some(console),
        dispositions: Arc::new(crate::disposition::Dispositions::from_config(&config)),
        hot_review: Arc::new(config.hot_review().map_err(|e| anyhow::anyhow!(e))?),
        campaigns: Arc::new(crate::api_campaigns::Campaigns::new(&config.dialing)),
        metrics: metrics.clone(),
        media_counters,
        sip_ws: Some(crate::http::SipWsIngress {
            to_core: to_sip_core,
            idle: Duration::from_secs(config.sip.tcp_idle_timeout_s),
            metrics,
        }),
        service_levels: Arc::new(
            config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.service_level_s))
                .collect(),
        ),
    };
    // Progressive campaigns dial, and every campaign's attempts are settled, from here.
    tokio::spawn(crate::api_campaigns::run_pacer(
        state.clone(),
        shutdown_rx.clone(),
    ));
    let app = http::router(state);
    let mut http_shutdown = shutdown_rx.clone();
    let https_task = https_listener.map(|listener| {
        // The same routes; requests are marked as having come over TLS.
        let app = app.clone().layer(axum::Extension(crate::http::OverTls));
        let mut shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            use axum::serve::ListenerExt;
            // `tap_io` makes the peer's address available as `ConnectInfo<SocketAddr>`.
            axum::serve(
                listener.tap_io(|_| {}),
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|v| *v).await;
            })
            .await
        })
    });
    let http_task = tokio::spawn(async move {
        axum::serve(
            http_listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_shutdown.wait_for(|v| *v).await;
        })
        .await
    });

    // Tests and scripts read this line to find the ports (port 0 in the config picks free ones).
    let mut ready = format!("cti-server ready sip={sip_addr} http={http_addr}");
    if let Some(a) = https_addr {
        ready.push_str(&format!(" https={a}"));
    }
    if let Some(a) = sips_addr {
        ready.push_str(&format!(" sips={a}"));
    }
    println!("{ready}");
    tracing::info!(sip = %sip_addr, http = %http_addr, https = ?https_addr, sips = ?sips_addr, "cti-server ready");

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    // The SIP task drains calls (up to call.shutdown_grace_s, then ends them with BYE).
    let grace = Duration::from_secs(config.call.shutdown_grace_s + 15);
    let _ = tokio::time::timeout(grace, sip_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    if let Some(t) = https_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
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

/// Numbers the server answers itself: the IVR's main number and DIDs, queue numbers and
/// voicemail numbers.
fn service_numbers(config: &Config) -> Vec<(String, Service)> {
    let mut out = Vec::new();
    if !config.ivr.number.is_empty() {
        out.push((
            config.ivr.number.clone(),
            Service::Flow(config.ivr.entry.clone()),
        ));
    }
    for (did, flow) in &config.ivr.did {
        out.push((did.clone(), Service::Flow(flow.clone())));
    }
    for q in &config.queues {
        if let Some(n) = &q.number {
            out.push((n.clone(), Service::Queue(q.name.clone())));
        }
    }
    for (n, b) in &config.voicemail.numbers {
        out.push((n.clone(), Service::Voicemail(b.clone())));
    }
    out
}

/// Loads and validates the IVR flows of `[ivr]`: every flow in `ivr.dir`, routes against
/// the configured extensions and queues, and the entry and DID flows must exist. The message
/// lists every problem, each naming the file and node.
pub fn load_ivr(config: &Config) -> Result<crate::ivr::FlowRegistry, String> {
    let ctx = crate::ivr::ValidationContext {
        agents: Some(config.agents.iter().map(|a| a.extension.clone()).collect()),
        queues: Some(config.queues.iter().map(|q| q.name.clone()).collect()),
        // Voicemail boxes are made on first use: any name is a box.
        voicemail_boxes: None,
    };
    let registry = crate::ivr::FlowRegistry::load(&config.ivr.dir, ctx).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        format!(
            "ivr.dir {}: {} error(s) in the IVR flows:\n{}",
            config.ivr.dir.display(),
            errors.len(),
            lines.join("\n")
        )
    })?;
    let set = registry.current();
    for (key, flow) in config.ivr.flow_references() {
        if set.get(flow).is_none() {
            return Err(format!(
                "{key} = {flow:?}: no such flow in {} (flows: {})",
                set.dir().display(),
                set.names().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(registry)
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

/// Roles and skill groups of the configured staff.
fn access(config: &Config) -> crate::access::Access {
    crate::access::Access::new(config.agents.iter().map(|a| {
        (
            a.extension.clone(),
            crate::access::Staff {
                role: a.role,
                skills: a.skills.keys().cloned().collect(),
                supervises: a.supervises.iter().cloned().collect(),
            },
        )
    }))
    .with_queues(config.queues.iter().map(|q| {
        (
            q.name.clone(),
            q.skill.clone().unwrap_or_else(|| q.name.clone()),
        )
    }))
}
