//! Real-browser proof of the browser media leg: headless Chromium with a
//! fake-microphone WAV (a 440 Hz tone) connects to `WebRtcMedia` over
//! ICE-lite + DTLS-SRTP on 127.0.0.1, once with PCMU and once with PCMA
//! preferred, and presses keys with RFC 4733. We assert:
//!
//! * the Rust side gets 20 ms frames in the negotiated law whose energy is
//!   at 440 Hz (Goertzel), i.e. it hears the microphone;
//! * the browser hears our 1000 Hz tone (WebAudio analyser peak, and the
//!   `inbound-rtp` audio level and energy from `getStats`);
//! * the keys arrive as digits.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node`, `sox`, and
//! `npm install` in the crate root (see `scripts/setup-browser-test.sh`).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc;
use webrtc_leg::{AnsweredLeg, BrowserMedia, LegConfig, PortPolicy, WebRtcMedia, G711};

use common::drive::drive;
use common::{audio, browser};

const MIC_HZ: f64 = 440.0;
const OUR_HZ: f64 = 1000.0;
const PAGE: &str = include_str!("browser/page.html");

struct Served {
    pcmu_first: WebRtcMedia,
    pcma_first: WebRtcMedia,
    legs: mpsc::Sender<AnsweredLeg>,
}

async fn offer(
    State(s): State<Arc<Served>>,
    UrlPath(law): UrlPath<String>,
    body: String,
) -> Result<String, (StatusCode, String)> {
    let media = if law == "pcma" {
        &s.pcma_first
    } else {
        &s.pcmu_first
    };
    let leg = media
        .answer(&body)
        .await
        .map_err(|e| (StatusCode::NOT_ACCEPTABLE, e.to_string()))?;
    let sdp = leg.sdp.clone();
    s.legs
        .send(leg)
        .await
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "test gone".to_string()))?;
    Ok(sdp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_two_way_audio_and_dtmf_pcmu_and_pcma() {
    browser::check_prerequisites();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();

    let mic = browser::tone_wav(MIC_HZ as u32);

    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut pcmu_cfg = LegConfig::new(lo);
    // Exercise the range policy: a narrow range well away from hotline's.
    pcmu_cfg.ports = PortPolicy::Range {
        first: 47100,
        last: 47109,
    };
    let mut pcma_cfg = pcmu_cfg.clone();
    pcma_cfg.codecs = vec![G711::Pcma, G711::Pcmu];
    let (legs_tx, mut legs_rx) = mpsc::channel(4);
    let served = Arc::new(Served {
        pcmu_first: WebRtcMedia::new(pcmu_cfg).expect("pcmu media"),
        pcma_first: WebRtcMedia::new(pcma_cfg).expect("pcma media"),
        legs: legs_tx,
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/offer/{law}", post(offer))
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind((lo, 0))
        .await
        .expect("bind http");
    let http = listener.local_addr().expect("http addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let base = format!("http://{http}/");
    let drivers = tokio::spawn(async move {
        let mut sides = Vec::new();
        while let Some(leg) = legs_rx.recv().await {
            // Sequential pages: one leg at a time.
            sides.push(drive(leg, OUR_HZ).await);
            if sides.len() == 2 {
                break;
            }
        }
        sides
    });

    let urls = [
        format!("{base}?law=pcmu&digits=1%23&hold=1500"),
        format!("{base}?law=pcma&digits=9*&hold=1500"),
    ];
    let results = browser::run_pages(&mic, &urls, Duration::from_secs(90)).await;
    let sides = tokio::time::timeout(Duration::from_secs(30), drivers)
        .await
        .expect("legs did not finish")
        .expect("driver task");

    assert_eq!(results.len(), 2, "one result per page: {results:?}");
    assert_eq!(sides.len(), 2, "one leg per page");
    for ((page, side), (law, digits)) in results
        .iter()
        .zip(&sides)
        .zip([(G711::Pcmu, "1#"), (G711::Pcma, "9*")])
    {
        let skip = 8000 / 2; // the first half second may hold ramp-up
        let heard = &side.samples[skip.min(side.samples.len())..];
        println!(
            "{law}: connected in {:?} (browser {} ms); rust got {} frames, rms {:.0}, \
             share at {MIC_HZ} Hz {:.2}, at {OUR_HZ} Hz {:.2}; digits {:?}; closed event {}; stats {:?}",
            side.connected_after,
            page["connectMs"],
            side.frames_in,
            audio::rms(heard),
            audio::tone_share(heard, MIC_HZ),
            audio::tone_share(heard, OUR_HZ),
            side.digits,
            side.closed,
            side.stats,
        );
        println!(
            "{law}: browser peaks {} inbound {} outbound {}",
            page["peaks"], page["inbound"], page["outbound"]
        );
        assert_eq!(page["phase"], "done", "page: {page}");
        assert_eq!(page["answerHasIceLite"], true);
        assert_eq!(side.law, Some(law));
        assert!(side.connected_after.is_some(), "{law}: never connected");

        // Rust hears the microphone.
        assert!(
            side.frames_in >= 100,
            "{law}: only {} frames",
            side.frames_in
        );
        assert_eq!(side.wrong_law_frames, 0);
        assert!(audio::rms(heard) > 500.0, "{law}: silent");
        assert!(
            audio::tone_share(heard, MIC_HZ) > 0.5,
            "{law}: not the 440 Hz microphone"
        );
        assert!(audio::tone_share(heard, OUR_HZ) < 0.05);

        // The browser hears our tone, in the law we chose.
        let mime = format!("audio/{}", law.encoding_name());
        assert_eq!(page["inbound"]["mimeType"], mime.as_str());
        assert_eq!(page["outbound"]["mimeType"], mime.as_str());
        assert!(page["inbound"]["audioLevel"].as_f64().unwrap_or(0.0) > 0.05);
        assert!(page["inbound"]["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0);
        let peaks = page["peaks"].as_array().expect("peaks");
        assert!(!peaks.is_empty());
        for p in peaks {
            let hz = p["hz"].as_f64().unwrap_or(0.0);
            assert!((hz - OUR_HZ).abs() < 30.0, "{law}: browser peak at {hz} Hz");
        }

        // Keys pressed in the browser arrive as digits.
        assert_eq!(side.digits, digits, "{law}: digits");
    }
    assert_eq!(served.pcmu_first.ports_in_use(), 0, "ports released");
}

#[test]
fn g711_round_trips_closely_and_goertzel_finds_the_tone() {
    for law in [G711::Pcmu, G711::Pcma] {
        for pcm in [-32000i16, -1000, -5, 0, 7, 1234, 30000] {
            let back = audio::decode(law, audio::encode(law, pcm));
            let err = (i32::from(back) - i32::from(pcm)).abs();
            assert!(
                err <= i32::from(pcm).abs() / 16 + 16,
                "{law} {pcm} -> {back}"
            );
        }
        assert!(
            audio::decode(law, law.silence()).abs() <= 8,
            "{law} silence"
        );
        let mut tone = audio::Tone::new(1000.0, 8000.0);
        let samples: Vec<i16> = (0..50)
            .flat_map(|_| tone.frame(law))
            .map(|b| audio::decode(law, b))
            .collect();
        assert!(audio::tone_share(&samples, 1000.0) > 0.9);
        assert!(audio::tone_share(&samples, 440.0) < 0.05);
    }
}
