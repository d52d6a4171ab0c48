//! IVR: dialplan files and the per-call interpreter.
//!
//! * [`dialplan`]: TOML dialplans (one file per service line), parsed and
//!   validated with every error reported as `FILE:LINE: message`.
//! * [`interpreter`]: a sans-IO state machine per call. The shell feeds it
//!   [`IvrEvent`]s with the current time and carries out the [`IvrAction`]s it
//!   returns (play prompts, start timers, look up customers, enqueue, hang up).
//!   It owns no sockets, threads, timers or clock, so tests drive it with a
//!   simulated clock.
//! * [`calendar`]: business hours, holidays and make-up workdays.
//!
//! The file format is documented in `dialplans/README.md`.

pub mod calendar;
pub mod dialplan;
pub mod error;
pub mod interpreter;

pub use calendar::{Calendar, TimeRange};
pub use dialplan::{
    check_files, Callback, Collect, CountFrom, Dialplan, DialplanSet, Menu, Node, NodeKind, Play,
    Queue,
};
pub use error::{DialplanError, DialplanErrorKind};
pub use interpreter::{
    CustomerSummary, HangupReason, Interpreter, IvrAction, IvrEvent, IvrOutcome, PathStep,
    PromptId, TimerId,
};
