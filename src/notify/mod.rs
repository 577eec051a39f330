//! Notification targets: one renderer and one sender per service (SPEC §6).
//!
//! Owns how an [`Event`] (or a batch of them, rendered as one digest) becomes a request to Discord,
//! Slack, Telegram, ntfy, Pushover, Gotify, an SMTP server, a generic JSON webhook, a JSONL file or
//! the console, how each service's answer is classified ([`SendError`]: rate limited, transient,
//! permanent for the target, or rejected for this one message only), and the per-service rate
//! defaults ([`TokenBucket`], [`default_bucket`]). Every service module has a pure `render` (golden
//! tested) and an async send.
//!
//! It does not queue, retry, schedule or disable anything: the notifier actor does that with what
//! [`Notifier::send`] returns. Secrets from target URLs never leave this module in errors, logs or
//! `Debug` output: every error detail passes through the redactor (`redact.rs`).

pub mod console;
pub mod discord;
pub mod email;
pub mod file;
pub mod gotify;
mod http;
pub mod ntfy;
pub mod pushover;
pub(crate) mod redact;
pub mod render;
pub mod slack;
pub mod telegram;
pub mod webhook;

use crate::config::model::{TargetConfig, TargetUrl};
use crate::event::{Event, EventKind, Subject};
use redact::Redactor;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Default deadline of one HTTP request or SMTP command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a send failed, classified for the notifier actor's retry policy.
/// The longest wait a service's `Retry-After` (or its body's `retry_after`) can impose; a longer
/// one is cut to this (a quota reset announced a day ahead is retried hourly).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The service asked us to wait (HTTP 429, quota): wait exactly `retry_after` (at most
    /// [`MAX_RETRY_AFTER`]), then resend.
    #[error("rate limited: retry after {:.3}s", retry_after.as_secs_f64())]
    RateLimited { retry_after: Duration },
    /// Worth retrying with backoff. `reason`: "network", "timeout", "server", "smtp_transient", "io".
    #[error("transient failure ({reason}): {detail}")]
    Transient {
        reason: &'static str,
        detail: String,
    },
    /// Retrying cannot help until the configuration changes. `reason`: "not_found", "auth",
    /// "client", "smtp_permanent".
    #[error("permanent failure ({reason}): {detail}")]
    Permanent {
        reason: &'static str,
        detail: String,
    },
    /// The service refused this one message and said why in a way that concerns only the
    /// message (HTTP 413, Discord "Invalid Form Body", Telegram "message is too long", SMTP
    /// 552 "message too big"): the target itself is fine, resending the same message cannot
    /// help, and the next message may well go through. `reason`: "too_large", "invalid".
    #[error("message rejected ({reason}): {detail}")]
    Rejected {
        reason: &'static str,
        detail: String,
    },
}

impl SendError {
    /// The metrics/status reason: "rate_limited" or the transient/permanent reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::RateLimited { .. } => "rate_limited",
            SendError::Transient { reason, .. }
            | SendError::Permanent { reason, .. }
            | SendError::Rejected { reason, .. } => reason,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent { .. })
    }

    /// Only this message is undeliverable; the target keeps working.
    pub fn is_rejected(&self) -> bool {
        matches!(self, SendError::Rejected { .. })
    }
}

/// What a successful send did.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// Requests (or mails, or lines) the service accepted for this call.
    pub messages: usize,
    /// A short human summary of the last answer, e.g. "HTTP 204" or "250 OK queued".
    pub info: String,
    /// Rate information the service reported with its last answer.
    pub rate: Option<RateHint>,
}

/// Rate-limit state reported by a service (`X-RateLimit-*`, `X-Limit-App-*`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateHint {
    pub remaining: Option<u32>,
    pub reset_after: Option<Duration>,
}

/// Resumes a multi-message send where it failed, so a retry does not repeat the parts the
/// service already accepted (a Telegram message split in three, webhook chunks).
#[derive(Debug, Clone, Copy)]
struct Progress {
    batch_key: u64,
    sent: usize,
}

/// The per-service state a [`Notifier`] dispatches to.
enum Service {
    Discord(discord::Discord),
    Slack(slack::Slack),
    Telegram(telegram::Telegram),
    Ntfy(ntfy::Ntfy),
    Pushover(pushover::Pushover),
    Gotify(gotify::Gotify),
    Email(email::Email),
    Webhook(webhook::Webhook),
    File(file::File),
    Console(console::Console),
}

