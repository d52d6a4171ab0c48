//! End-to-end tests of the HTTP API: a real `hotline serve` on loopback,
//! driven with a tiny HTTP/1.1 client and a hand-written WebSocket client
//! (std::net only). Records the API reads (calls, cases, callback requests)
//! are seeded through the library's `Store` on the server's SQLite file.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

use hotline::store::{
    CallArrival, CallCompletion, CallbackRequest, Case, CaseKind, Customer, Direction, Store,
};

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

fn start() -> TestServer {
    TestServer::builder().extra_toml(USERS).start()
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 client

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Assert an error reply: status, JSON `code`, non-empty `error`.
    fn expect_error(&self, status: u16, code: &str) -> String {
        let v = self.json();
        assert_eq!(self.status, status, "{v}");
        assert_eq!(v["code"], code, "{v}");
        let msg = v["error"].as_str().unwrap_or_default().to_string();
        assert!(!msg.is_empty(), "{v}");
        msg
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra_headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap_or(0);
            if size == 0 || rest.len() < nl + 2 + size {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[(nl + 4 + size).min(rest.len())..];
        }
        body = out;
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn get(s: &TestServer, path: &str, token: &str) -> Reply {
    request(s.http, "GET", path, Some(token), &[], None)
}

fn post(s: &TestServer, path: &str, token: &str, body: &Value) -> Reply {
    let b = body.to_string();
    request(s.http, "POST", path, Some(token), &[], Some(b.as_bytes()))
}

fn login(s: &TestServer, id: &str, password: &str) -> String {
    let body = json!({"id": id, "password": password}).to_string();
    let r = request(
        s.http,
        "POST",
        "/api/login",
        None,
        &[],
        Some(body.as_bytes()),
    );
    let v = r.json();
    assert_eq!(r.status, 200, "login {id}: {v}");
    v["token"].as_str().expect("token").to_string()
}

// ---------------------------------------------------------------------------
// Seeding the server's database

fn with_store<T>(s: &TestServer, f: impl AsyncFnOnce(Store) -> T) -> T {
    let url = format!("sqlite://{}", s.dir().join("h.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::connect(&url)
            .await
            .expect("open the server's database");
        let out = f(store.clone()).await;
        store.close().await;
        out
    })
}

async fn seed_call(
    store: &Store,
    id: &str,
    agent: &str,
    customer: Option<&str>,
    arrived_at: i64,
    ended: bool,
    recording: Option<&str>,
) {
    store
        .insert_call_arrival(&CallArrival {
            id: id.into(),
            direction: Direction::In,
            from_number: "13800001111".into(),
            to_number: "8000".into(),
            customer_id: customer.map(str::to_string),
            work_order: None,
            task_id: None,
            queue: Some("service".into()),
            arrived_at,
        })
        .await
        .unwrap();
    if ended {
        store
            .complete_call(&CallCompletion {
                id: id.into(),
                customer_id: None,
                work_order: None,
                queue: None,
                agent_id: Some(agent.into()),
                answered_at: Some(arrived_at + 5_000),
                ended_at: arrived_at + 65_000,
                wait_ms: 5_000,
                talk_ms: 60_000,
                hold_ms: 0,
                ivr_path: vec!["main".into(), "1".into()],
                hangup_cause: "200 BYE".into(),
                hangup_side: "caller".into(),
                disposition: String::new(),
                notes: String::new(),
                recording: recording.map(str::to_string),
                transfer_chain: vec![],
            })
            .await
            .unwrap();
    } else {
        // A live call already connected to its agent.
        sqlx::query("UPDATE calls SET agent_id = $2 WHERE id = $1")
            .bind(id)
            .bind(agent)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

fn write_wav(path: &std::path::Path, seconds: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 * seconds {
        w.write_sample(((i as f32 * 0.1).sin() * 8000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    std::fs::read(path).unwrap()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn login_logout_and_me() {
    let s = start();
    let body = |v: Value| v.to_string().into_bytes();
    let r = request(
        s.http,
        "POST",
        "/api/login",
        None,
        &[],
        Some(&body(json!({"id": "1001", "password": "hotline1001"}))),
    );
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["role"], "agent");
    assert_eq!(v["id"], "1001");
    assert_eq!(v["name"], "Agent 1001");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    for (id, pw, role) in [
        ("s1", "hotline-s1", "supervisor"),
        ("admin", "hotline-admin", "admin"),
    ] {
        let r = request(
            s.http,
            "POST",
            "/api/login",
            None,
            &[],
            Some(&body(json!({"id": id, "password": pw}))),
        );
        assert_eq!(r.json()["role"], role);
    }

    // Wrong password, unknown user, empty password: the same 401.
    for (id, pw) in [("1001", "wrong"), ("nobody", "hotline1001"), ("1001", "")] {
        let r = request(
            s.http,
            "POST",
            "/api/login",
            None,
            &[],
            Some(&body(json!({"id": id, "password": pw}))),
        );
        r.expect_error(401, "unauthorized");
    }
    // Bad input: 400 that says what is wrong.
    let r = request(
        s.http,
        "POST",
        "/api/login",
        None,
        &[],
        Some(b"{\"id\": \"1001\""),
    );
    let msg = r.expect_error(400, "bad_request");
    assert!(msg.contains("JSON"), "{msg}");
    let r = request(
        s.http,
        "POST",
        "/api/login",
        None,
        &[],
        Some(&body(json!({"id": "1001"}))),
    );
    let msg = r.expect_error(400, "bad_request");
    assert!(msg.contains("password"), "{msg}");
    let r = request(
        s.http,
        "POST",
        "/api/login",
        None,
        &[],
        Some(&body(json!({"id": 1001, "password": "x"}))),
    );
    r.expect_error(400, "bad_request");
    let r = request(s.http, "POST", "/api/login", None, &[], None);
    r.expect_error(400, "bad_request");

    // /api/me with the token; without or with a bad one, 401.
    let me = get(&s, "/api/me", &token);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], "1001");
    assert_eq!(me.json()["role"], "agent");
    request(s.http, "GET", "/api/me", None, &[], None).expect_error(401, "unauthorized");
    get(&s, "/api/me", &"0".repeat(64)).expect_error(401, "unauthorized");
    request(
        s.http,
        "GET",
        "/api/me",
        None,
        &[("Authorization", "Basic abc")],
        None,
    )
    .expect_error(401, "unauthorized");

    // Logout: the token stops working.
    let r = request(s.http, "POST", "/api/logout", Some(&token), &[], None);
    assert_eq!(r.status, 204);
    get(&s, "/api/me", &token).expect_error(401, "unauthorized");
    request(s.http, "POST", "/api/logout", Some(&token), &[], None)
        .expect_error(401, "unauthorized");

    // Unknown paths and methods are JSON errors too.
    request(s.http, "GET", "/api/nope", None, &[], None).expect_error(404, "not_found");
    request(s.http, "DELETE", "/api/login", None, &[], None)
        .expect_error(405, "method_not_allowed");
}

#[test]
fn calls_recordings_and_dispositions_by_role() {
    let s = start();
    let rec_dir = s.dir().join("recordings");
    let wav_1001 = write_wav(&rec_dir.join("c-1001.wav"), 1);
    std::fs::create_dir_all(rec_dir.join("2025")).unwrap();
    write_wav(&rec_dir.join("2025/c-1002.wav"), 1);
    with_store(&s, async |store| {
        seed_call(
            &store,
            "c-1001",
            "1001",
            None,
            1_000_000,
            true,
            Some("c-1001.wav"),
        )
        .await;
        seed_call(
            &store,
            "c-1002",
            "1002",
            None,
            2_000_000,
            true,
            Some("2025/c-1002.wav"),
        )
        .await;
        seed_call(&store, "c-live", "1001", None, 3_000_000, false, None).await;
        seed_call(&store, "c-norec", "1001", None, 4_000_000, true, None).await;
        seed_call(
            &store,
            "c-gone",
            "1001",
            None,
            5_000_000,
            true,
            Some("missing.wav"),
        )
        .await;
        store
            .insert_callback_request(&CallbackRequest {
                id: "cb-1".into(),
                customer_id: None,
                phone: "13800002222".into(),
                due_at: 9_000_000,
                source_call: "c-1002".into(),
                created_at: 2_000_000,
            })
            .await
            .unwrap();
    });
    let agent = login(&s, "1001", "hotline1001");
    let other = login(&s, "1002", "hotline1002");
    let sup = login(&s, "s1", "hotline-s1");
    let admin = login(&s, "admin", "hotline-admin");
    let ids = |r: Reply| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };

    // An agent lists only their own calls, newest first.
    assert_eq!(
        ids(get(&s, "/api/calls", &agent)),
        ["c-gone", "c-norec", "c-live", "c-1001"]
    );
    assert_eq!(
        ids(get(&s, "/api/calls?agent=1001&limit=2", &agent)),
        ["c-gone", "c-norec"]
    );
    get(&s, "/api/calls?agent=1002", &agent).expect_error(403, "forbidden");
    // A supervisor sees all and filters.
    assert_eq!(
        get(&s, "/api/calls", &sup).json().as_array().unwrap().len(),
        5
    );
    assert_eq!(ids(get(&s, "/api/calls?agent=1002", &sup)), ["c-1002"]);
    assert_eq!(
        ids(get(&s, "/api/calls?since=2000000&until=4000000", &sup)),
        ["c-live", "c-1002"]
    );
    assert_eq!(
        ids(get(
            &s,
            "/api/calls?since=1970-01-01T00:33:20Z&until=1970-01-01T01:06:40%2B00:00",
            &sup
        )),
        ["c-live", "c-1002"]
    );
    let msg = get(&s, "/api/calls?since=yesterday", &sup).expect_error(400, "bad_request");
    assert!(msg.contains("since"), "{msg}");
    get(&s, "/api/calls?limit=0", &sup).expect_error(400, "bad_request");
    get(&s, "/api/calls?limit=many", &sup).expect_error(400, "bad_request");
    // Admin is configuration only.
    get(&s, "/api/calls", &admin).expect_error(403, "forbidden");

    // One call.
    let c = get(&s, "/api/calls/c-1001", &agent);
    assert_eq!(c.status, 200);
    assert_eq!(c.json()["agent_id"], "1001");
    assert_eq!(c.json()["talk_ms"], 60_000);
    get(&s, "/api/calls/c-1002", &agent).expect_error(403, "forbidden");
    assert_eq!(get(&s, "/api/calls/c-1002", &sup).status, 200);
    get(&s, "/api/calls/nope", &sup).expect_error(404, "not_found");

    // Recordings.
    let r = get(&s, "/api/calls/c-1001/recording", &agent);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.body, wav_1001);
    get(&s, "/api/calls/c-1002/recording", &agent).expect_error(403, "forbidden");
    let r = get(&s, "/api/calls/c-1002/recording", &sup);
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..4], b"RIFF");
    let r = request(
        s.http,
        "GET",
        "/api/calls/c-1002/recording",
        Some(&sup),
        &[("Range", "bytes=0-43")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 44);
    get(&s, "/api/calls/c-1001/recording", &other).expect_error(403, "forbidden");
    get(&s, "/api/calls/c-norec/recording", &agent).expect_error(404, "not_found");
    get(&s, "/api/calls/c-gone/recording", &agent).expect_error(404, "not_found");
    get(&s, "/api/calls/nope/recording", &sup).expect_error(404, "not_found");
    get(&s, "/api/calls/c-1001/recording", &admin).expect_error(403, "forbidden");

    // Dispositions: the call's agent or a supervisor, after the call.
    let r = post(
        &s,
        "/api/calls/c-1001/disposition",
        &agent,
        &json!({"disposition": "solved", "notes": "已告知保修期"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["disposition"], "solved");
    assert_eq!(
        get(&s, "/api/calls/c-1001", &sup).json()["notes"],
        "已告知保修期"
    );
    post(
        &s,
        "/api/calls/c-1002/disposition",
        &agent,
        &json!({"disposition": "x"}),
    )
    .expect_error(403, "forbidden");
    let r = post(
        &s,
        "/api/calls/c-1002/disposition",
        &sup,
        &json!({"disposition": "escalated"}),
    );
    assert_eq!(r.status, 200);
    post(
        &s,
        "/api/calls/c-live/disposition",
        &agent,
        &json!({"disposition": "x"}),
    )
    .expect_error(409, "conflict");
    post(
        &s,
        "/api/calls/c-1001/disposition",
        &agent,
        &json!({"disposition": "  "}),
    )
    .expect_error(422, "invalid");
    post(
        &s,
        "/api/calls/c-1001/disposition",
        &agent,
        &json!({"outcome": "x"}),
    )
    .expect_error(400, "bad_request");
    post(
        &s,
        "/api/calls/nope/disposition",
        &sup,
        &json!({"disposition": "x"}),
    )
    .expect_error(404, "not_found");
    post(
        &s,
        "/api/calls/c-1001/disposition",
        &admin,
        &json!({"disposition": "x"}),
    )
    .expect_error(403, "forbidden");

    // Callback requests: supervisor only.
    let r = get(&s, "/api/callback-requests?state=pending", &sup);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["phone"], "13800002222");
    assert_eq!(v[0]["state"], "pending");
    assert_eq!(
        get(&s, "/api/callback-requests?state=done", &sup).json(),
        json!([])
    );
    get(&s, "/api/callback-requests?state=bogus", &sup).expect_error(400, "bad_request");
    get(&s, "/api/callback-requests", &agent).expect_error(403, "forbidden");
    get(&s, "/api/callback-requests", &admin).expect_error(403, "forbidden");
}

#[test]
fn customers_and_work_order_import() {
    let s = start();
    let agent = login(&s, "1001", "hotline1001");
    let sup = login(&s, "s1", "hotline-s1");
    let admin = login(&s, "admin", "hotline-admin");

    // Customer upsert: admin only; 201 then 200.
    let c = json!({"id": "C100", "name": "刘女士", "address": "杭州市西湖区", "region": "华东", "phones": ["+86 138 0000 1111", "0571-8888 6666"]});
    let r = post(&s, "/api/customers", &admin, &c);
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["phones"].as_array().unwrap().len(), 2);
    let r = post(&s, "/api/customers", &admin, &c);
    assert_eq!(r.status, 200);
    post(&s, "/api/customers", &agent, &c).expect_error(403, "forbidden");
    post(&s, "/api/customers", &sup, &c).expect_error(403, "forbidden");
    post(
        &s,
        "/api/customers",
        &admin,
        &json!({"id": "C101", "name": ""}),
    )
    .expect_error(422, "invalid");
    post(
        &s,
        "/api/customers",
        &admin,
        &json!({"id": "C101", "name": "x", "phones": ["abc"]}),
    )
    .expect_error(422, "invalid");
    post(
        &s,
        "/api/customers",
        &admin,
        &json!({"id": "C101", "name": "x", "phone_status": "great"}),
    )
    .expect_error(422, "invalid");
    let msg = post(
        &s,
        "/api/customers",
        &admin,
        &json!({"id": "C101", "name": "x", "phone": "1"}),
    )
    .expect_error(400, "bad_request");
    assert!(msg.contains("phone"), "{msg}");

    // Lookup by phone in any written form.
    let r = get(&s, "/api/customers?phone=13800001111", &agent);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["customer"]["id"], "C100");
    let r = get(&s, "/api/customers?phone=%2B86%20571%208888%206666", &sup);
    assert_eq!(r.json()["customer"]["id"], "C100");
    get(&s, "/api/customers?phone=13900000000", &agent).expect_error(404, "not_found");
    get(&s, "/api/customers", &agent).expect_error(400, "bad_request");
    get(&s, "/api/customers?phone=13800001111", &admin).expect_error(403, "forbidden");

    // Work orders: a batch with one bad item.
    let batch = json!([
        {"order_no": "WO-1", "type": "install", "customer": {"id": "C100"}, "product": "KFR-35GW",
         "technician": "赵师傅", "department": "安装部", "completed_at": "2025-06-01T14:30:00+08:00", "fees": "120.50"},
        {"order_no": "WO-2", "type": "repair", "customer": {"phone": "139 1234 5678", "name": "陈先生", "address": "宁波", "region": "华东"},
         "product": "BCD-256", "completed_at": "2025-06-02T10:00:00+08:00", "fees": 80},
        {"order_no": "WO-3", "type": "upgrade", "customer": {"id": "C100"}},
        {"order_no": "WO-4", "type": "repair", "customer": {"id": "C100"}, "completed_at": "2025-06-03T09:00:00+08:00"},
        {"order_no": "WO-5", "type": "repair", "customer": {"id": "C100"}, "fees": "12.345"},
        {"order_no": "WO-6", "type": "repair", "customer": {"id": "ghost"}},
        "not an object"
    ]);
    let r = post(&s, "/api/work-orders", &admin, &batch);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        (
            v["created"].as_u64(),
            v["updated"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(3), Some(0), Some(4)),
        "{v}"
    );
    let errs = v["errors"].as_array().unwrap();
    let idx: Vec<u64> = errs.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [2, 4, 5, 6], "{v}");
    assert_eq!(errs[0]["order_no"], "WO-3");
    assert!(errs[0]["error"].as_str().unwrap().contains("type"), "{v}");
    assert!(errs[1]["error"].as_str().unwrap().contains("fees"), "{v}");
    assert!(errs[2]["error"].as_str().unwrap().contains("ghost"), "{v}");

    // Re-import: the same orders are updated, nothing new.
    let r = post(&s, "/api/work-orders", &admin, &batch);
    let v = r.json();
    assert_eq!(
        (
            v["created"].as_u64(),
            v["updated"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(0), Some(3), Some(4)),
        "{v}"
    );
    // One object works too.
    let r = post(
        &s,
        "/api/work-orders",
        &admin,
        &json!({"order_no": "WO-1", "type": "install", "customer": {"id": "C100"}, "fees": 150}),
    );
    assert_eq!(r.json()["updated"], 1);
    post(&s, "/api/work-orders", &agent, &batch).expect_error(403, "forbidden");
    post(&s, "/api/work-orders", &sup, &batch).expect_error(403, "forbidden");
    post(&s, "/api/work-orders", &admin, &json!(42)).expect_error(400, "bad_request");
    let r = request(
        s.http,
        "POST",
        "/api/work-orders",
        Some(&admin),
        &[],
        Some(b"[{\"order_no\": "),
    );
    r.expect_error(400, "bad_request");

    // The customer record: phones, orders (open first, then newest), calls, open cases.
    with_store(&s, async |store| {
        seed_call(
            &store,
            "c-rec",
            "1001",
            Some("C100"),
            1_700_000_000_000,
            true,
            None,
        )
        .await;
        for (id, closed) in [("case-open", None), ("case-closed", Some(2))] {
            store
                .insert_case(&Case {
                    id: id.into(),
                    customer_id: "C100".into(),
                    kind: CaseKind::Complaint,
                    department: "安装部".into(),
                    deadline: 5,
                    state: "open".into(),
                    owner: Some("1001".into()),
                    description: "噪音大".into(),
                    created_at: 1,
                    closed_at: closed,
                })
                .await
                .unwrap();
        }
        let _: Option<Customer> = store.get_customer("C100").await.unwrap();
    });
    let r = get(&s, "/api/customers/C100", &agent);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["customer"]["name"], "刘女士");
    assert_eq!(v["customer"]["region"], "华东");
    let phones: Vec<&str> = v["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["13800001111", "57188886666"]);
    let orders: Vec<&str> = v["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_no"].as_str().unwrap())
        .collect();
    assert_eq!(orders, ["WO-1", "WO-4"], "{v}");
    assert_eq!(v["work_orders"][0]["completed_at"], Value::Null);
    assert_eq!(v["work_orders"][0]["fees_cents"], 15000);
    assert_eq!(v["work_orders"][1]["region"], "华东");
    assert_eq!(v["calls"].as_array().unwrap().len(), 1);
    assert_eq!(v["calls"][0]["id"], "c-rec");
    let cases: Vec<&str> = v["open_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["case-open"]);
    assert_eq!(get(&s, "/api/customers/C100", &sup).status, 200);
    get(&s, "/api/customers/C100", &admin).expect_error(403, "forbidden");
    get(&s, "/api/customers/nobody", &agent).expect_error(404, "not_found");

    // The phone-only customer was created with a stable id and found again on re-import.
    let r = get(&s, "/api/customers?phone=13912345678", &agent);
    let v = r.json();
    assert_eq!(v["customer"]["id"], "tel-13912345678", "{v}");
    assert_eq!(v["work_orders"][0]["order_no"], "WO-2");
    assert_eq!(v["work_orders"][0]["fees_cents"], 8000);
}

/// One string out of each item of a JSON array.
fn strings<'a>(list: &'a Value, pick: impl Fn(&'a Value) -> &'a Value) -> Vec<&'a str> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            pick(x)
                .as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
        })
        .collect()
}

