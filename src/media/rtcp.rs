//! RTCP reception statistics (RFC 3550 §6.4, appendix A.1, A.3, A.8) and
//! report building with rtc-rtcp.
//!
//! `RtcpStats::on_received` runs per RTP packet and only updates integers;
//! `build_report` allocates, which is fine once every ~5 s.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc_rtcp::packet::{marshal, unmarshal};
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc_rtcp::Packet;
use thiserror::Error;

use super::rtp::SenderStats;

/// Sequence jumps up to this far ahead count as loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers up to this far behind count as reordering (RFC 3550 A.1).
const MAX_MISORDER: u16 = 100;
/// Seconds from 1900 (NTP era 0) to 1970 (Unix epoch).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("cannot encode RTCP report: {0}")]
    Encode(String),
    #[error("malformed RTCP packet: {0}")]
    Malformed(String),
}

/// 64-bit NTP timestamp (32.32 fixed point since 1900) for a time given as
/// the duration since the Unix epoch (the caller reads the wall clock).
pub fn ntp_from_unix(since_unix_epoch: Duration) -> u64 {
    let secs = since_unix_epoch.as_secs() + NTP_UNIX_OFFSET_SECS;
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn duration_to_ntp(d: Duration) -> u64 {
    (d.as_secs() << 32) + (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000
}

/// Middle 32 bits of an NTP timestamp (the "compact" form used by LSR/DLSR).
fn compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Reception state for the remote source (RFC 3550 A.1 `source`).
#[derive(Debug, Clone, Copy)]
struct Reception {
    ssrc: u32,
    base_seq: u32,
    max_seq: u16,
    /// Sequence-number wraps, shifted left 16 (added to max_seq for the extended value).
    cycles: u32,
    /// A seq just after a big jump; if the next packet follows it, the sender restarted.
    bad_seq: Option<u16>,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    last_transit: Option<u32>,
    /// Interarrival jitter in timestamp units, scaled by 16 (A.8).
    jitter_q4: u32,
}

impl Reception {
    fn new(ssrc: u32, seq: u16) -> Self {
        Reception {
            ssrc,
            base_seq: u32::from(seq),
            max_seq: seq,
            cycles: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter_q4: 0,
        }
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative lost, clamped to the 24-bit signed field's positive range.
    fn cumulative_lost(&self) -> u32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(0, 0x7F_FFFF) as u32
    }
}

/// Per-call RTCP bookkeeping: what we received from the remote side, and
/// the timing of its Sender Reports, so we can send SR/RR packets.
#[derive(Debug, Clone)]
pub struct RtcpStats {
    local_ssrc: u32,
    cname: Bytes,
    clock_rate: u32,
    epoch: Instant,
    epoch_ntp: u64,
    reception: Option<Reception>,
    /// Compact NTP time of the last SR from the remote and when it arrived.
    last_sr: Option<(u32, Instant)>,
    round_trip: Option<Duration>,
}

impl RtcpStats {
    /// `epoch` and `epoch_ntp` tie the monotonic clock to wall-clock NTP
    /// time (read the wall clock once, e.g. `ntp_from_unix(SystemTime::now()...)`).
    pub fn new(
        local_ssrc: u32,
        cname: &str,
        clock_rate: u32,
        epoch: Instant,
        epoch_ntp: u64,
    ) -> Self {
        RtcpStats {
            local_ssrc,
            cname: Bytes::copy_from_slice(cname.as_bytes()),
            clock_rate: clock_rate.max(1),
            epoch,
            epoch_ntp,
            reception: None,
            last_sr: None,
            round_trip: None,
        }
    }

    fn ntp_at(&self, now: Instant) -> u64 {
        self.epoch_ntp
            .wrapping_add(duration_to_ntp(now.saturating_duration_since(self.epoch)))
    }

    /// Arrival time in RTP timestamp units since the epoch (wraps like RTP time).
    fn arrival_units(&self, arrival: Instant) -> u32 {
        let nanos = arrival.saturating_duration_since(self.epoch).as_nanos();
        (nanos * u128::from(self.clock_rate) / 1_000_000_000) as u32
    }

    /// Accounts one received RTP packet. No allocation.
    pub fn on_received(&mut self, ssrc: u32, sequence: u16, rtp_timestamp: u32, arrival: Instant) {
        let arrival_units = self.arrival_units(arrival);
        let r = match &mut self.reception {
            Some(r) if r.ssrc == ssrc => r,
            slot => slot.insert(Reception::new(ssrc, sequence)),
        };
        let delta = sequence.wrapping_sub(r.max_seq);
        if r.received == 0 {
            // First packet: nothing to compare with.
        } else if delta < MAX_DROPOUT {
            if sequence < r.max_seq {
                r.cycles = r.cycles.wrapping_add(1 << 16);
            }
            r.max_seq = sequence;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: believe it only if the next packet continues from here.
            if r.bad_seq == Some(sequence) {
                *r = Reception::new(ssrc, sequence);
            } else {
                r.bad_seq = Some(sequence.wrapping_add(1));
                return;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, max unchanged.
        r.received = r.received.wrapping_add(1);

        let transit = arrival_units.wrapping_sub(rtp_timestamp);
        if let Some(last) = r.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16 (A.8).
            r.jitter_q4 = r
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((r.jitter_q4 + 8) >> 4);
        }
        r.last_transit = Some(transit);
    }

    /// Interarrival jitter in timestamp units, as the report carries it.
    pub fn jitter(&self) -> u32 {
        self.reception.map_or(0, |r| r.jitter_q4 >> 4)
    }

    pub fn cumulative_lost(&self) -> u32 {
        self.reception.map_or(0, |r| r.cumulative_lost())
    }

    pub fn extended_highest_sequence(&self) -> u32 {
        self.reception.map_or(0, |r| r.extended_max())
    }

    pub fn packets_received(&self) -> u32 {
        self.reception.map_or(0, |r| r.received)
    }

    /// Round trip time from the last reception report about us that carried LSR/DLSR.
    pub fn round_trip(&self) -> Option<Duration> {
        self.round_trip
    }

    /// Takes in an RTCP compound packet from the remote side (allocates; RTCP is rare):
    /// remembers its Sender Report time for LSR/DLSR and measures round trip time.
    pub fn on_rtcp(&mut self, data: &[u8], now: Instant) -> Result<(), RtcpError> {
        let mut buf = data;
        let packets = unmarshal(&mut buf).map_err(|e| RtcpError::Malformed(e.to_string()))?;
        let now_compact = compact(self.ntp_at(now));
        for p in &packets {
            let any = p.as_any();
            let reports = if let Some(sr) = any.downcast_ref::<SenderReport>() {
                self.last_sr = Some((compact(sr.ntp_time), now));
                &sr.reports
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                &rr.reports
            } else {
                continue;
            };
            for block in reports.iter().filter(|b| b.ssrc == self.local_ssrc) {
                if block.last_sender_report != 0 {
                    // RFC 3550 §6.4.1: RTT = A - LSR - DLSR, in 1/65536 s.
                    let rtt = now_compact
                        .wrapping_sub(block.last_sender_report)
                        .wrapping_sub(block.delay);
                    if rtt < 0x8000_0000 {
                        self.round_trip =
                            Some(Duration::from_nanos(u64::from(rtt) * 1_000_000_000 / 65536));
                    }
                }
            }
        }
        Ok(())
    }

    fn reception_report(&mut self, now: Instant) -> Option<ReceptionReport> {
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = duration_to_ntp(now.saturating_duration_since(at));
                (lsr, compact(delay))
            }
            None => (0, 0),
        };
        let r = self.reception.as_mut()?;
        // Loss fraction over the interval since the last report (A.3).
        let expected = r.expected();
        let expected_interval = expected.wrapping_sub(r.expected_prior);
        let received_interval = r.received.wrapping_sub(r.received_prior);
        r.expected_prior = expected;
        r.received_prior = r.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        Some(ReceptionReport {
            ssrc: r.ssrc,
            fraction_lost,
            total_lost: r.cumulative_lost(),
            last_sequence_number: r.extended_max(),
            jitter: r.jitter_q4 >> 4,
            last_sender_report: lsr,
            delay: dlsr,
        })
    }

    /// Builds a compound RTCP packet: a Sender Report if we have sent RTP
    /// (`sent` from `RtpSender::stats`), else a Receiver Report, followed by
    /// SDES CNAME. Resets the loss-fraction interval.
    pub fn build_report(
        &mut self,
        now: Instant,
        sent: Option<&SenderStats>,
    ) -> Result<Vec<u8>, RtcpError> {
        let reports: Vec<ReceptionReport> = self.reception_report(now).into_iter().collect();
        let first: Box<dyn Packet> = match sent.filter(|s| s.packets > 0) {
            Some(s) => Box::new(SenderReport {
                ssrc: self.local_ssrc,
                ntp_time: self.ntp_at(now),
                rtp_time: s.next_timestamp,
                packet_count: s.packets,
                octet_count: s.octets,
                reports,
                profile_extensions: Bytes::new(),
            }),
            None => Box::new(ReceiverReport {
                ssrc: self.local_ssrc,
                reports,
                profile_extensions: Bytes::new(),
            }),
        };
        let sdes: Box<dyn Packet> = Box::new(SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: self.local_ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: self.cname.clone(),
                }],
            }],
        });
        marshal(&[first, sdes])
            .map(|b| b.to_vec())
            .map_err(|e| RtcpError::Encode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(report: &[u8]) -> Vec<Box<dyn Packet>> {
        let mut b = report;
        unmarshal(&mut b).unwrap()
    }

    fn block(p: &dyn Packet) -> ReceptionReport {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            return sr.reports[0].clone();
        }
        any.downcast_ref::<ReceiverReport>().unwrap().reports[0].clone()
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_unix(Duration::ZERO), NTP_UNIX_OFFSET_SECS << 32);
        assert_eq!(
            ntp_from_unix(Duration::from_millis(1500)),
            ((NTP_UNIX_OFFSET_SECS + 1) << 32) | 0x8000_0000
        );
    }

    #[test]
    fn loss_sequence_and_receiver_report() {
        let t0 = Instant::now();
        let mut s = RtcpStats::new(0xAAAA, "hotline@test", 8000, t0, 1 << 40);
        // 100 packets starting near the wrap, every 5th lost, perfectly paced.
        let mut got = 0;
        for i in 0..100u32 {
            let seq = 65500u16.wrapping_add(i as u16);
            if i % 5 == 4 {
                continue;
            }
            let at = t0 + Duration::from_millis(20 * u64::from(i));
            s.on_received(0xBBBB, seq, 1000 + 160 * i, at);
            got += 1;
        }
        assert_eq!(s.packets_received(), got);
        // Highest received is i = 98 (i = 99 was lost): 65500 + 98 wrapped once.
        assert_eq!(
            s.extended_highest_sequence(),
            (1 << 16) + 65500 + 98 - 65536
        );
        assert_eq!(s.cumulative_lost(), 99 - got);
        assert_eq!(s.jitter(), 0);

        let report = s.build_report(t0 + Duration::from_secs(2), None).unwrap();
        let packets = parse(&report);
        assert_eq!(packets.len(), 2);
        let rr = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .unwrap();
        assert_eq!(rr.ssrc, 0xAAAA);
        let b = block(packets[0].as_ref());
        assert_eq!(b.ssrc, 0xBBBB);
        assert_eq!(b.total_lost, 19);
        assert_eq!(b.last_sequence_number, 65598);
        // 19 of 99 expected lost: 19 * 256 / 99 = 49.
        assert_eq!(b.fraction_lost, 49);
        // Nothing new since: the next interval shows no loss.
        let again = s.build_report(t0 + Duration::from_secs(7), None).unwrap();
        assert_eq!(block(parse(&again)[0].as_ref()).fraction_lost, 0);
    }

    #[test]
    fn jitter_follows_a8() {
        let t0 = Instant::now();
        let mut s = RtcpStats::new(1, "x", 8000, t0, 0);
        // Alternate 10 ms early/late: |D| = 80 timestamp units per packet after the first.
        for i in 0..400u32 {
            let offset = if i % 2 == 0 { 0 } else { 10 };
            let at = t0 + Duration::from_millis(u64::from(20 * i + offset));
            s.on_received(9, i as u16, 160 * i, at);
        }
        // J converges to |D| = 80.
        assert!((78..=80).contains(&s.jitter()), "jitter {}", s.jitter());
    }

    #[test]
    fn sender_report_with_lsr_dlsr_and_round_trip() {
        let t0 = Instant::now();
        let epoch_ntp = ntp_from_unix(Duration::from_secs(1_700_000_000));
        let mut s = RtcpStats::new(0x1111, "agent", 8000, t0, epoch_ntp);
        s.on_received(0x2222, 10, 0, t0);
        // The remote's SR: its NTP time, arriving at t0 + 1 s.
        let remote_sr = SenderReport {
            ssrc: 0x2222,
            ntp_time: 0x0001_2345_6789_0000,
            rtp_time: 0,
            packet_count: 1,
            octet_count: 160,
            reports: vec![],
            profile_extensions: Bytes::new(),
        };
        let raw = marshal(&[Box::new(remote_sr) as Box<dyn Packet>]).unwrap();
        s.on_rtcp(&raw, t0 + Duration::from_secs(1)).unwrap();
        let sent = SenderStats {
            ssrc: 0x1111,
            packets: 250,
            octets: 40_000,
            next_timestamp: 40_000,
        };
        let now = t0 + Duration::from_millis(1500);
        let report = s.build_report(now, Some(&sent)).unwrap();
        let packets = parse(&report);
        let sr = packets[0].as_any().downcast_ref::<SenderReport>().unwrap();
        assert_eq!(sr.ssrc, 0x1111);
        assert_eq!(sr.packet_count, 250);
        assert_eq!(sr.octet_count, 40_000);
        assert_eq!(sr.rtp_time, 40_000);
        assert_eq!(sr.ntp_time, epoch_ntp + (3 << 31));
        let b = &sr.reports[0];
        assert_eq!(b.last_sender_report, 0x2345_6789);
        assert_eq!(b.delay, 0x8000); // 0.5 s in 1/65536 s

        // The remote answers with a block about us: LSR = our SR time, DLSR = 0.25 s,
        // arriving 0.35 s after we sent: RTT 100 ms.
        let back = ReceiverReport {
            ssrc: 0x2222,
            reports: vec![ReceptionReport {
                ssrc: 0x1111,
                last_sender_report: compact(sr.ntp_time),
                delay: 0x4000,
                ..Default::default()
            }],
            profile_extensions: Bytes::new(),
        };
        let raw = marshal(&[Box::new(back) as Box<dyn Packet>]).unwrap();
        s.on_rtcp(&raw, now + Duration::from_millis(350)).unwrap();
        let rtt = s.round_trip().unwrap().as_millis();
        assert!((99..=101).contains(&rtt), "rtt {rtt}");

        assert!(s.on_rtcp(&[0x80, 200, 0], now).is_err());
    }

    #[test]
    fn restarted_sender_and_new_ssrc() {
        let t0 = Instant::now();
        let mut s = RtcpStats::new(1, "x", 8000, t0, 0);
        for i in 0..10u16 {
            s.on_received(5, 100 + i, u32::from(i) * 160, t0);
        }
        // One stray far jump is ignored; two in sequence mean a restart.
        s.on_received(5, 30_000, 0, t0);
        assert_eq!(s.packets_received(), 10);
        s.on_received(5, 30_001, 160, t0);
        assert_eq!(s.packets_received(), 1);
        assert_eq!(s.extended_highest_sequence(), 30_001);
        s.on_received(6, 7, 0, t0);
        assert_eq!(s.packets_received(), 1);
        assert_eq!(s.extended_highest_sequence(), 7);
        assert_eq!(s.cumulative_lost(), 0);
    }
}
