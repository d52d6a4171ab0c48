//! The web pages in a real browser with a real SIP call.
//!
//! hotline runs with the shipped dialplan; headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by playwright-core from `tests/web/e2e_web.mjs`)
//! opens the supervisor wallboard and the agent desk; a SIPp customer dials
//! 8000, passes the open-case menu, presses 2 (installation) and waits in the queue; the wallboard
//! must list the waiting caller; then baresip registers as agent 1001 and
//! answers automatically; the wallboard must show the call answered and the
//! desk the screen pop with the customer's record (work orders, open case
//! and its owner, previous call with its recording); after the customer
//! hangs up the agent saves a disposition and a note on the desk (checked in
//! the database); finally the reports page downloads the inbound CSV, whose
//! numbers must equal a SQL count over the same range.
//!
//! Screenshots and the CSVs are kept in `target/web-artifacts/<test>/`. Missing
//! chromium or node_modules fail the test with what to install.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agents::{
    agent, agent_password, hotline_dialplan, padded, speech_b, wait_registrations, Baresip,
    Behaviour, Customer, QueueSetup, SippAgents,
};
use common::web::{artifacts, browser_tools, spawn_browser, Browser, ONE_BROWSER};
use common::{
    free_port, free_port_pair, http_request, require_binary, KillOnDrop, TestServer, REPO,
};
use hotline::store::{
    CallArrival, CallCompletion, Case, CaseKind, Customer as CustomerRow, Direction, Store,
    WorkOrder, WorkOrderKind,
};
use serde_json::Value;

const USERS: &str = r#"
[[users]]
id = "s1"
name = "Supervisor One"
password = "hotline-s1"
role = "supervisor"

[[users]]
id = "admin"
name = "Administrator"
password = "hotline-admin"
role = "admin"
"#;

const CALLER: &str = "13800138000";
const CUSTOMER: &str = "王建国";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn with_store<T>(s: &TestServer, f: impl AsyncFnOnce(Store) -> T) -> T {
    let url = format!("sqlite://{}", s.db_path().display());
    block_on(async move {
        let store = Store::connect(&url)
            .await
            .expect("open the server's database");
        let out = f(store.clone()).await;
        store.close().await;
        out
    })
}

/// The customer the caller's number belongs to, with an installation order,
/// an open complaint owned by 1002 and a call three days ago (taken by
/// 1001, so the agent may play its recording).
fn seed(server: &TestServer) {
    with_store(server, async |store: Store| {
        let t = now_ms();
        store
            .upsert_customer(
                &CustomerRow {
                    id: "C-WEB-1".into(),
                    name: CUSTOMER.into(),
                    address: "上海市浦东新区世纪大道 100 号".into(),
                    region: "华东".into(),
                    do_not_call: false,
                    phone_status: "ok".into(),
                    created_at: t,
                    updated_at: t,
                },
                &[CALLER],
            )
            .await
            .expect("customer");
        store
            .upsert_work_order(&WorkOrder {
                order_no: "WO-WEB-1".into(),
                kind: WorkOrderKind::Install,
                customer_id: "C-WEB-1".into(),
                product: "KFR-35GW 空调".into(),
                technician: "李师傅".into(),
                department: "安装部".into(),
                region: "华东".into(),
                completed_at: Some(t - 86_400_000),
                fees_cents: 0,
                created_at: t,
                updated_at: t,
            })
            .await
            .expect("work order");
        store
            .insert_case(&Case {
                id: "case-web-1".into(),
                customer_id: "C-WEB-1".into(),
                kind: CaseKind::Complaint,
                department: "安装部".into(),
                deadline: t + 5 * 86_400_000,
                state: "open".into(),
                owner: Some("1002".into()),
                description: "安装后外机噪音大".into(),
                created_at: t - 86_400_000,
                closed_at: None,
            })
            .await
            .expect("case");
        let before = t - 3 * 86_400_000;
        store
            .insert_call_arrival(&CallArrival {
                id: "prev-web-1".into(),
                direction: Direction::In,
                from_number: CALLER.into(),
                to_number: "8000".into(),
                customer_id: Some("C-WEB-1".into()),
                work_order: None,
                task_id: None,
                queue: Some("complaint".into()),
                arrived_at: before,
            })
            .await
            .expect("previous call");
        store
            .complete_call(&CallCompletion {
                id: "prev-web-1".into(),
                customer_id: None,
                work_order: None,
                queue: None,
                agent_id: Some("1001".into()),
                answered_at: Some(before + 5_000),
                ended_at: before + 65_000,
                wait_ms: 5_000,
                talk_ms: 60_000,
                hold_ms: 0,
                ivr_path: vec![],
                hangup_cause: "200 BYE".into(),
                hangup_side: "caller".into(),
                disposition: "complaint".into(),
                notes: "客户投诉噪音".into(),
                recording: Some("prev-web-1.wav".into()),
                transfer_chain: vec![],
            })
            .await
            .expect("previous call end");
        // Today's callback work of 1001: two tasks, one done with a survey.
        for (task, state) in [("task-web-1", "done"), ("task-web-2", "pending")] {
            sqlx::query(
                "INSERT INTO callback_tasks (id, work_order, customer_id, kind, window_start, \
                 window_end, deadline, attempts, state, owner, due_at, created_at) \
                 VALUES ($1, 'WO-WEB-1', 'C-WEB-1', 'install', $2, $3, $3, 1, $4, '1001', $2, $2)",
            )
            .bind(task)
            .bind(t)
            .bind(t + 8 * 3_600_000)
            .bind(state)
            .execute(store.pool())
            .await
            .expect("callback task");
        }
        sqlx::query(
            "INSERT INTO calls (id, direction, from_number, to_number, customer_id, task_id, \
             agent_id, arrived_at, answered_at, ended_at, talk_ms) \
             VALUES ('cb-web-1', 'out', '8000', $1, 'C-WEB-1', 'task-web-1', '1001', $2, $2, $3, 60000)",
        )
        .bind(CALLER)
        .bind(t)
        .bind(t + 60_000)
        .execute(store.pool())
        .await
        .expect("callback call");
        sqlx::query(
            "INSERT INTO surveys (call_id, attitude, cleaned, fees_ok, satisfaction, remarks) \
             VALUES ('cb-web-1', 4, 1, 0, 2, '多收了材料费')",
        )
        .execute(store.pool())
        .await
        .expect("survey");
    });
}

