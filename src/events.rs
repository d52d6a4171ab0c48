//! Live events for the agent desk and the supervisor wallboard.
//!
//! Producers (call tasks, the ACD shell, the API) [`EventHub::publish`] an
//! [`Event`]; every `/api/events` WebSocket holds a [`EventHub::subscribe`]
//! receiver. The hub is a `tokio::sync::broadcast` channel: publishing never
//! blocks and never fails (an event published with no subscriber is simply
//! dropped), and a subscriber that falls more than [`EVENT_CAPACITY`] events
//! behind sees `RecvError::Lagged` — the WebSocket then closes with reason
//! `"lagged"` and the client reconnects for a fresh snapshot. A slow browser
//! can never slow a call down.
//!
//! On the wire each event is a JSON object tagged by `"type"`, e.g.
//! `{"type":"call_answered","call_id":"...","agent":"1001"}`.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it is cut off.
pub const EVENT_CAPACITY: usize = 1024;

/// Something a desk or wallboard shows. Times are epoch milliseconds (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A call reached the server (before the IVR).
    CallArrived {
        call_id: String,
        caller: String,
        called: String,
        /// Customer recognised from the caller number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_id: Option<String>,
    },
    /// The caller entered a queue.
    CallQueued {
        call_id: String,
        queue: String,
        priority: u8,
    },
    /// An agent's phone is ringing with the call.
    CallOffered { call_id: String, agent: String },
    /// The agent answered; caller and agent are connected.
    CallAnswered { call_id: String, agent: String },
    /// The caller hung up while waiting in a queue.
    CallAbandoned {
        call_id: String,
        queue: String,
        waited_ms: u64,
    },
    /// An agent handed the call on (to an agent or a queue) with a note.
    CallTransferred {
        call_id: String,
        from_agent: String,
        to: String,
        note: String,
    },
    /// The connected agent is consulting a colleague (attended transfer);
    /// the caller is on hold.
    CallConsulting { call_id: String, agent: String },
    /// A supervisor joined the call (listen, whisper or barge), switched mode,
    /// or left (mode `none`).
    CallMonitored {
        call_id: String,
        supervisor: String,
        mode: String,
    },
    /// The caller chose a callback instead of waiting.
    CallbackRequested {
        call_id: String,
        phone: String,
        due_ms: u64,
    },
    /// An agent-first callback: the agent's phone answered and the
    /// customer of callback task `task_id` is being dialled.
    CallbackDialing {
        call_id: String,
        task_id: String,
        agent: String,
        phone: String,
    },
    /// A callback task's attempt is settled: its outcome and the task's state.
    CallbackResult {
        task_id: String,
        call_id: String,
        outcome: String,
        state: String,
    },
    /// The call is over.
    CallEnded { call_id: String, cause: String },
    /// The agent recorded the outcome of a call.
    CallDisposition {
        call_id: String,
        agent: Option<String>,
        disposition: String,
    },
    /// An agent changed state (`ready`, `not_ready`, `on_call`, ...).
    AgentState {
        agent: String,
        /// The state name (snake_case, as in the ACD snapshot).
        state: String,
        /// The not-ready reason, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        since_ms: u64,
    },
    /// Wallboard numbers of one queue.
    QueueStats {
        queue: String,
        waiting: usize,
        ringing: usize,
        longest_wait_ms: u64,
        estimated_wait_ms: u64,
        agents_ready: usize,
        agents_on_call: usize,
        agents_not_ready: usize,
        offered_today: u64,
        answered_today: u64,
        abandoned_today: u64,
        /// Answered within the service-level time / answered (today).
        service_level: Option<f64>,
    },
}

impl Event {
    /// The `"type"` tag of this event.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::CallArrived { .. } => "call_arrived",
            Event::CallQueued { .. } => "call_queued",
            Event::CallOffered { .. } => "call_offered",
            Event::CallAnswered { .. } => "call_answered",
            Event::CallAbandoned { .. } => "call_abandoned",
            Event::CallTransferred { .. } => "call_transferred",
            Event::CallConsulting { .. } => "call_consulting",
            Event::CallMonitored { .. } => "call_monitored",
            Event::CallbackRequested { .. } => "callback_requested",
            Event::CallbackDialing { .. } => "callback_dialing",
            Event::CallbackResult { .. } => "callback_result",
            Event::CallEnded { .. } => "call_ended",
            Event::CallDisposition { .. } => "call_disposition",
            Event::AgentState { .. } => "agent_state",
            Event::QueueStats { .. } => "queue_stats",
        }
    }

    /// An [`Event::AgentState`] from the ACD's view of an agent.
    pub fn agent_state(agent: &str, state: &crate::acd::AgentState, since_ms: u64) -> Event {
        let (name, reason) = agent_state_parts(state);
        Event::AgentState {
            agent: agent.to_string(),
            state: name.to_string(),
            reason,
            since_ms,
        }
    }

    /// An [`Event::QueueStats`] from a queue of the ACD snapshot.
    pub fn queue_stats(q: &crate::acd::QueueSnapshot) -> Event {
        Event::QueueStats {
            queue: q.name.clone(),
            waiting: q.waiting,
            ringing: q.ringing,
            longest_wait_ms: q.longest_wait_ms,
            estimated_wait_ms: q.estimated_wait_ms,
            agents_ready: q.agents.ready,
            agents_on_call: q.agents.on_call,
            agents_not_ready: q.agents.not_ready,
            offered_today: q.today.offered,
            answered_today: q.today.answered,
            abandoned_today: q.today.abandoned,
            service_level: q.service_level,
        }
    }
}

