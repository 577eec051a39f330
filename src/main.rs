//! The `vast-supervisor` binary: parses the command line, sets up logging and dispatches.
//! Exit codes (SPEC §3): 0 ok, 1 runtime failure, 2 usage or configuration error, 3 daemon not
//! reachable.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use vast_supervisor::cli::{Cli, Command, ImportFrom};
use vast_supervisor::control::commands;
use vast_supervisor::logs_command::{self, LogsOptions};
use vast_supervisor::{completions, config, daemon, demo, import, logging, sim};

fn main() -> ExitCode {
    // Before anything else: a SIGHUP while the daemon starts must not kill it.
    daemon::hold_early_signals();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        daemon::release_early_signals();
    }
    let quiet_by_default = matches!(
        cli.command,
        Command::Demo { .. }
            | Command::Check
            | Command::Logs { .. }
            | Command::Import { .. }
            | Command::Completions { .. }
    );
    logging::init(cli.log_format, cli.verbose, cli.quiet, quiet_by_default);
    let result = match cli.command {
        Command::Check => {
            let code =
                config::check_command(&cli.config, &mut std::io::stdout(), &mut std::io::stderr());
            return ExitCode::from(code as u8);
        }
        Command::Run {
            test_poll_interval,
            test_offline_grace,
        } => daemon::run(daemon::RunOptions {
            config_dir: cli.config,
            poll_interval_override: test_poll_interval,
            offline_grace_override: test_offline_grace,
        }),
        Command::Demo { duration } => demo::run(duration),
        Command::Status { json } => {
            let socket = commands::resolve_socket(cli.socket, &cli.config);
            return client_command(commands::status(&socket, json));
        }
        Command::Reload => {
            let socket = commands::resolve_socket(cli.socket, &cli.config);
            let mut rejected = false;
            let code = client_command(async {
                rejected = commands::reload(&socket).await?;
                Ok(())
            });
            return if rejected && code == ExitCode::SUCCESS {
                ExitCode::from(2)
            } else {
                code
            };
        }
        Command::NotifyTest { target } => {
            let socket = commands::resolve_socket(cli.socket, &cli.config);
            return client_command(commands::notify_test(&socket, &target));
        }
        Command::Events {
            follow,
            json,
            limit,
        } => {
            let socket = commands::resolve_socket(cli.socket, &cli.config);
            return client_command(commands::events(&socket, follow, json, limit));
        }
        Command::Logs {
            account,
            instance,
            follow,
            tail,
            test_interval,
        } => {
            let opts = LogsOptions::new(cli.config, account, instance, follow, tail, test_interval);
            return ExitCode::from(logs_command::main(opts));
        }
        Command::Import(args) => {
            // One tool for now: `args.from` is vast-monitor.
            let ImportFrom::VastMonitor = args.from;
            let now = chrono::Utc::now();
            return match import::vast_monitor(&args, now, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vast-supervisor: import: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Completions { shell } => completions::script(shell)
            .map_err(anyhow::Error::msg)
            .and_then(|script| {
                use std::io::Write;
                std::io::stdout()
                    .write_all(&script)
                    .map_err(anyhow::Error::from)
            }),
        Command::Simulate { listen, scenario } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(sim::run_simulate(listen, scenario))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not `eprintln!`: a stderr that cannot be written (a full disk) must not turn the
            // error into a panic.
            let _ = writeln!(std::io::stderr(), "vast-supervisor: {e:#}");
            match e.downcast_ref::<daemon::ConfigurationError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}

/// Runs a control-socket client command and maps its error to SPEC §3's exit codes.
fn client_command(
    fut: impl std::future::Future<Output = Result<(), vast_supervisor::control::ClientError>>,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vast-supervisor: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vast-supervisor: {e}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
