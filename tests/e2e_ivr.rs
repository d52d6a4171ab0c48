//! The inbound IVR end to end, judged by what a caller notices: which
//! prompts they hear, in which order, what their keys do, how the call ends,
//! and what the call record says afterwards.
//!
//! Callers: pjsua2 (a real softphone: records what it hears to WAV, sends
//! RFC 4733), and SIPp for signalling with the test's own RTP port in its SDP
//! ([`audio::RtpPeer`]: records and decodes the server's RTP, sends silence,
//! RFC 4733 events or in-band tones made by sox). What was heard is decided
//! from the audio ([`audio::timeline`]: RMS envelopes + normalised
//! cross-correlation against `dialplans/prompts/*.wav`).
//!
//! Each server loads its own copy of the shipped `dialplans/hotline.toml`
//! with the calendar removed (always open) or emptied (always closed), so
//! nothing depends on the time of day.
//!
//! The scenarios take 10-95 s each (the prompts are long), so one test,
//! [`ivr_end_to_end`], runs them all at once on threads: the whole file takes
//! as long as the longest scenario whatever `--test-threads` is.
//! `HOTLINE_IVR_ONLY=name,name` runs a subset.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use audio::{describe, names, Heard, PromptAudio, Recording, RtpPeer, FRAME, RATE};
use common::{
    field, json_lines, metric_series, require_binary, run_python, sipp_spawn, ServerBuilder,
    SippProcess, SippRun, TestServer, Transport, REPO,
};

/// The caller's number in every call (digits: the callback needs them).
const CALLER: &str = "13800138000";
/// The hotline's internal number.
const HOTLINE: &str = "8000";
/// RFC 4733 payload type SIPp's SDP offers.
const TE_PT: u8 = 96;

// ---------------------------------------------------------------------------
// Prompts and dialplans

fn prompts_dir() -> PathBuf {
    Path::new(REPO).join("dialplans/prompts")
}

fn prompts() -> &'static [PromptAudio] {
    static P: OnceLock<Vec<PromptAudio>> = OnceLock::new();
    P.get_or_init(|| audio::load_prompts(&prompts_dir()))
}

fn prompt(name: &str) -> &'static PromptAudio {
    prompts()
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no prompt {name}.wav in {}", prompts_dir().display()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hours {
    /// No `[calendar]`: always open.
    AlwaysOpen,
    /// A `[calendar]` listing no day: always closed.
    AlwaysClosed,
}

/// The shipped dialplan, prompts from the repository, calendar replaced.
fn dialplan(hours: Hours) -> String {
    let shipped = std::fs::read_to_string(Path::new(REPO).join("dialplans/hotline.toml"))
        .expect("read dialplans/hotline.toml");
    let abs = prompts_dir().display().to_string();
    let mut out = Vec::new();
    let mut in_calendar = false;
    let mut saw_prompts_dir = false;
    for line in shipped.lines() {
        let is_header = line.starts_with('[') && line[1..].starts_with(|c: char| c.is_alphabetic());
        if is_header {
            in_calendar = line.trim() == "[calendar]";
            if in_calendar && hours == Hours::AlwaysClosed {
                out.push("[calendar]   # no day listed: always closed".to_string());
            }
            if in_calendar {
                continue;
            }
        }
        if in_calendar {
            continue;
        }
        if line.trim_start().starts_with("prompts_dir") {
            saw_prompts_dir = true;
            out.push(format!("prompts_dir = {abs:?}"));
            continue;
        }
        out.push(line.to_string());
    }
    assert!(saw_prompts_dir, "the shipped dialplan has no prompts_dir");
    out.join("\n") + "\n"
}

