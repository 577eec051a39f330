//! One request to the simulated cloud: it is recorded (never the key), authenticated, held to the
//! rate limit, given the account's next fault, and routed; the fault then bends the answer. Must
//! not build the body of a route itself (that is `endpoints`).

use super::message::{After, Outcome, SimRequest};
use super::{epoch_now, Fault, FaultDuration, World};
use crate::sim::faults::INVALID_USER_KEY;
use crate::sim::spec::RecordedRequest;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Instant;

/// Requests kept for inspection; older ones are dropped so a long `simulate` run stays small.
const MAX_RECORDED_REQUESTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Machines,
    Machine(u64),
    MachineReports(u64),
    User,
    Earnings,
    InstancesV1,
    InstancesV0,
    Instance(u64),
    RequestLogs(u64),
    LogResult(String),
    Unknown,
}

impl Route {
    fn parse(method: &str, path: &str) -> Route {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let id = |s: &str| s.parse::<u64>().ok();
        match (method, segments.as_slice()) {
            ("GET", ["api", "v0", "machines"]) => Route::Machines,
            ("GET", ["api", "v0", "machines", m]) => id(m).map_or(Route::Unknown, Route::Machine),
            ("GET", ["api", "v0", "machines", m, "reports"]) => {
                id(m).map_or(Route::Unknown, Route::MachineReports)
            }
            ("GET", ["api", "v0", "users", "me" | "current"]) => Route::User,
            ("GET", ["api", "v0", "users", "me" | "current", "machine-earnings"]) => {
                Route::Earnings
            }
            ("GET", ["api", "v1", "instances"]) => Route::InstancesV1,
            ("GET", ["api", "v0", "instances"]) => Route::InstancesV0,
            ("GET" | "PUT" | "DELETE", ["api", "v0", "instances", i]) => {
                id(i).map_or(Route::Unknown, Route::Instance)
            }
            ("PUT", ["api", "v0", "instances", "request_logs", i]) => {
                id(i).map_or(Route::Unknown, Route::RequestLogs)
            }
            ("GET", ["sim", "instance_logs", file]) => file
                .strip_suffix(".log")
                .map_or(Route::Unknown, |t| Route::LogResult(t.to_string())),
            _ => Route::Unknown,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Route::Machines => "machines",
            Route::Machine(_) => "machine",
            Route::MachineReports(_) => "machine_reports",
            Route::User => "user",
            Route::Earnings => "earnings",
            Route::InstancesV1 => "instances_v1",
            Route::InstancesV0 => "instances_v0",
            Route::Instance(_) => "instance",
            Route::RequestLogs(_) => "request_logs",
            Route::LogResult(_) => "log_result",
            Route::Unknown => "unknown",
        }
    }
}

