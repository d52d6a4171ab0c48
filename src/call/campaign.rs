//! The dialer task: the tokio shell around [`campaign::Dialer`]. It owns
//! the dialer (one task, a mailbox for call results, no shared state),
//! reads new callback tasks from the store, writes every attempt before its
//! INVITE, spawns one [`outbound`] call task per dial and persists what
//! each call's end means: task state, survey, case, phone flag.
//!
//! [`campaign::Dialer`]: crate::campaign::Dialer

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::outbound::{self, CallJob, CallResult, OutboundDeps};
use crate::campaign::{
    answers_from_vars, classify_sip_status, judge_survey, CallbackRules, Dialer, FailReason,
    Outcome, PacerConfig, Task, TaskId, TaskKind, TaskState,
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
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let dialer = Dialer::new(rules, pacing).map_err(|e| anyhow::anyhow!("campaign: {e}"))?;
    Ok(tokio::spawn(async move {
        let mut shell = Shell {
            store,
            deps,
            dialer,
            meta: std::collections::HashMap::new(),
            synced_at: None,
            node,
            // Renewed every poll: three polls may be missed before it lapses.
            lease_ttl_ms: i64::try_from(poll.as_millis().saturating_mul(3))
                .unwrap_or(i64::MAX)
                .max(MIN_LEASE_MS),
            leader: false,
        };
        shell.run(poll, cancel).await
    }))
}

struct Shell {
    store: Store,
    deps: Arc<OutboundDeps>,
    dialer: Dialer,
    meta: std::collections::HashMap<String, Meta>,
    /// When the last look for new tasks started (store clock, ms).
    synced_at: Option<i64>,
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

    async fn run(&mut self, poll: Duration, cancel: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel::<CallResult>();
        info!("callback dialer started");
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(r) = rx.recv() => self.on_result(r).await,
                _ = tick.tick() => {
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
            let Some(meta) = self.meta.get(&d.key).cloned() else {
                continue;
            };
            let call_id = format!("{now:x}-{:08x}", rand::random::<u32>());
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
            // Write the attempt, then dial: if this fails nothing is dialled
            // and the task is put back as a trunk-side error.
            if let Err(e) = self.store.start_attempt(&start).await {
                warn!(task = %d.key, error = %e, "cannot record the attempt; not dialling");
                if let Ok(t) = self.dialer.finish(&d.key, Outcome::Error, utc(now)) {
                    let _ = self
                        .store
                        .save_task_progress(&progress(&d.key, &t, now))
                        .await;
                }
                continue;
            }
            info!(task = %d.key, attempt = d.attempt, phone = %d.task.phone, "callback attempt");
            outbound::spawn(
                CallJob {
                    task_key: d.key,
                    attempt: d.attempt,
                    call_id,
                    phone: d.task.phone,
                    customer_id: meta.customer_id,
                    work_order,
                },
                self.deps.clone(),
                results.clone(),
            );
        }
        let pruned = self.dialer.prune();
        if pruned > 0 {
            let dialer = &self.dialer;
            self.meta.retain(|k, _| dialer.knows(k));
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
            let v = judge_survey(meta.kind, &answers);
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
                    remarks: v.dissatisfied.clone().unwrap_or_default(),
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
            id: format!("dis-{}", r.task_key),
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
    cancel: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
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
    });
    info!(trunk = %trunk.name, address = %address, mode = %campaign.mode, "callback campaign enabled");
    let task = spawn(
        store,
        deps,
        campaign.rules(),
        trunk.pacing(campaign.dial_mode()),
        Duration::from_millis(campaign.poll_ms),
        config.node_name(),
        cancel,
    )?;
    Ok(Some(task))
}
