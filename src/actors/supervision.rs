//! Restart bookkeeping for supervised actors (SPEC §8): a failed machine, instance or notifier
//! actor is restarted fresh; more than `max_restarts` restarts within `window` mark it degraded,
//! which alerts once and backs off (the actor is left alone for a growing interval) instead of
//! restarting in a tight loop. Owns the counting and the back-off schedule only; the account and
//! notifier actors decide what a failure is and how to restart.
//!
//! Also holds the test-only fault injection ([`FaultInjection`]) that makes a chosen machine or
//! instance actor panic, passed explicitly through `SupervisorOptions` so production code has no
//! magic values that could trigger it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// When restarts turn into "degraded" and how long a degraded actor is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// More restarts than this within `window` mark the actor degraded.
    pub max_restarts: usize,
    pub window: Duration,
    /// First pause of a degraded actor; each further failure doubles it up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            backoff_base: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(30 * 60),
        }
    }
}

/// What the supervisor should do after a failure was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart at once.
    Restart,
    /// Degraded: leave the actor alone for `pause`. `newly` is true only for the failure that
    /// crossed the threshold, so the alert goes out once.
    Degraded { newly: bool, pause: Duration },
}

/// The restart history of one actor.
#[derive(Debug, Clone, Default)]
pub struct RestartLog {
    recent: VecDeque<Instant>,
    total: u64,
    degraded: bool,
    backoff: Duration,
    paused_until: Option<Instant>,
}

impl RestartLog {
    /// Records one failure (and the restart it causes) at `now`.
    pub fn record_failure(&mut self, now: Instant, policy: &RestartPolicy) -> Verdict {
        self.total += 1;
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.recent.pop_front();
        }
        if self.degraded {
            // Failed again after its pause: pause longer.
            self.backoff = (self.backoff * 2).min(policy.backoff_cap);
            self.paused_until = Some(now + self.backoff);
            return Verdict::Degraded {
                newly: false,
                pause: self.backoff,
            };
        }
        if self.recent.len() > policy.max_restarts {
            self.degraded = true;
            self.backoff = policy.backoff_base.min(policy.backoff_cap);
            self.paused_until = Some(now + self.backoff);
            return Verdict::Degraded {
                newly: true,
                pause: self.backoff,
            };
        }
        Verdict::Restart
    }

    /// Records that the actor did its work. Returns true when this ends a degraded period.
    pub fn record_success(&mut self) -> bool {
        let was = self.degraded;
        if was {
            self.degraded = false;
            self.backoff = Duration::ZERO;
            self.paused_until = None;
            self.recent.clear();
        }
        was
    }

    /// Whether the actor is in its back-off pause at `now`.
    pub fn paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|until| now < until)
    }

    pub fn degraded(&self) -> bool {
        self.degraded
    }

    /// Every restart since the daemon started.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// One child actor of an account: a machine or an instance, by id (the two id spaces are
/// separate, so the kind is part of the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Child {
    Machine(u64),
    Instance(u64),
}

impl Child {
    pub fn id(self) -> u64 {
        match self {
            Child::Machine(id) | Child::Instance(id) => id,
        }
    }

    /// The machine id, for a log line's `machine` field.
    pub fn machine(self) -> Option<u64> {
        match self {
            Child::Machine(id) => Some(id),
            Child::Instance(_) => None,
        }
    }

    /// The instance id, for a log line's `instance` field.
    pub fn instance(self) -> Option<u64> {
        match self {
            Child::Instance(id) => Some(id),
            Child::Machine(_) => None,
        }
    }

    /// "machine" or "instance" (also the subject kind its state is stored under).
    pub fn kind(self) -> &'static str {
        match self {
            Child::Machine(_) => "machine",
            Child::Instance(_) => "instance",
        }
    }
}

impl fmt::Display for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.id())
    }
}

/// What an injected fault does to a machine or instance actor (tests only).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The detection core panics (caught at the core boundary; the actor keeps its state).
    PanicInDetection,
    /// The actor's message handler panics outside the core: the actor dies, its mailbox closes.
    KillActor,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    fault: InjectedFault,
    /// `None`: until cleared.
    remaining: Option<u32>,
    fired: u64,
}

/// Faults armed per (account, child) by a test; shared by every child actor it is passed to.
/// Also panics of the supervisor-level actors themselves: an account actor's poll, the
/// supervisor's reload.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    armed: Arc<Mutex<BTreeMap<(String, Child), Armed>>>,
    /// Per account: how many of its next polls panic in the account actor itself.
    account_panics: Arc<Mutex<BTreeMap<String, u32>>>,
    /// How many of the next reloads panic inside the supervisor.
    reload_panics: Arc<Mutex<u32>>,
}

