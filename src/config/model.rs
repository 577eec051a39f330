//! The validated configuration as the rest of the daemon sees it. Parsing, file discovery and error
//! reporting live beside this file; these types are plain data and hold secrets only as [`Secret`].

use crate::event::{EventKind, Severity};
use crate::util::Secret;
use chrono::NaiveTime;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

pub const DEFAULT_CONFIG_DIR: &str = "/etc/vast-supervisor";
pub const MAIN_FILE_NAME: &str = "vast-supervisor.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vast-supervisor";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vast-supervisor/control.sock";
pub const DEFAULT_API_URL: &str = "https://console.vast.ai";
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Global settings from the main file (all optional there).
#[derive(Debug, Clone, PartialEq)]
pub struct Globals {
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
    pub http_listen: Option<SocketAddr>,
    /// Serve the web dashboard and its JSON API on `http_listen` (SPEC §13).
    pub dashboard: bool,
    /// `http_basic_auth_file`: when set, everything on `http_listen` but `/health` needs it.
    pub http_basic_auth: Option<BasicAuth>,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            http_listen: None,
            dashboard: true,
            http_basic_auth: None,
        }
    }
}

/// The one user and password of `http_basic_auth_file` (a `user:password` line).
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub user: String,
    pub password: Secret,
}

impl BasicAuth {
    /// Reads `user:password` (the file's text, surrounding whitespace already trimmed); the
    /// error never repeats the text.
    pub fn parse(text: &str) -> Result<BasicAuth, &'static str> {
        match text.split_once(':') {
            Some((user, password))
                if !user.is_empty() && !password.is_empty() && !text.contains('\n') =>
            {
                Ok(BasicAuth {
                    user: user.to_string(),
                    password: Secret::new(password),
                })
            }
            _ => Err("must hold one line user:password, both non-empty"),
        }
    }
}

/// Where a table was defined, for messages such as "defined at conf.d/10-alice.toml:3".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

/// What an account watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub machines: bool,
    pub instances: bool,
}

/// How often an account that rents reads its credit for display (credit and runway in status
/// and the dashboard) when no rule needs it on every poll.
pub const CREDIT_SHOWN_EVERY: Duration = Duration::from_secs(5 * 60);

/// One Vast account (`[[account]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    pub name: String,
    pub api_key: Secret,
    pub watch: Watch,
    /// `None`: every machine of the account.
    pub machines: Option<BTreeSet<u64>>,
    pub poll_interval: Duration,
    pub api_url: Url,
    pub offline_grace: Duration,
    pub error_repeat: Duration,
    /// Regexes (already validated) matched against `error_description`; a match is noise.
    pub ignore_errors: Vec<String>,
    pub stale_after_polls: u32,
    pub stuck_after: Duration,
    pub credit_low_below: Option<f64>,
    pub earnings_digest_at: Option<NaiveTime>,
    pub actions_enabled: bool,
    pub log_rules: Vec<LogRule>,
    pub origin: Origin,
}

impl AccountConfig {
    /// An account with every default, for tests and the demo.
    pub fn with_defaults(name: &str, api_key: &str, api_url: Url) -> AccountConfig {
        AccountConfig {
            name: name.to_string(),
            api_key: Secret::new(api_key),
            watch: Watch {
                machines: true,
                instances: false,
            },
            machines: None,
            poll_interval: Duration::from_secs(30),
            api_url,
            offline_grace: Duration::from_secs(120),
            error_repeat: Duration::from_secs(6 * 3600),
            ignore_errors: Vec::new(),
            stale_after_polls: 3,
            stuck_after: Duration::from_secs(15 * 60),
            credit_low_below: None,
            earnings_digest_at: None,
            actions_enabled: false,
            log_rules: Vec::new(),
            origin: Origin::default(),
        }
    }

    /// Whether a rule of this account needs the credit, which is then read on every poll (it is
    /// one cheap request). Every key that judges the credit belongs here.
    pub fn needs_credit(&self) -> bool {
        self.credit_low_below.is_some()
    }

    /// The one credit cadence rule: whether a poll reads the credit, given how long ago it was
    /// last read (`None`: not yet). Every poll when a rule needs it ([`Self::needs_credit`]);
    /// otherwise, on an account that watches instances (a renter), every
    /// [`CREDIT_SHOWN_EVERY`] for status and the dashboard; never on a host-only account.
    pub fn credit_due(&self, since_last_read: Option<Duration>) -> bool {
        self.needs_credit()
            || (self.watch.instances && since_last_read.is_none_or(|d| d >= CREDIT_SHOWN_EVERY))
    }
}

/// Selects instances for a log rule: an instance id or a label glob (`"label:train-*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceSelector {
    Id(u64),
    LabelGlob(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAction {
    Stop,
    Destroy,
}

/// `[[account.log_rule]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRule {
    pub name: String,
    pub instances: Vec<InstanceSelector>,
    /// Validated regex source.
    pub regex: String,
    pub action: Option<LogAction>,
}

/// Which events a target receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(pub BTreeSet<EventKind>);

impl EventFilter {
    pub fn all() -> EventFilter {
        EventFilter(EventKind::ALL.iter().copied().collect())
    }

