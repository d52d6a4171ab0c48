//! Callback tasks and their scheduler.
//!
//! Every change to a task is [`transition`]: a plain function of the task,
//! an [`Input`] and `now` (plus the rules), returning the new task. The
//! [`Scheduler`] only adds indexes on top, so the shell can do "write the
//! attempt, then dial": call [`Scheduler::start_attempt`], persist the task it
//! returns, then send the INVITE; persist again after
//! [`Scheduler::on_outcome`]. A task found in `Dialing` after a restart had
//! its result lost: feed it `Outcome::Error` (retry soon, not counted).
//!
//! Attempt counting: `attempts` counts dials started; `errors` counts those
//! that ended in a trunk/server error. `max_attempts` applies to
//! `attempts - errors`, the attempts that reached the customer's side, so a
//! broken trunk does not use up the customer's chances.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::rules::{CallbackRules, CallingHours, RulesError, TaskPlan};

/// Task identifier, chosen by the shell (e.g. the row id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub u64);

/// Why the customer is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Install,
    Repair,
    /// 二次回访: after a dissatisfied case was fixed.
    Second,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for `next_due`.
    Pending,
    /// An attempt is under way.
    Dialing,
    /// Survey completed.
    Done,
    /// Given up; see `fail_reason`.
    Failed,
    /// The number does not exist / is wrong: flagged for verification.
    Invalid,
    Cancelled,
}

impl TaskState {
    /// No further transitions but none at all.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Dialing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// Deadline passed without a completed survey.
    Overdue,
    /// `max_attempts` reached.
    MaxAttempts,
    /// Declined (603) twice.
    Declined,
    /// Too many trunk/server errors in a row.
    TrunkErrors,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Picked up; `completed` when the survey was finished.
    Answered {
        completed: bool,
    },
    Busy,
    NoAnswer,
    /// Empty / wrong number.
    Invalid,
    /// The customer rejected the call.
    Declined,
    /// Trunk or server trouble, or an unknown result.
    Error,
}

/// Final SIP status of an outbound INVITE → outcome.
///
/// | status | outcome | why |
/// | --- | --- | --- |
/// | 2xx | `Answered{completed:false}` | the shell sets `completed` after the survey |
/// | 486 Busy Here, 600 Busy Everywhere | `Busy` | retry in 30 min |
/// | 408 Request Timeout, 480 Temporarily Unavailable, 487 Request Terminated | `NoAnswer` | ring timeout (we CANCEL → 487), phone off |
/// | 404, 410, 484, 485, 604, 416 | `Invalid` | the number does not exist / is incomplete: verify it |
/// | 603 Decline | `Declined` | retry once on the next calling day |
/// | anything else (1xx, 3xx, other 4xx such as 401/403/488, 5xx, other 6xx) | `Error` | our side or the carrier's, not the customer's answer |
pub fn classify_sip_status(code: u16) -> Outcome {
    match code {
        200..=299 => Outcome::Answered { completed: false },
        486 | 600 => Outcome::Busy,
        408 | 480 | 487 => Outcome::NoAnswer,
        404 | 410 | 416 | 484 | 485 | 604 => Outcome::Invalid,
        603 => Outcome::Declined,
        _ => Outcome::Error,
    }
}

/// A callback task: plain data, persisted by the shell as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub order_no: String,
    pub customer: String,
    pub phone: String,
    /// Picks zone and calling hours.
    pub region: String,
    pub kind: TaskKind,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// Dials started.
    pub attempts: u32,
    /// Dials that ended in `Outcome::Error`.
    pub errors: u32,
    /// Trunk errors since the last other outcome.
    pub errors_in_row: u32,
    /// Declined once already.
    pub declined: bool,
    pub state: TaskState,
    pub next_due: DateTime<Utc>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<Outcome>,
    pub fail_reason: Option<FailReason>,
    /// The number needs verification (空号/错号).
    pub phone_flagged: bool,
}

