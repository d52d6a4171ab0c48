//! The queue half of an inbound call: ringing the agents the ACD offers it
//! to, bridging the one who answers, recording, and telling the ACD how it
//! went. Owned by the call's task, like everything else about the call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::acd::{offer_failure, QueueMsg};
use super::CallDeps;
use crate::acd::{Input, OfferFailure, OfferId, TransferTarget};
use crate::media::engine::{MediaSession, StreamParams};
use crate::media::recorder::Recorder;
use crate::sip::leg::{Leg, LegEvent, OutboundCall};
use crate::sip::sdp;

/// Media token of the hold music (IVR prompt ids are small numbers).
pub(super) const HOLD_MUSIC: u64 = u64::MAX;
/// Media token of the "press 1 to be called back" offer.
pub(super) const CALLBACK_OFFER: u64 = u64::MAX - 1;
/// Media token of the callback promise; the call ends when it finishes.
pub(super) const CALLBACK_PROMISE: u64 = u64::MAX - 2;

/// What the caller's side must do after a queue event.
pub(super) enum QueueOutcome {
    Continue,
    /// End the call (e.g. queue full).
    HangUp(&'static str),
}

/// Something an agent's leg reported, tagged with which offer it answers.
pub(super) struct AgentEvent {
    pub offer_id: OfferId,
    pub agent: String,
    pub event: LegEvent,
}

struct AgentLeg {
    leg: Leg,
    media: MediaSession,
}

struct Connected {
    agent: String,
    leg: Leg,
    media: MediaSession,
    sdp_version: u64,
}

/// How the agent side ended the call, if it did.
pub(super) enum AgentOutcome {
    /// The agent hung up: the caller's leg must be ended too.
    AgentHungUp,
}

pub(super) struct Service {
    call_id: String,
    caller: String,
    customer_id: Option<String>,
    deps: Arc<CallDeps>,
    mailbox: mpsc::UnboundedSender<QueueMsg>,
    agent_tx: mpsc::UnboundedSender<AgentEvent>,
    ringing: HashMap<(OfferId, String), AgentLeg>,
    answered: HashMap<(OfferId, String), AgentLeg>,
    connected: Option<Connected>,
    session_id: u64,
    pub queued: bool,
    queue: Option<String>,
    queued_ms: u64,
    /// The agent put the caller on hold.
    held: bool,
    /// The caller was offered "press 1 to be called back".
    callback_offered: bool,
    hold_started: Option<u64>,
    hold_total_ms: u64,
    pub agent_id: Option<String>,
    pub wait_ms: u64,
    pub connected_ms: Option<u64>,
    pub recording: Option<String>,
    /// Transfers so far, for the call record.
    pub transfers: Vec<crate::store::TransferHop>,
}

impl Service {
    pub fn new(
        call_id: String,
        caller: String,
        deps: Arc<CallDeps>,
        mailbox: mpsc::UnboundedSender<QueueMsg>,
        agent_tx: mpsc::UnboundedSender<AgentEvent>,
    ) -> Self {
        Self {
            call_id,
            caller,
            customer_id: None,
            deps,
            mailbox,
            agent_tx,
            ringing: HashMap::new(),
            answered: HashMap::new(),
            connected: None,
            session_id: u64::from(rand::random::<u32>()),
            queued: false,
            queue: None,
            queued_ms: 0,
            held: false,
            callback_offered: false,
            hold_started: None,
            hold_total_ms: 0,
            agent_id: None,
            wait_ms: 0,
            connected_ms: None,
            recording: None,
            transfers: Vec::new(),
        }
    }

    pub fn set_customer(&mut self, id: Option<String>) {
        self.customer_id = id;
    }

    /// Whether the caller should hear hold music now: waiting in a queue, or
    /// held by the agent.
    pub fn wants_hold_music(&self) -> bool {
        self.queued || self.held
    }

