//! vast-monitor's `config.json` -> what `import` writes (SPEC §14): one account, its targets with
//! their event filters, and the conf.d text. Owns the reading of that file and the mapping of its
//! settings (reference: vast-monitor.md §d, §e); the URLs themselves are `super::apprise`'s.
//!
//! The file holds the API key and the targets' secrets, so the key and every URL are read into
//! [`Secret`]s, and no error built here quotes a value of the file.

use super::apprise;
use super::ImportError;
use crate::config::{redact_url, MIN_POLL_INTERVAL};
use crate::event::EventKind;
use crate::util::Secret;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// vast-monitor's event types (its per-target `events` whitelist).
const MONITOR_EVENTS: &[&str] = &[
    "system",
    "startup",
    "rental_start",
    "rental_end",
    "rental_pause",
    "rental_resume",
    "error",
    "recovery",
];

/// `config.json`, as vast-monitor's pydantic model reads it (unknown keys are ignored there too).
#[derive(Debug, Deserialize)]
pub struct MonitorConfig {
    /// Checked by hand, so a wrong type is reported without quoting the key.
    api_key: Value,
    machine_ids: Vec<u64>,
    check_frequency: u64,
    #[serde(default)]
    apprise: Apprise,
    #[serde(default)]
    log_file: Option<String>,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    notify: Notify,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Apprise {
    /// Each a URL string or a target object; read one by one so one bad entry is reported alone.
    #[serde(default)]
    targets: Vec<Value>,
    #[serde(default)]
    error_mention: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Notify {
    #[serde(default)]
    on_startup_existing: bool,
    #[serde(default = "yes")]
    on_start: bool,
    #[serde(default = "yes")]
    on_shutdown: bool,
    #[serde(default)]
    error_ping_interval_minutes: Option<u64>,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify {
            on_startup_existing: false,
            on_start: true,
            on_shutdown: true,
            error_ping_interval_minutes: None,
        }
    }
}

fn yes() -> bool {
    true
}

impl MonitorConfig {
    /// Reads and parses `path`; errors are `path:line:col: message`.
    pub fn read(path: &Path) -> Result<MonitorConfig, ImportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ImportError::Input(format!("cannot read {}: {e}", path.display())))?;
        let config: MonitorConfig = serde_json::from_str(&text).map_err(|e| {
            // serde_json's message ends in " at line L column C"; the position goes first.
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            ImportError::Input(format!(
                "{}:{}:{}: {message}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        match &config.api_key {
            Value::String(key) if !key.trim().is_empty() => Ok(config),
            Value::String(_) => Err(ImportError::Input(format!(
                "{}: api_key is empty",
                path.display()
            ))),
            _ => Err(ImportError::Input(format!(
                "{}: api_key must be a string",
                path.display()
            ))),
        }
    }

    pub fn api_key(&self) -> Secret {
        Secret::new(self.api_key.as_str().unwrap_or_default().trim())
    }

    pub fn machine_ids(&self) -> &[u64] {
        &self.machine_ids
    }
}

/// The account `import` writes.
#[derive(Debug, Clone)]
pub struct AccountPlan {
    pub name: String,
    pub machines: Vec<u64>,
    pub poll_interval: Duration,
}

/// One target `import` writes.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    pub name: String,
    /// Its name in vast-monitor.
    pub source: String,
    pub url: Secret,
    /// `None`: every event.
    pub events: Option<Vec<EventKind>>,
    pub mention: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub bearer: Option<Secret>,
    pub notes: Vec<String>,
}

/// An item of the vast-monitor configuration that was not converted, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub item: String,
    pub reason: String,
}

/// Everything `import` derives from `config.json`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub account: AccountPlan,
    pub targets: Vec<TargetPlan>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
}

