//! SIP over WebSocket (RFC 7118) at `/sip`, as a browser softphone sees it,
//! driven by a Rust WebSocket client (tokio-tungstenite) that writes its SIP
//! by hand: the `sip` subprotocol (426 without it), digest registration on
//! the socket (401, 200, 403), the same stateless answers to malformed
//! requests as over UDP, CRLF keep-alives, OPTIONS, the registration dying
//! with its socket or with its silence to pings, and hotline calling a WS-registered agent over that
//! socket with a WebRTC offer (refused with 486: ACK, offered again; the
//! customer hangs up: CANCEL).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::agents::{agent, agent_password, queue_server, row_of, Customer, QueueSetup};
use common::{password_of, poll, SipMessage, TestServer};

/// How long a reply on the socket may take (a loaded CI machine).
const REPLY: Duration = Duration::from_secs(5);

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A number unique in this test process (branches, tags, Call-IDs).
fn unique() -> u64 {
    u64::from(std::process::id()) * 1_000_000 + SEQ.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// A WebSocket client with blocking calls, like the rest of the harness

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// One browser's connection to `/sip`.
struct SipSocket {
    // Declared before the runtime: the stream is dropped while it still runs.
    ws: Stream,
    /// Our end of the TCP connection: the address the server sees.
    local: SocketAddr,
    rt: tokio::runtime::Runtime,
}

/// What arrived on the socket next.
#[derive(Debug)]
enum Frame {
    Text(String),
    Closed(String),
    Nothing,
}

impl SipSocket {
    /// `GET /sip` as a WebSocket, asking for `protocol` (none: no
    /// `Sec-WebSocket-Protocol` header at all).
    fn open(server: &TestServer, protocol: Option<&str>) -> Result<(SipSocket, Response), WsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut request = format!("ws://{}/sip", server.http)
            .into_client_request()
            .expect("a WebSocket request");
        if let Some(p) = protocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse().expect("a header value"));
        }
        let (ws, response) = rt.block_on(async {
            tokio::time::timeout(REPLY, tokio_tungstenite::connect_async(request))
                .await
                .expect("the WebSocket handshake finishes")
        })?;
        let local = match ws.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp.local_addr().expect("local address"),
            _ => unreachable!("ws:// is plain TCP"),
        };
        Ok((SipSocket { ws, local, rt }, response))
    }

    /// Open with the `sip` subprotocol (must succeed).
    fn connect(server: &TestServer) -> SipSocket {
        match SipSocket::open(server, Some("sip")) {
            Ok((s, _)) => s,
            Err(e) => panic!("GET /sip with subprotocol sip failed: {e}"),
        }
    }

    /// Send one text frame.
    fn send(&mut self, text: &str) {
        let ws = &mut self.ws;
        self.rt
            .block_on(ws.send(Message::text(text)))
            .unwrap_or_else(|e| panic!("send a frame: {e}"));
    }

    /// The next text (or binary) frame within `limit`; pings are answered
    /// by the client itself.
    fn next(&mut self, limit: Duration) -> Frame {
        let ws = &mut self.ws;
        self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Err(_) => return Frame::Nothing,
                    Ok(None) => return Frame::Closed("end of stream".into()),
                    Ok(Some(Err(e))) => return Frame::Closed(e.to_string()),
                    Ok(Some(Ok(Message::Text(t)))) => return Frame::Text(t.to_string()),
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        return Frame::Text(String::from_utf8_lossy(&b).into_owned())
                    }
                    Ok(Some(Ok(Message::Close(c)))) => return Frame::Closed(format!("{c:?}")),
                    Ok(Some(Ok(_))) => continue,
                }
            }
        })
    }

    /// The next frame as a SIP message (panics on silence or close).
    fn next_sip(&mut self, limit: Duration, what: &str) -> (String, SipMessage) {
        match self.next(limit) {
            Frame::Text(t) => {
                let m = SipMessage::parse(&t);
                (t, m)
            }
            Frame::Closed(why) => panic!("{what}: the socket closed ({why})"),
            Frame::Nothing => panic!("{what}: no SIP message within {limit:?}"),
        }
    }

    /// Send a request and return its final response (provisional ones skipped).
    fn exchange(&mut self, request: &str) -> (String, SipMessage) {
        let sent = SipMessage::parse(request);
        let call_id = sent.header("Call-ID").unwrap_or_default().to_string();
        let cseq = sent.header("CSeq").unwrap_or_default().to_string();
        self.send(request);
        loop {
            let (text, m) = self.next_sip(REPLY, &format!("the answer to {}", sent.start_line));
            assert!(
                m.status().is_some()
                    && m.header("Call-ID") == Some(call_id.as_str())
                    && m.header("CSeq") == Some(cseq.as_str()),
                "expected the response to {} ({cseq}); got\n{text}",
                sent.start_line
            );
            if m.status() >= Some(200) {
                return (text, m);
            }
        }
    }

    /// Close the WebSocket properly (close frame, wait for the server's).
    fn close(mut self) {
        let ws = &mut self.ws;
        self.rt.block_on(async {
            let _ = tokio::time::timeout(REPLY, ws.close(None)).await;
            // Read until the server's close frame ends the stream.
            let _ = tokio::time::timeout(REPLY, async { while ws.next().await.is_some() {} }).await;
        });
    }
}

