//! Calls in progress as the events describe them, for the first message of
//! `/api/events`: the ACD snapshot carries counts, not callers, so a
//! wallboard or desk opened while a caller waits would otherwise not know
//! who is waiting or talking until the next event about that call.
//!
//! One task follows the [`EventHub`] from server start and keeps a small map
//! (call id → [`LiveCall`]); ended calls leave it. If the task ever lags
//! behind the hub, entries it missed the end of are dropped after
//! [`STALE_AFTER_MS`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::clock::Clock;
use crate::events::{Event, EventHub};

/// A call still listed this long after its last event is dropped.
pub const STALE_AFTER_MS: u64 = 6 * 3600 * 1000;

/// One call in progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCall {
    pub call_id: String,
    pub caller: String,
    pub customer_id: Option<String>,
    pub queue: Option<String>,
    /// `ivr`, `waiting`, `ringing` or `answered`.
    pub state: &'static str,
    pub agent: Option<String>,
    pub arrived_ms: u64,
    pub queued_ms: Option<u64>,
    pub answered_ms: Option<u64>,
    #[serde(skip)]
    touched_ms: u64,
}

/// The map of calls in progress; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveCalls {
    calls: Arc<Mutex<HashMap<String, LiveCall>>>,
}

impl LiveCalls {
    /// Follow `hub` from now on (in a task of the current runtime, when
    /// there is one; without a runtime the map simply stays empty).
    pub fn follow(hub: &EventHub, clock: Arc<dyn Clock>) -> LiveCalls {
        let live = LiveCalls::default();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let mut rx = hub.subscribe();
            let me = live.clone();
            rt.spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(ev) => me.apply(&ev, clock.now_ms()),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "live calls: lagged behind the events");
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        }
        live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveCall>> {
        // A panic while holding the lock leaves a usable map.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Update the map with one event.
    pub fn apply(&self, ev: &Event, now_ms: u64) {
        let mut calls = self.lock();
        match ev {
            Event::CallArrived {
                call_id,
                caller,
                customer_id,
                ..
            } => {
                calls.insert(
                    call_id.clone(),
                    LiveCall {
                        call_id: call_id.clone(),
                        caller: caller.clone(),
                        customer_id: customer_id.clone(),
                        queue: None,
                        state: "ivr",
                        agent: None,
                        arrived_ms: now_ms,
                        queued_ms: None,
                        answered_ms: None,
                        touched_ms: now_ms,
                    },
                );
            }
            Event::CallQueued { call_id, queue, .. } => {
                if let Some(c) = calls.get_mut(call_id) {
                    c.queue = Some(queue.clone());
                    c.state = "waiting";
                    c.agent = None;
                    c.queued_ms = Some(now_ms);
                    c.touched_ms = now_ms;
                }
            }
            Event::CallOffered { call_id, agent } => {
                if let Some(c) = calls.get_mut(call_id) {
                    c.state = "ringing";
                    c.agent = Some(agent.clone());
                    c.touched_ms = now_ms;
                }
            }
            Event::CallAnswered { call_id, agent } => {
                if let Some(c) = calls.get_mut(call_id) {
                    c.state = "answered";
                    c.agent = Some(agent.clone());
                    c.answered_ms = Some(now_ms);
                    c.touched_ms = now_ms;
                }
            }
            // Handed on: the caller waits again until the target answers.
            Event::CallTransferred { call_id, to, .. } => {
                if let Some(c) = calls.get_mut(call_id) {
                    c.state = "waiting";
                    c.agent = None;
                    c.queued_ms = Some(now_ms);
                    c.touched_ms = now_ms;
                    if !to.is_empty() && c.queue.is_none() {
                        c.queue = Some(to.clone());
                    }
                }
            }
            Event::CallAbandoned { call_id, .. } | Event::CallEnded { call_id, .. } => {
                calls.remove(call_id);
            }
            _ => {}
        }
        calls.retain(|_, c| now_ms.saturating_sub(c.touched_ms) < STALE_AFTER_MS);
    }

    /// Calls in progress, oldest first.
    pub fn list(&self) -> Vec<LiveCall> {
        let mut v: Vec<LiveCall> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| {
            a.arrived_ms
                .cmp(&b.arrived_ms)
                .then_with(|| a.call_id.cmp(&b.call_id))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_call_from_arrival_to_end() {
        let live = LiveCalls::default();
        live.apply(
            &Event::CallArrived {
                call_id: "c1".into(),
                caller: "13800138000".into(),
                called: "8000".into(),
                customer_id: Some("C1".into()),
            },
            1_000,
        );
        assert_eq!(live.list()[0].state, "ivr");
        live.apply(
            &Event::CallQueued {
                call_id: "c1".into(),
                queue: "install".into(),
                priority: 5,
            },
            2_000,
        );
        let c = &live.list()[0];
        assert_eq!(
            (c.state, c.queue.as_deref(), c.queued_ms),
            ("waiting", Some("install"), Some(2_000))
        );
        live.apply(
            &Event::CallOffered {
                call_id: "c1".into(),
                agent: "1001".into(),
            },
            3_000,
        );
        assert_eq!(live.list()[0].state, "ringing");
        live.apply(
            &Event::CallAnswered {
                call_id: "c1".into(),
                agent: "1001".into(),
            },
            4_000,
        );
        let c = &live.list()[0];
        assert_eq!((c.state, c.agent.as_deref()), ("answered", Some("1001")));
        // Events about unknown calls change nothing.
        live.apply(
            &Event::CallQueued {
                call_id: "other".into(),
                queue: "repair".into(),
                priority: 5,
            },
            5_000,
        );
        assert_eq!(live.list().len(), 1);
        live.apply(
            &Event::CallEnded {
                call_id: "c1".into(),
                cause: "200 BYE".into(),
            },
            6_000,
        );
        assert!(live.list().is_empty());
    }

    #[test]
    fn stale_calls_are_dropped() {
        let live = LiveCalls::default();
        live.apply(
            &Event::CallArrived {
                call_id: "lost".into(),
                caller: "1".into(),
                called: "8000".into(),
                customer_id: None,
            },
            0,
        );
        live.apply(
            &Event::CallEnded {
                call_id: "unrelated".into(),
                cause: "x".into(),
            },
            STALE_AFTER_MS,
        );
        assert!(live.list().is_empty());
    }
}