/// Everything a service's send needs besides its own state.
pub(crate) struct SendContext<'a> {
    pub redactor: &'a Redactor,
    pub timeout: Duration,
    /// Messages of this batch the service accepted before; the send skips them and counts on.
    pub sent: &'a mut usize,
}

impl SendContext<'_> {
    pub fn transient(&self, reason: &'static str, detail: impl AsRef<str>) -> SendError {
        SendError::Transient {
            reason,
            detail: self.redactor.clean(detail.as_ref()),
        }
    }

    pub fn permanent(&self, reason: &'static str, detail: impl AsRef<str>) -> SendError {
        SendError::Permanent {
            reason,
            detail: self.redactor.clean(detail.as_ref()),
        }
    }

    pub fn rejected(&self, reason: &'static str, detail: impl AsRef<str>) -> SendError {
        SendError::Rejected {
            reason,
            detail: self.redactor.clean(detail.as_ref()),
        }
    }
}

/// The sender for one configured target. Built once per target; `send` takes `&mut self`
/// because some services learn while sending (Telegram chat migration, partial progress).
pub struct Notifier {
    target: String,
    service: Service,
    redactor: Redactor,
    /// Where messages go, with every secret replaced by `***`; safe for logs and errors.
    display: String,
    timeout: Duration,
    progress: Option<Progress>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("target", &self.target)
            .field("service", &self.service())
            .field("destination", &self.display)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Builds the sender for `target`. The error names the target and never contains a secret.
    pub fn new(target: &TargetConfig, http: reqwest::Client) -> Result<Notifier, String> {
        let mut redactor = Redactor::default();
        let mention = target.mention.clone();
        let fail = |e: String| format!("target \"{}\": {e}", target.name);
        let (service, display) = match &target.url {
            TargetUrl::Discord {
                webhook_id,
                token,
                endpoint,
            } => {
                redactor.add(token.expose());
                let s = discord::Discord::new(webhook_id, token, endpoint.as_ref(), mention, http)
                    .map_err(fail)?;
                let display = s.display();
                (Service::Discord(s), display)
            }
            TargetUrl::Slack { tokens, endpoint } => {
                redactor.add(tokens.expose());
                for part in tokens.expose().split('/') {
                    redactor.add(part);
                }
                let s =
                    slack::Slack::new(tokens, endpoint.as_ref(), mention, http).map_err(fail)?;
                let display = s.display();
                (Service::Slack(s), display)
            }
            TargetUrl::Telegram {
                bot_token,
                chat_id,
                endpoint,
            } => {
                redactor.add(bot_token.expose());
                let s =
                    telegram::Telegram::new(bot_token, chat_id, endpoint.as_ref(), mention, http)
                        .map_err(fail)?;
                let display = s.display();
                (Service::Telegram(s), display)
            }
            TargetUrl::Ntfy {
                tls,
                host,
                port,
                topic,
                auth,
                endpoint,
            } => {
                if let Some(auth) = auth {
                    redactor.add(auth.expose());
                    if let Some((_, password)) = auth.expose().split_once(':') {
                        redactor.add(password);
                    }
                }
                let s = ntfy::Ntfy::new(
                    *tls,
                    host,
                    *port,
                    topic,
                    auth.as_ref(),
                    endpoint.as_ref(),
                    http,
                )
                .map_err(fail)?;
                let display = s.display();
                (Service::Ntfy(s), display)
            }
            TargetUrl::Pushover {
                user_key,
                app_token,
                endpoint,
            } => {
                redactor.add(user_key.expose());
                redactor.add(app_token.expose());
                let s = pushover::Pushover::new(user_key, app_token, endpoint.as_ref(), http)
                    .map_err(fail)?;
                let display = s.display();
                (Service::Pushover(s), display)
            }
            TargetUrl::Gotify {
                tls,
                host,
                port,
                path,
                token,
                endpoint,
            } => {
                redactor.add(token.expose());
                let s =
                    gotify::Gotify::new(*tls, host, *port, path, token, endpoint.as_ref(), http)
                        .map_err(fail)?;
                let display = s.display();
                (Service::Gotify(s), display)
            }
            TargetUrl::Email {
                security,
                host,
                port,
                user,
                password,
                from,
                to,
            } => {
                if let Some(password) = password {
                    redactor.add(password.expose());
                }
                let s = email::Email::new(email::EmailOptions {
                    security: *security,
                    host,
                    port: *port,
                    user: user.as_deref(),
                    password: password.as_ref(),
                    from,
                    to,
                    extra_roots: target
                        .tls_ca
                        .as_ref()
                        .map_or(&[], |ca| ca.certificates.as_slice()),
                })
                .map_err(fail)?;
                let display = s.display();
                (Service::Email(s), display)
            }
            TargetUrl::Webhook {
                tls,
                host,
                port,
                path,
                basic_auth,
                endpoint,
            } => {
                if let Some((_, password)) = basic_auth {
                    redactor.add(password.expose());
                }
                if let Some(bearer) = &target.bearer_token {
                    redactor.add(bearer.expose());
                }
                // Custom headers usually carry API keys; treat every value as secret.
                for value in target.headers.values() {
                    redactor.add(value);
                }
                // Webhook paths often embed a secret id (Home Assistant, Zapier, n8n); such
                // ids are long, while short segments ("api", "hooks") are ordinary words.
                for segment in path.split('/').filter(|s| s.len() >= 12) {
                    redactor.add(segment);
                }
                let s = webhook::Webhook::new(
                    webhook::WebhookOptions {
                        tls: *tls,
                        host,
                        port: *port,
                        path,
                        basic_auth: basic_auth.as_ref(),
                        endpoint: endpoint.as_ref(),
                        bearer_token: target.bearer_token.as_ref(),
                        headers: &target.headers,
                        batch_size: target.batch_size,
                    },
                    http,
                )
                .map_err(fail)?;
                let display = s.display();
                (Service::Webhook(s), display)
            }
            TargetUrl::File { path } => {
                let s = file::File::new(path);
                let display = s.display();
                (Service::File(s), display)
            }
            TargetUrl::Console => (
                Service::Console(console::Console::stdout()),
                "console://".to_string(),
            ),
        };
        Ok(Notifier {
            target: target.name.clone(),
            service,
            redactor,
            display,
            timeout: DEFAULT_TIMEOUT,
            progress: None,
        })
    }