    /// (Re)start the hold music when the caller should hear it.
    pub fn play_hold_music(&self, customer: &MediaSession) {
        if let (true, Some(music)) = (self.wants_hold_music(), &self.deps.hold_music) {
            customer.play(music.clone(), HOLD_MUSIC);
        }
    }

    pub fn enqueue(
        &mut self,
        queue: &str,
        skill: Option<String>,
        priority: i32,
        preferred_agent: Option<String>,
    ) {
        self.queued = true;
        self.queue = Some(queue.to_string());
        self.queued_ms = self.deps.clock.now_ms();
        self.deps.events.publish(crate::events::Event::CallQueued {
            call_id: self.call_id.clone(),
            queue: queue.to_string(),
            priority: priority.clamp(0, 255) as u8,
        });
        self.deps.acd.enqueue(
            &self.call_id,
            queue,
            priority,
            preferred_agent,
            skill,
            self.deps.clock.now_ms(),
            self.mailbox.clone(),
        );
    }

    /// A key the caller pressed while in the queue; true when it was used.
    pub fn on_digit(&mut self, digit: char) -> bool {
        if self.queued && self.callback_offered && digit == '1' {
            info!("caller accepted the callback offer");
            self.deps.acd.input(Input::CallbackAccepted {
                call_id: self.call_id.clone(),
            });
            return true;
        }
        false
    }

    pub async fn on_queue(&mut self, msg: QueueMsg, customer: &MediaSession) -> QueueOutcome {
        match msg {
            QueueMsg::Offer {
                offer_id,
                agents,
                note,
            } => {
                for agent in agents {
                    self.ring(offer_id, agent, customer, note.as_deref()).await;
                }
            }
            QueueMsg::CancelOffer { offer_id, agents } => {
                for agent in agents {
                    if let Some(a) = self.ringing.remove(&(offer_id, agent.clone())) {
                        debug!(%agent, "cancelling offer");
                        tokio::spawn(async move { a.leg.cancel().await });
                    }
                    if let Some(a) = self.answered.remove(&(offer_id, agent)) {
                        tokio::spawn(async move { a.leg.hangup().await });
                    }
                }
            }
            QueueMsg::Connect {
                offer_id,
                agent,
                waited_ms,
            } => self.connect(offer_id, agent, waited_ms, customer),
            QueueMsg::Stale { offer_id, agent } => {
                if let Some(a) = self.answered.remove(&(offer_id, agent)) {
                    tokio::spawn(async move { a.leg.hangup().await });
                }
            }
            QueueMsg::Announce {
                position,
                estimated_wait_ms,
            } => info!(position, estimated_wait_ms, "still waiting in queue"),
            QueueMsg::Overflowed { to } => info!(%to, "moved to another queue"),
            QueueMsg::OfferCallback => match self.deps.service_prompts.get("callback_offer") {
                Some(p) => {
                    info!("offering a callback");
                    self.callback_offered = true;
                    customer.play(p.clone(), CALLBACK_OFFER);
                }
                None => debug!("no callback_offer prompt: the caller keeps waiting"),
            },
            QueueMsg::CallbackRequested { due_ms } => {
                self.queued = false;
                let request = crate::store::CallbackRequest {
                    id: format!("cb-{}", self.call_id),
                    customer_id: self.customer_id.clone(),
                    phone: self.caller.clone(),
                    due_at: due_ms as i64,
                    source_call: self.call_id.clone(),
                    created_at: self.deps.clock.now_ms() as i64,
                };
                // Stored before the promise is spoken.
                if let Err(e) = self.deps.store.insert_callback_request(&request).await {
                    warn!(error = %e, "could not store the callback request");
                }
                self.deps
                    .events
                    .publish(crate::events::Event::CallbackRequested {
                        call_id: self.call_id.clone(),
                        phone: self.caller.clone(),
                        due_ms,
                    });
                match self.deps.service_prompts.get("callback_promise") {
                    Some(p) => customer.play(p.clone(), CALLBACK_PROMISE),
                    None => return QueueOutcome::HangUp("callback_requested"),
                }
            }
            QueueMsg::QueueFull => {
                warn!("queue full: ending the call");
                return QueueOutcome::HangUp("queue_full");
            }
            QueueMsg::Transferred {
                from_agent,
                to,
                note,
            } => {
                info!(%from_agent, %to, "transferred");
                if let Some(c) = self.connected.take() {
                    customer.unbridge();
                    tokio::spawn(async move {
                        c.leg.hangup().await;
                        drop(c.media);
                    });
                }
                self.transfers.push(crate::store::TransferHop {
                    at: self.deps.clock.now_ms() as i64,
                    from_agent,
                    to,
                    note,
                });
                self.held = false;
                self.queued = true;
                self.play_hold_music(customer);
            }
        }
        QueueOutcome::Continue
    }

