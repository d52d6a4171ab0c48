//! The dialer task: the tokio shell around [`campaign::Dialer`]. It owns
//! the dialer (one task, a mailbox for call results, no shared state),
//! reads new callback tasks from the store, writes every attempt before its
//! INVITE, spawns one [`outbound`] call task per dial and persists what
//! each call's end means: task state, survey, case, phone flag.
//!
//! [`campaign::Dialer`]: crate::campaign::Dialer

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::callback_call;
use super::outbound::{self, CallJob, CallResult, OutboundDeps};
use crate::campaign::{
    answers_from_vars, classify_sip_status, judge_survey, CallbackRules, Dial, DialMode, Dialer,
    FailReason, Outcome, PacerConfig, Task, TaskId, TaskKind, TaskState,
};
use crate::store::{
    AttemptStart, CallArrival, CampaignTaskRow, CaseRow, CaseUpdate, Direction, FinishAttempt,
    Store, SurveyRow, TaskProgress,
};

/// Complaint handling promise (5 working days) reused for callback cases.
const CASE_DEADLINE_MS: i64 = 5 * 24 * 3600 * 1000;
/// New tasks are looked for with this much overlap (imports from another
/// process stamp `created_at` with their own clock reading).
const SYNC_OVERLAP_MS: i64 = 5 * 60 * 1000;
/// The lease (`leases.name`) of the one node that dials when several share
/// the database.
const DIALER_LEASE: &str = "callback_dialer";
/// Shortest lease: a holder must miss renewals for this long (a dead node,
/// a lost database) before another node dials.
const MIN_LEASE_MS: i64 = 15_000;

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The call variable holding the agent's remarks on a survey form.
const REMARKS: &str = "remarks";

/// One case per task: a partial survey called again adds events, not cases.
fn case_id_for(task_key: &str) -> String {
    format!("dis-{task_key}")
}

/// A call record id (the same form as inbound calls').
fn new_call_id(now_ms: i64) -> String {
    format!("{now_ms:x}-{:08x}", rand::random::<u32>())
}

fn state_name(s: TaskState) -> &'static str {
    match s {
        TaskState::Pending => "pending",
        TaskState::Dialing => "dialing",
        TaskState::Done => "done",
        TaskState::Failed => "failed",
        TaskState::Invalid => "invalid",
        TaskState::Cancelled => "cancelled",
    }
}

fn parse_state(s: &str) -> TaskState {
    match s {
        "dialing" => TaskState::Dialing,
        "done" => TaskState::Done,
        "failed" => TaskState::Failed,
        "invalid" => TaskState::Invalid,
        "cancelled" => TaskState::Cancelled,
        _ => TaskState::Pending,
    }
}

/// The attempt's outcome as stored (`callback_attempts.outcome`).
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Answered { completed: true } => "answered",
        Outcome::Answered { completed: false } => "partial",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::Invalid => "invalid",
        Outcome::Declined => "declined",
        Outcome::Error => "error",
    }
}

fn fail_name(f: FailReason) -> &'static str {
    match f {
        FailReason::Overdue => "overdue",
        FailReason::MaxAttempts => "max_attempts",
        FailReason::Declined => "declined",
        FailReason::TrunkErrors => "trunk_errors",
    }
}

fn progress(key: &str, t: &Task, now: i64) -> TaskProgress {
    TaskProgress {
        id: key.to_string(),
        state: state_name(t.state).to_string(),
        attempts: i64::from(t.attempts),
        errors: i64::from(t.errors),
        errors_in_row: i64::from(t.errors_in_row),
        declined: t.declined,
        due_at: t.next_due.timestamp_millis(),
        first_attempt_at: t.first_attempt_at.map(|t| t.timestamp_millis()),
        last_outcome: t.last_outcome.map(|o| outcome_name(o).to_string()),
        fail_reason: t.fail_reason.map(|f| fail_name(f).to_string()),
        updated_at: now,
    }
}

