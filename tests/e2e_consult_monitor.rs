//! Attended transfer and supervisor listen / whisper / barge on live
//! bridged calls, judged by what each person heard.
//!
//! The customer is SIPp (speech); agents and the supervisor are baresip
//! softphones whose microphones play one steady tone each (agent 1001:
//! 1000 Hz, agent 1002: 1600 Hz, supervisor s100: 2200 Hz), so who heard whom
//! is a matter of finding tones: in the server's stereo recording (right
//! channel: what the customer heard) and in each softphone's recording of
//! what it heard. The call record must tell the same story.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audio::{first_run, last_run, seconds_of, tone_frames, tone_wav, wav_channel, FRAME};
use common::agents::{
    agent, agent_password, hotline_dialplan, wait_registrations, Baresip, Customer, QueueSetup,
};
use common::{http_request, poll, TestServer};

const TONE_1001: f32 = 1000.0;
const TONE_1002: f32 = 1600.0;
const TONE_SUPERVISOR: f32 = 2200.0;

struct Setup {
    server: TestServer,
    token: String,
    phones: Vec<(&'static str, Baresip)>,
}

impl Setup {
    fn phone(&self, id: &str) -> &Baresip {
        &self
            .phones
            .iter()
            .find(|(i, _)| *i == id)
            .expect("a phone")
            .1
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        http_request(
            self.server.http,
            "POST",
            path,
            Some(&self.token),
            Some(body),
        )
        .expect("API request")
    }

    /// What `id`'s softphone heard, with its sample rate.
    fn heard(&self, id: &str) -> (u32, Vec<f32>) {
        let phone = self.phone(id);
        let path = poll(Duration::from_secs(5), || phone.heard())
            .unwrap_or_else(|| panic!("{id}'s baresip recorded nothing\n{}", phone.log()));
        let (spec, samples) = wav_channel(&path, 0);
        (spec.sample_rate, samples)
    }
}

/// Agents 1001 (install) and 1002 (repair) and supervisor s100 on baresip,
/// each with its tone; s1 logged in to the API.
fn setup() -> Setup {
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"]), agent("1002", &["repair"])])
        .dialplan("hotline-consult.toml", &hotline_dialplan())
        .extra_toml(&format!(
            "{}\n[[users]]\nid = \"s100\"\nname = \"Supervisor\"\npassword = {:?}\nrole = \"supervisor\"\n",
            QueueSetup::default().toml(),
            agent_password("s100"),
        ))
        .start();
    let mut phones = Vec::new();
    for (id, freq) in [
        ("1001", TONE_1001),
        ("1002", TONE_1002),
        ("s100", TONE_SUPERVISOR),
    ] {
        let mic = tone_wav(server.dir(), freq);
        phones.push((id, Baresip::start(&server, id, &mic)));
    }
    wait_registrations(&server, 3.0, "two agents and a supervisor");
    let (status, body) = http_request(
        server.http,
        "POST",
        "/api/login",
        None,
        Some(&format!(
            r#"{{"id":"s100","password":{:?}}}"#,
            agent_password("s100")
        )),
    )
    .expect("login");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("login JSON");
    let token = v["token"].as_str().expect("token").to_string();
    Setup {
        server,
        token,
        phones,
    }
}

/// Wait until the customer talks to agent 1001; the call's record id.
fn connected(s: &Setup, caller: &str) -> (String, Instant) {
    poll(Duration::from_secs(40), || {
        s.server.log().contains("connected to agent").then_some(())
    })
    .unwrap_or_else(|| panic!("the call was never connected\n{}", s.server.log()));
    let at = Instant::now();
    let (status, body) = http_request(
        s.server.http,
        "GET",
        "/api/calls?limit=10",
        Some(&s.token),
        None,
    )
    .expect("GET /api/calls");
    assert_eq!(status, 200, "{body}");
    let calls: serde_json::Value = serde_json::from_str(&body).expect("calls JSON");
    let id = calls
        .as_array()
        .into_iter()
        .flatten()
        .chain(calls["calls"].as_array().into_iter().flatten())
        .find(|c| c["from_number"] == caller)
        .and_then(|c| c["id"].as_str())
        .unwrap_or_else(|| panic!("no live call from {caller}: {body}"))
        .to_string();
    (id, at)
}

fn wait_log(s: &Setup, needle: &str, limit: Duration) {
    poll(limit, || s.server.log().contains(needle).then_some(()))
        .unwrap_or_else(|| panic!("no {needle:?} in the log\n{}", s.server.log()));
}

/// The stored call once it has ended.
fn ended_row(s: &Setup, id: &str) -> hotline::store::CallRecord {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store =
            hotline::store::Store::connect(&format!("sqlite://{}", s.server.db_path().display()))
                .await
                .expect("open the server's database");
        for _ in 0..50 {
            if let Ok(Some(r)) = store.get_call(id).await {
                if r.ended_at.is_some() {
                    return r;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("call {id} has no completed row");
    })
}

/// (party, role, outcome) of each leg of the call, from `GET /api/calls/{id}`
/// (the rows are written by the batching writer: polled).
fn legs_of(s: &Setup, id: &str) -> Vec<(String, String, String)> {
    let fetch = || {
        let (status, body) = http_request(
            s.server.http,
            "GET",
            &format!("/api/calls/{id}"),
            Some(&s.token),
            None,
        )
        .expect("GET /api/calls/{id}");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("call JSON");
        v["legs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let f = |k: &str| l[k].as_str().unwrap_or_default().to_string();
                (f("party"), f("role"), f("outcome"))
            })
            .collect::<Vec<_>>()
    };
    poll(Duration::from_secs(5), || {
        let legs = fetch();
        (legs.len() >= 2).then_some(legs)
    })
    .unwrap_or_else(fetch)
}

/// The server's recording of the call: (left = customer, right = what the
/// customer heard), 8 kHz.
fn recording(row: &hotline::store::CallRecord) -> (Vec<f32>, Vec<f32>) {
    let path = PathBuf::from(row.recording.as_deref().expect("a recording path"));
    let (spec, left) = wav_channel(&path, 0);
    let (_, right) = wav_channel(&path, 1);
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000), "stereo 8 kHz");
    (left, right)
}

