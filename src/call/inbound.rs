//! The task that owns one inbound call from INVITE to BYE.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

use super::acd::QueueMsg;
use super::agent::{
    AgentEvent, AgentOutcome, QueueOutcome, Service, ANNOUNCEMENT, CALLBACK_OFFER,
    CALLBACK_PROMISE, HOLD_MUSIC,
};
use super::ivr_driver::IvrDriver;
use super::{negotiate, params, CallDeps, Routing};
use crate::ivr::{CustomerSummary, HangupReason, IvrAction, IvrEvent};
use crate::media::engine::{DtmfMethod, MediaEvent, MediaSession};
use crate::sip::leg::{InboundCall, Leg, LegEvent};
use crate::sip::sdp;
use crate::store::{CallArrival, CallCompletion, Direction, WriteOp};

/// Results of work the call started elsewhere (store look-ups and writes).
enum Internal {
    Customer(Option<CustomerSummary>),
    CallbackRecorded,
}

/// How the call ended, for the record.
struct Ending {
    cause: String,
    side: &'static str,
}

pub(super) async fn run(call: InboundCall, deps: Arc<CallDeps>) {
    let span =
        info_span!("call", call_id = %call.call_id, caller = %call.caller, called = %call.called);
    run_inner(call, deps).instrument(span).await
}

/// A record id that is safe in file names and unique across nodes.
fn new_call_id(now_ms: u64) -> String {
    format!("{now_ms:x}-{:08x}", rand::random::<u32>())
}

