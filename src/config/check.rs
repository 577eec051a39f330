//! `vast-supervisor check`: loads a configuration directory and prints either every problem as
//! `path:line:col: message` or a one-line summary. Printing only; loading lives in `load`.

use super::load::{load_dir, LoadedConfig};
use std::io::{self, Write};
use std::path::Path;

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

fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
