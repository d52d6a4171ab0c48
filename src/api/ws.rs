//! `GET /api/events?token=T`: the live-event WebSocket.
//!
//! The token is checked before the upgrade (a bad one gets a JSON 401 and
//! no WebSocket). The first message is `{"type":"snapshot", ...}` — the ACD
//! snapshot, the configured agents with their states and the recent calls
//! (an agent's own only) and the calls in progress ([`LiveCalls`](super::live_calls::LiveCalls):
//! waiting, ringing, answered) — from which a desk or wallboard builds its state;
//! then every [`Event`](crate::events::Event) as one JSON text message.
//! The subscription is taken before the snapshot is built, so nothing falls
//! between the two.
//!
//! Slow clients: the hub keeps [`EVENT_CAPACITY`](crate::events::EVENT_CAPACITY)
//! events; a client that falls further behind is closed with code 1013 and
//! reason `"lagged"` (reconnect for a fresh snapshot), and a socket that takes
//! longer than [`SEND_TIMEOUT`] to accept one message is dropped. Neither can
//! hold up a publisher. The token is re-checked every [`RECHECK`]; after
//! logout or expiry the socket closes with 1008 `"token expired"`.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use super::auth::{bearer_token, Principal, Role};
use super::error::{ApiError, ApiResult, Q};
use super::live::agent_views;
use super::ApiState;
use crate::events::Event;
use crate::store::CallFilter;

/// A message the socket does not take within this long drops the client.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connected client's token is checked again.
pub const RECHECK: Duration = Duration::from_secs(30);
/// Calls in the snapshot.
pub const SNAPSHOT_CALLS: i64 = 50;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    token: Option<String>,
}

/// `GET /api/events`.
pub async fn events(
    State(state): State<ApiState>,
    Q(q): Q<EventsQuery>,
    parts: Parts,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let token = match q.token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => bearer_token(&parts)?.to_string(),
    };
    let who = state.auth.check(&token)?;
    who.require(&[Role::Agent, Role::Supervisor])?;
    let ws = ws.map_err(|e| {
        ApiError::BadRequest(format!("expected a WebSocket upgrade: {}", e.body_text()))
    })?;
    let rx = state.events.subscribe();
    Ok(ws.on_upgrade(move |socket| serve(socket, state, who, token, rx)))
}

/// The first message: everything a client needs to draw itself.
async fn snapshot(state: &ApiState, who: &Principal) -> ApiResult<serde_json::Value> {
    let acd = match &state.acd {
        Some(acd) => Some(acd.snapshot().await),
        None => None,
    };
    let agents = agent_views(state, acd.as_ref());
    let calls = state
        .store
        .search_calls(&CallFilter {
            agent_id: (who.role == Role::Agent).then(|| who.id.clone()),
            limit: SNAPSHOT_CALLS,
            ..CallFilter::default()
        })
        .await?;
    Ok(json!({
        "type": "snapshot",
        "now_ms": state.clock.now_ms(),
        "me": who,
        "acd": acd,
        "agents": agents,
        "recent_calls": calls,
        "live_calls": state.live_calls.list(),
    }))
}

/// Where [`forward`] writes: the WebSocket, or a test double.
pub(crate) trait EventSink: Send {
    /// Send one text message; Err when the peer is gone or too slow.
    fn send_text(
        &mut self,
        text: String,
    ) -> impl std::future::Future<Output = Result<(), ()>> + Send;
    /// Send a close frame (best effort).
    fn close(
        &mut self,
        code: u16,
        reason: &'static str,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// Resolves when the peer closed its side (messages from it are ignored).
    fn closed(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

impl EventSink for WebSocket {
    async fn send_text(&mut self, text: String) -> Result<(), ()> {
        match tokio::time::timeout(SEND_TIMEOUT, self.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.send(frame)).await;
    }

    async fn closed(&mut self) {
        loop {
            match self.recv().await {
                // Pings are answered by the WebSocket layer; text from clients is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Why [`forward`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client went away or did not take a message in time.
    Gone,
    /// The client fell too far behind; closed with 1013 "lagged".
    Lagged,
    /// The token expired or was logged out; closed with 1008.
    TokenExpired,
    /// The hub is gone (server stopping); closed with 1001.
    Closed,
}

/// Send the snapshot, then every event, until something stops it.
pub(crate) async fn forward<S: EventSink>(
    sink: &mut S,
    first: String,
    rx: &mut broadcast::Receiver<Event>,
    recheck_every: Duration,
    still_valid: impl Fn() -> bool + Send,
) -> Stop {
    if sink.send_text(first).await.is_err() {
        return Stop::Gone;
    }
    let mut recheck = tokio::time::interval(recheck_every);
    recheck.tick().await;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    let text = match serde_json::to_string(&ev) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %e, "events: cannot encode an event");
                            continue;
                        }
                    };
                    if sink.send_text(text).await.is_err() {
                        return Stop::Gone;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "events: client lagged; closing");
                    metrics::counter!("hotline_event_clients_lagged_total").increment(1);
                    sink.close(1013, "lagged").await;
                    return Stop::Lagged;
                }
                Err(RecvError::Closed) => {
                    sink.close(1001, "server stopping").await;
                    return Stop::Closed;
                }
            },
            _ = sink.closed() => return Stop::Gone,
            _ = recheck.tick() => {
                if !still_valid() {
                    sink.close(1008, "token expired").await;
                    return Stop::TokenExpired;
                }
            }
        }
    }
}

