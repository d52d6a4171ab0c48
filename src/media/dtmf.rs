//! RFC 4733 telephone-events (DTMF over RTP): payload codec, a receiver that
//! reports each key press once, and a sender for outbound digits.
//!
//! The telephone-event payload type is negotiated (SIPp uses 96, most phones
//! 101), so the receiver never looks at payload types itself unless asked to
//! through [`DtmfReceiver::push_rtp`], which drops every other type.

use thiserror::Error;

use super::rtp::RtpPacket;

/// Telephone-event payload size (RFC 4733 §2.3).
pub const EVENT_PAYLOAD_LEN: usize = 4;
/// Samples per 20 ms at 8 kHz: the update interval of the sender.
const UPDATE_SAMPLES: u32 = 160;
/// How many times the final (end) packet is sent (RFC 4733 §2.5.1.4).
const END_REPEATS: u8 = 3;
/// An event timestamp this far behind the current one is a new stream
/// (a restarted sender), not a late retransmit: 10 s at 8 kHz.
const STALE_TIMESTAMP_SPAN: u32 = 80_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload of {0} bytes, expected at least 4")]
    TooShort(usize),
    #[error("'{0}' is not a DTMF digit")]
    NotADigit(char),
}

/// Event code (0-15) for a DTMF key: '0'-'9', '*', '#', 'A'-'D'.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The DTMF key for an event code, if it is one (16+ are other tones).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One RFC 4733 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::TooShort(payload.len())),
        }
    }

    pub fn to_bytes(&self) -> [u8; EVENT_PAYLOAD_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// Turns a stream of telephone-event packets into key presses.
///
/// A key press is one event timestamp: the first packet seen with a new
/// timestamp reports the digit (so a lost start packet does not lose the
/// digit), and every later packet with that timestamp (updates, the three
/// end packets, retransmits) is ignored.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    last_timestamp: Option<u32>,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget the current event (call on a new SSRC).
    pub fn reset(&mut self) {
        self.last_timestamp = None;
    }

    /// Feeds one telephone-event payload with its RTP timestamp; returns the
    /// digit when this packet starts a new key press. Malformed payloads and
    /// non-DTMF events are ignored.
    pub fn push(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let digit = TelephoneEvent::parse(payload).ok()?.digit()?;
        if let Some(last) = self.last_timestamp {
            let ahead = rtp_timestamp.wrapping_sub(last);
            let behind = last.wrapping_sub(rtp_timestamp);
            // Same event, or a late packet of an earlier one.
            if ahead == 0 || (ahead >= 0x8000_0000 && behind < STALE_TIMESTAMP_SPAN) {
                return None;
            }
        }
        self.last_timestamp = Some(rtp_timestamp);
        Some(digit)
    }

    /// Same as [`push`](Self::push), for callers that have the marker bit at
    /// hand. The timestamp alone decides: a retransmitted start packet
    /// carries the marker too.
    pub fn push_with_marker(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<char> {
        let _ = marker;
        self.push(rtp_timestamp, payload)
    }

    /// Feeds a parsed RTP packet; packets of any other payload type (audio,
    /// comfort noise, SIPp's PT 97 filler) are ignored.
    pub fn push_rtp(&mut self, packet: &RtpPacket<'_>, telephone_event_pt: u8) -> Option<char> {
        if packet.payload_type() != telephone_event_pt {
            return None;
        }
        self.push(packet.timestamp(), packet.payload())
    }
}

/// One packet the sender wants on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub marker: bool,
    /// The event's start timestamp (same for every packet of the event).
    pub timestamp: u32,
    pub payload: [u8; EVENT_PAYLOAD_LEN],
}

/// Produces the RFC 4733 packet sequence for one digit: a start packet with
/// the marker, an update every 20 ms, and the end packet three times.
/// Call [`next_packet`](Self::next_packet) once per 20 ms tick and send the
/// result with `RtpSender::write_event(.., samples = 160)`.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    start_timestamp: u32,
    total: u16,
    elapsed: u16,
    ends_sent: u8,
}

impl DtmfSender {
    /// `start_timestamp` is the RTP timestamp of the tick the tone starts in
    /// (`RtpSender::timestamp()`); `duration_ms` is rounded up to 20 ms steps.
    pub fn new(
        digit: char,
        start_timestamp: u32,
        duration_ms: u32,
        volume: u8,
    ) -> Result<Self, DtmfError> {
        let event = digit_to_event(digit).ok_or(DtmfError::NotADigit(digit))?;
        let ticks = duration_ms
            .div_ceil(20)
            .clamp(1, u32::from(u16::MAX) / UPDATE_SAMPLES);
        Ok(DtmfSender {
            event,
            volume: volume.min(63),
            start_timestamp,
            total: (ticks * UPDATE_SAMPLES) as u16,
            elapsed: 0,
            ends_sent: 0,
        })
    }

    pub fn is_done(&self) -> bool {
        self.ends_sent >= END_REPEATS
    }

