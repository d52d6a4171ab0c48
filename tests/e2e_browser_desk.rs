//! End to end: the browser phone's controls beyond answering, with real peers.
//!
//! Headless Chromium (`tests/web/e2e_browser_desk.mjs`) runs three pages: the
//! supervisor's wallboard, a desk whose microphone the agent blocked (1003)
//! and agent 1001's desk, whose fake microphones play a 1000 Hz tone. SIPp
//! customers (speech, PCMA) dial 8000 and press 2. Agent 1002 (1600 Hz) and
//! supervisor s100 (2200 Hz) are baresip phones.
//!
//! Call 1 rings the blocked desk first: answering fails with a message that
//! says what to do, and the call keeps ringing until that agent rejects it;
//! it then goes to 1001, whose page is offered the customer's law (PCMA, so
//! the bridge is a copy). The supervisor listens, whispers and barges in
//! from the wallboard; the agent mutes for 3 s and picks another microphone.
//! Judged by what the agent's page received (recorded by the page), what
//! the customer heard (the server's recording), what the supervisor's phone
//! heard, and the call's legs. Call 2: 1001 transfers the customer to 1002
//! with a note from the desk; the record keeps the note and the customer
//! ends up hearing 1002. Call 3: 1001 consults 1002 from the desk (the
//! customer hears music, the page hears 1002), then completes the transfer.
//! Call 4 goes to 1002 (repair), who consults the browser agent (through
//! the API) and hands the customer over to it.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use audio::{
    last_run, longest_gap, mic_wav, seconds_of, tone_frames, tone_seconds, tone_seconds_under,
    tone_wav, wav_channel,
};
use common::agents::{
    agent, agent_password, hotline_dialplan, stored_call, wait_registrations, Baresip, Customer,
    QueueSetup,
};
use common::web::{artifacts, browser_tools, spawn_browser, ONE_BROWSER};
use common::TestServer;
use common::{http_request, poll};
use serde_json::Value;

const AGENT_TONE: f32 = 1000.0;
const COLLEAGUE_TONE: f32 = 1600.0;
const SUPERVISOR_TONE: f32 = 2200.0;
const CALLER1: &str = "13980000001";
const CALLER2: &str = "13980000002";
const CALLER3: &str = "13980000003";
const CALLER4: &str = "13980000004";

/// A field of a JSON line as text ("" when absent).
fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Seconds from the page's recording start to the event time `at` (ms).
fn offset(v: &Value, key: &str, from_ms: f64) -> f32 {
    ((v[key].as_f64().unwrap_or(0.0) - from_ms) / 1000.0) as f32
}

/// (party, role, outcome) of each phone a call rang.
fn rung(legs: &[hotline::store::CallLeg]) -> Vec<(&str, &str, &str)> {
    legs.iter()
        .map(|l| (l.party.as_str(), l.role.as_str(), l.outcome.as_str()))
        .collect()
}

/// (from agent, to, note) of each transfer of a call.
fn hops(call: &hotline::store::CallRecord) -> Vec<(&str, &str, &str)> {
    call.transfer_chain
        .iter()
        .map(|h| (h.from_agent.as_str(), h.to.as_str(), h.note.as_str()))
        .collect()
}

/// In a transferred call's recording (right: what the customer heard): when
/// the first agent's tone was last heard, when the second's was first
/// heard, and for how long the second was heard (seconds).
fn handed_over(call: &hotline::store::CallRecord, first: f32, second: f32) -> (f32, f32, f32) {
    let wav = PathBuf::from(call.recording.as_deref().expect("the call is recorded"));
    let (spec, right) = wav_channel(&wav, 1);
    let from_first = tone_frames(&right, spec.sample_rate, first);
    let from_second = tone_frames(&right, spec.sample_rate, second);
    (
        last_run(&from_first).expect("the customer heard the first agent"),
        audio::first_run(&from_second).expect("the customer heard the second agent"),
        seconds_of(&from_second),
    )
}

/// The customer heard the `first` agent, then music (not the two agents
/// consulting), then the `second`.
fn handed_over_after_consulting(call: &hotline::store::CallRecord, first: f32, second: f32) {
    let (first_until, second_from, second_secs) = handed_over(call, first, second);
    assert!(
        second_from - first_until >= 3.0 && second_secs >= 2.5,
        "the customer heard {first} Hz until {first_until:.1} s and {second} Hz from {second_from:.1} s ({second_secs:.1} s): not the consultation in between"
    );
}

