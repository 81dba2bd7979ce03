//! How long the agent waits before trying again: three policies, each a pure function of the attempt number, the
//! time already spent in the phase, an optional DNS TTL and a jitter value the caller supplies.
//!
//! | policy | used for | delays (attempt 0, 1, 2, …), before jitter |
//! |---|---|---|
//! | [`RetryPolicy::Watch`] | waiting for something to *appear*: role file not written yet, NXDOMAIN / empty answer for the masters or minions name, fewer minions than `WEAVE_CONSENSUS`, API server refusing, timing out or not ready (HTTP 5xx) | 250 ms, 500 ms, then every 750 ms; after 10 min in the same phase the cap rises to 10 s |
//! | [`RetryPolicy::Error`] | something is *broken*: DNS SERVFAIL / timeout / other resolver errors, failed host checks, systemd making no progress | 250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s, then every 10 s |
//! | [`RetryPolicy::Blocked`] | the operator must act: API server certificate not trusted (wrong CA pin / CA file / SAN), minions answer too large | every 30 s |
//!
//! Jitter: every delay is multiplied by 0.8 + 0.4·`jitter` (±20 %, `jitter` in 0..1 from the caller; out of range
//! is clamped, NaN counts as 0.5), so nodes that booted together do not query in lock-step.
//!
//! DNS TTL: a wait after a DNS answer is never shorter than min(TTL, cap of the policy) — the negative TTL (SOA
//! minimum) after NXDOMAIN / an empty answer, the record TTL after a positive answer with too few minions — applied
//! after jitter. The cap bounds it: honouring a 900 s negative TTL (Route 53's default SOA) would delay bring-up
//! by 15 minutes, and the agent's resolver edge queries without a cache so a new record is seen as soon as the
//! recursive resolver has it. (Set the zone's SOA minimum low, e.g. 1-5 s: the recursive resolver honours it.)
//!
//! The numbers: the benchmark is "master becomes healthy → minion asks systemd to start its units", p50 ≤ 0.5 s.
//! A minion waiting under `Watch` re-checks every 0.6–0.9 s (750 ms ± 20 %), so the change is seen after half a
//! period on average, ≈ 0.375 s (worst 0.9 s); the chain after it (probe, minions lookup, env file) has no waits.
//! The cost: at most 80 DNS queries per minute per waiting minion (one A query per attempt, to the local
//! recursive resolver; 81 in the first minute counting the first query) for the first 10 minutes of a phase,
//! then 6 per minute; 100 minions waiting together ≈ 133 queries/s at the resolver, well inside what a VPC
//! resolver (1024 packets/s per interface) or dnsmasq serves. The `Error` policy makes 11 queries in the first
//! minute and 6 per minute after it, so a struggling resolver is not hammered; `Blocked` makes 2 per minute.
//!
//! Cumulative time until attempt k (no jitter): Watch 0.25, 0.75, 1.5, 2.25, 3.0 s …; Error 0.25, 0.75, 1.75,
//! 3.75, 7.75, 15.75, 25.75 s ….

use std::time::Duration;

/// First delay.
pub const BASE_DELAY: Duration = Duration::from_millis(250);
/// Longest `Watch` delay during the first [`PATIENCE`] in a phase.
pub const WATCH_CAP: Duration = Duration::from_millis(750);
/// Longest `Error` delay, and the `Watch` cap after [`PATIENCE`].
pub const ERROR_CAP: Duration = Duration::from_secs(10);
/// The fixed `Blocked` delay.
pub const BLOCKED_RETRY: Duration = Duration::from_secs(30);
/// How long a phase may wait at the fast `Watch` cadence before it slows down.
pub const PATIENCE: Duration = Duration::from_secs(600);
/// ± this fraction of jitter.
pub const JITTER_FRACTION: f64 = 0.2;

/// Which schedule a wait follows (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryPolicy {
    Watch,
    Error,
    Blocked,
}

impl RetryPolicy {
    /// The longest delay of this policy after `in_phase` in the phase.
    pub fn cap(self, in_phase: Duration) -> Duration {
        match self {
            RetryPolicy::Watch if in_phase < PATIENCE => WATCH_CAP,
            RetryPolicy::Watch | RetryPolicy::Error => ERROR_CAP,
            RetryPolicy::Blocked => BLOCKED_RETRY,
        }
    }

