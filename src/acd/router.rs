//! The router: one sans-IO state machine owning every queue, caller, offer
//! and agent.
//!
//! `handle(input, now)` first applies the input, then runs one `step` at
//! `now`: expired ring timeouts, ended wrap-ups, owner windows, overflow,
//! distribution and announcements. Because every input ends in a step, a
//! `Tick` is only needed when nothing else happens before
//! [`Router::poll_timeout`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tracing::{debug, warn};

use super::config::{Overflow, QueueConfig, RouterConfig, Strategy};
use super::error::AcdError;
use super::io::{Action, AgentState, Input, OfferFailure, OfferId, Skill, TransferTarget};
use super::select::{select, Candidate};
use super::snapshot::{AgentCounts, AgentSnapshot, QueueSnapshot, QueueStats, Snapshot};

/// Reason given to an agent set NotReady for missing offers.
pub const MISSED_OFFERS_REASON: &str = "missed offers";

/// Handle times kept per queue for the wait estimate.
const HANDLE_HISTORY: usize = 20;

#[derive(Debug)]
struct Queue {
    cfg: QueueConfig,
    stats: QueueStats,
    round_robin_last: Option<String>,
    /// Talk + wrap-up of the most recent calls, newest last.
    recent_handle_ms: VecDeque<u64>,
}

impl Queue {
    /// Average handle time of recent calls, or the configured default.
    fn average_handle_ms(&self) -> u64 {
        let n = self.recent_handle_ms.len() as u64;
        match n {
            0 => self.cfg.default_handle_ms,
            _ => self.recent_handle_ms.iter().sum::<u64>() / n,
        }
    }

    fn serves(&self, agent: &Agent) -> bool {
        self.cfg
            .skill
            .as_deref()
            .is_none_or(|s| agent.skills.contains_key(s))
    }
}

#[derive(Debug)]
struct Agent {
    id: String,
    skills: BTreeMap<String, u8>,
    state: AgentState,
    since_ms: u64,
    /// Position for longest-idle: reset when the agent becomes Ready by
    /// their own doing or fails an offer, kept when an offer is withdrawn
    /// for reasons not theirs (caller hung up, a colleague answered first).
    idle_since_ms: u64,
    missed_in_row: u32,
    answered_today: u32,
    offer: Option<OfferId>,
    call: Option<String>,
    wrap_until_ms: Option<u64>,
    /// NotReady or Offline asked for during a call; applied when wrap-up ends.
    after_wrap: Option<AgentState>,
}

impl Agent {
    fn set_state(&mut self, state: AgentState, now: u64, out: &mut Vec<Action>) {
        if self.state == state {
            return;
        }
        if state == AgentState::Ready {
            self.idle_since_ms = now;
        }
        self.state = state.clone();
        self.since_ms = now;
        out.push(Action::AgentStateChanged {
            agent: self.id.clone(),
            state,
            since_ms: now,
        });
    }

    /// Ready again after an offer that was not the agent's fault: keeps
    /// the idle position so the agent is not sent to the back of the line.
    fn release(&mut self, now: u64, out: &mut Vec<Action>) {
        let idle = self.idle_since_ms;
        self.offer = None;
        self.set_state(AgentState::Ready, now, out);
        self.idle_since_ms = idle;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ringing(OfferId),
    Connected { agent: String, since_ms: u64 },
}

#[derive(Debug)]
struct Call {
    id: String,
    queue: String,
    priority: i32,
    skill: Option<String>,
    /// Tie-breaker after priority and wait start: order of entry.
    seq: u64,
    /// Wait and queue order are measured from here. Kept on overflow;
    /// a transfer starts a new wait.
    wait_start_ms: u64,
    /// Entry into the current queue; `max_wait_ms` counts from here so an
    /// overflowed caller is not bounced on at once.
    entered_queue_ms: u64,
    /// Queues this wait went through, so overflow never loops.
    visited: Vec<String>,
    /// First-contact owner (or transfer target) and until when only they
    /// may take the call.
    owner: Option<(String, u64)>,
    /// Agents who failed an offer of this call → when they may be retried.
    tried: BTreeMap<String, u64>,
    callback_offered: bool,
    overflow_done: bool,
    next_announce_ms: Option<u64>,
    note: Option<String>,
    transfer_chain: Vec<String>,
    phase: Phase,
    /// The agent being consulted for an attended transfer.
    consult: Option<String>,
}

impl Call {
    fn order_key(&self) -> (Reverse<i32>, u64, u64) {
        (Reverse(self.priority), self.wait_start_ms, self.seq)
    }
}

#[derive(Debug)]
struct Offer {
    call_id: String,
    legs: BTreeSet<String>,
    expires_ms: u64,
}

/// The ACD router. See the module docs of [`crate::acd`].
#[derive(Debug)]
pub struct Router {
    max_missed_offers: u32,
    /// In config order, which is also the wallboard order.
    queues: Vec<Queue>,
    agents: BTreeMap<String, Agent>,
    /// Agents with a live SIP registration; kept apart from `agents`
    /// because a phone usually registers before its agent logs in.
    registered: BTreeSet<String>,
    calls: BTreeMap<String, Call>,
    offers: BTreeMap<OfferId, Offer>,
    next_offer: u64,
    next_seq: u64,
    /// Latest time seen; a clock stepping back is treated as standing still.
    now_ms: u64,
}

impl Router {
    pub fn new(config: RouterConfig) -> Result<Router, AcdError> {
        config.validate()?;
        Ok(Router {
            max_missed_offers: config.max_missed_offers.max(1),
            queues: config
                .queues
                .into_iter()
                .map(|cfg| Queue {
                    cfg,
                    stats: QueueStats::default(),
                    round_robin_last: None,
                    recent_handle_ms: VecDeque::new(),
                })
                .collect(),
            agents: BTreeMap::new(),
            registered: BTreeSet::new(),
            calls: BTreeMap::new(),
            offers: BTreeMap::new(),
            next_offer: 1,
            next_seq: 0,
            now_ms: 0,
        })
    }

