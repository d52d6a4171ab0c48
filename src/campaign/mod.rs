//! Outbound callback campaigns after completed work orders (回访).
//!
//! Everything here is sans-IO: no clock reads, no sockets, no database.
//! The shell feeds work orders, call outcomes and `now`, and persists what
//! comes back. The pieces, in the order a work order meets them:
//!
//! - [`import`]: ERP work orders from CSV or JSON into clean [`WorkOrderRow`]s,
//!   with per-row errors.
//! - [`rules`]: [`CallbackRules`] (calling hours, holidays, coverage) and
//!   [`plan`], which turns an order into a callback window.
//! - [`schedule`]: the [`Scheduler`] of callback tasks: what is due, and what
//!   each call outcome does to a task.
//! - [`pacing`]: how many calls the dialer may start now.
//! - [`survey`]: the survey questions, dissatisfaction and the weekly
//!   exception summary.
//! - [`dialer`]: scheduler + pacing + calls in flight: what to dial now,
//!   what a finished call does to its task and to the closed loop.

pub mod csv;
pub mod dialer;
pub mod import;
pub mod pacing;
pub mod rules;
pub mod schedule;
pub mod survey;

pub use dialer::{
    answers_from_vars, judge_survey, Dial, Dialer, DialerError, Recovered, SurveyVerdict, Tick,
};
pub use import::{
    parse_csv, parse_csv_bytes, parse_json_orders, ImportError, ImportReport, OrderKind, RowError,
    WorkOrderInput, WorkOrderInputs, WorkOrderRow,
};
pub use pacing::{DialMode, Pacer, PacerConfig, PacerError};
pub use rules::{
    is_timely, plan, plan_checked, plan_second, CallbackRules, CallingHours, DayRange, RegionRules,
    RetryPolicy, RulesError, SkipReason, TaskPlan,
};
pub use schedule::{
    classify_sip_status, transition, FailReason, Input, Outcome, ScheduleError, Scheduler, Task,
    TaskId, TaskKind, TaskState,
};
pub use survey::{
    is_dissatisfied, weekly_exceptions, Attitude, ExceptionCase, RegionExceptions, Satisfaction,
    SurveyAnswers, SurveyError, WeekRange,
};
