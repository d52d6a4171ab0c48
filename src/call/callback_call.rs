//! One agent callback (人工回访), agent first: the reserved agent's phone
//! is called, and only once the agent has answered is the customer dialled
//! through the trunk; when the customer answers the two are bridged and
//! recorded. An answered customer therefore always has an agent on the line:
//! progressive dialing with no abandoned calls. Preview calls (the agent
//! chose the task on the desk) run the same way.
//!
//! Like a survey call, the task reports one [`CallResult`] to the dialer and
//! never touches the task tables; it tells the ACD when the agent answered
//! and when the agent is free again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

use super::outbound::{trunk_call, CallJob, CallResult, OutboundDeps};
use super::party::PartyMedia;
use crate::acd::Input;
use crate::events::Event;
use crate::media::engine::{MediaEvent, MediaSession};
use crate::media::prompt::Prompt;
use crate::sip::leg::{is_websocket, Leg, LegEvent, OutboundCall};
use crate::sip::sdp;
use crate::store::{CallCompletion, WriteOp};

/// Media token of the ringback the agent hears while the customer's phone rings.
const RINGBACK: u64 = u64::MAX - 10;

/// One ringback cadence as Chinese exchanges play it: 450 Hz for 1 s, then
/// 4 s of silence (replayed while the customer's phone rings).
fn ringback_tone() -> Arc<Prompt> {
    static TONE: OnceLock<Arc<Prompt>> = OnceLock::new();
    TONE.get_or_init(|| {
        let rate = 8000.0_f32;
        let pcm: Vec<i16> = (0..5 * 8000)
            .map(|n| {
                if n < 8000 {
                    let x = (2.0 * std::f32::consts::PI * 450.0 * n as f32 / rate).sin();
                    (x * 8000.0) as i16
                } else {
                    0
                }
            })
            .collect();
        Arc::new(Prompt::from_samples("ringback-450hz".into(), pcm))
    })
    .clone()
}

/// A conversation is cut off after this long (a phone left off the hook).
const MAX_TALK: Duration = Duration::from_secs(2 * 3600);

/// Place the agent-first callback for `agent` (already reserved in the
/// ACD); the result goes to `results`.
pub fn spawn(
    job: CallJob,
    agent: String,
    deps: Arc<OutboundDeps>,
    results: mpsc::UnboundedSender<CallResult>,
) {
    let span = info_span!("agent_callback", call_id = %job.call_id, task = %job.task_key, attempt = job.attempt, %agent);
    tokio::spawn(
        async move {
            let r = run(job, agent, deps).await;
            let _ = results.send(r);
        }
        .instrument(span),
    );
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The agent's phone rings.
    AgentRinging,
    /// The agent is on the line; the customer's phone rings.
    CustomerRinging,
    /// Agent and customer talk.
    Talking,
}

/// One side of the call: its SIP leg and media session.
/// One leg of the callback: the customer's (RTP through the trunk) or the
/// agent's (a phone, or the desk's browser phone: [`PartyMedia`]).
struct Side<M = MediaSession> {
    leg: Leg,
    media: M,
}

