//! Captures what the code under test logs (every level, no colours) for assertions on log lines:
//! `let logs = LogCapture::new(); let _guard = logs.install();` in a single-threaded test.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn new() -> LogCapture {
        LogCapture::default()
    }

    /// Makes this capture the current thread's subscriber until the guard drops (tasks spawned
    /// on the same thread, as actix actors are, log into it too). The test's own SMTP server
    /// (mailin) is not our code and stays quiet.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let guard = tracing::subscriber::set_default(self.subscriber());
        // Whether a log site is enabled is cached process-wide. A site first reached by another
        // test's thread while this subscriber was being registered can stay cached as "never"
        // (seen as a flaky missing line); recompute now that it is registered.
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    /// Makes this capture the process's subscriber, for logs from every thread (reqwest's and
    /// hyper's included). Panics if the test binary already has one.
    pub fn install_global(&self) {
        use tracing_subscriber::util::SubscriberInitExt;
        self.subscriber()
            .try_init()
            .expect("the only subscriber in this test binary");
    }

    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace,mailin=off"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// The captured lines that contain every one of `parts`.
    pub fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .collect()
    }
}
