//! End to end: an agent with only a browser takes queued calls in the desk.
//!
//! Headless Chromium opens the agent desk with the browser phone on
//! (`tests/web/e2e_browser_phone.mjs`); its fake microphone plays a steady
//! 1000 Hz tone as the agent's voice. It registers over SIP-over-WebSocket
//! (`/sip`) with the agent's digest credentials and answers what it is
//! offered over WebRTC. pjsua2 customers dial 8000, press 2 (installation)
//! and wait in the queue, playing a 1600 Hz tone as their voice.
//!
//! Call 1: the customer hangs up. Judged by what each side heard (the
//! customer's own recording, the page's analyser), the stereo recording on
//! disk (customer left, agent right) and the call row. Call 2: the agent
//! holds and resumes from the desk (hold time on the record), presses a key
//! on the keypad (the server sees the RFC 4733 digit) and hangs up (the
//! customer's phone gets the BYE). Call 3: the page crashes mid-call; the
//! customer is hung up at once (`agent_gone`), not after ICE gives up.
//! Finally the WebSocket closes with the page and the registration goes
//! with it.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use audio::{mic_wav, seconds_of, tone_frames, tone_wav, wav_channel};
use common::agents::{agent, agent_password, hotline_dialplan, row_of, QueueSetup};
use common::web::{artifacts, browser_tools, spawn_browser, ONE_BROWSER};
use common::{run_python, TestServer};

const AGENT_TONE: f32 = 1000.0;
const CUSTOMER_TONE: f32 = 1600.0;

