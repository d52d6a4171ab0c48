//! Router tests with a simulated clock.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const SEC: u64 = 1_000;
const T0: u64 = 1_700_000_000_000;

struct Sim {
    r: Router,
    now: u64,
}

impl Sim {
    fn new(queues: Vec<QueueConfig>) -> Sim {
        let r = Router::new(RouterConfig {
            queues,
            ..RouterConfig::default()
        })
        .expect("valid config");
        Sim { r, now: T0 }
    }

    /// One queue "service" with no announcements (they clutter most tests).
    fn one(strategy: Strategy) -> Sim {
        Sim::new(vec![quiet(QueueConfig {
            strategy,
            ..QueueConfig::new("service")
        })])
    }

    fn send(&mut self, input: Input) -> Vec<Action> {
        self.r.handle(input, self.now)
    }

    /// Reserves `agent` (or, None, the longest-idle agent with `skill`) for
    /// the outbound call `call`.
    fn reserve(&mut self, call: &str, agent: Option<&str>, skill: Option<&str>) -> Vec<Action> {
        self.send(Input::DirectReserve {
            call_id: call.into(),
            agent: agent.map(Into::into),
            skill: skill.map(Into::into),
        })
    }

    /// Moves the clock forward by `ms`, ticking whenever the router asks.
    fn advance(&mut self, ms: u64) -> Vec<Action> {
        let target = self.now + ms;
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match self.r.poll_timeout() {
                Some(t) if t <= target => {
                    assert!(
                        t > self.now || out.is_empty() || t >= self.now,
                        "time ran back"
                    );
                    self.now = self.now.max(t);
                    let before = self.r.poll_timeout();
                    out.extend(self.r.handle(Input::Tick, self.now));
                    assert!(
                        self.r.poll_timeout().is_none_or(|n| n > self.now),
                        "poll_timeout did not move past now (was {before:?})"
                    );
                }
                _ => break,
            }
        }
        self.now = target;
        out.extend(self.r.handle(Input::Tick, self.now));
        out
    }

    /// Log in, register and wait a moment so logins order the idle line.
    fn agent(&mut self, id: &str, skills: &[(&str, u8)]) -> Vec<Action> {
        self.send(Input::Registered {
            agent: id.into(),
            live: true,
        });
        let out = self.send(Input::AgentLogin {
            agent: id.into(),
            skills: skills.iter().map(|(s, p)| Skill::new(*s, *p)).collect(),
        });
        self.now += 10;
        out
    }

    fn enqueue(&mut self, call: &str, queue: &str, priority: i32) -> Vec<Action> {
        self.enqueue_full(call, queue, priority, None)
    }

    fn enqueue_full(
        &mut self,
        call: &str,
        queue: &str,
        priority: i32,
        preferred: Option<&str>,
    ) -> Vec<Action> {
        self.send(Input::Enqueue {
            call_id: call.into(),
            queue: queue.into(),
            priority,
            preferred_agent: preferred.map(Into::into),
            skill: None,
            arrived_ms: self.now,
        })
    }

    fn answer(&mut self, offer_id: OfferId, agent: &str) -> Vec<Action> {
        self.send(Input::OfferAnswered {
            offer_id,
            agent: agent.into(),
        })
    }

    fn fail(&mut self, offer_id: OfferId, agent: &str, reason: OfferFailure) -> Vec<Action> {
        self.send(Input::OfferFailed {
            offer_id,
            agent: agent.into(),
            reason,
        })
    }

    fn end(&mut self, call: &str, agent: &str) -> Vec<Action> {
        self.send(Input::CallEnded {
            call_id: call.into(),
            agent: agent.into(),
        })
    }

    fn state(&self, agent: &str) -> AgentState {
        self.r.agent_state(agent).cloned().expect("known agent")
    }

    fn queue(&self, name: &str) -> QueueSnapshot {
        self.r
            .snapshot(self.now)
            .queues
            .into_iter()
            .find(|q| q.name == name)
            .expect("queue")
    }
}

fn quiet(q: QueueConfig) -> QueueConfig {
    QueueConfig {
        announce_interval_ms: None,
        ..q
    }
}

/// All offers in the actions: (offer, call, agents).
fn offers(actions: &[Action]) -> Vec<(OfferId, String, Vec<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Offer {
                offer_id,
                call_id,
                agents,
                ..
            } => Some((*offer_id, call_id.clone(), agents.clone())),
            _ => None,
        })
        .collect()
}

/// The single offer in the actions.
fn only_offer(actions: &[Action]) -> (OfferId, String, Vec<String>) {
    let all = offers(actions);
    assert_eq!(all.len(), 1, "expected one offer in {actions:#?}");
    all.into_iter().next().unwrap()
}

fn cancels(actions: &[Action]) -> Vec<Vec<String>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CancelOffer { agents, .. } => Some(agents.clone()),
            _ => None,
        })
        .collect()
}

fn not_ready(reason: &str) -> AgentState {
    AgentState::NotReady {
        reason: reason.into(),
    }
}

// ---- strategies -------------------------------------------------------

#[test]
fn longest_idle_picks_the_agent_ready_longest() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("b", &[]);
    s.agent("a", &[]);
    s.agent("c", &[]);
    let (_, call, agents) = only_offer(&s.enqueue("c1", "service", 0));
    assert_eq!((call.as_str(), agents), ("c1", vec!["b".to_string()]));
    // b is reserved now; the next caller gets the next longest idle.
    let (_, _, agents) = only_offer(&s.enqueue("c2", "service", 0));
    assert_eq!(agents, vec!["a"]);
}

#[test]
fn round_robin_rotates_through_agents_in_id_order() {
    let mut s = Sim::one(Strategy::RoundRobin);
    for id in ["c", "a", "b"] {
        s.agent(id, &[]);
    }
    let mut picked = Vec::new();
    for i in 0..4 {
        let call = format!("call{i}");
        let (offer, _, agents) = only_offer(&s.enqueue(&call, "service", 0));
        let agent = agents[0].clone();
        s.answer(offer, &agent);
        s.end(&call, &agent);
        s.advance(60 * SEC); // wrap-up over, all Ready again
        picked.push(agent);
    }
    assert_eq!(picked, ["a", "b", "c", "a"]);
}

#[test]
fn fewest_calls_picks_the_agent_with_fewest_answered_today() {
    let mut s = Sim::one(Strategy::FewestCalls);
    s.agent("a", &[]);
    s.agent("b", &[]);
    // a answers two calls, b one.
    for (call, want) in [("x1", "a"), ("x2", "b"), ("x3", "a")] {
        s.advance(SEC);
        let out = s.enqueue(call, "service", 0);
        let (offer, _, agents) = only_offer(&out);
        if agents[0] != want {
            // Steer the distribution: the other agent declines.
            let other = agents[0].clone();
            let out = s.fail(offer, &other, OfferFailure::Declined);
            let (offer, _, agents) = only_offer(&out);
            assert_eq!(agents[0], want);
            s.answer(offer, want);
        } else {
            s.answer(offer, want);
        }
        s.end(call, want);
        s.advance(60 * SEC);
    }
    // b has been idle for less time than a (a finished last), but has fewer calls.
    let (_, _, agents) = only_offer(&s.enqueue("y", "service", 0));
    assert_eq!(agents, vec!["b"]);
}