/// Two seconds of a 440 Hz tone as the previous call's recording.
fn write_recording(server: &TestServer, name: &str) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let path = server.dir().join("recordings").join(name);
    let mut w = hound::WavWriter::create(&path, spec).expect("create recording");
    for i in 0..16_000 {
        let v = ((i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin() * 8000.0) as i16;
        w.write_sample(v).expect("sample");
        w.write_sample(v).expect("sample");
    }
    w.finalize().expect("finish recording");
}

/// baresip as agent `id`, auto-answer, a padded speech WAV as microphone.
fn baresip(server: &TestServer, id: &str) -> KillOnDrop {
    let bin = require_binary("baresip", "Debian package baresip-core");
    let dir = server.dir().join(format!("baresip-{id}"));
    std::fs::create_dir_all(&dir).expect("mkdir baresip dir");
    let mic = padded(&speech_b());
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method\tepoll\nsip_listen\t127.0.0.1:{sip}\nsip_transports\tudp\n\
             net_interface\t127.0.0.1\naudio_player\talsa,null\naudio_source\taufile,{mic}\n\
             module_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule\taufile.so\n\
             module_app\taccount.so\nmodule_app\tmenu.so\nmodule_app\tctrl_tcp.so\n\
             ctrl_tcp_listen\t127.0.0.1:{ctrl}\n",
            sip = free_port_pair(),
            ctrl = free_port(),
            mic = mic.display(),
        ),
    )
    .expect("baresip config");
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{id}@{s}>;auth_user={id};auth_pass={pw};regint=300;answermode=auto\n",
            s = server.sip,
            pw = agent_password(id)
        ),
    )
    .expect("baresip accounts");
    let log = std::fs::File::create(dir.join("baresip.log")).expect("baresip.log");
    let child = Command::new(bin)
        .arg("-f")
        .arg(&dir)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("spawn baresip");
    KillOnDrop(child)
}

/// Numbers of the inbound CSV for one scope/name: offered, answered, abandoned.
fn csv_counts(csv: &str, scope: &str, name: &str) -> Option<(i64, i64, i64)> {
    for line in csv.trim_start_matches('\u{feff}').lines().skip(1) {
        let cells: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if cells.len() >= 5 && cells[0] == scope && cells[1] == name {
            let n = |i: usize| cells[i].parse::<i64>().ok();
            return Some((n(2)?, n(3)?, n(4)?));
        }
    }
    None
}

