//! The dialer's decisions: which callback tasks to dial now, and what each
//! finished call does to its task and to the closed loop (闭环).
//!
//! Sans-IO like the rest of `campaign`: the tokio shell (`call::campaign`)
//! loads tasks, calls [`Dialer::poll`] with `now`, persists every task it
//! gets back *before* acting on it (write the attempt, then dial), and feeds
//! each call's end to [`Dialer::finish`]. Tasks carry the shell's text ids
//! (`callback_tasks.id`); the [`Scheduler`] underneath uses numbers.
//!
//! Restart: a task persisted as `Dialing` had a call in flight when the
//! server died. Its result is lost and the customer may or may not have
//! been reached; [`Dialer::load`] closes that attempt as interrupted (an
//! `Outcome::Error`: retried after `error_secs`, not counted against
//! `max_attempts`) so the same attempt is never dialled twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::pacing::{Pacer, PacerConfig, PacerError};
use super::rules::{CallbackRules, RulesError};
use super::schedule::{Outcome, ScheduleError, Scheduler, Task, TaskId, TaskKind, TaskState};
use super::survey::{is_dissatisfied, Attitude, SurveyAnswers, QUESTIONS};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DialerError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Pacer(#[from] PacerError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("no callback task {0:?}")]
    UnknownTask(String),
    #[error("callback task {0:?} is already loaded")]
    Duplicate(String),
    #[error("the trunk has no room for another call now")]
    TrunkFull,
}

/// A task to dial now. Its state is already `Dialing` with the attempt
/// counted: persist it (and the attempt row) before sending the INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub key: String,
    /// 1 for the first attempt; with the key it names the attempt.
    pub attempt: u32,
    pub task: Task,
}

/// What one [`Dialer::poll`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    pub dials: Vec<Dial>,
    /// Tasks that ran past their deadline (now `Failed`), to persist.
    pub expired: Vec<(String, Task)>,
}

/// A task recovered at start-up from `Dialing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The attempt that was in flight (close it as interrupted).
    pub attempt: u32,
    pub task: Task,
}

/// The dialer: scheduler + trunk pacing + the calls in flight.
pub struct Dialer {
    sched: Scheduler,
    pacer: Pacer,
    in_flight: HashSet<TaskId>,
    keys: HashMap<TaskId, String>,
    ids: HashMap<String, TaskId>,
    next_id: u64,
}

impl Dialer {
    pub fn new(rules: CallbackRules, pacing: PacerConfig) -> Result<Self, DialerError> {
        Ok(Self {
            sched: Scheduler::new(rules)?,
            pacer: Pacer::new(pacing)?,
            in_flight: HashSet::new(),
            keys: HashMap::new(),
            ids: HashMap::new(),
            next_id: 1,
        })
    }

    pub fn rules(&self) -> &CallbackRules {
        self.sched.rules()
    }

    /// Whether a task with this key is loaded.
    pub fn knows(&self, key: &str) -> bool {
        self.ids.contains_key(key)
    }

