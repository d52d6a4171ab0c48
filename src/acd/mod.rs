//! ACD: automatic call distribution.
//!
//! [`Router`] is a sans-IO state machine that owns every queue, waiting
//! caller, ringing offer and agent. The shell (one tokio task) feeds it
//! [`Input`]s with the current time in epoch milliseconds, carries out the
//! [`Action`]s it returns, and sends [`Input::Tick`] at
//! [`Router::poll_timeout`]. It owns no sockets, threads, timers or clock, so
//! tests drive it with a simulated clock.
//!
//! Service rules it carries out (see MISSION.md):
//! * complaints first: callers are served by priority, then by their own
//!   wait; a higher priority goes ahead without resetting anyone's wait;
//! * first-contact ownership (首问负责制): a caller with an open case is
//!   offered only to the agent who owns it for `owner_wait_ms`;
//! * callback instead of waiting: a long wait or a full queue can offer a
//!   callback, due within `callback_within_ms` (one hour by default);
//! * transfers carry a note and the chain of agents who handled the call.
//!
//! Decisions worth knowing:
//! * Every `handle` ends in a full step at `now` (ring timeouts, wrap-ups,
//!   owner windows, overflow, distribution, announcements), so `Tick` is
//!   only needed when nothing else arrives before `poll_timeout`. A clock
//!   stepping back is treated as standing still.
//! * Callers are matched in one global order (priority desc, own wait start
//!   asc) across queues, so an agent in several queues takes the caller who
//!   should go first; a caller no agent can take does not block those behind.
//! * Owners first: a caller waiting for their case owner gets that agent
//!   even over a higher-priority caller, and regardless of the queue's
//!   skill. An owner who is logged out is not waited for; an owner who
//!   fails the offer releases the caller to the queue at once.
//! * An agent is offered calls only when Ready *and* registered. Losing the
//!   registration keeps the chosen state (the phone usually comes back) but
//!   cancels a ringing leg at once.
//! * An agent who fails an offer (any reason) is not offered the same call
//!   again for `retry_ms`; only `NoAnswer` (and ring timeout) counts as a
//!   miss. Offers withdrawn for reasons not the agent's (caller hung up,
//!   a colleague answered a ring-all first) keep the agent's idle position.
//! * Waits (order, service level, `waited_ms`) run from the caller's own
//!   arrival and survive overflow; `max_wait_ms` runs from entry into the
//!   current queue and overflow never returns to a queue already visited. A
//!   transfer starts a new wait and bypasses `max_length`.
//! * Estimated wait = position × average handle time (talk + wrap-up of the
//!   last 20 calls, `default_handle_ms` before any) ÷ agents serving the
//!   queue (skilled, registered, logged in and not NotReady; at least 1).

pub mod config;
pub mod error;
pub mod io;
mod router;
mod select;
pub mod snapshot;

#[cfg(test)]
mod tests;

pub use config::{
    Overflow, QueueConfig, RouterConfig, Strategy, PRIORITY_COMPLAINT, PRIORITY_NORMAL,
    PRIORITY_VIP,
};
pub use error::AcdError;
pub use io::{Action, AgentState, Input, OfferFailure, OfferId, Skill, TransferTarget};
pub use router::{Router, MISSED_OFFERS_REASON};
pub use snapshot::{AgentCounts, AgentSnapshot, QueueSnapshot, QueueStats, Snapshot};
