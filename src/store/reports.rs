//! Report queries (daily, weekly, monthly callback reports; inbound KPIs;
//! complaints). Same rules as `queries.rs`: one SQL text for SQLite and
//! PostgreSQL, `$N` placeholders, times as BIGINT epoch ms. Grouping by local
//! day/week/month happens in the caller (`api::reports`), which turns dates
//! into UTC ranges; here every query takes a half-open `[from, to)` range.
//!
//! Sums are wrapped in `CAST(.. AS BIGINT)`: PostgreSQL's `SUM(bigint)` is
//! `numeric`, which the `Any` driver cannot decode.

use serde::Serialize;
use sqlx::Row;

use super::error::Result;
use super::Store;

/// Inbound numbers of one queue or one agent over a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InboundCounts {
    /// Queue name or agent id.
    pub name: String,
    /// Ended calls that entered a queue.
    pub offered: i64,
    /// ...of which an agent took.
    pub answered: i64,
    /// ...of which no agent took (hung up, overflowed to a callback, timed out).
    pub abandoned: i64,
    /// Answered with a queue wait of at most the service-level time.
    pub answered_within_sl: i64,
    /// Queue wait of the answered calls, summed.
    pub wait_total_ms: i64,
    /// Talk time of the answered calls, summed.
    pub talk_total_ms: i64,
}

/// One callback call (a call with a `task_id`) with its task, region and survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackCallRow {
    pub call_id: String,
    /// Who made the call (the task's owner when the call has none).
    pub agent_id: Option<String>,
    pub task_id: String,
    pub arrived_at: i64,
    pub task_state: Option<String>,
    /// Work order's region, else the customer's; empty when unknown.
    pub region: String,
    /// A survey row exists for this call.
    pub surveyed: bool,
    pub attitude: Option<i64>,
    pub cleaned: Option<i64>,
    pub fees_ok: Option<i64>,
    pub satisfaction: Option<i64>,
    pub remarks: String,
}

/// One callback task with what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackTaskReportRow {
    pub id: String,
    pub owner: Option<String>,
    pub kind: String,
    pub state: String,
    pub window_start: i64,
    pub window_end: i64,
    pub region: String,
    /// Earliest call or recorded attempt for the task.
    pub first_attempt_at: Option<i64>,
    /// Calls of this task with a complete survey (satisfaction answered).
    pub surveys: i64,
}

/// One complaint case for the complaints report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComplaintRow {
    pub id: String,
    pub customer_id: String,
    pub department: String,
    pub owner: Option<String>,
    pub state: String,
    pub deadline: i64,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub description: String,
}

const REGION: &str = "CASE WHEN w.region IS NOT NULL AND w.region <> '' THEN w.region \
                      ELSE COALESCE(cu.region, '') END";

fn counts_from_row(r: &sqlx::any::AnyRow) -> Result<InboundCounts> {
    Ok(InboundCounts {
        name: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
        offered: r.try_get(1)?,
        answered: r.try_get(2)?,
        abandoned: r.try_get(3)?,
        answered_within_sl: r.try_get(4)?,
        wait_total_ms: r.try_get(5)?,
        talk_total_ms: r.try_get(6)?,
    })
}