/// `GET /api/callback-tasks`: auth, validation, and the tasks planned by
/// `POST /api/work-orders` with their customer and order, plus the survey's
/// questions.
#[test]
fn callback_tasks_for_the_desk() {
    let s = start();
    let path = "/api/callback-tasks";
    request(s.http, "GET", path, None, &[], None).expect_error(401, "unauthorized");
    let agent = login(&s, "1001", "hotline1001");
    let sup = login(&s, "s1", "hotline-s1");
    let admin = login(&s, "admin", "hotline-admin");
    for bad in [
        "?state=pending",
        "?state=",
        "?limit=0",
        "?limit=501",
        "?limit=ten",
        "?state=open&limit=-1",
    ] {
        let msg = get(&s, &format!("{path}{bad}"), &agent).expect_error(400, "bad_request");
        assert!(
            msg.contains("state") || msg.contains("limit"),
            "{bad}: {msg}"
        );
    }

    // Nothing yet; no campaign configured: mode null; the four questions.
    let r = get(&s, path, &agent);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["mode"], Value::Null, "{v}");
    assert_eq!(v["tasks"], json!([]), "{v}");
    let keys = strings(&v["questions"], |q| &q["key"]);
    let expected: Vec<&str> = hotline::campaign::survey::QUESTIONS
        .iter()
        .map(|q| q.key)
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(keys, ["attitude", "cleaned", "fees_ok", "satisfaction"]);
    let q0 = &v["questions"][0];
    assert!(q0["prompt"].as_str().unwrap().contains("服务态度"), "{q0}");
    assert_eq!(q0["choices"][0], json!({"key": 1, "label": "满意"}), "{q0}");
    assert_eq!(v["questions"][3]["choices"].as_array().unwrap().len(), 5);

    // Completed orders get their task; an order without completion does not.
    let batch = json!([
        {"order_no": "WO-T1", "type": "repair", "customer": {"phone": "139 1234 5678", "name": "陈先生", "address": "宁波市鄞州区", "region": "华东"},
         "product": "BCD-256 冰箱", "technician": "钱师傅", "department": "维修部", "completed_at": "2025-06-03T09:00:00+08:00"},
        {"order_no": "WO-T2", "type": "install", "customer": {"phone": "138 0000 2222", "name": "刘女士", "address": "杭州市西湖区", "region": "华东"},
         "product": "KFR-35GW 空调", "technician": "赵师傅", "department": "安装部", "completed_at": "2025-06-02T14:30:00+08:00"},
        {"order_no": "WO-T3", "type": "repair", "customer": {"phone": "138 0000 2222"}}
    ]);
    let r = post(&s, "/api/work-orders", &admin, &batch);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        (v["created"].as_u64(), v["tasks_created"].as_u64()),
        (Some(3), Some(2)),
        "{v}"
    );
    // Re-import: no second task.
    let v = post(&s, "/api/work-orders", &admin, &batch).json();
    assert_eq!(
        (v["updated"].as_u64(), v["tasks_created"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );

    let r = get(&s, path, &agent);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    let tasks = v["tasks"].as_array().unwrap();
    let orders = strings(&v["tasks"], |t| &t["work_order"]["order_no"]);
    assert_eq!(orders, ["WO-T2", "WO-T1"], "soonest due first: {v}");
    let t = &tasks[0];
    assert_eq!(t["id"], "wo-WO-T2", "{t}");
    assert_eq!(
        (t["kind"].as_str(), t["state"].as_str()),
        (Some("install"), Some("pending")),
        "{t}"
    );
    assert_eq!(t["attempts"], 0);
    assert_eq!(
        (&t["last_outcome"], &t["case_id"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        t["customer"],
        json!({"id": "tel-13800002222", "name": "刘女士", "phone": "13800002222", "region": "华东", "address": "杭州市西湖区"}),
        "{t}"
    );
    let w = &t["work_order"];
    assert_eq!(
        (
            w["product"].as_str(),
            w["technician"].as_str(),
            w["department"].as_str()
        ),
        (Some("KFR-35GW 空调"), Some("赵师傅"), Some("安装部")),
        "{w}"
    );
    // 2025-06-02T14:30:00+08:00
    assert_eq!(w["completed_at"], 1_748_845_800_000_i64, "{w}");
    let ms = |k: &str| t[k].as_i64().unwrap_or_else(|| panic!("{k}: {t}"));
    assert!(ms("window_start") > 1_748_845_800_000, "{t}");
    assert!(
        ms("window_start") <= ms("due_at") && ms("window_start") < ms("window_end"),
        "{t}"
    );
    assert!(ms("window_end") <= ms("deadline"), "{t}");
    assert_eq!(tasks[1]["kind"], "repair");

    // limit, state=all, and the other roles.
    let v = get(&s, &format!("{path}?limit=1"), &agent).json();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 1, "{v}");
    let v = get(&s, &format!("{path}?state=all&limit=500"), &sup).json();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2, "{v}");
    with_store(&s, async |store| {
        sqlx::query("UPDATE callback_tasks SET state = 'done', last_outcome = 'answered' WHERE id = 'wo-WO-T2'")
            .execute(store.pool())
            .await
            .unwrap();
    });
    let v = get(&s, path, &admin).json();
    assert_eq!(
        v["tasks"].as_array().unwrap().len(),
        1,
        "the done task is not open: {v}"
    );
    let v = get(&s, &format!("{path}?state=all"), &agent).json();
    let done = &v["tasks"][0];
    assert_eq!(
        (done["state"].as_str(), done["last_outcome"].as_str()),
        (Some("done"), Some("answered")),
        "{v}"
    );
}

/// The endpoints of issue 6 §1–2 and issue 5 §1, by method and path.
const ENDPOINTS: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("get", "/api/me"),
    ("get", "/api/customers"),
    ("post", "/api/customers"),
    ("get", "/api/customers/{id}"),
    ("get", "/api/calls"),
    ("get", "/api/calls/{id}"),
    ("get", "/api/calls/{id}/recording"),
    ("post", "/api/calls/{id}/disposition"),
    ("post", "/api/work-orders"),
    ("get", "/api/callback-tasks"),
    ("get", "/api/callback-requests"),
    ("get", "/api/agents"),
    ("post", "/api/agents/{id}/state"),
    ("get", "/api/queues"),
    ("get", "/api/events"),
];

