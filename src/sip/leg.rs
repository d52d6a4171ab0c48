//! A call leg as the rest of hotline sees it: answer, reject, hang up, and a
//! stream of [`LegEvent`]s. It hides the stack's dialog types; the call logic
//! never touches SIP messages.

use std::sync::Arc;

use rsipstack::dialog::dialog::{DialogState, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Request, StatusCode};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info};

/// Why a leg ended, from the point of view of the call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The remote side sent BYE.
    RemoteBye,
    /// We sent BYE.
    LocalBye,
    /// The caller cancelled before answer (CANCEL → 487).
    Cancelled,
    /// We rejected the INVITE with this status.
    Rejected(u16),
    /// No ACK for our 200, or a transaction timed out.
    Timeout,
    /// Anything else, with the status that ended it.
    Other(u16),
    /// The far end's connection closed under the call (a browser page
    /// crashed or was closed): there is no one left to send BYE to.
    Gone,
}

impl EndCause {
    /// Which side ended the call: "caller", "hotline" or "network".
    pub fn side(&self) -> &'static str {
        match self {
            EndCause::RemoteBye | EndCause::Cancelled => "caller",
            EndCause::LocalBye | EndCause::Rejected(_) => "hotline",
            EndCause::Timeout | EndCause::Other(_) | EndCause::Gone => "network",
        }
    }

    /// A short cause for logs and call records.
    pub fn describe(&self) -> String {
        match self {
            EndCause::RemoteBye => "remote_bye".into(),
            EndCause::LocalBye => "local_bye".into(),
            EndCause::Cancelled => "cancelled".into(),
            EndCause::Rejected(c) => format!("rejected_{c}"),
            EndCause::Timeout => "timeout".into(),
            EndCause::Other(c) => format!("status_{c}"),
            EndCause::Gone => "connection_closed".into(),
        }
    }
}

/// Answers an in-dialog request (re-INVITE, INFO) exactly once.
pub struct Responder(TransactionHandle);

impl Responder {
    /// 200 OK, with an SDP body when given.
    pub async fn ok(self, sdp: Option<String>) {
        let headers = sdp
            .is_some()
            .then(|| vec![Header::ContentType("application/sdp".into())]);
        let _ = self
            .0
            .respond(StatusCode::OK, headers, sdp.map(String::into_bytes))
            .await;
    }

    /// 202 Accepted (REFER).
    pub async fn accepted(self) {
        let _ = self.0.respond(StatusCode::Accepted, None, None).await;
    }

    /// A final error response (e.g. 488 for an unusable re-INVITE offer).
    pub async fn reject(self, status: u16) {
        let _ = self.0.respond(StatusCode::from(status), None, None).await;
    }
}

pub enum LegEvent {
    /// The ACK for our 200 arrived; it carries the answer when the INVITE had no offer.
    Confirmed { ack_sdp: Option<String> },
    /// Outbound: the far end is ringing (180/183).
    Ringing,
    /// Outbound: the far end answered (200, ACK sent); its SDP answer.
    Answered { sdp: Option<String> },
    /// Outbound: a final non-2xx response (or a timeout as 408).
    Failed { status: u16 },
    /// A re-INVITE (hold, resume, session refresh) waiting for our answer.
    Reinvite {
        sdp: Option<String>,
        reply: Responder,
    },
    /// An INFO request (DTMF relay) waiting for our answer.
    Info {
        content_type: String,
        body: String,
        reply: Responder,
    },
    /// A REFER (blind transfer) from the far end: answer 202 or refuse.
    Refer { refer_to: String, reply: Responder },
    /// The dialog is over.
    Ended(EndCause),
}

/// A new inbound call, handed by the SIP dispatcher to the call manager.
pub struct InboundCall {
    pub call_id: String,
    /// The caller's number (user part of P-Asserted-Identity or From).
    pub caller: String,
    /// The dialled number (user part of the Request-URI).
    pub called: String,
    /// SDP offer in the INVITE, if any.
    pub offer: Option<String>,
    /// Where the INVITE came from (Via received/rport).
    pub source: Option<std::net::SocketAddr>,
    pub leg: Leg,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

/// Our side of one INVITE dialog.
#[derive(Clone)]
pub struct Leg {
    dialog: InviteDialog,
}

impl Leg {
    /// 180 Ringing.
    pub fn ringing(&self) {
        let _ = self.dialog.ringing(None, None);
    }