    /// Calls under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn task(&self, key: &str) -> Option<&Task> {
        self.ids.get(key).and_then(|id| self.sched.get(*id))
    }

    /// Adds a task read from the store. The task's own `id` is replaced.
    /// A task in `Dialing` is recovered (see the module doc); the returned
    /// task must be persisted before anything is dialled.
    pub fn load(
        &mut self,
        key: &str,
        mut task: Task,
        now: DateTime<Utc>,
    ) -> Result<Option<Recovered>, DialerError> {
        if self.ids.contains_key(key) {
            return Err(DialerError::Duplicate(key.to_string()));
        }
        let id = TaskId(self.next_id);
        self.next_id += 1;
        task.id = id;
        let dialing = task.state == TaskState::Dialing;
        self.sched.insert(task)?;
        self.keys.insert(id, key.to_string());
        self.ids.insert(key.to_string(), id);
        if !dialing {
            return Ok(None);
        }
        let t = self.sched.on_outcome(id, Outcome::Error, now)?;
        Ok(Some(Recovered {
            attempt: t.attempts,
            task: t.clone(),
        }))
    }

    /// Forgets finished tasks (they stay in the store).
    pub fn prune(&mut self) -> usize {
        let done: Vec<TaskId> = self
            .sched
            .tasks()
            .filter(|t| t.state.is_terminal())
            .map(|t| t.id)
            .collect();
        for id in &done {
            self.sched.remove(*id);
            if let Some(k) = self.keys.remove(id) {
                self.ids.remove(&k);
            }
        }
        done.len()
    }

    /// Forgets every task without a call in flight (they stay in the store),
    /// so that loading them again reads them fresh: another node may have
    /// dialled them meanwhile. Calls in flight keep their tasks for
    /// [`finish`](Self::finish).
    pub fn forget_idle(&mut self) -> usize {
        let idle: Vec<TaskId> = self
            .sched
            .tasks()
            .map(|t| t.id)
            .filter(|id| !self.in_flight.contains(id))
            .collect();
        for id in &idle {
            self.sched.remove(*id);
            if let Some(k) = self.keys.remove(id) {
                self.ids.remove(&k);
            }
        }
        idle.len()
    }

    /// Expire overdue tasks and start as many due ones as the trunk allows
    /// (concurrency and calls per second), earliest deadline first.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Tick {
        let mut tick = Tick::default();
        for id in self.sched.expire_overdue(now) {
            if let (Some(t), Some(k)) = (self.sched.get(id), self.keys.get(&id)) {
                if t.state == TaskState::Failed {
                    tick.expired.push((k.clone(), t.clone()));
                }
            }
        }
        let room = self.pacer.next_dials(now, 0, self.in_flight.len());
        if room == 0 {
            return tick;
        }
        let due = self.sched.due(now, room);
        self.pacer.refund(room - due.len());
        for id in due {
            let Ok(t) = self.sched.start_attempt(id, now) else {
                self.pacer.refund(1);
                continue;
            };
            let Some(key) = self.keys.get(&id) else {
                continue;
            };
            self.in_flight.insert(id);
            tick.dials.push(Dial {
                key: key.clone(),
                attempt: t.attempts,
                task: t.clone(),
            });
        }
        tick
    }

    /// Start task `key` now for an agent who chose it (preview): before its
    /// `next_due` if need be, never outside calling hours or past its
    /// deadline, and only if the trunk has room.
    pub fn start_manual(&mut self, key: &str, now: DateTime<Utc>) -> Result<Dial, DialerError> {
        let id = *self
            .ids
            .get(key)
            .ok_or_else(|| DialerError::UnknownTask(key.to_string()))?;
        // Check the task before taking a token for it.
        self.sched.check_start(id, now)?;
        if !self.pacer.try_manual(now, self.in_flight.len()) {
            return Err(DialerError::TrunkFull);
        }
        let t = match self.sched.start_attempt(id, now) {
            Ok(t) => t.clone(),
            Err(e) => {
                self.pacer.refund(1);
                return Err(e.into());
            }
        };
        self.in_flight.insert(id);
        Ok(Dial {
            key: key.to_string(),
            attempt: t.attempts,
            task: t,
        })
    }

    /// Start the most urgent due task for an agent already reserved for it
    /// (progressive): None when nothing is due or the trunk is full.
    pub fn start_next(&mut self, now: DateTime<Utc>) -> Option<Dial> {
        if !self.pacer.try_manual(now, self.in_flight.len()) {
            return None;
        }
        for id in self.sched.due(now, 1) {
            let Ok(t) = self.sched.start_attempt(id, now) else {
                continue;
            };
            let t = t.clone();
            let Some(key) = self.keys.get(&id).cloned() else {
                continue;
            };
            self.in_flight.insert(id);
            return Some(Dial {
                key,
                attempt: t.attempts,
                task: t,
            });
        }
        self.pacer.refund(1);
        None
    }

    /// Whether a task is due now (progressive mode reserves an agent only then).
    pub fn has_due(&mut self, now: DateTime<Utc>) -> bool {
        !self.sched.due(now, 1).is_empty()
    }

    /// The end of a dial: the new task to persist.
    pub fn finish(
        &mut self,
        key: &str,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Task, DialerError> {
        let id = *self
            .ids
            .get(key)
            .ok_or_else(|| DialerError::UnknownTask(key.to_string()))?;
        self.in_flight.remove(&id);
        Ok(self.sched.on_outcome(id, outcome, now)?.clone())
    }

    /// When the pacer will allow the next call (for the shell's timer).
    pub fn next_token_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.pacer.next_token_at(now)
    }
}

