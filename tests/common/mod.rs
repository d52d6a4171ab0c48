//! Shared helpers for the end-to-end tests: a real `hotline serve` process on
//! free loopback ports, and drivers for the third-party peers (SIPp, pjsua2
//! in the project's `.venv`, raw UDP/TCP).
//!
//! Every e2e test binary does `mod common;` and uses only part of this file.
#![allow(dead_code)]

pub mod agents;
pub mod campaign;
pub mod web;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository root (where Cargo.toml is).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// An agent in the generated config.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub password: String,
    pub skills: Vec<String>,
}

impl Agent {
    pub fn new(id: &str, password: &str) -> Self {
        Self {
            id: id.to_string(),
            name: format!("Agent {id}"),
            password: password.to_string(),
            skills: vec!["repair".to_string()],
        }
    }
}

/// The password of the default agents 1001..1003 (as in hotline.toml).
pub fn password_of(id: &str) -> String {
    format!("hotline{id}")
}

// ---------------------------------------------------------------------------
// Ports

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn remember(port: u16) -> bool {
    let mut g = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashSet::new).insert(port)
}

/// A loopback port that is free for both UDP and TCP right now and was not
/// handed out before by this process.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port on 127.0.0.1");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && remember(port) {
            return port;
        }
    }
    panic!("no free UDP+TCP port on 127.0.0.1 after 200 tries");
}

/// A free port P such that P and P+1 are both free (baresip opens TLS on P+1).
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < u16::MAX
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && remember(p + 1)
        {
            return p;
        }
    }
    panic!("no free pair of ports on 127.0.0.1");
}

// ---------------------------------------------------------------------------
// Peer binaries

/// Panic with an install hint when a peer binary is not on PATH (never skip).
pub fn require_binary(name: &str, package_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "peer binary `{name}` not found on PATH: install {package_hint} \
         (scripts/test installs every peer idempotently)"
    );
}

/// The project's Python with pjsua2, or a panic saying how to get it.
pub fn venv_python() -> PathBuf {
    let py = Path::new(REPO).join(".venv/bin/python");
    if !py.exists() {
        panic!(
            "{} is missing: run scripts/test, or `python3 -m venv .venv && \
             .venv/bin/pip install pjsua2-python==2.15.1.post1` in {REPO}",
            py.display()
        );
    }
    py
}

/// Wait for a child with a deadline; kill it and panic when it overruns.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `f` every 50 ms until it returns Some or `limit` passes.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// The server under test

/// Overrides for the generated configuration.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    pub agents: Vec<Agent>,
    pub domain: String,
    pub digest_algorithms: Option<Vec<String>>,
    pub min_expires: Option<u32>,
    pub max_expires: Option<u32>,
    pub nonce_ttl_secs: Option<u64>,
    pub auth_max_failures: Option<u32>,
    pub auth_window_secs: Option<u64>,
    pub auth_block_secs: Option<u64>,
    /// Appended verbatim to the generated TOML (new sections).
    pub extra_toml: String,
    /// Dialplan files (name, contents) written into the server's directory
    /// and listed in `[dialplans] files`.
    pub dialplans: Vec<(String, String)>,
    /// `[media] timeout_secs` (None: the server's default).
    pub media_timeout_secs: Option<u64>,
    /// `[media] rtp_ports` as (first, last).
    pub rtp_ports: Option<(u16, u16)>,
    /// `[sip] answer_delay_ms`: ring (180) this long before answering.
    pub answer_delay_ms: Option<u64>,
    /// `[sip] ws_keepalive_secs`: ping period of browsers' WebSockets.
    pub ws_keepalive_secs: Option<u64>,
    /// Symbolic links (name in the server's directory, target) made before
    /// the server starts.
    pub links: Vec<(String, PathBuf)>,
    /// `[http] tls_cert`, `tls_key`: HTTPS (the plain-HTTP helpers then do
    /// not apply; readiness is the "hotline ready" log line).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            agents: ["1001", "1002", "1003"]
                .iter()
                .map(|id| Agent::new(id, &password_of(id)))
                .collect(),
            domain: "hotline.local".to_string(),
            digest_algorithms: None,
            min_expires: None,
            max_expires: None,
            nonce_ttl_secs: None,
            auth_max_failures: None,
            auth_window_secs: None,
            auth_block_secs: None,
            extra_toml: String::new(),
            dialplans: Vec::new(),
            media_timeout_secs: None,
            rtp_ports: None,
            answer_delay_ms: None,
            ws_keepalive_secs: None,
            links: Vec::new(),
            tls: None,
        }
    }
}