    /// 200 OK with our SDP.
    pub fn answer(&self, sdp: &str) -> Result<(), String> {
        self.dialog
            .accept(
                Some(vec![Header::ContentType("application/sdp".into())]),
                Some(sdp.as_bytes().to_vec()),
            )
            .map_err(|e| e.to_string())
    }

    /// A final non-2xx response to the INVITE; `warning` explains it (RFC 3261 §20.43).
    pub fn reject(&self, status: u16, warning: Option<&str>) {
        let _ = self
            .dialog
            .reject(Some(StatusCode::from(status)), warning.map(str::to_string));
    }

    /// BYE (after answer).
    pub async fn hangup(&self) {
        if let Err(e) = self.dialog.bye().await {
            debug!(error = %e, "BYE failed");
        }
    }

    /// RFC 3515: the transfer this phone asked for (REFER) is done: a NOTIFY
    /// with a `200 OK` sipfrag that ends the implicit subscription.
    pub async fn notify_transfer_done(&self) {
        self.notify_transfer(200).await;
    }

    /// RFC 3515: how the transfer this phone asked for ended, as the final
    /// status of the new leg in a sipfrag (`200 OK`, or why it failed); the
    /// implicit subscription ends with it.
    pub async fn notify_transfer(&self, status: u16) {
        let code = StatusCode::from(status);
        let reason = code.text();
        let headers = vec![
            Header::Event("refer".into()),
            Header::SubscriptionState("terminated;reason=noresource".into()),
            Header::ContentType("message/sipfrag;version=2.0".into()),
        ];
        let frag = format!("SIP/2.0 {status} {reason}\r\n").into_bytes();
        if let Err(e) = self.dialog.notify(Some(headers), Some(frag)).await {
            debug!(error = %e, "NOTIFY failed");
        }
    }

    /// Outbound, before answer: CANCEL (a 200 that crosses it is ended with BYE by the stack).
    pub async fn cancel(&self) {
        if let Err(e) = self.dialog.cancel().await {
            debug!(error = %e, "CANCEL failed");
        }
    }
}

/// Whether a binding's or call's transport is a WebSocket (a browser
/// softphone), which is reached on its open connection, never dialled.
pub fn is_websocket(transport: &str) -> bool {
    transport.eq_ignore_ascii_case("WS") || transport.eq_ignore_ascii_case("WSS")
}

/// What to send when we call someone (an agent's phone, a customer via a trunk).
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// Request-URI: the registered Contact, or `sip:NUMBER@trunk`.
    pub target: String,
    /// Where to send it: the address the phone registered from.
    pub destination: std::net::SocketAddr,
    /// "UDP", "TCP", or "WS"/"WSS" for a browser softphone's connection.
    pub transport: String,
    /// The number shown to the callee (the customer's number, for screen pop).
    pub from_user: String,
    pub from_display: Option<String>,
    pub sdp: String,
    /// Extra headers, e.g. the call and customer ids for the agent's screen pop.
    pub headers: Vec<(String, String)>,
}