/// The survey answers from the IVR's call variables: each survey question's
/// key (`attitude`, `cleaned`, `fees_ok`, `satisfaction`) holds the key
/// pressed. Unknown or out-of-range values are left unanswered.
pub fn answers_from_vars(vars: &BTreeMap<String, String>) -> SurveyAnswers {
    let mut a = SurveyAnswers::default();
    for q in QUESTIONS {
        let Some(k) = vars.get(q.key).and_then(|v| v.trim().parse::<u8>().ok()) else {
            continue;
        };
        let _ = a.record(q.key, k);
    }
    a
}

/// What an answered survey call means for the task and the closed loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyVerdict {
    /// For [`Dialer::finish`].
    pub outcome: Outcome,
    /// Any answer at all: a `surveys` row is written (partial ones too).
    pub record: bool,
    /// Open (or, on a second callback, keep open) a case with this text.
    pub dissatisfied: Option<String>,
    /// A completed, satisfied second callback closes the case.
    pub close_case: bool,
}

/// Judge the answers of a picked-up call of `kind`.
pub fn judge_survey(kind: TaskKind, a: &SurveyAnswers) -> SurveyVerdict {
    let complete = a.is_complete();
    let any = a.attitude.is_some()
        || a.site_cleaned.is_some()
        || a.fees_correct.is_some()
        || a.satisfaction.is_some();
    let dissatisfied = is_dissatisfied(a).then(|| describe(a));
    SurveyVerdict {
        outcome: Outcome::Answered {
            completed: complete,
        },
        record: any,
        close_case: kind == TaskKind::Second && complete && dissatisfied.is_none(),
        dissatisfied,
    }
}

