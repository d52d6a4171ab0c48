//! `POST /api/cases`: an agent registers a complaint (投诉) from the desk.
//!
//! The seed's complaint procedure promises handling within 5 working days;
//! the deadline is counted in [`REPORT_TZ`](super::reports::REPORT_TZ) over
//! Monday–Friday. The registering agent owns the case (首问负责制) unless a
//! supervisor names another owner.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{Datelike, TimeZone, Utc, Weekday};
use serde::Deserialize;

use super::auth::{Principal, Role};
use super::error::{parse_json, ApiError, ApiResult};
use super::reports::REPORT_TZ;
use super::ApiState;
use crate::store::{Case, CaseKind};

/// Working days a complaint must be handled within.
pub const COMPLAINT_WORKING_DAYS: u32 = 5;
/// The longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 4000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    pub customer_id: String,
    pub description: String,
    /// Responsible department, when already known.
    #[serde(default)]
    pub department: String,
    /// The call it was raised in (noted in the case history).
    #[serde(default)]
    pub call_id: Option<String>,
    /// Owner other than the caller of this endpoint (supervisors only).
    #[serde(default)]
    pub owner: Option<String>,
}

/// `now_ms` plus `days` working days (Mon–Fri) at the same local time.
pub fn add_working_days(now_ms: i64, days: u32) -> i64 {
    let Some(start) = Utc.timestamp_millis_opt(now_ms).single() else {
        return now_ms;
    };
    let mut t = start.with_timezone(&REPORT_TZ);
    let mut left = days;
    while left > 0 {
        t += chrono::Duration::days(1);
        if !matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    t.timestamp_millis()
}

/// `POST /api/cases` (agent, supervisor): 201 with the case.
pub async fn create(
    State(state): State<ApiState>,
    who: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Case>)> {
    who.require(&[Role::Agent, Role::Supervisor])?;
    let input: CaseInput = parse_json(&body)?;
    let description = input.description.trim();
    if description.is_empty() {
        return Err(ApiError::Invalid("description must not be empty".into()));
    }
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::Invalid(format!(
            "description is longer than {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    let owner = match input.owner.filter(|o| !o.trim().is_empty()) {
        Some(o) if who.is_supervisor() => o,
        Some(_) => {
            return Err(ApiError::Forbidden(
                "only a supervisor may register a case for someone else".into(),
            ))
        }
        None => who.id.clone(),
    };
    if state
        .store
        .get_customer(&input.customer_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "customer {:?} not found",
            input.customer_id
        )));
    }
    let now = state.now_ms();
    let case = Case {
        id: format!("case-{:016x}", rand::random::<u64>()),
        customer_id: input.customer_id,
        kind: CaseKind::Complaint,
        department: input.department.trim().to_string(),
        deadline: add_working_days(now, COMPLAINT_WORKING_DAYS),
        state: "open".into(),
        owner: Some(owner),
        description: description.to_string(),
        created_at: now,
        closed_at: None,
    };
    state.store.insert_case(&case).await?;
    let text = match &input.call_id {
        Some(call) => format!("registered during call {call}"),
        None => "registered".to_string(),
    };
    state
        .store
        .insert_case_event(&format!("{}-1", case.id), &case.id, now, &who.id, &text)
        .await?;
    Ok((StatusCode::CREATED, Json(case)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_working_days_skip_the_weekend() {
        // Thursday 2025-06-05 10:00 Shanghai → Thursday 2025-06-12 10:00.
        let thu = REPORT_TZ
            .with_ymd_and_hms(2025, 6, 5, 10, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        let due = REPORT_TZ
            .with_ymd_and_hms(2025, 6, 12, 10, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        assert_eq!(add_working_days(thu, 5), due);
        // Saturday → the next Friday.
        let sat = REPORT_TZ
            .with_ymd_and_hms(2025, 6, 7, 9, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        let fri = REPORT_TZ
            .with_ymd_and_hms(2025, 6, 13, 9, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        assert_eq!(add_working_days(sat, 5), fri);
    }
}