#[test]
fn wallboard_desk_and_reports_in_chromium_with_a_real_call() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("call-flow");
    let setup = QueueSetup {
        wrap_up_ms: 0,
        ..QueueSetup::default()
    };
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"])])
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&format!("{}\n{USERS}", setup.toml()))
        .start();
    seed(&server);
    write_recording(&server, "prev-web-1.wav");

    let mut browser = spawn_browser(
        &node,
        "e2e_web.mjs",
        &art,
        &[
            ("HOTLINE_URL", format!("http://{}", server.http)),
            ("SUP_ID", "s1".into()),
            ("SUP_PW", "hotline-s1".into()),
            ("AGENT_ID", "1001".into()),
            ("AGENT_PW", agent_password("1001")),
            ("CALLER", CALLER.into()),
            ("CUSTOMER_NAME", CUSTOMER.into()),
        ],
    );

    // 1. Pages open: the customer calls and waits (no agent registered yet).
    let ready = browser.expect("ready", Duration::from_secs(90));
    // The desk's not-ready (with its reason) reached the ACD and the wallboard.
    assert_eq!(ready["not_ready_reason"], "午餐 lunch", "{ready}");
    assert_eq!(ready["wallboard_saw_not_ready"], true, "{ready}");
    // The caller has an open case: 2 (not the case owner) in the open-case
    // menu, then 2 (installation) in the main menu.
    let customer = Customer::call(&server, CALLER, &["2", "2"]);
    let waiting = browser.expect("waiting_seen", Duration::from_secs(90));
    assert_eq!(waiting["queue"], "install", "{waiting}");
    assert_eq!(waiting["waiting_count"], "1", "{waiting}");
    assert_eq!(waiting["after_reload"], true, "{waiting}");
    let call_id = waiting["call_id"].as_str().expect("call id").to_string();

    // 2. The agent's softphone registers and answers.
    let _phone = baresip(&server, "1001");
    let answered = browser.expect("answered_seen", Duration::from_secs(90));
    assert_eq!(answered["call_id"], call_id.as_str());
    assert_eq!(answered["agent"], "1001", "{answered}");
    assert_eq!(answered["waiting_gone"], true, "{answered}");
    let pop = &answered["pop"];
    assert_eq!(pop["caller"], CALLER, "{pop}");
    assert!(
        pop["customer"].as_str().unwrap_or("").contains(CUSTOMER),
        "{pop}"
    );
    assert_eq!(pop["orders"], serde_json::json!(["WO-WEB-1"]), "{pop}");
    assert_eq!(pop["case_owners"], serde_json::json!(["1002"]), "{pop}");
    // The inbound call three days ago and today's callback call.
    assert_eq!(pop["previous_calls"], 2, "{pop}");
    assert_eq!(pop["recording_links"], 1, "{pop}");
    let seconds = pop["recording_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        (1.9..2.1).contains(&seconds),
        "the previous call's recording plays in the desk: {seconds} s"
    );
    assert!(
        pop["script_title"].as_str().unwrap_or("").contains("安装"),
        "the install queue's script: {pop}"
    );
    assert_eq!(pop["my_state"], "on_call", "{pop}");
    assert_eq!(answered["open_cases"], 2, "the new complaint joins the pop");
    let complaint = answered["complaint"]
        .as_str()
        .expect("complaint text")
        .to_string();
    let case = with_store(&server, async |store: Store| {
        store
            .list_open_cases_for_customer("C-WEB-1")
            .await
            .expect("cases")
            .into_iter()
            .find(|c| c.description == complaint)
    })
    .expect("the complaint registered on the desk is in the database");
    assert_eq!(case.kind, CaseKind::Complaint);
    assert_eq!(
        case.owner.as_deref(),
        Some("1001"),
        "first-contact ownership"
    );
    assert_eq!(case.department, "安装部");
    // 5 working days are 5 (from a Sunday) to 7 calendar days.
    let days = (case.deadline - case.created_at) as f64 / 86_400_000.0;
    assert!((5.0..=7.0).contains(&days), "deadline {days} days ahead");

    // 3. The customer hangs up; the agent saves the outcome on the desk.
    customer.hang_up_and_finish();
    let saved = browser.expect("disposition_saved", Duration::from_secs(90));
    let (disposition, notes, agent_id): (String, String, Option<String>) =
        with_store(&server, async |store: Store| {
            let c = store
                .get_call(&call_id)
                .await
                .expect("read call")
                .expect("the call's row");
            (c.disposition, c.notes, c.agent_id)
        });
    assert_eq!(disposition, "repair_booked");
    assert_eq!(notes, saved["notes"].as_str().unwrap_or("?"));
    assert_eq!(agent_id.as_deref(), Some("1001"));

    // 4. The downloaded inbound CSV matches the database.
    let report = browser.expect("report", Duration::from_secs(90));
    let csv = report["csv"].as_str().expect("csv text");
    assert!(csv.starts_with('\u{feff}'), "UTF-8 BOM");
    assert_eq!(report["suggested"], "inbound.csv");
    let (from, to) = (
        report["from"].as_i64().expect("from"),
        report["to"].as_i64().expect("to"),
    );
    let per_queue: Vec<(String, i64, i64, i64)> = with_store(&server, async |store: Store| {
        use sqlx::Row;
        sqlx::query(
            "SELECT queue, COUNT(*), \
             SUM(CASE WHEN agent_id IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN agent_id IS NULL THEN 1 ELSE 0 END) \
             FROM calls WHERE direction = 'in' AND queue IS NOT NULL AND ended_at IS NOT NULL \
             AND arrived_at >= $1 AND arrived_at < $2 GROUP BY queue ORDER BY queue",
        )
        .bind(from)
        .bind(to)
        .fetch_all(store.pool())
        .await
        .expect("count calls")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
    });
    assert!(
        per_queue.iter().any(|q| q.0 == "install" && q.2 >= 1),
        "the call is counted: {per_queue:?}"
    );
    let mut total = (0, 0, 0);
    for (queue, offered, answered, abandoned) in &per_queue {
        assert_eq!(
            csv_counts(csv, "queue", queue),
            Some((*offered, *answered, *abandoned)),
            "queue {queue}: CSV vs database\n{csv}"
        );
        total = (total.0 + offered, total.1 + answered, total.2 + abandoned);
    }
    let csv_queues = csv.lines().filter(|l| l.starts_with("queue,")).count();
    assert_eq!(csv_queues, per_queue.len(), "{csv}");
    assert_eq!(csv_counts(csv, "total", "全部 all"), Some(total), "{csv}");
    assert_eq!(
        csv_counts(csv, "agent", "1001").map(|c| c.1),
        Some(1),
        "{csv}"
    );

    // The daily callback CSV against the database: tasks of 1001 opening in
    // the day, tasks with a survey answered in the day, the remark.
    let daily = report["daily_csv"].as_str().expect("daily csv");
    let (dfrom, dto) = (
        report["daily_from"].as_i64().expect("from"),
        report["daily_to"].as_i64().expect("to"),
    );
    let (assigned, completed): (i64, i64) = with_store(&server, async |store: Store| {
        use sqlx::Row;
        let a: i64 = sqlx::query(
            "SELECT COUNT(*) FROM callback_tasks WHERE owner = '1001' \
             AND window_start >= $1 AND window_start < $2",
        )
        .bind(dfrom)
        .bind(dto)
        .fetch_one(store.pool())
        .await
        .expect("count tasks")
        .get(0);
        let c: i64 = sqlx::query(
            "SELECT COUNT(DISTINCT c.task_id) FROM calls c JOIN surveys s ON s.call_id = c.id \
             WHERE c.agent_id = '1001' AND c.arrived_at >= $1 AND c.arrived_at < $2",
        )
        .bind(dfrom)
        .bind(dto)
        .fetch_one(store.pool())
        .await
        .expect("count surveys")
        .get(0);
        (a, c)
    });
    assert_eq!((assigned, completed), (2, 1), "seeded");
    let line = daily
        .lines()
        .find(|l| l.split(',').nth(1) == Some("1001"))
        .unwrap_or_else(|| panic!("no line for 1001 in the daily CSV:\n{daily}"));
    let cells: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
    assert_eq!(cells[2], assigned.to_string(), "assigned: {line}");
    assert_eq!(cells[3], completed.to_string(), "completed: {line}");
    assert_eq!(cells[5], "4", "attitude: {line}");
    assert_eq!((cells[6], cells[7]), ("1", "0"), "cleaned up: {line}");
    assert_eq!((cells[8], cells[9]), ("0", "1"), "fees: {line}");
    assert_eq!(cells[10], "多收了材料费", "remarks: {line}");

    let done = browser.expect("done", Duration::from_secs(90));
    let shots = done["screenshots"].as_array().map_or(0, Vec::len);
    assert!(shots >= 8, "screenshots: {done}");
    assert_eq!(
        done["console_errors"],
        serde_json::json!([]),
        "no JavaScript errors in the pages"
    );
}