// ---------------------------------------------------------------------------
// The SIP a browser softphone writes

/// A browser-style user agent: its Via and Contact name a made-up
/// `.invalid` host (RFC 7118 §5), as JsSIP and the desk's softphone do.
struct Browser {
    user: String,
    host: String,
    call_id: String,
    tag: String,
    cseq: u32,
}

impl Browser {
    fn new(user: &str) -> Self {
        let n = unique();
        Self {
            user: user.to_string(),
            host: format!("b{n:x}.invalid"),
            call_id: format!("reg{n}"),
            tag: format!("t{n}"),
            cseq: 0,
        }
    }

    fn contact(&self) -> String {
        format!("sip:{}@{};transport=ws", self.user, self.host)
    }

    /// The next REGISTER of this UA (same Call-ID, CSeq + 1).
    fn register(&mut self, authorization: Option<&str>) -> String {
        self.cseq += 1;
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:hotline.local SIP/2.0\r\n\
             Via: SIP/2.0/WS {host};branch=z9hG4bK{n}\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{user}@hotline.local>\r\n\
             From: <sip:{user}@hotline.local>;tag={tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>\r\n\
             Expires: 300\r\n\
             {auth}\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
             User-Agent: e2e_sip_ws\r\n\
             Content-Length: 0\r\n\r\n",
            host = self.host,
            n = unique(),
            user = self.user,
            tag = self.tag,
            call_id = self.call_id,
            cseq = self.cseq,
            contact = self.contact(),
        )
    }

    /// A request outside any dialog with a fresh Call-ID: `method` and
    /// `version` as given (to build malformed ones too).
    fn request(&self, method: &str, version: &str) -> String {
        let n = unique();
        format!(
            "{method} sip:hotline.local {version}\r\n\
             Via: SIP/2.0/WS {host};branch=z9hG4bK{n}\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:hotline.local>\r\n\
             From: <sip:{user}@hotline.local>;tag=o{n}\r\n\
             Call-ID: req{n}\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n",
            host = self.host,
            user = self.user,
        )
    }
}

/// A parameter of a `Digest` challenge (quoted or not).
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let body = challenge.trim().strip_prefix("Digest")?.trim();
    body.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The Authorization a client computes for `challenge` (RFC 2617 with
/// `qop=auth`, MD5: what the desk's softphone and JsSIP send).
fn authorization(challenge: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    let realm = challenge_param(challenge, "realm").expect("realm in the challenge");
    let nonce = challenge_param(challenge, "nonce").expect("nonce in the challenge");
    let cnonce = format!("{:016x}", unique());
    let nc = "00000001";
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let opaque = challenge_param(challenge, "opaque")
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\"{opaque}"
    )
}

/// REGISTER without credentials: must be a 401 with an MD5 `qop=auth`
/// challenge; returns the challenge.
fn challenged(ws: &mut SipSocket, ua: &mut Browser) -> String {
    let (text, resp) = ws.exchange(&ua.register(None));
    assert_eq!(
        resp.status(),
        Some(401),
        "REGISTER without credentials\n{text}"
    );
    let challenges = resp.headers_named("WWW-Authenticate");
    let md5 = challenges
        .iter()
        .find(|c| challenge_param(c, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case("MD5")))
        .unwrap_or_else(|| panic!("an MD5 digest challenge in the 401\n{text}"));
    assert!(md5.starts_with("Digest "), "{md5}");
    assert_eq!(
        challenge_param(md5, "realm").as_deref(),
        Some("hotline.local"),
        "{md5}"
    );
    assert_eq!(
        challenge_param(md5, "qop").as_deref(),
        Some("auth"),
        "{md5}"
    );
    assert!(
        challenge_param(md5, "nonce").is_some_and(|n| !n.is_empty()),
        "{md5}"
    );
    md5.to_string()
}

