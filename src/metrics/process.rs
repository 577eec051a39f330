//! The standard `process_*` metrics of Prometheus client libraries (CPU time, memory, file
//! descriptors, threads, start time), read from `/proc/self` at scrape time. Elsewhere than
//! Linux, or when `/proc` cannot be read, the series that cannot be known are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::fmt;

/// Linux reports CPU times in `/proc/<pid>/stat` in USER_HZ ticks, which is 100 on every
/// architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub(super) struct ProcessCollector {
    /// Unix time the process started (the same value as `vast_supervisor_start_time_seconds`).
    pub(super) start_time: f64,
}

/// What `/proc/self` tells.
#[derive(Debug, Default, PartialEq)]
struct ProcessFacts {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    threads: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

fn read_facts() -> ProcessFacts {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    ProcessFacts {
        open_fds,
        ..parse_facts(&stat, &status, &limits)
    }
}

fn parse_facts(stat: &str, status: &str, limits: &str) -> ProcessFacts {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let cpu_seconds = match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Some((u + s) / TICKS_PER_SECOND),
        _ => None,
    };
    let status_kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    ProcessFacts {
        cpu_seconds,
        resident_bytes: status_kib("VmRSS:").map(|k| k * 1024.0),
        virtual_bytes: status_kib("VmSize:").map(|k| k * 1024.0),
        threads: status_kib("Threads:"),
        open_fds: None,
        max_fds,
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let facts = read_facts();
        if let Some(cpu) = facts.cpu_seconds {
            ConstCounter::new(cpu).encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                facts.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                facts.virtual_bytes,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                facts.threads,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                facts.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                facts.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Some(self.start_time),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                ConstGauge::new(v).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Gauge,
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_past_a_command_name_with_spaces() {
        let stat =
            "4242 (vast supervisor) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 7 0";
        let status = "Name:\tvast\nVmSize:\t  204800 kB\nVmRSS:\t   40960 kB\nThreads:\t7\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        let facts = parse_facts(stat, status, limits);
        assert_eq!(facts.cpu_seconds, Some(3.8));
        assert_eq!(facts.resident_bytes, Some(40960.0 * 1024.0));
        assert_eq!(facts.virtual_bytes, Some(204800.0 * 1024.0));
        assert_eq!(facts.threads, Some(7.0));
        assert_eq!(facts.max_fds, Some(1024.0));
        assert_eq!(parse_facts("", "", ""), ProcessFacts::default());
    }

    #[test]
    fn this_process_is_readable() {
        let facts = read_facts();
        assert!(facts.cpu_seconds.is_some() && facts.resident_bytes.unwrap() > 0.0);
        assert!(facts.open_fds.unwrap() >= 1.0);
    }
}
