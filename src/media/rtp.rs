//! RTP (RFC 3550 §5.1) fixed header: a zero-copy view over a received
//! datagram, a writer into a caller buffer, and the per-call sending state.
//!
//! We do not use rtc-rtp on this path: its `Packet::unmarshal` copies the
//! payload into a fresh `Bytes` per packet (see benches/media.rs for numbers).

use thiserror::Error;

/// Fixed RTP header size, without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;
const RTP_VERSION: u8 = 2;

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("datagram of {len} bytes is shorter than the 12-byte RTP header")]
    TooShort { len: usize },
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    #[error("{count} CSRCs do not fit in a {len}-byte datagram")]
    CsrcOverrun { count: u8, len: usize },
    #[error("header extension runs past the end of the datagram")]
    ExtensionOverrun,
    #[error("padding length {padding} is invalid for a {available}-byte payload")]
    BadPadding { padding: u8, available: usize },
    #[error("buffer of {available} bytes cannot hold a {needed}-byte RTP packet")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
}

/// A parsed view over an RTP datagram; borrows the bytes, copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    data: &'a [u8],
    /// Offset of the extension header (profile word), when present.
    extension_at: Option<usize>,
    payload_start: usize,
    payload_end: usize,
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> RtpPacket<'a> {
    /// Validates the header and locates the payload. Never panics on any input.
    pub fn parse(data: &'a [u8]) -> Result<Self, RtpError> {
        let len = data.len();
        let (&first, _) = data
            .split_first()
            .filter(|_| len >= RTP_HEADER_LEN)
            .ok_or(RtpError::TooShort { len })?;
        let version = first >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let csrc_count = first & 0x0F;
        let mut offset = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if offset > len {
            return Err(RtpError::CsrcOverrun {
                count: csrc_count,
                len,
            });
        }
        let mut extension_at = None;
        if first & 0x10 != 0 {
            let words = be16(data, offset + 2).ok_or(RtpError::ExtensionOverrun)?;
            let end = offset + 4 + 4 * usize::from(words);
            if end > len {
                return Err(RtpError::ExtensionOverrun);
            }
            extension_at = Some(offset);
            offset = end;
        }
        let mut payload_end = len;
        if first & 0x20 != 0 {
            let available = len - offset;
            // The last octet counts the padding, itself included.
            let padding = data.last().copied().unwrap_or(0);
            if padding == 0 || usize::from(padding) > available {
                return Err(RtpError::BadPadding { padding, available });
            }
            payload_end = len - usize::from(padding);
        }
        Ok(RtpPacket {
            data,
            extension_at,
            payload_start: offset,
            payload_end,
        })
    }

    fn first(&self) -> u8 {
        self.data.first().copied().unwrap_or(0)
    }

    fn second(&self) -> u8 {
        self.data.get(1).copied().unwrap_or(0)
    }

    pub fn version(&self) -> u8 {
        self.first() >> 6
    }

    pub fn has_padding(&self) -> bool {
        self.first() & 0x20 != 0
    }

    pub fn has_extension(&self) -> bool {
        self.extension_at.is_some()
    }

    pub fn csrc_count(&self) -> u8 {
        self.first() & 0x0F
    }

    pub fn marker(&self) -> bool {
        self.second() & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.second() & 0x7F
    }

    pub fn sequence(&self) -> u16 {
        be16(self.data, 2).unwrap_or(0)
    }

    pub fn timestamp(&self) -> u32 {
        be32(self.data, 4).unwrap_or(0)
    }

    pub fn ssrc(&self) -> u32 {
        be32(self.data, 8).unwrap_or(0)
    }

    /// The `index`-th contributing source, if there is one.
    pub fn csrc(&self, index: usize) -> Option<u32> {
        if index >= usize::from(self.csrc_count()) {
            return None;
        }
        be32(self.data, RTP_HEADER_LEN + 4 * index)
    }

    /// Extension profile word and extension data (RFC 3550 §5.3.1).
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        let at = self.extension_at?;
        let profile = be16(self.data, at)?;
        self.data
            .get(at + 4..self.payload_start)
            .map(|ext| (profile, ext))
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        self.data
            .get(self.payload_start..self.payload_end)
            .unwrap_or(&[])
    }

    /// The fields we send with, copied out.
    pub fn header(&self) -> RtpHeader {
        RtpHeader {
            marker: self.marker(),
            payload_type: self.payload_type(),
            sequence: self.sequence(),
            timestamp: self.timestamp(),
            ssrc: self.ssrc(),
        }
    }
}

