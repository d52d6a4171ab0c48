//! Peers and helpers for the queue/agent end-to-end tests (`e2e_queues.rs`).
//!
//! * [`queue_server`]: a server with the shipped dialplan (calendar removed,
//!   prompts from the repository), every queue the dialplan names, and the
//!   `[acd]` policy of the test;
//! * [`SippAgents`]: one SIPp process that REGISTERs one or more agents and
//!   answers (or rings, refuses, hangs up) the INVITEs hotline sends them
//!   with its out-of-call scenario (`-oocsf`): hotline sends an agent's
//!   INVITE to the address its REGISTER came from, i.e. this SIPp;
//! * [`Customer`]: one SIPp caller that picks a menu entry by SIP INFO and
//!   waits / talks until the test hangs it up (or hotline does);
//! * [`call_rows`]: the `calls` table of the server's SQLite file;
//! * [`queued`]: when the server logged that a caller joined a queue.
//!
//! Audio analysis lives in `e2e_queues.rs` (with `common/audio.rs`), so this
//! file compiles in every e2e binary without it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use super::{
    free_port, free_port_pair, poll, require_binary, wait_bounded, Agent, KillOnDrop, SipMessage,
    SippRun, TestServer, REPO,
};

// ---------------------------------------------------------------------------
// Configuration

/// The shipped `dialplans/hotline.toml` without its `[calendar]` (always
/// open) and with `prompts_dir` pointing at the repository's prompts.
pub fn hotline_dialplan() -> String {
    let shipped = std::fs::read_to_string(Path::new(REPO).join("dialplans/hotline.toml"))
        .expect("read dialplans/hotline.toml");
    let prompts = Path::new(REPO).join("dialplans/prompts");
    let mut out = Vec::new();
    let mut in_calendar = false;
    let mut saw_prompts_dir = false;
    for line in shipped.lines() {
        if line.starts_with('[') && line[1..].starts_with(|c: char| c.is_alphabetic()) {
            in_calendar = line.trim() == "[calendar]";
        }
        if in_calendar {
            continue;
        }
        if line.trim_start().starts_with("prompts_dir") {
            saw_prompts_dir = true;
            out.push(format!("prompts_dir = {:?}", prompts.display().to_string()));
            continue;
        }
        out.push(line.to_string());
    }
    assert!(saw_prompts_dir, "the shipped dialplan has no prompts_dir");
    out.join("\n") + "\n"
}

/// The queue policy of one test (applied to every queue of the dialplan).
#[derive(Debug, Clone)]
pub struct QueueSetup {
    pub strategy: &'static str,
    pub ring_timeout_ms: u64,
    pub wrap_up_ms: u64,
    pub max_missed_offers: u32,
    pub record: bool,
}

impl Default for QueueSetup {
    fn default() -> Self {
        Self {
            strategy: "longest_idle",
            ring_timeout_ms: 10_000,
            wrap_up_ms: 0,
            max_missed_offers: 2,
            record: true,
        }
    }
}

impl QueueSetup {
    pub fn strategy(mut self, s: &'static str) -> Self {
        self.strategy = s;
        self
    }

    /// `[acd]` and the five `[[queues]]` the shipped dialplan routes to.
    pub fn toml(&self) -> String {
        let mut t = format!(
            "[acd]\nready_on_register = true\nmax_missed_offers = {}\nrecord = {}\n",
            self.max_missed_offers, self.record
        );
        for (name, skill) in [
            ("repair", Some("repair")),
            ("install", Some("install")),
            ("complaint", Some("complaint")),
            ("consult", Some("consult")),
            ("general", None),
        ] {
            t.push_str(&format!("\n[[queues]]\nname = {name:?}\n"));
            if let Some(s) = skill {
                t.push_str(&format!("skill = {s:?}\n"));
            }
            t.push_str(&format!(
                "strategy = {:?}\nring_timeout_ms = {}\nwrap_up_ms = {}\n",
                self.strategy, self.ring_timeout_ms, self.wrap_up_ms
            ));
        }
        t
    }
}

