//! One configuration file -> [`FileOutcome`]: walks the TOML document with its spans, checks every
//! key and value, loads secrets (inline, from a file, from the environment) and reports each
//! problem at its `line:col`. Checks that need other files (duplicate names across files, accounts
//! named by a target) live in `load`; this module sees one file only.
//!
//! Each table declares its keys once, one line a key, in its own module ([`Section`] lists
//! them): the line names the key and says how its value is read. The same list answers "is this
//! key allowed here?" and gives the "did you mean" hints, so a new key is one line there (and its
//! field in `model`). This module walks the file and its tables and words the unknown-key errors;
//! it must not read any value itself.
//!
//! - `parser`: the walk's state (the file, its positions, the problems, the names declared).
//! - `document`: a table's entries and an array's elements with their offsets.
//! - `keys`: the [`Key`](keys::Key) a table declares, and looking one up.
//! - `values`: typed values (strings, durations, arrays, names, regexes).
//! - `secrets`: `KEY`, `KEY_file` or `KEY_env`, read without ever echoing the secret.
//! - `global`, `account`, `log_rule`, `target`: each table's keys and what its values become.

mod account;
mod document;
mod global;
mod keys;
mod log_rule;
mod parser;
mod secrets;
mod target;
mod values;

pub(crate) use values::name_problem;

use super::model::{AccountConfig, Globals, LogRule, TargetConfig, MAIN_FILE_NAME};
use super::outcome::{content_hash, FileAnalysis, FileOutcome};
use crate::util::did_you_mean;
use account::{AccountDraft, ACCOUNT_KEYS};
use document::{Entry, TableRef};
use global::GLOBAL_KEYS;
use keys::{lookup, names, Key};
use log_rule::{LogRuleDraft, LOG_RULE_KEYS};
use parser::Parser;
use std::path::Path;
use target::{TargetDraft, TARGET_KEYS};
use toml_edit::{ImDocument, Table};

/// The tables of a configuration file, each with the keys it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The main file's top level (besides `[[account]]` and `[[target]]`).
    Global,
    Account,
    LogRule,
    Target,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Global,
        Section::Account,
        Section::LogRule,
        Section::Target,
    ];

    /// The keys this table accepts, in their declared order (also the vocabulary of "did you
    /// mean" hints).
    pub fn keys(self) -> Vec<&'static str> {
        match self {
            Section::Global => names(GLOBAL_KEYS),
            Section::Account => names(ACCOUNT_KEYS),
            Section::LogRule => names(LOG_RULE_KEYS),
            Section::Target => names(TARGET_KEYS),
        }
    }

    /// The table as written in a file.
    pub fn header(self) -> &'static str {
        match self {
            Section::Global => "the main file's top level",
            Section::Account => "[[account]]",
            Section::LogRule => "[[account.log_rule]]",
            Section::Target => "[[target]]",
        }
    }

    fn accepts(self, key: &str) -> bool {
        self.keys().contains(&key)
    }
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
    let mut parser = Parser::new(path, text, env);
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