/// The `[[queues]]` of the shipped `hotline.toml` (the dialplan's queue
/// nodes must name configured queues).
fn shipped_queues() -> String {
    let shipped =
        std::fs::read_to_string(Path::new(REPO).join("hotline.toml")).expect("read hotline.toml");
    let mut out = String::new();
    let mut inside = false;
    for line in shipped.lines() {
        if line.starts_with('[') {
            inside = line.trim() == "[[queues]]";
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("[[queues]]"), "no [[queues]] in hotline.toml");
    out
}

fn ivr_server(hours: Hours) -> ServerBuilder {
    TestServer::builder()
        .dialplan("hotline-ivr.toml", &dialplan(hours))
        .extra_toml(&shipped_queues())
}

/// Start servers one at a time: a debug build decoding its prompts takes a
/// core for a second, and many at once starve the media of calls already
/// running (hotline then resynchronises its 20 ms tick, and a real-time
/// listener like pjsua2 hears a gap).
fn start(b: ServerBuilder) -> TestServer {
    static STARTING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    b.start()
}

// ---------------------------------------------------------------------------
// Call records (SQLite)

#[derive(Debug, Clone)]
struct CallRow {
    id: String,
    direction: String,
    from_number: String,
    to_number: String,
    answered_at: Option<i64>,
    ended_at: Option<i64>,
    arrived_at: i64,
    talk_ms: i64,
    hold_ms: i64,
    ivr_path: String,
    hangup_cause: String,
    hangup_side: String,
    queue: Option<String>,
    work_order: Option<String>,
}

impl CallRow {
    fn path(&self) -> Vec<String> {
        // A JSON array of strings; the steps hold no quotes or commas inside
        // brackets other than key separators, so split on `","`.
        let inner = self
            .ivr_path
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if inner.trim().is_empty() {
            return Vec::new();
        }
        inner
            .trim_start_matches('"')
            .trim_end_matches('"')
            .split("\",\"")
            .map(|s| s.replace("\\\"", "\""))
            .collect()
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

async fn connect(path: &Path) -> Option<sqlx::SqliteConnection> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::ConnectOptions;
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .ok()
}

fn call_rows(server: &TestServer) -> Vec<CallRow> {
    use sqlx::Row;
    block_on(async {
        let Some(mut c) = connect(&server.db_path()).await else {
            return Vec::new();
        };
        let rows = sqlx::query(
            "SELECT id, direction, from_number, to_number, arrived_at, answered_at, ended_at, \
             talk_ms, hold_ms, ivr_path, hangup_cause, hangup_side, queue, work_order \
             FROM calls ORDER BY arrived_at, id",
        )
        .fetch_all(&mut c)
        .await
        .unwrap_or_default();
        rows.iter()
            .map(|r| CallRow {
                id: r.get("id"),
                direction: r.get("direction"),
                from_number: r.get("from_number"),
                to_number: r.get("to_number"),
                arrived_at: r.get("arrived_at"),
                answered_at: r.get("answered_at"),
                ended_at: r.get("ended_at"),
                talk_ms: r.get("talk_ms"),
                hold_ms: r.get("hold_ms"),
                ivr_path: r.get("ivr_path"),
                hangup_cause: r.get("hangup_cause"),
                hangup_side: r.get("hangup_side"),
                queue: r.get("queue"),
                work_order: r.get("work_order"),
            })
            .collect()
    })
}

/// Wait (5 s at most) until `n` calls are complete (ended_at set); returns all rows.
fn ended_calls(server: &TestServer, n: usize) -> Vec<CallRow> {
    let mut last = Vec::new();
    let got = common::poll(Duration::from_secs(5), || {
        last = call_rows(server);
        (last.iter().filter(|r| r.ended_at.is_some()).count() >= n).then(|| last.clone())
    });
    got.unwrap_or_else(|| panic!("expected {n} completed call rows, have: {last:#?}"))
}

/// The one completed call of a server.
fn the_call(server: &TestServer) -> CallRow {
    let rows = ended_calls(server, 1);
    assert_eq!(rows.len(), 1, "expected exactly one call row: {rows:#?}");
    rows[0].clone()
}

#[derive(Debug)]
struct CallbackRow {
    phone: String,
    state: String,
    due_at: i64,
    source_call: String,
}

fn callback_requests(server: &TestServer) -> Vec<CallbackRow> {
    use sqlx::Row;
    block_on(async {
        let Some(mut c) = connect(&server.db_path()).await else {
            return Vec::new();
        };
        sqlx::query("SELECT phone, state, due_at, source_call FROM callback_requests")
            .fetch_all(&mut c)
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| CallbackRow {
                phone: r.get("phone"),
                state: r.get("state"),
                due_at: r.get("due_at"),
                source_call: r.get("source_call"),
            })
            .collect()
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// DTMF keys the server counted per method, from /metrics.
fn dtmf_by_method(server: &TestServer) -> Vec<(String, f64)> {
    metric_series(&server.metrics(), "hotline_dtmf_total")
}

fn assert_dtmf_method(server: &TestServer, method: &str, count: f64) {
    let series = dtmf_by_method(server);
    let want = format!("method=\"{method}\"");
    let got: f64 = series
        .iter()
        .filter(|(l, _)| l.contains(&want))
        .map(|(_, v)| v)
        .sum();
    let all: f64 = series.iter().map(|(_, v)| v).sum();
    assert!(
        got == count && all == count,
        "expected {count} key(s) by {method} and no other, /metrics says {series:?}"
    );
}

// ---------------------------------------------------------------------------
// SIPp calls with the test's own RTP port

static CALL_SEQ: AtomicU32 = AtomicU32::new(0);

/// A SIPp caller whose SDP names the test's [`RtpPeer`] port; the test moves
/// it on with "go on" MESSAGEs (the scenario's `<recv request="MESSAGE">`).
struct SippCall {
    sipp: SippProcess,
    rtp: RtpPeer,
    call_id: String,
    kicks: u32,
}

/// SDP options of the SIPp offer.
#[derive(Clone, Copy)]
enum Offer {
    /// `m=audio P RTP/AVP 8 96` with telephone-event on 96.
    PcmaAndEvents,
    /// `m=audio P RTP/AVP 8`: DTMF can only come in-band.
    PcmaOnly,
}

impl SippCall {
    fn start(
        server: &TestServer,
        scenario: &str,
        number: &str,
        offer: Offer,
        rtp: RtpPeer,
        extra: &[&str],
        timeout: Duration,
    ) -> Self {
        let n = CALL_SEQ.fetch_add(1, Ordering::Relaxed);
        let cid_base = format!("ivr-{}-{n}-", std::process::id());
        let call_id = format!("{cid_base}1");
        let port = rtp.port().to_string();
        let (pts, te) = match offer {
            Offer::PcmaAndEvents => ("8 96", "a=rtpmap:96 telephone-event/8000"),
            Offer::PcmaOnly => ("8", "a=ptime:20"),
        };
        let cid_str = format!("{cid_base}%u");
        let mut args: Vec<&str> = vec![
            "-s", number, "-set", "rtp", &port, "-set", "pts", pts, "-set", "te", te, "-set",
            "caller", CALLER, "-cid_str", &cid_str,
        ];
        args.extend_from_slice(extra);
        let sipp = sipp_spawn(server, scenario, Transport::Udp, &args, timeout);
        SippCall {
            sipp,
            rtp,
            call_id,
            kicks: 0,
        }
    }

    /// Tell SIPp to go on to its next step (a MESSAGE in the dialog).
    fn go_on(&mut self) -> Instant {
        self.kicks += 1;
        common::sipp_message(CALLER, self.sipp.local_port, &self.call_id, self.kicks);
        Instant::now()
    }

    /// Wait for a complete play of `name` starting at or after sample `from`.
    fn heard(&mut self, name: &str, from: usize, limit: Duration) -> audio::Match {
        let p = prompt(name);
        match self.rtp.wait_heard(p, from, limit) {
            Some(m) => m,
            None => {
                let (rec, _) = self.rtp.recording();
                let t = audio::timeline(&rec, prompts());
                panic!(
                    "{name}.wav was not heard (from {:.2}s) within {limit:?}; {:.1}s of audio \
                     received, heard so far:\n  {}\n--- SIPp trace so far ---\n{}",
                    from as f32 / RATE as f32,
                    rec.secs(),
                    describe(&t),
                    self.sipp.trace_so_far()
                );
            }
        }
    }

    /// Wait until the server's first non-silent audio: (sample index, time).
    fn audio_start(&mut self, limit: Duration) -> (usize, Instant) {
        let found = common::poll(limit, || {
            let (pcm, times) = self.rtp.audio();
            let i = pcm.iter().position(|s| s.abs() > 0.01)?;
            Some((i / FRAME * FRAME, times[i / FRAME]))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no audio from hotline within {limit:?} ({} RTP packets)\n{}",
                self.rtp.packet_count(),
                self.sipp.trace_so_far()
            )
        })
    }

    /// Index (in samples) of the first packet that arrived at or after `t`.
    fn sample_at(&self, t: Instant) -> usize {
        let (_, times) = self.rtp.audio();
        times.iter().position(|&a| a >= t).unwrap_or(times.len()) * FRAME
    }

    /// Wait for SIPp to end; returns its run, and the RTP peer for analysis.
    fn finish(self) -> (SippRun, RtpPeer) {
        let run = self.sipp.wait();
        (run, self.rtp)
    }
}

/// After the transfer prompt: the caller waits in the queue a moment (the
/// record's queue and work order are written when the call is queued, at
/// the end of the prompt; see the report on hanging up during the prompt).
fn wait_in_queue() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// The timeline of everything the peer received.
fn heard_by(rtp: &RtpPeer) -> (Vec<Heard>, Recording) {
    let (rec, _) = rtp.recording();
    (audio::timeline(&rec, prompts()), rec)
}

fn assert_sipp_ok(run: &SippRun, what: &str) {
    assert_eq!(run.code, 0, "{what}: SIPp failed\n{}", run.dump());
}

/// The status of the response SIPp received to its request with CSeq method `method`.
fn statuses_for(run: &SippRun, method: &str) -> Vec<u16> {
    run.responses()
        .iter()
        .filter(|m| m.cseq_method() == Some(method))
        .filter_map(|m| m.status())
        .collect()
}

fn secs(d: Duration) -> f32 {
    d.as_secs_f32()
}

// ---------------------------------------------------------------------------
// 1. pjsua2 hears the greeting

/// pjsua2 calls 8000 and records ~9 s of what it hears: the greeting is in
/// the recording (r ≥ 0.8) and matches better than every other prompt.
fn pjsua2_hears_the_greeting() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let wav = server.dir().join("pjsua2-heard.wav");
    let out = pjsua2_call(&server, &wav, &["--hangup-after", "9"]);
    keep_for_debugging(&wav);
    let rec = Recording::new(&audio::read_wav(&wav), 40);
    assert!(
        rec.secs() > 7.0,
        "pjsua2 recorded only {:.1}s\n{out}",
        rec.secs()
    );
    // A softphone plays in real time: if hotline's media stalls (a loaded
    // machine), the prompt arrives with gaps, hence the elastic match.
    let everywhere = 0..rec.samples;
    let g = rec
        .best_elastic(prompt("greeting"), everywhere.clone())
        .expect("greeting fits in the recording");
    assert!(
        g.score >= audio::MATCH_THRESHOLD,
        "greeting r = {:.3} < {} in what pjsua2 heard",
        g.score,
        audio::MATCH_THRESHOLD
    );
    assert!(
        g.start_secs() < 2.0,
        "the greeting began {:.2}s into the call",
        g.start_secs()
    );
    let mut others = Vec::new();
    for p in prompts().iter().filter(|p| p.name != "greeting") {
        if let Some(m) = rec.best_elastic(p, everywhere.clone()) {
            assert!(
                m.score < g.score,
                "{} (r={:.3}) matches what pjsua2 heard as well as the greeting (r={:.3})",
                p.name,
                m.score,
                g.score
            );
            others.push((p.name.clone(), m.score));
        }
    }
    others.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!(
        "[pjsua2_hears_the_greeting] greeting r={:.3} at {:.2}s (strict r={:.3}); next best {:?}",
        g.score,
        g.start_secs(),
        rec.best(prompt("greeting")).map_or(0.0, |m| m.score),
        others.first()
    );
    let row = the_call(&server);
    assert_eq!(row.direction, "in");
    assert_eq!(row.from_number, CALLER);
    assert_eq!(row.to_number, HOTLINE);
    assert!(row.answered_at.is_some(), "{row:?}");
    assert_eq!(
        (row.hangup_cause.as_str(), row.hangup_side.as_str()),
        ("remote_bye", "caller"),
        "{row:?}"
    );
    assert_eq!(
        row.path().last().map(String::as_str),
        Some("greeting"),
        "{row:?}"
    );
}

/// Run pjsua2_ivr.py to the end; returns its stdout (asserts it succeeded).
/// `HOTLINE_IVR_KEEP=DIR`: copy a recording there (to listen to it).
fn keep_for_debugging(wav: &Path) {
    if let Some(dir) = std::env::var_os("HOTLINE_IVR_KEEP") {
        let name = format!(
            "{}-{}.wav",
            std::thread::current().name().unwrap_or("call"),
            CALL_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let _ = std::fs::copy(wav, Path::new(&dir).join(name));
    }
}

fn pjsua2_call(server: &TestServer, wav: &Path, extra: &[&str]) -> String {
    let mut args: Vec<String> = vec![
        "--server".into(),
        server.sip.to_string(),
        "--to".into(),
        HOTLINE.into(),
        "--caller".into(),
        CALLER.into(),
        "--record".into(),
        wav.display().to_string(),
        "--limit".into(),
        "60".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = run_python("pjsua2_ivr.py", &args, Duration::from_secs(75));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let events = json_lines(&stdout);
    let done = events
        .iter()
        .find(|e| field(e, "event") == Some("done"))
        .unwrap_or_else(|| panic!("pjsua2 never finished\n{stdout}\n{stderr}"));
    assert!(
        out.status.success() && field(done, "ok") == Some("true"),
        "pjsua2_ivr.py failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    let media = events
        .iter()
        .find(|e| field(e, "event") == Some("media_active"))
        .expect("media_active event");
    assert!(
        matches!(field(media, "codec"), Some("PCMA") | Some("PCMU")),
        "pjsua2 negotiated {:?}",
        field(media, "codec")
    );
    stdout
}

// ---------------------------------------------------------------------------
// 2. Keys select the branch, by every DTMF method

/// (a) pjsua2 presses 2 by RFC 4733 during the main menu: the menu stops and
/// transfer_install.wav is the next prompt heard.
fn pjsua2_rfc4733_key_2_transfers_to_install() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let wav = server.dir().join("pjsua2-heard.wav");
    let greeting = prompt("greeting").secs();
    let press_at = greeting + 2.0; // two seconds into the main menu
    let dtmf = format!("2@{press_at:.2}");
    let hangup = format!("{:.2}", press_at + prompt("transfer_install").secs() + 2.0);
    let out = pjsua2_call(&server, &wav, &["--dtmf", &dtmf, "--hangup-after", &hangup]);
    let sent_at: f32 = json_lines(&out)
        .iter()
        .find(|e| field(e, "event") == Some("dtmf_sent"))
        .and_then(|e| field(e, "at").and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no dtmf_sent event\n{out}"));
    keep_for_debugging(&wav);
    let rec = Recording::new(&audio::read_wav(&wav), 40);
    let key = (sent_at * RATE as f32) as usize;
    // Elastic matches: pjsua2 hears in real time (see pjsua2_hears_the_greeting).
    let g = rec
        .best_elastic(prompt("greeting"), 0..2 * RATE)
        .expect("greeting");
    assert!(
        g.score >= audio::MATCH_THRESHOLD && g.end() <= key + RATE / 2,
        "the greeting (r={:.3}, {:.2}-{:.2}s) was not heard before the key at {sent_at:.2}s",
        g.score,
        g.start_secs(),
        g.end_secs()
    );
    // What began within 1 s after the key: the best prompt there.
    let mut after: Vec<(String, audio::Match)> = prompts()
        .iter()
        .filter_map(|p| {
            rec.best_elastic(p, key..key + RATE)
                .map(|m| (p.name.clone(), m))
        })
        .collect();
    after.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let summary: Vec<String> = after
        .iter()
        .take(4)
        .map(|(n, m)| format!("{n} r={:.3} @{:.2}s", m.score, m.start_secs()))
        .collect();
    let (best, m) = &after[0];
    assert!(
        best == "transfer_install" && m.score >= audio::MATCH_THRESHOLD,
        "key 2 at {sent_at:.2}s; best matches of what followed: {summary:?}"
    );
    eprintln!(
        "[pjsua2_rfc4733] key at {sent_at:.2}s; greeting r={:.3}; after the key: {summary:?}",
        g.score
    );
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "main_menu[2]")
            && path.last().map(String::as_str) == Some("install"),
        "ivr_path {:?}",
        row.ivr_path
    );
    assert_eq!(row.queue.as_deref(), Some("install"), "{row:?}");
    assert_dtmf_method(&server, "rfc4733", 1.0);
}

/// (b) SIP INFO `application/dtmf-relay` Signal=4 two seconds into the main
/// menu: transfer_consult.wav is heard next.
fn sip_info_dtmf_relay_4_transfers_to_consult() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_info.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[
            "-set",
            "ct",
            "application/dtmf-relay",
            "-set",
            "b1",
            "Signal=4",
            "-set",
            "b2",
            "Duration=160",
        ],
        Duration::from_secs(60),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    let g = call.heard("greeting", start, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let key_time = call.go_on();
    let key_at = call.sample_at(key_time);
    let c = call.heard("transfer_consult", g.end(), Duration::from_secs(15));
    wait_in_queue();
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "INFO dtmf-relay call");
    assert_eq!(statuses_for(&run, "INFO"), [200], "{}", run.dump());
    let (t, _) = heard_by(&rtp);
    assert_eq!(
        names(&t),
        ["greeting", "transfer_consult"],
        "heard:\n  {}",
        describe(&t)
    );
    let delay = c.start as f32 / RATE as f32 - key_at as f32 / RATE as f32;
    assert!(
        (-0.1..1.0).contains(&delay),
        "transfer_consult began {delay:.2}s after the INFO"
    );
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "main_menu[4]")
            && path.last().map(String::as_str) == Some("consult"),
        "ivr_path {}",
        row.ivr_path
    );
    assert_dtmf_method(&server, "info", 1.0);
}

