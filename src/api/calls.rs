//! Call records: search, one call, its recording, the agent's disposition.

use std::path::{Component, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::{Principal, Role};
use super::error::{parse_json, ApiError, ApiResult, P, Q};
use super::ApiState;
use crate::events::Event;
use crate::store::{CallFilter, CallRecord};

/// `limit` when none is given.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    customer: Option<String>,
    agent: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

/// A time parameter: RFC 3339 (`2025-06-01T08:00:00+08:00`) or epoch milliseconds.
pub fn parse_time(name: &str, v: &str) -> ApiResult<i64> {
    let v = v.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "{name}: expected RFC 3339 (e.g. 2025-06-01T08:00:00+08:00) or epoch milliseconds, \
                 got {v:?} ({e})"
            ))
        })
}

/// A `limit` parameter in 1..=MAX_LIMIT.
pub fn parse_limit(v: Option<&str>) -> ApiResult<i64> {
    parse_limit_up_to(v, MAX_LIMIT)
}

/// A `limit` parameter in 1..=`max`; [`DEFAULT_LIMIT`] when not given.
pub fn parse_limit_up_to(v: Option<&str>, max: i64) -> ApiResult<i64> {
    let Some(v) = v else {
        return Ok(DEFAULT_LIMIT.min(max));
    };
    match v.trim().parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "limit: expected a number from 1 to {max}, got {v:?}"
        ))),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// `GET /api/calls`: newest first. An agent sees only calls they took.
pub async fn search(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<SearchQuery>,
) -> ApiResult<Json<Vec<CallRecord>>> {
    who.require(&[Role::Agent, Role::Supervisor])?;
    let mut agent = non_empty(q.agent);
    if who.role == Role::Agent {
        match &agent {
            Some(a) if *a != who.id => {
                return Err(ApiError::Forbidden(format!(
                    "an agent may list only their own calls (agent={})",
                    who.id
                )))
            }
            _ => agent = Some(who.id.clone()),
        }
    }
    let filter = CallFilter {
        customer_id: non_empty(q.customer),
        agent_id: agent,
        since: non_empty(q.since)
            .map(|v| parse_time("since", &v))
            .transpose()?,
        until: non_empty(q.until)
            .map(|v| parse_time("until", &v))
            .transpose()?,
        limit: parse_limit(q.limit.as_deref())?,
    };
    Ok(Json(state.store.search_calls(&filter).await?))
}

/// The call, if `who` may see it: 404 when unknown, 403 when it is another agent's.
async fn visible_call(state: &ApiState, who: &Principal, id: &str) -> ApiResult<CallRecord> {
    who.require(&[Role::Agent, Role::Supervisor])?;
    let call = state
        .store
        .get_call(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("call {id:?} not found")))?;
    if who.role == Role::Agent && call.agent_id.as_deref() != Some(who.id.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "call {id:?} was not taken by agent {}",
            who.id
        )));
    }
    Ok(call)
}

/// `GET /api/calls/{id}`.
pub async fn one(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
) -> ApiResult<Json<CallWithLegs>> {
    let record = visible_call(&state, &who, &id).await?;
    let legs = state.store.call_legs(&id).await?;
    Ok(Json(CallWithLegs { record, legs }))
}

/// One call with every phone rung for it (offers, consultation, monitoring,
/// transfer), each with its offered, answered and ended times.
#[derive(Debug, serde::Serialize)]
pub struct CallWithLegs {
    #[serde(flatten)]
    pub record: CallRecord,
    pub legs: Vec<crate::store::CallLeg>,
}

