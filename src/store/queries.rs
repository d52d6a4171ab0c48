//! The SQL. One text per statement, `$N` placeholders, runs on both backends.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::error::{Result, StoreError};
use super::phone::normalize_phone;
use super::types::*;
use super::Store;

/// At most this many calls (newest first) are put in a [`CustomerRecord`].
pub const RECORD_CALL_LIMIT: i64 = 200;

macro_rules! customer_cols {
    () => {
        "c.id, c.name, c.address, c.region, c.do_not_call, c.phone_status, c.created_at, c.updated_at"
    };
}
macro_rules! work_order_cols {
    () => {
        "order_no, kind, customer_id, product, technician, department, region, completed_at, \
         fees_cents, created_at, updated_at"
    };
}
macro_rules! call_cols {
    () => {
        "id, direction, from_number, to_number, customer_id, work_order, task_id, queue, agent_id, \
         arrived_at, answered_at, ended_at, wait_ms, talk_ms, hold_ms, ivr_path, hangup_cause, \
         hangup_side, disposition, notes, recording, transfer_chain"
    };
}
macro_rules! case_cols {
    () => {
        "id, customer_id, kind, department, deadline, state, owner, description, created_at, closed_at"
    };
}

pub(super) fn json_col<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &'static str) -> Result<T> {
    let text: String = r.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        column: col,
        detail: e.to_string(),
    })
}

fn agent_from_row(r: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        skills: json_col(r, "skills")?,
        department: r.try_get("department")?,
    })
}

