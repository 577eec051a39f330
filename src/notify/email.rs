//! Email through lettre's async SMTP transport: `mailto://` upgrades with STARTTLS when offered,
//! `mailtos://` requires TLS (implicit on 465, STARTTLS otherwise); AUTH when the URL has a user.
//! One mail per send (a batch is one digest mail) with a plain-text and an HTML part.
//! SMTP 4xx replies are transient, 5xx permanent ("message too big" rejects only that mail).
//! An optional CA bundle (`tls_ca_file`) is trusted in addition to the built-in roots.

use super::render;
use super::{Delivered, SendContext, SendError};
use crate::config::model::EmailSecurity;
use crate::event::Event;
use crate::util::Secret;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Subject prefix, so filters can sort these mails.
pub const SUBJECT_PREFIX: &str = "[vast-supervisor]";

/// A rendered mail, before MIME encoding (which adds a random boundary and a date).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl EmailContent {
    /// A readable form for golden files.
    pub fn to_golden(&self) -> String {
        format!(
            "Subject: {}\n\n--- text/plain ---\n{}\n--- text/html ---\n{}\n",
            self.subject, self.text, self.html
        )
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Subject, plain text and HTML for `events` (one event, or a digest of several).
pub fn render(events: &[Event]) -> EmailContent {
    let severity = render::max_severity(events);
    let colour = match severity {
        crate::event::Severity::Info => "#3498db",
        crate::event::Severity::Warning => "#e67e22",
        crate::event::Severity::Critical => "#e74c3c",
    };
    match events {
        [event] => {
            let headline = render::headline(event);
            let text = format!(
                "{} {}\n\n{}\n",
                render::severity_label(event.severity),
                headline,
                render::plain_lines(event).join("\n")
            );
            let paragraphs: Vec<String> = event.text.trim_end().lines().map(escape_html).collect();
            let body = if paragraphs.is_empty() {
                String::new()
            } else {
                format!("<p>{}</p>\n", paragraphs.join("<br>\n"))
            };
            let html = format!(
                "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n\
                 <h2 style=\"border-left:6px solid {colour};padding-left:8px\">{}</h2>\n\
                 {body}<p style=\"color:#666\">{}<br>\n{}</p>\n</body></html>",
                escape_html(&headline),
                escape_html(&render::context_line(event)),
                escape_html(&render::when_line(event)),
            );
            EmailContent {
                subject: one_line(&format!("{SUBJECT_PREFIX} {headline}")),
                text,
                html,
            }
        }
        _ => {
            let summary = render::digest_summary(events);
            let lines: Vec<String> = events.iter().map(render::digest_line).collect();
            let text = format!("{summary}\n\n{}\n", lines.join("\n"));
            let items: Vec<String> = lines
                .iter()
                .map(|l| format!("<li>{}</li>", escape_html(l)))
                .collect();
            let html = format!(
                "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n\
                 <h2 style=\"border-left:6px solid {colour};padding-left:8px\">{}</h2>\n\
                 <ul>\n{}\n</ul>\n</body></html>",
                escape_html(&summary),
                items.join("\n")
            );
            EmailContent {
                subject: one_line(&format!("{SUBJECT_PREFIX} {summary}")),
                text,
                html,
            }
        }
    }
}

/// An SMTP target.
pub struct Email {
    security: EmailSecurity,
    host: String,
    port: u16,
    credentials: Option<(String, Secret)>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// DER certificates trusted in addition to the built-in roots (`tls_ca_file`).
    extra_roots: Vec<Vec<u8>>,
    timeout: Duration,
    /// Built on first use: lettre's pool needs a running tokio runtime.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

/// What the configuration says about an email target.
pub(crate) struct EmailOptions<'a> {
    pub security: EmailSecurity,
    pub host: &'a str,
    pub port: u16,
    pub user: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub from: &'a str,
    pub to: &'a [String],
    /// DER certificates to trust in addition to the built-in roots (`tls_ca_file`).
    pub extra_roots: &'a [Vec<u8>],
}

impl Email {
    pub(crate) fn new(options: EmailOptions<'_>) -> Result<Email, String> {
        let EmailOptions {
            security,
            host,
            port,
            user,
            password,
            from,
            to,
            extra_roots,
        } = options;
        let from: Mailbox = from
            .parse()
            .map_err(|_| format!("the sender \"{from}\" is not a valid email address"))?;
        let to = to
            .iter()
            .map(|address| {
                address.parse::<Mailbox>().map_err(|_| {
                    format!("the recipient \"{address}\" is not a valid email address")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err("an email target needs at least one recipient (to=ADDRESS)".into());
        }
        let credentials = match (user, password) {
            (Some(user), Some(password)) => Some((user.to_string(), password.clone())),
            (Some(user), None) => Some((user.to_string(), Secret::default())),
            _ => None,
        };
        Ok(Email {
            security,
            host: host.to_string(),
            port,
            credentials,
            from,
            to,
            extra_roots: extra_roots.to_vec(),
            timeout: super::DEFAULT_TIMEOUT,
            transport: None,
        })
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.transport = None;
    }

    pub(crate) fn display(&self) -> String {
        let scheme = match self.security {
            EmailSecurity::Opportunistic => "smtp (STARTTLS if offered)",
            EmailSecurity::StartTls => "smtp (STARTTLS required)",
            EmailSecurity::ImplicitTls => "smtps (implicit TLS)",
        };
        let to: Vec<String> = self.to.iter().map(|m| m.email.to_string()).collect();
        format!("{scheme} {}:{} to {}", self.host, self.port, to.join(","))
    }

    fn transport(&mut self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, String> {
        if self.transport.is_none() {
            let mut parameters = TlsParameters::builder(self.host.clone());
            for der in &self.extra_roots {
                let certificate = Certificate::from_der(der.clone())
                    .map_err(|e| format!("cannot use the tls_ca_file certificate: {e}"))?;
                parameters = parameters.add_root_certificate(certificate);
            }
            let parameters = parameters
                .build()
                .map_err(|e| format!("cannot set up TLS for {}: {e}", self.host))?;
            let tls = match self.security {
                EmailSecurity::Opportunistic => Tls::Opportunistic(parameters),
                EmailSecurity::StartTls => Tls::Required(parameters),
                EmailSecurity::ImplicitTls => Tls::Wrapper(parameters),
            };
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
                .port(self.port)
                .tls(tls)
                .timeout(Some(self.timeout));
            if let Some((user, password)) = &self.credentials {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                ));
            }
            self.transport = Some(builder.build());
        }
        self.transport
            .as_ref()
            .ok_or_else(|| "the SMTP transport is not available".to_string())
    }

    pub(crate) async fn send(
        &mut self,
        ctx: &mut SendContext<'_>,
        events: &[Event],
    ) -> Result<Delivered, SendError> {
        let content = render(events);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(content.subject.clone());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(content.text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(content.html),
                    ),
            )
            .map_err(|e| ctx.permanent("client", format!("cannot build the mail: {e}")))?;
        let host = self.host.clone();
        let transport = self
            .transport()
            .map_err(|e| ctx.permanent("client", e))?
            .clone();
        // lettre bounds connect and each read, but a server that stops mid-transaction must
        // not hold the notifier forever either.
        let deadline = self.timeout.saturating_mul(3);
        let outcome = match tokio::time::timeout(deadline, transport.send(message)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.transport = None;
                return Err(ctx.transient(
                    "timeout",
                    format!(
                        "SMTP {host}: no complete answer within {}",
                        crate::util::format_duration(deadline)
                    ),
                ));
            }
        };
        match outcome {
            Ok(response) => {
                *ctx.sent += 1;
                let text: Vec<&str> = response.message().collect();
                Ok(Delivered {
                    messages: 1,
                    info: format!("{} {}", response.code(), text.join(" ")),
                    rate: None,
                })
            }
            Err(error) => {
                // A broken pooled connection must not poison later sends.
                if !(error.is_transient() || error.is_permanent()) {
                    self.transport = None;
                }
                Err(classify(ctx, &host, &error))
            }
        }
    }
}

/// Whether a permanent SMTP reply says this mail is too big: enhanced status X.3.4 "message too
/// big for system" (RFC 3463), or 552 naming the size (RFC 1870 SIZE). A 552 "mailbox full"
/// (X.2.2) is about the recipient, not the mail, and stays permanent.
fn too_big(error: &lettre::transport::smtp::Error) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    let code_552 = error.status().is_some_and(|code| code.to_string() == "552");
    text.contains("5.3.4")
        || (code_552
            && ["size", "too big", "too large"]
                .iter()
                .any(|w| text.contains(w)))
}

/// SMTP 4xx: transient; 5xx: permanent, except "message too big" which rejects this mail only;
/// a server that refuses the required TLS or AUTH: permanent (configuration); network,
/// timeouts and TLS handshakes: transient.
pub(crate) fn classify(
    ctx: &SendContext<'_>,
    host: &str,
    error: &lettre::transport::smtp::Error,
) -> SendError {
    let detail = format!("SMTP {host}: {error}");
    if error.is_permanent() && too_big(error) {
        ctx.rejected("too_large", detail)
    } else if error.is_transient() {
        ctx.transient("smtp_transient", detail)
    } else if error.is_permanent() {
        ctx.permanent("smtp_permanent", detail)
    } else if error.is_timeout() {
        ctx.transient("timeout", detail)
    } else if error.is_client() {
        ctx.permanent("client", detail)
    } else if error.is_response() {
        ctx.transient("server", detail)
    } else {
        ctx.transient("network", detail)
    }
}
