//! Picking agents for one call according to the queue's strategy.
//!
//! Pure: gets the candidates (already filtered to Ready, registered,
//! skilled agents not yet tried for this call) and returns whom to ring.
//! Every tie is broken by longest idle, then by agent id, so the choice is
//! deterministic and tests can rely on it.

use std::cmp::Reverse;

use super::config::Strategy;

#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    pub id: &'a str,
    /// When the agent last became Ready through their own doing.
    pub idle_since_ms: u64,
    /// Proficiency in the call's skill; 0 when the call needs no skill.
    pub proficiency: u8,
    pub answered_today: u32,
}

pub(crate) fn select(
    strategy: Strategy,
    candidates: &[Candidate<'_>],
    round_robin_last: Option<&str>,
) -> Vec<String> {
    let pick = match strategy {
        Strategy::RingAll => {
            let mut all: Vec<String> = candidates.iter().map(|c| c.id.to_owned()).collect();
            all.sort();
            return all;
        }
        Strategy::LongestIdle => candidates.iter().min_by_key(|c| (c.idle_since_ms, c.id)),
        Strategy::FewestCalls => candidates
            .iter()
            .min_by_key(|c| (c.answered_today, c.idle_since_ms, c.id)),
        Strategy::SkillsProficiency => candidates
            .iter()
            .min_by_key(|c| (Reverse(c.proficiency), c.idle_since_ms, c.id)),
        Strategy::RoundRobin => {
            // Next id after the last one offered, wrapping around; agents
            // logging in or out do not disturb the rotation of the others.
            let after = round_robin_last.and_then(|last| {
                candidates
                    .iter()
                    .filter(|c| c.id > last)
                    .min_by_key(|c| c.id)
            });
            after.or_else(|| candidates.iter().min_by_key(|c| c.id))
        }
    };
    pick.map(|c| vec![c.id.to_owned()]).unwrap_or_default()
}