/// Agent 1002 (a SIPp softphone; the owner of the caller's open case, so
/// the call goes to them first) takes the call on the desk and transfers it
/// to 1001 with a note; 1001's baresip is rung and answers, and 1001's desk
/// pops the call with the note, so the caller is not asked again.
#[test]
fn desk_transfers_a_live_call_with_a_note() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("transfer");
    let setup = QueueSetup {
        wrap_up_ms: 0,
        ..QueueSetup::default()
    };
    let server = TestServer::builder()
        .agents(vec![
            agent("1001", &["install"]),
            agent("1002", &["repair"]),
        ])
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&setup.toml())
        .start();
    seed(&server);
    let _phone = baresip(&server, "1001");
    let first = SippAgents::start(&server, &["1002"], Behaviour::Answer);
    let mut browser = spawn_browser(
        &node,
        "e2e_transfer.mjs",
        &art,
        &[
            ("HOTLINE_URL", format!("http://{}", server.http)),
            ("AGENT_ID", "1002".into()),
            ("AGENT_PW", agent_password("1002")),
            ("AGENT2_ID", "1001".into()),
            ("AGENT2_PW", agent_password("1001")),
            ("CUSTOMER_NAME", CUSTOMER.into()),
        ],
    );
    browser.expect("ready", Duration::from_secs(90));
    let customer = Customer::call(&server, CALLER, &["2", "2"]);
    let moved = browser.expect("transferred", Duration::from_secs(120));
    let note = moved["note"].as_str().expect("note").to_string();
    assert!(
        moved["shown_note"].as_str().unwrap_or("").contains(&note),
        "1001's desk shows the note: {moved}"
    );
    assert_eq!(moved["errors"], serde_json::json!([]), "{moved}");
    // 1002's phone had the call first (its leg ends with the transfer).
    first.wait_offers(Duration::from_secs(10), "1002 connected", |o| {
        o.iter().any(|x| x.caller == CALLER && x.acked)
    });
    browser.expect("done", Duration::from_secs(30));
    customer.hang_up_and_finish();
    let call_id = moved["call_id"].as_str().expect("call id").to_string();
    let row = common::poll(Duration::from_secs(10), || {
        with_store(&server, async |store: Store| {
            store.get_call(&call_id).await.ok().flatten()
        })
        .filter(|c| c.ended_at.is_some())
    })
    .expect("the transferred call's row");
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:?}");
    assert!(
        row.transfer_chain
            .iter()
            .any(|h| h.from_agent == "1002" && h.note == note),
        "the note is on the call record: {row:?}"
    );
}

