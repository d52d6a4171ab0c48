//! `GET /api/events?token=T`: the live-event WebSocket.
//!
//! The token is checked before the upgrade (a bad one gets a JSON 401 and
//! no WebSocket). The first message is `{"type":"snapshot", ...}` — the ACD
//! snapshot, the configured agents with their states and the recent calls
//! (an agent's own only) — from which a desk or wallboard builds its state;
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
    }))
}

async fn send(socket: &mut WebSocket, msg: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = send(
        socket,
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })),
    )
    .await;
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
            close(&mut socket, 1011, "snapshot failed").await;
            return;
        }
    };
    if send(&mut socket, Message::Text(first.into()))
        .await
        .is_err()
    {
        return;
    }
    let mut recheck = tokio::time::interval(RECHECK);
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
                    if send(&mut socket, Message::Text(text.into())).await.is_err() {
                        tracing::info!(user = %who.id, "events: client too slow or gone; dropped");
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(user = %who.id, missed, "events: client lagged; closing");
                    metrics::counter!("hotline_event_clients_lagged_total").increment(1);
                    close(&mut socket, 1013, "lagged").await;
                    return;
                }
                Err(RecvError::Closed) => {
                    close(&mut socket, 1001, "server stopping").await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                // Pings are answered by the WebSocket layer; text from clients is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                if state.auth.check(&token).is_err() {
                    close(&mut socket, 1008, "token expired").await;
                    return;
                }
            }
        }
    }
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
