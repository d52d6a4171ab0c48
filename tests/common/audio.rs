//! What a caller heard, decided from the audio itself.
//!
//! * G.711 decoding of the RTP the server sent, and reading WAV recordings
//!   (hound);
//! * an RMS envelope per 20 ms and a normalised (Pearson) cross-correlation
//!   of envelopes, to find a prompt in a recording and tell prompts apart;
//! * a timeline: which prompts were heard, in which order, where;
//! * Goertzel, to check that a generated key tone is the right DTMF pair;
//! * [`RtpPeer`]: a UDP port owned by the test that plays the caller's phone
//!   for SIPp calls (records what the server sends, sends silence, RFC 4733
//!   events or in-band tones back).
//!
//! Included by `e2e_ivr.rs` as `#[path = "common/audio.rs"] mod audio;` so its
//! unit tests run once, not in every e2e binary.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Samples per second of everything here (prompts, G.711).
pub const RATE: usize = 8000;
/// Samples in one 20 ms envelope window (one RTP packet of G.711).
pub const FRAME: usize = 160;
/// "Heard" means a normalised cross-correlation at least this high.
pub const MATCH_THRESHOLD: f32 = 0.8;

// ---------------------------------------------------------------------------
// G.711

/// ITU-T G.711 A-law to linear.
pub fn alaw_decode(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = i16::from(a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

/// ITU-T G.711 µ-law to linear.
pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let mut t = (i16::from(u & 0x0f) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        0x84 - t
    } else {
        t - 0x84
    }
}

/// Linear to A-law (for tones the test generates itself).
pub fn alaw_encode(pcm: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = i32::from(pcm) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&e| v <= e).unwrap_or(8);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut aval = (seg as i32) << 4;
    aval |= if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (aval as u8) ^ mask
}

// ---------------------------------------------------------------------------
// WAV

/// A mono 8 kHz WAV as f32 samples in [-1, 1]; several channels are mixed.
pub fn read_wav(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read WAV {}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(
        spec.sample_rate as usize,
        RATE,
        "{}: expected 8 kHz audio",
        path.display()
    );
    let ch = usize::from(spec.channels.max(1));
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.expect("WAV sample") as f32 / scale)
                .collect()
        }
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("sample")).collect(),
    };
    raw.chunks(ch)
        .map(|c| c.iter().sum::<f32>() / ch as f32)
        .collect()
}

/// One channel of a WAV file (any rate) as f32 samples in [-1, 1].
pub fn wav_channel(path: &Path, channel: usize) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("hound cannot read {}: {e}", path.display()));
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let scale = (1i64 << (spec.bits_per_sample.max(1) - 1)) as f32;
    let all: Vec<f32> = r
        .samples::<i32>()
        .map(|s| {
            s.unwrap_or_else(|e| panic!("bad sample in {}: {e}", path.display())) as f32 / scale
        })
        .collect();
    let one = all.iter().skip(channel).step_by(ch).copied().collect();
    (spec, one)
}

/// i16 PCM as f32 in [-1, 1].
pub fn pcm_to_f32(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|&s| f32::from(s) / 32768.0).collect()
}

// ---------------------------------------------------------------------------
// Envelopes and correlation

/// RMS of each 20 ms window, one window every `hop` samples.
pub fn envelope(samples: &[f32], hop: usize) -> Vec<f32> {
    if samples.len() < FRAME {
        return Vec::new();
    }
    (0..=(samples.len() - FRAME) / hop)
        .map(|i| {
            let w = &samples[i * hop..i * hop + FRAME];
            (w.iter().map(|s| s * s).sum::<f32>() / FRAME as f32).sqrt()
        })
        .collect()
}