struct CallbackCall {
    deps: Arc<OutboundDeps>,
    job: CallJob,
    agent: String,
    session_id: u64,
    phase: Phase,
    agent_side: Option<Side<PartyMedia>>,
    customer: Option<Side>,
    /// The customer's leg events, once dialled.
    customer_events: Option<mpsc::UnboundedReceiver<LegEvent>>,
    agent_answered_ms: Option<u64>,
    talk_started_ms: Option<u64>,
    recording: Option<String>,
    /// Deadline of the current phase (ring timeouts, then max call length).
    deadline: Instant,
    /// A CANCEL was sent to the customer's phone at this time.
    cancelled_at: Option<Instant>,
    ending: Option<(String, &'static str)>,
    result: CallResult,
}

async fn run(job: CallJob, agent: String, deps: Arc<OutboundDeps>) -> CallResult {
    let result = CallResult::new(&job, deps.clock.now_ms());
    let mut c = CallbackCall {
        deps: deps.clone(),
        job,
        agent,
        session_id: u64::from(rand::random::<u32>()),
        phase: Phase::AgentRinging,
        agent_side: None,
        customer: None,
        customer_events: None,
        agent_answered_ms: None,
        talk_started_ms: None,
        recording: None,
        deadline: Instant::now() + deps.ring_timeout,
        cancelled_at: None,
        ending: None,
        result,
    };
    deps.events.publish(Event::CallArrived {
        call_id: c.job.call_id.clone(),
        caller: c.job.phone.clone(),
        called: c.agent.clone(),
        customer_id: Some(c.job.customer_id.clone()),
    });
    let (agent_media_tx, mut agent_media_rx) = mpsc::unbounded_channel();
    let (customer_media_tx, mut customer_media_rx) = mpsc::unbounded_channel();
    let mut agent_events = match c.ring_agent(agent_media_tx).await {
        Ok(events) => events,
        Err(cause) => {
            warn!(%cause, "cannot call the agent's phone");
            c.result.not_sent = true;
            c.ending = Some((cause, "hotline"));
            return c.finish();
        }
    };
    while c.ending.is_none() {
        let guard = match c.cancelled_at {
            Some(at) => at + Duration::from_secs(5),
            None => c.deadline,
        };
        tokio::select! {
            ev = agent_events.recv() => c.on_agent_leg(ev, &customer_media_tx).await,
            ev = recv_opt(&mut c.customer_events) => c.on_customer_leg(ev).await,
            Some(ev) = agent_media_rx.recv() => match ev {
                MediaEvent::Timeout if c.phase == Phase::Talking => {
                    warn!("no RTP from the agent's phone: hanging up");
                    c.hang_up_all("agent_media_timeout").await;
                }
                // Ringback goes on until the customer answers.
                MediaEvent::PromptFinished { token: RINGBACK } if c.phase == Phase::CustomerRinging => {
                    if let Some(a) = &c.agent_side {
                        a.media.play(ringback_tone(), RINGBACK);
                    }
                }
                _ => {}
            },
            Some(ev) = customer_media_rx.recv() => {
                match ev {
                    MediaEvent::Timeout if c.phase == Phase::Talking => {
                        warn!("no RTP from the customer: hanging up");
                        metrics::counter!("hotline_media_timeouts_total").increment(1);
                        c.hang_up_all("media_timeout").await;
                    }
                    MediaEvent::RemoteLearned { addr } => debug!(%addr, "customer RTP source learned"),
                    MediaEvent::RecordingFailed { reason } => warn!(%reason, "recording stopped"),
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(guard) => c.on_timeout().await,
        }
    }
    c.finish()
}

/// The next event of an optional leg (pending forever while there is none).
async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<LegEvent>>) -> Option<LegEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl CallbackCall {
    /// INVITE the agent's registered phone, showing the customer's number.
    async fn ring_agent(
        &mut self,
        media_tx: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<mpsc::UnboundedReceiver<LegEvent>, String> {
        let binding = self
            .deps
            .sip
            .lookup(&self.agent)
            .await
            .into_iter()
            .next()
            .ok_or_else(|| "agent_unregistered".to_string())?;
        let (media, offer) = if is_websocket(&binding.transport) {
            PartyMedia::browser(&self.deps.browsers, &self.deps.media, None, media_tx)
                .await
                .map_err(|e| {
                    warn!(error = %e, "no browser leg for the agent");
                    "no_media_port".to_string()
                })?
        } else {
            let media = PartyMedia::rtp(&self.deps.media, None, media_tx)
                .map_err(|_| "no_media_port".to_string())?;
            let offer = sdp::write_offer(self.session_id, 1, media.local_addr());
            (media, offer)
        };
        let call = OutboundCall {
            target: binding.contact.clone(),
            destination: binding.source,
            transport: binding.transport.clone(),
            from_user: self.job.phone.clone(),
            from_display: None,
            sdp: offer,
            headers: vec![
                ("X-Hotline-Call".to_string(), self.job.call_id.clone()),
                (
                    "X-Hotline-Customer".to_string(),
                    self.job.customer_id.clone(),
                ),
                ("X-Hotline-Task".to_string(), self.job.task_key.clone()),
            ],
        };
        let (leg, events) = self
            .deps
            .sip
            .invite(call)
            .map_err(|_| "invite_failed".to_string())?;
        info!(contact = %binding.contact, "ringing the agent's phone");
        self.deps.events.publish(Event::CallOffered {
            call_id: self.job.call_id.clone(),
            agent: self.agent.clone(),
        });
        self.agent_side = Some(Side { leg, media });
        Ok(events)
    }

    async fn on_agent_leg(
        &mut self,
        ev: Option<LegEvent>,
        customer_media_tx: &mpsc::UnboundedSender<MediaEvent>,
    ) {
        match ev {
            None => self.hang_up_all("agent_dialog_lost").await,
            Some(LegEvent::Answered { sdp: answer }) if self.phase == Phase::AgentRinging => {
                let answered = match self.agent_side.as_mut() {
                    Some(a) => a.media.answered(answer.as_deref(), &a.leg).await,
                    None => Err("no agent leg".to_string()),
                };
                if let Err(e) = answered {
                    warn!(error = %e, "the agent's phone answered without a usable SDP");
                    self.result.not_sent = true;
                    self.hang_up_all("agent_no_answer_sdp").await;
                    return;
                }
                self.agent_answered_ms = Some(self.deps.clock.now_ms());
                if let Some(acd) = &self.deps.acd {
                    acd.input(Input::DirectAnswered {
                        call_id: self.job.call_id.clone(),
                        agent: self.agent.clone(),
                    });
                }
                self.dial_customer(customer_media_tx.clone());
            }
            Some(LegEvent::Failed { status }) => {
                info!(status, "the agent did not take the callback");
                self.result.not_sent = true;
                self.hang_up_all(&format!("agent_status_{status}")).await;
            }
            Some(LegEvent::Ended(cause)) => {
                info!(cause = %cause.describe(), "the agent hung up");
                if self.phase != Phase::Talking {
                    // The customer never answered: nothing happened for the task.
                    self.result.not_sent = true;
                }
                self.agent_side = None;
                self.hang_up_all(super::agent::agent_end_cause(&cause))
                    .await;
                if let Some(e) = self.ending.as_mut() {
                    e.1 = "agent";
                }
            }
            Some(LegEvent::Reinvite { sdp: body, reply }) => {
                let ours = self.reoffer(body.as_deref(), true);
                match ours {
                    Some(sdp) => reply.ok(Some(sdp)).await,
                    None => reply.reject(488).await,
                }
            }
            Some(LegEvent::Info { reply, .. }) => reply.ok(None).await,
            Some(LegEvent::Refer { reply, .. }) => reply.reject(403).await,
            Some(LegEvent::Ringing) => debug!("agent phone ringing"),
            Some(_) => {}
        }
    }

    /// The agent is on the line: INVITE the customer through the trunk.
    fn dial_customer(&mut self, media_tx: mpsc::UnboundedSender<MediaEvent>) {
        let Some(agent) = &self.agent_side else {
            return;
        };
        let media = match self.deps.media.open_near(&agent.media, media_tx) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "no media port for the customer");
                self.result.not_sent = true;
                self.ending = Some(("no_media_port".into(), "hotline"));
                return;
            }
        };
        let call = trunk_call(&self.deps, &self.job, self.session_id, media.local_addr());
        match self.deps.sip.invite(call) {
            Ok((leg, events)) => {
                info!(phone = %self.job.phone, "agent on the line: dialling the customer");
                self.deps.events.publish(Event::CallbackDialing {
                    call_id: self.job.call_id.clone(),
                    task_id: self.job.task_key.clone(),
                    agent: self.agent.clone(),
                    phone: self.job.phone.clone(),
                });
                agent.media.play(ringback_tone(), RINGBACK);
                self.customer = Some(Side { leg, media });
                self.customer_events = Some(events);
                self.phase = Phase::CustomerRinging;
                self.deadline = Instant::now() + self.deps.ring_timeout;
            }
            Err(e) => {
                warn!(error = %e, "cannot send the INVITE to the customer");
                self.result.not_sent = true;
                self.ending = Some(("invite_failed".into(), "hotline"));
            }
        }
    }

