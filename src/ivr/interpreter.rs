//! Per-call IVR interpreter: a sans-IO state machine.
//!
//! The shell (SIP/media side) calls [`Interpreter::handle`] with each
//! [`IvrEvent`] and the current time, then performs the returned
//! [`IvrAction`]s in order. Nothing here reads a clock, sleeps or does I/O:
//! timers are `StartTimer` actions whose expiry comes back as `TimerFired`.
//!
//! Key presses:
//! * During a prompt with `barge_in = true` a key stops the prompt and counts
//!   as input. In a menu or collect node it is that node's input; during a
//!   `play` node it is kept as type-ahead for the next menu/collect node, which
//!   then skips its prompt (callers who know the menu need not wait).
//! * During a prompt with `barge_in = false` keys are ignored, not buffered:
//!   such prompts are notices the caller should hear, and a buffered key could
//!   jump the caller somewhere surprising afterwards.
//! * Keys pressed while the customer lookup runs are kept as type-ahead.
//!
//! Prompts and timers carry ids so a late `PromptFinished` for a stopped
//! prompt, or a timer that fired just as it was cancelled, is recognised and
//! ignored.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::dialplan::{Callback, Collect, CountFrom, Dialplan, Menu, NodeKind, DTMF_KEYS};

/// More node changes than this without waiting for anything means the plan
/// loops; the validator rejects such plans, this guards hand-built ones.
const MAX_HOPS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptId(pub u64);

/// What the shell found for the caller's number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerSummary {
    pub id: String,
    pub name: String,
    pub region: Option<String>,
    /// An unfinished case (work order / complaint) of this customer.
    pub open_case: Option<String>,
    /// Agent who first took that case (首问负责制): the queue should prefer them.
    pub owner_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrEvent {
    /// The call was answered; starts the dialplan at `start`.
    Started {
        caller: String,
        called: String,
    },
    PromptFinished(PromptId),
    /// A DTMF key (RFC 4733 or SIP INFO): 0-9, * or #. Others are ignored.
    Digit(char),
    TimerFired(TimerId),
    CustomerLookedUp(Option<CustomerSummary>),
    CallbackRecorded,
    CallerHungUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    /// A `hangup` node ended the call normally.
    Completed,
    /// The dialplan could not continue (missing node, runaway loop).
    DialplanError(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrAction {
    Play {
        id: PromptId,
        prompt: PathBuf,
        barge_in: bool,
    },
    StopPrompt {
        id: PromptId,
    },
    StartTimer {
        id: TimerId,
        at: DateTime<Utc>,
    },
    CancelTimer {
        id: TimerId,
    },
    /// Answer with `CustomerLookedUp`.
    LookupCustomer {
        number: String,
    },
    /// The IVR is done; the shell hands the call to the queue.
    Enqueue {
        queue: String,
        skill: Option<String>,
        priority: i32,
        /// The owner of the caller's open case, if any (first-contact ownership).
        preferred_agent: Option<String>,
        vars: BTreeMap<String, String>,
        /// IVR path for the call record, e.g. `greeting>main_menu[1]>repair`.
        path: String,
    },
    /// Store a callback promise; answer with `CallbackRecorded`.
    RequestCallback {
        number: String,
        due_at: DateTime<Utc>,
        vars: BTreeMap<String, String>,
        path: String,
    },
    Hangup {
        reason: HangupReason,
    },
}

/// How the IVR part of the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrOutcome {
    Enqueued { queue: String },
    HungUp,
    CallerHungUp,
    Failed(String),
}

/// One node visited, with what the caller entered there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub node: String,
    /// Keys pressed per attempt (`"9"`, `"123456#"`); `"T"` marks a timeout.
    pub input: Vec<String>,
}

impl fmt::Display for PathStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.node)?;
        if !self.input.is_empty() {
            write!(f, "[{}]", self.input.join(","))?;
        }
        Ok(())
    }
}

/// What to do when the current prompt finishes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Then {
    Goto(String),
    /// Menu/collect prompt done: wait for keys.
    AwaitInput,
    /// Retry notice done: offer the node's prompt again.
    Reprompt,
    Enqueue,
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Prompt {
        id: PromptId,
        barge_in: bool,
        then: Then,
    },
    Input,
    Lookup,
    CallbackPending,
    Done,
}

/// The IVR of one call.
#[derive(Debug, Clone)]
pub struct Interpreter {
    plan: Arc<Dialplan>,
    caller: String,
    vars: BTreeMap<String, String>,
    node: String,
    phase: Phase,
    /// Bad keys and timeouts in the current menu/collect node.
    failures: u32,
    /// Digits collected so far in a collect node.
    digits: String,
    typeahead: VecDeque<char>,
    timer: Option<TimerId>,
    next_id: u64,
    path: Vec<PathStep>,
    outcome: Option<IvrOutcome>,
}

impl Interpreter {
    pub fn new(plan: Arc<Dialplan>) -> Self {
        Interpreter {
            plan,
            caller: String::new(),
            vars: BTreeMap::new(),
            node: String::new(),
            phase: Phase::NotStarted,
            failures: 0,
            digits: String::new(),
            typeahead: VecDeque::new(),
            timer: None,
            next_id: 1,
            path: Vec::new(),
            outcome: None,
        }
    }

    pub fn handle(&mut self, event: IvrEvent, now: DateTime<Utc>) -> Vec<IvrAction> {
        let mut out = Vec::new();
        self.handle_into(event, now, &mut out);
        out
    }