/// Maps the configuration. `taken` holds the target names already used in the destination
/// directory: a converted target whose name is taken gets the account's name in front.
pub fn plan(config: &MonitorConfig, account: &str, taken: &BTreeSet<String>) -> Plan {
    let mut notes = Vec::new();
    let mut skipped = Vec::new();
    let mut machines: Vec<u64> = config.machine_ids.clone();
    machines.sort_unstable();
    machines.dedup();
    if machines.is_empty() {
        notes.push("machine_ids is empty: every machine of the account is watched".into());
    }
    let mut poll_interval = Duration::from_secs(config.check_frequency);
    if poll_interval < MIN_POLL_INTERVAL {
        notes.push(format!(
            "check_frequency {} s is below vast-supervisor's minimum: poll_interval = \"{}s\"",
            config.check_frequency,
            MIN_POLL_INTERVAL.as_secs()
        ));
        poll_interval = MIN_POLL_INTERVAL;
    }
    let notify = &config.notify;
    let mut switched_off: Vec<EventKind> = Vec::new();
    for (on, kind, switch) in [
        (
            notify.on_start,
            EventKind::SupervisorStart,
            "notify.on_start",
        ),
        (
            notify.on_shutdown,
            EventKind::SupervisorStop,
            "notify.on_shutdown",
        ),
        (
            notify.on_startup_existing,
            EventKind::StartupSummary,
            "notify.on_startup_existing",
        ),
    ] {
        if !on {
            switched_off.push(kind);
            notes.push(format!("{switch} is off: no target receives {kind}"));
        }
    }
    if let Some(minutes) = notify.error_ping_interval_minutes {
        notes.push(format!(
            "notify.error_ping_interval_minutes ({minutes}) has no equivalent: vast-supervisor sends \
             machine_error once per error and again every error_repeat (default 6h) while it persists"
        ));
    }
    if config.log_file.is_some() {
        notes.push(
            "log_file has no equivalent: logs go to stderr (the journal under systemd)".into(),
        );
    }
    if config.debug {
        notes.push("debug has no equivalent in the configuration: run with -v".into());
    }
    for key in config.unknown.keys() {
        notes.push(format!(
            "unknown key {} ignored, as vast-monitor does",
            label(key)
        ));
    }

    let mut used: BTreeSet<String> = taken.clone();
    let mut targets = Vec::new();
    let mut mentions = false;
    for (index, entry) in config.apprise.targets.iter().enumerate() {
        match target(entry, index, config, &switched_off) {
            Err(skip) => skipped.push(skip),
            Ok(mut converted) => {
                mentions |= converted.iter().any(|t| t.mention.is_some());
                for t in &mut converted {
                    t.name = unique_name(&t.name, account, &mut used);
                }
                targets.extend(converted);
            }
        }
    }
    if mentions {
        notes.push(
            "mentions go with every warning and critical event (vast-monitor: errors only)".into(),
        );
    }
    if config.apprise.targets.is_empty() {
        notes.push("vast-monitor had no notification target".into());
    }
    Plan {
        account: AccountPlan {
            name: account.to_string(),
            machines,
            poll_interval,
        },
        targets,
        skipped,
        notes,
    }
}

/// A key or name, quoted, when it is plain enough to repeat.
fn label(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
    {
        format!("\"{s}\"")
    } else {
        "(unnamed)".into()
    }
}