async fn run_inner(call: InboundCall, deps: Arc<CallDeps>) {
    let InboundCall {
        call_id: _,
        caller,
        called,
        offer,
        source: _,
        leg,
        mut events,
    } = call;
    let routing: Arc<Routing> = deps.routing.borrow().clone();
    let Some(plan) = routing.dialplans.for_number(&called).cloned() else {
        info!("no hotline at this number: 404");
        leg.reject(404, Some("no hotline at this number"));
        return;
    };
    let arrived_ms = deps.clock.now_ms();
    let id = new_call_id(arrived_ms);
    info!(record = %id, dialplan = %plan.name, "inbound call");
    deps.events.publish(crate::events::Event::CallArrived {
        call_id: id.clone(),
        caller: caller.clone(),
        called: called.clone(),
        customer_id: None,
    });
    let _ = deps.writer.try_send(WriteOp::CallArrival(CallArrival {
        id: id.clone(),
        direction: Direction::In,
        from_number: caller.clone(),
        to_number: called.clone(),
        customer_id: None,
        work_order: None,
        task_id: None,
        queue: None,
        arrived_at: arrived_ms as i64,
    }));

    let (queue_tx, mut queue_rx) = mpsc::unbounded_channel::<QueueMsg>();
    let (agent_tx, mut agent_rx) = mpsc::unbounded_channel::<AgentEvent>();
    let service = Service::new(id.clone(), caller.clone(), deps.clone(), queue_tx, agent_tx);
    let mut call = Call {
        service,
        plan: plan.clone(),
        id,
        deps: deps.clone(),
        routing,
        leg,
        answered_ms: None,
        customer: None,
        customer_wanted: false,
        queue: None,
        work_order: None,
        hold_started: None,
        hold_ms: 0,
        ivr: IvrDriver::default(),
        ending: None,
        media: None,
    };

    let mut negotiated = match offer.as_deref().map(negotiate) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            info!(error = %e, "offer not acceptable: 488");
            call.leg.reject(488, Some(&e.to_string()));
            call.finish(Ending {
                cause: "rejected_488".into(),
                side: "hotline",
            });
            return;
        }
    };
    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    let media = match deps.media.open(media_tx) {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "no media port: 503");
            call.leg.reject(503, Some("no media port available"));
            call.finish(Ending {
                cause: "rejected_503".into(),
                side: "hotline",
            });
            return;
        }
    };
    let session_id = u64::from(rand::random::<u32>());
    let mut sdp_version = 1u64;
    let answer = match &negotiated {
        Some(n) => sdp::write(
            session_id,
            sdp_version,
            media.local_addr(),
            n.codec,
            n.dtmf_pt,
            n.direction,
        ),
        None => sdp::write_offer(session_id, sdp_version, media.local_addr()),
    };
    call.media = Some(media);
    if !deps.answer_delay.is_zero() {
        call.leg.ringing();
        tokio::select! {
            ev = events.recv() => {
                // Only the end of the dialog can come before we answer (CANCEL → 487).
                let cause = match ev {
                    Some(LegEvent::Ended(cause)) => cause,
                    _ => crate::sip::leg::EndCause::Other(0),
                };
                info!(cause = %cause.describe(), "caller gave up while ringing");
                call.finish(Ending { cause: cause.describe(), side: cause.side() });
                return;
            }
            _ = tokio::time::sleep(deps.answer_delay) => {}
        }
    }
    if let Err(e) = call.leg.answer(&answer) {
        warn!(error = %e, "could not answer");
        call.finish(Ending {
            cause: "answer_failed".into(),
            side: "hotline",
        });
        return;
    }
    // Media starts with the answer: no RTP while ringing, and the media
    // timeout counts from here.
    if let Some(n) = &negotiated {
        call.with_media(|m| m.configure(params(n)));
    }

    let (internal_tx, mut internal_rx) = mpsc::unbounded_channel::<Internal>();
    // Match the caller to a customer at once: the record wants it, and the
    // IVR's lookup node is then answered without waiting.
    {
        let store = deps.store.clone();
        let tx = internal_tx.clone();
        let number = caller.clone();
        let (now_ms, ownership_ms) = (deps.clock.now_ms(), deps.ownership_ms);
        tokio::spawn(async move {
            let found = tokio::time::timeout(
                Duration::from_secs(2),
                lookup_customer(&store, &number, now_ms, ownership_ms),
            )
            .await
            .unwrap_or(None);
            let _ = tx.send(Internal::Customer(found));
        });
    }

    while call.ending.is_none() {
        let next_timer = call.ivr.next_timer();
        tokio::select! {
            ev = events.recv() => match ev {
                None => call.ending = Some(Ending { cause: "dialog_lost".into(), side: "network" }),
                Some(LegEvent::Confirmed { ack_sdp }) => {
                    if negotiated.is_none() {
                        match ack_sdp.as_deref().map(negotiate) {
                            Some(Ok(n)) => {
                                call.with_media(|m| m.configure(params(&n)));
                                negotiated = Some(n);
                            }
                            _ => {
                                warn!("ACK carried no usable answer: hanging up");
                                call.leg.hangup().await;
                                call.ending = Some(Ending { cause: "no_answer_sdp".into(), side: "hotline" });
                                continue;
                            }
                        }
                    }
                    call.answered_ms = Some(deps.clock.now_ms());
                    call.ivr.start(plan.clone(), IvrEvent::Started { caller: caller.clone(), called: called.clone() });
                }
                Some(LegEvent::Reinvite { sdp: body, reply }) => {
                    match body.as_deref().map(negotiate) {
                        Some(Ok(n)) => {
                            call.with_media(|m| m.configure(params(&n)));
                            call.track_hold(n.remote_on_hold());
                            sdp_version += 1;
                            let ours = call.media_addr().map(|a| sdp::write(session_id, sdp_version, a, n.codec, n.dtmf_pt, n.direction));
                            negotiated = Some(n);
                            reply.ok(ours).await;
                        }
                        Some(Err(e)) => {
                            info!(error = %e, "re-INVITE offer not acceptable: 488");
                            reply.reject(488).await;
                        }
                        None => {
                            // Session refresh without SDP: offer what we have.
                            sdp_version += 1;
                            reply.ok(call.media_addr().map(|a| sdp::write_offer(session_id, sdp_version, a))).await;
                        }
                    }
                }
                Some(LegEvent::Info { content_type, body, reply }) => {
                    match crate::sip::info::dtmf_from_info(&content_type, &body) {
                        Some(d) => {
                            reply.ok(None).await;
                            call.digit(d, DtmfMethod::SipInfo);
                        }
                        None => reply.reject(415).await,
                    }
                }
                // Only outbound legs ring, answer or fail.
                Some(LegEvent::Ringing | LegEvent::Answered { .. } | LegEvent::Failed { .. }) => {}
                // Callers do not transfer themselves.
                Some(LegEvent::Refer { reply, .. }) => reply.reject(403).await,
                Some(LegEvent::Ended(cause)) => {
                    call.service.caller_gone().await;
                    call.ivr.pending.push_back(IvrEvent::CallerHungUp);
                    call.ending = Some(Ending { cause: cause.describe(), side: cause.side() });
                }
            },
            Some(ev) = media_rx.recv() => match ev {
                MediaEvent::PromptFinished { token: HOLD_MUSIC | CALLBACK_OFFER | ANNOUNCEMENT } => {
                    if let Some(m) = &call.media {
                        call.service.prompt_finished(m);
                    }
                }
                MediaEvent::PromptFinished { token: CALLBACK_PROMISE } => {
                    call.leg.hangup().await;
                    call.ending = Some(Ending { cause: "callback_requested".into(), side: "hotline" });
                }
                MediaEvent::PromptFinished { token } => call.ivr.prompt_finished(token),
                MediaEvent::Digit { digit, method } => call.digit(digit, method),
                MediaEvent::Timeout => {
                    warn!("no RTP from the caller: media timeout, hanging up");
                    metrics::counter!("hotline_media_timeouts_total").increment(1);
                    call.service.caller_gone().await;
                    call.leg.hangup().await;
                    call.ending = Some(Ending { cause: "media_timeout".into(), side: "hotline" });
                }
                MediaEvent::RemoteLearned { addr } => debug!(%addr, "RTP source learned"),
                MediaEvent::RecordingFailed { reason } => warn!(%reason, "recording stopped"),
            },
            Some(msg) = queue_rx.recv() => {
                let outcome = match &call.media {
                    Some(m) => call.service.on_queue(msg, m).await,
                    None => QueueOutcome::Continue,
                };
                if let QueueOutcome::HangUp(cause) = outcome {
                    call.service.caller_gone().await;
                    call.leg.hangup().await;
                    call.ending = Some(Ending { cause: cause.into(), side: "hotline" });
                }
            }
            Some(ev) = agent_rx.recv() => {
                let outcome = match &call.media {
                    Some(m) => call.service.on_agent(ev, m).await,
                    None => None,
                };
                if let Some(AgentOutcome::AgentHungUp { cause }) = outcome {
                    call.leg.hangup().await;
                    call.ending = Some(Ending { cause: cause.into(), side: "agent" });
                }
            }
            Some(msg) = internal_rx.recv() => match msg {
                Internal::Customer(found) => {
                    call.service.set_customer(found.as_ref().map(|c| c.id.clone()));
                    call.customer = Some(found.clone());
                    if call.customer_wanted {
                        call.customer_wanted = false;
                        call.ivr.pending.push_back(IvrEvent::CustomerLookedUp(found));
                    }
                }
                Internal::CallbackRecorded => call.ivr.pending.push_back(IvrEvent::CallbackRecorded),
            },
            _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                call.ivr.fire_due(Instant::now());
            }
        }
        call.run_ivr(&internal_tx).await;
    }
    let ending = call.ending.take().unwrap_or(Ending {
        cause: "unknown".into(),
        side: "network",
    });
    call.finish(ending);
}