/// (b') SIP INFO `application/dtmf` "3" after the whole main menu was heard:
/// greeting, main menu, then transfer_complaint.wav.
fn sip_info_application_dtmf_3_transfers_to_complaint() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_info.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[
            "-set",
            "ct",
            "application/dtmf",
            "-set",
            "b1",
            "3",
            "-set",
            "b2",
            "",
        ],
        Duration::from_secs(80),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    let g = call.heard("greeting", start, Duration::from_secs(20));
    let m = call.heard("main_menu", g.end(), Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(800));
    call.go_on();
    call.heard("transfer_complaint", m.end(), Duration::from_secs(15));
    wait_in_queue();
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "INFO application/dtmf call");
    assert_eq!(statuses_for(&run, "INFO"), [200], "{}", run.dump());
    let (t, _) = heard_by(&rtp);
    assert_eq!(
        names(&t),
        ["greeting", "main_menu", "transfer_complaint"],
        "heard:\n  {}",
        describe(&t)
    );
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "main_menu[3]")
            && path.last().map(String::as_str) == Some("complaint"),
        "ivr_path {}",
        row.ivr_path
    );
    assert_eq!(row.queue.as_deref(), Some("complaint"));
    assert_dtmf_method(&server, "info", 1.0);
}

/// A key tone made by sox (200 ms, both frequencies of the key), as A-law
/// bytes; checked with Goertzel to be that key before it is used.
fn sox_key_tone(dir: &Path, key: char) -> Vec<u8> {
    const ROWS: [u32; 4] = [697, 770, 852, 941];
    const COLS: [u32; 3] = [1209, 1336, 1477];
    let (r, c) = match key {
        '1'..='9' => {
            let n = key as usize - '1' as usize;
            (n / 3, n % 3)
        }
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        other => panic!("no tone for {other:?}"),
    };
    let sox = require_binary("sox", "Debian package sox");
    let name = if key == '#' {
        "pound".to_string()
    } else if key == '*' {
        "star".to_string()
    } else {
        key.to_string()
    };
    let wav = dir.join(format!("key-{name}.wav"));
    let al = dir.join(format!("key-{name}.al"));
    let st = std::process::Command::new(&sox)
        .args(["-D", "-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args([
            "synth",
            "0.2",
            "sine",
            &ROWS[r].to_string(),
            "sine",
            &COLS[c].to_string(),
            "gain",
            "-8",
        ])
        .status()
        .expect("run sox");
    assert!(st.success(), "sox synth failed");
    assert_eq!(
        audio::dtmf_key(&audio::read_wav(&wav)),
        Some(key),
        "sox did not make a {key} tone"
    );
    let st = std::process::Command::new(&sox)
        .arg("-D")
        .arg(&wav)
        .args(["-t", "al"])
        .arg(&al)
        .status()
        .expect("run sox");
    assert!(st.success(), "sox A-law conversion failed");
    std::fs::read(&al).expect("read the A-law tone")
}

