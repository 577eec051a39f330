//! `vast-supervisor import vast-monitor CONFIG.json --to DIR [--snapshots DIR]` (SPEC §14): moving
//! in from vast-monitor in one command. Owns the command: what it reads, the files it writes
//! (conf.d file, 0600 key and URL files), the state it imports and what it reports. It never
//! prints a secret and never replaces a file or a machine's state without being asked.
//!
//! - [`vast_monitor`]: its `config.json` -> account, targets, event filters, conf.d text.
//! - [`apprise`]: Apprise URLs -> our target URLs.
//! - [`snapshots`]: its state files -> machine states (built by `detect`) in the state database.
//!
//! Exit codes: 0 done (items that could not be converted are reported and left out), 1 a file
//! or the database could not be written, 2 bad input (with a message naming the file).

pub mod apprise;
pub mod snapshots;
pub mod vast_monitor;

use crate::cli::ImportArgs;
use crate::config::{self, FileOutcome, LoadedConfig};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vast_monitor::{MonitorConfig, Plan};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Bad input: a file that cannot be read or understood, a name in use, a file in the way.
    #[error("{0}")]
    Input(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database {path}: {error}")]
    Store { path: PathBuf, error: String },
}

impl ImportError {
    /// SPEC §3: 2 for bad input, 1 for a failure to write.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Input(_) => 2,
            ImportError::Write { .. } | ImportError::Store { .. } => 1,
        }
    }
}

/// A file to write, relative to the destination directory.
struct Output {
    relative: String,
    contents: Vec<u8>,
    mode: u32,
}

