//! How fast a target may send: token buckets with one or more limits each, corrected by what
//! the service reports (`X-RateLimit-*`, `Retry-After`), and each service's published defaults
//! (anchors.md §3). Pure: the caller passes the time. Must not send or sleep.

use std::time::{Duration, Instant};

/// Rate-limit state reported by a service (`X-RateLimit-*`, `X-Limit-App-*`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateHint {
    pub remaining: Option<u32>,
    pub reset_after: Option<Duration>,
}

/// One rate limit: `capacity` tokens, refilled continuously at `refill_per_sec`.
#[derive(Debug, Clone)]
struct Limit {
    capacity: f64,
    refill_per_sec: f64,
    tokens: f64,
    updated: Option<Instant>,
}

impl Limit {
    fn refill(&mut self, now: Instant) {
        if let Some(updated) = self.updated {
            let elapsed = now.saturating_duration_since(updated).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.refill_per_sec).min(self.capacity);
        }
        self.updated = Some(match self.updated {
            Some(updated) if updated > now => updated,
            _ => now,
        });
    }

    fn wait_for_one(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.refill_per_sec)
        }
    }
}

/// A token bucket with one or more limits that must all allow a send (Discord: 5 per 2 s and
/// 30 per minute). Pure: the caller passes the time, so it is table-testable and the actor can
/// schedule a timer for exactly the returned wait.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limits: Vec<Limit>,
    blocked_until: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled at `refill_per_sec` (clamped to sane minima).
    pub fn new(capacity: u32, refill_per_sec: f64) -> TokenBucket {
        TokenBucket {
            limits: vec![Self::limit(capacity, refill_per_sec)],
            blocked_until: None,
        }
    }

    /// Adds a further limit that must also allow each send.
    pub fn with_limit(mut self, capacity: u32, refill_per_sec: f64) -> TokenBucket {
        self.limits.push(Self::limit(capacity, refill_per_sec));
        self
    }

    fn limit(capacity: u32, refill_per_sec: f64) -> Limit {
        let capacity = f64::from(capacity.max(1));
        let refill_per_sec = if refill_per_sec.is_finite() && refill_per_sec > 1e-6 {
            refill_per_sec
        } else {
            1e-6
        };
        Limit {
            capacity,
            refill_per_sec,
            tokens: capacity,
            updated: None,
        }
    }

    /// Takes one token from every limit, or says how long to wait before one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if until > now {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        for limit in &mut self.limits {
            limit.refill(now);
        }
        let wait = self
            .limits
            .iter()
            .map(Limit::wait_for_one)
            .max()
            .unwrap_or(Duration::ZERO);
        if wait > Duration::ZERO {
            // Round up so that waiting exactly `wait` is always enough.
            return Err(wait + Duration::from_micros(1));
        }
        for limit in &mut self.limits {
            limit.tokens -= 1.0;
        }
        Ok(())
    }

    /// Corrects the bucket from what the service reported: never more tokens than it says
    /// remain, and no send before its reset when nothing remains.
    pub fn apply_hint(&mut self, hint: &RateHint, now: Instant) {
        if let Some(remaining) = hint.remaining {
            if let Some(first) = self.limits.first_mut() {
                first.refill(now);
                first.tokens = first.tokens.min(f64::from(remaining));
            }
            if remaining == 0 {
                if let Some(reset_after) = hint.reset_after {
                    self.block_for(now, reset_after);
                }
            }
        }
    }

    /// No send before `now + wait` (after a 429 with `retry_after`).
    pub fn block_for(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        match self.blocked_until {
            Some(current) if current >= until => {}
            _ => self.blocked_until = Some(until),
        }
    }
}

/// The bucket a target starts with, from each service's published limits (anchors.md §3).
pub fn default_bucket(service: &str) -> TokenBucket {
    match service {
        // 5 requests per 2 s per webhook, and 30 messages per minute per channel.
        "discord" => TokenBucket::new(5, 2.5).with_limit(30, 0.5),
        // About one message per second per channel.
        "slack" => TokenBucket::new(1, 1.0),
        // One message per second in a chat, 20 per minute in a group.
        "telegram" => TokenBucket::new(1, 1.0).with_limit(20, 20.0 / 60.0),
        // Server defaults: a burst of 60, then one every 5 s.
        "ntfy" => TokenBucket::new(60, 0.2),
        // Monthly quota only, reported in headers; stay polite per second.
        "pushover" => TokenBucket::new(10, 2.0),
        // Provider quotas are daily (Gmail 500/day); bursts become digests upstream.
        "email" => TokenBucket::new(10, 0.5),
        // Self-hosted or local: no published limit, but never a flood.
        _ => TokenBucket::new(100, 50.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_capacity_then_waits_for_refill() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, 2.5);
        for _ in 0..5 {
            assert!(bucket.try_take(start).is_ok());
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert!(
            wait >= Duration::from_millis(400) && wait <= Duration::from_millis(401),
            "{wait:?}"
        );
        assert!(bucket.try_take(start + wait).is_ok());
        assert!(bucket.try_take(start + wait).is_err());
    }

    #[test]
    fn every_limit_must_allow() {
        let start = Instant::now();
        let mut bucket = default_bucket("discord");
        // The first two seconds: the 5-per-2-s limit allows a burst of 5 (plus refill).
        let mut sent_at = Vec::new();
        let mut now = start;
        while now < start + Duration::from_secs(60) {
            match bucket.try_take(now) {
                Ok(()) => sent_at.push(now - start),
                Err(wait) => now += wait,
            }
        }
        let in_first_two_s = sent_at
            .iter()
            .filter(|t| **t < Duration::from_secs(2))
            .count();
        assert!((5..=9).contains(&in_first_two_s), "{in_first_two_s}");
        // Over the minute the 30/min limit rules: 30 at once plus 0.5/s refill.
        assert!((59..=60).contains(&sent_at.len()), "{}", sent_at.len());
    }

    #[test]
    fn hints_cap_tokens_and_block_until_reset() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(5, 2.5);
        bucket.apply_hint(
            &RateHint {
                remaining: Some(1),
                reset_after: Some(Duration::from_secs(2)),
            },
            now,
        );
        assert!(bucket.try_take(now).is_ok());
        assert!(bucket.try_take(now).is_err());

        let mut bucket = TokenBucket::new(5, 2.5);
        bucket.apply_hint(
            &RateHint {
                remaining: Some(0),
                reset_after: Some(Duration::from_millis(1500)),
            },
            now,
        );
        assert_eq!(
            bucket.try_take(now).unwrap_err(),
            Duration::from_millis(1500)
        );
        // After the reset the refilled tokens (1.5 s * 2.5/s) allow sends again.
        assert!(bucket.try_take(now + Duration::from_millis(1500)).is_ok());
    }

    #[test]
    fn block_for_waits_exactly_and_never_shortens() {
        let now = Instant::now();
        let mut bucket = default_bucket("webhook");
        bucket.block_for(now, Duration::from_secs(3));
        bucket.block_for(now, Duration::from_secs(1));
        assert_eq!(bucket.try_take(now).unwrap_err(), Duration::from_secs(3));
        assert!(bucket.try_take(now + Duration::from_secs(3)).is_ok());
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_mint_tokens() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1, 1.0);
        assert!(bucket.try_take(now + Duration::from_secs(5)).is_ok());
        assert!(bucket.try_take(now).is_err());
    }
}