/// The snake_case name of an ACD agent state and its not-ready reason.
pub fn agent_state_parts(state: &crate::acd::AgentState) -> (&'static str, Option<String>) {
    use crate::acd::AgentState as S;
    match state {
        S::Offline => ("offline", None),
        S::Ready => ("ready", None),
        S::Reserved => ("reserved", None),
        S::OnCall => ("on_call", None),
        S::WrapUp => ("wrap_up", None),
        S::NotReady { reason } => ("not_ready", Some(reason.clone())),
    }
}

/// Fan-out of [`Event`]s to every live subscriber; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Event>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl EventHub {
    /// A hub keeping [`EVENT_CAPACITY`] events for slow subscribers.
    pub fn new() -> Self {
        Self::with_capacity(EVENT_CAPACITY)
    }

    /// A hub with another buffer size (tests).
    pub fn with_capacity(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Send to every subscriber. Never blocks; without subscribers the event is dropped.
    pub fn publish(&self, event: Event) {
        metrics::counter!("hotline_events_total", "type" => event.kind()).increment(1);
        let _ = self.tx.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// How many subscribers are connected.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_type() {
        let e = Event::CallAnswered {
            call_id: "c1".into(),
            agent: "1001".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "call_answered", "call_id": "c1", "agent": "1001"})
        );
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.kind(), "call_answered");
    }

    #[test]
    fn kind_matches_the_serde_tag() {
        let all = [
            Event::CallArrived {
                call_id: "c".into(),
                caller: "a".into(),
                called: "b".into(),
                customer_id: None,
            },
            Event::CallQueued {
                call_id: "c".into(),
                queue: "q".into(),
                priority: 1,
            },
            Event::CallOffered {
                call_id: "c".into(),
                agent: "a".into(),
            },
            Event::CallAbandoned {
                call_id: "c".into(),
                queue: "q".into(),
                waited_ms: 1,
            },
            Event::CallTransferred {
                call_id: "c".into(),
                from_agent: "a".into(),
                to: "b".into(),
                note: "n".into(),
            },
            Event::CallConsulting {
                call_id: "c".into(),
                agent: "a".into(),
            },
            Event::CallMonitored {
                call_id: "c".into(),
                supervisor: "s".into(),
                mode: "listen".into(),
            },
            Event::CallbackRequested {
                call_id: "c".into(),
                phone: "p".into(),
                due_ms: 1,
            },
            Event::CallbackDialing {
                call_id: "c".into(),
                task_id: "t".into(),
                agent: "a".into(),
                phone: "p".into(),
            },
            Event::CallbackResult {
                task_id: "t".into(),
                call_id: "c".into(),
                outcome: "answered".into(),
                state: "done".into(),
            },
            Event::CallEnded {
                call_id: "c".into(),
                cause: "200 BYE".into(),
            },
            Event::CallDisposition {
                call_id: "c".into(),
                agent: None,
                disposition: "solved".into(),
            },
            Event::agent_state(
                "1001",
                &crate::acd::AgentState::NotReady {
                    reason: "lunch".into(),
                },
                5,
            ),
        ];
        for e in all {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["type"], e.kind(), "{v}");
        }
    }

    #[tokio::test]
    async fn publish_never_blocks_and_slow_subscribers_lag() {
        let hub = EventHub::with_capacity(4);
        hub.publish(Event::CallEnded {
            call_id: "nobody-listens".into(),
            cause: "x".into(),
        });
        let mut rx = hub.subscribe();
        for i in 0..10 {
            hub.publish(Event::CallEnded {
                call_id: format!("c{i}"),
                cause: "x".into(),
            });
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(6))
        ));
        match rx.recv().await {
            Ok(Event::CallEnded { call_id, .. }) => assert_eq!(call_id, "c6"),
            other => panic!("{other:?}"),
        }
    }
}
