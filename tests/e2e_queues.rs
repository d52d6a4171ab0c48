//! Queues and agents end to end, judged by what a customer or an agent
//! would notice: who gets the call, that both hear each other, that the call
//! is recorded and logged, and what happens when agents do not answer,
//! refuse, hang up, or customers give up.
//!
//! Every server loads its own copy of the shipped `dialplans/hotline.toml`
//! (calendar removed: always open; prompts from the repository). Customers
//! press their key into the greeting (barge-in), hear the transfer prompt
//! and join the queue ~8.5 s after answering.
//!
//! Peers: baresip and pjsua2 as agents' softphones with real audio (test 1);
//! SIPp agents that REGISTER and answer with their out-of-call scenario
//! ([`common::agents::SippAgents`]); SIPp customers that press keys by SIP
//! INFO and hang up when the test says so ([`common::agents::Customer`]).
//! Audio is compared as RMS envelopes (common/audio.rs), one second at a
//! time, so a short drop-out does not hide an otherwise correct path.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use audio::wav_channel;
use common::agents::{
    agent, agent_password, call_rows, ended_rows, queue_server, row_of, speech_a, speech_b,
    wait_queued, wait_registrations, Baresip, Behaviour, Customer, Offered, QueueSetup, Sipp,
    SippAgents,
};
use common::{field, json_lines, poll, run_python, TestServer, REPO};

/// The load test runs alone: every other test holds this for reading.
static MACHINE: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Audio: which speech is where

/// How much of a recording is a given reference speech, window by window.
#[derive(Debug)]
struct SpeechMatch {
    /// Non-silent 1 s windows of the recording.
    windows: usize,
    /// Of those, windows found in the reference (r >= 0.7) at the same
    /// alignment (within 0.3 s) as a neighbouring window: the same speech,
    /// played continuously.
    matched: usize,
    /// The first such alignment: reference time minus recording time, s.
    alignment: f32,
    /// (window start in the recording, s; best r; where in the reference, s).
    detail: Vec<(f32, f32, f32)>,
}

impl SpeechMatch {
    fn fraction(&self) -> f32 {
        if self.windows == 0 {
            0.0
        } else {
            self.matched as f32 / self.windows as f32
        }
    }
}

const WINDOW: usize = 50; // 50 envelope frames of 20 ms = 1 s

/// Cut `samples` (from `from_s` seconds on) into 1 s windows and find each
/// speech window in `reference` (anywhere: the two sides start at different
/// points of their files). Random speech matches a 1 s window now and then,
/// but only the right speech matches window after window at one alignment
/// (modulo the reference's length: SIPp loops its file).
fn speech_match(samples: &[f32], from_s: f32, reference: &[f32]) -> SpeechMatch {
    let start = ((from_s.max(0.0) * audio::RATE as f32) as usize).min(samples.len());
    let env = audio::envelope(&samples[start..], audio::FRAME);
    let refenv = audio::envelope(reference, audio::FRAME);
    let ref_secs = refenv.len() as f32 * 0.02;
    let mut detail = Vec::new();
    let mut w = 0;
    while w + WINDOW <= env.len() {
        let seg = &env[w..w + WINDOW];
        // Speech: some frames clearly above the line noise.
        let loud = seg.iter().filter(|v| **v > 0.02).count();
        if loud >= WINDOW / 5 {
            let mut best = (-1.0f32, 0usize);
            for k in 0..refenv.len().saturating_sub(WINDOW) {
                let r = audio::ncc(seg, &refenv[k..k + WINDOW]);
                if r > best.0 {
                    best = (r, k);
                }
            }
            detail.push((
                from_s + (w as f32) * 0.02,
                (best.0 * 100.0).round() / 100.0,
                best.1 as f32 * 0.02,
            ));
        }
        w += WINDOW;
    }
    let align = |d: &(f32, f32, f32)| (d.2 - d.0).rem_euclid(ref_secs);
    let same = |a: &(f32, f32, f32), b: &(f32, f32, f32)| {
        let d = (align(a) - align(b)).abs();
        a.1 >= 0.7 && b.1 >= 0.7 && d.min(ref_secs - d) <= 0.3
    };
    // A window counts when it continues (or is continued by) its neighbour
    // at the same alignment: runs survive a skipped stretch of audio (the
    // alignment changes once), random matches do not form runs.
    let in_run: Vec<bool> = (0..detail.len())
        .map(|i| {
            let next = detail
                .get(i + 1)
                .is_some_and(|n| n.0 - detail[i].0 < 1.5 && same(&detail[i], n));
            let prev =
                i > 0 && detail[i].0 - detail[i - 1].0 < 1.5 && same(&detail[i - 1], &detail[i]);
            next || prev
        })
        .collect();
    let matched = in_run.iter().filter(|b| **b).count();
    let alignment = detail
        .iter()
        .zip(&in_run)
        .find(|(_, r)| **r)
        .map(|(d, _)| align(d))
        .unwrap_or(0.0);
    SpeechMatch {
        windows: detail.len(),
        matched,
        alignment,
        detail,
    }
}