#[test]
fn openapi_describes_every_route() {
    let s = start();
    let r = request(s.http, "GET", "/api/openapi.json", None, &[], None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].is_object(), "{method} {path}");
            documented.push((method.clone(), path.clone()));
        }
    }
    for (m, p) in ENDPOINTS {
        assert!(
            documented.iter().any(|(dm, dp)| dm == m && dp == p),
            "{m} {p} is not in the OpenAPI document"
        );
    }
    // Everything documented is routed: never the router's "no such endpoint".
    for (m, p) in &documented {
        let path = p.replace("{id}", "x");
        let r = request(
            s.http,
            &m.to_ascii_uppercase(),
            &path,
            None,
            &[],
            Some(b"{}"),
        );
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(
            !(r.status == 404 && text.contains("no such endpoint")) && r.status != 405,
            "{m} {p} is documented but not routed: {} {text}",
            r.status
        );
    }
    // Paths with parameters declare them; bodies are declared where posted.
    for (m, p) in &documented {
        let op = &paths[p][m];
        if p.contains("{id}") {
            assert!(
                op["parameters"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["in"] == "path")),
                "{m} {p} lacks its path parameter"
            );
        }
        if m == "post" && p != "/api/logout" {
            assert!(op["requestBody"].is_object(), "{m} {p} lacks a requestBody");
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal WebSocket client (RFC 6455): handshake, read frames.

struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Frame {
    Text(String),
    Close(u16, String),
    Other,
}

/// Open `path` as a WebSocket; Err(reply) when the server answers without upgrading.
fn ws_connect(addr: SocketAddr, path: &str, stream: Option<TcpStream>) -> Result<Ws, Reply> {
    let mut s = match stream {
        Some(s) => s,
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap(),
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk).expect("read handshake");
        assert!(n > 0, "connection closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        // Read the rest of the error reply (the connection stays open).
        let len = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = s.read(&mut chunk).expect("read error reply");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Err(parse_reply(&buf));
    }
    // RFC 6455's example key has this accept value.
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "bad Sec-WebSocket-Accept: {head}"
    );
    let rest = buf[end + 4..].to_vec();
    Ok(Ws {
        stream: s,
        buf: rest,
    })
}