impl Task {
    /// A fresh pending task from a plan.
    pub fn new(
        id: TaskId,
        kind: TaskKind,
        plan: &TaskPlan,
        order_no: impl Into<String>,
        customer: impl Into<String>,
        phone: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            id,
            order_no: order_no.into(),
            customer: customer.into(),
            phone: phone.into(),
            region: region.into(),
            kind,
            window_start: plan.window_start,
            window_end: plan.window_end,
            deadline: plan.deadline,
            attempts: 0,
            errors: 0,
            errors_in_row: 0,
            declined: false,
            state: TaskState::Pending,
            next_due: plan.first_due,
            first_attempt_at: None,
            last_outcome: None,
            fail_reason: None,
            phone_flagged: false,
        }
    }

    /// Whether the first attempt fell inside the window (及时).
    pub fn is_timely(&self) -> bool {
        self.first_attempt_at
            .is_some_and(|t| self.window_start <= t && t < self.window_end)
    }

    fn counted_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.errors)
    }
}

/// Something that happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A dial is about to start.
    Start,
    /// The dial ended.
    Outcome(Outcome),
    /// Cancelled by a supervisor or because the order was withdrawn.
    Cancel,
    /// Checked against the deadline.
    Expire,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("no task {0:?}")]
    UnknownTask(TaskId),
    #[error("task {0:?} already exists")]
    Duplicate(TaskId),
    #[error("task {id:?} is {state:?}, cannot {what}")]
    WrongState {
        id: TaskId,
        state: TaskState,
        what: &'static str,
    },
    #[error("task {0:?}: outside calling hours in its region")]
    OutsideCallingHours(TaskId),
    #[error("task {0:?} is past its deadline")]
    PastDeadline(TaskId),
}

/// The one place task state changes. Pure: same inputs, same new task.
pub fn transition(
    task: &Task,
    input: Input,
    now: DateTime<Utc>,
    rules: &CallbackRules,
) -> Result<Task, ScheduleError> {
    let mut t = task.clone();
    let wrong = |what| ScheduleError::WrongState {
        id: task.id,
        state: task.state,
        what,
    };
    match input {
        Input::Start => {
            if t.state != TaskState::Pending {
                return Err(wrong("start an attempt"));
            }
            if now >= t.deadline {
                return Err(ScheduleError::PastDeadline(t.id));
            }
            // Preview mode lets an agent call before `next_due`, but never
            // outside calling hours.
            if !rules.is_calling_time(&t.region, now) {
                return Err(ScheduleError::OutsideCallingHours(t.id));
            }
            t.state = TaskState::Dialing;
            t.attempts += 1;
            t.first_attempt_at.get_or_insert(now);
        }
        Input::Outcome(o) => {
            if t.state != TaskState::Dialing {
                return Err(wrong("record an outcome"));
            }
            t.last_outcome = Some(o);
            apply_outcome(&mut t, o, now, rules);
        }
        Input::Cancel => {
            if t.state.is_terminal() {
                return Err(wrong("cancel"));
            }
            t.state = TaskState::Cancelled;
        }
        Input::Expire => {
            // A call in progress is left to finish; its outcome will find
            // no time left and fail the task then.
            if t.state == TaskState::Pending && now >= t.deadline {
                fail(&mut t, FailReason::Overdue);
            }
        }
    }
    Ok(t)
}

fn fail(t: &mut Task, why: FailReason) {
    t.state = TaskState::Failed;
    t.fail_reason = Some(why);
}

