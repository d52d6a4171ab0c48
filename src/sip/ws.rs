//! SIP over WebSocket (RFC 7118) on hotline's own HTTP listener: how browser
//! softphones (the agent desk) register and are called.
//!
//! rsipstack 0.7.14 has a WebSocket transport, but only one that binds its
//! own TCP port (`WebSocketListenerConnection::serve_listener`) or dials out
//! (`WebSocketConnection::connect`), behind its `websocket` feature. hotline
//! wants `/sip` on the axum listener that already serves the agent desk, so
//! the same origin, TLS certificate and port carry the page, the REST API and
//! SIP. rsipstack supports this through its in-memory
//! [`ChannelConnection`]: a connection whose inbound side is a channel we
//! fill and whose outbound side is a channel we drain. This module is that
//! bridge:
//!
//! ```text
//! browser ──WS text frame──► bridge ── TransportEvent::Incoming ──► transport layer ─► transactions
//! browser ◄─WS text frame── bridge ◄── ChannelConnection::send ◄── transactions/dialogs
//! ```
//!
//! The connection is registered with `TransportLayer::add_connection`, which
//! caches it under the browser's address (transport WS) and starts its serve
//! loop; responses go back on the connection the request came on, and new
//! requests to the browser (INVITE to an agent) find it when their
//! destination is that same [`SipAddr`] (see `DESIGN.md`). When the socket
//! closes, the bridge drops the inbound channel: the serve loop ends and the
//! layer retires the connection and reports `TransportEvent::Closed`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rsipstack::sip::transport::Transport;
use rsipstack::sip::SipMessage;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Verdict};

/// The WebSocket subprotocol of RFC 7118 §4.
pub const SUBPROTOCOL: &str = "sip";

/// Largest SIP message accepted in one frame. SDP from a browser is a few
/// kB; this bounds what one client can make us buffer.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Messages queued from the stack towards one browser before the stack's
/// send waits (bounded: a browser that stops reading cannot grow memory).
const OUTBOUND_QUEUE: usize = 64;

/// State of the `/sip` route.
#[derive(Clone)]
pub struct SipWs {
    endpoint: Arc<EndpointInner>,
    /// Told the browser's address when its socket closes: its registrations
    /// die with the flow (RFC 5626 style), nothing can reach it any more.
    on_close: Arc<dyn Fn(SocketAddr) + Send + Sync>,
    /// Wss when the HTTP listener has TLS: it goes into the connection's
    /// address, so Via `received`/flow matching name the right transport.
    transport: Transport,
    /// Ping period; a socket silent for [`SILENT_PERIODS`] of them is dead.
    keepalive: Option<Duration>,
    cancel: CancellationToken,
}

/// Periods without any frame (a pong included) after which a socket is
/// taken for dead: a browser answers every ping at once, so three missed
/// periods mean its machine or network is gone, even though TCP has not
/// noticed.
const SILENT_PERIODS: u32 = 3;

impl SipWs {
    /// A bridge into `endpoint`'s transport layer (plain `ws:` until
    /// [`secure`](Self::secure)).
    pub(crate) fn new(
        endpoint: Arc<EndpointInner>,
        keepalive: Option<Duration>,
        cancel: CancellationToken,
        on_close: Arc<dyn Fn(SocketAddr) + Send + Sync>,
    ) -> Self {
        Self {
            endpoint,
            on_close,
            transport: Transport::Ws,
            keepalive,
            cancel,
        }
    }

    /// Served over HTTPS: connections are `wss:` (in Via matching and the
    /// bindings' transport).
    pub fn secure(mut self, secure: bool) -> Self {
        self.transport = if secure {
            Transport::Wss
        } else {
            Transport::Ws
        };
        self
    }
}

/// `GET /sip`: upgrades to WebSocket with subprotocol `sip`, or answers 426
/// when the client did not ask for it (RFC 7118 §4: the subprotocol is
/// mandatory, and without it the peer is not a SIP client).
///
/// The router must be served with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub async fn upgrade(
    State(state): State<SipWs>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = ws.protocols([SUBPROTOCOL]).max_message_size(MAX_MESSAGE);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket subprotocol \"sip\" required",
        )
            .into_response();
    }
    ws.on_upgrade(move |socket| async move { bridge(socket, peer, state).await })
}

