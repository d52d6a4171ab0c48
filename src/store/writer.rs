//! The writer task: call records leave the call's path through a bounded
//! queue and land in the database in batched transactions.
//!
//! * [`StoreWriter::try_send`] never waits: if the queue is full the op is
//!   dropped, counted in [`WriterStats::dropped`] and logged (rate-limited).
//! * The task takes up to [`WriterConfig::max_batch`] ops, waiting at most
//!   [`WriterConfig::max_delay`] after the first for more, and writes them in
//!   one transaction.
//! * If the database fails for a reason that may pass (connection refused,
//!   I/O, pool timeout, lock / busy, serialization failure…) the same batch is
//!   retried with exponential back-off; ops stay in order. While it waits the
//!   task keeps taking ops from the queue into its buffer, up to
//!   [`WriterConfig::max_pending`]; then the queue fills and `try_send` starts
//!   dropping. At most `queue_capacity + max_pending` ops wait in memory.
//! * If an op itself is bad (constraint violation, completion of an unknown
//!   call, encoding error) the batch is replayed op by op and only the bad op
//!   is dropped, counted in [`WriterStats::failed`] and logged.
//! * When every [`StoreWriter`] clone is dropped the task writes what is
//!   left and ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::error::ErrorKind;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::{Result, StoreError};
use super::queries::{
    complete_call_on, delete_registration_on, insert_call_arrival_on, insert_call_leg_on,
    save_registration_on,
};
use super::types::{CallArrival, CallCompletion, CallLeg, Registration};
use super::Store;

/// One write handed to the writer task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// [`Store::insert_call_arrival`].
    CallArrival(CallArrival),
    /// [`Store::complete_call`].
    CallCompletion(CallCompletion),
    /// [`Store::insert_call_leg`].
    CallLeg(CallLeg),
    /// [`Store::save_registration`].
    SaveRegistration(Registration),
    /// [`Store::delete_registration`].
    DeleteRegistration {
        /// Agent.
        agent_id: String,
        /// Contact URI of the binding.
        contact_uri: String,
    },
}

/// Sizes and timings of the writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Capacity of the queue between callers and the task.
    pub queue_capacity: usize,
    /// Most ops in one transaction.
    pub max_batch: usize,
    /// Longest wait for more ops after the first of a batch.
    pub max_delay: Duration,
    /// Most ops the task holds while the database is failing.
    pub max_pending: usize,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            max_batch: 100,
            max_delay: Duration::from_millis(50),
            max_pending: 10_000,
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Counters of a writer (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Ops accepted by `try_send`.
    pub accepted: u64,
    /// Ops refused by `try_send` (queue full or writer stopped).
    pub dropped: u64,
    /// Ops committed.
    pub written: u64,
    /// Ops the database refused as invalid, dropped.
    pub failed: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
}

enum Msg {
    // Boxed: a WriteOp is a few hundred bytes, a flush marker 8.
    Op(Box<WriteOp>),
    Flush(oneshot::Sender<()>),
}

/// Sending side of the writer task; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl StoreWriter {
    /// Start the writer task on the current tokio runtime. The handle ends
    /// when all `StoreWriter` clones are dropped and everything queued is
    /// written.
    pub fn spawn(store: Store, config: WriterConfig) -> (StoreWriter, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let task = Task {
            store,
            config,
            rx,
            counters: counters.clone(),
            pending: VecDeque::new(),
            closed: false,
        };
        let handle = tokio::spawn(task.run());
        (StoreWriter { tx, counters }, handle)
    }

    /// Queue an op without waiting. [`StoreError::QueueFull`] or
    /// [`StoreError::WriterClosed`] if it was dropped (already counted and logged).
    pub fn try_send(&self, op: WriteOp) -> Result<()> {
        match self.tx.try_send(Msg::Op(Box::new(op))) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let closed = matches!(e, mpsc::error::TrySendError::Closed(_));
                if n.is_power_of_two() {
                    tracing::warn!(dropped_total = n, closed, "store writer dropped a record");
                }
                Err(if closed {
                    StoreError::WriterClosed
                } else {
                    StoreError::QueueFull
                })
            }
        }
    }

    /// Wait until every op queued before this call is committed (or dropped
    /// as invalid). Waits as long as the database is away.
    pub async fn flush(&self) -> Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done_tx))
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        done_rx.await.map_err(|_| StoreError::WriterClosed)
    }

    /// Current counters.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

struct Task {
    store: Store,
    config: WriterConfig,
    rx: mpsc::Receiver<Msg>,
    counters: Arc<Counters>,
    pending: VecDeque<Msg>,
    closed: bool,
}

