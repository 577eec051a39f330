//! The answer of each route that is more than a list of rows: the user, the earnings, the v1
//! instance pages, instance writes (start, stop, label, destroy) and the two-step log download.
//! Must not authenticate or inject faults (that is `http`).

use super::message::{Outcome, SimRequest};
use super::{epoch_now, LogUpload, SimInstance, World};
use crate::sim::spec::{EarningsRow, WriteAction, WriteRecord};
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Pending log uploads kept; older ones are forgotten.
const MAX_LOG_REQUESTS: usize = 1_000;
/// Largest v1 instance page, as on Vast.
const MAX_PAGE: usize = 25;

impl World {
    pub(super) fn user_body(&self, key: &str) -> (u16, Value) {
        let Some(a) = self.accounts.get(key) else {
            return (401, json!({"success": false, "error": "auth_error"}));
        };
        (
            200,
            json!({
                "id": a.user_id,
                "key_id": a.user_id * 10 + 1,
                "username": a.name,
                "fullname": a.name,
                "email": format!("{}@example.com", a.name),
                "email_verified": true,
                "credit": a.credit,
                "balance": 0.0,
                "balance_threshold": 5.0,
                "balance_threshold_enabled": false,
                "can_pay": true,
                "has_billing": true,
                "has_payout": true,
                "ssh_key": null,
                "sid": null,
                // The real endpoint returns the caller's key; clients must drop it.
                "api_key": key,
            }),
        )
    }

    pub(super) fn earnings_body(&self, key: &str, query: &HashMap<String, String>) -> (u16, Value) {
        let Some(a) = self.accounts.get(key) else {
            return (401, json!({"success": false, "error": "auth_error"}));
        };
        let today = (epoch_now() / 86400.0).floor();
        let day = |name: &str| {
            query
                .get(name)
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(today - 1.0, f64::floor)
        };
        let (sday, eday) = (day("sday"), day("eday"));
        let rows: Vec<EarningsRow> = match &a.earnings {
            Some(rows) => rows.clone(),
            None => self
                .machines
                .values()
                .filter(|m| m.owner == key)
                .map(|m| EarningsRow {
                    machine_id: m.spec.id,
                    gpu_earn: 0.0,
                    sto_earn: 0.0,
                    bwu_earn: 0.0,
                    bwd_earn: 0.0,
                })
                .collect(),
        };
        let total = |f: fn(&EarningsRow) -> f64| rows.iter().map(f).sum::<f64>();
        let (gpu, sto, bwu, bwd) = (
            total(|r| r.gpu_earn),
            total(|r| r.sto_earn),
            total(|r| r.bwu_earn),
            total(|r| r.bwd_earn),
        );
        (
            200,
            json!({
                "sday": sday as i64,
                "eday": eday as i64,
                "summary": {"total_gpu": gpu, "total_stor": sto, "total_bwu": bwu, "total_bwd": bwd},
                "current": {"balance": 0.0, "service_fee": 0.0, "total": 0.0, "credit": a.credit},
                "per_machine": rows,
                "per_day": [{"day": eday as i64, "gpu_earn": gpu, "sto_earn": sto, "bwu_earn": bwu, "bwd_earn": bwd}],
                "username": a.name,
                "email": format!("{}@example.com", a.name),
            }),
        )
    }

    /// `GET /api/v1/instances/`: keyset pages by id ascending; `next_token` is the base64 of the
    /// last id of the page when more rows follow.
    pub(super) fn instances_page(
        &self,
        key: &str,
        query: &HashMap<String, String>,
        now: f64,
    ) -> (u16, Value) {
        let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
            None => MAX_PAGE,
            Some(Ok(l)) if l <= 0 => 5,
            Some(Ok(l)) => (l as usize).min(MAX_PAGE),
            Some(Err(_)) => {
                return (
                    400,
                    json!({"success": false, "error": "invalid_request", "msg": "limit must be an integer"}),
                )
            }
        };
        let after = match query.get("after_token") {
            None => None,
            Some(token) => match decode_token(token) {
                Some(id) => Some(id),
                None => {
                    return (
                        400,
                        json!({"success": false, "error": "invalid_token", "msg": "Invalid or expired after_token."}),
                    )
                }
            },
        };
        let owned: Vec<&SimInstance> = self.instances.values().filter(|i| i.owner == key).collect();
        let mut label_counts: BTreeMap<String, u64> = BTreeMap::new();
        for i in &owned {
            if let Some(l) = &i.label {
                *label_counts.entry(l.clone()).or_default() += 1;
            }
        }
        let remaining: Vec<&&SimInstance> = owned
            .iter()
            .filter(|i| after.is_none_or(|a| i.id > a))
            .collect();
        let page: Vec<Value> = remaining
            .iter()
            .take(limit)
            .map(|i| Value::Object(self.instance_row(i, now)))
            .collect();
        let next_token = if remaining.len() > limit {
            remaining
                .get(limit - 1)
                .map(|i| {
                    Value::from(base64::engine::general_purpose::STANDARD.encode(i.id.to_string()))
                })
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        (
            200,
            json!({
                "success": true,
                "instances_found": page.len(),
                "total_instances": owned.len(),
                "label_counts": label_counts,
                "next_token": next_token,
                "instances": page,
            }),
        )
    }