/// The header fields of a packet we send (no CSRCs, extension or padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Writes a header and payload into `buf`; returns the packet length.
pub fn write_rtp(buf: &mut [u8], hdr: &RtpHeader, payload: &[u8]) -> Result<usize, RtpError> {
    if hdr.payload_type > 0x7F {
        return Err(RtpError::BadPayloadType(hdr.payload_type));
    }
    let needed = RTP_HEADER_LEN + payload.len();
    let available = buf.len();
    let (head, rest) = buf
        .get_mut(..needed)
        .map(|b| b.split_at_mut(RTP_HEADER_LEN))
        .ok_or(RtpError::BufferTooSmall { needed, available })?;
    head[0] = RTP_VERSION << 6;
    head[1] = (u8::from(hdr.marker) << 7) | hdr.payload_type;
    head[2..4].copy_from_slice(&hdr.sequence.to_be_bytes());
    head[4..8].copy_from_slice(&hdr.timestamp.to_be_bytes());
    head[8..12].copy_from_slice(&hdr.ssrc.to_be_bytes());
    rest.copy_from_slice(payload);
    Ok(needed)
}

/// What a sender has sent so far: the figures an RTCP Sender Report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderStats {
    pub ssrc: u32,
    pub packets: u32,
    /// Payload octets, headers excluded (RFC 3550 §6.4.1).
    pub octets: u32,
    /// The RTP timestamp the next audio packet will carry.
    pub next_timestamp: u32,
}

