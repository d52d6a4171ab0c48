//! Dialer pacing: how many callback calls may be started now.
//!
//! Two trunk limits always apply: concurrent calls, and calls per second as
//! a token bucket (carriers reject or flag bursts of INVITEs). On top, the
//! mode decides who the calls are for:
//! - `Survey`: automated IVR survey, no agent needed: dial up to the limits.
//! - `Progressive`: a call is started only for a ready agent, and the calls
//!   in flight never outnumber the ready agents, so an answered call always
//!   has an agent (no abandoned calls, unlike predictive dialing).
//! - `Preview`: nothing is dialed automatically; the agent reads the record
//!   and starts the call ([`Pacer::try_manual`] still applies trunk limits).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialMode {
    Survey,
    Progressive,
    Preview,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PacerConfig {
    pub mode: DialMode,
    /// Calls up at once on the trunk (ringing or talking).
    pub max_concurrent: usize,
    /// Sustained new calls per second.
    pub calls_per_second: f64,
    /// Calls that may start back to back after a quiet spell.
    pub burst: u32,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            mode: DialMode::Progressive,
            max_concurrent: 30,
            calls_per_second: 5.0,
            burst: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PacerError {
    #[error("calls_per_second must be a positive number, got {0}")]
    Rate(f64),
    #[error("burst must be at least 1")]
    Burst,
}

/// The pacing state: a token bucket and the mode. Plain struct; the shell
/// asks it each time an agent becomes ready, a call ends or a timer fires.
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacerConfig,
    /// The bucket in integer nanoseconds of credit (one call costs
    /// `per_call_ns`), so refills are exact and "the next token at" is too.
    credit_ns: i64,
    per_call_ns: i64,
    last: Option<DateTime<Utc>>,
}

impl Pacer {
    pub fn new(cfg: PacerConfig) -> Result<Self, PacerError> {
        if !(cfg.calls_per_second.is_finite() && cfg.calls_per_second > 0.0) {
            return Err(PacerError::Rate(cfg.calls_per_second));
        }
        if cfg.burst == 0 {
            return Err(PacerError::Burst);
        }
        let per_call_ns = ((1e9 / cfg.calls_per_second).round() as i64).max(1);
        Ok(Self {
            credit_ns: per_call_ns.saturating_mul(i64::from(cfg.burst)),
            per_call_ns,
            cfg,
            last: None,
        })
    }

    pub fn config(&self) -> &PacerConfig {
        &self.cfg
    }

    pub fn set_mode(&mut self, mode: DialMode) {
        self.cfg.mode = mode;
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        if let Some(last) = self.last {
            // A clock that steps back adds nothing (and does not move `last`
            // back, so the time is not counted twice).
            if now <= last {
                return;
            }
            let ns = (now - last).num_nanoseconds().unwrap_or(i64::MAX);
            self.credit_ns = self.credit_ns.saturating_add(ns).min(self.cap_ns());
        }
        self.last = Some(now);
    }

    fn cap_ns(&self) -> i64 {
        self.per_call_ns.saturating_mul(i64::from(self.cfg.burst))
    }

    fn take(&mut self, n: usize) {
        self.credit_ns -= self.per_call_ns.saturating_mul(n as i64);
    }

    /// Trunk room left: concurrency and whole tokens.
    fn trunk_room(&self, in_flight: usize) -> usize {
        let room = self.cfg.max_concurrent.saturating_sub(in_flight);
        room.min((self.credit_ns / self.per_call_ns) as usize)
    }

    /// Calls to start now; they are taken from the bucket, so the shell must
    /// start exactly this many (or hand the rest back with [`Self::refund`]).
    ///
    /// `in_flight`: campaign calls started and not yet ended or connected to
    /// an agent. `ready_agents`: agents ready for campaign calls, including
    /// those an in-flight call is reserved for.
    pub fn next_dials(
        &mut self,
        now: DateTime<Utc>,
        ready_agents: usize,
        in_flight: usize,
    ) -> usize {
        self.refill(now);
        let n = match self.cfg.mode {
            DialMode::Survey => self.trunk_room(in_flight),
            DialMode::Progressive => self
                .trunk_room(in_flight)
                .min(ready_agents.saturating_sub(in_flight)),
            DialMode::Preview => 0,
        };
        self.take(n);
        n
    }

    /// An agent-started call (preview mode, or a manual callback): allowed
    /// if the trunk has room; takes a token when it is.
    pub fn try_manual(&mut self, now: DateTime<Utc>, in_flight: usize) -> bool {
        self.refill(now);
        if self.trunk_room(in_flight) == 0 {
            return false;
        }
        self.take(1);
        true
    }

