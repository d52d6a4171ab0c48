//! The shape in which browser media meets the rest of hotline: G.711 frames of
//! 20 ms, moved through bounded channels.
//!
//! Why this shape: hotline's media worker threads already run every session on
//! a fixed 20 ms tick and bridge two legs by copying one frame per tick. If a
//! browser leg hands over exactly what an RTP leg hands over (160 G.711 bytes
//! per tick, in the law that was negotiated), a browser agent and a G.711
//! customer are bridged by a copy, with no transcoding, and the recorder sees
//! the same bytes it sees for a SIP agent.
//!
//! The channels are `tokio::sync::mpsc` bounded channels because both of their
//! ends work from plain threads (`try_send`/`try_recv` never block and need no
//! runtime), so the worker threads use them without touching tokio, while the
//! WebRTC side awaits them. A frame is a fixed-size array carried by value: no
//! allocation per frame on our side of the channel.

use std::fmt;

/// Samples (and bytes: G.711 is one byte per sample) in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The RTP clock of G.711 and of 8 kHz telephone-event.
pub const CLOCK_RATE: u32 = 8000;

/// One 20 ms frame of G.711 payload, in the law named by the leg's [`G711`].
pub type G711Frame = [u8; FRAME_SAMPLES];

/// The G.711 laws: the media engine's own enum, so a browser frame and an
/// RTP frame name their law the same way.
pub use crate::media::g711::G711;

/// A frame received from the browser, with the RTP facts a jitter buffer or
/// recorder may want. `Copy` and allocation-free.
#[derive(Clone, Copy)]
pub struct InboundFrame {
    /// RTP timestamp of the first sample (8 kHz clock).
    pub timestamp: u32,
    /// RTP sequence number of the packet this frame came from.
    pub sequence: u16,
    /// The law of `payload` (the browser may switch between the accepted
    /// laws mid-call; in practice it keeps the answer's first).
    pub law: G711,
    /// The G.711 payload.
    pub payload: G711Frame,
}

impl fmt::Debug for InboundFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundFrame")
            .field("timestamp", &self.timestamp)
            .field("sequence", &self.sequence)
            .field("law", &self.law)
            .finish_non_exhaustive()
    }
}

/// Cuts an RTP payload of any whole number of samples into 20 ms frames.
///
/// Browsers send G.711 in 20 ms packets by default, but `a=ptime`/`maxptime`
/// allow 10, 30 or 60 ms; the worker only ever sees 160-byte frames. The
/// reframer keeps one partial frame in place, so it never allocates.
#[derive(Debug)]
pub struct Reframer {
    buf: G711Frame,
    len: usize,
    /// RTP timestamp of `buf[0]`.
    timestamp: u32,
}

impl Default for Reframer {
    fn default() -> Self {
        Self {
            buf: [0; FRAME_SAMPLES],
            len: 0,
            timestamp: 0,
        }
    }
}

impl Reframer {
    /// Feeds one packet's payload; calls `emit(timestamp, frame)` for every
    /// complete frame. A gap in timestamps drops the partial frame rather than
    /// splicing audio from two moments together.
    pub fn push(&mut self, timestamp: u32, payload: &[u8], mut emit: impl FnMut(u32, &G711Frame)) {
        if self.len > 0 && self.timestamp.wrapping_add(self.len as u32) != timestamp {
            self.len = 0;
        }
        if self.len == 0 {
            self.timestamp = timestamp;
        }
        let mut rest = payload;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.len).min(rest.len());
            self.buf[self.len..self.len + take].copy_from_slice(&rest[..take]);
            self.len += take;
            rest = &rest[take..];
            if self.len == FRAME_SAMPLES {
                emit(self.timestamp, &self.buf);
                self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
                self.len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_ms_packets_pass_through_whole() {
        let mut r = Reframer::default();
        let mut out = Vec::new();
        r.push(1000, &[7u8; 160], |ts, f| out.push((ts, f[0])));
        r.push(1160, &[8u8; 160], |ts, f| out.push((ts, f[0])));
        assert_eq!(out, vec![(1000, 7), (1160, 8)]);
    }

    #[test]
    fn ten_ms_packets_are_joined_and_thirty_ms_split() {
        let mut r = Reframer::default();
        let mut out = Vec::new();
        r.push(0, &[1u8; 80], |ts, f| out.push((ts, f[0], f[159])));
        assert!(out.is_empty());
        r.push(80, &[2u8; 80], |ts, f| out.push((ts, f[0], f[159])));
        assert_eq!(out, vec![(0, 1, 2)]);
        out.clear();
        r.push(160, &[3u8; 240], |ts, f| out.push((ts, f[0], f[159])));
        r.push(400, &[4u8; 80], |ts, f| out.push((ts, f[0], f[159])));
        assert_eq!(out, vec![(160, 3, 3), (320, 3, 4)]);
    }

    #[test]
    fn a_timestamp_gap_drops_the_partial_frame() {
        let mut r = Reframer::default();
        let mut out = Vec::new();
        r.push(0, &[1u8; 80], |ts, _| out.push(ts));
        r.push(800, &[2u8; 160], |ts, _| out.push(ts));
        assert_eq!(out, vec![800]);
    }
}
