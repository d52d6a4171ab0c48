//! Agent callbacks from the desk: preview dialing of a callback task (the
//! agent's phone first, then the customer) and the survey form the agent
//! fills in for the customer. The dialer task owns the tasks; these
//! handlers only ask it.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Principal, Role};
use super::calls::MAX_NOTES_LEN;
use super::error::{parse_json, ApiError, ApiResult, P};
use super::ApiState;
use crate::acd::AcdError;
use crate::call::campaign::{CallbackError, CampaignHandle};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyForm {
    /// The agent callback the answers were given in.
    pub call_id: String,
    /// Question key (`attitude`, `cleaned`, `fees_ok`, `satisfaction`) →
    /// the key of the chosen answer, as the IVR survey numbers them.
    #[serde(default)]
    pub answers: BTreeMap<String, u8>,
    #[serde(default)]
    pub remarks: String,
}

fn campaign(state: &ApiState) -> ApiResult<&CampaignHandle> {
    state.campaign.as_ref().ok_or_else(|| {
        ApiError::Conflict("the callback campaign is not enabled ([campaign] with a trunk)".into())
    })
}

fn callback_error(e: CallbackError) -> ApiError {
    match e {
        CallbackError::UnknownTask(_) => ApiError::NotFound(e.to_string()),
        CallbackError::UnknownCall { .. } | CallbackError::Task(_) => {
            ApiError::Conflict(e.to_string())
        }
        CallbackError::Agent(AcdError::UnknownAgent(a)) => {
            ApiError::Forbidden(format!("{a} is not an agent of any queue"))
        }
        CallbackError::Agent(AcdError::InvalidAgentState { agent, state }) => ApiError::Conflict(
            format!("agent {agent} is {state}; be ready with your phone registered"),
        ),
        CallbackError::Agent(other) => ApiError::Conflict(other.to_string()),
        CallbackError::NotYourCall(_) => ApiError::Forbidden(e.to_string()),
        CallbackError::BadAnswer(_) => ApiError::Invalid(e.to_string()),
        CallbackError::TrunkFull
        | CallbackError::NoAcd
        | CallbackError::Stopped
        | CallbackError::NotLeader => ApiError::Unavailable(e.to_string()),
    }
}

/// `POST /api/callback-tasks/{id}/call`: preview dialing. The logged-in
/// agent's registered phone rings first; once answered, the customer is
/// dialled through the trunk and the two are bridged and recorded.
pub async fn call(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if who.role != Role::Agent {
        return Err(ApiError::Forbidden(
            "only an agent can place a callback (their own phone is called)".into(),
        ));
    }
    let started = campaign(&state)?
        .call_task(&id, &who.id)
        .await
        .map_err(callback_error)?;
    Ok((StatusCode::ACCEPTED, Json(json!(started))))
}

/// `POST /api/callback-tasks/{id}/survey`: the agent's survey answers for
/// one of their callbacks. Dissatisfied answers open a case for the
/// department, exactly as the automated survey does.
pub async fn survey(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let form: SurveyForm = parse_json(&body)?;
    if form.remarks.chars().count() > MAX_NOTES_LEN {
        return Err(ApiError::Invalid(format!(
            "remarks are longer than {MAX_NOTES_LEN} characters"
        )));
    }
    let agent = match who.role {
        Role::Agent => Some(who.id.clone()),
        Role::Supervisor => None,
        Role::Admin => {
            return Err(ApiError::Forbidden(
                "admins configure; agents and supervisors record surveys".into(),
            ))
        }
    };
    let verdict = campaign(&state)?
        .submit_form(&id, &form.call_id, agent, form.answers, form.remarks)
        .await
        .map_err(callback_error)?;
    Ok(Json(json!(verdict)))
}
