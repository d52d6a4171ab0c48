//! The registrar as SIPp sees it, over UDP and over TCP: digest challenge,
//! right/wrong password, unknown user, too-brief Expires, unregistering, and
//! the brute-force guard; `/metrics` must agree with what SIPp saw.

mod common;

use std::time::Duration;

use common::{password_of, sipp, SipMessage, SippRun, TestServer, Transport};

/// The `expires=N` parameter of a Contact value.
fn contact_expires(contact: &str) -> Option<u64> {
    contact
        .split(';')
        .find_map(|p| p.trim().strip_prefix("expires="))
        .and_then(|v| v.trim().parse().ok())
}

/// The Contact SIPp registered (the one it put in its own REGISTER).
fn sipp_contact(run: &SippRun) -> String {
    let sent = run
        .messages()
        .into_iter()
        .find(|t| t.sent && t.msg.method() == Some("REGISTER"))
        .unwrap_or_else(|| panic!("SIPp sent no REGISTER\n{}", run.dump()));
    let contact = sent.msg.header("Contact").expect("SIPp's Contact");
    contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn assert_statuses(run: &SippRun, want: &[u16]) {
    assert_eq!(run.statuses(), want, "unexpected responses\n{}", run.dump());
    assert_eq!(run.code, 0, "SIPp reported a failed call\n{}", run.dump());
}

fn registrations(server: &TestServer) -> f64 {
    server.metric("hotline_registrations").unwrap_or(0.0)
}

fn challenge(t: Transport) {
    let server = TestServer::start();
    let run = sipp(
        &server,
        "register_challenge.xml",
        t,
        &["-set", "user", "1001"],
    );
    assert_statuses(&run, &[401]);
    let resp = &run.responses()[0];
    let challenges = resp.headers_named("WWW-Authenticate");
    assert_eq!(
        challenges.len(),
        1,
        "the default offers MD5 only: {challenges:?}"
    );
    for (c, alg) in challenges.iter().zip(["MD5"]) {
        assert!(c.starts_with("Digest "), "{c}");
        assert!(c.contains("realm=\"hotline.local\""), "{c}");
        assert!(c.contains("qop=\"auth\""), "{c}");
        assert!(c.contains("nonce=\""), "{c}");
        assert!(
            c.contains(&format!("algorithm={alg}")),
            "default challenge is MD5: {c}"
        );
    }
    assert_eq!(registrations(&server), 0.0, "a challenge registers nobody");
}

fn right_password(t: Transport) {
    let server = TestServer::start();
    let pass = password_of("1001");
    let run = sipp(
        &server,
        "register_ok.xml",
        t,
        &[
            "-set", "user", "1001", "-set", "expires", "300", "-au", "1001", "-ap", &pass,
        ],
    );
    assert_statuses(&run, &[401, 200]);
    let ok = &run.responses()[1];
    let bindings = ok.headers_named("Contact");
    assert_eq!(bindings.len(), 1, "exactly our binding: {bindings:?}");
    let ours = sipp_contact(&run);
    assert!(
        bindings[0].contains(&format!("<{ours}>")),
        "{bindings:?} vs {ours}"
    );
    let exp = contact_expires(bindings[0]).expect("expires= on the binding");
    assert!((295..=300).contains(&exp), "expires={exp}");
    if t == Transport::Tcp {
        assert!(ours.contains("transport=TCP"), "{ours}");
    }
    assert_eq!(
        registrations(&server),
        1.0,
        "/metrics hotline_registrations"
    );
    assert_eq!(
        server
            .metric("hotline_sip_auth_failures_total")
            .unwrap_or(0.0),
        0.0
    );
}

fn wrong_password(t: Transport) {
    let server = TestServer::start();
    let run = sipp(
        &server,
        "register_rejected.xml",
        t,
        &[
            "-set",
            "user",
            "1001",
            "-set",
            "expires",
            "300",
            "-au",
            "1001",
            "-ap",
            "not-the-password",
        ],
    );
    assert_statuses(&run, &[401, 403]);
    assert!(run.responses()[1].header("Contact").is_none());
    assert_eq!(registrations(&server), 0.0);
    assert_eq!(
        server.metric("hotline_sip_auth_failures_total"),
        Some(1.0),
        "one failed attempt counted\n{}",
        server.metrics()
    );
}

fn unknown_user(t: Transport) {
    let server = TestServer::start();
    let run = sipp(
        &server,
        "register_unknown.xml",
        t,
        &["-set", "user", "4242"],
    );
    assert_statuses(&run, &[404]);
    assert!(
        run.responses()[0].header("WWW-Authenticate").is_none(),
        "no challenge for an unknown user"
    );
    assert_eq!(registrations(&server), 0.0);
}

fn too_brief(t: Transport) {
    let server = TestServer::builder().min_expires(60).start();
    let pass = password_of("1002");
    let run = sipp(
        &server,
        "register_too_brief.xml",
        t,
        &[
            "-set", "user", "1002", "-set", "expires", "10", "-au", "1002", "-ap", &pass,
        ],
    );
    assert_statuses(&run, &[401, 423]);
    let resp = &run.responses()[1];
    assert_eq!(resp.header("Min-Expires"), Some("60"), "{resp:?}");
    assert_eq!(registrations(&server), 0.0, "a 423 registers nobody");
}

fn unregister(t: Transport) {
    let server = TestServer::start();
    let pass = password_of("1001");
    let run = sipp(
        &server,
        "register_unregister.xml",
        t,
        &["-set", "user", "1001", "-au", "1001", "-ap", &pass],
    );
    assert_statuses(&run, &[401, 200, 200, 200]);
    let r = run.responses();
    let ours = sipp_contact(&run);
    let registered = r[1].headers_named("Contact");
    assert!(
        registered.len() == 1 && registered[0].contains(&ours),
        "the first 200 lists our binding: {registered:?}"
    );
    assert_eq!(
        r[2].headers_named("Contact"),
        Vec::<&str>::new(),
        "the 200 to Expires: 0 lists no binding"
    );
    assert_eq!(
        r[3].headers_named("Contact"),
        Vec::<&str>::new(),
        "a Contact-less query afterwards lists no binding"
    );
    assert_eq!(registrations(&server), 0.0, "/metrics after unregistering");
}

fn brute_force(t: Transport) {
    // 3 failures within 60 s block the source for 30 s (longer than the test).
    let server = TestServer::builder().auth_guard(3, 60, 30).start();
    let pass = password_of("1001");

    // Control: the password used below is the right one.
    let ok = sipp(
        &server,
        "register_ok.xml",
        t,
        &[
            "-set", "user", "1001", "-set", "expires", "300", "-au", "1001", "-ap", &pass,
        ],
    );
    assert_statuses(&ok, &[401, 200]);

    let csv = server.dir().join(format!("right-{t:?}.csv"));
    std::fs::write(
        &csv,
        format!("SEQUENTIAL\n[authentication username=1001 password={pass}];\n"),
    )
    .expect("write injection file");
    let csv = csv.to_string_lossy().into_owned();
    let run = sipp(
        &server,
        "register_bruteforce.xml",
        t,
        &[
            "-set", "user", "1001", "-au", "1001", "-ap", "guess", "-inf", &csv,
        ],
    );
    assert_statuses(&run, &[401, 403, 403, 403, 403, 403]);
    // The 5th request really carried credentials (the right ones).
    let sent: Vec<SipMessage> = run
        .messages()
        .into_iter()
        .filter(|m| m.sent)
        .map(|m| m.msg)
        .collect();
    assert_eq!(sent.len(), 6, "{}", run.dump());
    assert!(
        sent[4].header("Authorization").is_some(),
        "the right-password REGISTER must carry Authorization\n{}",
        run.dump()
    );
    assert!(
        run.responses()[5].header("WWW-Authenticate").is_none(),
        "a blocked source is not even challenged"
    );

    assert_eq!(
        server.metric("hotline_sip_auth_failures_total"),
        Some(3.0),
        "three wrong passwords counted; the blocked one is not\n{}",
        server.metrics()
    );
    assert_eq!(
        server.metric("hotline_sip_blocked_sources_total"),
        Some(1.0),
        "{}",
        server.metrics()
    );
    // The control registration is still there (the block refuses, it does not unregister).
    assert_eq!(registrations(&server), 1.0);

    // Other transports from the same IP are blocked too: OPTIONS over UDP gets 403.
    let reply = common::udp_request(
        server.sip,
        |p| common::options_request(server.sip, p, "UDP"),
        Duration::from_secs(2),
    )
    .expect("an answer to OPTIONS from a blocked source");
    assert_eq!(SipMessage::parse(&reply).status(), Some(403), "{reply}");
}

macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod udp {
            $( #[test] fn $name() { super::$name(super::Transport::Udp) } )*
        }
        mod tcp {
            $( #[test] fn $name() { super::$name(super::Transport::Tcp) } )*
        }
    };
}

both_transports!(
    challenge,
    right_password,
    wrong_password,
    unknown_user,
    too_brief,
    unregister,
    brute_force,
);

/// `digest_algorithms` sets the order of the challenges.
#[test]
fn challenge_order_follows_config() {
    let server = TestServer::builder()
        .digest_algorithms(&["SHA-256", "MD5"])
        .start();
    let run = sipp(
        &server,
        "register_challenge.xml",
        Transport::Udp,
        &["-set", "user", "1003"],
    );
    assert_statuses(&run, &[401]);
    let challenges: Vec<String> = run.responses()[0]
        .headers_named("WWW-Authenticate")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges[0].contains("algorithm=SHA-256"),
        "{challenges:?}"
    );
    assert!(challenges[1].contains("algorithm=MD5"), "{challenges:?}");
}