/// The caller's customer record and who owns their business: the owner of
/// an open case, else of an open callback task, else the agent of their
/// latest call within `ownership_ms` (0: cases only).
async fn lookup_customer(
    store: &crate::store::Store,
    number: &str,
    now_ms: u64,
    ownership_ms: u64,
) -> Option<CustomerSummary> {
    let customer = store.find_by_phone(number).await.ok().flatten()?;
    let case = store
        .list_open_cases_for_customer(&customer.id)
        .await
        .ok()
        .and_then(|cases| cases.into_iter().next());
    let mut owner = case.as_ref().and_then(|c| c.owner.clone());
    if owner.is_none() && ownership_ms > 0 {
        let since = now_ms.saturating_sub(ownership_ms) as i64;
        owner = store.recent_owner(&customer.id, since).await.ok().flatten();
    }
    Some(CustomerSummary {
        id: customer.id,
        name: customer.name,
        region: (!customer.region.is_empty()).then_some(customer.region),
        open_case: case.as_ref().map(|c| c.id.clone()),
        owner_agent: owner,
    })
}

struct Call {
    service: Service,
    plan: Arc<crate::ivr::Dialplan>,
    id: String,
    deps: Arc<CallDeps>,
    routing: Arc<Routing>,
    leg: Leg,
    answered_ms: Option<u64>,
    /// None: look-up still running; Some(None): no such customer.
    customer: Option<Option<CustomerSummary>>,
    /// The IVR asked for the customer before the look-up finished.
    customer_wanted: bool,
    queue: Option<String>,
    work_order: Option<String>,
    hold_started: Option<u64>,
    hold_ms: u64,
    ivr: IvrDriver,
    ending: Option<Ending>,
    media: Option<MediaSession>,
}

