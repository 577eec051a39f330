//! Email against a real SMTP server (mailin's protocol engine on a loopback socket): delivery
//! with AUTH and both MIME parts, 4xx replies transient, 5xx replies permanent, "message too
//! big" rejecting that mail only, refused credentials permanent, the TLS modes never falling back
//! to clear text, and delivery over real TLS (STARTTLS, implicit TLS, opportunistic) to a server
//! whose test CA is trusted through `tls_ca_file`, while an untrusted certificate still fails.

mod support;

use std::path::Path;
use support::logs::LogCapture;
use support::pki::TestPki;
use support::smtp::{Reply, SmtpConfig, SmtpServer};
use support::*;
use vast_supervisor::config::model::{EmailSecurity, TargetConfig, TargetUrl};
use vast_supervisor::config::{parse_file, FileOutcome};
use vast_supervisor::notify::{Notifier, SendError};
use vast_supervisor::util::Secret;

fn email_url(server: &SmtpServer, security: EmailSecurity, password: &str) -> TargetUrl {
    TargetUrl::Email {
        security,
        host: "127.0.0.1".into(),
        port: server.addr.port(),
        user: Some("alerts@example.org".into()),
        password: Some(Secret::new(password)),
        from: "alerts@example.org".into(),
        to: vec!["ops@example.org".into(), "oncall@example.org".into()],
    }
}

fn authenticated() -> SmtpConfig {
    SmtpConfig {
        auth: Some(("alerts@example.org".into(), SMTP_PASSWORD.into())),
        ..SmtpConfig::default()
    }
}

fn mail_notifier(server: &SmtpServer, security: EmailSecurity, password: &str) -> Notifier {
    notifier(email_url(server, security, password))
}

#[tokio::test]
async fn delivers_one_multipart_mail_with_auth() {
    bounded(async {
        let server = SmtpServer::start(authenticated()).await;
        let mut n = mail_notifier(&server, EmailSecurity::Opportunistic, SMTP_PASSWORD);
        let delivered = n.send(&[machine_offline()]).await.expect("delivered");
        assert_eq!(delivered.messages, 1);
        assert!(delivered.info.starts_with("250 "), "{}", delivered.info);

        let mails = server.mails();
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.authenticated_as.as_deref(), Some("alerts@example.org"));
        assert_eq!(mail.from, "alerts@example.org");
        assert_eq!(mail.to, vec!["ops@example.org", "oncall@example.org"]);
        assert!(mail
            .data
            .contains("Subject: [vast-supervisor] rig_02 is offline"));
        assert!(mail.data.contains("multipart/alternative"));
        assert!(mail
            .data
            .contains("Content-Type: text/plain; charset=utf-8"));
        assert!(mail.data.contains("Content-Type: text/html; charset=utf-8"));
        assert!(
            mail.data.contains("&lt;unreachable&gt;"),
            "HTML part escapes"
        );

        // A burst is one digest mail.
        n.send(&offline_burst(30)).await.expect("digest delivered");
        let mails = server.mails();
        assert_eq!(mails.len(), 2);
        assert!(mails[1]
            .data
            .contains("Subject: [vast-supervisor] 30 events: 30 machine_offline"));
    })
    .await;
}