impl ServerBuilder {
    pub fn agents(mut self, agents: Vec<Agent>) -> Self {
        self.agents = agents;
        self
    }
    pub fn digest_algorithms(mut self, algs: &[&str]) -> Self {
        self.digest_algorithms = Some(algs.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn min_expires(mut self, v: u32) -> Self {
        self.min_expires = Some(v);
        self
    }
    pub fn max_expires(mut self, v: u32) -> Self {
        self.max_expires = Some(v);
        self
    }
    /// Block a source after `max_failures` failures within `window_secs`, for `block_secs`.
    pub fn auth_guard(mut self, max_failures: u32, window_secs: u64, block_secs: u64) -> Self {
        self.auth_max_failures = Some(max_failures);
        self.auth_window_secs = Some(window_secs);
        self.auth_block_secs = Some(block_secs);
        self
    }
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self
    }
    /// Load a dialplan: `contents` is written as `<dir>/<name>` at start.
    pub fn dialplan(mut self, name: &str, contents: &str) -> Self {
        self.dialplans
            .push((name.to_string(), contents.to_string()));
        self
    }
    /// Hang up calls whose RTP stops for this long (0 = never).
    pub fn media_timeout_secs(mut self, secs: u64) -> Self {
        self.media_timeout_secs = Some(secs);
        self
    }
    pub fn rtp_ports(mut self, first: u16, last: u16) -> Self {
        self.rtp_ports = Some((first, last));
        self
    }
    /// Make `<server dir>/<name>` a symbolic link to `target` before start
    /// (e.g. `prompts`: hotline loads the prompts it plays itself, such as
    /// the callback offer, from `prompts/` beside the first dialplan file).
    pub fn link(mut self, name: &str, target: &Path) -> Self {
        self.links.push((name.to_string(), target.to_path_buf()));
        self
    }
    /// Serve HTTP over TLS with this PEM certificate chain and key.
    pub fn https(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }
    /// Send 180 and answer after this delay.
    pub fn answer_delay_ms(mut self, ms: u64) -> Self {
        self.answer_delay_ms = Some(ms);
        self
    }
    /// Ping browsers' WebSockets every `secs`.
    pub fn ws_keepalive_secs(mut self, secs: u64) -> Self {
        self.ws_keepalive_secs = Some(secs);
        self
    }

    fn render(&self, sip: SocketAddr, http: SocketAddr, dir: &Path) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "[sip]\nlisten = \"{sip}\"\ndomain = {:?}", self.domain);
        let num = |t: &mut String, k: &str, v: Option<u64>| {
            if let Some(v) = v {
                let _ = writeln!(t, "{k} = {v}");
            }
        };
        num(&mut t, "min_expires", self.min_expires.map(u64::from));
        num(&mut t, "max_expires", self.max_expires.map(u64::from));
        num(&mut t, "nonce_ttl_secs", self.nonce_ttl_secs);
        num(
            &mut t,
            "auth_max_failures",
            self.auth_max_failures.map(u64::from),
        );
        num(&mut t, "auth_window_secs", self.auth_window_secs);
        num(&mut t, "auth_block_secs", self.auth_block_secs);
        num(&mut t, "answer_delay_ms", self.answer_delay_ms);
        num(&mut t, "ws_keepalive_secs", self.ws_keepalive_secs);
        if let Some(algs) = &self.digest_algorithms {
            let _ = writeln!(t, "digest_algorithms = {algs:?}");
        }
        let _ = writeln!(t, "\n[http]\nlisten = \"{http}\"");
        if let Some((cert, key)) = &self.tls {
            let _ = writeln!(
                t,
                "tls_cert = {:?}\ntls_key = {:?}",
                cert.display().to_string(),
                key.display().to_string()
            );
        }
        let _ = writeln!(
            t,
            "\n[database]\nurl = \"sqlite://{}\"",
            dir.join("h.db").display()
        );
        let _ = writeln!(
            t,
            "\n[recordings]\ndir = \"{}\"",
            dir.join("recordings").display()
        );
        if self.media_timeout_secs.is_some() || self.rtp_ports.is_some() {
            t.push_str("\n[media]\n");
            num(&mut t, "timeout_secs", self.media_timeout_secs);
            if let Some((first, last)) = self.rtp_ports {
                let _ = writeln!(t, "rtp_ports = \"{first}-{last}\"");
            }
        }
        if !self.dialplans.is_empty() {
            let files: Vec<String> = self
                .dialplans
                .iter()
                .map(|(name, _)| dir.join(name).display().to_string())
                .collect();
            let _ = writeln!(t, "\n[dialplans]\nfiles = {files:?}");
        }
        for a in &self.agents {
            let _ = writeln!(
                t,
                "\n[[agents]]\nid = {:?}\nname = {:?}\npassword = {:?}\nskills = {:?}",
                a.id, a.name, a.password, a.skills
            );
        }
        t.push('\n');
        t.push_str(&self.extra_toml);
        t
    }

    /// Write the config, start `hotline serve` and wait until `/healthz` answers.
    pub fn start(self) -> TestServer {
        let mut last_log = String::new();
        for _attempt in 0..4 {
            let dir = tempfile::Builder::new()
                .prefix("hotline-e2e-")
                .tempdir()
                .expect("create a tempdir");
            let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let config = dir.path().join("hotline.toml");
            std::fs::create_dir_all(dir.path().join("recordings")).expect("mkdir recordings");
            std::fs::write(&config, self.render(sip, http, dir.path())).expect("write config");
            for (name, contents) in &self.dialplans {
                std::fs::write(dir.path().join(name), contents).expect("write dialplan");
            }
            for (name, target) in &self.links {
                std::os::unix::fs::symlink(target, dir.path().join(name))
                    .unwrap_or_else(|e| panic!("link {name} -> {}: {e}", target.display()));
            }
            let log_path = dir.path().join("server.log");
            let log = std::fs::File::create(&log_path).expect("create server.log");
            let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .env(
                    "RUST_LOG",
                    std::env::var("HOTLINE_TEST_LOG")
                        .unwrap_or_else(|_| "info,hotline=debug,rsipstack=warn".into()),
                )
                .env("NO_COLOR", "1")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .expect("spawn target/debug/hotline");
            let mut server = TestServer {
                child,
                dir,
                sip,
                http,
                log_path,
                https: self.tls.is_some(),
            };
            match server.wait_healthy(Duration::from_secs(20)) {
                Ok(()) => return server,
                Err(exited) => {
                    last_log = server.log();
                    let port_clash =
                        last_log.contains("in use") || last_log.contains("cannot bind");
                    if exited && port_clash {
                        continue; // someone took a port between probe and bind: retry
                    }
                    panic!(
                        "hotline did not become healthy on {http} (exited: {exited}).\n\
                         config:\n{}\n--- server log ---\n{last_log}",
                        std::fs::read_to_string(server.config_path()).unwrap_or_default()
                    );
                }
            }
        }
        panic!("hotline could not bind free ports 4 times\n--- last log ---\n{last_log}");
    }
}