/// A short description for the department manager (the seed: 被访人及简要描述).
pub fn describe(a: &SurveyAnswers) -> String {
    let yes_no = |b: Option<bool>, yes: &str, no: &str| match b {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => "未答".to_string(),
    };
    let attitude = match a.attitude {
        Some(Attitude::Satisfied) => "满意",
        Some(Attitude::Average) => "一般",
        Some(Attitude::Dissatisfied) => "不满意",
        None => "未答",
    };
    let overall = a.satisfaction.map(|s| s.label()).unwrap_or("未答");
    format!(
        "回访异常: 服务态度{attitude}; 现场清理{}; 收费{}; 总体评价{overall}",
        yes_no(a.site_cleaned, "是", "否"),
        yes_no(a.fees_correct, "属实", "不属实"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::pacing::DialMode;
    use crate::campaign::rules::{CallingHours, TaskPlan};
    use crate::campaign::survey::Satisfaction;
    use chrono::{Duration, NaiveTime, TimeZone};

    fn sh(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn rules() -> CallbackRules {
        let mut r = CallbackRules::default();
        r.retry.busy_secs = 600;
        r.retry.no_answer_base_secs = 1800;
        r.retry.error_secs = 60;
        r
    }

    fn pacing(max: usize, cps: f64) -> PacerConfig {
        PacerConfig {
            mode: DialMode::Survey,
            max_concurrent: max,
            calls_per_second: cps,
            burst: (cps.ceil() as u32).max(1),
        }
    }

    fn task(kind: TaskKind, start: DateTime<Utc>, phone: &str) -> Task {
        let plan = TaskPlan {
            window_start: start,
            window_end: start + Duration::hours(9),
            deadline: start + Duration::days(3),
            first_due: start,
        };
        Task::new(TaskId(0), kind, &plan, "WO1", "C1", phone, "")
    }

    fn dialer_in(mode: DialMode, max: usize, cps: f64) -> Dialer {
        Dialer::new(
            rules(),
            PacerConfig {
                mode,
                ..pacing(max, cps)
            },
        )
        .unwrap()
    }

    fn dialer(max: usize, cps: f64) -> Dialer {
        Dialer::new(rules(), pacing(max, cps)).unwrap()
    }

    #[test]
    fn dials_only_due_tasks_in_calling_hours() {
        let mut d = dialer(10, 100.0);
        d.load(
            "a",
            task(TaskKind::Install, sh(24, 9, 0), "1"),
            sh(23, 8, 0),
        )
        .unwrap();
        // The day before, and 08:59 on the day: nothing.
        assert!(d.poll(sh(23, 12, 0)).dials.is_empty());
        assert!(d.poll(sh(24, 8, 59)).dials.is_empty());
        let tick = d.poll(sh(24, 9, 0));
        assert_eq!(tick.dials.len(), 1);
        let dial = &tick.dials[0];
        assert_eq!((dial.key.as_str(), dial.attempt), ("a", 1));
        assert_eq!(dial.task.state, TaskState::Dialing);
        assert_eq!(d.in_flight(), 1);
        // In flight: not dialled again.
        assert!(d.poll(sh(24, 9, 5)).dials.is_empty());
    }

    #[test]
    fn trunk_limits_hold() {
        // 2 concurrent calls, 1 call per second.
        let mut d = dialer(2, 1.0);
        for i in 0..5 {
            let k = format!("t{i}");
            d.load(&k, task(TaskKind::Repair, sh(24, 9, 0), &k), sh(24, 9, 0))
                .unwrap();
        }
        let t0 = sh(24, 10, 0);
        assert_eq!(d.poll(t0).dials.len(), 1); // burst 1
        assert_eq!(d.poll(t0 + Duration::milliseconds(500)).dials.len(), 0);
        assert_eq!(d.poll(t0 + Duration::seconds(1)).dials.len(), 1);
        // Two up: the trunk is full whatever the tokens.
        assert_eq!(d.poll(t0 + Duration::seconds(5)).dials.len(), 0);
        d.finish("t0", Outcome::Busy, t0 + Duration::seconds(6))
            .unwrap();
        assert_eq!(d.poll(t0 + Duration::seconds(6)).dials.len(), 1);
        assert!(d.in_flight() <= 2);
    }

    #[test]
    fn outcomes_drive_the_task() {
        let mut d = dialer(10, 100.0);
        let start = sh(24, 9, 0);
        for k in ["busy", "invalid", "declined", "noans", "done"] {
            d.load(k, task(TaskKind::Install, start, k), start).unwrap();
        }
        let t = sh(24, 10, 0);
        assert_eq!(d.poll(t).dials.len(), 5);
        let busy = d.finish("busy", Outcome::Busy, t).unwrap();
        assert_eq!(busy.state, TaskState::Pending);
        assert_eq!(busy.next_due, t + Duration::seconds(600));
        let inv = d.finish("invalid", Outcome::Invalid, t).unwrap();
        assert_eq!(inv.state, TaskState::Invalid);
        assert!(inv.phone_flagged);
        let dec = d.finish("declined", Outcome::Declined, t).unwrap();
        assert_eq!(dec.state, TaskState::Pending);
        assert_eq!(dec.next_due, sh(25, 9, 0), "declined: next calling day");
        let na = d.finish("noans", Outcome::NoAnswer, t).unwrap();
        assert_eq!(na.next_due, t + Duration::seconds(1800));
        let done = d
            .finish("done", Outcome::Answered { completed: true }, t)
            .unwrap();
        assert_eq!(done.state, TaskState::Done);
        // Busy comes back after its back-off, and no sooner.
        assert!(d.poll(t + Duration::seconds(599)).dials.is_empty());
        let again = d.poll(t + Duration::seconds(600));
        assert_eq!(again.dials.len(), 1);
        assert_eq!(again.dials[0].key, "busy");
        assert_eq!(again.dials[0].attempt, 2);
        assert_eq!(d.prune(), 2); // invalid + done
        assert!(!d.knows("done"));
        assert!(d.finish("zzz", Outcome::Busy, t).is_err());
    }

    #[test]
    fn preview_starts_a_chosen_task_early_but_not_after_hours() {
        let mut d = dialer_in(DialMode::Preview, 1, 100.0);
        // Due tomorrow 09:00; the agent may call it today in calling hours.
        d.load(
            "a",
            task(TaskKind::Install, sh(24, 9, 0), "1"),
            sh(23, 8, 0),
        )
        .unwrap();
        d.load(
            "b",
            task(TaskKind::Install, sh(24, 9, 0), "2"),
            sh(23, 8, 0),
        )
        .unwrap();
        assert!(
            d.poll(sh(24, 10, 0)).dials.is_empty(),
            "preview never dials by itself"
        );
        assert!(matches!(
            d.start_manual("a", sh(23, 20, 0)),
            Err(DialerError::Schedule(ScheduleError::OutsideCallingHours(_)))
        ));
        let dial = d.start_manual("a", sh(23, 10, 0)).unwrap();
        assert_eq!((dial.key.as_str(), dial.attempt), ("a", 1));
        // Twice: the task is already being dialled.
        assert!(d.start_manual("a", sh(23, 10, 0)).is_err());
        // The trunk allows one call at a time.
        assert_eq!(
            d.start_manual("b", sh(23, 10, 0)),
            Err(DialerError::TrunkFull)
        );
        d.finish("a", Outcome::Busy, sh(23, 10, 1)).unwrap();
        assert!(d.start_manual("b", sh(23, 10, 2)).is_ok());
        assert!(matches!(
            d.start_manual("zz", sh(23, 10, 2)),
            Err(DialerError::UnknownTask(_))
        ));
    }

    #[test]
    fn progressive_starts_only_due_tasks_one_per_agent() {
        let mut d = dialer_in(DialMode::Progressive, 10, 100.0);
        d.load(
            "a",
            task(TaskKind::Install, sh(24, 9, 0), "1"),
            sh(23, 8, 0),
        )
        .unwrap();
        assert!(!d.has_due(sh(23, 10, 0)));
        assert!(d.start_next(sh(23, 10, 0)).is_none());
        assert!(d.has_due(sh(24, 9, 30)));
        // No agent count here: the shell reserves an agent first.
        assert!(d.poll(sh(24, 9, 30)).dials.is_empty());
        let dial = d.start_next(sh(24, 9, 30)).unwrap();
        assert_eq!(dial.key, "a");
        assert!(d.start_next(sh(24, 9, 30)).is_none());
        assert_eq!(d.in_flight(), 1);
    }

    #[test]
    fn no_answer_backs_off_up_to_max_attempts() {
        let mut d = dialer(10, 100.0);
        let start = sh(24, 9, 0);
        d.load("n", task(TaskKind::Install, start, "1"), start)
            .unwrap();
        let mut now = start;
        let mut gaps = vec![];
        for attempt in 1..=3 {
            let tick = d.poll(now);
            assert_eq!(tick.dials.len(), 1, "attempt {attempt}");
            assert_eq!(tick.dials[0].attempt, attempt);
            let t = d.finish("n", Outcome::NoAnswer, now).unwrap();
            if t.state == TaskState::Pending {
                gaps.push((t.next_due - now).num_seconds());
                now = t.next_due;
            } else {
                assert_eq!(attempt, 3);
                assert_eq!(t.state, TaskState::Failed);
            }
        }
        assert_eq!(gaps, [1800, 3600]);
        assert!(d.poll(now + Duration::days(1)).dials.is_empty());
    }

    #[test]
    fn retries_wait_for_calling_hours_and_deadline_expires() {
        let mut d = dialer(10, 100.0);
        let start = sh(24, 9, 0);
        d.load("b", task(TaskKind::Install, start, "1"), start)
            .unwrap();
        let late = sh(24, 17, 55);
        d.poll(late);
        let t = d.finish("b", Outcome::Busy, late).unwrap();
        // 17:55 + 10 min is after 18:00: the next morning.
        assert_eq!(t.next_due, sh(25, 9, 0));
        assert!(d.poll(sh(24, 23, 0)).dials.is_empty());
        // The deadline (3 days after the start) passes unanswered.
        let tick = d.poll(sh(27, 9, 30));
        assert!(tick.dials.is_empty());
        assert_eq!(tick.expired.len(), 1);
        assert_eq!(tick.expired[0].1.state, TaskState::Failed);
    }

    #[test]
    fn restart_recovers_an_interrupted_attempt_once() {
        let start = sh(24, 9, 0);
        let mut first = dialer(10, 100.0);
        first
            .load("k", task(TaskKind::Install, start, "1"), start)
            .unwrap();
        let dial = first.poll(sh(24, 10, 0)).dials.remove(0);
        // The server dies with the task persisted as Dialing, attempt 1.
        let persisted = dial.task.clone();
        let mut second = dialer(10, 100.0);
        let now = sh(24, 10, 1);
        let rec = second.load("k", persisted, now).unwrap().unwrap();
        assert_eq!(rec.attempt, 1);
        assert_eq!(rec.task.state, TaskState::Pending);
        assert_eq!(rec.task.attempts, 1);
        assert_eq!(rec.task.errors, 1, "not counted against max_attempts");
        // Not re-dialled at once (that would repeat attempt 1) ...
        assert!(second.poll(now).dials.is_empty());
        // ... but as attempt 2 after the error back-off.
        let again = second.poll(now + Duration::seconds(60)).dials;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempt, 2);
        assert!(second
            .load("k", task(TaskKind::Install, start, "1"), now)
            .is_err());
    }

    #[test]
    fn forget_idle_keeps_calls_in_flight() {
        let mut d = dialer(1, 100.0);
        for k in ["a", "b"] {
            d.load(k, task(TaskKind::Install, sh(24, 9, 0), "1"), sh(23, 8, 0))
                .unwrap();
        }
        let dials = d.poll(sh(24, 9, 0)).dials;
        assert_eq!(dials.len(), 1);
        let busy = dials[0].key.clone();
        assert_eq!(d.forget_idle(), 1);
        assert!(d.knows(&busy));
        assert_eq!(d.in_flight(), 1);
        // The idle one loads again (fresh from the store), the call ends.
        let idle = if busy == "a" { "b" } else { "a" };
        assert!(!d.knows(idle));
        d.load(
            idle,
            task(TaskKind::Install, sh(24, 9, 0), "1"),
            sh(24, 9, 1),
        )
        .unwrap();
        assert!(d.finish(&busy, Outcome::Busy, sh(24, 9, 2)).is_ok());
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn whole_day_calling_hours() {
        let mut r = rules();
        r.hours = CallingHours {
            start: NaiveTime::MIN,
            end: NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap(),
        };
        let mut d = Dialer::new(r, pacing(1, 10.0)).unwrap();
        d.load(
            "x",
            task(TaskKind::Install, sh(24, 0, 0), "1"),
            sh(24, 0, 0),
        )
        .unwrap();
        assert_eq!(d.poll(sh(24, 3, 0)).dials.len(), 1);
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn survey_answers_and_closed_loop() {
        let happy = answers_from_vars(&vars(&[
            ("attitude", "1"),
            ("cleaned", "1"),
            ("fees_ok", "1"),
            ("satisfaction", "1"),
            ("caller", "x"),
        ]));
        assert!(happy.is_complete());
        assert_eq!(happy.satisfaction, Some(Satisfaction::VerySatisfied));
        let v = judge_survey(TaskKind::Install, &happy);
        assert_eq!(v.outcome, Outcome::Answered { completed: true });
        assert!(v.record && v.dissatisfied.is_none() && !v.close_case);
        assert!(judge_survey(TaskKind::Second, &happy).close_case);

        let unhappy = answers_from_vars(&vars(&[
            ("attitude", "1"),
            ("cleaned", "2"),
            ("fees_ok", "1"),
            ("satisfaction", "5"),
        ]));
        let v = judge_survey(TaskKind::Repair, &unhappy);
        let text = v.dissatisfied.unwrap();
        assert!(text.contains("现场清理否"), "{text}");
        assert!(text.contains("很不满意"), "{text}");
        // A second callback still dissatisfied keeps the case open.
        let v = judge_survey(TaskKind::Second, &unhappy);
        assert!(!v.close_case && v.dissatisfied.is_some());

        // Fees wrong alone is an exception (不属实).
        let fees = answers_from_vars(&vars(&[("fees_ok", "2")]));
        let v = judge_survey(TaskKind::Install, &fees);
        assert!(v.dissatisfied.is_some());
        assert_eq!(v.outcome, Outcome::Answered { completed: false });

        // Nothing answered (hung up at the greeting): no survey row.
        let none = answers_from_vars(&vars(&[("satisfaction", "9"), ("cleaned", "x")]));
        let v = judge_survey(TaskKind::Install, &none);
        assert!(!v.record && v.dissatisfied.is_none());
        assert_eq!(v.outcome, Outcome::Answered { completed: false });
    }
}