/// Challenge, then REGISTER with `password`: the final answer.
fn register(ws: &mut SipSocket, ua: &mut Browser, password: &str) -> (String, SipMessage) {
    let challenge = challenged(ws, ua);
    let auth = authorization(
        &challenge,
        &ua.user,
        password,
        "REGISTER",
        "sip:hotline.local",
    );
    ws.exchange(&ua.register(Some(&auth)))
}

/// A successful registration of `ua` (panics otherwise).
fn register_ok(ws: &mut SipSocket, ua: &mut Browser, password: &str) -> SipMessage {
    let (text, ok) = register(ws, ua, password);
    assert_eq!(
        ok.status(),
        Some(200),
        "REGISTER with the right password\n{text}"
    );
    ok
}

fn registrations(server: &TestServer) -> f64 {
    server.metric("hotline_registrations").unwrap_or(0.0)
}

fn wait_registrations(server: &TestServer, n: f64, limit: Duration, what: &str) {
    if let Err(last) = server.wait_metric("hotline_registrations", limit, |v| v == n) {
        panic!("{what}: hotline_registrations is {last:?}, expected {n}");
    }
}

/// The value of `name=` among the `;` parameters of a header value.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

// ---------------------------------------------------------------------------
// The upgrade

#[test]
fn sip_subprotocol_is_required_to_open_the_socket() {
    let server = TestServer::start();

    // A plain WebSocket client (no subprotocol) is not a SIP client.
    match SipSocket::open(&server, None) {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 426, "{resp:?}");
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(
                body.contains("sip"),
                "the 426 says what is missing: {body:?}"
            );
        }
        Err(e) => panic!("expected HTTP 426 without the sip subprotocol, got {e}"),
        Ok((_, resp)) => panic!("the socket opened without the sip subprotocol: {resp:?}"),
    }
    // Another subprotocol only: the same.
    match SipSocket::open(&server, Some("chat")) {
        Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 426, "{resp:?}"),
        Err(e) => panic!("expected HTTP 426 for subprotocol chat, got {e}"),
        Ok((_, resp)) => panic!("the socket opened with subprotocol chat: {resp:?}"),
    }

    // With it (among others, as a browser may offer): 101, `sip` chosen.
    let (mut ws, resp) = SipSocket::open(&server, Some("chat, sip"))
        .unwrap_or_else(|e| panic!("GET /sip with subprotocol sip: {e}"));
    assert_eq!(resp.status().as_u16(), 101, "{resp:?}");
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some("sip"),
        "{resp:?}"
    );
    // And it speaks SIP.
    let ua = Browser::new("1001");
    let (text, ok) = ws.exchange(&ua.request("OPTIONS", "SIP/2.0"));
    assert_eq!(ok.status(), Some(200), "{text}");
}

// ---------------------------------------------------------------------------
// Registration

