//! Malformed and odd-but-valid messages (tests/torture/*.sip, RFC 4475 in
//! spirit) sent to a running server over UDP, and the valid ones over TCP:
//! each must get exactly the answer its file states (or none), and the server
//! must still answer OPTIONS afterwards.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{options_request, tcp_request, udp_exchange, SipMessage, TestServer, REPO};

/// How long silence must last for "no reply".
const SILENCE: Duration = Duration::from_millis(500);
/// How long to wait for an expected reply.
const REPLY_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Drop,
    Any,
    Status(u16, Option<String>),
}

#[derive(Debug)]
struct Case {
    name: String,
    expect: Expect,
    tcp: bool,
    template: String,
}

fn load_cases() -> Vec<Case> {
    let dir = Path::new(REPO).join("tests/torture");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .collect();
    files.sort();
    files.iter().map(|p| parse_case(p)).collect()
}

fn parse_case(path: &Path) -> Case {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut expect = None;
    let mut tcp = None;
    let mut rest = text.as_str();
    while rest.starts_with('#') {
        let (line, tail) = rest.split_once('\n').unwrap_or((rest, ""));
        if let Some(v) = line.strip_prefix("# expect:") {
            let v = v.trim();
            expect = Some(match v {
                "drop" => Expect::Drop,
                "any" => Expect::Any,
                _ => {
                    let (code, reason) = match v.split_once(' ') {
                        Some((c, r)) => (c, Some(r.trim().to_string())),
                        None => (v, None),
                    };
                    let code = code
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}: bad expect line {line:?}"));
                    Expect::Status(code, reason)
                }
            });
        } else if let Some(v) = line.strip_prefix("# tcp:") {
            tcp = Some(v.trim().starts_with("yes"));
        }
        rest = tail;
    }
    let expect = expect.unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
    // Valid messages (2xx, or a 401 challenge) are replayed over TCP unless told not to.
    let valid = matches!(expect, Expect::Status(c, _) if (200..300).contains(&c) || c == 401);
    Case {
        name,
        tcp: tcp.unwrap_or(valid),
        expect,
        template: rest.to_string(),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Turn a template into wire bytes: CRLF line endings, placeholders filled.
fn render(template: &str, server: SocketAddr, local_port: u16, transport: &str) -> Vec<u8> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}-{n}", std::process::id());
    let mut text = template.replace('\n', "\r\n");
    if let Some(i) = text.find("{END}") {
        text.truncate(i);
    }
    let text = text
        .replace("{SERVER}", &server.to_string())
        .replace("{LOCAL}", &format!("127.0.0.1:{local_port}"))
        .replace("{TRANSPORT}", transport)
        .replace("{BRANCH}", &format!("z9hG4bK-torture-{id}"))
        .replace("{CALLID}", &format!("torture-{id}@127.0.0.1"))
        .replace("{TAG}", &format!("t{id}"));
    let text = expand_repeat(&text);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => text.split_at(i + 4),
        None => (text.as_str(), ""),
    };
    let body = expand_bytes(body);
    let mut out = expand_bytes(&head.replace("{CL}", &body.len().to_string()));
    out.extend_from_slice(&body);
    out
}

/// `{REPEAT:c:N}` → c repeated N times.
fn expand_repeat(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{REPEAT:") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closing } of REPEAT") + i;
        let spec = &rest[i + 8..end];
        let (what, count) = spec.rsplit_once(':').expect("REPEAT:what:count");
        out.push_str(&what.repeat(count.parse().expect("REPEAT count")));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `{NUL}` and `{HEX:..}` → raw bytes.
fn expand_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let nul = rest.find("{NUL}");
        let hex = rest.find("{HEX:");
        let next = match (nul, hex) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        out.extend_from_slice(&rest.as_bytes()[..next]);
        if Some(next) == nul {
            out.push(0);
            rest = &rest[next + 5..];
        } else {
            let end = rest[next..].find('}').expect("closing } of HEX") + next;
            for b in rest[next + 5..end].split_whitespace() {
                out.push(u8::from_str_radix(b, 16).expect("hex byte"));
            }
            rest = &rest[end + 1..];
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// Compare one reply (or its absence) with the expectation; Err describes a mismatch.
fn judge(case: &Case, reply: Option<&str>) -> Result<(), String> {
    match (&case.expect, reply) {
        (Expect::Any, _) | (Expect::Drop, None) => Ok(()),
        (Expect::Drop, Some(r)) => Err(format!("expected no reply, got {:?}", first_line(r))),
        (Expect::Status(code, _), None) => Err(format!("expected {code}, got no reply")),
        (Expect::Status(code, reason), Some(r)) => {
            let msg = SipMessage::parse(r);
            if msg.status() != Some(*code) {
                return Err(format!("expected {code}, got {:?}", first_line(r)));
            }
            if let Some(reason) = reason {
                if &msg.reason() != reason {
                    return Err(format!(
                        "expected reason {reason:?}, got {:?}",
                        msg.reason()
                    ));
                }
            }
            if *code == 501 && msg.header("Allow").is_none() {
                return Err("501 without Allow".into());
            }
            if msg.cseq_method().is_none() || msg.header("Call-ID").is_none() {
                return Err(format!("reply lacks CSeq or Call-ID: {r:?}"));
            }
            Ok(())
        }
    }
}

fn first_line(r: &str) -> &str {
    r.lines().next().unwrap_or("")
}

fn wait_for(case: &Case) -> Duration {
    match case.expect {
        Expect::Status(..) => REPLY_WAIT,
        _ => SILENCE,
    }
}

/// OPTIONS over UDP, retransmitted like a real client would (RFC 3261 T1 =
/// 500 ms, doubling), so a datagram lost in a full socket buffer is not
/// mistaken for a dead server.
fn assert_options_ok(server: &mut TestServer, after: &str) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let request = options_request(server.sip, sock.local_addr().unwrap().port(), "UDP");
    let started = std::time::Instant::now();
    let mut reply = None;
    let mut wait = Duration::from_millis(500);
    while reply.is_none() && started.elapsed() < Duration::from_secs(8) {
        sock.send_to(&request, server.sip).expect("send OPTIONS");
        sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 8192];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            reply = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        wait = (wait * 2).min(Duration::from_secs(4));
    }
    let status = reply.as_deref().map(|r| SipMessage::parse(r).status());
    assert_eq!(status, Some(Some(200)), "OPTIONS after {after}: {reply:?}");
    assert!(server.is_alive(), "the server process died after {after}");
}