/// A running `hotline serve`, killed on drop (its log is printed if the test panicked).
pub struct TestServer {
    child: Child,
    dir: tempfile::TempDir,
    /// SIP address (UDP and TCP).
    pub sip: SocketAddr,
    pub http: SocketAddr,
    log_path: PathBuf,
    /// HTTP is served over TLS.
    pub https: bool,
}

impl TestServer {
    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A server with the default agents 1001..1003 and default policies.
    pub fn start() -> Self {
        ServerBuilder::default().start()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hotline.toml")
    }

    /// The SQLite file of `[database] url`.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("h.db")
    }

    pub fn sip_port(&self) -> u16 {
        self.sip.port()
    }

    /// Everything the server wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL the server (no shutdown of any kind), then start it again
    /// with the same config, database and ports; waits until healthy.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("open server.log");
        self.child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env(
                "RUST_LOG",
                std::env::var("HOTLINE_TEST_LOG")
                    .unwrap_or_else(|_| "info,hotline=debug,rsipstack=warn".into()),
            )
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("respawn target/debug/hotline");
        if let Err(exited) = self.wait_healthy(Duration::from_secs(20)) {
            panic!(
                "hotline did not come back after a restart (exited: {exited})\n{}",
                self.log()
            );
        }
    }

    /// Whether the server process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Ok when healthy; Err(true) when the process exited, Err(false) on timeout.
    fn wait_healthy(&mut self, limit: Duration) -> Result<(), bool> {
        let deadline = Instant::now() + limit;
        loop {
            if !self.is_alive() {
                return Err(true);
            }
            let ready = if self.https {
                self.log().contains("hotline ready")
            } else {
                matches!(http_get(self.http, "/healthz"), Ok((200, _)))
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// GET a path from the HTTP API: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path).unwrap_or_else(|e| {
            panic!("GET http://{}{path} failed: {e}", self.http);
        })
    }

    /// `POST /api/login` as `id`: the bearer token (panics unless 200).
    pub fn login(&self, id: &str, password: &str) -> String {
        let body = serde_json::json!({"id": id, "password": password}).to_string();
        let (status, body) = http_request(self.http, "POST", "/api/login", None, Some(&body))
            .expect("POST /api/login");
        assert_eq!(status, 200, "login {id}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("login JSON");
        v["token"].as_str().expect("token").to_string()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        body
    }

    /// Sum of every series of metric `name` (None when the metric is absent).
    pub fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.metrics(), name)
    }

    /// Poll `/metrics` until `name` satisfies `pred`; returns the last value seen.
    pub fn wait_metric(
        &self,
        name: &str,
        limit: Duration,
        pred: impl Fn(f64) -> bool,
    ) -> Result<f64, Option<f64>> {
        let mut last = None;
        let got = poll(limit, || {
            last = self.metric(name);
            last.filter(|v| pred(*v))
        });
        got.ok_or(last)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- hotline server log ({}) ---\n{}\n--- end of server log ---",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Parse a Prometheus text exposition: sum of every sample of `name`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let metric = series.split('{').next().unwrap_or("").trim();
        if metric == name {
            if let Ok(v) = value.trim().parse::<f64>() {
                sum = Some(sum.unwrap_or(0.0) + v);
            }
        }
    }
    sum
}

