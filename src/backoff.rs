//! Jittered exponential backoff, the one used by everything that retries: the Vast client's
//! retries of a request and the notifier's retries of a send. Retry `n` (1 = the first retry)
//! waits `min(base * 2^(n-1), cap)` times a random factor drawn from the caller's [`Jitter`], so
//! many clients that failed together do not retry in lockstep. Pure arithmetic and a random draw:
//! must not sleep or know what is retried.

use rand::Rng;
use std::time::Duration;

/// The random factor a delay is multiplied by, drawn uniformly from `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub low: f64,
    pub high: f64,
}

impl Jitter {
    /// The upper half of the delay: never longer than the cap (the Vast client: its budget per
    /// endpoint is strict).
    pub const UPPER_HALF: Jitter = Jitter {
        low: 0.5,
        high: 1.0,
    };
    /// Half the delay to one and a half times it (the notifier).
    pub const AROUND: Jitter = Jitter {
        low: 0.5,
        high: 1.5,
    };
}

/// The delays of one retry loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first retry waits about this long; each further one doubles it.
    pub base: Duration,
    /// No delay grows past this (before the jitter).
    pub cap: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// The wait before retry number `retry` (1 = the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1u32 << doublings).min(self.cap);
        if ceiling.is_zero() {
            return ceiling;
        }
        ceiling.mul_f64(rand::thread_rng().gen_range(self.jitter.low..=self.jitter.high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff_delay(retry: u32, base: Duration, cap: Duration) -> Duration {
        let jitter = Jitter::UPPER_HALF;
        Backoff { base, cap, jitter }.delay(retry)
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        for _ in 0..50 {
            let d1 = backoff_delay(1, base, cap);
            assert!(d1 >= Duration::from_secs(1) && d1 <= base);
            let d3 = backoff_delay(3, base, cap);
            assert!(d3 >= Duration::from_secs(4) && d3 <= Duration::from_secs(8));
            let d20 = backoff_delay(20, base, cap);
            assert!(d20 >= Duration::from_secs(30) && d20 <= cap);
        }
        assert_eq!(backoff_delay(1, Duration::ZERO, cap), Duration::ZERO);
    }

    #[test]
    fn the_notifier_jitter_spreads_around_the_delay() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            jitter: Jitter::AROUND,
        };
        for _ in 0..50 {
            let d2 = backoff.delay(2);
            assert!(d2 >= Duration::from_secs(1) && d2 <= Duration::from_secs(3));
            let d40 = backoff.delay(40);
            assert!(d40 >= Duration::from_secs(150) && d40 <= Duration::from_secs(450));
        }
    }
}
