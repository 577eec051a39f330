//! systemd integration (SPEC §8, `Type=notify`): READY once state is loaded and the actors run,
//! a one-line STATUS kept current from the status snapshot, RELOADING/READY around a reload,
//! STOPPING on shutdown, and WATCHDOG pings when `WatchdogSec=` is set. Every function is a no-op
//! when `NOTIFY_SOCKET` is not set (not started by systemd). Owns the notify protocol only.

use crate::control::{PublishedStatus, StatusCounts};
use crate::util::counted;
use sd_notify::NotifyState;
use std::time::Duration;
use tokio::sync::watch;

fn send(states: &[NotifyState]) {
    // The environment is kept (`false`) so later notifications reach systemd too.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// READY=1: start-up (or a reload) finished.
pub fn notify_ready() {
    send(&[NotifyState::Ready]);
}

/// RELOADING=1 with MONOTONIC_USEC (required by `Type=notify-reload`); follow with
/// [`notify_ready`] when the reload is done.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC for the reload notification");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// STOPPING=1: shutdown started.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping]);
}

/// STATUS=<line> shown by `systemctl status`.
pub fn notify_status(line: &str) {
    // A newline would end the STATUS= assignment early.
    let line = line.replace('\n', " ");
    send(&[NotifyState::Status(&line)]);
}

/// The one-line summary, e.g. "3 accounts, 42 machines, 0 targets failing".
pub fn status_line(counts: &StatusCounts) -> String {
    let StatusCounts {
        accounts,
        accounts_not_ok: troubled,
        machines,
        instances,
        targets_failing: failing,
    } = *counts;
    let mut line = counted(accounts, "account");
    if troubled > 0 {
        line.push_str(&format!(" ({troubled} not ok)"));
    }
    line.push_str(&format!(", {}", counted(machines, "machine")));
    if instances > 0 {
        line.push_str(&format!(", {}", counted(instances, "instance")));
    }
    line.push_str(&format!(", {} failing", counted(failing, "target")));
    line
}

/// Sends READY=1 once the first status snapshot is published (by then every account actor has
/// loaded its stored state and answered), then keeps STATUS= current. Resolves when the snapshot
/// channel closes.
pub async fn announce(mut status: watch::Receiver<PublishedStatus>) {
    if status.changed().await.is_err() {
        return;
    }
    let mut last = status_line(&status.borrow_and_update().counts);
    send(&[NotifyState::Ready, NotifyState::Status(&last)]);
    tracing::info!(status = %last, "ready");
    while status.changed().await.is_ok() {
        let line = status_line(&status.borrow_and_update().counts);
        if line != last {
            notify_status(&line);
            last = line;
        }
    }
}

/// How often to send WATCHDOG=1 (half of `WATCHDOG_USEC`), if systemd asked for pings.
pub fn watchdog_interval() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// `WATCHDOG_USEC` must be a positive number; `WATCHDOG_PID`, when set, must name this process.
fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Pings the watchdog every `every`, forever. Run it on the actix system (`actix::spawn`): if
/// the system's thread wedges, the pings stop and systemd restarts the daemon.
pub async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_process_only() {
        assert_eq!(
            parse_watchdog(Some("3000000"), None, 7),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_watchdog(Some("3000000"), Some("7"), 7),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_watchdog(Some("3000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("soon"), None, 7), None);
        assert_eq!(parse_watchdog(None, Some("7"), 7), None);
    }

    #[test]
    fn status_line_summarises_the_snapshot() {
        let mut counts = StatusCounts {
            accounts: 2,
            accounts_not_ok: 1,
            machines: 3,
            instances: 1,
            targets_failing: 1,
        };
        assert_eq!(
            status_line(&counts),
            "2 accounts (1 not ok), 3 machines, 1 instance, 1 target failing"
        );
        counts = StatusCounts {
            accounts: 1,
            machines: 2,
            ..StatusCounts::default()
        };
        assert_eq!(
            status_line(&counts),
            "1 account, 2 machines, 0 targets failing"
        );
        assert_eq!(
            status_line(&StatusCounts::default()),
            "0 accounts, 0 machines, 0 targets failing"
        );
    }
}