/// Every sample of metric `name` as (labels text, value).
pub fn metric_series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, l)) => (m, l.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric.trim() == name)
                .then(|| Some((labels.to_string(), value.trim().parse().ok()?)))
                .flatten()
        })
        .collect()
}

/// Poke a SIPp scenario waiting in `<recv request="MESSAGE">`: an
/// in-dialog MESSAGE (CSeq `seq`) to the SIPp at `sipp_port` whose dialog
/// is `call_id` and whose user is `user`. The scenarios use it as "go on"
/// or "hang up now".
pub fn sipp_message(user: &str, sipp_port: u16, call_id: &str, seq: u32) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let ours = sock.local_addr().expect("addr").port();
    let msg = format!(
        "MESSAGE sip:{user}@127.0.0.1:{sipp_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{ours};branch=z9hG4bK-poke-{call_id}-{seq}\r\n\
         From: <sip:test@127.0.0.1:{ours}>;tag=poke{seq}\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {seq} MESSAGE\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", sipp_port))
        .expect("send MESSAGE to SIPp");
}

/// A plain HTTP/1.1 GET over TCP (no client crate): (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None, None)
}

/// One HTTP/1.1 request over TCP, with a bearer token and a JSON body when
/// given: (status, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = json.unwrap_or("");
    let content = match json {
        Some(b) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ),
        None if method == "POST" => "Content-Length: 0\r\n".to_string(),
        None => String::new(),
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{content}Connection: close\r\n\r\n{body}"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP reply: {head:?}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------
// Raw SIP over UDP / TCP