/// A supervisor (s100, a baresip phone registered with their API id and
/// password) listens to a live call from the wallboard, barges in and stops;
/// s1, without a phone, sees the server's refusal. Then agent 1001 consults
/// 1002 on the desk (the caller holds), and completes the transfer: 1002's
/// desk pops the call with the note and the call record names 1002.
#[test]
fn wallboard_monitors_and_desk_consults_a_live_call() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("monitor-consult");
    let server = TestServer::builder()
        .agents(vec![
            agent("1001", &["install"]),
            agent("1002", &["repair"]),
        ])
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&format!(
            "{}\n{USERS}\n[[users]]\nid = \"s100\"\nname = \"Supervisor 100\"\n\
             password = {:?}\nrole = \"supervisor\"\n",
            QueueSetup::default().toml(),
            agent_password("s100"),
        ))
        .start();
    let mic = padded(&speech_b());
    let _phones: Vec<Baresip> = ["1001", "1002", "s100"]
        .iter()
        .map(|id| Baresip::start(&server, id, &mic))
        .collect();
    wait_registrations(&server, 3.0, "two agents and a supervisor");

    let mut browser = spawn_browser(
        &node,
        "e2e_monitor.mjs",
        &art,
        &[
            ("HOTLINE_URL", format!("http://{}", server.http)),
            ("SUP_ID", "s100".into()),
            ("SUP_PW", agent_password("s100")),
            ("SUP2_ID", "s1".into()),
            ("SUP2_PW", "hotline-s1".into()),
            ("AGENT_ID", "1001".into()),
            ("AGENT_PW", agent_password("1001")),
            ("AGENT2_ID", "1002".into()),
            ("AGENT2_PW", agent_password("1002")),
            ("CALLER", CALLER.into()),
        ],
    );
    browser.expect("ready", Duration::from_secs(90));
    // No customer record: straight to the main menu, 2 = installation (1001).
    let customer = Customer::call(&server, CALLER, &["2"]);

    let mon = browser.expect("monitored", Duration::from_secs(120));
    let call_id = mon["call_id"].as_str().expect("call id").to_string();
    let refusal = mon["refusal"].as_str().unwrap_or("");
    assert!(
        refusal.contains("s1 has no registered phone"),
        "s1's wallboard shows the 409: {mon}"
    );
    assert!(
        mon["listen_shown"].as_str().unwrap_or("").contains("监听"),
        "{mon}"
    );
    assert!(
        mon["barge_shown"].as_str().unwrap_or("").contains("强插"),
        "{mon}"
    );
    assert!(
        mon["seen_by_other"].as_str().unwrap_or("").contains("s100"),
        "{mon}"
    );
    assert_eq!(mon["mode_after_stop"], 0, "{mon}");
    assert_eq!(mon["errors"], serde_json::json!([]), "{mon}");
    // What the server did: called s100's phone in, switched, hung it up.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("supervisor joined") && l.contains("mode=\"listen\"")),
        "s100's phone joined to listen\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("monitoring mode changed") && l.contains("mode=\"barge\"")),
        "switched to barge\n{log}"
    );
    assert!(log.contains("monitoring stopped"), "stopped\n{log}");

    let consulted = browser.expect("consulted", Duration::from_secs(120));
    assert_eq!(consulted["call_id"], call_id.as_str(), "{consulted}");
    let note = consulted["note"].as_str().expect("note").to_string();
    assert!(
        consulted["consult_state"]
            .as_str()
            .unwrap_or("")
            .contains("1002"),
        "{consulted}"
    );
    assert!(
        consulted["shown_note"]
            .as_str()
            .unwrap_or("")
            .contains(&note),
        "1002's desk shows the note: {consulted}"
    );
    assert_eq!(consulted["errors"], serde_json::json!([]), "{consulted}");
    assert!(
        server.log().contains("transfer completed"),
        "{}",
        server.log()
    );
    let done = browser.expect("done", Duration::from_secs(30));
    assert_eq!(done["console_errors"], serde_json::json!([]), "{done}");

    customer.hang_up_and_finish();
    // The record as the API gives it, once the call and its legs are written.
    let token = server.login("s100", &agent_password("s100"));
    let fetch = || {
        let (status, body) = http_request(
            server.http,
            "GET",
            &format!("/api/calls/{call_id}"),
            Some(&token),
            None,
        )
        .expect("GET /api/calls/{id}");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("call JSON")
    };
    let legs_of = |v: &Value| -> Vec<(String, String)> {
        v["legs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let f = |k: &str| l[k].as_str().unwrap_or_default().to_string();
                (f("party"), f("role"))
            })
            .collect()
    };
    let call = common::poll(Duration::from_secs(10), || {
        let v = fetch();
        (!v["ended_at"].is_null() && legs_of(&v).len() >= 3).then_some(v)
    })
    .unwrap_or_else(fetch);
    assert_eq!(call["agent_id"], "1002", "{call:#}");
    let chain = &call["transfer_chain"];
    assert_eq!(chain[0]["to"], "agent 1002", "{call:#}");
    assert_eq!(chain[0]["from_agent"], "1001", "{call:#}");
    assert_eq!(chain[0]["note"], note.as_str(), "{call:#}");
    let legs = legs_of(&call);
    for want in [("1001", "offer"), ("s100", "monitor"), ("1002", "consult")] {
        assert!(
            legs.iter().any(|(p, r)| p == want.0 && r == want.1),
            "a {want:?} leg: {call:#}"
        );
    }
}

