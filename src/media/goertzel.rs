//! In-band DTMF detection (ITU-T Q.23/Q.24) on 8 kHz audio with the
//! Goertzel algorithm, for callers whose phones do not send RFC 4733.
//!
//! Audio is cut into 102-sample blocks (12.75 ms, short enough that a 40 ms
//! tone covers two whole blocks) independent of the 20 ms frame size. A block
//! shows a key when one row and one column tone each dominate their group,
//! the twist is within limits and the two tones carry most of the block's
//! energy (which speech and music do not). A key is reported once it shows
//! in two consecutive blocks, and again only after two blocks without it.

/// Samples per Goertzel block.
const BLOCK_LEN: usize = 102;
const SAMPLE_RATE: f32 = 8000.0;
const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Weakest tone accepted: amplitude 400 (about -38 dBFS), as block energy N·A²/2.
const MIN_TONE_ENERGY: f32 = BLOCK_LEN as f32 * 400.0 * 400.0 / 2.0;
/// Row louder than column by at most 8 dB (normal twist).
const MAX_NORMAL_TWIST: f32 = 6.31;
/// Column louder than row by at most 4 dB (reverse twist).
const MAX_REVERSE_TWIST: f32 = 2.51;
/// The chosen tone must beat every other tone of its group by 8 dB.
const MIN_GROUP_DOMINANCE: f32 = 6.31;
/// Share of the block's energy the two tones must carry.
const MIN_TONE_SHARE: f32 = 0.75;
/// Consecutive blocks showing a key before it is reported (≥ 25.5 ms).
const PRESS_BLOCKS: u8 = 2;
/// Consecutive blocks without the key before the key counts as released.
const RELEASE_BLOCKS: u8 = 2;
/// Digits detected but not yet returned (several can finish within one long push).
const QUEUE_LEN: usize = 4;

/// Streaming in-band DTMF detector; feed it every received audio frame.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    /// 2·cos(2πf/fs) for the 4 rows then the 4 columns.
    coeffs: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    block_energy: f32,
    block_fill: usize,
    candidate: Option<char>,
    candidate_blocks: u8,
    held: Option<char>,
    release_blocks: u8,
    queue: [Option<char>; QUEUE_LEN],
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        let mut coeffs = [0.0f32; 8];
        for (c, f) in coeffs.iter_mut().zip(ROW_HZ.iter().chain(COL_HZ.iter())) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / SAMPLE_RATE).cos();
        }
        DtmfDetector {
            coeffs,
            s1: [0.0; 8],
            s2: [0.0; 8],
            block_energy: 0.0,
            block_fill: 0,
            candidate: None,
            candidate_blocks: 0,
            held: None,
            release_blocks: 0,
            queue: [None; QUEUE_LEN],
        }
    }

    /// Clears all state (new call or stream restart).
    pub fn reset(&mut self) {
        *self = Self {
            coeffs: self.coeffs,
            ..Self::new()
        };
    }

    /// Feeds 8 kHz samples (normally one 160-sample frame); returns a key
    /// the moment it is recognised. No allocation.
    pub fn push(&mut self, samples: &[i16]) -> Option<char> {
        for &s in samples {
            let x = f32::from(s);
            self.block_energy += x * x;
            for i in 0..8 {
                let s0 = x + self.coeffs[i] * self.s1[i] - self.s2[i];
                self.s2[i] = self.s1[i];
                self.s1[i] = s0;
            }
            self.block_fill += 1;
            if self.block_fill == BLOCK_LEN {
                let key = self.classify_block();
                self.track(key);
                self.s1 = [0.0; 8];
                self.s2 = [0.0; 8];
                self.block_energy = 0.0;
                self.block_fill = 0;
            }
        }
        self.pop_queued()
    }

    fn pop_queued(&mut self) -> Option<char> {
        let first = self.queue[0].take();
        self.queue.rotate_left(1);
        first
    }

    fn enqueue(&mut self, key: char) {
        if let Some(slot) = self.queue.iter_mut().find(|q| q.is_none()) {
            *slot = Some(key);
        }
    }

    /// Which key, if any, this block's audio is.
    fn classify_block(&self) -> Option<char> {
        let mut energy = [0.0f32; 8];
        for (i, e) in energy.iter_mut().enumerate() {
            let power = self.s1[i] * self.s1[i] + self.s2[i] * self.s2[i]
                - self.coeffs[i] * self.s1[i] * self.s2[i];
            // |X|² of a tone of amplitude A is (A·N/2)²; 2|X|²/N is its energy N·A²/2.
            *e = power * 2.0 / BLOCK_LEN as f32;
        }
        let (rows, cols) = energy.split_at(4);
        let (row, row_energy) = strongest(rows)?;
        let (col, col_energy) = strongest(cols)?;
        if row_energy < MIN_TONE_ENERGY || col_energy < MIN_TONE_ENERGY {
            return None;
        }
        let twist_ok = if row_energy >= col_energy {
            row_energy <= col_energy * MAX_NORMAL_TWIST
        } else {
            col_energy <= row_energy * MAX_REVERSE_TWIST
        };
        if !twist_ok {
            return None;
        }
        let dominates = |group: &[f32], best: usize, best_energy: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &e)| i == best || e * MIN_GROUP_DOMINANCE <= best_energy)
        };
        if !dominates(rows, row, row_energy) || !dominates(cols, col, col_energy) {
            return None;
        }
        if row_energy + col_energy < MIN_TONE_SHARE * self.block_energy {
            return None;
        }
        KEYS.get(row)?.get(col).copied()
    }

    /// Press/release logic over consecutive block results.
    fn track(&mut self, key: Option<char>) {
        if key.is_some() && key == self.candidate {
            self.candidate_blocks = self.candidate_blocks.saturating_add(1);
        } else {
            self.candidate = key;
            self.candidate_blocks = u8::from(key.is_some());
        }
        if let Some(held) = self.held {
            if key == Some(held) {
                self.release_blocks = 0;
            } else {
                self.release_blocks += 1;
                if self.release_blocks >= RELEASE_BLOCKS {
                    self.held = None;
                }
            }
        }
        if self.held.is_none() && self.candidate_blocks >= PRESS_BLOCKS {
            if let Some(k) = self.candidate {
                self.held = Some(k);
                self.release_blocks = 0;
                self.enqueue(k);
            }
        }
    }
}