impl Store {
    /// Inbound KPIs per queue for calls that arrived in `[from, to)` and have
    /// ended (a call still waiting is neither answered nor abandoned yet).
    /// "Answered" means an agent took it (`agent_id` set); the server's own
    /// answer for the IVR does not count.
    pub async fn inbound_by_queue(
        &self,
        from: i64,
        to: i64,
        sl_ms: i64,
    ) -> Result<Vec<InboundCounts>> {
        let rows = sqlx::query(
            "SELECT queue, COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN agent_id IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN agent_id IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN agent_id IS NOT NULL AND wait_ms <= $3 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN agent_id IS NOT NULL THEN wait_ms ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN agent_id IS NOT NULL THEN talk_ms ELSE 0 END), 0) AS BIGINT) \
             FROM calls WHERE direction = 'in' AND queue IS NOT NULL AND ended_at IS NOT NULL \
             AND arrived_at >= $1 AND arrived_at < $2 GROUP BY queue ORDER BY queue",
        )
        .bind(from)
        .bind(to)
        .bind(sl_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(counts_from_row).collect()
    }

    /// Inbound KPIs per agent (calls they answered) over `[from, to)`;
    /// `offered` = `answered` and `abandoned` = 0 (missed offers are not stored).
    pub async fn inbound_by_agent(
        &self,
        from: i64,
        to: i64,
        sl_ms: i64,
    ) -> Result<Vec<InboundCounts>> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*), COUNT(*), CAST(0 AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN wait_ms <= $3 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(wait_ms), 0) AS BIGINT), \
             CAST(COALESCE(SUM(talk_ms), 0) AS BIGINT) \
             FROM calls WHERE direction = 'in' AND queue IS NOT NULL AND agent_id IS NOT NULL \
             AND ended_at IS NOT NULL AND arrived_at >= $1 AND arrived_at < $2 \
             GROUP BY agent_id ORDER BY agent_id",
        )
        .bind(from)
        .bind(to)
        .bind(sl_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(counts_from_row).collect()
    }

    /// Callback calls (calls with a task) that arrived in `[from, to)`, oldest first.
    pub async fn callback_calls(&self, from: i64, to: i64) -> Result<Vec<CallbackCallRow>> {
        let sql = format!(
            "SELECT c.id, COALESCE(c.agent_id, t.owner), c.task_id, c.arrived_at, t.state, {REGION}, \
             s.call_id, s.attitude, s.cleaned, s.fees_ok, s.satisfaction, s.remarks \
             FROM calls c LEFT JOIN callback_tasks t ON t.id = c.task_id \
             LEFT JOIN work_orders w ON w.order_no = COALESCE(t.work_order, c.work_order) \
             LEFT JOIN customers cu ON cu.id = COALESCE(t.customer_id, c.customer_id) \
             LEFT JOIN surveys s ON s.call_id = c.id \
             WHERE c.task_id IS NOT NULL AND c.arrived_at >= $1 AND c.arrived_at < $2 \
             ORDER BY c.arrived_at, c.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CallbackCallRow {
                    call_id: r.try_get(0)?,
                    agent_id: r.try_get(1)?,
                    task_id: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                    arrived_at: r.try_get(3)?,
                    task_state: r.try_get(4)?,
                    region: r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                    surveyed: r.try_get::<Option<String>, _>(6)?.is_some(),
                    attitude: r.try_get(7)?,
                    cleaned: r.try_get(8)?,
                    fees_ok: r.try_get(9)?,
                    satisfaction: r.try_get(10)?,
                    remarks: r.try_get::<Option<String>, _>(11)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Callback tasks whose window opens in `[from, to)`, with their first
    /// attempt (earliest call or recorded attempt) and survey count.
    pub async fn callback_tasks_opening(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<CallbackTaskReportRow>> {
        let sql = format!(
            "SELECT t.id, t.owner, t.kind, t.state, t.window_start, t.window_end, {REGION}, \
             (SELECT MIN(c.arrived_at) FROM calls c WHERE c.task_id = t.id), \
             (SELECT MIN(a.started_at) FROM callback_attempts a WHERE a.task_id = t.id), \
             (SELECT COUNT(*) FROM calls c JOIN surveys s ON s.call_id = c.id \
              WHERE c.task_id = t.id AND s.satisfaction IS NOT NULL) \
             FROM callback_tasks t LEFT JOIN work_orders w ON w.order_no = t.work_order \
             LEFT JOIN customers cu ON cu.id = t.customer_id \
             WHERE t.window_start >= $1 AND t.window_start < $2 ORDER BY t.window_start, t.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let call: Option<i64> = r.try_get(7)?;
                let attempt: Option<i64> = r.try_get(8)?;
                let first = match (call, attempt) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Ok(CallbackTaskReportRow {
                    id: r.try_get(0)?,
                    owner: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    state: r.try_get(3)?,
                    window_start: r.try_get(4)?,
                    window_end: r.try_get(5)?,
                    region: r.try_get::<Option<String>, _>(6)?.unwrap_or_default(),
                    first_attempt_at: first,
                    surveys: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Complaint cases created in `[from, to)`, oldest first.
    pub async fn complaint_cases(&self, from: i64, to: i64) -> Result<Vec<ComplaintRow>> {
        let rows = sqlx::query(
            "SELECT id, customer_id, department, owner, state, deadline, created_at, closed_at, \
             description FROM cases WHERE kind = 'complaint' AND created_at >= $1 \
             AND created_at < $2 ORDER BY created_at, id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ComplaintRow {
                    id: r.try_get(0)?,
                    customer_id: r.try_get(1)?,
                    department: r.try_get(2)?,
                    owner: r.try_get(3)?,
                    state: r.try_get(4)?,
                    deadline: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                    closed_at: r.try_get(7)?,
                    description: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Add an event to a case's history.
    pub async fn insert_case_event(
        &self,
        id: &str,
        case_id: &str,
        at: i64,
        actor: &str,
        text: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO case_events (id, case_id, at, actor, text) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(case_id)
        .bind(at)
        .bind(actor)
        .bind(text)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