#[test]
fn register_over_websocket_with_digest() {
    let server = TestServer::start();
    let mut ws = SipSocket::connect(&server);
    let mut ua = Browser::new("1001");

    let challenge = challenged(&mut ws, &mut ua);
    assert_eq!(registrations(&server), 0.0, "a challenge registers nobody");

    let auth = authorization(
        &challenge,
        "1001",
        &password_of("1001"),
        "REGISTER",
        "sip:hotline.local",
    );
    let (text, ok) = ws.exchange(&ua.register(Some(&auth)));
    assert_eq!(
        ok.status(),
        Some(200),
        "REGISTER with the right password\n{text}"
    );

    // The 200 lists our binding with its lifetime.
    let bindings = ok.headers_named("Contact");
    assert_eq!(bindings.len(), 1, "exactly our binding\n{text}");
    assert!(
        bindings[0].contains(&format!("<{}>", ua.contact())),
        "the 200 lists our Contact {}\n{text}",
        ua.contact()
    );
    let expires: u64 = param(bindings[0], "expires")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("expires= on the binding\n{text}"));
    assert!((295..=300).contains(&expires), "expires={expires}\n{text}");

    // The server wrote the browser's TCP peer into our Via.
    let via = ok.header("Via").expect("Via in the 200");
    assert!(via.starts_with("SIP/2.0/WS "), "{via}");
    assert_eq!(
        param(via, "received").as_deref(),
        Some("127.0.0.1"),
        "{via}"
    );
    assert_eq!(
        param(via, "rport").and_then(|p| p.parse::<u16>().ok()),
        Some(ws.local.port()),
        "rport is our TCP port {}: {via}",
        ws.local.port()
    );

    // The log and /metrics agree.
    let contact = ua.contact();
    let source = format!("source={}", ws.local);
    let logged = poll(REPLY, || {
        server
            .log()
            .lines()
            .find(|l| {
                l.contains(" registered")
                    && l.contains("aor=1001")
                    && l.contains(&contact)
                    && l.contains(&source)
            })
            .map(str::to_string)
    });
    assert!(
        logged.is_some(),
        "the server logs the registration of 1001 from {source}\n{}",
        server.log()
    );
    wait_registrations(&server, 1.0, REPLY, "after the 200");
    assert_eq!(
        server
            .metric("hotline_sip_auth_failures_total")
            .unwrap_or(0.0),
        0.0
    );
}

/// A browser that stops answering pings (a laptop gone to sleep, a dropped
/// network: TCP does not notice) is closed after three silent ping periods
/// and its registration ends, so no call is offered to it; a browser that
/// answers stays registered.
#[test]
fn a_socket_silent_to_pings_is_closed_and_unregistered() {
    let server = TestServer::builder().ws_keepalive_secs(1).start();
    let mut awake = SipSocket::connect(&server);
    register_ok(&mut awake, &mut Browser::new("1001"), &password_of("1001"));
    let mut asleep = SipSocket::connect(&server);
    register_ok(&mut asleep, &mut Browser::new("1002"), &password_of("1002"));
    wait_registrations(&server, 2.0, REPLY, "both browsers registered");

    // Only `awake` reads its socket (and so answers the pings).
    let mut dropped = false;
    for _ in 0..16 {
        assert!(
            matches!(awake.next(Duration::from_millis(500)), Frame::Nothing),
            "the awake browser gets pings only"
        );
        if registrations(&server) == 1.0 {
            dropped = true;
            break;
        }
    }
    assert!(
        dropped,
        "the silent browser's registration ends within 8 s (1 s pings)\n{}",
        server.log()
    );
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("no answer to pings; closing")),
        "{}",
        server.log()
    );
    // A second later the awake one is still registered.
    for _ in 0..4 {
        assert!(matches!(
            awake.next(Duration::from_millis(500)),
            Frame::Nothing
        ));
    }
    assert_eq!(
        registrations(&server),
        1.0,
        "the browser that answers stays"
    );
    // The silent one finds its socket closed once it reads again.
    let closed = (0..20).any(|_| matches!(asleep.next(REPLY), Frame::Closed(_)));
    assert!(closed, "the server closed the silent browser's socket");
}

#[test]
fn wrong_password_over_websocket_is_refused() {
    let server = TestServer::start();
    let mut ws = SipSocket::connect(&server);
    let mut ua = Browser::new("1002");
    let (text, resp) = register(&mut ws, &mut ua, "not-the-password");
    assert_eq!(
        resp.status(),
        Some(403),
        "REGISTER with a wrong password\n{text}"
    );
    assert!(resp.header("Contact").is_none(), "{text}");
    assert_eq!(registrations(&server), 0.0);
    assert_eq!(
        server.metric("hotline_sip_auth_failures_total"),
        Some(1.0),
        "one failed attempt counted\n{}",
        server.metrics()
    );
    // The socket is still there for a correct attempt.
    let ok = register_ok(&mut ws, &mut ua, &password_of("1002"));
    assert_eq!(ok.headers_named("Contact").len(), 1);
    wait_registrations(&server, 1.0, REPLY, "after the right password");
}

