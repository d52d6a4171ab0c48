//! The task that owns the ACD router: one owner for every queue and agent.
//!
//! Calls attach a mailbox before they enqueue; the router's actions about a
//! call go to that call's task (which owns the legs), agent-wide actions are
//! logged and published. The router wants a `Tick` at `poll_timeout()`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::acd::{
    AcdError, Action, AgentState, Input, OfferFailure, OfferId, Router, RouterConfig, Skill,
    Snapshot, TransferTarget,
};
use crate::clock::Clock;

/// What an agent (or a supervisor) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRequest {
    Ready,
    NotReady { reason: String },
    Logout,
}

/// The router's word about one call, for that call's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueMsg {
    Offer {
        offer_id: OfferId,
        agents: Vec<String>,
        note: Option<String>,
    },
    CancelOffer {
        offer_id: OfferId,
        agents: Vec<String>,
    },
    Connect {
        offer_id: OfferId,
        agent: String,
        waited_ms: u64,
    },
    Announce {
        position: usize,
        estimated_wait_ms: u64,
    },
    OfferCallback,
    CallbackRequested {
        due_ms: u64,
    },
    Overflowed {
        to: String,
    },
    QueueFull,
    /// An answer that came too late (the offer was already cancelled).
    Stale {
        offer_id: OfferId,
        agent: String,
    },
    /// The call was transferred away from `from_agent`: drop that leg, wait
    /// again (the router offers it to the target next).
    Transferred {
        from_agent: String,
        to: String,
        note: String,
    },
    /// Ring `agent` for the connected agent to consult; the caller holds.
    Consult {
        agent: String,
        note: String,
    },
    /// Transfer to an allow-listed outside number (checked by the call).
    TransferOut {
        number: String,
        note: String,
    },
    /// The consultation is over: to `agent` (`complete`) or back.
    ConsultEnded {
        agent: String,
        complete: bool,
        note: String,
    },
    /// Call `supervisor`'s phone into the call, or change the mode.
    Monitor {
        supervisor: String,
        mode: super::agent::MonitorMode,
    },
    MonitorStop,
    /// The connected agent holds (`true`) or resumes the caller (desk).
    Hold {
        held: bool,
    },
}

enum Command {
    Input(Input),
    Answered {
        call_id: String,
        offer_id: OfferId,
        agent: String,
    },
    Attach {
        call_id: String,
        mailbox: mpsc::UnboundedSender<QueueMsg>,
    },
    Detach {
        call_id: String,
    },
    SetAgentState {
        agent: String,
        req: StateRequest,
        reply: oneshot::Sender<Result<AgentState, AcdError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    Transfer {
        call_id: String,
        from_agent: Option<String>,
        to: TransferTarget,
        note: String,
        reply: oneshot::Sender<Result<String, AcdError>>,
    },
    Consult {
        call_id: String,
        from_agent: Option<String>,
        to: String,
        note: String,
        reply: oneshot::Sender<Result<String, AcdError>>,
    },
    ConsultEnd {
        call_id: String,
        from_agent: Option<String>,
        complete: bool,
        note: String,
        reply: oneshot::Sender<Result<String, AcdError>>,
    },
    ConnectedAgent {
        call_id: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Reserve an agent for an agent-first outbound call.
    Direct {
        call_id: String,
        agent: Option<String>,
        skill: Option<String>,
        reply: oneshot::Sender<Result<String, AcdError>>,
    },
    /// Pass a message to a live call's task; false when there is none.
    Forward {
        call_id: String,
        msg: QueueMsg,
        reply: oneshot::Sender<bool>,
    },
}

/// A cheap handle to the ACD task.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl AcdHandle {
    /// Put a call in a queue; the router's decisions about it arrive on `mailbox`.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &self,
        call_id: &str,
        queue: &str,
        priority: i32,
        preferred_agent: Option<String>,
        skill: Option<String>,
        arrived_ms: u64,
        mailbox: mpsc::UnboundedSender<QueueMsg>,
    ) {
        let _ = self.tx.send(Command::Attach {
            call_id: call_id.to_string(),
            mailbox,
        });
        self.input(Input::Enqueue {
            call_id: call_id.to_string(),
            queue: queue.to_string(),
            priority,
            preferred_agent,
            skill,
            arrived_ms,
        });
    }

