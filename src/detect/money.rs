//! The pure money rules of an account: `credit_low` with hysteresis, when the daily
//! `earnings_digest` is due, the day window to ask the earnings endpoint for, and the digest event
//! itself (SPEC §4-§5, `vast-api.md` §2.3, §3.7).
//!
//! No I/O and no clock: the caller passes `now` (and the local wall-clock time for the digest) and
//! persists the returned state together with the events.
//!
//! **Credit.** `credit_low` is sent when the credit is below the threshold while the alert is armed;
//! it then disarms. It re-arms only when the credit climbs back to [`rearm_level`] (the threshold
//! plus 5 % of it, at least $0.50), so a balance hovering around the threshold does not alert on
//! every poll. The very first observation (no `last_credit` yet) counts as armed, so a balance that
//! is already low when watching starts is reported once. A non-finite credit or threshold changes
//! nothing.
//!
//! **Digest.** Due once per local day, at or after the configured local time, and reports the
//! previous local day. If the daemon was down at that time it is sent when it comes back later the
//! same day; a day is never reported twice ([`DigestState::last_sent_day`] is the last day reported).

use crate::event::{Event, EventKind, Subject};
use crate::vast::Earnings;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The credit alert of one account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CreditState {
    /// true: a drop below the threshold may alert.
    pub armed: bool,
    pub last_credit: Option<f64>,
    /// Events emitted so far; the last part of event ids.
    pub seq: u64,
}

/// The credit at which a sent `credit_low` re-arms: `threshold + max(5 % of threshold, $0.50)`.
pub fn rearm_level(threshold: f64) -> f64 {
    threshold + (threshold.abs() * 0.05).max(0.5)
}

/// Observes the account's credit (`credit` of `/users/current/`) against `threshold` (USD).
pub fn observe_credit(
    prev: &CreditState,
    credit: f64,
    threshold: f64,
    account: &str,
    now: DateTime<Utc>,
) -> (CreditState, Vec<Event>) {
    if !credit.is_finite() || !threshold.is_finite() {
        return (prev.clone(), Vec::new());
    }
    let mut s = prev.clone();
    let mut events = Vec::new();
    let armed = prev.armed || prev.last_credit.is_none();
    if credit < threshold {
        if armed {
            s.seq += 1;
            let title = format!("Credit low on {account}: {}", fmt_money(credit));
            let text = format!(
                "credit {} is below the threshold of {}; instances stop when it reaches zero",
                fmt_money(credit),
                fmt_money(threshold)
            );
            let data = json!({"credit": round6(credit), "threshold": round6(threshold)});
            events.push(
                Event::new(
                    format!("{account}:credit:{}", s.seq),
                    EventKind::CreditLow,
                    Some(account.to_string()),
                    Subject::Account {
                        id: account.to_string(),
                    },
                    now,
                    title,
                    text,
                )
                .with_data(data),
            );
        }
        s.armed = false;
    } else if credit >= rearm_level(threshold) || armed {
        s.armed = true;
    }
    s.last_credit = Some(quantize(credit));
    (s, events)
}

/// Notes a credit read while no `credit_low_below` applies (renter accounts show their credit in
/// status). Nothing can alert without a threshold, so the alert stays armed: a threshold added
/// later alerts on the first low reading.
pub fn note_credit(prev: &CreditState, credit: f64) -> CreditState {
    if !credit.is_finite() {
        return prev.clone();
    }
    CreditState {
        armed: true,
        last_credit: Some(quantize(credit)),
        seq: prev.seq,
    }
}

/// When the daily earnings digest of one account was last sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct DigestState {
    /// The last day whose earnings were reported (the day before the one it was sent on).
    pub last_sent_day: Option<NaiveDate>,
}

/// The day to report now, if a digest is due: once per local day at or after `at`, for the previous
/// local day, never for a day already reported. After sending, store the returned day in
/// [`DigestState::last_sent_day`].
pub fn digest_due(
    state: &DigestState,
    at: NaiveTime,
    now_local: NaiveDateTime,
) -> Option<NaiveDate> {
    if now_local.time() < at {
        return None;
    }
    let yesterday = now_local.date().pred_opt()?;
    match state.last_sent_day {
        Some(sent) if sent >= yesterday => None,
        _ => Some(yesterday),
    }
}

/// `(sday, eday)` for the earnings endpoint: fractional days since the Unix epoch covering `day`
/// (its first second to its last second). The endpoint floors both to day numbers, so this asks
/// for exactly that day; a server that reads them as instants gets the whole day as well.
pub fn earnings_window(day: NaiveDate) -> (f64, f64) {
    let number = day
        .signed_duration_since(DateTime::UNIX_EPOCH.date_naive())
        .num_days() as f64;
    (number, number + 1.0 - 1.0 / 86_400.0)
}

