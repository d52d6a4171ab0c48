//! Brute-force guard: too many failed digest attempts from one source address
//! within a window block that address (every request gets 403) for a cool-down.
//! Pure: the caller passes the time in.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy)]
pub struct GuardPolicy {
    pub max_failures: u32,
    pub window_ms: u64,
    pub block_ms: u64,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    /// Times of recent failures, oldest first (at most `max_failures`).
    failures: Vec<u64>,
    blocked_until: Option<u64>,
}

#[derive(Debug)]
pub struct AuthGuard {
    policy: GuardPolicy,
    sources: HashMap<IpAddr, Entry>,
}

impl AuthGuard {
    pub fn new(policy: GuardPolicy) -> Self {
        Self {
            policy,
            sources: HashMap::new(),
        }
    }

    /// Whether requests from `ip` are refused at `now_ms`.
    pub fn is_blocked(&self, ip: IpAddr, now_ms: u64) -> bool {
        self.sources
            .get(&ip)
            .and_then(|e| e.blocked_until)
            .is_some_and(|until| now_ms < until)
    }

    /// Record a failed attempt; returns true when this failure starts a block.
    pub fn record_failure(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let p = self.policy;
        let e = self.sources.entry(ip).or_default();
        e.failures
            .retain(|t| now_ms.saturating_sub(*t) < p.window_ms);
        e.failures.push(now_ms);
        if e.failures.len() as u32 >= p.max_failures {
            e.failures.clear();
            e.blocked_until = Some(now_ms + p.block_ms);
            return true;
        }
        false
    }

    /// A successful login clears the source's count.
    pub fn record_success(&mut self, ip: IpAddr) {
        if let Some(e) = self.sources.get_mut(&ip) {
            e.failures.clear();
        }
    }

    /// Drop entries with nothing left to remember (bounded memory).
    pub fn purge(&mut self, now_ms: u64) {
        let window = self.policy.window_ms;
        self.sources.retain(|_, e| {
            e.failures.retain(|t| now_ms.saturating_sub(*t) < window);
            !e.failures.is_empty() || e.blocked_until.is_some_and(|u| now_ms < u)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> AuthGuard {
        AuthGuard::new(GuardPolicy {
            max_failures: 3,
            window_ms: 10_000,
            block_ms: 60_000,
        })
    }

    #[test]
    fn blocks_after_n_failures_in_window_then_releases() {
        let mut g = guard();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(!g.record_failure(ip, 0));
        assert!(!g.record_failure(ip, 1_000));
        assert!(g.record_failure(ip, 2_000));
        assert!(g.is_blocked(ip, 2_001));
        assert!(g.is_blocked(ip, 61_999));
        assert!(!g.is_blocked(ip, 62_000));
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        assert!(!g.is_blocked(other, 2_001));
    }

    #[test]
    fn failures_outside_window_do_not_add_up() {
        let mut g = guard();
        let ip: IpAddr = "::1".parse().unwrap();
        g.record_failure(ip, 0);
        g.record_failure(ip, 5_000);
        assert!(!g.record_failure(ip, 15_001));
        assert!(!g.is_blocked(ip, 15_002));
    }

    #[test]
    fn success_resets_and_purge_forgets() {
        let mut g = guard();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        g.record_failure(ip, 0);
        g.record_failure(ip, 1);
        g.record_success(ip);
        assert!(!g.record_failure(ip, 2));
        g.purge(100_000);
        assert!(g.sources.is_empty());
    }
}