fn task_from_row(r: &CampaignTaskRow) -> Task {
    Task {
        id: TaskId(0),
        order_no: r.work_order.clone(),
        customer: r.customer_id.clone(),
        phone: r.phone.clone(),
        region: r.region.clone(),
        kind: match r.kind.as_str() {
            "repair" => TaskKind::Repair,
            "second" => TaskKind::Second,
            _ => TaskKind::Install,
        },
        window_start: utc(r.window_start),
        window_end: utc(r.window_end),
        deadline: utc(r.deadline),
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        errors: u32::try_from(r.errors).unwrap_or(0),
        errors_in_row: u32::try_from(r.errors_in_row).unwrap_or(0),
        declined: r.declined,
        state: parse_state(&r.state),
        next_due: utc(r.due_at),
        first_attempt_at: r.first_attempt_at.map(utc),
        last_outcome: None,
        fail_reason: None,
        phone_flagged: false,
    }
}

/// What the dialer remembers of a task beyond the scheduler's view.
#[derive(Debug, Clone)]
struct Meta {
    customer_id: String,
    work_order: String,
    region: String,
    kind: TaskKind,
    case_id: Option<String>,
}

/// Start the dialer. `rules` and `pacing` come from `[campaign]` and its trunk.
pub fn spawn(
    store: Store,
    deps: Arc<OutboundDeps>,
    rules: CallbackRules,
    pacing: PacerConfig,
    poll: Duration,
    node: String,
    cancel: CancellationToken,
) -> anyhow::Result<(CampaignHandle, tokio::task::JoinHandle<()>)> {
    let mode = pacing.mode;
    let dialer = Dialer::new(rules, pacing).map_err(|e| anyhow::anyhow!("campaign: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut shell = Shell {
            store,
            deps,
            dialer,
            mode,
            meta: HashMap::new(),
            synced_at: None,
            agent_calls: HashMap::new(),
            forms: HashMap::new(),
            awaiting: HashMap::new(),
            node,
            // Renewed every poll: three polls may be missed before it lapses.
            lease_ttl_ms: i64::try_from(poll.as_millis().saturating_mul(3))
                .unwrap_or(i64::MAX)
                .max(MIN_LEASE_MS),
            leader: false,
        };
        shell.run(poll, rx, cancel).await
    });
    Ok((CampaignHandle { tx, mode }, task))
}

/// How long an answered agent callback waits for the agent's survey form
/// before it is settled as a partial survey (and called again).
const FORM_WAIT_MS: i64 = 10 * 60 * 1000;

/// Why an agent callback or its survey form was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallbackError {
    #[error("no open callback task {0:?}")]
    UnknownTask(String),
    #[error("{0}")]
    Task(String),
    #[error("{0}")]
    Agent(crate::acd::AcdError),
    #[error("the trunk has no room for another call now; try again shortly")]
    TrunkFull,
    #[error("agent callbacks need the ACD")]
    NoAcd,
    #[error("call {call_id:?} is not an agent callback of task {task_id:?}")]
    UnknownCall { task_id: String, call_id: String },
    #[error("call {0:?} belongs to another agent")]
    NotYourCall(String),
    #[error("{0}")]
    BadAnswer(String),
    #[error("the callback dialer is not running")]
    Stopped,
    #[error("another node runs the callback dialer now; try again shortly")]
    NotLeader,
}

/// An agent callback under way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallStarted {
    pub call_id: String,
    pub task_id: String,
    pub attempt: u32,
    pub agent: String,
}

/// What the agent's survey form means, told at once (the task itself is
/// settled when the call has ended too).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FormVerdict {
    pub task_id: String,
    pub call_id: String,
    pub completed: bool,
    pub dissatisfied: bool,
    /// The case a dissatisfied answer opens (or keeps open).
    pub case_id: Option<String>,
}

enum Command {
    Call {
        task_id: String,
        agent: String,
        reply: oneshot::Sender<Result<CallStarted, CallbackError>>,
    },
    Form {
        task_id: String,
        call_id: String,
        /// None: a supervisor, who may fill in any call's form.
        agent: Option<String>,
        answers: BTreeMap<String, u8>,
        remarks: String,
        reply: oneshot::Sender<Result<FormVerdict, CallbackError>>,
    },
}