#[test]
fn closing_the_socket_drops_its_registration() {
    let server = TestServer::start();
    // Two browser tabs: 1001 and 1002, each on its own socket.
    let mut first = SipSocket::connect(&server);
    let mut ua1 = Browser::new("1001");
    register_ok(&mut first, &mut ua1, &password_of("1001"));
    let mut second = SipSocket::connect(&server);
    let mut ua2 = Browser::new("1002");
    register_ok(&mut second, &mut ua2, &password_of("1002"));
    wait_registrations(&server, 2.0, REPLY, "two browsers registered");

    // The first tab closes its socket properly: only its binding goes.
    let peer = first.local;
    first.close();
    wait_registrations(&server, 1.0, Duration::from_secs(5), "first socket closed");
    let line = poll(REPLY, || {
        server
            .log()
            .lines()
            .find(|l| l.contains("WebSocket closed: unregistered"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("the server logs the dropped registration\n{}", server.log()));
    assert!(
        line.contains("aor=1001")
            && line.contains(&ua1.contact())
            && line.contains(&format!("peer={peer}")),
        "{line}"
    );
    // The other tab's socket and binding are untouched.
    let (text, ok) = second.exchange(&ua2.request("OPTIONS", "SIP/2.0"));
    assert_eq!(ok.status(), Some(200), "{text}");
    assert_eq!(registrations(&server), 1.0);

    // The second tab is killed: the TCP connection just ends, no close frame.
    drop(second);
    wait_registrations(&server, 0.0, Duration::from_secs(5), "second socket gone");
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WebSocket closed: unregistered") && l.contains("aor=1002")),
        "the server logs 1002's dropped registration\n{log}"
    );
}

/// A WS client that writes its own IP (no port, no rport) into Via and
/// Contact, as some SIP stacks do: the binding is still its connection, so
/// it is reached down the socket and goes when the socket closes.
#[test]
fn a_client_naming_its_ip_in_via_is_bound_to_its_connection() {
    let server = TestServer::start();
    let mut ws = SipSocket::connect(&server);
    let mut ua = Browser::new("1001");
    ua.host = "127.0.0.1".to_string();
    register_ok(&mut ws, &mut ua, &password_of("1001"));
    wait_registrations(&server, 1.0, REPLY, "registered");
    let peer = ws.local;
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("registered")
            && l.contains(&format!("source={peer}"))
            && l.contains("transport=WS")),
        "the binding is the socket's peer {peer}, not the Via's 127.0.0.1:5060\n{log}"
    );
    ws.close();
    wait_registrations(&server, 0.0, Duration::from_secs(5), "socket closed");
}

// ---------------------------------------------------------------------------
// Malformed frames, keep-alives, OPTIONS

#[test]
fn malformed_frames_get_stateless_answers_and_keep_alives_a_crlf() {
    let server = TestServer::start();
    let mut ws = SipSocket::connect(&server);
    let ua = Browser::new("1001");

    // Wrong SIP version: 505 on the socket.
    let bad_version = ua.request("OPTIONS", "SIP/3.0");
    let (text, resp) = ws.exchange(&bad_version);
    assert_eq!(resp.status(), Some(505), "{text}");
    assert_eq!(
        resp.header("Via"),
        SipMessage::parse(&bad_version).header("Via"),
        "the 505 goes back along our Via\n{text}"
    );

    // An unknown method: 501 saying what we may send.
    let (text, resp) = ws.exchange(&ua.request("FOO", "SIP/2.0"));
    assert_eq!(resp.status(), Some(501), "{text}");
    let allow = resp
        .header("Allow")
        .unwrap_or_else(|| panic!("Allow in the 501\n{text}"));
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"] {
        assert!(allow.contains(m), "Allow lists {m}: {allow}");
    }

    // Garbage: no answer, and the socket stays usable. The bridge answers
    // frames in order, so a reply to the garbage would come before the
    // OPTIONS' 200.
    ws.send("this is not SIP at all \u{1f4de}");
    let (text, ok) = ws.exchange(&ua.request("OPTIONS", "SIP/2.0"));
    assert_eq!(ok.status(), Some(200), "OPTIONS after garbage\n{text}");

    // A double-CRLF keep-alive: one CRLF back.
    ws.send("\r\n\r\n");
    match ws.next(REPLY) {
        Frame::Text(t) => assert_eq!(t, "\r\n", "the keep-alive's answer"),
        other => panic!("expected a CRLF frame for the keep-alive, got {other:?}"),
    }

    // Nothing above closed the socket.
    let (text, ok) = ws.exchange(&ua.request("OPTIONS", "SIP/2.0"));
    assert_eq!(ok.status(), Some(200), "{text}");
    let log = server.log();
    assert!(
        log.contains("malformed request answered"),
        "the server logs the stateless answers\n{log}"
    );
}

