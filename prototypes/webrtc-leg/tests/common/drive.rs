//! Plays hotline's media worker for one browser leg in the tests.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use webrtc_leg::{AnsweredLeg, LegEvent, G711};

use super::audio;

/// What the Rust side of one leg saw.
#[derive(Debug, Default)]
pub struct RustSide {
    pub law: Option<G711>,
    pub connected_after: Option<Duration>,
    pub frames_in: usize,
    pub wrong_law_frames: usize,
    pub samples: Vec<i16>,
    pub digits: String,
    pub closed: bool,
    pub stats: Option<webrtc_leg::leg::LegStats>,
}

/// Plays hotline's media worker for one leg: one frame out per 20 ms tick,
/// everything queued in taken with `try_recv`.
pub async fn drive(mut leg: AnsweredLeg, tone_hz: f64) -> RustSide {
    let law = leg.media.codec;
    let mut side = RustSide {
        law: Some(law),
        ..Default::default()
    };
    let mut tone = audio::Tone::new(tone_hz, 8000.0);
    let start = Instant::now();
    let mut last_frame = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        // Dropped if full, as the real worker would.
        let _ = leg.media.to_browser.try_send(tone.frame(law));
        while let Ok(f) = leg.media.from_browser.try_recv() {
            side.frames_in += 1;
            if f.law != law {
                side.wrong_law_frames += 1;
            }
            side.samples
                .extend(f.payload.iter().map(|&b| audio::decode(f.law, b)));
            last_frame = Instant::now();
        }
        while let Ok(ev) = leg.events.try_recv() {
            match ev {
                LegEvent::Connected => side.connected_after = Some(start.elapsed()),
                LegEvent::Digit(d) => side.digits.push(d),
                LegEvent::Closed => side.closed = true,
            }
        }
        let quiet = side.frames_in > 0 && last_frame.elapsed() > Duration::from_millis(1500);
        if side.closed || quiet || start.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    side.stats = Some(leg.leg.stats());
    leg.leg.close().await;
    side
}