/// One channel of a WAV (any channel count), 8 kHz asserted, as f32.
fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
}

/// Assert that `what` is mostly `reference` speech (at least half of its
/// speech windows, and at least 2, found in it continuously) and more like
/// it than like `other`.
fn assert_speech(what: &str, samples: &[f32], from_s: f32, reference: &[f32], other: &[f32]) {
    assert_speech_at_least(what, samples, from_s, reference, other, 0.5);
}

/// [`assert_speech`] with the share of speech windows that must match.
fn assert_speech_at_least(
    what: &str,
    samples: &[f32],
    from_s: f32,
    reference: &[f32],
    other: &[f32],
    min_fraction: f32,
) {
    let own = speech_match(samples, from_s, reference);
    let cross = speech_match(samples, from_s, other);
    assert!(
        own.matched >= 2 && own.fraction() >= min_fraction && own.matched > cross.matched,
        "{what}: {}/{} speech windows match the expected speech (wrong one: {}/{})\n\
         expected: {:?}\nwrong one: {:?}",
        own.matched,
        own.windows,
        cross.matched,
        cross.windows,
        own.detail,
        cross.detail
    );
    eprintln!(
        "{what}: {}/{} windows at alignment {:.2}s (other speech {}/{}); {:?}",
        own.matched, own.windows, own.alignment, cross.matched, cross.windows, own.detail
    );
}

fn samples_of(path: &Path) -> Vec<f32> {
    audio::read_wav(path)
}

// ---------------------------------------------------------------------------
// Peers

// ---------------------------------------------------------------------------
// 1. Two-way audio, recorded, logged

enum Softphone {
    Baresip,
    Pjsua2,
}