/// Send keys as in-band tones, each followed by 200 ms of silence.
fn send_tones(rtp: &RtpPeer, dir: &Path, keys: &str) {
    for key in keys.chars() {
        let mut bytes = sox_key_tone(dir, key);
        bytes.extend(std::iter::repeat_n(0xD5u8, 1600));
        rtp.play_encoded(key, 8, &bytes);
    }
}

/// (c) In-band: the offer has no telephone-event; the test sends a sox
/// "1" tone as PCMA during the main menu → order_no.wav is heard next; then
/// the order number 123456# as tones → transfer_repair.wav, and the record
/// carries work order 123456.
fn inband_key_1_asks_for_the_order_number() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_call.xml",
        HOTLINE,
        Offer::PcmaOnly,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(80),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    let g = call.heard("greeting", start, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let key_time = Instant::now();
    send_tones(&call.rtp, server.dir(), "1");
    let key_at = call.sample_at(key_time);
    let o = call.heard("order_no", g.end(), Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    send_tones(&call.rtp, server.dir(), "123456#");
    call.heard("transfer_repair", o.end(), Duration::from_secs(20));
    wait_in_queue();
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "in-band call");
    let (t, _) = heard_by(&rtp);
    assert_eq!(
        names(&t),
        ["greeting", "order_no", "transfer_repair"],
        "heard:\n  {}",
        describe(&t)
    );
    let delay = (o.start as f32 - key_at as f32) / RATE as f32;
    assert!(
        (0.0..1.2).contains(&delay),
        "order_no began {delay:.2}s after the tone started"
    );
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "main_menu[1]")
            && path.iter().any(|s| s == "repair_order[123456#]")
            && path.last().map(String::as_str) == Some("repair"),
        "ivr_path {}",
        row.ivr_path
    );
    assert_eq!(row.work_order.as_deref(), Some("123456"), "{row:?}");
    assert_eq!(row.queue.as_deref(), Some("repair"), "{row:?}");
    assert_dtmf_method(&server, "inband", 8.0);
}