// ---------------------------------------------------------------------------
// Callback tasks (回访任务) on the agent desk

/// The customer the callback test calls (a number behind the trunk).
const CB_PHONE: &str = "13900001111";
const CB_CUSTOMER: &str = "陈秀英";

/// Two completed orders pushed by the "ERP" (`POST /api/work-orders`, as
/// admin): an installation of 陈秀英's, finished yesterday (its task is the
/// first due), and a repair of another customer's, finished today.
fn import_callback_orders(server: &TestServer) {
    let token = server.login("admin", "hotline-admin");
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("time")
            .to_rfc3339()
    };
    let orders = serde_json::json!([
        {"order_no": "WO-CB-1", "type": "install",
         "customer": {"id": "C-CB-1", "phone": CB_PHONE, "name": CB_CUSTOMER, "address": "苏州市工业园区星湖街 8 号", "region": "华东"},
         "product": "KFR-50LW 柜机空调", "technician": "周师傅", "department": "安装部",
         "completed_at": at(now_ms() - 86_400_000)},
        {"order_no": "WO-CB-2", "type": "repair",
         "customer": {"id": "C-CB-2", "phone": "13900002222", "name": "吴国平", "address": "南京市鼓楼区", "region": "华东"},
         "product": "XQG100 洗衣机", "technician": "郑师傅", "department": "维修部",
         "completed_at": at(now_ms())}
    ]);
    let (status, body) = http_request(
        server.http,
        "POST",
        "/api/work-orders",
        Some(&token),
        Some(&orders.to_string()),
    )
    .expect("POST /api/work-orders");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("import JSON");
    assert_eq!(
        v["tasks_created"], 2,
        "both orders get a callback task: {v}"
    );
}

/// What the panel shows for the task of WO-CB-1.
fn check_task_row(seen: &Value) {
    let rows = seen["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "two open tasks: {seen}");
    let row = rows
        .iter()
        .find(|r| r["task"] == "wo-WO-CB-1")
        .unwrap_or_else(|| panic!("no row for wo-WO-CB-1: {seen}"));
    let cell = |k: &str| row[k].as_str().unwrap_or_default().to_string();
    assert_eq!(cell("customer"), CB_CUSTOMER, "{row}");
    assert_eq!(cell("phone"), CB_PHONE, "{row}");
    assert_eq!(cell("region"), "华东", "{row}");
    for part in ["WO-CB-1", "KFR-50LW 柜机空调", "周师傅"] {
        assert!(cell("order").contains(part), "{part} in {row}");
    }
    assert!(cell("kind").contains("安装"), "{row}");
    assert_eq!(
        (cell("state"), cell("attempts")),
        ("pending".into(), "0".into())
    );
    assert_eq!(row["call_buttons"], 1, "{row}");
    // Soonest due first: the installation finished yesterday.
    assert_eq!(rows[0]["task"], "wo-WO-CB-1", "{seen}");
}

/// The agent's phone in the callback tests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DeskPhone {
    /// baresip, auto-answer, speech as the agent's voice.
    Sip,
    /// The desk's own browser phone (WebRTC), answering by itself, a
    /// [`AGENT_TONE`] tone as the agent's voice.
    Browser,
}

/// The browser agent's voice in the callback test.
const AGENT_TONE: f32 = 1000.0;

/// hotline with agent 1001, the admin and `extra` config; the two orders
/// imported; the desk open in Chromium running `e2e_callback_desk.mjs` with
/// `flow`, past its `tasks_seen` (checked); agent 1001's `phone` registered.
struct CallbackDesk {
    server: TestServer,
    _phone: Option<Baresip>,
    browser: Browser,
    seen: Value,
}

