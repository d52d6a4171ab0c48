//! Media: RTP, RTCP, G.711, DTMF (RFC 4733 and in-band), jitter buffer,
//! prompts and call recording, as sans-IO building blocks for the media
//! workers. Nothing here touches sockets, threads or clocks: callers pass
//! bytes, samples and `Instant`s in and get results out.
//!
//! Per-packet and per-frame paths (RTP parse/write, G.711, DTMF detection,
//! jitter push/pop, recorder push) do not allocate: they write into caller
//! buffers or state allocated up front. Loading prompts and building RTCP
//! reports may allocate; they run once per file or every few seconds.

pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod goertzel;
pub mod jitter;
pub mod prompt;
pub mod recorder;
pub mod resample;
pub mod rtcp;
pub mod rtp;

pub use dtmf::{DtmfError, DtmfPacket, DtmfReceiver, DtmfSender, TelephoneEvent};
pub use g711::G711;
pub use goertzel::DtmfDetector;
pub use jitter::{JitterBuffer, JitterError, JitterStats, Playout, PushOutcome};
pub use prompt::{Prompt, PromptCache, PromptError, PromptErrorReason, FRAME_LEN};
pub use recorder::{repair as repair_recording, Recorder, RecorderError, RepairReport};
pub use rtcp::{ntp_from_unix, RtcpError, RtcpStats};
pub use rtp::{write_rtp, RtpError, RtpHeader, RtpPacket, RtpSender, SenderStats};
