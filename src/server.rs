//! Assembles the running server from its parts and keeps it up until a
//! signal asks it to stop.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::sip::guard::GuardPolicy;
use crate::sip::registrar::RegistrarPolicy;

/// Install process-wide providers once: the rustls crypto provider (ring) and
/// the Prometheus recorder.
pub fn install_globals() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    // Err means another provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// Run the server until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let metrics = install_globals()?;
    let cancel = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let passwords: HashMap<String, String> = config
        .agents
        .iter()
        .map(|a| (a.id.clone(), a.password.clone()))
        .collect();
    let settings = crate::sip::SipSettings {
        listen: config.sip.listen,
        domain: config.sip.domain.clone(),
        registrar: RegistrarPolicy {
            min_expires: config.sip.min_expires,
            max_expires: config.sip.max_expires,
            max_contacts: 8,
        },
        guard: GuardPolicy {
            max_failures: config.sip.auth_max_failures,
            window_ms: config.sip.auth_window_secs * 1000,
            block_ms: config.sip.auth_block_secs * 1000,
        },
        nonce_ttl_ms: config.sip.nonce_ttl_secs * 1000,
        digest_algorithms: config
            .sip
            .digest_algorithms
            .iter()
            .filter_map(|a| crate::sip::digest::Algorithm::parse(a))
            .collect(),
        passwords,
        restored: vec![],
    };
    let sip = crate::sip::start(settings, clock.clone(), None, cancel.clone()).await?;

    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot bind HTTP {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let app = crate::api::router(crate::api::ApiState { metrics });
    let http_cancel = cancel.clone();
    tokio::spawn(async move {
        let shutdown = async move { http_cancel.cancelled().await };
        if let Err(e) = axum::serve(http, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    info!(
        sip = %sip.local_addr,
        http = %http_addr,
        startup_ms = started.elapsed().as_millis() as u64,
        "hotline ready"
    );

    wait_for_stop().await;
    info!("stopping");
    cancel.cancel();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    Ok(())
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
