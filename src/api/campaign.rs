//! The callback campaign's closed loop (闭环) over HTTP: dissatisfied cases,
//! the department manager's fix (which schedules the second callback), and
//! the weekly exception summary (每周五汇总上周回访异常).

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::auth::{Principal, Role};
use super::calls::parse_limit;
use super::error::{parse_json, ApiError, ApiResult, P, Q};
use super::ApiState;
use crate::campaign::{plan_second, weekly_exceptions, ExceptionCase, RegionExceptions, WeekRange};
use crate::store::{CallbackTaskRow, CaseEventRow, CaseRow};

/// Case states of the closed loop: `open` (waiting for the department),
/// `resolved` (fix recorded, second callback scheduled), `closed` (a
/// callback found the customer satisfied).
pub const CASE_STATES: &[&str] = &["open", "investigating", "resolved", "closed"];

#[derive(Debug, Deserialize)]
pub struct CasesQuery {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<String>,
}

/// `GET /api/cases?state=&kind=&limit=` (supervisor, admin).
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<CasesQuery>,
) -> ApiResult<Json<Vec<CaseRow>>> {
    who.require(&[Role::Supervisor, Role::Admin])?;
    let wanted = q.state.as_deref().filter(|s| *s != "all");
    if let Some(s) = wanted {
        if !CASE_STATES.contains(&s) {
            return Err(ApiError::BadRequest(format!(
                "state: expected one of {CASE_STATES:?} or all, got {s:?}"
            )));
        }
    }
    if let Some(k) = q.kind.as_deref() {
        if !["complaint", "dissatisfied"].contains(&k) {
            return Err(ApiError::BadRequest(format!(
                "kind: expected complaint or dissatisfied, got {k:?}"
            )));
        }
    }
    let limit = parse_limit(q.limit.as_deref())?;
    Ok(Json(
        state
            .store
            .list_cases(q.kind.as_deref(), wanted, limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixInput {
    /// What the department did (整改结果).
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct FixResult {
    pub case: CaseRow,
    pub events: Vec<CaseEventRow>,
    /// The second callback task now scheduled.
    pub second_task: String,
    pub second_due_at: i64,
}

const MAX_FIX_LEN: usize = 4000;

/// `POST /api/cases/{id}/fix` `{"fix": "..."}` (supervisor, admin): record
/// the department's fix and schedule the second callback (二次回访).
pub async fn fix(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<FixResult>> {
    who.require(&[Role::Supervisor, Role::Admin])?;
    let input: FixInput = parse_json(&body)?;
    let text = input.fix.trim();
    if text.is_empty() || text.chars().count() > MAX_FIX_LEN {
        return Err(ApiError::Invalid(format!(
            "fix: expected 1 to {MAX_FIX_LEN} characters"
        )));
    }
    let case = state
        .store
        .get_case_row(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id:?} not found")))?;
    if case.kind != "dissatisfied" {
        return Err(ApiError::Conflict(
            "only dissatisfied callback cases get a second callback".into(),
        ));
    }
    if case.state != "open" {
        return Err(ApiError::Conflict(format!(
            "case is {}; a fix is recorded on an open case",
            case.state
        )));
    }
    let now = state.now_ms();
    let at = Utc.timestamp_millis_opt(now).single().unwrap_or_default();
    let plan = plan_second(&case.region, at, &state.callback_rules)
        .ok_or_else(|| ApiError::Invalid("no calling day ahead for the second callback".into()))?;
    // One second callback per fix: a case fixed again (still dissatisfied
    // after the last one) gets a new task.
    let task_id = format!("second-{}-{now:x}", case.id);
    let task = CallbackTaskRow {
        id: task_id.clone(),
        work_order: case.work_order.clone().unwrap_or_default(),
        customer_id: case.customer_id.clone(),
        kind: "second".into(),
        window_start: plan.window_start.timestamp_millis(),
        window_end: plan.window_end.timestamp_millis(),
        deadline: plan.deadline.timestamp_millis(),
        due_at: plan.first_due.timestamp_millis(),
        created_at: now,
    };
    let fixed = state
        .store
        .record_case_fix(&case.id, &who.id, &format!("整改: {text}"), now, &task)
        .await?;
    if !fixed {
        return Err(ApiError::Conflict("the case changed meanwhile".into()));
    }
    let case = state
        .store
        .get_case_row(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id:?} not found")))?;
    let events = state.store.case_events(&id).await?;
    Ok(Json(FixResult {
        case,
        events,
        second_task: task_id,
        second_due_at: task.due_at,
    }))
}

#[derive(Debug, Deserialize)]
pub struct WeekQuery {
    pub week: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegionLine {
    pub region: String,
    #[serde(flatten)]
    pub counts: RegionExceptions,
}

#[derive(Debug, Serialize)]
pub struct ExceptionReport {
    /// ISO week, e.g. 2026-W47.
    pub week: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub regions: Vec<RegionLine>,
    pub total: RegionExceptions,
}

/// "YYYY-Www" → its Monday.
fn parse_week(s: &str) -> Option<NaiveDate> {
    let (y, w) = s.split_once("-W")?;
    NaiveDate::from_isoywd_opt(y.parse().ok()?, w.parse().ok()?, Weekday::Mon)
}

/// `GET /api/reports/exceptions?week=YYYY-Www` (supervisor, admin): per
/// region, dissatisfied cases opened, fixed and still open that week
/// (default: last week, what Friday's summary covers).
pub async fn exceptions(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<WeekQuery>,
) -> ApiResult<Json<ExceptionReport>> {
    who.require(&[Role::Supervisor, Role::Admin])?;
    let tz = state.callback_rules.zone;
    let now = Utc
        .timestamp_millis_opt(state.now_ms())
        .single()
        .unwrap_or_default();
    let week = match q.week.as_deref() {
        Some(w) => {
            let monday = parse_week(w).ok_or_else(|| {
                ApiError::BadRequest(format!("week: expected YYYY-Www, got {w:?}"))
            })?;
            WeekRange::containing(monday, tz)
        }
        None => WeekRange::previous(now.with_timezone(&tz).date_naive(), tz),
    };
    let rows = state
        .store
        .exception_cases(week.start.timestamp_millis(), week.end.timestamp_millis())
        .await?;
    let cases: Vec<ExceptionCase> = rows
        .into_iter()
        .map(|r| ExceptionCase {
            region: r.region,
            opened_at: Utc
                .timestamp_millis_opt(r.created_at)
                .single()
                .unwrap_or_default(),
            fixed_at: r
                .fixed_at
                .and_then(|f| Utc.timestamp_millis_opt(f).single()),
        })
        .collect();
    let by_region = weekly_exceptions(&cases, week);
    let mut total = RegionExceptions::default();
    for c in by_region.values() {
        total.opened += c.opened;
        total.fixed += c.fixed;
        total.still_open += c.still_open;
    }
    let iso = week.start.with_timezone(&tz).date_naive().iso_week();
    Ok(Json(ExceptionReport {
        week: format!("{}-W{:02}", iso.year(), iso.week()),
        start_ms: week.start.timestamp_millis(),
        end_ms: week.end.timestamp_millis(),
        regions: by_region
            .into_iter()
            .map(|(region, counts)| RegionLine { region, counts })
            .collect(),
        total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks() {
        assert_eq!(
            parse_week("2026-W48"),
            NaiveDate::from_ymd_opt(2026, 11, 23)
        );
        assert_eq!(
            parse_week("2026-W01"),
            NaiveDate::from_ymd_opt(2025, 12, 29)
        );
        assert!(parse_week("2026-48").is_none());
        assert!(parse_week("2026-W54").is_none());
    }
}