fn apply_outcome(t: &mut Task, o: Outcome, now: DateTime<Utc>, rules: &CallbackRules) {
    let r = &rules.retry;
    if o == Outcome::Error {
        t.errors += 1;
        t.errors_in_row += 1;
        if t.errors_in_row >= r.max_errors {
            return fail(t, FailReason::TrunkErrors);
        }
    } else {
        t.errors_in_row = 0;
    }
    let retry_after = match o {
        Outcome::Answered { completed: true } => {
            t.state = TaskState::Done;
            return;
        }
        Outcome::Invalid => {
            t.state = TaskState::Invalid;
            t.phone_flagged = true;
            return;
        }
        Outcome::Declined if t.declined => return fail(t, FailReason::Declined),
        Outcome::Declined => {
            t.declined = true;
            None
        }
        Outcome::Answered { completed: false } => Some(Duration::seconds(r.incomplete_secs)),
        Outcome::Busy => Some(Duration::seconds(r.busy_secs)),
        Outcome::NoAnswer => {
            let n = t.counted_attempts().saturating_sub(1).min(16);
            Some(Duration::seconds(
                r.no_answer_base_secs.saturating_mul(1 << n),
            ))
        }
        Outcome::Error => Some(Duration::seconds(r.error_secs)),
    };
    if o != Outcome::Error && t.counted_attempts() >= r.max_attempts {
        return fail(t, FailReason::MaxAttempts);
    }
    let next = match retry_after {
        Some(d) => rules.next_calling_time(&t.region, now + d),
        // Declined: not again today.
        None => rules.next_calling_day_start(&t.region, now),
    };
    match next {
        Some(next) if next < t.deadline => {
            t.state = TaskState::Pending;
            t.next_due = next;
        }
        _ => fail(t, FailReason::Overdue),
    }
}

/// Zone and hours of a region, resolved once.
struct Region {
    name: String,
    tz: Tz,
    hours: CallingHours,
}

/// Holds the tasks and answers "what is due now".
///
/// Indexes (all keyed by epoch ms and id, so ties are stable):
/// - `waiting`: pending tasks by `next_due`;
/// - `ready[region]`: pending tasks whose `next_due` has passed, by deadline,
///   so the due list is an earliest-deadline-first merge over the regions
///   that are in calling hours;
/// - `by_deadline`: all pending tasks, for expiry.
pub struct Scheduler {
    rules: CallbackRules,
    tasks: HashMap<TaskId, Task>,
    regions: Vec<Region>,
    region_ix: HashMap<String, usize>,
    waiting: BTreeSet<(i64, TaskId)>,
    ready: Vec<BTreeSet<(i64, TaskId)>>,
    by_deadline: BTreeSet<(i64, TaskId)>,
}

impl Scheduler {
    pub fn new(rules: CallbackRules) -> Result<Self, RulesError> {
        rules.validate()?;
        Ok(Self {
            rules,
            tasks: HashMap::new(),
            regions: Vec::new(),
            region_ix: HashMap::new(),
            waiting: BTreeSet::new(),
            ready: Vec::new(),
            by_deadline: BTreeSet::new(),
        })
    }

    pub fn rules(&self) -> &CallbackRules {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn get(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id)
    }

    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    /// Adds a task (new, or reloaded after a restart in any state).
    pub fn insert(&mut self, task: Task) -> Result<(), ScheduleError> {
        if self.tasks.contains_key(&task.id) {
            return Err(ScheduleError::Duplicate(task.id));
        }
        self.index(&task);
        self.tasks.insert(task.id, task);
        Ok(())
    }

    /// Takes a task out (e.g. archiving finished ones).
    pub fn remove(&mut self, id: TaskId) -> Option<Task> {
        let t = self.tasks.remove(&id)?;
        self.unindex(&t);
        Some(t)
    }

    /// Reserves capacity for `n` more tasks (bulk loads).
    pub fn reserve(&mut self, n: usize) {
        self.tasks.reserve(n);
    }

    fn region_of(&mut self, name: &str) -> usize {
        if let Some(i) = self.region_ix.get(name) {
            return *i;
        }
        let i = self.regions.len();
        self.regions.push(Region {
            name: name.to_string(),
            tz: self.rules.zone_for(name),
            hours: self.rules.hours_for(name),
        });
        self.ready.push(BTreeSet::new());
        self.region_ix.insert(name.to_string(), i);
        i
    }