    /// The packet for this tick, or `None` once the end packets went out.
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        if self.is_done() {
            return None;
        }
        let marker = self.elapsed == 0;
        self.elapsed = self
            .elapsed
            .saturating_add(UPDATE_SAMPLES as u16)
            .min(self.total);
        let end = self.elapsed >= self.total;
        if end {
            self.ends_sent += 1;
        }
        let ev = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.elapsed,
        };
        Some(DtmfPacket {
            marker,
            timestamp: self.start_timestamp,
            payload: ev.to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{write_rtp, RtpHeader};

    #[test]
    fn digits_and_events_map_both_ways() {
        let all = "0123456789*#ABCD";
        for (code, d) in all.chars().enumerate() {
            assert_eq!(digit_to_event(d), Some(code as u8));
            assert_eq!(event_to_digit(code as u8), Some(d));
        }
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn payload_round_trip() {
        let raw = [5, 0x80 | 10, 0x03, 0x20];
        let ev = TelephoneEvent::parse(&raw).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), raw);
        assert_eq!(ev.digit(), Some('5'));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::TooShort(3))
        );
    }

    fn packets(sender: &mut DtmfSender) -> Vec<DtmfPacket> {
        std::iter::from_fn(|| sender.next_packet()).collect()
    }

    #[test]
    fn sender_produces_start_updates_and_three_ends() {
        let mut s = DtmfSender::new('#', 4000, 100, 10).unwrap();
        let ps = packets(&mut s);
        assert_eq!(ps.len(), 7);
        let evs: Vec<TelephoneEvent> = ps
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert!(ps[0].marker && ps[1..].iter().all(|p| !p.marker));
        assert!(ps.iter().all(|p| p.timestamp == 4000));
        let durations: Vec<u16> = evs.iter().map(|e| e.duration).collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = evs.iter().map(|e| e.end).collect();
        assert_eq!(ends, vec![false, false, false, false, true, true, true]);
        assert!(evs.iter().all(|e| e.event == 11 && e.volume == 10));
        assert!(s.is_done() && s.next_packet().is_none());
        assert_eq!(
            DtmfSender::new('x', 0, 100, 10).unwrap_err(),
            DtmfError::NotADigit('x')
        );
    }

    #[test]
    fn receiver_reports_each_press_once() {
        let mut rx = DtmfReceiver::new();
        let mut got = String::new();
        let mut ts = 1000u32;
        for d in "1#1".chars() {
            let mut tx = DtmfSender::new(d, ts, 120, 10).unwrap();
            let ps = packets(&mut tx);
            for p in &ps {
                got.extend(rx.push_with_marker(p.timestamp, p.marker, &p.payload));
            }
            // A retransmit of the whole event later changes nothing.
            for p in &ps {
                got.extend(rx.push(p.timestamp, &p.payload));
            }
            ts = ts.wrapping_add(2000);
        }
        assert_eq!(got, "1#1");
    }

    #[test]
    fn receiver_survives_lost_start_reordering_and_wrap() {
        let mut rx = DtmfReceiver::new();
        let start = u32::MAX - 100;
        let mut tx = DtmfSender::new('7', start, 200, 10).unwrap();
        let ps = packets(&mut tx);
        // Start and first two updates lost.
        let mut got: Vec<char> = ps[3..]
            .iter()
            .filter_map(|p| rx.push(p.timestamp, &p.payload))
            .collect();
        // Next event's timestamp wraps past zero.
        let mut tx = DtmfSender::new('8', start.wrapping_add(2400), 60, 10).unwrap();
        let ps8 = packets(&mut tx);
        got.extend(rx.push(ps8[0].timestamp, &ps8[0].payload));
        // A late end packet of '7' arrives after '8' began: ignored.
        got.extend(rx.push(ps[ps.len() - 1].timestamp, &ps[ps.len() - 1].payload));
        got.extend(
            ps8[1..]
                .iter()
                .filter_map(|p| rx.push(p.timestamp, &p.payload)),
        );
        assert_eq!(got, vec!['7', '8']);
        // Garbage and non-DTMF events are ignored.
        assert_eq!(rx.push(5, &[1, 2]), None);
        assert_eq!(rx.push(99_999, &[16, 0, 0, 160]), None);
        // A restarted sender with a much older timestamp is a new press.
        let restarted = start.wrapping_add(2400).wrapping_sub(100_000);
        assert_eq!(rx.push(restarted, &[3, 10, 0, 160]), Some('3'));
    }

    #[test]
    fn push_rtp_ignores_other_payload_types() {
        let mut rx = DtmfReceiver::new();
        let mut buf = [0u8; 64];
        let filler = RtpHeader {
            payload_type: 97,
            timestamp: 100,
            ..Default::default()
        };
        let n = write_rtp(&mut buf, &filler, &[1, 0, 0, 160]).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(rx.push_rtp(&p, 96), None);
        let event = RtpHeader {
            payload_type: 96,
            ..filler
        };
        let n = write_rtp(&mut buf, &event, &[1, 0, 0, 160]).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(rx.push_rtp(&p, 96), Some('1'));
        assert_eq!(rx.push_rtp(&p, 96), None);
    }
}