/// Runs one browser's SIP connection until either side closes.
async fn bridge(mut socket: WebSocket, peer: SocketAddr, state: SipWs) {
    let addr = SipAddr {
        r#type: Some(state.transport),
        addr: peer.into(),
    };
    let (to_stack, from_browser) = mpsc::unbounded_channel::<TransportEvent>();
    let (to_browser_tx, mut to_browser) = mpsc::channel::<TransportEvent>(OUTBOUND_QUEUE);
    let conn_cancel = state.cancel.child_token();
    let conn = match ChannelConnection::create_connection_bounded(
        from_browser,
        to_browser_tx,
        addr.clone(),
        Some(conn_cancel.clone()),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, %peer, "SIP over WebSocket: no channel connection");
            return;
        }
    };
    let sip_conn = SipConnection::Channel(conn);
    let layer = &state.endpoint.transport_layer;
    layer.add_connection(sip_conn.clone());
    tracing::debug!(%peer, "SIP over WebSocket connected");

    let mut ping = state.keepalive.map(|period| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut last_heard = tokio::time::Instant::now();

    loop {
        tokio::select! {
            _ = conn_cancel.cancelled() => break,
            period = ping_due(&mut ping) => {
                if last_heard.elapsed() >= period * SILENT_PERIODS {
                    tracing::info!(%peer, silent_s = last_heard.elapsed().as_secs(), "SIP over WebSocket: no answer to pings; closing");
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            frame = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    // RFC 7118 allows binary frames with UTF-8 SIP in them.
                    Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                        Ok(t) => t,
                        Err(_) => continue,
                    },
                    // axum answers pings itself.
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                };
                // The same wire checks as a UDP datagram: malformed requests
                // get their stateless 4xx/5xx before the stack's lenient parser.
                match wire::inspect_datagram(text.as_bytes()) {
                    Verdict::Pass => {}
                    Verdict::Drop(why) => {
                        tracing::debug!(%peer, why, "SIP over WebSocket: frame dropped");
                        continue;
                    }
                    Verdict::Reply { status, reason, bytes } => {
                        tracing::warn!(%peer, status, %reason, "malformed request answered");
                        super::count_response(status);
                        let reply = String::from_utf8_lossy(&bytes).into_owned();
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                match on_frame(&text, peer, state.transport, &sip_conn, &addr) {
                    Inbound::Message(event) => {
                        if to_stack.send(*event).is_err() {
                            break;
                        }
                    }
                    Inbound::KeepAlive => {
                        // Double-CRLF ping (RFC 5626 §3.5.1 style, sent by
                        // SIP.js): answer with one CRLF.
                        if socket.send(Message::Text("\r\n".into())).await.is_err() {
                            break;
                        }
                    }
                    Inbound::Garbage => {
                        tracing::debug!(%peer, "SIP over WebSocket: unparseable frame dropped");
                    }
                }
            }
            out = to_browser.recv() => {
                let Some(TransportEvent::Incoming(msg, _, _)) = out else {
                    if out.is_none() { break; }
                    continue;
                };
                if socket.send(Message::Text(msg.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    // Ends the serve loop (its channel closes), which retires the
    // connection; remove it now too so no INVITE is routed to a dead socket
    // in between.
    drop(to_stack);
    layer.remove_connection(&sip_conn);
    conn_cancel.cancel();
    (state.on_close)(peer);
    tracing::debug!(%peer, "SIP over WebSocket closed");
}

/// The ping period, at each tick; never without pings.
async fn ping_due(ping: &mut Option<tokio::time::Interval>) -> Duration {
    match ping {
        Some(i) => {
            i.tick().await;
            i.period()
        }
        None => std::future::pending().await,
    }
}

enum Inbound {
    // Boxed: a parsed message is large and the other variants are empty.
    Message(Box<TransportEvent>),
    KeepAlive,
    Garbage,
}

/// Turns one frame into what the transport layer expects from a socket:
/// the message with `received` (and `rport`) written into its top Via, as
/// rsipstack's own transports do.
fn on_frame(
    text: &str,
    peer: SocketAddr,
    transport: Transport,
    conn: &SipConnection,
    addr: &SipAddr,
) -> Inbound {
    if text.trim_matches(['\r', '\n']).is_empty() {
        return Inbound::KeepAlive;
    }
    let Ok(msg) = SipMessage::try_from(text) else {
        return Inbound::Garbage;
    };
    let Ok(msg) = SipConnection::update_msg_received(msg, peer, transport) else {
        return Inbound::Garbage;
    };
    Inbound::Message(Box::new(TransportEvent::Incoming(
        msg,
        conn.clone(),
        addr.clone(),
    )))
}
