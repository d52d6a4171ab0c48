//! Blind transfer with a note, through the API, on a live bridged call with
//! real SIP peers: the customer (SIPp) is connected to agent 1001 (SIPp),
//! a supervisor transfers the call to agent 1002, whose phone rings with the
//! note in `X-Hotline-Note`; 1001 is released; the record keeps the chain.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::agents::{agent, hotline_dialplan, Behaviour, Customer, QueueSetup, SippAgents};
use common::{poll, TestServer};

fn http_post(server: &TestServer, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(server.http).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn supervisor_transfers_a_live_call_to_another_agent_with_a_note() {
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"]), agent("1002", &["repair"])])
        .dialplan("hotline-transfer.toml", &hotline_dialplan())
        .extra_toml(&format!(
            "{}\n[[users]]\nid = \"s1\"\nname = \"Supervisor\"\npassword = \"hotline-s1\"\nrole = \"supervisor\"\n",
            QueueSetup::default().toml()
        ))
        .start();
    let pool = SippAgents::start(&server, &["1001", "1002"], Behaviour::Answer);
    let caller = "13960000777";
    let customer = Customer::call(&server, caller, &["2"]);

    let first = poll(Duration::from_secs(40), || {
        pool.offers()
            .into_iter()
            .find(|o| o.caller == caller && o.acked)
    })
    .unwrap_or_else(|| {
        panic!(
            "not connected to an agent: {:#?}\n{}",
            pool.offers(),
            server.log()
        )
    });
    assert_eq!(first.agent, "1001", "install goes to 1001");

    let (status, body) = http_post(
        &server,
        "/api/login",
        None,
        r#"{"id":"s1","password":"hotline-s1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).expect("login JSON");
    let token = token["token"].as_str().expect("token").to_string();

    let note = "客户报修空调不制冷,工单WO-1001,已核实地址";
    let (status, body) = http_post(
        &server,
        &format!("/api/calls/{}/transfer", first.record),
        Some(&token),
        &serde_json::json!({"to": {"agent": "1002"}, "note": note}).to_string(),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert!(body.contains("\"from_agent\":\"1001\""), "{body}");

    // Transferring to an unknown agent is refused and changes nothing.
    let (status, body) = http_post(
        &server,
        &format!("/api/calls/{}/transfer", first.record),
        Some(&token),
        r#"{"to": {"agent": "9999"}}"#,
    );
    assert!(status == 422 || status == 409, "{status} {body}");

    let second = poll(Duration::from_secs(20), || {
        pool.offers()
            .into_iter()
            .find(|o| o.caller == caller && o.agent == "1002" && o.acked)
    })
    .unwrap_or_else(|| {
        panic!(
            "1002 was not connected: {:#?}\n{}",
            pool.offers(),
            server.log()
        )
    });
    assert_eq!(second.record, first.record, "the same call");
    // 1001 was released by hotline (BYE) once the transfer was accepted.
    let released = poll(Duration::from_secs(10), || {
        pool.sipp.so_far().messages().into_iter().find(|t| {
            !t.sent
                && t.msg.method() == Some("BYE")
                && t.msg.header("Call-ID") == Some(first.call_id.as_str())
        })
    });
    assert!(released.is_some(), "1001's leg got no BYE");
    let invite_note = pool
        .sipp
        .so_far()
        .messages()
        .into_iter()
        .filter(|t| !t.sent && t.msg.method() == Some("INVITE"))
        .find(|t| t.msg.header("Call-ID") == Some(second.call_id.as_str()))
        .and_then(|t| t.msg.header("X-Hotline-Note").map(str::to_string));
    assert_eq!(
        invite_note.as_deref(),
        Some(note),
        "the note rides on the INVITE to 1002"
    );

    std::thread::sleep(Duration::from_secs(2));
    customer.hang_up_and_finish();

    let store = hotline::store::Store::connect(&format!("sqlite://{}", server.db_path().display()))
        .await
        .expect("open the server's database");
    let row = poll(Duration::from_secs(5), || {
        futures_lite_block(store.get_call(&first.record))
            .ok()
            .flatten()
            .filter(|r| r.ended_at.is_some())
    })
    .expect("the call row is completed");
    assert_eq!(row.agent_id.as_deref(), Some("1002"), "{row:#?}");
    assert_eq!(row.transfer_chain.len(), 1, "{row:#?}");
    assert_eq!(row.transfer_chain[0].from_agent, "1001");
    assert_eq!(row.transfer_chain[0].to, "agent 1002");
    assert_eq!(row.transfer_chain[0].note, note);
}

/// Run a store future to completion from the polling closure.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
