//! Planning a configuration reload (SPEC §8), as a pure function: the versions of each file now in
//! force + a fresh load of the directory -> the new versions in force and what to start, stop or
//! restart. A rejected file keeps its previous version; a removed file takes its accounts and
//! targets with it. Accounts and targets are compared by content (not by where they are written),
//! so a reload that only moves lines or edits comments restarts nothing. The supervisor applies
//! the plan; this module does no I/O.

use crate::config::{AccountConfig, FileConfig, FileOutcome, LoadedConfig, Origin, TargetConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What changed for one kind of actor.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// A rejected file and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub path: String,
    pub errors: Vec<String>,
    /// Whether an earlier version of the file stays in force.
    pub previous_kept: bool,
}

/// What a reload did, as printed by `vast-supervisor reload` and carried by `config_reloaded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReloadReport {
    pub accounts: Changes,
    pub targets: Changes,
    pub rejected: Vec<Rejected>,
    /// Targets that were disabled after a permanent failure and are started afresh.
    pub reenabled: Vec<String>,
}

/// The outcome of planning.
#[derive(Debug, Clone)]
pub struct ReloadPlan {
    pub in_force: BTreeMap<PathBuf, FileConfig>,
    /// Accounts to start (new or changed), and names to stop (removed or changed).
    pub start_accounts: Vec<AccountConfig>,
    pub stop_accounts: Vec<String>,
    pub start_targets: Vec<TargetConfig>,
    pub stop_targets: Vec<String>,
    pub report: ReloadReport,
}

fn without_origin_account(a: &AccountConfig) -> AccountConfig {
    AccountConfig {
        origin: Origin::default(),
        ..a.clone()
    }
}

fn without_origin_target(t: &TargetConfig) -> TargetConfig {
    TargetConfig {
        origin: Origin::default(),
        ..t.clone()
    }
}

/// Every account and target of the versions in force, by name.
pub fn running(
    in_force: &BTreeMap<PathBuf, FileConfig>,
) -> (
    BTreeMap<String, AccountConfig>,
    BTreeMap<String, TargetConfig>,
) {
    let mut accounts = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for file in in_force.values() {
        for a in &file.accounts {
            accounts.insert(a.name.clone(), a.clone());
        }
        for t in &file.targets {
            targets.insert(t.name.clone(), t.clone());
        }
    }
    (accounts, targets)
}

/// The versions in force right after start-up: every file that loaded.
pub fn initial(loaded: &LoadedConfig) -> BTreeMap<PathBuf, FileConfig> {
    loaded
        .files
        .iter()
        .filter_map(|f| match f {
            FileOutcome::Ok(fc) => Some((fc.path.clone(), fc.clone())),
            FileOutcome::Rejected { .. } => None,
        })
        .collect()
}

/// Plans a reload. `disabled_targets` are targets currently disabled by a permanent failure:
/// a reload re-enables them by starting them afresh.
pub fn plan(
    current: &BTreeMap<PathBuf, FileConfig>,
    loaded: &LoadedConfig,
    disabled_targets: &[String],
) -> ReloadPlan {
    let mut in_force = BTreeMap::new();
    let mut rejected = Vec::new();
    for outcome in &loaded.files {
        match outcome {
            FileOutcome::Ok(fc) => {
                in_force.insert(fc.path.clone(), fc.clone());
            }
            FileOutcome::Rejected { path, diagnostics } => {
                let previous = current.get(path);
                if let Some(prev) = previous {
                    in_force.insert(path.clone(), prev.clone());
                }
                rejected.push(Rejected {
                    path: path.display().to_string(),
                    errors: diagnostics.iter().map(|d| d.to_string()).collect(),
                    previous_kept: previous.is_some(),
                });
            }
        }
    }
    let (old_accounts, old_targets) = running(current);
    let (new_accounts, new_targets) = running(&in_force);

    let mut report = ReloadReport {
        rejected,
        ..Default::default()
    };
    let mut start_accounts = Vec::new();
    let mut stop_accounts = Vec::new();
    for (name, new) in &new_accounts {
        match old_accounts.get(name) {
            None => {
                report.accounts.added.push(name.clone());
                start_accounts.push(new.clone());
            }
            Some(old) if without_origin_account(old) != without_origin_account(new) => {
                report.accounts.changed.push(name.clone());
                stop_accounts.push(name.clone());
                start_accounts.push(new.clone());
            }
            Some(_) => report.accounts.unchanged.push(name.clone()),
        }
    }
    for name in old_accounts
        .keys()
        .filter(|n| !new_accounts.contains_key(*n))
    {
        report.accounts.removed.push(name.clone());
        stop_accounts.push(name.clone());
    }

    let mut start_targets = Vec::new();
    let mut stop_targets = Vec::new();
    for (name, new) in &new_targets {
        match old_targets.get(name) {
            None => {
                report.targets.added.push(name.clone());
                start_targets.push(new.clone());
            }
            Some(old) if without_origin_target(old) != without_origin_target(new) => {
                report.targets.changed.push(name.clone());
                stop_targets.push(name.clone());
                start_targets.push(new.clone());
            }
            Some(_) if disabled_targets.contains(name) => {
                report.reenabled.push(name.clone());
                stop_targets.push(name.clone());
                start_targets.push(new.clone());
            }
            Some(_) => report.targets.unchanged.push(name.clone()),
        }
    }
    for name in old_targets.keys().filter(|n| !new_targets.contains_key(*n)) {
        report.targets.removed.push(name.clone());
        stop_targets.push(name.clone());
    }
    ReloadPlan {
        in_force,
        start_accounts,
        stop_accounts,
        start_targets,
        stop_targets,
        report,
    }
}

