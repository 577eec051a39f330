//! The packaging files under `packaging/` and the package metadata in `Cargo.toml`: the systemd
//! unit passes `systemd-analyze verify` and scores "OK" in `systemd-analyze security`, the
//! configuration the packages install passes `check` with no account configured, and the .deb
//! and .rpm asset lists ship the same files with the same modes. Building the packages
//! themselves needs cargo-deb and is `packaging/check-deb.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use vast_supervisor::config::{check_command, load_dir, Globals};

const UNIT: &str = "packaging/systemd/vast-supervisor.service";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// `systemd-analyze`, or `None` (with a message) where it is not installed.
fn systemd_analyze() -> Option<&'static str> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(output) if output.status.success() => Some("systemd-analyze"),
        _ => {
            eprintln!("skipped: systemd-analyze is not installed");
            None
        }
    }
}

/// The unit as installed, except that it starts the binary this test run built instead of
/// `/usr/bin/vast-supervisor` (which `verify` requires to exist).
fn unit_with_test_binary(dir: &Path) -> PathBuf {
    let unit = read(UNIT);
    assert!(
        unit.contains("ExecStart=/usr/bin/vast-supervisor run "),
        "the packages install the binary as /usr/bin/vast-supervisor"
    );
    let path = dir.join("vast-supervisor.service");
    let binary = env!("CARGO_BIN_EXE_vast-supervisor");
    std::fs::write(&path, unit.replace("/usr/bin/vast-supervisor", binary)).expect("write unit");
    path
}

