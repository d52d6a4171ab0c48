//! The queue half of an inbound call: ringing the agents the ACD offers it
//! to, bridging the one who answers, recording, and telling the ACD how it
//! went. Owned by the call's task, like everything else about the call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::acd::{offer_failure, QueueMsg};
use super::party::PartyMedia;
use super::CallDeps;
use crate::acd::{Input, OfferFailure, OfferId, TransferTarget};
use crate::media::engine::MediaSession;
use crate::media::recorder::Recorder;
use crate::sip::leg::{is_websocket, Leg, LegEvent, OutboundCall};
use crate::sip::sdp;

/// Media token of the hold music (IVR prompt ids are small numbers).
pub(super) const HOLD_MUSIC: u64 = u64::MAX;
/// Media token of the "press 1 to be called back" offer.
pub(super) const CALLBACK_OFFER: u64 = u64::MAX - 1;
/// Media token of the callback promise; the call ends when it finishes.
pub(super) const CALLBACK_PROMISE: u64 = u64::MAX - 2;
/// Media token of a position / estimated-wait announcement.
pub(super) const ANNOUNCEMENT: u64 = u64::MAX - 3;
/// Positions and minutes spoken one by one; beyond, "more" / "long".
const MAX_SPOKEN: usize = 10;

/// The service prompts that announce a position and a wait: loaded with
/// the others (see `call::load_service_prompts`).
pub fn announcement_prompt_names() -> Vec<String> {
    let mut v: Vec<String> = (1..=MAX_SPOKEN)
        .flat_map(|n| [format!("queue_position_{n}"), format!("queue_wait_{n}")])
        .collect();
    v.push("queue_position_more".into());
    v.push("queue_wait_long".into());
    v
}

/// Which prompts announce `position` and `wait_ms` (0: unknown, not said).
pub fn announcement_names(position: usize, wait_ms: u64) -> Vec<String> {
    let mut v = Vec::new();
    if position == 0 {
        return v;
    }
    v.push(if position <= MAX_SPOKEN {
        format!("queue_position_{position}")
    } else {
        "queue_position_more".into()
    });
    if wait_ms > 0 {
        let minutes = wait_ms.div_ceil(60_000) as usize;
        v.push(if minutes <= MAX_SPOKEN {
            format!("queue_wait_{minutes}")
        } else {
            "queue_wait_long".into()
        });
    }
    v
}

/// How a supervisor joins a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorMode {
    /// Hears both sides; nobody hears the supervisor.
    Listen,
    /// Hears both sides; only the agent hears the supervisor.
    Whisper,
    /// All three talk.
    Barge,
}

impl MonitorMode {
    pub fn name(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }
}

/// Why a leg to an agent's (or supervisor's) phone was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum LegRole {
    /// The ACD offered the call to this agent.
    Offer(OfferId),
    /// The connected agent consults this one (attended transfer).
    Consult,
    /// A supervisor listens, whispers or barges in.
    Monitor,
}

/// Events of a leg that is now the connected one but did not come from an
/// offer (a consulted agent or an outside number after the transfer).
const NO_OFFER: OfferId = OfferId(u64::MAX);

/// Hang up an answered phone, cancel one still ringing (in the background).
fn end_phone(leg: Leg, answered: bool) {
    tokio::spawn(async move {
        if answered {
            leg.hangup().await;
        } else {
            leg.cancel().await;
        }
    });
}

/// The name an outside number goes by where an agent id would be.
fn outside(number: &str) -> String {
    format!("tel:{number}")
}

/// What the caller's side must do after a queue event.
pub(super) enum QueueOutcome {
    Continue,
    /// End the call (e.g. queue full).
    HangUp(&'static str),
}

/// Something an agent's leg reported, tagged with why that leg exists.
pub(super) struct AgentEvent {
    pub role: LegRole,
    pub agent: String,
    pub event: LegEvent,
}

/// What the call record keeps of one leg (`call_legs`).
struct LegLog {
    seq: i64,
    party: String,
    role: &'static str,
    offered_at: u64,
    answered_at: Option<u64>,
}

/// A leg's outcome from the final status its phone gave.
fn failure_outcome(status: u16) -> &'static str {
    match status {
        486 | 600 => "busy",
        603 => "declined",
        408 | 480 | 487 => "no_answer",
        _ => "failed",
    }
}

struct AgentLeg {
    leg: Leg,
    media: PartyMedia,
    log: LegLog,
}

struct Connected {
    agent: String,
    leg: Leg,
    media: PartyMedia,
    sdp_version: u64,
    log: LegLog,
}

