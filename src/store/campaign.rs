//! Storage of the callback dialer: task progress, attempts, surveys and the
//! dissatisfied cases of the closed loop (闭环).
//!
//! Every write that guards an action is one transaction committed before the
//! action: the attempt row, the task in `dialing` and the call record go in
//! together before the INVITE; the outcome, survey, case and phone flag go
//! in together after the call. These are direct writes, not the batching
//! writer: losing one would dial a customer twice or lose an answer.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::queries::insert_call_arrival_on;
use super::{CallArrival, Result, Store, StoreError};

/// A callback task with what the dialer needs to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignTaskRow {
    pub id: String,
    pub work_order: String,
    pub customer_id: String,
    pub kind: String,
    pub window_start: i64,
    pub window_end: i64,
    pub deadline: i64,
    pub due_at: i64,
    pub state: String,
    pub attempts: i64,
    pub errors: i64,
    pub errors_in_row: i64,
    pub declined: bool,
    pub first_attempt_at: Option<i64>,
    pub case_id: Option<String>,
    /// The customer's first number (normalised digits); empty when none.
    pub phone: String,
    /// The order's region, else the customer's.
    pub region: String,
}

/// A callback task as the agent desk lists it (`GET /api/callback-tasks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTaskView {
    pub task: CampaignTaskRow,
    /// The last attempt's outcome, e.g. `busy`; `None` before the first.
    pub last_outcome: Option<String>,
    /// Empty when the customer is not (or no longer) on record.
    pub customer_name: String,
    pub customer_address: String,
    /// The work order called about; `None` when it is not on record.
    pub order: Option<TaskOrder>,
}

/// The work order of a listed callback task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskOrder {
    pub order_no: String,
    pub product: String,
    pub technician: String,
    pub department: String,
    pub completed_at: Option<i64>,
}

/// A task's state after a transition, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskProgress {
    pub id: String,
    pub state: String,
    pub attempts: i64,
    pub errors: i64,
    pub errors_in_row: i64,
    pub declined: bool,
    pub due_at: i64,
    pub first_attempt_at: Option<i64>,
    pub last_outcome: Option<String>,
    pub fail_reason: Option<String>,
    pub updated_at: i64,
}

/// What is written before an INVITE goes out.
#[derive(Debug, Clone)]
pub struct AttemptStart {
    pub task: TaskProgress,
    pub attempt: i64,
    /// `calls.id` of the call about to be placed.
    pub call: CallArrival,
}

/// A survey's answers (`surveys` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyRow {
    pub call_id: String,
    pub task_id: String,
    pub customer_id: String,
    pub work_order: Option<String>,
    /// 1..5, 5 best.
    pub attitude: Option<i64>,
    pub cleaned: Option<bool>,
    pub fees_ok: Option<bool>,
    /// 1 很不满意 .. 5 非常满意.
    pub satisfaction: Option<i64>,
    pub remarks: String,
    pub completed: bool,
    pub answered_at: i64,
}

/// What a survey does to the closed loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseUpdate {
    /// A dissatisfied first callback: a new case for the department.
    Open(Box<CaseRow>),
    /// A second callback still dissatisfied: the case goes back to `open`.
    Reopen { case_id: String, text: String },
    /// A second callback found the customer satisfied: the case closes.
    Close { case_id: String, text: String },
}

/// What is written when a call ends.
#[derive(Debug, Clone)]
pub struct FinishAttempt {
    pub task: TaskProgress,
    pub attempt: i64,
    /// e.g. `answered`, `partial`, `busy`, `no_answer`, `invalid`, `declined`, `error`.
    pub outcome: String,
    pub sip_status: Option<i64>,
    pub ended_at: i64,
    pub survey: Option<SurveyRow>,
    pub case: Option<CaseUpdate>,
    /// Flag the customer's number (`phone_status`), e.g. `wrong`.
    pub phone_status: Option<(String, String)>,
}

/// A case as the closed-loop API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseRow {
    pub id: String,
    pub customer_id: String,
    pub kind: String,
    pub department: String,
    pub deadline: i64,
    pub state: String,
    pub description: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub work_order: Option<String>,
    pub region: String,
    pub interviewee: String,
    pub source_call: Option<String>,
    pub fixed_at: Option<i64>,
}

/// A case event (history line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseEventRow {
    pub at: i64,
    pub actor: String,
    pub text: String,
}