/// Outgoing stream state for one call leg: SSRC, sequence and timestamp.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    marker_pending: bool,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// Starting sequence and timestamp are derived from the SSRC, which the
    /// caller picks at random (RFC 3550 wants all three unpredictable).
    pub fn new(ssrc: u32) -> Self {
        let mixed = ssrc.wrapping_mul(0x9E37_79B9).rotate_left(13);
        Self::with_start(ssrc, (mixed >> 16) as u16, mixed.wrapping_mul(0x85EB_CA6B))
    }

    pub fn with_start(ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        RtpSender {
            ssrc,
            sequence,
            timestamp,
            marker_pending: true,
            packets: 0,
            octets: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number of the next packet.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// RTP timestamp of the next audio packet.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The next packet starts a talk spurt and carries the marker bit.
    pub fn start_talkspurt(&mut self) {
        self.marker_pending = true;
    }

    /// Advances the clock without sending (silence suppression); the next
    /// packet then starts a new talk spurt.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker_pending = true;
    }

    /// Writes one audio packet covering `samples` samples into `buf`.
    pub fn write(
        &mut self,
        buf: &mut [u8],
        payload_type: u8,
        payload: &[u8],
        samples: u32,
    ) -> Result<usize, RtpError> {
        let hdr = RtpHeader {
            marker: self.marker_pending,
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        let len = write_rtp(buf, &hdr, payload)?;
        self.marker_pending = false;
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.count(payload.len());
        Ok(len)
    }

    /// Writes a packet with an explicit timestamp and marker (RFC 4733 events
    /// keep the event's start timestamp), then advances the audio clock by
    /// `samples` so audio resumes in step.
    pub fn write_event(
        &mut self,
        buf: &mut [u8],
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        samples: u32,
    ) -> Result<usize, RtpError> {
        let hdr = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
        };
        let len = write_rtp(buf, &hdr, payload)?;
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.count(payload.len());
        Ok(len)
    }

    fn count(&mut self, payload_len: usize) {
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self
            .octets
            .wrapping_add(u32::try_from(payload_len).unwrap_or(u32::MAX));
    }

    pub fn stats(&self) -> SenderStats {
        SenderStats {
            ssrc: self.ssrc,
            packets: self.packets,
            octets: self.octets,
            next_timestamp: self.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_packet() -> Vec<u8> {
        let mut p = vec![
            0x80,
            0x80 | 8,
            0x12,
            0x34,
            0xDE,
            0xAD,
            0xBE,
            0xEF,
            0x01,
            0x02,
            0x03,
            0x04,
        ];
        p.extend_from_slice(&[0xD5; 160]);
        p
    }

    #[test]
    fn parses_a_plain_packet() {
        let data = sample_packet();
        let p = RtpPacket::parse(&data).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence(), 0x1234);
        assert_eq!(p.timestamp(), 0xDEAD_BEEF);
        assert_eq!(p.ssrc(), 0x0102_0304);
        assert_eq!(p.payload().len(), 160);
        assert_eq!(p.csrc_count(), 0);
        assert!(!p.has_extension() && !p.has_padding());
        assert_eq!(p.csrc(0), None);
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut d = vec![0x80 | 0x20 | 0x10 | 2, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[0, 0, 0, 0xAA, 0, 0, 0, 0xBB]); // 2 CSRCs
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // 1-word extension
        d.extend_from_slice(&[9, 9, 9]); // payload
        d.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let p = RtpPacket::parse(&d).unwrap();
        assert_eq!(p.csrc(0), Some(0xAA));
        assert_eq!(p.csrc(1), Some(0xBB));
        assert_eq!(p.csrc(2), None);
        assert_eq!(p.extension(), Some((0xBEDE, &[1u8, 2, 3, 4][..])));
        assert_eq!(p.payload(), &[9, 9, 9]);
    }

    #[test]
    fn refuses_malformed_datagrams() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]).unwrap_err(),
            RtpError::TooShort { len: 11 }
        );
        assert_eq!(
            RtpPacket::parse(&[]).unwrap_err(),
            RtpError::TooShort { len: 0 }
        );
        let mut v1 = sample_packet();
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1).unwrap_err(), RtpError::BadVersion(1));
        let mut csrc = [0u8; 20];
        csrc[0] = 0x80 | 3;
        assert!(matches!(
            RtpPacket::parse(&csrc),
            Err(RtpError::CsrcOverrun { count: 3, .. })
        ));
        let mut ext = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 5];
        assert_eq!(
            RtpPacket::parse(&ext).unwrap_err(),
            RtpError::ExtensionOverrun
        );
        ext.truncate(14);
        assert_eq!(
            RtpPacket::parse(&ext).unwrap_err(),
            RtpError::ExtensionOverrun
        );
        let mut pad = sample_packet();
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 200; // more than the 160-byte payload
        assert!(matches!(
            RtpPacket::parse(&pad),
            Err(RtpError::BadPadding { padding: 200, .. })
        ));
        *pad.last_mut().unwrap() = 0;
        assert!(matches!(
            RtpPacket::parse(&pad),
            Err(RtpError::BadPadding { padding: 0, .. })
        ));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes() {
        // Deterministic pseudo-random datagrams of every length up to 64.
        let mut x = 0x1234_5678u32;
        for len in 0..64 {
            for _ in 0..200 {
                let d: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x as u8) | 0x80
                    })
                    .collect();
                if let Ok(p) = RtpPacket::parse(&d) {
                    assert!(p.payload().len() <= len);
                    let _ = (p.extension(), p.csrc(3), p.header());
                }
            }
        }
    }

    #[test]
    fn write_then_parse_round_trips() {
        let hdr = RtpHeader {
            marker: true,
            payload_type: 0,
            sequence: 65535,
            timestamp: 123_456,
            ssrc: 0xCAFE_F00D,
        };
        let mut buf = [0u8; 200];
        let n = write_rtp(&mut buf, &hdr, &[0xFF; 160]).unwrap();
        assert_eq!(n, 172);
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.header(), hdr);
        assert_eq!(p.payload(), &[0xFF; 160][..]);
        let mut small = [0u8; 100];
        assert_eq!(
            write_rtp(&mut small, &hdr, &[0; 160]),
            Err(RtpError::BufferTooSmall {
                needed: 172,
                available: 100
            })
        );
        let bad = RtpHeader {
            payload_type: 128,
            ..hdr
        };
        assert_eq!(
            write_rtp(&mut buf, &bad, &[]),
            Err(RtpError::BadPayloadType(128))
        );
    }

    #[test]
    fn sender_wraps_sequence_advances_timestamp_and_marks_talkspurts() {
        let mut s = RtpSender::with_start(7, 65534, u32::MAX - 100);
        let mut buf = [0u8; 200];
        let mut seen = Vec::new();
        for _ in 0..3 {
            let n = s.write(&mut buf, 0, &[0xFF; 160], 160).unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            seen.push((p.sequence(), p.timestamp(), p.marker(), p.ssrc()));
        }
        assert_eq!(
            seen,
            vec![
                (65534, u32::MAX - 100, true, 7),
                (65535, 59, false, 7),
                (0, 219, false, 7),
            ]
        );
        s.skip(1600);
        let n = s.write(&mut buf, 0, &[0xFF; 160], 160).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert!(p.marker());
        assert_eq!(p.timestamp(), 219 + 160 + 1600);
        assert_eq!(
            s.stats(),
            SenderStats {
                ssrc: 7,
                packets: 4,
                octets: 640,
                next_timestamp: 219 + 320 + 1600
            }
        );
        // A failed write changes nothing.
        let mut tiny = [0u8; 4];
        assert!(s.write(&mut tiny, 0, &[0; 160], 160).is_err());
        assert_eq!(s.stats().packets, 4);
        assert_eq!(s.sequence(), 2);
    }

    #[test]
    fn new_sender_starts_from_unpredictable_values() {
        let a = RtpSender::new(1);
        let b = RtpSender::new(2);
        assert_ne!((a.sequence(), a.timestamp()), (b.sequence(), b.timestamp()));
    }
}