    pub(super) fn instance_route(
        &mut self,
        id: u64,
        key: &str,
        req: &SimRequest<'_>,
        now: f64,
    ) -> (u16, Value) {
        let owned = self.instances.get(&id).is_some_and(|i| i.owner == key);
        let account = self
            .accounts
            .get(key)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        match req.method {
            "GET" => match self.instances.get(&id).filter(|_| owned) {
                Some(i) => (
                    200,
                    json!({"instances": Value::Object(self.instance_row(i, now))}),
                ),
                None => (200, json!({"instances": null})),
            },
            "DELETE" => {
                if !owned {
                    return (
                        404,
                        json!({"success": false, "error": "not_found", "msg": "Instance not found"}),
                    );
                }
                self.instances.remove(&id);
                self.writes.push(WriteRecord {
                    account,
                    instance: id,
                    action: WriteAction::Destroy,
                });
                (
                    200,
                    json!({"success": true, "msg": format!("destroying instance {id}.")}),
                )
            }
            _ => {
                if !owned {
                    return (
                        404,
                        json!({"success": false, "error": "no_such_instance", "msg": "Instance not found"}),
                    );
                }
                let body: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
                let action = match (body.get("state").and_then(Value::as_str), body.get("label")) {
                    (Some("running"), _) => WriteAction::Start,
                    (Some("stopped"), _) => WriteAction::Stop,
                    (None, Some(Value::String(l))) => WriteAction::Label(l.clone()),
                    _ => {
                        return (
                            400,
                            json!({"success": false, "error": "invalid_args", "msg": "expected {\"state\": \"running\"|\"stopped\"} or {\"label\": ...}"}),
                        )
                    }
                };
                let outbid = self.instances.get(&id).is_some_and(|i| {
                    i.is_bid && i.cur_state == "stopped" && i.min_bid > i.dph_base
                });
                if action == WriteAction::Start && outbid {
                    self.writes.push(WriteRecord {
                        account,
                        instance: id,
                        action,
                    });
                    // Vast answers a start it cannot honour with HTTP 200 and `success: false`.
                    return (
                        200,
                        json!({"success": false, "msg": "Unable to start: your bid is below the current minimum price for this machine."}),
                    );
                }
                if let Some(i) = self.instances.get_mut(&id) {
                    match &action {
                        WriteAction::Start => {
                            i.intended = "running".into();
                            i.cur_state = "running".into();
                            i.actual = Some("running".into());
                        }
                        WriteAction::Stop => {
                            i.intended = "stopped".into();
                            i.cur_state = "stopped".into();
                            i.actual = Some("exited".into());
                        }
                        WriteAction::Label(l) => i.label = Some(l.clone()),
                        WriteAction::Destroy => {}
                    }
                }
                self.writes.push(WriteRecord {
                    account,
                    instance: id,
                    action,
                });
                (200, json!({"success": true}))
            }
        }
    }

    pub(super) fn request_logs(
        &mut self,
        id: u64,
        key: &str,
        req: &SimRequest<'_>,
    ) -> (u16, Value) {
        let Some(instance) = self.instances.get(&id).filter(|i| i.owner == key) else {
            return (
                404,
                json!({"error": "invalid_id", "msg": "Invalid instance id."}),
            );
        };
        let body: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        let tail = match body.get("tail") {
            Some(Value::String(s)) => s.trim().parse::<usize>().ok(),
            Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
            _ => None,
        }
        .unwrap_or(1000);
        let start = instance.log.len().saturating_sub(tail);
        let mut text = instance.log[start..].join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        let token: String = {
            let mut rng = rand::thread_rng();
            (0..32)
                .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        if self.log_order.len() >= MAX_LOG_REQUESTS {
            if let Some(old) = self.log_order.pop_front() {
                self.logs.remove(&old);
            }
        }
        self.log_order.push_back(token.clone());
        self.logs.insert(
            token.clone(),
            LogUpload {
                text,
                not_ready_polls: self.log_not_ready_polls,
            },
        );
        let url = self
            .base_url
            .join(&format!("sim/instance_logs/{token}.log"))
            .map(|u| u.to_string())
            .unwrap_or_default();
        (
            200,
            json!({"success": true, "result_url": url, "msg": "Fetching logs, check the result_url in a few seconds."}),
        )
    }

    /// The storage side of a log request: 404 (S3's XML) until the upload "lands".
    pub(super) fn log_result(&mut self, token: &str) -> Outcome {
        const NO_SUCH_KEY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        match self.logs.get_mut(token) {
            Some(upload) if upload.not_ready_polls > 0 => {
                upload.not_ready_polls -= 1;
                Outcome::raw(404, "application/xml", NO_SUCH_KEY)
            }
            Some(upload) => Outcome::raw(200, "text/plain; charset=utf-8", &upload.text),
            None => Outcome::raw(404, "application/xml", NO_SUCH_KEY),
        }
    }
}

pub(super) fn decode_token(token: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}