fn customer_from_row(r: &AnyRow) -> Result<Customer> {
    Ok(Customer {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        region: r.try_get("region")?,
        do_not_call: r.try_get::<i64, _>("do_not_call")? != 0,
        phone_status: r.try_get("phone_status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn work_order_from_row(r: &AnyRow) -> Result<WorkOrder> {
    Ok(WorkOrder {
        order_no: r.try_get("order_no")?,
        kind: WorkOrderKind::parse(&r.try_get::<String, _>("kind")?)?,
        customer_id: r.try_get("customer_id")?,
        product: r.try_get("product")?,
        technician: r.try_get("technician")?,
        department: r.try_get("department")?,
        region: r.try_get("region")?,
        completed_at: r.try_get("completed_at")?,
        fees_cents: r.try_get("fees_cents")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) fn call_from_row(r: &AnyRow) -> Result<CallRecord> {
    Ok(CallRecord {
        id: r.try_get("id")?,
        direction: Direction::parse(&r.try_get::<String, _>("direction")?)?,
        from_number: r.try_get("from_number")?,
        to_number: r.try_get("to_number")?,
        customer_id: r.try_get("customer_id")?,
        work_order: r.try_get("work_order")?,
        task_id: r.try_get("task_id")?,
        queue: r.try_get("queue")?,
        agent_id: r.try_get("agent_id")?,
        arrived_at: r.try_get("arrived_at")?,
        answered_at: r.try_get("answered_at")?,
        ended_at: r.try_get("ended_at")?,
        wait_ms: r.try_get("wait_ms")?,
        talk_ms: r.try_get("talk_ms")?,
        hold_ms: r.try_get("hold_ms")?,
        ivr_path: json_col(r, "ivr_path")?,
        hangup_cause: r.try_get("hangup_cause")?,
        hangup_side: r.try_get("hangup_side")?,
        disposition: r.try_get("disposition")?,
        notes: r.try_get("notes")?,
        recording: r.try_get("recording")?,
        transfer_chain: json_col(r, "transfer_chain")?,
    })
}

fn registration_from_row(r: &AnyRow) -> Result<Registration> {
    Ok(Registration {
        agent_id: r.try_get("agent_id")?,
        contact_uri: r.try_get("contact_uri")?,
        source: r.try_get("source")?,
        transport: r.try_get("transport")?,
        expires_at: r.try_get("expires_at")?,
        call_id: r.try_get("call_id")?,
        cseq: r.try_get("cseq")?,
        user_agent: r.try_get("user_agent")?,
    })
}

fn case_from_row(r: &AnyRow) -> Result<Case> {
    Ok(Case {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        kind: CaseKind::parse(&r.try_get::<String, _>("kind")?)?,
        department: r.try_get("department")?,
        deadline: r.try_get("deadline")?,
        state: r.try_get("state")?,
        owner: r.try_get("owner")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        closed_at: r.try_get("closed_at")?,
    })
}

// ---- statements shared with the writer (run on a connection or transaction) ----

pub(crate) async fn insert_call_arrival_on(
    conn: &mut AnyConnection,
    a: &CallArrival,
) -> Result<()> {
    // Idempotent: a batch retried after a lost commit acknowledgement must
    // not fail on its own earlier insert.
    sqlx::query(
        "INSERT INTO calls (id, direction, from_number, to_number, customer_id, work_order, \
         task_id, queue, arrived_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&a.id)
    .bind(a.direction.as_str())
    .bind(&a.from_number)
    .bind(&a.to_number)
    .bind(&a.customer_id)
    .bind(&a.work_order)
    .bind(&a.task_id)
    .bind(&a.queue)
    .bind(a.arrived_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_call_leg_on(conn: &mut AnyConnection, l: &CallLeg) -> Result<()> {
    // A replayed write (the writer retries a failed batch) is not a duplicate.
    sqlx::query(
        "INSERT INTO call_legs (call_id, seq, party, role, offered_at, answered_at, ended_at, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (call_id, seq) DO NOTHING",
    )
    .bind(&l.call_id)
    .bind(l.seq)
    .bind(&l.party)
    .bind(&l.role)
    .bind(l.offered_at)
    .bind(l.answered_at)
    .bind(l.ended_at)
    .bind(&l.outcome)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn complete_call_on(conn: &mut AnyConnection, c: &CallCompletion) -> Result<()> {
    let ivr_path = serde_json::to_string(&c.ivr_path)?;
    let transfer_chain = serde_json::to_string(&c.transfer_chain)?;
    let done = sqlx::query(
        "UPDATE calls SET customer_id = COALESCE($2, customer_id), \
         work_order = COALESCE($3, work_order), queue = COALESCE($4, queue), \
         agent_id = COALESCE($5, agent_id), answered_at = $6, ended_at = $7, wait_ms = $8, \
         talk_ms = $9, hold_ms = $10, ivr_path = $11, hangup_cause = $12, hangup_side = $13, \
         disposition = $14, notes = $15, recording = $16, transfer_chain = $17 WHERE id = $1",
    )
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(&c.work_order)
    .bind(&c.queue)
    .bind(&c.agent_id)
    .bind(c.answered_at)
    .bind(c.ended_at)
    .bind(c.wait_ms)
    .bind(c.talk_ms)
    .bind(c.hold_ms)
    .bind(ivr_path)
    .bind(&c.hangup_cause)
    .bind(&c.hangup_side)
    .bind(&c.disposition)
    .bind(&c.notes)
    .bind(&c.recording)
    .bind(transfer_chain)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "call",
            id: c.id.clone(),
        });
    }
    Ok(())
}

pub(crate) async fn save_registration_on(conn: &mut AnyConnection, r: &Registration) -> Result<()> {
    sqlx::query(
        "INSERT INTO registrations (agent_id, contact_uri, source, transport, expires_at, \
         call_id, cseq, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (agent_id, contact_uri) DO UPDATE SET source = excluded.source, \
         transport = excluded.transport, expires_at = excluded.expires_at, \
         call_id = excluded.call_id, cseq = excluded.cseq, user_agent = excluded.user_agent",
    )
    .bind(&r.agent_id)
    .bind(&r.contact_uri)
    .bind(&r.source)
    .bind(&r.transport)
    .bind(r.expires_at)
    .bind(&r.call_id)
    .bind(r.cseq)
    .bind(&r.user_agent)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn delete_registration_on(
    conn: &mut AnyConnection,
    agent_id: &str,
    contact_uri: &str,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM registrations WHERE agent_id = $1 AND contact_uri = $2")
        .bind(agent_id)
        .bind(contact_uri)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    // ---- agents ----

    /// Insert or update an agent by id.
    pub async fn upsert_agent(&self, a: &Agent) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, skills, department) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, skills = excluded.skills, \
             department = excluded.department",
        )
        .bind(&a.id)
        .bind(&a.name)
        .bind(serde_json::to_string(&a.skills)?)
        .bind(&a.department)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All agents, by id.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        sqlx::query("SELECT id, name, skills, department FROM agents ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(agent_from_row)
            .collect()
    }

    // ---- customers ----

    /// Insert or update a customer by id and replace its phone numbers with
    /// `phones` (normalised with [`normalize_phone`]; numbers without digits
    /// are skipped). A number already held by another customer moves to this
    /// one: one number, one customer. `created_at` is kept from the first
    /// insert. One transaction.
    pub async fn upsert_customer<P: AsRef<str>>(&self, c: &Customer, phones: &[P]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO customers (id, name, address, region, do_not_call, phone_status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, address = excluded.address, \
             region = excluded.region, do_not_call = excluded.do_not_call, \
             phone_status = excluded.phone_status, updated_at = excluded.updated_at",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.address)
        .bind(&c.region)
        .bind(c.do_not_call as i64)
        .bind(&c.phone_status)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM customer_phones WHERE customer_id = $1")
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        for raw in phones {
            let raw = raw.as_ref();
            let key = normalize_phone(raw);
            if key.is_empty() {
                continue;
            }
            sqlx::query(
                "INSERT INTO customer_phones (phone, raw, customer_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (phone) DO UPDATE SET raw = excluded.raw, \
                 customer_id = excluded.customer_id",
            )
            .bind(key)
            .bind(raw)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A customer by id.
    pub async fn get_customer(&self, id: &str) -> Result<Option<Customer>> {
        sqlx::query(concat!(
            "SELECT ",
            customer_cols!(),
            " FROM customers c WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(customer_from_row)
        .transpose()
    }

    /// The customer a caller number belongs to, after [`normalize_phone`].
    pub async fn find_by_phone(&self, number: &str) -> Result<Option<Customer>> {
        let key = normalize_phone(number);
        if key.is_empty() {
            return Ok(None);
        }
        sqlx::query(concat!(
            "SELECT ",
            customer_cols!(),
            " FROM customer_phones p JOIN customers c ON c.id = p.customer_id WHERE p.phone = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(customer_from_row)
        .transpose()
    }

    /// A customer's phone numbers, by key.
    pub async fn customer_phones(&self, customer_id: &str) -> Result<Vec<CustomerPhone>> {
        let rows = sqlx::query(
            "SELECT phone, raw FROM customer_phones WHERE customer_id = $1 ORDER BY phone",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CustomerPhone {
                    phone: r.try_get("phone")?,
                    raw: r.try_get("raw")?,
                })
            })
            .collect()
    }

    // ---- work orders ----

    /// Insert or update a work order by `order_no` (importing the same order
    /// again changes nothing but `updated_at`; `created_at` is kept).
    pub async fn upsert_work_order(&self, w: &WorkOrder) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO work_orders (",
            work_order_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (order_no) DO UPDATE SET kind = excluded.kind, \
             customer_id = excluded.customer_id, product = excluded.product, \
             technician = excluded.technician, department = excluded.department, \
             region = excluded.region, completed_at = excluded.completed_at, \
             fees_cents = excluded.fees_cents, updated_at = excluded.updated_at"
        ))
        .bind(&w.order_no)
        .bind(w.kind.as_str())
        .bind(&w.customer_id)
        .bind(&w.product)
        .bind(&w.technician)
        .bind(&w.department)
        .bind(&w.region)
        .bind(w.completed_at)
        .bind(w.fees_cents)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A work order by number.
    pub async fn get_work_order(&self, order_no: &str) -> Result<Option<WorkOrder>> {
        sqlx::query(concat!(
            "SELECT ",
            work_order_cols!(),
            " FROM work_orders WHERE order_no = $1"
        ))
        .bind(order_no)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(work_order_from_row)
        .transpose()
    }

    /// A customer's work orders: open ones first, then most recently completed.
    pub async fn list_work_orders_for_customer(&self, customer_id: &str) -> Result<Vec<WorkOrder>> {
        // NULL ordering differs between SQLite and PostgreSQL: make it explicit.
        sqlx::query(concat!(
            "SELECT ",
            work_order_cols!(),
            " FROM work_orders WHERE customer_id = $1 ORDER BY \
             CASE WHEN completed_at IS NULL THEN 0 ELSE 1 END, completed_at DESC, order_no"
        ))
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(work_order_from_row)
        .collect()
    }

    // ---- calls ----

    /// Record a call's arrival. Idempotent: the same id again is a no-op.
    pub async fn insert_call_arrival(&self, a: &CallArrival) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_call_arrival_on(&mut conn, a).await
    }

    /// Record how a call ended. `customer_id`, `work_order`, `queue` and
    /// `agent_id` left `None` keep what is stored. [`StoreError::NotFound`]
    /// if the arrival was never stored.
    pub async fn complete_call(&self, c: &CallCompletion) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        complete_call_on(&mut conn, c).await
    }

    /// A call by id.
    /// Store one leg of a call (see [`WriteOp::CallLeg`] for the batched way).
    pub async fn insert_call_leg(&self, l: &CallLeg) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_call_leg_on(&mut conn, l).await
    }

    /// The legs of a call, in order.
    pub async fn call_legs(&self, call_id: &str) -> Result<Vec<CallLeg>> {
        let rows = sqlx::query(
            "SELECT call_id, seq, party, role, offered_at, answered_at, ended_at, outcome \
             FROM call_legs WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallLeg {
                    call_id: r.try_get("call_id")?,
                    seq: r.try_get("seq")?,
                    party: r.try_get("party")?,
                    role: r.try_get("role")?,
                    offered_at: r.try_get("offered_at")?,
                    answered_at: r.try_get("answered_at")?,
                    ended_at: r.try_get("ended_at")?,
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect()
    }

    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            call_cols!(),
            " FROM calls WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(call_from_row)
        .transpose()
    }

    /// All calls of a customer, newest first.
    pub async fn list_calls_for_customer(&self, customer_id: &str) -> Result<Vec<CallRecord>> {
        self.calls_for_customer(customer_id, i64::MAX).await
    }

    async fn calls_for_customer(&self, customer_id: &str, limit: i64) -> Result<Vec<CallRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            call_cols!(),
            " FROM calls WHERE customer_id = $1 ORDER BY arrived_at DESC, id DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(call_from_row)
        .collect()
    }

    // ---- registrations ----

    /// Insert or replace the binding (agent_id, contact_uri).
    pub async fn save_registration(&self, r: &Registration) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        save_registration_on(&mut conn, r).await
    }

    /// Remove a binding; `true` if it existed.
    pub async fn delete_registration(&self, agent_id: &str, contact_uri: &str) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        delete_registration_on(&mut conn, agent_id, contact_uri).await
    }

    /// Bindings with `expires_at > now_ms` (to restore the location service at start).
    pub async fn load_live_registrations(&self, now_ms: i64) -> Result<Vec<Registration>> {
        sqlx::query(
            "SELECT agent_id, contact_uri, source, transport, expires_at, call_id, cseq, \
             user_agent FROM registrations WHERE expires_at > $1 ORDER BY agent_id, contact_uri",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(registration_from_row)
        .collect()
    }

    /// Delete bindings with `expires_at <= now_ms`; returns how many.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    // ---- callback requests ----

    /// Store a promised callback; committed before the caller hears the promise.
    pub async fn insert_callback_request(&self, r: &CallbackRequest) -> Result<()> {
        sqlx::query(
            "INSERT INTO callback_requests (id, phone, customer_id, due_at, source_call, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        )
        .bind(&r.id)
        .bind(&r.phone)
        .bind(&r.customer_id)
        .bind(r.due_at)
        .bind(&r.source_call)
        .bind(r.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pending callback requests, soonest first.
    pub async fn pending_callback_requests(&self) -> Result<Vec<CallbackRequest>> {
        let rows = sqlx::query(
            "SELECT id, phone, customer_id, due_at, source_call, created_at FROM callback_requests \
             WHERE state = 'pending' ORDER BY due_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CallbackRequest {
                    id: row.try_get("id")?,
                    phone: row.try_get("phone")?,
                    customer_id: row.try_get("customer_id")?,
                    due_at: row.try_get("due_at")?,
                    source_call: row.try_get("source_call")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    // ---- cases ----

    /// Open a case (its customer must exist).
    pub async fn insert_case(&self, c: &Case) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO cases (",
            case_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&c.id)
        .bind(&c.customer_id)
        .bind(c.kind.as_str())
        .bind(&c.department)
        .bind(c.deadline)
        .bind(&c.state)
        .bind(&c.owner)
        .bind(&c.description)
        .bind(c.created_at)
        .bind(c.closed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Close a case at `at_ms` with final `state`. [`StoreError::NotFound`] if unknown.
    pub async fn close_case(&self, id: &str, state: &str, at_ms: i64) -> Result<()> {
        let done = sqlx::query("UPDATE cases SET state = $2, closed_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state)
            .bind(at_ms)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "case",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// A customer's cases not closed yet, oldest first.
    /// Who owns this customer's business when no case names an owner
    /// (first-contact ownership): the owner of an open callback task, else
    /// the agent of their latest answered call since `since_ms`.
    pub async fn recent_owner(&self, customer_id: &str, since_ms: i64) -> Result<Option<String>> {
        let task: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT owner FROM callback_tasks WHERE customer_id = $1 AND owner IS NOT NULL \
             AND state IN ('pending', 'dialing') ORDER BY due_at, id LIMIT 1",
        )
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((Some(owner),)) = task {
            return Ok(Some(owner));
        }
        let call: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT agent_id FROM calls WHERE customer_id = $1 AND agent_id IS NOT NULL \
             AND answered_at IS NOT NULL AND arrived_at >= $2 ORDER BY arrived_at DESC, id DESC LIMIT 1",
        )
        .bind(customer_id)
        .bind(since_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(call.and_then(|(a,)| a))
    }

    pub async fn list_open_cases_for_customer(&self, customer_id: &str) -> Result<Vec<Case>> {
        sqlx::query(concat!(
            "SELECT ",
            case_cols!(),
            " FROM cases WHERE customer_id = $1 AND closed_at IS NULL ORDER BY created_at, id"
        ))
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(case_from_row)
        .collect()
    }

    // ---- the record an agent sees ----

    /// Customer + phones + work orders + the last [`RECORD_CALL_LIMIT`] calls
    /// + open cases; `None` if the customer is unknown.
    pub async fn customer_record(&self, customer_id: &str) -> Result<Option<CustomerRecord>> {
        let Some(customer) = self.get_customer(customer_id).await? else {
            return Ok(None);
        };
        Ok(Some(CustomerRecord {
            phones: self.customer_phones(customer_id).await?,
            work_orders: self.list_work_orders_for_customer(customer_id).await?,
            calls: self
                .calls_for_customer(customer_id, RECORD_CALL_LIMIT)
                .await?,
            open_cases: self.list_open_cases_for_customer(customer_id).await?,
            customer,
        }))
    }
}
