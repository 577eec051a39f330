//! One configuration file -> [`FileOutcome`]: walks the TOML document with its spans, checks every
//! key and value, loads secrets (inline, from a file, from the environment) and reports each
//! problem at its `line:col`. Checks that need other files (duplicate names across files, accounts
//! named by a target) live in `load`; this file sees one file only.

use super::diagnostic::{Diagnostic, LineIndex};
use super::files::{blocked_directory, read_bounded, socket_path_problem, MAX_SECRET_FILE};
use super::load::{FileConfig, FileOutcome};
use super::model::*;
use super::target_url::parse_target_url;
use crate::event::{EventKind, Severity};
use crate::util::{did_you_mean, format_duration, parse_duration, Secret};
use chrono::NaiveTime;
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use toml_edit::{ImDocument, InlineTable, Item, Table, Value};
use url::Url;

/// The keys each table accepts (also the vocabulary of "did you mean" hints).
pub const GLOBAL_KEYS: &[&str] = &[
    "state_dir",
    "control_socket",
    "http_listen",
    "dashboard",
    "http_basic_auth_file",
];
pub const ACCOUNT_KEYS: &[&str] = &[
    "name",
    "api_key",
    "api_key_file",
    "api_key_env",
    "watch",
    "machines",
    "poll_interval",
    "api_url",
    "offline_grace",
    "error_repeat",
    "ignore_errors",
    "stale_after_polls",
    "stuck_after",
    "credit_low_below",
    "earnings_digest_at",
    "actions_enabled",
    "log_rule",
];
pub const LOG_RULE_KEYS: &[&str] = &["name", "instances", "regex", "action"];
pub const TARGET_KEYS: &[&str] = &[
    "name",
    "url",
    "url_file",
    "url_env",
    "events",
    "accounts",
    "min_severity",
    "mention",
    "batch_window",
    "max_age",
    "batch_size",
    "bearer_token",
    "bearer_token_file",
    "headers",
    "tls_ca_file",
];
/// Headers describing a request's framing and routing: never taken from `headers`.
const CLIENT_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "upgrade",
    "te",
    "trailer",
];
const API_KEY_SOURCES: [&str; 3] = ["api_key", "api_key_file", "api_key_env"];
const URL_SOURCES: [&str; 3] = ["url", "url_file", "url_env"];
const WATCH_VALUES: &[&str] = &["machines", "instances"];

/// Which kind of table a declared name belongs to.
#[derive(Clone, Copy)]
enum Declares {
    Account,
    Target,
}

impl Declares {
    fn noun(self) -> &'static str {
        match self {
            Declares::Account => "account",
            Declares::Target => "target",
        }
    }
}

/// A name defined in a file (account or target), for the cross-file duplicate check.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub name: String,
    /// Position of the name's value.
    pub line: usize,
    pub col: usize,
}

/// Everything learned from one file, including what the cross-file checks in `load` need even
/// when the file itself has problems.
#[derive(Debug)]
pub(crate) struct FileAnalysis {
    pub path: PathBuf,
    pub hash: u64,
    pub accounts: Vec<AccountConfig>,
    pub targets: Vec<TargetConfig>,
    pub globals: Option<Globals>,
    pub diagnostics: Vec<Diagnostic>,
    pub declared_accounts: Vec<Declared>,
    pub declared_targets: Vec<Declared>,
    /// Account names listed in targets' `accounts` filters.
    pub account_refs: Vec<Declared>,
}

impl FileAnalysis {
    pub(crate) fn into_outcome(mut self) -> FileOutcome {
        if self.diagnostics.is_empty() {
            FileOutcome::Ok(FileConfig {
                path: self.path,
                hash: self.hash,
                accounts: self.accounts,
                targets: self.targets,
                globals: self.globals,
            })
        } else {
            self.diagnostics.sort_by_key(|d| (d.line, d.col));
            FileOutcome::Rejected {
                path: self.path,
                diagnostics: self.diagnostics,
            }
        }
    }
}

