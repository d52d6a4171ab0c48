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
use crate::sip::registrar::{Binding, Change, RegistrarPolicy};

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

    let store = crate::store::Store::connect(&config.database.url)
        .await
        .with_context(|| {
            format!(
                "database {}",
                crate::store::redact_url(&config.database.url)
            )
        })?;
    let (writer, writer_task) =
        crate::store::StoreWriter::spawn(store.clone(), crate::store::WriterConfig::default());
    for agent in &config.agents {
        store
            .upsert_agent(&crate::store::Agent {
                id: agent.id.clone(),
                name: agent.name.clone(),
                skills: agent.skills.clone(),
                department: String::new(),
            })
            .await
            .context("cannot save agents")?;
    }
    let restored = restore_registrations(&store, clock.now_ms()).await;
    info!(bindings = restored.len(), "registrations restored");
    let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(persist_registrations(changes_rx, writer.clone()));

    // Supervisors register a phone too (listen / whisper / barge call it);
    // an agent's entry wins if an id is both.
    let mut passwords: HashMap<String, String> = config
        .users
        .iter()
        .filter(|u| u.role == "supervisor")
        .map(|u| (u.id.clone(), u.password.clone()))
        .collect();
    passwords.extend(
        config
            .agents
            .iter()
            .map(|a| (a.id.clone(), a.password.clone())),
    );
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
        restored,
        presence: None,
        ws_keepalive: (config.sip.ws_keepalive_secs > 0)
            .then(|| std::time::Duration::from_secs(config.sip.ws_keepalive_secs)),
    };
    let dialplan_paths = config.dialplan_paths();
    let routing = crate::call::Routing::load(&dialplan_paths).map_err(|errors| {
        anyhow::anyhow!("dialplans could not be loaded:\n{}", errors.join("\n"))
    })?;
    info!(
        dialplans = routing.dialplans.plans().len(),
        prompts = routing.prompts.len(),
        "dialplans loaded"
    );
    let (routing_tx, routing_rx) = tokio::sync::watch::channel(Arc::new(routing));
    tokio::spawn(reload_on_hangup(dialplan_paths, routing_tx));

    let (first_port, last_port) = config
        .media
        .port_range()
        .map_err(|e| anyhow::anyhow!("media.rtp_ports: {e}"))?;
    let media = crate::media::engine::MediaEngine::start(crate::media::engine::EngineSettings {
        address: config.media_address(),
        ports: (first_port, last_port),
        workers: config.media.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        timeout: std::time::Duration::from_secs(config.media.timeout_secs),
    })
    .context("cannot start media workers")?;
    let browsers = {
        let mut legs = crate::browser::LegConfig::new(config.media_address());
        legs.ports = config
            .media
            .webrtc_port_policy()
            .map_err(|e| anyhow::anyhow!("media.webrtc_ports: {e}"))?;
        let legs = crate::browser::WebRtcMedia::new(legs)
            .context("cannot set up browser softphone legs")?;
        let legs: Arc<dyn crate::browser::BrowserMedia> = Arc::new(legs);
        legs
    };
    check_queues(&routing_rx.borrow(), &config)?;
    let service_prompts_dir = prompts_dir(&config, &routing_rx.borrow());
    let hold_music = load_hold_music(&config)?;
    let events = crate::events::EventHub::new();
    let (presence_tx, presence_rx) = tokio::sync::mpsc::unbounded_channel();
    for b in &settings.restored {
        let _ = presence_tx.send((b.aor.clone(), true));
    }
    let acd = crate::call::acd::start(
        config.router_config(),
        config
            .agents
            .iter()
            .map(|a| crate::call::acd::AcdAgent {
                id: a.id.clone(),
                skills: a
                    .skills
                    .iter()
                    .filter_map(|s| crate::acd::Skill::parse(s))
                    .collect(),
            })
            .collect(),
        config.acd.ready_on_register,
        presence_rx,
        events.clone(),
        clock.clone(),
    )
    .map_err(|e| anyhow::anyhow!("queues: {e}"))?;

    let (calls_tx, calls_rx) = tokio::sync::mpsc::channel(1024);
    let sip = crate::sip::start(
        crate::sip::SipSettings {
            presence: Some(presence_tx),
            ..settings
        },
        clock.clone(),
        Some(changes_tx),
        Some(calls_tx),
        cancel.clone(),
    )
    .await?;
    let (campaign, dialer) = match crate::call::campaign::start(
        &config,
        store.clone(),
        media.clone(),
        sip.clone(),
        writer.clone(),
        clock.clone(),
        events.clone(),
        acd.clone(),
        browsers.clone(),
        cancel.clone(),
    )? {
        Some((handle, task)) => (Some(handle), Some(task)),
        None => (None, None),
    };
    crate::call::spawn_manager(
        calls_rx,
        Arc::new(crate::call::CallDeps {
            media,
            routing: routing_rx,
            store: store.clone(),
            writer: writer.clone(),
            clock: clock.clone(),
            answer_delay: std::time::Duration::from_millis(config.sip.answer_delay_ms),
            acd: acd.clone(),
            sip: sip.clone(),
            record: config.acd.record,
            recordings: config.resolve(&config.recordings.dir),
            events: events.clone(),
            hold_music,
            service_prompts: crate::call::load_service_prompts(&service_prompts_dir),
            queues: config.queues.iter().map(|q| q.name.clone()).collect(),
            agents: config.agents.iter().map(|a| a.id.clone()).collect(),
            ownership_ms: u64::from(config.acd.ownership_days) * 86_400_000,
            transfer_numbers: config.acd.transfer_numbers.clone(),
            transfer_gateway: config.acd.transfer_gateway,
            browsers,
        }),
    );

    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot bind HTTP {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let api_state = crate::api::ApiState::new(
        &config,
        metrics,
        store.clone(),
        events.clone(),
        Some(acd.clone()),
        clock.clone(),
    )
    .with_sip(sip.clone())
    .with_campaign(campaign);
    crate::api::spawn_queue_stats(&api_state, std::time::Duration::from_secs(2));
    let app = crate::api::router(api_state);
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(crate::api::tls::server_config(
            &config.resolve(cert),
            &config.resolve(key),
        )?),
        _ => None,
    };
    let https = tls.is_some();
    let http_cancel = cancel.clone();
    let accept_cancel = cancel.clone();
    tokio::spawn(async move {
        let shutdown = async move { http_cancel.cancelled().await };
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = match tls {
            Some(tls) => {
                use axum::serve::ListenerExt as _;
                // tap_io: axum hands the peer address to ConnectInfo for
                // any listener it wraps.
                match crate::api::tls::TlsListener::new(http, tls, accept_cancel) {
                    Ok(l) => {
                        axum::serve(l.tap_io(|_| ()), app)
                            .with_graceful_shutdown(shutdown)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => {
                axum::serve(http, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    info!(
        sip = %sip.local_addr,
        http = %http_addr,
        https,
        startup_ms = started.elapsed().as_millis() as u64,
        "hotline ready"
    );

    wait_for_stop().await;
    info!("stopping");
    cancel.cancel();
    if let Some(dialer) = dialer {
        // Its lease released, another node dials at once rather than after the TTL.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), dialer).await;
    }
    // Give queued records a moment to land; a database that is away must not hold the stop.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), writer.flush()).await;
    drop(writer);
    writer_task.abort();
    Ok(())
}

/// The configured hold music (an error if it cannot be used), else the
/// shipped one when it is there, else none.
fn load_hold_music(config: &Config) -> anyhow::Result<Option<Arc<crate::media::prompt::Prompt>>> {
    match &config.acd.hold_music {
        Some(p) => {
            let path = config.resolve(p);
            let prompt = crate::media::prompt::Prompt::load(&path)
                .map_err(|e| anyhow::anyhow!("acd.hold_music: {e}"))?;
            Ok(Some(Arc::new(prompt)))
        }
        None => {
            let shipped = std::path::Path::new("dialplans/prompts/hold_music.wav");
            Ok(crate::media::prompt::Prompt::load(shipped)
                .ok()
                .map(Arc::new))
        }
    }
}

/// Where the shipped prompts are: beside the first dialplan, else ./dialplans/prompts.
/// Where the prompts the shell plays itself are (agent_ready, callback
/// offer, queue announcements): the first dialplan's prompts that has them,
/// else beside the first dialplan file, else `dialplans/prompts`.
fn prompts_dir(config: &Config, routing: &crate::call::Routing) -> std::path::PathBuf {
    let from_plans = routing
        .dialplans
        .plans()
        .iter()
        .map(|p| p.prompt_path(""))
        .find(|d| d.join("agent_ready.wav").exists());
    let beside_file = || {
        config
            .dialplan_paths()
            .first()
            .and_then(|p| p.parent().map(|d| d.join("prompts")))
            .filter(|d| d.join("agent_ready.wav").exists())
    };
    from_plans
        .or_else(beside_file)
        .unwrap_or_else(|| std::path::PathBuf::from("dialplans/prompts"))
}

/// Every queue a dialplan routes to must be configured.
fn check_queues(routing: &crate::call::Routing, config: &Config) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for plan in routing.dialplans.plans() {
        for (name, node) in &plan.nodes {
            if let crate::ivr::NodeKind::Queue(q) = &node.kind {
                if !config.queues.iter().any(|c| c.name == q.queue) {
                    missing.push(format!(
                        "{}:{}: node {name} routes to queue {:?}, which is not in [[queues]]",
                        plan.path.display(),
                        node.line,
                        q.queue
                    ));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(missing.join("\n")))
    }
}

/// SIGHUP: load dialplans and prompts again; swap them in only if all is well.
async fn reload_on_hangup(
    paths: Vec<std::path::PathBuf>,
    routing: tokio::sync::watch::Sender<Arc<crate::call::Routing>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; dialplan reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        let loaded = {
            let paths = paths.clone();
            tokio::task::spawn_blocking(move || crate::call::Routing::load(&paths)).await
        };
        match loaded {
            Ok(Ok(r)) => {
                info!(
                    dialplans = r.dialplans.plans().len(),
                    prompts = r.prompts.len(),
                    "dialplans reloaded"
                );
                metrics::counter!("hotline_dialplan_reloads_total", "result" => "ok").increment(1);
                routing.send_replace(Arc::new(r));
            }
            Ok(Err(errors)) => {
                for e in &errors {
                    tracing::error!(error = %e, "dialplan reload refused");
                }
                metrics::counter!("hotline_dialplan_reloads_total", "result" => "refused")
                    .increment(1);
            }
            Err(e) => tracing::error!(error = %e, "dialplan reload failed"),
        }
    }
}

/// Bindings saved before the last stop, still live now.
async fn restore_registrations(store: &crate::store::Store, now_ms: u64) -> Vec<Binding> {
    let rows = match store.load_live_registrations(now_ms as i64).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load saved registrations; phones will re-register");
            return vec![];
        }
    };
    rows.into_iter()
        .filter_map(|r| {
            Some(Binding {
                aor: r.agent_id,
                contact: r.contact_uri,
                source: r.source.parse().ok()?,
                transport: r.transport,
                expires_at_ms: u64::try_from(r.expires_at).ok()?,
                call_id: r.call_id,
                cseq: u32::try_from(r.cseq).ok()?,
                user_agent: r.user_agent,
            })
        })
        .collect()
}

/// Write registrar changes through the batching writer (never blocks SIP).
async fn persist_registrations(
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Change>,
    writer: crate::store::StoreWriter,
) {
    while let Some(change) = changes.recv().await {
        let op = match change {
            Change::Saved(b) => {
                crate::store::WriteOp::SaveRegistration(crate::store::Registration {
                    agent_id: b.aor,
                    contact_uri: b.contact,
                    source: b.source.to_string(),
                    transport: b.transport,
                    expires_at: b.expires_at_ms as i64,
                    call_id: b.call_id,
                    cseq: i64::from(b.cseq),
                    user_agent: b.user_agent,
                })
            }
            Change::Removed { aor, contact } => crate::store::WriteOp::DeleteRegistration {
                agent_id: aor,
                contact_uri: contact,
            },
        };
        if let Err(e) = writer.try_send(op) {
            tracing::warn!(error = %e, "registration change not persisted");
        }
    }
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