/// Send one datagram from a fresh loopback socket; `build` gets that socket's
/// port (for Via/Contact). Returns every reply received within `wait` (the
/// first reply ends the wait unless `collect_all`).
pub fn udp_exchange(
    to: SocketAddr,
    build: impl FnOnce(u16) -> Vec<u8>,
    wait: Duration,
    collect_all: bool,
) -> Vec<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let port = sock.local_addr().expect("local addr").port();
    let payload = build(port);
    sock.send_to(&payload, to).expect("send datagram");
    let deadline = Instant::now() + wait;
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).expect("set timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                replies.push(buf[..n].to_vec());
                if !collect_all {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    replies
}

/// Send one datagram and return the first reply as text, if any within `wait`.
pub fn udp_request(
    to: SocketAddr,
    build: impl FnOnce(u16) -> Vec<u8>,
    wait: Duration,
) -> Option<String> {
    udp_exchange(to, build, wait, false)
        .into_iter()
        .next()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Send a request over a new TCP connection and read one complete response
/// (headers + Content-Length body) within `wait`.
pub fn tcp_request(
    to: SocketAddr,
    build: impl FnOnce(u16) -> Vec<u8>,
    wait: Duration,
) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect TCP");
    let port = s.local_addr().expect("local addr").port();
    s.write_all(&build(port)).expect("write request");
    let deadline = Instant::now() + wait;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        // Skip CRLF keep-alives the server may send.
        let text = text.trim_start_matches(['\r', '\n']);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = SipMessage::parse(&format!("{head}\r\n\r\n"))
                .header("Content-Length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Some(text.to_string());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).expect("set timeout");
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// A SIP message read back for assertions (lenient; header names case-insensitive,
/// compact forms expanded for the headers tests look at).
#[derive(Debug, Clone)]
pub struct SipMessage {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl SipMessage {
    pub fn parse(text: &str) -> Self {
        let text = text.trim_start_matches(['\r', '\n']);
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i], &text[i + 4..]),
            None => match text.find("\n\n") {
                Some(i) => (&text[..i], &text[i + 2..]),
                None => (text, ""),
            },
        };
        let mut lines = head.lines();
        let start_line = lines.next().unwrap_or("").trim().to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((expand_compact(k.trim()), v.trim().to_string()));
            }
        }
        Self {
            start_line,
            headers,
            body: body.to_string(),
        }
    }

    /// Status code of a response (None for a request).
    pub fn status(&self) -> Option<u16> {
        let mut it = self.start_line.split_whitespace();
        if !it.next()?.starts_with("SIP/") {
            return None;
        }
        it.next()?.parse().ok()
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> String {
        self.start_line
            .splitn(3, ' ')
            .nth(2)
            .unwrap_or("")
            .to_string()
    }

    /// Method of a request (None for a response).
    pub fn method(&self) -> Option<&str> {
        let m = self.start_line.split_whitespace().next()?;
        (!m.starts_with("SIP/")).then_some(m)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The CSeq method, e.g. "REGISTER".
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }
}

fn expand_compact(name: &str) -> String {
    match name {
        "v" => "Via",
        "f" => "From",
        "t" => "To",
        "i" => "Call-ID",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "k" => "Supported",
        other => other,
    }
    .to_string()
}

/// A minimal well-formed OPTIONS over UDP from `local_port`.
pub fn options_request(server: SocketAddr, local_port: u16, transport: &str) -> Vec<u8> {
    let n = std::process::id() as u64 * 1000 + u64::from(local_port);
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch=z9hG4bK-opt{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe{n}\r\n\
         To: <sip:{server}>\r\n\
         Call-ID: opt{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// SIPp

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
}

/// What one SIPp run did.
#[derive(Debug)]
pub struct SippRun {
    /// SIPp's exit code: 0 every call succeeded, 1 some failed, 99 none made.
    pub code: i32,
    /// The raw `-trace_msg` file.
    pub trace: String,
    pub stdout: String,
    pub stderr: String,
    /// The `-trace_err` file (unexpected messages etc.).
    pub errors: String,
}

/// One message in a SIPp trace.
#[derive(Debug, Clone)]
pub struct Traced {
    pub sent: bool,
    pub msg: SipMessage,
    /// When SIPp logged it (its local wall-clock time stamp).
    pub at: Option<std::time::SystemTime>,
}

impl SippRun {
    /// Every message SIPp sent or received, in order.
    pub fn messages(&self) -> Vec<Traced> {
        let mut out = Vec::new();
        for block in self
            .trace
            .split("\n----------------------------------------------- ")
        {
            let mut lines = block.splitn(3, '\n');
            let at = lines.next().and_then(parse_sipp_time);
            let Some(kind) = lines.next() else { continue };
            let sent = kind.contains("message sent");
            let received = kind.contains("message received");
            if !(sent || received) {
                continue;
            }
            let rest = lines.next().unwrap_or("");
            let rest = rest.trim_start_matches(['\r', '\n']);
            if rest.is_empty() {
                continue;
            }
            out.push(Traced {
                sent,
                msg: SipMessage::parse(rest),
                at,
            });
        }
        out
    }

    /// Responses SIPp received, in order.
    pub fn responses(&self) -> Vec<SipMessage> {
        self.messages()
            .into_iter()
            .filter(|t| !t.sent && t.msg.status().is_some())
            .map(|t| t.msg)
            .collect()
    }

    /// Status codes SIPp received, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses().iter().filter_map(|m| m.status()).collect()
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "sipp exit code {}\n--- trace ---\n{}\n--- errors ---\n{}\n--- stderr ---\n{}",
            self.code, self.trace, self.errors, self.stderr
        )
    }
}

