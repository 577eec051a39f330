//! vast-supervisor: watches many Vast.ai accounts from one process and tells hosts and renters,
//! within seconds, what happened to their rentals, machines and instances.
//!
//! The crate is laid out by concern (see `docs/ARCHITECTURE.md`):
//! - [`config`]: files on disk -> validated configuration, with `file:line:col` errors.
//! - [`vast`]: the HTTP client of the Vast API and its typed rows.
//! - [`sim`]: a simulated Vast cloud on 127.0.0.1 for tests, the demo and users' tooling.
//! - [`detect`]: the pure detection core (old state + observation + now -> new state + events).
//! - [`store`]: durable state and the event outbox in SQLite.
//! - [`actors`]: the actix actor tree that schedules polls, runs the core and delivers.
//! - [`notify`]: one renderer and sender per notification service.
//! - [`event`]: the event vocabulary shared by all of the above.
//! - [`logs_command`]: `vast-supervisor logs`, an instance's log on the terminal.
//! - [`metrics`], [`systemd`]: operations (Prometheus metrics and health, sd_notify).

pub mod actors;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod detect;
pub mod event;
pub mod logging;
pub mod logs_command;
pub mod metrics;
pub mod notify;
pub mod sim;
pub mod store;
pub mod systemd;
pub mod util;
pub mod vast;

/// The process allocator. The hot path allocates per row and per field (decoding, states,
/// events): with mimalloc the daemon does about 60,000 machine observations per CPU second end
/// to end, with glibc's malloc 48,000 (docs/BENCHMARKS.md). Set here, so the binary, the load
/// test and the tests all use it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes the allocator give freed pages back at once instead of after its default second: the
/// status snapshot (megabytes, rebuilt every few seconds on a blocking thread) otherwise keeps
/// ~25 MiB resident at the density target. Called once by the daemon at start.
pub fn return_freed_memory_promptly() {
    // SAFETY: sets one of mimalloc's process-wide options, which it reads when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[cfg(test)]
mod allocator_tests {
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets mimalloc options.
        unsafe {
            // mimalloc 3's default `purge_delay` is 1000 (ms), a value no neighbouring option
            // has: the index names that option.
            assert_eq!(
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
                1000
            );
            super::return_freed_memory_promptly();
            assert_eq!(
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
                0
            );
        }
    }
}