    fn index(&mut self, t: &Task) {
        if t.state != TaskState::Pending {
            return;
        }
        self.region_of(&t.region);
        self.waiting.insert((t.next_due.timestamp_millis(), t.id));
        self.by_deadline
            .insert((t.deadline.timestamp_millis(), t.id));
    }

    fn unindex(&mut self, t: &Task) {
        if t.state != TaskState::Pending {
            return;
        }
        let deadline = (t.deadline.timestamp_millis(), t.id);
        if !self.waiting.remove(&(t.next_due.timestamp_millis(), t.id)) {
            if let Some(i) = self.region_ix.get(&t.region) {
                self.ready[*i].remove(&deadline);
            }
        }
        self.by_deadline.remove(&deadline);
    }

    /// Applies an input through [`transition`] and keeps the indexes right.
    pub fn apply(
        &mut self,
        id: TaskId,
        input: Input,
        now: DateTime<Utc>,
    ) -> Result<&Task, ScheduleError> {
        let old = self.tasks.get(&id).ok_or(ScheduleError::UnknownTask(id))?;
        let new = transition(old, input, now, &self.rules)?;
        let old = self
            .tasks
            .remove(&id)
            .ok_or(ScheduleError::UnknownTask(id))?;
        self.unindex(&old);
        self.index(&new);
        if new.state != old.state {
            tracing::debug!(task = id.0, from = ?old.state, to = ?new.state, "callback task");
        }
        Ok(self.tasks.entry(id).or_insert(new))
    }

    /// Whether [`Self::start_attempt`] would succeed now (changes nothing).
    pub fn check_start(&self, id: TaskId, now: DateTime<Utc>) -> Result<(), ScheduleError> {
        let t = self.tasks.get(&id).ok_or(ScheduleError::UnknownTask(id))?;
        transition(t, Input::Start, now, &self.rules).map(|_| ())
    }

    /// Pending → Dialing; persist the returned task before dialing.
    pub fn start_attempt(
        &mut self,
        id: TaskId,
        now: DateTime<Utc>,
    ) -> Result<&Task, ScheduleError> {
        self.apply(id, Input::Start, now)
    }

    /// Records the end of an attempt.
    pub fn on_outcome(
        &mut self,
        id: TaskId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<&Task, ScheduleError> {
        self.apply(id, Input::Outcome(outcome), now)
    }

    pub fn cancel(&mut self, id: TaskId, now: DateTime<Utc>) -> Result<&Task, ScheduleError> {
        self.apply(id, Input::Cancel, now)
    }

    /// Fails pending tasks whose deadline has passed ("overdue"); returns
    /// them for the shell to persist.
    pub fn expire_overdue(&mut self, now: DateTime<Utc>) -> Vec<TaskId> {
        let now_ms = now.timestamp_millis();
        let over: Vec<TaskId> = self
            .by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now_ms)
            .map(|(_, id)| *id)
            .collect();
        for id in &over {
            // Cannot fail: the id came from the index of pending tasks.
            let _ = self.apply(*id, Input::Expire, now);
        }
        over
    }