    /// The delay before jitter and TTL: `BASE_DELAY · 2^attempt`, capped.
    pub fn nominal(self, attempt: u32, in_phase: Duration) -> Duration {
        match self {
            RetryPolicy::Blocked => BLOCKED_RETRY,
            RetryPolicy::Watch | RetryPolicy::Error => {
                let doubled = BASE_DELAY.saturating_mul(1u32 << attempt.min(16));
                doubled.min(self.cap(in_phase))
            }
        }
    }

    /// The delay to wait, in whole milliseconds: nominal × (0.8 + 0.4·jitter), then at least min(ttl, cap).
    pub fn delay(
        self,
        attempt: u32,
        in_phase: Duration,
        ttl_secs: Option<u32>,
        jitter: f64,
    ) -> Duration {
        let jitter = if jitter.is_nan() {
            0.5
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let factor = 1.0 - JITTER_FRACTION + 2.0 * JITTER_FRACTION * jitter;
        let nominal_ms = self.nominal(attempt, in_phase).as_millis() as f64;
        let jittered = Duration::from_millis((nominal_ms * factor).round() as u64);
        let floor = ttl_secs.map_or(Duration::ZERO, |ttl| {
            Duration::from_secs(u64::from(ttl)).min(self.cap(in_phase))
        });
        jittered.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    #[test]
    fn watch_sequence_then_patience() {
        let early: Vec<u64> = (0..6)
            .map(|a| ms(RetryPolicy::Watch.nominal(a, Duration::ZERO)))
            .collect();
        assert_eq!(early, vec![250, 500, 750, 750, 750, 750]);
        let late: Vec<u64> = (0..9)
            .map(|a| ms(RetryPolicy::Watch.nominal(a, PATIENCE)))
            .collect();
        assert_eq!(
            late,
            vec![250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn error_sequence() {
        let delays: Vec<u64> = (0..9)
            .map(|a| ms(RetryPolicy::Error.nominal(a, Duration::ZERO)))
            .collect();
        assert_eq!(
            delays,
            vec![250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        assert_eq!(
            ms(RetryPolicy::Error.nominal(u32::MAX, Duration::ZERO)),
            10_000
        );
    }

    #[test]
    fn blocked_is_fixed() {
        for attempt in [0, 1, 7, 100] {
            assert_eq!(
                RetryPolicy::Blocked.nominal(attempt, Duration::ZERO),
                BLOCKED_RETRY
            );
        }
    }

    #[test]
    fn jitter_is_plus_minus_twenty_percent_and_sanitised() {
        let d = |j: f64| ms(RetryPolicy::Error.delay(2, Duration::ZERO, None, j));
        assert_eq!((d(0.0), d(0.5), d(1.0)), (800, 1000, 1200));
        assert_eq!((d(-3.0), d(7.0), d(f64::NAN)), (800, 1200, 1000));
    }

    #[test]
    fn ttl_is_a_floor_bounded_by_the_cap() {
        let watch = |ttl, j| ms(RetryPolicy::Watch.delay(0, Duration::ZERO, ttl, j));
        // TTL 0 (dnsmasq's default) changes nothing; a long TTL is cut to the cap.
        assert_eq!(watch(Some(0), 0.5), 250);
        assert_eq!(watch(Some(900), 0.0), 750);
        assert_eq!(watch(Some(900), 1.0), 750);
        let error = |ttl| ms(RetryPolicy::Error.delay(0, Duration::ZERO, ttl, 0.5));
        assert_eq!(error(Some(3)), 3000);
        assert_eq!(error(Some(86_400)), 10_000);
    }

    /// The numbers quoted in the module doc: attempts (queries) in the first minute of a phase, counting the
    /// first one at 0 s, and the steady rate.
    #[test]
    fn queries_per_minute() {
        let first_minute = |policy: RetryPolicy| {
            let (mut t, mut n, mut attempt) = (0u64, 0u32, 0u32);
            while t < 60_000 {
                n += 1;
                t += ms(policy.nominal(attempt, Duration::ZERO));
                attempt += 1;
            }
            n
        };
        assert_eq!(first_minute(RetryPolicy::Watch), 81);
        assert_eq!(first_minute(RetryPolicy::Error), 11);
        assert_eq!(60_000 / ms(RetryPolicy::Watch.cap(Duration::ZERO)), 80);
        assert_eq!(60_000 / ms(RetryPolicy::Watch.cap(PATIENCE)), 6);
        assert_eq!(60_000 / ms(RetryPolicy::Error.cap(Duration::ZERO)), 6);
        assert_eq!(60_000 / ms(RetryPolicy::Blocked.cap(Duration::ZERO)), 2);
    }
}