/// SIPp's trace time stamp ("2026-11-23\t08:05:20.239813", local time).
fn parse_sipp_time(line: &str) -> Option<std::time::SystemTime> {
    let line = line.trim().trim_start_matches('-').trim();
    let mut f = line.split_whitespace();
    let stamp = format!("{} {}", f.next()?, f.next()?);
    let naive = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let local = naive.and_local_timezone(chrono::Local).earliest()?;
    Some(std::time::SystemTime::from(local))
}

/// Run `tests/sipp/<scenario>` once (`-m 1` unless `args` says `-m`) against the
/// server over `transport`, bounded to 30 s, with a message trace.
pub fn sipp(server: &TestServer, scenario: &str, transport: Transport, args: &[&str]) -> SippRun {
    sipp_spawn(server, scenario, transport, args, Duration::from_secs(20)).wait()
}

/// A SIPp run in the background (killed on drop).
pub struct SippProcess {
    child: Option<Child>,
    work: tempfile::TempDir,
    trace: PathBuf,
    errors: PathBuf,
    limit: Duration,
    /// SIPp's SIP port on 127.0.0.1.
    pub local_port: u16,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// Start `tests/sipp/<scenario>` against the server: SIPp's own `-timeout`
/// is `timeout` (calls still running then fail), and [`SippProcess::wait`]
/// allows 10 s more before it kills SIPp.
pub fn sipp_spawn(
    server: &TestServer,
    scenario: &str,
    transport: Transport,
    args: &[&str],
    timeout: Duration,
) -> SippProcess {
    let bin = require_binary("sipp", "Debian package sip-tester");
    let scenario_path = Path::new(REPO).join("tests/sipp").join(scenario);
    assert!(
        scenario_path.exists(),
        "no scenario {}",
        scenario_path.display()
    );
    let work = tempfile::Builder::new()
        .prefix("sipp-")
        .tempdir_in(server.dir())
        .expect("tempdir for sipp");
    let trace = work.path().join("messages.log");
    let errors = work.path().join("errors.log");
    let local_port = free_port();
    let port_arg = local_port.to_string();
    let timeout_arg = format!("{}s", timeout.as_secs().max(1));
    let mut cmd = Command::new(bin);
    cmd.arg(server.sip.to_string())
        .arg("-sf")
        .arg(&scenario_path)
        .args(["-t", transport.sipp_flag()])
        .args(["-i", "127.0.0.1", "-p", &port_arg])
        .args(["-nostdin", "-timeout", &timeout_arg, "-timeout_error"])
        .args(["-default_behaviors", "all,-bye"])
        .args(["-trace_msg", "-message_file"])
        .arg(&trace)
        .args(["-trace_err", "-error_file"])
        .arg(&errors);
    if !args.contains(&"-m") {
        cmd.args(["-m", "1"]);
    }
    let mut child = cmd
        .args(args)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipp");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    );
    SippProcess {
        child: Some(child),
        work,
        trace,
        errors,
        limit: timeout + Duration::from_secs(10),
        local_port,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl SippProcess {
    /// The scenario's working directory (SIPp's current directory).
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Whether SIPp is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The message trace written so far, and SIPp's error file: for
    /// messages about a run still going (or that died at start).
    pub fn trace_so_far(&mut self) -> String {
        format!(
            "SIPp running: {}\n--- trace ---\n{}\n--- errors ---\n{}",
            self.running(),
            std::fs::read_to_string(&self.trace).unwrap_or_default(),
            std::fs::read_to_string(&self.errors).unwrap_or_default()
        )
    }

    /// Wait for SIPp to finish (bounded) and collect what it did.
    pub fn wait(mut self) -> SippRun {
        let mut child = self.child.take().expect("sipp child");
        let status = wait_bounded(&mut child, self.limit, "sipp");
        let stdout = self.stdout.take().map(|t| t.join().unwrap_or_default());
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default());
        SippRun {
            code: status.code().unwrap_or(-1),
            trace: std::fs::read_to_string(&self.trace).unwrap_or_default(),
            stdout: String::from_utf8_lossy(&stdout.unwrap_or_default()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.unwrap_or_default()).into_owned(),
            errors: std::fs::read_to_string(&self.errors).unwrap_or_default(),
        }
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Like `wait_with_output` but bounded: pipes are drained on threads.
pub fn wait_output(child: &mut Child, limit: Duration, what: &str) -> Output {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let status = wait_bounded(child, limit, what);
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------
// Python peers (pjsua2)

/// Run `tests/peers/<script>` with the venv's Python, bounded by `limit`.
pub fn run_python(script: &str, args: &[String], limit: Duration) -> Output {
    let py = venv_python();
    let path = Path::new(REPO).join("tests/peers").join(script);
    assert!(path.exists(), "no script {}", path.display());
    let mut child = Command::new(py)
        .arg("-u")
        .arg(&path)
        .args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    wait_output(&mut child, limit, script)
}

/// JSON-ish lines printed by a peer script: each line parsed as flat
/// `{"k": v, ...}` into (key, raw value) pairs (no serde in dev-deps).
pub fn json_lines(stdout: &str) -> Vec<Vec<(String, String)>> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(parse_flat_json)
        .collect()
}

/// Parse a flat JSON object of strings, numbers, booleans and null.
pub fn parse_flat_json(line: &str) -> Vec<(String, String)> {
    let s = line.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    let read_str = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some('t') => v.push('\t'),
                    Some(o) => v.push(o),
                    None => {}
                },
                '"' => break,
                c => v.push(c),
            }
        }
        v
    };
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.next() != Some('"') {
            break;
        }
        let key = read_str(&mut chars);
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ':') {
            chars.next();
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            read_str(&mut chars)
        } else {
            let mut v = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                v.push(c);
                chars.next();
            }
            v.trim().to_string()
        };
        out.push((key, value));
    }
    out
}

