//! The dashboard under load (docs/BENCHMARKS.md): response times of its pages and API while the
//! daemon watches the whole fleet, and, when Chromium and chromedriver are installed, the fleet
//! page's first render in a real browser (first contentful paint, from the browser's own
//! performance timeline).

use super::Stats;
use anyhow::Context as _;
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Requests per measured path.
const REQUESTS: usize = 20;
/// Page loads in the browser.
const RENDERS: usize = 10;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PathFigures {
    pub path: String,
    pub ms: Stats,
    pub bytes: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DashboardReport {
    pub paths: Vec<PathFigures>,
    /// Navigation start -> first contentful paint of `/`, in Chromium.
    pub first_paint_ms: Option<Stats>,
    /// Navigation start -> the load event of `/` (script and style sheet included).
    pub load_ms: Option<Stats>,
}

/// Times `REQUESTS` sequential GETs of each dashboard path on `base`, then the browser render.
pub async fn measure(base: &str, machine: u64, browser: bool) -> anyhow::Result<DashboardReport> {
    let http = reqwest::Client::new();
    let mut report = DashboardReport::default();
    for path in [
        "/".to_string(),
        "/?page=50".to_string(),
        "/api/v1/status".to_string(),
        format!("/machines/{machine}"),
        "/events".to_string(),
        "/api/v1/events?limit=100".to_string(),
        "/api/v1/earnings".to_string(),
        "/metrics".to_string(),
    ] {
        let mut ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..REQUESTS {
            let t = Instant::now();
            let resp = http.get(format!("{base}{path}")).send().await?;
            anyhow::ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
            bytes = resp.bytes().await?.len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        report.paths.push(PathFigures {
            path,
            ms: Stats::of(ms),
            bytes,
        });
    }
    if browser {
        match browser_paths() {
            Some((chromium, driver)) => {
                let (paint, load) = render(base, chromium, driver).await?;
                report.first_paint_ms = Some(paint);
                report.load_ms = Some(load);
            }
            None => eprintln!("no chromium/chromedriver: the first render is not measured"),
        }
    }
    Ok(report)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    Some((which("chromium")?, which("chromedriver")?))
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Loads `/` `RENDERS` times in a fresh headless Chromium; (first contentful paint, load event).
async fn render(base: &str, chromium: PathBuf, driver: PathBuf) -> anyhow::Result<(Stats, Stats)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _driver = Driver(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver")?,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir()?;
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        anyhow::bail!("capabilities are an object");
    };
    let browser =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("no browser session")?;
    let (mut paint, mut load) = (Vec::new(), Vec::new());
    for i in 0..RENDERS {
        // A distinct URL each time, so nothing comes from a cache of the previous load.
        browser.goto(&format!("{base}/?run={i}")).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = browser
                .execute(
                    "const p = performance.getEntriesByName('first-contentful-paint')[0];
                     const n = performance.getEntriesByType('navigation')[0];
                     return p && n && n.loadEventEnd > 0 ? [p.startTime, n.loadEventEnd] : null;",
                    vec![],
                )
                .await?;
            if let Some([p, l]) = v.as_array().map(|a| [a[0].as_f64(), a[1].as_f64()]) {
                paint.push(p.unwrap_or_default());
                load.push(l.unwrap_or_default());
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the page did not finish loading");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    browser.close().await?;
    Ok((Stats::of(paint), Stats::of(load)))
}
