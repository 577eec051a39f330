//! Email against a real SMTP server (mailin's protocol engine on a loopback socket): delivery
//! with AUTH and both MIME parts, 4xx replies transient, 5xx replies permanent, refused
//! credentials permanent, and the TLS modes never falling back to clear text.

mod support;

use support::smtp::{Reply, SmtpConfig, SmtpServer};
use support::*;
use vast_supervisor::config::model::{EmailSecurity, TargetUrl};
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
