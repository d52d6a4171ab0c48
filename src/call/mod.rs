//! Calls: one tokio task per call owns its SIP leg, its media session and its
//! IVR interpreter, and turns their events into the interpreter's input.
//!
//! [`Routing`] (dialplans + decoded prompts) is loaded and checked as a whole
//! and swapped atomically on reload; a call keeps the routing it started with.

pub mod acd;
mod agent;
mod callback_call;
pub mod campaign;
mod feature;
mod inbound;
mod ivr_driver;
pub mod outbound;
mod party;

pub use acd::{AcdHandle, QueueMsg, StateRequest};
pub use agent::MonitorMode;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::ivr::{DialplanSet, NodeKind};
use crate::media::engine::MediaEngine;
use crate::media::prompt::Prompt;
use crate::sip::leg::InboundCall;
use crate::store::{Store, StoreWriter};

/// Dialplans and every prompt they name, decoded once.
pub struct Routing {
    pub dialplans: DialplanSet,
    pub prompts: HashMap<PathBuf, Arc<Prompt>>,
}

impl Routing {
    /// Load dialplans and decode their prompts; every problem is reported.
    pub fn load(paths: &[PathBuf]) -> Result<Routing, Vec<String>> {
        let dialplans = DialplanSet::load(paths)
            .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let mut prompts = HashMap::new();
        let mut errors = Vec::new();
        for plan in dialplans.plans() {
            for node in plan.nodes.values() {
                for name in prompt_names(&node.kind) {
                    let path = plan.prompt_path(name);
                    if prompts.contains_key(&path) {
                        continue;
                    }
                    match Prompt::load(&path) {
                        Ok(p) => {
                            prompts.insert(path, Arc::new(p));
                        }
                        Err(e) => {
                            errors.push(format!("{}:{}: {e}", plan.path.display(), node.line))
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(Routing { dialplans, prompts })
        } else {
            Err(errors)
        }
    }
}

/// Epoch milliseconds as a UTC time (the IVR's clock).
pub(crate) fn utc(ms: u64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms as i64)
        .single()
        .unwrap_or_default()
}

/// How to send and receive after SDP negotiation (nothing to the remote
/// while it holds the call).
pub(crate) fn params(n: &crate::sip::sdp::Negotiated) -> crate::media::engine::StreamParams {
    crate::media::engine::StreamParams {
        remote: n.remote,
        codec: n.codec,
        dtmf_pt: n.dtmf_pt,
        send: !n.remote_on_hold(),
    }
}

/// An SDP offer or answer, parsed and matched against what we support.
pub(crate) fn negotiate(
    sdp_text: &str,
) -> Result<crate::sip::sdp::Negotiated, crate::sip::sdp::SdpError> {
    crate::sip::sdp::parse(sdp_text).and_then(|r| crate::sip::sdp::negotiate(&r))
}

/// Load the prompts the shell plays itself from a prompts folder (missing ones are skipped).
pub fn load_service_prompts(dir: &std::path::Path) -> HashMap<String, Arc<Prompt>> {
    let mut names: Vec<String> = [
        "agent_ready",
        "agent_not_ready",
        "agent_logged_out",
        "callback_offer",
        "callback_promise",
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    names.extend(agent::announcement_prompt_names());
    names
        .iter()
        .filter_map(|n| {
            let p = Prompt::load(dir.join(format!("{n}.wav"))).ok()?;
            Some((n.to_string(), Arc::new(p)))
        })
        .collect()
}

fn prompt_names(kind: &NodeKind) -> Vec<&str> {
    let mut v = Vec::new();
    match kind {
        NodeKind::Play(p) => v.push(p.prompt.as_str()),
        NodeKind::Menu(m) => {
            v.push(m.prompt.as_str());
            v.extend(m.invalid_prompt.as_deref());
            v.extend(m.timeout_prompt.as_deref());
        }
        NodeKind::Collect(c) => {
            v.push(c.prompt.as_str());
            v.extend(c.invalid_prompt.as_deref());
            v.extend(c.timeout_prompt.as_deref());
        }
        NodeKind::Queue(q) => v.extend(q.prompt.as_deref()),
        NodeKind::Callback(c) => v.extend(c.prompt.as_deref()),
        NodeKind::Hangup { prompt } => v.extend(prompt.as_deref()),
        _ => {}
    }
    v
}

/// What every call task needs.
pub struct CallDeps {
    pub media: MediaEngine,
    pub routing: watch::Receiver<Arc<Routing>>,
    pub store: Store,
    pub writer: StoreWriter,
    pub clock: Arc<dyn Clock>,
    /// Ring this long (180) before answering.
    pub answer_delay: std::time::Duration,
    pub acd: AcdHandle,
    pub sip: crate::sip::SipHandle,
    /// Record bridged calls under `recordings`.
    pub record: bool,
    pub recordings: PathBuf,
    /// Live events for the wallboard and agent desks.
    pub events: crate::events::EventHub,
    /// Looped while a caller waits in a queue or is held by the agent.
    pub hold_music: Option<Arc<Prompt>>,
    /// Configured queue names and agent ids (transfer targets).
    pub queues: Vec<String>,
    pub agents: Vec<String>,
    /// Prompts the shell itself plays, by name: feature-code confirmations
    /// (agent_ready, ...), callback_offer, callback_promise.
    pub service_prompts: HashMap<String, Arc<Prompt>>,
    /// First-contact ownership from a recent call: how far back (0: off).
    pub ownership_ms: u64,
    /// Outside numbers calls may be transferred to, and where they go.
    pub transfer_numbers: Vec<String>,
    pub transfer_gateway: Option<std::net::SocketAddr>,
    /// Makes WebRTC legs for agents registered from a browser (desk softphone).
    pub browsers: Arc<dyn crate::browser::BrowserMedia>,
}

/// Take inbound calls from the SIP dispatcher and give each its own task.
pub fn spawn_manager(mut calls: mpsc::Receiver<InboundCall>, deps: Arc<CallDeps>) {
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            let deps = deps.clone();
            match feature::feature_code(&call.called) {
                Some((req, prompt)) => {
                    tokio::spawn(async move { feature::run(call, deps, req, prompt).await });
                }
                None => {
                    tokio::spawn(inbound::run(call, deps));
                }
            }
        }
    });
}

/// A new stereo recording at `recordings/YYYY/MM/DD/<call id>.wav` (UTC
/// date of `now_ms`), with its path for the call record. None (logged)
/// when the folder or file cannot be created: the call goes on unrecorded.
pub(crate) fn open_recording(
    recordings: &std::path::Path,
    now_ms: u64,
    call_id: &str,
) -> Option<(crate::media::recorder::Recorder, String)> {
    let day = utc(now_ms).format("%Y/%m/%d").to_string();
    let dir = recordings.join(day);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot create the recordings folder");
        return None;
    }
    let path = dir.join(format!("{call_id}.wav"));
    match crate::media::recorder::Recorder::create(&path) {
        Ok(r) => Some((r, path.display().to_string())),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot start recording");
            None
        }
    }
}
