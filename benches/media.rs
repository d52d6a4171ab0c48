//! Timing loops for the media hot paths (`cargo bench --bench media`).
//!
//! Plain `fn main` with `Instant`: prints ns/op, ops/s and heap allocations
//! per op (counted by a wrapping global allocator), so "no allocation per
//! packet" is checked, not assumed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hotline::media::g711::{decode_ulaw, encode_ulaw};
use hotline::media::goertzel::DtmfDetector;
use hotline::media::jitter::{JitterBuffer, Playout};
use hotline::media::recorder::Recorder;
use hotline::media::rtp::{write_rtp, RtpHeader, RtpPacket};

struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `op` `iterations` times and prints the figures.
fn bench(name: &str, unit: &str, iterations: u64, mut op: impl FnMut(u64)) {
    for i in 0..iterations / 10 {
        op(i);
    }
    let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();
    for i in 0..iterations {
        op(i);
    }
    let elapsed = start.elapsed();
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;
    let ns = elapsed.as_nanos() as f64 / iterations as f64;
    println!(
        "{name:<44} {ns:>9.1} ns/op {:>12.0} {unit}/s {:>6.2} allocs/op",
        1e9 / ns,
        allocs as f64 / iterations as f64
    );
}

fn sample_packet() -> Vec<u8> {
    let hdr = RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: 1,
        timestamp: 160,
        ssrc: 0x1234_5678,
    };
    let mut buf = vec![0u8; 172];
    let n = write_rtp(&mut buf, &hdr, &[0xFF; 160]).unwrap_or(0);
    buf.truncate(n);
    buf
}

fn rtp_benches() {
    let packet = sample_packet();
    let mut out = [0u8; 1500];
    bench(
        "rtp: parse view + write_rtp (ours)",
        "packets",
        2_000_000,
        |i| {
            if let Ok(p) = RtpPacket::parse(black_box(&packet)) {
                let hdr = RtpHeader {
                    sequence: p.sequence().wrapping_add(i as u16),
                    ..p.header()
                };
                black_box(write_rtp(&mut out, &hdr, p.payload()).ok());
            }
        },
    );

    use rtc_shared::marshal::{Marshal, Unmarshal};
    bench(
        "rtp: rtc-rtp 0.21.1 unmarshal + marshal_to",
        "packets",
        2_000_000,
        |i| {
            let mut raw: &[u8] = black_box(&packet);
            if let Ok(mut p) = rtc_rtp::packet::Packet::unmarshal(&mut raw) {
                p.header.sequence_number = p.header.sequence_number.wrapping_add(i as u16);
                black_box(p.marshal_to(&mut out).ok());
            }
        },
    );
}

fn g711_benches() {
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i * 997) % 30000 - 15000) as i16)
        .collect();
    let mut codes = [0u8; 160];
    let mut back = [0i16; 160];
    bench(
        "g711: µ-law encode 160 samples",
        "frames",
        2_000_000,
        |_| {
            encode_ulaw(black_box(&pcm), &mut codes);
            black_box(&codes);
        },
    );
    bench(
        "g711: µ-law decode 160 samples",
        "frames",
        2_000_000,
        |_| {
            decode_ulaw(black_box(&codes), &mut back);
            black_box(&back);
        },
    );
}

fn goertzel_bench() {
    // A second of speech-like noise with a DTMF key in it.
    let audio: Vec<i16> = (0..8000)
        .map(|n| {
            let t = n as f32 / 8000.0;
            let tone = if (2000..3000).contains(&n) {
                6000.0
                    * ((2.0 * std::f32::consts::PI * 770.0 * t).sin()
                        + (2.0 * std::f32::consts::PI * 1336.0 * t).sin())
            } else {
                3000.0 * (2.0 * std::f32::consts::PI * 310.0 * t).sin()
            };
            tone as i16
        })
        .collect();
    let frames: Vec<&[i16]> = audio.chunks(160).collect();
    let mut detector = DtmfDetector::new();
    bench(
        "goertzel: detect per 160-sample frame",
        "frames",
        500_000,
        |i| {
            let frame = frames[i as usize % frames.len()];
            black_box(detector.push(black_box(frame)));
        },
    );
}

fn jitter_bench() {
    let mut jb = JitterBuffer::new(60);
    let payload = [0xFFu8; 160];
    // Push pairs out of order, pop once per push.
    bench(
        "jitter: push + pop (reordered pairs)",
        "frames",
        2_000_000,
        |i| {
            let seq = (i ^ 1) as u16;
            black_box(
                jb.push(7, seq, (seq as u32).wrapping_mul(160), &payload)
                    .ok(),
            );
            if let Playout::Frame { payload, .. } = jb.pop() {
                black_box(payload);
            }
        },
    );
}

fn recorder_bench() {
    let dir = std::env::temp_dir().join(format!("hotline-media-bench-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        println!("recorder: cannot create {}", dir.display());
        return;
    }
    let path = dir.join("bench.wav");
    match Recorder::create(&path) {
        Ok(mut rec) => {
            let left = [1000i16; 160];
            let right = [-1000i16; 160];
            // 50,000 frames = 16 minutes of call audio, ~32 MB.
            bench(
                "recorder: push 20 ms stereo frame to file",
                "frames",
                50_000,
                |_| {
                    black_box(rec.push(&left, &right).ok());
                },
            );
            let _ = rec.finish();
        }
        Err(e) => println!("recorder: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if cfg!(debug_assertions) {
        println!("(debug build: run `cargo bench --bench media` for real numbers)");
    }
    rtp_benches();
    g711_benches();
    goertzel_bench();
    jitter_bench();
    recorder_bench();
}
