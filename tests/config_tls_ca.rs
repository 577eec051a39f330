//! `tls_ca_file` on an email target (SPEC §4): the PEM bundle is read and checked when the
//! configuration loads; a missing, unreadable, empty or malformed file, or the key on a target
//! that is not email, is an error at the key's `path:line:col`. Relative paths are relative to
//! the configuration file.

mod support;

use std::path::Path;
use support::pki::TestPki;
use vast_supervisor::config::{parse_file, FileOutcome, TargetConfig};

fn no_env(_: &str) -> Option<String> {
    None
}

fn mail_target(ca_line: &str) -> String {
    format!(
        "[[target]]\nname = \"mail\"\nurl = \"mailtos://alerts%40example.org:pw@mail.example.org?to=ops@example.org\"\n{ca_line}\n"
    )
}

fn parse_ok(path: &Path, text: &str) -> TargetConfig {
    match parse_file(path, text, false, &no_env) {
        FileOutcome::Ok(file) => file.targets.into_iter().next().expect("one target"),
        FileOutcome::Rejected { diagnostics, .. } => panic!("{diagnostics:?}"),
    }
}

fn messages(path: &Path, text: &str) -> Vec<String> {
    match parse_file(path, text, false, &no_env) {
        FileOutcome::Ok(_) => Vec::new(),
        FileOutcome::Rejected { diagnostics, .. } => {
            diagnostics.iter().map(|d| d.to_string()).collect()
        }
    }
}

#[test]
fn a_pem_bundle_is_loaded_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir_all(conf_d.join("certs")).unwrap();
    let first = TestPki::generate("one");
    let second = TestPki::generate("two");
    std::fs::write(
        conf_d.join("certs/relay-ca.pem"),
        format!("# our relay's CAs\n{}{}", first.ca_pem, second.ca_pem),
    )
    .unwrap();
    let path = conf_d.join("50-mail.toml");
    let target = parse_ok(&path, &mail_target("tls_ca_file = \"certs/relay-ca.pem\""));
    let ca = target.tls_ca.as_ref().expect("tls_ca_file applied");
    assert_eq!(ca.path, conf_d.join("certs/relay-ca.pem"));
    assert_eq!(ca.certificates.len(), 2);
    let debug = format!("{target:?}");
    assert!(
        debug.contains("certificates: 2") && debug.len() < 2000,
        "Debug shows a count, not the certificates: {debug}"
    );
    // Without the key: the built-in roots only.
    assert_eq!(parse_ok(&path, &mail_target("")).tls_ca, None);
}

#[test]
fn bad_bundles_are_errors_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("50-mail.toml");
    let p = path.display();
    let file = |name: &str, content: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, content).unwrap();
        f
    };
    let missing = dir.path().join("missing.pem");
    let empty = file("empty.pem", "");
    let no_cert = file(
        "key-only.pem",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    );
    let not_pem = file("notes.txt", "ask the mail admins for the CA\n");
    let unterminated = file(
        "cut.pem",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n",
    );
    let bad_base64 = file(
        "bad64.pem",
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    );
    let not_a_certificate = file(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let cases = [
        (
            &missing,
            format!(
                "cannot read tls_ca_file \"{}\": No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            &empty,
            format!(
                "tls_ca_file \"{}\" holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)",
                empty.display()
            ),
        ),
        (
            &no_cert,
            format!(
                "tls_ca_file \"{}\" holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)",
                no_cert.display()
            ),
        ),
        (
            &not_pem,
            format!(
                "tls_ca_file \"{}\" holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)",
                not_pem.display()
            ),
        ),
        (
            &unterminated,
            format!(
                "tls_ca_file \"{}\" is not valid PEM: a section has no END line",
                unterminated.display()
            ),
        ),
        (
            &bad_base64,
            format!(
                "tls_ca_file \"{}\" is not valid PEM: a section is not valid base64",
                bad_base64.display()
            ),
        ),
        (
            &not_a_certificate,
            format!(
                "tls_ca_file \"{}\" holds a certificate that is not a valid X.509 certificate (number 1 of 1)",
                not_a_certificate.display()
            ),
        ),
    ];
    for (ca, expected) in cases {
        let text = mail_target(&format!("tls_ca_file = \"{}\"", ca.display()));
        assert_eq!(
            messages(&path, &text),
            vec![format!("{p}:4:15: {expected}")]
        );
    }
    // A directory is unreadable as a file.
    let text = mail_target(&format!("tls_ca_file = \"{}\"", dir.path().display()));
    let got = messages(&path, &text);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with(&format!("{p}:4:15: cannot read tls_ca_file")),
        "{got:?}"
    );
}

#[test]
fn tls_ca_file_is_only_for_email_targets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestPki::generate("relay").write_ca(dir.path(), "ca.pem");
    let path = dir.path().join("50-hook.toml");
    let text = format!(
        "[[target]]\nname = \"hook\"\nurl = \"jsons://hooks.example.org/x\"\ntls_ca_file = \"{}\"\n",
        ca.display()
    );
    assert_eq!(
        messages(&path, &text),
        vec![format!(
            "{}:4:1: tls_ca_file is only for mailto:// and mailtos:// targets (this target is webhook)",
            path.display()
        )]
    );
    // mailto:// (STARTTLS when offered) may use it too.
    let text = format!(
        "[[target]]\nname = \"mail\"\nurl = \"mailto://mail.example.org?from=a@example.org&to=ops@example.org\"\ntls_ca_file = \"{}\"\n",
        ca.display()
    );
    assert!(parse_ok(&path, &text).tls_ca.is_some());
}