/// Hash of a file's bytes, to tell on reload whether a file changed. Stable within one process.
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Parses and validates one file. `is_main` allows the global settings; `env` looks up
/// environment variables (`api_key_env`, `url_env`). Relative secret files are read relative to
/// the directory of `path`.
pub fn parse_file(
    path: &Path,
    text: &str,
    is_main: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> FileOutcome {
    analyse_file(path, text, is_main, env).into_outcome()
}

pub(crate) fn analyse_file(
    path: &Path,
    text: &str,
    is_main: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> FileAnalysis {
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut parser = Parser {
        path,
        base_dir,
        lines: LineIndex::new(text),
        env,
        diagnostics: Vec::new(),
        declared_accounts: Vec::new(),
        declared_targets: Vec::new(),
        account_refs: Vec::new(),
    };
    let mut accounts = Vec::new();
    let mut targets = Vec::new();
    let mut globals = is_main.then(Globals::default);
    match ImDocument::parse(text) {
        Ok(doc) => parser.root(
            doc.as_table(),
            is_main,
            &mut accounts,
            &mut targets,
            globals.as_mut(),
        ),
        Err(e) => {
            // The error's own rendering quotes the source line, which may hold a secret: use
            // only the message and place it ourselves.
            let message = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let offset = e.span().map_or(0, |s| s.start);
            parser.error(offset, format!("TOML syntax error: {message}"));
        }
    }
    FileAnalysis {
        path: path.to_path_buf(),
        hash: content_hash(text.as_bytes()),
        accounts,
        targets,
        globals,
        diagnostics: parser.diagnostics,
        declared_accounts: parser.declared_accounts,
        declared_targets: parser.declared_targets,
        account_refs: parser.account_refs,
    }
}

/// A key of a table with the offsets of the key and of its value.
#[derive(Clone, Copy)]
struct Entry<'d> {
    key: &'d str,
    key_at: usize,
    value_at: usize,
    item: &'d Item,
}

/// `[[account]]` tables and `account = [{ ... }]` inline tables are the same thing in TOML.
#[derive(Clone, Copy)]
enum TableRef<'d> {
    Table(&'d Table),
    Inline(&'d InlineTable),
}

impl<'d> TableRef<'d> {
    fn entries(self, fallback: usize) -> Vec<Entry<'d>> {
        let keys: Vec<&'d str> = match self {
            TableRef::Table(t) => t.iter().map(|(k, _)| k).collect(),
            TableRef::Inline(t) => t.iter().map(|(k, _)| k).collect(),
        };
        keys.into_iter()
            .filter_map(|k| {
                let (key, item) = match self {
                    TableRef::Table(t) => t.get_key_value(k)?,
                    TableRef::Inline(t) => t.get_key_value(k)?,
                };
                if item.is_none() {
                    return None;
                }
                let key_at = key.span().map_or(fallback, |s| s.start);
                let value_at = item.span().map_or(key_at, |s| s.start);
                Some(Entry {
                    key: key.get(),
                    key_at,
                    value_at,
                    item,
                })
            })
            .collect()
    }
}

/// One element of an array value, with its offset.
struct Element<'d> {
    at: usize,
    value: &'d Value,
}

struct Parser<'a> {
    path: &'a Path,
    base_dir: PathBuf,
    lines: LineIndex<'a>,
    env: &'a dyn Fn(&str) -> Option<String>,
    diagnostics: Vec<Diagnostic>,
    declared_accounts: Vec<Declared>,
    declared_targets: Vec<Declared>,
    account_refs: Vec<Declared>,
}

impl<'a> Parser<'a> {
    fn error(&mut self, offset: usize, message: String) {
        let diagnostic = self.lines.diagnostic(self.path, offset, message);
        self.diagnostics.push(diagnostic);
    }

    fn line_of(&self, offset: usize) -> usize {
        self.lines.position(offset).0
    }

    fn root(
        &mut self,
        root: &Table,
        is_main: bool,
        accounts: &mut Vec<AccountConfig>,
        targets: &mut Vec<TargetConfig>,
        mut globals: Option<&mut Globals>,
    ) {
        for entry in TableRef::Table(root).entries(0) {
            match entry.key {
                "account" => {
                    for (table, at) in self.tables_of(&entry, "account") {
                        if let Some(account) = self.account(table, at) {
                            accounts.push(account);
                        }
                    }
                }
                "target" => {
                    for (table, at) in self.tables_of(&entry, "target") {
                        if let Some(target) = self.target(table, at) {
                            targets.push(target);
                        }
                    }
                }
                key if GLOBAL_KEYS.contains(&key) => match globals.as_deref_mut() {
                    Some(globals) => self.global(&entry, globals),
                    None => self.error(
                        entry.key_at,
                        format!(
                            "\"{key}\" is a global setting: put it in the main file \
                             {MAIN_FILE_NAME}, not in conf.d"
                        ),
                    ),
                },
                key => self.unknown_root_key(&entry, key, is_main),
            }
        }
    }

    fn unknown_root_key(&mut self, entry: &Entry, key: &str, is_main: bool) {
        let in_account = ACCOUNT_KEYS.contains(&key);
        let in_target = TARGET_KEYS.contains(&key);
        let mut candidates = vec!["account", "target"];
        if is_main {
            candidates.extend_from_slice(GLOBAL_KEYS);
        }
        let message = if in_account && in_target {
            format!("unknown key \"{key}\" at the top level (it belongs under an [[account]] or [[target]] header)")
        } else if in_account {
            format!(
                "unknown key \"{key}\" at the top level (it belongs under an [[account]] header)"
            )
        } else if in_target {
            format!("unknown key \"{key}\" at the top level (it belongs under a [[target]] header)")
        } else if let Some(hint) = did_you_mean(key, candidates.iter().copied()) {
            format!("unknown key \"{key}\" (did you mean \"{hint}\"?)")
        } else if is_main {
            format!("unknown key \"{key}\" (the main file holds state_dir, control_socket, http_listen, dashboard, http_basic_auth_file, [[account]] and [[target]])")
        } else {
            format!("unknown key \"{key}\" (conf.d files hold [[account]] and [[target]] tables)")
        };
        self.error(entry.key_at, message);
    }