    async fn on_customer_leg(&mut self, ev: Option<LegEvent>) {
        match ev {
            None => {
                if !self.result.answered {
                    self.result.status.get_or_insert(408);
                }
                self.customer_events = None;
                self.hang_up_all("dialog_lost").await;
            }
            Some(LegEvent::Ringing) => debug!("customer phone ringing"),
            Some(LegEvent::Answered { sdp: answer }) if self.phase == Phase::CustomerRinging => {
                self.result.answered = true;
                let usable = answer.as_deref().map(super::negotiate);
                let Some(Ok(n)) = usable else {
                    warn!("the customer answered without a usable SDP: hanging up");
                    self.hang_up_all("no_answer_sdp").await;
                    return;
                };
                self.connect(&n);
            }
            Some(LegEvent::Failed { status }) => {
                info!(status, "customer not reached");
                self.result.status = Some(status);
                self.customer = None;
                self.customer_events = None;
                self.hang_up_all(&format!("status_{status}")).await;
                if let Some(e) = self.ending.as_mut() {
                    e.1 = "network";
                }
            }
            Some(LegEvent::Ended(cause)) => {
                info!(cause = %cause.describe(), "the customer hung up");
                self.customer = None;
                self.customer_events = None;
                self.hang_up_all(&cause.describe()).await;
                if let Some(e) = self.ending.as_mut() {
                    e.1 = cause.side();
                }
            }
            Some(LegEvent::Reinvite { sdp: body, reply }) => {
                match self.reoffer(body.as_deref(), false) {
                    Some(sdp) => reply.ok(Some(sdp)).await,
                    None => reply.reject(488).await,
                }
            }
            Some(LegEvent::Info { reply, .. }) => reply.ok(None).await,
            Some(LegEvent::Refer { reply, .. }) => reply.reject(403).await,
            Some(_) => {}
        }
    }

