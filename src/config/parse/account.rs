//! `[[account]]`: its keys and what their values become. The API key's three sources and the log
//! rules are finished by the caller once every key is read. Must not know other tables' keys.

use super::document::{Entry, TableRef};
use super::keys::{key, Key};
use super::parser::{Declares, Parser};
use super::values::set;
use crate::config::model::{AccountConfig, Origin, Watch, DEFAULT_API_URL, MIN_POLL_INTERVAL};
use crate::util::{did_you_mean, format_duration, Secret};
use chrono::NaiveTime;
use std::collections::BTreeSet;
use url::Url;

const API_KEY_SOURCES: [&str; 3] = ["api_key", "api_key_file", "api_key_env"];
const WATCH_VALUES: &[&str] = &["machines", "instances"];

/// An account while its keys are read.
pub(super) struct AccountDraft<'d> {
    pub account: AccountConfig,
    pub name: Option<String>,
    key_sources: Vec<Entry<'d>>,
    /// The `[[account.log_rule]]` tables, read once the account's own keys are known.
    pub rule_tables: Vec<(TableRef<'d>, usize)>,
}

pub(super) type AccountRead = for<'p, 'd> fn(&mut Parser<'p>, Entry<'d>, &mut AccountDraft<'d>);

#[rustfmt::skip]
pub(super) const ACCOUNT_KEYS: &[Key<AccountRead>] = &[
    key("name", |p, e, d| d.name = p.declared_name(&e, Declares::Account)),
    key("api_key", |_, e, d| d.key_sources.push(e)),
    key("api_key_file", |_, e, d| d.key_sources.push(e)),
    key("api_key_env", |_, e, d| d.key_sources.push(e)),
    key("watch", |p, e, d| set(&mut d.account.watch, p.watch(&e))),
    key("machines", |p, e, d| d.account.machines = p.machine_ids(&e)),
    key("poll_interval", poll_interval),
    key("api_url", |p, e, d| set(&mut d.account.api_url, p.api_url(&e))),
    key("offline_grace", |p, e, d| set(&mut d.account.offline_grace, p.duration(&e))),
    key("error_repeat", |p, e, d| set(&mut d.account.error_repeat, p.positive_duration(&e))),
    key("ignore_errors", ignore_errors),
    key("stale_after_polls", stale_after_polls),
    key("stuck_after", |p, e, d| set(&mut d.account.stuck_after, p.positive_duration(&e))),
    key("credit_low_below", credit_low_below),
    key("earnings_digest_at", earnings_digest_at),
    key("actions_enabled", |p, e, d| set(&mut d.account.actions_enabled, p.bool(&e))),
    key("log_rule", |p, e, d| d.rule_tables = p.tables_of(&e, "account.log_rule")),
];

impl AccountDraft<'_> {
    pub(super) fn new(p: &Parser, at: usize) -> Self {
        let default_url = Url::parse(DEFAULT_API_URL).expect("DEFAULT_API_URL is a valid URL");
        let mut account = AccountConfig::with_defaults("", "", default_url);
        account.origin = Origin {
            file: p.path.to_path_buf(),
            line: p.line_of(at),
        };
        AccountDraft {
            account,
            name: None,
            key_sources: Vec::new(),
            rule_tables: Vec::new(),
        }
    }

    /// The API key, from exactly one of its sources.
    pub(super) fn read_api_key(&mut self, p: &mut Parser, at: usize) {
        if let Some(source) = p.exactly_one(&self.key_sources, API_KEY_SOURCES, "[[account]]", at) {
            if let Some(key) = p.secret(&source) {
                self.account.api_key = Secret::new(key);
            }
        }
    }
}

fn poll_interval(p: &mut Parser, entry: Entry, d: &mut AccountDraft) {
    if let Some(interval) = p.duration(&entry) {
        if interval < MIN_POLL_INTERVAL {
            let message = format!(
                "poll_interval must be at least {} (got {})",
                format_duration(MIN_POLL_INTERVAL),
                format_duration(interval)
            );
            p.error(entry.value_at, message);
        } else {
            d.account.poll_interval = interval;
        }
    }
}

fn ignore_errors(p: &mut Parser, entry: Entry, d: &mut AccountDraft) {
    if let Some(patterns) = p.strings(&entry) {
        for (pattern_at, pattern) in patterns {
            if p.regex(pattern_at, "ignore_errors", pattern) {
                d.account.ignore_errors.push(pattern.to_string());
            }
        }
    }
}

fn stale_after_polls(p: &mut Parser, entry: Entry, d: &mut AccountDraft) {
    if let Some(n) = p.integer(&entry) {
        match u32::try_from(n) {
            Ok(n) if n >= 1 => d.account.stale_after_polls = n,
            _ => p.error(
                entry.value_at,
                "stale_after_polls must be a whole number of at least 1".into(),
            ),
        }
    }
}

fn credit_low_below(p: &mut Parser, entry: Entry, d: &mut AccountDraft) {
    if let Some(usd) = p.number(&entry) {
        if usd.is_finite() && usd >= 0.0 {
            d.account.credit_low_below = Some(usd);
        } else {
            p.error(
                entry.value_at,
                "credit_low_below must be an amount in USD of 0 or more".into(),
            );
        }
    }
}

fn earnings_digest_at(p: &mut Parser, entry: Entry, d: &mut AccountDraft) {
    if let Some(text) = p.string(&entry) {
        match NaiveTime::parse_from_str(text, "%H:%M") {
            Ok(time) => d.account.earnings_digest_at = Some(time),
            Err(_) => p.error(
                entry.value_at,
                "earnings_digest_at must be a local time \"HH:MM\" such as \"08:00\"".into(),
            ),
        }
    }
}

impl Parser<'_> {
    fn watch(&mut self, entry: &Entry) -> Option<Watch> {
        let values = self.strings(entry)?;
        let mut watch = Watch {
            machines: false,
            instances: false,
        };
        let mut ok = true;
        for (at, value) in values {
            match value {
                "machines" => watch.machines = true,
                "instances" => watch.instances = true,
                other => {
                    ok = false;
                    let message = match did_you_mean(other, WATCH_VALUES.iter().copied()) {
                        Some(hint) => {
                            format!("unknown watch value \"{other}\" (did you mean \"{hint}\"?)")
                        }
                        None => format!(
                            "unknown watch value \"{other}\" (expected \"machines\" and/or \"instances\")"
                        ),
                    };
                    self.error(at, message);
                }
            }
        }
        ok.then_some(watch)
    }

    fn machine_ids(&mut self, entry: &Entry) -> Option<BTreeSet<u64>> {
        let elements = self.array(entry, "an array of machine ids")?;
        let mut ids = BTreeSet::new();
        let mut ok = true;
        for element in elements {
            match element.value.as_integer().map(u64::try_from) {
                Some(Ok(id)) => {
                    ids.insert(id);
                }
                Some(Err(_)) => {
                    ok = false;
                    self.error(element.at, "machine ids are not negative".into());
                }
                None => {
                    ok = false;
                    let message = format!(
                        "machines entries must be machine ids (integers), found {}",
                        element.value.type_name()
                    );
                    self.error(element.at, message);
                }
            }
        }
        ok.then_some(ids)
    }

    fn api_url(&mut self, entry: &Entry) -> Option<Url> {
        let text = self.string(entry)?;
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Some(url)
            }
            _ => {
                self.error(
                    entry.value_at,
                    format!("api_url must be an http:// or https:// URL such as {DEFAULT_API_URL}"),
                );
                None
            }
        }
    }
}
