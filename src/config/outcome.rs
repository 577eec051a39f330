//! What one configuration file yields: its definitions ([`FileConfig`]) or its problems, and the
//! facts the cross-file checks need ([`FileAnalysis`]). Plain data shared by `parse` (which fills
//! it for one file) and `load` (which checks files against each other); it must not read files or
//! parse anything itself.

use super::diagnostic::Diagnostic;
use super::model::{AccountConfig, Globals, TargetConfig};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// A file that parsed and validated: what it defines.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Hash of the file's bytes, to tell on reload whether the file changed. Only comparable
    /// within one process. Secrets read from other files or the environment are not part of it.
    pub hash: u64,
    pub accounts: Vec<AccountConfig>,
    pub targets: Vec<TargetConfig>,
    /// The global settings; `Some` for the main file only.
    pub globals: Option<Globals>,
}

/// The result for one file: everything it defines, or every problem found in it.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    Ok(FileConfig),
    Rejected {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

impl FileOutcome {
    pub fn path(&self) -> &Path {
        match self {
            FileOutcome::Ok(file) => &file.path,
            FileOutcome::Rejected { path, .. } => path,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, FileOutcome::Ok(_))
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            FileOutcome::Ok(_) => &[],
            FileOutcome::Rejected { diagnostics, .. } => diagnostics,
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
    pub(crate) fn failed(path: &Path, diagnostic: Diagnostic) -> FileAnalysis {
        FileAnalysis {
            path: path.to_path_buf(),
            hash: 0,
            accounts: Vec::new(),
            targets: Vec::new(),
            globals: None,
            diagnostics: vec![diagnostic],
            declared_accounts: Vec::new(),
            declared_targets: Vec::new(),
            account_refs: Vec::new(),
        }
    }

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