impl Call {
    /// Steer the media session (absent only before it is opened or after the end).
    fn with_media(&self, f: impl FnOnce(&MediaSession)) {
        if let Some(m) = &self.media {
            f(m);
        }
    }

    fn media_addr(&self) -> Option<std::net::SocketAddr> {
        self.media.as_ref().map(MediaSession::local_addr)
    }

    fn digit(&mut self, digit: char, method: DtmfMethod) {
        info!(%digit, method = method.name(), "DTMF");
        metrics::counter!("hotline_dtmf_total", "method" => method.name()).increment(1);
        if !self.service.on_digit(digit) {
            self.ivr.pending.push_back(IvrEvent::Digit(digit));
        }
    }

    fn track_hold(&mut self, held: bool) {
        let now = self.deps.clock.now_ms();
        match (held, self.hold_started) {
            (true, None) => self.hold_started = Some(now),
            (false, Some(t)) => {
                self.hold_ms += now.saturating_sub(t);
                self.hold_started = None;
            }
            _ => {}
        }
    }

    /// Feed pending events to the interpreter and carry out its actions.
    async fn run_ivr(&mut self, internal: &mpsc::UnboundedSender<Internal>) {
        let mut actions = Vec::new();
        loop {
            let now = super::utc(self.deps.clock.now_ms());
            if !self.ivr.step(now, &mut actions) {
                break;
            }
            for action in actions.drain(..) {
                let media = self.media.as_ref();
                if let Some(rest) = self.ivr.perform(action, now, &self.routing.prompts, media) {
                    self.act(rest, now, internal).await;
                }
            }
        }
    }