#[test]
fn skills_proficiency_picks_the_most_proficient_then_longest_idle() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        strategy: Strategy::SkillsProficiency,
        skill: Some("repair".into()),
        ..QueueConfig::new("repair")
    })]);
    s.agent("novice", &[("repair", 3)]);
    s.agent("expert2", &[("repair", 9)]);
    s.agent("expert1", &[("repair", 9)]);
    s.agent("sales", &[("sales", 10)]);
    let (_, _, agents) = only_offer(&s.enqueue("c1", "repair", 0));
    assert_eq!(agents, vec!["expert2"], "equal proficiency → longest idle");
    let (_, _, agents) = only_offer(&s.enqueue("c2", "repair", 0));
    assert_eq!(agents, vec!["expert1"]);
    let (_, _, agents) = only_offer(&s.enqueue("c3", "repair", 0));
    assert_eq!(agents, vec!["novice"]);
    // The agent without the skill is never offered a repair call.
    assert!(offers(&s.enqueue("c4", "repair", 0)).is_empty());
}

#[test]
fn ring_all_rings_every_matching_agent_and_cancels_the_losers() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        strategy: Strategy::RingAll,
        skill: Some("install".into()),
        ..QueueConfig::new("install")
    })]);
    s.agent("a", &[("install", 5)]);
    s.agent("b", &[("install", 5)]);
    s.agent("c", &[("install", 5)]);
    s.agent("x", &[("billing", 5)]);
    s.send(Input::SetNotReady {
        agent: "c".into(),
        reason: "lunch".into(),
    });
    let (offer, _, agents) = only_offer(&s.enqueue("c1", "install", 0));
    assert_eq!(agents, vec!["a", "b"]);
    assert_eq!(s.state("a"), AgentState::Reserved);
    assert_eq!(s.state("b"), AgentState::Reserved);
    let out = s.answer(offer, "b");
    assert!(out.contains(&Action::CancelOffer {
        offer_id: offer,
        call_id: "c1".into(),
        agents: vec!["a".into()],
    }));
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Connect { agent, .. } if agent == "b")));
    assert_eq!(s.state("a"), AgentState::Ready);
    assert_eq!(s.state("b"), AgentState::OnCall);
    // A late answer from the loser is refused so the shell hangs it up.
    let out = s.answer(offer, "a");
    assert!(matches!(
        out[..],
        [Action::Rejected {
            error: AcdError::StaleOffer { .. }
        }]
    ));
}

// ---- priority and waiting ---------------------------------------------

#[test]
fn priority_goes_first_and_waits_are_kept() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.enqueue("normal1", "service", PRIORITY_NORMAL);
    s.advance(10 * SEC);
    s.enqueue("normal2", "service", PRIORITY_NORMAL);
    s.advance(10 * SEC);
    s.enqueue("complaint", "service", PRIORITY_COMPLAINT);
    s.advance(10 * SEC);
    s.enqueue("vip", "service", PRIORITY_VIP);
    s.advance(5 * SEC);
    assert_eq!(s.queue("service").longest_wait_ms, 35 * SEC);

    let mut out = s.agent("a", &[]);
    let mut served = Vec::new();
    for _ in 0..4 {
        let (offer, call, _) = only_offer(&out);
        let waited = s
            .answer(offer, "a")
            .iter()
            .find_map(|a| match a {
                Action::Connect { waited_ms, .. } => Some(*waited_ms),
                _ => None,
            })
            .expect("connect");
        served.push((call.clone(), waited));
        s.advance(30 * SEC);
        out = s.end(&call, "a");
        out.extend(s.advance(30 * SEC)); // wrap-up ends, next offer
    }
    let order: Vec<&str> = served.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(order, ["complaint", "vip", "normal1", "normal2"]);
    // Each wait runs from the caller's own enqueue time: normal1 was let
    // in last but one, yet its wait counts from t=0.
    let waits: BTreeMap<&str, u64> = served.iter().map(|(c, w)| (c.as_str(), *w)).collect();
    assert_eq!(waits["complaint"], 15 * SEC + 10);
    assert_eq!(waits["vip"], 65 * SEC + 10);
    assert_eq!(waits["normal1"], 155 * SEC + 10);
    assert_eq!(waits["normal2"], 205 * SEC + 10);
}

// ---- failures -----------------------------------------------------------

#[test]
fn no_answer_moves_on_and_repeated_misses_set_not_ready() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        ring_timeout_ms: 15 * SEC,
        ..QueueConfig::new("service")
    })]);
    s.agent("sleepy", &[]);
    s.agent("b", &[]);
    let (first, _, agents) = only_offer(&s.enqueue("c1", "service", 0));
    assert_eq!(agents, vec!["sleepy"]);
    // Ring timeout: cancelled and the next agent is tried.
    let out = s.advance(15 * SEC);
    assert_eq!(cancels(&out), vec![vec!["sleepy".to_string()]]);
    let (second, _, agents) = only_offer(&out);
    assert_eq!(agents, vec!["b"]);
    assert_ne!(first, second);
    assert_eq!(s.state("sleepy"), AgentState::Ready);
    s.answer(second, "b");

    // Second miss in a row: the shell reports no answer this time.
    let (offer, _, agents) = only_offer(&s.enqueue("c2", "service", 0));
    assert_eq!(agents, vec!["sleepy"]);
    let out = s.fail(offer, "sleepy", OfferFailure::NoAnswer);
    assert!(out.contains(&Action::AgentStateChanged {
        agent: "sleepy".into(),
        state: not_ready(MISSED_OFFERS_REASON),
        since_ms: s.now,
    }));
    assert_eq!(s.state("sleepy"), not_ready(MISSED_OFFERS_REASON));
    // Nobody else is ready: c2 waits, sleepy is not rung again.
    assert!(offers(&s.advance(60 * SEC)).is_empty());
}

#[test]
fn busy_and_declined_move_on_without_counting_a_miss() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("a", &[]);
    s.agent("b", &[]);
    s.agent("c", &[]);
    let (o1, _, ag) = only_offer(&s.enqueue("c1", "service", 0));
    assert_eq!(ag, vec!["a"]);
    let (o2, _, ag) = only_offer(&s.fail(o1, "a", OfferFailure::Busy));
    assert_eq!(ag, vec!["b"]);
    let (o3, _, ag) = only_offer(&s.fail(o2, "b", OfferFailure::Declined));
    assert_eq!(ag, vec!["c"]);
    s.fail(o3, "c", OfferFailure::Declined);
    // Everyone refused: they are Ready, not penalised, and the caller is
    // offered again once the retry pause has passed.
    for id in ["a", "b", "c"] {
        assert_eq!(s.state(id), AgentState::Ready);
    }
    let out = s.advance(QueueConfig::default().retry_ms);
    let (_, call, ag) = only_offer(&out);
    assert_eq!((call.as_str(), ag), ("c1", vec!["a".to_string()]));
}