async fn serve(
    mut socket: WebSocket,
    state: ApiState,
    who: Principal,
    token: String,
    mut rx: broadcast::Receiver<Event>,
) {
    metrics::gauge!("hotline_event_clients").increment(1.0);
    let _gauge = scopeguard(|| metrics::gauge!("hotline_event_clients").decrement(1.0));
    let first = match snapshot(&state, &who).await {
        Ok(v) => v.to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "events: cannot build the snapshot");
            socket.close(1011, "snapshot failed").await;
            return;
        }
    };
    let auth = state.auth.clone();
    let stop = forward(&mut socket, first, &mut rx, RECHECK, || {
        auth.check(&token).is_ok()
    })
    .await;
    tracing::debug!(user = %who.id, ?stop, "events: client done");
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::{mpsc, Notify};

    /// A client that takes the first message, then stalls until released.
    struct SlowSink {
        sent: mpsc::UnboundedSender<String>,
        release: Arc<Notify>,
        stalled: bool,
        closed_with: Option<(u16, &'static str)>,
    }

    impl EventSink for SlowSink {
        async fn send_text(&mut self, text: String) -> Result<(), ()> {
            let _ = self.sent.send(text);
            if !self.stalled {
                self.stalled = true;
                self.release.notified().await;
            }
            Ok(())
        }
        async fn close(&mut self, code: u16, reason: &'static str) {
            self.closed_with = Some((code, reason));
        }
        async fn closed(&mut self) {
            std::future::pending::<()>().await
        }
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_closed_as_lagged_and_never_blocks_publishers() {
        let hub = crate::events::EventHub::with_capacity(16);
        let mut rx = hub.subscribe();
        let (tx, mut sent) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let mut sink = SlowSink {
            sent: tx,
            release: release.clone(),
            stalled: false,
            closed_with: None,
        };
        let task = tokio::spawn(async move {
            let stop = forward(
                &mut sink,
                "{\"type\":\"snapshot\"}".into(),
                &mut rx,
                RECHECK,
                || true,
            )
            .await;
            (stop, sink.closed_with)
        });
        // The snapshot went out and the client stalls on it.
        assert_eq!(sent.recv().await.unwrap(), "{\"type\":\"snapshot\"}");
        // Publishing far more than the buffer never blocks.
        for i in 0..100 {
            hub.publish(Event::CallEnded {
                call_id: format!("c{i}"),
                cause: "x".into(),
            });
        }
        release.notify_one();
        let (stop, closed_with) = task.await.unwrap();
        assert_eq!(stop, Stop::Lagged);
        assert_eq!(closed_with, Some((1013, "lagged")));
    }

    #[tokio::test]
    async fn events_follow_the_snapshot_in_order_and_expiry_closes() {
        let hub = crate::events::EventHub::with_capacity(16);
        let mut rx = hub.subscribe();
        let (tx, mut sent) = mpsc::unbounded_channel();
        let mut sink = SlowSink {
            sent: tx,
            release: Arc::new(Notify::new()),
            stalled: true,
            closed_with: None,
        };
        for i in 0..3 {
            hub.publish(Event::CallAnswered {
                call_id: format!("c{i}"),
                agent: "1001".into(),
            });
        }
        let valid = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let v = valid.clone();
        let task = tokio::spawn(async move {
            let stop = forward(
                &mut sink,
                "snap".into(),
                &mut rx,
                Duration::from_millis(50),
                move || v.load(std::sync::atomic::Ordering::SeqCst),
            )
            .await;
            (stop, sink.closed_with)
        });
        assert_eq!(sent.recv().await.unwrap(), "snap");
        for i in 0..3 {
            let v: serde_json::Value = serde_json::from_str(&sent.recv().await.unwrap()).unwrap();
            assert_eq!(v["type"], "call_answered");
            assert_eq!(v["call_id"], format!("c{i}"));
        }
        valid.store(false, std::sync::atomic::Ordering::SeqCst);
        let (stop, closed_with) = task.await.unwrap();
        assert_eq!(stop, Stop::TokenExpired);
        assert_eq!(closed_with, Some((1008, "token expired")));
    }
}