/// The API's way into the dialer task.
#[derive(Clone)]
pub struct CampaignHandle {
    tx: mpsc::UnboundedSender<Command>,
    mode: DialMode,
}

impl CampaignHandle {
    pub fn mode(&self) -> DialMode {
        self.mode
    }

    /// Preview dialing: call `agent`'s phone, then the task's customer.
    pub async fn call_task(
        &self,
        task_id: &str,
        agent: &str,
    ) -> Result<CallStarted, CallbackError> {
        self.ask(|reply| Command::Call {
            task_id: task_id.to_string(),
            agent: agent.to_string(),
            reply,
        })
        .await
    }

    /// The agent's survey answers for an agent callback (question key →
    /// choice key, as the IVR survey would have them).
    pub async fn submit_form(
        &self,
        task_id: &str,
        call_id: &str,
        agent: Option<String>,
        answers: BTreeMap<String, u8>,
        remarks: String,
    ) -> Result<FormVerdict, CallbackError> {
        self.ask(|reply| Command::Form {
            task_id: task_id.to_string(),
            call_id: call_id.to_string(),
            agent,
            answers,
            remarks,
            reply,
        })
        .await
    }

    /// Send a command to the dialer task and wait for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, CallbackError>>) -> Command,
    ) -> Result<T, CallbackError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(command(reply))
            .map_err(|_| CallbackError::Stopped)?;
        rx.await.map_err(|_| CallbackError::Stopped)?
    }
}

/// An agent's survey form: the answers as call variables, like the IVR's.
type Form = BTreeMap<String, String>;

struct Shell {
    store: Store,
    deps: Arc<OutboundDeps>,
    dialer: Dialer,
    mode: DialMode,
    meta: HashMap<String, Meta>,
    /// When the last look for new tasks started (store clock, ms).
    synced_at: Option<i64>,
    /// Agent callbacks under way or waiting for their form: call id → (task, agent).
    agent_calls: HashMap<String, (String, String)>,
    /// Forms that came in while their call was still going.
    forms: HashMap<String, Form>,
    /// Answered agent callbacks that ended before their form: call id →
    /// (result, settle without a form at).
    awaiting: HashMap<String, (CallResult, i64)>,
    /// This node's name in the dialer lease.
    node: String,
    lease_ttl_ms: i64,
    /// Whether this node held the lease at the last tick.
    leader: bool,
}

impl Shell {
    fn now_ms(&self) -> i64 {
        i64::try_from(self.deps.clock.now_ms()).unwrap_or(i64::MAX)
    }

