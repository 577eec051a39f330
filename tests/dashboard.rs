//! The dashboard end to end (SPEC §13): the real binary watches a simulated cloud (a host account
//! with two machines, a renter account with an instance) with `http_listen` and
//! `http_basic_auth_file` set.
//!
//! - Over HTTP: basic auth on everything but `/health`, read-only, the Content-Security-Policy
//!   and pages without inline script or style, the JSON API (status, events with filters,
//!   earnings from the daily digest and from ended rentals), the machine page's rental history,
//!   no secret in any answer, the fleet gauges in `/metrics`, and `promtool check metrics` /
//!   `promtool check rules` / `promtool test rules` when promtool is installed.
//! - In a real headless Chromium (Debian's `chromium` and `chromium-driver`, through WebDriver):
//!   the fleet table lists the machines with their occupancy, the style sheet and script load
//!   under the CSP, the earnings chart has data, basic auth is enforced, and a rental started in
//!   the simulator appears in the live event log without a reload. With
//!   `DASHBOARD_SCREENSHOT=PATH` it saves a screenshot of the fleet page there.
//!
//! A missing browser or promtool skips its part with a printed reason, except in CI (`CI` set),
//! where it is a failure: `.ci/run` installs both.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{write_main_config, Daemon};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vast_supervisor::sim::{
    EarningsRow, Fault, FaultDuration, InstanceSpec, MachineSpec, RentalKind, SimCloud, SimHandle,
};

const USER: &str = "admin";
const PASSWORD: &str = "Dashboard-Pass-7731";
const HOST_KEY: &str = "KEY-HOST-SECRET-1234";
const RENTER_KEY: &str = "KEY-RENTER-SECRET-5678";
const DISCORD_TOKEN: &str = "DiscordSecretToken-7f3a9c";
const SMTP_PASSWORD: &str = "SmtpSecretPassword11";
const SECRETS: [&str; 5] = [PASSWORD, HOST_KEY, RENTER_KEY, DISCORD_TOKEN, SMTP_PASSWORD];