    /// Up to `limit` pending tasks to dial now, earliest deadline first:
    /// `next_due` passed, deadline not yet, and inside calling hours on a
    /// calling day in the task's region. Does not change any task (the
    /// `&mut` only moves tasks between internal indexes).
    pub fn due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<TaskId> {
        let now_ms = now.timestamp_millis();
        let later = self
            .waiting
            .split_off(&(now_ms.saturating_add(1), TaskId(0)));
        let promote = std::mem::replace(&mut self.waiting, later);
        for (_, id) in promote {
            let Some(t) = self.tasks.get(&id) else {
                continue;
            };
            let Some(&r) = self.region_ix.get(&t.region) else {
                continue;
            };
            self.ready[r].insert((t.deadline.timestamp_millis(), id));
        }
        let mut out: Vec<(i64, TaskId)> = Vec::new();
        for (r, region) in self.regions.iter().enumerate() {
            if !self.rules.is_calling_time_in(region.tz, region.hours, now) {
                continue;
            }
            out.extend(
                // Past-deadline tasks not yet expired sit at the front:
                // start after them rather than step over them every time.
                self.ready[r]
                    .range((now_ms.saturating_add(1), TaskId(0))..)
                    .filter(|(_, id)| {
                        self.tasks
                            .get(id)
                            .is_some_and(|t| t.next_due.timestamp_millis() <= now_ms)
                    })
                    .take(limit),
            );
        }
        out.sort_unstable();
        out.truncate(limit);
        tracing::trace!(due = out.len(), regions = self.regions.len(), "due list");
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// Names of the regions seen so far.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(|r| r.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::import::{OrderKind, WorkOrderRow};
    use crate::campaign::rules::{is_timely, plan};
    use chrono::TimeZone;

    fn sh(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2024, 3, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn order(no: &str, kind: OrderKind, at: DateTime<Utc>, region: &str) -> WorkOrderRow {
        WorkOrderRow {
            order_no: no.into(),
            kind,
            customer_id: Some(format!("C-{no}")),
            customer_name: "李".into(),
            phone: "13800000000".into(),
            address: String::new(),
            region: region.into(),
            product: String::new(),
            technician: String::new(),
            department: String::new(),
            completed_at: at,
            fees_cents: 0,
            do_not_call: false,
        }
    }

    /// Scheduler with one task per (id, kind, completion).
    fn setup(rules: CallbackRules, orders: &[(u64, OrderKind, DateTime<Utc>, &str)]) -> Scheduler {
        let mut s = Scheduler::new(rules).unwrap();
        for (id, kind, at, region) in orders {
            let o = order(&format!("W{id}"), *kind, *at, region);
            let p = plan(&o, s.rules()).unwrap();
            let kind = match kind {
                OrderKind::Install => TaskKind::Install,
                OrderKind::Repair => TaskKind::Repair,
            };
            s.insert(Task::new(
                TaskId(*id),
                kind,
                &p,
                o.order_no,
                "C",
                o.phone,
                o.region,
            ))
            .unwrap();
        }
        s
    }

    fn one(kind: OrderKind) -> Scheduler {
        // Completed Friday 8 March 2024, 17:00.
        setup(CallbackRules::default(), &[(1, kind, sh(8, 17, 0), "")])
    }

    #[test]
    fn sip_status_mapping() {
        assert_eq!(
            classify_sip_status(200),
            Outcome::Answered { completed: false }
        );
        assert_eq!(classify_sip_status(486), Outcome::Busy);
        assert_eq!(classify_sip_status(600), Outcome::Busy);
        for c in [408, 480, 487] {
            assert_eq!(classify_sip_status(c), Outcome::NoAnswer, "{c}");
        }
        for c in [404, 410, 484, 604] {
            assert_eq!(classify_sip_status(c), Outcome::Invalid, "{c}");
        }
        assert_eq!(classify_sip_status(603), Outcome::Declined);
        for c in [100, 302, 403, 488, 500, 503, 606, 0, 999] {
            assert_eq!(classify_sip_status(c), Outcome::Error, "{c}");
        }
    }

    #[test]
    fn due_only_inside_window_and_calling_hours() {
        let mut s = one(OrderKind::Install);
        let id = TaskId(1);
        assert!(s.due(sh(8, 17, 30), 10).is_empty()); // same day
        assert!(s.due(sh(9, 8, 59), 10).is_empty()); // before hours
        assert_eq!(s.due(sh(9, 9, 0), 10), [id]);
        assert_eq!(s.due(sh(9, 17, 59), 10), [id]);
        assert!(s.due(sh(9, 18, 0), 10).is_empty()); // after hours
        assert!(s.due(sh(10, 3, 0), 10).is_empty()); // night
        assert_eq!(s.due(sh(10, 9, 0), 10), [id]); // late, but before deadline
        assert!(s.due(sh(12, 9, 0), 10).is_empty()); // past deadline
    }

    #[test]
    fn answered_and_completed_is_done_and_timely() {
        let mut s = one(OrderKind::Install);
        let id = TaskId(1);
        let t = s.start_attempt(id, sh(9, 10, 0)).unwrap();
        assert_eq!(t.state, TaskState::Dialing);
        assert_eq!(t.attempts, 1);
        assert!(s.due(sh(9, 10, 0), 10).is_empty(), "dialing is not due");
        let t = s
            .on_outcome(id, Outcome::Answered { completed: true }, sh(9, 10, 5))
            .unwrap();
        assert_eq!(t.state, TaskState::Done);
        assert!(t.is_timely());
        let plan = TaskPlan {
            window_start: t.window_start,
            window_end: t.window_end,
            deadline: t.deadline,
            first_due: t.window_start,
        };
        assert!(is_timely(&plan, t.first_attempt_at.unwrap()));
        // Outcome without a dial is refused.
        assert!(matches!(
            s.on_outcome(id, Outcome::Busy, sh(9, 11, 0)),
            Err(ScheduleError::WrongState { .. })
        ));
    }

    #[test]
    fn no_answer_backs_off_inside_the_window_then_max_attempts() {
        let mut s = one(OrderKind::Repair); // window Sat 9 .. Mon 11 March
        let id = TaskId(1);
        s.start_attempt(id, sh(9, 9, 0)).unwrap();
        let t = s.on_outcome(id, Outcome::NoAnswer, sh(9, 9, 1)).unwrap();
        assert_eq!((t.state, t.next_due), (TaskState::Pending, sh(9, 10, 1)));
        assert!(s.due(sh(9, 10, 0), 10).is_empty());
        assert_eq!(s.due(sh(9, 10, 1), 10), [id]);
        s.start_attempt(id, sh(9, 10, 1)).unwrap();
        let t = s.on_outcome(id, Outcome::NoAnswer, sh(9, 10, 2)).unwrap();
        assert_eq!(t.next_due, sh(9, 12, 2)); // +2 h
        s.start_attempt(id, sh(9, 12, 2)).unwrap();
        let t = s.on_outcome(id, Outcome::NoAnswer, sh(9, 12, 3)).unwrap();
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(t.fail_reason, Some(FailReason::MaxAttempts));
        assert!(s.due(sh(9, 15, 0), 10).is_empty());
    }

    #[test]
    fn retry_after_hours_moves_to_next_calling_morning() {
        let mut s = one(OrderKind::Repair);
        let id = TaskId(1);
        s.start_attempt(id, sh(9, 17, 50)).unwrap();
        let t = s.on_outcome(id, Outcome::Busy, sh(9, 17, 51)).unwrap();
        assert_eq!(t.next_due, sh(10, 9, 0));
    }

    #[test]
    fn busy_declined_error() {
        let mut s = one(OrderKind::Repair);
        let id = TaskId(1);
        s.start_attempt(id, sh(9, 9, 0)).unwrap();
        assert_eq!(
            s.on_outcome(id, Outcome::Busy, sh(9, 9, 1))
                .unwrap()
                .next_due,
            sh(9, 9, 31)
        );
        // Trunk errors retry in 5 min and use up no attempt.
        for i in 0..5 {
            let at = sh(9, 10, i * 10);
            s.start_attempt(id, at).unwrap();
            let t = s.on_outcome(id, Outcome::Error, at).unwrap();
            assert_eq!(t.next_due, at + Duration::minutes(5));
        }
        assert_eq!(s.get(id).unwrap().counted_attempts(), 1);
        // Declined: next calling day, then failed on a second decline.
        s.start_attempt(id, sh(9, 11, 0)).unwrap();
        let t = s.on_outcome(id, Outcome::Declined, sh(9, 11, 1)).unwrap();
        assert_eq!((t.state, t.next_due), (TaskState::Pending, sh(10, 9, 0)));
        s.start_attempt(id, sh(10, 9, 0)).unwrap();
        let t = s.on_outcome(id, Outcome::Declined, sh(10, 9, 1)).unwrap();
        assert_eq!(t.fail_reason, Some(FailReason::Declined));
    }

    #[test]
    fn too_many_trunk_errors_fail() {
        let mut s = one(OrderKind::Repair);
        let id = TaskId(1);
        for i in 0..10 {
            let at = sh(9, 9, 0) + Duration::minutes(5 * i);
            s.start_attempt(id, at).unwrap();
            s.on_outcome(id, Outcome::Error, at).unwrap();
        }
        assert_eq!(
            s.get(id).unwrap().fail_reason,
            Some(FailReason::TrunkErrors)
        );
    }

    #[test]
    fn invalid_number_is_flagged() {
        let mut s = one(OrderKind::Install);
        let id = TaskId(1);
        s.start_attempt(id, sh(9, 9, 0)).unwrap();
        let t = s
            .on_outcome(id, classify_sip_status(404), sh(9, 9, 0))
            .unwrap();
        assert_eq!(t.state, TaskState::Invalid);
        assert!(t.phone_flagged);
        assert!(s.due(sh(9, 12, 0), 10).is_empty());
    }

    #[test]
    fn overdue_pending_tasks_fail() {
        let mut s = one(OrderKind::Install); // deadline Mon 11 March 18:00
        assert!(s.expire_overdue(sh(11, 17, 59)).is_empty());
        assert_eq!(s.expire_overdue(sh(11, 18, 0)), [TaskId(1)]);
        let t = s.get(TaskId(1)).unwrap();
        assert_eq!(
            (t.state, t.fail_reason),
            (TaskState::Failed, Some(FailReason::Overdue))
        );
        assert!(!t.is_timely());
        assert!(s.expire_overdue(sh(12, 0, 0)).is_empty());
    }

    #[test]
    fn retry_past_deadline_fails_as_overdue() {
        let mut s = one(OrderKind::Install); // deadline Mon 11 March 18:00
        let id = TaskId(1);
        s.start_attempt(id, sh(11, 17, 45)).unwrap();
        assert!(!s.get(id).unwrap().is_timely()); // first try on Monday: late
        let t = s.on_outcome(id, Outcome::Busy, sh(11, 17, 46)).unwrap();
        assert_eq!(t.fail_reason, Some(FailReason::Overdue));
        // Cannot start past the deadline or outside hours.
        let mut s = one(OrderKind::Install);
        assert_eq!(
            s.start_attempt(id, sh(9, 20, 0)).unwrap_err(),
            ScheduleError::OutsideCallingHours(id)
        );
        assert_eq!(
            s.start_attempt(id, sh(12, 10, 0)).unwrap_err(),
            ScheduleError::PastDeadline(id)
        );
    }

    #[test]
    fn earliest_deadline_first_across_regions_and_zones() {
        let mut rules = CallbackRules::default();
        rules.regions.insert(
            "west".into(),
            crate::campaign::rules::RegionRules {
                zone: Some(chrono_tz::Asia::Urumqi),
                hours: None,
            },
        );
        let mut s = setup(
            rules,
            &[
                (1, OrderKind::Repair, sh(8, 12, 0), ""), // deadline Tue 13th
                (2, OrderKind::Install, sh(8, 12, 0), ""), // deadline Mon 11th
                (3, OrderKind::Install, sh(8, 12, 0), "west"), // Urumqi: 09:00 there = 11:00 Shanghai
                (4, OrderKind::Install, sh(7, 12, 0), ""),     // deadline Sun 10th
            ],
        );
        assert_eq!(s.due(sh(9, 9, 30), 10), [TaskId(4), TaskId(2), TaskId(1)]);
        assert_eq!(s.due(sh(9, 9, 30), 2), [TaskId(4), TaskId(2)]);
        assert_eq!(
            s.due(sh(9, 11, 0), 10),
            [TaskId(4), TaskId(2), TaskId(3), TaskId(1)]
        );
        // 18:30 Shanghai is 16:30 in Urumqi: only the west region is open.
        assert_eq!(s.due(sh(9, 18, 30), 10), [TaskId(3)]);
        s.cancel(TaskId(3), sh(9, 18, 31)).unwrap();
        assert!(s.due(sh(9, 18, 32), 10).is_empty());
    }

    #[test]
    fn holidays_block_due() {
        let mut rules = CallbackRules::default();
        rules
            .holidays
            .insert(chrono::NaiveDate::from_ymd_opt(2024, 3, 10).unwrap());
        let mut s = setup(rules, &[(1, OrderKind::Repair, sh(8, 12, 0), "")]);
        assert_eq!(s.due(sh(9, 10, 0), 10), [TaskId(1)]);
        assert!(s.due(sh(10, 10, 0), 10).is_empty());
        assert_eq!(s.due(sh(11, 10, 0), 10), [TaskId(1)]);
    }

    #[test]
    fn transition_is_pure_and_restart_safe() {
        let rules = CallbackRules::default();
        let o = order("W1", OrderKind::Install, sh(8, 17, 0), "");
        let p = plan(&o, &rules).unwrap();
        let t0 = Task::new(TaskId(7), TaskKind::Install, &p, "W1", "C", "138", "");
        let a = transition(&t0, Input::Start, sh(9, 9, 0), &rules).unwrap();
        let b = transition(&t0, Input::Start, sh(9, 9, 0), &rules).unwrap();
        assert_eq!(a, b);
        assert_eq!(t0.state, TaskState::Pending);
        // Reload in Dialing after a crash: the lost result is an error.
        let mut s = Scheduler::new(rules).unwrap();
        s.insert(a.clone()).unwrap();
        assert_eq!(
            s.insert(a).unwrap_err(),
            ScheduleError::Duplicate(TaskId(7))
        );
        let t = s
            .on_outcome(TaskId(7), Outcome::Error, sh(9, 9, 30))
            .unwrap();
        assert_eq!((t.state, t.next_due), (TaskState::Pending, sh(9, 9, 35)));
        assert_eq!(s.due(sh(9, 9, 35), 5), [TaskId(7)]);
        assert_eq!(s.remove(TaskId(7)).unwrap().id, TaskId(7));
        assert!(s.due(sh(9, 9, 35), 5).is_empty());
    }

    #[test]
    fn second_callback_task() {
        let rules = CallbackRules::default();
        let p = crate::campaign::rules::plan_second("", sh(12, 16, 0), &rules).unwrap();
        let mut s = Scheduler::new(rules).unwrap();
        s.insert(Task::new(
            TaskId(9),
            TaskKind::Second,
            &p,
            "W1",
            "C",
            "138",
            "",
        ))
        .unwrap();
        assert_eq!(s.due(sh(12, 16, 0), 1), [TaskId(9)]);
    }

    #[test]
    fn many_tasks_due_limit() {
        let orders: Vec<_> = (0..500)
            .map(|i| {
                (
                    i,
                    OrderKind::Repair,
                    sh(8, 12, 0) + Duration::minutes(i as i64),
                    "",
                )
            })
            .collect();
        let mut s = setup(CallbackRules::default(), &orders);
        let due = s.due(sh(9, 10, 0), 100);
        assert_eq!(due.len(), 100);
        // Same window for all: ties broken by id.
        assert_eq!(due[0], TaskId(0));
        for id in &due {
            s.start_attempt(*id, sh(9, 10, 0)).unwrap();
        }
        assert_eq!(s.due(sh(9, 10, 0), 1000).len(), 400);
    }
}