// ---------------------------------------------------------------------------
// 3. Timeouts and invalid keys

/// No key at all: greeting, menu, (5 s) timeout.wav, menu, timeout.wav, menu,
/// then the fallback: transfer_agent.wav. Each timeout notice comes ~5 s
/// after the menu ended.
fn no_key_replays_the_menu_then_gives_an_agent() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_call.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(150),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    let mut at = call.heard("greeting", start, Duration::from_secs(20)).end();
    for _ in 0..2 {
        at = call.heard("main_menu", at, Duration::from_secs(20)).end();
        at = call.heard("timeout", at, Duration::from_secs(20)).end();
    }
    at = call.heard("main_menu", at, Duration::from_secs(20)).end();
    call.heard("transfer_agent", at, Duration::from_secs(20));
    wait_in_queue();
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "no-key call");
    let (t, _) = heard_by(&rtp);
    assert_eq!(
        names(&t),
        [
            "greeting",
            "main_menu",
            "timeout",
            "main_menu",
            "timeout",
            "main_menu",
            "transfer_agent"
        ],
        "heard:\n  {}",
        describe(&t)
    );
    for w in t.windows(2) {
        let gap = (w[1].m.start as f32 - w[0].m.end() as f32) / RATE as f32;
        let want = if w[0].name == "main_menu" { 5.0 } else { 0.0 };
        assert!(
            (gap - want).abs() < 0.6,
            "{} began {gap:.2}s after {} ended (expected {want}s)\n  {}",
            w[1].name,
            w[0].name,
            describe(&t)
        );
    }
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "main_menu[T,T,T]")
            && path.last().map(String::as_str) == Some("agent"),
        "ivr_path {}",
        row.ivr_path
    );
    assert_eq!(row.queue.as_deref(), Some("general"));
}

/// Key 7 is not in the menu: invalid.wav, then the menu again, three times;
/// then the fallback, transfer_agent.wav (keys by RFC 4733 from the test's port).
fn invalid_key_replays_the_menu_then_gives_an_agent() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_call.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(150),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    let mut at = call.heard("greeting", start, Duration::from_secs(20)).end();
    for round in 0..3 {
        at = call.heard("main_menu", at, Duration::from_secs(20)).end();
        std::thread::sleep(Duration::from_millis(700));
        call.rtp.press_rfc4733('7', TE_PT, 100);
        let next = if round < 2 {
            "invalid"
        } else {
            "transfer_agent"
        };
        at = call.heard(next, at, Duration::from_secs(15)).end();
    }
    wait_in_queue();
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "invalid-key call");
    let (t, _) = heard_by(&rtp);
    assert_eq!(
        names(&t),
        [
            "greeting",
            "main_menu",
            "invalid",
            "main_menu",
            "invalid",
            "main_menu",
            "transfer_agent"
        ],
        "heard:\n  {}",
        describe(&t)
    );
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "main_menu[7,7,7]")
            && path.last().map(String::as_str) == Some("agent"),
        "ivr_path {}",
        row.ivr_path
    );
    assert_dtmf_method(&server, "rfc4733", 3.0);
}

// ---------------------------------------------------------------------------
// 4-9. How calls start and end

/// The caller gives up while it rings: 200 for the CANCEL, 487 for the
/// INVITE; the record says cancelled by the caller, never answered.
fn cancel_while_ringing() {
    let server = start(ivr_server(Hours::AlwaysOpen).answer_delay_ms(3000));
    let rtp = RtpPeer::start(false);
    let call = SippCall::start(
        &server,
        "ivr_cancel.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        rtp,
        &[],
        Duration::from_secs(15),
    );
    let (run, _) = call.finish();
    assert_sipp_ok(&run, "CANCEL call");
    assert!(
        statuses_for(&run, "INVITE").contains(&180),
        "{}",
        run.dump()
    );
    assert_eq!(statuses_for(&run, "CANCEL"), [200], "{}", run.dump());
    assert_eq!(
        statuses_for(&run, "INVITE").last(),
        Some(&487),
        "{}",
        run.dump()
    );
    let row = the_call(&server);
    assert_eq!(row.hangup_cause, "cancelled", "{row:?}");
    assert_eq!(row.hangup_side, "caller", "{row:?}");
    assert_eq!(row.answered_at, None, "{row:?}");
    assert_eq!(row.talk_ms, 0, "{row:?}");
}

