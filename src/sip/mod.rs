//! SIP: transports, transactions, registrar and digest auth.
//!
//! `rsipstack` carries messages, transports and transactions; nothing outside
//! this module names its types. The decisions (what a datagram is worth, who
//! may register, which contacts are live) are pure modules tested on their own;
//! `server` is the thin tokio shell that owns sockets and timers.

pub mod digest;
pub mod guard;
pub mod info;
pub mod leg;
pub mod registrar;
pub mod sdp;
mod server;
mod socket;
pub mod wire;
pub mod ws;

pub use server::{start, uri_user, SipHandle, SipSettings};

/// Our User-Agent / Server header.
pub const USER_AGENT: &str = concat!("hotline/", env!("CARGO_PKG_VERSION"));

/// Count a response we sent, by class (1xx..6xx), for `/metrics`.
pub(crate) fn count_response(status: u16) {
    let class = match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "6xx",
    };
    metrics::counter!("hotline_sip_responses_total", "class" => class).increment(1);
}
