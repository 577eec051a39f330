//! The shipped examples (`conf.d/*.toml` and `examples/vast-supervisor.toml`) pass `check` once
//! the secrets they reference exist, and name every missing secret clearly when they do not.
//!
//! This is the only test in this binary because it sets process environment variables.

use std::path::Path;
use vast_supervisor::config::{check_command, load_dir, TargetUrl};

const SECRET_VALUES: [&str; 5] = [
    "example-host-api-key",
    "example-renter-api-key",
    "discord://123456789012345678/example-discord-token",
    "mailtos://alerts%40example.com:example-password@smtp.example.com:465?to=ops@example.com",
    "example-bearer-token",
];

fn copy_examples(to: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(to.join("conf.d")).expect("mkdir conf.d");
    std::fs::copy(
        repo.join("examples/vast-supervisor.toml"),
        to.join("vast-supervisor.toml"),
    )
    .expect("copy main example");
    let mut copied = 0;
    for entry in std::fs::read_dir(repo.join("conf.d")).expect("repo conf.d") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join("conf.d").join(entry.file_name())).expect("copy");
        copied += 1;
    }
    assert_eq!(copied, 3, "the repository ships three example files");
}

fn check(dir: &Path) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = check_command(dir, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("utf8"),
        String::from_utf8(err).expect("utf8"),
    )
}

#[test]
fn shipped_examples_pass_check() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    copy_examples(dir);

    // Without their secrets the examples are rejected, each missing secret named.
    let (code, out, err) = check(dir);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    // Line numbers move when the comments change: match each line on its file and message.
    let conf_d = dir.join("conf.d");
    let in_file = |name: &str| conf_d.join(name).display().to_string();
    let expected = [
        (
            in_file("10-host-example.toml"),
            format!(
                "cannot read api_key_file \"{}\": No such file or directory (os error 2)",
                conf_d.join("../keys/host-example").display()
            ),
        ),
        (
            in_file("20-renter-example.toml"),
            "environment variable VAST_KEY_RENTER_EXAMPLE (from api_key_env) is not set".into(),
        ),
        (
            in_file("50-targets-example.toml"),
            "environment variable VAST_SUPERVISOR_DISCORD_URL (from url_env) is not set".into(),
        ),
        (
            in_file("50-targets-example.toml"),
            format!(
                "cannot read url_file \"{}\": No such file or directory (os error 2)",
                conf_d.join("../secrets/ops-email.url").display()
            ),
        ),
        (
            in_file("50-targets-example.toml"),
            "environment variable VAST_SUPERVISOR_WEBHOOK_URL (from url_env) is not set".into(),
        ),
        (
            in_file("50-targets-example.toml"),
            format!(
                "cannot read bearer_token_file \"{}\": No such file or directory (os error 2)",
                conf_d.join("../secrets/ops-webhook.token").display()
            ),
        ),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, (file, message)) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(&format!("{file}:")) && line.ends_with(&format!(": {message}")),
            "expected {file}:LINE:COL: {message}\ngot {line}"
        );
    }

    // With the secrets in place, the examples are a valid configuration.
    std::fs::create_dir_all(dir.join("keys")).expect("mkdir keys");
    std::fs::create_dir_all(dir.join("secrets")).expect("mkdir secrets");
    std::fs::write(
        dir.join("keys/host-example"),
        format!("{}\n", SECRET_VALUES[0]),
    )
    .unwrap();
    std::fs::write(dir.join("secrets/ops-email.url"), SECRET_VALUES[3]).unwrap();
    std::fs::write(dir.join("secrets/ops-webhook.token"), SECRET_VALUES[4]).unwrap();
    std::env::set_var("VAST_KEY_RENTER_EXAMPLE", SECRET_VALUES[1]);
    std::env::set_var("VAST_SUPERVISOR_DISCORD_URL", SECRET_VALUES[2]);
    std::env::set_var(
        "VAST_SUPERVISOR_WEBHOOK_URL",
        "jsons://hooks.example.com/vast",
    );

    let (code, out, err) = check(dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configuration OK: 4 files, 2 accounts (1 watching machines, 1 watching instances), 3 targets\n"
    );
    assert!(err.is_empty());

    let loaded = load_dir(dir);
    let services: Vec<&str> = loaded.targets().iter().map(|t| t.url.service()).collect();
    assert_eq!(services, ["discord", "email", "webhook"]);
    assert!(matches!(
        loaded.targets()[1].url,
        TargetUrl::Email { port: 465, .. }
    ));
    assert_eq!(loaded.accounts()[1].log_rules.len(), 1);
    assert_eq!(
        loaded.globals.http_listen,
        Some("127.0.0.1:9477".parse().unwrap())
    );
    let debug = format!("{loaded:?}");
    for secret in [
        "example-host-api-key",
        "example-renter-api-key",
        "example-discord-token",
        "example-password",
        "example-bearer-token",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
}