/// BYE three seconds into the greeting: 200; the server stops sending RTP at
/// once; the record: caller hung up, talked > 0 ms, path ends in greeting.
fn caller_hangs_up_during_the_greeting() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_call.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(30),
    );
    let (_, started) = call.audio_start(Duration::from_secs(5));
    let wait = Duration::from_millis(4000).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "BYE during greeting");
    assert_eq!(statuses_for(&run, "BYE"), [200], "{}", run.dump());
    let bye_sent = run
        .messages()
        .iter()
        .find(|m| m.sent && m.msg.method() == Some("BYE"))
        .and_then(|m| m.at)
        .expect("time stamp of the BYE");
    let count = rtp.packet_count();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rtp.packet_count(),
        count,
        "hotline kept sending RTP after the call ended"
    );
    let last = rtp.packets().last().map(|p| p.wall).expect("some RTP");
    let after_bye = last
        .duration_since(bye_sent)
        .map(|d| d.as_secs_f32())
        .unwrap_or(0.0);
    assert!(
        after_bye < 0.3,
        "the last RTP packet came {after_bye:.3}s after the BYE"
    );
    let (rec, _) = rtp.recording();
    let g = rec.best(prompt("greeting")).expect("greeting");
    assert!(
        g.score >= audio::MATCH_THRESHOLD,
        "greeting r = {:.3}",
        g.score
    );
    let row = the_call(&server);
    assert_eq!(
        (row.hangup_cause.as_str(), row.hangup_side.as_str()),
        ("remote_bye", "caller"),
        "{row:?}"
    );
    assert!(
        (2500..6000).contains(&row.talk_ms),
        "talk_ms {} for a ~4 s call",
        row.talk_ms
    );
    assert_eq!(
        row.path().last().map(String::as_str),
        Some("greeting"),
        "{row:?}"
    );
}

/// A caller that sends no RTP: after the 2 s media timeout hotline hangs up
/// (BYE ~2 s after the answer) and records media_timeout by hotline.
fn silent_caller_is_hung_up_after_the_media_timeout() {
    let server = start(ivr_server(Hours::AlwaysOpen).media_timeout_secs(2));
    let call = SippCall::start(
        &server,
        "ivr_wait_bye.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(false),
        &[],
        Duration::from_secs(20),
    );
    let (run, _) = call.finish();
    assert_sipp_ok(&run, "silent caller");
    let msgs = run.messages();
    let ack = msgs
        .iter()
        .find(|m| m.sent && m.msg.method() == Some("ACK"))
        .and_then(|m| m.at)
        .expect("ACK time");
    let bye = msgs
        .iter()
        .find(|m| !m.sent && m.msg.method() == Some("BYE"))
        .and_then(|m| m.at)
        .expect("BYE time");
    let after = bye
        .duration_since(ack)
        .map(|d| d.as_secs_f32())
        .unwrap_or(-1.0);
    assert!(
        (1.5..3.5).contains(&after),
        "hotline's BYE came {after:.2}s after the answer (media timeout 2 s)"
    );
    let row = the_call(&server);
    assert_eq!(
        (row.hangup_cause.as_str(), row.hangup_side.as_str()),
        ("media_timeout", "hotline"),
        "{row:?}"
    );
}

/// An unknown number gets 404 and leaves no call record; an offer of G.729
/// only gets 488.
fn unknown_number_404_and_g729_only_488() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let call = SippCall::start(
        &server,
        "ivr_reject.xml",
        "4001234567",
        Offer::PcmaAndEvents,
        RtpPeer::start(false),
        &[],
        Duration::from_secs(15),
    );
    let (run, _) = call.finish();
    assert_sipp_ok(&run, "INVITE to an unknown number");
    assert_eq!(
        statuses_for(&run, "INVITE").last(),
        Some(&404),
        "{}",
        run.dump()
    );
    std::thread::sleep(Duration::from_millis(500));
    let rows = call_rows(&server);
    assert!(rows.is_empty(), "a 404 left call rows: {rows:#?}");

    let rtp = RtpPeer::start(false);
    let port = rtp.port().to_string();
    let mut args = vec![
        "-s",
        HOTLINE,
        "-set",
        "rtp",
        &port,
        "-set",
        "pts",
        "18",
        "-set",
        "te",
        "a=rtpmap:18 G729/8000",
        "-set",
        "caller",
        CALLER,
    ];
    args.push("-m");
    args.push("1");
    let run = sipp_spawn(
        &server,
        "ivr_reject.xml",
        Transport::Udp,
        &args,
        Duration::from_secs(15),
    )
    .wait();
    assert_sipp_ok(&run, "G.729-only offer");
    let r488 = run
        .responses()
        .into_iter()
        .find(|m| m.status() == Some(488))
        .unwrap_or_else(|| panic!("no 488\n{}", run.dump()));
    assert_eq!(r488.cseq_method(), Some("INVITE"));
    let row = the_call(&server);
    assert_eq!(row.to_number, HOTLINE);
    assert_eq!(row.answered_at, None, "{row:?}");
    assert_eq!(row.hangup_cause, "rejected_488", "{row:?}");
    assert!(rtp.packets().is_empty(), "RTP sent for a refused call");
}

/// An INVITE without SDP: hotline offers PCMU, PCMA and telephone-event/101
/// in its 200, takes the answer from the ACK and plays the greeting there.
fn invite_without_sdp_gets_an_offer_and_the_greeting() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_no_sdp.xml",
        HOTLINE,
        Offer::PcmaOnly,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(40),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    call.heard("greeting", start, Duration::from_secs(20));
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "INVITE without SDP");
    let ok = run
        .responses()
        .into_iter()
        .find(|m| m.status() == Some(200) && m.cseq_method() == Some("INVITE"))
        .expect("200 for the INVITE");
    let sdp = ok.body.replace("\r\n", "\n");
    let m_line = sdp.lines().find(|l| l.starts_with("m=audio")).unwrap_or("");
    assert!(
        m_line.ends_with("RTP/AVP 0 8 101"),
        "offer m-line {m_line:?}\n{sdp}"
    );
    for want in [
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
    ] {
        assert!(sdp.contains(want), "no {want:?} in the offer:\n{sdp}");
    }
    assert!(
        rtp.packets().iter().all(|p| p.pt == 8),
        "hotline must send the answered codec (PCMA) only"
    );
    let (t, _) = heard_by(&rtp);
    assert_eq!(names(&t).first(), Some(&"greeting"), "{}", describe(&t));
}