#[test]
fn options_over_websocket() {
    let server = TestServer::start();
    let mut ws = SipSocket::connect(&server);
    let ua = Browser::new("1003");
    let request = ua.request("OPTIONS", "SIP/2.0");
    let (text, ok) = ws.exchange(&request);
    assert_eq!(ok.status(), Some(200), "{text}");
    let allow = ok
        .header("Allow")
        .unwrap_or_else(|| panic!("Allow in the 200\n{text}"));
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"] {
        assert!(allow.contains(m), "Allow lists {m}: {allow}");
    }
    let sent = SipMessage::parse(&request);
    assert_eq!(ok.header("From"), sent.header("From"), "{text}");
    assert!(
        ok.header("To").is_some_and(|t| t.contains("tag=")),
        "the 200 tags To\n{text}"
    );
}

// ---------------------------------------------------------------------------
// hotline calls a WS-registered agent

/// A stateless response of the browser to `req`: its Via, From, Call-ID and
/// CSeq, and To with our tag.
fn answer(req: &SipMessage, status: u16, reason: &str, to_tag: &str) -> String {
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for via in req.headers_named("Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    let to = req.header("To").unwrap_or_default();
    let to = if param(to, "tag").is_some() {
        to.to_string()
    } else {
        format!("{to};tag={to_tag}")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        req.header("From").unwrap_or_default(),
        req.header("Call-ID").unwrap_or_default(),
        req.header("CSeq").unwrap_or_default(),
    ));
    out
}

/// The next request on the socket (panics on anything else).
fn next_request(
    ws: &mut SipSocket,
    limit: Duration,
    what: &str,
    context: &dyn Fn() -> String,
) -> (String, SipMessage) {
    match ws.next(limit) {
        Frame::Text(t) => {
            let m = SipMessage::parse(&t);
            assert!(m.method().is_some(), "{what}: expected a request, got\n{t}");
            (t, m)
        }
        Frame::Closed(why) => panic!("{what}: the socket closed ({why})\n{}", context()),
        Frame::Nothing => panic!("{what}: nothing within {limit:?}\n{}", context()),
    }
}

/// The number part of a CSeq value.
fn cseq_number(m: &SipMessage) -> Option<u32> {
    m.header("CSeq")?.split_whitespace().next()?.parse().ok()
}

/// The top Via's branch.
fn branch(m: &SipMessage) -> Option<String> {
    param(m.headers_named("Via").first()?.split(',').next()?, "branch")
}

/// What the SIPp customer did so far, for assertion messages.
fn dump(customer: &Customer) -> String {
    format!("--- customer ---\n{}", customer.sipp.so_far().dump())
}

/// Asserts the INVITE is for our registered Contact, from the customer,
/// with a WebRTC offer.
fn assert_webrtc_invite(text: &str, invite: &SipMessage, contact: &str, caller: &str) {
    assert_eq!(invite.method(), Some("INVITE"), "{text}");
    let uri = invite
        .start_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default();
    assert!(
        uri.eq_ignore_ascii_case(contact),
        "the Request-URI is the registered Contact {contact}\n{text}"
    );
    assert!(
        invite.header("From").is_some_and(|f| f.contains(caller)),
        "the agent sees the customer's number {caller}\n{text}"
    );
    assert!(
        invite
            .header("Content-Type")
            .is_some_and(|c| c.eq_ignore_ascii_case("application/sdp")),
        "{text}"
    );
    let sdp = &invite.body;
    assert!(
        sdp.lines()
            .any(|l| l.starts_with("m=audio ") && l.contains("UDP/TLS/RTP/SAVPF")),
        "a WebRTC (DTLS-SRTP) audio offer, not plain RTP\n{text}"
    );
    assert!(sdp.contains("a=fingerprint:"), "DTLS fingerprint\n{text}");
    assert!(sdp.contains("a=ice-ufrag:"), "ICE credentials\n{text}");
    assert!(sdp.contains("a=ice-pwd:"), "ICE credentials\n{text}");
}