/// Waits until the customer `caller` is connected to `agent`; the call's
/// record id (from the server's log).
fn wait_connected(server: &TestServer, caller: &str, agent: &str) -> String {
    let span = format!("caller={caller} ");
    let connected = format!("connected to agent agent={agent} ");
    poll(Duration::from_secs(60), || {
        let log = server.log();
        let ours = || log.lines().filter(|l| l.contains(&span));
        ours().any(|l| l.contains(&connected)).then_some(())?;
        ours().find_map(|l| {
            let id = l.split("inbound call record=").nth(1)?;
            id.split_whitespace().next().map(str::to_string)
        })
    })
    .unwrap_or_else(|| panic!("{caller} never talked to {agent}\n{}", server.log()))
}

#[test]
fn browser_agent_with_blocked_microphone_supervisor_mute_microphone_choice_and_transfer() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("browser_desk");
    let queues = QueueSetup {
        // The blocked desk is given time to show its message before it rejects.
        ring_timeout_ms: 20_000,
        ..QueueSetup::default()
    };
    let server = TestServer::builder()
        .agents(vec![
            agent("1001", &["install"]),
            agent("1003", &["install"]),
            agent("1002", &["repair"]),
        ])
        .dialplan("hotline-desk.toml", &hotline_dialplan())
        .extra_toml(&format!(
            "{}\n[[users]]\nid = \"s100\"\nname = \"Supervisor\"\npassword = {:?}\nrole = \"supervisor\"\n",
            queues.toml(),
            agent_password("s100"),
        ))
        .start();
    let _colleague = Baresip::start(&server, "1002", &tone_wav(&art, COLLEAGUE_TONE));
    let supervisor = Baresip::start(&server, "s100", &tone_wav(&art, SUPERVISOR_TONE));
    wait_registrations(&server, 2.0, "agent 1002 and supervisor s100 on baresip");

    let mic = mic_wav(&art, AGENT_TONE);
    let mut browser = spawn_browser(
        &node,
        "e2e_browser_desk.mjs",
        &art,
        &[
            ("HOTLINE_URL", format!("http://{}", server.http)),
            ("AGENT_ID", "1001".to_string()),
            ("AGENT_PW", agent_password("1001")),
            ("BLOCKED_ID", "1003".to_string()),
            ("BLOCKED_PW", agent_password("1003")),
            ("SUP_ID", "s100".to_string()),
            ("SUP_PW", agent_password("s100")),
            ("MIC_WAV", mic.display().to_string()),
            ("CALLER1", CALLER1.to_string()),
            ("TRANSFER_TO", "1002".to_string()),
        ],
    );
    browser.expect("ready", Duration::from_secs(90));

    // Call 1.
    let customer = Customer::call(&server, CALLER1, &["2"]);
    let denied = browser.expect("mic_denied", Duration::from_secs(60));
    assert_eq!(text(&denied, "error"), "NotAllowedError", "{denied}");
    assert!(
        text(&denied, "text").contains("麦克风权限被拒绝")
            && text(&denied, "text").contains("Microphone access was denied"),
        "the blocked desk says what happened and what to do: {denied}"
    );
    assert_eq!(
        text(&denied, "state"),
        "ringing",
        "the call keeps ringing: {denied}"
    );
    let in_call = browser.expect("in_call", Duration::from_secs(60));
    assert!(
        text(&in_call, "caller").contains(CALLER1),
        "the agent's phone shows the caller: {in_call}"
    );
    assert_eq!(
        text(&in_call, "codec"),
        "audio/PCMA",
        "the browser is offered the customer's law first: {in_call}"
    );
    let from = in_call["hearing_from"].as_f64().unwrap_or(0.0);
    let monitored = browser.expect("monitored", Duration::from_secs(90));
    let muted = browser.expect("muted", Duration::from_secs(30));
    assert!(
        text(&muted, "status").contains("已静音"),
        "the phone panel says muted: {muted}"
    );
    let chosen = browser.expect("mic_chosen", Duration::from_secs(30));
    assert_eq!(
        text(&chosen, "sent_label"),
        "Fake Audio Input 2",
        "the call sends the chosen microphone: {chosen}"
    );
    let heard = browser.expect("heard", Duration::from_secs(30));
    customer.hang_up_and_finish();
    browser.expect("ended", Duration::from_secs(30));

    // Call 2: a blind transfer with a note from the desk.
    let customer = Customer::call(&server, CALLER2, &["2"]);
    let transferred = browser.expect("transferred", Duration::from_secs(90));
    assert!(
        text(&transferred, "status").contains("对方已挂断"),
        "hotline hung up the agent's phone after the transfer: {transferred}"
    );
    std::thread::sleep(Duration::from_secs(5));
    customer.hang_up_and_finish();

    // Call 3: consult, then complete.
    let customer = Customer::call(&server, CALLER3, &["2"]);
    let consulted = browser.expect("consulted", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(4));
    customer.hang_up_and_finish();

    // Call 4: 1002 takes a repair call and consults the browser agent.
    // 1: repair; #: no work order number to give.
    let customer = Customer::call(&server, CALLER4, &["1", "#"]);
    let call4 = wait_connected(&server, CALLER4, "1002");
    std::thread::sleep(Duration::from_secs(3));
    let token = server.login("s100", &agent_password("s100"));
    let consult_note = "客户家的洗衣机需要换电机,请安装组接手";
    let post = |path: &str, body: &str| {
        http_request(server.http, "POST", path, Some(&token), Some(body)).expect("API request")
    };
    let (status, body) = post(
        &format!("/api/calls/{call4}/consult"),
        &serde_json::json!({"agent": "1001", "note": consult_note}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    poll(Duration::from_secs(20), || {
        server
            .log()
            .contains("consulted agent answered")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the browser agent never answered the consultation"));
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = post(&format!("/api/calls/{call4}/consult/complete"), "");
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(4));
    customer.hang_up_and_finish();
    let consulted_in = browser.expect("consulted_in", Duration::from_secs(30));
    assert!(
        text(&consulted_in, "seen").contains("incall"),
        "{consulted_in}"
    );
    browser.expect("done", Duration::from_secs(30));

    // --- Call 1 on record: blocked desk rejected, 1001 answered, s100 monitored.
    let (call, legs) = stored_call(&server, CALLER1, 3);
    assert_eq!(call.agent_id.as_deref(), Some("1001"), "{call:#?}");
    assert_eq!(
        rung(&legs),
        [
            ("1003", "offer", "busy"),
            ("1001", "offer", "connected"),
            ("s100", "monitor", "connected"),
        ],
        "the phones call 1 rang"
    );

    // What the agent's page received: the supervisor only from the whisper on.
    let heard_path = PathBuf::from(text(&heard, "path"));
    let (spec, agent_heard) = wav_channel(&heard_path, 0);
    let rate = spec.sample_rate;
    let (listen, whisper, barge, stop) = (
        offset(&monitored, "listen_at", from),
        offset(&monitored, "whisper_at", from),
        offset(&monitored, "barge_at", from),
        offset(&monitored, "stop_at", from),
    );
    let while_listening = tone_seconds(
        &agent_heard,
        rate,
        SUPERVISOR_TONE,
        listen + 0.5,
        whisper - 0.5,
    );
    let while_whispering = tone_seconds(&agent_heard, rate, SUPERVISOR_TONE, whisper + 1.5, barge);
    let while_barging = tone_seconds(&agent_heard, rate, SUPERVISOR_TONE, barge, stop - 0.5);
    eprintln!(
        "agent heard the supervisor: listening {while_listening:.1} s, whispering {while_whispering:.1} s, barging {while_barging:.1} s ({})",
        heard_path.display()
    );
    assert!(
        while_listening < 0.5,
        "a listening supervisor is not heard by the agent ({while_listening:.1} s)"
    );
    assert!(
        while_whispering >= 1.5 && while_barging >= 2.0,
        "the agent hears a whispering and a barging supervisor ({while_whispering:.1} s, {while_barging:.1} s)"
    );

    // What the customer heard (the recording's right channel): the supervisor
    // only while barging, the agent except while muted, and the agent again
    // on the chosen microphone.
    let wav = PathBuf::from(call.recording.as_deref().expect("call 1 is recorded"));
    // Kept beside the screenshots for a person to listen to.
    let _ = std::fs::copy(&wav, art.join("call-1-recording.wav"));
    let (spec, right) = wav_channel(&wav, 1);
    let rate = spec.sample_rate;
    let sup = tone_frames(&right, rate, SUPERVISOR_TONE);
    let sup_secs = seconds_of(&sup);
    assert!(
        (1.5..=6.0).contains(&sup_secs),
        "the customer heard the supervisor only while barging (4 s), not while listening or whispering: {sup_secs:.1} s in {}",
        wav.display()
    );
    let sup_end = last_run(&sup).expect("the customer heard the supervisor barge in");
    // After the barge: while both talk, the agent's tone is not the larger
    // part of the mix, and the tone detector does not count it.
    let after_barge = ((sup_end / 0.02) as usize).min(sup.len());
    let agent_frames = tone_frames(&right, rate, AGENT_TONE);
    let (gap_at, gap) = longest_gap(&agent_frames[after_barge..])
        .map(|(at, len)| (sup_end + at, len))
        .expect("the customer heard the agent after the barge");
    let mute_after_stop = ((muted["at"].as_f64().unwrap_or(0.0)
        - monitored["stop_at"].as_f64().unwrap_or(0.0))
        / 1000.0) as f32;
    eprintln!(
        "customer heard: supervisor {sup_secs:.1} s until {sup_end:.1} s; longest silence of the agent {gap:.1} s from {gap_at:.1} s (mute expected {mute_after_stop:.1} s after the barge ended)"
    );
    assert!(
        (2.0..=5.0).contains(&gap),
        "muting for 3 s silences the agent for the customer: longest gap {gap:.1} s"
    );
    assert!(
        (gap_at - (sup_end + mute_after_stop)).abs() < 1.5,
        "the silence is where the agent muted: at {gap_at:.1} s, expected about {:.1} s",
        sup_end + mute_after_stop
    );
    let after = tone_seconds(&right, rate, AGENT_TONE, gap_at + gap, f32::MAX);
    assert!(
        after >= 3.0,
        "after unmuting and choosing another microphone the customer hears the agent ({after:.1} s)"
    );

    // What the supervisor's phone heard: the agent, throughout the 12 s.
    let heard_sup = poll(Duration::from_secs(5), || supervisor.heard())
        .unwrap_or_else(|| panic!("s100's baresip recorded nothing\n{}", supervisor.log()));
    let _ = std::fs::copy(&heard_sup, art.join("supervisor-heard.wav"));
    let (spec, sup_heard) = wav_channel(&heard_sup, 0);
    // Under the customer's speech: the browser's voice arrives quieter
    // (Chromium's noise suppression turns a steady tone down by ~20 dB).
    let agent_to_sup = tone_seconds_under(&sup_heard, spec.sample_rate, AGENT_TONE)
        .iter()
        .filter(|&&b| b)
        .count();
    assert!(
        agent_to_sup >= 9,
        "the supervisor heard the browser agent in {agent_to_sup} of the 12 s they monitored ({})",
        heard_sup.display()
    );

    // --- Call 2 on record: transferred by 1001 to 1002 with the desk's note.
    let (call, legs) = stored_call(&server, CALLER2, 2);
    assert_eq!(call.agent_id.as_deref(), Some("1002"), "{call:#?}");
    assert_eq!(
        hops(&call),
        [("1001", "agent 1002", text(&transferred, "note").as_str())],
        "the transfer and its note"
    );
    assert!(
        legs.iter()
            .any(|l| l.party == "1002" && l.outcome == "connected"),
        "1002 answered the transferred call: {legs:#?}"
    );
    let (agent_until, colleague_from, colleague_secs) =
        handed_over(&call, AGENT_TONE, COLLEAGUE_TONE);
    assert!(
        agent_until <= colleague_from + 0.5 && colleague_secs >= 3.0,
        "the customer heard the browser agent until {agent_until:.1} s, then 1002 from {colleague_from:.1} s ({colleague_secs:.1} s)"
    );

    // --- Call 3: consulted 1002 from the desk, then handed over.
    let (call, legs) = stored_call(&server, CALLER3, 2);
    assert_eq!(call.agent_id.as_deref(), Some("1002"), "{call:#?}");
    assert_eq!(
        hops(&call),
        [("1001", "agent 1002", text(&consulted, "note").as_str())],
        "the attended transfer and its note"
    );
    assert_eq!(
        rung(&legs),
        [
            ("1001", "offer", "transferred"),
            ("1002", "consult", "connected")
        ],
        "the phones call 3 rang"
    );
    // The browser agent heard the colleague while consulting.
    let from = consulted["from"].as_f64().unwrap_or(0.0);
    let (spec, agent_heard) = wav_channel(&PathBuf::from(text(&consulted, "path")), 0);
    let colleague_to_agent = tone_seconds(
        &agent_heard,
        spec.sample_rate,
        COLLEAGUE_TONE,
        offset(&consulted, "consult_at", from) + 0.5,
        offset(&consulted, "complete_at", from),
    );
    assert!(
        colleague_to_agent >= 2.5,
        "the browser agent heard 1002 during the consultation ({colleague_to_agent:.1} s)"
    );
    handed_over_after_consulting(&call, AGENT_TONE, COLLEAGUE_TONE);

    // --- Call 4: 1002 consulted the browser agent and handed the customer over.
    let (call, legs) = stored_call(&server, CALLER4, 2);
    assert_eq!(call.agent_id.as_deref(), Some("1001"), "{call:#?}");
    assert_eq!(
        rung(&legs),
        [
            ("1002", "offer", "transferred"),
            ("1001", "consult", "connected")
        ],
        "the phones call 4 rang"
    );
    assert_eq!(
        hops(&call),
        [("1002", "agent 1001", consult_note)],
        "the hand-over to the browser agent and its note"
    );
    handed_over_after_consulting(&call, COLLEAGUE_TONE, AGENT_TONE);

    // The pages are gone: their registrations and WebRTC legs with them.
    drop(browser);
    let gone = server.wait_metric("hotline_registrations", Duration::from_secs(15), |v| {
        v <= 2.0
    });
    assert!(
        gone.is_ok(),
        "only the two baresip phones stay registered: {gone:?}"
    );
    let closed = server.wait_metric("hotline_browser_legs", Duration::from_secs(10), |v| {
        v == 0.0
    });
    assert!(closed.is_ok(), "browser legs left open: {closed:?}");
}