    /// Gives back tokens for calls granted but not started (no task due).
    pub fn refund(&mut self, n: usize) {
        self.credit_ns = self
            .credit_ns
            .saturating_add(self.per_call_ns.saturating_mul(n as i64))
            .min(self.cap_ns());
    }

    /// When the next whole token will be there (for the shell's timer);
    /// `now` if one is there already.
    pub fn next_token_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.credit_ns >= self.per_call_ns {
            return now;
        }
        // Credit was counted up to `last`; time since then is refilling.
        let at =
            self.last.unwrap_or(now) + Duration::nanoseconds(self.per_call_ns - self.credit_ns);
        at.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
    }

    fn pacer(mode: DialMode, max_concurrent: usize, cps: f64, burst: u32) -> Pacer {
        Pacer::new(PacerConfig {
            mode,
            max_concurrent,
            calls_per_second: cps,
            burst,
        })
        .unwrap()
    }

    #[test]
    fn survey_mode_is_held_by_the_token_bucket() {
        let mut p = pacer(DialMode::Survey, 100, 2.0, 4);
        assert_eq!(p.next_dials(t(0), 0, 0), 4); // burst
        assert_eq!(p.next_dials(t(0), 0, 4), 0);
        assert_eq!(p.next_dials(t(499), 0, 4), 0);
        assert_eq!(p.next_token_at(t(499)), t(500));
        assert_eq!(p.next_dials(t(500), 0, 4), 1);
        assert_eq!(p.next_dials(t(1500), 0, 5), 2);
        // A long quiet spell refills only up to the burst.
        assert_eq!(p.next_dials(t(60_000), 0, 0), 4);
        // Over ten seconds at most burst + 10 s × 2 calls start.
        let mut p = pacer(DialMode::Survey, 1000, 2.0, 4);
        let started: usize = (0..=10_000)
            .step_by(10)
            .map(|ms| p.next_dials(t(ms), 0, 0))
            .sum();
        assert_eq!(started, 4 + 20);
    }

    #[test]
    fn concurrency_limit() {
        let mut p = pacer(DialMode::Survey, 3, 100.0, 10);
        assert_eq!(p.next_dials(t(0), 0, 0), 3);
        assert_eq!(p.next_dials(t(1000), 0, 3), 0);
        assert_eq!(p.next_dials(t(2000), 0, 1), 2);
        assert_eq!(p.next_dials(t(3000), 0, 7), 0);
    }

    #[test]
    fn progressive_never_exceeds_ready_agents() {
        let mut p = pacer(DialMode::Progressive, 50, 10.0, 10);
        assert_eq!(p.next_dials(t(0), 0, 0), 0);
        assert_eq!(p.next_dials(t(0), 3, 0), 3);
        assert_eq!(p.next_dials(t(100), 3, 3), 0);
        assert_eq!(p.next_dials(t(200), 5, 3), 2);
        assert_eq!(p.next_dials(t(300), 2, 5), 0); // agents left: nothing new
                                                   // Sweep: outstanding calls never pass the ready agents.
        let mut p = pacer(DialMode::Progressive, 8, 3.0, 2);
        let mut in_flight = 0usize;
        for step in 0..2000i64 {
            let ready = ((step * 7919) % 13) as usize;
            // Some calls end (connected or failed) each step.
            in_flight = in_flight.saturating_sub((step % 3) as usize).min(ready);
            let n = p.next_dials(t(step * 50), ready, in_flight);
            in_flight += n;
            assert!(in_flight <= ready, "step {step}");
            assert!(in_flight <= 8);
        }
    }

    #[test]
    fn preview_dials_nothing_but_allows_manual_calls() {
        let mut p = pacer(DialMode::Preview, 2, 1.0, 1);
        assert_eq!(p.next_dials(t(0), 10, 0), 0);
        assert!(p.try_manual(t(0), 0));
        assert!(!p.try_manual(t(10), 1)); // no token yet
        assert!(p.try_manual(t(1000), 1));
        assert!(!p.try_manual(t(5000), 2)); // trunk full
    }

    #[test]
    fn refund_and_clock_step_back() {
        let mut p = pacer(DialMode::Survey, 10, 1.0, 3);
        assert_eq!(p.next_dials(t(10_000), 0, 0), 3);
        p.refund(2);
        assert_eq!(p.next_dials(t(5_000), 0, 0), 2); // clock went back: no refill
        assert_eq!(p.next_dials(t(10_500), 0, 0), 0);
        assert_eq!(p.next_dials(t(11_000), 0, 0), 1);
    }

    #[test]
    fn bad_config() {
        let c = |cps, burst| {
            Pacer::new(PacerConfig {
                calls_per_second: cps,
                burst,
                ..Default::default()
            })
        };
        assert!(c(0.0, 1).is_err());
        assert!(c(f64::NAN, 1).is_err());
        assert!(c(1.0, 0).is_err());
    }
}
