//! Real softphones against the registrar: pjsua2 (Python, PyPI pjsua2-python)
//! and baresip (Debian baresip-core). What the phone reports and what the
//! server reports (`/metrics` hotline_registrations) must agree.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    field, free_port, free_port_pair, parse_flat_json, password_of, poll, require_binary,
    spawn_python, wait_bounded, KillOnDrop, LineStream, TestServer,
};

/// Wait until `/metrics` shows `want` registrations (the gauge is set before
/// the 200 is sent, so this is normally immediate).
fn expect_registrations(server: &TestServer, want: f64, context: &str) {
    if let Err(last) = server.wait_metric("hotline_registrations", Duration::from_secs(3), |v| {
        v == want
    }) {
        panic!(
            "{context}: hotline_registrations is {last:?}, expected {want}\n{}",
            server.metrics()
        );
    }
}

struct Pjsua {
    _child: KillOnDrop,
    lines: LineStream,
    stderr: std::path::PathBuf,
    /// Created by the test to let the phone unregister (`--hold-until-file`).
    go: std::path::PathBuf,
}

impl Pjsua {
    fn start(server: &TestServer, user: &str, transport: &str, extra: &[&str]) -> Self {
        let stderr = server.dir().join(format!("pjsua2-{user}-{transport}.err"));
        let go = server.dir().join(format!("pjsua2-{user}-{transport}.go"));
        let mut args: Vec<String> = vec![
            "--server".into(),
            server.sip.to_string(),
            "--user".into(),
            user.into(),
            "--password".into(),
            password_of(user),
            "--transport".into(),
            transport.into(),
            "--limit".into(),
            "30".into(),
            "--hold-until-file".into(),
            go.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (child, lines) = spawn_python("pjsua2_register.py", &args, &stderr);
        Self {
            _child: child,
            lines,
            stderr,
            go,
        }
    }

    /// Let the phone go on and unregister.
    fn release(&mut self) {
        self.event("holding", Duration::from_secs(5));
        std::fs::write(&self.go, b"go").expect("write the go-ahead file");
    }

    /// The next JSON event named `event` (fails on a "failed" event or timeout).
    fn event(&mut self, event: &str, limit: Duration) -> Vec<(String, String)> {
        let want = format!("\"event\": \"{event}\"");
        let got = self
            .lines
            .wait_for(limit, |l| l.contains(&want) || l.contains("\"failed\""));
        match got {
            Some(l) if l.contains(&want) => parse_flat_json(&l),
            other => panic!(
                "pjsua2: expected event {event:?}, got {other:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.lines.dump(),
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            ),
        }
    }

    fn exit_code(mut self) -> i32 {
        self.lines.drain(Duration::from_secs(15));
        let st = wait_bounded(&mut self._child.0, Duration::from_secs(5), "pjsua2");
        st.code().unwrap_or(-1)
    }
}

fn num(obj: &[(String, String)], key: &str) -> f64 {
    field(obj, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key:?} in {obj:?}"))
}

/// pjsua2 registers with digest, refreshes its registration before it expires
/// (server min_expires 5, phone asks for 8 s), then unregisters; the server's
/// binding count follows: 1 after the first 200, still 1 after the refresh
/// (refreshed, not duplicated), 0 after the unregistration.
fn pjsua2_register_cycle(transport: &str) {
    let server = TestServer::builder().min_expires(5).start();
    let mut phone = Pjsua::start(
        &server,
        "1001",
        transport,
        // pjsip refreshes no sooner than ~5 s after a 200, so ask for 8 s
        // (refresh 3 s before expiry) to keep a margin over the 5 s minimum.
        &[
            "--expires",
            "8",
            "--refresh-before",
            "3",
            "--refreshes",
            "1",
        ],
    );
    let started = phone.event("started", Duration::from_secs(10));
    assert_eq!(field(&started, "pjsip"), Some("2.15.1"));

    let first = phone.event("registered", Duration::from_secs(10));
    assert_eq!(num(&first, "count"), 1.0);
    expect_registrations(&server, 1.0, "after pjsua2's first REGISTER");

    let second = phone.event("registered", Duration::from_secs(15));
    assert_eq!(num(&second, "count"), 2.0);
    let gap = num(&second, "t") - num(&first, "t");
    assert!(
        (3.0..=8.0).contains(&gap),
        "the refresh came {gap:.1} s after the registration (expected before the 8 s expiry)"
    );
    expect_registrations(&server, 1.0, "after pjsua2's refresh");
    phone.release();

    let unreg = phone.event("unregistered", Duration::from_secs(10));
    assert_eq!(num(&unreg, "code"), 200.0);
    expect_registrations(&server, 0.0, "after pjsua2 unregistered");
    let done = phone.event("done", Duration::from_secs(10));
    assert_eq!(field(&done, "ok"), Some("true"));
    assert_eq!(phone.exit_code(), 0, "pjsua2_register.py exit status");
}

#[test]
fn pjsua2_registers_refreshes_and_unregisters_udp() {
    pjsua2_register_cycle("udp");
}

#[test]
fn pjsua2_registers_refreshes_and_unregisters_tcp() {
    pjsua2_register_cycle("tcp");
}

/// With only SHA-256 offered (RFC 8760), pjsua2 2.15 still registers.
#[test]
fn pjsua2_registers_with_sha256_digest_only() {
    let server = TestServer::builder()
        .min_expires(5)
        .digest_algorithms(&["SHA-256"])
        .start();
    let mut phone = Pjsua::start(&server, "1003", "udp", &["--refreshes", "0"]);
    let reg = phone.event("registered", Duration::from_secs(10));
    assert_eq!(num(&reg, "count"), 1.0);
    expect_registrations(&server, 1.0, "after a SHA-256 registration");
    phone.release();
    phone.event("unregistered", Duration::from_secs(10));
    expect_registrations(&server, 0.0, "after the SHA-256 unregistration");
    assert_eq!(phone.exit_code(), 0);
    assert_eq!(
        server
            .metric("hotline_sip_auth_failures_total")
            .unwrap_or(0.0),
        0.0
    );
}

// ---------------------------------------------------------------------------
// baresip

/// A baresip process with its ctrl_tcp connection.
struct Baresip {
    child: KillOnDrop,
    ctrl: TcpStream,
    buf: Vec<u8>,
    log: std::path::PathBuf,
    /// Every event/response received so far.
    seen: Vec<String>,
}

impl Baresip {
    fn start(server: &TestServer, user: &str, regint: u32) -> Self {
        let bin = require_binary("baresip", "Debian package baresip-core");
        let dir = server.dir().join(format!("baresip-{user}"));
        std::fs::create_dir_all(&dir).expect("mkdir baresip config dir");
        let sip_port = free_port_pair(); // baresip also opens TLS on port + 1
        let ctrl_port = free_port();
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method\tepoll\n\
                 sip_listen\t127.0.0.1:{sip_port}\n\
                 sip_transports\tudp\n\
                 net_interface\t127.0.0.1\n\
                 audio_player\talsa,null\n\
                 audio_source\tausine,440\n\
                 module_path\t/usr/lib/baresip/modules\n\
                 module\tg711.so\n\
                 module\tausine.so\n\
                 module_app\taccount.so\n\
                 module_app\tmenu.so\n\
                 module_app\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n"
            ),
        )
        .expect("write baresip config");
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@{}>;auth_user={user};auth_pass={};regint={regint}\n",
                server.sip,
                password_of(user)
            ),
        )
        .expect("write baresip accounts");
        let log = dir.join("baresip.log");
        let out = std::fs::File::create(&log).expect("create baresip.log");
        let child = Command::new(bin)
            .arg("-f")
            .arg(&dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn baresip");
        let mut child = KillOnDrop(child);
        let ctrl = poll(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", ctrl_port)).ok()
        });
        let Some(ctrl) = ctrl else {
            let _ = child.0.kill();
            panic!(
                "baresip's ctrl_tcp never listened on {ctrl_port}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Self {
            child,
            ctrl,
            buf: Vec::new(),
            log,
            seen: Vec::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn send(&mut self, command: &str, token: &str) {
        let json = format!("{{\"command\":\"{command}\",\"token\":\"{token}\"}}");
        let frame = format!("{}:{json},", json.len());
        self.ctrl
            .write_all(frame.as_bytes())
            .expect("write to ctrl_tcp");
    }

    /// The next netstring message within `limit`; None on timeout or close.
    fn next_message(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .expect("netstring length");
                if self.buf.len() > colon + len + 1 {
                    let msg =
                        String::from_utf8_lossy(&self.buf[colon + 1..colon + 1 + len]).into_owned();
                    self.buf.drain(..colon + len + 2);
                    self.seen.push(msg.clone());
                    return Some(msg);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.ctrl.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.ctrl.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Send a command and return the `data` of its response.
    fn command(&mut self, command: &str, token: &str) -> String {
        self.send(command, token);
        let want = format!("\"token\":\"{token}\"");
        loop {
            match self.next_message(Duration::from_secs(5)) {
                Some(m) if m.contains("\"response\":true") && m.contains(&want) => {
                    return field(&parse_flat_json(&m), "data")
                        .unwrap_or_default()
                        .to_string();
                }
                Some(_) => continue,
                None => panic!(
                    "baresip did not answer {command:?}\n--- ctrl ---\n{}\n--- log ---\n{}",
                    self.seen.join("\n"),
                    self.log()
                ),
            }
        }
    }
}

/// baresip registers as agent 1002 (its own `reginfo` says OK and the server
/// counts one binding), and `quit` unregisters before it exits.
#[test]
fn baresip_registers_and_unregisters_on_quit() {
    // The default config: baresip 1.0 (libre) gives up with ENOSYS when a 401
    // carries any SHA-256 challenge, which is why MD5 alone is the default.
    let server = TestServer::start();
    let mut phone = Baresip::start(&server, "1002", 300);
    let aor = format!("sip:1002@{}", server.sip);

    let reginfo = poll(Duration::from_secs(10), || {
        let info = phone.command("reginfo", "r");
        (info.contains(&aor) && info.contains("OK")).then_some(info)
    });
    let Some(reginfo) = reginfo else {
        panic!(
            "baresip never reported {aor} registered\n--- ctrl ---\n{}\n--- log ---\n{}",
            phone.seen.join("\n"),
            phone.log()
        );
    };
    assert!(reginfo.contains("Expires"), "{reginfo}");
    expect_registrations(&server, 1.0, "after baresip registered");

    let t = Instant::now();
    phone.send("quit", "q");
    let mut unregistering = false;
    while let Some(m) = phone.next_message(Duration::from_secs(10)) {
        unregistering |= m.contains("\"type\":\"UNREGISTERING\"");
        if m.contains("\"type\":\"EXIT\"") {
            break;
        }
    }
    assert!(
        unregistering,
        "baresip did not unregister on quit\n{}",
        phone.seen.join("\n")
    );
    let status = wait_bounded(&mut phone.child.0, Duration::from_secs(10), "baresip quit");
    assert!(status.success(), "baresip exit status {status}");
    expect_registrations(&server, 0.0, "after baresip quit");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "quit took {:?}",
        t.elapsed()
    );
    let log = phone.log();
    assert!(log.contains("200 OK"), "baresip saw its 200s:\n{log}");
}
