//! Queue paths that the router implements, end to end with real SIP peers on
//! loopback, judged by what people notice: what the caller hears, which
//! agent's phone rings and answers, and what the database says afterwards.
//!
//! * blind transfer by REFER from the agent's softphone (pjsua2 `xfer()`);
//! * "press 1 to be called back" when the wait passes the queue's limit or
//!   the queue is full; a caller who ignores the offer keeps their place;
//! * overflow to another queue when the wait passes the limit;
//! * first-contact ownership (首问负责制): the case owner is offered the call
//!   before the agent who has been idle longest, and loses it when their
//!   phone does not answer.
//!
//! The caller is SIPp for signalling with the test's own RTP port
//! ([`audio::RtpPeer`]): it hears the prompts and the agents' voices and
//! presses keys with RFC 4733. Agents are SIPp pools
//! ([`common::agents::SippAgents`], they talk speech B) or pjsua2 (talks
//! speech A). Each test runs its own `hotline serve`.

#[path = "common/audio.rs"]
mod audio;
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use audio::{describe, names, Match, PromptAudio, RtpPeer, FRAME, RATE};
use common::agents::{
    agent, agent_password, hotline_dialplan, speech_a, speech_b, Behaviour, Sipp, SippAgents,
};
use common::{field, poll, Agent, LineStream, SippRun, TestServer, REPO};

/// RFC 4733 payload type of the caller's SDP.
const TE_PT: u8 = 96;

// ---------------------------------------------------------------------------
// Prompts and voices

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

/// A voice file's envelope (20 ms frames), to find in what the caller heard.
struct Voice {
    name: &'static str,
    env: Vec<f32>,
}

/// The voice of the SIPp agent pools (speech B, looped by SIPp).
fn voice_b() -> &'static Voice {
    static B: OnceLock<Voice> = OnceLock::new();
    B.get_or_init(|| Voice {
        name: "agent voice B",
        env: audio::envelope(&audio::read_wav(&speech_b()), FRAME),
    })
}

/// The voice the pjsua2 agent plays (speech A).
fn voice_a() -> &'static Voice {
    static A: OnceLock<Voice> = OnceLock::new();
    A.get_or_init(|| Voice {
        name: "agent voice A",
        env: audio::envelope(&audio::read_wav(&speech_a()), FRAME),
    })
}

/// 1 s windows (50 frames), one every 0.5 s.
const WINDOW: usize = 50;

/// How much of `heard` (an envelope) is `voice`: each loud 1 s window is
/// looked up anywhere in the voice (the agent's side starts anywhere in its
/// file and SIPp loops it); a window counts when r >= 0.7 and another such
/// window agrees on the alignment within 0.3 s (the same speech, played on;
/// random speech matches one window now and then, never a run). Robust to
/// the gaps a loaded machine leaves. Returns (matching windows, loud windows).
fn voice_windows(heard: &[f32], voice: &Voice) -> (usize, usize) {
    let refenv = &voice.env;
    let ref_len = refenv.len() as f32;
    let mut hits: Vec<f32> = Vec::new();
    let mut loud_windows = 0;
    let mut w = 0;
    while w + WINDOW <= heard.len() {
        let seg = &heard[w..w + WINDOW];
        if seg.iter().filter(|v| **v > 0.02).count() >= WINDOW / 5 {
            loud_windows += 1;
            let best = (0..refenv.len().saturating_sub(WINDOW))
                .map(|k| (audio::ncc(seg, &refenv[k..k + WINDOW]), k))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, k)) = best.filter(|b| b.0 >= 0.7) {
                hits.push((k as f32 - w as f32).rem_euclid(ref_len));
            }
        }
        w += WINDOW / 2;
    }
    let agree = |a: f32, b: f32| {
        let d = (a - b).abs();
        d.min(ref_len - d) <= 15.0 // 0.3 s in 20 ms frames
    };
    let matched = hits
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            hits.iter()
                .enumerate()
                .any(|(j, b)| j != *i && agree(**a, *b))
        })
        .count();
    (matched, loud_windows)
}

// ---------------------------------------------------------------------------
// The server

/// `[acd]` and the five queues of the shipped dialplan, each with the same
/// ring time, no wrap-up and no announcements, plus `extra` lines for the
/// queue named first in each pair.
fn queues_toml(ring_timeout_ms: u64, extra: &[(&str, &str)]) -> String {
    let mut t =
        String::from("[acd]\nready_on_register = true\nmax_missed_offers = 5\nrecord = true\n");
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
            "strategy = \"longest_idle\"\nring_timeout_ms = {ring_timeout_ms}\nwrap_up_ms = 0\n\
             announce_interval_ms = 0\n"
        ));
        for (q, line) in extra {
            if *q == name {
                t.push_str(line);
                t.push('\n');
            }
        }
    }
    t
}

/// A server with the shipped dialplan (always open), `agents` and `queues`.
/// `prompts/` beside the dialplan: hotline loads the prompts it plays itself
/// (callback offer and promise) from there.
fn server(agents: Vec<Agent>, queues: &str) -> TestServer {
    server_with(agents, queues, &hotline_dialplan())
}

fn server_with(agents: Vec<Agent>, queues: &str, dialplan: &str) -> TestServer {
    TestServer::builder()
        .agents(agents)
        .dialplan("hotline-paths.toml", dialplan)
        .link("prompts", &prompts_dir())
        .extra_toml(queues)
        .start()
}

fn wait_registrations(server: &TestServer, n: f64, what: &str) {
    if let Err(last) =
        server.wait_metric("hotline_registrations", Duration::from_secs(15), |v| v >= n)
    {
        panic!("{what}: hotline_registrations {last:?}, expected {n}");
    }
    // The registrar tells the ACD after its 200.
    std::thread::sleep(Duration::from_millis(300));
}

// ---------------------------------------------------------------------------
// The caller