    /// As [`handle`](Self::handle), appending to a caller-owned buffer.
    pub fn handle_into(&mut self, event: IvrEvent, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        if self.phase == Phase::Done {
            return;
        }
        match event {
            IvrEvent::Started { caller, called } => {
                if self.phase == Phase::NotStarted {
                    self.vars.insert("caller".into(), caller.clone());
                    self.vars.insert("called".into(), called);
                    self.caller = caller;
                    let start = self.plan.start.clone();
                    self.goto(start, now, out);
                }
            }
            IvrEvent::CallerHungUp => {
                if let Phase::Prompt { id, .. } = self.phase {
                    out.push(IvrAction::StopPrompt { id });
                }
                self.cancel_timer(out);
                self.finish(IvrOutcome::CallerHungUp);
            }
            IvrEvent::PromptFinished(id) => {
                // Only the prompt now playing counts; others were stopped.
                match &self.phase {
                    Phase::Prompt {
                        id: current, then, ..
                    } if *current == id => {
                        let then = then.clone();
                        self.after_prompt(then, now, out);
                    }
                    _ => {}
                }
            }
            IvrEvent::Digit(key) => {
                if DTMF_KEYS.contains(key) {
                    self.digit(key, now, out);
                }
            }
            IvrEvent::TimerFired(id) => {
                if self.timer == Some(id) {
                    self.timer = None;
                    self.timer_fired(now, out);
                }
            }
            IvrEvent::CustomerLookedUp(customer) => {
                if self.phase == Phase::Lookup {
                    self.cancel_timer(out);
                    self.customer_found(customer);
                    self.continue_after_lookup(now, out);
                }
            }
            IvrEvent::CallbackRecorded => {
                if self.phase == Phase::CallbackPending {
                    let plan = Arc::clone(&self.plan);
                    if let Some(NodeKind::Callback(c)) = plan.node(&self.node).map(|n| &n.kind) {
                        match &c.prompt {
                            Some(p) => self.play(p, false, Then::Goto(c.next.clone()), out),
                            None => self.goto(c.next.clone(), now, out),
                        }
                    }
                }
            }
        }
    }

    /// The IVR path so far, e.g. `hours>greeting>main_menu[9,1]>repair`.
    pub fn path(&self) -> String {
        let steps: Vec<String> = self.path.iter().map(PathStep::to_string).collect();
        steps.join(">")
    }

    pub fn path_steps(&self) -> &[PathStep] {
        &self.path
    }

    /// Call variables: `caller`, `called`, `customer_*`, collected digits, `set` values.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    pub fn outcome(&self) -> Option<&IvrOutcome> {
        self.outcome.as_ref()
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn current_node(&self) -> Option<&str> {
        (!self.node.is_empty()).then_some(self.node.as_str())
    }

    // -- transitions --------------------------------------------------------

    fn goto(&mut self, mut id: String, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        for _ in 0..MAX_HOPS {
            match self.enter(&id, now, out) {
                Some(next) => id = next,
                None => return,
            }
        }
        self.fail(
            format!("more than {MAX_HOPS} nodes without waiting, at `{id}`"),
            out,
        );
    }

    /// Enters node `id`; returns the node to continue with if this one does
    /// not wait for anything.
    fn enter(&mut self, id: &str, now: DateTime<Utc>, out: &mut Vec<IvrAction>) -> Option<String> {
        self.cancel_timer(out);
        let plan = Arc::clone(&self.plan);
        let Some(node) = plan.node(id) else {
            self.fail(format!("node `{id}` does not exist"), out);
            return None;
        };
        self.node = id.to_string();
        self.failures = 0;
        self.digits.clear();
        self.path.push(PathStep {
            node: id.to_string(),
            input: Vec::new(),
        });
        match &node.kind {
            NodeKind::Play(p) => {
                if p.barge_in && !self.typeahead.is_empty() {
                    // The caller already pressed a key through an earlier prompt.
                    return Some(p.next.clone());
                }
                self.typeahead.clear();
                self.play(&p.prompt, p.barge_in, Then::Goto(p.next.clone()), out);
                None
            }
            NodeKind::Menu(m) => match self.typeahead.pop_front() {
                Some(key) => {
                    self.phase = Phase::Input;
                    self.menu_key(m, key, out)
                }
                None => {
                    self.play(&m.prompt, m.barge_in, Then::AwaitInput, out);
                    None
                }
            },
            NodeKind::Collect(c) => {
                if self.typeahead.is_empty() {
                    self.play(&c.prompt, c.barge_in, Then::AwaitInput, out);
                    return None;
                }
                self.phase = Phase::Input;
                while let Some(key) = self.typeahead.pop_front() {
                    if let Some(next) = self.collect_key(c, key, now, out) {
                        return Some(next);
                    }
                    if self.phase != Phase::Input {
                        break; // a retry prompt started; it cleared the type-ahead
                    }
                }
                None
            }
            NodeKind::Hours { open, closed } => {
                if plan.is_open(now) {
                    Some(open.clone())
                } else {
                    Some(closed.clone())
                }
            }
            NodeKind::LookupCustomer { next, timeout_secs } => {
                if !has_digits(&self.caller) {
                    // Anonymous or withheld number: nothing to look up.
                    self.customer_found(None);
                    return Some(next.clone());
                }
                out.push(IvrAction::LookupCustomer {
                    number: self.caller.clone(),
                });
                self.phase = Phase::Lookup;
                self.start_timer(now + secs(*timeout_secs), out);
                None
            }
            NodeKind::Set { vars, next } => {
                self.vars
                    .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                Some(next.clone())
            }
            NodeKind::Branch {
                var,
                cases,
                default,
            } => {
                let value = self.vars.get(var).map_or("", String::as_str);
                Some(cases.get(value).unwrap_or(default).clone())
            }
            NodeKind::Queue(q) => {
                self.typeahead.clear();
                match &q.prompt {
                    Some(p) => self.play(p, false, Then::Enqueue, out),
                    None => self.enqueue(out),
                }
                None
            }
            NodeKind::Callback(c) => {
                self.typeahead.clear();
                self.request_callback(c, now, out)
            }
            NodeKind::Hangup { prompt } => {
                self.typeahead.clear();
                match prompt {
                    Some(p) => self.play(p, false, Then::Hangup, out),
                    None => self.hangup(out),
                }
                None
            }
        }
    }

    fn after_prompt(&mut self, then: Then, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        match then {
            Then::Goto(next) => self.goto(next, now, out),
            Then::AwaitInput => {
                self.phase = Phase::Input;
                let plan = Arc::clone(&self.plan);
                let wait = match plan.node(&self.node).map(|n| &n.kind) {
                    Some(NodeKind::Menu(m)) => m.timeout_secs,
                    Some(NodeKind::Collect(c)) => c.timeout_secs,
                    _ => return,
                };
                self.start_timer(now + secs(wait), out);
            }
            Then::Reprompt => self.reprompt(out),
            Then::Enqueue => self.enqueue(out),
            Then::Hangup => self.hangup(out),
        }
    }