fn two_way_audio(phone: Softphone) {
    let _g = shared();
    let server = queue_server(vec![agent("1001", &["install"])], &QueueSetup::default());
    let a = speech_a();
    let b = speech_b();
    let (a_pcm, b_pcm) = (samples_of(&a), samples_of(&b));

    // The agent's softphone: registers, auto-answers, talks B, records.
    let agent_heard = server.dir().join("agent-heard.wav");
    let mut baresip = None;
    let mut pj_agent = None;
    match phone {
        Softphone::Baresip => {
            baresip = Some(Baresip::start(&server, "1001", &common::agents::padded(&b)));
        }
        Softphone::Pjsua2 => {
            let args: Vec<String> = vec![
                "--server".into(),
                server.sip.to_string(),
                "--user".into(),
                "1001".into(),
                "--password".into(),
                agent_password("1001"),
                "--play".into(),
                b.display().to_string(),
                "--record".into(),
                agent_heard.display().to_string(),
                "--limit".into(),
                "45".into(),
            ];
            let err = server.dir().join("pjsua2-agent.err");
            pj_agent = Some(common::spawn_python("pjsua2_queue_agent.py", &args, &err));
        }
    }
    wait_registrations(&server, 1.0, "agent softphone");

    // The customer: pjsua2 presses 2 (RFC 4733) into the greeting, talks A
    // once the transfer prompt is over, hangs up ~6 s after being connected.
    let heard = server.dir().join("customer-heard.wav");
    let t0 = Instant::now();
    let out = run_python(
        "pjsua2_ivr.py",
        &[
            "--server".into(),
            server.sip.to_string(),
            "--to".into(),
            "8000".into(),
            "--caller".into(),
            "13900000001".into(),
            "--record".into(),
            heard.display().to_string(),
            "--dtmf".into(),
            "2@1.0".into(),
            "--play".into(),
            format!("{}@8.8", a.display()),
            "--hangup-after".into(),
            "14.5".into(),
            "--limit".into(),
            "40".into(),
        ],
        Duration::from_secs(50),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let events = json_lines(&stdout);
    let ev = |name: &str| {
        events
            .iter()
            .find(|e| field(e, "event") == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("customer: no {name:?} event\n{stdout}"))
    };
    assert_eq!(
        field(&ev("done"), "ok"),
        Some("true"),
        "customer pjsua2 failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hangup_at: f32 = field(&ev("hangup_sent"), "at")
        .and_then(|v| v.parse().ok())
        .expect("hangup_sent.at");
    eprintln!("customer call took {:?}", t0.elapsed());

    // The call record.
    let row = row_of(&server, "13900000001");
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:#?}");
    assert_eq!(row.queue.as_deref(), Some("install"), "{row:#?}");
    assert!(row.wait_ms >= 0, "{row:#?}");
    assert_eq!(row.hangup_side, "caller", "{row:#?}");
    let rec_path = PathBuf::from(row.recording.clone().expect("recording in the row"));
    assert!(
        rec_path.starts_with(server.dir().join("recordings")),
        "recording {} is not under [recordings] dir",
        rec_path.display()
    );
    let date = chrono::Utc::now().format("%Y/%m/%d").to_string();
    assert!(
        rec_path.to_string_lossy().contains(&date)
            && rec_path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                == Some(format!("{}.wav", row.id)),
        "recording path {} is not recordings/{date}/<call id>.wav",
        rec_path.display()
    );

    // What the customer heard: the transfer prompt, then the agent (B).
    let heard_pcm = samples_of(&heard);
    let prompt =
        audio::PromptAudio::load(&Path::new(REPO).join("dialplans/prompts/transfer_install.wav"));
    let rec = audio::Recording::new(&heard_pcm, 40);
    let m = rec
        .best(&prompt)
        .filter(|m| m.score >= 0.7)
        .unwrap_or_else(|| {
            panic!(
                "the customer never heard transfer_install.wav: {:?}; heard {}",
                rec.best(&prompt),
                audio::describe(&audio::timeline(
                    &rec,
                    &audio::load_prompts(&Path::new(REPO).join("dialplans/prompts"))
                ))
            )
        });
    assert_speech(
        "customer heard the agent (after the transfer prompt)",
        &heard_pcm,
        m.end_secs(),
        &b_pcm,
        &a_pcm,
    );
    // Connected time as the customer lived it: from the first speech of
    // the agent to the customer's BYE.
    let env = audio::envelope(&heard_pcm[m.end().min(heard_pcm.len())..], audio::FRAME);
    let first_b = env.iter().position(|v| *v > 0.02).unwrap_or(0) as f32 * 0.02 + m.end_secs();
    let lived_ms = (hangup_at - first_b) * 1000.0;
    assert!(
        (row.talk_ms as f32 - lived_ms).abs() < 800.0,
        "talk_ms {} but the customer heard the agent for {lived_ms:.0} ms (first B at {first_b:.2}s, \
         hangup at {hangup_at:.2}s)",
        row.talk_ms
    );
    assert!(
        (4000..9000).contains(&row.talk_ms),
        "talk_ms {} (expected ~6 s)",
        row.talk_ms
    );

    // What the agent heard: the customer (A).
    let agent_file = match &baresip {
        Some(bs) => poll(Duration::from_secs(5), || bs.heard())
            .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", bs.log())),
        None => {
            let (child, lines) = pj_agent.as_mut().expect("pjsua2 agent");
            let done = lines.wait_for(Duration::from_secs(10), |l| l.contains("\"done\""));
            assert!(
                done.as_deref().is_some_and(|l| l.contains("\"ok\": true")),
                "pjsua2 agent: {done:?}\n{}",
                lines.dump()
            );
            let inc = lines
                .seen
                .iter()
                .find(|l| l.contains("\"incoming\""))
                .cloned()
                .unwrap_or_default();
            assert!(
                inc.contains(&row.id),
                "the agent's INVITE carries X-Hotline-Call {}: {inc}",
                row.id
            );
            let _ = child.0.wait();
            agent_heard.clone()
        }
    };
    assert_speech(
        "agent heard the customer",
        &samples_of(&agent_file),
        0.0,
        &a_pcm,
        &b_pcm,
    );

    // The server's recording: stereo 8 kHz 16-bit, customer left, agent right.
    let (spec, left) = wav_channel(&rec_path, 0);
    let (_, right) = wav_channel(&rec_path, 1);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16),
        "recording format"
    );
    // The media worker skips audio it is too late for (logged): the
    // recording may be shorter than the talk time by that much.
    let ended = row.ended_at.expect("ended");
    let skipped: i64 = late_ticks(&server.log())
        .iter()
        .filter(|(at, _)| *at >= ended - row.talk_ms && *at <= ended)
        .map(|(_, ms)| *ms)
        .sum();
    let audio_ms = left.len() as i64 / 8;
    assert!(
        audio_ms <= row.talk_ms + 600 && row.talk_ms - audio_ms <= 600 + skipped,
        "recording lasts {audio_ms} ms, talk_ms {} ({skipped} ms skipped by late media ticks)",
        row.talk_ms
    );
    assert_speech("recording, left (customer)", &left, 0.0, &a_pcm, &b_pcm);
    assert_speech("recording, right (agent)", &right, 0.0, &b_pcm, &a_pcm);
}

/// baresip (Debian baresip-core) answers as agent 1001.
#[test]
fn two_way_audio_recorded_and_logged_baresip_agent() {
    two_way_audio(Softphone::Baresip);
}

/// pjsua2 (pjsua2_queue_agent.py) answers as agent 1001.
#[test]
fn two_way_audio_recorded_and_logged_pjsua2_agent() {
    two_way_audio(Softphone::Pjsua2);
}

