//! Moving in (SPEC §14) through the real binary: `vast-supervisor import vast-monitor` on
//! vast-monitor's own example and recorded files (`tests/fixtures/vast-monitor/`) writes a
//! configuration that passes `check`, keeps every secret in 0600 files and out of its output,
//! reports what it cannot convert, refuses bad input with exit 2 and never overwrites silently;
//! and the daemon started on the result, against the simulated cloud serving the same machines,
//! continues the imported rental without announcing it again while later changes are sent.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/events.rs"]
mod events;

use daemon::{write_main_config, Daemon};
use events::{read_events, unique, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use vast_supervisor::sim::{MachineSpec, RentalKind, SimCloud};

/// Secrets in the fixtures' config.json files.
const SECRETS: &[&str] = &[
    "YOUR_VAST_API_KEY",
    "YOUR_WEBHOOK_TOKEN",
    "SMTP_PASSWORD",
    "FAKE_KEY",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vast-monitor")
        .join(name)
}

fn vast_supervisor(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
        .args(args)
        .args(extra)
        .env_remove("VAST_SUPERVISOR_CONFIG")
        .output()
        .expect("run vast-supervisor")
}

/// `import vast-monitor DIR/config.json --to TO [args]`, as account "alice" unless `args` name one.
fn import(from: &str, to: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let config = fixture(from).join("config.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vast-supervisor"));
    command
        .args(["import", "vast-monitor"])
        .arg(&config)
        .arg("--to")
        .arg(to)
        .args(args);
    if !args.contains(&"--account") {
        command.args(["--account", "alice"]);
    }
    let out = command.output().expect("run import");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    for secret in SECRETS {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed:\n{stdout}\n{stderr}"
        );
    }
    (out.status.code(), stdout, stderr)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn check(config: &Path) {
    let out = vast_supervisor(&["check", "--config"], &[config]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_configuration_converts_with_its_secrets_in_0600_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_main_config(dir.path(), "");
    // keys/ as the packages make it: the daemon's group (an arbitrary gid here; root may use any).
    std::fs::create_dir_all(config.join("keys")).unwrap();
    const DAEMON_GID: u32 = 4321;
    let as_root = std::os::unix::fs::chown(config.join("keys"), None, Some(DAEMON_GID)).is_ok();
    let (code, out, err) = import("examples", &config, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");

    let key = config.join("keys/alice");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        "YOUR_VAST_API_KEY\n"
    );
    assert_eq!(mode(&key), 0o600);
    let url = config.join("secrets/email-example.url");
    assert_eq!(mode(&url), 0o600);
    assert_eq!(
        std::fs::read_to_string(&url).unwrap().trim(),
        "mailtos://SMTP_USER:SMTP_PASSWORD@smtp.example.com:587?to=alerts@example.com&from=monitor@example.com"
    );
    let file = config.join("conf.d/50-alice.toml");
    assert_eq!(mode(&file), 0o640);
    if as_root {
        use std::os::unix::fs::MetadataExt;
        let gid = std::fs::metadata(&file).unwrap().gid();
        assert_eq!(
            gid, DAEMON_GID,
            "the conf.d file is readable by the daemon's group"
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} in {}:\n{text}",
            file.display()
        );
    }
    assert!(text.contains("machines = [12345, 67890]"), "{text}");
    assert!(text.contains("poll_interval = \"60s\""), "{text}");

    // The Discord example's placeholder id is not a webhook id: reported, the rest converted.
    assert!(
        out.contains("not converted: target \"discord-example\": discord URL must look like"),
        "{out}"
    );
    assert!(out.contains("target \"email-example\""), "{out}");
    // Its whitelist lacks "startup", and notify.on_startup_existing is on: everything else that
    // vast-monitor could send, rental_preempt included.
    let loaded = vast_supervisor::config::load_dir(&config);
    let target = loaded
        .targets()
        .into_iter()
        .find(|t| t.name == "email-example")
        .expect("the email target");
    use vast_supervisor::event::EventKind::*;
    for kind in [
        RentalStart,
        RentalEnd,
        RentalPreempt,
        MachineError,
        MachineOffline,
        SupervisorStop,
    ] {
        assert!(target.events.contains(kind), "{kind} missing");
    }
    for kind in [StartupSummary, MachineUnlisted, AccountStale] {
        assert!(
            !target.events.contains(kind),
            "{kind} is not in its whitelist"
        );
    }
    assert_eq!(
        target
            .accounts
            .as_ref()
            .map(|a| a.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["alice".to_string()])
    );
    check(&config);
}

