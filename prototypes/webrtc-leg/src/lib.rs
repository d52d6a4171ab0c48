//! Browser softphone building blocks for hotline (issue 7): the future
//! `src/webrtc/` module.
//!
//! * [`leg`]: a browser media leg behind the narrow [`leg::BrowserMedia`] /
//!   [`leg::BrowserLeg`] traits, implemented on `webrtc` 0.21 (ICE-lite,
//!   DTLS-SRTP, PCMU/PCMA, RFC 4733 digits). The rest of hotline sees only
//!   20 ms G.711 frames on bounded channels ([`frame`]).
//! * [`ws`]: SIP over WebSocket (RFC 7118) on our own axum listener, fed
//!   into rsipstack's transport layer as a channel connection.
//!
//! `DESIGN.md` at the crate root records the decisions and measurements.

pub mod dtmf;
pub mod error;
pub mod frame;
pub mod leg;
pub mod ports;
pub mod sdp;
pub mod ws;

pub use error::LegError;
pub use frame::{G711Frame, InboundFrame, G711};
pub use leg::{
    AnsweredLeg, BrowserLeg, BrowserMedia, LegConfig, LegEvent, MediaEnds, OfferedLeg,
    PendingOffer, WebRtcMedia,
};
pub use ports::PortPolicy;