/// One entry of `apprise.targets` -> our targets (several when its URL names several chats).
fn target(
    entry: &Value,
    index: usize,
    config: &MonitorConfig,
    switched_off: &[EventKind],
) -> Result<Vec<TargetPlan>, Skipped> {
    let position = format!("target #{}", index + 1);
    let (url, object) = match entry {
        Value::String(url) => (url.as_str(), None),
        Value::Object(o) => match o.get("url") {
            Some(Value::String(url)) => (url.as_str(), Some(o)),
            _ => {
                return Err(Skipped {
                    item: position,
                    reason: "it has no url string".into(),
                })
            }
        },
        _ => {
            return Err(Skipped {
                item: position,
                reason: "neither a URL string nor a target object".into(),
            })
        }
    };
    let field = |key: &str| object.and_then(|o| o.get(key));
    let text = |key: &str| field(key).and_then(Value::as_str).map(str::to_string);
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric()) && s.len() <= 12)
        .unwrap_or_else(|| "target".into());
    let service = text("service");
    let source = text("name").unwrap_or_else(|| {
        format!(
            "{}-{}",
            service.clone().unwrap_or(scheme.clone()),
            index + 1
        )
    });
    let item = format!("target {}", label(&source));
    if field("enabled").and_then(Value::as_bool) == Some(false) {
        return Err(Skipped {
            item,
            reason: "disabled in vast-monitor".into(),
        });
    }
    let converted = apprise::convert(url).map_err(|reason| Skipped {
        item: item.clone(),
        reason,
    })?;
    let mut notes = converted.notes;
    let (events, event_notes) = event_filter(field("events"), switched_off);
    notes.extend(event_notes);
    if field("tags").is_some() {
        notes.push("tags are dropped (targets are chosen by events and accounts)".into());
    }
    let is_discord = converted.urls.iter().any(|u| {
        let u = u.expose();
        u.starts_with("discord://") || u.contains("discord.com/") || u.contains("discordapp.com/")
    });
    let is_email = url.starts_with("mailto") || url.starts_with("mailtos");
    // vast-monitor chose its Discord and email layouts by `service` (or the scheme).
    if let Some(service) = &service {
        let service_lower = service.to_ascii_lowercase();
        let layout_differs = (service_lower.starts_with("discord") && !is_discord)
            || ((service_lower.starts_with("email") || service_lower.starts_with("mail"))
                && !is_email);
        if layout_differs {
            notes.push(format!(
                "service {} chose vast-monitor's message layout; vast-supervisor formats by the URL's service",
                label(service)
            ));
        }
    }
    let mention = text("mention").or_else(|| {
        let discord = is_discord || service.as_deref() == Some("discord");
        config.apprise.error_mention.clone().filter(|_| discord)
    });
    let mention = mention
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .map(|m| {
            if is_discord && m.chars().all(|c| c.is_ascii_digit()) {
                format!("<@{m}>")
            } else {
                m
            }
        });
    let base = sanitize(&source).unwrap_or_else(|| format!("{scheme}-{}", index + 1));
    let count = converted.urls.len();
    Ok(converted
        .urls
        .into_iter()
        .enumerate()
        .map(|(i, url)| TargetPlan {
            name: if i == 0 {
                base.clone()
            } else {
                format!("{base}-{}", i + 1)
            },
            source: source.clone(),
            url,
            events: events.clone(),
            mention: mention.clone(),
            headers: converted.headers.clone(),
            bearer: converted.bearer.clone(),
            notes: if i + 1 == count {
                notes.clone()
            } else {
                Vec::new()
            },
        })
        .collect())
}