/// Pearson correlation of two equally long series (0 when either is flat).
pub fn ncc(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f32>() / n as f32;
    let mb = b.iter().sum::<f32>() / n as f32;
    let (mut sab, mut saa, mut sbb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x - ma, y - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa <= 1e-12 || sbb <= 1e-12 {
        return 0.0;
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

/// A prompt file, with its envelope (one value per 20 ms frame).
#[derive(Debug, Clone)]
pub struct PromptAudio {
    /// File stem, e.g. "greeting".
    pub name: String,
    pub env: Vec<f32>,
}

impl PromptAudio {
    pub fn load(path: &Path) -> Self {
        let samples = read_wav(path);
        PromptAudio {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            env: envelope(&samples, FRAME),
        }
    }

    /// Length in seconds.
    pub fn secs(&self) -> f32 {
        self.env.len() as f32 * FRAME as f32 / RATE as f32
    }
}

/// Every `*.wav` in a directory, sorted by name.
pub fn load_prompts(dir: &Path) -> Vec<PromptAudio> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    files.iter().map(|p| PromptAudio::load(p)).collect()
}

/// A recording's envelope with a finer hop than the prompts' (so a prompt
/// starting anywhere lines up within `hop` samples).
#[derive(Debug, Clone)]
pub struct Recording {
    pub hop: usize,
    pub env: Vec<f32>,
    pub samples: usize,
}

/// Where a prompt sits best in a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub score: f32,
    /// Start, in samples from the start of the recording.
    pub start: usize,
    /// How many 20 ms frames of the prompt were compared.
    pub frames: usize,
    /// Samples of the recording the match covers (more than `frames` × 160
    /// when an elastic match stretched over gaps).
    pub span: usize,
}

impl Match {
    pub fn start_secs(&self) -> f32 {
        self.start as f32 / RATE as f32
    }
    pub fn end(&self) -> usize {
        self.start + self.span
    }
    pub fn end_secs(&self) -> f32 {
        self.end() as f32 / RATE as f32
    }
}

/// Frames of a prompt that must overlap the recording for a partial match
/// (a recording that ends mid-prompt): 3 s.
pub const MIN_OVERLAP_FRAMES: usize = 150;

impl Recording {
    /// `hop` must divide [`FRAME`] (160, 80, 40, 20 ...).
    pub fn new(samples: &[f32], hop: usize) -> Self {
        assert!(
            hop > 0 && FRAME.is_multiple_of(hop),
            "hop {hop} must divide {FRAME}"
        );
        Recording {
            hop,
            env: envelope(samples, hop),
            samples: samples.len(),
        }
    }

    pub fn secs(&self) -> f32 {
        self.samples as f32 / RATE as f32
    }

    fn stride(&self) -> usize {
        FRAME / self.hop
    }

    /// Correlation of the prompt placed at envelope index `k`, over the
    /// frames that fit (None when fewer than `min_frames` fit).
    pub fn score_at(&self, prompt: &[f32], k: usize, min_frames: usize) -> Option<(f32, usize)> {
        let stride = self.stride();
        if k >= self.env.len() {
            return None;
        }
        let fit = (self.env.len() - k - 1) / stride + 1;
        let n = fit.min(prompt.len());
        if n < min_frames.min(prompt.len()) || n < 2 {
            return None;
        }
        let rec: Vec<f32> = (0..n).map(|j| self.env[k + j * stride]).collect();
        Some((ncc(&rec, &prompt[..n]), n))
    }

    /// Scores of the prompt at every position, from envelope index `from`.
    /// `partial`: also where only part of the prompt fits before the end.
    pub fn scores(&self, prompt: &[f32], from: usize, partial: bool) -> Vec<(usize, f32, usize)> {
        let min = if partial {
            MIN_OVERLAP_FRAMES
        } else {
            prompt.len()
        };
        (from..self.env.len())
            .map_while(|k| self.score_at(prompt, k, min).map(|(s, n)| (k, s, n)))
            .collect()
    }

    /// The best position of the prompt (partial matches at the end allowed).
    pub fn best(&self, prompt: &PromptAudio) -> Option<Match> {
        self.scores(&prompt.env, 0, true)
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, score, frames)| Match {
                score,
                start: k * self.hop,
                frames,
                span: frames * FRAME,
            })
    }

    /// The first complete play of the prompt that starts at or after sample
    /// `from` (a local maximum of the correlation above the threshold).
    pub fn find_full(&self, prompt: &PromptAudio, from: usize) -> Option<Match> {
        let scores = self.scores(&prompt.env, from.div_ceil(self.hop), false);
        let first = scores.iter().position(|s| s.1 >= MATCH_THRESHOLD)?;
        // Climb to the peak of this hit (within half a prompt).
        let horizon = (first + prompt.env.len() * self.stride() / 2).min(scores.len());
        let (k, score, frames) = scores[first..horizon]
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(Match {
            score,
            start: k * self.hop,
            frames,
            span: frames * FRAME,
        })
    }
}

/// Chunks of an elastic match: 0.5 s of the prompt each.
const CHUNK: usize = 25;