    /// Customer answered: bridge to the agent and record.
    fn connect(&mut self, n: &sdp::Negotiated) {
        let (Some(customer), Some(agent)) = (&self.customer, &self.agent_side) else {
            return;
        };
        customer.media.configure(super::params(n));
        agent.media.stop_playing();
        let recorder = if self.deps.record {
            super::open_recording(
                &self.deps.recordings,
                self.deps.clock.now_ms(),
                &self.job.call_id,
            )
            .map(|(r, path)| {
                self.recording = Some(path);
                r
            })
        } else {
            None
        };
        if !customer.media.bridge(&agent.media, recorder) {
            warn!("media sessions on different workers; cannot bridge");
        }
        info!(recording = ?self.recording, "customer answered: connected to the agent");
        metrics::counter!("hotline_calls_connected_total").increment(1);
        self.deps.events.publish(Event::CallAnswered {
            call_id: self.job.call_id.clone(),
            agent: self.agent.clone(),
        });
        self.phase = Phase::Talking;
        self.talk_started_ms = Some(self.deps.clock.now_ms());
        self.deadline = Instant::now() + MAX_TALK;
    }

    /// Answer a re-INVITE (hold, session refresh) of either side.
    fn reoffer(&self, body: Option<&str>, agent: bool) -> Option<String> {
        let media: &MediaSession = if agent {
            let side = self.agent_side.as_ref()?;
            if side.media.is_browser() {
                // A browser leg's WebRTC session is never renegotiated.
                return None;
            }
            &side.media
        } else {
            &self.customer.as_ref()?.media
        };
        let addr = media.local_addr();
        match body.map(super::negotiate) {
            Some(Ok(n)) => {
                media.configure(super::params(&n));
                Some(sdp::write(
                    self.session_id,
                    2,
                    addr,
                    n.codec,
                    n.dtmf_pt,
                    n.direction,
                ))
            }
            Some(Err(_)) => None,
            None => Some(sdp::write_offer(self.session_id, 2, addr)),
        }
    }