    fn digit(&mut self, key: char, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        let plan = Arc::clone(&self.plan);
        let kind = plan.node(&self.node).map(|n| &n.kind);
        match self.phase.clone() {
            Phase::Prompt {
                id, barge_in: true, ..
            } => {
                out.push(IvrAction::StopPrompt { id });
                match kind {
                    Some(NodeKind::Play(p)) => {
                        self.typeahead.push_back(key);
                        self.goto(p.next.clone(), now, out);
                    }
                    Some(NodeKind::Menu(_) | NodeKind::Collect(_)) => {
                        self.phase = Phase::Input;
                        self.input_key(key, now, out);
                    }
                    _ => {}
                }
            }
            Phase::Input => {
                self.cancel_timer(out);
                self.input_key(key, now, out);
            }
            Phase::Lookup => self.typeahead.push_back(key),
            _ => {}
        }
    }

    fn input_key(&mut self, key: char, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        let plan = Arc::clone(&self.plan);
        let next = match plan.node(&self.node).map(|n| &n.kind) {
            Some(NodeKind::Menu(m)) => self.menu_key(m, key, out),
            Some(NodeKind::Collect(c)) => self.collect_key(c, key, now, out),
            _ => None,
        };
        if let Some(next) = next {
            self.goto(next, now, out);
        }
    }

    fn timer_fired(&mut self, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        let plan = Arc::clone(&self.plan);
        let kind = plan.node(&self.node).map(|n| &n.kind);
        let next = match (&self.phase, kind) {
            (Phase::Input, Some(NodeKind::Menu(m))) => {
                self.log("T".into());
                self.retry(
                    m.timeout_prompt.as_deref(),
                    m.max_retries,
                    Some(&m.fallback),
                    out,
                )
            }
            (Phase::Input, Some(NodeKind::Collect(c))) => {
                if self.digits.is_empty() {
                    self.log("T".into());
                    self.retry(
                        c.timeout_prompt.as_deref(),
                        c.max_retries,
                        c.fallback.as_ref(),
                        out,
                    )
                    .or_else(|| self.collect_gave_up(c))
                } else {
                    // Inter-digit timeout: the caller stopped typing.
                    self.collect_done(c, "", out)
                }
            }
            (Phase::Lookup, _) => {
                tracing::warn!(node = %self.node, "customer lookup timed out; continuing as not found");
                self.customer_found(None);
                self.vars.insert("customer_lookup".into(), "timeout".into());
                self.continue_after_lookup(now, out);
                None
            }
            _ => None,
        };
        if let Some(next) = next {
            self.goto(next, now, out);
        }
    }

    fn menu_key(&mut self, m: &Menu, key: char, out: &mut Vec<IvrAction>) -> Option<String> {
        self.log(key.to_string());
        if let Some(target) = m.choices.get(&key) {
            return Some(target.clone());
        }
        self.retry(
            m.invalid_prompt.as_deref(),
            m.max_retries,
            Some(&m.fallback),
            out,
        )
    }

    fn collect_key(
        &mut self,
        c: &Collect,
        key: char,
        now: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) -> Option<String> {
        if Some(key) == c.terminator {
            return self.collect_done(c, &key.to_string(), out);
        }
        self.digits.push(key);
        if self.digits.len() >= c.max_digits as usize {
            return self.collect_done(c, "", out);
        }
        self.start_timer(now + secs(c.inter_digit_timeout_secs), out);
        None
    }

    /// Input ended (terminator, full length or inter-digit timeout).
    fn collect_done(
        &mut self,
        c: &Collect,
        terminator: &str,
        out: &mut Vec<IvrAction>,
    ) -> Option<String> {
        let digits = std::mem::take(&mut self.digits);
        self.log(format!("{digits}{terminator}"));
        if digits.is_empty() && !terminator.is_empty() && c.allow_empty {
            self.vars.remove(&c.var);
            return Some(c.next.clone());
        }
        if digits.len() < c.min_digits as usize {
            return self
                .retry(
                    c.invalid_prompt.as_deref(),
                    c.max_retries,
                    c.fallback.as_ref(),
                    out,
                )
                .or_else(|| self.collect_gave_up(c));
        }
        self.vars.insert(c.var.clone(), digits);
        Some(c.next.clone())
    }

    /// After the last retry without `fallback`: continue with the variable unset.
    fn collect_gave_up(&mut self, c: &Collect) -> Option<String> {
        if self.phase == Phase::Input && self.failures > c.max_retries {
            self.vars.remove(&c.var);
            Some(c.next.clone())
        } else {
            None
        }
    }

    /// Counts a failed attempt: either offers the node again (notice prompt,
    /// then the node's prompt) or, past `max_retries`, returns the fallback.
    fn retry(
        &mut self,
        notice: Option<&str>,
        max_retries: u32,
        fallback: Option<&String>,
        out: &mut Vec<IvrAction>,
    ) -> Option<String> {
        self.failures += 1;
        self.digits.clear();
        self.typeahead.clear();
        if self.failures > max_retries {
            return fallback.cloned();
        }
        match notice {
            Some(n) => {
                let barge_in = self.node_barge_in();
                self.play(n, barge_in, Then::Reprompt, out);
            }
            None => self.reprompt(out),
        }
        None
    }

    /// Offers the current menu/collect node's prompt again.
    fn reprompt(&mut self, out: &mut Vec<IvrAction>) {
        let plan = Arc::clone(&self.plan);
        match plan.node(&self.node).map(|n| &n.kind) {
            Some(NodeKind::Menu(m)) => self.play(&m.prompt, m.barge_in, Then::AwaitInput, out),
            Some(NodeKind::Collect(c)) => self.play(&c.prompt, c.barge_in, Then::AwaitInput, out),
            _ => {}
        }
    }

    fn node_barge_in(&self) -> bool {
        match self.plan.node(&self.node).map(|n| &n.kind) {
            Some(NodeKind::Menu(m)) => m.barge_in,
            Some(NodeKind::Collect(c)) => c.barge_in,
            _ => false,
        }
    }