/// The event kinds a target receives: its vast-monitor whitelist mapped to ours (`None` = all),
/// minus what the `notify` switches turn off, with notes on what was read differently.
fn event_filter(
    events: Option<&Value>,
    switched_off: &[EventKind],
) -> (Option<Vec<EventKind>>, Vec<String>) {
    let mut notes = Vec::new();
    let names: Vec<&str> = match events {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let wildcard = names.iter().any(|n| matches!(*n, "all" | "*" | "any"));
    let known: BTreeSet<&str> = names
        .iter()
        .copied()
        .filter(|n| MONITOR_EVENTS.contains(n))
        .collect();
    let unknown = names.len()
        - known.len()
        - names
            .iter()
            .filter(|n| matches!(**n, "all" | "*" | "any"))
            .count();
    if unknown > 0 && !wildcard {
        notes.push(format!(
            "{unknown} unknown event name(s) dropped, as vast-monitor does"
        ));
    }
    let everything =
        names.is_empty() || wildcard || known.is_empty() || known.len() == MONITOR_EVENTS.len();
    let mut kinds: BTreeSet<EventKind> = if everything {
        if !names.is_empty() && !wildcard && !known.is_empty() {
            notes.push(
                "every vast-monitor event type is listed: the target receives every event".into(),
            );
        }
        EventKind::ALL.iter().copied().collect()
    } else {
        let mut kinds: BTreeSet<EventKind> = known
            .iter()
            .flat_map(|n| EventKind::expand_filter_name(n).unwrap_or_default())
            .collect();
        // vast-monitor reported a preempted interruptible as an end (and a start).
        if kinds.contains(&EventKind::RentalEnd) {
            kinds.insert(EventKind::RentalPreempt);
        }
        kinds
    };
    for kind in switched_off {
        kinds.remove(kind);
    }
    if kinds.len() == EventKind::ALL.len() {
        return (None, notes);
    }
    let ordered = EventKind::ALL
        .iter()
        .copied()
        .filter(|k| kinds.contains(k))
        .collect();
    (Some(ordered), notes)
}

/// A vast-monitor name as one of ours: letters, digits, `_`, `.`, `-`.
fn sanitize(name: &str) -> Option<String> {
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-').to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn unique_name(name: &str, account: &str, used: &mut BTreeSet<String>) -> String {
    let mut candidate = name.to_string();
    if used.contains(&candidate) {
        candidate = format!("{account}-{name}");
    }
    let base = candidate.clone();
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}

/// Where `import` puts secrets, relative to the destination directory.
pub fn key_file(account: &str) -> String {
    format!("keys/{account}")
}

pub fn url_file(target: &str) -> String {
    format!("secrets/{target}.url")
}

pub fn bearer_file(target: &str) -> String {
    format!("secrets/{target}.bearer")
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The conf.d file for the plan. Secrets are referenced by file, relative to `conf.d/`.
pub fn render(plan: &Plan, source: &Path) -> String {
    let mut t = String::new();
    let a = &plan.account;
    let _ = writeln!(
        t,
        "# Converted from vast-monitor's {} by `vast-supervisor import vast-monitor`.",
        source.display()
    );
    let _ = writeln!(
        t,
        "# The API key and the target URLs are in ../keys/ and ../secrets/ (mode 0600): the daemon's\n\
         # user must be able to read them. Reference: vast-supervisor.toml(5).\n"
    );
    let _ = writeln!(t, "[[account]]");
    let _ = writeln!(t, "name = {}", quoted(&a.name));
    let _ = writeln!(
        t,
        "api_key_file = {}",
        quoted(&format!("../{}", key_file(&a.name)))
    );
    let _ = writeln!(t, "watch = [\"machines\"]");
    if !a.machines.is_empty() {
        let ids: Vec<String> = a.machines.iter().map(u64::to_string).collect();
        let _ = writeln!(t, "machines = [{}]", ids.join(", "));
    }
    let _ = writeln!(
        t,
        "poll_interval = {}",
        quoted(&format!("{}s", a.poll_interval.as_secs()))
    );
    for target in &plan.targets {
        let _ = writeln!(
            t,
            "\n# vast-monitor target {}: {}",
            label(&target.source),
            redact_url(target.url.expose())
        );
        for note in &target.notes {
            let _ = writeln!(t, "# - {note}");
        }
        let _ = writeln!(t, "[[target]]");
        let _ = writeln!(t, "name = {}", quoted(&target.name));
        let _ = writeln!(
            t,
            "url_file = {}",
            quoted(&format!("../{}", url_file(&target.name)))
        );
        let _ = writeln!(t, "accounts = [{}]", quoted(&a.name));
        if let Some(events) = &target.events {
            let names: Vec<String> = events.iter().map(|k| quoted(k.as_str())).collect();
            let _ = writeln!(t, "events = [{}]", names.join(", "));
        }
        if let Some(mention) = &target.mention {
            let _ = writeln!(t, "mention = {}", quoted(mention));
        }
        if target.bearer.is_some() {
            let _ = writeln!(
                t,
                "bearer_token_file = {}",
                quoted(&format!("../{}", bearer_file(&target.name)))
            );
        }
        if !target.headers.is_empty() {
            let pairs: Vec<String> = target
                .headers
                .iter()
                .map(|(k, v)| format!("{} = {}", quoted(k), quoted(v)))
                .collect();
            let _ = writeln!(t, "headers = {{ {} }}", pairs.join(", "));
        }
    }
    for skip in &plan.skipped {
        let _ = writeln!(t, "\n# Not converted: {}: {}", skip.item, skip.reason);
    }
    t
}
