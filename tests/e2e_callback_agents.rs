//! End to end: agent callbacks (人工回访), preview and progressive, with
//! real peers. baresip plays the agent (auto-answer, a steady 1000 Hz tone
//! as its voice); pjsua2 plays the trunk and the customers behind it (a
//! 1600 Hz tone as their voice). The agent's phone rings first, the
//! customer is dialled only once the agent is on the line, and the two are
//! bridged and recorded; the agent fills in the survey through the API.
//! Judged by what each side heard, the stereo recording, and the rows.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::Path;
use std::time::Duration;

use audio::{first_run, tone_frames, tone_wav, wav_channel};
use common::agents::{
    agent, agent_password, hotline_dialplan, wait_registrations, Baresip, QueueSetup,
};
use common::campaign::{
    attempts, import, order, rows, surveys, trunk_toml, wait_state, Customers, HEADER,
    SUPERVISOR_S1,
};
use common::{free_port, http_request, poll, TestServer};
use serde_json::{json, Value};

const AGENT_TONE: f32 = 1000.0;
const CUSTOMER_TONE: f32 = 1600.0;
/// What hotline plays to the agent while the customer's phone rings.
const RINGBACK_TONE: f32 = 450.0;

fn server(trunk: u16, mode: &str, agents: Vec<common::Agent>) -> TestServer {
    TestServer::builder()
        .agents(agents)
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&QueueSetup::default().toml())
        .extra_toml(SUPERVISOR_S1)
        .extra_toml(&format!(
            r#"
{trunks}
[campaign]
mode = "{mode}"
agent_skill = "callback"
wrap_up_secs = 1
trunk = "carrier"
dialplan = "{repo}/dialplans/survey.toml"
calling_hours = "00:00-24:00"
ring_timeout_secs = 20
poll_ms = 200
"#,
            repo = common::REPO,
            trunks = trunk_toml(trunk)
        ))
        .start()
}