/// Errors that say the op is wrong, not that the database is unwell:
/// retrying would fail forever.
fn is_bad_op(e: &StoreError) -> bool {
    match e {
        StoreError::NotFound { .. } | StoreError::Json(_) | StoreError::Corrupt { .. } => true,
        StoreError::Db(sqlx::Error::Database(db)) => matches!(
            db.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        ),
        StoreError::Db(sqlx::Error::Encode(_)) | StoreError::Db(sqlx::Error::Decode(_)) => true,
        _ => false,
    }
}

impl Task {
    fn pending_ops(&self) -> usize {
        self.pending
            .iter()
            .filter(|m| matches!(m, Msg::Op(_)))
            .count()
    }

    fn push(&mut self, msg: Option<Msg>) -> bool {
        match msg {
            Some(m) => {
                let flush = matches!(m, Msg::Flush(_));
                self.pending.push_back(m);
                flush
            }
            None => {
                self.closed = true;
                true
            }
        }
    }

    /// Take what is already queued, up to `limit` buffered messages.
    fn top_up(&mut self, limit: usize) {
        while !self.closed && self.pending.len() < limit {
            match self.rx.try_recv() {
                Ok(m) => {
                    self.pending.push_back(m);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Wait for the first op, then for more until the batch is full, a flush
    /// arrives or `max_delay` passes.
    async fn gather(&mut self) {
        let limit = self.config.max_batch.min(self.config.max_pending).max(1);
        if self.pending.is_empty() {
            let m = self.rx.recv().await;
            if self.push(m) {
                return;
            }
        }
        let deadline = Instant::now() + self.config.max_delay;
        while !self.closed && self.pending_ops() < limit {
            tokio::select! {
                m = self.rx.recv() => {
                    if self.push(m) {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    fn answer_flushes(&mut self) {
        while let Some(Msg::Flush(_)) = self.pending.front() {
            if let Some(Msg::Flush(done)) = self.pending.pop_front() {
                let _ = done.send(());
            }
        }
    }

    /// Number of ops at the front of `pending` forming the next batch.
    fn batch_len(&self) -> usize {
        self.pending
            .iter()
            .take(self.config.max_batch.max(1))
            .take_while(|m| matches!(m, Msg::Op(_)))
            .count()
    }

    async fn write_batch(&self, n: usize) -> Result<()> {
        let mut tx = self.store.pool.begin().await?;
        for m in self.pending.iter().take(n) {
            if let Msg::Op(op) = m {
                apply(&mut tx, op).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_one(&self, op: &WriteOp) -> Result<()> {
        let mut tx = self.store.pool.begin().await?;
        apply(&mut tx, op).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run(mut self) {
        let mut backoff = self.config.retry_initial;
        loop {
            if self.pending.is_empty() && self.closed {
                break;
            }
            if self.pending.is_empty() {
                self.gather().await;
            } else {
                self.top_up(self.config.max_pending.max(1));
            }
            self.answer_flushes();
            let n = self.batch_len();
            if n == 0 {
                continue;
            }
            let failure = match self.write_batch(n).await {
                Ok(()) => {
                    self.pending.drain(..n);
                    self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) if is_bad_op(&e) => self.replay_one_by_one(n).await,
                Err(e) => Some(e),
            };
            match failure {
                None => {
                    backoff = self.config.retry_initial;
                    self.answer_flushes();
                }
                Some(e) => {
                    let retries = self.counters.retries.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        error = %e,
                        pending = self.pending.len(),
                        retries,
                        retry_in_ms = backoff.as_millis() as u64,
                        "store writer: database unavailable, will retry"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// Write the first `n` ops one transaction each, dropping the ones the
    /// database refuses as invalid. Returns the error that stopped it if the
    /// database itself failed (the op stays at the front).
    async fn replay_one_by_one(&mut self, n: usize) -> Option<StoreError> {
        for _ in 0..n {
            let Some(Msg::Op(op)) = self.pending.front() else {
                break;
            };
            match self.write_one(op).await {
                Ok(()) => {
                    self.counters.written.fetch_add(1, Ordering::Relaxed);
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if is_bad_op(&e) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, op = ?op, "store writer: dropping invalid record");
                }
                Err(e) => return Some(e),
            }
            self.pending.pop_front();
        }
        None
    }
}

async fn apply(conn: &mut sqlx::AnyConnection, op: &WriteOp) -> Result<()> {
    match op {
        WriteOp::CallArrival(a) => insert_call_arrival_on(conn, a).await,
        WriteOp::CallCompletion(c) => complete_call_on(conn, c).await,
        WriteOp::CallLeg(l) => insert_call_leg_on(conn, l).await,
        WriteOp::SaveRegistration(r) => save_registration_on(conn, r).await,
        WriteOp::DeleteRegistration {
            agent_id,
            contact_uri,
        } => delete_registration_on(conn, agent_id, contact_uri)
            .await
            .map(|_| ()),
    }
}
