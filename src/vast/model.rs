//! Typed rows of the Vast API (machines, instances, the current user, earnings).
//!
//! Every field is optional, numbers are lenient (int, float or numeric string; see
//! `reference/vast-api.md` §6.5) and unknown fields are kept in `extra`, so schema drift never
//! fails a poll. Secret fields (`api_key`, `jupyter_token`, `instance_api_key`) are dropped while
//! decoding, so they can never be logged, stored or shown. The decoder is hand-written (one pass,
//! no buffering) because `#[serde(flatten)]` buffers every row and machine lists are the hot path;
//! for the same reason unknown fields are kept as their raw JSON text, not parsed into values
//! (a Vast machine row has some 30 fields this version does not read).

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// Keys that carry secrets and are dropped at decode time.
pub const SECRET_FIELDS: &[&str] = &["api_key", "jupyter_token", "instance_api_key"];

/// A field decoded leniently; `None` when absent, null, or not convertible.
pub trait Lenient: Sized {
    fn from_value(v: Value) -> Option<Self>;
    fn to_value(&self) -> Value;
}

impl Lenient for f64 {
    fn from_value(v: Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        serde_json::Number::from_f64(*self)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

impl Lenient for i64 {
    fn from_value(v: Value) -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
            Value::String(s) => {
                let s = s.trim();
                s.parse()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().map(|f| f.round() as i64))
            }
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
}

impl Lenient for u64 {
    /// Ids and counts: every integer up to `u64::MAX` exactly (not through `i64`, which would
    /// collapse every id above `i64::MAX` into one), a numeric string, or a float that is a whole
    /// number small enough to be exact (2^53); anything else is absent rather than wrong.
    fn from_value(v: Value) -> Option<u64> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let whole = |f: f64| {
            (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= EXACT).then_some(f as u64)
        };
        match v {
            Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(whole)),
            Value::String(s) => {
                let s = s.trim();
                s.parse()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().and_then(whole))
            }
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
}

impl Lenient for bool {
    fn from_value(v: Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(b),
            Value::Number(n) => n.as_f64().map(|f| f != 0.0),
            Value::String(s) => match s.trim() {
                "true" | "True" | "1" => Some(true),
                "false" | "False" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl Lenient for String {
    fn from_value(v: Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
}

impl Lenient for Value {
    fn from_value(v: Value) -> Option<Value> {
        match v {
            Value::Null => None,
            v => Some(v),
        }
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// Decodes a JSON body. UTF-8 is checked once over the whole body: decoding from a `&str` then
/// skips the check that decoding from bytes repeats for every string and every kept raw field.
pub fn from_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        // serde_json says where the bad byte is.
        Err(_) => serde_json::from_slice(body),
    }
}

/// A row's unknown fields as the text of one JSON object, built while decoding without parsing
/// the values; parsed only when someone reads them (nothing in the daemon does on the hot path).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra(String);

/// About the size of the unknown part of a Vast machine or instance row.
const EXTRA_CAPACITY: usize = 1024;

impl Extra {
    fn push(&mut self, key: &str, raw: &RawValue) {
        if self.0.is_empty() {
            // Room for a typical row's unknown fields at once, instead of growing field by field.
            self.0.reserve(EXTRA_CAPACITY);
            self.0.push('{');
        } else {
            self.0.push(',');
        }
        // A key is a JSON string; serializing a &str cannot fail.
        self.0
            .push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into()));
        self.0.push(':');
        self.0.push_str(raw.get());
    }

    fn close(&mut self) {
        if !self.0.is_empty() {
            self.0.push('}');
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The unknown fields, parsed.
    pub fn to_map(&self) -> Map<String, Value> {
        match self.0.is_empty() {
            true => Map::new(),
            false => serde_json::from_str(&self.0).unwrap_or_default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.to_map().remove(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.to_map().contains_key(key)
    }
}

macro_rules! lenient_row {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: Option<$ty>,)*
            /// Fields this version does not know, kept as received (secrets removed).
            pub extra: Extra,
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct RowVisitor;
                impl<'de> Visitor<'de> for RowVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " object"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut row = $name::default();
                        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                            match key.as_ref() {
                                $(stringify!($field) => {
                                    let v: Value = map.next_value()?;
                                    row.$field = <$ty as Lenient>::from_value(v);
                                })*
                                k if SECRET_FIELDS.contains(&k) => {
                                    map.next_value::<de::IgnoredAny>()?;
                                }
                                _ => {
                                    let raw: Box<RawValue> = map.next_value()?;
                                    row.extra.push(&key, &raw);
                                }
                            }
                        }
                        row.extra.close();
                        Ok(row)
                    }
                }
                d.deserialize_map(RowVisitor)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                $(if let Some(v) = &self.$field {
                    m.serialize_entry(stringify!($field), &Lenient::to_value(v))?;
                })*
                for (k, v) in self.extra.to_map() {
                    m.serialize_entry(&k, &v)?;
                }
                m.end()
            }
        }
    };
}