#[test]
fn lone_busy_agent_is_not_rung_in_a_loop() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("a", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    let out = s.fail(o, "a", OfferFailure::Busy);
    assert!(offers(&out).is_empty(), "no immediate re-offer: {out:?}");
    assert_eq!(
        s.r.poll_timeout(),
        Some(s.now + QueueConfig::default().retry_ms)
    );
}

// ---- abandon --------------------------------------------------------------

#[test]
fn abandon_while_waiting_and_while_ringing() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.enqueue("w", "service", 0);
    s.advance(5 * SEC);
    assert!(s
        .send(Input::Abandoned {
            call_id: "w".into()
        })
        .is_empty());
    assert_eq!(s.queue("service").waiting, 0);

    s.agent("a", &[]);
    let (offer, _, _) = only_offer(&s.enqueue("r", "service", 0));
    let out = s.send(Input::Abandoned {
        call_id: "r".into(),
    });
    assert_eq!(cancels(&out), vec![vec!["a".to_string()]]);
    assert_eq!(s.state("a"), AgentState::Ready);
    // The offer is gone: an answer now is stale.
    assert!(matches!(
        s.answer(offer, "a")[..],
        [Action::Rejected {
            error: AcdError::StaleOffer { .. }
        }]
    ));
    let q = s.queue("service");
    assert_eq!((q.today.offered, q.today.abandoned), (2, 2));
    // Unknown calls are reported, not fatal.
    assert!(matches!(
        s.send(Input::Abandoned {
            call_id: "nope".into()
        })[..],
        [Action::Rejected {
            error: AcdError::UnknownCall(_)
        }]
    ));
}

// ---- first-contact ownership -----------------------------------------------

#[test]
fn ready_owner_gets_the_call_even_if_others_idle_longer() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("idle_longest", &[]);
    s.agent("owner", &[]);
    let (_, _, agents) = only_offer(&s.enqueue_full("c1", "service", 0, Some("owner")));
    assert_eq!(agents, vec!["owner"]);
}

#[test]
fn caller_waits_for_owner_who_becomes_ready_within_the_window() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("other", &[]);
    s.agent("owner", &[]);
    s.send(Input::SetNotReady {
        agent: "owner".into(),
        reason: "meeting".into(),
    });
    assert!(offers(&s.enqueue_full("c1", "service", 0, Some("owner"))).is_empty());
    // Another caller is not held up by the pinned one.
    let (_, call, agents) = only_offer(&s.enqueue("c2", "service", 0));
    assert_eq!((call.as_str(), agents), ("c2", vec!["other".to_string()]));
    assert!(offers(&s.advance(20 * SEC)).is_empty());
    let out = s.send(Input::SetReady {
        agent: "owner".into(),
    });
    let (_, call, agents) = only_offer(&out);
    assert_eq!((call.as_str(), agents), ("c1", vec!["owner".to_string()]));
}

#[test]
fn owner_window_expires_then_queue_serves_the_caller() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("owner", &[]);
    s.agent("other", &[]);
    s.send(Input::SetNotReady {
        agent: "owner".into(),
        reason: "meeting".into(),
    });
    assert!(offers(&s.enqueue_full("c1", "service", 0, Some("owner"))).is_empty());
    assert!(offers(&s.advance(29 * SEC)).is_empty());
    let (_, call, agents) = only_offer(&s.advance(SEC));
    assert_eq!((call.as_str(), agents), ("c1", vec!["other".to_string()]));
}

#[test]
fn owner_who_does_not_answer_releases_the_caller_to_the_queue() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("other", &[]);
    s.agent("owner", &[]);
    let (o, _, _) = only_offer(&s.enqueue_full("c1", "service", 0, Some("owner")));
    let (_, _, agents) = only_offer(&s.fail(o, "owner", OfferFailure::NoAnswer));
    assert_eq!(agents, vec!["other"]);
}

#[test]
fn logged_out_owner_does_not_hold_the_caller() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("owner", &[]);
    s.agent("other", &[]);
    s.send(Input::AgentLogout {
        agent: "owner".into(),
    });
    let (_, _, agents) = only_offer(&s.enqueue_full("c1", "service", 0, Some("owner")));
    assert_eq!(agents, vec!["other"]);
}

// ---- overflow and callback ----------------------------------------------------

#[test]
fn overflow_to_another_queue_keeps_the_arrival_time() {
    let mut s = Sim::new(vec![
        quiet(QueueConfig {
            skill: Some("repair".into()),
            max_wait_ms: Some(60 * SEC),
            overflow: Overflow::Queue("general".into()),
            ..QueueConfig::new("repair")
        }),
        quiet(QueueConfig {
            max_wait_ms: Some(50 * SEC),
            overflow: Overflow::Queue("repair".into()),
            ..QueueConfig::new("general")
        }),
    ]);
    s.enqueue("early", "repair", 0);
    s.advance(30 * SEC);
    s.enqueue("g1", "general", 0);
    let out = s.advance(30 * SEC);
    assert!(out.contains(&Action::Overflowed {
        call_id: "early".into(),
        from: "repair".into(),
        to: "general".into(),
    }));
    // In "general" the wait still counts from t=0.
    assert_eq!(s.queue("general").waiting, 2);
    assert_eq!(s.queue("general").longest_wait_ms, 60 * SEC);
    // Max wait in the new queue counts from entry there (g1 at 80 s goes,
    // early at 110 s would), and early is never sent back to repair.
    let out = s.advance(55 * SEC);
    let moved: Vec<&str> = out
        .iter()
        .filter_map(|a| match a {
            Action::Overflowed { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(moved, ["g1"]);
    let out = s.agent("generalist", &[]);
    let (offer, call, _) = only_offer(&out);
    assert_eq!(call, "early");
    let out = s.answer(offer, "generalist");
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Connect { waited_ms, .. } if *waited_ms == 115 * SEC + 10)));
    let repair = s.queue("repair");
    assert_eq!((repair.today.offered, repair.today.overflowed), (2, 1));
    assert_eq!(repair.waiting, 1);
}

#[test]
fn overflowed_caller_goes_ahead_of_later_arrivals() {
    let mut s = Sim::new(vec![
        quiet(QueueConfig {
            max_wait_ms: Some(60 * SEC),
            skill: Some("repair".into()),
            overflow: Overflow::Queue("general".into()),
            ..QueueConfig::new("repair")
        }),
        quiet(QueueConfig::new("general")),
    ]);
    s.enqueue("early", "repair", 0);
    s.advance(30 * SEC);
    s.enqueue("g1", "general", 0);
    s.advance(30 * SEC);
    let (_, call, _) = only_offer(&s.agent("generalist", &[]));
    assert_eq!(call, "early");
}