/// An agent with a password derived from the id and the given skills
/// (`"install"` or `"install:9"`).
pub fn agent(id: &str, skills: &[&str]) -> Agent {
    let mut a = Agent::new(id, &agent_password(id));
    a.skills = skills.iter().map(|s| s.to_string()).collect();
    a
}

pub fn agent_password(id: &str) -> String {
    format!("pw-{id}")
}

/// A server with the shipped dialplan, `agents` and the queue policy.
pub fn queue_server(agents: Vec<Agent>, setup: &QueueSetup) -> TestServer {
    TestServer::builder()
        .agents(agents)
        .dialplan("hotline-queues.toml", &hotline_dialplan())
        .extra_toml(&setup.toml())
        .start()
}

// ---------------------------------------------------------------------------
// Audio files shared by the peers (made once per test process)

fn cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("hotline-queues-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir audio cache");
        d
    })
}

/// Serialises the making of shared audio files (tests run on threads).
static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sox(args: &[&str]) {
    let bin = require_binary("sox", "Debian package sox");
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sox");
    assert!(
        out.status.success(),
        "sox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speech A: the customer's voice (the repository's fixture, 8 kHz mono).
pub fn speech_a() -> PathBuf {
    Path::new(REPO).join("tests/fixtures/speech8k.wav")
}

/// Speech B: the agent's voice, a different text spoken by espeak-ng,
/// 8 kHz mono 16-bit.
pub fn speech_b() -> PathBuf {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let raw = cache_dir().join("speech_b_22k.wav");
        let out = cache_dir().join("speech_b.wav");
        let espeak = require_binary("espeak-ng", "Debian package espeak-ng");
        let st = Command::new(espeak)
            .args(["-v", "en", "-s", "140", "-w"])
            .arg(&raw)
            .arg(
                "Hello, this is the installation desk. Your new water heater will be \
                 installed tomorrow morning between nine and eleven. The technician will \
                 call you thirty minutes before arrival. Please keep the area around the \
                 heater clear. Is there anything else I can help you with today?",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run espeak-ng");
        assert!(st.success(), "espeak-ng failed");
        let (r, o) = (raw.display().to_string(), out.display().to_string());
        sox(&[
            &r,
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            &o,
        ]);
        out
    })
    .clone()
}

/// `wav` followed by 60 s of silence (baresip ends the call when its
/// microphone file ends).
pub fn padded(wav: &Path) -> PathBuf {
    let out = cache_dir().join(format!(
        "{}-padded.wav",
        wav.file_stem().unwrap_or_default().to_string_lossy()
    ));
    let _g = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        let (i, o) = (wav.display().to_string(), out.display().to_string());
        let tmp = format!("{o}.tmp.wav");
        sox(&[&i, &tmp, "pad", "0", "60"]);
        std::fs::rename(&tmp, &out).expect("rename padded wav");
    }
    out
}

/// `wav` as headerless A-law (SIPp's `rtp_stream`).
pub fn alaw(wav: &Path) -> PathBuf {
    let out = cache_dir().join(format!(
        "{}.alaw",
        wav.file_stem().unwrap_or_default().to_string_lossy()
    ));
    let _g = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        let (i, o) = (wav.display().to_string(), out.display().to_string());
        let tmp = format!("{o}.tmp");
        sox(&[&i, "-t", "al", &tmp]);
        std::fs::rename(&tmp, &out).expect("rename alaw");
    }
    out
}

// ---------------------------------------------------------------------------
// SIPp processes

/// A SIPp process with its own working directory (where its `rtp_stream`
/// files are), killed on drop.
pub struct Sipp {
    child: Option<Child>,
    work: tempfile::TempDir,
    trace: PathBuf,
    errors: PathBuf,
    /// SIPp's SIP port on 127.0.0.1.
    pub port: u16,
    limit: Duration,
    pub started: Instant,
}