// ---------------------------------------------------------------------------
// 2. Strategies

const IVR_LIMIT: Duration = Duration::from_secs(30);

/// The answered offer of `caller`'s call in `pools` (waits for it).
fn connected_to(pools: &[&SippAgents], caller: &str, limit: Duration) -> Offered {
    let got = poll(limit, || {
        pools
            .iter()
            .flat_map(|p| p.offers())
            .find(|o| o.caller == caller && o.acked)
    });
    got.unwrap_or_else(|| {
        let all: Vec<Offered> = pools.iter().flat_map(|p| p.offers()).collect();
        panic!("customer {caller} was not connected to an agent within {limit:?}; offers: {all:#?}")
    })
}

fn call(server: &TestServer, caller: &str, keys: &[&str]) -> Customer {
    Customer::call(server, caller, keys)
}

/// Phase 1: A then B arrive (A → 1001, B → 1002 whatever the strategy:
/// every agent is equally idle and ties go by id); B hangs up, then A.
/// Phase 2: C, D, E arrive one after the other while everybody is free.
fn two_phases(strategy: &'static str, phase2: [&str; 3]) {
    let _g = shared();
    let server = queue_server(
        ["1001", "1002", "1003"]
            .iter()
            .map(|id| agent(id, &["install"]))
            .collect(),
        &QueueSetup::default().strategy(strategy),
    );
    let pool = SippAgents::start(&server, &["1001", "1002", "1003"], Behaviour::Answer);
    let tag = &strategy[..2];
    let n = |i: u32| format!("1391{}{i:05}", if tag == "lo" { 1 } else { 2 });
    let a = call(&server, &n(1), &["2"]);
    std::thread::sleep(Duration::from_millis(1200));
    let b = call(&server, &n(2), &["2"]);
    assert_eq!(connected_to(&[&pool], &n(1), IVR_LIMIT).agent, "1001");
    assert_eq!(connected_to(&[&pool], &n(2), IVR_LIMIT).agent, "1002");
    b.hang_up_and_finish();
    std::thread::sleep(Duration::from_millis(700));
    a.hang_up_and_finish();

    let mut phase = Vec::new();
    for i in 3..=5 {
        phase.push(call(&server, &n(i), &["2"]));
        std::thread::sleep(Duration::from_millis(1200));
    }
    let got: Vec<String> = (3..=5)
        .map(|i| connected_to(&[&pool], &n(i), IVR_LIMIT).agent)
        .collect();
    assert_eq!(
        got, phase2,
        "{strategy}: after 1002 then 1001 became free, C, D, E went to {got:?}"
    );
    for c in phase {
        c.hang_up_and_finish();
    }
    let rows = ended_rows(&server, 5, Duration::from_secs(5));
    for r in &rows {
        assert_eq!(r.queue.as_deref(), Some("install"), "{r:#?}");
        assert!(r.agent_id.is_some(), "{r:#?}");
    }
}

/// longest_idle: 1003 has been idle since the start, 1002 since before
/// 1001 → C, D, E go to 1003, 1002, 1001.
#[test]
fn strategy_longest_idle_picks_the_agent_idle_longest() {
    two_phases("longest_idle", ["1003", "1002", "1001"]);
}

/// round_robin: the last offered was 1002 → C, D, E go to 1003, 1001, 1002
/// (longest idle would have picked 1002 for D).
#[test]
fn strategy_round_robin_rotates() {
    two_phases("round_robin", ["1003", "1001", "1002"]);
}

/// ring_all: all three phones ring at once; 1002 answers at once, 1001 and
/// 1003 (who would answer after 2 s) get CANCEL; the customer talks to 1002.
#[test]
fn strategy_ring_all_first_answer_wins_others_cancelled() {
    let _g = shared();
    let server = queue_server(
        ["1001", "1002", "1003"]
            .iter()
            .map(|id| agent(id, &["install"]))
            .collect(),
        &QueueSetup::default().strategy("ring_all"),
    );
    let slow = SippAgents::start(&server, &["1001", "1003"], Behaviour::Slow);
    let fast = SippAgents::start(&server, &["1002"], Behaviour::Answer);
    let c = call(&server, "13913000001", &["2"]);
    let winner = connected_to(&[&slow, &fast], "13913000001", IVR_LIMIT);
    assert_eq!(winner.agent, "1002");
    let losers = slow.wait_offers(Duration::from_secs(5), "two cancelled offers", |o| {
        o.len() == 2 && o.iter().all(|o| o.final_status == Some(487))
    });
    for l in &losers {
        assert_eq!(l.record, winner.record, "the same call rang every phone");
        let apart =
            l.at.duration_since(winner.at)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .expect("duration");
        assert!(
            apart < Duration::from_millis(500),
            "{} rang {apart:?} apart from 1002: not at once",
            l.agent
        );
        let cancelled = l.cancelled_at.expect("CANCEL received");
        let after = cancelled.duration_since(l.at).unwrap_or_default();
        assert!(
            after < Duration::from_millis(1900),
            "{} was cancelled {after:?} after ringing: not when 1002 answered",
            l.agent
        );
    }
    let mut ids: Vec<&str> = losers.iter().map(|o| o.agent.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["1001", "1003"]);
    c.hang_up_and_finish();
    let row = row_of(&server, "13913000001");
    assert_eq!(row.agent_id.as_deref(), Some("1002"), "{row:#?}");
    assert!(
        !slow.offers().iter().any(|o| o.acked),
        "a cancelled agent was connected"
    );
}