/// The daemon watching the simulated fleet, its dashboard answering.
struct Fleet {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    daemon: Daemon,
    base: String,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_fleet() -> Fleet {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account(HOST_KEY, "hostco");
    sim.add_account(RENTER_KEY, "labco");
    sim.add_machine("hostco", MachineSpec::new(101, "rig-a", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("hostco", MachineSpec::new(102, "rig-b", 8, "H100 SXM"))
        .unwrap();
    sim.add_machine("hostco", MachineSpec::new(103, "rig-c", 2, "A100 PCIE"))
        .unwrap();
    sim.add_machine("hostco", MachineSpec::new(104, "rig-d", 4, "RTX 3090"))
        .unwrap();
    sim.set_timeout(103, 900.0).unwrap();
    sim.set_error(104, Some("gpu 2 fell off the bus")).unwrap();
    // Rentals in progress when watching starts: adopted, shown as occupancy.
    sim.start_rental(
        "hostco",
        101,
        "r-od",
        vec![0u32, 1],
        RentalKind::OnDemand,
        20.0,
    )
    .unwrap();
    sim.start_rental(
        "hostco",
        102,
        "r-int",
        vec![3u32],
        RentalKind::Interruptible,
        10.0,
    )
    .unwrap();
    sim.start_rental(
        "hostco",
        104,
        "r-res",
        vec![0u32],
        RentalKind::Reserved,
        10.0,
    )
    .unwrap();
    // Yesterday's earnings, reported by the daily digest on the first poll.
    sim.set_earnings(
        "hostco",
        vec![
            EarningsRow {
                machine_id: 101,
                gpu_earn: 18.5,
                sto_earn: 0.5,
                bwu_earn: 0.0,
                bwd_earn: 0.0,
            },
            EarningsRow {
                machine_id: 102,
                gpu_earn: 7.25,
                sto_earn: 0.0,
                bwu_earn: 0.0,
                bwd_earn: 0.0,
            },
        ],
    )
    .unwrap();
    sim.set_credit("labco", 42.0).unwrap();
    sim.add_instance(
        "labco",
        InstanceSpec {
            label: Some("train-1".into()),
            num_gpus: Some(2),
            gpu_name: Some("RTX 4090".into()),
            dph_base: Some(1.5),
            actual_status: Some("running".into()),
            ..InstanceSpec::default()
        },
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_main_config(
        dir.path(),
        &format!("http_listen = \"127.0.0.1:{port}\"\nhttp_basic_auth_file = \"secrets/web\"\n"),
    );
    std::fs::create_dir_all(config.join("secrets")).unwrap();
    std::fs::write(config.join("secrets/web"), format!("{USER}:{PASSWORD}\n")).unwrap();
    std::fs::write(config.join("secrets/labco"), format!("{RENTER_KEY}\n")).unwrap();
    let api = sim.base_url();
    std::fs::write(
        config.join("conf.d/10-accounts.toml"),
        format!(
            "[[account]]\nname = \"hostco\"\napi_key = \"{HOST_KEY}\"\napi_url = \"{api}\"\n\
earnings_digest_at = \"00:00\"\n\n\
[[account]]\nname = \"labco\"\napi_key_file = \"../secrets/labco\"\napi_url = \"{api}\"\n\
watch = [\"instances\"]\n"
        ),
    )
    .unwrap();
    let nowhere = free_port();
    std::fs::write(
        config.join("conf.d/50-targets.toml"),
        format!(
            "[[target]]\nname = \"file\"\nurl = \"file://{events}\"\n\n\
[[target]]\nname = \"discord\"\nurl = \"discord://112233/{DISCORD_TOKEN}?endpoint=http://127.0.0.1:{nowhere}\"\nevents = [\"test\"]\n\n\
[[target]]\nname = \"mail\"\nurl = \"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{nowhere}?to=ops@example.org\"\nevents = [\"test\"]\n",
            events = dir.path().join("events.jsonl").display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::new(config, &["--test-poll-interval", "200ms"]);
    daemon.start();
    let fleet = Fleet {
        _dir: dir,
        sim,
        daemon,
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    fleet
        .wait_json(
            "every machine and the renter's credit in status",
            "/api/v1/status",
            |s| {
                let accounts = s["accounts"].as_array().cloned().unwrap_or_default();
                let machines: usize = accounts
                    .iter()
                    .map(|a| a["machines"].as_array().map_or(0, Vec::len))
                    .sum();
                machines == 4 && accounts.iter().any(|a| a["credit"] == 42.0)
            },
        )
        .await;
    fleet
}

impl Fleet {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
    }

    /// The body of an authorized GET that must answer 200, checked for secrets.
    async fn text(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        let body = resp.text().await.unwrap();
        for secret in SECRETS {
            assert!(!body.contains(secret), "GET {path} shows a secret");
        }
        body
    }

    async fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path).await).unwrap()
    }

    /// Asks `path` until `pred` holds (20 s at most).
    async fn wait_json(&self, what: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = self
                .http
                .get(self.url(path))
                .basic_auth(USER, Some(PASSWORD))
                .send()
                .await
            {
                if let Ok(v) = resp.json::<Value>().await {
                    if pred(&v) {
                        return v;
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The path of `name` on PATH, if any.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Whether a part needing `tool` runs: skipped with a printed reason outside CI, a failure in CI.
fn required(tool: &str, found: bool) -> bool {
    if !found {
        assert!(!in_ci(), "not found in CI: {tool} (.ci/run installs it)");
        // Straight to stderr: the test harness would hold back a println! of a passing test.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {tool} not found (apt-get install chromium chromium-driver prometheus)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pages_and_metrics_over_http() {
    tokio::time::timeout(Duration::from_secs(120), over_http())
        .await
        .expect("the scenario finishes in time");
}

async fn over_http() {
    let fleet = start_fleet().await;
    let http = &fleet.http;

    // Access: /health is open; everything else needs the credentials; read-only.
    let health = http.get(fleet.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for path in [
        "/",
        "/api/v1/status",
        "/metrics",
        "/assets/app.js",
        "/events",
        "/nope",
    ] {
        let bare = http.get(fleet.url(path)).send().await.unwrap();
        assert_eq!(bare.status(), 401, "{path} without credentials");
        assert!(bare.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let wrong = http
            .get(fleet.url(path))
            .basic_auth(USER, Some("Dashboard-Pass-7730"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong password");
    }
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let write = http
            .request(method.clone(), fleet.url("/api/v1/status"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), 405, "{method}");
        assert_eq!(write.headers()["allow"], "GET, HEAD");
    }
    let head = http
        .head(fleet.url("/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);

    // Pages: the CSP on every answer, no inline script or style, the machines listed.
    let page = fleet.get("/").await;
    assert_eq!(
        page.headers()["content-security-policy"],
        vast_supervisor::web::CONTENT_SECURITY_POLICY
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let fleet_page = fleet.text("/").await;
    for expected in [
        "rig-a",
        "rig-b",
        "hostco",
        "labco",
        "data-gpus-rented=\"2\"",
    ] {
        assert!(
            fleet_page.contains(expected),
            "the fleet page shows {expected}"
        );
    }
    for path in [
        "/",
        "/machines/101",
        "/instances",
        "/events",
        "/events?kind=rental_start",
    ] {
        let html = fleet.text(path).await;
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(
                tag.contains(" src=\"/assets/"),
                "inline script on {path}: {tag}"
            );
        }
        assert!(
            !html.contains(" style=") && !html.contains("<style"),
            "inline style on {path}"
        );
        assert!(
            !html.contains(" onclick=") && !html.contains(" onload="),
            "handler on {path}"
        );
    }
    let instances = fleet.text("/instances").await;
    assert!(
        instances.contains("train-1") && instances.contains("$42.00"),
        "{instances}"
    );
    // 42 USD at 1.5 $/h plus storage: a little under 28 hours.
    assert!(
        instances.contains("class=\"value runway\">27h ")
            || instances.contains("class=\"value runway\">1d 3h"),
        "{instances}"
    );

    // Status: the same document as `status --json`.
    let status = fleet.json("/api/v1/status").await;
    assert!(status["version"].is_string());
    assert_eq!(status["targets"].as_array().unwrap().len(), 3);

    // Earnings: the digest of yesterday per machine, and an ended rental's estimate today.
    let earnings = fleet
        .wait_json("the digest's earnings", "/api/v1/earnings", |v| {
            v["rows"].as_array().is_some_and(|r| r.len() >= 2)
        })
        .await;
    let row = |v: &Value, machine: u64, source: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["machine_id"] == machine && r["source"] == source)
            .cloned()
    };
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let reported = row(&earnings, 101, "digest").expect("machine 101's digest row");
    assert_eq!(reported["amount"], 19.0);
    assert_eq!(reported["day"], yesterday);
    assert_eq!(reported["account"], "hostco");
    fleet
        .sim
        .start_rental(
            "hostco",
            102,
            "r-short",
            vec![0u32, 1],
            RentalKind::OnDemand,
            5.0,
        )
        .unwrap();
    fleet
        .wait_json(
            "the short rental seen",
            "/api/v1/events?kind=rental_start",
            |v| v["events"].as_array().is_some_and(|e| !e.is_empty()),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    fleet.sim.end_rental("hostco", 102, "r-short").unwrap();
    fleet
        .wait_json(
            "an estimate for today",
            "/api/v1/earnings?machine=102",
            |v| row(v, 102, "estimate").is_some_and(|r| r["amount"].as_f64() > Some(0.0)),
        )
        .await;
    let machine = fleet.text("/machines/102").await;
    assert!(
        machine.contains("Ended rentals") && machine.contains("m102-"),
        "{machine}"
    );
    assert!(
        machine.contains("data-days-with-earnings=\"2\""),
        "yesterday and today"
    );
    assert_eq!(fleet.get("/machines/999").await.status(), 404);

    // Events: filters by kind, account and machine, paging, bad input refused.
    let ended = fleet
        .json("/api/v1/events?kind=rental_end,rental_start&machine=102")
        .await;
    let kinds: Vec<&str> = ended["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["rental_start", "rental_end"]);
    let renter = fleet.json("/api/v1/events?account=labco&limit=1000").await;
    assert!(renter["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"]["account"] == "labco"));
    let newest = fleet.json("/api/v1/events?limit=2").await;
    let first = newest["events"][0]["seq"].as_i64().unwrap();
    let after = fleet
        .json(&format!("/api/v1/events?since={}", first - 1))
        .await;
    assert_eq!(after["events"][0]["seq"], first);
    // The live stream: resumes after Last-Event-ID, with the same filters.
    let mut stream = http
        .get(fleet.url("/api/v1/events/stream?kind=rental_end"))
        .basic_auth(USER, Some(PASSWORD))
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut received = String::new();
    while !received.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = received
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let sent: Value = serde_json::from_str(data).unwrap();
    assert_eq!(sent["event"]["kind"], "rental_end");
    assert!(
        received.contains(&format!("id: {}\n", sent["seq"])),
        "{received}"
    );
    drop(stream);
    for bad in [
        "/api/v1/events?limit=0",
        "/api/v1/events?kind=nope",
        "/api/v1/earnings?days=400",
    ] {
        assert_eq!(fleet.get(bad).await.status(), 400, "{bad}");
    }

    // Metrics: the fleet gauges, and promtool's verdict on the text and the alert rules.
    let metrics = fleet.text("/metrics").await;
    for line in [
        "vast_supervisor_machine_gpus{account=\"hostco\",machine=\"101\",state=\"on_demand\"} 2",
        "vast_supervisor_machine_gpus{account=\"hostco\",machine=\"102\",state=\"interruptible\"} 1",
        "vast_supervisor_machine_up{account=\"hostco\",machine=\"101\"} 1",
        "vast_supervisor_machine_up{account=\"hostco\",machine=\"103\"} 0",
        "vast_supervisor_machine_active_rentals{account=\"hostco\",machine=\"101\"} 1",
        "vast_supervisor_account_credit_dollars{account=\"labco\"} 42.0",
        "vast_supervisor_target_up{target=\"file\"} 1",
    ] {
        assert!(metrics.contains(&format!("{line}\n")), "missing {line}");
    }
    assert!(metrics.contains(
        "vast_supervisor_account_last_successful_poll_timestamp_seconds{account=\"hostco\"}"
    ));
    assert!(metrics
        .contains("vast_supervisor_poll_duration_seconds_bucket{account=\"hostco\",le=\"0.05\"}"));
    assert!(
        !metrics.contains("rental_id") && !metrics.contains("r-od"),
        "no per-rental labels"
    );
    // The Grafana dashboard and the alert rules use only series the daemon exports.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let grafana: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/grafana/vast-supervisor.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = grafana["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap()
                .replace("$account", ".*")
                .replace("$job", ".*")
        })
        .collect();
    assert!(exprs.len() >= 15);
    let alerts = std::fs::read_to_string(root.join("examples/prometheus/alerts.yml")).unwrap();
    let names = regex::Regex::new(r"\b(vast_supervisor|process)_[a-z_]+").unwrap();
    for text in exprs.iter().map(String::as_str).chain([alerts.as_str()]) {
        for name in names.find_iter(text) {
            let family = name.as_str().trim_end_matches("_bucket");
            assert!(
                metrics.contains(&format!("# TYPE {family} ")),
                "{family} is not exported"
            );
        }
    }
    if required("promtool", which("promtool").is_some()) {
        promtool(&["check", "metrics"], Some(&metrics));
        // Every Grafana query parses: promtool checks them as recording rules.
        let mut rules = String::from("groups:\n  - name: grafana\n    rules:\n");
        for (i, e) in exprs.iter().enumerate() {
            rules.push_str(&format!(
                "      - record: grafana:panel_{i}\n        expr: {}\n",
                serde_json::to_string(e).unwrap()
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let grafana_rules = dir.path().join("grafana.yml");
        std::fs::write(&grafana_rules, rules).unwrap();
        promtool(&["check", "rules", grafana_rules.to_str().unwrap()], None);
        let rules = root.join("examples/prometheus/alerts.yml");
        promtool(&["check", "rules", rules.to_str().unwrap()], None);
        let tests = root.join("examples/prometheus/alerts_test.yml");
        promtool(&["test", "rules", tests.to_str().unwrap()], None);
    }

    // A renter account whose API fails: STALE, with the time of its last good poll.
    let fleet_page = fleet.text("/").await;
    assert!(!fleet_page.contains(">STALE<"));
    fleet
        .sim
        .inject_fault(
            "labco",
            Fault::BadGateway502Html,
            FaultDuration::UntilCleared,
        )
        .unwrap();
    let status = fleet
        .wait_json("labco stale", "/api/v1/status", |s| {
            s["accounts"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["name"] == "labco" && a["state"] == "stale")
            })
        })
        .await;
    let labco = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "labco")
        .unwrap()
        .clone();
    let last_good: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(labco["last_poll"].clone()).unwrap();
    let fleet_page = fleet.text("/").await;
    let row = &fleet_page[fleet_page
        .find("<tr class=\"account stale\">")
        .expect("a stale row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("labco") && row.contains(">STALE<"), "{row}");
    assert!(
        row.contains(&format!(
            "title=\"{}\"",
            last_good.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        "{row}"
    );
    assert!(row.contains("failed polls"), "{row}");
}

/// Runs promtool with `input` on stdin; it must succeed without complaints.
fn promtool(args: &[&str], input: Option<&str>) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed: {said}");
    if args[..2] == ["check", "metrics"] {
        assert!(
            said.trim().is_empty(),
            "promtool {args:?} complains: {said}"
        );
    }
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
    browser: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_browser() -> Option<(PathBuf, PathBuf)> {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| which(b))?;
    let driver = which("chromedriver").or_else(|| {
        Some(PathBuf::from("/usr/lib/chromium/chromedriver")).filter(|p| p.is_file())
    })?;
    Some((browser, driver))
}

async fn start_driver(browser: PathBuf, driver: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().unwrap(),
        browser,
    }
}

async fn open_browser(driver: &Driver) -> fantoccini::Client {
    let profile = driver._profile.path().display().to_string();
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": driver.browser,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={profile}"),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Evaluates `script` (a function body returning a value) until it returns true (25 s at most:
/// the fleet page refreshes every 10 s).
async fn wait_true(browser: &fantoccini::Client, what: &str, script: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    loop {
        let v = browser.execute(script, vec![]).await.unwrap();
        if v == Value::Bool(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting in the browser for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes `change` and waits until the page shows it (`check`, a JavaScript expression) without
/// having been reloaded.
async fn changes_without_reload(
    browser: &fantoccini::Client,
    what: &str,
    check: &str,
    change: impl FnOnce(),
) {
    browser
        .execute("window.notReloaded = true; return true", vec![])
        .await
        .unwrap();
    change();
    let script = format!("return window.notReloaded === true && {check}");
    wait_true(browser, what, &script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let found = find_browser();
    if !required("chromium and chromedriver", found.is_some()) {
        return;
    }
    let (browser_path, driver_path) = found.unwrap();
    tokio::time::timeout(
        Duration::from_secs(150),
        in_browser(browser_path, driver_path),
    )
    .await
    .expect("the browser scenario finishes in time");
}

async fn in_browser(browser_path: PathBuf, driver_path: PathBuf) {
    let fleet = start_fleet().await;
    let driver = start_driver(browser_path, &driver_path).await;
    let browser = open_browser(&driver).await;

    // Without credentials the browser gets the challenge and no dashboard.
    browser.goto(&fleet.url("/")).await.unwrap();
    let refused = browser
        .execute(
            "return [performance.getEntriesByType('navigation')[0].responseStatus,
                     document.querySelector('#machines') === null]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, serde_json::json!([401, true]));

    let authed = fleet
        .base
        .replace("http://", &format!("http://{USER}:{PASSWORD}@"));
    browser.goto(&format!("{authed}/")).await.unwrap();
    wait_true(
        &browser,
        "the fleet table",
        "return document.querySelectorAll('#machines tr.machine').length === 4",
    )
    .await;
    // The style sheet applied under the CSP (with the credentials of the page).
    wait_true(
        &browser,
        "the style sheet",
        "return getComputedStyle(document.querySelector('i.gpu.on_demand')).width === '9px'",
    )
    .await;
    let occupancy = browser
        .execute(
            "return [...document.querySelectorAll('#machines tr.machine')].map(r => ({
                id: r.dataset.machine,
                total: r.querySelectorAll('i.gpu').length,
                on_demand: r.querySelectorAll('i.gpu.on_demand').length,
                interruptible: r.querySelectorAll('i.gpu.interruptible').length,
                idle: r.querySelectorAll('i.gpu.idle').length,
                reserved: r.querySelectorAll('i.gpu.reserved').length,
                condition: r.className,
                text: r.innerText }))",
            vec![],
        )
        .await
        .unwrap();
    let rows = occupancy.as_array().unwrap();
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let a = by_id("101");
    assert_eq!(
        (
            a["total"].as_u64(),
            a["on_demand"].as_u64(),
            a["idle"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    assert!(
        a["text"].as_str().unwrap().contains("rig-a")
            && a["text"].as_str().unwrap().contains("2/4")
    );
    let b = by_id("102");
    assert_eq!(
        (b["total"].as_u64(), b["interruptible"].as_u64()),
        (Some(8), Some(1))
    );
    assert_eq!(by_id("103")["condition"], "machine cond-offline");
    let d = by_id("104");
    assert_eq!(
        (d["condition"].as_str(), d["reserved"].as_u64()),
        (Some("machine cond-error"), Some(1))
    );
    assert!(d["text"]
        .as_str()
        .unwrap()
        .contains("gpu 2 fell off the bus"));
    // The earnings chart has the digest's day.
    wait_true(&browser, "earnings in the chart", "const c = document.querySelector('svg.bars'); return !!c && Number(c.dataset.daysWithEarnings) > 0 && [...c.querySelectorAll('rect.bar')].some(b => Number(b.getAttribute('height')) > 0)").await;

    if let Some(path) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        browser.set_window_size(1280, 1120).await.unwrap();
        let png = browser.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
    }

    // The live log: a rental started in the simulator appears without a reload.
    browser.goto(&format!("{authed}/events")).await.unwrap();
    wait_true(
        &browser,
        "the live stream to connect",
        "return !document.getElementById('live').hidden",
    )
    .await;
    let log_check = "[...document.querySelectorAll('#event-log tr.event.fresh')]
        .some(r => r.dataset.kind === 'rental_start' && r.innerText.includes('rig-a'))";
    changes_without_reload(&browser, "the new rental in the log", log_check, || {
        fleet
            .sim
            .start_rental(
                "hostco",
                101,
                "r-live",
                vec![2u32],
                RentalKind::Reserved,
                5.0,
            )
            .unwrap()
    })
    .await;

    // The fleet page refreshes its numbers in place.
    browser.goto(&format!("{authed}/")).await.unwrap();
    let fleet_check =
        "document.querySelector('#machines tr[data-machine=\"102\"]').dataset.gpusRented === '3'";
    changes_without_reload(
        &browser,
        "rig-b's new rental on the fleet page",
        fleet_check,
        || {
            fleet
                .sim
                .start_rental(
                    "hostco",
                    102,
                    "r-more",
                    vec![4u32, 5],
                    RentalKind::OnDemand,
                    5.0,
                )
                .unwrap()
        },
    )
    .await;
    browser.close().await.unwrap();
    drop(driver);
    let mut daemon = fleet.daemon;
    daemon.terminate();
}
