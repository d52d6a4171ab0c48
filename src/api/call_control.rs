//! Steering a live call: hold and resume from the desk, attended transfer
//! (consult, complete, cancel) and a supervisor's listen / whisper / barge. The ACD checks who may do what;
//! the call's own task rings the phones and rearranges the media.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Principal, Role};
use super::calls::MAX_NOTES_LEN;
use super::error::{parse_json, ApiError, ApiResult, P};
use super::ApiState;
use crate::acd::AcdError;
use crate::call::{MonitorMode, QueueMsg};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultInput {
    /// The agent to consult.
    pub agent: String,
    /// What is already known, for the consulted agent.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultEndInput {
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorInput {
    pub mode: MonitorMode,
    /// The phone to call in (a registered SIP user); the supervisor's own id
    /// when absent.
    #[serde(default)]
    pub extension: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldInput {
    /// true: the caller hears music and the agent no one; false: resume.
    pub hold: bool,
}

fn check_note(note: &str) -> ApiResult<()> {
    if note.chars().count() > MAX_NOTES_LEN {
        return Err(ApiError::Invalid(format!(
            "note is longer than {MAX_NOTES_LEN} characters"
        )));
    }
    Ok(())
}

/// Agents act on their own calls; supervisors on any; admins configure.
fn acting_agent(who: &Principal) -> ApiResult<Option<String>> {
    match who.role {
        Role::Agent => Ok(Some(who.id.clone())),
        Role::Supervisor => Ok(None),
        Role::Admin => Err(ApiError::Forbidden(
            "admins configure; agents and supervisors handle calls".into(),
        )),
    }
}

fn acd_error(id: &str, e: AcdError) -> ApiError {
    match e {
        AcdError::UnknownCall(_) => ApiError::NotFound(format!("call {id:?} is not live")),
        AcdError::NotConnected { agent, .. } if agent.is_empty() => {
            ApiError::Conflict(format!("call {id:?} is not connected to an agent"))
        }
        AcdError::NotConnected { agent, .. } => {
            ApiError::Conflict(format!("call {id:?} is not connected to {agent}"))
        }
        AcdError::Consult { reason, .. } => ApiError::Conflict(reason),
        AcdError::InvalidAgentState { agent, state } => {
            ApiError::Conflict(format!("agent {agent} is {state}"))
        }
        other => ApiError::Invalid(other.to_string()),
    }
}

/// `POST /api/calls/{id}/hold`: the connected agent holds or resumes the
/// caller from the desk (a browser softphone has no hold key of its own; a
/// SIP phone may use either). Hold time counts on the call record.
pub async fn hold(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: HoldInput = parse_json(&body)?;
    let by = acting_agent(&who)?;
    let acd = state.acd()?;
    let Some(agent) = acd.connected_agent(&id).await else {
        return Err(ApiError::Conflict(format!(
            "call {id:?} is not live with an agent"
        )));
    };
    if by.as_ref().is_some_and(|me| *me != agent) {
        return Err(ApiError::Forbidden(format!(
            "call {id:?} is connected to {agent}, not to you"
        )));
    }
    if !acd.forward(&id, QueueMsg::Hold { held: input.hold }).await {
        return Err(ApiError::NotFound(format!("call {id:?} is not live")));
    }
    Ok(Json(
        json!({ "call_id": id, "agent": agent, "held": input.hold }),
    ))
}

/// `POST /api/calls/{id}/consult`: the caller holds while the connected
/// agent's colleague is rung; they talk when it answers.
pub async fn consult(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: ConsultInput = parse_json(&body)?;
    check_note(&input.note)?;
    let from = acting_agent(&who)?;
    if !state.agents.iter().any(|a| a.id == input.agent) {
        return Err(ApiError::Invalid(format!(
            "unknown agent {:?}",
            input.agent
        )));
    }
    let from = state
        .acd()?
        .consult(&id, from, &input.agent, input.note.clone())
        .await
        .map_err(|e| acd_error(&id, e))?;
    Ok(Json(json!({
        "call_id": id,
        "from_agent": from,
        "consulting": input.agent,
        "note": input.note,
    })))
}

async fn end_consult(
    state: ApiState,
    who: Principal,
    id: String,
    body: Bytes,
    complete: bool,
) -> ApiResult<Json<Value>> {
    let input: ConsultEndInput = if body.is_empty() {
        ConsultEndInput::default()
    } else {
        parse_json(&body)?
    };
    check_note(&input.note)?;
    let from = acting_agent(&who)?;
    let agent = state
        .acd()?
        .end_consult(&id, from, complete, input.note)
        .await
        .map_err(|e| acd_error(&id, e))?;
    Ok(Json(json!({
        "call_id": id,
        "consulted": agent,
        "transferred": complete,
    })))
}

/// `POST /api/calls/{id}/consult/complete`: the caller goes to the
/// consulted agent; the first agent's leg ends.
pub async fn consult_complete(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    end_consult(state, who, id, body, true).await
}

/// `POST /api/calls/{id}/consult/cancel`: back to the first agent.
pub async fn consult_cancel(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    end_consult(state, who, id, body, false).await
}

/// `POST /api/calls/{id}/monitor`: call the supervisor's registered phone
/// into the call (listen, whisper or barge); again with another mode to switch.
pub async fn monitor(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if who.role != Role::Supervisor {
        return Err(ApiError::Forbidden(
            "only supervisors listen, whisper or barge".into(),
        ));
    }
    let input: MonitorInput = parse_json(&body)?;
    let extension = input.extension.unwrap_or_else(|| who.id.clone());
    let sip = state
        .sip
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("SIP not running".into()))?;
    if sip.lookup(&extension).await.is_empty() {
        return Err(ApiError::Conflict(format!(
            "{extension} has no registered phone to call in"
        )));
    }
    let acd = state.acd()?;
    if acd.connected_agent(&id).await.is_none() {
        return Err(ApiError::Conflict(format!(
            "call {id:?} is not live with an agent"
        )));
    }
    let msg = QueueMsg::Monitor {
        supervisor: extension.clone(),
        mode: input.mode,
    };
    if !acd.forward(&id, msg).await {
        return Err(ApiError::NotFound(format!("call {id:?} is not live")));
    }
    Ok(Json(json!({
        "call_id": id,
        "extension": extension,
        "mode": input.mode.name(),
    })))
}

/// `POST /api/calls/{id}/monitor/stop`: hang up the supervisor's leg.
pub async fn monitor_stop(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    if who.role != Role::Supervisor {
        return Err(ApiError::Forbidden(
            "only supervisors listen, whisper or barge".into(),
        ));
    }
    if !state.acd()?.forward(&id, QueueMsg::MonitorStop).await {
        return Err(ApiError::NotFound(format!("call {id:?} is not live")));
    }
    Ok(Json(json!({ "call_id": id, "stopped": true })))
}