/// fewest_calls: 1001 takes A, then C while 1002 takes B; C ends before B,
/// so 1001 (2 calls) has been idle longer than 1002 (1 call): D goes to
/// 1002 (longest idle would pick 1001).
#[test]
fn strategy_fewest_calls_picks_the_least_busy() {
    let _g = shared();
    let server = queue_server(
        vec![agent("1001", &["install"]), agent("1002", &["install"])],
        &QueueSetup::default().strategy("fewest_calls"),
    );
    let pool = SippAgents::start(&server, &["1001", "1002"], Behaviour::Answer);
    let a = call(&server, "13914000001", &["2"]);
    assert_eq!(
        connected_to(&[&pool], "13914000001", IVR_LIMIT).agent,
        "1001"
    );
    a.hang_up_and_finish();
    let b = call(&server, "13914000002", &["2"]);
    std::thread::sleep(Duration::from_millis(1200));
    let c = call(&server, "13914000003", &["2"]);
    assert_eq!(
        connected_to(&[&pool], "13914000002", IVR_LIMIT).agent,
        "1002"
    );
    assert_eq!(
        connected_to(&[&pool], "13914000003", IVR_LIMIT).agent,
        "1001"
    );
    c.hang_up_and_finish();
    std::thread::sleep(Duration::from_millis(700));
    b.hang_up_and_finish();
    let d = call(&server, "13914000004", &["2"]);
    assert_eq!(
        connected_to(&[&pool], "13914000004", IVR_LIMIT).agent,
        "1002",
        "1001 answered 2 calls, 1002 only 1"
    );
    d.hang_up_and_finish();
}

/// skills_proficiency: install:9 (1002) first, then install:6 (1003), then
/// install:3 (1001), although 1001 would win every tie.
#[test]
fn strategy_skills_proficiency_picks_the_expert() {
    let _g = shared();
    let server = queue_server(
        vec![
            agent("1001", &["install:3"]),
            agent("1002", &["install:9"]),
            agent("1003", &["install:6", "repair:10"]),
        ],
        &QueueSetup::default().strategy("skills_proficiency"),
    );
    let pool = SippAgents::start(&server, &["1001", "1002", "1003"], Behaviour::Answer);
    let mut cs = Vec::new();
    for i in 1..=3 {
        cs.push(call(&server, &format!("1391500000{i}"), &["2"]));
        std::thread::sleep(Duration::from_millis(1200));
    }
    let got: Vec<String> = (1..=3)
        .map(|i| connected_to(&[&pool], &format!("1391500000{i}"), IVR_LIMIT).agent)
        .collect();
    assert_eq!(got, ["1002", "1003", "1001"]);
    for c in cs {
        c.hang_up_and_finish();
    }
}

// ---------------------------------------------------------------------------
// 3. Priority

/// The only agent is busy; a repair caller joins the queue, then a
/// complaint caller (priority 10). When the agent is free, the complaint
/// is offered first, then the repair call.
#[test]
fn complaint_priority_jumps_the_queue() {
    let _g = shared();
    let server = queue_server(
        vec![agent("1001", &["install", "repair", "complaint"])],
        &QueueSetup::default(),
    );
    let pool = SippAgents::start(&server, &["1001"], Behaviour::Answer);
    let x = call(&server, "13920000001", &["2"]);
    connected_to(&[&pool], "13920000001", IVR_LIMIT);
    let repair = call(&server, "13920000002", &["1", "#"]);
    wait_queued(&server, &repair, IVR_LIMIT);
    let complaint = call(&server, "13920000003", &["3"]);
    wait_queued(&server, &complaint, IVR_LIMIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pool.offers().len(), 1, "nobody else offered while busy");
    x.hang_up_and_finish();
    let first = connected_to(&[&pool], "13920000003", Duration::from_secs(5));
    assert_eq!(first.agent, "1001");
    assert!(
        !pool.offers().iter().any(|o| o.caller == "13920000002"),
        "the repair caller was offered before the complaint"
    );
    complaint.hang_up_and_finish();
    connected_to(&[&pool], "13920000002", Duration::from_secs(5));
    repair.hang_up_and_finish();
    let order: Vec<String> = pool.offers().iter().map(|o| o.caller.clone()).collect();
    assert_eq!(order, ["13920000001", "13920000003", "13920000002"]);
    let r = row_of(&server, "13920000002");
    let c = row_of(&server, "13920000003");
    assert_eq!(r.queue.as_deref(), Some("repair"), "{r:#?}");
    assert_eq!(c.queue.as_deref(), Some("complaint"), "{c:#?}");
    assert!(
        r.arrived_at < c.arrived_at && r.wait_ms > c.wait_ms,
        "the repair caller came first and waited longer: {r:#?} {c:#?}"
    );
}

