//! The IVR half of every call task that runs a dialplan (inbound callers,
//! outbound survey calls): the interpreter, the events waiting for it, its
//! timers and the prompt playing, and the actions that only touch media.
//! What a call does with the other actions (queue, callback, hang-up) is
//! its own business.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::ivr::{Interpreter, IvrAction, IvrEvent, PromptId, TimerId};
use crate::media::engine::MediaSession;
use crate::media::prompt::Prompt;

#[derive(Default)]
pub(super) struct IvrDriver {
    /// Created when the call is answered (the dialplan starts then).
    pub interp: Option<Interpreter>,
    pub pending: VecDeque<IvrEvent>,
    timers: HashMap<TimerId, Instant>,
    current_prompt: Option<PromptId>,
}

impl IvrDriver {
    /// Start `plan` with its first event.
    pub fn start(&mut self, plan: Arc<crate::ivr::Dialplan>, first: IvrEvent) {
        self.interp = Some(Interpreter::new(plan));
        self.pending.push_back(first);
    }

    /// When the earliest timer is due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    /// Turn the timers due at `now` into events, in timer order.
    pub fn fire_due(&mut self, now: Instant) {
        let mut due: Vec<TimerId> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        due.sort();
        for id in due {
            self.timers.remove(&id);
            self.pending.push_back(IvrEvent::TimerFired(id));
        }
    }

    /// The media engine played prompt `token` to its end.
    pub fn prompt_finished(&mut self, token: u64) {
        if self.current_prompt == Some(PromptId(token)) {
            self.current_prompt = None;
        }
        self.pending
            .push_back(IvrEvent::PromptFinished(PromptId(token)));
    }

    /// Take the next waiting event through the interpreter (its actions into
    /// `out`); false when none is left.
    pub fn step(&mut self, now: DateTime<Utc>, out: &mut Vec<IvrAction>) -> bool {
        let Some(ev) = self.pending.pop_front() else {
            return false;
        };
        if let Some(interp) = self.interp.as_mut() {
            interp.handle_into(ev, now, out);
        }
        true
    }

    /// Carry out an action about prompts or timers; any other comes back.
    pub fn perform(
        &mut self,
        action: IvrAction,
        now: DateTime<Utc>,
        prompts: &HashMap<PathBuf, Arc<Prompt>>,
        media: Option<&MediaSession>,
    ) -> Option<IvrAction> {
        match action {
            IvrAction::Play {
                id,
                prompt,
                barge_in,
            } => match prompts.get(&prompt) {
                Some(p) => {
                    debug!(prompt = %prompt.display(), barge_in, "play");
                    self.current_prompt = Some(id);
                    if let Some(m) = media {
                        m.play(p.clone(), id.0);
                    }
                }
                None => {
                    warn!(prompt = %prompt.display(), "prompt not loaded; skipping");
                    self.pending.push_back(IvrEvent::PromptFinished(id));
                }
            },
            IvrAction::StopPrompt { id } => {
                if self.current_prompt == Some(id) {
                    if let Some(m) = media {
                        m.stop_playing();
                    }
                    self.current_prompt = None;
                }
            }
            IvrAction::StartTimer { id, at } => {
                let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
                self.timers.insert(id, Instant::now() + wait);
            }
            IvrAction::CancelTimer { id } => {
                self.timers.remove(&id);
            }
            other => return Some(other),
        }
        None
    }
}