    async fn run(
        &mut self,
        poll: Duration,
        mut commands: mpsc::UnboundedReceiver<Command>,
        cancel: CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<CallResult>();
        info!(mode = ?self.mode, "callback dialer started");
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(r) = rx.recv() => self.on_call_ended(r).await,
                Some(cmd) = commands.recv() => self.command(cmd, &tx).await,
                _ = tick.tick() => {
                    // This node's own calls are settled whoever dials now.
                    self.settle_formless().await;
                    if !self.hold_lease().await {
                        continue;
                    }
                    self.sync().await;
                    self.dial(&tx).await;
                }
            }
        }
        if self.leader {
            // Another node may take over at once instead of after the TTL.
            if let Err(e) = self.store.release_lease(DIALER_LEASE, &self.node).await {
                warn!(error = %e, "cannot release the dialer lease");
            }
        }
        info!(
            in_flight = self.dialer.in_flight(),
            "callback dialer stopped"
        );
    }

    /// Take or renew the dialer lease; only its holder syncs and dials
    /// (several nodes may share one PostgreSQL database). Results of calls
    /// already in flight are handled either way.
    async fn hold_lease(&mut self) -> bool {
        let now = self.now_ms();
        let held = match self
            .store
            .acquire_lease(DIALER_LEASE, &self.node, now, self.lease_ttl_ms)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                // Unsure means not ours: dialling twice is worse than a pause.
                warn!(error = %e, "cannot renew the dialer lease; not dialling");
                false
            }
        };
        if held && !self.leader {
            info!(node = %self.node, "dialer lease gained: loading callback tasks");
            // Another node may have dialled while we did not hold the lease:
            // reload every task not in flight here from scratch (the first
            // sync also closes attempts a crashed holder left `dialing`).
            self.dialer.forget_idle();
            let dialer = &self.dialer;
            self.meta.retain(|k, _| dialer.knows(k));
            self.synced_at = None;
        } else if !held && self.leader {
            info!(node = %self.node, "dialer lease lost: not dialling");
        }
        self.leader = held;
        held
    }

    /// Load tasks the dialer does not know yet (imports, second callbacks);
    /// the first load also recovers attempts cut off by a restart.
    async fn sync(&mut self) {
        let now = self.now_ms();
        let since = self.synced_at.map_or(i64::MIN, |s| s - SYNC_OVERLAP_MS);
        let rows = match self.store.active_campaign_tasks(since).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot read callback tasks; retrying");
                return;
            }
        };
        self.synced_at = Some(now);
        for row in rows {
            if self.dialer.knows(&row.id) {
                continue;
            }
            let task = task_from_row(&row);
            if row.phone.is_empty() {
                warn!(task = %row.id, "customer has no phone number: task failed");
                let mut t = task;
                t.state = TaskState::Invalid;
                let mut p = progress(&row.id, &t, now);
                p.last_outcome = Some("no_phone".into());
                if let Err(e) = self.store.save_task_progress(&p).await {
                    warn!(error = %e, "cannot save the task");
                }
                continue;
            }
            let dialing = task.state == TaskState::Dialing;
            let attempts = task.attempts;
            match self.dialer.load(&row.id, task, utc(now)) {
                Ok(Some(rec)) => {
                    // Persist before anything is dialled: the attempt is
                    // closed and will not be repeated.
                    let p = progress(&row.id, &rec.task, now);
                    info!(task = %row.id, attempt = rec.attempt, "attempt cut off by a restart: closed as interrupted");
                    if let Err(e) = self
                        .store
                        .interrupt_attempt(&p, i64::from(rec.attempt), now)
                        .await
                    {
                        warn!(error = %e, "cannot close the interrupted attempt");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(task = %row.id, error = %e, dialing, attempts, "task not loaded");
                    continue;
                }
            }
            self.meta.insert(
                row.id.clone(),
                Meta {
                    customer_id: row.customer_id.clone(),
                    work_order: row.work_order.clone(),
                    region: row.region.clone(),
                    kind: task_from_row(&row).kind,
                    case_id: row.case_id.clone(),
                },
            );
        }
    }

    async fn dial(&mut self, results: &mpsc::UnboundedSender<CallResult>) {
        let now = self.now_ms();
        let tick = self.dialer.poll(utc(now));
        for (key, t) in &tick.expired {
            info!(task = %key, "callback task overdue");
            if let Err(e) = self.store.save_task_progress(&progress(key, t, now)).await {
                warn!(error = %e, "cannot save the overdue task");
            }
        }
        for d in tick.dials {
            let call_id = new_call_id(now);
            if let Some(job) = self.begin_attempt(&d, now, call_id).await {
                info!(task = %job.task_key, attempt = job.attempt, phone = %job.phone, "callback attempt");
                outbound::spawn(job, self.deps.clone(), results.clone());
            }
        }
        if self.mode == DialMode::Progressive {
            self.dial_progressive(now, results).await;
        }
        let pruned = self.dialer.prune();
        if pruned > 0 {
            let dialer = &self.dialer;
            self.meta.retain(|k, _| dialer.knows(k));
        }
    }

    /// Write the attempt (with its call record) before anything is dialled;
    /// None (and the task put back as a trunk-side error) when that fails.
    async fn begin_attempt(&mut self, d: &Dial, now: i64, call_id: String) -> Option<CallJob> {
        let meta = self.meta.get(&d.key).cloned()?;
        let work_order = (!meta.work_order.is_empty()).then(|| meta.work_order.clone());
        let start = AttemptStart {
            task: progress(&d.key, &d.task, now),
            attempt: i64::from(d.attempt),
            call: CallArrival {
                id: call_id.clone(),
                direction: Direction::Out,
                from_number: self.deps.caller_id.clone(),
                to_number: d.task.phone.clone(),
                customer_id: Some(meta.customer_id.clone()),
                work_order: work_order.clone(),
                task_id: Some(d.key.clone()),
                queue: None,
                arrived_at: now,
            },
        };
        if let Err(e) = self.store.start_attempt(&start).await {
            warn!(task = %d.key, error = %e, "cannot record the attempt; not dialling");
            if let Ok(t) = self.dialer.finish(&d.key, Outcome::Error, utc(now)) {
                let _ = self
                    .store
                    .save_task_progress(&progress(&d.key, &t, now))
                    .await;
            }
            return None;
        }
        Some(CallJob {
            task_key: d.key.clone(),
            attempt: d.attempt,
            call_id,
            phone: d.task.phone.clone(),
            customer_id: meta.customer_id,
            work_order,
        })
    }

    /// Progressive: one call per ready agent, reserved before the dial, so
    /// an answered customer always has an agent (no abandoned calls).
    async fn dial_progressive(&mut self, now: i64, results: &mpsc::UnboundedSender<CallResult>) {
        let Some(acd) = self.deps.acd.clone() else {
            return;
        };
        while self.dialer.has_due(utc(now)) {
            let call_id = new_call_id(now);
            let Ok(agent) = acd
                .reserve_direct(&call_id, None, self.deps.agent_skill.clone())
                .await
            else {
                return;
            };
            let release = || {
                acd.input(crate::acd::Input::DirectEnded {
                    call_id: call_id.clone(),
                    agent: agent.clone(),
                    wrap_up_ms: 0,
                })
            };
            let Some(d) = self.dialer.start_next(utc(now)) else {
                release();
                return;
            };
            let Some(job) = self.begin_attempt(&d, now, call_id.clone()).await else {
                release();
                continue;
            };
            info!(task = %job.task_key, attempt = job.attempt, %agent, "progressive callback");
            self.agent_calls
                .insert(job.call_id.clone(), (job.task_key.clone(), agent.clone()));
            callback_call::spawn(job, agent, self.deps.clone(), results.clone());
        }
    }

    async fn command(&mut self, cmd: Command, results: &mpsc::UnboundedSender<CallResult>) {
        match cmd {
            Command::Call {
                task_id,
                agent,
                reply,
            } => {
                let r = self.preview_call(&task_id, &agent, results).await;
                let _ = reply.send(r);
            }
            Command::Form {
                task_id,
                call_id,
                agent,
                answers,
                remarks,
                reply,
            } => {
                let r = self.form(&task_id, &call_id, agent, answers, remarks).await;
                let _ = reply.send(r);
            }
        }
    }

    /// Preview: the agent chose this task on the desk.
    async fn preview_call(
        &mut self,
        task_id: &str,
        agent: &str,
        results: &mpsc::UnboundedSender<CallResult>,
    ) -> Result<CallStarted, CallbackError> {
        if !self.leader {
            return Err(CallbackError::NotLeader);
        }
        // A task imported a moment ago may not be loaded yet.
        if !self.dialer.knows(task_id) {
            self.sync().await;
        }
        if !self.dialer.knows(task_id) {
            return Err(CallbackError::UnknownTask(task_id.to_string()));
        }
        let acd = self.deps.acd.clone().ok_or(CallbackError::NoAcd)?;
        let now = self.now_ms();
        let call_id = new_call_id(now);
        acd.reserve_direct(&call_id, Some(agent.to_string()), None)
            .await
            .map_err(CallbackError::Agent)?;
        let release = || {
            acd.input(crate::acd::Input::DirectEnded {
                call_id: call_id.clone(),
                agent: agent.to_string(),
                wrap_up_ms: 0,
            })
        };
        let d = match self.dialer.start_manual(task_id, utc(now)) {
            Ok(d) => d,
            Err(e) => {
                release();
                return Err(match e {
                    crate::campaign::DialerError::TrunkFull => CallbackError::TrunkFull,
                    crate::campaign::DialerError::UnknownTask(t) => CallbackError::UnknownTask(t),
                    other => CallbackError::Task(other.to_string()),
                });
            }
        };
        let Some(job) = self.begin_attempt(&d, now, call_id.clone()).await else {
            release();
            return Err(CallbackError::Task(
                "the attempt could not be stored".into(),
            ));
        };
        let started = CallStarted {
            call_id: job.call_id.clone(),
            task_id: task_id.to_string(),
            attempt: job.attempt,
            agent: agent.to_string(),
        };
        info!(task = %task_id, attempt = job.attempt, %agent, "preview callback");
        self.agent_calls.insert(
            job.call_id.clone(),
            (task_id.to_string(), agent.to_string()),
        );
        callback_call::spawn(job, agent.to_string(), self.deps.clone(), results.clone());
        Ok(started)
    }

    /// A call ended. An answered agent callback is settled with the agent's
    /// form: at once if it came during the call, else when it comes (or
    /// after [`FORM_WAIT_MS`] without one, as a partial survey).
    async fn on_call_ended(&mut self, mut r: CallResult) {
        if !self.agent_calls.contains_key(&r.call_id) {
            return self.on_result(r).await;
        }
        if r.answered {
            match self.forms.remove(&r.call_id) {
                Some(form) => r.vars = form,
                None => {
                    let at = self.now_ms().saturating_add(FORM_WAIT_MS);
                    self.awaiting.insert(r.call_id.clone(), (r, at));
                    return;
                }
            }
        }
        self.agent_calls.remove(&r.call_id);
        self.forms.remove(&r.call_id);
        self.on_result(r).await
    }

    /// The agent's survey form for one of their callbacks.
    async fn form(
        &mut self,
        task_id: &str,
        call_id: &str,
        agent: Option<String>,
        answers: BTreeMap<String, u8>,
        remarks: String,
    ) -> Result<FormVerdict, CallbackError> {
        let unknown = || CallbackError::UnknownCall {
            task_id: task_id.to_string(),
            call_id: call_id.to_string(),
        };
        let (task, owner) = self.agent_calls.get(call_id).cloned().ok_or_else(unknown)?;
        if task != task_id {
            return Err(unknown());
        }
        if agent.is_some_and(|a| a != owner) {
            return Err(CallbackError::NotYourCall(call_id.to_string()));
        }
        let mut parsed = crate::campaign::SurveyAnswers::default();
        for (question, key) in &answers {
            parsed
                .record(question, *key)
                .map_err(|e| CallbackError::BadAnswer(e.to_string()))?;
        }
        let meta = self
            .meta
            .get(task_id)
            .cloned()
            .ok_or_else(|| CallbackError::UnknownTask(task_id.to_string()))?;
        let verdict = judge_survey(meta.kind, &parsed);
        let mut vars: Form = answers
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let remarks = remarks.trim();
        if !remarks.is_empty() {
            vars.insert(REMARKS.to_string(), remarks.to_string());
        }
        let out = FormVerdict {
            task_id: task_id.to_string(),
            call_id: call_id.to_string(),
            completed: parsed.is_complete(),
            dissatisfied: verdict.dissatisfied.is_some(),
            case_id: verdict
                .dissatisfied
                .as_ref()
                .map(|_| meta.case_id.clone().unwrap_or_else(|| case_id_for(task_id))),
        };
        info!(task = %task_id, call = %call_id, completed = out.completed, dissatisfied = out.dissatisfied, "agent survey form");
        match self.awaiting.remove(call_id) {
            Some((mut r, _)) => {
                self.agent_calls.remove(call_id);
                r.vars = vars;
                self.on_result(r).await;
            }
            None => {
                self.forms.insert(call_id.to_string(), vars);
            }
        }
        Ok(out)
    }

    /// Answered agent callbacks whose form never came: settled as partial.
    async fn settle_formless(&mut self) {
        let now = self.now_ms();
        let late: Vec<String> = self
            .awaiting
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for call_id in late {
            if let Some((r, _)) = self.awaiting.remove(&call_id) {
                warn!(call = %call_id, task = %r.task_key, "no survey form from the agent: settled as partial");
                self.agent_calls.remove(&call_id);
                self.on_result(r).await;
            }
        }
    }

    async fn on_result(&mut self, r: CallResult) {
        let now = self.now_ms();
        let Some(meta) = self.meta.get(&r.task_key).cloned() else {
            warn!(task = %r.task_key, "result for an unknown task");
            return;
        };
        let answers = answers_from_vars(&r.vars);
        let (outcome, verdict) = if r.answered {
            let mut v = judge_survey(meta.kind, &answers);
            // The agent's own words go to the department manager too.
            if let (Some(text), Some(remarks)) = (v.dissatisfied.as_mut(), r.vars.get(REMARKS)) {
                text.push_str(&format!("; 坐席备注: {remarks}"));
            }
            (v.outcome, Some(v))
        } else if r.not_sent {
            (Outcome::Error, None)
        } else {
            (classify_sip_status(r.status.unwrap_or(408)), None)
        };
        let task = match self.dialer.finish(&r.task_key, outcome, utc(now)) {
            Ok(t) => t,
            Err(e) => {
                warn!(task = %r.task_key, error = %e, "outcome not applied");
                return;
            }
        };
        info!(task = %r.task_key, attempt = r.attempt, outcome = outcome_name(outcome), state = state_name(task.state), "callback outcome");
        let mut finish = FinishAttempt {
            task: progress(&r.task_key, &task, now),
            attempt: i64::from(r.attempt),
            outcome: outcome_name(outcome).to_string(),
            sip_status: r.status.map(i64::from),
            ended_at: now,
            survey: None,
            case: None,
            phone_status: None,
        };
        if outcome == Outcome::Invalid {
            // 404/410/604: the number does not exist (空号); others: wrong (错号).
            let status = match r.status {
                Some(404 | 410 | 604) => "empty",
                _ => "wrong",
            };
            finish.phone_status = Some((meta.customer_id.clone(), status.to_string()));
        } else if r.answered {
            finish.phone_status = Some((meta.customer_id.clone(), "ok".to_string()));
        }
        if let Some(v) = verdict {
            if v.record {
                finish.survey = Some(SurveyRow {
                    call_id: r.call_id.clone(),
                    task_id: r.task_key.clone(),
                    customer_id: meta.customer_id.clone(),
                    work_order: (!meta.work_order.is_empty()).then(|| meta.work_order.clone()),
                    attitude: answers.attitude.map(|a| match a {
                        crate::campaign::Attitude::Satisfied => 5,
                        crate::campaign::Attitude::Average => 3,
                        crate::campaign::Attitude::Dissatisfied => 1,
                    }),
                    cleaned: answers.site_cleaned,
                    fees_ok: answers.fees_correct,
                    satisfaction: answers.satisfaction.map(|s| s.store_value()),
                    remarks: r
                        .vars
                        .get(REMARKS)
                        .cloned()
                        .or_else(|| v.dissatisfied.clone())
                        .unwrap_or_default(),
                    completed: answers.is_complete(),
                    answered_at: now,
                });
            }
            finish.case = match (&meta.case_id, v.dissatisfied, v.close_case) {
                (Some(case_id), _, true) => Some(CaseUpdate::Close {
                    case_id: case_id.clone(),
                    text: "二次回访: 客户满意, 闭环".to_string(),
                }),
                (Some(case_id), Some(text), _) => Some(CaseUpdate::Reopen {
                    case_id: case_id.clone(),
                    text: format!("二次回访仍不满意: {text}"),
                }),
                (None, Some(text), _) => Some(CaseUpdate::Open(Box::new(
                    self.new_case(&meta, &r, text, now).await,
                ))),
                _ => None,
            };
        }
        if let Err(e) = self.store.finish_attempt(&finish).await {
            warn!(task = %r.task_key, error = %e, "cannot persist the callback outcome");
        }
        self.deps
            .events
            .publish(crate::events::Event::CallbackResult {
                task_id: r.task_key.clone(),
                call_id: r.call_id.clone(),
                outcome: outcome_name(outcome).to_string(),
                state: state_name(task.state).to_string(),
            });
    }

    async fn new_case(&self, meta: &Meta, r: &CallResult, text: String, now: i64) -> CaseRow {
        let order = if meta.work_order.is_empty() {
            None
        } else {
            self.store
                .get_work_order(&meta.work_order)
                .await
                .ok()
                .flatten()
        };
        let interviewee = self
            .store
            .get_customer(&meta.customer_id)
            .await
            .ok()
            .flatten()
            .map(|c| c.name)
            .unwrap_or_default();
        CaseRow {
            // One case per task: a partial survey called again adds events, not cases.
            id: case_id_for(&r.task_key),
            customer_id: meta.customer_id.clone(),
            kind: "dissatisfied".to_string(),
            department: order
                .as_ref()
                .map(|o| o.department.clone())
                .unwrap_or_default(),
            deadline: now + CASE_DEADLINE_MS,
            state: "open".to_string(),
            description: format!("被访人 {interviewee}: {text}"),
            created_at: now,
            closed_at: None,
            work_order: (!meta.work_order.is_empty()).then(|| meta.work_order.clone()),
            region: meta.region.clone(),
            interviewee,
            source_call: Some(r.call_id.clone()),
            fixed_at: None,
        }
    }
}