// ---------------------------------------------------------------------------
// 4. Agents who do not take the call

fn gap(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or_default()
}

/// 1001 rings forever: after ring_timeout_ms (3 s) hotline cancels and
/// offers 1002. After max_missed_offers (2) such misses 1001 is not
/// offered calls any more.
#[test]
fn no_answer_moves_on_and_missed_offers_stop_offers() {
    let _g = shared();
    let setup = QueueSetup {
        ring_timeout_ms: 3000,
        max_missed_offers: 2,
        ..QueueSetup::default()
    };
    let server = queue_server(
        vec![agent("1001", &["install"]), agent("1002", &["install"])],
        &setup,
    );
    let ringer = SippAgents::start(&server, &["1001"], Behaviour::RingOnly);
    let answerer = SippAgents::start(&server, &["1002"], Behaviour::Answer);
    for (i, caller) in ["13940000001", "13940000002"].iter().enumerate() {
        let c = call(&server, caller, &["2"]);
        let to = connected_to(&[&ringer, &answerer], caller, IVR_LIMIT);
        assert_eq!(to.agent, "1002");
        let missed = ringer.wait_offers(Duration::from_secs(2), "the missed offer", |o| {
            o.len() == i + 1 && o[i].final_status == Some(487)
        });
        let m = &missed[i];
        assert_eq!(&m.caller, caller);
        let rang = gap(m.at, m.cancelled_at.expect("cancelled"));
        assert!(
            rang >= Duration::from_millis(2700) && rang <= Duration::from_millis(4000),
            "1001 rang {rang:?} before the CANCEL (ring_timeout_ms 3000)"
        );
        let moved = gap(m.cancelled_at.expect("cancelled"), to.at);
        assert!(
            moved < Duration::from_millis(1000),
            "1002 was offered {moved:?} after 1001's CANCEL"
        );
        c.hang_up_and_finish();
    }
    // Two misses in a row: 1001 is NotReady and is skipped.
    let c = call(&server, "13940000003", &["2"]);
    assert_eq!(
        connected_to(&[&ringer, &answerer], "13940000003", IVR_LIMIT).agent,
        "1002"
    );
    std::thread::sleep(Duration::from_millis(500));
    c.hang_up_and_finish();
    assert_eq!(
        ringer.offers().len(),
        2,
        "1001 missed 2 offers (max_missed_offers) and must not be offered more: {:#?}",
        ringer.offers()
    );
    assert!(
        server.log().contains("agent=1001 state=NotReady"),
        "the server did not log 1001 going NotReady"
    );
}

/// 1001 answers 486 Busy Here, 1002 603 Decline: hotline moves on at once
/// (no ring timeout) to 1003. Refusals are not misses: with
/// max_missed_offers = 1 both are still offered the next call.
#[test]
fn busy_and_decline_move_on_at_once() {
    let _g = shared();
    let setup = QueueSetup {
        ring_timeout_ms: 10_000,
        max_missed_offers: 1,
        ..QueueSetup::default()
    };
    let server = queue_server(
        ["1001", "1002", "1003"]
            .iter()
            .map(|id| agent(id, &["install"]))
            .collect(),
        &setup,
    );
    let busy = SippAgents::start(&server, &["1001"], Behaviour::Busy);
    let decline = SippAgents::start(&server, &["1002"], Behaviour::Decline);
    let answer = SippAgents::start(&server, &["1003"], Behaviour::Answer);
    for (i, caller) in ["13941000001", "13941000002"].iter().enumerate() {
        let c = call(&server, caller, &["2"]);
        let to = connected_to(&[&busy, &decline, &answer], caller, IVR_LIMIT);
        assert_eq!(to.agent, "1003");
        let b = busy.offers();
        let d = decline.offers();
        assert_eq!((b.len(), d.len()), (i + 1, i + 1), "{b:#?} {d:#?}");
        assert_eq!(b[i].final_status, Some(486));
        assert_eq!(d[i].final_status, Some(603));
        assert!(
            b[i].at <= d[i].at && d[i].at <= to.at,
            "order 1001 → 1002 → 1003 expected"
        );
        let total = gap(b[i].at, to.at);
        assert!(
            total < Duration::from_millis(2500),
            "486 and 603 took {total:?} to reach 1003 (no ring timeout expected)"
        );
        c.hang_up_and_finish();
    }
}

