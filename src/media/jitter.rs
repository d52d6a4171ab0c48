//! Jitter buffer for 20 ms G.711 frames: a fixed ring of slots indexed by
//! RTP sequence number, filled as packets arrive and drained by one `pop()`
//! per 20 ms tick. All memory is allocated in `new`.

use thiserror::Error;

/// Ring size: 640 ms of 20 ms frames.
pub const JITTER_SLOTS: usize = 32;
/// Largest payload a slot holds (40 ms of G.711, for peers using ptime 40).
pub const MAX_FRAME_BYTES: usize = 320;
/// Default playout delay.
pub const DEFAULT_TARGET_MS: u32 = 60;
const FRAME_MS: u32 = 20;
/// A sequence jump beyond this (2 s of frames) means the sender restarted.
const MAX_JUMP: i16 = 100;
/// This many late packets in a row also means the sender restarted (behind us).
const MAX_LATE_RUN: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JitterError {
    #[error("frame of {len} bytes exceeds the jitter buffer's {MAX_FRAME_BYTES}-byte slots")]
    FrameTooLarge { len: usize },
}

/// What `push` did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Stored,
    /// Already held; dropped.
    Duplicate,
    /// Its turn to play has passed; dropped.
    Late,
    /// New SSRC or a sequence jump: the buffer restarted with this packet.
    Reset,
}

/// What to play this tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    Frame {
        sequence: u16,
        timestamp: u32,
        payload: &'a [u8],
    },
    /// This frame is missing but later ones arrived: conceal it (repeat the
    /// last frame or play silence).
    Lost,
    /// Nothing to play yet (before the first packet, while filling to the
    /// target depth, or after the sender paused): play silence.
    Empty,
}

/// Counters for diagnostics and call records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub stored: u64,
    pub duplicates: u64,
    pub late: u64,
    pub lost: u64,
    /// Frames dropped to bring the delay back down.
    pub dropped: u64,
    pub resets: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    filled: bool,
    sequence: u16,
    timestamp: u32,
    len: u16,
    data: [u8; MAX_FRAME_BYTES],
}

const EMPTY_SLOT: Slot = Slot {
    filled: false,
    sequence: 0,
    timestamp: 0,
    len: 0,
    data: [0; MAX_FRAME_BYTES],
};

#[derive(Debug, Clone)]
pub struct JitterBuffer {
    slots: Box<[Slot; JITTER_SLOTS]>,
    target_frames: u16,
    max_frames: u16,
    ssrc: Option<u32>,
    started: bool,
    playing: bool,
    next_seq: u16,
    highest_seq: u16,
    late_run: u8,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_TARGET_MS)
    }
}

fn slot_index(seq: u16) -> usize {
    usize::from(seq) % JITTER_SLOTS
}

