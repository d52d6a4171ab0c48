//! Agent feature codes dialled from the softphone: `*1` ready, `*2` not
//! ready, `*3` log out. The code is accepted only from the address the agent
//! registered from (INVITEs carry no credentials); the agent hears a short
//! confirmation, then the call ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::acd::StateRequest;
use super::CallDeps;
use crate::media::engine::{MediaEvent, StreamParams};
use crate::sip::leg::{InboundCall, LegEvent};
use crate::sip::sdp;

/// The state a dialled number asks for, and the prompt that confirms it.
pub fn feature_code(called: &str) -> Option<(StateRequest, &'static str)> {
    match called {
        "*1" => Some((StateRequest::Ready, "agent_ready")),
        "*2" => Some((
            StateRequest::NotReady {
                reason: "feature code".to_string(),
            },
            "agent_not_ready",
        )),
        "*3" => Some((StateRequest::Logout, "agent_logged_out")),
        _ => None,
    }
}

pub(super) async fn run(call: InboundCall, deps: Arc<CallDeps>, req: StateRequest, prompt: &str) {
    let InboundCall {
        caller,
        called,
        offer,
        source,
        leg,
        mut events,
        ..
    } = call;
    let registered_here = match source {
        Some(src) => deps
            .sip
            .lookup(&caller)
            .await
            .iter()
            .any(|b| b.source == src),
        None => false,
    };
    if !registered_here {
        warn!(%caller, %called, ?source, "feature code from an unregistered address: 403");
        leg.reject(403, Some("feature codes need the agent's registered phone"));
        return;
    }
    let state = match deps.acd.set_agent_state(&caller, req).await {
        Ok(s) => s,
        Err(e) => {
            warn!(%caller, error = %e, "feature code refused");
            leg.reject(403, Some(&e.to_string()));
            return;
        }
    };
    info!(agent = %caller, ?state, code = %called, "agent state set by feature code");
    let negotiated = match offer
        .as_deref()
        .map(|o| sdp::parse(o).and_then(|r| sdp::negotiate(&r)))
    {
        Some(Ok(n)) => n,
        _ => {
            // The state is set; without usable media there is nothing to play.
            leg.reject(
                488,
                Some("state set; no usable audio offer for the confirmation"),
            );
            return;
        }
    };
    let (tx, mut media_events) = mpsc::unbounded_channel();
    let Ok(media) = deps.media.open(tx) else {
        leg.reject(503, Some("state set; no media port for the confirmation"));
        return;
    };
    let answer = sdp::write(
        u64::from(rand::random::<u32>()),
        1,
        media.local_addr(),
        negotiated.codec,
        negotiated.dtmf_pt,
        negotiated.direction,
    );
    media.configure(StreamParams {
        remote: negotiated.remote,
        codec: negotiated.codec,
        dtmf_pt: negotiated.dtmf_pt,
        send: true,
    });
    if leg.answer(&answer).is_err() {
        return;
    }
    let confirmation = deps.service_prompts.get(prompt).cloned();
    let done = async {
        // Wait for the ACK, play the confirmation, then hang up.
        loop {
            match events.recv().await {
                Some(LegEvent::Confirmed { .. }) => break,
                Some(LegEvent::Ended(_)) | None => return false,
                _ => {}
            }
        }
        if let Some(p) = confirmation {
            media.play(p, 1);
            while let Some(ev) = media_events.recv().await {
                if matches!(ev, MediaEvent::PromptFinished { .. }) {
                    break;
                }
            }
        }
        true
    };
    if let Ok(true) = tokio::time::timeout(Duration::from_secs(15), done).await {
        leg.hangup().await;
    }
}