    async fn ring(
        &mut self,
        offer_id: OfferId,
        agent: String,
        customer: &MediaSession,
        note: Option<&str>,
    ) {
        let fail = |deps: &CallDeps, reason| {
            deps.acd.input(Input::OfferFailed {
                offer_id,
                agent: agent.clone(),
                reason,
            })
        };
        let bindings = self.deps.sip.lookup(&agent).await;
        let Some(binding) = bindings.into_iter().next() else {
            info!(%agent, "agent has no live registration");
            fail(&self.deps, OfferFailure::Error);
            return;
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let media = match self.deps.media.open_near(customer, tx) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "no media port for the agent leg");
                fail(&self.deps, OfferFailure::Error);
                return;
            }
        };
        // Agent-side media events (timeouts) are not the caller's business.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let mut headers = vec![("X-Hotline-Call".to_string(), self.call_id.clone())];
        if let Some(c) = &self.customer_id {
            headers.push(("X-Hotline-Customer".to_string(), c.clone()));
        }
        if let Some(n) = note {
            headers.push(("X-Hotline-Note".to_string(), n.replace(['\r', '\n'], " ")));
        }
        let call = OutboundCall {
            target: binding.contact.clone(),
            destination: binding.source,
            transport: binding.transport.clone(),
            from_user: self.caller.clone(),
            from_display: None,
            sdp: sdp::write_offer(self.session_id, 1, media.local_addr()),
            headers,
        };
        match self.deps.sip.invite(call) {
            Ok((leg, mut events)) => {
                info!(%agent, contact = %binding.contact, "ringing agent");
                self.deps.events.publish(crate::events::Event::CallOffered {
                    call_id: self.call_id.clone(),
                    agent: agent.clone(),
                });
                let tx = self.agent_tx.clone();
                let a = agent.clone();
                tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        let ev = AgentEvent {
                            offer_id,
                            agent: a.clone(),
                            event,
                        };
                        if tx.send(ev).is_err() {
                            break;
                        }
                    }
                });
                self.ringing
                    .insert((offer_id, agent), AgentLeg { leg, media });
            }
            Err(e) => {
                warn!(%agent, error = %e, "cannot call the agent");
                fail(&self.deps, OfferFailure::Error);
            }
        }
    }

    fn connect(
        &mut self,
        offer_id: OfferId,
        agent: String,
        waited_ms: u64,
        customer: &MediaSession,
    ) {
        let Some(a) = self.answered.remove(&(offer_id, agent.clone())) else {
            warn!(%agent, "connect for an offer that was not answered");
            return;
        };
        let recorder = self.start_recording();
        customer.stop_playing();
        if !customer.bridge(&a.media, recorder) {
            warn!("media sessions on different workers; cannot bridge");
        }
        info!(%agent, waited_ms, recording = ?self.recording, "connected to agent");
        metrics::counter!("hotline_calls_connected_total").increment(1);
        self.deps
            .events
            .publish(crate::events::Event::CallAnswered {
                call_id: self.call_id.clone(),
                agent: agent.clone(),
            });
        self.queued = false;
        self.agent_id = Some(agent.clone());
        self.wait_ms = waited_ms;
        self.connected_ms = Some(self.deps.clock.now_ms());
        self.connected = Some(Connected {
            agent,
            leg: a.leg,
            media: a.media,
            sdp_version: 1,
        });
    }

    fn start_recording(&mut self) -> Option<Recorder> {
        if !self.deps.record {
            return None;
        }
        let now = Utc
            .timestamp_millis_opt(self.deps.clock.now_ms() as i64)
            .single()
            .unwrap_or_default();
        let dir: PathBuf = self
            .deps
            .recordings
            .join(now.format("%Y/%m/%d").to_string());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "cannot create the recordings folder");
            return None;
        }
        // After a transfer the next agent's part goes beside the first file.
        let path = match self.transfers.len() {
            0 => dir.join(format!("{}.wav", self.call_id)),
            n => dir.join(format!("{}-{}.wav", self.call_id, n + 1)),
        };
        match Recorder::create(&path) {
            Ok(r) => {
                // The record keeps the first part; later parts are `<id>-N.wav`.
                if self.recording.is_none() {
                    self.recording = Some(path.display().to_string());
                }
                Some(r)
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot start recording");
                None
            }
        }
    }

    pub async fn on_agent(
        &mut self,
        ev: AgentEvent,
        customer: &MediaSession,
    ) -> Option<AgentOutcome> {
        let key = (ev.offer_id, ev.agent.clone());
        match ev.event {
            LegEvent::Ringing => debug!(agent = %ev.agent, "agent phone ringing"),
            LegEvent::Answered { sdp: answer } => {
                let a = self.ringing.remove(&key)?;
                match answer
                    .as_deref()
                    .map(|s| sdp::parse(s).and_then(|r| sdp::negotiate(&r)))
                {
                    Some(Ok(n)) => {
                        a.media.configure(StreamParams {
                            remote: n.remote,
                            codec: n.codec,
                            dtmf_pt: n.dtmf_pt,
                            send: !n.remote_on_hold(),
                        });
                        info!(agent = %ev.agent, "agent answered");
                        self.deps
                            .acd
                            .answered(&self.call_id, ev.offer_id, &ev.agent);
                        self.answered.insert(key, a);
                    }
                    _ => {
                        warn!(agent = %ev.agent, "agent answered without a usable SDP answer");
                        tokio::spawn(async move { a.leg.hangup().await });
                        self.deps.acd.input(Input::OfferFailed {
                            offer_id: ev.offer_id,
                            agent: ev.agent,
                            reason: OfferFailure::Error,
                        });
                    }
                }
            }
            LegEvent::Failed { status } => {
                if self.ringing.remove(&key).is_some() {
                    info!(agent = %ev.agent, status, "agent did not take the call");
                    self.deps.acd.input(Input::OfferFailed {
                        offer_id: ev.offer_id,
                        agent: ev.agent,
                        reason: offer_failure(status),
                    });
                }
            }
            LegEvent::Ended(cause) => {
                if self.connected.as_ref().is_some_and(|c| c.agent == ev.agent) {
                    info!(agent = %ev.agent, cause = %cause.describe(), "agent hung up");
                    if let Some(c) = self.connected.take() {
                        self.deps.acd.input(Input::CallEnded {
                            call_id: self.call_id.clone(),
                            agent: c.agent,
                        });
                    }
                    return Some(AgentOutcome::AgentHungUp);
                }
                self.answered.remove(&key);
            }
            LegEvent::Reinvite { sdp: offer, reply } => {
                // The agent holds or resumes: answer, and stop sending while held.
                let Some(c) = self.connected.as_mut() else {
                    reply.reject(491).await;
                    return None;
                };
                match offer
                    .as_deref()
                    .map(|s| sdp::parse(s).and_then(|r| sdp::negotiate(&r)))
                {
                    Some(Ok(n)) => {
                        c.media.configure(StreamParams {
                            remote: n.remote,
                            codec: n.codec,
                            dtmf_pt: n.dtmf_pt,
                            send: !n.remote_on_hold(),
                        });
                        c.sdp_version += 1;
                        let held = n.remote_on_hold();
                        if held != self.held {
                            info!(held, "agent hold");
                            self.held = held;
                            let now = self.deps.clock.now_ms();
                            if let (false, Some(t)) = (held, self.hold_started) {
                                self.hold_total_ms += now.saturating_sub(t);
                            }
                            self.hold_started = held.then_some(now);
                            if !held {
                                customer.stop_playing();
                            }
                        }
                        let ours = sdp::write(
                            self.session_id,
                            c.sdp_version,
                            c.media.local_addr(),
                            n.codec,
                            n.dtmf_pt,
                            n.direction,
                        );
                        reply.ok(Some(ours)).await;
                        self.play_hold_music(customer);
                    }
                    _ => reply.reject(488).await,
                }
            }
            LegEvent::Info { reply, .. } => reply.ok(None).await,
            LegEvent::Refer { refer_to, reply } => {
                let Some(c) = self.connected.as_ref().filter(|c| c.agent == ev.agent) else {
                    reply.reject(481).await;
                    return None;
                };
                let from = c.agent.clone();
                let target = crate::sip::uri_user(&refer_to).and_then(|user| {
                    if self.deps.queues.contains(&user) {
                        Some(TransferTarget::Queue(user))
                    } else if self.deps.agents.contains(&user) {
                        Some(TransferTarget::Agent(user))
                    } else {
                        None
                    }
                });
                let Some(target) = target else {
                    // Only agents and queues: outside numbers need an allow-list (not yet).
                    warn!(%refer_to, "transfer target is neither an agent nor a queue");
                    reply.reject(403).await;
                    return None;
                };
                match self
                    .deps
                    .acd
                    .transfer(&self.call_id, Some(from), target, String::new())
                    .await
                {
                    Ok(_) => reply.accepted().await,
                    Err(e) => {
                        warn!(error = %e, "transfer refused");
                        reply.reject(403).await;
                    }
                }
            }
            LegEvent::Confirmed { .. } => {}
        }
        None
    }

    /// The caller is gone: cancel what rings, hang up the agent, tell the ACD.
    pub async fn caller_gone(&mut self) {
        for (_, a) in self.ringing.drain() {
            tokio::spawn(async move { a.leg.cancel().await });
        }
        for (_, a) in self.answered.drain() {
            tokio::spawn(async move { a.leg.hangup().await });
        }
        if let Some(c) = self.connected.take() {
            c.leg.hangup().await;
            self.deps.acd.input(Input::CallEnded {
                call_id: self.call_id.clone(),
                agent: c.agent,
            });
        } else if self.queued {
            self.deps.acd.input(Input::Abandoned {
                call_id: self.call_id.clone(),
            });
            metrics::counter!("hotline_calls_abandoned_total").increment(1);
            self.deps
                .events
                .publish(crate::events::Event::CallAbandoned {
                    call_id: self.call_id.clone(),
                    queue: self.queue.clone().unwrap_or_default(),
                    waited_ms: self.deps.clock.now_ms().saturating_sub(self.queued_ms),
                });
        }
        self.queued = false;
    }

    /// Time the agent held the caller, for the call record.
    pub fn hold_ms(&self, now: u64) -> u64 {
        self.hold_total_ms
            + self
                .hold_started
                .map(|t| now.saturating_sub(t))
                .unwrap_or(0)
    }

    /// The call record's talk time is the time with the agent.
    pub fn talk_ms(&self, now: u64) -> Option<u64> {
        self.connected_ms.map(|c| now.saturating_sub(c))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.deps.acd.detach(&self.call_id);
    }
}