/// A second agent rung by the connected one (attended transfer), or an
/// outside number the call is being transferred to (`external`: the caller
/// goes over as soon as it answers).
struct Consult {
    agent: String,
    leg: Leg,
    media: PartyMedia,
    answered: bool,
    note: String,
    external: bool,
    log: LegLog,
    /// Its phone gave a final failure (the leg row is written already).
    failed: bool,
}

/// A supervisor's phone joined to the call.
struct Monitor {
    supervisor: String,
    leg: Leg,
    media: PartyMedia,
    answered: bool,
    mode: MonitorMode,
    log: LegLog,
}

/// How the agent side ended the call, if it did.
pub(super) enum AgentOutcome {
    /// The agent hung up (`agent_bye`), or their browser page went away
    /// (`agent_gone`): the caller's leg must be ended too.
    AgentHungUp { cause: &'static str },
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
    consult: Option<Consult>,
    monitor: Option<Monitor>,
    /// An announcement or the callback offer is being spoken: no other
    /// announcement cuts in.
    speaking: bool,
    /// Legs placed so far (numbering for `call_legs`).
    legs_placed: i64,
    session_id: u64,
    pub queued: bool,
    queue: Option<String>,
    queued_ms: u64,
    /// The agent put the caller on hold.
    held: bool,
    /// The connected agent's phone asked for this transfer by REFER (it
    /// gets a NOTIFY before its leg ends).
    refer_accepted: bool,
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
            consult: None,
            monitor: None,
            speaking: false,
            legs_placed: 0,
            session_id: u64::from(rand::random::<u32>()),
            queued: false,
            queue: None,
            queued_ms: 0,
            held: false,
            refer_accepted: false,
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

    /// The queue the caller is (or was last) in: overflow moves it.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    pub fn set_customer(&mut self, id: Option<String>) {
        self.customer_id = id;
    }

    /// Whether the caller should hear hold music now: waiting in a queue,
    /// held by the agent, or while the agent consults a colleague.
    pub fn wants_hold_music(&self) -> bool {
        self.queued || self.held || self.consult.is_some()
    }

    /// A prompt the queue side played ended: back to the music.
    pub fn prompt_finished(&mut self, customer: &MediaSession) {
        self.speaking = false;
        self.play_hold_music(customer);
    }

    /// Who hears whom, from the state of the call: the caller and the
    /// connected agent; during a consultation the two agents (the caller
    /// hears music); a monitoring supervisor hears caller and agent, and is
    /// heard by the agent (whisper) or by both (barge). Idempotent.
    fn arrange(&self, customer: &MediaSession) {
        let supervisor = self
            .monitor
            .as_ref()
            .filter(|m| m.answered)
            .map(|m| (&m.media, m.mode));
        let Some(c) = &self.connected else {
            customer.unbridge();
            if let Some((s, _)) = supervisor {
                s.hear(&[customer]);
            }
            return;
        };
        let agent = &c.media;
        if self.held && self.consult.is_none() {
            // On hold: the caller hears music, the agent no one.
            customer.hear(&[]);
            agent.hear(&[]);
            if let Some((s, _)) = supervisor {
                s.hear(&[customer, agent]);
            }
            return;
        }
        if let Some(k) = &self.consult {
            customer.hear(&[]);
            if k.answered {
                agent.hear(&[&k.media]);
                k.media.hear(&[agent]);
            } else {
                agent.hear(&[]);
            }
            if let Some((s, _)) = supervisor {
                s.hear(&[customer, agent]);
            }
            return;
        }
        match supervisor {
            None => {
                customer.hear(&[agent]);
                agent.hear(&[customer]);
            }
            Some((s, mode)) => {
                s.hear(&[customer, agent]);
                match mode {
                    MonitorMode::Listen => {
                        customer.hear(&[agent]);
                        agent.hear(&[customer]);
                    }
                    MonitorMode::Whisper => {
                        customer.hear(&[agent]);
                        agent.hear(&[customer, s]);
                    }
                    MonitorMode::Barge => {
                        customer.hear(&[agent, s]);
                        agent.hear(&[customer, s]);
                    }
                }
            }
        }
    }