#[test]
fn hotline_rings_a_websocket_agent_with_a_webrtc_offer() {
    let server = queue_server(vec![agent("1001", &["install"])], &QueueSetup::default());
    let mut ws = SipSocket::connect(&server);
    let mut ua = Browser::new("1001");
    register_ok(&mut ws, &mut ua, &agent_password("1001"));
    wait_registrations(&server, 1.0, REPLY, "the browser agent registered");

    // A customer dials 8000 and presses 2 (installation): the queue rings
    // the only agent, 1001 (ready as it registered), on its socket.
    let caller = "13900000077";
    let mut customer = Customer::call(&server, caller, &["2"]);
    let (text, invite) = next_request(
        &mut ws,
        Duration::from_secs(40),
        "the INVITE to the agent",
        &|| dump(&customer),
    );
    assert_webrtc_invite(&text, &invite, &ua.contact(), caller);
    assert!(
        invite
            .header("Via")
            .is_some_and(|v| v.to_ascii_uppercase().starts_with("SIP/2.0/WS")),
        "sent over WebSocket\n{text}"
    );

    // The agent is busy: 486. The server ACKs it on the socket.
    ws.send(&answer(&invite, 486, "Busy Here", "busy1"));
    let (ack_text, ack) = next_request(&mut ws, REPLY, "the ACK of the 486", &|| dump(&customer));
    assert_eq!(ack.method(), Some("ACK"), "{ack_text}");
    assert_eq!(
        ack.header("Call-ID"),
        invite.header("Call-ID"),
        "{ack_text}"
    );
    assert_eq!(cseq_number(&ack), cseq_number(&invite), "{ack_text}");
    assert_eq!(ack.cseq_method(), Some("ACK"), "{ack_text}");
    assert_eq!(
        ack.start_line.split_whitespace().nth(1),
        invite.start_line.split_whitespace().nth(1),
        "the ACK goes to the INVITE's Request-URI\n{ack_text}"
    );
    assert_eq!(
        branch(&ack),
        branch(&invite),
        "a non-2xx ACK is part of the INVITE transaction\n{ack_text}"
    );
    assert!(
        ack.header("To").and_then(|t| param(t, "tag")).as_deref() == Some("busy1"),
        "the ACK carries our To tag\n{ack_text}"
    );

    // The customer is still waiting, and the call is offered again: a new
    // INVITE (a new dialog) with a fresh WebRTC offer.
    let (text2, invite2) = next_request(
        &mut ws,
        Duration::from_secs(20),
        "the call offered again",
        &|| dump(&customer),
    );
    assert_webrtc_invite(&text2, &invite2, &ua.contact(), caller);
    assert_ne!(
        invite2.header("Call-ID"),
        invite.header("Call-ID"),
        "a new offer\n{text2}"
    );
    assert!(
        customer.sipp.running(),
        "the customer still waits\n{}",
        dump(&customer)
    );

    // This time the browser rings (180, as JsSIP does). The customer gives
    // up meanwhile: the server CANCELs the INVITE on the socket.
    ws.send(&answer(&invite2, 180, "Ringing", "ring2"));
    customer.hang_up();
    let (cancel_text, cancel) =
        next_request(&mut ws, Duration::from_secs(10), "the CANCEL", &|| {
            dump(&customer)
        });
    assert_eq!(cancel.method(), Some("CANCEL"), "{cancel_text}");
    assert_eq!(
        cancel.header("Call-ID"),
        invite2.header("Call-ID"),
        "{cancel_text}"
    );
    assert_eq!(cseq_number(&cancel), cseq_number(&invite2), "{cancel_text}");
    assert_eq!(branch(&cancel), branch(&invite2), "{cancel_text}");
    ws.send(&answer(&cancel, 200, "OK", "ring2"));
    ws.send(&answer(&invite2, 487, "Request Terminated", "ring2"));
    let (ack_text, ack) = next_request(&mut ws, REPLY, "the ACK of the 487", &|| dump(&customer));
    assert_eq!(ack.method(), Some("ACK"), "{ack_text}");
    assert_eq!(
        ack.header("Call-ID"),
        invite2.header("Call-ID"),
        "{ack_text}"
    );

    customer.finish();
    let row = row_of(&server, caller);
    assert_eq!(row.queue.as_deref(), Some("install"), "{row:?}");
    assert_eq!(row.agent_id, None, "nobody answered: {row:?}");
    assert_eq!(row.hangup_side, "caller", "{row:?}");
    // The agent is still registered on its socket.
    assert_eq!(registrations(&server), 1.0);
}