// ---------------------------------------------------------------------------
// 5. Caller abandons

/// No agent is registered: the customer waits in the queue and hangs up.
/// The record says queue install, no agent, hung up by the caller; an agent
/// registering afterwards is not offered the dead call.
#[test]
fn caller_abandons_in_queue() {
    let _g = shared();
    let server = queue_server(vec![agent("1001", &["install"])], &QueueSetup::default());
    let c = call(&server, "13950000001", &["2"]);
    wait_queued(&server, &c, IVR_LIMIT);
    std::thread::sleep(Duration::from_secs(2));
    c.hang_up_and_finish();
    let row = row_of(&server, "13950000001");
    assert_eq!(row.queue.as_deref(), Some("install"), "{row:#?}");
    assert_eq!(row.agent_id, None, "{row:#?}");
    assert_eq!(row.hangup_side, "caller", "{row:#?}");
    assert_eq!(row.recording, None, "{row:#?}");
    let pool = SippAgents::start(&server, &["1001"], Behaviour::Answer);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        pool.offers().is_empty(),
        "the abandoned call was offered: {:#?}",
        pool.offers()
    );
    assert_eq!(call_rows(&server).len(), 1);
}

// ---------------------------------------------------------------------------
// 6. Agent hangs up

/// The agent hangs up 3 s into the call: the customer gets a BYE at once,
/// the record says hung up by the agent (agent_bye).
#[test]
fn agent_hangs_up_ends_the_customer_leg() {
    let _g = shared();
    let server = queue_server(vec![agent("1001", &["install"])], &QueueSetup::default());
    let pool = SippAgents::start(&server, &["1001"], Behaviour::HangUpAfter3s);
    let c = call(&server, "13960000001", &["2"]);
    let run = c.finish(); // ends when hotline's BYE arrives
    let bye = run
        .messages()
        .into_iter()
        .find(|t| !t.sent && t.msg.method() == Some("BYE"))
        .unwrap_or_else(|| panic!("the customer got no BYE\n{}", run.dump()));
    let agent_bye = pool
        .sipp
        .so_far()
        .messages()
        .into_iter()
        .find(|t| t.sent && t.msg.method() == Some("BYE"))
        .expect("the agent sent BYE");
    let delay = gap(agent_bye.at.expect("time"), bye.at.expect("time"));
    assert!(
        delay < Duration::from_millis(1000),
        "the customer's BYE came {delay:?} after the agent's"
    );
    let row = row_of(&server, "13960000001");
    assert_eq!(row.hangup_side, "agent", "{row:#?}");
    assert_eq!(row.hangup_cause, "agent_bye", "{row:#?}");
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:#?}");
    assert!(
        (2500..4500).contains(&row.talk_ms),
        "talk_ms {} (the agent talked 3 s)",
        row.talk_ms
    );
}

// ---------------------------------------------------------------------------
// 7. Load

/// "media worker fell behind; resynchronising" lines: (time in ms since the
/// epoch, late_ms). The worker skips that much audio (forwarded and recorded).
fn late_ticks(log: &str) -> Vec<(i64, i64)> {
    log.lines()
        .filter(|l| l.contains("media worker fell behind"))
        .filter_map(|l| {
            let stamp = l.split_whitespace().next()?;
            let at = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
            let ms = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("late_ms="))?
                .parse()
                .ok()?;
            Some((at.timestamp_millis(), ms))
        })
        .collect()
}

