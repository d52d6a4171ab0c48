//! Wallboard numbers: a point-in-time copy of queues and agents.

use serde::Serialize;

use super::io::AgentState;

/// "Today" counters of one queue; zeroed by `Input::ResetDailyStats`.
///
/// A contact is counted as offered in every queue it enters (arrival,
/// overflow in, transfer in), and leaves it exactly one way: answered,
/// abandoned, overflowed out, callback, or still waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub offered: u64,
    pub answered: u64,
    pub answered_within_sl: u64,
    pub abandoned: u64,
    pub overflowed: u64,
    pub callbacks: u64,
    /// Refused with `QueueFull` (not counted as offered).
    pub refused: u64,
    /// Sum of waits of answered calls.
    pub wait_total_ms: u64,
    pub talk_total_ms: u64,
    pub talks: u64,
}

impl QueueStats {
    /// Answered within the service-level time / answered.
    pub fn service_level(&self) -> Option<f64> {
        ratio(self.answered_within_sl, self.answered)
    }

    /// Abandoned / offered.
    pub fn abandon_rate(&self) -> Option<f64> {
        ratio(self.abandoned, self.offered)
    }

    pub fn avg_wait_ms(&self) -> Option<u64> {
        self.wait_total_ms.checked_div(self.answered)
    }

    pub fn avg_talk_ms(&self) -> Option<u64> {
        self.talk_total_ms.checked_div(self.talks)
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Agents able to take a queue's calls (they have its skill), by state.
/// Offline agents are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentCounts {
    /// Ready with a live registration.
    pub ready: usize,
    /// Ready but without a live SIP registration: not offered calls.
    pub unreachable: usize,
    pub reserved: usize,
    pub on_call: usize,
    pub wrap_up: usize,
    pub not_ready: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    /// Callers in the queue, including those whose offer is ringing.
    pub waiting: usize,
    pub ringing: usize,
    pub longest_wait_ms: u64,
    /// What a caller arriving now would be told.
    pub estimated_wait_ms: u64,
    pub agents: AgentCounts,
    pub today: QueueStats,
    pub service_level: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub avg_wait_ms: Option<u64>,
    pub avg_talk_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSnapshot {
    pub id: String,
    pub state: AgentState,
    pub since_ms: u64,
    pub time_in_state_ms: u64,
    pub registered: bool,
    /// The call ringing (Reserved) or connected (OnCall).
    pub current_call: Option<String>,
    pub answered_today: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Snapshot {
    pub now_ms: u64,
    pub queues: Vec<QueueSnapshot>,
    pub agents: Vec<AgentSnapshot>,
}