/// Hold and resume by re-INVITE: sendonly → 200 with recvonly and no RTP
/// from hotline while held; sendrecv → RTP again; the record counts hold_ms.
fn hold_and_resume_by_reinvite() {
    let server = start(ivr_server(Hours::AlwaysOpen));
    let mut call = SippCall::start(
        &server,
        "ivr_hold.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(40),
    );
    let (_, started) = call.audio_start(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    let hold_at = call.go_on();
    // Whatever was in flight has arrived 300 ms later; then nothing for 3 s.
    std::thread::sleep(Duration::from_millis(300));
    let before = call.rtp.packet_count();
    std::thread::sleep(Duration::from_secs(3));
    let during = call.rtp.packet_count() - before;
    let resume_at = call.go_on();
    let resumed = common::poll(Duration::from_secs(3), || {
        (call.rtp.packet_count() > before + during + 10).then(Instant::now)
    });
    std::thread::sleep(Duration::from_secs(2));
    call.go_on();
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "hold/resume call");
    let oks: Vec<_> = run
        .responses()
        .into_iter()
        .filter(|m| m.status() == Some(200) && m.cseq_method() == Some("INVITE"))
        .collect();
    assert_eq!(oks.len(), 3, "three 200s for INVITEs\n{}", run.dump());
    assert!(
        oks[1].body.contains("a=recvonly"),
        "hold answer:\n{}",
        oks[1].body
    );
    assert!(
        oks[2].body.contains("a=sendrecv"),
        "resume answer:\n{}",
        oks[2].body
    );
    assert_eq!(during, 0, "hotline sent {during} RTP packets while held");
    let resumed = resumed.unwrap_or_else(|| panic!("no RTP after the resume"));
    assert!(
        resumed.duration_since(resume_at) < Duration::from_millis(1500),
        "RTP resumed {:.2}s after the re-INVITE",
        secs(resumed.duration_since(resume_at))
    );
    // The longest silence in what arrived is the hold.
    let pk = rtp.packets();
    let gap = pk
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    assert!(
        (2.8..5.0).contains(&secs(gap)),
        "longest RTP gap {:.2}s (held ~{:.1}s)",
        secs(gap),
        secs(resume_at.duration_since(hold_at))
    );
    let row = the_call(&server);
    assert!(
        (2500..6000).contains(&row.hold_ms),
        "hold_ms {} for ~3.3 s on hold",
        row.hold_ms
    );
    assert_eq!(row.hangup_side, "caller");
}

// ---------------------------------------------------------------------------
// 10. After hours

/// Always closed: after_hours.wav; key 1 → callback_promise.wav, goodbye.wav,
/// hotline hangs up; a pending callback request for the caller, due later.
fn after_hours_key_1_books_a_callback() {
    let server = start(ivr_server(Hours::AlwaysClosed));
    let mut call = SippCall::start(
        &server,
        "ivr_wait_bye.xml",
        HOTLINE,
        Offer::PcmaAndEvents,
        RtpPeer::start(true),
        &[],
        Duration::from_secs(70),
    );
    let (start, _) = call.audio_start(Duration::from_secs(5));
    let a = call.heard("after_hours", start, Duration::from_secs(25));
    std::thread::sleep(Duration::from_millis(700));
    call.rtp.press_rfc4733('1', TE_PT, 100);
    let c = call.heard("callback_promise", a.end(), Duration::from_secs(20));
    call.heard("goodbye", c.end(), Duration::from_secs(15));
    let (run, rtp) = call.finish();
    assert_sipp_ok(&run, "after-hours call (hotline hangs up)");
    let (t, _) = heard_by(&rtp);
    assert_eq!(
        names(&t),
        ["after_hours", "callback_promise", "goodbye"],
        "heard:\n  {}",
        describe(&t)
    );
    let row = the_call(&server);
    let path = row.path();
    assert!(
        path.iter().any(|s| s == "after_hours[1]") && path.iter().any(|s| s == "callback"),
        "ivr_path {}",
        row.ivr_path
    );
    assert_eq!(
        (row.hangup_cause.as_str(), row.hangup_side.as_str()),
        ("ivr_completed", "hotline"),
        "{row:?}"
    );
    let cbs = callback_requests(&server);
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    assert_eq!(cbs[0].phone, CALLER);
    assert_eq!(cbs[0].state, "pending");
    assert_eq!(cbs[0].source_call, row.id);
    assert!(
        cbs[0].due_at > now_ms(),
        "due_at {} is not in the future",
        cbs[0].due_at
    );
}

// ---------------------------------------------------------------------------
// 11. Load

/// 50 callers from SIPp (10/s, all 50 at once), each streaming PCMA speech
/// and staying 10 s in the IVR (media timeout 3 s, so their RTP must arrive):
/// every call succeeds, has a complete record, and no media session is left.
fn fifty_concurrent_callers() {
    // A 3 s media timeout: a call whose RTP does not reach hotline would end early.
    let server = start(ivr_server(Hours::AlwaysOpen).media_timeout_secs(3));
    let sox = require_binary("sox", "Debian package sox");
    // The scenario streams ../ivr_load.alaw: SIPp runs in a directory inside the server's.
    let alaw = server.dir().join("ivr_load.alaw");
    let st = std::process::Command::new(sox)
        .arg("-D")
        .arg(Path::new(REPO).join("tests/fixtures/speech8k.wav"))
        .args(["-r", "8000", "-c", "1", "-t", "al"])
        .arg(&alaw)
        .args(["gain", "-2"])
        .status()
        .expect("run sox");
    assert!(st.success(), "sox could not make the A-law file");
    let mp = common::free_port().to_string();
    let t0 = Instant::now();
    let run = sipp_spawn(
        &server,
        "ivr_load.xml",
        Transport::Udp,
        &[
            "-s",
            HOTLINE,
            "-set",
            "caller",
            CALLER,
            "-r",
            "10",
            "-l",
            "50",
            "-m",
            "50",
            "-d",
            "10000",
            "-mi",
            "127.0.0.1",
            "-mp",
            &mp,
        ],
        Duration::from_secs(60),
    )
    .wait();
    let took = t0.elapsed();
    assert_eq!(
        run.code, 0,
        "SIPp: some calls failed\n{}\n{}",
        run.stdout, run.errors
    );
    let rows = ended_calls(&server, 50);
    assert_eq!(rows.len(), 50, "{rows:#?}");
    for r in &rows {
        assert!(
            r.answered_at.is_some() && r.ended_at.is_some(),
            "incomplete record {r:?}"
        );
        assert_eq!(
            (r.hangup_cause.as_str(), r.hangup_side.as_str()),
            ("remote_bye", "caller"),
            "{r:?}"
        );
        assert!(
            r.talk_ms >= 9500,
            "talk_ms {} for a 10 s call: {r:?}",
            r.talk_ms
        );
    }
    // All 50 overlapped: the 50th arrived before the first ended.
    let last_arrival = rows.iter().map(|r| r.arrived_at).max().unwrap_or(0);
    let first_end = rows.iter().filter_map(|r| r.ended_at).min().unwrap_or(0);
    assert!(
        last_arrival < first_end,
        "calls did not overlap: last arrival {last_arrival}, first end {first_end}"
    );
    let late = server
        .metric("hotline_media_late_ticks_total")
        .unwrap_or(0.0);
    eprintln!(
        "[fifty_concurrent_callers] SIPp ran {:.1}s; media late ticks {late}",
        secs(took)
    );
}

