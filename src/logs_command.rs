//! `vast-supervisor logs ACCOUNT INSTANCE [--follow] [--tail N]` (SPEC §3): prints an instance's
//! log, fetched through Vast's two-step log API with the key of a configured account. Owns the
//! command's loop and its exit codes only; requests, retries and pacing are the `vast` client's,
//! telling new lines from old is `detect::logs`'.
//!
//! With `--follow` it keeps fetching every few seconds and prints only lines it has not printed
//! yet. A transient failure (5xx, rate limit, timeout, log not ready) never ends it: it says so on
//! stderr and retries with a growing delay. It ends with exit 1 when the key is rejected or the
//! instance is gone (the single lookup agrees), and with exit 0 on Ctrl+C.

use crate::config::{self, AccountConfig, FileOutcome};
use crate::detect::logs::{new_lines, LogCursor};
use crate::util::{did_you_mean, format_duration};
use crate::vast::{shared_http_client, ClientOptions, VastClient, VastError};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Time between two fetches with `--follow`.
pub const DEFAULT_FOLLOW_INTERVAL: Duration = Duration::from_secs(5);
/// Lines shown without `--tail` (the vast CLI's default).
pub const DEFAULT_TAIL: u32 = 1000;
/// Lines asked for by each `--follow` fetch: enough overlap to find the last line printed.
const FOLLOW_FETCH: u32 = 1000;
/// No retry after a transient failure waits longer than this (unless the interval is longer).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What `logs` was asked to do.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    pub config_dir: PathBuf,
    pub account: String,
    pub instance: u64,
    pub follow: bool,
    /// Lines of the existing log to print first.
    pub tail: u32,
    /// Time between fetches with `--follow`.
    pub interval: Duration,
    pub client: ClientOptions,
}

impl LogsOptions {
    /// Production timing; `test_interval` (a hidden flag) shortens the follow interval and scales
    /// the client's timeouts, retries and log polling to it.
    pub fn new(
        config_dir: PathBuf,
        account: String,
        instance: u64,
        follow: bool,
        tail: u32,
        test_interval: Option<Duration>,
    ) -> LogsOptions {
        let (interval, client) = match test_interval {
            Some(d) => {
                let mut client = ClientOptions::for_short_polls(d);
                client.log_poll_interval = (d / 4).min(client.log_poll_interval);
                (d, client)
            }
            None => (DEFAULT_FOLLOW_INTERVAL, ClientOptions::default()),
        };
        LogsOptions {
            config_dir,
            account,
            instance,
            follow,
            tail,
            interval,
            client,
        }
    }
}

/// Why `logs` ended without success.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// No valid file defines the account (exit 2).
    #[error("no account named {name:?} in {dir}{hint}")]
    UnknownAccount {
        name: String,
        dir: String,
        /// " (did you mean ...?)" and/or the rejected files that might define it.
        hint: String,
    },
    #[error("Vast rejected the API key of account {account} (HTTP {status}): the key is wrong, revoked or lacks a permission")]
    Unauthorized { account: String, status: u16 },
    #[error("instance {instance} does not exist on account {account} (destroyed, or not this account's)")]
    InstanceGone { account: String, instance: u64 },
    #[error("could not fetch the log of instance {instance}: {error}")]
    Fetch { instance: u64, error: VastError },
    #[error("cannot write the log: {0}")]
    Output(#[from] io::Error),
}

impl LogsError {
    /// SPEC §3: 2 for a configuration problem, 1 for everything that went wrong at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            LogsError::UnknownAccount { .. } => 2,
            _ => 1,
        }
    }
}

/// Runs the command on its own runtime until it ends or Ctrl+C; returns the exit code.
pub fn main(opts: LogsOptions) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vast-supervisor: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        let mut out = io::stdout();
        let mut err = io::stderr();
        tokio::select! {
            r = run(&opts, &mut out, &mut err) => r,
            _ = crate::signals::ctrl_c() => Ok(()),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vast-supervisor: {e}");
            e.exit_code()
        }
    }
}