/// Place an outbound INVITE; its progress arrives as [`LegEvent`]s.
/// `closed_flows` (for a WebSocket destination): addresses of WebSocket
/// connections as they close. When the leg's own closes under an answered
/// call (a browser page crashed or was closed) the call gets
/// `Ended(EndCause::Gone)` at once, not when a BYE that cannot arrive times
/// out (32 s); the BYE is still tried, to end the dialog.
pub(crate) fn outbound(
    layer: Arc<DialogLayer>,
    contact: rsipstack::sip::Uri,
    domain: &str,
    call: OutboundCall,
    closed_flows: Option<broadcast::Receiver<std::net::SocketAddr>>,
) -> Result<(Leg, mpsc::UnboundedReceiver<LegEvent>), String> {
    let flow = call.destination;
    use rsipstack::dialog::invitation::InviteOption;
    use rsipstack::transport::SipAddr;
    let callee = rsipstack::sip::Uri::try_from(call.target.as_str())
        .map_err(|e| format!("bad target {}: {e}", call.target))?;
    let caller =
        rsipstack::sip::Uri::try_from(format!("sip:{}@{}", call.from_user, domain).as_str())
            .map_err(|e| format!("bad caller {}: {e}", call.from_user))?;
    use rsipstack::sip::transport::Transport;
    // A WS/WSS destination names a browser's WebSocket connection (the
    // transport layer finds it by this address); there is nothing to dial.
    let transport = match call.transport.to_ascii_uppercase().as_str() {
        "TCP" => Transport::Tcp,
        "WS" => Transport::Ws,
        "WSS" => Transport::Wss,
        _ => Transport::Udp,
    };
    let mut destination = SipAddr::from(call.destination);
    destination.r#type = Some(transport);
    let option = InviteOption {
        caller_display_name: call.from_display.clone(),
        caller_params: vec![],
        caller,
        callee,
        destination: Some(destination),
        content_type: Some("application/sdp".to_string()),
        offer: Some(call.sdp.into_bytes()),
        contact,
        credential: None,
        headers: Some(
            call.headers
                .into_iter()
                .map(|(k, v)| Header::Other(k, v))
                .collect(),
        ),
        support_prack: false,
        call_id: None,
        session_id: None,
        route_set: vec![],
    };
    let (state_tx, mut states) = mpsc::unbounded_channel();
    let (dialog, result) = layer
        .do_invite_async(option, state_tx)
        .map_err(|e| format!("INVITE failed: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let events = tx.clone();
    // The final response decides failure; the state stream carries the rest.
    tokio::spawn(async move {
        let status = match result.await {
            Ok(Ok((_, Some(resp)))) => u16::from(resp.status_code),
            Ok(Ok((_, None))) => 408,
            Ok(Err(e)) => {
                debug!(error = %e, "outbound INVITE ended without response");
                408
            }
            Err(_) => 500,
        };
        if !(200..300).contains(&status) {
            let _ = events.send(LegEvent::Failed { status });
        }
    });
    let d = dialog.clone();
    let mut closed_flows = closed_flows;
    tokio::spawn(async move {
        let mut ringing = false;
        let mut answered = false;
        // Once the flow is gone the call has had its Ended; the dialog is
        // still followed until it terminates, to be removed from the layer.
        let mut ended = false;
        loop {
            let state = tokio::select! {
                state = states.recv() => match state {
                    Some(state) => state,
                    None => break,
                },
                _ = flow_closed(&mut closed_flows, flow), if answered && !ended => {
                    info!(%flow, "the WebSocket under the call closed; the far end is gone");
                    ended = true;
                    let _ = tx.send(LegEvent::Ended(EndCause::Gone));
                    let bye = d.clone();
                    tokio::spawn(async move {
                        if let Err(e) = bye.bye().await {
                            debug!(error = %e, "BYE failed");
                        }
                    });
                    continue;
                }
            };
            if ended {
                if let DialogState::Terminated(id, _) = state {
                    layer.remove_dialog(&id);
                    break;
                }
                continue;
            }
            let event = match state {
                DialogState::Early(..) if !ringing => {
                    ringing = true;
                    Some(LegEvent::Ringing)
                }
                DialogState::Confirmed(_, resp) if !answered => {
                    answered = true;
                    let sdp = (!resp.body.is_empty())
                        .then(|| String::from_utf8_lossy(&resp.body).into_owned());
                    Some(LegEvent::Answered { sdp })
                }
                DialogState::Updated(_, req, handle) => Some(LegEvent::Reinvite {
                    sdp: body_text(&req),
                    reply: Responder(handle),
                }),
                DialogState::Info(_, req, handle) => {
                    let content_type = req
                        .headers
                        .iter()
                        .find(|h| h.name().eq_ignore_ascii_case("Content-Type"))
                        .map(|h| h.value().to_ascii_lowercase())
                        .unwrap_or_default();
                    Some(LegEvent::Info {
                        content_type,
                        body: body_text(&req).unwrap_or_default(),
                        reply: Responder(handle),
                    })
                }
                DialogState::Options(_, _, handle) => {
                    let _ = handle.reply(StatusCode::OK).await;
                    None
                }
                DialogState::Refer(_, req, handle) => {
                    let refer_to = req
                        .headers
                        .iter()
                        .find(|h| {
                            h.name().eq_ignore_ascii_case("Refer-To")
                                || h.name().eq_ignore_ascii_case("r")
                        })
                        .map(|h| h.value().to_string())
                        .unwrap_or_default();
                    Some(LegEvent::Refer {
                        refer_to,
                        reply: Responder(handle),
                    })
                }
                DialogState::Terminated(id, reason) => {
                    layer.remove_dialog(&id);
                    if answered {
                        let cause = match reason {
                            TerminatedReason::UasBye => EndCause::RemoteBye,
                            TerminatedReason::UacBye => EndCause::LocalBye,
                            TerminatedReason::Timeout => EndCause::Timeout,
                            _ => EndCause::Other(0),
                        };
                        let _ = tx.send(LegEvent::Ended(cause));
                    }
                    // Before answer, the final response (above) reports the failure.
                    break;
                }
                _ => None,
            };
            if let Some(e) = event {
                if tx.send(e).is_err() {
                    break;
                }
            }
        }
        drop(d);
    });
    Ok((Leg { dialog }, rx))
}

/// Resolves when the connection at `flow` closes; never without a receiver.
async fn flow_closed(
    closed: &mut Option<broadcast::Receiver<std::net::SocketAddr>>,
    flow: std::net::SocketAddr,
) {
    loop {
        let Some(rx) = closed.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(addr) if addr == flow => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            // The SIP server stopped: nothing will tell any more.
            Err(broadcast::error::RecvError::Closed) => *closed = None,
        }
    }
}

fn body_text(req: &Request) -> Option<String> {
    (!req.body.is_empty()).then(|| String::from_utf8_lossy(&req.body).into_owned())
}

/// What the dispatcher read from a new INVITE.
pub(crate) struct InviteFacts {
    pub call_id: String,
    pub caller: String,
    pub called: String,
    pub offer: Option<String>,
    pub source: Option<std::net::SocketAddr>,
}

/// Build an [`InboundCall`] from a new server dialog and translate its state
/// changes into [`LegEvent`]s until it ends (then forget the dialog).
pub(crate) fn inbound(
    dialog: InviteDialog,
    mut states: mpsc::UnboundedReceiver<DialogState>,
    layer: Arc<DialogLayer>,
    facts: InviteFacts,
) -> InboundCall {
    let InviteFacts {
        call_id,
        caller,
        called,
        offer,
        source,
    } = facts;
    let (tx, rx) = mpsc::unbounded_channel();
    let d = dialog.clone();
    tokio::spawn(async move {
        // The stack reports Confirmed again after every in-dialog request
        // (INFO, re-INVITE); only the first one is the ACK.
        let mut confirmed = false;
        while let Some(state) = states.recv().await {
            let event = match state {
                DialogState::Confirmed(..) if confirmed => None,
                DialogState::Confirmed(..) => {
                    confirmed = true;
                    let ack_sdp = d.last_remote_ack().as_ref().and_then(body_text);
                    Some(LegEvent::Confirmed { ack_sdp })
                }
                DialogState::Updated(_, req, handle) => Some(LegEvent::Reinvite {
                    sdp: body_text(&req),
                    reply: Responder(handle),
                }),
                DialogState::Info(_, req, handle) => {
                    let content_type = req
                        .headers
                        .iter()
                        .find(|h| h.name().eq_ignore_ascii_case("Content-Type"))
                        .map(|h| h.value().to_ascii_lowercase())
                        .unwrap_or_default();
                    Some(LegEvent::Info {
                        content_type,
                        body: body_text(&req).unwrap_or_default(),
                        reply: Responder(handle),
                    })
                }
                DialogState::Options(_, _, handle) => {
                    let _ = handle.reply(StatusCode::OK).await;
                    None
                }
                DialogState::Notify(_, _, handle)
                | DialogState::Message(_, _, handle)
                | DialogState::Publish(_, _, handle)
                | DialogState::Refer(_, _, handle) => {
                    let _ = handle.reply(StatusCode::NotImplemented).await;
                    None
                }
                DialogState::Terminated(id, reason) => {
                    layer.remove_dialog(&id);
                    let cause = match reason {
                        TerminatedReason::UacBye => EndCause::RemoteBye,
                        TerminatedReason::UasBye => EndCause::LocalBye,
                        TerminatedReason::UacCancel => EndCause::Cancelled,
                        TerminatedReason::UasDecline => EndCause::Rejected(603),
                        TerminatedReason::UasBusy => EndCause::Rejected(486),
                        TerminatedReason::Timeout => EndCause::Timeout,
                        TerminatedReason::UasOther(c) | TerminatedReason::UacOther(c) => {
                            EndCause::Other(u16::from(c))
                        }
                        TerminatedReason::ProxyError(c) => EndCause::Other(u16::from(c)),
                        TerminatedReason::UacBusy => EndCause::Other(486),
                        TerminatedReason::ProxyAuthRequired => EndCause::Other(407),
                    };
                    let _ = tx.send(LegEvent::Ended(cause));
                    break;
                }
                _ => None,
            };
            if let Some(e) = event {
                if tx.send(e).is_err() {
                    break;
                }
            }
        }
    });
    InboundCall {
        call_id,
        caller,
        called,
        offer,
        source,
        leg: Leg { dialog },
        events: rx,
    }
}