    fn customer_found(&mut self, customer: Option<CustomerSummary>) {
        let v = &mut self.vars;
        match customer {
            Some(c) => {
                v.insert("customer_found".into(), "true".into());
                v.insert("customer_id".into(), c.id);
                v.insert("customer_name".into(), c.name);
                if let Some(r) = c.region {
                    v.insert("customer_region".into(), r);
                }
                let has_case = c.open_case.is_some();
                if let Some(case) = c.open_case {
                    v.insert("customer_open_case".into(), case);
                }
                if let Some(a) = c.owner_agent {
                    v.insert("customer_owner_agent".into(), a);
                }
                v.insert("customer_has_open_case".into(), has_case.to_string());
            }
            None => {
                v.insert("customer_found".into(), "false".into());
                v.insert("customer_has_open_case".into(), "false".into());
            }
        }
    }

    fn continue_after_lookup(&mut self, now: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        let plan = Arc::clone(&self.plan);
        if let Some(NodeKind::LookupCustomer { next, .. }) = plan.node(&self.node).map(|n| &n.kind)
        {
            self.goto(next.clone(), now, out);
        }
    }

    fn request_callback(
        &mut self,
        c: &Callback,
        now: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) -> Option<String> {
        if !has_digits(&self.caller) {
            // No number to call back: do not promise anything.
            self.log("no-number".into());
            return Some(c.next.clone());
        }
        let from = match c.count_from {
            CountFrom::Now => now,
            CountFrom::Opening => self
                .plan
                .calendar
                .next_open(now, self.plan.timezone)
                .unwrap_or(now),
        };
        let due_at = from + Duration::minutes(c.within_minutes.into());
        self.vars.insert("callback_due".into(), due_at.to_rfc3339());
        out.push(IvrAction::RequestCallback {
            number: self.caller.clone(),
            due_at,
            vars: self.vars.clone(),
            path: self.path(),
        });
        self.phase = Phase::CallbackPending;
        None
    }

    fn enqueue(&mut self, out: &mut Vec<IvrAction>) {
        let plan = Arc::clone(&self.plan);
        let Some(NodeKind::Queue(q)) = plan.node(&self.node).map(|n| &n.kind) else {
            return;
        };
        out.push(IvrAction::Enqueue {
            queue: q.queue.clone(),
            skill: q.skill.clone(),
            priority: q.priority,
            preferred_agent: self.vars.get("customer_owner_agent").cloned(),
            vars: self.vars.clone(),
            path: self.path(),
        });
        self.finish(IvrOutcome::Enqueued {
            queue: q.queue.clone(),
        });
    }

    fn hangup(&mut self, out: &mut Vec<IvrAction>) {
        out.push(IvrAction::Hangup {
            reason: HangupReason::Completed,
        });
        self.finish(IvrOutcome::HungUp);
    }

    fn fail(&mut self, why: String, out: &mut Vec<IvrAction>) {
        tracing::error!(dialplan = %self.plan.path.display(), %why, "IVR cannot continue");
        self.cancel_timer(out);
        out.push(IvrAction::Hangup {
            reason: HangupReason::DialplanError(why.clone()),
        });
        self.finish(IvrOutcome::Failed(why));
    }

    fn finish(&mut self, outcome: IvrOutcome) {
        self.phase = Phase::Done;
        self.outcome = Some(outcome);
    }

    // -- helpers ------------------------------------------------------------

    fn play(&mut self, prompt: &str, barge_in: bool, then: Then, out: &mut Vec<IvrAction>) {
        let id = PromptId(self.fresh_id());
        out.push(IvrAction::Play {
            id,
            prompt: self.plan.prompt_path(prompt),
            barge_in,
        });
        self.phase = Phase::Prompt { id, barge_in, then };
    }

    fn start_timer(&mut self, at: DateTime<Utc>, out: &mut Vec<IvrAction>) {
        self.cancel_timer(out);
        let id = TimerId(self.fresh_id());
        self.timer = Some(id);
        out.push(IvrAction::StartTimer { id, at });
    }

