//! RFC 4733 telephone-events received from the browser, turned into digits.
//!
//! Browsers (`RTCDTMFSender.insertDTMF`) send each key as a run of event
//! packets that share one RTP timestamp, the last three flagged "end". We
//! report a digit once, on the first packet of a run, so the IVR reacts
//! without waiting for the key to be released; the rest of the run and its
//! retransmitted end packets are recognised by their timestamp and ignored.
//!
//! When merged into hotline this should defer to `media::rfc4733`; it is here
//! so the scratch crate stands alone.

/// One decoded telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9, 10 = `*`, 11 = `#`, 12–15 = A–D.
    pub event: u8,
    /// The "E" bit: this packet ends the event.
    pub end: bool,
    /// Duration so far, in RTP clock units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the 4-byte event payload; `None` if it is too short.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let bytes: [u8; 4] = payload.get(..4)?.try_into().ok()?;
        Some(Self {
            event: bytes[0],
            end: bytes[1] & 0x80 != 0,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }

    /// The key this event stands for, if it is a DTMF key (codes 0–15).
    pub fn digit(&self) -> Option<char> {
        const KEYS: &[u8; 16] = b"0123456789*#ABCD";
        KEYS.get(usize::from(self.event)).map(|&b| char::from(b))
    }
}

/// Turns a stream of telephone-event packets into one digit per key press.
#[derive(Debug, Default)]
pub struct DigitDetector {
    /// RTP timestamp of the event run last reported.
    last: Option<u32>,
}

impl DigitDetector {
    /// Feeds one telephone-event packet; returns the digit when this packet
    /// starts a new key press.
    pub fn push(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload)?;
        if self.last == Some(rtp_timestamp) {
            return None;
        }
        let digit = event.digit()?;
        self.last = Some(rtp_timestamp);
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn one_digit_per_run_including_retransmitted_ends() {
        let mut det = DigitDetector::default();
        let mut got = Vec::new();
        for (ts, p) in [
            (100, pkt(5, false, 160)),
            (100, pkt(5, false, 320)),
            (100, pkt(5, true, 640)),
            (100, pkt(5, true, 640)),
            (100, pkt(5, true, 640)),
            (2000, pkt(11, false, 160)),
            (2000, pkt(11, true, 480)),
            (4000, pkt(5, false, 160)),
        ] {
            got.extend(det.push(ts, &p));
        }
        assert_eq!(got, vec!['5', '#', '5']);
    }

    #[test]
    fn malformed_or_non_dtmf_events_are_ignored() {
        let mut det = DigitDetector::default();
        assert_eq!(det.push(1, &[1, 2]), None);
        assert_eq!(det.push(2, &pkt(16, false, 160)), None);
        assert_eq!(det.push(3, &pkt(10, false, 160)), Some('*'));
        assert_eq!(det.push(4, &pkt(15, false, 160)), Some('D'));
    }
}