fn api(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = http_request(server.http, method, path, token, body.as_deref())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn login(server: &TestServer, id: &str, password: &str) -> String {
    let (st, v) = api(
        server,
        "POST",
        "/api/login",
        None,
        Some(json!({"id": id, "password": password})),
    );
    assert_eq!(st, 200, "login {id}: {v}");
    v["token"].as_str().expect("token").to_string()
}

/// Orders completed yesterday (Shanghai): their callbacks are due today.
fn import_orders(server: &TestServer, orders: &[(&str, &str, &str)]) {
    let yesterday = (chrono::Utc::now() - chrono::Duration::hours(24))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let mut csv = HEADER.to_string();
    for (no, name, phone) in orders {
        csv += &order(no, name, phone, "杭州", &yesterday);
    }
    import(server, "orders.csv", &csv);
}

/// Seconds of `freq` in a mono channel.
fn tone_secs(samples: &[f32], rate: u32, freq: f32) -> f32 {
    tone_frames(samples, rate, freq)
        .iter()
        .filter(|&&b| b)
        .count() as f32
        * 0.02
}

/// The call row of a callback: (agent_id, disposition, recording, answered_at, ended_at, arrived_at).
fn call_row(server: &TestServer, call_id: &str) -> Vec<Option<String>> {
    let read = || {
        rows(
            server,
            "SELECT agent_id, disposition, recording, CAST(answered_at AS TEXT), CAST(ended_at AS TEXT), \
             CAST(arrived_at AS TEXT), hangup_cause FROM calls WHERE id = $1",
            call_id,
        )
    };
    poll(Duration::from_secs(10), || {
        read()
            .into_iter()
            .next()
            .filter(|r| r[6].as_deref().is_some_and(|c| !c.is_empty()))
    })
    .unwrap_or_else(|| panic!("no completed call row {call_id}: {:?}", read()))
}

fn agent_state(server: &TestServer, token: &str, id: &str) -> String {
    let (st, v) = api(server, "GET", "/api/agents", Some(token), None);
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .or_else(|| v["agents"].as_array())
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .and_then(|x| x["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn heard_file(c: &Customers, dir: &Path, phone: &str, n: u32) -> std::path::PathBuf {
    let want = phone.to_string();
    poll(Duration::from_secs(10), || {
        c.events("disconnected")
            .iter()
            .any(|v| v["phone"] == want.as_str() && v["n"] == n)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("customer {phone} call {n} did not end: {:?}", c.all()));
    dir.join(format!("{phone}-{n}.wav"))
}

#[test]
fn preview_callback_rings_the_agent_first_then_bridges_and_records_the_customer() {
    let trunk = free_port();
    let heard = tempfile::tempdir().expect("tempdir");
    let customer_voice = tone_wav(heard.path(), CUSTOMER_TONE);
    // The customer's phone rings 2 s (the agent hears ringback), then it
    // answers, stays 2 s + two keys 1.3 s apart + 2 s, and hangs up.
    let plan = json!({"13800000011": ["ring:2:11"]});
    let customers = Customers::start_playing(trunk, &plan, heard.path(), Some(&customer_voice));
    let server = server(
        trunk,
        "preview",
        vec![agent("1001", &["install", "callback"])],
    );
    let agent_voice = tone_wav(server.dir(), AGENT_TONE);
    let phone = Baresip::start(&server, "1001", &agent_voice);
    wait_registrations(&server, 1.0, "baresip agent 1001");
    import_orders(&server, &[("WO1", "王一", "13800000011")]);

    let agent_token = login(&server, "1001", &agent_password("1001"));
    let sup_token = login(&server, "s1", "hotline-s1");

    // Refusals: no such task; a supervisor has no agent phone to ring first.
    let (st, v) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-NOPE/call",
        Some(&agent_token),
        None,
    );
    assert_eq!(st, 404, "{v}");
    assert!(v["error"].is_string() || v["message"].is_string(), "{v}");
    let (st, v) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-WO1/call",
        Some(&sup_token),
        None,
    );
    assert_eq!(st, 403, "{v}");

    // The agent starts the callback from the task.
    let (st, started) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-WO1/call",
        Some(&agent_token),
        None,
    );
    assert_eq!(st, 202, "{started}");
    let call_id = started["call_id"].as_str().expect("call_id").to_string();
    assert_eq!(started["agent"], "1001");
    assert_eq!(started["attempt"], 1);
    // Twice: the task is being dialled and the agent is busy.
    let (st, v) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-WO1/call",
        Some(&agent_token),
        None,
    );
    assert_eq!(st, 409, "{v}");

    // The customer answers; during the call the agent records the answers.
    poll(Duration::from_secs(20), || {
        customers.events("answered").first().cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "the customer was never reached: {:?}\n{}",
            customers.all(),
            phone.log()
        )
    });
    let (st, v) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-WO1/survey",
        Some(&agent_token),
        Some(json!({"call_id": call_id, "answers": {"satisfaction": 9}})),
    );
    assert_eq!(st, 422, "not a choice: {v}");
    let (st, v) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-WO1/survey",
        Some(&agent_token),
        Some(
            json!({"call_id": call_id, "answers": {"attitude": 1, "cleaned": 1, "fees_ok": 1, "satisfaction": 2}, "remarks": "客户表示安装很好"}),
        ),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["completed"], true, "{v}");
    assert_eq!(v["dissatisfied"], false, "{v}");

    let customer_heard = heard_file(&customers, heard.path(), "13800000011", 1);
    wait_state(&server, "wo-WO1", "done", Duration::from_secs(20));
    let att = attempts(&server, "wo-WO1");
    assert_eq!(att.len(), 1, "{att:?}");
    assert_eq!(
        (att[0].1.as_str(), att[0].3.as_str()),
        ("answered", call_id.as_str())
    );
    let sv = surveys(&server, "wo-WO1");
    assert_eq!(sv.len(), 1, "{sv:?}");
    // 满意 (key 2) is stored as 4 of 5; complete.
    assert_eq!(sv[0][3].as_deref(), Some("4"), "{sv:?}");
    assert_eq!(sv[0][4].as_deref(), Some("1"), "{sv:?}");
    let remarks = rows(
        &server,
        "SELECT remarks FROM surveys WHERE call_id = $1",
        &call_id,
    );
    assert_eq!(remarks[0][0].as_deref(), Some("客户表示安装很好"));

    // The call record: the agent, an agent callback, a recording.
    let row = call_row(&server, &call_id);
    assert_eq!(row[0].as_deref(), Some("1001"), "{row:?}");
    assert_eq!(row[1].as_deref(), Some("callback_agent"), "{row:?}");
    assert!(row[3].is_some(), "answered: {row:?}");
    let recording = row[2].clone().expect("recording path");

    // Both ways: the customer heard the agent, the agent heard the customer.
    let (spec, c_heard) = wav_channel(&customer_heard, 0);
    let agent_in_customer = tone_secs(&c_heard, spec.sample_rate, AGENT_TONE);
    assert!(
        agent_in_customer > 2.0,
        "the customer heard the agent for {agent_in_customer} s"
    );
    let a_file = poll(Duration::from_secs(5), || phone.heard()).expect("baresip recording");
    let (spec, a_heard) = wav_channel(&a_file, 0);
    let customer_in_agent = tone_secs(&a_heard, spec.sample_rate, CUSTOMER_TONE);
    assert!(
        customer_in_agent > 2.0,
        "the agent heard the customer for {customer_in_agent} s"
    );
    // While the customer's phone rang the agent heard ringback, not silence.
    let ring = first_run(&tone_frames(&a_heard, spec.sample_rate, RINGBACK_TONE));
    let talk = first_run(&tone_frames(&a_heard, spec.sample_rate, CUSTOMER_TONE));
    assert!(
        matches!((ring, talk), (Some(r), Some(t)) if r < t),
        "ringback at {ring:?} s, the customer at {talk:?} s"
    );
    let ringback = tone_secs(&a_heard, spec.sample_rate, RINGBACK_TONE);
    assert!(
        ringback < 1.5,
        "ringback went on after the answer: {ringback} s"
    );
    // The stereo recording: customer left, what the customer heard (agent) right.
    let (spec, left) = wav_channel(Path::new(&recording), 0);
    let (_, right) = wav_channel(Path::new(&recording), 1);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let l = tone_secs(&left, 8000, CUSTOMER_TONE);
    let r = tone_secs(&right, 8000, AGENT_TONE);
    assert!(
        l > 2.0 && r > 2.0,
        "recording: customer {l} s left, agent {r} s right"
    );
    assert!(
        tone_secs(&left, 8000, AGENT_TONE) < 0.5,
        "the agent leaked into the customer's channel"
    );

    // After the 1 s wrap-up the agent is ready again.
    let ready = poll(Duration::from_secs(10), || {
        (agent_state(&server, &sup_token, "1001") == "ready").then_some(())
    });
    assert!(
        ready.is_some(),
        "agent state {}",
        agent_state(&server, &sup_token, "1001")
    );
    // The call is settled: its form cannot be sent again.
    let (st, v) = api(
        &server,
        "POST",
        "/api/callback-tasks/wo-WO1/survey",
        Some(&agent_token),
        Some(json!({"call_id": call_id, "answers": {"satisfaction": 1}})),
    );
    assert_eq!(st, 409, "{v}");
}