    fn cancel_timer(&mut self, out: &mut Vec<IvrAction>) {
        if let Some(id) = self.timer.take() {
            out.push(IvrAction::CancelTimer { id });
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn log(&mut self, input: String) {
        if let Some(step) = self.path.last_mut() {
            step.input.push(input);
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::seconds(s.into())
}

fn has_digits(number: &str) -> bool {
    number.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::dialplan::tests::write_plan;
    use chrono::TimeZone;
    use IvrAction as A;
    use IvrEvent as E;

    const PROMPTS: &[&str] = &[
        "hello.wav",
        "menu.wav",
        "invalid.wav",
        "timeout.wav",
        "order.wav",
        "promise.wav",
        "hold.wav",
        "bye.wav",
    ];

    const HEADER: &str = r#"
[dialplan]
name = "t"
numbers = ["8000"]
start = "greeting"
"#;

    /// A plan from TOML node definitions, plus the temp dir keeping its prompts alive.
    fn plan(extra: &str) -> (Arc<Dialplan>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_plan(dir.path(), &format!("{HEADER}{extra}"), PROMPTS);
        match Dialplan::load(&path) {
            Ok(p) => (Arc::new(p), dir),
            Err(e) => panic!("test plan invalid: {e:#?}"),
        }
    }

    /// Mon 2026-11-23 10:00 Shanghai.
    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
    }

    /// Drives an interpreter and remembers the latest prompt and timer.
    struct Call {
        ivr: Interpreter,
        now: DateTime<Utc>,
        prompt: Option<PromptId>,
        timer: Option<(TimerId, DateTime<Utc>)>,
    }

    impl Call {
        fn start(plan: &Arc<Dialplan>, caller: &str) -> (Call, Vec<IvrAction>) {
            let mut call = Call {
                ivr: Interpreter::new(Arc::clone(plan)),
                now: t0(),
                prompt: None,
                timer: None,
            };
            let a = call.send(E::Started {
                caller: caller.into(),
                called: "8000".into(),
            });
            (call, a)
        }

        fn send(&mut self, e: IvrEvent) -> Vec<IvrAction> {
            let actions = self.ivr.handle(e, self.now);
            for a in &actions {
                match a {
                    A::Play { id, .. } => self.prompt = Some(*id),
                    A::StartTimer { id, at } => self.timer = Some((*id, *at)),
                    _ => {}
                }
            }
            actions
        }

        fn finish_prompt(&mut self) -> Vec<IvrAction> {
            let id = self.prompt.expect("a prompt is playing");
            self.send(E::PromptFinished(id))
        }

        /// Moves the clock to the pending timer and fires it.
        fn fire(&mut self) -> Vec<IvrAction> {
            let (id, at) = self.timer.take().expect("a timer is pending");
            self.now = at;
            self.send(E::TimerFired(id))
        }

        fn keys(&mut self, keys: &str) -> Vec<IvrAction> {
            keys.chars().flat_map(|k| self.send(E::Digit(k))).collect()
        }
    }

    fn played(actions: &[IvrAction]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                A::Play { prompt, .. } => {
                    prompt.file_name().map(|f| f.to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect()
    }

    const MENU: &str = r#"
[nodes.greeting]
type = "play"
prompt = "hello.wav"
next = "menu"

[nodes.menu]
type = "menu"
prompt = "menu.wav"
choices = { "1" = "repair", "3" = "complaint" }
timeout_secs = 5
max_retries = 2
invalid_prompt = "invalid.wav"
timeout_prompt = "timeout.wav"
fallback = "agent"

[nodes.repair]
type = "queue"
queue = "repair"
skill = "repair"

[nodes.complaint]
type = "queue"
queue = "complaint"
skill = "complaint"
priority = 10
prompt = "hold.wav"

[nodes.agent]
type = "queue"
queue = "general"
"#;

    #[test]
    fn play_then_menu_choice_enqueues() {
        let (p, _d) = plan(MENU);
        let (mut call, a) = Call::start(&p, "13800138000");
        assert_eq!(played(&a), ["hello.wav"]);
        assert!(matches!(
            a[0],
            A::Play {
                barge_in: false,
                ..
            }
        ));
        // A key during a non-barge-in prompt is ignored.
        assert!(call.keys("3").is_empty());
        let a = call.finish_prompt();
        assert_eq!(played(&a), ["menu.wav"]);
        let a = call.finish_prompt();
        assert_eq!(
            a,
            vec![A::StartTimer {
                id: TimerId(3),
                at: t0() + Duration::seconds(5)
            }]
        );
        let a = call.keys("3");
        assert_eq!(a[0], A::CancelTimer { id: TimerId(3) });
        assert_eq!(played(&a), ["hold.wav"]);
        let a = call.finish_prompt();
        let [A::Enqueue {
            queue,
            skill,
            priority,
            preferred_agent,
            vars,
            path,
        }] = a.as_slice()
        else {
            panic!("expected one Enqueue, got {a:?}")
        };
        assert_eq!(
            (queue.as_str(), skill.as_deref(), *priority),
            ("complaint", Some("complaint"), 10)
        );
        assert_eq!(*preferred_agent, None);
        assert_eq!(vars["caller"], "13800138000");
        assert_eq!(vars["called"], "8000");
        assert_eq!(path, "greeting>menu[3]>complaint");
        assert_eq!(
            call.ivr.outcome(),
            Some(&IvrOutcome::Enqueued {
                queue: "complaint".into()
            })
        );
        // Finished: further events do nothing.
        assert!(call.keys("1").is_empty());
    }

    #[test]
    fn menu_retries_on_invalid_and_timeout_then_falls_back() {
        let (p, _d) = plan(MENU);
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt(); // greeting
        call.finish_prompt(); // menu -> timer
        let a = call.keys("9");
        assert_eq!(played(&a), ["invalid.wav"]);
        assert_eq!(played(&call.finish_prompt()), ["menu.wav"]);
        call.finish_prompt();
        let a = call.fire();
        assert_eq!(call.now, t0() + Duration::seconds(5));
        assert_eq!(played(&a), ["timeout.wav"]);
        call.finish_prompt();
        call.finish_prompt();
        // Third failure > max_retries = 2: fallback, no more notices.
        let a = call.keys("7");
        assert!(
            matches!(&a[..], [A::CancelTimer { .. }, A::Enqueue { queue, .. }] if queue == "general"),
            "{a:?}"
        );
        assert_eq!(call.ivr.path(), "greeting>menu[9,T,7]>agent");
    }

    #[test]
    fn stale_timer_and_prompt_events_are_ignored() {
        let (p, _d) = plan(MENU);
        let (mut call, _) = Call::start(&p, "13800138000");
        let greeting = call.prompt.expect("greeting playing");
        call.finish_prompt();
        call.finish_prompt();
        let (old_timer, _) = call.timer.expect("menu timer");
        call.keys("9"); // cancels old_timer, plays invalid.wav
        assert!(call.send(E::TimerFired(old_timer)).is_empty());
        assert!(call.send(E::PromptFinished(greeting)).is_empty());
        assert!(call.send(E::Digit('A')).is_empty());
        assert_eq!(call.ivr.current_node(), Some("menu"));
    }

    #[test]
    fn barge_in_stops_menu_prompt_and_counts() {
        let (p, _d) = plan(MENU);
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        let menu_prompt = call.prompt.expect("menu playing");
        let a = call.keys("1");
        assert_eq!(a[0], A::StopPrompt { id: menu_prompt });
        assert!(matches!(&a[1], A::Enqueue { queue, .. } if queue == "repair"));
        assert_eq!(call.ivr.path(), "greeting>menu[1]>repair");
    }

    #[test]
    fn barge_in_through_greeting_and_lookup_is_typeahead() {
        let (p, _d) = plan(&format!(
            "{}{}",
            r#"
[nodes.greeting]
type = "play"
prompt = "hello.wav"
barge_in = true
next = "lookup"

[nodes.lookup]
type = "lookup_customer"
next = "case"

[nodes.case]
type = "branch"
var = "customer_has_open_case"
cases = { "true" = "owner" }
default = "menu"

[nodes.owner]
type = "queue"
queue = "general"
"#,
            MENU.split("[nodes.menu]")
                .nth(1)
                .map(|m| format!("[nodes.menu]{m}"))
                .unwrap_or_default()
        ));
        let (mut call, _) = Call::start(&p, "13800138000");
        let a = call.keys("1");
        assert!(matches!(a[0], A::StopPrompt { .. }));
        assert_eq!(
            a[1],
            A::LookupCustomer {
                number: "13800138000".into()
            }
        );
        assert!(matches!(a[2], A::StartTimer { .. }));
        // Keys during the lookup are type-ahead too.
        assert!(call.keys("3").is_empty());
        let a = call.send(E::CustomerLookedUp(Some(CustomerSummary {
            id: "C42".into(),
            name: "张三".into(),
            region: Some("华东".into()),
            open_case: None,
            owner_agent: None,
        })));
        // The menu consumed '1' without playing its prompt.
        assert!(played(&a).is_empty(), "{a:?}");
        assert!(matches!(&a[1], A::Enqueue { queue, vars, .. }
            if queue == "repair" && vars["customer_id"] == "C42" && vars["customer_region"] == "华东"));
        assert_eq!(call.ivr.path(), "greeting>lookup>case>menu[1]>repair");

        // Open case: routed to the owner, who is named as preferred agent.
        let (mut call, _) = Call::start(&p, "13900139000");
        call.finish_prompt();
        let a = call.send(E::CustomerLookedUp(Some(CustomerSummary {
            id: "C7".into(),
            name: "李四".into(),
            open_case: Some("WO-1001".into()),
            owner_agent: Some("1002".into()),
            ..Default::default()
        })));
        assert!(
            matches!(&a[1], A::Enqueue { queue, preferred_agent: Some(agent), vars, .. }
            if queue == "general" && agent == "1002" && vars["customer_open_case"] == "WO-1001"),
            "{a:?}"
        );

        // Lookup timeout: not found, plays the menu.
        let (mut call, _) = Call::start(&p, "13700137000");
        call.finish_prompt();
        let a = call.fire();
        assert_eq!(call.now, t0() + Duration::seconds(3));
        assert_eq!(played(&a), ["menu.wav"]);
        assert_eq!(call.ivr.vars()["customer_found"], "false");
        assert_eq!(call.ivr.vars()["customer_lookup"], "timeout");

        // Anonymous caller: no lookup at all.
        let (mut call, _) = Call::start(&p, "anonymous");
        let a = call.finish_prompt();
        assert_eq!(played(&a), ["menu.wav"]);
        assert!(!a.iter().any(|x| matches!(x, A::LookupCustomer { .. })));
    }

    const COLLECT: &str = r#"
[nodes.greeting]
type = "collect"
prompt = "order.wav"
min_digits = 6
max_digits = 8
timeout_secs = 8
inter_digit_timeout_secs = 3
max_retries = 1
invalid_prompt = "invalid.wav"
timeout_prompt = "timeout.wav"
var = "work_order"
next = "q"

[nodes.q]
type = "queue"
queue = "repair"
"#;

    fn enqueued_vars(a: &[IvrAction]) -> BTreeMap<String, String> {
        a.iter()
            .find_map(|x| match x {
                A::Enqueue { vars, .. } => Some(vars.clone()),
                _ => None,
            })
            .expect("Enqueue action")
    }

    #[test]
    fn collect_with_terminator() {
        let (p, _d) = plan(COLLECT);
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        assert_eq!(call.timer.map(|t| t.1), Some(t0() + Duration::seconds(8)));
        let a = call.keys("1234");
        // Each digit restarts the inter-digit timer.
        assert_eq!(call.timer.map(|t| t.1), Some(t0() + Duration::seconds(3)));
        assert_eq!(
            a.iter()
                .filter(|x| matches!(x, A::StartTimer { .. }))
                .count(),
            4
        );
        let a = call.keys("56#");
        assert_eq!(enqueued_vars(&a)["work_order"], "123456");
        assert_eq!(call.ivr.path(), "greeting[123456#]>q");
    }

    #[test]
    fn collect_stops_at_max_digits_and_accepts_on_inter_digit_timeout() {
        let (p, _d) = plan(COLLECT);
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        let a = call.keys("12345678");
        assert_eq!(enqueued_vars(&a)["work_order"], "12345678");

        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        call.keys("1234567");
        let a = call.fire();
        assert_eq!(enqueued_vars(&a)["work_order"], "1234567");
        assert_eq!(call.ivr.path(), "greeting[1234567]>q");
    }

    #[test]
    fn collect_too_short_then_timeout_gives_up_without_var() {
        let (p, _d) = plan(COLLECT);
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        let a = call.keys("12#");
        assert_eq!(played(&a), ["invalid.wav"]);
        assert_eq!(played(&call.finish_prompt()), ["order.wav"]);
        call.finish_prompt();
        // No digit at all: first-digit timeout, second failure > max_retries = 1.
        let a = call.fire();
        let vars = enqueued_vars(&a);
        assert!(!vars.contains_key("work_order"));
        assert_eq!(call.ivr.path(), "greeting[12#,T]>q");
    }

    #[test]
    fn collect_barge_in_first_digit_stops_prompt() {
        let (p, _d) = plan(COLLECT);
        let (mut call, a) = Call::start(&p, "13800138000");
        let id = match a[0] {
            A::Play {
                id, barge_in: true, ..
            } => id,
            ref other => panic!("expected barge-in Play, got {other:?}"),
        };
        let a = call.keys("9");
        assert_eq!(a[0], A::StopPrompt { id });
        assert!(matches!(a[1], A::StartTimer { .. }));
        let a = call.keys("87654#");
        assert_eq!(enqueued_vars(&a)["work_order"], "987654");
    }

    const HOURS: &str = r#"
[calendar]
mon = ["08:00-20:00"]
tue = ["08:00-20:00"]
wed = ["08:00-20:00"]
thu = ["08:00-20:00"]
fri = ["08:00-20:00", "22:00-02:00"]
sat = ["09:00-17:00"]
holidays = [2026-10-01]
workdays = [2026-10-10]

[nodes.greeting]
type = "hours"
open = "in"
closed = "out"

[nodes.in]
type = "set"
vars = { hours = "open" }
next = "q"

[nodes.out]
type = "set"
vars = { hours = "closed" }
next = "q"

[nodes.q]
type = "queue"
queue = "general"
"#;

    fn hours_at(p: &Arc<Dialplan>, at: DateTime<Utc>) -> String {
        let mut ivr = Interpreter::new(Arc::clone(p));
        ivr.handle(
            E::Started {
                caller: "1".into(),
                called: "8000".into(),
            },
            at,
        );
        ivr.vars().get("hours").cloned().unwrap_or_default()
    }

    #[test]
    fn hours_node_in_shanghai_and_utc() {
        let (sh, _d1) = plan(HOURS);
        // Same calendar in UTC (the header's last key is `start`, so a
        // timezone line appended to it stays in [dialplan]).
        let dir = tempfile::tempdir().expect("tempdir");
        let src = format!("{HEADER}timezone = \"UTC\"\n{HOURS}");
        let utc_plan =
            Arc::new(Dialplan::load(&write_plan(dir.path(), &src, PROMPTS)).expect("valid"));
        assert_eq!(utc_plan.timezone, chrono_tz::Tz::UTC);
        let at = |y, m, d, h, mi| Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap();
        // Mon 2026-11-23 11:00 UTC = 19:00 Shanghai: open in both.
        assert_eq!(hours_at(&sh, at(2026, 11, 23, 11, 0)), "open");
        assert_eq!(hours_at(&utc_plan, at(2026, 11, 23, 11, 0)), "open");
        // Mon 2026-11-23 21:00 UTC = Tue 05:00 Shanghai.
        assert_eq!(hours_at(&sh, at(2026, 11, 23, 21, 0)), "closed");
        assert_eq!(hours_at(&utc_plan, at(2026, 11, 23, 21, 0)), "closed");
        // Mon 2026-11-23 01:00 UTC = 09:00 Shanghai: open there, not in UTC.
        assert_eq!(hours_at(&sh, at(2026, 11, 23, 1, 0)), "open");
        assert_eq!(hours_at(&utc_plan, at(2026, 11, 23, 1, 0)), "closed");
        // Across midnight: Sat 2026-11-28 01:00 Shanghai, Friday's late shift.
        assert_eq!(hours_at(&sh, at(2026, 11, 27, 17, 0)), "open");
        // Weekend: Sun 2026-11-29 10:00 Shanghai.
        assert_eq!(hours_at(&sh, at(2026, 11, 29, 2, 0)), "closed");
        // Holiday Thu 2026-10-01 10:00 Shanghai.
        assert_eq!(hours_at(&sh, at(2026, 10, 1, 2, 0)), "closed");
        // Make-up workday Sat 2026-10-10 18:00 Shanghai: weekday hours.
        assert_eq!(hours_at(&sh, at(2026, 10, 10, 10, 0)), "open");
        assert_eq!(hours_at(&sh, at(2026, 10, 17, 10, 0)), "closed");
    }

    const CALLBACK: &str = r#"
[calendar]
mon = ["08:00-20:00"]
tue = ["08:00-20:00"]

[nodes.greeting]
type = "callback"
within_minutes = 60
count_from = "opening"
prompt = "promise.wav"
next = "bye"

[nodes.bye]
type = "hangup"
prompt = "bye.wav"
"#;

    #[test]
    fn callback_records_number_and_due_time_then_hangs_up() {
        let (p, _d) = plan(CALLBACK);
        // Open now (Mon 10:00 Shanghai): due in 60 minutes.
        let (mut call, a) = Call::start(&p, "13800138000");
        let [A::RequestCallback {
            number,
            due_at,
            vars,
            path,
        }] = a.as_slice()
        else {
            panic!("expected RequestCallback, got {a:?}")
        };
        assert_eq!(number, "13800138000");
        assert_eq!(*due_at, t0() + Duration::minutes(60));
        assert_eq!(vars["callback_due"], "2026-11-23T03:00:00+00:00");
        assert_eq!(path, "greeting");
        // Keys while the shell stores it are ignored.
        assert!(call.keys("1").is_empty());
        assert_eq!(played(&call.send(E::CallbackRecorded)), ["promise.wav"]);
        assert_eq!(played(&call.finish_prompt()), ["bye.wav"]);
        assert_eq!(
            call.finish_prompt(),
            vec![A::Hangup {
                reason: HangupReason::Completed
            }]
        );
        assert_eq!(call.ivr.outcome(), Some(&IvrOutcome::HungUp));
        assert_eq!(call.ivr.path(), "greeting>bye");

        // Mon 21:00 Shanghai (closed): due one hour after Tue 08:00.
        let mut ivr = Interpreter::new(Arc::clone(&p));
        let late = Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap();
        let a = ivr.handle(
            E::Started {
                caller: "021-5555".into(),
                called: "8000".into(),
            },
            late,
        );
        assert!(
            matches!(&a[0], A::RequestCallback { due_at, .. }
            if *due_at == Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap()),
            "{a:?}"
        );

        // No caller number: nothing promised, straight to goodbye.
        let (_call, a) = Call::start(&p, "");
        assert_eq!(played(&a), ["bye.wav"]);
    }

    #[test]
    fn hangup_without_prompt_and_set_branch_default() {
        let (p, _d) = plan(
            r#"
[nodes.greeting]
type = "set"
vars = { reason = "consult" }
next = "b"

[nodes.b]
type = "branch"
var = "reason"
cases = { "repair" = "q" }
default = "end"

[nodes.q]
type = "queue"
queue = "repair"

[nodes.end]
type = "hangup"
"#,
        );
        let (call, a) = Call::start(&p, "13800138000");
        assert_eq!(
            a,
            vec![A::Hangup {
                reason: HangupReason::Completed
            }]
        );
        assert_eq!(call.ivr.vars()["reason"], "consult");
        assert_eq!(call.ivr.path(), "greeting>b>end");
    }

    #[test]
    fn caller_hangs_up_mid_prompt() {
        let (p, _d) = plan(MENU);
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        let menu_prompt = call.prompt.expect("menu playing");
        let a = call.send(E::CallerHungUp);
        assert_eq!(a, vec![A::StopPrompt { id: menu_prompt }]);
        assert_eq!(call.ivr.outcome(), Some(&IvrOutcome::CallerHungUp));
        assert!(call.finish_prompt().is_empty());

        // While waiting for a key: the timer is cancelled.
        let (mut call, _) = Call::start(&p, "13800138000");
        call.finish_prompt();
        call.finish_prompt();
        let (timer, _) = call.timer.expect("menu timer");
        assert_eq!(
            call.send(E::CallerHungUp),
            vec![A::CancelTimer { id: timer }]
        );
        assert!(call.ivr.is_finished());
    }

    #[test]
    fn runaway_hand_built_loop_is_stopped() {
        let (p, _d) = plan(
            r#"
[nodes.greeting]
type = "set"
vars = { a = "1" }
next = "end"

[nodes.end]
type = "hangup"
"#,
        );
        // The validator rejects loops; a plan edited in memory must still not spin.
        let mut looped = (*p).clone();
        if let Some(n) = looped.nodes.get_mut("greeting") {
            n.kind = NodeKind::Set {
                vars: BTreeMap::new(),
                next: "greeting".into(),
            };
        }
        let mut ivr = Interpreter::new(Arc::new(looped));
        let a = ivr.handle(
            E::Started {
                caller: "1".into(),
                called: "8000".into(),
            },
            t0(),
        );
        assert!(
            matches!(&a[..], [A::Hangup { reason: HangupReason::DialplanError(m) }] if m.contains("more than 64")),
            "{a:?}"
        );
        assert!(matches!(ivr.outcome(), Some(IvrOutcome::Failed(_))));
    }

    // -- the shipped dialplans/hotline.toml ---------------------------------

    fn hotline() -> Arc<Dialplan> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/hotline.toml");
        match Dialplan::load(&path) {
            Ok(p) => Arc::new(p),
            Err(e) => panic!("shipped hotline.toml invalid: {e:#?}"),
        }
    }

    #[test]
    fn hotline_complaint_goes_to_complaint_queue_first() {
        let p = hotline();
        assert_eq!(p.numbers, ["4008008000", "8000"]);
        // Mon 2026-11-23 10:00 Shanghai: open.
        let (mut call, a) = Call::start(&p, "13800138000");
        assert_eq!(played(&a), ["greeting.wav"]);
        let a = call.finish_prompt();
        assert_eq!(
            a[0],
            A::LookupCustomer {
                number: "13800138000".into()
            }
        );
        let a = call.send(E::CustomerLookedUp(None));
        assert_eq!(played(&a), ["main_menu.wav"]);
        call.keys("3");
        let a = call.finish_prompt(); // transfer_complaint.wav
        let [A::Enqueue {
            queue,
            skill,
            priority,
            vars,
            path,
            ..
        }] = a.as_slice()
        else {
            panic!("expected Enqueue, got {a:?}")
        };
        assert_eq!(
            (queue.as_str(), skill.as_deref(), *priority),
            ("complaint", Some("complaint"), 10)
        );
        assert_eq!(vars["case_type"], "complaint");
        assert_eq!(
            path,
            "hours>greeting>lookup>open_case>main_menu[3]>complaint_mark>complaint"
        );
    }

    #[test]
    fn hotline_repair_with_and_without_work_order() {
        let p = hotline();
        let (mut call, _) = Call::start(&p, "13800138000");
        call.keys("1"); // barge through the greeting
        let a = call.send(E::CustomerLookedUp(None));
        assert_eq!(played(&a), ["order_no.wav"]);
        call.keys("2026112301#");
        let a = call.finish_prompt();
        assert!(
            matches!(&a[0], A::Enqueue { queue, vars, .. }
            if queue == "repair" && vars["work_order"] == "2026112301"),
            "{a:?}"
        );

        let (mut call, _) = Call::start(&p, "13800138000");
        call.keys("1");
        call.send(E::CustomerLookedUp(None));
        call.keys("#"); // no work order
        let a = call.finish_prompt();
        assert!(
            matches!(&a[0], A::Enqueue { queue, vars, .. }
            if queue == "repair" && !vars.contains_key("work_order")),
            "{a:?}"
        );
        assert_eq!(
            call.ivr.path(),
            "hours>greeting>lookup>open_case>main_menu[1]>repair_order[#]>repair"
        );
    }

    #[test]
    fn hotline_after_hours_offers_callback() {
        let p = hotline();
        let mut ivr = Interpreter::new(Arc::clone(&p));
        // National Day, Thu 2026-10-01 10:00 Shanghai: closed until Thu 10-08 08:00.
        let now = Utc.with_ymd_and_hms(2026, 10, 1, 2, 0, 0).unwrap();
        let started = E::Started {
            caller: "13800138000".into(),
            called: "4008008000".into(),
        };
        let a = ivr.handle(started, now);
        assert_eq!(played(&a), ["after_hours.wav"]);
        let Some(A::Play { id, .. }) = a.first().cloned() else {
            panic!("Play expected")
        };
        let a = ivr.handle(E::Digit('1'), now);
        let due = Utc.with_ymd_and_hms(2026, 10, 8, 1, 0, 0).unwrap();
        assert_eq!(a[0], A::StopPrompt { id });
        assert!(
            matches!(&a[1], A::RequestCallback { number, due_at, .. }
            if number == "13800138000" && *due_at == due),
            "{a:?}"
        );
        assert_eq!(
            played(&ivr.handle(E::CallbackRecorded, now)),
            ["callback_promise.wav"]
        );
    }

    #[test]
    fn hotline_prompt_texts_follow_language_rules() {
        let tsv = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/prompts/prompts.tsv"),
        )
        .expect("prompts.tsv readable");
        let p = hotline();
        let mut names = Vec::new();
        for line in tsv
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (name, text) = line.split_once('\t').expect("name<TAB>text");
            assert!(text.contains('您'), "{name}: 您 always");
            assert!(
                p.prompt_path(&format!("{name}.wav")).is_file(),
                "{name}.wav generated"
            );
            names.push(name);
            if name == "goodbye" {
                assert!(
                    text.trim_end_matches(['!', '!', '。']).ends_with("再见"),
                    "{text}"
                );
            } else if !name.starts_with("greeting") && name != "after_hours" {
                assert!(text.contains('请'), "{name}: requests use 请");
            }
        }
        assert!(names.contains(&"greeting") && names.contains(&"goodbye"));
        let greeting = tsv
            .lines()
            .find(|l| l.starts_with("greeting\t"))
            .unwrap_or_default();
        assert!(greeting.contains("您好,欢迎致电") && greeting.contains("客户服务中心"));
    }
}