/// The customer talks to 1001, who consults 1002 (the customer hears hold
/// music meanwhile), then completes the transfer: the customer ends up with
/// 1002, in one recording, and the record carries the note.
#[test]
fn attended_transfer_consults_then_hands_the_caller_over() {
    let s = setup();
    let caller = "13970000001";
    let customer = Customer::call(&s.server, caller, &["2"]);
    let (id, _) = connected(&s, caller);
    std::thread::sleep(Duration::from_secs(4));

    // Bad requests change nothing.
    let (status, body) = s.post(&format!("/api/calls/{id}/consult/complete"), "{}");
    assert_eq!(status, 409, "complete without a consultation: {body}");
    let (status, body) = s.post(&format!("/api/calls/{id}/consult"), r#"{"agent":"9999"}"#);
    assert_eq!(status, 422, "consult an unknown agent: {body}");
    let (status, body) = s.post("/api/calls/nope/consult", r#"{"agent":"1002"}"#);
    assert_eq!(status, 404, "consult on a call that is not live: {body}");

    let note = "空调不制冷,已重启两次,需要上门";
    let (status, body) = s.post(
        &format!("/api/calls/{id}/consult"),
        &serde_json::json!({"agent": "1002", "note": note}).to_string(),
    );
    assert_eq!(status, 200, "{body}\n{}", s.server.log());
    wait_log(&s, "consulted agent answered", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = s.post(&format!("/api/calls/{id}/consult/complete"), "");
    assert_eq!(status, 200, "{body}\n{}", s.server.log());
    std::thread::sleep(Duration::from_secs(4));
    customer.hang_up_and_finish();

    let row = ended_row(&s, &id);
    assert_eq!(row.agent_id.as_deref(), Some("1002"), "{row:#?}");
    assert_eq!(row.transfer_chain.len(), 1, "{row:#?}");
    assert_eq!(row.transfer_chain[0].from_agent, "1001");
    assert_eq!(row.transfer_chain[0].to, "agent 1002");
    assert_eq!(row.transfer_chain[0].note, note);

    // Every phone rung for the call, with what became of it.
    let legs = legs_of(&s, &id);
    assert_eq!(
        legs,
        [
            (
                "1001".to_string(),
                "offer".to_string(),
                "transferred".to_string()
            ),
            (
                "1002".to_string(),
                "consult".to_string(),
                "connected".to_string()
            ),
        ],
        "legs of the call"
    );

    // What the customer heard: 1001, then music (no agent), then 1002.
    let (left, right) = recording(&row);
    let a1 = tone_frames(&right, 8000, TONE_1001);
    let a2 = tone_frames(&right, 8000, TONE_1002);
    let (end_1001, start_1002) = (last_run(&a1), first_run(&a2));
    eprintln!(
        "recording {:.1}s; customer heard 1001 {:.1}s (until {end_1001:?}), 1002 {:.1}s (from {start_1002:?})",
        left.len() as f32 / 8000.0,
        seconds_of(&a1),
        seconds_of(&a2)
    );
    assert!(
        seconds_of(&a1) >= 2.5,
        "the customer heard 1001 before the consultation"
    );
    assert!(
        seconds_of(&a2) >= 2.5,
        "the customer heard 1002 after the transfer"
    );
    let (end_1001, start_1002) = (end_1001.expect("1001"), start_1002.expect("1002"));
    assert!(
        start_1002 - end_1001 >= 3.0,
        "the customer must not hear the agents consult: 1001 until {end_1001:.1}s, 1002 from {start_1002:.1}s"
    );
    // One file for the whole call, from the first agent to the end.
    let secs = left.len() as f32 / 8000.0;
    assert!(
        secs >= 11.0,
        "the recording covers the whole call: {secs:.1}s"
    );
    let speech = left
        .chunks(FRAME)
        .filter(|c| c.iter().map(|x| x * x).sum::<f32>() / FRAME as f32 > 1e-4)
        .count();
    assert!(speech > 100, "the customer's side is recorded (left)");

    // 1002 heard 1001 during the consultation, then the customer.
    let (rate, heard_1002) = s.heard("1002");
    let from_1001 = seconds_of(&tone_frames(&heard_1002, rate, TONE_1001));
    assert!(
        from_1001 >= 2.0,
        "1002 heard 1001 consult for {from_1001:.1}s"
    );
}

/// A supervisor listens (hears both, heard by none), whispers (only the
/// agent hears them) and barges (all three talk), then leaves.
#[test]
fn supervisor_listens_whispers_and_barges() {
    let s = setup();
    let caller = "13970000002";
    let customer = Customer::call(&s.server, caller, &["2"]);
    let (id, t_connect) = connected(&s, caller);

    // Only supervisors, only with a registered phone.
    let (status, body) = s.post(
        &format!("/api/calls/{id}/monitor"),
        r#"{"mode":"listen","extension":"nobody"}"#,
    );
    assert_eq!(status, 409, "no phone registered as 'nobody': {body}");
    let (status, body) = s.post(&format!("/api/calls/{id}/monitor"), r#"{"mode":"shout"}"#);
    assert_eq!(status, 400, "unknown mode: {body}");

    let (status, body) = s.post(&format!("/api/calls/{id}/monitor"), r#"{"mode":"listen"}"#);
    assert_eq!(status, 200, "{body}\n{}", s.server.log());
    wait_log(&s, "supervisor joined", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(4));
    let t_whisper = Instant::now();
    let (status, body) = s.post(&format!("/api/calls/{id}/monitor"), r#"{"mode":"whisper"}"#);
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(4));
    let t_barge = Instant::now();
    let (status, body) = s.post(&format!("/api/calls/{id}/monitor"), r#"{"mode":"barge"}"#);
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = s.post(&format!("/api/calls/{id}/monitor/stop"), "");
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    customer.hang_up_and_finish();

    let row = ended_row(&s, &id);
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:#?}");
    let legs = legs_of(&s, &id);
    assert_eq!(
        legs,
        [
            (
                "1001".to_string(),
                "offer".to_string(),
                "connected".to_string()
            ),
            (
                "s100".to_string(),
                "monitor".to_string(),
                "connected".to_string()
            ),
        ],
        "legs of the call"
    );
    let whisper_at = (t_whisper - t_connect).as_secs_f32();
    let barge_at = (t_barge - t_connect).as_secs_f32();

    // The customer heard the supervisor only once they barged in.
    let (_, right) = recording(&row);
    let sup = tone_frames(&right, 8000, TONE_SUPERVISOR);
    let first = first_run(&sup).expect("the customer heard the supervisor barge in");
    eprintln!(
        "customer heard the supervisor from {first:.1}s (barge at {barge_at:.1}s) for {:.1}s",
        seconds_of(&sup)
    );
    assert!(
        first >= barge_at - 1.5,
        "the customer heard the supervisor at {first:.1}s, before the barge at {barge_at:.1}s"
    );
    assert!(seconds_of(&sup) >= 2.0, "barge lasted about 4 s");
    assert!(
        seconds_of(&tone_frames(&right, 8000, TONE_1001)) >= 8.0,
        "the customer heard the agent throughout"
    );

    // The agent heard the supervisor from the whisper on.
    let (rate, heard_1001) = s.heard("1001");
    let sup = tone_frames(&heard_1001, rate, TONE_SUPERVISOR);
    let first = first_run(&sup).expect("the agent heard the supervisor");
    eprintln!("agent heard the supervisor from {first:.1}s (whisper at {whisper_at:.1}s)");
    assert!(
        first >= whisper_at - 2.0,
        "the agent heard the supervisor at {first:.1}s, before the whisper at {whisper_at:.1}s"
    );
    assert!(seconds_of(&sup) >= 4.0, "whisper + barge: about 8 s");

    // The supervisor heard the agent.
    let (rate, heard_sup) = s.heard("s100");
    let agent_secs = seconds_of(&tone_frames(&heard_sup, rate, TONE_1001));
    assert!(
        agent_secs >= 6.0,
        "the supervisor heard the agent for {agent_secs:.1}s"
    );
}

/// A caller waiting with no agent free hears, over the music, their place
/// in line every `announce_interval_ms` (pjsua2 records what it heard).
#[test]
fn waiting_caller_hears_their_position_periodically() {
    let toml = QueueSetup::default()
        .toml()
        .replace("[[queues]]\n", "[[queues]]\nannounce_interval_ms = 6000\n");
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"])])
        .dialplan("hotline-announce.toml", &hotline_dialplan())
        .extra_toml(&toml)
        .start();
    let wav = server.dir().join("caller-heard.wav");
    let args: Vec<String> = [
        "--server",
        &server.sip.to_string(),
        "--to",
        "8000",
        "--caller",
        "13970000003",
        "--record",
        &wav.display().to_string(),
        "--dtmf",
        "2@3",
        "--hangup-after",
        "30",
        "--limit",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = common::run_python("pjsua2_ivr.py", &args, Duration::from_secs(75));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("\"done\""),
        "pjsua2_ivr.py failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prompts = audio::load_prompts(&Path::new(common::REPO).join("dialplans/prompts"));
    let rec = audio::Recording::new(&audio::read_wav(&wav), 80);
    let heard = audio::timeline(&rec, &prompts);
    let names = audio::names(&heard);
    eprintln!("heard: {}", audio::describe(&heard));
    let announcements = names
        .iter()
        .filter(|n| n.starts_with("queue_position"))
        .count();
    assert!(
        names.contains(&"transfer_install") && announcements >= 2,
        "expected the transfer prompt and two position announcements; heard:\n  {}",
        audio::describe(&heard)
    );
    let log = server.log();
    assert!(
        log.contains("announcing position in queue") && log.contains("position=1"),
        "the server announced position 1\n{log}"
    );
}