#[doc(hidden)]
impl FaultInjection {
    /// Arms `fault` for the next `times` observations of the child (`None`: until cleared).
    pub fn set(&self, account: &str, child: Child, fault: InjectedFault, times: Option<u32>) {
        let mut armed = self.lock();
        let fired = armed
            .get(&(account.to_string(), child))
            .map_or(0, |a| a.fired);
        armed.insert(
            (account.to_string(), child),
            Armed {
                fault,
                remaining: times,
                fired,
            },
        );
    }

    /// Disarms the child's fault (its fired count is kept).
    pub fn clear(&self, account: &str, child: Child) {
        if let Some(a) = self.lock().get_mut(&(account.to_string(), child)) {
            a.remaining = Some(0);
        }
    }

    /// How often a fault fired on this child so far.
    pub fn fired(&self, account: &str, child: Child) -> u64 {
        self.lock()
            .get(&(account.to_string(), child))
            .map_or(0, |a| a.fired)
    }

    /// Takes the fault to apply to this observation, if one is armed.
    pub(crate) fn take(&self, account: &str, child: Child) -> Option<InjectedFault> {
        let mut armed = self.lock();
        let a = armed.get_mut(&(account.to_string(), child))?;
        match &mut a.remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        a.fired += 1;
        Some(a.fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, Child), Armed>> {
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a panic in the account actor of `account` for its next `times` polls.
    pub fn panic_account(&self, account: &str, times: u32) {
        *locked(&self.account_panics)
            .entry(account.to_string())
            .or_default() += times;
    }

    /// Whether this poll of the account actor must panic (consumes one armed panic).
    pub(crate) fn take_account_panic(&self, account: &str) -> bool {
        take_one(locked(&self.account_panics).get_mut(account))
    }

    /// Arms a panic inside the supervisor for its next `times` reloads.
    pub fn panic_reload(&self, times: u32) {
        *locked(&self.reload_panics) += times;
    }

    /// Whether this reload must panic (consumes one armed panic).
    pub(crate) fn take_reload_panic(&self) -> bool {
        take_one(Some(&mut locked(&self.reload_panics)))
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn take_one(remaining: Option<&mut u32>) -> bool {
    match remaining {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(35),
        }
    }

    #[test]
    fn six_failures_within_the_window_degrade_once_and_back_off_growing() {
        let p = policy();
        let t0 = Instant::now();
        let mut log = RestartLog::default();
        for i in 0..5 {
            assert_eq!(
                log.record_failure(t0 + Duration::from_secs(i), &p),
                Verdict::Restart
            );
        }
        assert!(!log.degraded());
        let v = log.record_failure(t0 + Duration::from_secs(5), &p);
        assert_eq!(
            v,
            Verdict::Degraded {
                newly: true,
                pause: Duration::from_secs(10)
            }
        );
        assert!(log.paused(t0 + Duration::from_secs(14)));
        assert!(!log.paused(t0 + Duration::from_secs(15)));
        // Failing again after the pause: not a new alert, and a longer pause, capped.
        assert_eq!(
            log.record_failure(t0 + Duration::from_secs(16), &p),
            Verdict::Degraded {
                newly: false,
                pause: Duration::from_secs(20)
            }
        );
        assert_eq!(
            log.record_failure(t0 + Duration::from_secs(40), &p),
            Verdict::Degraded {
                newly: false,
                pause: Duration::from_secs(35)
            }
        );
        assert_eq!(log.total(), 8);
        assert!(log.record_success());
        assert!(!log.degraded() && !log.paused(t0 + Duration::from_secs(41)));
        assert!(
            !log.record_success(),
            "only the first success ends the period"
        );
    }

    #[test]
    fn failures_spread_beyond_the_window_never_degrade() {
        let p = policy();
        let t0 = Instant::now();
        let mut log = RestartLog::default();
        for i in 0..20 {
            assert_eq!(
                log.record_failure(t0 + Duration::from_secs(13 * i), &p),
                Verdict::Restart
            );
        }
        assert_eq!(log.total(), 20);
    }

    #[test]
    fn injected_faults_fire_as_often_as_armed() {
        let f = FaultInjection::default();
        let m1 = Child::Machine(1);
        assert_eq!(f.take("a", m1), None);
        f.set("a", m1, InjectedFault::KillActor, Some(2));
        assert_eq!(
            f.take("a", Child::Machine(2)),
            None,
            "other machines are untouched"
        );
        assert_eq!(
            f.take("a", Child::Instance(1)),
            None,
            "an instance with the same id is another child"
        );
        assert_eq!(f.take("a", m1), Some(InjectedFault::KillActor));
        assert_eq!(f.take("a", m1), Some(InjectedFault::KillActor));
        assert_eq!(f.take("a", m1), None);
        f.set("a", m1, InjectedFault::PanicInDetection, None);
        for _ in 0..5 {
            assert_eq!(f.take("a", m1), Some(InjectedFault::PanicInDetection));
        }
        f.clear("a", m1);
        assert_eq!(f.take("a", m1), None);
        assert_eq!(f.fired("a", m1), 7);
        assert_eq!(f.fired("a", Child::Instance(1)), 0);
    }
}