/// The value of `key` in one parsed JSON line.
pub fn field<'a>(obj: &'a [(String, String)], key: &str) -> Option<&'a str> {
    obj.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Lines of a child's stdout as they arrive (read on a thread), with bounded waits.
pub struct LineStream {
    rx: std::sync::mpsc::Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl LineStream {
    pub fn new(out: impl Read + Send + 'static) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line satisfying `pred` within `limit` (other lines are kept in `seen`).
    pub fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Drain what is left until the writer closes (or `limit` passes).
    pub fn drain(&mut self, limit: Duration) {
        let _ = self.wait_for(limit, |_| false);
    }

    pub fn dump(&self) -> String {
        self.seen.join("\n")
    }
}

/// Kills a child process on drop (peers must never outlive their test).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `tests/peers/<script>` with the venv's Python, stdout piped, stderr to `stderr_file`.
pub fn spawn_python(script: &str, args: &[String], stderr_file: &Path) -> (KillOnDrop, LineStream) {
    let py = venv_python();
    let path = Path::new(REPO).join("tests/peers").join(script);
    assert!(path.exists(), "no script {}", path.display());
    let mut child = Command::new(py)
        .arg("-u")
        .arg(&path)
        .args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_file).expect("create stderr file"))
        .spawn()
        .expect("spawn python");
    let lines = LineStream::new(child.stdout.take().expect("stdout"));
    (KillOnDrop(child), lines)
}
