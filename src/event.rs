//! Events: the one vocabulary every part of the daemon speaks.
//!
//! Owns the event kinds (stable snake_case names), their severities, subjects and the event JSON of
//! SPEC §5 (schema 1). Detection creates events, the store queues them, notifiers render them. This
//! module does no I/O and knows nothing about how an event is detected or delivered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Version of the event JSON; bumped only on incompatible changes.
pub const EVENT_SCHEMA: u32 = 1;

/// How urgent an event is; targets filter on it with `min_severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity \"{other}\" (expected info, warning or critical)"
            )),
        }
    }
}

macro_rules! event_kinds {
    ($($variant:ident => $name:literal, $sev:ident, $subject:ident;)*) => {
        /// Every event the daemon can emit (SPEC §5). Names are stable: they appear in
        /// configuration filters, the event JSON and metrics labels.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventKind { $($variant,)* }

        impl EventKind {
            /// All kinds, in catalogue order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }

            /// The severity the catalogue gives this kind.
            pub fn severity(self) -> Severity {
                match self { $(EventKind::$variant => Severity::$sev,)* }
            }

            /// What kind of subject events of this kind are about.
            pub fn subject_type(self) -> SubjectType {
                match self { $(EventKind::$variant => SubjectType::$subject,)* }
            }

            pub fn from_name(s: &str) -> Option<EventKind> {
                match s { $($name => Some(EventKind::$variant),)* _ => None }
            }
        }
    };
}

event_kinds! {
    RentalStart => "rental_start", Info, Machine;
    RentalPause => "rental_pause", Info, Machine;
    RentalResume => "rental_resume", Info, Machine;
    RentalEnd => "rental_end", Info, Machine;
    RentalPreempt => "rental_preempt", Warning, Machine;
    MachineOffline => "machine_offline", Critical, Machine;
    MachineError => "machine_error", Warning, Machine;
    MachineRecovered => "machine_recovered", Info, Machine;
    MachineListed => "machine_listed", Info, Machine;
    MachineUnlisted => "machine_unlisted", Warning, Machine;
    MachineVerification => "machine_verification", Warning, Machine;
    MachineReport => "machine_report", Warning, Machine;
    MachineMaintenance => "machine_maintenance", Info, Machine;
    MachineAdded => "machine_added", Info, Machine;
    MachineRemoved => "machine_removed", Info, Machine;
    EarningsDigest => "earnings_digest", Info, Account;
    InstanceCreated => "instance_created", Info, Instance;
    InstanceRunning => "instance_running", Info, Instance;
    InstanceStopped => "instance_stopped", Info, Instance;
    InstanceExited => "instance_exited", Warning, Instance;
    InstancePreempted => "instance_preempted", Warning, Instance;
    InstanceStuck => "instance_stuck", Warning, Instance;
    InstanceError => "instance_error", Warning, Instance;
    InstanceDestroyed => "instance_destroyed", Info, Instance;
    InstanceLogMatch => "instance_log_match", Info, Instance;
    CreditLow => "credit_low", Warning, Account;
    AccountStale => "account_stale", Critical, Account;
    AccountRestored => "account_restored", Info, Account;
    AccountAuthFailed => "account_auth_failed", Critical, Account;
    StartupSummary => "startup_summary", Info, Supervisor;
    SupervisorStart => "supervisor_start", Info, Supervisor;
    SupervisorStop => "supervisor_stop", Info, Supervisor;
    ConfigReloaded => "config_reloaded", Info, Supervisor;
    ConfigRejected => "config_rejected", Warning, Supervisor;
    TargetFailing => "target_failing", Warning, Supervisor;
    StateFailing => "state_failing", Warning, Supervisor;
    Test => "test", Info, Supervisor;
}

impl EventKind {
    /// Expands a name used in a target's `events` filter: a kind name, `all`, or one of the
    /// vast-monitor aliases (`error`, `recovery`, `system`, `startup`). `None` for unknown names.
    pub fn expand_filter_name(name: &str) -> Option<Vec<EventKind>> {
        use EventKind::*;
        Some(match name {
            "all" => EventKind::ALL.to_vec(),
            "error" => vec![MachineError, MachineOffline],
            "recovery" => vec![MachineRecovered],
            "system" => vec![SupervisorStart, SupervisorStop],
            "startup" => vec![StartupSummary],
            other => vec![EventKind::from_name(other)?],
        })
    }