impl Sipp {
    /// `sipp SERVER -sf tests/sipp/SCENARIO ARGS` in a new directory holding
    /// `files` (source, name); message trace unless `trace` is false.
    pub fn spawn(
        server: &TestServer,
        scenario: &str,
        args: &[String],
        files: &[(PathBuf, &str)],
        timeout: Duration,
        trace: bool,
    ) -> Self {
        let bin = require_binary("sipp", "Debian package sip-tester");
        let sf = Path::new(REPO).join("tests/sipp").join(scenario);
        assert!(sf.exists(), "no scenario {}", sf.display());
        let work = tempfile::Builder::new()
            .prefix("sipp-q-")
            .tempdir_in(server.dir())
            .expect("tempdir for sipp");
        for (src, name) in files {
            std::fs::copy(src, work.path().join(name))
                .unwrap_or_else(|e| panic!("copy {} for sipp: {e}", src.display()));
        }
        let trace_path = work.path().join("messages.log");
        let errors = work.path().join("errors.log");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg(server.sip.to_string())
            .arg("-sf")
            .arg(&sf)
            .args(["-t", "u1", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-nostdin",
                "-timeout",
                &format!("{}s", timeout.as_secs().max(1)),
            ])
            .args(["-timeout_error", "-default_behaviors", "all,-bye"])
            .args(["-trace_err", "-error_file"])
            .arg(&errors);
        if trace {
            cmd.args(["-trace_msg", "-message_file"]).arg(&trace_path);
        }
        let out = std::fs::File::create(work.path().join("stdout.log")).expect("stdout file");
        let err = std::fs::File::create(work.path().join("stderr.log")).expect("stderr file");
        let child = cmd
            .args(args)
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn sipp");
        Self {
            child: Some(child),
            work,
            trace: trace_path,
            errors,
            port,
            limit: timeout + Duration::from_secs(10),
            started: Instant::now(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// What SIPp did so far (exit code -1 while it runs).
    pub fn so_far(&self) -> SippRun {
        SippRun {
            code: -1,
            trace: std::fs::read_to_string(&self.trace).unwrap_or_default(),
            stdout: std::fs::read_to_string(self.dir().join("stdout.log")).unwrap_or_default(),
            stderr: std::fs::read_to_string(self.dir().join("stderr.log")).unwrap_or_default(),
            errors: std::fs::read_to_string(&self.errors).unwrap_or_default(),
        }
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait (bounded) for SIPp to finish.
    pub fn wait(mut self) -> SippRun {
        let mut child = self.child.take().expect("sipp child");
        let st = wait_bounded(&mut child, self.limit, "sipp");
        SippRun {
            code: st.code().unwrap_or(-1),
            ..self.so_far()
        }
    }

    /// Stop SIPp now (SIGKILL) and return what it did.
    pub fn stop(mut self) -> SippRun {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.so_far()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The user part of a SIP URI inside `text` (`<sip:1001@host>` → `1001`).
pub fn uri_user(text: &str) -> String {
    let s = text.split("sip:").nth(1).unwrap_or("");
    s.split(['@', '>', ';', ' '])
        .next()
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------
// Agents

/// What a [`SippAgents`] process does with the INVITEs it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 180 and 200 at once, talk (agent.alaw) until hotline's BYE.
    Answer,
    /// Ring 2 s, then answer, unless CANCELled first.
    Slow,
    /// Ring until CANCEL (200 + 487).
    RingOnly,
    /// 180, then 486 Busy Here.
    Busy,
    /// 180, then 603 Decline.
    Decline,
    /// Answer, talk 3 s, send BYE.
    HangUpAfter3s,
}

impl Behaviour {
    fn scenario(self) -> &'static str {
        match self {
            Behaviour::Answer => "queue_agent_answer.xml",
            Behaviour::Slow => "queue_agent_slow.xml",
            Behaviour::RingOnly => "queue_agent_ring.xml",
            Behaviour::Busy => "queue_agent_busy.xml",
            Behaviour::Decline => "queue_agent_decline.xml",
            Behaviour::HangUpAfter3s => "queue_agent_bye.xml",
        }
    }
}

/// One INVITE hotline sent to an agent.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The agent (user of the Request-URI = the registered contact).
    pub agent: String,
    /// The customer's number (From user).
    pub caller: String,
    /// `X-Hotline-Call`: hotline's record id of the customer's call.
    pub record: String,
    pub call_id: String,
    pub at: SystemTime,
    /// The agent's final answer to it, if it sent one (200, 486, 487 ...).
    pub final_status: Option<u16>,
    /// When hotline cancelled it, if it did.
    pub cancelled_at: Option<SystemTime>,
    /// Whether hotline acknowledged a 200 (the call was connected).
    pub acked: bool,
}

/// One SIPp process registering `ids` and answering their INVITEs.
pub struct SippAgents {
    pub sipp: Sipp,
    pub ids: Vec<String>,
    pub behaviour: Behaviour,
}

impl SippAgents {
    /// Start the process and wait (10 s at most) until every agent is registered.
    pub fn start(server: &TestServer, ids: &[&str], behaviour: Behaviour) -> Self {
        Self::start_opts(server, ids, behaviour, true)
    }

    /// `trace`: keep a message trace (needed for [`offers`](Self::offers)).
    pub fn start_opts(
        server: &TestServer,
        ids: &[&str],
        behaviour: Behaviour,
        trace: bool,
    ) -> Self {
        let work_csv = std::env::temp_dir().join(format!(
            "hotline-q-agents-{}-{}.csv",
            std::process::id(),
            free_port()
        ));
        let mut csv = String::from("SEQUENTIAL\n");
        for id in ids {
            csv.push_str(&format!(
                "{id};[authentication username={id} password={}]\n",
                agent_password(id)
            ));
        }
        std::fs::write(&work_csv, csv).expect("write agents csv");
        let n = ids.len().to_string();
        let ooc = Path::new(REPO)
            .join("tests/sipp")
            .join(behaviour.scenario());
        let args: Vec<String> = vec![
            "-oocsf".into(),
            ooc.display().to_string(),
            "-inf".into(),
            "agents.csv".into(),
            "-m".into(),
            n.clone(),
            "-l".into(),
            n,
            "-r".into(),
            "100".into(),
        ];
        let sipp = Sipp::spawn(
            server,
            "queue_agent_register.xml",
            &args,
            &[
                (work_csv.clone(), "agents.csv"),
                (alaw(&speech_b()), "agent.alaw"),
            ],
            Duration::from_secs(600),
            trace,
        );
        let _ = std::fs::remove_file(&work_csv);
        let mut me = Self {
            sipp,
            ids: ids.iter().map(|s| s.to_string()).collect(),
            behaviour,
        };
        me.wait_registered(server, trace, Duration::from_secs(20));
        me
    }

    fn wait_registered(&mut self, server: &TestServer, trace: bool, limit: Duration) {
        let want = self.ids.len();
        let ok = poll(limit, || {
            let n = if !trace {
                // Without a trace: the server's count (this pool is then the only one).
                server.metric("hotline_registrations").unwrap_or(0.0) as usize
            } else {
                self.sipp
                    .so_far()
                    .messages()
                    .iter()
                    .filter(|t| !t.sent && t.msg.status() == Some(200))
                    .filter(|t| t.msg.cseq_method() == Some("REGISTER"))
                    .count()
            };
            (n >= want).then_some(())
        });
        if ok.is_none() {
            let run = self.sipp.so_far();
            panic!(
                "agents {:?} did not all register within {limit:?}\n{}",
                self.ids,
                run.dump()
            );
        }
        // The registrar tells the ACD after its 200: give it a moment.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Every INVITE received so far, in order, with what became of it.
    pub fn offers(&self) -> Vec<Offered> {
        let msgs = self.sipp.so_far().messages();
        let mut out: Vec<Offered> = Vec::new();
        for t in &msgs {
            let m = &t.msg;
            let cid = m.header("Call-ID").unwrap_or("").to_string();
            match (t.sent, m.method(), m.status()) {
                (false, Some("INVITE"), _) => {
                    if out.iter().any(|o| o.call_id == cid) {
                        continue; // a retransmission
                    }
                    out.push(Offered {
                        agent: uri_user(&m.start_line),
                        caller: uri_user(m.header("From").unwrap_or("")),
                        record: m.header("X-Hotline-Call").unwrap_or("").to_string(),
                        call_id: cid,
                        at: t.at.unwrap_or(SystemTime::UNIX_EPOCH),
                        final_status: None,
                        cancelled_at: None,
                        acked: false,
                    });
                }
                (false, Some("CANCEL"), _) => {
                    if let Some(o) = out.iter_mut().find(|o| o.call_id == cid) {
                        o.cancelled_at = o.cancelled_at.or(t.at);
                    }
                }
                (false, Some("ACK"), _) => {
                    if let Some(o) = out.iter_mut().find(|o| o.call_id == cid) {
                        o.acked |= o.final_status == Some(200);
                    }
                }
                (true, None, Some(code)) if code >= 200 && m.cseq_method() == Some("INVITE") => {
                    if let Some(o) = out.iter_mut().find(|o| o.call_id == cid) {
                        o.final_status = o.final_status.or(Some(code));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Wait until `pred` holds for the offers so far (or panic after `limit`).
    pub fn wait_offers(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[Offered]) -> bool,
    ) -> Vec<Offered> {
        let mut last = Vec::new();
        let got = poll(limit, || {
            last = self.offers();
            pred(&last).then(|| last.clone())
        });
        got.unwrap_or_else(|| {
            panic!(
                "agents {:?}: {what} not seen within {limit:?}; offers: {last:#?}",
                self.ids
            )
        })
    }
}

// ---------------------------------------------------------------------------
// Customers

/// One SIPp customer (`queue_customer.xml`) calling the hotline.
pub struct Customer {
    pub sipp: Sipp,
    pub caller: String,
    pub call_id: String,
}

impl Customer {
    /// Call 8000 from `caller`, press `keys` (one or two) by SIP INFO.
    pub fn call(server: &TestServer, caller: &str, keys: &[&str]) -> Self {
        assert!(!keys.is_empty() && keys.len() <= 2, "one or two keys");
        let call_id = format!("q-{}-{caller}-1", std::process::id());
        let cid_str = format!("q-{}-{caller}-%u", std::process::id());
        let args: Vec<String> = [
            "-s",
            "8000",
            "-m",
            "1",
            "-set",
            "caller",
            caller,
            "-set",
            "key1",
            keys[0],
            "-set",
            "key2",
            keys.get(1).copied().unwrap_or("none"),
            "-cid_str",
            &cid_str,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let sipp = Sipp::spawn(
            server,
            "queue_customer.xml",
            &args,
            &[(alaw(&speech_a()), "customer.alaw")],
            Duration::from_secs(120),
            true,
        );
        Self {
            sipp,
            caller: caller.to_string(),
            call_id,
        }
    }

    /// Tell the customer to hang up (a MESSAGE in its dialog → it sends BYE).
    pub fn hang_up(&self) {
        super::sipp_message(&self.caller, self.sipp.port, &self.call_id, 1);
    }

    /// Hang up and wait for SIPp to finish; panics unless it succeeded.
    pub fn hang_up_and_finish(self) -> SippRun {
        self.hang_up();
        self.finish()
    }

    /// Wait for SIPp to finish; panics unless it succeeded.
    pub fn finish(self) -> SippRun {
        let caller = self.caller.clone();
        let run = self.sipp.wait();
        assert_eq!(
            run.code,
            0,
            "customer {caller}: SIPp failed\n{}",
            run.dump()
        );
        run
    }
}

// ---------------------------------------------------------------------------
// Server log and call records

/// Whether the server logged that the caller with SIP Call-ID `call_id`
/// joined a queue (the IVR's queue node ran).
pub fn queued(server: &TestServer, call_id: &str) -> bool {
    let needle = format!("call_id={call_id} ");
    server
        .log()
        .lines()
        .any(|l| l.contains(&needle) && l.contains("caller queued"))
}

/// Wait until the customer is in the queue (or panic after `limit`).
pub fn wait_queued(server: &TestServer, c: &Customer, limit: Duration) {
    if poll(limit, || queued(server, &c.call_id).then_some(())).is_none() {
        panic!(
            "customer {} never reached a queue within {limit:?}\n--- SIPp ---\n{}",
            c.caller,
            c.sipp.so_far().dump()
        );
    }
}

/// A row of the `calls` table.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: String,
    pub from_number: String,
    pub queue: Option<String>,
    pub agent_id: Option<String>,
    pub arrived_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub wait_ms: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub recording: Option<String>,
    pub hangup_cause: String,
    pub hangup_side: String,
    pub ivr_path: String,
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Every row of the server's `calls` table.
pub fn call_rows(server: &TestServer) -> Vec<CallRow> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};
    block_on(async {
        let Ok(mut c) = SqliteConnectOptions::new()
            .filename(server.db_path())
            .read_only(true)
            .connect()
            .await
        else {
            return Vec::new();
        };
        sqlx::query(
            "SELECT id, from_number, queue, agent_id, arrived_at, answered_at, ended_at, \
             wait_ms, talk_ms, hold_ms, recording, hangup_cause, hangup_side, ivr_path \
             FROM calls ORDER BY arrived_at, id",
        )
        .fetch_all(&mut c)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| CallRow {
            id: r.get("id"),
            from_number: r.get("from_number"),
            queue: r.get("queue"),
            agent_id: r.get("agent_id"),
            arrived_at: r.get("arrived_at"),
            answered_at: r.get("answered_at"),
            ended_at: r.get("ended_at"),
            wait_ms: r.get("wait_ms"),
            talk_ms: r.get("talk_ms"),
            hold_ms: r.get("hold_ms"),
            recording: r.get("recording"),
            hangup_cause: r.get("hangup_cause"),
            hangup_side: r.get("hangup_side"),
            ivr_path: r.get("ivr_path"),
        })
        .collect()
    })
}

/// Wait (`limit` at most) until `n` rows are complete (ended_at set).
pub fn ended_rows(server: &TestServer, n: usize, limit: Duration) -> Vec<CallRow> {
    let mut last = Vec::new();
    poll(limit, || {
        last = call_rows(server);
        (last.iter().filter(|r| r.ended_at.is_some()).count() >= n).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("expected {n} completed call rows within {limit:?}: {last:#?}"))
}

/// The completed row of the call from `caller`.
pub fn row_of(server: &TestServer, caller: &str) -> CallRow {
    let mut last = Vec::new();
    poll(Duration::from_secs(5), || {
        last = call_rows(server);
        last.iter()
            .find(|r| r.from_number == caller && r.ended_at.is_some())
            .cloned()
    })
    .unwrap_or_else(|| panic!("no completed call row from {caller}: {last:#?}"))
}

/// The stored record of the call from `caller` once it has ended, with the
/// phones it rang (`call_legs`, at least `legs` of them: the batching writer
/// may still be on its way).
pub fn stored_call(
    server: &TestServer,
    caller: &str,
    legs: usize,
) -> (hotline::store::CallRecord, Vec<hotline::store::CallLeg>) {
    let id = row_of(server, caller).id;
    block_on(async {
        let store =
            hotline::store::Store::connect(&format!("sqlite://{}", server.db_path().display()))
                .await
                .expect("open the server's database");
        let mut last = None;
        for _ in 0..50 {
            let call = store.get_call(&id).await.ok().flatten();
            let rung = store.call_legs(&id).await.unwrap_or_default();
            if let Some(call) = call.filter(|c| c.ended_at.is_some()) {
                if rung.len() >= legs {
                    return (call, rung);
                }
                last = Some((call, rung));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("call {id} from {caller}: no ended record with {legs} legs: {last:#?}");
    })
}

/// Parse a SIP message's text (re-exported for tests that read traces).
pub fn sip(text: &str) -> SipMessage {
    SipMessage::parse(text)
}

// ---------------------------------------------------------------------------
// An outside number behind the transfer gateway

/// SIPp on 127.0.0.1:`port` as the far end of `[acd] transfer_gateway`:
/// runs `tests/sipp/<scenario>` for one call (speech B as its voice) and
/// traces every message to the returned file.
pub fn sipp_gateway(server: &TestServer, port: u16, scenario: &str) -> (KillOnDrop, PathBuf) {
    let dir = server.dir().join("gateway");
    std::fs::create_dir_all(&dir).expect("gateway dir");
    std::fs::copy(alaw(&speech_b()), dir.join("agent.alaw")).expect("copy gateway audio");
    let trace = dir.join("messages.log");
    let child = Command::new(require_binary("sipp", "Debian package sip-tester"))
        .arg(server.sip.to_string())
        .arg("-sf")
        .arg(Path::new(REPO).join("tests/sipp").join(scenario))
        .args(["-t", "u1", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "90s", "-timeout_error"])
        .args(["-trace_msg", "-message_file"])
        .arg(&trace)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the gateway's SIPp");
    (KillOnDrop(child), trace)
}

// ---------------------------------------------------------------------------
// baresip softphones

/// baresip as agent `id`: auto-answer, speech B (padded) as microphone,
/// everything heard recorded by the sndfile module into `dir`.
pub struct Baresip {
    _child: KillOnDrop,
    dir: PathBuf,
}

impl Baresip {
    pub fn start(server: &TestServer, id: &str, mic: &Path) -> Self {
        let bin = require_binary("baresip", "Debian package baresip-core");
        let dir = server.dir().join(format!("baresip-{id}"));
        std::fs::create_dir_all(dir.join("snd")).expect("mkdir baresip dir");
        let sip_port = free_port_pair();
        let ctrl_port = free_port();
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method\tepoll\n\
                 sip_listen\t127.0.0.1:{sip_port}\n\
                 sip_transports\tudp\n\
                 net_interface\t127.0.0.1\n\
                 audio_player\talsa,null\n\
                 audio_source\taufile,{mic}\n\
                 module_path\t/usr/lib/baresip/modules\n\
                 module\tg711.so\n\
                 module\taufile.so\n\
                 module\tsndfile.so\n\
                 snd_path\t{snd}\n\
                 module_app\taccount.so\n\
                 module_app\tmenu.so\n\
                 module_app\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n",
                mic = mic.display(),
                snd = dir.join("snd").display(),
            ),
        )
        .expect("write baresip config");
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{id}@{s}>;auth_user={id};auth_pass={pw};regint=300;answermode=auto\n",
                s = server.sip,
                pw = agent_password(id)
            ),
        )
        .expect("write baresip accounts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("baresip.log");
        let child = Command::new(bin)
            .arg("-f")
            .arg(&dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn baresip");
        Self {
            _child: KillOnDrop(child),
            dir,
        }
    }

    /// The `*-dec.wav` (what baresip heard), once it exists.
    pub fn heard(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.join("snd"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }
}

pub fn wait_registrations(server: &TestServer, n: f64, what: &str) {
    if let Err(last) =
        server.wait_metric("hotline_registrations", Duration::from_secs(10), |v| v >= n)
    {
        panic!("{what}: hotline_registrations {last:?}, expected {n}");
    }
    std::thread::sleep(Duration::from_millis(300));
}