impl Ws {
    fn fill(&mut self, need: usize) -> bool {
        let mut chunk = [0u8; 8192];
        while self.buf.len() < need {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// The next frame, or None when the connection ended.
    fn frame(&mut self) -> Option<Frame> {
        if !self.fill(2) {
            return None;
        }
        let opcode = self.buf[0] & 0x0f;
        assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
        let (len, head) = match self.buf[1] & 0x7f {
            126 => {
                if !self.fill(4) {
                    return None;
                }
                (
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                    4,
                )
            }
            127 => {
                if !self.fill(10) {
                    return None;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        if !self.fill(head + len) {
            return None;
        }
        let payload: Vec<u8> = self.buf[head..head + len].to_vec();
        self.buf.drain(..head + len);
        Some(match opcode {
            1 => Frame::Text(String::from_utf8(payload).expect("UTF-8 text frame")),
            8 => {
                let code = if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
                let reason =
                    String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                Frame::Close(code, reason)
            }
            _ => Frame::Other,
        })
    }

    /// The next JSON text message (panics on close or timeout).
    fn json(&mut self) -> Value {
        loop {
            match self.frame() {
                Some(Frame::Text(t)) => return serde_json::from_str(&t).expect("JSON event"),
                Some(Frame::Other) => continue,
                Some(Frame::Close(code, reason)) => panic!("closed: {code} {reason}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Wait for a message with `type` == kind matching `pred`.
    fn wait_for(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no {kind} event in time");
            let v = self.json();
            if v["type"] == kind && pred(&v) {
                return v;
            }
        }
    }
}

#[test]
fn agents_queues_and_the_events_websocket() {
    let s = start();
    let agent = login(&s, "1001", "hotline1001");
    let sup = login(&s, "s1", "hotline-s1");
    let admin = login(&s, "admin", "hotline-admin");

    // Before the upgrade: a bad or missing token is a JSON 401, admin a 403.
    let r = ws_connect(s.http, "/api/events?token=nope", None)
        .err()
        .expect("refused");
    r.expect_error(401, "unauthorized");
    let r = ws_connect(s.http, "/api/events", None)
        .err()
        .expect("refused");
    r.expect_error(401, "unauthorized");
    let r = ws_connect(s.http, &format!("/api/events?token={admin}"), None)
        .err()
        .expect("refused");
    r.expect_error(403, "forbidden");
    // A plain GET with a good token is not an upgrade.
    get(&s, &format!("/api/events?token={sup}"), &sup).expect_error(400, "bad_request");

    let mut ws =
        ws_connect(s.http, &format!("/api/events?token={sup}"), None).unwrap_or_else(|r| {
            panic!(
                "upgrade refused: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        });
    let snap = ws.json();
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["me"]["id"], "s1");
    let ids: Vec<&str> = snap["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1001", "1002", "1003"]);
    assert!(snap["acd"]["queues"].is_array(), "{snap}");
    assert!(snap["recent_calls"].is_array());

    // Agent state: the agent themself or a supervisor.
    let r = post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"state": "not_ready", "reason": "lunch"}),
    );
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["state"], "not_ready");
    assert_eq!(v["reason"], "lunch");
    let ev = ws.wait_for("agent_state", |v| v["agent"] == "1001");
    assert_eq!(ev["state"], "not_ready", "{ev}");
    assert_eq!(ev["reason"], "lunch", "{ev}");
    assert!(ev["since_ms"].as_u64().unwrap() > 0);

    post(
        &s,
        "/api/agents/1002/state",
        &agent,
        &json!({"state": "ready"}),
    )
    .expect_error(403, "forbidden");
    post(
        &s,
        "/api/agents/1002/state",
        &admin,
        &json!({"state": "ready"}),
    )
    .expect_error(403, "forbidden");
    // Agents start ready: the supervisor sends 1002 to a meeting.
    let r = post(
        &s,
        "/api/agents/1002/state",
        &sup,
        &json!({"state": "not_ready", "reason": "meeting"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let ev = ws.wait_for("agent_state", |v| v["agent"] == "1002");
    assert_eq!(ev["state"], "not_ready");
    assert_eq!(ev["reason"], "meeting");
    post(
        &s,
        "/api/agents/9999/state",
        &sup,
        &json!({"state": "ready"}),
    )
    .expect_error(404, "not_found");
    post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"state": "sleeping"}),
    )
    .expect_error(422, "invalid");
    post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"mood": "ready"}),
    )
    .expect_error(400, "bad_request");
    post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"state": "not_ready", "reason": "x".repeat(201)}),
    )
    .expect_error(422, "invalid");

    // The list and the wallboard reflect it.
    let r = get(&s, "/api/agents", &agent);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    let a1001 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "1001")
        .unwrap();
    assert_eq!(a1001["state"], "not_ready", "{v}");
    assert_eq!(a1001["reason"], "lunch");
    assert_eq!(a1001["name"], "Agent 1001");
    let r = get(&s, "/api/queues", &sup);
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert!(v["queues"].is_array() && v["agents"].is_array(), "{v}");
    let a = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "1001")
        .unwrap();
    assert_eq!(a["state"]["state"], "not_ready", "{v}");
    request(s.http, "GET", "/api/queues", None, &[], None).expect_error(401, "unauthorized");

    // An agent's socket works with the same token in the query; its snapshot
    // holds only the agent's own calls.
    // One state change is one event (the ACD publishes it, the API does not repeat it).
    let mut ws2 = ws_connect(s.http, &format!("/api/events?token={agent}"), None)
        .ok()
        .expect("agent socket");
    let snap = ws2.json();
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["me"]["role"], "agent");
    post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"state": "ready"}),
    );
    assert_eq!(
        ws2.wait_for("agent_state", |v| v["agent"] == "1001")["state"],
        "ready"
    );
    assert_eq!(
        ws.wait_for("agent_state", |v| v["agent"] == "1001")["state"],
        "ready"
    );
    post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"state": "not_ready", "reason": "once"}),
    );
    post(
        &s,
        "/api/agents/1001/state",
        &agent,
        &json!({"state": "ready"}),
    );
    let mut seen = Vec::new();
    loop {
        let v = ws2.wait_for("agent_state", |v| v["agent"] == "1001");
        seen.push(v["state"].as_str().unwrap().to_string());
        if v["state"] == "ready" {
            break;
        }
    }
    assert_eq!(
        seen,
        ["not_ready", "ready"],
        "each change is published once"
    );
}