impl Recording {
    /// Like [`best`](Self::best), for a recording made by a real-time
    /// listener (a softphone's jitter buffer): the prompt may arrive with
    /// gaps (the sender stalled, the phone played silence) or slightly
    /// compressed (the jitter buffer caught up). The prompt is cut into 0.5 s
    /// chunks; each chunk may come up to 600 ms later or 60 ms earlier than
    /// right after the previous one (a penalty per shift keeps wrong prompts
    /// from wandering). The score is the normalised
    /// cross-correlation of the whole prompt with the recording aligned that
    /// way. `starts`: where (in samples) the prompt may begin. A prompt cut
    /// by the end of the recording matches with at least 3 s of it.
    pub fn best_elastic(
        &self,
        prompt: &PromptAudio,
        starts: std::ops::Range<usize>,
    ) -> Option<Match> {
        let stride = self.stride();
        let n_pos = self.env.len();
        let p = &prompt.env;
        let chunks: Vec<(usize, usize)> = (0..p.len())
            .step_by(CHUNK)
            .map(|a| (a, (a + CHUNK).min(p.len())))
            .filter(|(a, b)| b - a >= 10)
            .collect();
        if chunks.is_empty() || n_pos == 0 {
            return None;
        }
        let back = (60 * RATE / 1000) / self.hop; // 60 ms earlier
        let ahead = (600 * RATE / 1000) / self.hop; // 600 ms later
        let penalty = 0.05 / (RATE as f32 / 10.0 / self.hop as f32); // 0.05 per 100 ms
        let neg = f32::NEG_INFINITY;
        // s[i][pos]: best total for chunks 0..=i with chunk i at pos; from[i][pos]: chunk i-1's pos.
        let mut s: Vec<Vec<f32>> = Vec::with_capacity(chunks.len());
        let mut from: Vec<Vec<usize>> = Vec::with_capacity(chunks.len());
        let chunk_score = |(a, b): (usize, usize), pos: usize| -> f32 {
            let n = b - a;
            if pos + (n - 1) * stride >= n_pos {
                return neg;
            }
            let rec: Vec<f32> = (0..n).map(|j| self.env[pos + j * stride]).collect();
            ncc(&rec, &p[a..b])
        };
        let first: Vec<f32> = (0..n_pos)
            .map(|pos| {
                if starts.contains(&(pos * self.hop)) {
                    chunk_score(chunks[0], pos)
                } else {
                    neg
                }
            })
            .collect();
        s.push(first);
        from.push(vec![0; n_pos]);
        for (i, &ch) in chunks.iter().enumerate().skip(1) {
            let step = (chunks[i - 1].1 - chunks[i - 1].0) * stride;
            let prev = &s[i - 1];
            let mut row = vec![neg; n_pos];
            let mut src = vec![0usize; n_pos];
            // Only positions reachable from the previous chunk's.
            let (Some(first_ok), Some(last_ok)) = (
                prev.iter().position(|v| *v > neg),
                prev.iter().rposition(|v| *v > neg),
            ) else {
                break;
            };
            let reach =
                (first_ok + step).saturating_sub(back)..(last_ok + step + ahead + 1).min(n_pos);
            for pos in reach {
                let here = chunk_score(ch, pos);
                if here == neg {
                    continue;
                }
                let lo = (pos + back).saturating_sub(step + ahead);
                let hi = (pos + back).saturating_sub(step);
                let mut best = (neg, 0);
                let hi = hi.min(n_pos - 1);
                for (q, &pv) in prev.iter().enumerate().take(hi + 1).skip(lo) {
                    if pv == neg {
                        continue;
                    }
                    let d = (pos as isize - (q + step) as isize).unsigned_abs();
                    let v = pv - penalty * d as f32;
                    if v > best.0 {
                        best = (v, q);
                    }
                }
                if best.0 > neg {
                    row[pos] = best.0 + here;
                    src[pos] = best.1;
                }
            }
            s.push(row);
            from.push(src);
        }
        // Paths over all chunks or, when the recording ends mid-prompt, over
        // the first ones (at least 3 s) up to the end of the recording: a
        // prompt that shares its opening with another cannot match on the
        // shared part alone.
        let min_chunks = (MIN_OVERLAP_FRAMES / CHUNK).min(chunks.len());
        let mut result: Option<Match> = None;
        for last in min_chunks.max(1) - 1..s.len() {
            let Some((end_pos, _)) = s[last]
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > neg)
                .max_by(|a, b| a.1.total_cmp(b.1))
            else {
                continue;
            };
            let mut pos = vec![0usize; last + 1];
            pos[last] = end_pos;
            for i in (1..=last).rev() {
                pos[i - 1] = from[i][pos[i]];
            }
            let mut rec = Vec::new();
            let mut pr = Vec::new();
            for (i, &(a, b)) in chunks.iter().enumerate().take(last + 1) {
                for j in 0..b - a {
                    rec.push(self.env[pos[i] + j * stride]);
                    pr.push(p[a + j]);
                }
            }
            let frames = pr.len();
            let start = pos[0] * self.hop;
            let end = pos[last] * self.hop + (chunks[last].1 - chunks[last].0) * FRAME;
            let complete = last + 1 == chunks.len();
            if !complete && end + (CHUNK * FRAME) + RATE / 5 < self.samples {
                continue; // stops short of the recording's end
            }
            let m = Match {
                score: ncc(&rec, &pr),
                start,
                frames,
                span: end - start,
            };
            // Ties go to the longer path.
            if result.is_none_or(|r| m.score >= r.score) {
                result = Some(m);
            }
        }
        result
    }
}