/// A dissatisfied case for the weekly exception summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    pub region: String,
    pub created_at: i64,
    pub fixed_at: Option<i64>,
}

/// Attempt row id: attempt N of a task exists once (the primary key).
pub fn attempt_id(task_id: &str, attempt: i64) -> String {
    format!("{task_id}#{attempt}")
}

const CASE_COLS: &str = "id, customer_id, kind, department, deadline, state, description, \
     created_at, closed_at, work_order, region, interviewee, source_call, fixed_at";

fn case_row(r: &AnyRow) -> Result<CaseRow> {
    Ok(CaseRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        kind: r.try_get("kind")?,
        department: r.try_get("department")?,
        deadline: r.try_get("deadline")?,
        state: r.try_get("state")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        closed_at: r.try_get("closed_at")?,
        work_order: r.try_get("work_order")?,
        region: r.try_get("region")?,
        interviewee: r.try_get("interviewee")?,
        source_call: r.try_get("source_call")?,
        fixed_at: r.try_get("fixed_at")?,
    })
}

/// A task's columns as [`CampaignTaskRow`] reads them (with [`TASK_FROM`]).
const TASK_COLS: &str = "t.id, t.work_order, t.customer_id, t.kind, t.window_start, t.window_end, \
     t.deadline, t.due_at, t.state, t.attempts, t.errors, t.errors_in_row, t.declined, \
     t.first_attempt_at, t.case_id, \
     (SELECT MIN(p.phone) FROM customer_phones p WHERE p.customer_id = t.customer_id) AS phone, \
     COALESCE(NULLIF(w.region, ''), c.region, '') AS region";

/// Tasks with their order (`w`) and customer (`c`), for [`TASK_COLS`].
const TASK_FROM: &str = "FROM callback_tasks t \
     LEFT JOIN work_orders w ON w.order_no = t.work_order \
     LEFT JOIN customers c ON c.id = t.customer_id";

fn campaign_task_row(r: &AnyRow) -> Result<CampaignTaskRow> {
    Ok(CampaignTaskRow {
        id: r.try_get("id")?,
        work_order: r
            .try_get::<Option<String>, _>("work_order")?
            .unwrap_or_default(),
        customer_id: r.try_get("customer_id")?,
        kind: r.try_get("kind")?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        deadline: r.try_get("deadline")?,
        due_at: r.try_get("due_at")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        errors: r.try_get("errors")?,
        errors_in_row: r.try_get("errors_in_row")?,
        declined: r.try_get::<i64, _>("declined")? != 0,
        first_attempt_at: r.try_get("first_attempt_at")?,
        case_id: r.try_get("case_id")?,
        phone: r.try_get::<Option<String>, _>("phone")?.unwrap_or_default(),
        region: r
            .try_get::<Option<String>, _>("region")?
            .unwrap_or_default(),
    })
}

async fn update_task(conn: &mut sqlx::AnyConnection, t: &TaskProgress) -> Result<()> {
    let done = sqlx::query(
        "UPDATE callback_tasks SET state = $2, attempts = $3, errors = $4, errors_in_row = $5, \
         declined = $6, due_at = $7, first_attempt_at = $8, last_outcome = $9, fail_reason = $10, \
         updated_at = $11 WHERE id = $1",
    )
    .bind(&t.id)
    .bind(&t.state)
    .bind(t.attempts)
    .bind(t.errors)
    .bind(t.errors_in_row)
    .bind(i64::from(t.declined))
    .bind(t.due_at)
    .bind(t.first_attempt_at)
    .bind(&t.last_outcome)
    .bind(&t.fail_reason)
    .bind(t.updated_at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "callback task",
            id: t.id.clone(),
        });
    }
    Ok(())
}