#[test]
fn full_queue_overflows_at_enqueue_or_refuses() {
    let mut s = Sim::new(vec![
        quiet(QueueConfig {
            max_length: Some(1),
            overflow: Overflow::Queue("backup".into()),
            ..QueueConfig::new("front")
        }),
        quiet(QueueConfig {
            max_length: Some(1),
            ..QueueConfig::new("backup")
        }),
    ]);
    assert!(s.enqueue("c1", "front", 0).is_empty());
    let out = s.enqueue("c2", "front", 0);
    assert_eq!(
        out,
        vec![Action::Overflowed {
            call_id: "c2".into(),
            from: "front".into(),
            to: "backup".into()
        }]
    );
    let out = s.enqueue("c3", "front", 0);
    assert!(out.contains(&Action::QueueFull {
        call_id: "c3".into(),
        queue: "backup".into()
    }));
    assert_eq!(s.queue("backup").waiting, 1);
    assert_eq!(s.queue("backup").today.refused, 1);
}

#[test]
fn callback_offered_once_and_accepted() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        max_wait_ms: Some(120 * SEC),
        overflow: Overflow::OfferCallback,
        ..QueueConfig::new("service")
    })]);
    s.enqueue("c1", "service", 0);
    assert!(s.advance(119 * SEC).is_empty());
    let out = s.advance(SEC);
    assert_eq!(
        out,
        vec![Action::OfferCallback {
            call_id: "c1".into(),
            queue: "service".into()
        }]
    );
    assert!(s.advance(600 * SEC).is_empty(), "offered only once");
    let out = s.send(Input::CallbackAccepted {
        call_id: "c1".into(),
    });
    assert_eq!(
        out,
        vec![Action::CallbackRequested {
            call_id: "c1".into(),
            queue: "service".into(),
            due_ms: s.now + 3_600_000,
        }]
    );
    let q = s.queue("service");
    assert_eq!((q.waiting, q.today.callbacks, q.today.abandoned), (0, 1, 0));
}

#[test]
fn callback_not_accepted_keeps_the_place() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        max_length: Some(1),
        overflow: Overflow::OfferCallback,
        ..QueueConfig::new("service")
    })]);
    s.enqueue("first", "service", 0);
    s.advance(SEC);
    let out = s.enqueue("second", "service", 0);
    assert!(out.contains(&Action::OfferCallback {
        call_id: "second".into(),
        queue: "service".into()
    }));
    s.advance(SEC);
    s.enqueue("third", "service", 0);
    s.advance(60 * SEC);
    let mut out = s.agent("a", &[]);
    let mut order = Vec::new();
    for _ in 0..3 {
        let (o, call, _) = only_offer(&out);
        s.answer(o, "a");
        s.end(&call, "a");
        out = s.advance(QueueConfig::default().wrap_up_ms);
        order.push(call);
    }
    assert_eq!(order, ["first", "second", "third"]);
}

// ---- wrap-up and agent states ---------------------------------------------------

#[test]
fn wrap_up_returns_to_ready_after_the_queue_time() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        wrap_up_ms: 30 * SEC,
        ..QueueConfig::new("service")
    })]);
    s.agent("a", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    s.answer(o, "a");
    s.advance(100 * SEC);
    s.end("c1", "a");
    assert_eq!(s.state("a"), AgentState::WrapUp);
    // A caller arriving during wrap-up waits.
    assert!(offers(&s.enqueue("c2", "service", 0)).is_empty());
    assert_eq!(s.r.poll_timeout(), Some(s.now + 30 * SEC));
    assert!(offers(&s.advance(30 * SEC - 1)).is_empty());
    let out = s.advance(1);
    assert_eq!(only_offer(&out).1, "c2");
    assert!(out.contains(&Action::AgentStateChanged {
        agent: "a".into(),
        state: AgentState::Ready,
        since_ms: s.now
    }));
}

#[test]
fn not_ready_during_a_call_applies_after_wrap_up() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("a", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    s.answer(o, "a");
    s.send(Input::SetNotReady {
        agent: "a".into(),
        reason: "break".into(),
    });
    assert_eq!(s.state("a"), AgentState::OnCall);
    s.end("c1", "a");
    s.advance(60 * SEC);
    assert_eq!(s.state("a"), not_ready("break"));
}

#[test]
fn unregistered_agent_is_never_offered() {
    let mut s = Sim::one(Strategy::LongestIdle);
    // Logged in without any registration.
    s.send(Input::AgentLogin {
        agent: "ghost".into(),
        skills: vec![],
    });
    s.now += 10;
    assert!(offers(&s.enqueue("c1", "service", 0)).is_empty());
    assert_eq!(s.queue("service").agents.unreachable, 1);
    // Registration arrives: offered at once.
    let out = s.send(Input::Registered {
        agent: "ghost".into(),
        live: true,
    });
    let (o, _, _) = only_offer(&out);
    // Registration lost while ringing: the leg is cancelled, no miss.
    let out = s.send(Input::Registered {
        agent: "ghost".into(),
        live: false,
    });
    assert_eq!(cancels(&out), vec![vec!["ghost".to_string()]]);
    assert!(offers(&out).is_empty());
    assert_eq!(s.state("ghost"), AgentState::Ready);
    assert!(offers(&s.advance(300 * SEC)).is_empty());
    assert!(matches!(
        s.answer(o, "ghost")[..],
        [Action::Rejected {
            error: AcdError::StaleOffer { .. }
        }]
    ));
}

#[test]
fn unknown_agent_inputs_are_rejected() {
    let mut s = Sim::one(Strategy::LongestIdle);
    assert!(matches!(
        s.send(Input::SetReady { agent: "x".into() })[..],
        [Action::Rejected {
            error: AcdError::UnknownAgent(_)
        }]
    ));
    assert!(matches!(
        s.enqueue("c", "nope", 0)[..],
        [Action::Rejected {
            error: AcdError::UnknownQueue(_)
        }]
    ));
    s.enqueue("c", "service", 0);
    assert!(matches!(
        s.enqueue("c", "service", 0)[..],
        [Action::Rejected {
            error: AcdError::DuplicateCall(_)
        }]
    ));
    assert!(matches!(
        s.end("c", "x")[..],
        [Action::Rejected {
            error: AcdError::NotConnected { .. }
        }]
    ));
}

// ---- announcements -----------------------------------------------------------