    /// A console notifier that writes into `buffer` instead of stdout, for tests and for
    /// embedding the console renderer elsewhere.
    pub fn console_into(
        target_name: &str,
        buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    ) -> Notifier {
        Notifier {
            target: target_name.to_string(),
            service: Service::Console(console::Console::buffer(buffer)),
            redactor: Redactor::default(),
            display: "console://".to_string(),
            timeout: DEFAULT_TIMEOUT,
            progress: None,
        }
    }

    /// Overrides the per-request (HTTP) or per-command (SMTP) deadline; default 30 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Notifier {
        self.timeout = timeout;
        if let Service::Email(email) = &mut self.service {
            email.set_timeout(timeout);
        }
        self
    }

    /// "discord", "slack", ... as in [`TargetUrl::service`].
    pub fn service(&self) -> &'static str {
        match &self.service {
            Service::Discord(_) => "discord",
            Service::Slack(_) => "slack",
            Service::Telegram(_) => "telegram",
            Service::Ntfy(_) => "ntfy",
            Service::Pushover(_) => "pushover",
            Service::Gotify(_) => "gotify",
            Service::Email(_) => "email",
            Service::Webhook(_) => "webhook",
            Service::File(_) => "file",
            Service::Console(_) => "console",
        }
    }

    /// The target's name from the configuration.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Where messages go, secrets replaced by `***`.
    pub fn destination(&self) -> &str {
        &self.display
    }

    /// Delivers `events`: one event normally; several are a batch (one digest message for chat
    /// and push services, JSON arrays of `batch_size` for the webhook, one line per event for the
    /// file target, one mail for email). After a failure, calling again with the same events
    /// resumes after the parts the service already accepted.
    pub async fn send(&mut self, events: &[Event]) -> Result<Delivered, SendError> {
        if events.is_empty() {
            return Ok(Delivered {
                messages: 0,
                info: "nothing to send".to_string(),
                rate: None,
            });
        }
        let batch_key = batch_key(events);
        let mut sent = match self.progress {
            Some(p) if p.batch_key == batch_key => p.sent,
            _ => 0,
        };
        let already = sent;
        let mut ctx = SendContext {
            redactor: &self.redactor,
            timeout: self.timeout,
            sent: &mut sent,
        };
        let result = match &mut self.service {
            Service::Discord(s) => s.send(&mut ctx, events).await,
            Service::Slack(s) => s.send(&mut ctx, events).await,
            Service::Telegram(s) => s.send(&mut ctx, events).await,
            Service::Ntfy(s) => s.send(&mut ctx, events).await,
            Service::Pushover(s) => s.send(&mut ctx, events).await,
            Service::Gotify(s) => s.send(&mut ctx, events).await,
            Service::Email(s) => s.send(&mut ctx, events).await,
            Service::Webhook(s) => s.send(&mut ctx, events).await,
            Service::File(s) => s.send(&mut ctx, events).await,
            Service::Console(s) => s.send(&mut ctx, events).await,
        };
        match &result {
            Ok(delivered) => {
                self.progress = None;
                tracing::debug!(
                    target_name = %self.target,
                    service = self.service(),
                    events = events.len(),
                    messages = delivered.messages,
                    resumed_after = already,
                    info = %delivered.info,
                    "notification delivered"
                );
            }
            Err(error) => {
                // A rejected message is never resent as it was, so there is nothing to resume.
                self.progress =
                    (sent > 0 && !error.is_rejected()).then_some(Progress { batch_key, sent });
                tracing::debug!(
                    target_name = %self.target,
                    service = self.service(),
                    destination = %self.display,
                    events = events.len(),
                    parts_delivered = sent,
                    %error,
                    "notification failed"
                );
            }
        }
        result
    }

    /// Sends a test message (for `notify-test`): an event of kind `test` (never queued, so no
    /// target filter applies to it) whose `data.test` is true.
    pub async fn send_test(&mut self) -> Result<Delivered, SendError> {
        let now = chrono::Utc::now();
        let event = Event::new(
            format!("test:{}:{}", self.target, now.timestamp_millis()),
            EventKind::Test,
            None,
            Subject::Supervisor,
            now,
            format!("Test notification for target \"{}\"", self.target),
            "If you can read this, vast-supervisor can deliver to this target.",
        )
        .with_data(serde_json::json!({ "test": true }));
        self.send(std::slice::from_ref(&event)).await
    }
}

