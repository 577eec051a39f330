//! The configuration directory -> [`LoadedConfig`]: finds the main file and `conf.d/*.toml` in
//! their fixed order, parses each one on its own, then runs the checks that span files (names
//! unique across files, accounts named by targets). Every file gets its own [`FileOutcome`], so
//! one bad file never hides the others: reload applies the good ones and keeps the old version of
//! the bad one.

use super::diagnostic::{Diagnostic, LineIndex};
use super::files::{read_bounded, MAX_CONFIG_FILE};
use super::model::{AccountConfig, Globals, TargetConfig, MAIN_FILE_NAME};
use super::parse::{analyse_file, content_hash, Declared, FileAnalysis};
use crate::util::did_you_mean;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};

/// The sub-directory of the configuration directory that holds `*.toml` drop-in files.
pub const CONF_D: &str = "conf.d";

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

/// Every file of a configuration directory, in load order (main file first, then `conf.d` by
/// byte-wise name).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub dir: PathBuf,
    pub files: Vec<FileOutcome>,
    /// From the main file when it is valid, else the defaults.
    pub globals: Globals,
}

impl LoadedConfig {
    /// The accounts of every valid file.
    pub fn accounts(&self) -> Vec<&AccountConfig> {
        self.ok_files().flat_map(|f| &f.accounts).collect()
    }

    /// The targets of every valid file.
    pub fn targets(&self) -> Vec<&TargetConfig> {
        self.ok_files().flat_map(|f| &f.targets).collect()
    }

    pub fn ok_files(&self) -> impl Iterator<Item = &FileConfig> {
        self.files.iter().filter_map(|f| match f {
            FileOutcome::Ok(file) => Some(file),
            FileOutcome::Rejected { .. } => None,
        })
    }

    /// Every problem of every file, in load order.
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        self.files.iter().flat_map(|f| f.diagnostics()).collect()
    }

    /// The main file, when it exists and was rejected (its globals are then the defaults).
    pub fn rejected_main_file(&self) -> Option<&FileOutcome> {
        let main = self.dir.join(MAIN_FILE_NAME);
        self.files.iter().find(|f| !f.is_ok() && f.path() == main)
    }

    /// True when every file is valid.
    pub fn is_valid(&self) -> bool {
        self.files.iter().all(FileOutcome::is_ok)
    }
}

/// Loads `DIR/vast-supervisor.toml` (optional) and `DIR/conf.d/*.toml`, with environment
/// variables from the process environment.
pub fn load_dir(dir: &Path) -> LoadedConfig {
    load_dir_with_env(dir, &|name| std::env::var(name).ok())
}

/// [`load_dir`] with an injected environment lookup (tests, the demo).
pub fn load_dir_with_env(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> LoadedConfig {
    let mut analyses = Vec::new();
    match config_files(dir) {
        Err(diagnostic) => analyses.push(FileAnalysis::failed(dir, diagnostic)),
        Ok(files) => {
            for file in files {
                analyses.push(match file {
                    Listed::File { path, is_main } => analyse_path(&path, is_main, env),
                    Listed::Unreadable(diagnostic) => {
                        FileAnalysis::failed(&diagnostic.path.clone(), diagnostic)
                    }
                });
            }
        }
    }
    check_unique_names(dir, &mut analyses);
    check_account_references(&mut analyses);
    let files: Vec<FileOutcome> = analyses
        .into_iter()
        .map(FileAnalysis::into_outcome)
        .collect();
    let globals = files
        .iter()
        .find_map(|f| match f {
            FileOutcome::Ok(file) => file.globals.clone(),
            FileOutcome::Rejected { .. } => None,
        })
        .unwrap_or_default();
    LoadedConfig {
        dir: dir.to_path_buf(),
        files,
        globals,
    }
}

enum Listed {
    File { path: PathBuf, is_main: bool },
    Unreadable(Diagnostic),
}

/// Whether a `conf.d` entry is a configuration file: `*.toml`, minus editor and package-manager
/// leftovers.
pub fn is_config_file_name(name: &str) -> bool {
    name.ends_with(".toml")
        && !name.starts_with('.')
        && !name.ends_with('~')
        && !name.contains(".dpkg-")
        && !name.ends_with(".rpmnew")
        && !name.ends_with(".rpmsave")
        && !name.ends_with(".swp")
}

fn config_files(dir: &Path) -> Result<Vec<Listed>, Diagnostic> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(Diagnostic::whole_file(dir, "not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Diagnostic::whole_file(
                dir,
                "configuration directory does not exist",
            ))
        }
        Err(e) => {
            return Err(Diagnostic::whole_file(
                dir,
                format!("cannot read configuration directory: {e}"),
            ))
        }
    }
    let mut files = Vec::new();
    let main = dir.join(MAIN_FILE_NAME);
    // Not `exists()`: a main file that cannot even be looked at (a symlink loop, no permission)
    // must be reported, not taken for an absent one.
    if std::fs::symlink_metadata(&main).is_ok() {
        files.push(Listed::File {
            path: main,
            is_main: true,
        });
    }
    let conf_d = dir.join(CONF_D);
    let entries = match std::fs::read_dir(&conf_d) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => {
            files.push(Listed::Unreadable(Diagnostic::whole_file(
                conf_d,
                format!("cannot read directory: {e}"),
            )));
            return Ok(files);
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name()),
            Err(e) => files.push(Listed::Unreadable(Diagnostic::whole_file(
                &conf_d,
                format!("cannot list directory: {e}"),
            ))),
        }
    }
    // OsString orders by bytes on Unix: the byte-wise order SPEC §4 asks for.
    names.sort();
    for name in names {
        let Some(name_str) = name.to_str() else {
            // Not skipped silently: a file meant as configuration would be missing unnoticed.
            if is_config_file_name(&name.to_string_lossy()) {
                files.push(Listed::Unreadable(Diagnostic::whole_file(
                    conf_d.join(&name),
                    "the file name is not valid UTF-8: rename it, it is not read",
                )));
            }
            continue;
        };
        if !is_config_file_name(name_str) {
            continue;
        }
        let path = conf_d.join(&name);
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        files.push(Listed::File {
            path,
            is_main: false,
        });
    }
    Ok(files)
}