#[test]
fn torture_messages_over_udp() {
    let cases = load_cases();
    assert!(cases.len() >= 20, "only {} torture files", cases.len());
    let mut server = TestServer::start();
    let mut failures = Vec::new();
    let mut drops = 0;
    for case in &cases {
        let replies = udp_exchange(
            server.sip,
            |port| render(&case.template, server.sip, port, "UDP"),
            wait_for(case),
            false,
        );
        let reply = replies
            .first()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        if let Err(why) = judge(case, reply.as_deref()) {
            failures.push(format!("{}: {why}", case.name));
        }
        if case.expect == Expect::Drop {
            drops += 1;
        }
        // A server that dies on one message must be named by that message.
        if !server.is_alive() {
            panic!("the server died on {}\n{}", case.name, failures.join("\n"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} torture messages got the wrong answer:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_options_ok(&mut server, "the torture messages");
    // What was dropped shows in /metrics.
    let dropped = common::metric_series(&server.metrics(), "hotline_sip_malformed_total")
        .into_iter()
        .filter(|(labels, _)| labels.contains("dropped"))
        .map(|(_, v)| v)
        .sum::<f64>();
    assert!(
        dropped >= f64::from(drops),
        "hotline_sip_malformed_total{{action=\"dropped\"}} = {dropped}, expected at least {drops}"
    );
}

#[test]
fn valid_torture_messages_over_tcp() {
    let cases: Vec<Case> = load_cases().into_iter().filter(|c| c.tcp).collect();
    assert!(cases.len() >= 4, "only {} valid torture files", cases.len());
    let mut server = TestServer::start();
    let mut failures = Vec::new();
    for case in &cases {
        let reply = tcp_request(
            server.sip,
            |port| render(&case.template, server.sip, port, "TCP"),
            wait_for(case),
        );
        if let Err(why) = judge(case, reply.as_deref()) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "valid messages over TCP got the wrong answer:\n{}",
        failures.join("\n")
    );
    let reply = tcp_request(
        server.sip,
        |p| options_request(server.sip, p, "TCP"),
        REPLY_WAIT,
    );
    assert_eq!(
        reply.as_deref().map(|r| SipMessage::parse(r).status()),
        Some(Some(200)),
        "OPTIONS over TCP afterwards"
    );
    assert_options_ok(&mut server, "the TCP messages");
}

/// The same broken datagram twice gets the same stateless answer (same To tag),
/// and a flood of garbage does not stop the server answering.
#[test]
fn retransmitted_broken_request_and_garbage_flood() {
    let mut server = TestServer::start();
    let case = load_cases()
        .into_iter()
        .find(|c| c.name.starts_with("01-"))
        .expect("01-content-length-exceeds-body.sip");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = sock.local_addr().unwrap().port();
    let bytes = render(&case.template, server.sip, port, "UDP");
    sock.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut tags = Vec::new();
    for _ in 0..2 {
        sock.send_to(&bytes, server.sip).expect("send");
        let mut buf = [0u8; 4096];
        let (n, _) = sock
            .recv_from(&mut buf)
            .expect("a 400 for the broken request");
        let msg = SipMessage::parse(&String::from_utf8_lossy(&buf[..n]));
        assert_eq!(msg.status(), Some(400));
        tags.push(msg.header("To").unwrap_or_default().to_string());
    }
    assert_eq!(tags[0], tags[1], "a retransmission gets the same To tag");

    let mut seed: u32 = 0x2545_f491;
    for i in 0..500u32 {
        let len = 1 + (i as usize * 37) % 1400;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        sock.send_to(&junk, server.sip).expect("send junk");
    }
    assert_options_ok(&mut server, "500 datagrams of noise");
}