/// Identifies a batch by its event ids, so a retry of the same batch can resume.
fn batch_key(events: &[Event]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for event in events {
        event.id.hash(&mut hasher);
    }
    hasher.finish()
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

    #[test]
    fn notifier_and_its_send_future_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let target = TargetConfig::with_defaults(
            "t",
            TargetUrl::Slack {
                tokens: crate::util::Secret::new("A/B/C"),
                endpoint: None,
            },
        );
        let mut notifier = Notifier::new(&target, reqwest::Client::new()).unwrap();
        is_send(&notifier);
        let events: Vec<Event> = Vec::new();
        let future = notifier.send(&events);
        is_send(&future);
    }

    #[test]
    fn debug_shows_the_destination_without_secrets() {
        let target = TargetConfig::with_defaults(
            "ops",
            TargetUrl::Discord {
                webhook_id: "42".into(),
                token: crate::util::Secret::new("very-secret-token"),
                endpoint: None,
            },
        );
        let notifier = Notifier::new(&target, reqwest::Client::new()).unwrap();
        let debug = format!("{notifier:?}");
        assert!(
            debug.contains("https://discord.com/api/webhooks/42/***"),
            "{debug}"
        );
        assert!(!debug.contains("very-secret-token"));
        assert_eq!(notifier.service(), "discord");
        assert_eq!(notifier.target(), "ops");
    }

    #[test]
    fn send_error_reasons() {
        assert_eq!(
            SendError::RateLimited {
                retry_after: Duration::from_millis(376)
            }
            .to_string(),
            "rate limited: retry after 0.376s"
        );
        let e = SendError::Permanent {
            reason: "not_found",
            detail: "HTTP 404".into(),
        };
        assert_eq!(e.reason(), "not_found");
        assert!(e.is_permanent());
        let e = SendError::Rejected {
            reason: "too_large",
            detail: "HTTP 413".into(),
        };
        assert_eq!(e.reason(), "too_large");
        assert!(e.is_rejected() && !e.is_permanent());
        assert_eq!(e.to_string(), "message rejected (too_large): HTTP 413");
    }
}
