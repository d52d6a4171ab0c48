//! One outbound survey call (回访), from INVITE to BYE: the task owns the
//! leg, the media session and an IVR interpreter running the survey
//! dialplan, exactly as an inbound call task does, and reports one
//! [`CallResult`] to the dialer when it ends. It never touches the task
//! tables: the dialer persists the outcome.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

use super::ivr_driver::IvrDriver;
use super::Routing;
use crate::clock::Clock;
use crate::ivr::{Dialplan, HangupReason, IvrAction, IvrEvent};
use crate::media::engine::{DtmfMethod, MediaEngine, MediaEvent, MediaSession};
use crate::sip::leg::{Leg, LegEvent, OutboundCall};
use crate::sip::sdp;
use crate::store::{CallCompletion, StoreWriter, WriteOp};

/// What a survey call needs; shared by all of them.
pub struct OutboundDeps {
    pub media: MediaEngine,
    pub sip: crate::sip::SipHandle,
    pub writer: StoreWriter,
    pub clock: Arc<dyn Clock>,
    pub events: crate::events::EventHub,
    /// The survey dialplan and its prompts.
    pub routing: Arc<Routing>,
    pub plan: Arc<Dialplan>,
    /// Where the trunk is and how to reach it.
    pub trunk: SocketAddr,
    pub transport: String,
    pub caller_id: String,
    pub ring_timeout: Duration,
    pub max_call: Duration,
    /// Agent callbacks (preview / progressive): the ACD that reserves the
    /// agents, their skill, wrap-up after a callback, and recording.
    pub acd: Option<super::acd::AcdHandle>,
    pub agent_skill: Option<String>,
    pub wrap_up_ms: u64,
    pub record: bool,
    pub recordings: std::path::PathBuf,
    /// WebRTC legs for agents registered from the desk's browser phone.
    pub browsers: Arc<dyn crate::browser::BrowserMedia>,
}

/// One call to place.
#[derive(Debug, Clone)]
pub struct CallJob {
    pub task_key: String,
    pub attempt: u32,
    /// `calls.id`, already written with the attempt.
    pub call_id: String,
    pub phone: String,
    pub customer_id: String,
    pub work_order: Option<String>,
}

/// How a call ended, for the dialer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    pub task_key: String,
    pub attempt: u32,
    pub call_id: String,
    /// The final failure status before answer (487 after our CANCEL, 408
    /// when nothing answered); `None` when answered or never sent.
    pub status: Option<u16>,
    pub answered: bool,
    /// The INVITE could not be sent at all (our side).
    pub not_sent: bool,
    /// The survey's call variables (answers) when answered.
    pub vars: BTreeMap<String, String>,
    pub ended_at: u64,
}

/// The INVITE to the customer's number through the trunk.
pub(super) fn trunk_call(
    deps: &OutboundDeps,
    job: &CallJob,
    session_id: u64,
    media: SocketAddr,
) -> OutboundCall {
    OutboundCall {
        target: format!("sip:{}@{}", job.phone, deps.trunk),
        destination: deps.trunk,
        transport: deps.transport.clone(),
        from_user: deps.caller_id.clone(),
        from_display: None,
        sdp: sdp::write_offer(session_id, 1, media),
        headers: vec![
            ("X-Hotline-Call".to_string(), job.call_id.clone()),
            ("X-Hotline-Task".to_string(), job.task_key.clone()),
        ],
    }
}

impl CallResult {
    /// Nothing happened yet to `job`'s call (as of `now_ms`).
    pub fn new(job: &CallJob, now_ms: u64) -> Self {
        Self {
            task_key: job.task_key.clone(),
            attempt: job.attempt,
            call_id: job.call_id.clone(),
            status: None,
            answered: false,
            not_sent: false,
            vars: BTreeMap::new(),
            ended_at: now_ms,
        }
    }
}

/// Place the call and run the survey; the result goes to `results`.
pub fn spawn(job: CallJob, deps: Arc<OutboundDeps>, results: mpsc::UnboundedSender<CallResult>) {
    let span = info_span!("survey_call", call_id = %job.call_id, task = %job.task_key, attempt = job.attempt);
    tokio::spawn(
        async move {
            let r = run(job, deps).await;
            let _ = results.send(r);
        }
        .instrument(span),
    );
}

