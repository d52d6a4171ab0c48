//! Sessions, agents and queues (live state from the ACD), callback requests.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{request::Parts, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::acd::StateRequest;
use super::auth::{bearer_token, Principal, Role};
use super::calls::parse_limit;
use super::error::{parse_json, ApiError, ApiResult, P, Q};
use super::ApiState;
use crate::acd::{AcdError, AgentSnapshot, Snapshot};
use crate::events::agent_state_parts;
use crate::store::CallbackRequestRow;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub id: String,
    pub password: String,
}

#[derive(Debug, Serialize)]
pub struct LoginOutput {
    pub token: String,
    pub role: Role,
    pub id: String,
    pub name: String,
    /// Epoch ms.
    pub expires_at_ms: u64,
}

/// `POST /api/login`.
pub async fn login(State(state): State<ApiState>, body: Bytes) -> ApiResult<Json<LoginOutput>> {
    let input: LoginInput = parse_json(&body)?;
    let login = state.auth.login(&input.id, &input.password).map_err(|e| {
        tracing::warn!(user = %input.id, "API login refused");
        ApiError::from(e)
    })?;
    Ok(Json(LoginOutput {
        token: login.token,
        role: login.principal.role,
        id: login.principal.id,
        name: login.principal.name,
        expires_at_ms: login.principal.expires_at_ms,
    }))
}

/// `POST /api/logout`: the token stops working. 204.
pub async fn logout(State(state): State<ApiState>, parts: Parts) -> ApiResult<StatusCode> {
    let token = bearer_token(&parts)?;
    if state.auth.logout(token) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Unauthorized(
            "invalid or expired token; log in again".into(),
        ))
    }
}

/// `GET /api/me`.
pub async fn me(who: Principal) -> Json<Principal> {
    Json(who)
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    limit: Option<String>,
}

/// States of a callback request.
pub const CALLBACK_STATES: &[&str] = &["pending", "done", "cancelled"];

/// `GET /api/callback-requests?state=pending|done|cancelled|all` (supervisor).
pub async fn callback_requests(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<CallbackQuery>,
) -> ApiResult<Json<Vec<CallbackRequestRow>>> {
    who.require(&[Role::Supervisor])?;
    let wanted = q.state.unwrap_or_else(|| "pending".into());
    let filter = match wanted.as_str() {
        "all" => None,
        s if CALLBACK_STATES.contains(&s) => Some(s),
        other => {
            return Err(ApiError::BadRequest(format!(
                "state: expected pending, done, cancelled or all, got {other:?}"
            )))
        }
    };
    let limit = parse_limit(q.limit.as_deref())?;
    Ok(Json(
        state
            .store
            .callback_requests_by_state(filter, limit)
            .await?,
    ))
}

/// One configured agent with the ACD's view of them (`null`s without the ACD).
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub skills: Vec<String>,
    /// `ready`, `not_ready`, `on_call`, ... or null when the ACD is not running.
    pub state: Option<String>,
    pub reason: Option<String>,
    pub since_ms: Option<u64>,
    pub registered: Option<bool>,
    pub current_call: Option<String>,
    pub answered_today: Option<u32>,
}

/// Configured agents merged with the snapshot.
pub fn agent_views(state: &ApiState, snap: Option<&Snapshot>) -> Vec<AgentView> {
    state
        .agents
        .iter()
        .map(|a| {
            let live: Option<&AgentSnapshot> =
                snap.and_then(|s| s.agents.iter().find(|x| x.id == a.id));
            let (name, reason) = match live {
                Some(l) => {
                    let (n, r) = agent_state_parts(&l.state);
                    (Some(n.to_string()), r)
                }
                None if snap.is_some() => (Some("offline".to_string()), None),
                None => (None, None),
            };
            AgentView {
                id: a.id.clone(),
                name: a.name.clone(),
                skills: a.skills.clone(),
                state: name,
                reason,
                since_ms: live.map(|l| l.since_ms),
                registered: live.map(|l| l.registered),
                current_call: live.and_then(|l| l.current_call.clone()),
                answered_today: live.map(|l| l.answered_today),
            }
        })
        .collect()
}

/// `GET /api/agents`: every configured agent with their live state.
pub async fn agents(State(state): State<ApiState>, _who: Principal) -> Json<Vec<AgentView>> {
    let snap = match &state.acd {
        Some(acd) => Some(acd.snapshot().await),
        None => None,
    };
    Json(agent_views(&state, snap.as_ref()))
}

/// The longest not-ready reason accepted.
pub const MAX_REASON_LEN: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateInput {
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/agents/{id}/state` (the agent themself or a supervisor).
pub async fn set_state(
    State(state): State<ApiState>,
    who: Principal,
    P(agent): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if !(who.is_supervisor() || (who.role == Role::Agent && who.id == agent)) {
        return Err(ApiError::Forbidden(
            "only the agent themself or a supervisor may change an agent's state".into(),
        ));
    }
    if !state.agents.iter().any(|a| a.id == agent) {
        return Err(ApiError::NotFound(format!("agent {agent:?} not found")));
    }
    let input: StateInput = parse_json(&body)?;
    let reason = input
        .reason
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::Invalid(format!(
            "reason is longer than {MAX_REASON_LEN} characters"
        )));
    }
    let req = match input.state.as_str() {
        "ready" => StateRequest::Ready,
        "not_ready" => StateRequest::NotReady {
            reason: if reason.is_empty() {
                "not ready".into()
            } else {
                reason
            },
        },
        "logout" => StateRequest::Logout,
        other => {
            return Err(ApiError::Invalid(format!(
                "state: expected \"ready\", \"not_ready\" or \"logout\", got {other:?}"
            )))
        }
    };
    let acd = state.acd()?;
    let new_state = acd.set_agent_state(&agent, req).await.map_err(acd_error)?;
    // The ACD task publishes the AgentState event itself.
    let since_ms = state.clock.now_ms();
    let (name, reason) = agent_state_parts(&new_state);
    Ok(Json(json!({
        "agent": agent,
        "state": name,
        "reason": reason,
        "since_ms": since_ms,
    })))
}

fn acd_error(e: AcdError) -> ApiError {
    match e {
        AcdError::UnknownAgent(_) | AcdError::UnknownCall(_) | AcdError::UnknownQueue(_) => {
            ApiError::NotFound(e.to_string())
        }
        _ => ApiError::Conflict(e.to_string()),
    }
}

/// `GET /api/queues`: the wallboard snapshot (queues and agents).
pub async fn queues(State(state): State<ApiState>, _who: Principal) -> ApiResult<Json<Snapshot>> {
    Ok(Json(state.acd()?.snapshot().await))
}
