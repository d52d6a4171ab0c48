//! Errors of the router. Bad input never panics: it comes back as
//! [`Action::Rejected`](super::Action::Rejected) carrying one of these.
//! Inputs that race with the router (an answer arriving just after the ring
//! timeout) are expected and end up here too.

use serde::Serialize;
use thiserror::Error;

use super::io::OfferId;

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcdError {
    #[error("queue {queue:?}: {reason}")]
    InvalidConfig { queue: String, reason: String },
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("unknown call {0:?}")]
    UnknownCall(String),
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    #[error("call {0:?} is already known to the router")]
    DuplicateCall(String),
    /// The offer was already cancelled, answered elsewhere or never existed.
    /// When this answers an `OfferAnswered`, the shell must hang up that
    /// agent's leg: the router will not connect it.
    #[error("offer {offer_id} is not ringing agent {agent:?}")]
    StaleOffer { offer_id: OfferId, agent: String },
    #[error("call {call_id:?} is not connected to agent {agent:?}")]
    NotConnected { call_id: String, agent: String },
    #[error("call {0:?} is not waiting in a queue")]
    CallNotWaiting(String),
    #[error("no agent is available{}", skill.as_deref().map(|s| format!(" with skill {s:?}")).unwrap_or_default())]
    NoAgentAvailable { skill: Option<String> },
    #[error("agent {agent:?} cannot do that while {state}")]
    InvalidAgentState { agent: String, state: String },
    /// A consultation (attended transfer) is already going on, or none is.
    #[error("call {call_id:?}: {reason}")]
    Consult { call_id: String, reason: String },
}
