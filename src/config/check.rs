//! `vast-supervisor check`: loads a configuration directory and prints either every problem as
//! `path:line:col: message` or a one-line summary, plus warnings about a configuration that is
//! valid but probably not what was meant (they do not change the exit code). Printing only;
//! loading lives in `load`.

use super::load::{is_config_file_name, load_dir, LoadedConfig, CONF_D};
use super::model::MAIN_FILE_NAME;
use crate::util::counted;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Exit code when every file is valid.
pub const EXIT_OK: i32 = 0;
/// Exit code when the output could not be written.
pub const EXIT_RUNTIME_FAILURE: i32 = 1;
/// Exit code when a file has a problem (SPEC §3: usage or configuration error).
pub const EXIT_CONFIG_ERROR: i32 = 2;

/// Checks the configuration in `dir`: prints each problem to `err` and returns 2, or prints a
/// summary to `out` and returns 0.
pub fn check_command(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let loaded = load_dir(dir);
    report(&loaded, out, err).unwrap_or(EXIT_RUNTIME_FAILURE)
}

/// Prints the outcome of an already loaded configuration, as `check` does.
pub fn report(loaded: &LoadedConfig, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<i32> {
    for warning in warnings(loaded) {
        writeln!(err, "warning: {warning}")?;
    }
    let diagnostics = loaded.diagnostics();
    if !diagnostics.is_empty() {
        for diagnostic in diagnostics {
            writeln!(err, "{diagnostic}")?;
        }
        err.flush()?;
        return Ok(EXIT_CONFIG_ERROR);
    }
    writeln!(out, "{}", summary(loaded))?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// What is valid but probably not meant: `*.toml` files beside `conf.d` that are never read, and
/// (for a valid configuration) no file at all, or no target to notify.
pub fn warnings(loaded: &LoadedConfig) -> Vec<String> {
    let mut out: Vec<String> = stray_files(&loaded.dir)
        .iter()
        .map(|path| {
            format!(
                "{}: not read: only {MAIN_FILE_NAME} and {CONF_D}/*.toml are (move it into {CONF_D}/)",
                path.display()
            )
        })
        .collect();
    if !loaded.is_valid() {
        return out;
    }
    if loaded.files.is_empty() {
        out.push(format!(
            "{}: no configuration: neither {MAIN_FILE_NAME} nor {CONF_D}/*.toml; no account is watched",
            loaded.dir.display()
        ));
    } else if loaded.targets().is_empty() {
        out.push(
            "no [[target]]: events are kept and shown by `vast-supervisor events`, but nobody is notified"
                .to_string(),
        );
    }
    out
}

/// `*.toml` files in the configuration directory itself, other than the main file.
fn stray_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stray: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n != MAIN_FILE_NAME && is_config_file_name(n))
        })
        .map(|e| e.path())
        .collect();
    stray.sort();
    stray
}

/// "configuration OK: 3 files, 2 accounts (2 watching machines, 1 watching instances), 3 targets".
pub fn summary(loaded: &LoadedConfig) -> String {
    let accounts = loaded.accounts();
    let machines = accounts.iter().filter(|a| a.watch.machines).count();
    let instances = accounts.iter().filter(|a| a.watch.instances).count();
    format!(
        "configuration OK: {}, {} ({machines} watching machines, {instances} watching instances), {}",
        counted(loaded.files.len(), "file"),
        counted(accounts.len(), "account"),
        counted(loaded.targets().len(), "target"),
    )
}