#[test]
fn progressive_callbacks_use_only_ready_callback_agents_one_call_each() {
    let trunk = free_port();
    let heard = tempfile::tempdir().expect("tempdir");
    let customer_voice = tone_wav(heard.path(), CUSTOMER_TONE);
    let plan = json!({"13800000021": ["answer:11"], "13800000022": ["answer:11"]});
    let customers = Customers::start_playing(trunk, &plan, heard.path(), Some(&customer_voice));
    let server = server(
        trunk,
        "progressive",
        vec![agent("1001", &["callback"]), agent("1002", &["install"])],
    );
    let agent_voice = tone_wav(server.dir(), AGENT_TONE);
    let _p1 = Baresip::start(&server, "1001", &agent_voice);
    let p2 = Baresip::start(&server, "1002", &agent_voice);
    wait_registrations(&server, 2.0, "baresip agents");
    import_orders(
        &server,
        &[
            ("WO1", "李一", "13800000021"),
            ("WO2", "李二", "13800000022"),
        ],
    );
    let agent_token = login(&server, "1001", &agent_password("1001"));

    // The dialer calls both customers through 1001, one after the other.
    let both = poll(Duration::from_secs(60), || {
        let ended = customers.events("disconnected");
        (ended.len() >= 2).then_some(ended)
    })
    .unwrap_or_else(|| panic!("two callbacks did not happen: {:?}", customers.all()));
    let t = |kind: &str, phone: &str| -> f64 {
        customers
            .events(kind)
            .iter()
            .find(|v| v["phone"] == phone)
            .and_then(|v| v["t"].as_f64())
            .unwrap_or_else(|| panic!("no {kind} for {phone}: {both:?}"))
    };
    let (first, second) = if t("incoming", "13800000021") < t("incoming", "13800000022") {
        ("13800000021", "13800000022")
    } else {
        ("13800000022", "13800000021")
    };
    assert!(
        t("incoming", second) >= t("disconnected", first),
        "one agent, but the second customer was dialled during the first call: {both:?}"
    );
    // 1002 lacks the callback skill: its phone never rang.
    assert!(p2.heard().is_none(), "agent 1002 was called: {}", p2.log());

    // The first customer is very dissatisfied; the form comes after the call.
    let task_of = |phone: &str| {
        if phone == "13800000021" {
            "wo-WO1"
        } else {
            "wo-WO2"
        }
    };
    let call_of = |task: &str| -> String {
        poll(Duration::from_secs(10), || {
            attempts(&server, task)
                .first()
                .map(|a| a.3.clone())
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| panic!("no attempt for {task}"))
    };
    let (t1, t2) = (task_of(first), task_of(second));
    let (c1, c2) = (call_of(t1), call_of(t2));
    let (st, v) = api(
        &server,
        "POST",
        &format!("/api/callback-tasks/{t1}/survey"),
        Some(&agent_token),
        Some(
            json!({"call_id": c1, "answers": {"attitude": 3, "cleaned": 2, "fees_ok": 1, "satisfaction": 5}, "remarks": "师傅迟到两小时"}),
        ),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["dissatisfied"], true, "{v}");
    let case_id = v["case_id"].as_str().expect("case id").to_string();
    let (st, v) = api(
        &server,
        "POST",
        &format!("/api/callback-tasks/{t2}/survey"),
        Some(&agent_token),
        Some(
            json!({"call_id": c2, "answers": {"attitude": 1, "cleaned": 1, "fees_ok": 1, "satisfaction": 1}}),
        ),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["dissatisfied"], false, "{v}");

    wait_state(&server, t1, "done", Duration::from_secs(20));
    wait_state(&server, t2, "done", Duration::from_secs(20));
    let case = poll(Duration::from_secs(10), || {
        rows(
            &server,
            "SELECT state, description FROM cases WHERE id = $1",
            &case_id,
        )
        .into_iter()
        .next()
    })
    .unwrap_or_else(|| panic!("case {case_id} not opened"));
    assert_eq!(case[0].as_deref(), Some("open"), "{case:?}");
    let text = case[1].clone().unwrap_or_default();
    assert!(
        text.contains("很不满意") && text.contains("师傅迟到两小时"),
        "{text}"
    );
    for c in [&c1, &c2] {
        let row = call_row(&server, c);
        assert_eq!(row[0].as_deref(), Some("1001"), "{row:?}");
        assert!(row[2].is_some(), "recorded: {row:?}");
    }
    // The second call started after the first one ended (one agent).
    let (r1, r2) = (call_row(&server, &c1), call_row(&server, &c2));
    let ended1: i64 = r1[4].as_deref().unwrap_or("0").parse().unwrap_or(0);
    let arrived2: i64 = r2[5].as_deref().unwrap_or("0").parse().unwrap_or(0);
    assert!(
        arrived2 >= ended1,
        "second attempt at {arrived2} before the first ended at {ended1}"
    );
}