    fn unknown_key(&mut self, entry: &Entry, table: &str, known: &[&str]) {
        let key = entry.key;
        let elsewhere = if ACCOUNT_KEYS.contains(&key) && table != "[[account]]" {
            Some("[[account]]")
        } else if TARGET_KEYS.contains(&key) && table != "[[target]]" {
            Some("[[target]]")
        } else {
            None
        };
        let message = if let Some(hint) = did_you_mean(key, known.iter().copied()) {
            format!("unknown key \"{key}\" in {table} (did you mean \"{hint}\"?)")
        } else if let Some(other) = elsewhere {
            format!("unknown key \"{key}\" in {table} (it belongs in {other})")
        } else {
            format!("unknown key \"{key}\" in {table}")
        };
        self.error(entry.key_at, message);
    }

    /// The tables of an array of tables (`[[name]]` or `name = [{...}]`), each with its offset.
    fn tables_of<'d>(&mut self, entry: &Entry<'d>, name: &str) -> Vec<(TableRef<'d>, usize)> {
        match entry.item {
            Item::ArrayOfTables(array) => array
                .iter()
                .map(|t| {
                    let at = t.span().map_or(entry.key_at, |s| s.start);
                    (TableRef::Table(t), at)
                })
                .collect(),
            Item::Value(Value::Array(array))
                if array.iter().all(|v| v.as_inline_table().is_some()) =>
            {
                array
                    .iter()
                    .filter_map(|v| {
                        let at = v.span().map_or(entry.value_at, |s| s.start);
                        v.as_inline_table().map(|t| (TableRef::Inline(t), at))
                    })
                    .collect()
            }
            Item::Table(_) => {
                self.error(
                    entry.key_at,
                    format!("write [[{name}]] (a list of tables), not [{name}]"),
                );
                Vec::new()
            }
            other => {
                self.error(
                    entry.value_at,
                    format!(
                        "{} must be [[{name}]] tables, found {}",
                        entry.key,
                        other.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn global(&mut self, entry: &Entry, globals: &mut Globals) {
        match entry.key {
            "state_dir" => {
                if let Some(dir) = self.path_value(entry) {
                    match blocked_directory(&dir) {
                        Some(why) => self.error(entry.value_at, format!("state_dir: {why}")),
                        None => globals.state_dir = dir,
                    }
                }
            }
            "control_socket" => {
                if let Some(socket) = self.path_value(entry) {
                    match socket_path_problem(&socket) {
                        Some(why) => self.error(entry.value_at, format!("control_socket: {why}")),
                        None => globals.control_socket = socket,
                    }
                }
            }
            "dashboard" => {
                if let Some(on) = self.bool(entry) {
                    globals.dashboard = on;
                }
            }
            "http_basic_auth_file" => {
                let Some(text) = self.secret(entry) else {
                    return;
                };
                match BasicAuth::parse(&text) {
                    Ok(auth) => globals.http_basic_auth = Some(auth),
                    Err(why) => {
                        let message = format!("{} {why}", self.secret_origin(entry));
                        self.error(entry.value_at, message);
                    }
                }
            }
            // The caller passes global keys only: this is "http_listen".
            _ => {
                if let Some(addr) = self.string(entry) {
                    match SocketAddr::from_str(addr) {
                        Ok(addr) => globals.http_listen = Some(addr),
                        Err(_) => self.error(
                            entry.value_at,
                            "http_listen must be an address and port such as \"127.0.0.1:9477\""
                                .into(),
                        ),
                    }
                }
            }
        }
    }

    // ---- typed values ------------------------------------------------------------------------

    fn wrong_type(&mut self, entry: &Entry, expected: &str) {
        let message = format!(
            "{} must be {expected}, found {}",
            entry.key,
            entry.item.type_name()
        );
        self.error(entry.value_at, message);
    }

    fn string<'d>(&mut self, entry: &Entry<'d>) -> Option<&'d str> {
        let value = entry.item.as_str();
        if value.is_none() {
            self.wrong_type(entry, "a string");
        }
        value
    }

    fn non_empty_string<'d>(&mut self, entry: &Entry<'d>) -> Option<&'d str> {
        let value = self.string(entry)?;
        if value.trim().is_empty() {
            self.error(entry.value_at, format!("{} is empty", entry.key));
            return None;
        }
        Some(value)
    }

    fn bool(&mut self, entry: &Entry) -> Option<bool> {
        let value = entry.item.as_bool();
        if value.is_none() {
            self.wrong_type(entry, "true or false");
        }
        value
    }

    fn integer(&mut self, entry: &Entry) -> Option<i64> {
        let value = entry.item.as_integer();
        if value.is_none() {
            self.wrong_type(entry, "an integer");
        }
        value
    }

    fn number(&mut self, entry: &Entry) -> Option<f64> {
        match entry.item.as_value() {
            Some(Value::Float(f)) => Some(*f.value()),
            Some(Value::Integer(i)) => Some(*i.value() as f64),
            _ => {
                self.wrong_type(entry, "a number");
                None
            }
        }
    }

    fn duration(&mut self, entry: &Entry) -> Option<Duration> {
        let Some(text) = entry.item.as_str() else {
            self.wrong_type(entry, "a duration string such as \"30s\"");
            return None;
        };
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(entry.value_at, format!("{}: {e}", entry.key));
                None
            }
        }
    }

    fn positive_duration(&mut self, entry: &Entry) -> Option<Duration> {
        let d = self.duration(entry)?;
        if d.is_zero() {
            self.error(
                entry.value_at,
                format!("{} must be longer than 0s", entry.key),
            );
            return None;
        }
        Some(d)
    }

    /// A path; relative paths are taken relative to this file's directory.
    fn path_value(&mut self, entry: &Entry) -> Option<PathBuf> {
        let text = self.non_empty_string(entry)?;
        Some(self.base_dir.join(text))
    }

    fn array<'d>(&mut self, entry: &Entry<'d>, expected: &str) -> Option<Vec<Element<'d>>> {
        let Some(array) = entry.item.as_array() else {
            self.wrong_type(entry, expected);
            return None;
        };
        let elements: Vec<Element<'d>> = array
            .iter()
            .map(|value| Element {
                at: value.span().map_or(entry.value_at, |s| s.start),
                value,
            })
            .collect();
        if elements.is_empty() {
            self.error(
                entry.value_at,
                format!("{} is empty: remove it to use the default", entry.key),
            );
            return None;
        }
        Some(elements)
    }

    /// A non-empty array of strings, each with its offset.
    fn strings<'d>(&mut self, entry: &Entry<'d>) -> Option<Vec<(usize, &'d str)>> {
        let elements = self.array(entry, "an array of strings")?;
        let mut strings = Vec::new();
        let mut ok = true;
        for element in elements {
            match element.value.as_str() {
                Some(s) => strings.push((element.at, s)),
                None => {
                    ok = false;
                    let message = format!(
                        "{} entries must be strings, found {}",
                        entry.key,
                        element.value.type_name()
                    );
                    self.error(element.at, message);
                }
            }
        }
        ok.then_some(strings)
    }

    fn name(&mut self, entry: &Entry) -> Option<String> {
        let name = self.string(entry)?;
        if let Some(problem) = name_problem(name) {
            self.error(entry.value_at, problem);
            return None;
        }
        Some(name.to_string())
    }

    fn regex(&mut self, at: usize, key: &str, pattern: &str) -> bool {
        match regex::Regex::new(pattern) {
            Ok(_) => true,
            Err(e) => {
                self.error(at, format!("invalid regex in {key}: {}", regex_reason(&e)));
                false
            }
        }
    }

    // ---- secrets ------------------------------------------------------------------------------

    /// Of a group of alternative keys (`api_key`, `api_key_file`, `api_key_env`), exactly one
    /// must be set. Returns it, or reports what is wrong.
    fn exactly_one<'d>(
        &mut self,
        set: &[Entry<'d>],
        names: [&str; 3],
        table: &str,
        at: usize,
    ) -> Option<Entry<'d>> {
        let [a, b, c] = names;
        match set {
            [] => {
                self.error(at, format!("{table} needs one of {a}, {b} or {c}"));
                None
            }
            [one] => Some(*one),
            [first, rest @ ..] => {
                for extra in rest {
                    let message = format!(
                        "{} and {} are both set: use exactly one of {a}, {b}, {c}",
                        first.key, extra.key
                    );
                    self.error(extra.key_at, message);
                }
                None
            }
        }
    }

    /// The secret behind `KEY`, `KEY_file` or `KEY_env`. Errors name the file or variable,
    /// never the secret.
    fn secret(&mut self, entry: &Entry) -> Option<String> {
        let key = entry.key;
        let source = self.non_empty_string(entry)?;
        if key.ends_with("_file") {
            let path = self.base_dir.join(source);
            let bytes = match read_bounded(&path, MAX_SECRET_FILE) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let message = format!("cannot read {key} \"{}\": {e}", path.display());
                    self.error(entry.value_at, message);
                    return None;
                }
            };
            let Ok(text) = String::from_utf8(bytes) else {
                let message = format!("{key} \"{}\" is not UTF-8 text", path.display());
                self.error(entry.value_at, message);
                return None;
            };
            // Files written with `echo` end in a newline that is not part of the secret.
            let secret = text.trim();
            if secret.is_empty() {
                let message = format!("{key} \"{}\" is empty", path.display());
                self.error(entry.value_at, message);
                return None;
            }
            Some(secret.to_string())
        } else if key.ends_with("_env") {
            let valid_name = source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !source.starts_with(|c: char| c.is_ascii_digit());
            if !valid_name {
                self.error(
                    entry.value_at,
                    format!("{key} must name an environment variable (letters, digits and \"_\")"),
                );
                return None;
            }
            match (self.env)(source) {
                None => {
                    let message = format!("environment variable {source} (from {key}) is not set");
                    self.error(entry.value_at, message);
                    None
                }
                Some(value) if value.trim().is_empty() => {
                    let message = format!("environment variable {source} (from {key}) is empty");
                    self.error(entry.value_at, message);
                    None
                }
                Some(value) => Some(value.trim().to_string()),
            }
        } else {
            Some(source.trim().to_string())
        }
    }

    /// Where a `_file` or `_env` secret came from, for messages about its content.
    fn secret_origin(&self, entry: &Entry) -> String {
        let source = entry.item.as_str().unwrap_or_default();
        if entry.key.ends_with("_file") {
            format!("{} \"{}\"", entry.key, self.base_dir.join(source).display())
        } else {
            format!("environment variable {source}")
        }
    }

    // ---- accounts -----------------------------------------------------------------------------

    fn account(&mut self, table: TableRef, at: usize) -> Option<AccountConfig> {
        let errors_before = self.diagnostics.len();
        let default_url = Url::parse(DEFAULT_API_URL).expect("DEFAULT_API_URL is a valid URL");
        let mut account = AccountConfig::with_defaults("", "", default_url);
        account.origin = Origin {
            file: self.path.to_path_buf(),
            line: self.line_of(at),
        };
        let mut name = None;
        let mut key_sources = Vec::new();
        let mut rule_tables = Vec::new();
        let entries = table.entries(at);
        for entry in entries.iter().copied() {
            match entry.key {
                "name" => {
                    name = self.name(&entry);
                    if let Some(name) = &name {
                        self.declare_account(name, entry.value_at);
                    }
                }
                "api_key" | "api_key_file" | "api_key_env" => key_sources.push(entry),
                "watch" => {
                    if let Some(watch) = self.watch(&entry) {
                        account.watch = watch;
                    }
                }
                "machines" => account.machines = self.machine_ids(&entry),
                "poll_interval" => {
                    if let Some(interval) = self.duration(&entry) {
                        if interval < MIN_POLL_INTERVAL {
                            let message = format!(
                                "poll_interval must be at least {} (got {})",
                                format_duration(MIN_POLL_INTERVAL),
                                format_duration(interval)
                            );
                            self.error(entry.value_at, message);
                        } else {
                            account.poll_interval = interval;
                        }
                    }
                }
                "api_url" => {
                    if let Some(url) = self.api_url(&entry) {
                        account.api_url = url;
                    }
                }
                "offline_grace" => {
                    if let Some(d) = self.duration(&entry) {
                        account.offline_grace = d;
                    }
                }
                "error_repeat" => {
                    if let Some(d) = self.positive_duration(&entry) {
                        account.error_repeat = d;
                    }
                }
                "stuck_after" => {
                    if let Some(d) = self.positive_duration(&entry) {
                        account.stuck_after = d;
                    }
                }
                "ignore_errors" => {
                    if let Some(patterns) = self.strings(&entry) {
                        for (pattern_at, pattern) in patterns {
                            if self.regex(pattern_at, "ignore_errors", pattern) {
                                account.ignore_errors.push(pattern.to_string());
                            }
                        }
                    }
                }
                "stale_after_polls" => {
                    if let Some(n) = self.integer(&entry) {
                        match u32::try_from(n) {
                            Ok(n) if n >= 1 => account.stale_after_polls = n,
                            _ => self.error(
                                entry.value_at,
                                "stale_after_polls must be a whole number of at least 1".into(),
                            ),
                        }
                    }
                }
                "credit_low_below" => {
                    if let Some(usd) = self.number(&entry) {
                        if usd.is_finite() && usd >= 0.0 {
                            account.credit_low_below = Some(usd);
                        } else {
                            self.error(
                                entry.value_at,
                                "credit_low_below must be an amount in USD of 0 or more".into(),
                            );
                        }
                    }
                }
                "earnings_digest_at" => {
                    if let Some(text) = self.string(&entry) {
                        match NaiveTime::parse_from_str(text, "%H:%M") {
                            Ok(time) => account.earnings_digest_at = Some(time),
                            Err(_) => self.error(
                                entry.value_at,
                                "earnings_digest_at must be a local time \"HH:MM\" such as \"08:00\""
                                    .into(),
                            ),
                        }
                    }
                }
                "actions_enabled" => {
                    if let Some(enabled) = self.bool(&entry) {
                        account.actions_enabled = enabled;
                    }
                }
                "log_rule" => rule_tables = self.tables_of(&entry, "account.log_rule"),
                _ => self.unknown_key(&entry, "[[account]]", ACCOUNT_KEYS),
            }
        }
        if !entries.iter().any(|e| e.key == "name") {
            self.error(at, "[[account]] needs a name".into());
        }
        if let Some(source) = self.exactly_one(&key_sources, API_KEY_SOURCES, "[[account]]", at) {
            if let Some(key) = self.secret(&source) {
                account.api_key = Secret::new(key);
            }
        }
        let mut rule_names: Vec<(String, usize)> = Vec::new();
        for (rule_table, rule_at) in rule_tables {
            if let Some(rule) = self.log_rule(rule_table, rule_at, &account, &mut rule_names) {
                account.log_rules.push(rule);
            }
        }
        account.name = name?;
        (self.diagnostics.len() == errors_before).then_some(account)
    }

    fn declare_account(&mut self, name: &str, at: usize) {
        self.declare(Declares::Account, name, at);
    }

    fn declare_target(&mut self, name: &str, at: usize) {
        self.declare(Declares::Target, name, at);
    }

    /// Records a table's name, or reports a duplicate within this file.
    fn declare(&mut self, what: Declares, name: &str, at: usize) {
        let (line, col) = self.lines.position(at);
        let list = match what {
            Declares::Account => &self.declared_accounts,
            Declares::Target => &self.declared_targets,
        };
        if let Some(first) = list.iter().find(|d| d.name == name) {
            let message = format!(
                "duplicate {} name \"{name}\" (first defined at line {})",
                what.noun(),
                first.line
            );
            self.error(at, message);
            return;
        }
        let list = match what {
            Declares::Account => &mut self.declared_accounts,
            Declares::Target => &mut self.declared_targets,
        };
        list.push(Declared {
            name: name.to_string(),
            line,
            col,
        });
    }

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

    fn log_rule(
        &mut self,
        table: TableRef,
        at: usize,
        account: &AccountConfig,
        seen: &mut Vec<(String, usize)>,
    ) -> Option<LogRule> {
        let errors_before = self.diagnostics.len();
        let (mut name, mut instances, mut regex, mut action) = (None, None, None, None);
        let entries = table.entries(at);
        for entry in entries.iter().copied() {
            match entry.key {
                "name" => {
                    name = self.name(&entry);
                    if let Some(n) = &name {
                        let line = self.line_of(entry.value_at);
                        if let Some((_, first)) = seen.iter().find(|(s, _)| s == n) {
                            let message = format!(
                                "duplicate log_rule name \"{n}\" in this account (first defined at line {first})"
                            );
                            self.error(entry.value_at, message);
                        } else {
                            seen.push((n.clone(), line));
                        }
                    }
                }
                "instances" => instances = self.instance_selectors(&entry),
                "regex" => {
                    if let Some(pattern) = self.non_empty_string(&entry) {
                        if self.regex(entry.value_at, "regex", pattern) {
                            regex = Some(pattern.to_string());
                        }
                    }
                }
                "action" => {
                    let Some(text) = self.string(&entry) else {
                        continue;
                    };
                    let parsed = match text {
                        "stop" => LogAction::Stop,
                        "destroy" => LogAction::Destroy,
                        other => {
                            let message = format!(
                                "unknown action \"{other}\" (expected \"stop\" or \"destroy\")"
                            );
                            self.error(entry.value_at, message);
                            continue;
                        }
                    };
                    if !account.actions_enabled {
                        let message = format!(
                            "action = \"{text}\" needs actions_enabled = true in this [[account]]"
                        );
                        self.error(entry.value_at, message);
                        continue;
                    }
                    action = Some(parsed);
                }
                _ => self.unknown_key(&entry, "[[account.log_rule]]", LOG_RULE_KEYS),
            }
        }
        let keys: Vec<&str> = entries.iter().map(|e| e.key).collect();
        for (required, example) in [
            ("name", "name = \"job-done\""),
            ("instances", "instances = [\"label:*\"]"),
            ("regex", "regex = \"^DONE\""),
        ] {
            if !keys.contains(&required) {
                self.error(
                    at,
                    format!("[[account.log_rule]] needs {required} (e.g. {example})"),
                );
            }
        }
        if !account.watch.instances {
            self.error(
                at,
                "log rules read instance logs: add \"instances\" to this account's watch list"
                    .into(),
            );
        }
        let rule = LogRule {
            name: name?,
            instances: instances?,
            regex: regex?,
            action,
        };
        (self.diagnostics.len() == errors_before).then_some(rule)
    }

    fn instance_selectors(&mut self, entry: &Entry) -> Option<Vec<InstanceSelector>> {
        let elements = self.array(entry, "an array of instance ids or \"label:GLOB\" strings")?;
        let mut selectors = Vec::new();
        let mut ok = true;
        for element in elements {
            let selector = match element.value {
                Value::Integer(id) => u64::try_from(*id.value()).ok().map(InstanceSelector::Id),
                Value::String(s) => s
                    .value()
                    .strip_prefix("label:")
                    .filter(|glob| !glob.is_empty())
                    .map(|glob| InstanceSelector::LabelGlob(glob.to_string())),
                _ => None,
            };
            match selector {
                Some(selector) => selectors.push(selector),
                None => {
                    ok = false;
                    self.error(
                        element.at,
                        "instances entries are instance ids (integers) or \"label:GLOB\" strings"
                            .into(),
                    );
                }
            }
        }
        ok.then_some(selectors)
    }

    // ---- targets ------------------------------------------------------------------------------

    fn target(&mut self, table: TableRef, at: usize) -> Option<TargetConfig> {
        let errors_before = self.diagnostics.len();
        let mut target = TargetConfig::with_defaults("", TargetUrl::Console);
        target.origin = Origin {
            file: self.path.to_path_buf(),
            line: self.line_of(at),
        };
        let mut name = None;
        let mut url_sources = Vec::new();
        let mut bearer_sources = Vec::new();
        let mut webhook_only = Vec::new();
        let mut batch_size = None;
        let mut headers = None;
        let mut email_only = Vec::new();
        let mut tls_ca = None;
        let entries = table.entries(at);
        for entry in entries.iter().copied() {
            match entry.key {
                "name" => {
                    name = self.name(&entry);
                    if let Some(name) = &name {
                        self.declare_target(name, entry.value_at);
                    }
                }
                "url" | "url_file" | "url_env" => url_sources.push(entry),
                "events" => {
                    if let Some(events) = self.events(&entry) {
                        target.events = events;
                    }
                }
                "accounts" => target.accounts = self.account_filter(&entry),
                "min_severity" => {
                    if let Some(text) = self.string(&entry) {
                        match Severity::from_str(text) {
                            Ok(severity) => target.min_severity = severity,
                            Err(e) => self.error(entry.value_at, format!("min_severity: {e}")),
                        }
                    }
                }
                "mention" => target.mention = self.non_empty_string(&entry).map(str::to_string),
                "batch_window" => {
                    if let Some(d) = self.duration(&entry) {
                        target.batch_window = d;
                    }
                }
                "max_age" => {
                    if let Some(d) = self.positive_duration(&entry) {
                        target.max_age = d;
                    }
                }
                "batch_size" => {
                    webhook_only.push(entry);
                    if let Some(n) = self.integer(&entry) {
                        match usize::try_from(n) {
                            Ok(n) if n >= 1 => batch_size = Some(n),
                            _ => self.error(
                                entry.value_at,
                                "batch_size must be a whole number of at least 1".into(),
                            ),
                        }
                    }
                }
                "bearer_token" | "bearer_token_file" => {
                    webhook_only.push(entry);
                    bearer_sources.push(entry);
                }
                "headers" => {
                    webhook_only.push(entry);
                    headers = self.headers(&entry);
                }
                "tls_ca_file" => {
                    email_only.push(entry);
                    tls_ca = self.ca_bundle(&entry);
                }
                _ => self.unknown_key(&entry, "[[target]]", TARGET_KEYS),
            }
        }
        if !entries.iter().any(|e| e.key == "name") {
            self.error(at, "[[target]] needs a name".into());
        }
        let url = self
            .exactly_one(&url_sources, URL_SOURCES, "[[target]]", at)
            .and_then(|source| {
                let text = self.secret(&source)?;
                match parse_target_url(&text) {
                    Ok(url) => Some(url),
                    Err(e) => {
                        let message = match source.key {
                            "url" => format!("invalid url: {e}"),
                            _ => format!("invalid URL in {}: {e}", self.secret_origin(&source)),
                        };
                        self.error(source.value_at, message);
                        None
                    }
                }
            });
        if let Some(url) = url {
            let is_webhook = matches!(url, TargetUrl::Webhook { .. });
            if !is_webhook {
                for entry in &webhook_only {
                    let message = format!(
                        "{} is only for json:// and jsons:// targets (this target is {})",
                        entry.key,
                        url.service()
                    );
                    self.error(entry.key_at, message);
                }
            }
            if !matches!(url, TargetUrl::Email { .. }) {
                for entry in &email_only {
                    let message = format!(
                        "{} is only for mailto:// and mailtos:// targets (this target is {})",
                        entry.key,
                        url.service()
                    );
                    self.error(entry.key_at, message);
                }
            }
            target.url = url;
        }
        match bearer_sources.as_slice() {
            [] => {}
            [source] => {
                let token = self.secret(source).filter(|token| {
                    // The token goes into an Authorization header: a line break in it would end
                    // the header early (and smuggle another one in).
                    let sendable = HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
                    if !sendable {
                        self.error(
                            source.value_at,
                            format!(
                                "{} holds characters that cannot be sent in an HTTP header (a line break or another control character)",
                                source.key
                            ),
                        );
                    }
                    sendable
                });
                if let Some(token) = token {
                    if matches!(
                        &target.url,
                        TargetUrl::Webhook {
                            basic_auth: Some(_),
                            ..
                        }
                    ) {
                        self.error(
                            source.key_at,
                            format!(
                                "{} and a USER:PASSWORD in the URL are both set: use one",
                                source.key
                            ),
                        );
                    }
                    target.bearer_token = Some(Secret::new(token));
                }
            }
            [first, rest @ ..] => {
                for extra in rest {
                    let message = format!(
                        "{} and {} are both set: use one of bearer_token, bearer_token_file",
                        first.key, extra.key
                    );
                    self.error(extra.key_at, message);
                }
            }
        }
        if let Some(n) = batch_size {
            target.batch_size = n;
        }
        if let Some(headers) = headers {
            target.headers = headers;
        }
        target.tls_ca = tls_ca;
        target.name = name?;
        (self.diagnostics.len() == errors_before).then_some(target)
    }

    /// `tls_ca_file`: a PEM file of CA certificates, read and checked now so that a missing,
    /// unreadable or malformed file is reported at its line instead of failing every send.
    fn ca_bundle(&mut self, entry: &Entry) -> Option<CaBundle> {
        let path = self.path_value(entry)?;
        let problem = match read_bounded(&path, MAX_SECRET_FILE) {
            Ok(pem) => match ca_certificates(&pem) {
                Ok(certificates) => return Some(CaBundle { path, certificates }),
                Err(reason) => format!("{} \"{}\" {reason}", entry.key, path.display()),
            },
            Err(e) => format!("cannot read {} \"{}\": {e}", entry.key, path.display()),
        };
        self.error(entry.value_at, problem);
        None
    }

    fn events(&mut self, entry: &Entry) -> Option<EventFilter> {
        let names = self.strings(entry)?;
        let mut kinds = BTreeSet::new();
        let mut ok = true;
        for (at, name) in names {
            match EventKind::expand_filter_name(name) {
                Some(expanded) => kinds.extend(expanded),
                None => {
                    ok = false;
                    let message = match did_you_mean(name, EventKind::filter_names()) {
                        Some(hint) => format!("unknown event \"{name}\" (did you mean \"{hint}\"?)"),
                        None => format!(
                            "unknown event \"{name}\" (expected an event name such as \"rental_start\", or all, error, recovery, system, startup)"
                        ),
                    };
                    self.error(at, message);
                }
            }
        }
        ok.then_some(EventFilter(kinds))
    }

    fn account_filter(&mut self, entry: &Entry) -> Option<BTreeSet<String>> {
        let names = self.strings(entry)?;
        let mut set = BTreeSet::new();
        let mut ok = true;
        for (at, name) in names {
            if let Some(problem) = name_problem(name) {
                ok = false;
                self.error(at, format!("accounts: {problem}"));
                continue;
            }
            let (line, col) = self.lines.position(at);
            self.account_refs.push(Declared {
                name: name.to_string(),
                line,
                col,
            });
            set.insert(name.to_string());
        }
        ok.then_some(set)
    }

    fn headers(&mut self, entry: &Entry) -> Option<BTreeMap<String, String>> {
        let table = match entry.item {
            Item::Table(t) => TableRef::Table(t),
            Item::Value(Value::InlineTable(t)) => TableRef::Inline(t),
            _ => {
                self.wrong_type(entry, "a table of header names to strings");
                return None;
            }
        };
        let mut headers = BTreeMap::new();
        let mut ok = true;
        for header in table.entries(entry.key_at) {
            let Some(value) = header.item.as_str() else {
                ok = false;
                let message = format!(
                    "header \"{}\" must be a string, found {}",
                    header.key,
                    header.item.type_name()
                );
                self.error(header.value_at, message);
                continue;
            };
            if HeaderName::from_bytes(header.key.as_bytes()).is_err() {
                ok = false;
                self.error(
                    header.key_at,
                    format!("\"{}\" is not a valid HTTP header name", header.key),
                );
            } else if CLIENT_HEADERS.contains(&header.key.to_ascii_lowercase().as_str()) {
                // A second Content-Length or Transfer-Encoding would make the request's framing
                // ambiguous (request smuggling through a proxy); the HTTP client sets these.
                ok = false;
                self.error(
                    header.key_at,
                    format!(
                        "header \"{}\" is set by the HTTP client from the message itself; remove it",
                        header.key
                    ),
                );
            } else if HeaderValue::from_str(value).is_err() {
                // The value may be a credential: name the header, not the value.
                ok = false;
                self.error(
                    header.value_at,
                    format!(
                        "header \"{}\" has a value that is not a valid HTTP header value",
                        header.key
                    ),
                );
            } else {
                headers.insert(header.key.to_string(), value.to_string());
            }
        }
        ok.then_some(headers)
    }
}

