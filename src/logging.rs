//! Log output: `tracing` to stderr, text or JSON. Under journald (`JOURNAL_STREAM` names our
//! stderr) lines carry no timestamps or colours, since the journal adds its own, and start with a
//! `<N>` syslog priority so `journalctl -p` filters them. Colours only ever go to a terminal: a
//! file or a pipe gets plain text.

use crate::cli::LogFormat;
use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
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
    let colours = !journal && std::io::stderr().is_terminal();
    // A line that cannot be written (stderr on a full disk) is lost quietly: reporting it would
    // print to that same stderr, and the failed print would panic.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .log_internal_errors(false);
    let result = match (format, journal) {
        (LogFormat::Json, false) => builder.json().try_init(),
        (LogFormat::Json, true) => {
            let json = tracing_subscriber::fmt::format().json();
            builder.event_format(SyslogPrefix(json)).try_init()
        }
        (LogFormat::Text, true) => {
            let text = tracing_subscriber::fmt::format().without_time();
            builder.event_format(SyslogPrefix(text)).try_init()
        }
        (LogFormat::Text, false) => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)).
fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Puts `<N>` in front of each event the inner format writes.
struct SyslogPrefix<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::{journal_stream_names, syslog_priority};
    use tracing::Level;

    #[test]
    fn levels_map_to_syslog_priorities() {
        let priorities: Vec<u8> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .iter()
        .map(syslog_priority)
        .collect();
        assert_eq!(priorities, [3, 4, 6, 7, 7]);
    }

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