/// The `earnings_digest` event for `day`: per machine GPU, storage and bandwidth earnings and the
/// total. Machines named in `machine_names` without an earnings row are listed with $0.
pub fn earnings_digest(
    day: NaiveDate,
    earnings: &Earnings,
    machine_names: &BTreeMap<u64, String>,
    account: &str,
    now: DateTime<Utc>,
    seq: u64,
) -> Event {
    let mut rows: BTreeMap<Option<u64>, Amounts> = BTreeMap::new();
    for id in machine_names.keys() {
        rows.entry(Some(*id)).or_default();
    }
    for row in &earnings.per_machine {
        let a = rows.entry(row.machine_id).or_default();
        a.gpu += money(row.gpu_earn);
        a.storage += money(row.sto_earn);
        a.bandwidth_up += money(row.bwu_earn);
        a.bandwidth_down += money(row.bwd_earn);
    }
    let mut total = Amounts::default();
    let mut lines = Vec::new();
    let mut machines = Vec::new();
    for (id, a) in &rows {
        total.gpu += a.gpu;
        total.storage += a.storage;
        total.bandwidth_up += a.bandwidth_up;
        total.bandwidth_down += a.bandwidth_down;
        let name = id.and_then(|id| machine_names.get(&id)).cloned();
        let label = match (id, &name) {
            (Some(id), Some(n)) if !n.trim().is_empty() => format!("{n} ({id})"),
            (Some(id), _) => format!("machine {id}"),
            (None, _) => "unknown machine".to_string(),
        };
        lines.push(format!(
            "{label}: GPU {}, storage {}, bandwidth {} = {}",
            fmt_money(a.gpu),
            fmt_money(a.storage),
            fmt_money(a.bandwidth()),
            fmt_money(a.total())
        ));
        let mut entry = a.to_json();
        entry["machine_id"] = json!(id);
        entry["name"] = json!(name);
        machines.push(entry);
    }
    let mut text = if lines.is_empty() {
        "No machine earnings recorded.".to_string()
    } else {
        lines.join("\n")
    };
    text.push_str(&format!(
        "\nTotal: {} (GPU {}, storage {}, bandwidth {})",
        fmt_money(total.total()),
        fmt_money(total.gpu),
        fmt_money(total.storage),
        fmt_money(total.bandwidth())
    ));
    let data = json!({
        "day": day.format("%Y-%m-%d").to_string(),
        "machines": machines,
        "total": total.to_json(),
    });
    Event::new(
        format!("{account}:digest:{}:{seq}", day.format("%Y-%m-%d")),
        EventKind::EarningsDigest,
        Some(account.to_string()),
        Subject::Account {
            id: account.to_string(),
        },
        now,
        format!(
            "Earnings of {account} on {}: {}",
            day.format("%Y-%m-%d"),
            fmt_money(total.total())
        ),
        text,
    )
    .with_data(data)
}

#[derive(Debug, Clone, Copy, Default)]
struct Amounts {
    gpu: f64,
    storage: f64,
    bandwidth_up: f64,
    bandwidth_down: f64,
}

impl Amounts {
    fn bandwidth(&self) -> f64 {
        self.bandwidth_up + self.bandwidth_down
    }

    fn total(&self) -> f64 {
        self.gpu + self.storage + self.bandwidth()
    }

    fn to_json(self) -> Value {
        json!({
            "gpu": round6(self.gpu),
            "storage": round6(self.storage),
            "bandwidth_up": round6(self.bandwidth_up),
            "bandwidth_down": round6(self.bandwidth_down),
            "total": round6(self.total()),
        })
    }
}

/// A finite amount, else 0 (earnings can carry tiny exponents or garbage, `vast-api.md` §6.5).
fn money(v: Option<f64>) -> f64 {
    v.filter(|x| x.is_finite()).unwrap_or(0.0)
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Rounds to 1e-9 so state read back from JSON is bit-for-bit the same.
fn quantize(v: f64) -> f64 {
    if v.abs() < 1e6 {
        (v * 1e9).round() / 1e9
    } else {
        v
    }
}

/// Dollars: cents, or four decimals for amounts that would show as less than ten cents.
fn fmt_money(v: f64) -> String {
    let v = if v.abs() < 5e-5 { 0.0 } else { v };
    if v != 0.0 && (v * 100.0).round().abs() < 10.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}
