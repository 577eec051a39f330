//! Waiting for Ctrl+C in the interactive commands (`demo`, `simulate`, `logs --follow`,
//! `status --follow`), through signal-hook: the process's one signal mechanism (the daemon's
//! handlers in `daemon` use it too). Must not decide what a signal means.

use futures::StreamExt;
use signal_hook::consts::SIGINT;
use std::future::Future;

/// Installs a SIGINT handler at once (so a Ctrl+C right after this call is not lost, and from
/// then on SIGINT no longer ends the process by itself) and returns what completes at the first
/// SIGINT. It fails when the handler cannot be installed. Call it inside the tokio runtime.
pub fn ctrl_c() -> impl Future<Output = std::io::Result<()>> {
    let signals = signal_hook_tokio::Signals::new([SIGINT]);
    async move {
        signals?.next().await;
        Ok(())
    }
}
