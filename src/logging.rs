//! Log output: `tracing` to stderr, text or JSON. Under journald (`JOURNAL_STREAM` names our
//! stderr) lines carry no timestamps or colours, since the journal adds its own.

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM=dev:inode`).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

/// Installs the global subscriber. `RUST_LOG` overrides the level chosen by -v/-q.
pub fn init(format: LogFormat, verbose: u8, quiet: u8, quiet_by_default: bool) {
    let base: i32 = if quiet_by_default { 1 } else { 2 };
    let level = match base + i32::from(verbose) - i32::from(quiet) {
        i32::MIN..=0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match (format, journal) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
