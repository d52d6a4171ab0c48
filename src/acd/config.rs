//! Queue and router configuration.
//!
//! Plain serde structs so the server's TOML config can embed them; every
//! field has a default so a queue can be declared with just a name.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::AcdError;

/// Priority of an ordinary caller. Higher numbers are served first.
pub const PRIORITY_NORMAL: i32 = 0;
/// VIP customers (maintenance contract holders) jump ahead of normal callers.
pub const PRIORITY_VIP: i32 = 50;
/// Complaints go first: the mission promises a response within 10 minutes.
pub const PRIORITY_COMPLAINT: i32 = 100;

/// How a queue picks among the ready agents that match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent who has been Ready the longest.
    #[default]
    LongestIdle,
    /// Every matching ready agent rings at once; the first to answer wins.
    RingAll,
    /// Agents in id order, continuing after the one offered last in this queue.
    RoundRobin,
    /// Fewest calls answered today (across all queues); ties → longest idle.
    FewestCalls,
    /// Highest proficiency in the call's skill; ties → longest idle.
    SkillsProficiency,
}

/// What happens to a caller who waited past `max_wait_ms`, or who arrives
/// when the queue already holds `max_length` callers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Keep waiting (a full queue refuses new callers with `QueueFull`).
    #[default]
    None,
    /// Move the caller to another queue, keeping their arrival time.
    Queue(String),
    /// Offer "press 1 to be called back" once; the caller keeps their place.
    OfferCallback,
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// Agents must have this skill to be offered the queue's calls. A call
    /// may name its own skill at enqueue, which then takes precedence.
    pub skill: Option<String>,
    pub strategy: Strategy,
    /// How long one offer rings before it is cancelled and the next agent tried.
    pub ring_timeout_ms: u64,
    /// After-call work; the agent returns to Ready automatically afterwards.
    pub wrap_up_ms: u64,
    /// Waiting longer than this (in this queue) triggers `overflow`.
    pub max_wait_ms: Option<u64>,
    /// Callers (waiting or ringing) at which a new caller triggers `overflow`.
    pub max_length: Option<usize>,
    pub overflow: Overflow,
    /// Position / estimated-wait announcements; `None` or 0 disables them.
    pub announce_interval_ms: Option<u64>,
    /// Answered within this wait counts toward the service level.
    pub service_level_ms: u64,
    /// First-contact ownership: how long a caller waits for the agent who
    /// owns their case before any agent may take the call.
    pub owner_wait_ms: u64,
    /// Promised callback time for an accepted callback (the mission: one hour).
    pub callback_within_ms: u64,
    /// Handle time assumed for the wait estimate before any call was handled.
    pub default_handle_ms: u64,
    /// An agent who failed an offer of a call is not offered the same call
    /// again for this long (stops busy/decline ping-pong with a lone agent).
    pub retry_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            name: String::new(),
            skill: None,
            strategy: Strategy::LongestIdle,
            ring_timeout_ms: 20_000,
            wrap_up_ms: 15_000,
            max_wait_ms: None,
            max_length: None,
            overflow: Overflow::None,
            announce_interval_ms: Some(45_000),
            service_level_ms: 20_000,
            owner_wait_ms: 30_000,
            callback_within_ms: 3_600_000,
            default_handle_ms: 180_000,
            retry_ms: 5_000,
        }
    }
}

impl QueueConfig {
    /// A queue with defaults for everything but the name.
    pub fn new(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            ..QueueConfig::default()
        }
    }

    pub(crate) fn announce_interval(&self) -> Option<u64> {
        self.announce_interval_ms.filter(|&ms| ms > 0)
    }
}

/// Everything the router needs at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    pub queues: Vec<QueueConfig>,
    /// Offers missed in a row (no answer) before an agent is set NotReady.
    pub max_missed_offers: u32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            queues: Vec::new(),
            max_missed_offers: 2,
        }
    }
}

impl RouterConfig {
    /// Checks what the router relies on: unique non-empty names, overflow
    /// targets that exist, and a non-zero ring timeout (zero would cancel
    /// every offer the moment it is made).
    pub fn validate(&self) -> Result<(), AcdError> {
        let mut names = BTreeSet::new();
        for q in &self.queues {
            if q.name.trim().is_empty() {
                return Err(AcdError::InvalidConfig {
                    queue: q.name.clone(),
                    reason: "queue name is empty".into(),
                });
            }
            if !names.insert(q.name.as_str()) {
                return Err(AcdError::InvalidConfig {
                    queue: q.name.clone(),
                    reason: "duplicate queue name".into(),
                });
            }
            if q.ring_timeout_ms == 0 {
                return Err(AcdError::InvalidConfig {
                    queue: q.name.clone(),
                    reason: "ring_timeout_ms must be above 0".into(),
                });
            }
        }
        for q in &self.queues {
            if let Overflow::Queue(target) = &q.overflow {
                if !names.contains(target.as_str()) {
                    return Err(AcdError::InvalidConfig {
                        queue: q.name.clone(),
                        reason: format!("overflow queue {target:?} is not configured"),
                    });
                }
                if target == &q.name {
                    return Err(AcdError::InvalidConfig {
                        queue: q.name.clone(),
                        reason: "a queue cannot overflow into itself".into(),
                    });
                }
            }
        }
        Ok(())
    }
}