/// A pjsua2 customer: dials 8000, presses 2, plays `voice` from 1 s on and
/// records what it hears; hangs up after `hangup_after` seconds of media
/// unless hotline hangs up first. Returns its JSON lines.
fn customer(
    server: &TestServer,
    caller: &str,
    voice: &Path,
    record: &Path,
    hangup_after: u32,
) -> String {
    let args: Vec<String> = [
        "--server",
        &server.sip.to_string(),
        "--to",
        "8000",
        "--caller",
        caller,
        "--record",
        &record.display().to_string(),
        "--codec",
        "PCMU",
        "--dtmf",
        "2@3",
        "--play",
        &format!("{}@1", voice.display()),
        "--hangup-after",
        &hangup_after.to_string(),
        "--limit",
        "90",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_python("pjsua2_ivr.py", &args, Duration::from_secs(100));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("\"done\""),
        "pjsua2 customer {caller} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn browser_agent_takes_queued_calls_with_two_way_audio_hold_hang_up_and_crash() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("browser_phone");
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"])])
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&QueueSetup::default().toml())
        .start();
    let mic = mic_wav(&art, AGENT_TONE);
    let voice = tone_wav(&art, CUSTOMER_TONE);

    let mut browser = spawn_browser(
        &node,
        "e2e_browser_phone.mjs",
        &art,
        &[
            ("HOTLINE_URL", format!("http://{}", server.http)),
            ("AGENT_ID", "1001".to_string()),
            ("AGENT_PW", agent_password("1001")),
            ("MIC_WAV", mic.display().to_string()),
        ],
    );
    browser.expect("registered", Duration::from_secs(60));
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("registered")
            && l.contains("aor=1001")
            && l.contains("transport=WS ")),
        "the desk registered over WebSocket\n{log}"
    );

    // Call 1: the customer talks to the browser agent, then hangs up.
    let rec1 = art.join("customer-1-heard.wav");
    let c1 = std::thread::scope(|scope| {
        let handle = scope.spawn(|| customer(&server, "13900000001", &voice, &rec1, 24));
        let in_call = browser.expect("in_call", Duration::from_secs(60));
        let peak = in_call["peak_hz"].as_f64().unwrap_or(0.0);
        assert!(
            (peak - f64::from(CUSTOMER_TONE)).abs() < 60.0,
            "the agent's page hears the customer's {CUSTOMER_TONE} Hz; its loudest frequency was {peak} Hz"
        );
        browser.expect("ended", Duration::from_secs(60));
        handle.join().expect("customer 1 thread")
    });
    assert!(
        c1.contains("hangup_sent"),
        "customer 1 hung up itself\n{c1}"
    );
    let row = row_of(&server, "13900000001");
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:?}");
    assert_eq!(row.queue.as_deref(), Some("install"), "{row:?}");
    assert_eq!(row.hangup_side, "caller", "{row:?}");
    assert!(row.talk_ms > 5_000, "talked for a while: {row:?}");

    // What the customer heard: the agent's microphone.
    let (spec, heard) = wav_channel(&rec1, 0);
    let agent_secs = seconds_of(&tone_frames(&heard, spec.sample_rate, AGENT_TONE));
    assert!(
        agent_secs > 4.0,
        "the customer heard the agent's {AGENT_TONE} Hz for {agent_secs:.1} s"
    );

    // The recording on disk: customer left, browser agent right.
    let wav = PathBuf::from(row.recording.as_deref().expect("call 1 is recorded"));
    let (spec, left) = wav_channel(&wav, 0);
    let (_, right) = wav_channel(&wav, 1);
    assert_eq!(spec.channels, 2, "stereo recording");
    let left_customer = seconds_of(&tone_frames(&left, spec.sample_rate, CUSTOMER_TONE));
    let right_agent = seconds_of(&tone_frames(&right, spec.sample_rate, AGENT_TONE));
    assert!(
        left_customer > 4.0 && right_agent > 4.0,
        "recording {}: customer tone on the left {left_customer:.1} s, agent tone on the right {right_agent:.1} s",
        wav.display()
    );
    assert!(
        seconds_of(&tone_frames(&left, spec.sample_rate, AGENT_TONE)) < 1.0
            && seconds_of(&tone_frames(&right, spec.sample_rate, CUSTOMER_TONE)) < 1.0,
        "each side on its own channel"
    );

    // Call 2: hold and resume from the desk, a key, and the agent hangs up.
    let rec2 = art.join("customer-2-heard.wav");
    let c2 = std::thread::scope(|scope| {
        let handle = scope.spawn(|| customer(&server, "13900000002", &voice, &rec2, 80));
        browser.expect("in_call", Duration::from_secs(60));
        browser.expect("held", Duration::from_secs(30));
        browser.expect("resumed", Duration::from_secs(30));
        let hung_up = browser.expect("hung_up", Duration::from_secs(30));
        assert!(
            hung_up["seen"].as_str().unwrap_or("").contains("incall"),
            "{hung_up}"
        );
        handle.join().expect("customer 2 thread")
    });
    assert!(
        !c2.contains("hangup_sent") && c2.contains("\"disconnected\""),
        "hotline hung up on customer 2 when the agent did\n{c2}"
    );
    let row = row_of(&server, "13900000002");
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:?}");
    assert_eq!(row.hangup_side, "agent", "{row:?}");
    assert!(
        row.hold_ms >= 2_000,
        "the desk's hold counts on the record: {row:?}"
    );
    let log = server.log();
    assert!(
        log.contains("browser agent pressed a key") && log.contains("digit=5"),
        "the keypad's 5 reached the server as RFC 4733\n{log}"
    );

    // Call 3: the agent's page crashes mid-call (no BYE). The customer is
    // not left in silence: hotline hangs up on them within seconds.
    let rec3 = art.join("customer-3-heard.wav");
    let (c3, crashed) = std::thread::scope(|scope| {
        let handle = scope.spawn(|| customer(&server, "13900000003", &voice, &rec3, 80));
        browser.expect("in_call", Duration::from_secs(60));
        let crashed = browser.expect("crashed", Duration::from_secs(30));
        (handle.join().expect("customer 3 thread"), crashed)
    });
    assert!(
        !c3.contains("hangup_sent") && c3.contains("\"disconnected\""),
        "hotline hung up on customer 3 when the agent's page went away\n{c3}"
    );
    let row = row_of(&server, "13900000003");
    let crashed_at = crashed["at"].as_i64().unwrap_or(0);
    let after_ms = row.ended_at.unwrap_or(i64::MAX) - crashed_at;
    eprintln!("call 3 ended {after_ms} ms after the agent's page crashed");
    assert!(
        after_ms < 5_000,
        "the call ended {after_ms} ms after the agent's page crashed: {row:?}"
    );
    assert_eq!(
        (row.hangup_cause.as_str(), row.hangup_side.as_str()),
        ("agent_gone", "agent"),
        "{row:?}"
    );
    browser.expect("done", Duration::from_secs(30));

    // The page is gone: its WebSocket closed and the registration with it.
    drop(browser);
    let gone = server.wait_metric("hotline_registrations", Duration::from_secs(15), |v| {
        v == 0.0
    });
    assert!(
        gone.is_ok(),
        "the browser's registration ends with its WebSocket (registrations: {gone:?})"
    );
    // Both calls' WebRTC legs are closed, none leaked.
    let closed = server.wait_metric("hotline_browser_legs", Duration::from_secs(10), |v| {
        v == 0.0
    });
    assert!(
        closed.is_ok(),
        "browser legs alive after both calls: {closed:?}"
    );
}
