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

const SPEC: &str = "packaging/rpm/vast-supervisor.spec";

/// The lines of one section of the RPM spec (`%install`, `%files`, ...), up to the next one.
fn spec_section(spec: &str, name: &str) -> Vec<String> {
    spec.lines()
        .skip_while(|l| l.trim() != name)
        .skip(1)
        .take_while(|l| {
            !l.starts_with('%')
                || l.starts_with("%attr")
                || l.starts_with("%dir")
                || l.starts_with("%config")
                || l.starts_with("%doc")
                || l.starts_with("%license")
        })
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The .rpm's files, from the spec: each `install -D -m MODE SOURCE DEST` (or `-t DIR SOURCES`)
/// line of `%install`, with the `%files` line that lists it.
fn rpm_assets() -> Vec<(Asset, String)> {
    let spec = read(SPEC);
    let files = spec_section(&spec, "%files");
    let path = |s: &str| {
        s.trim_matches('"')
            .replace("%{_sourcedir}/", "")
            .replace("%{_sourcedir}\"/", "")
            .replace("%{buildroot}", "")
            .replace("%{unitdir}", "/usr/lib/systemd/system")
    };
    spec_section(&spec, "%install")
        .iter()
        .filter(|l| l.starts_with("install -D "))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mode = words[3].trim_start_matches('0').to_string();
            let (source, dest) = match words[4] {
                "-t" => {
                    let source = path(words[6]);
                    let file = source.rsplit('/').next().unwrap().to_string();
                    (source, format!("{}/{file}", path(words[5])))
                }
                _ => (path(words[4]), path(words[5])),
            };
            // A glob is listed by its page names, e.g. vast-supervisor*.1* for *.1.
            let listed = files
                .iter()
                .find(|f| {
                    let listed = path(f.split_whitespace().last().unwrap());
                    listed == dest
                        || (dest.contains('*')
                            && listed.starts_with(dest.rsplit_once('/').unwrap().0))
                })
                .unwrap_or_else(|| panic!("{SPEC}: {dest} is installed but not in %files"))
                .clone();
            (Asset { source, dest, mode }, listed)
        })
        .collect()
}

#[test]
fn the_deb_and_rpm_ship_every_file_with_its_mode() {
    let metadata = cargo_metadata();
    let deb = deb_assets(&metadata);
    let rpm = rpm_assets();
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
        ("packaging/man/*.1", "/usr/share/man/man1/*.1", "644"),
        ("packaging/man/*.5", "/usr/share/man/man5/*.5", "644"),
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
    // Both compress the man pages: cargo-deb by itself, the spec's %install with gzip.
    assert!(read(SPEC).contains("gzip -9 -n"));
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

    // Every file's %attr mode is the mode it is installed with.
    for (asset, listed) in &rpm {
        let attr = listed
            .split("%attr(")
            .nth(1)
            .and_then(|a| a.split(',').next())
            .unwrap_or_else(|| panic!("{SPEC}: no %attr in {listed}"));
        assert_eq!(attr.trim_start_matches('0'), asset.mode, "{listed}");
    }
    // Configuration holds keys: rpm marks it noreplace and gives it to the daemon's group
    // (the .deb's postinst does the same; dpkg treats /etc files as conffiles by itself).
    for (asset, listed) in &rpm {
        if asset.dest.starts_with("/etc/") {
            assert!(
                listed.starts_with("%config(noreplace) %attr(0640,root,vast-supervisor) "),
                "{listed}"
            );
            assert_eq!(asset.mode, "640", "{asset:?}");
        }
    }
    // The directories of the package are its own (keys/ and secrets/ come from tmpfiles.d).
    let files = spec_section(&read(SPEC), "%files");
    for dir in [
        "/etc/vast-supervisor",
        "/etc/vast-supervisor/conf.d",
        "/usr/share/doc/vast-supervisor",
        "/usr/share/licenses/vast-supervisor",
    ] {
        assert!(
            files
                .iter()
                .any(|l| l.starts_with("%dir ") && l.ends_with(&format!(" {dir}"))),
            "{SPEC} does not own {dir}"
        );
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
fn both_packages_have_a_short_synopsis_a_description_and_a_changelog_for_this_version() {
    let metadata = cargo_metadata();
    let synopsis = metadata["package"]["description"].as_str().unwrap();
    assert!(
        synopsis.len() < 80 && !synopsis.contains('\n'),
        "{synopsis}"
    );
    let spec = read(SPEC);
    let tag = |name: &str| {
        spec.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{SPEC} has no {name}:"))
            .to_string()
    };
    assert_eq!(
        tag("Summary"),
        synopsis,
        "the RPM summary is the Debian synopsis"
    );
    assert_eq!(tag("Name"), env!("CARGO_PKG_NAME"));
    assert_eq!(
        tag("License"),
        metadata["package"]["license"].as_str().unwrap()
    );
    assert!(tag("URL").starts_with("https://"));
    assert_eq!(
        tag("Requires(pre)"),
        "systemd",
        "%pre runs systemd-sysusers"
    );
    let description = spec_section(&spec, "%description");
    assert!(description.len() >= 3, "a paragraph, not a line");
    assert!(
        description.iter().all(|l| l.len() < 80),
        "rpmlint wants description lines under 80 characters"
    );
    let changelog = spec_section(&spec, "%changelog");
    let expected = format!("- {}-1", env!("CARGO_PKG_VERSION"));
    assert!(
        changelog
            .first()
            .is_some_and(|l| l.starts_with("* ") && l.ends_with(&expected)),
        "{SPEC}: a new version needs a %changelog entry ending in {expected:?}"
    );
    for script in [
        "pre_install",
        "post_install",
        "pre_uninstall",
        "post_uninstall",
    ] {
        assert!(
            spec.contains(&format!("packaging/rpm/{script}.sh")),
            "{SPEC} does not use packaging/rpm/{script}.sh"
        );
    }
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
