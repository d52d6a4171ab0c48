//! HTTP API (axum): health, metrics, the REST endpoints of the agent desk,
//! the supervisor wallboard and the ERP, and the live-event WebSocket.
//!
//! Every `/api/*` endpoint but `POST /api/login` and `GET /api/openapi.json`
//! needs `Authorization: Bearer TOKEN`; roles are checked per endpoint (see
//! [`auth::Role`]). Errors are JSON `{"error", "code"}` ([`error::ApiError`]).
//! The routes are listed once in [`routes`], which builds the router and is
//! checked against the OpenAPI document ([`openapi::document`]).

pub mod acd;
pub mod auth;
mod call_control;
mod callback_calls;
mod callback_tasks;
mod calls;
mod campaign;
mod cases;
mod customers;
pub mod error;
mod live;
pub mod live_calls;
pub mod openapi;
pub mod reports;
pub mod tls;
pub mod work_orders;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::events::EventHub;
use crate::store::Store;

pub use acd::{AcdHandle, StateRequest};
pub use auth::{Auth, Principal, Role};
pub use error::{ApiError, ApiResult};

/// An agent as configured (`[[agents]]`), for `GET /api/agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub skills: Vec<String>,
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: PrometheusHandle,
    pub store: Store,
    pub auth: Arc<Auth>,
    pub events: EventHub,
    /// The ACD task; `None` when it is not running (those endpoints answer 503).
    pub acd: Option<AcdHandle>,
    pub agents: Arc<Vec<AgentInfo>>,
    /// Where recordings are; relative `calls.recording` paths are resolved here.
    pub recordings_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub max_body_bytes: usize,
    /// The SIP server, to check a supervisor's phone before calling it in.
    pub sip: Option<crate::sip::SipHandle>,
    /// Served over HTTPS: `/sip` is `wss:`.
    pub https: bool,
    /// Outside numbers a call may be transferred to (`[acd] transfer_numbers`).
    pub transfer_numbers: Arc<Vec<String>>,
    /// Calling hours and windows (second callbacks are planned with them).
    pub callback_rules: Arc<crate::campaign::CallbackRules>,
    /// Calls in progress, for the first message of `/api/events`.
    pub live_calls: live_calls::LiveCalls,
    /// The callback dialer, when `[campaign]` runs.
    pub campaign: Option<crate::call::campaign::CampaignHandle>,
    /// `[campaign] mode` when a campaign is configured and enabled.
    pub campaign_mode: Option<Arc<str>>,
}

impl ApiState {
    /// State for `config`'s accounts, agents and API settings.
    pub fn new(
        config: &Config,
        metrics: PrometheusHandle,
        store: Store,
        events: EventHub,
        acd: Option<AcdHandle>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // Subscribed before anything can publish through this state.
        let live_calls = live_calls::LiveCalls::follow(&events, clock.clone());
        Self {
            metrics,
            store,
            auth: Arc::new(Auth::from_config(config, clock.clone())),
            events,
            acd,
            agents: Arc::new(
                config
                    .agents
                    .iter()
                    .map(|a| AgentInfo {
                        id: a.id.clone(),
                        name: a.name.clone(),
                        skills: a.skills.clone(),
                    })
                    .collect(),
            ),
            recordings_dir: config.resolve(&config.recordings.dir),
            live_calls,
            clock,
            max_body_bytes: config.api.max_body_bytes,
            https: config.http.tls_cert.is_some(),
            sip: None,
            transfer_numbers: Arc::new(config.acd.transfer_numbers.clone()),
            callback_rules: Arc::new(config.callback_rules()),
            campaign: None,
            campaign_mode: config
                .campaign
                .as_ref()
                .filter(|c| c.enabled)
                .map(|c| Arc::from(c.mode.as_str())),
        }
    }

    /// With the callback dialer (agent callbacks from the desk need it).
    pub fn with_campaign(
        mut self,
        campaign: Option<crate::call::campaign::CampaignHandle>,
    ) -> Self {
        self.campaign = campaign;
        self
    }

    /// With the SIP server (listen / whisper / barge need it).
    pub fn with_sip(mut self, sip: crate::sip::SipHandle) -> Self {
        self.sip = Some(sip);
        self
    }

    /// The ACD handle, or 503 when the ACD is not running.
    pub(crate) fn acd(&self) -> ApiResult<&AcdHandle> {
        self.acd
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("ACD not running".into()))
    }

    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX)
    }
}

