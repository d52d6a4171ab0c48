//! Queries of the HTTP API: call search, dispositions, callback requests by
//! state. Same rules as `queries.rs`: one SQL text, `$N` placeholders.

use serde::Serialize;
use sqlx::Row;

use super::error::{Result, StoreError};
use super::types::CallRecord;
use super::Store;

/// Filters of [`Store::search_calls`]; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Calls of this customer.
    pub customer_id: Option<String>,
    /// Calls taken by this agent.
    pub agent_id: Option<String>,
    /// Arrived at or after (epoch ms).
    pub since: Option<i64>,
    /// Arrived before (epoch ms).
    pub until: Option<i64>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// A callback promised to a caller, with its state (`pending`, `done`, `cancelled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRequestRow {
    pub id: String,
    pub phone: String,
    pub customer_id: Option<String>,
    pub due_at: i64,
    pub source_call: String,
    pub state: String,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

use super::queries::call_from_row;

impl Store {
    /// Calls matching `f`, newest first.
    pub async fn search_calls(&self, f: &CallFilter) -> Result<Vec<CallRecord>> {
        // `$N IS NULL OR ...` keeps one SQL text for every combination of filters.
        let rows = sqlx::query(
            "SELECT id, direction, from_number, to_number, customer_id, work_order, task_id, \
             queue, agent_id, arrived_at, answered_at, ended_at, wait_ms, talk_ms, hold_ms, \
             ivr_path, hangup_cause, hangup_side, disposition, notes, recording, transfer_chain \
             FROM calls WHERE ($1 IS NULL OR customer_id = $1) \
             AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR arrived_at >= $3) \
             AND ($4 IS NULL OR arrived_at < $4) ORDER BY arrived_at DESC, id DESC LIMIT $5",
        )
        .bind(&f.customer_id)
        .bind(&f.agent_id)
        .bind(f.since)
        .bind(f.until)
        .bind(f.limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_from_row).collect()
    }

    /// Set the disposition and notes an agent recorded for a call.
    /// [`StoreError::NotFound`] if the call is unknown.
    pub async fn set_call_disposition(
        &self,
        call_id: &str,
        disposition: &str,
        notes: &str,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE calls SET disposition = $2, notes = $3 WHERE id = $1")
            .bind(call_id)
            .bind(disposition)
            .bind(notes)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "call",
                id: call_id.to_string(),
            });
        }
        Ok(())
    }

    /// Callback requests in `state` (any state when `None`), soonest due first.
    pub async fn callback_requests_by_state(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CallbackRequestRow>> {
        let rows = sqlx::query(
            "SELECT id, phone, customer_id, due_at, source_call, state, created_at, done_at \
             FROM callback_requests WHERE ($1 IS NULL OR state = $1) ORDER BY due_at, id LIMIT $2",
        )
        .bind(state)
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallbackRequestRow {
                    id: r.try_get("id")?,
                    phone: r.try_get("phone")?,
                    customer_id: r.try_get("customer_id")?,
                    due_at: r.try_get("due_at")?,
                    source_call: r.try_get("source_call")?,
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                    done_at: r.try_get("done_at")?,
                })
            })
            .collect()
    }
}

/// A planned callback for a completed work order (seed 003: every completed
/// installation and repair is called back inside its window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTaskRow {
    pub id: String,
    pub work_order: String,
    pub customer_id: String,
    /// install | repair | second
    pub kind: String,
    pub window_start: i64,
    pub window_end: i64,
    pub deadline: i64,
    pub due_at: i64,
    pub created_at: i64,
}

impl Store {
    /// Create the task unless it exists: re-importing an order never adds a
    /// second callback or resets one in progress. Returns true when created.
    pub async fn insert_callback_task_once(&self, t: &CallbackTaskRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO callback_tasks (id, work_order, customer_id, kind, window_start, window_end, \
             deadline, attempts, state, owner, due_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 'pending', NULL, $8, $9) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.work_order)
        .bind(&t.customer_id)
        .bind(&t.kind)
        .bind(t.window_start)
        .bind(t.window_end)
        .bind(t.deadline)
        .bind(t.due_at)
        .bind(t.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Callback tasks in a state, soonest due first.
    pub async fn callback_tasks_by_state(&self, state: &str) -> Result<Vec<CallbackTaskRow>> {
        let rows = sqlx::query(
            "SELECT id, work_order, customer_id, kind, window_start, window_end, deadline, due_at, created_at \
             FROM callback_tasks WHERE state = $1 ORDER BY due_at, id",
        )
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallbackTaskRow {
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
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
