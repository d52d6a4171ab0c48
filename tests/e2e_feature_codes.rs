//! Agent feature codes from a real SIP UA (SIPp): `*2` not ready, `*1` ready,
//! accepted only from the address the agent registered from.

mod common;

use std::time::Duration;

use common::{free_port_pair, password_of, udp_exchange, SipMessage, TestServer, Transport};

fn dial_code(server: &TestServer, code: &str) -> common::SippRun {
    let media = free_port_pair().to_string();
    let pass = password_of("1001");
    common::sipp(
        server,
        "feature_code.xml",
        Transport::Udp,
        &[
            "-set", "user", "1001", "-set", "code", code, "-au", "1001", "-ap", &pass, "-mp",
            &media,
        ],
    )
}

#[test]
fn registered_agent_sets_state_with_feature_codes() {
    let server = TestServer::start();
    let run = dial_code(&server, "*2");
    assert_eq!(
        run.code,
        0,
        "*2 call failed:\n{}\n{}",
        run.errors,
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("agent state set by feature code") && log.contains("code=*2"),
        "{log}"
    );
    assert!(
        log.contains("NotReady { reason: \"feature code\" }"),
        "{log}"
    );

    let run = dial_code(&server, "*1");
    assert_eq!(
        run.code,
        0,
        "*1 call failed:\n{}\n{}",
        run.errors,
        server.log()
    );
    let log = server.log();
    let ready_after = log
        .rfind("code=*1")
        .map(|i| {
            log[..i]
                .rsplit('\n')
                .next()
                .unwrap_or("")
                .contains("state=Ready")
        })
        .unwrap_or(false);
    assert!(ready_after, "agent should be Ready after *1:\n{log}");
}

#[test]
fn feature_code_from_an_unregistered_address_is_forbidden() {
    let server = TestServer::start();
    let to = server.sip;
    let replies = udp_exchange(
        to,
        |port| {
            format!(
                "INVITE sip:*2@{to} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-fc-1;rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:1001@127.0.0.1>;tag=forged\r\n\
                 To: <sip:*2@{to}>\r\n\
                 Call-ID: forged-feature-code\r\n\
                 CSeq: 1 INVITE\r\n\
                 Contact: <sip:1001@127.0.0.1:{port}>\r\n\
                 Content-Length: 0\r\n\r\n"
            )
            .into_bytes()
        },
        Duration::from_secs(3),
        true,
    );
    let statuses: Vec<u16> = replies
        .iter()
        .filter_map(|r| SipMessage::parse(&String::from_utf8_lossy(r)).status())
        .collect();
    assert!(statuses.contains(&403), "expected 403, got {statuses:?}");
    assert!(!server.log().contains("agent state set by feature code"));
}