lenient_row! {
    /// One element of `GET /api/v0/machines/` (`machines[]`), or the detail of one machine.
    pub struct Machine {
        id: u64,
        machine_id: u64,
        hostname: String,
        gpu_name: String,
        num_gpus: u64,
        listed: bool,
        /// One token per GPU: `x` idle, `D` on-demand, `I` interruptible, `R` reserved.
        gpu_occupancy: String,
        current_rentals_running: i64,
        current_rentals_running_on_demand: i64,
        current_rentals_running_reserved: i64,
        current_rentals_resident: i64,
        current_rentals_on_demand: i64,
        current_rentals_reserved: i64,
        /// GB held by current contracts; null when nothing is allocated.
        alloc_disk_space: f64,
        client_end_date: f64,
        /// 0 while the machine daemon checks in; positive (seconds) when it stopped reporting.
        timeout: f64,
        error_description: String,
        verification: String,
        reliability2: f64,
        num_reports: f64,
        num_recent_reports: f64,
        machine_maintenance: Value,
        clients: Value,
        listed_gpu_cost: f64,
        min_bid_price: f64,
        bid_gpu_cost: f64,
        listed_storage_cost: f64,
        earn_hour: f64,
        earn_day: f64,
        disk_space: f64,
        avail_disk_space: f64,
        public_ipaddr: String,
        geolocation: String,
        start_date: f64,
        end_date: f64,
    }
}

impl Machine {
    /// The machine id (`id`, else `machine_id`).
    pub fn key(&self) -> Option<u64> {
        self.id.or(self.machine_id)
    }
}

lenient_row! {
    /// One instance row (`GET /api/v1/instances/`, v0 list, or the single-instance lookup).
    pub struct Instance {
        id: u64,
        machine_id: u64,
        host_id: u64,
        bundle_id: u64,
        actual_status: String,
        intended_status: String,
        cur_state: String,
        next_state: String,
        status_msg: String,
        is_bid: bool,
        label: String,
        gpu_name: String,
        num_gpus: f64,
        dph_base: f64,
        dph_total: f64,
        min_bid: f64,
        start_date: f64,
        end_date: f64,
        ssh_host: String,
        ssh_port: u64,
        image_uuid: String,
        geolocation: String,
    }
}

lenient_row! {
    /// `GET /api/v0/users/current/` (its `api_key` is dropped while decoding).
    pub struct User {
        id: u64,
        username: String,
        email: String,
        credit: f64,
        balance: f64,
    }
}

lenient_row! {
    /// One `per_machine` row of the machine-earnings endpoint.
    pub struct MachineEarnings {
        machine_id: u64,
        gpu_earn: f64,
        sto_earn: f64,
        bwu_earn: f64,
        bwd_earn: f64,
    }
}

/// `GET /api/v0/machines/` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MachineList {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub machines: Vec<Machine>,
}