#[test]
fn the_recorded_runs_configuration_keeps_filters_mentions_and_json_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc");
    let state = dir.path().join("state");
    let snapshots = fixture("observed").display().to_string();
    let state_arg = state.display().to_string();
    let (code, out, err) = import(
        "observed",
        &config,
        &["--snapshots", &snapshots, "--state-dir", &state_arg],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("imported 2 machine state(s)"), "{out}");
    // A json:// target named "discordfmt" with service "discord" only had Discord's layout there.
    assert!(
        out.contains("service \"discord\" chose vast-monitor's message layout"),
        "{out}"
    );
    check(&config);
    let loaded = vast_supervisor::config::load_dir(&config);
    let names: Vec<&str> = loaded.targets().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["discordfmt", "emailfmt", "defaultfmt"]);
    let by_name = |n: &str| {
        loaded
            .targets()
            .into_iter()
            .find(|t| t.name == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("discordfmt").mention.as_deref(), Some("123456789"));
    // "all": every event, and the system/startup switches are all on.
    assert_eq!(
        by_name("defaultfmt").events,
        vast_supervisor::config::EventFilter::all()
    );
    use vast_supervisor::event::EventKind::*;
    let email = by_name("emailfmt").events;
    assert!(email.contains(RentalPause) && !email.contains(SupervisorStart));

    // The recorded run ended with next_session_seq 4 on machine 12345.
    let mut store = vast_supervisor::store::Store::open(&state.join("state.db")).unwrap();
    let (machines, bad) = store
        .load_states("alice", "machine", |j| {
            serde_json::from_str::<vast_supervisor::detect::MachineState>(j)
                .map_err(|e| e.to_string())
        })
        .unwrap();
    assert!(bad.is_empty());
    let m12345 = &machines.iter().find(|(id, _)| id == "12345").unwrap().1;
    assert_eq!(m12345.rentals.next_seq, 4);
    assert!(m12345.rentals.rentals.is_empty());
}