    /// The agent holds (`true`) or resumes the caller, from the phone
    /// (re-INVITE) or the desk (API): the caller hears music and the agent
    /// nothing; hold time counts for the record. Idempotent.
    pub fn set_held(&mut self, held: bool, customer: &MediaSession) {
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
            self.arrange(customer);
        }
        self.play_hold_music(customer);
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
                        self.leg_ended(&a.log, "cancelled");
                        tokio::spawn(async move { a.leg.cancel().await });
                    }
                    if let Some(a) = self.answered.remove(&(offer_id, agent)) {
                        self.leg_ended(&a.log, "cancelled");
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
                    self.leg_ended(&a.log, "cancelled");
                    tokio::spawn(async move { a.leg.hangup().await });
                }
            }
            QueueMsg::Announce {
                position,
                estimated_wait_ms,
            } => self.announce(position, estimated_wait_ms, customer),
            QueueMsg::Overflowed { to } => {
                info!(%to, "moved to another queue");
                self.queue = Some(to);
            }
            QueueMsg::OfferCallback => match self.deps.service_prompts.get("callback_offer") {
                Some(p) => {
                    info!("offering a callback");
                    self.callback_offered = true;
                    self.speaking = true;
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
                let by_refer = std::mem::take(&mut self.refer_accepted);
                if let Some(c) = self.connected.take() {
                    self.leg_ended(&c.log, "transferred");
                    tokio::spawn(async move {
                        drop(c.media);
                        if by_refer {
                            // The 202 leaves through the REFER's transaction
                            // task: let it go first, then tell the phone the
                            // transfer is done (RFC 3515) and end its leg.
                            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                            let notify = c.leg.notify_transfer_done();
                            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), notify)
                                .await;
                        }
                        c.leg.hangup().await;
                    });
                }
                self.arrange(customer);
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
            QueueMsg::Consult { agent, note } => self.consult(agent, note, customer).await,
            QueueMsg::TransferOut { number, note } => {
                if let Err(e) = self.transfer_out(number, note, customer).await {
                    warn!(error = %e, "transfer to an outside number refused");
                }
            }
            QueueMsg::ConsultEnded {
                agent,
                complete,
                note,
            } => self.end_consult(&agent, complete, note, customer),
            QueueMsg::Monitor { supervisor, mode } => {
                self.start_monitor(supervisor, mode, customer).await
            }
            QueueMsg::Hold { held } => {
                if self.connected.is_some() {
                    self.set_held(held, customer);
                }
            }
            QueueMsg::MonitorStop => {
                if let Some(m) = self.monitor.take() {
                    info!(supervisor = %m.supervisor, "monitoring stopped");
                    self.monitor_ended(&m.supervisor);
                    self.leg_ended(&m.log, "connected");
                    tokio::spawn(async move { m.leg.hangup().await });
                    self.arrange(customer);
                }
            }
        }
        QueueOutcome::Continue
    }

    /// Tell the waiting caller their position and the expected wait, over
    /// the music; skipped while the callback offer is being spoken.
    fn announce(&mut self, position: usize, wait_ms: u64, customer: &MediaSession) {
        if !self.queued || self.speaking || self.held {
            return;
        }
        let parts: Vec<Arc<crate::media::prompt::Prompt>> = announcement_names(position, wait_ms)
            .iter()
            .filter_map(|n| self.deps.service_prompts.get(n).cloned())
            .collect();
        info!(
            position,
            wait_ms,
            parts = parts.len(),
            "announcing position in queue"
        );
        if parts.is_empty() {
            return;
        }
        // Joined once per announcement (every 30 s or so), not per packet.
        let pcm: Vec<i16> = parts.iter().flat_map(|p| p.pcm().iter().copied()).collect();
        let prompt = crate::media::prompt::Prompt::from_samples(
            PathBuf::from(format!("announcement-{position}")),
            pcm,
        );
        self.speaking = true;
        customer.play(Arc::new(prompt), ANNOUNCEMENT);
    }

    /// Attended transfer, step 1: the caller goes on hold, the agent's
    /// colleague is rung; on answer the two agents talk.
    async fn consult(&mut self, agent: String, note: String, customer: &MediaSession) {
        if self.connected.is_none() || self.consult.is_some() {
            self.consult_failed(&agent);
            return;
        }
        let mut headers = vec![("X-Hotline-Consult".to_string(), "1".to_string())];
        if !note.is_empty() {
            headers.push((
                "X-Hotline-Note".to_string(),
                note.replace(['\r', '\n'], " "),
            ));
        }
        match self.dial(&agent, LegRole::Consult, customer, headers).await {
            Some(a) => {
                info!(%agent, "consulting");
                self.consult = Some(Consult {
                    agent,
                    leg: a.leg,
                    media: a.media,
                    answered: false,
                    note,
                    external: false,
                    log: a.log,
                    failed: false,
                });
                self.arrange(customer);
                self.play_hold_music(customer);
            }
            None => self.consult_failed(&agent),
        }
    }

    /// Transfer to an allow-listed outside number through the gateway: the
    /// caller holds while it rings and goes over when it answers (the agent
    /// is released then); if it fails, the caller is back with the agent.
    async fn transfer_out(
        &mut self,
        number: String,
        note: String,
        customer: &MediaSession,
    ) -> Result<(), String> {
        if !crate::config::number_allowed(&self.deps.transfer_numbers, &number) {
            return Err(format!("{number} is not on the transfer allow-list"));
        }
        let Some(gateway) = self.deps.transfer_gateway else {
            return Err("no transfer gateway configured".into());
        };
        if self.connected.is_none() || self.consult.is_some() {
            return Err("the call is not connected, or a transfer is going on".into());
        }
        let agent = outside(&number);
        let target = (
            format!("sip:{number}@{gateway}"),
            gateway,
            "UDP".to_string(),
        );
        let AgentLeg { leg, media, log } = self
            .place(&agent, LegRole::Consult, target, customer, Vec::new())
            .await?;
        info!(%number, %gateway, "transferring to an outside number");
        self.consult = Some(Consult {
            agent,
            leg,
            media,
            answered: false,
            note,
            external: true,
            log,
            failed: false,
        });
        self.arrange(customer);
        self.play_hold_music(customer);
        Ok(())
    }

    fn consult_failed(&self, agent: &str) {
        if self.consult.as_ref().is_some_and(|k| k.external) {
            // The router never heard of an outside number.
            return;
        }
        self.deps.acd.input(Input::ConsultEnded {
            call_id: self.call_id.clone(),
            agent: agent.to_string(),
            complete: false,
            note: String::new(),
        });
    }

    /// Attended transfer, step 2: the caller goes to the consulted agent
    /// (`complete`, the first agent's leg ends) or back to the first agent.
    /// The router has already agreed.
    fn end_consult(&mut self, agent: &str, complete: bool, note: String, customer: &MediaSession) {
        let Some(k) = self.consult.take().filter(|k| k.agent == agent) else {
            return;
        };
        if complete && k.answered {
            let note = if note.is_empty() { k.note } else { note };
            let to = match k.agent.strip_prefix("tel:") {
                Some(number) if k.external => format!("number {number}"),
                _ => format!("agent {}", k.agent),
            };
            if let Some(first) = self.connected.take() {
                info!(from = %first.agent, %to, "transfer completed");
                if k.external {
                    // The agent is done with this call; the router lets go of it.
                    self.deps.acd.input(Input::CallEnded {
                        call_id: self.call_id.clone(),
                        agent: first.agent.clone(),
                    });
                }
                self.transfers.push(crate::store::TransferHop {
                    at: self.deps.clock.now_ms() as i64,
                    from_agent: first.agent.clone(),
                    to,
                    note,
                });
                self.leg_ended(&first.log, "transferred");
                let by_refer = k.external && std::mem::take(&mut self.refer_accepted);
                tokio::spawn(async move {
                    if by_refer {
                        let notify = first.leg.notify_transfer_done();
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs(2), notify).await;
                    }
                    first.leg.hangup().await;
                    drop(first.media);
                });
            }
            if !k.external {
                self.agent_id = Some(k.agent.clone());
                self.deps
                    .events
                    .publish(crate::events::Event::CallAnswered {
                        call_id: self.call_id.clone(),
                        agent: k.agent.clone(),
                    });
            }
            self.connected = Some(Connected {
                agent: k.agent,
                leg: k.leg,
                media: k.media,
                sdp_version: 1,
                log: k.log,
            });
        } else {
            info!(agent = %k.agent, "consultation cancelled");
            if k.answered {
                self.leg_ended(&k.log, "consulted");
            } else if !k.failed {
                self.leg_ended(&k.log, "cancelled");
            }
            end_phone(k.leg, k.answered);
        }
        if !self.held {
            customer.stop_playing();
        }
        self.arrange(customer);
        self.play_hold_music(customer);
    }

    /// Live pages learn the supervisor is gone (mode `none`).
    fn monitor_ended(&self, supervisor: &str) {
        self.deps
            .events
            .publish(crate::events::Event::CallMonitored {
                call_id: self.call_id.clone(),
                supervisor: supervisor.to_string(),
                mode: "none".to_string(),
            });
    }

    async fn start_monitor(
        &mut self,
        supervisor: String,
        mode: MonitorMode,
        customer: &MediaSession,
    ) {
        if let Some(m) = self.monitor.as_mut().filter(|m| m.supervisor == supervisor) {
            info!(%supervisor, mode = mode.name(), "monitoring mode changed");
            m.mode = mode;
            self.deps
                .events
                .publish(crate::events::Event::CallMonitored {
                    call_id: self.call_id.clone(),
                    supervisor,
                    mode: mode.name().to_string(),
                });
            self.arrange(customer);
            return;
        }
        if let Some(old) = self.monitor.take() {
            self.leg_ended(&old.log, "connected");
            tokio::spawn(async move { old.leg.hangup().await });
        }
        let headers = vec![("X-Hotline-Monitor".to_string(), mode.name().to_string())];
        if let Some(a) = self
            .dial(&supervisor, LegRole::Monitor, customer, headers)
            .await
        {
            info!(%supervisor, mode = mode.name(), "calling the supervisor's phone");
            self.monitor = Some(Monitor {
                supervisor,
                leg: a.leg,
                media: a.media,
                answered: false,
                mode,
                log: a.log,
            });
        }
    }

    fn new_leg_log(&mut self, party: &str, role: LegRole) -> LegLog {
        self.legs_placed += 1;
        LegLog {
            seq: self.legs_placed,
            party: party.to_string(),
            role: match role {
                LegRole::Offer(_) => "offer",
                LegRole::Consult if party.starts_with("tel:") => "transfer",
                LegRole::Consult => "consult",
                LegRole::Monitor => "monitor",
            },
            offered_at: self.deps.clock.now_ms(),
            answered_at: None,
        }
    }

    /// The leg is over: its row goes to the store (batched, never waited for).
    fn leg_ended(&self, log: &LegLog, outcome: &str) {
        let leg = crate::store::CallLeg {
            call_id: self.call_id.clone(),
            seq: log.seq,
            party: log.party.clone(),
            role: log.role.to_string(),
            offered_at: log.offered_at as i64,
            answered_at: log.answered_at.map(|t| t as i64),
            ended_at: self.deps.clock.now_ms() as i64,
            outcome: outcome.to_string(),
        };
        if self
            .deps
            .writer
            .try_send(crate::store::WriteOp::CallLeg(leg))
            .is_err()
        {
            warn!("store writer full: a call leg row is lost");
        }
    }

    async fn ring(
        &mut self,
        offer_id: OfferId,
        agent: String,
        customer: &MediaSession,
        note: Option<&str>,
    ) {
        let mut headers = Vec::new();
        if let Some(n) = note {
            headers.push(("X-Hotline-Note".to_string(), n.replace(['\r', '\n'], " ")));
        }
        match self
            .dial(&agent, LegRole::Offer(offer_id), customer, headers)
            .await
        {
            Some(a) => {
                self.deps.events.publish(crate::events::Event::CallOffered {
                    call_id: self.call_id.clone(),
                    agent: agent.clone(),
                });
                self.ringing.insert((offer_id, agent), a);
            }
            None => self.deps.acd.input(Input::OfferFailed {
                offer_id,
                agent,
                reason: OfferFailure::Error,
            }),
        }
    }

    /// INVITE `user`'s registered phone with the caller's number and the
    /// call and customer ids (screen pop); its events come back tagged
    /// with `role`. None when the user has no live registration or no
    /// media port is free.
    async fn dial(
        &mut self,
        user: &str,
        role: LegRole,
        customer: &MediaSession,
        extra_headers: Vec<(String, String)>,
    ) -> Option<AgentLeg> {
        let bindings = self.deps.sip.lookup(user).await;
        let Some(binding) = bindings.into_iter().next() else {
            info!(%user, "no live registration");
            return None;
        };
        let mut headers = Vec::new();
        if let Some(c) = &self.customer_id {
            headers.push(("X-Hotline-Customer".to_string(), c.clone()));
        }
        headers.extend(extra_headers);
        let target = (
            binding.contact.clone(),
            binding.source,
            binding.transport.clone(),
        );
        match self.place(user, role, target, customer, headers).await {
            Ok(a) => {
                info!(%user, contact = %binding.contact, ?role, "ringing");
                Some(a)
            }
            Err(e) => {
                warn!(%user, error = %e, "cannot call the phone");
                None
            }
        }
    }

    /// INVITE `party` at `(request URI, address, transport)` from the caller's
    /// number with a media session beside the caller's; its events come back
    /// tagged with `role` and its leg is numbered for `call_legs`.
    async fn place(
        &mut self,
        party: &str,
        role: LegRole,
        (target, destination, transport): (String, std::net::SocketAddr, String),
        customer: &MediaSession,
        extra_headers: Vec<(String, String)>,
    ) -> Result<AgentLeg, String> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A browser softphone (registered over WebSocket) gets a WebRTC offer;
        // a phone or gateway an RTP one.
        let (media, offer) = if is_websocket(&transport) {
            PartyMedia::browser(&self.deps.browsers, &self.deps.media, Some(customer), tx).await?
        } else {
            let media = PartyMedia::rtp(&self.deps.media, Some(customer), tx)
                .map_err(|e| format!("no media port: {e}"))?;
            let offer = sdp::write_offer(self.session_id, 1, media.local_addr());
            (media, offer)
        };
        // The far side's media events (timeouts) are not the caller's business.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let mut headers = vec![("X-Hotline-Call".to_string(), self.call_id.clone())];
        headers.extend(extra_headers);
        let call = OutboundCall {
            target,
            destination,
            transport,
            from_user: self.caller.clone(),
            from_display: None,
            sdp: offer,
            headers,
        };
        let (leg, mut events) = self.deps.sip.invite(call)?;
        let tx = self.agent_tx.clone();
        let a = party.to_string();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let ev = AgentEvent {
                    role,
                    agent: a.clone(),
                    event,
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        let log = self.new_leg_log(party, role);
        Ok(AgentLeg { leg, media, log })
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
        // One recording per call, across transfers: started at the first
        // agent, it goes on (music while waiting again, then the next agent).
        let recorder = match self.recording {
            None => self.start_recording(),
            Some(_) => None,
        };
        customer.stop_playing();
        self.speaking = false;
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
            log: a.log,
        });
        self.arrange(customer);
    }

    fn start_recording(&mut self) -> Option<Recorder> {
        if !self.deps.record {
            return None;
        }
        let (recorder, path) = super::open_recording(
            &self.deps.recordings,
            self.deps.clock.now_ms(),
            &self.call_id,
        )?;
        self.recording = Some(path);
        Some(recorder)
    }

    pub async fn on_agent(
        &mut self,
        ev: AgentEvent,
        customer: &MediaSession,
    ) -> Option<AgentOutcome> {
        let connected = self.connected.as_ref().is_some_and(|c| c.agent == ev.agent);
        match ev.role {
            LegRole::Offer(offer_id) => self.on_offer_leg(offer_id, ev, customer).await,
            // The consulted agent (or outside number) took over the call.
            LegRole::Consult if connected => self.on_offer_leg(NO_OFFER, ev, customer).await,
            LegRole::Consult => {
                self.on_consult_leg(ev, customer).await;
                None
            }
            LegRole::Monitor => {
                self.on_monitor_leg(ev, customer).await;
                None
            }
        }
    }

    async fn on_offer_leg(
        &mut self,
        offer_id: OfferId,
        ev: AgentEvent,
        customer: &MediaSession,
    ) -> Option<AgentOutcome> {
        let key = (offer_id, ev.agent.clone());
        match ev.event {
            LegEvent::Ringing => debug!(agent = %ev.agent, "agent phone ringing"),
            LegEvent::Answered { sdp: answer } => {
                let mut a = self.ringing.remove(&key)?;
                a.log.answered_at = Some(self.deps.clock.now_ms());
                match a.media.answered(answer.as_deref(), &a.leg).await {
                    Ok(()) => {
                        info!(agent = %ev.agent, browser = a.media.is_browser(), "agent answered");
                        self.deps.acd.answered(&self.call_id, offer_id, &ev.agent);
                        self.answered.insert(key, a);
                    }
                    Err(e) => {
                        warn!(agent = %ev.agent, error = %e, "agent answered without a usable SDP answer");
                        self.leg_ended(&a.log, "failed");
                        tokio::spawn(async move { a.leg.hangup().await });
                        self.deps.acd.input(Input::OfferFailed {
                            offer_id,
                            agent: ev.agent,
                            reason: OfferFailure::Error,
                        });
                    }
                }
            }
            LegEvent::Failed { status } => {
                if let Some(a) = self.ringing.remove(&key) {
                    info!(agent = %ev.agent, status, "agent did not take the call");
                    self.leg_ended(&a.log, failure_outcome(status));
                    self.deps.acd.input(Input::OfferFailed {
                        offer_id,
                        agent: ev.agent,
                        reason: offer_failure(status),
                    });
                }
            }
            LegEvent::Ended(cause) => {
                if self.connected.as_ref().is_some_and(|c| c.agent == ev.agent) {
                    info!(agent = %ev.agent, cause = %cause.describe(), "agent hung up");
                    if self.consult.as_ref().is_some_and(|k| k.answered) {
                        // Hanging up after consulting completes the transfer.
                        let k = self.consult.as_ref().map(|k| k.agent.clone());
                        if let Some(agent) = k {
                            self.deps.acd.input(Input::ConsultEnded {
                                call_id: self.call_id.clone(),
                                agent: agent.clone(),
                                complete: true,
                                note: String::new(),
                            });
                            self.end_consult(&agent, true, String::new(), customer);
                            return None;
                        }
                    }
                    if let Some(k) = self.consult.take() {
                        self.leg_ended(&k.log, "cancelled");
                        tokio::spawn(async move { k.leg.cancel().await });
                    }
                    if let Some(c) = self.connected.take() {
                        self.leg_ended(&c.log, "connected");
                        self.deps.acd.input(Input::CallEnded {
                            call_id: self.call_id.clone(),
                            agent: c.agent,
                        });
                    }
                    return Some(AgentOutcome::AgentHungUp {
                        cause: agent_end_cause(&cause),
                    });
                }
                if let Some(a) = self.answered.remove(&key) {
                    self.leg_ended(&a.log, "cancelled");
                }
            }
            LegEvent::Reinvite { sdp: offer, reply } => {
                // The agent holds or resumes: answer, and stop sending while held.
                let Some(c) = self.connected.as_mut() else {
                    reply.reject(491).await;
                    return None;
                };
                if c.media.is_browser() {
                    // The desk holds through the API; its WebRTC session is
                    // not renegotiated.
                    reply.reject(488).await;
                    return None;
                }
                match offer.as_deref().map(super::negotiate) {
                    Some(Ok(n)) => {
                        c.media.configure(super::params(&n));
                        c.sdp_version += 1;
                        let held = n.remote_on_hold();
                        let ours = sdp::write(
                            self.session_id,
                            c.sdp_version,
                            c.media.local_addr(),
                            n.codec,
                            n.dtmf_pt,
                            n.direction,
                        );
                        reply.ok(Some(ours)).await;
                        self.set_held(held, customer);
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
                    let number = crate::sip::uri_user(&refer_to).unwrap_or_default();
                    match self.transfer_out(number, String::new(), customer).await {
                        Ok(()) => {
                            reply.accepted().await;
                            // The phone learns how it ended (NOTIFY) when
                            // the outside number answers or fails.
                            self.refer_accepted = true;
                        }
                        Err(e) => {
                            warn!(%refer_to, error = %e, "transfer target refused");
                            reply.reject(403).await;
                        }
                    }
                    return None;
                };
                match self
                    .deps
                    .acd
                    .transfer(&self.call_id, Some(from), target, String::new())
                    .await
                {
                    Ok(_) => {
                        reply.accepted().await;
                        self.refer_accepted = true;
                    }
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

    async fn on_consult_leg(&mut self, ev: AgentEvent, customer: &MediaSession) {
        let ours = self.consult.as_ref().is_some_and(|k| k.agent == ev.agent);
        match ev.event {
            LegEvent::Answered { sdp: answer } if ours => {
                let usable = match self.consult.as_mut() {
                    Some(k) => k.media.answered(answer.as_deref(), &k.leg).await.is_ok(),
                    None => false,
                };
                match (usable, self.consult.as_mut()) {
                    (true, Some(k)) => {
                        k.answered = true;
                        k.log.answered_at = Some(self.deps.clock.now_ms());
                        if k.external {
                            let note = k.note.clone();
                            info!(number = %ev.agent, "outside number answered");
                            self.end_consult(&ev.agent, true, note, customer);
                            return;
                        }
                        info!(agent = %ev.agent, "consulted agent answered");
                        self.deps.acd.input(Input::ConsultAnswered {
                            call_id: self.call_id.clone(),
                            agent: ev.agent.clone(),
                        });
                        self.deps
                            .events
                            .publish(crate::events::Event::CallConsulting {
                                call_id: self.call_id.clone(),
                                agent: ev.agent,
                            });
                        self.arrange(customer);
                    }
                    _ => {
                        warn!(agent = %ev.agent, "consulted agent answered without a usable SDP");
                        self.consult_failed(&ev.agent);
                        self.end_consult(&ev.agent, false, String::new(), customer);
                    }
                }
            }
            LegEvent::Failed { status } if ours => {
                info!(agent = %ev.agent, status, "consulted agent did not answer");
                let external = self.consult.as_ref().is_some_and(|k| k.external);
                if external && std::mem::take(&mut self.refer_accepted) {
                    // The REFER's transfer failed: the phone hears why, and
                    // keeps the caller (RFC 3515 §2.4.5).
                    if let Some(c) = self.connected.as_ref() {
                        let leg = c.leg.clone();
                        tokio::spawn(async move { leg.notify_transfer(status).await });
                    }
                }
                if let Some(k) = self.consult.as_mut() {
                    k.failed = true;
                }
                if let Some(k) = self.consult.as_ref() {
                    self.leg_ended(&k.log, failure_outcome(status));
                }
                self.consult_failed(&ev.agent);
                self.end_consult(&ev.agent, false, String::new(), customer);
            }
            LegEvent::Ended(_) if ours => {
                info!(agent = %ev.agent, "consulted agent hung up");
                self.consult_failed(&ev.agent);
                self.end_consult(&ev.agent, false, String::new(), customer);
            }
            LegEvent::Reinvite { reply, .. } => reply.reject(488).await,
            LegEvent::Info { reply, .. } => reply.ok(None).await,
            LegEvent::Refer { reply, .. } => reply.reject(403).await,
            _ => {}
        }
    }

    async fn on_monitor_leg(&mut self, ev: AgentEvent, customer: &MediaSession) {
        let ours = self
            .monitor
            .as_ref()
            .is_some_and(|m| m.supervisor == ev.agent);
        match ev.event {
            LegEvent::Answered { sdp: answer } if ours => {
                let usable = match self.monitor.as_mut() {
                    Some(m) => m.media.answered(answer.as_deref(), &m.leg).await.is_ok(),
                    None => false,
                };
                match (usable, self.monitor.as_mut()) {
                    (true, Some(m)) => {
                        m.answered = true;
                        m.log.answered_at = Some(self.deps.clock.now_ms());
                        info!(supervisor = %ev.agent, mode = m.mode.name(), "supervisor joined");
                        self.deps
                            .events
                            .publish(crate::events::Event::CallMonitored {
                                call_id: self.call_id.clone(),
                                supervisor: ev.agent,
                                mode: m.mode.name().to_string(),
                            });
                        self.arrange(customer);
                    }
                    _ => {
                        if let Some(m) = self.monitor.take() {
                            tokio::spawn(async move { m.leg.hangup().await });
                        }
                    }
                }
            }
            LegEvent::Failed { .. } | LegEvent::Ended(_) if ours => {
                info!(supervisor = %ev.agent, "supervisor left");
                self.monitor_ended(&ev.agent);
                if let Some(m) = self.monitor.take() {
                    let outcome = match &ev.event {
                        LegEvent::Failed { status } => failure_outcome(*status),
                        _ => "connected",
                    };
                    self.leg_ended(&m.log, outcome);
                }
                self.arrange(customer);
            }
            LegEvent::Reinvite { reply, .. } => reply.reject(488).await,
            LegEvent::Info { reply, .. } => reply.ok(None).await,
            LegEvent::Refer { reply, .. } => reply.reject(403).await,
            _ => {}
        }
    }

    /// The caller is gone: cancel what rings, hang up the agent, tell the ACD.
    pub async fn caller_gone(&mut self) {
        if let Some(k) = self.consult.take() {
            self.leg_ended(&k.log, if k.answered { "consulted" } else { "cancelled" });
            end_phone(k.leg, k.answered);
        }
        if let Some(m) = self.monitor.take() {
            self.leg_ended(&m.log, if m.answered { "connected" } else { "cancelled" });
            end_phone(m.leg, m.answered);
        }
        for (_, a) in std::mem::take(&mut self.ringing) {
            self.leg_ended(&a.log, "cancelled");
            tokio::spawn(async move { a.leg.cancel().await });
        }
        for (_, a) in std::mem::take(&mut self.answered) {
            self.leg_ended(&a.log, "cancelled");
            tokio::spawn(async move { a.leg.hangup().await });
        }
        if let Some(c) = self.connected.take() {
            self.leg_ended(&c.log, "connected");
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

/// The call record's cause when the agent's leg ends: their BYE, or their
/// browser page gone (the WebSocket closed under the call).
pub(super) fn agent_end_cause(cause: &crate::sip::leg::EndCause) -> &'static str {
    match cause {
        crate::sip::leg::EndCause::Gone => "agent_gone",
        _ => "agent_bye",
    }
}
