//! Wiring: configuration in, running planes out. `main.rs` only parses arguments.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::sip::core::{CoreConfig, SipCore};
use crate::sip::registrar::RegistrarConfig;
use crate::sip::service::{AgentDirectory, SipHealth, SipService};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{TransportConfig, Transports};
use crate::store::Store;

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
    let writer = store.spawn_writer(4096);

    let transports = Transports::bind(config.sip.listen)
        .await
        .with_context(|| format!("cannot bind sip.listen {}", config.sip.listen))?;
    let sip_addr = transports.local_addr;
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot bind http.listen {}", config.http.listen))?;
    let http_addr = http_listener.local_addr()?;

    let core = SipCore::new(CoreConfig {
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
        user_agent: format!("cti-server/{}", env!("CARGO_PKG_VERSION")),
        max_transactions: config.sip.max_transactions,
    });
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
    let _ = tokio::time::timeout(Duration::from_secs(10), sip_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    store.pool().close().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