    async fn act(
        &mut self,
        action: IvrAction,
        now: DateTime<Utc>,
        internal: &mpsc::UnboundedSender<Internal>,
    ) {
        match action {
            IvrAction::LookupCustomer { number: _ } => match &self.customer {
                Some(found) => self
                    .ivr
                    .pending
                    .push_back(IvrEvent::CustomerLookedUp(found.clone())),
                None => self.customer_wanted = true,
            },
            IvrAction::Enqueue {
                queue,
                skill,
                priority,
                preferred_agent,
                vars,
                path,
            } => {
                info!(%queue, ?skill, priority, ?preferred_agent, %path, "caller queued");
                self.work_order = vars.get("work_order").filter(|w| !w.is_empty()).cloned();
                self.service
                    .enqueue(&queue, skill, priority, preferred_agent);
                self.queue = Some(queue);
            }
            IvrAction::RequestCallback {
                number,
                due_at,
                vars: _,
                path,
            } => {
                info!(%number, due_at = %due_at, %path, "callback promised");
                let store = self.deps.store.clone();
                let tx = internal.clone();
                let task = crate::store::CallbackRequest {
                    id: format!("cb-{}", self.id),
                    customer_id: self.customer.clone().flatten().map(|c| c.id),
                    phone: number,
                    due_at: due_at.timestamp_millis(),
                    source_call: self.id.clone(),
                    created_at: now.timestamp_millis(),
                };
                tokio::spawn(async move {
                    // The promise is only made once the task is stored (or clearly failed).
                    if let Err(e) = store.insert_callback_request(&task).await {
                        warn!(error = %e, "could not store the callback request");
                    }
                    let _ = tx.send(Internal::CallbackRecorded);
                });
            }
            IvrAction::Hangup { reason } => {
                let cause = match reason {
                    HangupReason::Completed => "ivr_completed".to_string(),
                    HangupReason::DialplanError(e) => {
                        warn!(error = %e, "dialplan error");
                        "dialplan_error".to_string()
                    }
                };
                self.leg.hangup().await;
                self.ending = Some(Ending {
                    cause,
                    side: "hotline",
                });
            }
            // Prompts and timers are the driver's (IvrDriver::perform).
            IvrAction::Play { .. }
            | IvrAction::StopPrompt { .. }
            | IvrAction::StartTimer { .. }
            | IvrAction::CancelTimer { .. } => {}
        }
    }

    /// Complete the call record; dropping the media session closes its ports.
    fn finish(&mut self, ending: Ending) {
        let now = self.deps.clock.now_ms();
        if let Some(t) = self.hold_started.take() {
            self.hold_ms += now.saturating_sub(t);
        }
        self.media = None;
        let path: Vec<String> = self
            .ivr
            .interp
            .as_ref()
            .map(|i| i.path_steps().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        // A caller who hangs up during the queue's prompt was bound for that
        // queue, and any work order they keyed in belongs on the record.
        if let Some(interp) = &self.ivr.interp {
            if self.work_order.is_none() {
                self.work_order = interp
                    .vars()
                    .get("work_order")
                    .filter(|w| !w.is_empty())
                    .cloned();
            }
            if self.queue.is_none() {
                self.queue = interp
                    .current_node()
                    .and_then(|n| self.plan.node(n))
                    .and_then(|node| match &node.kind {
                        crate::ivr::NodeKind::Queue(q) => Some(q.queue.clone()),
                        _ => None,
                    });
            }
        }
        // With an agent: the time connected to them; otherwise the time in the IVR.
        let talk_ms = self
            .service
            .talk_ms(now)
            .or_else(|| self.answered_ms.map(|a| now.saturating_sub(a)))
            .unwrap_or(0);
        info!(record = %self.id, cause = %ending.cause, side = ending.side, path = %path.join(">"), "call ended");
        self.deps.events.publish(crate::events::Event::CallEnded {
            call_id: self.id.clone(),
            cause: ending.cause.clone(),
        });
        let _ = self
            .deps
            .writer
            .try_send(WriteOp::CallCompletion(CallCompletion {
                id: self.id.clone(),
                customer_id: self.customer.clone().flatten().map(|c| c.id),
                work_order: self.work_order.clone(),
                queue: self
                    .service
                    .queue()
                    .map(str::to_string)
                    .or_else(|| self.queue.clone()),
                agent_id: self.service.agent_id.clone(),
                answered_at: self.answered_ms.map(|a| a as i64),
                ended_at: now as i64,
                wait_ms: self.service.wait_ms as i64,
                talk_ms: talk_ms as i64,
                hold_ms: (self.hold_ms + self.service.hold_ms(now)) as i64,
                ivr_path: path,
                hangup_cause: ending.cause,
                hangup_side: ending.side.to_string(),
                disposition: String::new(),
                notes: String::new(),
                recording: self.service.recording.clone(),
                transfer_chain: self.service.transfers.clone(),
            }));
    }
}