static CALL_SEQ: AtomicU32 = AtomicU32::new(0);

/// A customer calling 8000: SIPp signalling (`queue_caller_rtp.xml`) with
/// the test's own RTP port, which records what hotline sends and presses
/// keys (RFC 4733). Stays until the test hangs up or hotline does.
struct Caller {
    sipp: Sipp,
    rtp: RtpPeer,
    number: String,
    call_id: String,
}

impl Caller {
    fn call(server: &TestServer, number: &str) -> Self {
        let rtp = RtpPeer::start(true);
        let n = CALL_SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("qp-{}-{n}-", std::process::id());
        let args: Vec<String> = [
            "-s",
            "8000",
            "-m",
            "1",
            "-set",
            "rtp",
            &rtp.port().to_string(),
            "-set",
            "caller",
            number,
            "-cid_str",
            &format!("{base}%u"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let sipp = Sipp::spawn(
            server,
            "queue_caller_rtp.xml",
            &args,
            &[],
            Duration::from_secs(150),
            true,
        );
        Caller {
            sipp,
            rtp,
            number: number.to_string(),
            call_id: format!("{base}1"),
        }
    }

    /// Wait for hotline's first non-silent audio (the greeting); its sample index.
    fn audio_start(&self, limit: Duration) -> usize {
        poll(limit, || {
            let (pcm, _) = self.rtp.audio();
            pcm.iter()
                .position(|s| s.abs() > 0.01)
                .map(|i| i / FRAME * FRAME)
        })
        .unwrap_or_else(|| {
            panic!(
                "caller {}: no audio from hotline within {limit:?} ({} RTP packets)\n{}",
                self.number,
                self.rtp.packet_count(),
                self.sipp.so_far().dump()
            )
        })
    }

    /// Press a key (RFC 4733, 120 ms).
    fn press(&self, key: char) {
        self.rtp.press_rfc4733(key, TE_PT, 120);
    }

    /// Wait for a complete play of `p` starting at or after sample `from`.
    /// Exact first; on a loaded machine hotline's media worker may resync and
    /// leave gaps, so a complete elastic match (r >= 0.8) counts too.
    fn heard(&self, p: &PromptAudio, from: usize, limit: Duration) -> Match {
        let found = poll(limit, || {
            let (pcm, _) = self.rtp.audio();
            let rec = audio::Recording::new(&pcm, FRAME);
            let m = rec.find_full(p, from).or_else(|| {
                rec.best_elastic(p, from..rec.samples.max(from + 1))
                    .filter(|m| m.score >= audio::MATCH_THRESHOLD && m.frames + 10 >= p.env.len())
            });
            if m.is_none() {
                std::thread::sleep(Duration::from_millis(200)); // the elastic match costs
            }
            m
        });
        found.unwrap_or_else(|| {
            let (pcm, _) = self.rtp.audio();
            let dump = std::env::temp_dir().join(format!("qp-heard-{}.wav", self.number));
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: RATE as u32,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            if let Ok(mut w) = hound::WavWriter::create(&dump, spec) {
                for s in &pcm {
                    let _ = w.write_sample((s * 32767.0) as i16);
                }
                let _ = w.finalize();
            }
            let (rec, _) = self.rtp.recording();
            let t = audio::timeline(&rec, prompts());
            panic!(
                "caller {}: {} was not heard (from {:.2}s) within {limit:?} (best: {:?}); {:.1}s \
                 of audio received, prompts heard so far:\n  {}\n--- SIPp trace so far ---\n{}",
                self.number,
                p.name,
                from as f32 / RATE as f32,
                rec.best(p),
                rec.secs(),
                describe(&t),
                self.sipp.so_far().dump()
            )
        })
    }

    /// Wait until the caller has heard at least 3 s of `voice` (3 matching
    /// 1 s windows, see [`voice_windows`]) after sample `from`.
    fn heard_voice(&self, voice: &Voice, from: usize, limit: Duration) {
        let mut last = (0, 0);
        let ok = poll(limit, || {
            let (pcm, _) = self.rtp.audio();
            let env = audio::envelope(&pcm[from.min(pcm.len())..], FRAME);
            last = voice_windows(&env, voice);
            (last.0 >= 3).then_some(())
        });
        if ok.is_none() {
            let (pcm, _) = self.rtp.audio();
            panic!(
                "caller {}: {} not heard after {:.2}s within {limit:?}: {}/{} loud windows match; \
                 {:.1}s of audio received\n--- SIPp trace so far ---\n{}",
                self.number,
                voice.name,
                from as f32 / RATE as f32,
                last.0,
                last.1,
                pcm.len() as f32 / RATE as f32,
                self.sipp.so_far().dump()
            );
        }
    }

    /// How much of `voice` the caller heard between samples `from` and `to`.
    fn voice_between(&self, voice: &Voice, from: usize, to: usize) -> (usize, usize) {
        let (pcm, _) = self.rtp.audio();
        let to = to.min(pcm.len());
        let env = audio::envelope(&pcm[from.min(to)..to], FRAME);
        voice_windows(&env, voice)
    }

    fn heard_prompt(&self, name: &str, from: usize, limit: Duration) -> Match {
        self.heard(prompt(name), from, limit)
    }

    /// Index (in samples) of the first packet that arrived at or after `t`.
    fn sample_at(&self, t: Instant) -> usize {
        let (_, times) = self.rtp.audio();
        times.iter().position(|&a| a >= t).unwrap_or(times.len()) * FRAME
    }

    /// Tell SIPp to hang up (a MESSAGE in its dialog → BYE).
    fn hang_up(&self) {
        common::sipp_message(&self.number, self.sipp.port, &self.call_id, 1);
    }

    /// Wait for SIPp to end (it must have succeeded); the RTP peer for analysis.
    fn finish(self) -> (SippRun, RtpPeer) {
        let run = self.sipp.wait();
        assert_eq!(
            run.code,
            0,
            "caller {}: SIPp failed\n{}",
            self.number,
            run.dump()
        );
        (run, self.rtp)
    }
}

/// Whether `want` appears in `got` in this order (other entries between allowed).
fn in_order(got: &[&str], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

// ---------------------------------------------------------------------------
// The database

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Run `f` with the server's store (opened and closed in one runtime).
fn with_store<T, F>(server: &TestServer, f: impl FnOnce(hotline::store::Store) -> F) -> T
where
    F: std::future::Future<Output = T>,
{
    let url = format!("sqlite://{}", server.db_path().display());
    block_on(async move {
        let store = hotline::store::Store::connect(&url)
            .await
            .expect("open the server's database");
        f(store).await
    })
}

/// The completed call record of `caller`'s (only) call.
fn record_of(server: &TestServer, caller: &str) -> hotline::store::CallRecord {
    let mut last = Vec::new();
    poll(Duration::from_secs(10), || {
        last = common::agents::call_rows(server);
        let row = last
            .iter()
            .find(|r| r.from_number == caller && r.ended_at.is_some())?
            .clone();
        with_store(server, |s| async move { s.get_call(&row.id).await })
            .ok()
            .flatten()
    })
    .unwrap_or_else(|| panic!("no completed call record from {caller}: {last:#?}"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn secs_between(a: SystemTime, b: SystemTime) -> f32 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f32(),
        Err(e) => -e.duration().as_secs_f32(),
    }
}

// ---------------------------------------------------------------------------
// pjsua2 agent

/// pjsua2 (`pjsua2_queue_agent.py`) as agent `id`: auto-answers, talks
/// speech A, and transfers the call by REFER to each of `xfer_to` in turn
/// (the next only after the previous was refused).
struct PjAgent {
    _child: common::KillOnDrop,
    lines: LineStream,
}

impl PjAgent {
    fn start(server: &TestServer, id: &str, xfer_to: &[String]) -> Self {
        let mut args: Vec<String> = vec![
            "--server".into(),
            server.sip.to_string(),
            "--user".into(),
            id.into(),
            "--password".into(),
            agent_password(id),
            "--play".into(),
            speech_a().display().to_string(),
            "--record".into(),
            server
                .dir()
                .join(format!("{id}-heard.wav"))
                .display()
                .to_string(),
            "--limit".into(),
            "100".into(),
            "--xfer-after".into(),
            "4".into(),
        ];
        // Level 5 prints every SIP message pjsua2 sends and receives (the
        // REFER's response is read from there, see `refer_response`).
        args.push("--log-level".into());
        args.push("5".into());
        for t in xfer_to {
            args.push("--xfer-to".into());
            args.push(t.clone());
        }
        let err = server.dir().join(format!("pjsua2-{id}.err"));
        let (child, lines) = common::spawn_python("pjsua2_queue_agent.py", &args, &err);
        PjAgent {
            _child: child,
            lines,
        }
    }

    /// The first event line (`{"event": ...}`) satisfying `pred`, as parsed
    /// JSON: one already read, or the next to come.
    fn wait_event(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let is = |l: &str| l.trim_start().starts_with('{') && pred(&common::parse_flat_json(l));
        let seen = self.lines.seen.iter().find(|l| is(l)).cloned();
        let got = seen.or_else(|| self.lines.wait_for(limit, is));
        match got {
            Some(l) => common::parse_flat_json(&l),
            None => panic!(
                "pjsua2 agent: {what} not seen within {limit:?}; its output:\n{}",
                self.lines.dump()
            ),
        }
    }
}

impl PjAgent {
    /// The status of the next response to a REFER that pjsua2 received (from
    /// its message log: "RX ... Response msg 202/REFER/cseq=..."). The phone's
    /// own callbacks miss a response that arrives after the dialog ended.
    fn refer_response(&mut self, limit: Duration, what: &str) -> u16 {
        let got = self.lines.wait_for(limit, |l| {
            l.contains("RX ") && l.contains("Response msg ") && l.contains("/REFER/")
        });
        let line = got.unwrap_or_else(|| {
            panic!(
                "pjsua2 agent: {what} not seen within {limit:?}; its output:\n{}",
                self.lines.dump()
            )
        });
        line.split("Response msg ")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"))
    }

    /// Whether pjsua2 received a BYE before the response to its last REFER.
    fn bye_before_refer_response(&self) -> bool {
        let seen = &self.lines.seen;
        let last_refer = seen
            .iter()
            .rposition(|l| l.contains("TX ") && l.contains("Request msg REFER/"));
        let response = seen.iter().rposition(|l| {
            l.contains("RX ") && l.contains("Response msg ") && l.contains("/REFER/")
        });
        let bye = seen
            .iter()
            .position(|l| l.contains("RX ") && l.contains("Request msg BYE/"));
        matches!((last_refer, bye, response), (Some(r), Some(b), Some(x)) if r < b && b < x)
    }
}

fn event_is(obj: &[(String, String)], name: &str) -> bool {
    field(obj, "event") == Some(name)
}

// ---------------------------------------------------------------------------
// 1. Blind transfer by REFER from the agent's phone

/// The customer (install, key 2) is answered by agent 1001 on pjsua2 and
/// hears its voice; 1001's phone sends REFER to an unknown number (403, the
/// call stays) and then to `target` (agent 1002 or queue `repair`; 202):
/// 1002's phone (SIPp, skill repair only) rings and answers, the customer
/// hears 1002's voice, hotline ends 1001's leg with BYE, and the record
/// names 1002 as the agent with 1001 → target in its transfer chain.
fn refer_scenario(target: &str, chain_to: &str) {
    let server = server(
        vec![agent("1001", &["install"]), agent("1002", &["repair"])],
        &queues_toml(15_000, &[]),
    );
    let second = SippAgents::start(&server, &["1002"], Behaviour::Answer);
    let sip = server.sip;
    let mut first = PjAgent::start(
        &server,
        "1001",
        &[format!("sip:9999@{sip}"), format!("sip:{target}@{sip}")],
    );
    first.wait_event(Duration::from_secs(20), "registered", |o| {
        event_is(o, "registered")
    });
    wait_registrations(&server, 2.0, "1001 (pjsua2) and 1002 (SIPp)");

    let caller = Caller::call(&server, "13900000101");
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    caller.press('2');
    let m = caller.heard_prompt("transfer_install", start, Duration::from_secs(30));

    let incoming = first.wait_event(Duration::from_secs(30), "the offered call", |o| {
        event_is(o, "incoming")
    });
    let record = field(&incoming, "x_hotline_call")
        .unwrap_or_default()
        .to_string();
    assert!(!record.is_empty(), "no X-Hotline-Call: {incoming:?}");
    caller.heard_voice(voice_a(), m.end(), Duration::from_secs(20));

    // REFER to a number that is neither an agent nor a queue: refused.
    let refused = first.refer_response(Duration::from_secs(30), "the first REFER's response");
    assert_eq!(refused, 403, "REFER to 9999\n{}", first.lines.dump());
    // REFER to the target: accepted.
    let accepted = first.refer_response(Duration::from_secs(30), "the second REFER's response");
    let accepted_at = Instant::now();
    assert_eq!(
        accepted,
        202,
        "REFER to {target}\n{}\n--- server log ---\n{}",
        first.lines.dump(),
        server.log()
    );
    let offers = second.wait_offers(Duration::from_secs(30), "1002 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    let o = offers.iter().find(|o| o.acked).expect("an answered offer");
    assert_eq!(o.agent, "1002");
    assert_eq!(o.caller, caller.number, "1002 sees the customer's number");
    assert_eq!(o.record, record, "the same call was offered to 1002");
    // hotline told 1001's phone the transfer is done (RFC 3515 NOTIFY, a
    // final 200 sipfrag), then ended its leg.
    first.wait_event(
        Duration::from_secs(15),
        "the NOTIFY of a done transfer",
        |o| {
            event_is(o, "xfer_status")
                && field(o, "code") == Some("200")
                && field(o, "final") == Some("true")
        },
    );
    let gone = first.wait_event(Duration::from_secs(15), "1001's leg ending", |o| {
        event_is(o, "disconnected")
    });
    // The customer now hears 1002.
    let from = caller.sample_at(accepted_at);
    caller.heard_voice(voice_b(), from, Duration::from_secs(20));
    // ...and no longer 1001 (a second's grace for the BYE to land).
    let b = caller.voice_between(voice_b(), from, usize::MAX);
    let a = caller.voice_between(voice_a(), from + RATE, usize::MAX);
    assert!(
        a.0 < 2 && a.0 < b.0,
        "after the transfer the caller still hears 1001 (voice A {a:?}, voice B {b:?})"
    );
    if first.bye_before_refer_response() {
        // Reported to the lead: hotline may release the first agent before
        // it answers the REFER (the race in call::agent's Refer handling).
        eprintln!("note: 1001's phone got hotline's BYE before the 202 to its REFER");
    }
    std::thread::sleep(Duration::from_secs(1));
    caller.hang_up();
    let (_, _rtp) = caller.finish();

    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&format!("refer_to=sip:9999@{sip}"))),
        "the refused REFER is logged"
    );
    let rec = record_of(&server, "13900000101");
    assert_eq!(rec.id, record);
    assert_eq!(rec.agent_id.as_deref(), Some("1002"), "{rec:#?}");
    assert_eq!(rec.queue.as_deref(), Some("install"), "{rec:#?}");
    assert_eq!(rec.transfer_chain.len(), 1, "{rec:#?}");
    assert_eq!(rec.transfer_chain[0].from_agent, "1001", "{rec:#?}");
    assert_eq!(rec.transfer_chain[0].to, chain_to, "{rec:#?}");
    assert_eq!(rec.hangup_side, "caller", "{rec:#?}");
    eprintln!("1001's leg ended: {gone:?}");
}

/// REFER to agent 1002.
#[test]
fn blind_transfer_by_refer_from_the_agents_softphone() {
    refer_scenario("1002", "agent 1002");
}

/// REFER to queue `repair`, whose only agent (1002) lacks the install skill.
#[test]
fn blind_transfer_by_refer_to_another_queue() {
    refer_scenario("repair", "queue repair");
}

/// The agent's phone REFERs the caller to an allow-listed outside number:
/// 202, the gateway (SIPp behind `transfer_gateway`) is rung, and the phone
/// hears how it ended (RFC 3515 NOTIFY with the final status): `200` and its
/// leg ends when the number answers; the failure status (`486`) when it is
/// busy, and the caller stays with the agent.
fn refer_out_scenario(gateway_scenario: &str, caller_number: &str, answered: bool) {
    let gateway_port = common::free_port();
    let queues = queues_toml(15_000, &[]).replace(
        "[acd]\n",
        &format!(
            "[acd]\ntransfer_numbers = [\"400*\"]\ntransfer_gateway = \"127.0.0.1:{gateway_port}\"\n"
        ),
    );
    let server = server(vec![agent("1001", &["install"])], &queues);
    let (_gateway, trace) = common::agents::sipp_gateway(&server, gateway_port, gateway_scenario);
    let sip = server.sip;
    let mut first = PjAgent::start(&server, "1001", &[format!("sip:4001234567@{sip}")]);
    first.wait_event(Duration::from_secs(20), "registered", |o| {
        event_is(o, "registered")
    });
    wait_registrations(&server, 1.0, "1001 (pjsua2)");

    let caller = Caller::call(&server, caller_number);
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    caller.press('2');
    let m = caller.heard_prompt("transfer_install", start, Duration::from_secs(30));
    first.wait_event(Duration::from_secs(30), "the offered call", |o| {
        event_is(o, "incoming")
    });
    caller.heard_voice(voice_a(), m.end(), Duration::from_secs(20));

    let accepted = first.refer_response(Duration::from_secs(30), "the REFER's response");
    assert_eq!(
        accepted,
        202,
        "REFER to 4001234567\n{}\n{}",
        first.lines.dump(),
        server.log()
    );
    let invite = poll(Duration::from_secs(20), || {
        let t = std::fs::read_to_string(&trace).unwrap_or_default();
        t.contains("INVITE sip:4001234567@").then_some(t)
    });
    assert!(invite.is_some(), "the gateway was rung\n{}", server.log());
    let code = if answered { "200" } else { "486" };
    first.wait_event(
        Duration::from_secs(20),
        "the NOTIFY with the transfer's final status",
        |o| {
            event_is(o, "xfer_status")
                && field(o, "code") == Some(code)
                && field(o, "final") == Some("true")
        },
    );
    if answered {
        first.wait_event(Duration::from_secs(15), "1001's leg ending", |o| {
            event_is(o, "disconnected")
        });
    } else {
        // The caller is back with the agent and hears 1001 again.
        let from = caller.sample_at(Instant::now());
        caller.heard_voice(voice_a(), from, Duration::from_secs(20));
    }
    caller.hang_up();
    let _ = caller.finish();
    let rec = record_of(&server, caller_number);
    if answered {
        assert_eq!(rec.transfer_chain.len(), 1, "{rec:#?}");
        assert_eq!(rec.transfer_chain[0].to, "number 4001234567", "{rec:#?}");
    } else {
        assert!(rec.transfer_chain.is_empty(), "{rec:#?}");
        assert_eq!(rec.agent_id.as_deref(), Some("1001"), "{rec:#?}");
    }
}

#[test]
fn refer_to_an_outside_number_notifies_the_phone_when_it_answers() {
    refer_out_scenario("queue_agent_answer.xml", "13900000111", true);
}

#[test]
fn refer_to_a_busy_outside_number_notifies_the_failure_and_keeps_the_caller() {
    refer_out_scenario("queue_agent_busy.xml", "13900000112", false);
}

// ---------------------------------------------------------------------------
// 2. "Press 1 to be called back"

/// Queue `install` offers a callback after 2 s of waiting; no agent is
/// registered. The caller hears the transfer prompt, hold music, then
/// callback_offer.wav; presses 1; hears callback_promise.wav and hotline
/// hangs up. A pending callback request for the caller's number is stored,
/// due one hour later, and the call record says why the call ended.
#[test]
fn waiting_caller_presses_1_to_be_called_back() {
    callback_scenario(true);
}

/// Like [`waiting_caller_presses_1_to_be_called_back`], with the dialplan's
/// prompts only where its `prompts_dir` says (an absolute path elsewhere),
/// as in a deployment that keeps its voice files apart.
#[test]
fn callback_offer_is_heard_with_prompts_outside_the_dialplans_folder() {
    callback_scenario(false);
}

fn callback_scenario(link_prompts: bool) {
    let agents = vec![agent("1001", &["install"])];
    let queues = queues_toml(
        15_000,
        &[
            ("install", "max_wait_ms = 2000"),
            ("install", "overflow = \"offer_callback\""),
            ("install", "callback_within_ms = 3600000"),
        ],
    );
    let server = if link_prompts {
        server(agents, &queues)
    } else {
        TestServer::builder()
            .agents(agents)
            .dialplan("hotline-paths.toml", &hotline_dialplan())
            .extra_toml(&queues)
            .start()
    };
    let number = "13900000202";
    let caller = Caller::call(&server, number);
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    caller.press('2');
    let t = caller.heard_prompt("transfer_install", start, Duration::from_secs(30));
    let offer = caller.heard_prompt("callback_offer", t.end(), Duration::from_secs(30));
    let waited = (offer.start - t.end()) as f32 / RATE as f32;
    assert!(
        waited >= 1.5,
        "the offer came {waited:.2}s after the caller was queued; max_wait_ms is 2 s"
    );
    std::thread::sleep(Duration::from_millis(300));
    let pressed_ms = now_ms();
    caller.press('1');
    caller.heard_prompt("callback_promise", offer.end(), Duration::from_secs(30));
    // hotline hangs up after the promise.
    let (run, rtp) = caller.finish();
    let (rec_audio, _) = rtp.recording();
    let heard = audio::timeline(&rec_audio, prompts());
    assert!(
        in_order(
            &names(&heard),
            &["transfer_install", "callback_offer", "callback_promise"]
        ),
        "heard:\n  {}",
        describe(&heard)
    );
    let bye_from_hotline = run
        .messages()
        .iter()
        .any(|t| !t.sent && t.msg.method() == Some("BYE"));
    assert!(bye_from_hotline, "hotline did not hang up\n{}", run.dump());

    let rec = record_of(&server, number);
    assert_eq!(
        (rec.hangup_cause.as_str(), rec.hangup_side.as_str()),
        ("callback_requested", "hotline"),
        "{rec:#?}"
    );
    assert_eq!(rec.queue.as_deref(), Some("install"), "{rec:#?}");
    assert_eq!(rec.agent_id, None, "{rec:#?}");

    let requests = with_store(
        &server,
        |s| async move { s.pending_callback_requests().await },
    )
    .expect("read callback requests");
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!(r.phone, number, "{r:#?}");
    assert_eq!(r.source_call, rec.id, "{r:#?}");
    let promised = r.due_at - r.created_at;
    assert!(
        (3_590_000..=3_600_000).contains(&promised),
        "due {promised} ms after the request; promised within one hour: {r:#?}"
    );
    let from_now = r.due_at - (pressed_ms + 3_600_000);
    assert!(
        from_now.abs() < 60_000,
        "due_at {} is not one hour after the key press ({from_now} ms off)",
        r.due_at
    );
}

/// Queue `install` holds one caller at most and then offers the callback:
/// the first caller waits (hold music, no offer); the second is offered the
/// callback as soon as they are queued, presses 1 and is promised it. Only
/// the second caller has a callback request.
#[test]
fn full_queue_offers_the_newcomer_a_callback() {
    let server = server(
        vec![agent("1001", &["install"])],
        &queues_toml(
            15_000,
            &[
                ("install", "max_length = 1"),
                ("install", "overflow = \"offer_callback\""),
            ],
        ),
    );
    let (first_no, second_no) = ("13900000501", "13900000502");
    let first = Caller::call(&server, first_no);
    let start = first.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    first.press('2');
    let t1 = first.heard_prompt("transfer_install", start, Duration::from_secs(30));

    let second = Caller::call(&server, second_no);
    let start = second.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    second.press('2');
    let t2 = second.heard_prompt("transfer_install", start, Duration::from_secs(30));
    let offer = second.heard_prompt("callback_offer", t2.end(), Duration::from_secs(15));
    let after = (offer.start - t2.end()) as f32 / RATE as f32;
    assert!(
        after < 3.0,
        "the offer came {after:.2}s after the second caller was queued; the queue was full"
    );
    second.press('1');
    second.heard_prompt("callback_promise", offer.end(), Duration::from_secs(30));
    let (run, _) = second.finish();
    assert!(
        run.messages()
            .iter()
            .any(|t| !t.sent && t.msg.method() == Some("BYE")),
        "hotline did not hang up on the second caller\n{}",
        run.dump()
    );

    // The first caller was never offered the callback and still waits.
    let (pcm, _) = first.rtp.audio();
    let rec = audio::Recording::new(&pcm[t1.end().min(pcm.len())..], FRAME);
    assert!(
        rec.find_full(prompt("callback_offer"), 0).is_none(),
        "the first caller (queue not full when queued) was offered a callback"
    );
    let last = first.rtp.last_packet().expect("RTP");
    assert!(
        last.elapsed() < Duration::from_secs(2),
        "the first caller no longer hears hotline"
    );
    first.hang_up();
    let _ = first.finish();

    let second_rec = record_of(&server, second_no);
    assert_eq!(
        second_rec.hangup_cause, "callback_requested",
        "{second_rec:#?}"
    );
    let first_rec = record_of(&server, first_no);
    assert_eq!(first_rec.hangup_side, "caller", "{first_rec:#?}");
    let requests = with_store(
        &server,
        |s| async move { s.pending_callback_requests().await },
    )
    .expect("read callback requests");
    let phones: Vec<&str> = requests.iter().map(|r| r.phone.as_str()).collect();
    assert_eq!(phones, [second_no], "{requests:#?}");
}

/// The callback offer does not take the caller out of the queue: one who
/// hears it and does not press 1 is connected as soon as an agent comes
/// (1001 registers after the offer), and no callback is booked.
#[test]
fn caller_who_ignores_the_callback_offer_keeps_their_place() {
    let server = server(
        vec![agent("1001", &["install"])],
        &queues_toml(
            15_000,
            &[
                ("install", "max_wait_ms = 2000"),
                ("install", "overflow = \"offer_callback\""),
            ],
        ),
    );
    let number = "13900000601";
    let caller = Caller::call(&server, number);
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    caller.press('2');
    let t = caller.heard_prompt("transfer_install", start, Duration::from_secs(30));
    let offer = caller.heard_prompt("callback_offer", t.end(), Duration::from_secs(30));
    let pool = SippAgents::start(&server, &["1001"], Behaviour::Answer);
    let offers = pool.wait_offers(Duration::from_secs(20), "1001 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    assert_eq!(offers[0].caller, number);
    caller.heard_voice(voice_b(), offer.end(), Duration::from_secs(20));
    caller.hang_up();
    let _ = caller.finish();
    let rec = record_of(&server, number);
    assert_eq!(rec.agent_id.as_deref(), Some("1001"), "{rec:#?}");
    assert_eq!(rec.hangup_side, "caller", "{rec:#?}");
    let requests = with_store(
        &server,
        |s| async move { s.pending_callback_requests().await },
    )
    .expect("read callback requests");
    assert!(requests.is_empty(), "{requests:#?}");
}

// ---------------------------------------------------------------------------
// 3. Overflow to another queue

/// The shipped dialplan, but its `install` node does not name a skill: the
/// call then needs the skill of the queue it is in (config `skill`).
fn dialplan_install_without_node_skill() -> String {
    let shipped = hotline_dialplan();
    let from = "queue = \"install\"\nskill = \"install\"\n";
    assert!(shipped.contains(from), "the shipped install node changed");
    shipped.replace(from, "queue = \"install\"\n")
}

/// Queue `install` (key 2) overflows to `consult` after 3 s; only 1003, who
/// has the consult skill, is registered. The customer must end up talking
/// to 1003 (hears its voice) after at least install's maximum wait.
/// Returns the customer's call record.
fn overflow_scenario(dialplan: &str) -> (TestServer, hotline::store::CallRecord) {
    let server = server_with(
        vec![agent("1001", &["install"]), agent("1003", &["consult"])],
        &queues_toml(
            15_000,
            &[
                ("install", "max_wait_ms = 3000"),
                ("install", "overflow = { queue = \"consult\" }"),
            ],
        ),
        dialplan,
    );
    let pool = SippAgents::start(&server, &["1003"], Behaviour::Answer);
    let number = "13900000303";
    let caller = Caller::call(&server, number);
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    caller.press('2');
    let t = caller.heard_prompt("transfer_install", start, Duration::from_secs(30));
    let offers = pool.wait_offers(Duration::from_secs(20), "1003 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    let answered = offers.iter().find(|o| o.acked).expect("answered");
    assert_eq!(answered.agent, "1003");
    assert_eq!(answered.caller, number);
    caller.heard_voice(voice_b(), t.end(), Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    caller.hang_up();
    let (_, _rtp) = caller.finish();
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("overflow")
            && l.contains("from=install")
            && l.contains("to=consult")),
        "the server did not log the overflow install → consult"
    );
    let rec = record_of(&server, number);
    assert_eq!(rec.agent_id.as_deref(), Some("1003"), "{rec:#?}");
    assert!(
        rec.wait_ms >= 2_900,
        "connected after {} ms of waiting; install overflows after 3 s: {rec:#?}",
        rec.wait_ms
    );
    assert_eq!(rec.hangup_side, "caller", "{rec:#?}");
    (server, rec)
}

/// A queue node without its own skill: after install's 3 s the customer is
/// moved to consult and answered there by the consult agent.
#[test]
fn overflow_to_another_queue_reaches_that_queues_agent() {
    overflow_scenario(&dialplan_install_without_node_skill());
}

/// The shipped dialplan names the skill on every queue node (`skill =
/// "install"`); the call keeps that skill after overflowing, so consult's
/// agents can never take it.
#[test]
fn overflow_with_the_shipped_dialplan_reaches_the_target_queues_agent() {
    overflow_scenario(&hotline_dialplan());
}

/// The record of an overflowed call should say where it was answered.
#[test]
fn overflowed_call_is_recorded_in_the_queue_that_answered_it() {
    let (_server, rec) = overflow_scenario(&dialplan_install_without_node_skill());
    assert_eq!(
        rec.queue.as_deref(),
        Some("consult"),
        "the record loses the overflow: {rec:#?}"
    );
}

// ---------------------------------------------------------------------------
// 4. First-contact ownership

const OWNER_CALLER: &str = "13900000404";

/// A customer with `OWNER_CALLER`'s number and an open complaint owned by `owner`.
fn seed_case_owned_by(server: &TestServer, owner: &str) -> String {
    let owner = owner.to_string();
    let id = "C-OWN-1".to_string();
    let cid = id.clone();
    with_store(server, |s| async move {
        let now = now_ms();
        s.upsert_customer(
            &hotline::store::Customer {
                id: cid.clone(),
                name: "王先生".into(),
                address: "上海市".into(),
                region: "east".into(),
                do_not_call: false,
                phone_status: "ok".into(),
                created_at: now,
                updated_at: now,
            },
            &[OWNER_CALLER],
        )
        .await
        .expect("store the customer");
        s.insert_case(&hotline::store::Case {
            id: "CASE-OWN-1".into(),
            customer_id: cid,
            kind: hotline::store::CaseKind::Complaint,
            department: "service".into(),
            deadline: now + 5 * 86_400_000,
            state: "open".into(),
            owner: Some(owner),
            description: "空调不制冷".into(),
            created_at: now - 86_400_000,
            closed_at: None,
        })
        .await
        .expect("store the case");
    });
    id
}

/// Agents 1001 (X, owns the case) and 1002 (Y, registered 1.5 s earlier, so
/// idle longer) both in `general`. The customer presses 1 in the open-case
/// menu (typed ahead into the greeting) and hears transfer_owner.wav.
fn ownership_setup(
    ring_timeout_ms: u64,
    owner_wait_ms: Option<u64>,
    x_behaviour: Behaviour,
) -> (TestServer, SippAgents, SippAgents, Caller, Match, String) {
    let extra: Vec<(&str, String)> = owner_wait_ms
        .map(|ms| vec![("general", format!("owner_wait_ms = {ms}"))])
        .unwrap_or_default();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(q, l)| (*q, l.as_str())).collect();
    let server = server(
        vec![agent("1001", &["repair"]), agent("1002", &["repair"])],
        &queues_toml(ring_timeout_ms, &extra),
    );
    let customer = seed_case_owned_by(&server, "1001");
    let y = SippAgents::start(&server, &["1002"], Behaviour::Answer);
    std::thread::sleep(Duration::from_millis(1500));
    let x = SippAgents::start(&server, &["1001"], x_behaviour);
    wait_registrations(&server, 2.0, "1001 and 1002");

    let caller = Caller::call(&server, OWNER_CALLER);
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    caller.press('1');
    let t = caller.heard_prompt("transfer_owner", start, Duration::from_secs(30));
    (server, x, y, caller, t, customer)
}

/// X owns the customer's open case: the call goes to X although Y has been
/// idle longer; Y's phone never rings.
#[test]
fn case_owner_gets_the_call_before_the_longest_idle_agent() {
    let (server, x, y, caller, t, customer) = ownership_setup(15_000, None, Behaviour::Answer);
    let offers = x.wait_offers(Duration::from_secs(30), "1001 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    assert_eq!(offers[0].agent, "1001");
    assert!(offers[0].acked, "{offers:#?}");
    caller.heard_voice(voice_b(), t.end(), Duration::from_secs(20));
    assert!(
        y.offers().is_empty(),
        "1002 was offered the owner's call: {:#?}",
        y.offers()
    );
    std::thread::sleep(Duration::from_secs(1));
    caller.hang_up();
    let (_, _rtp) = caller.finish();
    let rec = record_of(&server, OWNER_CALLER);
    assert_eq!(rec.agent_id.as_deref(), Some("1001"), "{rec:#?}");
    assert_eq!(rec.queue.as_deref(), Some("general"), "{rec:#?}");
    assert_eq!(
        rec.customer_id.as_deref(),
        Some(customer.as_str()),
        "{rec:#?}"
    );
    assert!(
        rec.ivr_path.iter().any(|s| s.contains("open_case_menu")),
        "ivr_path {:?}",
        rec.ivr_path
    );
}

/// X owns the case but the phone only rings: after X's ring time (5 s) the
/// call goes to the queue and Y answers.
#[test]
fn unanswered_case_owner_releases_the_call_to_the_queue() {
    let (server, x, y, caller, t, _) = ownership_setup(5_000, None, Behaviour::RingOnly);
    let offers_x = x.wait_offers(Duration::from_secs(30), "1001 cancelled", |o| {
        o.iter().any(|o| o.cancelled_at.is_some())
    });
    let offers_y = y.wait_offers(Duration::from_secs(30), "1002 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    let (ox, oy) = (&offers_x[0], &offers_y[0]);
    let rang = secs_between(ox.at, oy.at);
    assert!(
        (3.0..15.0).contains(&rang),
        "1002 rang {rang:.1}s after the owner 1001 (ring time 5 s): {offers_x:#?} {offers_y:#?}"
    );
    caller.heard_voice(voice_b(), t.end(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    caller.hang_up();
    let (_, _rtp) = caller.finish();
    let rec = record_of(&server, OWNER_CALLER);
    assert_eq!(rec.agent_id.as_deref(), Some("1002"), "{rec:#?}");
}

/// `owner_wait_ms` (4 s) shorter than the ring time (20 s): the owner's
/// window is "up to N seconds, then the queue", so Y should ring once the
/// window is over, not when X's ring time ends.
#[test]
fn owner_window_shorter_than_the_ring_time_releases_the_call_in_time() {
    let (server, x, y, caller, _t, _) = ownership_setup(20_000, Some(4_000), Behaviour::RingOnly);
    let offers_x = x.wait_offers(Duration::from_secs(30), "1001 offered", |o| !o.is_empty());
    let offers_y = y.wait_offers(Duration::from_secs(40), "1002 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    let rang = secs_between(offers_x[0].at, offers_y[0].at);
    caller.hang_up();
    let _ = caller.finish();
    assert!(
        rang < 12.0,
        "1002 rang {rang:.1}s after the owner 1001; owner_wait_ms is 4 s (ring time 20 s)\n{}",
        server
            .log()
            .lines()
            .filter(|l| l.contains("acd") || l.contains("agent"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn in_order_allows_gaps_but_not_swaps() {
    assert!(in_order(&["a", "x", "b", "c"], &["a", "b", "c"]));
    assert!(!in_order(&["b", "a"], &["a", "b"]));
}

/// No case, but X answered this customer's call yesterday: within
/// `acd.ownership_days` the customer's next call goes to X first (首问负责制),
/// although Y has been idle longer.
#[test]
fn agent_of_a_recent_call_gets_the_customers_next_call() {
    let server = server(
        vec![agent("1001", &["repair"]), agent("1002", &["repair"])],
        &queues_toml(15_000, &[]),
    );
    with_store(&server, |s| async move {
        let now = now_ms();
        s.upsert_customer(
            &hotline::store::Customer {
                id: "C-RECENT-1".into(),
                name: "李女士".into(),
                address: "杭州市".into(),
                region: "east".into(),
                do_not_call: false,
                phone_status: "ok".into(),
                created_at: now,
                updated_at: now,
            },
            &[OWNER_CALLER],
        )
        .await
        .expect("store the customer");
        let at = now - 86_400_000;
        s.insert_call_arrival(&hotline::store::CallArrival {
            id: "yesterday-1".into(),
            direction: hotline::store::Direction::In,
            from_number: OWNER_CALLER.into(),
            to_number: "8000".into(),
            customer_id: Some("C-RECENT-1".into()),
            work_order: None,
            task_id: None,
            queue: Some("repair".into()),
            arrived_at: at,
        })
        .await
        .expect("store yesterday's call");
        s.complete_call(&hotline::store::CallCompletion {
            id: "yesterday-1".into(),
            customer_id: None,
            work_order: None,
            queue: None,
            agent_id: Some("1001".into()),
            answered_at: Some(at + 20_000),
            ended_at: at + 200_000,
            wait_ms: 20_000,
            talk_ms: 180_000,
            hold_ms: 0,
            ivr_path: vec![],
            hangup_cause: "remote_bye".into(),
            hangup_side: "caller".into(),
            disposition: String::new(),
            notes: String::new(),
            recording: None,
            transfer_chain: vec![],
        })
        .await
        .expect("complete yesterday's call");
    });
    let y = SippAgents::start(&server, &["1002"], Behaviour::Answer);
    std::thread::sleep(Duration::from_millis(1500));
    let x = SippAgents::start(&server, &["1001"], Behaviour::Answer);
    wait_registrations(&server, 2.0, "1001 and 1002");

    let caller = Caller::call(&server, OWNER_CALLER);
    let start = caller.audio_start(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    // Installation (2): the owner is offered the call whatever the queue.
    caller.press('2');
    let t = caller.heard_prompt("transfer_install", start, Duration::from_secs(40));
    let offers = x.wait_offers(Duration::from_secs(30), "1001 connected", |o| {
        o.iter().any(|o| o.acked)
    });
    assert_eq!(offers[0].agent, "1001");
    caller.heard_voice(voice_b(), t.end(), Duration::from_secs(20));
    assert!(
        y.offers().is_empty(),
        "1002 was offered the call of 1001's customer: {:#?}",
        y.offers()
    );
    caller.hang_up();
    let (_, _rtp) = caller.finish();
    let today = poll(Duration::from_secs(10), || {
        common::agents::call_rows(&server)
            .into_iter()
            .find(|r| r.id != "yesterday-1" && r.ended_at.is_some())
    })
    .expect("today's call record");
    assert_eq!(today.agent_id.as_deref(), Some("1001"), "{today:#?}");
    assert_eq!(today.queue.as_deref(), Some("install"), "{today:#?}");
}