/// Runs the import and reports to `out`; the caller prints the error and exits with its code.
pub fn vast_monitor(
    opts: &ImportArgs,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), ImportError> {
    if let Some(problem) = crate::config::parse::name_problem(&opts.account) {
        return Err(ImportError::Input(format!("--account: {problem}")));
    }
    let source = MonitorConfig::read(&opts.config_json)?;
    let existing = opts.to.is_dir().then(|| config::load_dir(&opts.to));
    let taken = taken_names(existing.as_ref(), &opts.account)?;
    let plan = vast_monitor::plan(&source, &opts.account, &taken);

    let imported = match &opts.snapshots {
        Some(dir) => Some(snapshots::read(dir, source.machine_ids(), now)?),
        None => None,
    };
    let outputs = outputs(&plan, &source, &opts.config_json);
    let in_the_way: Vec<String> = outputs
        .iter()
        .map(|o| opts.to.join(&o.relative))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !in_the_way.is_empty() && !opts.force {
        return Err(ImportError::Input(format!(
            "{} already exist(s); nothing was written (--force replaces them)",
            in_the_way.join(", ")
        )));
    }
    let mut destination = match &imported {
        Some(imported) => {
            let state_dir = state_dir(opts, existing.as_ref())?;
            let mut destination = snapshots::Destination::open(&state_dir)?;
            destination.check_free(&opts.account, &imported.machines)?;
            Some((destination, state_dir))
        }
        None => None,
    };

    for output in &outputs {
        write_file(&opts.to, output, opts.force)?;
        let _ = writeln!(
            out,
            "wrote {} (mode {:o})",
            opts.to.join(&output.relative).display(),
            output.mode
        );
        if output.mode & 0o040 != 0 {
            if let Some(note) = share_with_daemon_group(&opts.to, &output.relative) {
                let _ = writeln!(out, "note: {note}");
            }
        }
    }
    report_plan(&plan, out);
    match (imported, destination.take()) {
        (Some(imported), Some((destination, state_dir))) => {
            let ownership = destination.commit(&opts.account, &imported.machines, now)?;
            for note in imported.notes.iter().chain(ownership.iter()) {
                let _ = writeln!(out, "note: {note}");
            }
            let _ = writeln!(
                out,
                "imported {} machine state(s) into {}",
                imported.machines.len(),
                state_dir.join("state.db").display()
            );
            for c in &imported.continued {
                let _ = writeln!(
                    out,
                    "continued: machine {} rental {} ({}) since {}: no rental_start is sent for it",
                    c.machine_id,
                    c.rental_id,
                    c.status.as_str(),
                    c.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "note: without --snapshots the first poll adopts rentals in progress with an unknown \
                 start time (still without rental_start)"
            );
        }
    }
    let loaded = config::load_dir(&opts.to);
    let mut problems = Vec::new();
    let code = config::check::report(&loaded, out, &mut problems).unwrap_or(1);
    if code != 0 {
        return Err(ImportError::Input(format!(
            "the files are written, but the configuration in {} does not pass check:\n{}",
            opts.to.display(),
            String::from_utf8_lossy(&problems).trim_end()
        )));
    }
    let _ = writeln!(
        out,
        "next: make {} and {} readable by the daemon's user, then start or reload the daemon",
        opts.to.join("keys").display(),
        opts.to.join("secrets").display()
    );
    Ok(())
}

/// Target names the destination uses already; fails if the account name is one of its accounts.
fn taken_names(
    existing: Option<&LoadedConfig>,
    account: &str,
) -> Result<BTreeSet<String>, ImportError> {
    let Some(loaded) = existing else {
        return Ok(BTreeSet::new());
    };
    if let Some(a) = loaded.accounts().into_iter().find(|a| a.name == account) {
        return Err(ImportError::Input(format!(
            "account \"{account}\" is already configured in {}: choose another name with --account",
            a.origin.file.display()
        )));
    }
    Ok(loaded.targets().iter().map(|t| t.name.clone()).collect())
}

/// `--state-dir`, else the `state_dir` of the destination's main file (which must be valid).
fn state_dir(opts: &ImportArgs, existing: Option<&LoadedConfig>) -> Result<PathBuf, ImportError> {
    if let Some(dir) = &opts.state_dir {
        return Ok(dir.clone());
    }
    let main = opts.to.join(config::MAIN_FILE_NAME);
    let rejected = existing.is_some_and(|loaded| {
        loaded
            .files
            .iter()
            .any(|f| matches!(f, FileOutcome::Rejected { path, .. } if *path == main))
    });
    if rejected {
        return Err(ImportError::Input(format!(
            "{} does not pass check, so its state_dir is unknown: fix it or pass --state-dir",
            main.display()
        )));
    }
    Ok(existing.map_or_else(
        || PathBuf::from(config::DEFAULT_STATE_DIR),
        |l| l.globals.state_dir.clone(),
    ))
}

fn outputs(plan: &Plan, source: &MonitorConfig, config_json: &Path) -> Vec<Output> {
    let account = &plan.account.name;
    let line = |s: &str| format!("{s}\n").into_bytes();
    let mut outputs = vec![
        Output {
            relative: format!("{}/50-{account}.toml", config::CONF_D),
            contents: vast_monitor::render(plan, config_json).into_bytes(),
            mode: 0o640,
        },
        Output {
            relative: vast_monitor::key_file(account),
            contents: line(source.api_key().expose()),
            mode: 0o600,
        },
    ];
    for target in &plan.targets {
        outputs.push(Output {
            relative: vast_monitor::url_file(&target.name),
            contents: line(target.url.expose()),
            mode: 0o600,
        });
        if let Some(bearer) = &target.bearer {
            outputs.push(Output {
                relative: vast_monitor::bearer_file(&target.name),
                contents: line(bearer.expose()),
                mode: 0o600,
            });
        }
    }
    outputs
}

/// Writes one file with its mode from the first byte (a secret is never readable by others,
/// not even briefly). Missing directories are created 0750.
fn write_file(dir: &Path, output: &Output, replace: bool) -> Result<(), ImportError> {
    let path = dir.join(&output.relative);
    let failed = |source| ImportError::Write {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(output.mode);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&path).map_err(failed)?;
    // A replaced file keeps its old mode unless told otherwise.
    file.set_permissions(std::fs::Permissions::from_mode(output.mode))
        .map_err(failed)?;
    file.write_all(&output.contents).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// A group-readable file takes the group of `keys/` (root:vast-supervisor where the packages
/// made it), so the daemon reads it as it reads the packaged configuration files.
fn share_with_daemon_group(dir: &Path, relative: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(relative);
    let group = std::fs::metadata(dir.join("keys")).ok()?.gid();
    if std::fs::metadata(&path).ok()?.gid() == group {
        return None;
    }
    std::os::unix::fs::chown(&path, None, Some(group))
        .err()
        .map(|e| {
            format!(
                "cannot give {} the group of {} ({e}): the daemon must be able to read it",
                path.display(),
                dir.join("keys").display()
            )
        })
}

fn report_plan(plan: &Plan, out: &mut dyn Write) {
    let a = &plan.account;
    let _ = writeln!(
        out,
        "account \"{}\": {} machine(s), poll_interval {} s",
        a.name,
        a.machines.len(),
        a.poll_interval.as_secs()
    );
    for target in &plan.targets {
        let events = match &target.events {
            None => "every event".to_string(),
            Some(kinds) => format!("{} event kinds", kinds.len()),
        };
        let _ = writeln!(
            out,
            "target \"{}\" (from {}): {}, {events}",
            target.name,
            target.source,
            crate::config::redact_url(target.url.expose())
        );
        for note in &target.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    for skip in &plan.skipped {
        let _ = writeln!(out, "not converted: {}: {}", skip.item, skip.reason);
    }
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
}
