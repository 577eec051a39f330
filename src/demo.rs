//! `vast-supervisor demo`: the real supervisor against the simulated cloud. Starts the simulator on
//! 127.0.0.1 with its built-in scenario, points two accounts at it, keeps state in a temporary
//! directory and prints every notification through a `console://` target. Ctrl+C ends it cleanly.

use crate::actors::supervisor::Shutdown;
use crate::actors::{Supervisor, SupervisorOptions};
use crate::config::{AccountConfig, TargetConfig, TargetUrl, Watch};
use crate::sim::{self, SimCloud};
use crate::store::StoreHandle;
use crate::vast::ClientOptions;
use actix::prelude::*;
use anyhow::Context as _;
use std::time::Duration;

/// How often the demo polls: well below the 10 s minimum of real configurations, so the whole
/// scripted story plays out in about two minutes.
const DEMO_POLL: Duration = Duration::from_secs(2);

pub fn run(duration: Option<Duration>) -> anyhow::Result<()> {
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let store =
        StoreHandle::open(&state.path().join("state.db")).context("cannot open the demo state")?;
    System::new().block_on(async move {
        let cloud = SimCloud::start("127.0.0.1:0".parse()?)
            .await
            .context("cannot start the simulated cloud")?;
        let scenario = sim::demo_scenario();
        let scenario_length = scenario.duration();
        cloud.run_scenario(scenario);
        let base = cloud.base_url();
        println!("vast-supervisor demo: simulated Vast cloud at {base}");
        println!(
            "The scenario runs for about {}s; press Ctrl+C to stop earlier.\n",
            scenario_length.as_secs()
        );

        let mut host = AccountConfig::with_defaults("hostco", sim::DEMO_HOST_KEY, base.clone());
        host.poll_interval = DEMO_POLL;
        host.offline_grace = Duration::from_secs(10);
        let mut renter = AccountConfig::with_defaults("labco", sim::DEMO_RENTER_KEY, base.clone());
        renter.poll_interval = DEMO_POLL;
        renter.watch = Watch {
            machines: false,
            instances: true,
        };
        let console = TargetConfig::with_defaults("console", TargetUrl::Console);
        let opts = SupervisorOptions {
            client: ClientOptions::for_short_polls(DEMO_POLL),
            flush_timeout: Duration::from_secs(3),
            ..SupervisorOptions::default()
        };
        let supervisor = Supervisor::new(vec![host, renter], vec![console], store, opts).start();

        let stop_after = duration.unwrap_or(scenario_length + Duration::from_secs(15));
        tokio::select! {
            _ = crate::signals::ctrl_c() => println!("\nCtrl+C: stopping"),
            _ = tokio::time::sleep(stop_after) => println!("\nDemo time is up: stopping"),
        }
        supervisor
            .send(Shutdown)
            .await
            .context("supervisor stopped unexpectedly")?;
        Ok::<(), anyhow::Error>(())
    })?;
    drop(state);
    Ok(())
}