impl JitterBuffer {
    /// `target_ms` is the playout delay the buffer fills to before playing
    /// (rounded up to 20 ms, at least one frame, at most half the ring).
    pub fn new(target_ms: u32) -> Self {
        let target = target_ms
            .div_ceil(FRAME_MS)
            .clamp(1, JITTER_SLOTS as u32 / 2) as u16;
        JitterBuffer {
            slots: Box::new([EMPTY_SLOT; JITTER_SLOTS]),
            target_frames: target,
            // Beyond this the delay has grown (a burst after a stall): drop back down.
            max_frames: target * 2 + 2,
            ssrc: None,
            started: false,
            playing: false,
            next_seq: 0,
            highest_seq: 0,
            late_run: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn target_ms(&self) -> u32 {
        u32::from(self.target_frames) * FRAME_MS
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Frames from the next to play up to the newest received (gaps included).
    pub fn depth(&self) -> usize {
        if !self.started {
            return 0;
        }
        let ahead = self.highest_seq.wrapping_sub(self.next_seq) as i16;
        usize::try_from(i32::from(ahead) + 1).unwrap_or(0)
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        for slot in self.slots.iter_mut() {
            slot.filled = false;
        }
        self.ssrc = Some(ssrc);
        self.started = true;
        self.playing = false;
        self.next_seq = seq;
        self.highest_seq = seq;
        self.late_run = 0;
    }

    /// Offers one received packet. No allocation.
    pub fn push(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<PushOutcome, JitterError> {
        let len = payload.len();
        if len > MAX_FRAME_BYTES {
            return Err(JitterError::FrameTooLarge { len });
        }
        let mut outcome = PushOutcome::Stored;
        if !self.started {
            self.restart(ssrc, sequence);
        } else if self.ssrc != Some(ssrc) {
            self.restart(ssrc, sequence);
            outcome = PushOutcome::Reset;
        } else {
            let ahead = sequence.wrapping_sub(self.next_seq) as i16;
            if ahead < 0 {
                self.late_run += 1;
                if ahead >= -MAX_JUMP && self.late_run < MAX_LATE_RUN {
                    self.stats.late += 1;
                    return Ok(PushOutcome::Late);
                }
                self.restart(ssrc, sequence);
                outcome = PushOutcome::Reset;
            } else if ahead > MAX_JUMP {
                self.restart(ssrc, sequence);
                outcome = PushOutcome::Reset;
            } else if ahead as usize >= JITTER_SLOTS {
                // Too far ahead for the ring: give up the oldest frames.
                let new_next = sequence.wrapping_sub(JITTER_SLOTS as u16 - 1);
                while self.next_seq != new_next {
                    self.discard_next();
                }
            }
        }
        if outcome == PushOutcome::Reset {
            self.stats.resets += 1;
        }
        self.late_run = 0;

        let slot = &mut self.slots[slot_index(sequence)];
        if slot.filled && slot.sequence == sequence {
            self.stats.duplicates += 1;
            return Ok(PushOutcome::Duplicate);
        }
        slot.filled = true;
        slot.sequence = sequence;
        slot.timestamp = timestamp;
        slot.len = len as u16;
        if let Some(dst) = slot.data.get_mut(..len) {
            dst.copy_from_slice(payload);
        }
        self.stats.stored += 1;
        if (sequence.wrapping_sub(self.highest_seq) as i16) > 0 {
            self.highest_seq = sequence;
        }
        Ok(outcome)
    }

    /// Drops the frame due next, whether it arrived or not.
    fn discard_next(&mut self) {
        let slot = &mut self.slots[slot_index(self.next_seq)];
        if slot.filled && slot.sequence == self.next_seq {
            self.stats.dropped += 1;
        } else {
            self.stats.lost += 1;
        }
        slot.filled = false;
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// Called once per 20 ms tick: the frame to play now. No allocation.
    pub fn pop(&mut self) -> Playout<'_> {
        let depth = self.depth();
        if depth == 0 {
            // Nothing after what we played: rebuffer before playing again.
            self.playing = false;
            return Playout::Empty;
        }
        if !self.playing {
            if depth < usize::from(self.target_frames) {
                return Playout::Empty;
            }
            self.playing = true;
        }
        let mut depth = depth;
        while depth > usize::from(self.max_frames) {
            self.discard_next();
            depth -= 1;
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let slot = &mut self.slots[slot_index(seq)];
        if slot.filled && slot.sequence == seq {
            slot.filled = false;
            let len = usize::from(slot.len);
            Playout::Frame {
                sequence: seq,
                timestamp: slot.timestamp,
                payload: slot.data.get(..len).unwrap_or(&[]),
            }
        } else {
            self.stats.lost += 1;
            Playout::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u16) -> [u8; 160] {
        [seq as u8; 160]
    }

    /// What pop returned, compactly: Some(seq) for a frame, None for Lost, "E" as u32::MAX.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    enum Got {
        F(u16),
        Lost,
        Empty,
    }

    fn pop(jb: &mut JitterBuffer) -> Got {
        match jb.pop() {
            Playout::Frame {
                sequence,
                timestamp,
                payload,
            } => {
                assert_eq!(payload, &frame(sequence)[..]);
                assert_eq!(timestamp, u32::from(sequence) * 160);
                Got::F(sequence)
            }
            Playout::Lost => Got::Lost,
            Playout::Empty => Got::Empty,
        }
    }

    fn push(jb: &mut JitterBuffer, ssrc: u32, seq: u16) -> PushOutcome {
        jb.push(ssrc, seq, u32::from(seq) * 160, &frame(seq))
            .unwrap()
    }

    #[test]
    fn fills_to_target_then_plays_in_order() {
        let mut jb = JitterBuffer::new(60);
        assert_eq!(jb.target_ms(), 60);
        assert_eq!(pop(&mut jb), Got::Empty);
        push(&mut jb, 1, 10);
        assert_eq!(pop(&mut jb), Got::Empty);
        push(&mut jb, 1, 11);
        assert_eq!(pop(&mut jb), Got::Empty);
        push(&mut jb, 1, 12);
        assert_eq!(pop(&mut jb), Got::F(10));
        push(&mut jb, 1, 13);
        assert_eq!(pop(&mut jb), Got::F(11));
        assert_eq!(pop(&mut jb), Got::F(12));
        assert_eq!(pop(&mut jb), Got::F(13));
        // Sender paused: empty, then rebuffer.
        assert_eq!(pop(&mut jb), Got::Empty);
        push(&mut jb, 1, 14);
        assert_eq!(pop(&mut jb), Got::Empty);
    }

    #[test]
    fn reorders_drops_duplicates_and_reports_loss() {
        let mut jb = JitterBuffer::new(40);
        assert_eq!(push(&mut jb, 1, 100), PushOutcome::Stored);
        assert_eq!(push(&mut jb, 1, 102), PushOutcome::Stored);
        assert_eq!(push(&mut jb, 1, 101), PushOutcome::Stored);
        assert_eq!(push(&mut jb, 1, 101), PushOutcome::Duplicate);
        assert_eq!(push(&mut jb, 1, 104), PushOutcome::Stored); // 103 lost
        let got: Vec<Got> = (0..5).map(|_| pop(&mut jb)).collect();
        assert_eq!(
            got,
            vec![
                Got::F(100),
                Got::F(101),
                Got::F(102),
                Got::Lost,
                Got::F(104)
            ]
        );
        // 103 arriving now is late.
        assert_eq!(push(&mut jb, 1, 103), PushOutcome::Late);
        let s = jb.stats();
        assert_eq!((s.stored, s.duplicates, s.late, s.lost), (4, 1, 1, 1));
    }

    #[test]
    fn sequence_wrap() {
        let mut jb = JitterBuffer::new(40);
        let seqs = [65533u16, 65535, 65534, 0, 1, 2];
        for s in seqs {
            assert_eq!(push(&mut jb, 9, s), PushOutcome::Stored);
        }
        let got: Vec<Got> = (0..6).map(|_| pop(&mut jb)).collect();
        assert_eq!(
            got,
            vec![
                Got::F(65533),
                Got::F(65534),
                Got::F(65535),
                Got::F(0),
                Got::F(1),
                Got::F(2)
            ]
        );
    }

    #[test]
    fn restarts_on_new_ssrc_and_big_jumps() {
        let mut jb = JitterBuffer::new(20);
        push(&mut jb, 1, 500);
        assert_eq!(pop(&mut jb), Got::F(500));
        assert_eq!(push(&mut jb, 2, 7), PushOutcome::Reset);
        assert_eq!(pop(&mut jb), Got::F(7));
        assert_eq!(push(&mut jb, 2, 20_000), PushOutcome::Reset);
        assert_eq!(pop(&mut jb), Got::F(20_000));
        // A restart just behind us: a few lates, then a reset.
        let mut outcomes = Vec::new();
        for s in 19_990..19_999u16 {
            outcomes.push(push(&mut jb, 2, s));
        }
        assert_eq!(outcomes[..7], [PushOutcome::Late; 7]);
        assert_eq!(outcomes[7], PushOutcome::Reset);
        assert_eq!(pop(&mut jb), Got::F(19_997));
        assert_eq!(pop(&mut jb), Got::F(19_998));
        assert_eq!(jb.stats().resets, 3);
    }

    #[test]
    fn window_slides_and_delay_is_bounded() {
        let mut jb = JitterBuffer::new(40);
        // A burst of 40 frames after a stall: the ring keeps the newest 32.
        for s in 0..40u16 {
            push(&mut jb, 3, s);
        }
        assert_eq!(jb.depth(), JITTER_SLOTS);
        // Playout drops to at most 2·target + 2 frames of delay.
        assert_eq!(pop(&mut jb), Got::F(34));
        assert_eq!(jb.depth(), 5);
        let s = jb.stats();
        assert_eq!(s.lost + s.dropped, 34);
        assert!(matches!(
            jb.push(3, 41, 0, &[0; 400]),
            Err(JitterError::FrameTooLarge { len: 400 })
        ));
    }
}
