//! `cargo run --release --example loadtest -- [OPTIONS] [COMMAND]`: the SPEC §10 measurements
//! of docs/BENCHMARKS.md.
//!
//! - no command: one load run (defaults: the SPEC density, 100 accounts x 50 machines x 10
//!   instances at a 30 s poll, 2 rental changes per second for 120 s);
//! - `throughput`: load runs at shorter and shorter (bench-only) poll intervals, to find the
//!   observations-per-second ceiling per core;
//! - `pipeline`: decode + detection + commit of one account's machine list on one thread;
//! - `all`: density, latency, throughput and pipeline in a row, then the table for the docs.
//!
//! The supervisor runs as a child process: this program starts itself again as
//! `loadtest daemon run --config DIR`, which is the binary's own `run` (same parser, same
//! `daemon::run`), so its memory and CPU are measured apart from the simulator's.

mod harness;
mod pipeline;

use clap::{Args, Parser, Subcommand};
use harness::{Launcher, LoadReport, LoadSpec, Stats};
use std::path::PathBuf;
use std::time::Duration;
use vast_supervisor::util::parse_duration;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "SPEC §10 measurements against the simulated cloud"
)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
    /// Also write every figure as JSON to this file
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Args, Clone)]
struct LoadArgs {
    #[arg(long, global = true, default_value_t = 100)]
    accounts: usize,
    /// Machines per account
    #[arg(long, global = true, default_value_t = 50)]
    machines: usize,
    /// Instances per account
    #[arg(long, global = true, default_value_t = 10)]
    instances: usize,
    /// Poll interval; below 10 s it is set with the bench-only `--test-poll-interval`
    #[arg(long, global = true, default_value = "30s", value_parser = duration)]
    poll: Duration,
    /// Rental changes per second
    #[arg(long, global = true, default_value_t = 2.0)]
    rate: f64,
    /// The measured window
    #[arg(long, global = true, default_value = "120s", value_parser = duration)]
    duration: Duration,
    /// Ask for `status` this often during the window (0: never)
    #[arg(long, global = true, default_value = "5s", value_parser = duration)]
    status_every: Duration,
    /// Skip the reload measurement
    #[arg(long, global = true)]
    no_reload: bool,
    /// Serve the dashboard and time its pages, its API and (with Chromium and chromedriver
    /// installed) its first render in a browser after the window
    #[arg(long, global = true)]
    dashboard: bool,
    /// Keep IDLE idle connections and FOLLOW `events --follow` clients on the control socket
    /// during the window, e.g. `200,8` (status is then measured among them)
    #[arg(long, global = true, value_name = "IDLE,FOLLOW", value_parser = crowd)]
    control_crowd: Option<(usize, usize)>,
    #[arg(long, global = true, default_value_t = 0x10ad)]
    seed: u64,
}

