//! Series computed at scrape time rather than bumped as things happen: uptime, API requests
//! (read from each account's client), targets' queue depth, the fleet gauges (SPEC §13, read
//! from the published status through [`FleetCache`]) and the standard `process_*` metrics.
//!
//! Label cardinality stays bounded by the fleet: per account, per target, per machine (and per
//! GPU state of a machine); never per event, rental or instance.

use super::subjects::Labels;
use super::Shared;
use crate::fleet::GpuState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::fmt;
use std::sync::Arc;

/// One family of constant samples of `metric` (a `ConstGauge` or `ConstCounter` maker).
fn write_family<N: Copy, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: fn(N) -> M,
    samples: &[(Labels, N)],
) -> fmt::Result {
    let kind = match samples.first() {
        Some((_, v)) => metric(*v).metric_type(),
        // An empty family is left out: its type cannot be told, and it has nothing to say.
        None => return Ok(()),
    };
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        metric(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Uptime, API requests per account and endpoint, queue depth per target.
#[derive(Debug)]
pub(super) struct RuntimeCollector(pub(super) Arc<Shared>);

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let shared = &self.0;
        let uptime = ConstGauge::new(shared.started.elapsed().as_secs_f64());
        uptime.encode(encoder.encode_descriptor(
            "uptime_seconds",
            "Seconds since the daemon started.",
            None,
            MetricType::Gauge,
        )?)?;
        let mut requests = Vec::new();
        for (name, a) in shared.accounts().iter() {
            for (endpoint, n) in a.api_requests() {
                requests.push((labels(&[("account", name), ("endpoint", endpoint)]), n));
            }
        }
        write_family(
            &mut encoder,
            "api_requests",
            "HTTP requests sent to Vast per account and endpoint, retries included.",
            ConstCounter::new,
            &requests,
        )?;
        let outbox = shared.outbox_seq();
        let depth: Vec<(Labels, i64)> = shared
            .targets()
            .iter()
            .map(|(name, t)| (labels(&[("target", name)]), t.queue_depth(outbox)))
            .collect();
        write_family(
            &mut encoder,
            "target_queue_depth",
            "Outbox events after a target's delivery position.",
            ConstGauge::new,
            &depth,
        )
    }
}

/// The fleet gauges, from the latest status snapshot (none until one is attached).
#[derive(Debug)]
pub(super) struct FleetCollector(pub(super) Arc<Shared>);

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(cache) = self.0.fleet.get() else {
            return Ok(());
        };
        let fleet = cache.current();
        let mut credit = Vec::new();
        let mut last_poll = Vec::new();
        let mut info = Vec::new();
        let mut up = Vec::new();
        let mut gpus = Vec::new();
        let mut rentals = Vec::new();
        let mut rate = Vec::new();
        for a in &fleet.accounts {
            let account = labels(&[("account", &a.name)]);
            if let Some(c) = a.credit {
                credit.push((account.clone(), c));
            }
            if let Some(t) = a.last_poll {
                last_poll.push((account, t.timestamp_millis() as f64 / 1000.0));
            }
            for m in a.machines.iter().filter(|m| !m.removed) {
                let id = m.machine_id.to_string();
                let machine = labels(&[("account", &a.name), ("machine", &id)]);
                info.push((
                    labels(&[
                        ("account", &a.name),
                        ("machine", &id),
                        ("hostname", m.hostname.as_deref().unwrap_or("")),
                        ("gpu_name", m.gpu_name.as_deref().unwrap_or("")),
                    ]),
                    1,
                ));
                up.push((machine.clone(), i64::from(m.up())));
                for (state, n) in m.gpus_by_state() {
                    let mut l = machine.clone();
                    l.push(("state", state.as_str().to_string()));
                    gpus.push((l, i64::from(n)));
                }
                rentals.push((machine.clone(), m.running_rentals() as i64));
                rate.push((machine, m.dollars_per_hour()));
            }
        }
        let targets: Vec<(Labels, i64)> = fleet
            .targets
            .iter()
            .map(|t| (labels(&[("target", &t.name)]), i64::from(t.state == "ok")))
            .collect();
        let gauge = ConstGauge::<f64>::new;
        let count = ConstGauge::<i64>::new;
        let e = &mut encoder;
        write_family(
            e,
            "account_credit_dollars",
            "The account's credit (USD), for accounts that read it (renters, credit_low_below).",
            gauge,
            &credit,
        )?;
        write_family(
            e,
            "account_last_successful_poll_timestamp_seconds",
            "Unix time of the account's last successful poll.",
            gauge,
            &last_poll,
        )?;
        write_family(
            e,
            "machine_info",
            "Always 1 per watched machine; its hostname and GPU model are in the labels.",
            count,
            &info,
        )?;
        write_family(
            e,
            "machine_up",
            "1 while the machine checks in with Vast, 0 while it is offline.",
            count,
            &up,
        )?;
        let states: Vec<&str> = GpuState::ALL.iter().map(|s| s.as_str()).collect();
        write_family(
            e,
            "machine_gpus",
            &format!("GPUs of a machine by state: {}.", states.join(", ")),
            count,
            &gpus,
        )?;
        write_family(
            e,
            "machine_active_rentals",
            "Rentals running on the machine (paused ones not counted).",
            count,
            &rentals,
        )?;
        write_family(
            e,
            "machine_earning_rate_dollars_per_hour",
            "What the machine's running rentals pay per hour at their listing rates (GPU time).",
            gauge,
            &rate,
        )?;
        write_family(
            e,
            "target_up",
            "1 while the target delivers (state ok), else 0.",
            count,
            &targets,
        )
    }
}
