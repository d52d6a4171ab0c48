//! SIP over WebSocket into rsipstack through our axum `/sip` route: a REGISTER
//! from a WebSocket client reaches the endpoint's transactions and is
//! answered on the same socket; a request from the server to the client is
//! sent on that flow; the subprotocol is enforced; a closed socket is retired.
//! `tests/jssip.rs` does the same with a real browser SIP stack.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rsipstack::sip::{Method, SipMessage, StatusCode};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use common::sip::{start, Registered};

const REGISTER: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws-reg-1\r\n\
Max-Forwards: 70\r\n\
To: <sip:1001@127.0.0.1>\r\n\
From: <sip:1001@127.0.0.1>;tag=ws1\r\n\
Call-ID: ws-register-1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:k3l2@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n\
Content-Length: 0\r\n\r\n";

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame in time")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = frame {
            return t.to_string();
        }
    }
}

#[tokio::test]
async fn register_over_websocket_and_a_request_back_on_the_flow() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let server = start().await;
    let mut req = format!("ws://{}/sip", server.http)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().expect("header"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"sip"[..])
    );

    // REGISTER in, 200 OK out on the same socket.
    ws.send(Message::Text(REGISTER.into())).await.expect("send");
    let reply = next_text(&mut ws).await;
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert!(reply.contains("z9hG4bK-ws-reg-1"), "{reply}");
    // The stack saw the real peer address, like for UDP/TCP.
    assert!(reply.contains("received=127.0.0.1"), "{reply}");

    let Registered { contact, flow } = server.registered().await;
    assert!(contact.contains("transport=ws"), "{contact}");

    // A request from hotline to the browser rides the registered flow, even
    // though the Contact host (`.invalid`) resolves nowhere.
    let options = format!(
        "OPTIONS sip:k3l2@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n\
Via: SIP/2.0/WS {};branch=z9hG4bK-srv-opt-1\r\n\
Max-Forwards: 70\r\n\
To: <sip:1001@127.0.0.1>\r\n\
From: <sip:hotline@127.0.0.1>;tag=srv1\r\n\
Call-ID: srv-options-1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
        server.sip_udp
    );
    let SipMessage::Request(options) = SipMessage::try_from(options.as_str()).expect("parse")
    else {
        panic!("not a request");
    };
    let key = TransactionKey::from_request(&options, TransactionRole::Client).expect("key");
    let mut tx = Transaction::new_client(key, options, server.endpoint.clone(), Some(flow));
    tx.send().await.expect("send OPTIONS");
    let got = next_text(&mut ws).await;
    assert!(got.starts_with("OPTIONS sip:k3l2@"), "{got}");
    // Answer as a UA would: same headers, a To tag, a status line.
    let (_, headers) = got.split_once("\r\n").expect("request line");
    let ok = format!("SIP/2.0 200 OK\r\n{headers}").replace(
        "To: <sip:1001@127.0.0.1>",
        "To: <sip:1001@127.0.0.1>;tag=cl1",
    );
    ws.send(Message::Text(ok.into())).await.expect("send 200");
    let resp = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tx.receive().await {
                Some(SipMessage::Response(r)) => return Some(r),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("response in time")
    .expect("response");
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(tx.original.method, Method::Options);

    // Closing the socket retires the connection.
    let before = server.endpoint.transport_layer.connections_count();
    assert!(before >= 1);
    ws.close(None).await.expect("close");
    drop(ws);
    let mut after = before;
    for _ in 0..50 {
        after = server.endpoint.transport_layer.connections_count();
        if after < before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(after, before - 1, "connection not retired");
}

#[tokio::test]
async fn websocket_without_the_sip_subprotocol_is_refused() {
    let server = start().await;
    let req = format!("ws://{}/sip", server.http)
        .into_client_request()
        .expect("request");
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 426);
        }
        other => panic!("expected 426, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_is_dropped_checks_answer_and_keepalives_are_answered() {
    let server = start().await;
    let mut req = format!("ws://{}/sip", server.http)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    ws.send(Message::Text("hello there".into()))
        .await
        .expect("send");
    ws.send(Message::Text("\r\n\r\n".into()))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, "\r\n");
    // Still usable after the garbage.
    ws.send(Message::Text(REGISTER.into())).await.expect("send");
    assert!(next_text(&mut ws).await.starts_with("SIP/2.0 200"));
}
