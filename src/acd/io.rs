//! What goes into the router and what comes out.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::AcdError;

/// Identifies one offer (one ringing attempt, possibly to several agents).
/// Never reused, so a late answer to an old offer is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OfferId(pub u64);

impl fmt::Display for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A skill an agent has, with proficiency 1 (novice) to 10 (expert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    pub name: String,
    pub proficiency: u8,
}

impl Skill {
    /// Proficiency outside 1–10 is clamped rather than refused, so a typo in
    /// an agent profile does not keep the agent from logging in.
    pub fn new(name: impl Into<String>, proficiency: u8) -> Self {
        Skill {
            name: name.into(),
            proficiency: proficiency.clamp(1, 10),
        }
    }

    /// Parses the config form `"repair"` or `"repair:8"` (no number → 5).
    pub fn parse(text: &str) -> Option<Skill> {
        let (name, level) = match text.split_once(':') {
            Some((name, level)) => (name.trim(), level.trim().parse::<u8>().ok()?),
            None => (text.trim(), 5),
        };
        (!name.is_empty()).then(|| Skill::new(name, level))
    }
}

/// The state an agent is in, as shown on the wallboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AgentState {
    Offline,
    Ready,
    /// An offer is ringing the agent's phone.
    Reserved,
    OnCall,
    /// After-call work; ends by itself after the queue's `wrap_up_ms`.
    WrapUp,
    NotReady {
        reason: String,
    },
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentState::Offline => f.write_str("offline"),
            AgentState::Ready => f.write_str("ready"),
            AgentState::Reserved => f.write_str("reserved"),
            AgentState::OnCall => f.write_str("on call"),
            AgentState::WrapUp => f.write_str("wrap-up"),
            AgentState::NotReady { reason } => write!(f, "not ready ({reason})"),
        }
    }
}

/// Why one agent's leg of an offer did not connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferFailure {
    NoAnswer,
    Busy,
    Declined,
    Error,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Agent(String),
    Queue(String),
}

/// Everything the shell tells the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "input")]
pub enum Input {
    /// Log in (or update skills) and become Ready.
    AgentLogin {
        agent: String,
        skills: Vec<Skill>,
    },
    /// Become Ready. While ringing or on a call it cancels a pending
    /// not-ready/logout instead.
    SetReady {
        agent: String,
    },
    /// Ringing: the offer is withdrawn. On a call: takes effect when the
    /// wrap-up ends.
    SetNotReady {
        agent: String,
        reason: String,
    },
    /// Same timing rules as `SetNotReady`.
    AgentLogout {
        agent: String,
    },
    /// Whether the agent's phone has a live SIP registration. May arrive
    /// before the agent logs in.
    Registered {
        agent: String,
        live: bool,
    },
    Enqueue {
        call_id: String,
        queue: String,
        /// Higher first; see [`PRIORITY_COMPLAINT`](super::PRIORITY_COMPLAINT).
        priority: i32,
        /// Owner of the caller's open case (first-contact ownership).
        preferred_agent: Option<String>,
        /// Overrides the queue's required skill for this call (the IVR may
        /// know more precisely what the caller needs).
        skill: Option<String>,
        /// When the caller started waiting; the wait is measured from here.
        arrived_ms: u64,
    },
    OfferAnswered {
        offer_id: OfferId,
        agent: String,
    },
    OfferFailed {
        offer_id: OfferId,
        agent: String,
        reason: OfferFailure,
    },
    /// A connected call ended (either side hung up).
    CallEnded {
        call_id: String,
        agent: String,
    },
    /// The caller hung up while waiting or ringing.
    Abandoned {
        call_id: String,
    },
    /// The caller pressed 1 after an `OfferCallback`.
    CallbackAccepted {
        call_id: String,
    },
    Transfer {
        call_id: String,
        from_agent: String,
        to: TransferTarget,
        note: String,
    },
    /// Attended transfer, step 1: ring `to_agent` (who must be Ready) so the
    /// agent connected to the call can consult them; the caller waits on hold.
    ConsultStart {
        call_id: String,
        from_agent: String,
        to_agent: String,
    },
    /// The consulted agent answered.
    ConsultAnswered {
        call_id: String,
        agent: String,
    },
    /// Consultation over. `complete`: the caller now talks to the consulted
    /// agent and the first goes to wrap-up; otherwise the consulted agent is
    /// free again and the first keeps the caller.
    ConsultEnded {
        call_id: String,
        agent: String,
        complete: bool,
        note: String,
    },
    /// An agent-first outbound call (a callback task): `agent` (preview:
    /// the agent chose the task) must be available; None (progressive)
    /// picks the longest-idle available agent with `skill` (any when None).
    /// The agent is Reserved while their phone rings; the pick comes back
    /// as [`Action::DirectReserved`].
    DirectReserve {
        call_id: String,
        agent: Option<String>,
        skill: Option<String>,
    },
    /// The agent answered their phone for the direct call.
    DirectAnswered {
        call_id: String,
        agent: String,
    },
    /// The direct call is over: wrap-up for `wrap_up_ms` (0: Ready at once).
    DirectEnded {
        call_id: String,
        agent: String,
        wrap_up_ms: u64,
    },
    /// Start a new day of counters (answered, abandoned, service level...).
    ResetDailyStats,
    /// Time passed; asked for through [`Router::poll_timeout`](super::Router::poll_timeout).
    Tick,
}

/// Everything the router asks the shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Ring these agents with this caller.
    Offer {
        offer_id: OfferId,
        call_id: String,
        queue: String,
        agents: Vec<String>,
        /// The latest transfer note, so the next agent need not ask again.
        note: Option<String>,
        /// Agents who handled the call before, oldest first.
        transfer_chain: Vec<String>,
    },
    /// Stop ringing these agents' legs of the offer.
    CancelOffer {
        offer_id: OfferId,
        call_id: String,
        agents: Vec<String>,
    },
    /// Bridge the caller to the agent who answered.
    Connect {
        offer_id: OfferId,
        call_id: String,
        agent: String,
        /// The caller's wait in the queue, for the call record.
        waited_ms: u64,
    },
    AgentStateChanged {
        agent: String,
        state: AgentState,
        since_ms: u64,
    },
    /// The caller moved to another queue.
    Overflowed {
        call_id: String,
        from: String,
        to: String,
    },
    /// Play "press 1 to be called back" (at most once per call).
    OfferCallback { call_id: String, queue: String },
    /// The caller left the queue for a callback; store the promise.
    CallbackRequested {
        call_id: String,
        queue: String,
        due_ms: u64,
    },
    /// Tell the caller their place in line (1 = next) and estimated wait.
    Announce {
        call_id: String,
        position: usize,
        estimated_wait_ms: u64,
    },
    /// The queue is full and has no overflow; the call was not queued.
    QueueFull { call_id: String, queue: String },
    /// The input was refused; nothing changed. For a stale `OfferAnswered`
    /// the shell must hang up that agent's leg.
    Rejected { error: AcdError },
    /// The agent reserved for a direct (outbound) call.
    DirectReserved { call_id: String, agent: String },
}
