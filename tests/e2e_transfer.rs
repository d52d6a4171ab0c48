//! Blind transfer with a note, through the API, on a live bridged call with
//! real SIP peers: the customer (SIPp) is connected to agent 1001 (SIPp),
//! a supervisor transfers the call to agent 1002, whose phone rings with the
//! note in `X-Hotline-Note`; 1001 is released; the record keeps the chain.

mod common;

use std::time::Duration;

use common::agents::{agent, hotline_dialplan, Behaviour, Customer, QueueSetup, SippAgents};
use common::{poll, TestServer};

fn http_post(server: &TestServer, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    common::http_request(server.http, "POST", path, token, Some(body)).expect("API request")
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

/// An agent's call is transferred to an allow-listed outside number: the
/// gateway (SIPp as the far end) gets `INVITE sip:NUMBER@gateway` with the
/// customer's number, answers, and talks to the customer; the agent is
/// released; numbers off the list are refused. The record names the number.
#[tokio::test(flavor = "multi_thread")]
async fn transfer_to_an_allow_listed_outside_number() {
    let gateway_port = common::free_port();
    let setup = QueueSetup::default().toml().replace(
        "[acd]\n",
        &format!(
            "[acd]\ntransfer_numbers = [\"400*\"]\ntransfer_gateway = \"127.0.0.1:{gateway_port}\"\n"
        ),
    );
    let server = TestServer::builder()
        .agents(vec![agent("1001", &["install"])])
        .dialplan("hotline-transfer-out.toml", &hotline_dialplan())
        .extra_toml(&format!(
            "{setup}\n[[users]]\nid = \"s1\"\nname = \"Supervisor\"\npassword = \"hotline-s1\"\nrole = \"supervisor\"\n"
        ))
        .start();
    // The far end behind the gateway: answers one INVITE, talks, waits for BYE.
    let (mut gateway, trace) =
        common::agents::sipp_gateway(&server, gateway_port, "queue_agent_answer.xml");

    let pool = SippAgents::start(&server, &["1001"], Behaviour::Answer);
    let caller = "13960000888";
    let customer = Customer::call(&server, caller, &["2"]);
    let first = poll(Duration::from_secs(40), || {
        pool.offers()
            .into_iter()
            .find(|o| o.caller == caller && o.acked)
    })
    .unwrap_or_else(|| panic!("not connected: {:#?}\n{}", pool.offers(), server.log()));

    let (status, body) = http_post(
        &server,
        "/api/login",
        None,
        r#"{"id":"s1","password":"hotline-s1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("login JSON");
    let token = v["token"].as_str().expect("token").to_string();
    let path = format!("/api/calls/{}/transfer", first.record);

    let (status, body) = http_post(
        &server,
        &path,
        Some(&token),
        r#"{"to": {"number": "13800000000"}}"#,
    );
    assert_eq!(status, 422, "a number off the allow-list: {body}");
    let note = "转厂家技术支持热线";
    let (status, body) = http_post(
        &server,
        &path,
        Some(&token),
        &serde_json::json!({"to": {"number": "4001234567"}, "note": note}).to_string(),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());

    // The far end got the call with the customer's number, and answered.
    let invite = poll(Duration::from_secs(20), || {
        let t = std::fs::read_to_string(&trace).unwrap_or_default();
        (t.contains("INVITE sip:4001234567@") && t.contains("ACK sip:")).then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "the gateway got no answered INVITE\n{}\n{}",
            std::fs::read_to_string(&trace).unwrap_or_default(),
            server.log()
        )
    });
    assert!(invite.contains(caller), "the caller's number is shown");
    // The agent was released (BYE to 1001's leg).
    let released = poll(Duration::from_secs(10), || {
        pool.sipp.so_far().messages().into_iter().find(|t| {
            !t.sent
                && t.msg.method() == Some("BYE")
                && t.msg.header("Call-ID") == Some(first.call_id.as_str())
        })
    });
    assert!(
        released.is_some(),
        "1001's leg got no BYE\n{}",
        server.log()
    );

    std::thread::sleep(Duration::from_secs(2));
    customer.hang_up_and_finish();
    // The far end got the BYE and SIPp finished its one call cleanly.
    let done = poll(Duration::from_secs(15), || {
        gateway.0.try_wait().ok().flatten()
    });
    assert!(
        done.is_some_and(|s| s.success()),
        "the gateway's call did not end cleanly: {done:?}\n{}",
        std::fs::read_to_string(&trace).unwrap_or_default()
    );

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
    assert_eq!(row.agent_id.as_deref(), Some("1001"), "{row:#?}");
    assert_eq!(row.transfer_chain.len(), 1, "{row:#?}");
    assert_eq!(row.transfer_chain[0].to, "number 4001234567");
    assert_eq!(row.transfer_chain[0].note, note);
}