/// Index and energy of the strongest tone of a group.
fn strongest(group: &[f32]) -> Option<(usize, f32)> {
    group
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    /// Tiny deterministic noise source (xorshift), uniform in [-1, 1).
    struct Noise(u32);
    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
        }
    }

    fn tone_for(key: char) -> (f32, f32) {
        for (r, row) in KEYS.iter().enumerate() {
            for (c, &k) in row.iter().enumerate() {
                if k == key {
                    return (ROW_HZ[r], COL_HZ[c]);
                }
            }
        }
        panic!("no key {key}");
    }

    /// Appends `ms` of the key's two tones, each at `amplitude`, plus noise.
    fn push_tone(
        out: &mut Vec<i16>,
        key: char,
        ms: usize,
        amplitude: f32,
        noise: f32,
        rng: &mut Noise,
    ) {
        let (fr, fc) = tone_for(key);
        let start = out.len();
        for n in 0..ms * 8 {
            let t = (start + n) as f32 / SAMPLE_RATE;
            let v = amplitude * ((2.0 * PI * fr * t).sin() + (2.0 * PI * fc * t).sin())
                + noise * rng.next();
            out.push(v.clamp(-32768.0, 32767.0) as i16);
        }
    }

    fn silence(out: &mut Vec<i16>, ms: usize) {
        out.extend(std::iter::repeat_n(0, ms * 8));
    }

    fn detect(audio: &[i16]) -> String {
        let mut d = DtmfDetector::new();
        audio.chunks(160).filter_map(|f| d.push(f)).collect()
    }

    #[test]
    fn all_sixteen_keys_clean_noisy_and_quiet() {
        let keys = "123A456B789C*0#D";
        let mut rng = Noise(7);
        // Per-tone amplitude 8000 (clean), 8000 with noise at about 15 dB SNR,
        // and -20 dBFS for the pair (each tone 1638).
        for (amp, noise) in [
            (8000.0, 0.0),
            (8000.0, 3000.0),
            (1638.0, 0.0),
            (1638.0, 400.0),
        ] {
            let mut audio = Vec::new();
            silence(&mut audio, 30);
            for k in keys.chars() {
                push_tone(&mut audio, k, 70, amp, noise, &mut rng);
                silence(&mut audio, 50);
            }
            assert_eq!(detect(&audio), keys, "amplitude {amp}, noise {noise}");
        }
    }

    #[test]
    fn forty_ms_tones_with_forty_ms_gaps_repeat_the_same_key() {
        let mut rng = Noise(1);
        // Every alignment of the tone against the blocks.
        for offset_ms in 0..13 {
            let mut audio = Vec::new();
            silence(&mut audio, offset_ms);
            for _ in 0..3 {
                push_tone(&mut audio, '5', 40, 6000.0, 0.0, &mut rng);
                silence(&mut audio, 40);
            }
            assert_eq!(detect(&audio), "555", "offset {offset_ms} ms");
        }
    }

    #[test]
    fn long_press_reported_once_and_short_blip_ignored() {
        let mut rng = Noise(2);
        let mut audio = Vec::new();
        push_tone(&mut audio, '9', 600, 6000.0, 500.0, &mut rng);
        silence(&mut audio, 100);
        // 15 ms cannot fill two blocks to the required energy share.
        push_tone(&mut audio, '1', 15, 6000.0, 0.0, &mut rng);
        silence(&mut audio, 100);
        assert_eq!(detect(&audio), "9");
    }

    #[test]
    fn twist_and_off_frequency_limits() {
        let (fr, fc) = tone_for('6');
        let mk = |row_amp: f32, col_amp: f32, detune: f32| -> Vec<i16> {
            (0..1600)
                .map(|n| {
                    let t = n as f32 / SAMPLE_RATE;
                    (row_amp * (2.0 * PI * fr * detune * t).sin()
                        + col_amp * (2.0 * PI * fc * detune * t).sin()) as i16
                })
                .collect()
        };
        assert_eq!(detect(&mk(8000.0, 8000.0 / 2.24, 1.0)), "6"); // 7 dB normal twist
        assert_eq!(detect(&mk(8000.0, 8000.0 / 3.16, 1.0)), ""); // 10 dB normal twist
        assert_eq!(detect(&mk(8000.0 / 1.41, 8000.0, 1.0)), "6"); // 3 dB reverse twist
        assert_eq!(detect(&mk(8000.0 / 2.0, 8000.0, 1.0)), ""); // 6 dB reverse twist
        assert_eq!(detect(&mk(6000.0, 6000.0, 1.015)), "6"); // +1.5 % must be accepted
        assert_eq!(detect(&mk(6000.0, 6000.0, 0.985)), "6");
        assert_eq!(detect(&mk(6000.0, 6000.0, 1.05)), ""); // +5 % is not DTMF
    }

    fn read_fixture(name: &str) -> Vec<i16> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        r.samples::<i16>().map(|s| s.unwrap()).collect()
    }

    #[test]
    fn sox_generated_key_one() {
        // sox -n -r 8000 -b 16 -c 1 dtmf1_sox.wav synth 0.15 sine 697 sine 1209 gain -6
        let audio = read_fixture("dtmf1_sox.wav");
        assert_eq!(audio.len(), 1200);
        assert_eq!(detect(&audio), "1");
    }

    #[test]
    fn no_digits_in_mandarin_speech() {
        // espeak-ng -v cmn: "...维修请按1,安装请按2..." resampled to 8 kHz.
        let speech = read_fixture("speech8k.wav");
        assert!(speech.len() > 8000 * 10);
        assert_eq!(detect(&speech), "");
        // Louder and quieter copies too.
        let loud: Vec<i16> = speech.iter().map(|&s| s.saturating_mul(2)).collect();
        assert_eq!(detect(&loud), "");
        let quiet: Vec<i16> = speech.iter().map(|&s| s / 8).collect();
        assert_eq!(detect(&quiet), "");
    }

    #[test]
    fn no_digits_in_music_or_noise() {
        // Chords with harmonics, changing every 250 ms, for 8 s.
        let chords: [[f32; 3]; 4] = [
            [261.6, 329.6, 392.0],
            [349.2, 440.0, 523.3],
            [392.0, 493.9, 587.3],
            [440.0, 554.4, 659.3],
        ];
        let music: Vec<i16> = (0..64_000)
            .map(|n| {
                let t = n as f32 / SAMPLE_RATE;
                let chord = &chords[(n / 2000) % 4];
                let mut v = 0.0;
                for &f in chord {
                    for h in 1..=4 {
                        v += 3000.0 / h as f32 * (2.0 * PI * f * h as f32 * t).sin();
                    }
                }
                v.clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        assert_eq!(detect(&music), "");
        let mut rng = Noise(99);
        for level in [300.0, 3000.0, 20000.0] {
            let noise: Vec<i16> = (0..64_000).map(|_| (level * rng.next()) as i16).collect();
            assert_eq!(detect(&noise), "", "noise level {level}");
        }
    }

    #[test]
    fn odd_frame_sizes_and_reset() {
        let mut rng = Noise(3);
        let mut audio = Vec::new();
        push_tone(&mut audio, '#', 100, 5000.0, 0.0, &mut rng);
        silence(&mut audio, 60);
        push_tone(&mut audio, 'D', 100, 5000.0, 0.0, &mut rng);
        let mut d = DtmfDetector::new();
        // One big push holding both digits: the second comes out on the next call.
        let mut got: String = d.push(&audio).into_iter().collect();
        got.extend(d.push(&[]));
        assert_eq!(got, "#D");
        d.reset();
        let got: String = audio.chunks(37).filter_map(|f| d.push(f)).collect();
        assert_eq!(got, "#D");
    }
}
