//! Typed values: strings, booleans, numbers, durations, paths, arrays, names and regexes, each
//! reported at its own position when it has the wrong type or shape. Must not know which key
//! takes which type (the tables in `parse` say that) nor read secrets (`secrets`).

use super::document::{Element, Entry};
use super::parser::{Declares, Parser};
use crate::util::parse_duration;
use std::path::PathBuf;
use std::time::Duration;
use toml_edit::Value;

/// Stores a value that was read, and keeps the default when it was not (the problem is reported).
pub(super) fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

impl Parser<'_> {
    pub(super) fn wrong_type(&mut self, entry: &Entry, expected: &str) {
        let message = format!(
            "{} must be {expected}, found {}",
            entry.key,
            entry.item.type_name()
        );
        self.error(entry.value_at, message);
    }

    pub(super) fn string<'d>(&mut self, entry: &Entry<'d>) -> Option<&'d str> {
        let value = entry.item.as_str();
        if value.is_none() {
            self.wrong_type(entry, "a string");
        }
        value
    }

    pub(super) fn non_empty_string<'d>(&mut self, entry: &Entry<'d>) -> Option<&'d str> {
        let value = self.string(entry)?;
        if value.trim().is_empty() {
            self.error(entry.value_at, format!("{} is empty", entry.key));
            return None;
        }
        Some(value)
    }

    pub(super) fn bool(&mut self, entry: &Entry) -> Option<bool> {
        let value = entry.item.as_bool();
        if value.is_none() {
            self.wrong_type(entry, "true or false");
        }
        value
    }

    pub(super) fn integer(&mut self, entry: &Entry) -> Option<i64> {
        let value = entry.item.as_integer();
        if value.is_none() {
            self.wrong_type(entry, "an integer");
        }
        value
    }

    pub(super) fn number(&mut self, entry: &Entry) -> Option<f64> {
        match entry.item.as_value() {
            Some(Value::Float(f)) => Some(*f.value()),
            Some(Value::Integer(i)) => Some(*i.value() as f64),
            _ => {
                self.wrong_type(entry, "a number");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, entry: &Entry) -> Option<Duration> {
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

    pub(super) fn positive_duration(&mut self, entry: &Entry) -> Option<Duration> {
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
    pub(super) fn path_value(&mut self, entry: &Entry) -> Option<PathBuf> {
        let text = self.non_empty_string(entry)?;
        Some(self.base_dir.join(text))
    }

    pub(super) fn array<'d>(
        &mut self,
        entry: &Entry<'d>,
        expected: &str,
    ) -> Option<Vec<Element<'d>>> {
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
    pub(super) fn strings<'d>(&mut self, entry: &Entry<'d>) -> Option<Vec<(usize, &'d str)>> {
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

    pub(super) fn name(&mut self, entry: &Entry) -> Option<String> {
        let name = self.string(entry)?;
        if let Some(problem) = name_problem(name) {
            self.error(entry.value_at, problem);
            return None;
        }
        Some(name.to_string())
    }

    /// A table's `name`, recorded as declared in this file (a second one is reported).
    pub(super) fn declared_name(&mut self, entry: &Entry, what: Declares) -> Option<String> {
        let name = self.name(entry);
        if let Some(name) = &name {
            self.declare(what, name, entry.value_at);
        }
        name
    }

    pub(super) fn regex(&mut self, at: usize, key: &str, pattern: &str) -> bool {
        match regex::Regex::new(pattern) {
            Ok(_) => true,
            Err(e) => {
                self.error(at, format!("invalid regex in {key}: {}", regex_reason(&e)));
                false
            }
        }
    }
}

/// Names are used in events, file names and metrics labels: keep them plain.
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