#[test]
fn bad_input_exits_2_and_nothing_is_overwritten_silently() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("etc");

    // Imports `json` as a config.json: exit code and stderr.
    let import_json = |json: &str| {
        let file = dir.path().join("broken.json");
        std::fs::write(&file, json).unwrap();
        let out = vast_supervisor(
            &["import", "vast-monitor"],
            &[&file, Path::new("--to"), &to],
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            file,
        )
    };
    let (code, err, file) = import_json("{\n  \"api_key\": \"k\",\n  \"machine_ids\": [1,\n}\n");
    assert_eq!(code, Some(2));
    assert!(err.contains(&format!("{}:4:1: ", file.display())), "{err}");
    assert!(!to.exists(), "nothing is written for bad input");

    // A key of the wrong type is named, never quoted.
    let (code, err, _) =
        import_json(r#"{"api_key": 123456789, "machine_ids": [1], "check_frequency": 60}"#);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("api_key must be a string") && !err.contains("123456789"),
        "{err}"
    );

    let missing = dir.path().join("nope.json");
    let out = vast_supervisor(
        &["import", "vast-monitor"],
        &[&missing, Path::new("--to"), &to],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let (code, out, err) = import("examples", &to, &["--account", "bad name!"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("--account"), "{err}");

    let (code, out, err) = import("examples", &to, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    // The same account again: it is configured already.
    let (code, _, err) = import("examples", &to, &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("account \"alice\" is already configured"),
        "{err}"
    );
    // Its file edited away, the files of the first import are still in the way.
    let conf = to.join("conf.d/50-alice.toml");
    std::fs::write(&conf, "# edited by hand\n").unwrap();
    let (code, _, err) = import("examples", &to, &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already exist"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "# edited by hand\n"
    );
    // --force replaces them, and their modes.
    std::fs::set_permissions(
        to.join("keys/alice"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, out, err) = import("examples", &to, &["--force"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(mode(&to.join("keys/alice")), 0o600);
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains("[[account]]"));
    // Another account from the same source: its target's name is taken, so it gets the
    // account's name in front.
    let (code, out, err) = import("examples", &to, &["--account", "bob"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(to.join("secrets/bob-email-example.url").is_file(), "{out}");
    check(&to);
}

#[test]
fn snapshots_are_never_imported_over_state_the_daemon_has() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let snapshots = fixture("examples").display().to_string();
    let state_arg = state.display().to_string();
    let args = [
        "--snapshots",
        snapshots.as_str(),
        "--state-dir",
        state_arg.as_str(),
    ];
    let (code, out, err) = import("examples", &dir.path().join("one"), &args);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(
            "continued: machine 12345 rental m12345-0001 (running) since 2025-08-20T08:18:54Z"
        ),
        "{out}"
    );
    let (code, _, err) = import("examples", &dir.path().join("two"), &args);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("already holds state for account \"alice\""),
        "{err}"
    );
    assert!(
        !dir.path().join("two").exists(),
        "refused before writing anything"
    );
}

#[tokio::test]
async fn the_daemon_continues_imported_rentals_without_a_second_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let config = write_main_config(dir.path(), "");
    let snapshots = fixture("examples").display().to_string();
    let (code, stdout, err) = import("examples", &config, &["--snapshots", &snapshots]);
    assert_eq!(code, Some(0), "{stdout}{err}");

    // The same machines in the simulated cloud: 12345 rented on demand on GPUs 0-3, as recorded.
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("YOUR_VAST_API_KEY", "alice");
    sim.add_machine(
        "alice",
        MachineSpec::new(12345, "rig-12345", 4, "Example GPU"),
    )
    .unwrap();
    sim.add_machine(
        "alice",
        MachineSpec::new(67890, "rig-67890", 8, "Example GPU"),
    )
    .unwrap();
    sim.start_rental(
        "alice",
        12345,
        "r1",
        vec![0, 1, 2, 3],
        RentalKind::OnDemand,
        32.0,
    )
    .unwrap();

    // Point the imported account at the simulator, and collect events in a file.
    let account_file = config.join("conf.d/50-alice.toml");
    let text = std::fs::read_to_string(&account_file).unwrap();
    let api_url = format!(
        "[[account]]\napi_url = \"{}\"",
        sim.base_url().as_str().trim_end_matches('/')
    );
    std::fs::write(&account_file, text.replacen("[[account]]", &api_url, 1)).unwrap();
    std::fs::write(
        config.join("conf.d/90-test.toml"),
        format!(
            "[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    check(&config);

    let mut daemon = Daemon::new(config.clone(), &["--test-poll-interval", "100ms"]);
    daemon.start();
    wait_for(&out, "the startup_summary", |e| {
        e.kind.as_str() == "startup_summary"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rental_events: Vec<String> = unique(read_events(&out))
        .iter()
        .filter(|e| e.kind.as_str().starts_with("rental_"))
        .map(|e| format!("{} {}", e.kind, e.data["rental_id"]))
        .collect();
    assert!(
        rental_events.is_empty(),
        "nothing happened to the rentals: {rental_events:?}"
    );

    // Later real changes are sent: the imported rental ends with its recorded start, and a new
    // rental on the idle machine continues vast-monitor's numbering there.
    sim.end_rental("alice", 12345, "r1").unwrap();
    sim.start_rental("alice", 67890, "r2", 2u32, RentalKind::OnDemand, 10.0)
        .unwrap();
    let events = wait_for(&out, "rental_end of m12345-0001", |e| {
        e.kind.as_str() == "rental_end" && e.data["rental_id"] == "m12345-0001"
    })
    .await;
    let end = events
        .iter()
        .find(|e| e.kind.as_str() == "rental_end")
        .unwrap();
    assert_eq!(
        end.data["started"], "2025-08-20T08:18:54.967146Z",
        "{end:?}"
    );
    assert_eq!(end.data["adopted"], false);
    assert!(end.data["duration_seconds"].as_u64().unwrap() > 86400 * 30);
    let events = wait_for(&out, "rental_start on 67890", |e| {
        e.kind.as_str() == "rental_start" && e.data["rental_id"] == "m67890-0033"
    })
    .await;
    let starts: Vec<_> = unique(events)
        .into_iter()
        .filter(|e| e.kind.as_str() == "rental_start")
        .map(|e| e.data["rental_id"].clone())
        .collect();
    assert_eq!(starts, ["m67890-0033"], "the only start is the new rental");
    daemon.terminate();
}

// ---- running anywhere: the container file, compose and Kubernetes examples ----------------------

fn repo_file(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml_documents(relative: &str) -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(&repo_file(relative))
        .map(|doc| {
            serde_yaml_ng::Value::deserialize(doc).unwrap_or_else(|e| panic!("{relative}: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The instructions of a Dockerfile: (keyword, arguments), continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut joined: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .map(|l| {
            let (keyword, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
            (keyword.to_ascii_uppercase(), args.trim().to_string())
        })
        .collect()
}

/// The command a container runs: ENTRYPOINT then CMD, both in exec (JSON) form.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("exec form expected, got {args}: {e}"))
}

const DAEMON: [&str; 4] = [
    "/usr/bin/vast-supervisor",
    "run",
    "--config",
    "/etc/vast-supervisor",
];

#[test]
fn the_container_file_builds_in_stages_and_runs_with_the_package_paths() {
    let instructions = dockerfile_instructions(&repo_file("examples/container/Dockerfile"));
    let all = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.clone())
            .collect()
    };
    let froms = all("FROM");
    assert!(
        froms.len() >= 2 && froms[0].ends_with(" AS build"),
        "multi-stage: {froms:?}"
    );
    assert!(
        all("COPY").contains(
            &"--from=build /usr/local/bin/vast-supervisor /usr/bin/vast-supervisor".to_string()
        ),
        "the binary comes from the build stage to the packages' path"
    );
    for source in all("COPY").iter().filter(|a| !a.starts_with("--from")) {
        let source = source.split_whitespace().next().unwrap();
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(source).exists(),
            "COPY {source}: not in the repository"
        );
    }
    let user = all("USER");
    assert_eq!(user, ["vast-supervisor"], "runs as the non-root user");
    assert_eq!(all("VOLUME"), ["/var/lib/vast-supervisor"]);
    assert_eq!(all("EXPOSE"), ["9477"]);
    let health = all("HEALTHCHECK").join(" ");
    assert!(health.contains("http://127.0.0.1:9477/health"), "{health}");
    let mut command = exec_form(&all("ENTRYPOINT")[0]);
    command.extend(exec_form(&all("CMD")[0]));
    assert_eq!(command, DAEMON);

    // The image's main file: state on the volume, /health on the exposed port, and it passes check.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vast-supervisor.toml"),
        repo_file("examples/container/vast-supervisor.toml"),
    )
    .unwrap();
    let loaded = vast_supervisor::config::load_dir(dir.path());
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics());
    assert_eq!(
        loaded.globals.state_dir,
        Path::new("/var/lib/vast-supervisor")
    );
    assert!(loaded
        .globals
        .control_socket
        .starts_with("/run/vast-supervisor"));
    assert_eq!(loaded.globals.http_listen.map(|a| a.port()), Some(9477));
}

#[test]
fn compose_mounts_the_package_paths_and_checks_health() {
    let docs = yaml_documents("examples/container/compose.yaml");
    let service = &docs[0]["services"]["vast-supervisor"];
    let dockerfile = service["build"]["dockerfile"].as_str().unwrap();
    assert_eq!(service["build"]["context"].as_str(), Some("../.."));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(dockerfile)
        .is_file());
    let command: Vec<&str> = service["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(command, DAEMON[1..]);
    let volumes: Vec<&str> = service["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for target in [
        "/etc/vast-supervisor/conf.d",
        "/etc/vast-supervisor/keys",
        "/var/lib/vast-supervisor",
    ] {
        assert!(
            volumes.iter().any(|v| v.split(':').nth(1) == Some(target)),
            "{target} is not mounted: {volumes:?}"
        );
    }
    let test = serde_yaml_ng::to_string(&service["healthcheck"]["test"]).unwrap();
    assert!(test.contains("http://127.0.0.1:9477/health"), "{test}");
    let ports = serde_yaml_ng::to_string(&service["ports"]).unwrap();
    assert!(ports.contains("9477:9477"), "{ports}");
}

#[test]
fn the_kubernetes_example_puts_each_account_on_one_shard_with_its_own_volume() {
    use serde_yaml_ng::Value;
    let docs = yaml_documents("examples/kubernetes/vast-supervisor.yaml");
    let kind = |k: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let (config_map, secret, sts) = (kind("ConfigMap"), kind("Secret"), kind("StatefulSet"));
    kind("Service");
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let mut command: Vec<String> = serde_yaml_ng::from_value(container["command"].clone()).unwrap();
    command.extend(serde_yaml_ng::from_value::<Vec<String>>(container["args"].clone()).unwrap());
    assert_eq!(command[..4], DAEMON);
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().into(),
                m["mountPath"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mounted_at = |path: &str| {
        mounts
            .iter()
            .find(|(_, p)| p == path)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
    };
    // The state: one claim per replica.
    let claims: Vec<&str> = spec["volumeClaimTemplates"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(claims, [mounted_at("/var/lib/vast-supervisor").as_str()]);
    // The keys: the Secret.
    let volume = |name: &str| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert_eq!(
        volume(&mounted_at("/etc/vast-supervisor/keys"))["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    mounted_at("/etc/vast-supervisor/conf.d");
    // /health on the container's port.
    let port = container["ports"][0]["containerPort"].as_u64();
    assert_eq!(port, Some(9477));
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/health")
    );

    // The shards: run the init container's script for each replica on the ConfigMap's files, then
    // `check` each replica's configuration with the Secret's keys and environment.
    let work = tempfile::tempdir().unwrap();
    let sharded = work.path().join("sharded-conf");
    std::fs::create_dir_all(&sharded).unwrap();
    let mut all_accounts = std::collections::BTreeSet::new();
    for (name, text) in config_map["data"].as_mapping().unwrap() {
        let (name, text) = (name.as_str().unwrap(), text.as_str().unwrap());
        std::fs::write(sharded.join(name), text).unwrap();
        if text.contains("[[account]]") {
            all_accounts.insert(name.split_once("--").unwrap().1.to_string());
        }
    }
    let init = &pod["initContainers"][0];
    let script = init["args"][0].as_str().unwrap();
    let secret_value = |key: &str| secret["stringData"][key].as_str().unwrap().to_string();
    let replicas = spec["replicas"].as_u64().unwrap();
    assert!(replicas >= 2, "the example shards");
    let mut seen = std::collections::BTreeMap::new();
    for ordinal in 0..replicas {
        let config = work.path().join(format!("replica-{ordinal}"));
        let conf_d = config.join("conf.d");
        std::fs::create_dir_all(&conf_d).unwrap();
        let status = Command::new("sh")
            .args(["-c", script])
            .env("POD_NAME", format!("vast-supervisor-{ordinal}"))
            .env("SHARDED_CONF", &sharded)
            .env("CONF_D", &conf_d)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the init script fails for replica {ordinal}"
        );
        let keys = config.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for key in secret["stringData"].as_mapping().unwrap().keys() {
            let key = key.as_str().unwrap();
            std::fs::write(keys.join(key), secret_value(key)).unwrap();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
            .args(["check", "--config"])
            .arg(&config)
            .env("DISCORD_URL", secret_value("discord-url"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "replica {ordinal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for entry in std::fs::read_dir(&conf_d).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if all_accounts.contains(&name) {
                assert!(
                    seen.insert(name.clone(), ordinal).is_none(),
                    "{name} is on two shards"
                );
            }
        }
    }
    assert_eq!(
        seen.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        all_accounts,
        "every account is on a shard"
    );
}