#[tokio::test]
async fn smtp_4xx_replies_are_transient() {
    bounded(async {
        for config in [
            SmtpConfig {
                mail: Reply::Temporary,
                ..authenticated()
            },
            SmtpConfig {
                rcpt: Reply::Temporary,
                ..authenticated()
            },
            SmtpConfig {
                data: Reply::Temporary,
                ..authenticated()
            },
        ] {
            let server = SmtpServer::start(config.clone()).await;
            let mut n = mail_notifier(&server, EmailSecurity::Opportunistic, SMTP_PASSWORD);
            match n.send(&[rental_end()]).await {
                Err(SendError::Transient { reason, detail }) => {
                    assert_eq!(reason, "smtp_transient", "{config:?}: {detail}");
                    assert!(detail.contains("45"), "{detail}");
                }
                other => panic!("{config:?}: expected transient, got {other:?}"),
            }
            assert!(server.mails().is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn smtp_5xx_replies_are_permanent() {
    bounded(async {
        for config in [
            SmtpConfig {
                mail: Reply::Permanent,
                ..authenticated()
            },
            SmtpConfig {
                rcpt: Reply::Permanent,
                ..authenticated()
            },
            SmtpConfig {
                data: Reply::Permanent,
                ..authenticated()
            },
        ] {
            let server = SmtpServer::start(config.clone()).await;
            let mut n = mail_notifier(&server, EmailSecurity::Opportunistic, SMTP_PASSWORD);
            match n.send(&[rental_end()]).await {
                Err(SendError::Permanent { reason, detail }) => {
                    assert_eq!(reason, "smtp_permanent", "{config:?}: {detail}");
                    assert!(detail.contains("55"), "{detail}");
                }
                other => panic!("{config:?}: expected permanent, got {other:?}"),
            }
        }
        // Wrong password: 535, permanent.
        let server = SmtpServer::start(authenticated()).await;
        let mut n = mail_notifier(&server, EmailSecurity::Opportunistic, "wrong-password");
        match n.send(&[rental_end()]).await {
            Err(SendError::Permanent { reason, detail }) => {
                assert_eq!(reason, "smtp_permanent");
                assert!(detail.contains("535"), "{detail}");
            }
            other => panic!("expected permanent, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn required_tls_never_falls_back_to_clear_text() {
    bounded(async {
        // mailtos on a port other than 465 requires STARTTLS: a server without it is refused.
        let plain = SmtpServer::start(authenticated()).await;
        let mut n = mail_notifier(&plain, EmailSecurity::StartTls, SMTP_PASSWORD);
        match n.send(&[rental_end()]).await {
            Err(SendError::Permanent { reason, detail }) => {
                assert_eq!(reason, "client");
                assert!(detail.contains("STARTTLS"), "{detail}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(plain.mails().is_empty());

        // Offered STARTTLS is used (by mailto too) before anything else is sent.
        for security in [EmailSecurity::StartTls, EmailSecurity::Opportunistic] {
            let tls = SmtpServer::start(SmtpConfig {
                starttls: true,
                ..authenticated()
            })
            .await;
            let mut n = mail_notifier(&tls, security, SMTP_PASSWORD);
            assert!(n.send(&[rental_end()]).await.is_err());
            assert_eq!(tls.starttls_requests(), 1, "{security:?}");
            assert!(tls.mails().is_empty());
        }

        // Implicit TLS (port 465 style) starts with a handshake; a plain server fails it.
        let plain = SmtpServer::start(authenticated()).await;
        let mut n = mail_notifier(&plain, EmailSecurity::ImplicitTls, SMTP_PASSWORD);
        match n.send(&[rental_end()]).await {
            Err(SendError::Transient { reason, .. }) => assert_eq!(reason, "network"),
            other => panic!("expected a transient TLS failure, got {other:?}"),
        }
        assert!(plain.mails().is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    bounded(async {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = TargetUrl::Email {
            security: EmailSecurity::Opportunistic,
            host: "127.0.0.1".into(),
            port,
            user: None,
            password: None,
            from: "alerts@example.org".into(),
            to: vec!["ops@example.org".into()],
        };
        let mut n = notifier(url);
        match n.send(&[rental_end()]).await {
            Err(SendError::Transient { reason, .. }) => assert_eq!(reason, "network"),
            other => panic!("expected transient, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_server_that_stops_answering_times_out() {
    bounded(async {
        // Greets, then never answers a command.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stall = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"220 stalled.test ESMTP\r\n").await;
                held.push(stream);
            }
        });
        let url = TargetUrl::Email {
            security: EmailSecurity::Opportunistic,
            host: "127.0.0.1".into(),
            port,
            user: None,
            password: None,
            from: "alerts@example.org".into(),
            to: vec!["ops@example.org".into()],
        };
        let mut n = notifier(url).with_timeout(std::time::Duration::from_millis(300));
        match n.send(&[rental_end()]).await {
            Err(SendError::Transient { reason, .. }) => assert_eq!(reason, "timeout"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        stall.abort();
    })
    .await;
}

#[tokio::test]
async fn a_mail_over_the_size_limit_is_rejected_alone() {
    bounded(async {
        let server = SmtpServer::start(SmtpConfig {
            data: Reply::TooLarge,
            ..authenticated()
        })
        .await;
        let mut n = mail_notifier(&server, EmailSecurity::Opportunistic, SMTP_PASSWORD);
        match n.send(&[rental_end()]).await {
            Err(SendError::Rejected { reason, detail }) => {
                assert_eq!(reason, "too_large");
                assert!(detail.contains("552"), "{detail}");
            }
            other => panic!("expected this mail rejected, got {other:?}"),
        }
        assert!(server.mails().is_empty());
    })
    .await;
}

/// An email target as an operator writes it: `mailtos://` with a password and `tls_ca_file`
/// naming the test CA, parsed from a configuration file; then `security` set (a random test
/// port cannot be 465, which is how the URL selects implicit TLS).
fn tls_target(
    dir: &Path,
    port: u16,
    ca_file: Option<&Path>,
    security: EmailSecurity,
) -> TargetConfig {
    let mut text = format!(
        "[[target]]\nname = \"mail\"\nurl = \"mailtos://alerts%40example.org:{SMTP_PASSWORD}@127.0.0.1:{port}?to=ops@example.org\"\n"
    );
    if let Some(ca_file) = ca_file {
        text.push_str(&format!("tls_ca_file = \"{}\"\n", ca_file.display()));
    }
    let path = dir.join("50-mail.toml");
    let mut target = match parse_file(&path, &text, false, &|_| None) {
        FileOutcome::Ok(file) => file.targets.into_iter().next().expect("one target"),
        FileOutcome::Rejected { diagnostics, .. } => panic!("{diagnostics:?}"),
    };
    if let TargetUrl::Email { security: s, .. } = &mut target.url {
        *s = security;
    }
    target
}

fn tls_server_config(pki: &TestPki, implicit: bool) -> SmtpConfig {
    SmtpConfig {
        starttls: !implicit,
        tls: Some(pki.server.clone()),
        implicit_tls: implicit,
        ..authenticated()
    }
}

/// Neither the error (Display, Debug) nor any log line carries the password.
fn assert_no_password(
    logs: &LogCapture,
    result: &Result<vast_supervisor::notify::Delivered, SendError>,
) {
    let text = format!(
        "{result:?} {}",
        result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    );
    assert!(!text.contains(SMTP_PASSWORD), "{text}");
    assert!(
        !logs.text().contains(SMTP_PASSWORD),
        "a log line carries the password"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn delivers_over_starttls_and_implicit_tls_with_the_configured_ca() {
    let logs = LogCapture::new();
    let _guard = logs.install();
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate("relay");
        let ca = pki.write_ca(dir.path(), "relay-ca.pem");
        for (security, implicit) in [
            (EmailSecurity::StartTls, false),
            (EmailSecurity::Opportunistic, false),
            (EmailSecurity::ImplicitTls, true),
        ] {
            let server = SmtpServer::start(tls_server_config(&pki, implicit)).await;
            let target = tls_target(dir.path(), server.addr.port(), Some(&ca), security);
            let mut n = notifier_for(&target);
            let result = n.send(&[machine_offline()]).await;
            assert_no_password(&logs, &result);
            let delivered = result.unwrap_or_else(|e| panic!("{security:?}: {e}"));
            assert!(delivered.info.starts_with("250 "), "{}", delivered.info);
            let mails = server.mails();
            assert_eq!(mails.len(), 1, "{security:?}");
            assert!(
                mails[0].over_tls,
                "{security:?}: the mail travelled inside TLS"
            );
            assert_eq!(
                mails[0].authenticated_as.as_deref(),
                Some("alerts@example.org"),
                "{security:?}: AUTH (offered only inside TLS) succeeded"
            );
            assert!(mails[0]
                .data
                .contains("Subject: [vast-supervisor] rig_02 is offline"));
            assert_eq!(server.tls_handshakes(), 1, "{security:?}");
            assert_eq!(
                server.starttls_requests(),
                usize::from(!implicit),
                "{security:?}"
            );

            // The pooled TLS connection carries the next mail too.
            n.send(&[rental_end()]).await.expect("second mail");
            assert_eq!(server.mails().len(), 2, "{security:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_untrusted_certificate_fails_without_falling_back_to_clear_text() {
    let logs = LogCapture::new();
    let _guard = logs.install();
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestPki::generate("relay");
        let other_ca = TestPki::generate("other").write_ca(dir.path(), "other-ca.pem");
        for (security, implicit) in [
            (EmailSecurity::StartTls, false),
            (EmailSecurity::Opportunistic, false),
            (EmailSecurity::ImplicitTls, true),
        ] {
            // Trusting another CA, and trusting only the built-in roots: both refuse the relay.
            for ca in [Some(other_ca.as_path()), None] {
                let server = SmtpServer::start(tls_server_config(&relay, implicit)).await;
                let target = tls_target(dir.path(), server.addr.port(), ca, security);
                let mut n = notifier_for(&target);
                let result = n.send(&[rental_end()]).await;
                assert_no_password(&logs, &result);
                match &result {
                    Err(SendError::Transient { reason, detail }) => {
                        assert_eq!(*reason, "network", "{security:?} {ca:?}: {detail}");
                    }
                    other => panic!(
                        "{security:?} {ca:?}: expected a transient TLS failure, got {other:?}"
                    ),
                }
                assert!(server.mails().is_empty(), "{security:?} {ca:?}");
                assert_eq!(server.tls_handshakes(), 0, "{security:?} {ca:?}");
                // The server sees the client abandon the handshake a moment after the client
                // gave up.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                while server.failed_handshakes() == 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                assert_eq!(server.failed_handshakes(), 1, "{security:?} {ca:?}");
                // No second, clear-text attempt: one connection, and it never got past TLS.
                assert_eq!(server.connections(), 1, "{security:?} {ca:?}");
            }
        }
    })
    .await;
}