/// Names are used in events, file names and metrics labels: keep them plain.
/// The DER certificates of a PEM CA bundle, each checked the way the TLS client will use it
/// (as a trust anchor). The error completes "tls_ca_file \"PATH\" ...".
fn ca_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
    use rustls_pki_types::pem::{Error as PemError, PemObject};
    use rustls_pki_types::CertificateDer;

    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let der = item.map_err(|e| match e {
            PemError::MissingSectionEnd { .. } => {
                "is not valid PEM: a section has no END line".to_string()
            }
            PemError::IllegalSectionStart { .. } => {
                "is not valid PEM: a BEGIN line is malformed".to_string()
            }
            PemError::Base64Decode(_) => {
                "is not valid PEM: a section is not valid base64".to_string()
            }
            other => format!("is not valid PEM: {other}"),
        })?;
        certificates.push(der.to_vec());
    }
    if certificates.is_empty() {
        return Err(
            "holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)".into(),
        );
    }
    let count = certificates.len();
    for (i, der) in certificates.iter().enumerate() {
        let usable = Certificate::from_der(der.clone()).and_then(|certificate| {
            TlsParameters::builder("localhost".into())
                .certificate_store(CertificateStore::None)
                .add_root_certificate(certificate)
                .build_rustls()
        });
        if usable.is_err() {
            return Err(format!(
                "holds a certificate that is not a valid X.509 certificate (number {} of {count})",
                i + 1
            ));
        }
    }
    Ok(certificates)
}

pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name cannot be empty".into());
    }
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (!plain).then(|| {
        format!("name \"{name}\" may contain only letters, digits, \"_\", \".\" and \"-\"")
    })
}

/// The one-line reason of a regex error ("unclosed group"), without the multi-line drawing.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().last().unwrap_or_default().trim().to_string())
}
