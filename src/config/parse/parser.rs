//! The state of one file's walk: the file and its line index, where relative paths start, the
//! environment lookup, the problems found so far and the names the file declares. Owns reporting a
//! problem at its `line:col` and the names declared in this file; must not know any table's keys
//! (those are the tables in `parse`).

use super::document::{Entry, TableRef};
use crate::config::diagnostic::{Diagnostic, LineIndex};
use crate::config::outcome::Declared;
use std::path::{Path, PathBuf};
use toml_edit::{Item, Value};

/// Which kind of table a declared name belongs to.
#[derive(Clone, Copy)]
pub(super) enum Declares {
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

pub(super) struct Parser<'a> {
    pub path: &'a Path,
    /// Where relative paths (secret files, `state_dir`, ...) start: the file's directory.
    pub base_dir: PathBuf,
    pub lines: LineIndex<'a>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub diagnostics: Vec<Diagnostic>,
    pub declared_accounts: Vec<Declared>,
    pub declared_targets: Vec<Declared>,
    /// Account names listed in targets' `accounts` filters.
    pub account_refs: Vec<Declared>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(
        path: &'a Path,
        text: &'a str,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Parser<'a> {
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Parser {
            path,
            base_dir,
            lines: LineIndex::new(text),
            env,
            diagnostics: Vec::new(),
            declared_accounts: Vec::new(),
            declared_targets: Vec::new(),
            account_refs: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, offset: usize, message: String) {
        let diagnostic = self.lines.diagnostic(self.path, offset, message);
        self.diagnostics.push(diagnostic);
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.lines.position(offset).0
    }

    /// The tables of an array of tables (`[[name]]` or `name = [{...}]`), each with its offset.
    pub(super) fn tables_of<'d>(
        &mut self,
        entry: &Entry<'d>,
        name: &str,
    ) -> Vec<(TableRef<'d>, usize)> {
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

    /// Records a table's name, or reports a duplicate within this file.
    pub(super) fn declare(&mut self, what: Declares, name: &str, at: usize) {
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
}