/// Every route: (method, path as in OpenAPI, handler).
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    vec![
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/api/openapi.json", get(openapi::serve)),
        (Method::POST, "/api/login", post(live::login)),
        (Method::POST, "/api/logout", post(live::logout)),
        (Method::GET, "/api/me", get(live::me)),
        (Method::GET, "/api/customers", get(customers::lookup)),
        (Method::POST, "/api/customers", post(customers::upsert)),
        (Method::GET, "/api/customers/{id}", get(customers::record)),
        (Method::GET, "/api/calls", get(calls::search)),
        (Method::GET, "/api/calls/{id}", get(calls::one)),
        (
            Method::GET,
            "/api/calls/{id}/recording",
            get(calls::recording),
        ),
        (
            Method::POST,
            "/api/calls/{id}/disposition",
            post(calls::disposition),
        ),
        (
            Method::POST,
            "/api/calls/{id}/transfer",
            post(calls::transfer),
        ),
        (
            Method::POST,
            "/api/calls/{id}/consult",
            post(call_control::consult),
        ),
        (
            Method::POST,
            "/api/calls/{id}/consult/complete",
            post(call_control::consult_complete),
        ),
        (
            Method::POST,
            "/api/calls/{id}/consult/cancel",
            post(call_control::consult_cancel),
        ),
        (
            Method::POST,
            "/api/calls/{id}/monitor",
            post(call_control::monitor),
        ),
        (
            Method::POST,
            "/api/calls/{id}/hold",
            post(call_control::hold),
        ),
        (
            Method::POST,
            "/api/calls/{id}/monitor/stop",
            post(call_control::monitor_stop),
        ),
        (Method::POST, "/api/work-orders", post(work_orders::import)),
        (
            Method::GET,
            "/api/callback-tasks",
            get(callback_tasks::list),
        ),
        (
            Method::GET,
            "/api/callback-requests",
            get(live::callback_requests),
        ),
        (Method::GET, "/api/agents", get(live::agents)),
        (
            Method::POST,
            "/api/agents/{id}/state",
            post(live::set_state),
        ),
        (Method::GET, "/api/queues", get(live::queues)),
        (Method::GET, "/api/events", get(ws::events)),
        (
            Method::POST,
            "/api/callback-tasks/{id}/call",
            post(callback_calls::call),
        ),
        (
            Method::POST,
            "/api/callback-tasks/{id}/survey",
            post(callback_calls::survey),
        ),
        (Method::GET, "/api/cases", get(campaign::list)),
        (Method::POST, "/api/cases/{id}/fix", post(campaign::fix)),
        (
            Method::GET,
            "/api/reports/exceptions",
            get(campaign::exceptions),
        ),
        (Method::POST, "/api/cases", post(cases::create)),
        (
            Method::GET,
            "/api/reports/daily",
            get(reports::daily_report),
        ),
        (
            Method::GET,
            "/api/reports/weekly",
            get(reports::weekly_report),
        ),
        (
            Method::GET,
            "/api/reports/monthly",
            get(reports::monthly_report),
        ),
        (
            Method::GET,
            "/api/reports/inbound",
            get(reports::inbound_report),
        ),
        (
            Method::GET,
            "/api/reports/complaints",
            get(reports::complaints_report),
        ),
    ]
}

/// The HTTP application.
pub fn router(state: ApiState) -> Router {
    let limit = state.max_body_bytes;
    let mut merged: Vec<(&'static str, MethodRouter<ApiState>)> = Vec::new();
    for (_, path, route) in routes() {
        // Several methods on one path: merge them into one MethodRouter.
        match merged.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => {
                let taken = std::mem::take(existing);
                *existing = taken.merge(route);
            }
            None => merged.push((path, route)),
        }
    }
    let mut app = Router::new();
    for (path, route) in merged {
        app = app.route(path, route);
    }
    // SIP over WebSocket for browser softphones (RFC 7118): same origin and
    // port as the desk page (wss: under HTTPS). Needs the peer address: serve
    // with `into_make_service_with_connect_info::<SocketAddr>()`.
    let sip_ws = state.sip.as_ref().map(|sip| {
        Router::new()
            .route("/sip", get(crate::sip::ws::upgrade))
            .with_state(sip.websocket(state.https))
    });
    // The web pages (outside /api, so not in the OpenAPI document).
    let app = app
        .merge(crate::web::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    match sip_ws {
        Some(ws) => app.merge(ws),
        None => app,
    }
}

/// Publish `QueueStats` for every queue whose numbers changed, every `every`,
/// while someone listens. Does nothing without the ACD.
pub fn spawn_queue_stats(state: &ApiState, every: Duration) {
    let Some(acd) = state.acd.clone() else {
        return;
    };
    let events = state.events.clone();
    tokio::spawn(async move {
        let mut last: std::collections::HashMap<String, crate::events::Event> =
            std::collections::HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if events.subscribers() == 0 {
                last.clear();
                continue;
            }
            let snap = acd.snapshot().await;
            for q in &snap.queues {
                let ev = crate::events::Event::queue_stats(q);
                if last.get(&q.name) != Some(&ev) {
                    last.insert(q.name.clone(), ev.clone());
                    events.publish(ev);
                }
            }
        }
    });
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed on this path".into())
}

async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
