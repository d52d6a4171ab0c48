//! hotline: a SIP call-centre server for after-sales service hotlines.
//!
//! See ARCHITECTURE.md for how a call flows through these modules.
pub mod acd;
pub mod api;
pub mod browser;
pub mod call;
pub mod campaign;
pub mod clock;
pub mod config;
pub mod events;
pub mod import;
pub mod ivr;
pub mod media;
pub mod server;
pub mod sip;
pub mod store;
pub mod web;