/// Finds the account in the configuration, then fetches (and with `follow`, keeps fetching) the
/// log, writing lines to `out` and retry notices to `err`.
pub async fn run(
    opts: &LogsOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), LogsError> {
    let account = find_account(opts)?;
    let client = VastClient::new(
        shared_http_client(&opts.client),
        account.api_url.clone(),
        account.api_key.clone(),
        opts.client.clone(),
    );
    let result = if opts.follow {
        follow(opts, &account.name, &client, out, err).await
    } else {
        print_once(opts, &account.name, &client, out).await
    };
    match result {
        // `logs ... | head`: the reader is gone, which is not a failure.
        Err(LogsError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn find_account(opts: &LogsOptions) -> Result<AccountConfig, LogsError> {
    let loaded = config::load_dir(&opts.config_dir);
    let accounts = loaded.accounts();
    if let Some(a) = accounts.iter().find(|a| a.name == opts.account) {
        return Ok((*a).clone());
    }
    let mut hint = String::new();
    if let Some(near) = did_you_mean(&opts.account, accounts.iter().map(|a| a.name.as_str())) {
        hint.push_str(&format!(" (did you mean {near:?}?)"));
    }
    let rejected: Vec<String> = loaded
        .files
        .iter()
        .filter_map(|f| match f {
            FileOutcome::Rejected { diagnostics, .. } => {
                diagnostics.first().map(|d| format!("\n  {d}"))
            }
            FileOutcome::Ok(_) => None,
        })
        .collect();
    if !rejected.is_empty() {
        hint.push_str("; accounts in rejected files are not used:");
        hint.push_str(&rejected.concat());
    }
    Err(LogsError::UnknownAccount {
        name: opts.account.clone(),
        dir: opts.config_dir.display().to_string(),
        hint,
    })
}

/// One fetch of the last `tail` lines, printed as they are.
async fn print_once(
    opts: &LogsOptions,
    account: &str,
    client: &VastClient,
    out: &mut impl Write,
) -> Result<(), LogsError> {
    let text = match client.request_logs(opts.instance, opts.tail.max(1)).await {
        Ok(text) => text,
        Err(error) => {
            return Err(
                match classify(account, opts.instance, client, error).await {
                    Failure::Fatal(e) => e,
                    Failure::Retry(error) => LogsError::Fetch {
                        instance: opts.instance,
                        error,
                    },
                },
            )
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(opts.tail as usize)..] {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Fetches every `interval`, printing only lines not printed before; returns only on a fatal
/// error (or a failed write).
async fn follow(
    opts: &LogsOptions,
    account: &str,
    client: &VastClient,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), LogsError> {
    let mut cursor = LogCursor::default();
    let mut first = true;
    let mut failures: u32 = 0;
    loop {
        let delay = match client
            .request_logs(opts.instance, FOLLOW_FETCH.max(opts.tail))
            .await
        {
            Ok(text) => {
                if failures > 0 {
                    writeln!(err, "vast-supervisor: fetching the log works again")?;
                    failures = 0;
                }
                let (next, fresh) = new_lines(&cursor, &text);
                cursor = next;
                // The first fetch shows the existing log's last `tail` lines only.
                let skip = if first {
                    fresh.len().saturating_sub(opts.tail as usize)
                } else {
                    0
                };
                first = false;
                for line in &fresh[skip..] {
                    writeln!(out, "{line}")?;
                }
                out.flush()?;
                opts.interval
            }
            Err(error) => match classify(account, opts.instance, client, error).await {
                Failure::Fatal(e) => return Err(e),
                Failure::Retry(error) => {
                    failures += 1;
                    let delay = retry_delay(opts.interval, failures);
                    writeln!(
                        err,
                        "vast-supervisor: fetching the log of instance {} failed ({error}); retrying in {}",
                        opts.instance,
                        format_duration(delay)
                    )?;
                    delay
                }
            },
        };
        tokio::time::sleep(delay).await;
    }
}

enum Failure {
    /// Will not get better by waiting.
    Fatal(LogsError),
    /// May work on a later try.
    Retry(VastError),
}

/// Sorts a failed fetch: a rejected key and a confirmed-gone instance are fatal, transient
/// failures are worth retrying, anything else is fatal. A 404 is confirmed with the single
/// lookup (`{"instances": null}`) before calling the instance gone.
async fn classify(account: &str, instance: u64, client: &VastClient, error: VastError) -> Failure {
    let unauthorized = |status| {
        Failure::Fatal(LogsError::Unauthorized {
            account: account.to_string(),
            status,
        })
    };
    match error {
        VastError::Unauthorized { status } => unauthorized(status),
        VastError::NotFound => match client.instance(instance).await {
            Ok(None) => Failure::Fatal(LogsError::InstanceGone {
                account: account.to_string(),
                instance,
            }),
            Err(VastError::Unauthorized { status }) => unauthorized(status),
            // Listed, or the lookup failed too: the 404 proves nothing yet.
            Ok(Some(_)) | Err(_) => Failure::Retry(VastError::NotFound),
        },
        e if e.is_transient() => Failure::Retry(e),
        e => Failure::Fatal(LogsError::Fetch { instance, error: e }),
    }
}

/// `interval * 2^(failures-1)`, capped at a minute (or the interval, if longer).
fn retry_delay(interval: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    interval
        .saturating_mul(factor)
        .min(MAX_RETRY_DELAY.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(5), 1), s(5));
        assert_eq!(retry_delay(s(5), 2), s(10));
        assert_eq!(retry_delay(s(5), 4), s(40));
        assert_eq!(retry_delay(s(5), 5), s(60));
        assert_eq!(retry_delay(s(5), 1000), s(60));
        assert_eq!(retry_delay(s(120), 3), s(120));
    }

    #[test]
    fn exit_codes_follow_the_spec() {
        let unknown = LogsError::UnknownAccount {
            name: "x".into(),
            dir: "/etc".into(),
            hint: String::new(),
        };
        assert_eq!(unknown.exit_code(), 2);
        let gone = LogsError::InstanceGone {
            account: "a".into(),
            instance: 1,
        };
        assert_eq!(gone.exit_code(), 1);
        assert_eq!(
            LogsError::Unauthorized {
                account: "a".into(),
                status: 401
            }
            .exit_code(),
            1
        );
    }
}