// ---------------------------------------------------------------------------
// The driver

type Scenario = (&'static str, fn());

/// Scenarios in lanes: lanes run at once, a lane's scenarios one after the
/// other. The pjsua2 callers (which hear in real time, so a starved server
/// would make them hear gaps) run after the 50-call load, in its lane; the
/// longest scenarios start first. Total ≈ the longest lane (~100 s).
const LANES: &[&[Scenario]] = &[
    &[(
        "no_key_replays_the_menu_then_gives_an_agent",
        no_key_replays_the_menu_then_gives_an_agent,
    )],
    &[(
        "invalid_key_replays_the_menu_then_gives_an_agent",
        invalid_key_replays_the_menu_then_gives_an_agent,
    )],
    &[
        ("fifty_concurrent_callers", fifty_concurrent_callers),
        ("pjsua2_hears_the_greeting", pjsua2_hears_the_greeting),
        (
            "pjsua2_rfc4733_key_2_transfers_to_install",
            pjsua2_rfc4733_key_2_transfers_to_install,
        ),
    ],
    &[(
        "after_hours_key_1_books_a_callback",
        after_hours_key_1_books_a_callback,
    )],
    &[(
        "inband_key_1_asks_for_the_order_number",
        inband_key_1_asks_for_the_order_number,
    )],
    &[(
        "sip_info_application_dtmf_3_transfers_to_complaint",
        sip_info_application_dtmf_3_transfers_to_complaint,
    )],
    &[(
        "sip_info_dtmf_relay_4_transfers_to_consult",
        sip_info_dtmf_relay_4_transfers_to_consult,
    )],
    &[(
        "invite_without_sdp_gets_an_offer_and_the_greeting",
        invite_without_sdp_gets_an_offer_and_the_greeting,
    )],
    &[
        ("hold_and_resume_by_reinvite", hold_and_resume_by_reinvite),
        (
            "caller_hangs_up_during_the_greeting",
            caller_hangs_up_during_the_greeting,
        ),
    ],
    &[
        (
            "silent_caller_is_hung_up_after_the_media_timeout",
            silent_caller_is_hung_up_after_the_media_timeout,
        ),
        ("cancel_while_ringing", cancel_while_ringing),
        (
            "unknown_number_404_and_g729_only_488",
            unknown_number_404_and_g729_only_488,
        ),
    ],
];

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Every scenario above; fails listing each failed scenario.
#[test]
fn ivr_end_to_end() {
    let only: Option<Vec<String>> = std::env::var("HOTLINE_IVR_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let lanes: Vec<Vec<Scenario>> = LANES
        .iter()
        .map(|lane| {
            lane.iter()
                .copied()
                .filter(|(n, _)| wanted(n))
                .collect::<Vec<_>>()
        })
        .filter(|lane| !lane.is_empty())
        .collect();
    assert!(!lanes.is_empty(), "HOTLINE_IVR_ONLY matches no scenario");
    // Decode the prompts once before the threads need them.
    let _ = prompts();
    let t0 = Instant::now();
    let handles: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            std::thread::Builder::new()
                .name(lane[0].0.to_string())
                .spawn(move || {
                    let mut results = Vec::new();
                    for (name, f) in lane {
                        let t = Instant::now();
                        let r = std::panic::catch_unwind(f).map_err(|e| panic_text(&*e));
                        let took = t.elapsed();
                        match &r {
                            Ok(()) => eprintln!("ok     {name} ({:.1}s)", secs(took)),
                            Err(_) => eprintln!("FAILED {name} ({:.1}s)", secs(took)),
                        }
                        results.push((name, r));
                    }
                    results
                })
                .expect("spawn scenario thread")
        })
        .collect();
    let mut failed = Vec::new();
    let mut count = 0;
    for h in handles {
        for (name, r) in h.join().expect("a lane thread died") {
            count += 1;
            if let Err(msg) = r {
                failed.push(format!("{name}: {}", msg.lines().next().unwrap_or("")));
            }
        }
    }
    eprintln!("all IVR scenarios took {:.1}s", secs(t0.elapsed()));
    assert!(
        failed.is_empty(),
        "{} of {count} IVR scenarios failed (details above):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

/// The copy of the dialplan each server loads is the shipped one with only
/// the calendar and prompts_dir changed, and hotline accepts it.
#[test]
fn test_dialplans_differ_from_the_shipped_one_only_in_calendar() {
    let open = dialplan(Hours::AlwaysOpen);
    let closed = dialplan(Hours::AlwaysClosed);
    assert!(!open.contains("[calendar]") && !open.contains("holidays"));
    assert!(closed.contains("[calendar]") && !closed.contains("mon ="));
    for (n, text) in [("open", &open), ("closed", &closed)] {
        assert!(text.contains("[nodes.main_menu]") && text.contains("[nodes.after_hours]"));
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join(format!("{n}.toml"));
        std::fs::write(&f, text).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("check-dialplan")
            .arg(&f)
            .output()
            .expect("run hotline check-dialplan");
        assert!(
            out.status.success(),
            "check-dialplan {n}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