    /// Tell the router something happened (answer, failure, hang-up...).
    pub fn input(&self, input: Input) {
        let _ = self.tx.send(Command::Input(input));
    }

    /// An agent answered; a too-late answer comes back as [`QueueMsg::Stale`].
    pub fn answered(&self, call_id: &str, offer_id: OfferId, agent: &str) {
        let _ = self.tx.send(Command::Answered {
            call_id: call_id.to_string(),
            offer_id,
            agent: agent.to_string(),
        });
    }

    /// The call is over: forget its mailbox.
    pub fn detach(&self, call_id: &str) {
        let _ = self.tx.send(Command::Detach {
            call_id: call_id.to_string(),
        });
    }

    pub async fn set_agent_state(
        &self,
        agent: &str,
        req: StateRequest,
    ) -> Result<AgentState, AcdError> {
        self.ask(|reply| Command::SetAgentState {
            agent: agent.to_string(),
            req,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(AcdError::UnknownAgent(agent.to_string())))
    }

    /// Blind transfer of a connected call to an agent or a queue, with a note
    /// for the next agent. `from_agent` None: whoever is connected now.
    /// Returns the agent the call was taken from.
    pub async fn transfer(
        &self,
        call_id: &str,
        from_agent: Option<String>,
        to: TransferTarget,
        note: String,
    ) -> Result<String, AcdError> {
        self.ask(|reply| Command::Transfer {
            call_id: call_id.to_string(),
            from_agent,
            to,
            note,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(AcdError::UnknownCall(call_id.to_string())))
    }

    /// Attended transfer: ring agent `to` for the connected agent (or
    /// `from_agent`, when given) to consult. Returns the consulting agent.
    pub async fn consult(
        &self,
        call_id: &str,
        from_agent: Option<String>,
        to: &str,
        note: String,
    ) -> Result<String, AcdError> {
        self.ask(|reply| Command::Consult {
            call_id: call_id.to_string(),
            from_agent,
            to: to.to_string(),
            note,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(AcdError::UnknownCall(call_id.to_string())))
    }

    /// Finish (`complete`) or cancel the consultation of a call. Returns the
    /// consulted agent.
    pub async fn end_consult(
        &self,
        call_id: &str,
        from_agent: Option<String>,
        complete: bool,
        note: String,
    ) -> Result<String, AcdError> {
        self.ask(|reply| Command::ConsultEnd {
            call_id: call_id.to_string(),
            from_agent,
            complete,
            note,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(AcdError::UnknownCall(call_id.to_string())))
    }

    /// The agent a live call is connected to, if any.
    pub async fn connected_agent(&self, call_id: &str) -> Option<String> {
        self.ask(|reply| Command::ConnectedAgent {
            call_id: call_id.to_string(),
            reply,
        })
        .await
        .flatten()
    }

    /// Hand `msg` to the task of a live call; false when the call is not live.
    pub async fn forward(&self, call_id: &str, msg: QueueMsg) -> bool {
        self.ask(|reply| Command::Forward {
            call_id: call_id.to_string(),
            msg,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    /// Reserve `agent` (or, None, the longest-idle available agent with
    /// `skill`) for the outbound call `call_id`; returns who was reserved.
    /// The call then reports [`Input::DirectAnswered`] and
    /// [`Input::DirectEnded`] through [`Self::input`].
    pub async fn reserve_direct(
        &self,
        call_id: &str,
        agent: Option<String>,
        skill: Option<String>,
    ) -> Result<String, AcdError> {
        self.ask(|reply| Command::Direct {
            call_id: call_id.to_string(),
            agent,
            skill: skill.clone(),
            reply,
        })
        .await
        .unwrap_or(Err(AcdError::NoAgentAvailable { skill }))
    }

    /// Send a command that carries a reply channel and wait for the answer;
    /// None when the ACD task is gone.
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(command(reply));
        rx.await.ok()
    }

    pub async fn snapshot(&self) -> Snapshot {
        self.ask(|reply| Command::Snapshot { reply })
            .await
            .unwrap_or_default()
    }
}

/// An agent as the ACD needs it.
pub struct AcdAgent {
    pub id: String,
    pub skills: Vec<Skill>,
}

/// Start the ACD task. `presence` carries (agent, has a live registration).
pub fn start(
    config: RouterConfig,
    agents: Vec<AcdAgent>,
    ready_on_register: bool,
    mut presence: mpsc::UnboundedReceiver<(String, bool)>,
    events: crate::events::EventHub,
    clock: Arc<dyn Clock>,
) -> Result<AcdHandle, AcdError> {
    let mut router = Router::new(config)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    let mut task = AcdTask {
        mailboxes: HashMap::new(),
        skills: agents
            .iter()
            .map(|a| (a.id.clone(), a.skills.clone()))
            .collect(),
        registered: HashSet::new(),
        explicit: HashSet::new(),
        ready_on_register,
        actions: Vec::new(),
        events,
        direct_pick: None,
    };
    let now = clock.now_ms();
    for a in agents {
        task.run(
            &mut router,
            Input::AgentLogin {
                agent: a.id,
                skills: a.skills,
            },
            now,
        );
    }
    tokio::spawn(async move {
        loop {
            let now = clock.now_ms();
            let wait = router
                .poll_timeout()
                .map(|t| Duration::from_millis(t.saturating_sub(now)))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => task.command(&mut router, cmd, clock.now_ms()),
                    None => break,
                },
                Some((agent, live)) = presence.recv() => task.presence(&mut router, agent, live, clock.now_ms()),
                _ = tokio::time::sleep(wait) => task.run(&mut router, Input::Tick, clock.now_ms()),
            }
        }
    });
    Ok(AcdHandle { tx })
}

struct AcdTask {
    mailboxes: HashMap<String, mpsc::UnboundedSender<QueueMsg>>,
    skills: HashMap<String, Vec<Skill>>,
    registered: HashSet<String>,
    /// Agents who chose a state themselves: registration never overrides them.
    explicit: HashSet<String>,
    ready_on_register: bool,
    actions: Vec<Action>,
    events: crate::events::EventHub,
    /// The agent the last `DirectReserve` picked.
    direct_pick: Option<String>,
}

impl AcdTask {
    fn command(&mut self, router: &mut Router, cmd: Command, now: u64) {
        match cmd {
            Command::Input(input) => {
                self.run(router, input, now);
            }
            Command::Answered {
                call_id,
                offer_id,
                agent,
            } => {
                let input = Input::OfferAnswered {
                    offer_id,
                    agent: agent.clone(),
                };
                if self.run_checked(router, input, now).is_some() {
                    // Too late: the call that sent it must hang up that leg.
                    self.send(&call_id, QueueMsg::Stale { offer_id, agent });
                }
            }
            Command::Attach { call_id, mailbox } => {
                self.mailboxes.insert(call_id, mailbox);
            }
            Command::Detach { call_id } => {
                self.mailboxes.remove(&call_id);
            }
            Command::SetAgentState { agent, req, reply } => {
                let result = self.set_state(router, &agent, req, now);
                let _ = reply.send(result);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(router.snapshot(now));
            }
            Command::Direct {
                call_id,
                agent,
                skill,
                reply,
            } => {
                self.direct_pick = None;
                let input = Input::DirectReserve {
                    call_id,
                    agent,
                    skill: skill.clone(),
                };
                let result = match self.run_checked(router, input, now) {
                    Some(e) => Err(e),
                    None => self
                        .direct_pick
                        .take()
                        .ok_or(AcdError::NoAgentAvailable { skill }),
                };
                let _ = reply.send(result);
            }
            Command::ConnectedAgent { call_id, reply } => {
                let _ = reply.send(router.connected_agent(&call_id));
            }
            Command::Forward {
                call_id,
                msg,
                reply,
            } => {
                let sent = self
                    .mailboxes
                    .get(&call_id)
                    .is_some_and(|tx| tx.send(msg).is_ok());
                let _ = reply.send(sent);
            }
            Command::Consult {
                call_id,
                from_agent,
                to,
                note,
                reply,
            } => {
                let Some(from) = from_agent.or_else(|| router.connected_agent(&call_id)) else {
                    let _ = reply.send(Err(self.not_connected(call_id)));
                    return;
                };
                let input = Input::ConsultStart {
                    call_id: call_id.clone(),
                    from_agent: from.clone(),
                    to_agent: to.clone(),
                };
                let result = match self.run_checked(router, input, now) {
                    Some(e) => Err(e),
                    None => {
                        self.send(&call_id, QueueMsg::Consult { agent: to, note });
                        Ok(from)
                    }
                };
                let _ = reply.send(result);
            }
            Command::ConsultEnd {
                call_id,
                from_agent,
                complete,
                note,
                reply,
            } => {
                let connected = router.connected_agent(&call_id);
                if from_agent.is_some() && from_agent != connected {
                    let _ = reply.send(Err(AcdError::NotConnected {
                        call_id,
                        agent: from_agent.unwrap_or_default(),
                    }));
                    return;
                }
                let Some(agent) = router.consulted_agent(&call_id).map(str::to_string) else {
                    let _ = reply.send(Err(AcdError::Consult {
                        call_id,
                        reason: "no consultation is going on".into(),
                    }));
                    return;
                };
                let input = Input::ConsultEnded {
                    call_id: call_id.clone(),
                    agent: agent.clone(),
                    complete,
                    note: note.clone(),
                };
                let result = match self.run_checked(router, input, now) {
                    Some(e) => Err(e),
                    None => {
                        if let (true, Some(from)) = (complete, connected) {
                            self.events.publish(crate::events::Event::CallTransferred {
                                call_id: call_id.clone(),
                                from_agent: from,
                                to: format!("agent {agent}"),
                                note: note.clone(),
                            });
                        }
                        self.send(
                            &call_id,
                            QueueMsg::ConsultEnded {
                                agent: agent.clone(),
                                complete,
                                note,
                            },
                        );
                        Ok(agent)
                    }
                };
                let _ = reply.send(result);
            }
            Command::Transfer {
                call_id,
                from_agent,
                to,
                note,
                reply,
            } => {
                let from = from_agent.or_else(|| router.connected_agent(&call_id));
                let Some(from) = from else {
                    let _ = reply.send(Err(self.not_connected(call_id)));
                    return;
                };
                let target = match &to {
                    TransferTarget::Agent(a) => format!("agent {a}"),
                    TransferTarget::Queue(q) => format!("queue {q}"),
                };
                let input = Input::Transfer {
                    call_id: call_id.clone(),
                    from_agent: from.clone(),
                    to,
                    note: note.clone(),
                };
                match self.run_checked(router, input, now) {
                    Some(e) => {
                        let _ = reply.send(Err(e));
                    }
                    None => {
                        self.events.publish(crate::events::Event::CallTransferred {
                            call_id: call_id.clone(),
                            from_agent: from.clone(),
                            to: target.clone(),
                            note: note.clone(),
                        });
                        self.send(
                            &call_id,
                            QueueMsg::Transferred {
                                from_agent: from.clone(),
                                to: target,
                                note,
                            },
                        );
                        let _ = reply.send(Ok(from));
                    }
                }
            }
        }
    }

    fn set_state(
        &mut self,
        router: &mut Router,
        agent: &str,
        req: StateRequest,
        now: u64,
    ) -> Result<AgentState, AcdError> {
        let Some(skills) = self.skills.get(agent).cloned() else {
            return Err(AcdError::UnknownAgent(agent.to_string()));
        };
        self.explicit.insert(agent.to_string());
        let agent_s = agent.to_string();
        let inputs = match req {
            StateRequest::Ready => {
                let mut v = Vec::new();
                if matches!(router.agent_state(agent), None | Some(AgentState::Offline)) {
                    v.push(Input::AgentLogin {
                        agent: agent_s.clone(),
                        skills,
                    });
                }
                v.push(Input::SetReady { agent: agent_s });
                v
            }
            StateRequest::NotReady { reason } => vec![Input::SetNotReady {
                agent: agent_s,
                reason,
            }],
            StateRequest::Logout => vec![Input::AgentLogout { agent: agent_s }],
        };
        for input in inputs {
            if let Some(error) = self.run_checked(router, input, now) {
                return Err(error);
            }
        }
        router
            .agent_state(agent)
            .cloned()
            .ok_or_else(|| AcdError::UnknownAgent(agent.to_string()))
    }

    fn presence(&mut self, router: &mut Router, agent: String, live: bool, now: u64) {
        if !self.skills.contains_key(&agent) {
            return;
        }
        let was = self.registered.contains(&agent);
        if live {
            self.registered.insert(agent.clone());
        } else {
            self.registered.remove(&agent);
        }
        self.run(
            router,
            Input::Registered {
                agent: agent.clone(),
                live,
            },
            now,
        );
        // A newcomer who just registered a softphone gets calls at once,
        // unless they chose a state themselves.
        if live && !was && self.ready_on_register && !self.explicit.contains(&agent) {
            self.run(router, Input::SetReady { agent }, now);
        }
    }

    fn run(&mut self, router: &mut Router, input: Input, now: u64) {
        self.run_checked(router, input, now);
    }

    fn run_checked(&mut self, router: &mut Router, input: Input, now: u64) -> Option<AcdError> {
        let mut actions = std::mem::take(&mut self.actions);
        router.handle_into(input, now, &mut actions);
        let mut rejected = None;
        for action in actions.drain(..) {
            match action {
                Action::Offer {
                    offer_id,
                    call_id,
                    queue,
                    agents,
                    note,
                    transfer_chain: _,
                } => {
                    debug!(%call_id, %queue, ?agents, "offer");
                    self.send(
                        &call_id,
                        QueueMsg::Offer {
                            offer_id,
                            agents,
                            note,
                        },
                    );
                }
                Action::CancelOffer {
                    offer_id,
                    call_id,
                    agents,
                } => self.send(&call_id, QueueMsg::CancelOffer { offer_id, agents }),
                Action::Connect {
                    offer_id,
                    call_id,
                    agent,
                    waited_ms,
                } => self.send(
                    &call_id,
                    QueueMsg::Connect {
                        offer_id,
                        agent,
                        waited_ms,
                    },
                ),
                Action::AgentStateChanged {
                    agent,
                    state,
                    since_ms,
                } => {
                    info!(%agent, ?state, "agent state");
                    metrics::counter!("hotline_agent_state_changes_total").increment(1);
                    self.events
                        .publish(crate::events::Event::agent_state(&agent, &state, since_ms));
                }
                Action::Overflowed { call_id, from, to } => {
                    info!(%call_id, %from, %to, "overflow");
                    self.send(&call_id, QueueMsg::Overflowed { to });
                }
                Action::OfferCallback { call_id, queue: _ } => {
                    self.send(&call_id, QueueMsg::OfferCallback)
                }
                Action::CallbackRequested {
                    call_id,
                    queue: _,
                    due_ms,
                } => self.send(&call_id, QueueMsg::CallbackRequested { due_ms }),
                Action::Announce {
                    call_id,
                    position,
                    estimated_wait_ms,
                } => self.send(
                    &call_id,
                    QueueMsg::Announce {
                        position,
                        estimated_wait_ms,
                    },
                ),
                Action::QueueFull { call_id, queue } => {
                    warn!(%call_id, %queue, "queue full");
                    self.send(&call_id, QueueMsg::QueueFull);
                }
                Action::DirectReserved { call_id, agent } => {
                    debug!(%call_id, %agent, "agent reserved for an outbound call");
                    self.direct_pick = Some(agent);
                }
                Action::Rejected { error } => {
                    debug!(%error, "ACD input rejected");
                    rejected = Some(error);
                }
            }
        }
        self.actions = actions;
        rejected
    }

    /// A live call with no agent, or no live call at all.
    fn not_connected(&self, call_id: String) -> AcdError {
        if self.mailboxes.contains_key(&call_id) {
            AcdError::NotConnected {
                call_id,
                agent: String::new(),
            }
        } else {
            AcdError::UnknownCall(call_id)
        }
    }

    fn send(&self, call_id: &str, msg: QueueMsg) {
        match self.mailboxes.get(call_id) {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => debug!(%call_id, ?msg, "no mailbox for call"),
        }
    }
}

/// Map a SIP final status from an agent's phone to why the offer failed.
pub fn offer_failure(status: u16) -> OfferFailure {
    match status {
        486 | 600 => OfferFailure::Busy,
        603 => OfferFailure::Declined,
        408 | 480 | 487 => OfferFailure::NoAnswer,
        _ => OfferFailure::Error,
    }
}