fn analyse_path(path: &Path, is_main: bool, env: &dyn Fn(&str) -> Option<String>) -> FileAnalysis {
    let bytes = match read_bounded(path, MAX_CONFIG_FILE) {
        Ok(bytes) => bytes,
        Err(e) => {
            let diagnostic = Diagnostic::whole_file(path, format!("cannot read file: {e}"));
            return FileAnalysis::failed(path, diagnostic);
        }
    };
    match std::str::from_utf8(&bytes) {
        Ok(text) => analyse_file(path, text, is_main, env),
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let diagnostic = LineIndex::new(valid).diagnostic(
                path,
                valid.len(),
                "the file is not valid UTF-8".into(),
            );
            let mut analysis = FileAnalysis::failed(path, diagnostic);
            analysis.hash = content_hash(&bytes);
            analysis
        }
    }
}

impl FileAnalysis {
    fn failed(path: &Path, diagnostic: Diagnostic) -> FileAnalysis {
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
}

/// A name defined again in a later file rejects the later file; the first definition stays.
/// Names from rejected files count too: on reload their previous version stays in force.
fn check_unique_names(dir: &Path, analyses: &mut [FileAnalysis]) {
    let relative = |path: &Path| path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let mut first_accounts: HashMap<String, String> = HashMap::new();
    let mut first_targets: HashMap<String, String> = HashMap::new();
    for analysis in analyses.iter_mut() {
        let location = |d: &Declared| format!("{}:{}", relative(&analysis.path), d.line);
        let mut new_diagnostics = Vec::new();
        for (kind, declared, first) in [
            ("account", &analysis.declared_accounts, &mut first_accounts),
            ("target", &analysis.declared_targets, &mut first_targets),
        ] {
            for d in declared {
                match first.get(&d.name) {
                    Some(there) => new_diagnostics.push(Diagnostic::new(
                        &analysis.path,
                        d.line,
                        d.col,
                        format!(
                            "duplicate {kind} name \"{}\" (first defined at {there})",
                            d.name
                        ),
                    )),
                    None => {
                        first.insert(d.name.clone(), location(d));
                    }
                }
            }
        }
        analysis.diagnostics.extend(new_diagnostics);
    }
}

/// A target's `accounts` filter must name accounts that exist in some file.
fn check_account_references(analyses: &mut [FileAnalysis]) {
    let known: BTreeSet<String> = analyses
        .iter()
        .flat_map(|a| a.declared_accounts.iter().map(|d| d.name.clone()))
        .collect();
    for analysis in analyses.iter_mut() {
        let mut new_diagnostics = Vec::new();
        for reference in &analysis.account_refs {
            if known.contains(&reference.name) {
                continue;
            }
            let name = &reference.name;
            let message = match did_you_mean(name, known.iter().map(String::as_str)) {
                Some(hint) => {
                    format!("unknown account \"{name}\" in accounts (did you mean \"{hint}\"?)")
                }
                None => {
                    format!("unknown account \"{name}\" in accounts (no [[account]] has this name)")
                }
            };
            new_diagnostics.push(Diagnostic::new(
                &analysis.path,
                reference.line,
                reference.col,
                message,
            ));
        }
        analysis.diagnostics.extend(new_diagnostics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_names() {
        for accepted in ["10-alice.toml", "a.b.toml", "x~y.toml"] {
            assert!(is_config_file_name(accepted), "{accepted}");
        }
        for ignored in [
            ".hidden.toml",
            "alice.toml~",
            "alice.toml.dpkg-dist",
            "alice.dpkg-old.toml",
            "alice.toml.rpmnew",
            "alice.toml.rpmsave",
            "alice.toml.swp",
            "alice.conf",
            "README",
        ] {
            assert!(!is_config_file_name(ignored), "{ignored}");
        }
    }
}