/// One prompt heard in a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub name: String,
    pub m: Match,
    /// Whether the recording ended before the prompt did.
    pub cut_by_end: bool,
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} @{:.2}-{:.2}s (r={:.3}{})",
            self.name,
            self.m.start_secs(),
            self.m.end_secs(),
            self.m.score,
            if self.cut_by_end { ", cut by end" } else { "" }
        )
    }
}

/// Every prompt heard, in order: the complete plays (and a last one cut by
/// the end of the recording), each the best-matching prompt where it lies.
/// A prompt stopped early by a key (barge-in) is not listed.
pub fn timeline(rec: &Recording, prompts: &[PromptAudio]) -> Vec<Heard> {
    let stride = rec.stride();
    let mut candidates: Vec<Heard> = Vec::new();
    for p in prompts {
        let scores = rec.scores(&p.env, 0, true);
        let radius = (p.env.len() * stride / 2).max(1);
        for (i, &(k, s, n)) in scores.iter().enumerate() {
            if s < MATCH_THRESHOLD {
                continue;
            }
            let lo = i.saturating_sub(radius);
            let hi = (i + radius + 1).min(scores.len());
            // A local maximum (first of equal values) within half a prompt.
            let is_peak = scores[lo..hi]
                .iter()
                .enumerate()
                .all(|(j, o)| o.1 < s || (o.1 == s && lo + j >= i));
            if is_peak {
                candidates.push(Heard {
                    name: p.name.clone(),
                    m: Match {
                        score: s,
                        start: k * rec.hop,
                        frames: n,
                        span: n * FRAME,
                    },
                    cut_by_end: n < p.env.len(),
                });
            }
        }
    }
    candidates.sort_by(|a, b| b.m.score.total_cmp(&a.m.score));
    let mut accepted: Vec<Heard> = Vec::new();
    for c in candidates {
        let clash = accepted.iter().any(|a| {
            let overlap =
                a.m.end()
                    .min(c.m.end())
                    .saturating_sub(a.m.start.max(c.m.start));
            let shorter = (a.m.frames.min(c.m.frames) * FRAME).max(1);
            overlap * 5 > shorter // more than 20 % of the shorter one
        });
        if !clash {
            accepted.push(c);
        }
    }
    accepted.sort_by_key(|h| h.m.start);
    accepted
}

/// The names of a timeline, for assertions.
pub fn names(t: &[Heard]) -> Vec<&str> {
    t.iter().map(|h| h.name.as_str()).collect()
}

/// A timeline as text, for assertion messages.
pub fn describe(t: &[Heard]) -> String {
    t.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

// ---------------------------------------------------------------------------
// DTMF tones

/// Power of one frequency in a block (Goertzel).
pub fn goertzel(samples: &[f32], freq: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / RATE as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The DTMF key whose row and column tones dominate the block, if any.
pub fn dtmf_key(samples: &[f32]) -> Option<char> {
    const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [[char; 4]; 4] = [
        ['1', '2', '3', 'A'],
        ['4', '5', '6', 'B'],
        ['7', '8', '9', 'C'],
        ['*', '0', '#', 'D'],
    ];
    let pick = |fs: &[f32; 4]| {
        let p: Vec<f32> = fs.iter().map(|&f| goertzel(samples, f)).collect();
        let (i, best) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, v)| (i, *v))?;
        let others = p
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, v)| *v)
            .fold(0.0f32, f32::max);
        (best > 0.0 && best > 10.0 * others).then_some((i, best))
    };
    let (r, pr) = pick(&ROWS)?;
    let (c, pc) = pick(&COLS)?;
    let energy: f32 = samples.iter().map(|s| s * s).sum::<f32>() * samples.len() as f32 / 2.0;
    // Both tones together carry most of the block's energy.
    (pr + pc > 0.5 * energy).then_some(KEYS[r][c])
}

// ---------------------------------------------------------------------------
// The test's own RTP port

/// One RTP packet the server sent us.
#[derive(Debug, Clone)]
pub struct RxPacket {
    pub at: Instant,
    pub wall: SystemTime,
    pub from: SocketAddr,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub payload: Vec<u8>,
}

enum Out {
    /// One 20 ms frame of audio (already encoded) on `pt`.
    Audio { pt: u8, payload: Vec<u8> },
    /// An RFC 4733 event packet; `end` on the last three.
    Event {
        pt: u8,
        event: u8,
        duration: u16,
        end: bool,
        first: bool,
    },
}

#[derive(Default)]
struct PeerState {
    rx: Vec<RxPacket>,
    server: Option<SocketAddr>,
    outbox: VecDeque<Out>,
    sent_events: Vec<(char, Instant)>,
    sent_tones: Vec<(char, Instant)>,
}