fn callback_desk(
    node: &Path,
    art: &Path,
    flow: &str,
    extra: &str,
    phone: DeskPhone,
) -> CallbackDesk {
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"])])
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&format!(
            "{}\n{USERS}\n{extra}",
            QueueSetup::default().toml()
        ))
        .start();
    let sip_phone = (phone == DeskPhone::Sip).then(|| {
        let p = Baresip::start(&server, "1001", &padded(&speech_b()));
        wait_registrations(&server, 1.0, "agent 1001's phone");
        p
    });
    import_callback_orders(&server);
    let mut vars = vec![
        ("HOTLINE_URL", format!("http://{}", server.http)),
        ("AGENT_ID", "1001".into()),
        ("AGENT_PW", agent_password("1001")),
        ("TASK", "wo-WO-CB-1".into()),
        ("EXPECT_TASKS", "2".into()),
        ("CUSTOMER_NAME", CB_CUSTOMER.into()),
        ("FLOW", flow.into()),
    ];
    if phone == DeskPhone::Browser {
        vars.push(("PHONE", "browser".into()));
        let mic = audio::mic_wav(art, AGENT_TONE);
        vars.push(("MIC_WAV", mic.display().to_string()));
    }
    let mut browser = spawn_browser(node, "e2e_callback_desk.mjs", art, &vars);
    browser.expect("ready", Duration::from_secs(90));
    if phone == DeskPhone::Browser {
        wait_registrations(&server, 1.0, "agent 1001's browser phone");
    }
    let seen = browser.expect("tasks_seen", Duration::from_secs(60));
    check_task_row(&seen);
    CallbackDesk {
        server,
        _phone: sip_phone,
        browser,
        seen,
    }
}

/// The desk lists the callback tasks imported through the API with their/// The desk lists the callback tasks imported through the API with their
/// customer and order; clicking a task's Call button shows the server's JSON
/// error in the row (role=alert). Until `/call` is merged the answer is the
/// router's 404; with it, a 409 (no campaign is configured here).
#[test]
fn desk_lists_callback_tasks_and_shows_a_refused_call() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("callback-tasks");
    // `_phone` bound: the agent's phone lives as long as the test.
    let CallbackDesk {
        server,
        _phone,
        mut browser,
        seen,
    } = callback_desk(&node, &art, "refused", "", DeskPhone::Sip);
    assert!(
        seen["mode"].as_str().unwrap_or("").contains("未启用"),
        "no campaign configured: {seen}"
    );

    let refused = browser.expect("call_refused", Duration::from_secs(60));
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("拨打失败 call failed: ")
            && message.len() > "拨打失败 call failed: ".len(),
        "the server's error in the row: {refused}"
    );
    assert_eq!(
        refused["button_enabled"], true,
        "Call again possible: {refused}"
    );
    assert_eq!(
        refused["survey_form"], 0,
        "no survey without a call: {refused}"
    );
    // Nothing was dialled: the task is untouched.
    let (state, attempts): (String, i64) = with_store(&server, async |store: Store| {
        use sqlx::Row;
        let r = sqlx::query("SELECT state, attempts FROM callback_tasks WHERE id = 'wo-WO-CB-1'")
            .fetch_one(store.pool())
            .await
            .expect("task row");
        (r.get(0), r.get(1))
    });
    assert_eq!((state.as_str(), attempts), ("pending", 0));

    let done = browser.expect("done", Duration::from_secs(30));
    assert_eq!(done["console_errors"], serde_json::json!([]), "{done}");
    assert!(
        done["screenshots"].as_array().map_or(0, Vec::len) >= 2,
        "{done}"
    );
}

/// Preview dialing end to end: agent 1001 (baresip, auto-answer) clicks
/// Call on the desk; hotline rings 1001's phone, then dials the customer
/// through the trunk (pjsua2 plays the carrier and the customer, who answers
/// and stays a while); the desk shows each step, pops the customer, and the
/// agent submits the survey (不太满意 → a case for the department); the
/// database has the survey, the attempt and the case.
#[test]
fn desk_preview_dials_a_callback_task_and_records_the_survey() {
    preview_dial(DeskPhone::Sip, "callback-preview");
}

/// The same with an agent who only has a browser: hotline rings the desk's
/// browser phone (WebRTC) first, then the customer; the survey is taken the
/// same way, and the call's recording has the browser agent's voice on the
/// agent's channel.
#[test]
fn browser_agent_preview_dials_a_callback_task() {
    let art = "callback-preview-browser";
    let (server, call_id, connected, settled) = preview_dial(DeskPhone::Browser, art);
    assert!(
        connected["phone_seen"]
            .as_str()
            .unwrap_or("")
            .contains("incall"),
        "the desk's browser phone took the call: {connected}"
    );
    assert!(
        settled["phone_seen"]
            .as_str()
            .unwrap_or("")
            .contains("ended"),
        "the browser phone's call ended with the customer's: {settled}"
    );
    let recording = with_store(&server, async |store: Store| {
        store
            .get_call(&call_id)
            .await
            .expect("call row")
            .and_then(|c| c.recording)
    })
    .expect("the callback call is recorded");
    // Seconds of the agent's tone in one channel of a WAV.
    let agent_in = |wav: &Path, channel: usize| {
        let (spec, samples) = audio::wav_channel(wav, channel);
        audio::seconds_of(&audio::tone_frames(&samples, spec.sample_rate, AGENT_TONE))
    };
    let agent_secs = agent_in(Path::new(&recording), 1);
    assert!(
        agent_secs >= 3.0,
        "the browser agent's voice is on the recording's agent channel: {agent_secs:.1} s in {recording}"
    );
    // What the customer's phone heard.
    let heard = Path::new(REPO)
        .join("target/web-artifacts")
        .join(art)
        .join(format!("{CB_PHONE}-1.wav"));
    let heard_secs = agent_in(&heard, 0);
    assert!(
        heard_secs >= 3.0,
        "the customer heard the browser agent for {heard_secs:.1} s ({})",
        heard.display()
    );
}