/// `GET /api/v0/users/me/machine-earnings/` body (the parts the daemon uses).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Earnings {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub per_machine: Vec<MachineEarnings>,
    #[serde(default)]
    pub summary: Option<Value>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_numbers_and_unknown_fields() {
        let m: Machine = serde_json::from_str(
            r#"{"id": "12345", "num_gpus": 4.0, "timeout": "300", "alloc_disk_space": null,
                "listed": 1, "gpu_occupancy": "D D x x ", "brand_new": [1, 2], "api_key": "SECRET",
                "num_recent_reports": 0.5, "hostname": 42}"#,
        )
        .unwrap();
        assert_eq!(m.key(), Some(12345));
        assert_eq!(m.num_gpus, Some(4));
        assert_eq!(m.timeout, Some(300.0));
        assert_eq!(m.alloc_disk_space, None);
        assert_eq!(m.listed, Some(true));
        assert_eq!(m.hostname.as_deref(), Some("42"));
        assert_eq!(m.extra.get("brand_new"), Some(serde_json::json!([1, 2])));
        assert!(!m.extra.contains_key("api_key"));
        let out = serde_json::to_string(&m).unwrap();
        assert!(!out.contains("SECRET"));
        assert!(out.contains("brand_new"));
    }

    #[test]
    fn ids_above_i64_max_stay_distinct() {
        let ids = [
            r#"{"id": 9223372036854775808}"#,
            r#"{"id": 9223372036854775809}"#,
            r#"{"id": 18446744073709551615}"#,
            r#"{"id": "18446744073709551614"}"#,
        ];
        let keys: Vec<Option<u64>> = ids
            .iter()
            .map(|j| serde_json::from_str::<Machine>(j).unwrap().key())
            .collect();
        assert_eq!(
            keys,
            [
                Some(9_223_372_036_854_775_808),
                Some(9_223_372_036_854_775_809),
                Some(u64::MAX),
                Some(u64::MAX - 1)
            ]
        );
        // Not exact, or not an id at all: absent rather than another machine's id.
        for bad in [
            r#"{"id": 1e19}"#,
            r#"{"id": 12.5}"#,
            r#"{"id": -3}"#,
            r#"{"id": "18446744073709551616"}"#,
        ] {
            assert_eq!(
                serde_json::from_str::<Machine>(bad).unwrap().key(),
                None,
                "{bad}"
            );
        }
        let m: Machine = serde_json::from_str(r#"{"id": 12345.0}"#).unwrap();
        assert_eq!(m.key(), Some(12345));
        let back = serde_json::to_string(
            &serde_json::from_str::<Machine>(r#"{"id": 18446744073709551615}"#).unwrap(),
        )
        .unwrap();
        assert!(back.contains("18446744073709551615"), "{back}");
    }

    #[test]
    fn unknown_fields_are_kept_when_decoding_from_a_value_too() {
        // The single-machine and user endpoints decode rows from an already parsed `Value`.
        let v = serde_json::json!({"id": 7, "new_field": {"a": [1, "x"]}, "api_key": "SECRET",
            "odd \"key\"": null});
        let m = Machine::deserialize(v).unwrap();
        assert_eq!(m.key(), Some(7));
        assert_eq!(
            m.extra.get("new_field"),
            Some(serde_json::json!({"a": [1, "x"]}))
        );
        assert_eq!(m.extra.get("odd \"key\""), Some(Value::Null));
        assert!(!m.extra.contains_key("api_key"));
        let none: Machine = serde_json::from_str(r#"{"id": 8}"#).unwrap();
        assert!(none.extra.is_empty());
        assert!(none.extra.to_map().is_empty());
    }

    #[test]
    fn missing_and_wrong_types_are_none_not_errors() {
        let m: Machine =
            serde_json::from_str(r#"{"id": 1, "timeout": "soon", "listed": "maybe"}"#).unwrap();
        assert_eq!(m.timeout, None);
        assert_eq!(m.listed, None);
        assert_eq!(m.gpu_occupancy, None);
    }
}