/// Where a recording path stored in a call row is on disk. Relative paths
/// are under the recordings directory and may not climb out of it.
pub fn recording_path(dir: &std::path::Path, stored: &str) -> Option<PathBuf> {
    let p = std::path::Path::new(stored);
    if stored.is_empty() {
        return None;
    }
    if p.is_absolute() {
        return Some(p.to_path_buf());
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    Some(dir.join(p))
}

/// `GET /api/calls/{id}/recording`: the WAV (Range requests supported).
pub async fn recording(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    req: Request,
) -> ApiResult<Response> {
    let call = visible_call(&state, &who, &id).await?;
    let stored = call
        .recording
        .ok_or_else(|| ApiError::NotFound(format!("call {id:?} has no recording")))?;
    let path = recording_path(&state.recordings_dir, &stored)
        .ok_or_else(|| ApiError::NotFound(format!("call {id:?} has no usable recording path")))?;
    if !tokio::fs::metadata(&path)
        .await
        .map(|m| m.is_file())
        .unwrap_or(false)
    {
        return Err(ApiError::NotFound(format!(
            "the recording of call {id:?} is missing on disk"
        )));
    }
    let mut serve = tower_http::services::ServeFile::new(&path);
    let res = serve
        .try_call(req)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read recording: {e}")))?;
    let (mut parts, body) = res.into_parts();
    if parts.status.is_success() {
        parts.headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("audio/wav"),
        );
        if let Ok(v) = header::HeaderValue::from_str(&format!(
            "inline; filename=\"{}.wav\"",
            id.replace(['"', '\\'], "_")
        )) {
            parts.headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(Response::from_parts(parts, Body::new(body)).into_response())
}

/// Body of `POST /api/calls/{id}/disposition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispositionInput {
    pub disposition: String,
    #[serde(default)]
    pub notes: String,
}

/// The longest disposition and notes accepted.
pub const MAX_DISPOSITION_LEN: usize = 64;
pub const MAX_NOTES_LEN: usize = 4000;

/// `POST /api/calls/{id}/disposition`: the call's agent or a supervisor
/// records the outcome. 409 while the call is still going on (its end
/// record would overwrite it).
pub async fn disposition(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<CallRecord>> {
    let call = visible_call(&state, &who, &id).await?;
    let input: DispositionInput = parse_json(&body)?;
    let disposition = input.disposition.trim();
    if disposition.is_empty() {
        return Err(ApiError::Invalid("disposition must not be empty".into()));
    }
    if disposition.chars().count() > MAX_DISPOSITION_LEN {
        return Err(ApiError::Invalid(format!(
            "disposition is longer than {MAX_DISPOSITION_LEN} characters"
        )));
    }
    if input.notes.chars().count() > MAX_NOTES_LEN {
        return Err(ApiError::Invalid(format!(
            "notes are longer than {MAX_NOTES_LEN} characters"
        )));
    }
    if call.ended_at.is_none() {
        return Err(ApiError::Conflict(format!(
            "call {id:?} is still in progress; record the disposition after it ends"
        )));
    }
    state
        .store
        .set_call_disposition(&id, disposition, &input.notes)
        .await?;
    state.events.publish(Event::CallDisposition {
        call_id: id.clone(),
        agent: call.agent_id.clone(),
        disposition: disposition.to_string(),
    });
    let call = state
        .store
        .get_call(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("call {id:?} not found")))?;
    Ok(Json(call))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn times_and_limits() {
        assert_eq!(parse_time("since", "1000").unwrap(), 1000);
        assert_eq!(parse_time("since", "1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(
            parse_time("since", "1970-01-01T08:00:01+08:00").unwrap(),
            1000
        );
        assert!(parse_time("since", "yesterday").is_err());
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("5")).unwrap(), 5);
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("1001")).is_err());
        assert!(parse_limit(Some("x")).is_err());
    }

    #[test]
    fn recording_paths_stay_in_the_directory() {
        let dir = Path::new("/rec");
        assert_eq!(
            recording_path(dir, "2025/06/c1.wav").unwrap(),
            Path::new("/rec/2025/06/c1.wav")
        );
        assert_eq!(
            recording_path(dir, "/abs/c1.wav").unwrap(),
            Path::new("/abs/c1.wav")
        );
        assert!(recording_path(dir, "../etc/passwd").is_none());
        assert!(recording_path(dir, "a/../../b.wav").is_none());
        assert!(recording_path(dir, "").is_none());
    }
}

/// Where to transfer a call.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum TransferTo {
    Agent(String),
    Queue(String),
    /// An outside number on the allow-list (`[acd] transfer_numbers`).
    Number(String),
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    pub to: TransferTo,
    /// What is already known, so the next agent does not ask again.
    #[serde(default)]
    pub note: String,
}

/// Transfer to an outside number: the call's task rings it and moves the
/// caller over when it answers (the agent stays until then).
async fn transfer_out(
    state: &ApiState,
    acd: &crate::api::AcdHandle,
    who: &Principal,
    from: Option<String>,
    id: String,
    number: String,
    note: String,
) -> ApiResult<Json<serde_json::Value>> {
    if !crate::config::number_allowed(&state.transfer_numbers, &number) {
        return Err(ApiError::Invalid(format!(
            "{number:?} is not on the transfer allow-list"
        )));
    }
    let connected = acd
        .connected_agent(&id)
        .await
        .ok_or_else(|| ApiError::Conflict(format!("call {id:?} is not live with an agent")))?;
    if from.as_ref().is_some_and(|f| *f != connected) {
        return Err(ApiError::Conflict(format!(
            "call {id:?} is not connected to {}",
            who.id
        )));
    }
    let msg = crate::call::QueueMsg::TransferOut {
        number: number.clone(),
        note: note.clone(),
    };
    if !acd.forward(&id, msg).await {
        return Err(ApiError::NotFound(format!("call {id:?} is not live")));
    }
    Ok(Json(serde_json::json!({
        "call_id": id,
        "from_agent": connected,
        "to_number": number,
        "note": note,
    })))
}

/// `POST /api/calls/{id}/transfer`: blind transfer of a live call to an agent
/// or a queue with a note (the connected agent, or a supervisor).
pub async fn transfer(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let input: TransferInput = parse_json(&body)?;
    if input.note.chars().count() > MAX_NOTES_LEN {
        return Err(ApiError::Invalid(format!(
            "note is longer than {MAX_NOTES_LEN} characters"
        )));
    }
    let from = match who.role {
        Role::Agent => Some(who.id.clone()),
        Role::Supervisor => None,
        Role::Admin => {
            return Err(ApiError::Forbidden(
                "admins configure; agents and supervisors transfer calls".into(),
            ))
        }
    };
    let acd = state
        .acd
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("ACD not running".into()))?;
    let to = match input.to {
        TransferTo::Agent(a) => crate::acd::TransferTarget::Agent(a),
        TransferTo::Queue(q) => crate::acd::TransferTarget::Queue(q),
        TransferTo::Number(number) => {
            return transfer_out(&state, acd, &who, from, id, number, input.note).await
        }
    };
    match acd.transfer(&id, from, to, input.note.clone()).await {
        Ok(from_agent) => Ok(Json(serde_json::json!({
            "call_id": id,
            "from_agent": from_agent,
            "note": input.note,
        }))),
        Err(e) => Err(match e {
            crate::acd::AcdError::UnknownCall(_) => {
                ApiError::NotFound(format!("call {id:?} is not live"))
            }
            crate::acd::AcdError::NotConnected { .. } => {
                ApiError::Conflict(format!("call {id:?} is not connected to {}", who.id))
            }
            other => ApiError::Invalid(other.to_string()),
        }),
    }
}