/// Preview dialing with agent 1001 on `phone`: the checks both kinds of
/// phone share. Returns the server, the call's id and the desk's
/// `connected` and `settled` lines.
fn preview_dial(phone: DeskPhone, artifacts_name: &str) -> (TestServer, String, Value, Value) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts(artifacts_name);
    let trunk = free_port();
    // The carrier and the customer behind it: answers, presses keys for
    // ~12 s (the agent talks), then hangs up.
    let plan = serde_json::json!({ CB_PHONE: ["answer:11111111"] });
    let (_customers, mut customer_lines) = common::spawn_python(
        "pjsua2_customers.py",
        &[
            "--port".into(),
            trunk.to_string(),
            "--plan".into(),
            plan.to_string(),
            "--limit".into(),
            "240".into(),
            "--record-dir".into(),
            art.display().to_string(),
        ],
        &art.join("pjsua2.stderr.log"),
    );
    assert!(
        customer_lines
            .wait_for(Duration::from_secs(15), |l| l.contains("\"started\""))
            .is_some(),
        "pjsua2 customers did not start:\n{}",
        customer_lines.dump()
    );
    let campaign = format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:{trunk}\"\n\
         max_calls = 2\ncalls_per_second = 5\ncaller_id = \"4008008000\"\n\n\
         [campaign]\nmode = \"preview\"\ntrunk = \"carrier\"\n\
         dialplan = \"{REPO}/dialplans/survey.toml\"\ncalling_hours = \"00:00-24:00\"\n\
         ring_timeout_secs = 30\npoll_ms = 200\n"
    );
    // `_phone` bound: the agent's phone lives as long as the test.
    let CallbackDesk {
        server,
        _phone,
        mut browser,
        seen,
    } = callback_desk(&node, &art, "full", &campaign, phone);
    assert!(
        seen["mode"].as_str().unwrap_or("").contains("preview"),
        "{seen}"
    );
    browser.expect("calling_agent", Duration::from_secs(30));
    browser.expect("dialling_customer", Duration::from_secs(60));
    assert!(
        customer_lines
            .wait_for(Duration::from_secs(30), |l| l.contains("\"incoming\"")
                && l.contains(CB_PHONE))
            .is_some(),
        "the trunk got the customer's INVITE:\n{}",
        customer_lines.dump()
    );
    let connected = browser.expect("connected", Duration::from_secs(60));
    let call_id = connected["call_id"].as_str().expect("call id").to_string();
    assert!(
        connected["pop_customer"]
            .as_str()
            .unwrap_or("")
            .contains("C-CB-1"),
        "{connected}"
    );
    let saved = browser.expect("survey_saved", Duration::from_secs(60));
    let message = saved["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("已转部门经理"),
        "不太满意 opens a case: {saved}"
    );
    let settled = browser.expect("settled", Duration::from_secs(90));
    assert!(
        settled["status"]
            .as_str()
            .unwrap_or("")
            .contains("answered"),
        "{settled}"
    );
    let done = browser.expect("done", Duration::from_secs(30));
    assert_eq!(done["console_errors"], serde_json::json!([]), "{done}");

    // The database: the survey of this call, the attempt, the case.
    type Answers = (i64, i64, i64, i64, String);
    let (survey, outcome, case_source): (Option<Answers>, Option<String>, Option<String>) =
        with_store(&server, async |store: Store| {
            use sqlx::Row;
            let survey = sqlx::query(
                "SELECT attitude, cleaned, fees_ok, satisfaction, remarks FROM surveys WHERE call_id = $1",
            )
            .bind(&call_id)
            .fetch_optional(store.pool())
            .await
            .expect("survey")
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)));
            let outcome = sqlx::query(
            "SELECT outcome FROM callback_attempts WHERE task_id = 'wo-WO-CB-1' AND call_id = $1",
        )
        .bind(&call_id)
        .fetch_optional(store.pool())
        .await
        .expect("attempt")
        .and_then(|r| r.get(0));
            let case = sqlx::query("SELECT source_call FROM cases WHERE kind = 'dissatisfied'")
                .fetch_optional(store.pool())
                .await
                .expect("case")
                .and_then(|r| r.get(0));
            (survey, outcome, case)
        });
    let (attitude, cleaned, fees_ok, satisfaction, remarks) =
        survey.expect("the survey of the call is stored");
    // Stored 5 best: 满意 → 5, 是 → 1, 不属实 → 0, 不太满意 → 2.
    assert_eq!((attitude, cleaned, fees_ok, satisfaction), (5, 1, 0, 2));
    assert_eq!(remarks, saved["remarks"].as_str().unwrap_or("?"));
    assert_eq!(outcome.as_deref(), Some("answered"));
    assert_eq!(case_source.as_deref(), Some(call_id.as_str()));
    (server, call_id, connected, settled)
}