fn unit_lines(key: &str) -> Vec<String> {
    read(UNIT)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .collect()
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let unit = unit_with_test_binary(temp.path());
    let output = Command::new(analyze)
        .args(["verify", "--man=false"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}

#[test]
fn the_unit_scores_ok_in_systemd_analyze_security() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let help = Command::new(analyze)
        .args(["security", "--help"])
        .output()
        .expect("run systemd-analyze security --help");
    if !String::from_utf8_lossy(&help.stdout).contains("--offline") {
        eprintln!("skipped: this systemd-analyze has no `security --offline` (systemd < 250)");
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let unit = unit_with_test_binary(temp.path());
    let output = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let score: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for vast-supervisor.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{stdout}"));
    assert!(
        score <= 2.0,
        "exposure {score} is above 2.0 (\"OK\"):\n{stdout}"
    );
}

#[test]
fn the_unit_checks_the_configuration_before_starting_and_reloading() {
    assert_eq!(unit_lines("Type"), ["notify"]);
    assert_eq!(
        unit_lines("ExecStartPre"),
        ["/usr/bin/vast-supervisor check --config /etc/vast-supervisor"]
    );
    // systemd runs ExecReload= lines in order and stops at the first that fails: a failing
    // check refuses the reload before the daemon gets SIGHUP.
    assert_eq!(
        unit_lines("ExecReload"),
        [
            "/usr/bin/vast-supervisor check --config /etc/vast-supervisor",
            "/bin/kill -HUP $MAINPID"
        ]
    );
    assert_eq!(unit_lines("Restart"), ["on-failure"]);
    assert_eq!(unit_lines("StartLimitBurst").len(), 1);
    assert_eq!(unit_lines("User"), ["vast-supervisor"]);
    assert_eq!(unit_lines("Group"), ["vast-supervisor"]);
    assert_eq!(unit_lines("StateDirectory"), ["vast-supervisor"]);
    assert_eq!(unit_lines("RuntimeDirectory"), ["vast-supervisor"]);
    // The control socket is 0660: the directory must let the group in, and no one else.
    assert_eq!(unit_lines("RuntimeDirectoryMode"), ["0750"]);
    assert_eq!(unit_lines("ConfigurationDirectory"), ["vast-supervisor"]);
}

#[test]
fn the_sysusers_line_is_the_one_the_rpm_pre_install_script_creates() {
    let sysusers = read("packaging/sysusers.d/vast-supervisor.conf");
    let entries: Vec<&str> = sysusers
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(entries.len(), 1, "{sysusers}");
    assert!(
        entries[0].starts_with("u vast-supervisor "),
        "{}",
        entries[0]
    );
    let pre_install = read("packaging/rpm/pre_install.sh");
    assert!(
        pre_install.lines().any(|l| l == entries[0]),
        "packaging/rpm/pre_install.sh does not create the user of the sysusers.d file"
    );
}

#[test]
fn the_maintainer_scripts_are_valid_shell() {
    for script in [
        "packaging/debian/postinst",
        "packaging/debian/postrm",
        "packaging/rpm/pre_install.sh",
        "packaging/rpm/post_install.sh",
        "packaging/rpm/pre_uninstall.sh",
        "packaging/rpm/post_uninstall.sh",
        "packaging/check-deb.sh",
        "packaging/check-rpm.sh",
    ] {
        let shell = if script.starts_with("packaging/check-") {
            "bash"
        } else {
            "sh"
        };
        let output = Command::new(shell)
            .arg("-n")
            .arg(repo().join(script))
            .output()
            .expect("run sh -n");
        assert!(
            output.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for script in ["packaging/debian/postinst", "packaging/debian/postrm"] {
        let text = read(script);
        assert_eq!(
            text.matches("#DEBHELPER#").count(),
            1,
            "{script} needs exactly one #DEBHELPER# marker for cargo-deb's snippets"
        );
    }
}

/// `/etc/vast-supervisor` as the packages install it, in a temporary directory.
fn installed_config() -> tempfile::TempDir {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir conf.d");
    std::fs::copy(
        repo().join("packaging/etc/vast-supervisor.toml"),
        dir.join("vast-supervisor.toml"),
    )
    .expect("copy the main file");
    for example in repo_examples() {
        std::fs::copy(
            repo().join("conf.d").join(&example),
            dir.join("conf.d").join(format!("{example}.example")),
        )
        .expect("copy an example");
    }
    temp
}

/// The file names of `conf.d/*.toml` in the repository: the examples the packages ship.
fn repo_examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("conf.d"))
        .expect("read conf.d")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "the repository ships example conf.d files"
    );
    names
}

fn check(dir: &Path) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = check_command(dir, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn the_installed_configuration_passes_check_without_any_secret() {
    let installed = installed_config();
    let (code, out, err) = check(installed.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 file, 0 accounts"), "{out}");

    // Every setting of the packaged main file is at its default, as its comments say.
    let loaded = load_dir(installed.path());
    assert_eq!(loaded.globals, Globals::default());

    // The examples pass only because `.toml.example` is not read: renamed, they are.
    let conf_d = installed.path().join("conf.d");
    let host = repo_examples()
        .into_iter()
        .find(|n| n.contains("host"))
        .expect("a host example");
    std::fs::rename(conf_d.join(format!("{host}.example")), conf_d.join(&host)).expect("rename");
    let (code, _, err) = check(installed.path());
    assert_eq!(code, 2);
    assert!(err.contains("api_key_file"), "{err}");
}

/// One packaged file: where it comes from, where it goes and its mode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Asset {
    source: String,
    dest: String,
    mode: String,
}

fn cargo_metadata() -> toml::Value {
    read("Cargo.toml").parse().expect("Cargo.toml is TOML")
}

fn deb_assets(metadata: &toml::Value) -> Vec<Asset> {
    metadata["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("deb assets")
        .iter()
        .map(|a| {
            let field = |i: usize| a[i].as_str().expect("string").to_string();
            let (source, dest) = (field(0), field(1));
            // cargo-deb: a destination ending in "/" keeps the source's file name.
            let dest = if dest.ends_with('/') {
                let file = source.rsplit('/').next().unwrap_or(&source);
                format!("/{dest}{file}")
            } else {
                format!("/{dest}")
            };
            Asset {
                source,
                dest,
                mode: field(2),
            }
        })
        .collect()
}

fn rpm_assets(metadata: &toml::Value) -> Vec<(Asset, &toml::Value)> {
    metadata["package"]["metadata"]["generate-rpm"]["assets"]
        .as_array()
        .expect("rpm assets")
        .iter()
        .filter(|a| a.get("dir").and_then(toml::Value::as_bool) != Some(true))
        .map(|a| {
            let field = |k: &str| a[k].as_str().expect("string").to_string();
            let (source, dest) = (field("source"), field("dest"));
            let dest = if dest.ends_with('/') {
                let file = source.rsplit('/').next().unwrap_or(&source);
                format!("{dest}{file}")
            } else {
                dest
            };
            let asset = Asset {
                source,
                dest,
                mode: field("mode"),
            };
            (asset, a)
        })
        .collect()
}

#[test]
fn the_deb_and_rpm_ship_every_file_with_its_mode() {
    let metadata = cargo_metadata();
    let deb = deb_assets(&metadata);
    let rpm = rpm_assets(&metadata);
    let mut expected = vec![
        (
            "target/release/vast-supervisor",
            "/usr/bin/vast-supervisor",
            "755",
        ),
        (
            "packaging/sysusers.d/vast-supervisor.conf",
            "/usr/lib/sysusers.d/vast-supervisor.conf",
            "644",
        ),
        (
            "packaging/tmpfiles.d/vast-supervisor.conf",
            "/usr/lib/tmpfiles.d/vast-supervisor.conf",
            "644",
        ),
        (
            "packaging/etc/vast-supervisor.toml",
            "/etc/vast-supervisor/vast-supervisor.toml",
            "640",
        ),
        (
            "packaging/completions/vast-supervisor.bash",
            "/usr/share/bash-completion/completions/vast-supervisor",
            "644",
        ),
        (
            "packaging/completions/vast-supervisor.fish",
            "/usr/share/fish/vendor_completions.d/vast-supervisor.fish",
            "644",
        ),
        (
            "README.md",
            "/usr/share/doc/vast-supervisor/README.md",
            "644",
        ),
        (
            "docs/CONFIGURATION.md",
            "/usr/share/doc/vast-supervisor/CONFIGURATION.md",
            "644",
        ),
        (
            "docs/EVENTS.md",
            "/usr/share/doc/vast-supervisor/EVENTS.md",
            "644",
        ),
        (
            "docs/DEPLOYMENT.md",
            "/usr/share/doc/vast-supervisor/DEPLOYMENT.md",
            "644",
        ),
    ]
    .into_iter()
    .map(|(source, dest, mode)| Asset {
        source: source.into(),
        dest: dest.into(),
        mode: mode.into(),
    })
    .collect::<Vec<_>>();
    for example in repo_examples() {
        expected.push(Asset {
            source: format!("conf.d/{example}"),
            dest: format!("/etc/vast-supervisor/conf.d/{example}.example"),
            mode: "640".into(),
        });
    }

    for asset in &expected {
        assert!(deb.contains(asset), "the .deb lacks {asset:?}");
        assert!(
            rpm.iter().any(|(a, _)| a == asset),
            "the .rpm lacks {asset:?}"
        );
    }
    // Man pages: cargo-deb compresses them itself; cargo-generate-rpm packages them as they are,
    // so the .rpm takes the copies packaging/check-rpm.sh gzips into target/man/.
    for section in ["1", "5"] {
        let deb_pages = Asset {
            source: format!("packaging/man/*.{section}"),
            dest: format!("/usr/share/man/man{section}/*.{section}"),
            mode: "644".into(),
        };
        assert!(deb.contains(&deb_pages), "the .deb lacks {deb_pages:?}");
        let rpm_pages = Asset {
            source: format!("target/man/*.{section}.gz"),
            dest: format!("/usr/share/man/man{section}/*.{section}.gz"),
            mode: "644".into(),
        };
        assert!(
            rpm.iter().any(|(a, _)| *a == rpm_pages),
            "the .rpm lacks {rpm_pages:?}"
        );
    }
    // Where the two distributions differ: zsh's directory, and the license (Debian's is
    // /usr/share/doc/vast-supervisor/copyright, generated from LICENSE by cargo-deb).
    let lintian = "/usr/share/lintian/overrides/vast-supervisor";
    assert!(
        deb.iter().any(|a| a.dest == lintian),
        "the .deb lacks {lintian}"
    );
    let zsh_deb = "/usr/share/zsh/vendor-completions/_vast-supervisor";
    let zsh_rpm = "/usr/share/zsh/site-functions/_vast-supervisor";
    assert!(
        deb.iter().any(|a| a.dest == zsh_deb),
        "the .deb lacks {zsh_deb}"
    );
    assert!(
        rpm.iter().any(|(a, _)| a.dest == zsh_rpm),
        "the .rpm lacks {zsh_rpm}"
    );
    assert!(rpm
        .iter()
        .any(|(a, _)| a.dest == "/usr/share/licenses/vast-supervisor/LICENSE"));
    assert_eq!(
        metadata["package"]["metadata"]["deb"]["license-file"][0].as_str(),
        Some("LICENSE")
    );
    // The .deb gets the unit from systemd-units; the .rpm lists it.
    assert!(rpm.iter().any(|(a, _)| a.source == UNIT
        && a.dest == "/usr/lib/systemd/system/vast-supervisor.service"
        && a.mode == "644"));

    // Configuration holds keys: rpm marks it noreplace and gives it to the daemon's group
    // (the .deb's postinst does the same; dpkg treats /etc files as conffiles by itself).
    for (asset, table) in &rpm {
        if asset.dest.starts_with("/etc/") {
            assert_eq!(table["config"].as_str(), Some("noreplace"), "{asset:?}");
            assert_eq!(
                table["group"].as_str(),
                Some("vast-supervisor"),
                "{asset:?}"
            );
            assert_eq!(asset.mode, "640", "{asset:?}");
        }
    }
    let postinst = read("packaging/debian/postinst");
    assert!(postinst.contains("chown root:vast-supervisor"));
    assert!(postinst.contains("chmod 0640"));
}

#[test]
fn the_debian_changelog_names_this_version() {
    let metadata = cargo_metadata();
    let path = metadata["package"]["metadata"]["deb"]["changelog"]
        .as_str()
        .expect("a Debian changelog");
    let changelog = read(path);
    let first = changelog.lines().next().unwrap_or_default();
    let expected = format!("vast-supervisor ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&expected),
        "{path} starts with {first:?}; a new version needs an entry starting with {expected:?}"
    );
}

#[test]
fn the_deb_installs_the_service_disabled_and_stopped() {
    let metadata = cargo_metadata();
    let units = &metadata["package"]["metadata"]["deb"]["systemd-units"];
    assert_eq!(units["unit-scripts"].as_str(), Some("packaging/systemd"));
    assert_eq!(units["enable"].as_bool(), Some(false));
    assert_eq!(units["start"].as_bool(), Some(false));
    assert!(repo()
        .join("packaging/systemd/vast-supervisor.service")
        .is_file());
    // The rpm's %post only lets systemd see the unit (its message tells how to enable it).
    let post_install = read("packaging/rpm/post_install.sh");
    for command in post_install
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("systemctl"))
    {
        assert!(command.starts_with("systemctl daemon-reload"), "{command}");
    }
}

#[test]
fn the_rpm_owns_its_directories_and_both_packages_have_a_short_synopsis() {
    let metadata = cargo_metadata();
    let rpm = &metadata["package"]["metadata"]["generate-rpm"];
    let owned: Vec<(&str, &str, Option<&str>)> = rpm["assets"]
        .as_array()
        .expect("rpm assets")
        .iter()
        .filter(|a| a.get("dir").and_then(toml::Value::as_bool) == Some(true))
        .map(|a| {
            (
                a["dest"].as_str().unwrap(),
                a["mode"].as_str().unwrap(),
                a.get("group").and_then(toml::Value::as_str),
            )
        })
        .collect();
    for dir in [
        "/etc/vast-supervisor",
        "/etc/vast-supervisor/conf.d",
        "/usr/share/doc/vast-supervisor",
        "/usr/share/licenses/vast-supervisor",
    ] {
        assert!(owned.iter().any(|(d, _, _)| *d == dir), "the .rpm does not own {dir}");
    }
    // keys/ and secrets/ as tmpfiles.d creates them: 0750 root:vast-supervisor.
    let tmpfiles = read("packaging/tmpfiles.d/vast-supervisor.conf");
    for dir in ["keys", "secrets"] {
        let dest = format!("/etc/vast-supervisor/{dir}");
        assert!(
            owned.contains(&(dest.as_str(), "750", Some("vast-supervisor"))),
            "{dest}: {owned:?}"
        );
        assert!(
            tmpfiles.lines().any(|l| {
                l.split_whitespace().take(5).collect::<Vec<_>>()
                    == ["d", dest.as_str(), "0750", "root", "vast-supervisor"]
            }),
            "tmpfiles.d creates {dest} differently:\n{tmpfiles}"
        );
    }
    let synopsis = metadata["package"]["description"].as_str().unwrap();
    assert!(synopsis.len() < 80 && !synopsis.contains('\n'), "{synopsis}");
    assert_eq!(rpm["summary"].as_str(), Some(synopsis));
    assert!(rpm["url"].as_str().is_some_and(|u| u.starts_with("https://")));
    assert_eq!(rpm["requires"]["systemd"].as_str(), Some("*"));
}

#[test]
fn the_unit_asks_for_watchdog_pings_the_daemon_sends_in_time() {
    let watchdog = unit_lines("WatchdogSec");
    assert_eq!(watchdog.len(), 1, "one WatchdogSec=");
    let seconds: u64 = watchdog[0]
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("WatchdogSec={} in seconds", watchdog[0]));
    // The daemon pings every half of WATCHDOG_USEC; it must not be so short that a busy reload or
    // a slow disk trips it.
    assert!(seconds >= 30, "WatchdogSec={seconds}s");
    assert_eq!(unit_lines("NotifyAccess"), ["main"]);
}
