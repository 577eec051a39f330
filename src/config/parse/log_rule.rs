//! `[[account.log_rule]]`: its keys, what their values become, and the checks that need the whole
//! rule or its account (required keys, `actions_enabled`, instances watched). Must not know other
//! tables' keys.

use super::document::Entry;
use super::keys::{key, Key};
use super::parser::Parser;
use crate::config::model::{InstanceSelector, LogAction, LogRule};
use toml_edit::Value;

/// A log rule while its keys are read.
pub(super) struct LogRuleDraft<'s> {
    /// Its account's `actions_enabled`: an action needs it.
    actions_enabled: bool,
    /// The names of the account's rules so far, with their lines (duplicates are reported).
    seen: &'s mut Vec<(String, usize)>,
    name: Option<String>,
    instances: Option<Vec<InstanceSelector>>,
    regex: Option<String>,
    action: Option<LogAction>,
}

pub(super) type LogRuleRead = for<'p, 'd, 's> fn(&mut Parser<'p>, Entry<'d>, &mut LogRuleDraft<'s>);

#[rustfmt::skip]
pub(super) const LOG_RULE_KEYS: &[Key<LogRuleRead>] = &[
    key("name", name),
    key("instances", |p, e, d| d.instances = p.instance_selectors(&e)),
    key("regex", regex),
    key("action", action),
];

impl<'s> LogRuleDraft<'s> {
    pub(super) fn new(actions_enabled: bool, seen: &'s mut Vec<(String, usize)>) -> Self {
        LogRuleDraft {
            actions_enabled,
            seen,
            name: None,
            instances: None,
            regex: None,
            action: None,
        }
    }

    /// The rule, once every key is read; `None` when a required key is missing or invalid.
    pub(super) fn finish(
        self,
        p: &mut Parser,
        entries: &[Entry],
        at: usize,
        instances_watched: bool,
    ) -> Option<LogRule> {
        let keys: Vec<&str> = entries.iter().map(|e| e.key).collect();
        for (required, example) in [
            ("name", "name = \"job-done\""),
            ("instances", "instances = [\"label:*\"]"),
            ("regex", "regex = \"^DONE\""),
        ] {
            if !keys.contains(&required) {
                p.error(
                    at,
                    format!("[[account.log_rule]] needs {required} (e.g. {example})"),
                );
            }
        }
        if !instances_watched {
            p.error(
                at,
                "log rules read instance logs: add \"instances\" to this account's watch list"
                    .into(),
            );
        }
        Some(LogRule {
            name: self.name?,
            instances: self.instances?,
            regex: self.regex?,
            action: self.action,
        })
    }
}

fn name(p: &mut Parser, entry: Entry, d: &mut LogRuleDraft) {
    d.name = p.name(&entry);
    if let Some(n) = &d.name {
        let line = p.line_of(entry.value_at);
        if let Some((_, first)) = d.seen.iter().find(|(s, _)| s == n) {
            let message = format!(
                "duplicate log_rule name \"{n}\" in this account (first defined at line {first})"
            );
            p.error(entry.value_at, message);
        } else {
            d.seen.push((n.clone(), line));
        }
    }
}

fn regex(p: &mut Parser, entry: Entry, d: &mut LogRuleDraft) {
    if let Some(pattern) = p.non_empty_string(&entry) {
        if p.regex(entry.value_at, "regex", pattern) {
            d.regex = Some(pattern.to_string());
        }
    }
}

fn action(p: &mut Parser, entry: Entry, d: &mut LogRuleDraft) {
    let Some(text) = p.string(&entry) else {
        return;
    };
    let parsed = match text {
        "stop" => LogAction::Stop,
        "destroy" => LogAction::Destroy,
        other => {
            let message = format!("unknown action \"{other}\" (expected \"stop\" or \"destroy\")");
            p.error(entry.value_at, message);
            return;
        }
    };
    if !d.actions_enabled {
        let message =
            format!("action = \"{text}\" needs actions_enabled = true in this [[account]]");
        p.error(entry.value_at, message);
        return;
    }
    d.action = Some(parsed);
}

impl Parser<'_> {
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
}
