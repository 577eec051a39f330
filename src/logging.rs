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
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    journal_stream_names(&value, meta.dev(), meta.ino())
}

/// Whether a `JOURNAL_STREAM` value (`"<device>:<inode>"`, decimal) names the file with this
/// device and inode numbers.
fn journal_stream_names(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
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
    // A line that cannot be written (stderr on a full disk) is lost quietly: reporting it would
    // print to that same stderr, and the failed print would panic.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let result = match (format, journal) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::journal_stream_names;

    #[test]
    fn journal_stream_must_name_exactly_our_stderr() {
        assert!(journal_stream_names("8:12345", 8, 12345));
        assert!(journal_stream_names("0:1", 0, 1));
        assert!(!journal_stream_names("8:12345", 8, 12346), "another inode");
        assert!(!journal_stream_names("9:12345", 8, 12345), "another device");
        for bad in [
            "",
            "8",
            "8:",
            ":12345",
            "8:12345:1",
            " 8:12345",
            "8:0x3039",
            "-8:12345",
        ] {
            assert!(!journal_stream_names(bad, 8, 12345), "{bad:?} is rejected");
        }
    }

    #[test]
    fn a_real_file_is_recognised_by_its_device_and_inode() {
        use std::os::unix::fs::MetadataExt;
        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.as_file().metadata().unwrap();
        let value = format!("{}:{}", meta.dev(), meta.ino());
        assert!(journal_stream_names(&value, meta.dev(), meta.ino()));
        assert!(!journal_stream_names(&value, meta.dev(), meta.ino() + 1));
    }
}
