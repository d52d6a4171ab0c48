//! HTTPS on the HTTP listener (`[http] tls_cert`, `tls_key`): the desk, the
//! API and SIP over WebSocket behind one certificate, so an agent on another
//! machine gets a secure context (the microphone) and `wss:`.
//!
//! A self-signed certificate (openssl) for 127.0.0.1; headless Chromium
//! (certificate errors ignored) logs in to the desk over https and its
//! browser phone registers over wss:/sip; the server records the binding's
//! transport as WSS. Plain HTTP on the TLS port gets no page. A config with
//! only one of the two files is refused by `check-config` with its line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::web::{artifacts, browser_tools, spawn_browser, ONE_BROWSER};
use common::{http_request, poll, require_binary, TestServer};

/// A self-signed certificate and key for 127.0.0.1 (PEM), made by openssl.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let openssl = require_binary("openssl", "Debian package openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=hotline test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl could not make a certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn desk_and_browser_phone_over_https_and_wss() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = browser_tools();
    let art = artifacts("https");
    let (cert, key) = self_signed(&art);
    let server = TestServer::builder().https(&cert, &key).start();
    assert!(
        server.log().contains("https=true"),
        "the server says it serves HTTPS\n{}",
        server.log()
    );

    // Plain HTTP on the TLS port: the handshake fails, no page is served.
    let plain = http_request(server.http, "GET", "/healthz", None, None);
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP must not be served on the HTTPS port: {plain:?}"
    );

    let mut browser = spawn_browser(
        &node,
        "e2e_https_phone.mjs",
        &art,
        &[
            ("HOTLINE_URL", format!("https://{}", server.http)),
            ("AGENT_ID", "1001".to_string()),
            ("AGENT_PW", common::password_of("1001")),
        ],
    );
    let registered = browser.expect("registered", Duration::from_secs(60));
    assert_eq!(registered["secure"], true, "a secure context: {registered}");
    assert!(
        registered["url"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://"),
        "{registered}"
    );
    browser.expect("done", Duration::from_secs(30));
    let log = poll(Duration::from_secs(5), || {
        let log = server.log();
        log.contains("transport=WSS").then_some(log)
    });
    let log = log.unwrap_or_else(|| server.log());
    assert!(
        log.contains("registered") && log.contains("transport=WSS"),
        "the desk registered over wss:\n{log}"
    );
}

#[test]
fn a_certificate_without_its_key_is_refused_with_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hotline.toml");
    std::fs::write(
        &config,
        "[sip]\nlisten = \"127.0.0.1:5060\"\ndomain = \"hotline.local\"\n\n[http]\nlisten = \"127.0.0.1:8080\"\ntls_cert = \"cert.pem\"\n\n[database]\nurl = \"sqlite://h.db\"\n",
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run hotline check-config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config must fail: {stderr}");
    assert!(
        stderr.contains("hotline.toml:7:") && stderr.contains("tls_cert and tls_key go together"),
        "the error names the file, the line and the fault: {stderr}"
    );
}
