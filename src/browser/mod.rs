//! Browser softphones (issue 7): agents who work in the desk page take calls
//! over WebRTC.
//!
//! * SIP over WebSocket (RFC 7118) lives in `sip::ws`: `/sip` on the HTTP
//!   listener,
//!   bridged into the SIP stack's transport layer, so a browser registers and
//!   is called like any phone (same digest, same registrar).
//! * [`leg`]: the media leg on `webrtc` 0.21 behind the narrow
//!   [`BrowserMedia`]/[`BrowserLeg`] traits. The rest of hotline sees only
//!   20 ms G.711 frames on bounded channels ([`frame`]), which the media
//!   worker moves like RTP; nothing outside this module names a `webrtc` type.
//!
//! `docs/browser-softphone.md` records why it is shaped this way (ICE
//! roles, one UDP port per leg from a range, what `webrtc` 0.21.1 needs
//! worked around).

pub mod error;
pub mod frame;
pub mod leg;
pub mod ports;
pub mod sdp;

pub use error::LegError;
pub use frame::{G711Frame, InboundFrame};
pub use leg::{
    AnsweredLeg, BrowserLeg, BrowserMedia, LegConfig, LegEvent, MediaEnds, OfferedLeg,
    PendingOffer, WebRtcMedia,
};
pub use ports::PortPolicy;