impl LoadArgs {
    fn spec(&self) -> LoadSpec {
        LoadSpec {
            accounts: self.accounts,
            machines: self.machines,
            instances: self.instances,
            gpus_per_machine: 4,
            poll: self.poll,
            rate: self.rate,
            duration: self.duration,
            status_every: (!self.status_every.is_zero()).then_some(self.status_every),
            reload: !self.no_reload,
            dashboard: self.dashboard,
            browser: self.dashboard,
            seed: self.seed,
            crowd: self.control_crowd,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Load runs at each poll interval; each run lasts --duration
    Throughput {
        #[arg(long, default_value = "1s,100ms,10ms", value_delimiter = ',', value_parser = duration)]
        polls: Vec<Duration>,
    },
    /// Decode + detection + commit of one account's machine list on one thread
    Pipeline {
        #[arg(long, default_value_t = 50)]
        machines: usize,
        #[arg(long, default_value_t = 2000)]
        polls: usize,
    },
    /// Every measurement of docs/BENCHMARKS.md, then its table
    All {
        /// Shorten every window (a quick look; the docs use the defaults)
        #[arg(long)]
        quick: bool,
    },
}

fn crowd(s: &str) -> Result<(usize, usize), String> {
    let (idle, follow) = s
        .split_once(',')
        .ok_or("expected IDLE,FOLLOW such as 200,8")?;
    Ok((
        idle.trim().parse().map_err(|e| format!("{e}"))?,
        follow.trim().parse().map_err(|e| format!("{e}"))?,
    ))
}

fn duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("daemon") {
        return run_daemon(&args[2..]);
    }
    let cli = Cli::parse();
    let launcher = Launcher {
        program: std::env::current_exe()?,
        leading_args: vec!["daemon".into()],
    };
    let mut out = serde_json::Map::new();
    match &cli.command {
        None => {
            let report = harness::run(&cli.load.spec(), &launcher)?;
            print_load("load", &report);
            out.insert("load".into(), serde_json::to_value(&report)?);
        }
        Some(Cmd::Throughput { polls }) => {
            let runs = throughput(&cli.load, polls, &launcher)?;
            out.insert("throughput".into(), serde_json::to_value(&runs)?);
        }
        Some(Cmd::Pipeline { machines, polls }) => {
            let report = run_pipeline(*machines, *polls)?;
            out.insert("pipeline".into(), serde_json::to_value(&report)?);
        }
        Some(Cmd::All { quick }) => {
            let all = run_all(*quick, &launcher)?;
            out = all;
        }
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(())
}

/// The child: exactly what `vast-supervisor run` does.
fn run_daemon(args: &[String]) -> anyhow::Result<()> {
    use vast_supervisor::cli::{Cli as DaemonCli, Command};
    let cli = DaemonCli::parse_from(
        std::iter::once("vast-supervisor".to_string()).chain(args.iter().cloned()),
    );
    vast_supervisor::logging::init(cli.log_format, cli.verbose, cli.quiet, false);
    match cli.command {
        Command::Run {
            test_poll_interval,
            test_offline_grace,
        } => vast_supervisor::daemon::run(vast_supervisor::daemon::RunOptions {
            config_dir: cli.config,
            poll_interval_override: test_poll_interval,
            offline_grace_override: test_offline_grace,
        }),
        other => anyhow::bail!("the loadtest child only runs the daemon, not {other:?}"),
    }
}

fn throughput(
    load: &LoadArgs,
    polls: &[Duration],
    launcher: &Launcher,
) -> anyhow::Result<Vec<LoadReport>> {
    let mut runs = Vec::new();
    for poll in polls {
        let mut spec = load.spec();
        spec.poll = *poll;
        spec.reload = false;
        spec.status_every = None;
        let report = harness::run(&spec, launcher)?;
        print_load(&format!("throughput, poll {}", fmt_dur(*poll)), &report);
        runs.push(report);
    }
    Ok(runs)
}

fn run_pipeline(machines: usize, polls: usize) -> anyhow::Result<pipeline::PipelineReport> {
    let bodies = pipeline::bodies(machines)?;
    let dir = tempfile::tempdir()?;
    let report = pipeline::run(&bodies, polls, &dir.path().join("state.db"))?;
    let per_obs_us = |s: f64| s / report.observations as f64 * 1e6;
    println!("== pipeline: {machines} machines x {polls} polls on one thread");
    println!(
        "   {:.0} observations/s ({} observations, {} events, body {} bytes)",
        report.observations_per_s, report.observations, report.events, report.body_bytes
    );
    println!(
        "   per observation: decode {:.2} us, detect {:.2} us, encode state {:.2} us, summary {:.2} us, commit {:.2} us",
        per_obs_us(report.decode_s),
        per_obs_us(report.detect_s),
        per_obs_us(report.encode_s),
        per_obs_us(report.summary_s),
        per_obs_us(report.commit_s)
    );
    Ok(report)
}

fn fmt_dur(d: Duration) -> String {
    vast_supervisor::util::format_duration(d)
}

fn fmt_stats(s: &Stats) -> String {
    if s.n == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        s.p50, s.p99, s.max, s.n
    )
}

fn print_load(title: &str, r: &LoadReport) {
    println!(
        "== {title}: {} accounts, {} machines, {} instances, poll {:.0} ms, window {:.0} s",
        r.accounts, r.machines_total, r.instances_total, r.poll_ms, r.window_s
    );
    println!(
        "   ready {:.0} ms; first request {:.0} ms; all first polls {:.0} ms; startup summary {}",
        r.ready_ms,
        r.first_request_ms,
        r.all_first_polls_ms,
        r.startup_summary_ms
            .map_or("-".into(), |v| format!("{v:.0} ms"))
    );
    println!(
        "   RSS {:.1} MiB (peak {:.1} MiB); CPU {:.2}% of a core (harness {:.1}%); start-up CPU {:.2} s",
        r.rss_mib,
        r.hwm_mib,
        r.cpu_fraction * 100.0,
        r.harness_cpu_fraction * 100.0,
        r.startup_cpu_s
    );
    println!(
        "   {:.0} machine observations/s; {:.0} per CPU second of the supervisor",
        r.observations_per_s, r.observations_per_cpu_s
    );
    let routes: Vec<String> = r
        .requests_by_route
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    println!(
        "   API requests per account per minute: {:.2} ({:.2} per poll, a poll every {:.1} s; {})",
        r.requests_per_account_per_min,
        r.requests_per_poll,
        r.mean_poll_interval_ms / 1000.0,
        routes.join(", ")
    );
    println!(
        "   changes {}, delivered {}, unexpected {}{}",
        r.changes,
        r.delivered,
        r.unexpected.len(),
        if r.unexpected.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                r.unexpected
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    );
    println!(
        "   poll that saw the change -> webhook: {}",
        fmt_stats(&r.pipeline_latency_ms)
    );
    println!(
        "   change -> webhook:                   {}",
        fmt_stats(&r.change_latency_ms)
    );
    if r.status_ms.n > 0 {
        println!(
            "   status: {} ({} bytes)",
            fmt_stats(&r.status_ms),
            r.status_bytes
        );
    }
    if let Some(d) = &r.dashboard {
        for p in &d.paths {
            println!(
                "   GET {:<24} {} ({} bytes)",
                p.path,
                fmt_stats(&p.ms),
                p.bytes
            );
        }
        if let (Some(paint), Some(load)) = (&d.first_paint_ms, &d.load_ms) {
            println!(
                "   browser: first contentful paint of / {}",
                fmt_stats(paint)
            );
            println!(
                "   browser: load event of /               {}",
                fmt_stats(load)
            );
        }
    }
    if let (Some(a), Some(b)) = (r.reload_unchanged_ms, r.reload_all_changed_ms) {
        println!("   reload: unchanged files {a:.0} ms, every account file changed {b:.0} ms");
    }
}

/// The presets of docs/BENCHMARKS.md.
fn run_all(
    quick: bool,
    launcher: &Launcher,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let scale = |d: u64| Duration::from_secs(if quick { d / 4 } else { d });
    let mut out = serde_json::Map::new();

    let mut density = LoadSpec::density();
    density.duration = scale(120);
    let d = harness::run(&density, launcher)?;
    print_load("density", &d);

    let latency_spec = LoadSpec {
        accounts: 20,
        machines: 50,
        instances: 10,
        poll: Duration::from_secs(1),
        rate: 10.0,
        duration: scale(60),
        status_every: None,
        reload: false,
        ..LoadSpec::density()
    };
    let l = harness::run(&latency_spec, launcher)?;
    print_load("latency", &l);

    let load = LoadArgs {
        accounts: 100,
        machines: 50,
        instances: 10,
        poll: Duration::from_secs(30),
        rate: 10.0,
        duration: scale(20),
        status_every: Duration::ZERO,
        no_reload: true,
        dashboard: false,
        seed: 0x7407,
        control_crowd: None,
    };
    let polls = [
        Duration::from_secs(1),
        Duration::from_millis(100),
        Duration::from_millis(10),
    ];
    let t = throughput(&load, &polls, launcher)?;
    let p = run_pipeline(50, if quick { 500 } else { 2000 })?;

    print_table(&d, &l, &t, &p);
    out.insert("density".into(), serde_json::to_value(&d)?);
    out.insert("latency".into(), serde_json::to_value(&l)?);
    out.insert("throughput".into(), serde_json::to_value(&t)?);
    out.insert("pipeline".into(), serde_json::to_value(&p)?);
    Ok(out)
}

fn print_table(d: &LoadReport, l: &LoadReport, t: &[LoadReport], p: &pipeline::PipelineReport) {
    let best = t
        .iter()
        .max_by(|a, b| a.observations_per_s.total_cmp(&b.observations_per_s));
    println!("\n| SPEC §10 | target | measured |");
    println!("| --- | --- | --- |");
    println!(
        "| density RSS | <= 64 MiB | {:.1} MiB (peak {:.1} MiB) |",
        d.rss_mib, d.hwm_mib
    );
    println!(
        "| density CPU | <= 5% of one core | {:.2}% |",
        d.cpu_fraction * 100.0
    );
    if let Some(b) = best {
        println!(
            "| throughput (end to end) | >= 50,000 obs/s per core | {:.0} obs/s at {:.2} cores = {:.0} per core (poll {:.0} ms) |",
            b.observations_per_s, b.cpu_fraction, b.observations_per_cpu_s, b.poll_ms
        );
    }
    println!(
        "| throughput (decode + detect + commit) | >= 50,000 obs/s per core | {:.0} obs/s |",
        p.observations_per_s
    );
    println!(
        "| latency, poll -> webhook (poll {:.0} ms) | p50 <= 5 ms, p99 <= 50 ms | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        l.poll_ms, l.pipeline_latency_ms.p50, l.pipeline_latency_ms.p99, l.pipeline_latency_ms.max
    );
    println!(
        "| latency, poll -> webhook (poll {:.0} ms) | p50 <= 5 ms, p99 <= 50 ms | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        d.poll_ms, d.pipeline_latency_ms.p50, d.pipeline_latency_ms.p99, d.pipeline_latency_ms.max
    );
    println!(
        "| latency, change -> webhook (poll {:.0} ms) | (includes the wait for the poll) | p50 {:.0} ms, p99 {:.0} ms |",
        d.poll_ms, d.change_latency_ms.p50, d.change_latency_ms.p99
    );
    println!(
        "| READY, 100 account files | <= 1 s | {:.0} ms (first poll {:.0} ms) |",
        d.ready_ms, d.first_request_ms
    );
    if let (Some(a), Some(b)) = (d.reload_unchanged_ms, d.reload_all_changed_ms) {
        println!("| reload of 100 files | <= 1 s | {a:.0} ms unchanged, {b:.0} ms all changed |");
    }
    println!(
        "| status, {} machines | <= 100 ms | p50 {:.1} ms, max {:.1} ms |",
        d.machines_total, d.status_ms.p50, d.status_ms.max
    );
    println!(
        "| politeness | - | {:.2} API requests per account per minute |",
        d.requests_per_account_per_min
    );
}