#[test]
fn announcements_give_positions_and_estimated_wait() {
    let mut s = Sim::new(vec![QueueConfig {
        announce_interval_ms: Some(30 * SEC),
        default_handle_ms: 120 * SEC,
        ..QueueConfig::new("service")
    }]);
    // Two agents serving the queue, both busy.
    s.agent("a", &[]);
    s.agent("b", &[]);
    for (call, agent) in [("busy1", "a"), ("busy2", "b")] {
        let (o, _, _) = only_offer(&s.enqueue(call, "service", 0));
        s.answer(o, agent);
    }
    let first = s.enqueue("n1", "service", 0);
    assert_eq!(
        first,
        vec![Action::Announce {
            call_id: "n1".into(),
            position: 1,
            estimated_wait_ms: 60 * SEC, // 1 × 120 s / 2 agents
        }]
    );
    s.advance(SEC);
    s.enqueue("n2", "service", 0);
    s.advance(SEC);
    s.enqueue("vip", "service", PRIORITY_VIP);
    // Next round for n1 (at 30 s): the VIP went ahead.
    let out = s.advance(28 * SEC);
    let ann: Vec<(String, usize, u64)> = out
        .iter()
        .filter_map(|a| match a {
            Action::Announce {
                call_id,
                position,
                estimated_wait_ms,
            } => Some((call_id.clone(), *position, *estimated_wait_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(ann, vec![("n1".to_string(), 2, 120 * SEC)]);
    let out = s.advance(2 * SEC);
    assert!(out.contains(&Action::Announce {
        call_id: "n2".into(),
        position: 3,
        estimated_wait_ms: 180 * SEC,
    }));
    // History replaces the default: one call of 40 s talk + 15 s wrap-up.
    s.advance(8 * SEC);
    s.end("busy1", "a");
    assert_eq!(s.queue("service").estimated_wait_ms, 4 * 55 * SEC / 2);
}

// ---- transfers -------------------------------------------------------------------

#[test]
fn transfer_to_an_agent_carries_the_note_and_chain() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("first", &[]);
    s.agent("expert", &[]);
    s.agent("idle", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    s.answer(o, "first");
    // expert is busy with another call when the transfer comes.
    let (o2, _, ag) = only_offer(&s.enqueue("c2", "service", 0));
    assert_eq!(ag, vec!["expert"]);
    s.answer(o2, "expert");
    s.advance(60 * SEC);
    let out = s.send(Input::Transfer {
        call_id: "c1".into(),
        from_agent: "first".into(),
        to: TransferTarget::Agent("expert".into()),
        note: "E4 error on the dryer, already power-cycled".into(),
    });
    assert!(
        offers(&out).is_empty(),
        "idle agent must not take it: {out:?}"
    );
    assert_eq!(s.state("first"), AgentState::WrapUp);
    s.advance(5 * SEC);
    s.end("c2", "expert");
    // Transfer target becomes ready (after wrap-up) within the window.
    let out = s.send(Input::SetReady {
        agent: "expert".into(),
    });
    let offer = out
        .iter()
        .find(|a| matches!(a, Action::Offer { .. }))
        .expect("offer");
    assert_eq!(
        offer,
        &Action::Offer {
            offer_id: OfferId(3),
            call_id: "c1".into(),
            queue: "service".into(),
            agents: vec!["expert".into()],
            note: Some("E4 error on the dryer, already power-cycled".into()),
            transfer_chain: vec!["first".into()],
        }
    );
}

#[test]
fn transfer_to_a_queue_requeues_with_the_note() {
    let mut s = Sim::new(vec![
        quiet(QueueConfig::new("service")),
        quiet(QueueConfig {
            skill: Some("complaint".into()),
            ..QueueConfig::new("complaints")
        }),
    ]);
    s.agent("a", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    s.answer(o, "a");
    s.advance(90 * SEC);
    let out = s.send(Input::Transfer {
        call_id: "c1".into(),
        from_agent: "a".into(),
        to: TransferTarget::Queue("complaints".into()),
        note: "installer left debris".into(),
    });
    assert!(offers(&out).is_empty());
    assert_eq!(s.queue("complaints").waiting, 1);
    assert_eq!(s.queue("service").avg_talk_ms, Some(90 * SEC));
    s.advance(5 * SEC);
    let out = s.agent("handler", &[("complaint", 8)]);
    match &out[..] {
        [.., Action::Offer {
            call_id,
            agents,
            note,
            transfer_chain,
            ..
        }, Action::AgentStateChanged { .. }] => {
            assert_eq!(call_id, "c1");
            assert_eq!(agents, &vec!["handler".to_string()]);
            assert_eq!(note.as_deref(), Some("installer left debris"));
            assert_eq!(transfer_chain, &vec!["a".to_string()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A transfer from someone not on the call is refused.
    assert!(matches!(
        s.send(Input::Transfer {
            call_id: "c1".into(),
            from_agent: "a".into(),
            to: TransferTarget::Queue("service".into()),
            note: String::new(),
        })[..],
        [Action::Rejected {
            error: AcdError::NotConnected { .. }
        }]
    ));
}

// ---- snapshot --------------------------------------------------------------------

#[test]
fn snapshot_service_level_abandon_rate_and_averages() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        service_level_ms: 20 * SEC,
        wrap_up_ms: 0,
        ..QueueConfig::new("service")
    })]);
    s.agent("a", &[]);
    // Answered at once (within SL), 60 s talk.
    let (o, _, _) = only_offer(&s.enqueue("fast", "service", 0));
    s.answer(o, "a");
    s.enqueue("slow", "service", 0);
    s.enqueue("gone", "service", 0);
    s.advance(30 * SEC);
    s.send(Input::Abandoned {
        call_id: "gone".into(),
    });
    s.advance(30 * SEC);
    let out = s.end("fast", "a");
    // slow waited 60 s: answered outside the service level, 20 s talk.
    let (o, call, _) = only_offer(&out);
    assert_eq!(call, "slow");
    s.answer(o, "a");
    s.advance(20 * SEC);
    let snap = s.r.snapshot(s.now);
    let q = &snap.queues[0];
    assert_eq!(q.today.offered, 3);
    assert_eq!(q.today.answered, 2);
    assert_eq!(q.today.abandoned, 1);
    assert_eq!(q.service_level, Some(0.5));
    assert_eq!(q.abandon_rate, Some(1.0 / 3.0));
    assert_eq!(q.avg_wait_ms, Some(30 * SEC));
    assert_eq!(q.avg_talk_ms, Some(60 * SEC));
    assert_eq!(q.agents.on_call, 1);
    let a = &snap.agents[0];
    assert_eq!(a.state, AgentState::OnCall);
    assert_eq!(a.current_call.as_deref(), Some("slow"));
    assert_eq!(a.time_in_state_ms, 20 * SEC);
    assert_eq!(a.answered_today, 2);

    s.send(Input::ResetDailyStats);
    let snap = s.r.snapshot(s.now);
    assert_eq!(snap.queues[0].today, QueueStats::default());
    assert_eq!(snap.queues[0].service_level, None);
    assert_eq!(snap.agents[0].answered_today, 0);
}

#[test]
fn config_is_validated() {
    let bad = |queues| {
        Router::new(RouterConfig {
            queues,
            ..RouterConfig::default()
        })
        .is_err()
    };
    assert!(bad(vec![QueueConfig::new("a"), QueueConfig::new("a")]));
    assert!(bad(vec![QueueConfig {
        overflow: Overflow::Queue("missing".into()),
        ..QueueConfig::new("a")
    }]));
    assert!(bad(vec![QueueConfig {
        ring_timeout_ms: 0,
        ..QueueConfig::new("a")
    }]));
    assert_eq!(Skill::parse("repair:8"), Some(Skill::new("repair", 8)));
    assert_eq!(Skill::parse("repair"), Some(Skill::new("repair", 5)));
    assert_eq!(Skill::parse("repair:99"), Some(Skill::new("repair", 10)));
    assert_eq!(Skill::parse("repair:x"), None);
}

// ---- property-style ------------------------------------------------------------

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What the shell can know from the actions alone.
#[derive(Default)]
struct Model {
    state: BTreeMap<String, AgentState>,
    registered: BTreeSet<String>,
    /// Agent → offer ringing them.
    ringing: BTreeMap<String, OfferId>,
    /// Agent → call connected to them.
    talking: BTreeMap<String, String>,
    offers: BTreeMap<OfferId, (String, BTreeSet<String>)>,
}

impl Model {
    fn input(&mut self, input: &Input, out: &[Action]) {
        let rejected = out.iter().any(|a| matches!(a, Action::Rejected { .. }));
        match input {
            Input::Registered { agent, live } => {
                if *live {
                    self.registered.insert(agent.clone());
                } else {
                    self.registered.remove(agent);
                }
            }
            Input::OfferFailed {
                offer_id, agent, ..
            } if !rejected => self.drop_leg(*offer_id, agent),
            Input::CallEnded { agent, .. }
            | Input::Transfer {
                from_agent: agent, ..
            } if !rejected => {
                self.talking.remove(agent);
            }
            Input::Abandoned { call_id } if !rejected => {
                self.talking.retain(|_, c| c != call_id);
            }
            _ => {}
        }
        for a in out {
            match a {
                Action::Offer {
                    offer_id,
                    call_id,
                    agents,
                    ..
                } => {
                    assert!(!agents.is_empty());
                    for ag in agents {
                        assert_eq!(
                            self.state.get(ag),
                            Some(&AgentState::Ready),
                            "offer {offer_id} to {ag} who is not Ready"
                        );
                        assert!(self.registered.contains(ag), "{ag} is not registered");
                        assert!(!self.ringing.contains_key(ag), "{ag} already ringing");
                        assert!(!self.talking.contains_key(ag), "{ag} already on a call");
                        self.ringing.insert(ag.clone(), *offer_id);
                    }
                    assert!(
                        !self.offers.values().any(|(c, _)| c == call_id),
                        "call {call_id} offered twice at once"
                    );
                    self.offers.insert(
                        *offer_id,
                        (call_id.clone(), agents.iter().cloned().collect()),
                    );
                }
                Action::CancelOffer {
                    offer_id, agents, ..
                } => {
                    for ag in agents {
                        assert_eq!(self.ringing.get(ag), Some(offer_id));
                        self.drop_leg(*offer_id, ag);
                    }
                }
                Action::Connect {
                    offer_id,
                    call_id,
                    agent,
                    ..
                } => {
                    assert_eq!(self.ringing.get(agent), Some(offer_id));
                    self.drop_leg(*offer_id, agent);
                    assert!(
                        !self.offers.contains_key(offer_id),
                        "connected while other legs still ring"
                    );
                    self.talking.insert(agent.clone(), call_id.clone());
                }
                Action::AgentStateChanged { agent, state, .. } => {
                    self.state.insert(agent.clone(), state.clone());
                }
                _ => {}
            }
        }
        // Every agent the model believes is ringing or talking is shown so.
        for ag in self.ringing.keys() {
            assert_eq!(self.state.get(ag), Some(&AgentState::Reserved), "{ag}");
        }
        for ag in self.talking.keys() {
            assert_eq!(self.state.get(ag), Some(&AgentState::OnCall), "{ag}");
        }
    }

    fn drop_leg(&mut self, offer_id: OfferId, agent: &str) {
        self.ringing.remove(agent);
        if let Some((_, legs)) = self.offers.get_mut(&offer_id) {
            legs.remove(agent);
            if legs.is_empty() {
                self.offers.remove(&offer_id);
            }
        }
    }
}

fn random_run(seed: u64, steps: usize) {
    let queues = vec![
        QueueConfig {
            strategy: Strategy::RingAll,
            max_length: Some(3),
            overflow: Overflow::Queue("general".into()),
            skill: Some("repair".into()),
            announce_interval_ms: Some(7 * SEC),
            ..QueueConfig::new("repair")
        },
        QueueConfig {
            strategy: Strategy::RoundRobin,
            max_wait_ms: Some(40 * SEC),
            overflow: Overflow::OfferCallback,
            wrap_up_ms: 3 * SEC,
            ..QueueConfig::new("general")
        },
        QueueConfig {
            strategy: Strategy::SkillsProficiency,
            skill: Some("complaint".into()),
            max_wait_ms: Some(20 * SEC),
            overflow: Overflow::Queue("repair".into()),
            wrap_up_ms: 0,
            ..QueueConfig::new("complaints")
        },
        QueueConfig {
            strategy: Strategy::FewestCalls,
            ..QueueConfig::new("vip")
        },
    ];
    let mut r = Router::new(RouterConfig {
        queues,
        max_missed_offers: 2,
    })
    .unwrap();
    let mut rng = Rng(seed | 1);
    let mut model = Model::default();
    let agents = ["a1", "a2", "a3", "a4", "a5", "ghost"];
    let queues = ["repair", "general", "complaints", "vip", "nope"];
    let skills = ["repair", "complaint", "billing"];
    let mut now = T0;
    let mut next_call = 0u64;
    let mut calls: Vec<String> = Vec::new();

    for _ in 0..steps {
        now += match rng.below(4) {
            0 => 0,
            1 => rng.below(1_000),
            2 => rng.below(20_000),
            _ => r.poll_timeout().map_or(0, |t| t.saturating_sub(now)),
        };
        if rng.below(50) == 0 {
            now -= rng.below(5_000); // clock wobble must not break anything
        }
        let agent = rng.pick(&agents).to_string();
        let call = if calls.is_empty() || rng.below(10) == 0 {
            format!("c{}", rng.below(next_call + 1))
        } else {
            calls[rng.below(calls.len() as u64) as usize].clone()
        };
        // Most offers answered/failed are real ones, some stale.
        let offer = if !model.offers.is_empty() && rng.below(5) != 0 {
            let keys: Vec<OfferId> = model.offers.keys().copied().collect();
            let id = keys[rng.below(keys.len() as u64) as usize];
            let legs: Vec<String> = model.offers[&id].1.iter().cloned().collect();
            (id, legs[rng.below(legs.len() as u64) as usize].clone())
        } else {
            (OfferId(rng.below(50)), agent.clone())
        };
        let talking: Vec<(String, String)> = model
            .talking
            .iter()
            .map(|(a, c)| (a.clone(), c.clone()))
            .collect();
        let connected = (!talking.is_empty())
            .then(|| talking[rng.below(talking.len() as u64) as usize].clone());
        let input = match rng.below(17) {
            0 => Input::AgentLogin {
                agent,
                skills: (0..rng.below(3))
                    .map(|_| Skill::new(rng.pick(&skills), rng.below(12) as u8))
                    .collect(),
            },
            1 => Input::SetReady { agent },
            2 => Input::SetNotReady {
                agent,
                reason: "break".into(),
            },
            3 => Input::AgentLogout { agent },
            4 => Input::Registered {
                agent,
                live: rng.below(4) != 0,
            },
            5 | 6 => {
                next_call += 1;
                let id = format!("c{next_call}");
                calls.push(id.clone());
                Input::Enqueue {
                    call_id: id,
                    queue: rng.pick(&queues).into(),
                    priority: [0, 0, PRIORITY_VIP, PRIORITY_COMPLAINT][rng.below(4) as usize],
                    preferred_agent: (rng.below(3) == 0).then(|| rng.pick(&agents).into()),
                    skill: (rng.below(5) == 0).then(|| rng.pick(&skills).into()),
                    arrived_ms: now.saturating_sub(rng.below(10_000)),
                }
            }
            7 | 8 => Input::OfferAnswered {
                offer_id: offer.0,
                agent: offer.1,
            },
            9 => Input::OfferFailed {
                offer_id: offer.0,
                agent: offer.1,
                reason: [
                    OfferFailure::NoAnswer,
                    OfferFailure::Busy,
                    OfferFailure::Declined,
                    OfferFailure::Error,
                ][rng.below(4) as usize],
            },
            10 => match connected {
                Some((a, c)) if rng.below(4) != 0 => Input::CallEnded {
                    call_id: c,
                    agent: a,
                },
                _ => Input::CallEnded {
                    call_id: call,
                    agent,
                },
            },
            11 => Input::Abandoned { call_id: call },
            12 => Input::CallbackAccepted { call_id: call },
            13 => {
                let (from, call_id) = connected.unwrap_or((agent.clone(), call));
                Input::Transfer {
                    call_id,
                    from_agent: from,
                    to: if rng.below(2) == 0 {
                        TransferTarget::Agent(agent)
                    } else {
                        TransferTarget::Queue(rng.pick(&queues).into())
                    },
                    note: "n".into(),
                }
            }
            14 if rng.below(20) == 0 => Input::ResetDailyStats,
            _ => Input::Tick,
        };
        let out = r.handle(input.clone(), now);
        model.input(&input, &out);
        let effective_now = r.snapshot(0).now_ms;
        assert!(
            r.poll_timeout().is_none_or(|t| t > effective_now),
            "poll_timeout not in the future after {input:?}"
        );
        let snap = r.snapshot(now);
        for a in &snap.agents {
            let model_state = model
                .state
                .get(&a.id)
                .cloned()
                .unwrap_or(AgentState::Offline);
            if model.state.contains_key(&a.id) {
                assert_eq!(a.state, model_state, "agent {} state drifted", a.id);
            }
        }
    }
}

#[test]
fn random_inputs_never_panic_or_double_offer() {
    // 10,000 steps in all, over two differently seeded runs.
    for seed in [7, 0xdead_beef] {
        random_run(seed, 5_000);
    }
}

// ---- attended transfer (consultation) ---------------------------------

#[test]
fn consult_then_complete_moves_the_call_to_the_consulted_agent() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("first", &[]);
    s.agent("expert", &[]);
    let (o, _, ag) = only_offer(&s.enqueue("c1", "service", 0));
    assert_eq!(ag, vec!["first"]);
    s.answer(o, "first");
    s.advance(30 * SEC);
    let out = s.send(Input::ConsultStart {
        call_id: "c1".into(),
        from_agent: "first".into(),
        to_agent: "expert".into(),
    });
    assert!(rejected(&out).is_none(), "{out:?}");
    assert_eq!(s.state("expert"), AgentState::Reserved);
    // A new caller is not offered to the agent being consulted.
    let out = s.enqueue("c2", "service", 0);
    assert!(offers(&out).is_empty(), "{out:?}");
    s.send(Input::ConsultAnswered {
        call_id: "c1".into(),
        agent: "expert".into(),
    });
    assert_eq!(s.state("expert"), AgentState::OnCall);
    s.advance(10 * SEC);
    let out = s.send(Input::ConsultEnded {
        call_id: "c1".into(),
        agent: "expert".into(),
        complete: true,
        note: "needs a new drum".into(),
    });
    assert!(rejected(&out).is_none(), "{out:?}");
    assert_eq!(s.state("first"), AgentState::WrapUp);
    // After wrap-up (15 s) the first agent takes the waiting caller.
    let out = s.advance(16 * SEC);
    let (_, call, agents) = only_offer(&out);
    assert_eq!((call.as_str(), agents), ("c2", vec!["first".to_string()]));
    assert_eq!(s.state("expert"), AgentState::OnCall);
    // The call now belongs to the expert: only they can end it.
    let out = s.end("c1", "first");
    assert!(rejected(&out).is_some(), "{out:?}");
    let out = s.end("c1", "expert");
    assert!(rejected(&out).is_none(), "{out:?}");
}

#[test]
fn consult_cancelled_or_unanswered_frees_the_consulted_agent() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("first", &[]);
    s.agent("expert", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    s.answer(o, "first");
    let consult = Input::ConsultStart {
        call_id: "c1".into(),
        from_agent: "first".into(),
        to_agent: "expert".into(),
    };
    s.send(consult.clone());
    // A second consultation at once is refused.
    let out = s.send(consult.clone());
    assert!(rejected(&out).is_some(), "{out:?}");
    // Completing before the expert answered is refused.
    let out = s.send(Input::ConsultEnded {
        call_id: "c1".into(),
        agent: "expert".into(),
        complete: true,
        note: String::new(),
    });
    assert!(rejected(&out).is_some(), "{out:?}");
    s.send(Input::ConsultEnded {
        call_id: "c1".into(),
        agent: "expert".into(),
        complete: false,
        note: String::new(),
    });
    assert_eq!(s.state("expert"), AgentState::Ready);
    assert_eq!(s.state("first"), AgentState::OnCall);
    // The caller hanging up during a consultation frees the expert too.
    s.send(consult);
    assert_eq!(s.state("expert"), AgentState::Reserved);
    s.end("c1", "first");
    assert_eq!(s.state("expert"), AgentState::Ready);
}

#[test]
fn consult_needs_a_ready_agent_and_a_connected_call() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("first", &[]);
    s.agent("busy", &[]);
    let (o, _, _) = only_offer(&s.enqueue("c1", "service", 0));
    s.answer(o, "first");
    let (o2, _, _) = only_offer(&s.enqueue("c2", "service", 0));
    s.answer(o2, "busy");
    for (from, to) in [("first", "busy"), ("first", "nobody"), ("busy", "first")] {
        let out = s.send(Input::ConsultStart {
            call_id: "c1".into(),
            from_agent: from.into(),
            to_agent: to.into(),
        });
        assert!(rejected(&out).is_some(), "{from}->{to}: {out:?}");
    }
}

/// The error of a rejected input, if the router rejected it.
fn rejected(actions: &[Action]) -> Option<&AcdError> {
    actions.iter().find_map(|a| match a {
        Action::Rejected { error } => Some(error),
        _ => None,
    })
}

#[test]
fn overflow_drops_the_ivr_skill_for_the_new_queues_own() {
    let mut s = Sim::new(vec![
        quiet(QueueConfig {
            skill: Some("install".into()),
            max_wait_ms: Some(10 * SEC),
            overflow: Overflow::Queue("consult".into()),
            ..QueueConfig::new("install")
        }),
        quiet(QueueConfig {
            skill: Some("consult".into()),
            ..QueueConfig::new("consult")
        }),
    ]);
    s.agent("adviser", &[("consult", 5)]);
    // The IVR asked for "install" explicitly, as the shipped dialplan does.
    s.send(Input::Enqueue {
        call_id: "c1".into(),
        queue: "install".into(),
        priority: 0,
        preferred_agent: None,
        skill: Some("install".into()),
        arrived_ms: s.now,
    });
    let out = s.advance(11 * SEC);
    let (_, call, agents) = only_offer(&out);
    assert_eq!((call.as_str(), agents), ("c1", vec!["adviser".to_string()]));
}

#[test]
fn a_ringing_owner_is_cut_off_when_the_owner_window_ends() {
    let mut s = Sim::new(vec![quiet(QueueConfig {
        owner_wait_ms: 4 * SEC,
        ring_timeout_ms: 20 * SEC,
        ..QueueConfig::new("service")
    })]);
    s.agent("owner", &[]);
    s.advance(SEC);
    s.agent("other", &[]);
    let (_, _, agents) = only_offer(&s.enqueue_full("c1", "service", 0, Some("owner")));
    assert_eq!(agents, vec!["owner"]);
    // The owner does not answer: at 4 s (not 20 s) the queue takes over.
    let out = s.advance(5 * SEC);
    let (_, call, agents) = only_offer(&out);
    assert_eq!((call.as_str(), agents), ("c1", vec!["other".to_string()]));
}

fn reserved(out: &[Action]) -> Option<String> {
    out.iter().find_map(|a| match a {
        Action::DirectReserved { agent, .. } => Some(agent.clone()),
        _ => None,
    })
}

#[test]
fn direct_reserve_picks_the_longest_idle_agent_with_the_skill() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("a1", &[("install", 5)]);
    s.agent("cb1", &[("callback", 5)]);
    s.agent("cb2", &[("callback", 5)]);
    let out = s.reserve("out1", None, Some("callback"));
    assert_eq!(reserved(&out).as_deref(), Some("cb1"), "{out:?}");
    assert_eq!(s.state("cb1"), AgentState::Reserved);
    // A reserved agent is not offered inbound calls.
    let out = s.enqueue("in1", "service", 0);
    let (_, _, agents) = only_offer(&out);
    assert!(!agents.contains(&"cb1".to_string()), "{agents:?}");
    let out = s.reserve("out2", None, Some("callback"));
    assert_eq!(reserved(&out).as_deref(), Some("cb2"), "{out:?}");
    // Nobody left with the skill: refused, nothing reserved.
    let out = s.reserve("out3", None, Some("callback"));
    assert!(
        matches!(rejected(&out), Some(AcdError::NoAgentAvailable { .. })),
        "{out:?}"
    );
}

#[test]
fn direct_call_answered_then_wrap_up_then_ready() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("cb1", &[]);
    let out = s.reserve("out1", Some("cb1"), None);
    assert_eq!(reserved(&out).as_deref(), Some("cb1"));
    s.send(Input::DirectAnswered {
        call_id: "out1".into(),
        agent: "cb1".into(),
    });
    assert_eq!(s.state("cb1"), AgentState::OnCall);
    // A second reservation of a busy agent is refused.
    let out = s.reserve("out2", Some("cb1"), None);
    assert!(
        matches!(rejected(&out), Some(AcdError::InvalidAgentState { .. })),
        "{out:?}"
    );
    s.send(Input::DirectEnded {
        call_id: "out1".into(),
        agent: "cb1".into(),
        wrap_up_ms: 10 * SEC,
    });
    assert_eq!(s.state("cb1"), AgentState::WrapUp);
    s.advance(11 * SEC);
    assert_eq!(s.state("cb1"), AgentState::Ready);
}