impl ReloadReport {
    /// Whether the reload started, stopped or restarted anything (a rejected file alone changes
    /// nothing: its previous version stays).
    pub fn changed_anything(&self) -> bool {
        !self.change_lines().is_empty()
    }

    /// One human line per account or target added, changed, removed or re-enabled.
    pub fn change_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, c) in [("account", &self.accounts), ("target", &self.targets)] {
            for n in &c.added {
                out.push(format!("{what} {n}: added"));
            }
            for n in &c.changed {
                out.push(format!("{what} {n}: changed, restarted"));
            }
            for n in &c.removed {
                out.push(format!("{what} {n}: removed"));
            }
        }
        for n in &self.reenabled {
            out.push(format!("target {n}: re-enabled"));
        }
        out
    }

    /// One human line per change and per rejected file, for `vast-supervisor reload` and the
    /// event text.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.change_lines();
        for r in &self.rejected {
            let kept = if r.previous_kept {
                "previous version stays in force"
            } else {
                "not applied"
            };
            out.push(format!("{}: rejected ({kept})", r.path));
            out.extend(r.errors.iter().map(|e| format!("  {e}")));
        }
        if out.is_empty() {
            out.push("no changes".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir_with_env;
    use std::fs;

    fn write(dir: &std::path::Path, name: &str, body: &str) {
        fs::write(dir.join("conf.d").join(name), body).unwrap();
    }

    fn account(name: &str, poll: &str) -> String {
        format!(
            "[[account]]\nname = \"{name}\"\napi_key = \"k-{name}\"\npoll_interval = \"{poll}\"\n"
        )
    }

    fn load(dir: &std::path::Path) -> LoadedConfig {
        load_dir_with_env(dir, &|_| None)
    }

    #[test]
    fn per_file_plan_keeps_rejected_files_and_restarts_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        write(dir.path(), "10-a.toml", &account("a", "30s"));
        write(dir.path(), "20-b.toml", &account("b", "30s"));
        write(dir.path(), "30-c.toml", &account("c", "30s"));
        write(
            dir.path(),
            "40-t.toml",
            "[[target]]\nname = \"log\"\nurl = \"console://\"\n",
        );
        let first = load(dir.path());
        assert!(first.is_valid());
        let current = initial(&first);

        // a: only a comment added (no restart); b: changed; c: broken; d: new; t: disabled.
        write(
            dir.path(),
            "10-a.toml",
            &format!("# comment\n{}", account("a", "30s")),
        );
        write(dir.path(), "20-b.toml", &account("b", "45s"));
        write(
            dir.path(),
            "30-c.toml",
            "[[account]]\nname = \"c\"\npoll_intervall = \"30s\"\n",
        );
        write(dir.path(), "50-d.toml", &account("d", "30s"));
        let p = plan(&current, &load(dir.path()), &["log".to_string()]);
        assert_eq!(p.report.accounts.added, ["d"]);
        assert_eq!(p.report.accounts.changed, ["b"]);
        assert_eq!(
            p.report.accounts.unchanged,
            ["a", "c"],
            "c keeps its previous version"
        );
        assert!(p.report.accounts.removed.is_empty());
        assert_eq!(p.report.rejected.len(), 1);
        assert!(p.report.rejected[0].path.ends_with("30-c.toml"));
        assert!(p.report.rejected[0].previous_kept);
        assert_eq!(p.report.reenabled, ["log"]);
        assert_eq!(p.stop_accounts, ["b"]);
        let started: Vec<&str> = p.start_accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(started, ["b", "d"]);

        assert!(p.report.changed_anything());

        // The same files again: nothing changes, though the broken file is still rejected.
        let same = plan(&p.in_force, &load(dir.path()), &[]);
        assert!(!same.report.changed_anything(), "{:?}", same.report);
        assert_eq!(same.report.rejected.len(), 1);
        assert!(same.start_accounts.is_empty() && same.stop_accounts.is_empty());

        // Removing a file removes its account.
        fs::remove_file(dir.path().join("conf.d/50-d.toml")).unwrap();
        let p2 = plan(&p.in_force, &load(dir.path()), &[]);
        assert_eq!(p2.report.accounts.removed, ["d"]);
        assert_eq!(p2.stop_accounts, ["d"]);
        assert!(p2.report.lines().iter().any(|l| l == "account d: removed"));
    }
}