/// Start the dialer when `[campaign]` is enabled with a trunk; otherwise
/// nothing (imports still plan tasks for a later start). The task ends
/// after the cancel token, once it has released its lease.
#[allow(clippy::too_many_arguments)]
pub fn start(
    config: &crate::config::Config,
    store: Store,
    media: crate::media::engine::MediaEngine,
    sip: crate::sip::SipHandle,
    writer: crate::store::StoreWriter,
    clock: Arc<dyn crate::clock::Clock>,
    events: crate::events::EventHub,
    acd: super::acd::AcdHandle,
    browsers: Arc<dyn crate::browser::BrowserMedia>,
    cancel: CancellationToken,
) -> anyhow::Result<Option<(CampaignHandle, tokio::task::JoinHandle<()>)>> {
    let Some((campaign, trunk)) = config.campaign_trunk() else {
        return Ok(None);
    };
    let path = config.resolve(&campaign.dialplan);
    let routing = super::Routing::load(std::slice::from_ref(&path)).map_err(|errors| {
        anyhow::anyhow!(
            "survey dialplan could not be loaded:\n{}",
            errors.join("\n")
        )
    })?;
    let plan = routing
        .dialplans
        .plans()
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{}: no dialplan", path.display()))?;
    let address = trunk
        .socket_addr()
        .ok_or_else(|| anyhow::anyhow!("trunk {}: bad address {}", trunk.name, trunk.address))?;
    let deps = Arc::new(OutboundDeps {
        media,
        sip,
        writer,
        clock,
        events,
        routing: Arc::new(routing),
        plan,
        trunk: address,
        transport: trunk.transport.to_ascii_uppercase(),
        caller_id: trunk.caller_id.clone(),
        ring_timeout: Duration::from_secs(campaign.ring_timeout_secs),
        max_call: Duration::from_secs(campaign.max_call_secs),
        acd: Some(acd),
        agent_skill: (!campaign.agent_skill.is_empty()).then(|| campaign.agent_skill.clone()),
        wrap_up_ms: campaign.wrap_up_secs.saturating_mul(1000),
        record: config.acd.record,
        recordings: config.resolve(&config.recordings.dir),
        browsers,
    });
    info!(trunk = %trunk.name, address = %address, mode = %campaign.mode, "callback campaign enabled");
    let (handle, task) = spawn(
        store,
        deps,
        campaign.rules(),
        trunk.pacing(campaign.dial_mode()),
        Duration::from_millis(campaign.poll_ms),
        config.node_name(),
        cancel,
    )?;
    Ok(Some((handle, task)))
}
