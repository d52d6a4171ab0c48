//! Errors of browser legs and of the SIP-over-WebSocket bridge.

/// Why a browser leg could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// The configuration cannot work (bad port range, no codec).
    #[error("browser leg configuration: {0}")]
    Config(String),
    /// Every port of the range is held by a live leg or another process.
    #[error("no free UDP port in {first}-{last} for a browser leg")]
    NoFreePort {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// The offer is not SDP we can parse or apply.
    #[error("bad offer: {0}")]
    BadOffer(String),
    /// The offer has no G.711 (answer SIP with 488 Not Acceptable Here).
    #[error("the offer has no PCMU or PCMA audio")]
    NoG711,
    /// ICE candidate gathering did not finish in time.
    #[error("ICE gathering did not complete within {0:?}")]
    GatherTimeout(std::time::Duration),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
}