/// `HOTLINE_QUEUE_LOAD` calls (default 100) arrive at 10/s, each presses 2,
/// is bridged to its own SIPp agent and recorded, and hangs up 22 s after
/// its key. Every call must be answered, connected and recorded, with all
/// of them connected at the same moment.
#[test]
fn hundred_concurrent_bridged_recorded_calls() {
    let _g = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let n: usize = std::env::var("HOTLINE_QUEUE_LOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let ids: Vec<String> = (0..n).map(|i| format!("{}", 2001 + i)).collect();
    let server = queue_server(
        ids.iter().map(|id| agent(id, &["install"])).collect(),
        &QueueSetup::default(),
    );
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let t = Instant::now();
    let pool = SippAgents::start_opts(&server, &id_refs, Behaviour::Answer, false);
    wait_registrations(&server, n as f64, "load agents");
    eprintln!("{n} agents registered in {:?}", t.elapsed());

    let hold_ms = 22_000u64;
    let t = Instant::now();
    let nn = n.to_string();
    let args: Vec<String> = [
        "-s",
        "8000",
        "-set",
        "caller",
        "13970000000",
        "-set",
        "key1",
        "2",
        "-d",
        &hold_ms.to_string(),
        "-r",
        "10",
        "-l",
        &nn,
        "-m",
        &nn,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let customers = Sipp::spawn(
        &server,
        "queue_load_customer.xml",
        &args,
        &[(common::agents::alaw(&speech_a()), "customer.alaw")],
        Duration::from_secs(120),
        false,
    );
    let run = customers.wait();
    let took = t.elapsed();
    eprintln!("{n} customers done in {took:?} (SIPp exit {})", run.code);
    assert_eq!(run.code, 0, "some customer calls failed\n{}", run.dump());

    let rows = ended_rows(&server, n, Duration::from_secs(15));
    assert_eq!(rows.len(), n);
    let late = late_ticks(&server.log());
    eprintln!(
        "load: the media workers fell behind {} times, {} ms skipped in all",
        late.len(),
        late.iter().map(|l| l.1).sum::<i64>()
    );
    let mut intervals = Vec::new();
    let mut agents_used = std::collections::BTreeSet::new();
    let mut short = Vec::new();
    let mut shortfall_ms = Vec::new();
    for r in &rows {
        assert_eq!(r.queue.as_deref(), Some("install"), "{r:#?}");
        let a = r
            .agent_id
            .clone()
            .unwrap_or_else(|| panic!("no agent: {r:#?}"));
        assert!(
            agents_used.insert(a),
            "one agent, two calls at once? {r:#?}"
        );
        assert_eq!(r.hangup_side, "caller", "{r:#?}");
        let ended = r.ended_at.expect("ended");
        intervals.push((ended - r.talk_ms, ended));
        let path = PathBuf::from(r.recording.clone().unwrap_or_else(|| panic!("{r:#?}")));
        let (spec, left) = wav_channel(&path, 0);
        let (_, right) = wav_channel(&path, 1);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16),
            "{}",
            path.display()
        );
        let audio_ms = left.len() as i64 / 8;
        shortfall_ms.push(r.talk_ms - audio_ms);
        // Audio the server says it skipped (media worker resynchronised
        // after falling behind) while this call was connected.
        let skipped: i64 = late
            .iter()
            .filter(|(at, _)| *at >= ended - r.talk_ms && *at <= ended)
            .map(|(_, ms)| *ms)
            .sum();
        if audio_ms > r.talk_ms + 500 || r.talk_ms - audio_ms > 500 + skipped {
            short.push(format!(
                "{}: {audio_ms} ms of audio for talk_ms {} ({skipped} ms skipped by late ticks)",
                path.display(),
                r.talk_ms
            ));
        }
        assert!(
            rms(&left) > 0.01 && rms(&right) > 0.01,
            "{}: a silent side (rms {:.4} / {:.4})",
            path.display(),
            rms(&left),
            rms(&right)
        );
    }
    shortfall_ms.sort();
    eprintln!(
        "load: talk_ms minus recorded audio, ms: min {} median {} max {}",
        shortfall_ms.first().unwrap_or(&0),
        shortfall_ms.get(shortfall_ms.len() / 2).unwrap_or(&0),
        shortfall_ms.last().unwrap_or(&0)
    );
    assert!(
        short.is_empty(),
        "{} of {n} recordings are off their talk time by more than 0.5 s plus what the \
         server logged as skipped:\n{}",
        short.len(),
        short.join("\n")
    );
    // Most calls connected at the same moment.
    let mut peak = 0;
    for &(start, _) in &intervals {
        let at = intervals
            .iter()
            .filter(|(s, e)| *s <= start && start < *e)
            .count();
        peak = peak.max(at);
    }
    let talk: Vec<i64> = rows.iter().map(|r| r.talk_ms).collect();
    let waits: Vec<i64> = rows.iter().map(|r| r.wait_ms).collect();
    eprintln!(
        "load: {n} calls, peak {peak} bridged at once, talk_ms {}..{}, wait_ms max {}",
        talk.iter().min().unwrap_or(&0),
        talk.iter().max().unwrap_or(&0),
        waits.iter().max().unwrap_or(&0)
    );
    assert_eq!(peak, n, "not all calls were bridged at the same time");
    // A sample of recordings carries the right speech on the right side.
    // Every late tick cuts a piece out of the recordings (see above), so a
    // third of the 1 s windows must match here, not half.
    let (a_pcm, b_pcm) = (samples_of(&speech_a()), samples_of(&speech_b()));
    for r in rows.iter().step_by((n / 3).max(1)).take(3) {
        let path = PathBuf::from(r.recording.clone().expect("recording"));
        let (_, left) = wav_channel(&path, 0);
        let (_, right) = wav_channel(&path, 1);
        let l = format!("{} left", r.id);
        let rr = format!("{} right", r.id);
        assert_speech_at_least(&l, &left, 0.0, &a_pcm, &b_pcm, 0.3);
        assert_speech_at_least(&rr, &right, 0.0, &b_pcm, &a_pcm, 0.3);
    }
    drop(pool);
}