struct Survey {
    deps: Arc<OutboundDeps>,
    leg: Option<Leg>,
    media: Option<MediaSession>,
    ivr: IvrDriver,
    /// Set when the call is over: (cause, side).
    ending: Option<(String, &'static str)>,
}

async fn run(job: CallJob, deps: Arc<OutboundDeps>) -> CallResult {
    let mut result = CallResult::new(&job, deps.clock.now_ms());
    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    let media = match deps.media.open(media_tx) {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "no media port for the survey call");
            result.not_sent = true;
            finish(&deps, &job, &result, None, "no_media_port", "hotline", &[]);
            return result;
        }
    };
    let session_id = u64::from(rand::random::<u32>());
    let call = trunk_call(&deps, &job, session_id, media.local_addr());
    let (leg, mut events) = match deps.sip.invite(call) {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "cannot send the INVITE");
            result.not_sent = true;
            finish(&deps, &job, &result, None, "invite_failed", "hotline", &[]);
            return result;
        }
    };
    info!(phone = %job.phone, "dialling customer");
    let mut s = Survey {
        deps: deps.clone(),
        leg: Some(leg),
        media: Some(media),
        ivr: IvrDriver::default(),
        ending: None,
    };
    let mut answered_ms: Option<u64> = None;
    let ring_deadline = Instant::now() + deps.ring_timeout;
    let mut cancelled_at: Option<Instant> = None;
    let mut call_deadline: Option<Instant> = None;
    while s.ending.is_none() {
        let next_timer = s.ivr.next_timer();
        // Before answer: the ring timeout, then a grace for the 487.
        let guard = match (answered_ms, cancelled_at, call_deadline) {
            (None, None, _) => ring_deadline,
            (None, Some(c), _) => c + Duration::from_secs(5),
            (Some(_), _, Some(d)) => d,
            (Some(_), _, None) => Instant::now() + deps.max_call,
        };
        tokio::select! {
            ev = events.recv() => match ev {
                None => {
                    if answered_ms.is_none() {
                        result.status.get_or_insert(408);
                    }
                    s.ending = Some(("dialog_lost".into(), "network"));
                }
                Some(LegEvent::Ringing) => debug!("customer phone ringing"),
                Some(LegEvent::Answered { sdp: answer }) => {
                    match answer.as_deref().map(super::negotiate) {
                        Some(Ok(n)) => {
                            s.with_media(|m| m.configure(super::params(&n)));
                            let now = deps.clock.now_ms();
                            answered_ms = Some(now);
                            result.answered = true;
                            call_deadline = Some(Instant::now() + deps.max_call);
                            info!(local = ?s.media.as_ref().map(MediaSession::local_addr), remote = %n.remote, "customer answered: survey starts");
                            s.ivr.start(deps.plan.clone(), IvrEvent::Started {
                                caller: deps.caller_id.clone(),
                                called: job.phone.clone(),
                            });
                        }
                        _ => {
                            warn!("answer without a usable SDP: hanging up");
                            result.answered = true;
                            answered_ms = Some(deps.clock.now_ms());
                            s.hangup().await;
                            s.ending = Some(("no_answer_sdp".into(), "hotline"));
                        }
                    }
                }
                Some(LegEvent::Failed { status }) => {
                    info!(status, "customer not reached");
                    result.status = Some(status);
                    s.ending = Some((format!("status_{status}"), "network"));
                }
                Some(LegEvent::Info { content_type, body, reply }) => {
                    match crate::sip::info::dtmf_from_info(&content_type, &body) {
                        Some(d) => {
                            reply.ok(None).await;
                            s.digit(d, DtmfMethod::SipInfo);
                        }
                        None => reply.reject(415).await,
                    }
                }
                Some(LegEvent::Reinvite { sdp: body, reply }) => {
                    match body.as_deref().map(super::negotiate) {
                        Some(Ok(n)) => {
                            s.with_media(|m| m.configure(super::params(&n)));
                            let ours = s.media.as_ref().map(|m| sdp::write(session_id, 2, m.local_addr(), n.codec, n.dtmf_pt, n.direction));
                            reply.ok(ours).await;
                        }
                        _ => reply.reject(488).await,
                    }
                }
                Some(LegEvent::Refer { reply, .. }) => reply.reject(403).await,
                Some(LegEvent::Confirmed { .. }) => {}
                Some(LegEvent::Ended(cause)) => {
                    s.ivr.pending.push_back(IvrEvent::CallerHungUp);
                    s.ending = Some((cause.describe(), cause.side()));
                }
            },
            Some(ev) = media_rx.recv() => match ev {
                MediaEvent::PromptFinished { token } => s.ivr.prompt_finished(token),
                MediaEvent::Digit { digit, method } => s.digit(digit, method),
                MediaEvent::Timeout => {
                    warn!("no RTP from the customer: hanging up");
                    metrics::counter!("hotline_media_timeouts_total").increment(1);
                    s.hangup().await;
                    s.ending = Some(("media_timeout".into(), "hotline"));
                }
                MediaEvent::RemoteLearned { addr } => debug!(%addr, "RTP source learned"),
                MediaEvent::RecordingFailed { .. } => {}
            },
            _ = tokio::time::sleep_until(guard) => {
                match (answered_ms, cancelled_at) {
                    (None, None) => {
                        info!("no answer within the ring timeout: CANCEL");
                        cancelled_at = Some(Instant::now());
                        if let Some(leg) = &s.leg {
                            leg.cancel().await;
                        }
                    }
                    (None, Some(_)) => {
                        result.status = Some(487);
                        s.ending = Some(("no_answer".into(), "hotline"));
                    }
                    (Some(_), _) => {
                        warn!("survey ran past max_call_secs: hanging up");
                        s.hangup().await;
                        s.ending = Some(("max_call_time".into(), "hotline"));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                s.ivr.fire_due(Instant::now());
            }
        }
        s.run_ivr().await;
    }
    let (cause, side) = s
        .ending
        .take()
        .unwrap_or_else(|| ("unknown".into(), "network"));
    if let Some(i) = &s.ivr.interp {
        result.vars = i.vars().clone();
    }
    let path: Vec<String> = s
        .ivr
        .interp
        .as_ref()
        .map(|i| i.path_steps().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    s.media = None;
    result.ended_at = deps.clock.now_ms();
    finish(&deps, &job, &result, answered_ms, &cause, side, &path);
    result
}

/// The call record's end (batched writer: the outcome itself is persisted
/// by the dialer in its own transaction).
fn finish(
    deps: &OutboundDeps,
    job: &CallJob,
    r: &CallResult,
    answered_ms: Option<u64>,
    cause: &str,
    side: &str,
    path: &[String],
) {
    info!(cause, side, answered = r.answered, status = ?r.status, path = %path.join(">"), "survey call ended");
    deps.events.publish(crate::events::Event::CallEnded {
        call_id: job.call_id.clone(),
        cause: cause.to_string(),
    });
    let talk_ms = answered_ms.map_or(0, |a| r.ended_at.saturating_sub(a));
    let _ = deps
        .writer
        .try_send(WriteOp::CallCompletion(CallCompletion {
            id: job.call_id.clone(),
            customer_id: Some(job.customer_id.clone()),
            work_order: job.work_order.clone(),
            queue: None,
            agent_id: None,
            answered_at: answered_ms.map(|a| a as i64),
            ended_at: r.ended_at as i64,
            wait_ms: 0,
            talk_ms: talk_ms as i64,
            hold_ms: 0,
            ivr_path: path.to_vec(),
            hangup_cause: cause.to_string(),
            hangup_side: side.to_string(),
            disposition: "callback_survey".to_string(),
            notes: String::new(),
            recording: None,
            transfer_chain: Vec::new(),
        }));
}

impl Survey {
    fn with_media(&self, f: impl FnOnce(&MediaSession)) {
        if let Some(m) = &self.media {
            f(m);
        }
    }

    async fn hangup(&mut self) {
        if let Some(leg) = &self.leg {
            leg.hangup().await;
        }
    }

    fn digit(&mut self, digit: char, method: DtmfMethod) {
        info!(%digit, method = method.name(), "DTMF");
        metrics::counter!("hotline_dtmf_total", "method" => method.name()).increment(1);
        self.ivr.pending.push_back(IvrEvent::Digit(digit));
    }

    async fn run_ivr(&mut self) {
        let mut actions = Vec::new();
        loop {
            let now = super::utc(self.deps.clock.now_ms());
            if !self.ivr.step(now, &mut actions) {
                break;
            }
            for action in actions.drain(..) {
                let media = self.media.as_ref();
                if let Some(rest) = self
                    .ivr
                    .perform(action, now, &self.deps.routing.prompts, media)
                {
                    self.act(rest).await;
                }
            }
        }
    }

    async fn act(&mut self, action: IvrAction) {
        match action {
            // Prompts and timers are the driver's (IvrDriver::perform).
            IvrAction::Play { .. }
            | IvrAction::StopPrompt { .. }
            | IvrAction::StartTimer { .. }
            | IvrAction::CancelTimer { .. } => {}
            // The dialer knows whom it called; a survey plan has no use for
            // the look-up, queues or callback promises.
            IvrAction::LookupCustomer { .. } => {
                self.ivr.pending.push_back(IvrEvent::CustomerLookedUp(None))
            }
            IvrAction::Enqueue { .. } | IvrAction::RequestCallback { .. } => {
                warn!("the survey dialplan tried to queue or promise a callback: ending the call");
                self.hangup().await;
                self.ending = Some(("dialplan_error".into(), "hotline"));
            }
            IvrAction::Hangup { reason } => {
                let cause = match reason {
                    HangupReason::Completed => "survey_completed".to_string(),
                    HangupReason::DialplanError(e) => {
                        warn!(error = %e, "dialplan error");
                        "dialplan_error".to_string()
                    }
                };
                self.hangup().await;
                self.ending = Some((cause, "hotline"));
            }
        }
    }
}