    async fn on_timeout(&mut self) {
        match (self.phase, self.cancelled_at) {
            (Phase::AgentRinging, _) => {
                info!("the agent's phone was not answered: CANCEL");
                self.result.not_sent = true;
                self.hang_up_all("agent_no_answer").await;
            }
            (Phase::CustomerRinging, None) => {
                info!("no answer within the ring timeout: CANCEL");
                self.cancelled_at = Some(Instant::now());
                if let Some(c) = &self.customer {
                    c.leg.cancel().await;
                }
            }
            (Phase::CustomerRinging, Some(_)) => {
                self.result.status = Some(487);
                self.customer = None;
                self.hang_up_all("no_answer").await;
            }
            (Phase::Talking, _) => {
                warn!("callback ran past two hours: hanging up");
                self.hang_up_all("max_call_time").await;
            }
        }
    }

    /// End the call on both sides (BYE to answered legs, CANCEL to ringing ones).
    async fn hang_up_all(&mut self, cause: &str) {
        let customer_answered = self.phase == Phase::Talking;
        if let Some(c) = self.customer.take() {
            if customer_answered || self.result.answered {
                c.leg.hangup().await;
            } else {
                c.leg.cancel().await;
            }
        }
        if let Some(a) = self.agent_side.take() {
            if self.agent_answered_ms.is_some() {
                a.leg.hangup().await;
            } else {
                a.leg.cancel().await;
            }
        }
        if self.ending.is_none() {
            self.ending = Some((cause.to_string(), "hotline"));
        }
    }

    /// Free the agent, complete the call record, report to the dialer.
    fn finish(mut self) -> CallResult {
        let now = self.deps.clock.now_ms();
        let (cause, side) = self
            .ending
            .take()
            .unwrap_or_else(|| ("unknown".into(), "network"));
        if let Some(acd) = &self.deps.acd {
            acd.input(Input::DirectEnded {
                call_id: self.job.call_id.clone(),
                agent: self.agent.clone(),
                wrap_up_ms: if self.talk_started_ms.is_some() {
                    self.deps.wrap_up_ms
                } else {
                    0
                },
            });
        }
        self.result.ended_at = now;
        info!(%cause, side, answered = self.result.answered, status = ?self.result.status, "agent callback ended");
        self.deps.events.publish(Event::CallEnded {
            call_id: self.job.call_id.clone(),
            cause: cause.clone(),
        });
        let talk_ms = self.talk_started_ms.map_or(0, |t| now.saturating_sub(t));
        let wait_ms = self
            .agent_answered_ms
            .map_or(0, |a| self.talk_started_ms.unwrap_or(now).saturating_sub(a));
        let _ = self
            .deps
            .writer
            .try_send(WriteOp::CallCompletion(CallCompletion {
                id: self.job.call_id.clone(),
                customer_id: Some(self.job.customer_id.clone()),
                work_order: self.job.work_order.clone(),
                queue: None,
                agent_id: Some(self.agent.clone()),
                answered_at: self.talk_started_ms.map(|a| a as i64),
                ended_at: now as i64,
                wait_ms: wait_ms as i64,
                talk_ms: talk_ms as i64,
                hold_ms: 0,
                ivr_path: Vec::new(),
                hangup_cause: cause,
                hangup_side: side.to_string(),
                disposition: "callback_agent".to_string(),
                notes: String::new(),
                recording: self.recording.clone(),
                transfer_chain: Vec::new(),
            }));
        self.result
    }
}