    /// Every name accepted by [`EventKind::expand_filter_name`], for "did you mean" hints.
    pub fn filter_names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        names.extend(["all", "error", "recovery", "system", "startup"]);
        names
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        EventKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event kind \"{name}\"")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectType {
    Machine,
    Instance,
    Account,
    Supervisor,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    Machine {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Instance {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Account {
        id: String,
    },
    Supervisor,
}

impl Subject {
    /// A short human label: "rig-01 (12345)", "instance 5003", "account alice", "supervisor".
    pub fn label(&self) -> String {
        match self {
            Subject::Machine { id, name: Some(n) } if !n.is_empty() => format!("{n} ({id})"),
            Subject::Machine { id, .. } => format!("machine {id}"),
            Subject::Instance { id, name: Some(n) } if !n.is_empty() => format!("{n} ({id})"),
            Subject::Instance { id, .. } => format!("instance {id}"),
            Subject::Account { id } => format!("account {id}"),
            Subject::Supervisor => "supervisor".to_string(),
        }
    }
}

/// One event, exactly as it is queued, delivered and shown (SPEC §5 event JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema: u32,
    /// Stable unique id: the same on every retry and after a restart re-detects the change.
    pub id: String,
    pub kind: EventKind,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub subject: Subject,
    /// When the change was seen.
    pub time: DateTime<Utc>,
    /// The previous observation: the change happened in (since, time].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Event {
    /// A new event with the catalogue severity of `kind` and empty data.
    pub fn new(
        id: impl Into<String>,
        kind: EventKind,
        account: Option<String>,
        subject: Subject,
        time: DateTime<Utc>,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Event {
        Event {
            schema: EVENT_SCHEMA,
            id: id.into(),
            kind,
            severity: kind.severity(),
            account,
            subject,
            time,
            since: None,
            title: title.into(),
            text: text.into(),
            data: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn with_since(mut self, since: Option<DateTime<Utc>>) -> Event {
        self.since = since;
        self
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Event {
        self.data = data;
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("event serialisation cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(seen.insert(k.as_str()), "duplicate name {k}");
            assert_eq!(EventKind::from_name(k.as_str()), Some(*k));
        }
        assert_eq!(EventKind::from_name("nope"), None);
    }

    #[test]
    fn aliases_expand() {
        assert_eq!(
            EventKind::expand_filter_name("error").unwrap(),
            vec![EventKind::MachineError, EventKind::MachineOffline]
        );
        assert_eq!(
            EventKind::expand_filter_name("all").unwrap().len(),
            EventKind::ALL.len()
        );
        assert!(EventKind::expand_filter_name("rental_strat").is_none());
    }

    #[test]
    fn event_json_matches_spec_shape() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T19:10:26Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = Event::new(
            "alice:m12345:1",
            EventKind::RentalStart,
            Some("alice".into()),
            Subject::Machine {
                id: 12345,
                name: Some("rig-01".into()),
            },
            t,
            "New rental on rig-01",
            "2x GPU",
        )
        .with_since(Some(t - chrono::Duration::seconds(30)));
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["kind"], "rental_start");
        assert_eq!(v["severity"], "info");
        assert_eq!(v["subject"]["type"], "machine");
        assert_eq!(v["subject"]["id"], 12345);
        assert_eq!(v["time"], "2026-11-22T19:10:26Z");
        assert_eq!(v["since"], "2026-11-22T19:09:56Z");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let sup = Event::new(
            "x",
            EventKind::SupervisorStart,
            None,
            Subject::Supervisor,
            t,
            "",
            "",
        );
        let v: serde_json::Value = serde_json::from_str(&sup.to_json()).unwrap();
        assert!(v.get("account").is_none());
        assert_eq!(v["subject"], serde_json::json!({"type": "supervisor"}));
    }
}
