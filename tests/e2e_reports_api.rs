//! The reports endpoints and `POST /api/cases` over HTTP on a running
//! server: who may call them, what bad parameters answer, the CSV form,
//! and the numbers of seeded rows.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::TestServer;
use hotline::store::{CallArrival, CallCompletion, Customer, Direction, Store};
use serde_json::{json, Value};

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

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close` (axum answers these
/// report bodies with Content-Length, never chunked).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.map(|b| b.to_string());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = &body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send");
    if let Some(b) = &body {
        s.write_all(b.as_bytes()).expect("send body");
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn login(s: &TestServer, id: &str, pw: &str) -> String {
    let r = request(
        s.http,
        "POST",
        "/api/login",
        None,
        Some(&json!({"id": id, "password": pw})),
    );
    assert_eq!(r.status, 200, "login {id}: {}", r.text());
    r.json()["token"].as_str().expect("token").to_string()
}

fn seed(s: &TestServer) {
    let url = format!("sqlite://{}", s.db_path().display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            let store = Store::connect(&url).await.expect("db");
            // 2025-06-10 10:00 Asia/Shanghai = 02:00 UTC.
            let t = 1_749_520_800_000;
            store
                .upsert_customer(
                    &Customer {
                        id: "C1".into(),
                        name: "张三".into(),
                        address: String::new(),
                        region: "华南".into(),
                        do_not_call: false,
                        phone_status: "ok".into(),
                        created_at: t,
                        updated_at: t,
                    },
                    &["13900000001"],
                )
                .await
                .expect("customer");
            for (id, agent, wait) in [("a", Some("1001"), 4_000), ("b", None, 50_000)] {
                store
                    .insert_call_arrival(&CallArrival {
                        id: id.into(),
                        direction: Direction::In,
                        from_number: "13900000001".into(),
                        to_number: "8000".into(),
                        customer_id: Some("C1".into()),
                        work_order: None,
                        task_id: None,
                        queue: Some("repair".into()),
                        arrived_at: t,
                    })
                    .await
                    .expect("arrival");
                store
                    .complete_call(&CallCompletion {
                        id: id.into(),
                        customer_id: None,
                        work_order: None,
                        queue: None,
                        agent_id: agent.map(Into::into),
                        answered_at: Some(t + 1_000),
                        ended_at: t + 100_000,
                        wait_ms: wait,
                        talk_ms: if agent.is_some() { 90_000 } else { 0 },
                        hold_ms: 0,
                        ivr_path: vec![],
                        hangup_cause: "200 BYE".into(),
                        hangup_side: "caller".into(),
                        disposition: String::new(),
                        notes: String::new(),
                        recording: None,
                        transfer_chain: vec![],
                    })
                    .await
                    .expect("completion");
            }
            store.close().await;
        });
}

const REPORTS: [&str; 5] = [
    "/api/reports/daily",
    "/api/reports/weekly",
    "/api/reports/monthly",
    "/api/reports/inbound",
    "/api/reports/complaints",
];

#[test]
fn reports_roles_parameters_csv_and_numbers() {
    let s = TestServer::builder().extra_toml(USERS).start();
    seed(&s);
    let agent = login(&s, "1001", &common::password_of("1001"));
    let sup = login(&s, "s1", "hotline-s1");
    let admin = login(&s, "admin", "hotline-admin");

    for path in REPORTS {
        let r = request(s.http, "GET", path, None, None);
        assert_eq!(r.status, 401, "{path} without a token");
        let r = request(s.http, "GET", path, Some(&agent), None);
        assert_eq!(r.status, 403, "{path} as an agent: {}", r.text());
        assert_eq!(r.json()["code"], "forbidden");
        for token in [&sup, &admin] {
            let r = request(s.http, "GET", path, Some(token), None);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            assert!(r
                .header("content-type")
                .unwrap_or("")
                .starts_with("application/json"));
        }
        let r = request(
            s.http,
            "GET",
            &format!("{path}?format=xml"),
            Some(&sup),
            None,
        );
        assert_eq!(r.status, 400, "{path} format=xml");
    }

    for bad in [
        "/api/reports/daily?date=2025-02-30",
        "/api/reports/daily?date=yesterday",
        "/api/reports/weekly?week=2025-W54",
        "/api/reports/weekly?week=2025-24",
        "/api/reports/monthly?month=2025-13",
        "/api/reports/inbound?sl=0",
        "/api/reports/inbound?sl=abc",
        "/api/reports/inbound?from=2025-06-10&to=2025-06-01",
        "/api/reports/inbound?from=2020-01-01&to=2025-01-01",
        "/api/reports/complaints?from=nonsense",
    ] {
        let r = request(s.http, "GET", bad, Some(&sup), None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        let j = r.json();
        assert_eq!(j["code"], "bad_request", "{bad}");
        assert!(!j["error"].as_str().unwrap_or("").is_empty(), "{bad}");
    }

    // Inbound numbers of the seeded day, JSON and CSV.
    let day = "/api/reports/inbound?from=2025-06-10&to=2025-06-10";
    let j = request(s.http, "GET", day, Some(&sup), None).json();
    assert_eq!(j["sl_secs"], 20);
    let q = &j["queues"][0];
    assert_eq!(q["name"], "repair");
    assert_eq!(
        (
            q["offered"].as_i64(),
            q["answered"].as_i64(),
            q["abandoned"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(q["service_level"], 0.5);
    assert_eq!(q["abandon_rate"], 0.5);
    assert_eq!(q["avg_wait_ms"], 4_000);
    assert_eq!(q["avg_talk_ms"], 90_000);
    assert_eq!(j["agents"][0]["name"], "1001");
    let r = request(
        s.http,
        "GET",
        &format!("{day}&format=csv"),
        Some(&sup),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"inbound.csv\"")
    );
    let csv = r.text();
    assert!(
        csv.starts_with("\u{feff}scope,name,offered,answered,abandoned"),
        "{csv}"
    );
    assert!(
        csv.contains("\r\nqueue,repair,2,1,1,1,50.0,50.0,4.0,90.0\r\n"),
        "{csv}"
    );
    // A stricter service level.
    let j = request(s.http, "GET", &format!("{day}&sl=3"), Some(&sup), None).json();
    assert_eq!(j["queues"][0]["answered_within_sl"], 0);

    let r = request(
        s.http,
        "GET",
        "/api/reports/daily?date=2025-06-10&format=csv",
        Some(&admin),
        None,
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"daily-2025-06-10.csv\"")
    );
    assert!(r.text().contains("回访员 agent"), "{}", r.text());
    let j = request(
        s.http,
        "GET",
        "/api/reports/weekly?week=2025-W24",
        Some(&sup),
        None,
    )
    .json();
    assert_eq!(j["week"], "2025-W24");
    assert_eq!(j["levels"][0], "非常满意");
    let j = request(
        s.http,
        "GET",
        "/api/reports/monthly?month=2025-06",
        Some(&sup),
        None,
    )
    .json();
    assert_eq!(j["month"], "2025-06");
    assert!(j["worst_regions"].is_array());

    // Complaints registered from the desk.
    let case = json!({"customer_id": "C1", "description": "维修后仍漏水", "department": "维修部"});
    let r = request(s.http, "POST", "/api/cases", Some(&agent), Some(&case));
    assert_eq!(r.status, 201, "{}", r.text());
    let c = r.json();
    assert_eq!(c["owner"], "1001");
    assert_eq!(c["kind"], "complaint");
    assert_eq!(c["state"], "open");
    let days = (c["deadline"].as_i64().unwrap_or(0) - c["created_at"].as_i64().unwrap_or(0)) as f64
        / 86_400_000.0;
    assert!((5.0..=7.0).contains(&days), "{days}");
    for (token, body, status) in [
        (
            &agent,
            json!({"customer_id": "nobody", "description": "x"}),
            404,
        ),
        (
            &agent,
            json!({"customer_id": "C1", "description": "  "}),
            422,
        ),
        (
            &agent,
            json!({"customer_id": "C1", "description": "x", "owner": "1002"}),
            403,
        ),
        (&agent, json!({"customer_id": "C1"}), 400),
        (
            &agent,
            json!({"customer_id": "C1", "description": "x", "extra": 1}),
            400,
        ),
        (
            &admin,
            json!({"customer_id": "C1", "description": "x"}),
            403,
        ),
    ] {
        let r = request(s.http, "POST", "/api/cases", Some(token), Some(&body));
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    let r = request(
        s.http,
        "POST",
        "/api/cases",
        Some(&sup),
        Some(&json!({"customer_id": "C1", "description": "转交处理", "owner": "1002"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["owner"], "1002");
    let j = request(s.http, "GET", "/api/reports/complaints", Some(&sup), None).json();
    assert_eq!(j["on_time"], 2, "{j}");
    assert_eq!(j["overdue"], 0, "{j}");
    // The customer record shows both open complaints to the agent.
    let r = request(s.http, "GET", "/api/customers/C1", Some(&agent), None);
    assert_eq!(r.json()["open_cases"].as_array().map(Vec::len), Some(2));
}