    /// Applies one input and returns what the shell must do, in order.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        self.handle_into(input, now_ms, &mut out);
        out
    }

    /// Like [`handle`](Self::handle), appending to a caller-owned buffer.
    pub fn handle_into(&mut self, input: Input, now_ms: u64, out: &mut Vec<Action>) {
        let now = now_ms.max(self.now_ms);
        self.now_ms = now;
        if let Err(e) = self.apply(input, now, out) {
            warn!(error = %e, "acd input rejected");
            out.push(Action::Rejected { error: e });
        }
        self.step(now, out);
    }

    /// The next time the router wants an `Input::Tick`, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let offers = self.offers.values().map(|o| o.expires_ms);
        let wraps = self.agents.values().filter_map(|a| a.wrap_until_ms);
        let calls = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Waiting)
            .flat_map(|c| {
                let overflow = self
                    .queue(&c.queue)
                    .and_then(|q| q.cfg.max_wait_ms)
                    .filter(|_| !c.overflow_done)
                    .map(|w| c.entered_queue_ms.saturating_add(w));
                let owner = c.owner.as_ref().map(|(_, until)| *until);
                let retry = c.tried.values().copied().min();
                [overflow, owner, retry, c.next_announce_ms]
                    .into_iter()
                    .flatten()
            });
        offers.chain(wraps).chain(calls).min()
    }

    /// The state of one agent, if known.
    pub fn agent_state(&self, agent: &str) -> Option<&AgentState> {
        self.agents.get(agent).map(|a| &a.state)
    }

    /// Wallboard view at `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> Snapshot {
        let now = now_ms.max(self.now_ms);
        let queues = self
            .queues
            .iter()
            .map(|q| {
                let mut waiting = 0;
                let mut ringing = 0;
                let mut longest = 0;
                for c in self.calls.values().filter(|c| c.queue == q.cfg.name) {
                    match c.phase {
                        Phase::Connected { .. } => continue,
                        Phase::Ringing(_) => ringing += 1,
                        Phase::Waiting => {}
                    }
                    waiting += 1;
                    longest = longest.max(now.saturating_sub(c.wait_start_ms));
                }
                let mut agents = AgentCounts::default();
                for a in self.agents.values().filter(|a| q.serves(a)) {
                    match a.state {
                        AgentState::Offline => {}
                        AgentState::Ready if self.registered.contains(&a.id) => agents.ready += 1,
                        AgentState::Ready => agents.unreachable += 1,
                        AgentState::Reserved => agents.reserved += 1,
                        AgentState::OnCall => agents.on_call += 1,
                        AgentState::WrapUp => agents.wrap_up += 1,
                        AgentState::NotReady { .. } => agents.not_ready += 1,
                    }
                }
                QueueSnapshot {
                    name: q.cfg.name.clone(),
                    waiting,
                    ringing,
                    longest_wait_ms: longest,
                    estimated_wait_ms: self.estimated_wait(q, waiting + 1),
                    agents,
                    today: q.stats.clone(),
                    service_level: q.stats.service_level(),
                    abandon_rate: q.stats.abandon_rate(),
                    avg_wait_ms: q.stats.avg_wait_ms(),
                    avg_talk_ms: q.stats.avg_talk_ms(),
                }
            })
            .collect();
        let agents = self
            .agents
            .values()
            .map(|a| AgentSnapshot {
                id: a.id.clone(),
                state: a.state.clone(),
                since_ms: a.since_ms,
                time_in_state_ms: now.saturating_sub(a.since_ms),
                registered: self.registered.contains(&a.id),
                current_call: a.call.clone().or_else(|| {
                    a.offer
                        .and_then(|o| self.offers.get(&o))
                        .map(|o| o.call_id.clone())
                }),
                answered_today: a.answered_today,
            })
            .collect();
        Snapshot {
            now_ms: now,
            queues,
            agents,
        }
    }

    // ---- inputs ------------------------------------------------------

    fn apply(&mut self, input: Input, now: u64, out: &mut Vec<Action>) -> Result<(), AcdError> {
        match input {
            Input::AgentLogin { agent, skills } => self.login(agent, skills, now, out),
            Input::SetReady { agent } => self.set_ready(&agent, now, out),
            Input::SetNotReady { agent, reason } => {
                self.leave(&agent, AgentState::NotReady { reason }, now, out)
            }
            Input::AgentLogout { agent } => self.leave(&agent, AgentState::Offline, now, out),
            Input::Registered { agent, live } => {
                self.registration(agent, live, now, out);
                Ok(())
            }
            Input::Enqueue {
                call_id,
                queue,
                priority,
                preferred_agent,
                skill,
                arrived_ms,
            } => self.enqueue(
                call_id,
                queue,
                priority,
                preferred_agent,
                skill,
                arrived_ms,
                now,
                out,
            ),
            Input::OfferAnswered { offer_id, agent } => self.answered(offer_id, &agent, now, out),
            Input::OfferFailed {
                offer_id,
                agent,
                reason,
            } => self.failed(offer_id, &agent, reason, now, out),
            Input::CallEnded { call_id, agent } => {
                self.connected_to(&call_id, &agent)?;
                self.drop_consult(&call_id, now, out);
                self.end_leg(&call_id, now, out);
                self.calls.remove(&call_id);
                Ok(())
            }
            Input::Abandoned { call_id } => self.abandoned(&call_id, now, out),
            Input::CallbackAccepted { call_id } => self.callback_accepted(&call_id, now, out),
            Input::Transfer {
                call_id,
                from_agent,
                to,
                note,
            } => self.transfer(&call_id, &from_agent, to, note, now, out),
            Input::ConsultStart {
                call_id,
                from_agent,
                to_agent,
            } => self.consult_start(&call_id, &from_agent, &to_agent, now, out),
            Input::ConsultAnswered { call_id, agent } => {
                self.consulting(&call_id, &agent)?;
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.set_state(AgentState::OnCall, now, out);
                }
                Ok(())
            }
            Input::ConsultEnded {
                call_id,
                agent,
                complete,
                note,
            } => self.consult_ended(&call_id, &agent, complete, note, now, out),
            Input::DirectReserve {
                call_id,
                agent,
                skill,
            } => self.direct_reserve(call_id, agent, skill, now, out),
            Input::DirectAnswered { call_id, agent } => {
                let a = self.agent_mut(&agent)?;
                if a.call.as_deref() != Some(call_id.as_str()) {
                    return Err(AcdError::InvalidAgentState {
                        agent,
                        state: format!("not reserved for call {call_id:?}"),
                    });
                }
                // An agent who went not ready (or logged out) while the phone
                // rang keeps that state; the call itself goes on.
                if a.state == AgentState::Reserved {
                    a.set_state(AgentState::OnCall, now, out);
                }
                Ok(())
            }
            Input::DirectEnded {
                call_id,
                agent,
                wrap_up_ms,
            } => {
                let a = self.agent_mut(&agent)?;
                // An agent who logged out or went not ready meanwhile keeps that state.
                if a.call.as_deref() != Some(call_id.as_str()) {
                    return Ok(());
                }
                a.call = None;
                match a.state {
                    AgentState::OnCall if wrap_up_ms > 0 => {
                        a.wrap_until_ms = Some(now.saturating_add(wrap_up_ms));
                        a.set_state(AgentState::WrapUp, now, out);
                    }
                    AgentState::OnCall => finish_wrap(a, now, out),
                    AgentState::Reserved => a.release(now, out),
                    _ => {}
                }
                Ok(())
            }
            Input::ResetDailyStats => {
                for q in &mut self.queues {
                    q.stats = QueueStats::default();
                }
                for a in self.agents.values_mut() {
                    a.answered_today = 0;
                }
                Ok(())
            }
            Input::Tick => Ok(()),
        }
    }

    fn login(
        &mut self,
        id: String,
        skills: Vec<Skill>,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        let agent = self.agents.entry(id.clone()).or_insert_with(|| Agent {
            id,
            skills: BTreeMap::new(),
            state: AgentState::Offline,
            since_ms: now,
            idle_since_ms: now,
            missed_in_row: 0,
            answered_today: 0,
            offer: None,
            call: None,
            wrap_until_ms: None,
            after_wrap: None,
        });
        agent.skills.clear();
        for s in skills {
            let level = s.proficiency.clamp(1, 10);
            let entry = agent.skills.entry(s.name).or_insert(level);
            *entry = (*entry).max(level);
        }
        // Logging in again during a call only updates skills and cancels a
        // pending logout; it must not tear the agent out of the call.
        agent.after_wrap = None;
        if matches!(
            agent.state,
            AgentState::Offline | AgentState::NotReady { .. }
        ) {
            agent.missed_in_row = 0;
            agent.set_state(AgentState::Ready, now, out);
        }
        Ok(())
    }

    fn set_ready(&mut self, id: &str, now: u64, out: &mut Vec<Action>) -> Result<(), AcdError> {
        let agent = self.agent_mut(id)?;
        agent.after_wrap = None;
        match agent.state {
            AgentState::Reserved | AgentState::OnCall | AgentState::Ready => {}
            AgentState::Offline | AgentState::NotReady { .. } | AgentState::WrapUp => {
                agent.wrap_until_ms = None;
                agent.missed_in_row = 0;
                agent.set_state(AgentState::Ready, now, out);
            }
        }
        Ok(())
    }

    /// NotReady or Offline, now or after the current call.
    fn leave(
        &mut self,
        id: &str,
        target: AgentState,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        let agent = self.agent_mut(id)?;
        match agent.state {
            AgentState::OnCall => {
                agent.after_wrap = Some(target);
                return Ok(());
            }
            AgentState::Reserved => {
                // Going away while ringing counts as declining the offer.
                if let Some(offer_id) = agent.offer {
                    self.drop_leg(offer_id, id, true, now, out);
                }
            }
            _ => {}
        }
        let agent = self.agent_mut(id)?;
        agent.offer = None;
        agent.wrap_until_ms = None;
        agent.after_wrap = None;
        agent.set_state(target, now, out);
        Ok(())
    }

    fn registration(&mut self, id: String, live: bool, now: u64, out: &mut Vec<Action>) {
        if live {
            self.registered.insert(id);
            return;
        }
        self.registered.remove(&id);
        // A ringing phone that lost its registration will not answer:
        // move the caller on instead of waiting for the ring timeout.
        if let Some(offer_id) = self.agents.get(&id).and_then(|a| a.offer) {
            self.drop_leg(offer_id, &id, true, now, out);
            if let Some(agent) = self.agents.get_mut(&id) {
                agent.release(now, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        call_id: String,
        queue: String,
        priority: i32,
        preferred_agent: Option<String>,
        skill: Option<String>,
        arrived_ms: u64,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        if self.queue(&queue).is_none() {
            return Err(AcdError::UnknownQueue(queue));
        }
        if self.calls.contains_key(&call_id) {
            return Err(AcdError::DuplicateCall(call_id));
        }
        let seq = self.seq();
        let mut call = Call {
            id: call_id,
            queue: queue.clone(),
            priority,
            skill,
            seq,
            wait_start_ms: arrived_ms.min(now),
            entered_queue_ms: now,
            visited: vec![queue],
            owner: None,
            tried: BTreeMap::new(),
            callback_offered: false,
            overflow_done: false,
            next_announce_ms: None,
            note: None,
            transfer_chain: Vec::new(),
            consult: None,
            phase: Phase::Waiting,
        };
        // The owner's window only makes sense if the owner is logged in;
        // waiting 30 s for an agent who has gone home helps nobody.
        call.owner = preferred_agent.filter(|a| self.is_logged_in(a)).map(|a| {
            (
                a,
                now.saturating_add(self.queue_cfg(&call.queue).owner_wait_ms),
            )
        });

        // A full queue sends the newcomer along its overflow chain.
        loop {
            let len = self_len(&self.calls, &call.queue);
            let q = self.queue_mut(&call.queue);
            let full = q.cfg.max_length.is_some_and(|max| len >= max);
            if !full {
                break;
            }
            match q.cfg.overflow.clone() {
                Overflow::Queue(to) if !call.visited.contains(&to) => {
                    q.stats.offered += 1;
                    q.stats.overflowed += 1;
                    out.push(Action::Overflowed {
                        call_id: call.id.clone(),
                        from: call.queue.clone(),
                        to: to.clone(),
                    });
                    call.visited.push(to.clone());
                    call.queue = to;
                    // The new queue's own skill decides (the IVR's choice
                    // was for the first queue).
                    call.skill = None;
                }
                Overflow::OfferCallback => {
                    call.callback_offered = true;
                    out.push(Action::OfferCallback {
                        call_id: call.id.clone(),
                        queue: call.queue.clone(),
                    });
                    break;
                }
                Overflow::Queue(_) | Overflow::None => {
                    q.stats.refused += 1;
                    out.push(Action::QueueFull {
                        call_id: call.id,
                        queue: call.queue,
                    });
                    return Ok(());
                }
            }
        }
        self.admit(call, now);
        Ok(())
    }

    /// Puts a call into its (already chosen) queue as a new contact.
    fn admit(&mut self, mut call: Call, now: u64) {
        let q = self.queue_mut(&call.queue);
        q.stats.offered += 1;
        // Tell the caller where they stand at once (unless an agent takes
        // the call in this same step), then every interval.
        call.next_announce_ms = q.cfg.announce_interval().map(|_| now);
        call.entered_queue_ms = now;
        call.overflow_done = false;
        call.phase = Phase::Waiting;
        debug!(call = %call.id, queue = %call.queue, priority = call.priority, "acd enqueue");
        self.calls.insert(call.id.clone(), call);
    }

    fn answered(
        &mut self,
        offer_id: OfferId,
        agent_id: &str,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        self.take_leg_offer(offer_id, agent_id)?;
        let Some(offer) = self.offers.remove(&offer_id) else {
            return Ok(());
        };
        let losers: Vec<String> = offer.legs.into_iter().filter(|a| a != agent_id).collect();
        if !losers.is_empty() {
            out.push(Action::CancelOffer {
                offer_id,
                call_id: offer.call_id.clone(),
                agents: losers.clone(),
            });
            for id in &losers {
                if let Some(a) = self.agents.get_mut(id) {
                    a.release(now, out);
                }
            }
        }
        let Some(call) = self.calls.get_mut(&offer.call_id) else {
            return Ok(());
        };
        let waited = now.saturating_sub(call.wait_start_ms);
        call.phase = Phase::Connected {
            agent: agent_id.to_owned(),
            since_ms: now,
        };
        call.owner = None;
        let call_id = call.id.clone();
        let queue = call.queue.clone();
        let q = self.queue_mut(&queue);
        q.stats.answered += 1;
        q.stats.wait_total_ms += waited;
        if waited <= q.cfg.service_level_ms {
            q.stats.answered_within_sl += 1;
        }
        out.push(Action::Connect {
            offer_id,
            call_id: call_id.clone(),
            agent: agent_id.to_owned(),
            waited_ms: waited,
        });
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.offer = None;
            a.call = Some(call_id);
            a.missed_in_row = 0;
            a.answered_today += 1;
            a.set_state(AgentState::OnCall, now, out);
        }
        Ok(())
    }

    fn failed(
        &mut self,
        offer_id: OfferId,
        agent_id: &str,
        reason: OfferFailure,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        self.take_leg_offer(offer_id, agent_id)?;
        self.drop_leg(offer_id, agent_id, false, now, out);
        self.agent_failed(agent_id, reason, now, out);
        Ok(())
    }

    /// The agent's leg failed through the agent's side: back of the idle
    /// line, and a miss for an unanswered ring.
    fn agent_failed(&mut self, id: &str, reason: OfferFailure, now: u64, out: &mut Vec<Action>) {
        let max = self.max_missed_offers;
        let Some(a) = self.agents.get_mut(id) else {
            return;
        };
        a.offer = None;
        if reason == OfferFailure::NoAnswer {
            a.missed_in_row += 1;
        }
        if a.missed_in_row >= max {
            a.missed_in_row = 0;
            a.set_state(
                AgentState::NotReady {
                    reason: MISSED_OFFERS_REASON.into(),
                },
                now,
                out,
            );
        } else {
            a.set_state(AgentState::Ready, now, out);
            a.idle_since_ms = now;
        }
    }

    fn abandoned(
        &mut self,
        call_id: &str,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| AcdError::UnknownCall(call_id.to_owned()))?;
        match call.phase.clone() {
            // The caller hung up on the agent: an ordinary end of call.
            Phase::Connected { .. } => {
                self.end_leg(call_id, now, out);
                self.calls.remove(call_id);
                return Ok(());
            }
            Phase::Ringing(offer_id) => self.withdraw_offer(offer_id, now, out),
            Phase::Waiting => {}
        }
        if let Some(call) = self.calls.remove(call_id) {
            self.queue_mut(&call.queue).stats.abandoned += 1;
        }
        Ok(())
    }

    fn callback_accepted(
        &mut self,
        call_id: &str,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| AcdError::UnknownCall(call_id.to_owned()))?;
        match call.phase.clone() {
            Phase::Connected { .. } => return Err(AcdError::CallNotWaiting(call_id.to_owned())),
            Phase::Ringing(offer_id) => self.withdraw_offer(offer_id, now, out),
            Phase::Waiting => {}
        }
        if let Some(call) = self.calls.remove(call_id) {
            let q = self.queue_mut(&call.queue);
            q.stats.callbacks += 1;
            out.push(Action::CallbackRequested {
                call_id: call.id,
                queue: call.queue,
                due_ms: now.saturating_add(q.cfg.callback_within_ms),
            });
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        call_id: &str,
        from: &str,
        to: TransferTarget,
        note: String,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        self.connected_to(call_id, from)?;
        if self.calls.get(call_id).is_some_and(|c| c.consult.is_some()) {
            return Err(AcdError::Consult {
                call_id: call_id.to_owned(),
                reason: "finish or cancel the consultation first".into(),
            });
        }
        // Check the target before touching anything: a refused transfer
        // leaves the call connected to the first agent.
        let (queue, owner) = match to {
            TransferTarget::Queue(name) => {
                if self.queue(&name).is_none() {
                    return Err(AcdError::UnknownQueue(name));
                }
                (name, None)
            }
            TransferTarget::Agent(id) => {
                let agent = self
                    .agents
                    .get(&id)
                    .ok_or_else(|| AcdError::UnknownAgent(id.clone()))?;
                if agent.state == AgentState::Offline {
                    return Err(AcdError::InvalidAgentState {
                        agent: id,
                        state: agent.state.to_string(),
                    });
                }
                let queue = self.calls[call_id].queue.clone();
                (queue, Some(id))
            }
        };
        self.end_leg(call_id, now, out);
        let owner_wait = self.queue_cfg(&queue).owner_wait_ms;
        let seq = self.seq();
        let Some(call) = self.calls.get_mut(call_id) else {
            return Ok(());
        };
        call.transfer_chain.push(from.to_owned());
        call.note = Some(note);
        if owner.is_none() {
            // Into another queue: that queue's skill decides.
            call.skill = None;
        }
        call.owner = owner.map(|a| (a, now.saturating_add(owner_wait)));
        call.queue = queue.clone();
        call.visited = vec![queue];
        call.tried.clear();
        call.seq = seq;
        // A transfer is a new wait: the talk before it was not waiting.
        call.wait_start_ms = now;
        let call = self.calls.remove(call_id).expect("present above");
        // Transfers bypass max_length: a caller already served is not
        // bounced because the next queue is busy.
        self.admit(call, now);
        Ok(())
    }

    fn direct_reserve(
        &mut self,
        call_id: String,
        agent: Option<String>,
        skill: Option<String>,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        let id = match agent {
            Some(id) => {
                let a = self
                    .agents
                    .get(&id)
                    .ok_or_else(|| AcdError::UnknownAgent(id.clone()))?;
                if !self.available(a) {
                    let state = if a.state == AgentState::Ready {
                        "without a registered phone".to_string()
                    } else {
                        a.state.to_string()
                    };
                    return Err(AcdError::InvalidAgentState { agent: id, state });
                }
                id
            }
            None => self
                .agents
                .values()
                .filter(|a| self.available(a))
                .filter(|a| skill.as_ref().is_none_or(|s| a.skills.contains_key(s)))
                .min_by(|x, y| (x.idle_since_ms, &x.id).cmp(&(y.idle_since_ms, &y.id)))
                .map(|a| a.id.clone())
                .ok_or(AcdError::NoAgentAvailable { skill })?,
        };
        let a = self.agent_mut(&id)?;
        a.call = Some(call_id.clone());
        a.set_state(AgentState::Reserved, now, out);
        out.push(Action::DirectReserved { call_id, agent: id });
        Ok(())
    }

    /// The agent a call is connected to, if any.
    pub fn connected_agent(&self, call_id: &str) -> Option<String> {
        match &self.calls.get(call_id)?.phase {
            Phase::Connected { agent, .. } => Some(agent.clone()),
            _ => None,
        }
    }

    /// The agent being consulted about a call, if any.
    pub fn consulted_agent(&self, call_id: &str) -> Option<&str> {
        self.calls.get(call_id)?.consult.as_deref()
    }

    fn consult_start(
        &mut self,
        call_id: &str,
        from: &str,
        to: &str,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        self.connected_to(call_id, from)?;
        if self.calls.get(call_id).is_some_and(|c| c.consult.is_some()) {
            return Err(AcdError::Consult {
                call_id: call_id.to_owned(),
                reason: "a consultation is already going on".into(),
            });
        }
        let agent = self
            .agents
            .get_mut(to)
            .ok_or_else(|| AcdError::UnknownAgent(to.to_owned()))?;
        if agent.state != AgentState::Ready || to == from {
            return Err(AcdError::InvalidAgentState {
                agent: to.to_owned(),
                state: agent.state.to_string(),
            });
        }
        agent.call = Some(call_id.to_owned());
        agent.set_state(AgentState::Reserved, now, out);
        if let Some(c) = self.calls.get_mut(call_id) {
            c.consult = Some(to.to_owned());
        }
        Ok(())
    }

    /// Checks that `agent` is being consulted about `call_id`.
    fn consulting(&self, call_id: &str, agent: &str) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| AcdError::UnknownCall(call_id.to_owned()))?;
        if call.consult.as_deref() == Some(agent) {
            Ok(())
        } else {
            Err(AcdError::Consult {
                call_id: call_id.to_owned(),
                reason: format!("agent {agent:?} is not being consulted"),
            })
        }
    }

    fn consult_ended(
        &mut self,
        call_id: &str,
        to: &str,
        complete: bool,
        note: String,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), AcdError> {
        self.consulting(call_id, to)?;
        let answered = self
            .agents
            .get(to)
            .is_some_and(|a| a.state == AgentState::OnCall);
        if !complete || !answered {
            if complete {
                return Err(AcdError::InvalidAgentState {
                    agent: to.to_owned(),
                    state: "not answering the consultation".into(),
                });
            }
            self.drop_consult(call_id, now, out);
            return Ok(());
        }
        let from = match self.calls.get(call_id).map(|c| c.phase.clone()) {
            Some(Phase::Connected { agent, .. }) => agent,
            _ => {
                return Err(AcdError::NotConnected {
                    call_id: call_id.to_owned(),
                    agent: to.to_owned(),
                })
            }
        };
        self.end_leg(call_id, now, out);
        if let Some(c) = self.calls.get_mut(call_id) {
            c.consult = None;
            c.transfer_chain.push(from);
            c.note = Some(note);
            c.phase = Phase::Connected {
                agent: to.to_owned(),
                since_ms: now,
            };
        }
        if let Some(a) = self.agents.get_mut(to) {
            a.answered_today += 1;
        }
        Ok(())
    }

    /// Ends a consultation without a transfer: the consulted agent is free.
    fn drop_consult(&mut self, call_id: &str, now: u64, out: &mut Vec<Action>) {
        let Some(to) = self.calls.get_mut(call_id).and_then(|c| c.consult.take()) else {
            return;
        };
        if let Some(a) = self.agents.get_mut(&to) {
            a.call = None;
            a.release(now, out);
        }
    }

    // ---- helpers for inputs -------------------------------------------

    /// Ends the connected leg of a call: talk statistics and the agent's
    /// wrap-up. The call itself stays for the caller to decide.
    fn end_leg(&mut self, call_id: &str, now: u64, out: &mut Vec<Action>) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Phase::Connected { agent, since_ms } = call.phase.clone() else {
            return;
        };
        call.phase = Phase::Waiting;
        let queue = call.queue.clone();
        let talk = now.saturating_sub(since_ms);
        let q = self.queue_mut(&queue);
        let wrap = q.cfg.wrap_up_ms;
        q.stats.talk_total_ms += talk;
        q.stats.talks += 1;
        q.recent_handle_ms.push_back(talk.saturating_add(wrap));
        if q.recent_handle_ms.len() > HANDLE_HISTORY {
            q.recent_handle_ms.pop_front();
        }
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        a.call = None;
        if wrap > 0 {
            a.wrap_until_ms = Some(now.saturating_add(wrap));
            a.set_state(AgentState::WrapUp, now, out);
        } else {
            finish_wrap(a, now, out);
        }
    }

    fn connected_to(&self, call_id: &str, agent: &str) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| AcdError::UnknownCall(call_id.to_owned()))?;
        match &call.phase {
            Phase::Connected { agent: a, .. } if a == agent => Ok(()),
            _ => Err(AcdError::NotConnected {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
            }),
        }
    }

    /// Checks that `agent` is a ringing leg of `offer_id`.
    fn take_leg_offer(&self, offer_id: OfferId, agent: &str) -> Result<&Offer, AcdError> {
        self.offers
            .get(&offer_id)
            .filter(|o| o.legs.contains(agent))
            .ok_or_else(|| AcdError::StaleOffer {
                offer_id,
                agent: agent.to_owned(),
            })
    }

    /// Removes one agent's leg from an offer (the agent's state is the
    /// caller's business). When no leg is left the caller waits again, and
    /// that agent is not offered this call again for `retry_ms`.
    fn drop_leg(
        &mut self,
        offer_id: OfferId,
        agent: &str,
        cancel: bool,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let Some(offer) = self.offers.get_mut(&offer_id) else {
            return;
        };
        if !offer.legs.remove(agent) {
            return;
        }
        let call_id = offer.call_id.clone();
        let empty = offer.legs.is_empty();
        if empty {
            self.offers.remove(&offer_id);
        }
        if cancel {
            out.push(Action::CancelOffer {
                offer_id,
                call_id: call_id.clone(),
                agents: vec![agent.to_owned()],
            });
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.offer = None;
        }
        let Some(queue) = self.calls.get(&call_id).map(|c| c.queue.clone()) else {
            return;
        };
        let retry = now.saturating_add(self.queue_cfg(&queue).retry_ms);
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.tried.insert(agent.to_owned(), retry);
        // The owner had their chance; from now on anyone may help.
        if call.owner.as_ref().is_some_and(|(o, _)| o == agent) {
            call.owner = None;
        }
        if empty {
            call.phase = Phase::Waiting;
        }
    }

    /// Cancels every ringing leg of an offer because the caller went away;
    /// the agents keep their idle position.
    fn withdraw_offer(&mut self, offer_id: OfferId, now: u64, out: &mut Vec<Action>) {
        let Some(offer) = self.offers.remove(&offer_id) else {
            return;
        };
        out.push(Action::CancelOffer {
            offer_id,
            call_id: offer.call_id.clone(),
            agents: offer.legs.iter().cloned().collect(),
        });
        for id in &offer.legs {
            if let Some(a) = self.agents.get_mut(id) {
                a.release(now, out);
            }
        }
    }

    // ---- the step -----------------------------------------------------

    fn step(&mut self, now: u64, out: &mut Vec<Action>) {
        self.expire_offers(now, out);
        for a in self.agents.values_mut() {
            if a.state == AgentState::WrapUp && a.wrap_until_ms.is_some_and(|t| t <= now) {
                finish_wrap(a, now, out);
            }
        }
        for c in self.calls.values_mut() {
            if c.owner.as_ref().is_some_and(|(_, until)| *until <= now) {
                c.owner = None;
            }
            c.tried.retain(|_, until| *until > now);
        }
        self.overflow(now, out);
        self.dispatch(now, out);
        self.announce(now, out);
    }

    fn expire_offers(&mut self, now: u64, out: &mut Vec<Action>) {
        let expired: Vec<OfferId> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for offer_id in expired {
            let Some(offer) = self.offers.get(&offer_id) else {
                continue;
            };
            let legs: Vec<String> = offer.legs.iter().cloned().collect();
            out.push(Action::CancelOffer {
                offer_id,
                call_id: offer.call_id.clone(),
                agents: legs.clone(),
            });
            for agent in legs {
                self.drop_leg(offer_id, &agent, false, now, out);
                self.agent_failed(&agent, OfferFailure::NoAnswer, now, out);
            }
        }
    }

    fn overflow(&mut self, now: u64, out: &mut Vec<Action>) {
        let due: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Waiting && !c.overflow_done)
            .filter(|c| {
                self.queue(&c.queue)
                    .and_then(|q| q.cfg.max_wait_ms)
                    .is_some_and(|w| c.entered_queue_ms.saturating_add(w) <= now)
            })
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            call.overflow_done = true;
            let from = call.queue.clone();
            match self.queue_cfg(&from).overflow.clone() {
                Overflow::Queue(to) if !call_visited(&self.calls, &id, &to) => {
                    let Some(mut call) = self.calls.remove(&id) else {
                        continue;
                    };
                    self.queue_mut(&from).stats.overflowed += 1;
                    out.push(Action::Overflowed {
                        call_id: id.clone(),
                        from,
                        to: to.clone(),
                    });
                    call.visited.push(to.clone());
                    call.queue = to;
                    // The new queue's own skill decides (the IVR's choice
                    // was for the first queue).
                    call.skill = None;
                    // Other agents serve the new queue; old refusals do not
                    // apply. The wait start (and so the place) is kept.
                    call.tried.clear();
                    self.admit(call, now);
                }
                Overflow::OfferCallback => {
                    if let Some(call) = self.calls.get_mut(&id) {
                        if !call.callback_offered {
                            call.callback_offered = true;
                            out.push(Action::OfferCallback {
                                call_id: id.clone(),
                                queue: from,
                            });
                        }
                    }
                }
                Overflow::Queue(_) | Overflow::None => {}
            }
        }
    }

    /// Matches waiting callers with ready agents. Callers are taken in one
    /// global order (priority, then wait) so an agent in several queues
    /// gets the caller who should go first. Owners go first of all: a
    /// caller waiting for their case owner gets that agent even when a
    /// caller of higher priority could use them.
    fn dispatch(&mut self, now: u64, out: &mut Vec<Action>) {
        if !self.agents.values().any(|a| self.available(a)) {
            return;
        }
        let mut order: Vec<(Reverse<i32>, u64, u64, String)> = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Waiting)
            .map(|c| {
                let (p, w, s) = c.order_key();
                (p, w, s, c.id.clone())
            })
            .collect();
        order.sort();

        for (.., id) in &order {
            let call = &self.calls[id];
            let Some((owner, _)) = &call.owner else {
                continue;
            };
            let ready = self.agents.get(owner).is_some_and(|a| self.available(a));
            if ready && !call.tried.contains_key(owner) {
                let owner = owner.clone();
                self.offer(id, vec![owner], now, out);
            }
        }

        for (.., id) in &order {
            let call = &self.calls[id];
            if call.phase != Phase::Waiting || call.owner.is_some() {
                continue;
            }
            let queue = call.queue.clone();
            let Some(q) = self.queue(&queue) else {
                continue;
            };
            let skill = call.skill.as_deref().or(q.cfg.skill.as_deref());
            let candidates: Vec<Candidate<'_>> = self
                .agents
                .values()
                .filter(|a| self.available(a) && !call.tried.contains_key(&a.id))
                .filter_map(|a| {
                    let proficiency = match skill {
                        Some(s) => *a.skills.get(s)?,
                        None => 0,
                    };
                    Some(Candidate {
                        id: &a.id,
                        idle_since_ms: a.idle_since_ms,
                        proficiency,
                        answered_today: a.answered_today,
                    })
                })
                .collect();
            let strategy = q.cfg.strategy;
            let picked = select(strategy, &candidates, q.round_robin_last.as_deref());
            if picked.is_empty() {
                continue;
            }
            if strategy == Strategy::RoundRobin {
                self.queue_mut(&queue).round_robin_last = picked.first().cloned();
            }
            self.offer(id, picked, now, out);
        }
    }

    fn offer(&mut self, call_id: &str, agents: Vec<String>, now: u64, out: &mut Vec<Action>) {
        let offer_id = OfferId(self.next_offer);
        self.next_offer += 1;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.phase = Phase::Ringing(offer_id);
        let queue = call.queue.clone();
        out.push(Action::Offer {
            offer_id,
            call_id: call_id.to_owned(),
            queue: queue.clone(),
            agents: agents.clone(),
            note: call.note.clone(),
            transfer_chain: call.transfer_chain.clone(),
        });
        debug!(call = %call_id, %offer_id, ?agents, "acd offer");
        // The owner (or transfer target) rings only until their window ends;
        // then the queue may have the caller.
        let owner_until = call
            .owner
            .as_ref()
            .filter(|(owner, until)| agents.len() == 1 && agents[0] == *owner && *until > now)
            .map(|(_, until)| *until);
        let mut expires_ms = now.saturating_add(self.queue_cfg(&queue).ring_timeout_ms);
        if let Some(until) = owner_until {
            expires_ms = expires_ms.min(until);
        }
        for id in &agents {
            if let Some(a) = self.agents.get_mut(id) {
                a.offer = Some(offer_id);
                a.set_state(AgentState::Reserved, now, out);
            }
        }
        self.offers.insert(
            offer_id,
            Offer {
                call_id: call_id.to_owned(),
                legs: agents.into_iter().collect(),
                expires_ms,
            },
        );
    }

    fn announce(&mut self, now: u64, out: &mut Vec<Action>) {
        for qi in 0..self.queues.len() {
            let q = &self.queues[qi];
            let Some(interval) = q.cfg.announce_interval() else {
                continue;
            };
            let mut line: Vec<&Call> = self
                .calls
                .values()
                .filter(|c| c.queue == q.cfg.name && !matches!(c.phase, Phase::Connected { .. }))
                .collect();
            if !line
                .iter()
                .any(|c| c.phase == Phase::Waiting && c.next_announce_ms.is_some_and(|t| t <= now))
            {
                continue;
            }
            line.sort_by_key(|c| c.order_key());
            let due: Vec<(String, usize)> = line
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.phase == Phase::Waiting && c.next_announce_ms.is_some_and(|t| t <= now)
                })
                .map(|(i, c)| (c.id.clone(), i + 1))
                .collect();
            for (id, position) in due {
                let estimated_wait_ms = self.estimated_wait(&self.queues[qi], position);
                out.push(Action::Announce {
                    call_id: id.clone(),
                    position,
                    estimated_wait_ms,
                });
                if let Some(c) = self.calls.get_mut(&id) {
                    c.next_announce_ms = Some(now.saturating_add(interval));
                }
            }
        }
    }

    /// Estimated wait for the caller at `position` (1 = next):
    /// `position × average handle time / agents serving the queue`, where
    /// the average is over the last 20 calls of the queue (talk + wrap-up,
    /// `default_handle_ms` before any) and the serving agents are those
    /// with the queue's skill who are logged in, reachable and not
    /// NotReady (at least 1). With n agents busy, one frees up on average
    /// every AHT/n, and the caller needs `position` of them.
    fn estimated_wait(&self, q: &Queue, position: usize) -> u64 {
        let serving = self
            .agents
            .values()
            .filter(|a| q.serves(a) && self.registered.contains(&a.id))
            .filter(|a| !matches!(a.state, AgentState::Offline | AgentState::NotReady { .. }))
            .count()
            .max(1) as u64;
        (position as u64).saturating_mul(q.average_handle_ms()) / serving
    }

    // ---- small lookups ------------------------------------------------

    fn available(&self, a: &Agent) -> bool {
        a.state == AgentState::Ready && self.registered.contains(&a.id)
    }

    fn is_logged_in(&self, id: &str) -> bool {
        self.agents
            .get(id)
            .is_some_and(|a| a.state != AgentState::Offline)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn agent_mut(&mut self, id: &str) -> Result<&mut Agent, AcdError> {
        self.agents
            .get_mut(id)
            .ok_or_else(|| AcdError::UnknownAgent(id.to_owned()))
    }

    fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.cfg.name == name)
    }

    /// Calls only ever name configured queues (checked at enqueue and
    /// transfer, overflow targets at config validation).
    fn queue_mut(&mut self, name: &str) -> &mut Queue {
        let i = self
            .queues
            .iter()
            .position(|q| q.cfg.name == name)
            .expect("calls only name configured queues");
        &mut self.queues[i]
    }

    fn queue_cfg(&self, name: &str) -> &QueueConfig {
        &self
            .queue(name)
            .expect("calls only name configured queues")
            .cfg
    }
}

/// Ready, or the state asked for during the call.
fn finish_wrap(a: &mut Agent, now: u64, out: &mut Vec<Action>) {
    a.wrap_until_ms = None;
    let next = a.after_wrap.take().unwrap_or(AgentState::Ready);
    a.set_state(next, now, out);
}

/// Callers in a queue, waiting or ringing.
fn self_len(calls: &BTreeMap<String, Call>, queue: &str) -> usize {
    calls
        .values()
        .filter(|c| c.queue == queue && !matches!(c.phase, Phase::Connected { .. }))
        .count()
}

fn call_visited(calls: &BTreeMap<String, Call>, id: &str, queue: &str) -> bool {
    calls
        .get(id)
        .is_some_and(|c| c.visited.iter().any(|v| v == queue))
}
