//! The command line (SPEC §3): clap definitions shared by the binary, the man pages and the shell
//! completions. Parsing only; each command's work lives in its own module.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The environment variable that sets `--config` when the flag is not given.
pub const CONFIG_ENV: &str = "VAST_SUPERVISOR_CONFIG";

#[derive(Debug, Parser)]
#[command(
    name = "vast-supervisor",
    version,
    about = "Watches many Vast.ai accounts and notifies about rentals, machines and instances",
    long_about = None
)]
pub struct Cli {
    /// Configuration directory holding vast-supervisor.toml and conf.d/*.toml
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = CONFIG_ENV,
        default_value = crate::config::DEFAULT_CONFIG_DIR
    )]
    pub config: PathBuf,

    /// Control socket of the running daemon (default: control_socket of the configuration, else
    /// /run/vast-supervisor/control.sock)
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less log output (-q warnings and errors only, -qq errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify)
    Run {
        /// Test and benchmark only: override every account's poll interval (below the 10 s minimum)
        #[arg(long, hide = true, value_parser = parse_duration_arg)]
        test_poll_interval: Option<std::time::Duration>,
        /// Test and benchmark only: override every account's offline grace
        #[arg(long, hide = true, value_parser = parse_duration_arg)]
        test_offline_grace: Option<std::time::Duration>,
    },
    /// Run the real supervisor against a simulated Vast cloud and print its notifications
    Demo {
        /// Stop by itself after this long (default: run until Ctrl+C)
        #[arg(long, value_parser = parse_duration_arg)]
        duration: Option<std::time::Duration>,
    },
    /// Validate every configuration file; print file:line:col: message per problem
    Check,
    /// Ask the running daemon for its status
    Status {
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to reload its configuration (same as SIGHUP); exit 2 when a file was rejected
    Reload,
    /// Send a test message through one target of the running daemon and print the answer
    NotifyTest {
        /// Target name
        target: String,
    },
    /// Show recent events from the running daemon
    Events {
        /// Keep printing new events until Ctrl+C
        #[arg(long)]
        follow: bool,
        /// Print events as JSON lines
        #[arg(long)]
        json: bool,
        /// How many recent events to show
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print an instance's log, using the key of a configured account
    Logs {
        /// Account name, as in the configuration
        account: String,
        /// Instance id
        instance: u64,
        /// Keep fetching and print new lines until Ctrl+C
        #[arg(long)]
        follow: bool,
        /// How many lines of the existing log to print
        #[arg(long, value_name = "N", default_value_t = crate::logs_command::DEFAULT_TAIL)]
        tail: u32,
        /// Test only: fetch this often with --follow and scale the API client's timeouts to it
        #[arg(long, hide = true, value_parser = parse_duration_arg)]
        test_interval: Option<std::time::Duration>,
    },
    /// Run the simulated Vast cloud alone (for trying configurations and your own tooling)
    Simulate {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:8977")]
        listen: SocketAddr,
        /// Scenario file (TOML); default: the demo scenario
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Move in from vast-monitor: its configuration and state become vast-supervisor's
    ///
    /// config.json becomes a conf.d file, with the API key and the target URLs in 0600 files
    /// under DIR (never printed). With --snapshots its state files go into the state database,
    /// so rentals in progress keep their start time and are not announced again. What cannot be
    /// converted is reported item by item; existing files are not replaced without --force.
    Import(ImportArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// What `import` reads and where it writes.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The tool to move in from
    #[arg(value_enum, value_name = "TOOL")]
    pub from: ImportFrom,
    /// Its configuration file (vast-monitor: config.json)
    #[arg(value_name = "CONFIG.json")]
    pub config_json: PathBuf,
    /// Configuration directory to write conf.d/, keys/ and secrets/ into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Its state directory (vast-monitor: the directory of config.json, with
    /// rental_snapshot.json and machine_snapshots/)
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Name of the account in vast-supervisor (names are unique across conf.d)
    #[arg(long, value_name = "NAME", default_value = "vast-monitor")]
    pub account: String,
    /// State directory to import the snapshots into (default: state_dir of
    /// DIR/vast-supervisor.toml, else /var/lib/vast-supervisor)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Replace the files of an earlier import instead of refusing
    #[arg(long)]
    pub force: bool,
}

/// The tools `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFrom {
    /// begna112/vast-monitor (one account per config.json, Apprise targets)
    VastMonitor,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::util::parse_duration(s)
}