/// A caller's RTP endpoint on 127.0.0.1, run by two threads: one records
/// every packet that arrives, one sends a packet every 20 ms to whoever sent
/// us RTP (symmetric RTP): silence, or what was queued (tones, events).
pub struct RtpPeer {
    sock: Arc<UdpSocket>,
    state: Arc<Mutex<PeerState>>,
    stop: Arc<AtomicBool>,
    sending: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// RTP event code of a key (RFC 4733 §3.2).
pub fn event_code(key: char) -> u8 {
    match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => 12 + (key as u8 - b'A'),
        _ => panic!("not a DTMF key: {key:?}"),
    }
}

impl RtpPeer {
    /// Bind a free even port on 127.0.0.1 (RTCP would be port + 1).
    /// `send`: whether to send RTP at all (silence when nothing is queued).
    pub fn start(send: bool) -> Self {
        let sock = loop {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind an RTP port");
            if s.local_addr().expect("addr").port().is_multiple_of(2) {
                break s;
            }
        };
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let sock = Arc::new(sock);
        let state = Arc::new(Mutex::new(PeerState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sending = Arc::new(AtomicBool::new(send));
        let mut threads = Vec::new();
        {
            let (sock, state, stop) = (sock.clone(), state.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if n < 12 || buf[0] >> 6 != 2 {
                        continue;
                    }
                    let cc = usize::from(buf[0] & 0x0f);
                    let start = 12 + 4 * cc;
                    if n < start {
                        continue;
                    }
                    let p = RxPacket {
                        at: Instant::now(),
                        wall: SystemTime::now(),
                        from,
                        pt: buf[1] & 0x7f,
                        seq: u16::from_be_bytes([buf[2], buf[3]]),
                        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                        payload: buf[start..n].to_vec(),
                    };
                    let mut g = state.lock().unwrap_or_else(|e| e.into_inner());
                    g.server.get_or_insert(from);
                    g.rx.push(p);
                }
            }));
        }
        {
            let (sock, state, stop, sending) =
                (sock.clone(), state.clone(), stop.clone(), sending.clone());
            threads.push(std::thread::spawn(move || {
                let ssrc: u32 = 0x1234_5678 ^ std::process::id();
                let mut seq: u16 = 1000;
                let mut ts: u32 = 16_000;
                let mut event_ts: Option<u32> = None;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    next += Duration::from_millis(20);
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                    if !sending.load(Ordering::Relaxed) {
                        continue;
                    }
                    let (server, out) = {
                        let mut g = state.lock().unwrap_or_else(|e| e.into_inner());
                        let Some(server) = g.server else { continue };
                        (server, g.outbox.pop_front())
                    };
                    let (pt, marker, this_ts, body) = match out {
                        None => {
                            event_ts = None;
                            (8, false, ts, vec![0xD5u8; FRAME])
                        }
                        Some(Out::Audio { pt, payload }) => {
                            event_ts = None;
                            (pt, false, ts, payload)
                        }
                        Some(Out::Event {
                            pt,
                            event,
                            duration,
                            end,
                            first,
                        }) => {
                            if first {
                                event_ts = Some(ts);
                            }
                            let ets = *event_ts.get_or_insert(ts);
                            let mut b = vec![event, 10, 0, 0];
                            if end {
                                b[1] |= 0x80;
                            }
                            b[2..4].copy_from_slice(&duration.to_be_bytes());
                            (pt, first, ets, b)
                        }
                    };
                    let mut pkt = Vec::with_capacity(12 + body.len());
                    pkt.push(0x80);
                    pkt.push(pt | if marker { 0x80 } else { 0 });
                    pkt.extend_from_slice(&seq.to_be_bytes());
                    pkt.extend_from_slice(&this_ts.to_be_bytes());
                    pkt.extend_from_slice(&ssrc.to_be_bytes());
                    pkt.extend_from_slice(&body);
                    let _ = sock.send_to(&pkt, server);
                    seq = seq.wrapping_add(1);
                    // The audio clock runs on underneath events too.
                    ts = ts.wrapping_add(FRAME as u32);
                }
            }));
        }
        RtpPeer {
            sock,
            state,
            stop,
            sending,
            threads,
        }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().expect("addr").port()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the server's RTP comes from (None before its first packet).
    pub fn server(&self) -> Option<SocketAddr> {
        self.lock().server
    }

    /// Stop or resume sending (the server's packets are still recorded).
    pub fn set_sending(&self, on: bool) {
        self.sending.store(on, Ordering::Relaxed);
    }

    /// Queue one key as RFC 4733 events on `pt`, `ms` long (plus 3 end packets).
    pub fn press_rfc4733(&self, key: char, pt: u8, ms: u32) {
        let event = event_code(key);
        let mut g = self.lock();
        let packets = (ms / 20).max(2);
        for i in 1..=packets {
            g.outbox.push_back(Out::Event {
                pt,
                event,
                duration: (i * 160) as u16,
                end: false,
                first: i == 1,
            });
        }
        for _ in 0..3 {
            g.outbox.push_back(Out::Event {
                pt,
                event,
                duration: (packets * 160) as u16,
                end: true,
                first: false,
            });
        }
        g.sent_events.push((key, Instant::now()));
    }

    /// Queue already-encoded audio (e.g. an A-law key tone made by sox),
    /// 160 bytes per packet on `pt`, followed by silence.
    pub fn play_encoded(&self, key: char, pt: u8, bytes: &[u8]) {
        let mut g = self.lock();
        for chunk in bytes.chunks(FRAME) {
            let mut payload = chunk.to_vec();
            payload.resize(FRAME, if pt == 0 { 0xFF } else { 0xD5 });
            g.outbox.push_back(Out::Audio { pt, payload });
        }
        g.sent_tones.push((key, Instant::now()));
    }

    /// Whether everything queued has been sent.
    pub fn idle(&self) -> bool {
        self.lock().outbox.is_empty()
    }

    /// Every packet received so far.
    pub fn packets(&self) -> Vec<RxPacket> {
        self.lock().rx.clone()
    }

    pub fn packet_count(&self) -> usize {
        self.lock().rx.len()
    }

    /// Audio received so far (PCMA/PCMU packets in arrival order, decoded),
    /// and the arrival time of each 160-sample packet.
    pub fn audio(&self) -> (Vec<f32>, Vec<Instant>) {
        let g = self.lock();
        let mut pcm = Vec::with_capacity(g.rx.len() * FRAME);
        let mut times = Vec::with_capacity(g.rx.len());
        for p in g.rx.iter().filter(|p| p.pt == 0 || p.pt == 8) {
            for &b in &p.payload {
                let s = if p.pt == 8 {
                    alaw_decode(b)
                } else {
                    ulaw_decode(b)
                };
                pcm.push(f32::from(s) / 32768.0);
            }
            times.push(p.at);
        }
        (pcm, times)
    }

    /// The received audio as a recording aligned on packets (hop = 160:
    /// the server starts prompts on packet boundaries).
    pub fn recording(&self) -> (Recording, Vec<Instant>) {
        let (pcm, times) = self.audio();
        (Recording::new(&pcm, FRAME), times)
    }

    /// Wait until a complete play of `prompt` starting at or after sample
    /// `from` has arrived; re-checks every 250 ms.
    pub fn wait_heard(&self, prompt: &PromptAudio, from: usize, limit: Duration) -> Option<Match> {
        let deadline = Instant::now() + limit;
        loop {
            let (pcm, _) = self.audio();
            // Only the tail can hold a new hit: skip what was searched already.
            let rec = Recording::new(&pcm, FRAME);
            if let Some(m) = rec.find_full(prompt, from) {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Arrival time of the packet holding sample `sample` of [`audio`](Self::audio).
    pub fn time_of(&self, sample: usize) -> Option<Instant> {
        let (_, times) = self.audio();
        times.get(sample / FRAME).copied()
    }

    /// Time of the last packet received.
    pub fn last_packet(&self) -> Option<Instant> {
        self.lock().rx.last().map(|p| p.at)
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Steady tones: each party of a test call plays its own frequency

/// A 90 s tone as an 8 kHz WAV (baresip's microphone; it hangs up when
/// the file ends, so longer than any call here).
pub fn tone_wav(dir: &Path, freq: f32) -> PathBuf {
    sox_tone(&dir.join(format!("tone-{freq}.wav")), freq, 8000, 90)
}

/// A microphone for Chromium's fake capture device: `freq` Hz for 120 s at
/// 48 kHz (the rate the device runs at).
pub fn mic_wav(dir: &Path, freq: f32) -> PathBuf {
    sox_tone(&dir.join(format!("mic-{freq}.wav")), freq, 48000, 120)
}

/// `secs` of a sine at `freq`, 8 dB below full scale, mono 16-bit at `rate`.
fn sox_tone(out: &Path, freq: f32, rate: u32, secs: u32) -> PathBuf {
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
        .arg(out)
        .args(["synth", &secs.to_string(), "sine", &freq.to_string()])
        .args(["gain", "-8"])
        .status()
        .expect("run sox");
    assert!(st.success(), "sox could not make a tone");
    out.to_path_buf()
}

/// Per 20 ms frame: whether `freq` carries at least a quarter of the
/// frame's energy (and the frame is not near silence).
pub fn tone_frames(samples: &[f32], rate: u32, freq: f32) -> Vec<bool> {
    let n = FRAME * rate as usize / 8000;
    samples
        .chunks_exact(n)
        .map(|c| {
            let energy: f32 = c.iter().map(|x| x * x).sum();
            if energy / (n as f32) < 1e-5 {
                return false;
            }
            // goertzel() assumes 8 kHz: scale the frequency to the file's rate.
            let p = goertzel(c, freq * 8000.0 / rate as f32);
            p / (energy * n as f32 / 2.0) > 0.25
        })
        .collect()
}

/// Per second: whether a steady `freq` is present, however quiet under
/// louder sound (speech, another tone): over a whole second the tone's
/// energy sits in a 1 Hz bin while speech spreads, so it stands out from
/// its neighbours 40 Hz away. For a voice that is one part of a mix.
pub fn tone_seconds_under(samples: &[f32], rate: u32, freq: f32) -> Vec<bool> {
    let n = rate as usize;
    let scale = 8000.0 / rate as f32;
    // Amplitude of a sine at `f` (full scale 1.0) over the window.
    let amplitude = |c: &[f32], f: f32| 2.0 * goertzel(c, f * scale).sqrt() / c.len() as f32;
    samples
        .chunks_exact(n)
        .map(|c| {
            let at = amplitude(c, freq);
            let beside = amplitude(c, freq - 40.0).max(amplitude(c, freq + 40.0));
            at > 0.006 && at > 4.0 * beside
        })
        .collect()
}

/// Seconds covered by the frames that hold the tone.
pub fn seconds_of(frames: &[bool]) -> f32 {
    frames.iter().filter(|&&b| b).count() as f32 * 0.02
}

/// Seconds of `freq` in `samples` (mono, `rate`) between `from` and `to`
/// seconds (clamped to the recording).
pub fn tone_seconds(samples: &[f32], rate: u32, freq: f32, from: f32, to: f32) -> f32 {
    let frames = tone_frames(samples, rate, freq);
    let at = |secs: f32| ((secs.max(0.0) / 0.02) as usize).min(frames.len());
    let (a, b) = (at(from), at(to));
    seconds_of(&frames[a..b.max(a)])
}

/// The longest stretch without the tone between its first and last frame:
/// (start, length) in seconds.
pub fn longest_gap(frames: &[bool]) -> Option<(f32, f32)> {
    let first = frames.iter().position(|&b| b)?;
    let last = frames.iter().rposition(|&b| b)?;
    let mut best = (0usize, 0usize);
    let mut start = None;
    for (i, &b) in frames.iter().enumerate().take(last + 1).skip(first) {
        match (b, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                if i - s > best.1 {
                    best = (s, i - s);
                }
                start = None;
            }
            _ => {}
        }
    }
    Some((best.0 as f32 * 0.02, best.1 as f32 * 0.02))
}

/// Start (in seconds) of the first run of 10 frames (200 ms) with the tone.
pub fn first_run(frames: &[bool]) -> Option<f32> {
    frames
        .windows(10)
        .position(|w| w.iter().all(|&b| b))
        .map(|i| i as f32 * 0.02)
}

/// End (in seconds) of the last run of 10 frames with the tone.
pub fn last_run(frames: &[bool]) -> Option<f32> {
    frames
        .windows(10)
        .rposition(|w| w.iter().all(|&b| b))
        .map(|i| (i + 10) as f32 * 0.02)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn prompts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/prompts")
    }

    #[test]
    fn a_quiet_tone_is_found_under_speech_and_absent_speech_is_not_a_tone() {
        // Two seconds of the customer's recorded speech; a 1000 Hz tone
        // at -28 dBFS under the second one.
        let speech = read_wav(&prompts_dir().join("greeting.wav"));
        let two: Vec<f32> = speech.iter().skip(8000).take(16000).copied().collect();
        assert_eq!(two.len(), 16000, "the fixture has two seconds of speech");
        let mixed: Vec<f32> = two
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let tone = 0.04 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin();
                x + if i >= 8000 { tone } else { 0.0 }
            })
            .collect();
        assert_eq!(tone_seconds_under(&mixed, 8000, 1000.0), [false, true]);
        assert_eq!(tone_seconds_under(&mixed, 8000, 2200.0), [false, false]);
    }

    #[test]
    fn g711_round_trip() {
        for v in [-32768i16, -20000, -1000, -8, 0, 8, 1000, 20000, 32767] {
            let back = alaw_decode(alaw_encode(v));
            let tol = (i32::from(v).abs() / 16).max(16);
            assert!(
                (i32::from(back) - i32::from(v)).abs() <= tol,
                "{v} -> {back}"
            );
        }
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
    }

    /// `queue_position_3` → `queue_position`; other names are their own family.
    fn prompt_family(name: &str) -> &str {
        ["queue_position", "queue_wait"]
            .into_iter()
            .find(|f| name.starts_with(f))
            .unwrap_or(name)
    }

    /// Each prompt is found in itself with r ≈ 1, and every other prompt
    /// matches it clearly worse: the envelopes tell the prompts apart.
    #[test]
    fn each_prompt_is_recognised_and_beats_all_others() {
        let prompts = load_prompts(&prompts_dir());
        assert!(prompts.len() >= 17, "{} prompts", prompts.len());
        for target in &prompts {
            let samples = read_wav(&prompts_dir().join(format!("{}.wav", target.name)));
            // Half a second of silence around it, and a sub-frame shift.
            let mut padded = vec![0.0f32; 4000 + 37];
            padded.extend_from_slice(&samples);
            padded.extend(std::iter::repeat_n(0.0, 4000));
            let rec = Recording::new(&padded, 80);
            let own = rec.best(target).expect("own match");
            assert!(own.score > 0.9, "{}: {own:?}", target.name);
            assert!(
                (own.start_secs() - 0.5).abs() < 0.03,
                "{} found at {}",
                target.name,
                own.start_secs()
            );
            // Announcements differ only in the number spoken, which the
            // envelopes cannot tell apart: a family is judged as one prompt.
            for other in prompts
                .iter()
                .filter(|p| prompt_family(&p.name) != prompt_family(&target.name))
            {
                if let Some(m) = rec.best(other) {
                    assert!(
                        m.score < own.score - 0.03,
                        "{} inside {} scores {:.3} vs own {:.3}",
                        other.name,
                        target.name,
                        m.score,
                        own.score
                    );
                }
            }
        }
    }

    /// A sequence of prompts with silences and one prompt cut short (as by a
    /// key) comes back as the complete prompts in order, at their places.
    #[test]
    fn timeline_lists_complete_prompts_in_order() {
        let dir = prompts_dir();
        let prompts = load_prompts(&dir);
        let wav = |n: &str| read_wav(&dir.join(format!("{n}.wav")));
        let mut s = vec![0.0f32; 1600];
        let greeting_at = s.len();
        s.extend(wav("greeting"));
        s.extend(wav("main_menu").iter().take(2 * RATE)); // barged in after 2 s
        let install_at = s.len();
        s.extend(wav("transfer_install"));
        s.extend(std::iter::repeat_n(0.0, 5 * RATE));
        let timeout_at = s.len();
        s.extend(wav("timeout"));
        s.extend(wav("main_menu").iter().take(6 * RATE)); // recording ends mid-prompt
        let rec = Recording::new(&s, FRAME);
        let t = timeline(&rec, &prompts);
        assert_eq!(
            names(&t),
            ["greeting", "transfer_install", "timeout", "main_menu"],
            "{}",
            describe(&t)
        );
        let starts = [greeting_at, install_at, timeout_at];
        for (h, want) in t.iter().zip(starts) {
            assert!(
                h.m.start.abs_diff(want) <= FRAME,
                "{h} expected at {}",
                want as f32 / RATE as f32
            );
        }
        assert!(t[3].cut_by_end);
    }

    /// A prompt delivered with stalls (silence inserted, as a phone plays it
    /// when the sender stalls) still matches elastically, clearly better than
    /// the most similar other prompt; the strict match suffers.
    #[test]
    fn elastic_match_survives_gaps() {
        let dir = prompts_dir();
        let prompts = load_prompts(&dir);
        let g = read_wav(&dir.join("transfer_install.wav"));
        let mut s = vec![0.0f32; 2000];
        for (i, piece) in g.chunks(RATE * 3 / 2).enumerate() {
            s.extend_from_slice(piece);
            s.extend(std::iter::repeat_n(0.0, 800 + 400 * (i % 3))); // 100-300 ms gaps
        }
        let rec = Recording::new(&s, 40);
        let target = prompts
            .iter()
            .find(|p| p.name == "transfer_install")
            .unwrap();
        let own = rec
            .best_elastic(target, 0..rec.samples)
            .expect("elastic match");
        let strict = rec.best(target).expect("strict match");
        assert!(own.score > 0.95, "elastic {own:?}");
        assert!(
            strict.score < own.score,
            "strict {strict:?} vs elastic {own:?}"
        );
        assert!(own.start.abs_diff(2000) <= 80, "{own:?}");
        for other in prompts.iter().filter(|p| p.name != target.name) {
            if let Some(m) = rec.best_elastic(other, 0..rec.samples) {
                assert!(
                    m.score < own.score - 0.05,
                    "{} scores {:.3} elastically vs {:.3}",
                    other.name,
                    m.score,
                    own.score
                );
            }
        }
    }

    /// The key tones of the fixture and of sox are what they claim.
    #[test]
    fn dtmf_fixture_is_key_1() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dtmf1_sox.wav");
        let s = read_wav(&fixture);
        assert!(s.len() >= 800, "{} samples", s.len());
        assert_eq!(dtmf_key(&s[..800]), Some('1'));
        let speech = read_wav(&prompts_dir().join("greeting.wav"));
        let keys = speech
            .chunks(800)
            .filter(|c| c.len() == 800 && dtmf_key(c).is_some())
            .count();
        assert_eq!(keys, 0, "speech must not look like DTMF");
    }
}