impl World {
    /// Answers one request: records it, authenticates, applies rate limits and faults, routes.
    pub(crate) fn handle(&mut self, req: &SimRequest<'_>, now: Instant) -> Outcome {
        let route = Route::parse(req.method, req.path);
        let query_key = req.query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "api_key")
                .map(|(_, v)| v.into_owned())
        });
        let key = req.bearer.map(str::to_string).or(query_key.clone());
        let account_name = key
            .as_ref()
            .and_then(|k| self.accounts.get(k))
            .map(|a| a.name.clone());
        let mut record = RecordedRequest {
            method: req.method.to_string(),
            path: req.path.to_string(),
            query: req.query.map(crate::vast::redact_url),
            authorization_header: req.authorization_header,
            api_key_in_query: query_key.is_some(),
            account: account_name.clone(),
            route: route.label(),
            fault: None,
            at: std::time::Instant::now(),
            answered: std::time::Instant::now(),
        };
        let outcome = self.answer(route, req, key, now, &mut record);
        record.answered = std::time::Instant::now();
        if self.requests.len() >= MAX_RECORDED_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
        outcome
    }

    fn answer(
        &mut self,
        route: Route,
        req: &SimRequest<'_>,
        key: Option<String>,
        now: Instant,
        record: &mut RecordedRequest,
    ) -> Outcome {
        if let Route::LogResult(token) = &route {
            return self.log_result(token);
        }
        let Some(key) = key else {
            return Outcome::raw(
                401,
                "application/json",
                r#"{"detail": "Authentication credentials were not provided."}"#,
            );
        };
        if !self.accounts.contains_key(&key) {
            // Some v1 endpoints answer an unknown key with a 404 (reference/vast-api.md §5).
            let status = if route == Route::InstancesV1 {
                404
            } else {
                401
            };
            return Outcome::raw(status, "application/json", INVALID_USER_KEY);
        }
        if let Some(limit) = &self.rate_limit {
            let slot = (key.clone(), route.label());
            if let Some(last) = self.last_call.get(&slot) {
                if now.duration_since(*last) < limit.min_interval {
                    record.fault = Some(limit.style.clone());
                    if let Some(c) = limit.style.canned() {
                        return Outcome::canned(c);
                    }
                }
            }
            self.last_call.insert(slot, now);
        }
        let query: HashMap<String, String> = req
            .query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let fault = self.take_fault(&key, &route, &query);
        record.fault = fault.clone();
        if let Some(c) = fault.as_ref().and_then(Fault::canned) {
            return Outcome::canned(c);
        }
        if fault == Some(Fault::Reset) {
            return Outcome {
                after: After::Reset,
                ..Outcome::raw(500, "text/plain", "")
            };
        }
        let (status, mut value) = self.route(&route, &key, req, &query);
        match &fault {
            Some(Fault::RemoveField(f)) => for_each_row(&mut value, |row| {
                row.remove(f);
            }),
            Some(Fault::NullField(f)) => for_each_row(&mut value, |row| {
                if let Some(v) = row.get_mut(f) {
                    *v = Value::Null;
                }
            }),
            Some(Fault::ForeignRow) => for_each_row(&mut value, |row| {
                for key in ["id", "machine_id"] {
                    if let Some(id) = row.get(key).and_then(Value::as_u64) {
                        row.insert(key.to_string(), Value::from(id.wrapping_add(1)));
                    }
                }
            }),
            Some(Fault::StringifyField(f)) => for_each_row(&mut value, |row| {
                if let Some(v) = row.get_mut(f) {
                    if !v.is_string() && !v.is_null() {
                        *v = Value::String(v.to_string());
                    }
                }
            }),
            _ => {}
        }
        let mut outcome = Outcome::json(status, &value);
        match fault {
            Some(Fault::TruncatedJson) => {
                let keep = (outcome.body.len() / 2)
                    .max(1)
                    .min(outcome.body.len().saturating_sub(1));
                outcome.body.truncate(keep);
            }
            Some(Fault::Hang(d)) => outcome.after = After::Hang(d),
            Some(Fault::Oversized(n)) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                outcome.body.resize(n.max(outcome.body.len()), b' ');
            }
            _ => {}
        }
        outcome
    }

    /// The first fault of the account that applies to this request, consumed by one use.
    fn take_fault(
        &mut self,
        key: &str,
        route: &Route,
        query: &HashMap<String, String>,
    ) -> Option<Fault> {
        let account = self.accounts.get_mut(key)?;
        let paging = *route == Route::InstancesV1 && query.contains_key("after_token");
        let index = account
            .faults
            .iter()
            .position(|(f, _)| *f != Fault::InvalidPageToken || paging)?;
        let (fault, duration) = account.faults[index].clone();
        match duration {
            FaultDuration::Requests(n) if n <= 1 => {
                account.faults.remove(index);
            }
            FaultDuration::Requests(n) => account.faults[index].1 = FaultDuration::Requests(n - 1),
            FaultDuration::UntilCleared => {}
        }
        Some(fault)
    }

    fn route(
        &mut self,
        route: &Route,
        key: &str,
        req: &SimRequest<'_>,
        query: &HashMap<String, String>,
    ) -> (u16, Value) {
        let now = epoch_now();
        match route {
            Route::Machines => {
                let mut rows = Vec::new();
                for m in self.machines.values_mut().filter(|m| m.owner == key) {
                    if m.hide_once {
                        m.hide_once = false;
                        continue;
                    }
                    rows.push(m.spec.id);
                }
                let rows: Vec<Value> = rows
                    .iter()
                    .filter_map(|id| self.machines.get(id))
                    .map(|m| Value::Object(self.machine_row(m, now)))
                    .collect();
                (200, json!({ "machines": rows }))
            }
            Route::Machine(id) => match self.machines.get(id).filter(|m| m.owner == key) {
                Some(m) => (200, json!([Value::Object(self.machine_row(m, now))])),
                None => (200, json!([])),
            },
            Route::MachineReports(id) => match self.machines.get(id).filter(|m| m.owner == key) {
                Some(m) => (200, Value::Array(m.reports.clone())),
                None => (
                    404,
                    json!({"success": false, "error": "not_found", "msg": "No such machine id"}),
                ),
            },
            Route::User => self.user_body(key),
            Route::Earnings => self.earnings_body(key, query),
            Route::InstancesV1 => self.instances_page(key, query, now),
            Route::InstancesV0 => {
                let rows: Vec<Value> = self
                    .instances
                    .values()
                    .filter(|i| i.owner == key)
                    .map(|i| Value::Object(self.instance_row(i, now)))
                    .collect();
                (
                    200,
                    json!({"instances_found": rows.len(), "instances": rows}),
                )
            }
            Route::Instance(id) => self.instance_route(*id, key, req, now),
            Route::RequestLogs(id) => self.request_logs(*id, key, req),
            Route::LogResult(_) | Route::Unknown => (
                404,
                json!({"success": false, "error": "not_found", "msg": "No such API route"}),
            ),
        }
    }
}

/// Applies `f` to every row of a body: the elements of `machines`/`instances` (or of a bare
/// list), the single `instances` object, or else the body object itself.
fn for_each_row(value: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    let target = match value {
        Value::Object(map) if map.contains_key("machines") => map.get_mut("machines"),
        Value::Object(map) if map.contains_key("instances") => map.get_mut("instances"),
        other => Some(other),
    };
    match target {
        Some(Value::Array(rows)) => rows.iter_mut().for_each(|r| {
            if let Value::Object(map) = r {
                f(map)
            }
        }),
        Some(Value::Object(map)) => f(map),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::world::endpoints::decode_token;

    #[test]
    fn routes_ignore_trailing_slashes() {
        assert_eq!(Route::parse("GET", "/api/v0/machines"), Route::Machines);
        assert_eq!(Route::parse("GET", "/api/v0/machines/"), Route::Machines);
        assert_eq!(
            Route::parse("GET", "/api/v0/machines/7/"),
            Route::Machine(7)
        );
        assert_eq!(
            Route::parse("DELETE", "/api/v0/instances/7"),
            Route::Instance(7)
        );
        assert_eq!(Route::parse("GET", "/api/v0/machines/x/"), Route::Unknown);
        assert_eq!(
            Route::parse("PUT", "/api/v0/instances/request_logs/9/"),
            Route::RequestLogs(9)
        );
        assert_eq!(decode_token("MTIz"), Some(123));
        assert_eq!(decode_token("!!"), None);
    }
}