impl<'a> Parser<'a> {
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
                key => match (lookup(GLOBAL_KEYS, key), globals.as_deref_mut()) {
                    (Some(read), Some(globals)) => read(self, entry, globals),
                    (Some(_), None) => self.error(
                        entry.key_at,
                        format!(
                            "\"{key}\" is a global setting: put it in the main file \
                             {MAIN_FILE_NAME}, not in conf.d"
                        ),
                    ),
                    (None, _) => self.unknown_root_key(&entry, key, is_main),
                },
            }
        }
    }

    fn unknown_root_key(&mut self, entry: &Entry, key: &str, is_main: bool) {
        let in_account = Section::Account.accepts(key);
        let in_target = Section::Target.accepts(key);
        let mut candidates = vec!["account", "target"];
        if is_main {
            candidates.extend(Section::Global.keys());
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
            format!(
                "unknown key \"{key}\" (the main file holds {}, [[account]] and [[target]])",
                Section::Global.keys().join(", ")
            )
        } else {
            format!("unknown key \"{key}\" (conf.d files hold [[account]] and [[target]] tables)")
        };
        self.error(entry.key_at, message);
    }

    fn unknown_key(&mut self, entry: &Entry, section: Section) {
        let key = entry.key;
        let table = section.header();
        let elsewhere = if Section::Account.accepts(key) && section != Section::Account {
            Some(Section::Account.header())
        } else if Section::Target.accepts(key) && section != Section::Target {
            Some(Section::Target.header())
        } else {
            None
        };
        let message = if let Some(hint) = did_you_mean(key, section.keys()) {
            format!("unknown key \"{key}\" in {table} (did you mean \"{hint}\"?)")
        } else if let Some(other) = elsewhere {
            format!("unknown key \"{key}\" in {table} (it belongs in {other})")
        } else {
            format!("unknown key \"{key}\" in {table}")
        };
        self.error(entry.key_at, message);
    }

    /// Reads each entry of a table with the reader its key declares; reports the keys the table
    /// does not accept.
    fn read_keys<'d, Read: Copy, Draft>(
        &mut self,
        section: Section,
        keys: &[Key<Read>],
        entries: &[Entry<'d>],
        draft: &mut Draft,
        call: impl Fn(Read, &mut Self, Entry<'d>, &mut Draft),
    ) {
        for entry in entries.iter().copied() {
            match lookup(keys, entry.key) {
                Some(read) => call(read, self, entry, draft),
                None => self.unknown_key(&entry, section),
            }
        }
    }

    /// `[[account]]` and `[[target]]` are found by their name.
    fn require_name(&mut self, entries: &[Entry], section: Section, at: usize) {
        if !entries.iter().any(|e| e.key == "name") {
            self.error(at, format!("{} needs a name", section.header()));
        }
    }

    fn account(&mut self, table: TableRef, at: usize) -> Option<AccountConfig> {
        let errors_before = self.diagnostics.len();
        let entries = table.entries(at);
        let mut draft = AccountDraft::new(self, at);
        self.read_keys(
            Section::Account,
            ACCOUNT_KEYS,
            &entries,
            &mut draft,
            |read, p, e, d| read(p, e, d),
        );
        self.require_name(&entries, Section::Account, at);
        draft.read_api_key(self, at);
        let mut rule_names: Vec<(String, usize)> = Vec::new();
        for (rule_table, rule_at) in std::mem::take(&mut draft.rule_tables) {
            if let Some(rule) = self.log_rule(rule_table, rule_at, &draft.account, &mut rule_names)
            {
                draft.account.log_rules.push(rule);
            }
        }
        let mut account = draft.account;
        account.name = draft.name?;
        (self.diagnostics.len() == errors_before).then_some(account)
    }

    fn log_rule(
        &mut self,
        table: TableRef,
        at: usize,
        account: &AccountConfig,
        seen: &mut Vec<(String, usize)>,
    ) -> Option<LogRule> {
        let errors_before = self.diagnostics.len();
        let entries = table.entries(at);
        let mut draft = LogRuleDraft::new(account.actions_enabled, seen);
        self.read_keys(
            Section::LogRule,
            LOG_RULE_KEYS,
            &entries,
            &mut draft,
            |read, p, e, d| read(p, e, d),
        );
        let rule = draft.finish(self, &entries, at, account.watch.instances)?;
        (self.diagnostics.len() == errors_before).then_some(rule)
    }

    fn target(&mut self, table: TableRef, at: usize) -> Option<TargetConfig> {
        let errors_before = self.diagnostics.len();
        let entries = table.entries(at);
        let mut draft = TargetDraft::new(self, at);
        self.read_keys(
            Section::Target,
            TARGET_KEYS,
            &entries,
            &mut draft,
            |read, p, e, d| read(p, e, d),
        );
        self.require_name(&entries, Section::Target, at);
        let target = draft.finish(self, at)?;
        (self.diagnostics.len() == errors_before).then_some(target)
    }
}