    pub fn contains(&self, kind: EventKind) -> bool {
        self.0.contains(&kind)
    }
}

/// How an email target secures its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailSecurity {
    /// `mailto://`: plain SMTP, upgraded with STARTTLS when the server offers it.
    Opportunistic,
    /// `mailtos://` on a port other than 465: STARTTLS required.
    StartTls,
    /// `mailtos://` on port 465: TLS from the first byte.
    ImplicitTls,
}

/// A parsed target URL (SPEC §4). Secret parts are [`Secret`]s; `endpoint` is the optional
/// `?endpoint=` base URL override that every HTTP target accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetUrl {
    Discord {
        webhook_id: String,
        token: Secret,
        endpoint: Option<Url>,
    },
    Slack {
        /// "A/B/C", the incoming webhook path.
        tokens: Secret,
        endpoint: Option<Url>,
    },
    Telegram {
        bot_token: Secret,
        chat_id: String,
        endpoint: Option<Url>,
    },
    Ntfy {
        tls: bool,
        host: String,
        port: Option<u16>,
        topic: String,
        /// `user:pass@` or `token@`.
        auth: Option<Secret>,
        endpoint: Option<Url>,
    },
    Pushover {
        user_key: Secret,
        app_token: Secret,
        endpoint: Option<Url>,
    },
    Gotify {
        tls: bool,
        host: String,
        port: Option<u16>,
        path: String,
        token: Secret,
        endpoint: Option<Url>,
    },
    Email {
        security: EmailSecurity,
        host: String,
        port: u16,
        user: Option<String>,
        password: Option<Secret>,
        from: String,
        to: Vec<String>,
    },
    Webhook {
        tls: bool,
        host: String,
        port: Option<u16>,
        path: String,
        basic_auth: Option<(String, Secret)>,
        endpoint: Option<Url>,
    },
    File {
        path: PathBuf,
    },
    Console,
}

impl TargetUrl {
    /// The service name used in logs, metrics labels and status ("discord", "email", ...).
    pub fn service(&self) -> &'static str {
        match self {
            TargetUrl::Discord { .. } => "discord",
            TargetUrl::Slack { .. } => "slack",
            TargetUrl::Telegram { .. } => "telegram",
            TargetUrl::Ntfy { .. } => "ntfy",
            TargetUrl::Pushover { .. } => "pushover",
            TargetUrl::Gotify { .. } => "gotify",
            TargetUrl::Email { .. } => "email",
            TargetUrl::Webhook { .. } => "webhook",
            TargetUrl::File { .. } => "file",
            TargetUrl::Console => "console",
        }
    }
}

/// CA certificates an email target trusts in addition to the built-in roots (`tls_ca_file`):
/// read and checked when the configuration loads, so a bad file is a configuration error and a
/// changed file is a changed target on reload.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// The PEM file, as resolved (relative paths are relative to the configuration file).
    pub path: PathBuf,
    /// The DER encoding of each certificate, in file order; never empty.
    pub certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// One notification target (`[[target]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    pub url: TargetUrl,
    pub events: EventFilter,
    /// `None`: every account.
    pub accounts: Option<BTreeSet<String>>,
    pub min_severity: Severity,
    pub mention: Option<String>,
    pub batch_window: Duration,
    pub max_age: Duration,
    /// Generic webhook: POST up to this many events as one JSON array (1 = one object per POST).
    pub batch_size: usize,
    pub bearer_token: Option<Secret>,
    pub headers: BTreeMap<String, String>,
    /// Email: extra CA certificates to trust for the SMTP server's TLS certificate.
    pub tls_ca: Option<CaBundle>,
    pub origin: Origin,
}

impl TargetConfig {
    /// A target with every default, for tests and the demo.
    pub fn with_defaults(name: &str, url: TargetUrl) -> TargetConfig {
        TargetConfig {
            name: name.to_string(),
            url,
            events: EventFilter::all(),
            accounts: None,
            min_severity: Severity::Info,
            mention: None,
            batch_window: Duration::ZERO,
            max_age: Duration::from_secs(24 * 3600),
            batch_size: 1,
            bearer_token: None,
            headers: BTreeMap::new(),
            tls_ca: None,
            origin: Origin::default(),
        }
    }

    /// Whether an event of this kind, severity and account goes to this target.
    pub fn wants(&self, kind: EventKind, severity: Severity, account: Option<&str>) -> bool {
        if !self.events.contains(kind) || severity < self.min_severity {
            return false;
        }
        match (&self.accounts, account) {
            (Some(list), Some(a)) => list.contains(a),
            // Supervisor events have no account and go to every target that wants the kind.
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_cadence_follows_the_rules_and_the_role() {
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        let mut host = AccountConfig::with_defaults("h", "k", url);
        let minute = Some(Duration::from_secs(60));
        assert!(!host.credit_due(None), "a host-only account never reads it");
        host.credit_low_below = Some(5.0);
        assert!(host.credit_due(minute), "a credit rule reads it every poll");
        let mut renter = host.clone();
        renter.credit_low_below = None;
        renter.watch.instances = true;
        assert!(renter.credit_due(None));
        assert!(!renter.credit_due(minute));
        assert!(renter.credit_due(Some(CREDIT_SHOWN_EVERY)));
    }
}
