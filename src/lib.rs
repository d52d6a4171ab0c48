//! hotline: a SIP call-centre server for after-sales service hotlines.
//!
//! See ARCHITECTURE.md for how a call flows through these modules.
pub mod api;
pub mod call;
pub mod clock;
pub mod config;
pub mod ivr;
pub mod media;
pub mod server;
pub mod sip;
pub mod store;