#[test]
fn direct_call_never_answered_frees_the_agent_at_once() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("cb1", &[]);
    s.reserve("out1", Some("cb1"), None);
    // A caller arriving meanwhile waits for the agent, then gets them.
    let out = s.enqueue("in1", "service", 0);
    assert!(offers(&out).is_empty(), "{out:?}");
    let out = s.send(Input::DirectEnded {
        call_id: "out1".into(),
        agent: "cb1".into(),
        wrap_up_ms: 10 * SEC,
    });
    let (_, call, agents) = only_offer(&out);
    assert_eq!((call.as_str(), agents), ("in1", vec!["cb1".to_string()]));
}

#[test]
fn direct_reserve_needs_a_registered_ready_agent() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("cb1", &[]);
    s.send(Input::Registered {
        agent: "cb1".into(),
        live: false,
    });
    let out = s.reserve("out1", Some("cb1"), None);
    match rejected(&out) {
        Some(AcdError::InvalidAgentState { state, .. }) => {
            assert!(state.contains("registered"), "{state}")
        }
        other => panic!("{other:?}"),
    }
    let out = s.reserve("out1", Some("nobody"), None);
    assert!(matches!(rejected(&out), Some(AcdError::UnknownAgent(_))));
}

#[test]
fn direct_call_keeps_a_not_ready_chosen_while_ringing() {
    let mut s = Sim::one(Strategy::LongestIdle);
    s.agent("cb1", &[]);
    s.reserve("out1", Some("cb1"), None);
    s.send(Input::SetNotReady {
        agent: "cb1".into(),
        reason: "lunch".into(),
    });
    s.send(Input::DirectAnswered {
        call_id: "out1".into(),
        agent: "cb1".into(),
    });
    s.send(Input::DirectEnded {
        call_id: "out1".into(),
        agent: "cb1".into(),
        wrap_up_ms: 10 * SEC,
    });
    assert_eq!(
        s.state("cb1"),
        AgentState::NotReady {
            reason: "lunch".into()
        }
    );
}
