//! The services' published rate limits, enforced per webhook, chat or topic when a test asks
//! (`enforce_rate_limits`). A token bucket of its own, kept apart from the client's so the fake is
//! an independent check of it. Must not answer requests.

use super::{FakeService, Incoming};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A token bucket for `enforce_rate_limits`, kept apart from the client's own implementation
/// so the fake is an independent check of it.
pub(super) struct Limiter {
    buckets: Vec<(f64, f64, f64, Instant)>, // capacity, refill per second, tokens, updated
}

impl Limiter {
    pub(super) fn new(limits: &[(f64, f64)], now: Instant) -> Limiter {
        Limiter {
            buckets: limits.iter().map(|&(c, r)| (c, r, c, now)).collect(),
        }
    }

    /// Takes a token from each bucket, or returns how long until one is available.
    pub(super) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        // 5% tolerance, like real services, so a client pacing exactly is not refused over
        // a millisecond of network jitter.
        let mut wait = Duration::ZERO;
        for bucket in &mut self.buckets {
            let elapsed = now.saturating_duration_since(bucket.3).as_secs_f64();
            bucket.2 = (bucket.2 + elapsed * bucket.1 * 1.05).min(bucket.0);
            bucket.3 = now;
            if bucket.2 < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - bucket.2) / bucket.1));
            }
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        for bucket in &mut self.buckets {
            bucket.2 -= 1.0;
        }
        Ok(())
    }
}

pub(super) fn published_limits(service: FakeService) -> &'static [(f64, f64)] {
    match service {
        FakeService::Discord => &[(5.0, 2.5), (30.0, 0.5)],
        FakeService::Slack => &[(1.0, 1.0)],
        FakeService::Telegram => &[(1.0, 1.0), (20.0, 20.0 / 60.0)],
        FakeService::Ntfy => &[(60.0, 0.2)],
        FakeService::Pushover | FakeService::Gotify | FakeService::Webhook => &[],
    }
}

/// Which requests share a limit: the webhook for Discord and Slack, the chat for Telegram,
/// the topic for ntfy.
pub(super) fn limit_key(incoming: &Incoming) -> Option<String> {
    match incoming.service {
        FakeService::Telegram => {
            let chat = serde_json::from_str::<Value>(&incoming.body)
                .ok()
                .map(|v| v["chat_id"].to_string())
                .unwrap_or_default();
            Some(format!("telegram:{chat}"))
        }
        FakeService::Discord | FakeService::Slack | FakeService::Ntfy => {
            Some(incoming.path.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_then_recovers() {
        let now = Instant::now();
        let mut limiter = Limiter::new(&[(2.0, 1.0)], now);
        assert!(limiter.take(now).is_ok());
        assert!(limiter.take(now).is_ok());
        let wait = limiter.take(now).unwrap_err();
        assert!(limiter.take(now + wait).is_ok());
    }
}
