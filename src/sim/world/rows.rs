//! A machine's or an instance's row as Vast sends it: a real row (`data/*.json`) with the
//! simulated fields written over it, machine fields derived from its rental contracts. Must not
//! change the world.

use super::{num, Rental, SimInstance, SimMachine, World};
use crate::sim::spec::RentalKind;
use serde_json::{json, Map, Value};

impl World {
    pub(super) fn machine_row(&self, m: &SimMachine, now: f64) -> Map<String, Value> {
        let mut row = self.machine_template.clone();
        let spec = &m.spec;
        let count = |pred: &dyn Fn(&Rental) -> bool| -> Value {
            Value::from(m.rentals.iter().filter(|r| pred(r)).count())
        };
        let tokens: String = (0..spec.num_gpus)
            .map(|gpu| match m.running_rental_on(gpu) {
                Some(r) => format!("{} ", r.kind.token()),
                None => "x ".to_string(),
            })
            .collect();
        let alloc: f64 = m.rentals.iter().map(|r| r.disk_gb).sum();
        let disk_space = spec.disk_space.unwrap_or(6436.0);
        let gpu_cost = spec.listed_gpu_cost.unwrap_or(0.43);
        let bid_floor = spec.min_bid_price.unwrap_or(0.3);
        let storage_cost = 0.3; // $/GB/month
        let earn_hour: f64 = m
            .rentals
            .iter()
            .map(|r| {
                let gpu_rate = match (r.running, r.kind) {
                    (false, _) => 0.0,
                    (true, RentalKind::Interruptible) => bid_floor,
                    (true, _) => gpu_cost,
                };
                gpu_rate * r.gpus.len() as f64 + r.disk_gb * storage_cost / 730.0
            })
            .sum();
        let client_end = m
            .rentals
            .iter()
            .map(|r| r.end_date)
            .fold(None, |acc: Option<f64>, d| {
                Some(acc.map_or(d, |a| a.max(d)))
            });
        let reports = m.reports.len();
        let recent = m
            .reports
            .iter()
            .filter(|r| {
                r.get("created_at")
                    .and_then(Value::as_f64)
                    .is_some_and(|t| now - t < 7.0 * 86400.0)
            })
            .count();

        let set = |row: &mut Map<String, Value>, k: &str, v: Value| {
            row.insert(k.to_string(), v);
        };
        set(&mut row, "id", Value::from(spec.id));
        set(&mut row, "machine_id", Value::from(spec.id));
        set(&mut row, "hostname", Value::from(spec.hostname.clone()));
        set(&mut row, "gpu_name", Value::from(spec.gpu_name.clone()));
        set(&mut row, "num_gpus", Value::from(spec.num_gpus));
        set(&mut row, "listed_min_gpu_count", Value::from(1));
        set(&mut row, "listed", Value::Bool(m.listed));
        set(&mut row, "listed_gpu_cost", num(gpu_cost));
        set(&mut row, "min_bid_price", num(bid_floor));
        set(&mut row, "timeout", num(m.timeout));
        set(
            &mut row,
            "error_description",
            m.error.clone().map_or(Value::Null, Value::from),
        );
        set(
            &mut row,
            "verification",
            Value::from(m.verification.clone()),
        );
        set(&mut row, "gpu_occupancy", Value::from(tokens));
        set(&mut row, "current_rentals_running", count(&|r| r.running));
        set(
            &mut row,
            "current_rentals_running_on_demand",
            count(&|r| r.running && r.kind == RentalKind::OnDemand),
        );
        set(
            &mut row,
            "current_rentals_running_reserved",
            count(&|r| r.running && r.kind == RentalKind::Reserved),
        );
        set(&mut row, "current_rentals_resident", count(&|_| true));
        set(
            &mut row,
            "current_rentals_on_demand",
            count(&|r| r.kind == RentalKind::OnDemand),
        );
        set(
            &mut row,
            "current_rentals_reserved",
            count(&|r| r.kind == RentalKind::Reserved),
        );
        set(
            &mut row,
            "alloc_disk_space",
            if alloc > 0.0 {
                Value::from(alloc.round() as i64)
            } else {
                Value::Null
            },
        );
        set(&mut row, "disk_space", json!(disk_space));
        set(
            &mut row,
            "avail_disk_space",
            Value::from((disk_space - alloc).max(0.0).floor() as i64),
        );
        set(
            &mut row,
            "client_end_date",
            client_end.map_or(Value::Null, |d| json!(d)),
        );
        set(&mut row, "earn_hour", json!(earn_hour.max(3.601685e-05)));
        set(
            &mut row,
            "num_reports",
            if reports > 0 {
                Value::from(reports)
            } else {
                Value::Null
            },
        );
        set(
            &mut row,
            "num_recent_reports",
            if reports > 0 {
                json!(recent as f64)
            } else {
                Value::Null
            },
        );
        set(
            &mut row,
            "machine_maintenance",
            if m.maintenance.is_empty() {
                Value::Null
            } else {
                Value::Array(m.maintenance.clone())
            },
        );
        row
    }

    pub(super) fn instance_row(&self, i: &SimInstance, now: f64) -> Map<String, Value> {
        let mut row = self.instance_template.clone();
        let running = i.actual.as_deref() == Some("running");
        let storage_hour = 0.005555555555555555;
        let set = |row: &mut Map<String, Value>, k: &str, v: Value| {
            row.insert(k.to_string(), v);
        };
        set(&mut row, "id", Value::from(i.id));
        set(&mut row, "machine_id", Value::from(i.machine_id));
        set(&mut row, "bundle_id", Value::from(i.id * 29 + 379_000_000));
        set(
            &mut row,
            "actual_status",
            i.actual.clone().map_or(Value::Null, Value::from),
        );
        set(&mut row, "intended_status", Value::from(i.intended.clone()));
        set(&mut row, "cur_state", Value::from(i.cur_state.clone()));
        set(&mut row, "next_state", Value::from(i.intended.clone()));
        set(
            &mut row,
            "status_msg",
            i.status_msg.clone().map_or(Value::Null, Value::from),
        );
        set(&mut row, "is_bid", Value::Bool(i.is_bid));
        set(
            &mut row,
            "label",
            i.label.clone().map_or(Value::Null, Value::from),
        );
        set(&mut row, "gpu_name", Value::from(i.gpu_name.clone()));
        set(&mut row, "num_gpus", Value::from(i.num_gpus));
        set(&mut row, "dph_base", json!(i.dph_base));
        set(&mut row, "dph_total", json!(i.dph_base + storage_hour));
        set(&mut row, "min_bid", json!(i.min_bid));
        set(&mut row, "start_date", json!(i.start_date));
        set(
            &mut row,
            "end_date",
            json!((i.start_date + 30.0 * 86400.0).floor()),
        );
        set(&mut row, "duration", json!((now - i.start_date).max(0.0)));
        set(&mut row, "ssh_port", Value::from(10_000 + i.id % 50_000));
        if !running {
            // `ports` exists only while running; telemetry is null when nothing runs.
            row.remove("ports");
            for k in [
                "gpu_util",
                "gpu_temp",
                "cpu_util",
                "mem_usage",
                "vmem_usage",
            ] {
                set(&mut row, k, Value::Null);
            }
        }
        row
    }
}