async fn add_case_event(
    conn: &mut sqlx::AnyConnection,
    case_id: &str,
    at: i64,
    actor: &str,
    text: &str,
) -> Result<()> {
    // Ids unique per case and instant; a random tail keeps two events of
    // the same millisecond apart.
    let id = format!("{case_id}-{at:x}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    sqlx::query(
        "INSERT INTO case_events (id, case_id, at, actor, text) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(case_id)
    .bind(at)
    .bind(actor)
    .bind(text)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Tasks the dialer still has to work on (`pending` or `dialing`),
    /// created at or after `since` (`i64::MIN`: all).
    pub async fn active_campaign_tasks(&self, since: i64) -> Result<Vec<CampaignTaskRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLS} {TASK_FROM} \
             WHERE t.state IN ('pending', 'dialing') AND t.created_at >= $1 ORDER BY t.due_at, t.id"
        )))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_task_row).collect()
    }

    /// Callback tasks for the agent desk, soonest due first: the open ones
    /// (`pending`, `dialing`) or, with `open_only` false, all; at most `limit`.
    pub async fn list_callback_tasks(
        &self,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<CallbackTaskView>> {
        let filter = if open_only {
            "WHERE t.state IN ('pending', 'dialing')"
        } else {
            ""
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLS}, t.last_outcome, c.name AS customer_name, \
             c.address AS customer_address, w.order_no AS order_no, w.product, w.technician, \
             w.department, w.completed_at \
             {TASK_FROM} {filter} ORDER BY t.due_at, t.id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let order_no: Option<String> = r.try_get("order_no")?;
                let order = match order_no {
                    Some(order_no) => Some(TaskOrder {
                        order_no,
                        product: r.try_get("product")?,
                        technician: r.try_get("technician")?,
                        department: r.try_get("department")?,
                        completed_at: r.try_get("completed_at")?,
                    }),
                    None => None,
                };
                Ok(CallbackTaskView {
                    task: campaign_task_row(r)?,
                    last_outcome: r.try_get("last_outcome")?,
                    customer_name: r
                        .try_get::<Option<String>, _>("customer_name")?
                        .unwrap_or_default(),
                    customer_address: r
                        .try_get::<Option<String>, _>("customer_address")?
                        .unwrap_or_default(),
                    order,
                })
            })
            .collect()
    }

    /// Persist a task's new state alone (expired, recovered, no phone).
    pub async fn save_task_progress(&self, t: &TaskProgress) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        update_task(&mut conn, t).await
    }

    /// Before the INVITE: the task in `dialing`, attempt N and the call
    /// record, in one transaction. Fails (and nothing is dialled) if attempt
    /// N was written before.
    pub async fn start_attempt(&self, a: &AttemptStart) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        update_task(&mut tx, &a.task).await?;
        sqlx::query(
            "INSERT INTO callback_attempts (id, task_id, call_id, started_at, outcome, attempt) \
             VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(attempt_id(&a.task.id, a.attempt))
        .bind(&a.task.id)
        .bind(&a.call.id)
        .bind(a.call.arrived_at)
        .bind(a.attempt)
        .execute(&mut *tx)
        .await?;
        insert_call_arrival_on(&mut tx, &a.call).await?;
        tx.commit().await?;
        Ok(())
    }

    /// At start-up: an attempt whose result was lost with the server.
    pub async fn interrupt_attempt(
        &self,
        task: &TaskProgress,
        attempt: i64,
        at: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        update_task(&mut tx, task).await?;
        sqlx::query(
            "UPDATE callback_attempts SET outcome = 'interrupted', ended_at = $2 \
             WHERE id = $1 AND outcome IS NULL",
        )
        .bind(attempt_id(&task.id, attempt))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        // The call record of that attempt never got its end.
        sqlx::query(
            "UPDATE calls SET ended_at = $2, hangup_cause = 'server_restart', hangup_side = 'hotline' \
             WHERE id = (SELECT call_id FROM callback_attempts WHERE id = $1) AND ended_at IS NULL",
        )
        .bind(attempt_id(&task.id, attempt))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// After the call: outcome, task, survey, case and phone flag together.
    pub async fn finish_attempt(&self, f: &FinishAttempt) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        update_task(&mut tx, &f.task).await?;
        sqlx::query(
            "UPDATE callback_attempts SET outcome = $2, ended_at = $3, sip_status = $4 WHERE id = $1",
        )
        .bind(attempt_id(&f.task.id, f.attempt))
        .bind(&f.outcome)
        .bind(f.ended_at)
        .bind(f.sip_status)
        .execute(&mut *tx)
        .await?;
        if let Some(s) = &f.survey {
            sqlx::query(
                "INSERT INTO surveys (call_id, attitude, cleaned, fees_ok, satisfaction, remarks, \
                 task_id, customer_id, work_order, answered_at, completed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (call_id) DO NOTHING",
            )
            .bind(&s.call_id)
            .bind(s.attitude)
            .bind(s.cleaned.map(i64::from))
            .bind(s.fees_ok.map(i64::from))
            .bind(s.satisfaction)
            .bind(&s.remarks)
            .bind(&s.task_id)
            .bind(&s.customer_id)
            .bind(&s.work_order)
            .bind(s.answered_at)
            .bind(i64::from(s.completed))
            .execute(&mut *tx)
            .await?;
        }
        match &f.case {
            None => {}
            Some(CaseUpdate::Open(c)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO cases ({CASE_COLS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (id) DO NOTHING"
                )))
                .bind(&c.id)
                .bind(&c.customer_id)
                .bind(&c.kind)
                .bind(&c.department)
                .bind(c.deadline)
                .bind(&c.state)
                .bind(&c.description)
                .bind(c.created_at)
                .bind(c.closed_at)
                .bind(&c.work_order)
                .bind(&c.region)
                .bind(&c.interviewee)
                .bind(&c.source_call)
                .bind(c.fixed_at)
                .execute(&mut *tx)
                .await?;
                add_case_event(&mut tx, &c.id, c.created_at, "dialer", &c.description).await?;
            }
            Some(CaseUpdate::Reopen { case_id, text }) => {
                sqlx::query("UPDATE cases SET state = 'open', fixed_at = NULL WHERE id = $1")
                    .bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                add_case_event(&mut tx, case_id, f.ended_at, "dialer", text).await?;
            }
            Some(CaseUpdate::Close { case_id, text }) => {
                sqlx::query("UPDATE cases SET state = 'closed', closed_at = $2 WHERE id = $1")
                    .bind(case_id)
                    .bind(f.ended_at)
                    .execute(&mut *tx)
                    .await?;
                add_case_event(&mut tx, case_id, f.ended_at, "dialer", text).await?;
            }
        }
        if let Some((customer, status)) = &f.phone_status {
            sqlx::query("UPDATE customers SET phone_status = $2, updated_at = $3 WHERE id = $1")
                .bind(customer)
                .bind(status)
                .bind(f.ended_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Cases, newest first; `kind`/`state` filter when given.
    pub async fn list_cases(
        &self,
        kind: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CaseRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CASE_COLS} FROM cases WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR state = $2) \
             ORDER BY created_at DESC, id LIMIT $3"
        )))
        .bind(kind.unwrap_or(""))
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(case_row).collect()
    }

    pub async fn get_case_row(&self, id: &str) -> Result<Option<CaseRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CASE_COLS} FROM cases WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(case_row).transpose()
    }

    pub async fn case_events(&self, case_id: &str) -> Result<Vec<CaseEventRow>> {
        let rows = sqlx::query(
            "SELECT at, actor, text FROM case_events WHERE case_id = $1 ORDER BY at, id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CaseEventRow {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    /// The department manager's fix: the event, the case `resolved` (awaiting
    /// the second callback) and the second callback task, together. Returns
    /// false when the case is not open (unknown, closed, or already fixed).
    pub async fn record_case_fix(
        &self,
        case_id: &str,
        actor: &str,
        text: &str,
        at: i64,
        second: &super::CallbackTaskRow,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cases SET state = 'resolved', fixed_at = $2 WHERE id = $1 AND state = 'open'",
        )
        .bind(case_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        add_case_event(&mut tx, case_id, at, actor, text).await?;
        sqlx::query(
            "INSERT INTO callback_tasks (id, work_order, customer_id, kind, window_start, window_end, \
             deadline, attempts, state, owner, due_at, created_at, case_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 'pending', NULL, $8, $9, $10, $9)",
        )
        .bind(&second.id)
        .bind(&second.work_order)
        .bind(&second.customer_id)
        .bind(&second.kind)
        .bind(second.window_start)
        .bind(second.window_end)
        .bind(second.deadline)
        .bind(second.due_at)
        .bind(second.created_at)
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Dissatisfied cases opened before `until` and not fixed before `since`
    /// (what a weekly summary of `[since, until)` can count).
    pub async fn exception_cases(&self, since: i64, until: i64) -> Result<Vec<ExceptionRow>> {
        let rows = sqlx::query(
            "SELECT region, created_at, fixed_at FROM cases WHERE kind = 'dissatisfied' \
             AND created_at < $2 AND (fixed_at IS NULL OR fixed_at >= $1)",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExceptionRow {
                    region: r.try_get("region")?,
                    created_at: r.try_get("created_at")?,
                    fixed_at: r.try_get("fixed_at")?,
                })
            })
            .collect()
    }
}
