//! End to end: a callback campaign through a real SIP trunk. pjsua2
//! (`tests/peers/pjsua2_customers.py`) plays the carrier and every customer
//! phone behind it; orders come in with `hotline import work-orders`; the
//! dialer calls, the survey IVR collects RFC 4733 keys, and the database
//! shows each step:
//!
//! - C1 answers and is satisfied;
//! - C2 is busy (486), then answers on the retry and is satisfied;
//! - C3's number does not exist (404): phone flagged, task invalid;
//! - C4 is dissatisfied → case → the manager's fix (API) → second callback →
//!   satisfied → case closed; the weekly exception summary counts it;
//! - C5's phone is ringing when the server is SIGKILLed; after the restart
//!   the cut-off attempt is closed as interrupted and a new attempt (not the
//!   same one again) reaches the customer; nothing is lost or duplicated.
//!
//! Calling hours are 00:00-24:00 so the test does not depend on the time of
//! day; back-offs are seconds.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::campaign::{
    attempts, calls, customer_of, import, order, outcomes, phone_status, rows, surveys, task_state,
    trunk_toml, wait_state, Customers, HEADER, SUPERVISOR_S1,
};
use common::{free_port, poll, TestServer, REPO};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// HTTP

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body.as_bytes()).expect("write body");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = h
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("status");
    let b = if h
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(b)
    } else {
        b.to_string()
    };
    (status, serde_json::from_str(&b).unwrap_or(Value::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn login(server: &TestServer) -> String {
    let (st, v) = request(
        server.http,
        "POST",
        "/api/login",
        None,
        Some(&json!({"id": "s1", "password": "hotline-s1"})),
    );
    assert_eq!(st, 200, "{v}");
    v["token"].as_str().expect("token").to_string()
}

#[test]
fn callback_campaign_end_to_end() {
    let trunk = free_port();
    // Keys: greeting 1 (go on), attitude, cleaned, fees, satisfaction.
    let happy = "answer:11111";
    let plan = json!({
        // C1 stays on the line to hear the whole closing prompt.
        "13800000001": ["answer:11111:stay"],
        "13800000002": ["reject:486", happy],
        "13800000003": ["reject:404"],
        // 服务态度满意, 现场未清理, 收费属实, 很不满意; then satisfied.
        "13800000004": ["answer:11215", happy],
        "13800000005": ["ring:30", happy],
    });
    let heard = tempfile::tempdir().expect("tempdir");
    let customers = Customers::start(trunk, &plan, heard.path());
    let mut server = TestServer::builder()
        .extra_toml(SUPERVISOR_S1)
        .extra_toml(&format!(
            r#"
{trunks}
[campaign]
trunk = "carrier"
dialplan = "{REPO}/dialplans/survey.toml"
calling_hours = "00:00-24:00"
retry_busy_secs = 3
retry_no_answer_secs = 3
retry_incomplete_secs = 3
retry_error_secs = 2
ring_timeout_secs = 40
poll_ms = 200
"#,
            trunks = trunk_toml(trunk)
        ))
        .start();

    // Completed yesterday (Shanghai): an installation's window is today.
    let yesterday = (chrono::Utc::now() - chrono::Duration::hours(24))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let mut csv = HEADER.to_string();
    csv += &order("WO1", "张一", "13800000001", "杭州", &yesterday);
    csv += &order("WO2", "张二", "13800000002", "杭州", &yesterday);
    csv += &order("WO3", "张三", "13800000003", "宁波", &yesterday);
    csv += &order("WO4", "张四", "13800000004", "宁波", &yesterday);
    import(&server, "orders.csv", &csv);

    let limit = Duration::from_secs(60);
    wait_state(&server, "wo-WO1", "done", limit);
    wait_state(&server, "wo-WO2", "done", limit);
    wait_state(&server, "wo-WO3", "invalid", limit);
    wait_state(&server, "wo-WO4", "done", limit);

    // C1: one attempt, answered, a complete satisfied survey.
    let c1 = customer_of(&server, "WO1");
    assert_eq!(outcomes(&server, "wo-WO1"), ["answered"]);
    let cl = calls(&server, "wo-WO1");
    assert_eq!(cl.len(), 1);
    assert_eq!(cl[0][0].as_deref(), Some("out"));
    assert_eq!(cl[0][1].as_deref(), Some(c1.as_str()));
    assert_eq!(cl[0][2].as_deref(), Some("WO1"));
    assert_eq!(cl[0][3].as_deref(), Some("13800000001"));
    let sv = surveys(&server, "wo-WO1");
    assert_eq!(sv.len(), 1);
    let want: [Option<&str>; 5] = [Some("5"), Some("1"), Some("1"), Some("5"), Some("1")];
    assert_eq!(
        sv[0][..5].iter().map(|x| x.as_deref()).collect::<Vec<_>>(),
        want
    );
    assert_eq!(sv[0][5], attempts(&server, "wo-WO1")[0].3.clone().into());
    assert_eq!(phone_status(&server, &c1), "ok");
    assert_eq!(
        cl[0][4].as_deref(),
        Some("survey_completed"),
        "hotline hung up after thanking"
    );
    // What C1's phone heard: the closing prompt, played whole (audio, not
    // just signalling: RMS envelope correlation with the prompt file).
    let wav = poll(Duration::from_secs(10), || {
        customers
            .events("recorded")
            .into_iter()
            .find(|v| v["phone"] == "13800000001")
            .and_then(|v| v["path"].as_str().map(std::path::PathBuf::from))
    })
    .expect("C1's call recorded");
    let rec = audio::Recording::new(&audio::read_wav(&wav), 40);
    let prompt = |name: &str| {
        audio::PromptAudio::load(std::path::Path::new(&format!(
            "{REPO}/dialplans/prompts/{name}.wav"
        )))
    };
    let score = |name: &str| {
        rec.best_elastic(&prompt(name), 0..rec.samples)
            .map_or(0.0, |m| m.score)
    };
    let thanks = score("survey_thanks");
    assert!(
        thanks >= audio::MATCH_THRESHOLD && thanks > score("survey_later"),
        "survey_thanks r = {thanks:.3} (survey_later {:.3}) in {:.1}s heard",
        score("survey_later"),
        rec.secs()
    );

    // C2: busy first (486), answered on the retry.
    let a2 = attempts(&server, "wo-WO2");
    assert_eq!(a2.len(), 2, "{a2:?}");
    assert_eq!((a2[0].1.as_str(), a2[0].2.as_str()), ("busy", "486"));
    assert_eq!(a2[1].1, "answered");
    assert_eq!(calls(&server, "wo-WO2").len(), 2);
    assert_eq!(surveys(&server, "wo-WO2").len(), 1);
    assert_eq!(customers.calls_to("13800000002"), 2);

    // C3: 404 → number flagged as empty (空号), no survey, no retry.
    let a3 = attempts(&server, "wo-WO3");
    assert_eq!(a3.len(), 1);
    assert_eq!((a3[0].1.as_str(), a3[0].2.as_str()), ("invalid", "404"));
    assert_eq!(phone_status(&server, &customer_of(&server, "WO3")), "empty");
    assert!(surveys(&server, "wo-WO3").is_empty());
    assert_eq!(customers.calls_to("13800000003"), 1);

    // C4: dissatisfied → a case for the department.
    let sv4 = surveys(&server, "wo-WO4");
    assert_eq!(sv4.len(), 1);
    assert_eq!(sv4[0][1].as_deref(), Some("0"), "site not cleaned");
    assert_eq!(sv4[0][3].as_deref(), Some("1"), "很不满意");
    let c4 = customer_of(&server, "WO4");
    let token = login(&server);
    let (st, cases) = request(
        server.http,
        "GET",
        "/api/cases?state=open&kind=dissatisfied",
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{cases}");
    let cases = cases.as_array().cloned().unwrap_or_default();
    assert_eq!(cases.len(), 1, "{cases:?}");
    let case = &cases[0];
    assert_eq!(case["customer_id"], c4.as_str());
    assert_eq!(case["department"], "安装一部");
    assert_eq!(case["region"], "宁波");
    assert_eq!(case["work_order"], "WO4");
    assert_eq!(case["interviewee"], "张四");
    assert!(
        case["description"]
            .as_str()
            .unwrap_or("")
            .contains("很不满意"),
        "{case}"
    );
    let case_id = case["id"].as_str().expect("case id").to_string();

    // An agent-less API check: a wrong body and an unknown case.
    let (st, _) = request(
        server.http,
        "POST",
        &format!("/api/cases/{case_id}/fix"),
        Some(&token),
        Some(&json!({"fix": ""})),
    );
    assert_eq!(st, 422);
    let (st, _) = request(
        server.http,
        "POST",
        "/api/cases/nope/fix",
        Some(&token),
        Some(&json!({"fix": "x"})),
    );
    assert_eq!(st, 404);

    // The manager's fix → resolved, second callback scheduled.
    let (st, fixed) = request(
        server.http,
        "POST",
        &format!("/api/cases/{case_id}/fix"),
        Some(&token),
        Some(&json!({"fix": "已派师傅上门清理现场并道歉"})),
    );
    assert_eq!(st, 200, "{fixed}");
    assert_eq!(fixed["case"]["state"], "resolved");
    let second = fixed["second_task"]
        .as_str()
        .expect("second task")
        .to_string();
    let (st, _) = request(
        server.http,
        "POST",
        &format!("/api/cases/{case_id}/fix"),
        Some(&token),
        Some(&json!({"fix": "again"})),
    );
    assert_eq!(st, 409, "a resolved case takes no second fix");

    wait_state(&server, &second, "done", limit);
    let kind = rows(
        &server,
        "SELECT kind, case_id FROM callback_tasks WHERE id = $1",
        &second,
    );
    assert_eq!(kind[0][0].as_deref(), Some("second"));
    assert_eq!(kind[0][1].as_deref(), Some(case_id.as_str()));
    let sv = surveys(&server, &second);
    assert_eq!(sv.len(), 1);
    assert_eq!(sv[0][3].as_deref(), Some("5"));
    let closed = poll(Duration::from_secs(5), || {
        let (_, c) = request(
            server.http,
            "GET",
            "/api/cases?state=closed",
            Some(&token),
            None,
        );
        c.as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == case_id.as_str()).cloned())
    })
    .expect("case closed after the satisfied second callback");
    assert!(closed["closed_at"].is_i64(), "{closed}");
    let events = rows(
        &server,
        "SELECT actor, text FROM case_events WHERE case_id = $1 ORDER BY at",
        &case_id,
    );
    assert_eq!(events.len(), 3, "opened, fixed, closed: {events:?}");
    assert_eq!(events[1][0].as_deref(), Some("s1"));
    assert_eq!(customers.calls_to("13800000004"), 2);

    // The weekly exception summary of this week: Ningbo opened 1, fixed 1.
    let week = {
        use chrono::Datelike;
        let d = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .date_naive();
        let iso = d.iso_week();
        format!("{}-W{:02}", iso.year(), iso.week())
    };
    let (st, rep) = request(
        server.http,
        "GET",
        &format!("/api/reports/exceptions?week={week}"),
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{rep}");
    assert_eq!(rep["week"], week.as_str());
    let ningbo = rep["regions"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["region"] == "宁波").cloned())
        .unwrap_or_else(|| panic!("{rep}"));
    assert_eq!(
        (ningbo["opened"].as_i64(), ningbo["fixed"].as_i64()),
        (Some(1), Some(1)),
        "{rep}"
    );

    // ---- Kill in the middle of a call, restart, nothing lost or doubled ----
    let before: Vec<usize> = (1..=4)
        .map(|i| customers.calls_to(&format!("1380000000{i}")))
        .collect();
    let mut csv = HEADER.to_string();
    csv += &order("WO5", "张五", "13800000005", "杭州", &yesterday);
    import(&server, "more.csv", &csv);
    poll(Duration::from_secs(20), || {
        (customers.calls_to("13800000005") == 1).then_some(())
    })
    .expect("the dialer calls C5");
    assert_eq!(task_state(&server, "wo-WO5").as_deref(), Some("dialing"));
    let a5 = attempts(&server, "wo-WO5");
    assert_eq!(a5.len(), 1);
    assert_eq!(
        a5[0].1, "",
        "attempt 1 written before the dial, no outcome yet"
    );
    server.kill_and_restart();

    wait_state(&server, "wo-WO5", "done", limit);
    let a5 = attempts(&server, "wo-WO5");
    assert_eq!(a5.len(), 2, "{a5:?}");
    assert_eq!(a5[0].1, "interrupted");
    assert_eq!(a5[1].1, "answered");
    assert_ne!(a5[0].3, a5[1].3, "a new call for the new attempt");
    let c5 = calls(&server, "wo-WO5");
    assert_eq!(c5.len(), 2);
    assert_eq!(c5[0][4].as_deref(), Some("server_restart"));
    assert_eq!(surveys(&server, "wo-WO5").len(), 1);
    assert_eq!(customers.calls_to("13800000005"), 2, "one call per attempt");
    // Nobody else was called again after the restart, and no task is left behind.
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<usize> = (1..=4)
        .map(|i| customers.calls_to(&format!("1380000000{i}")))
        .collect();
    assert_eq!(before, after);
    let left = rows(
        &server,
        "SELECT id FROM callback_tasks WHERE state IN ('pending', 'dialing') AND id <> $1",
        "",
    );
    assert!(left.is_empty(), "{left:?}");
    let total_attempts = rows(
        &server,
        "SELECT CAST(COUNT(*) AS TEXT) FROM callback_attempts WHERE id <> $1",
        "",
    );
    assert_eq!(total_attempts[0][0].as_deref(), Some("8"));
}
