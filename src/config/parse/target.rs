//! `[[target]]`: its keys, what their values become, and the checks that need the whole target
//! (one URL source, keys that only some services take, one bearer token source). Must not know
//! other tables' keys nor send anything (the CA bundle is only checked, not used).

use super::document::{Entry, TableRef};
use super::keys::{key, Key};
use super::parser::{Declares, Parser};
use super::values::{name_problem, set};
use crate::config::files::{read_bounded, MAX_SECRET_FILE};
use crate::config::model::{CaBundle, EventFilter, Origin, TargetConfig, TargetUrl};
use crate::config::outcome::Declared;
use crate::config::target_url::parse_target_url;
use crate::event::{EventKind, Severity};
use crate::util::{did_you_mean, Secret};
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use toml_edit::{Item, Value};

/// Headers describing a request's framing and routing: never taken from `headers`.
const CLIENT_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "upgrade",
    "te",
    "trailer",
];
const URL_SOURCES: [&str; 3] = ["url", "url_file", "url_env"];

/// A target while its keys are read.
pub(super) struct TargetDraft<'d> {
    target: TargetConfig,
    name: Option<String>,
    url_sources: Vec<Entry<'d>>,
    bearer_sources: Vec<Entry<'d>>,
    /// Keys only `json://` and `jsons://` targets take.
    webhook_only: Vec<Entry<'d>>,
    /// Keys only `mailto://` and `mailtos://` targets take.
    email_only: Vec<Entry<'d>>,
}

pub(super) type TargetRead = for<'p, 'd> fn(&mut Parser<'p>, Entry<'d>, &mut TargetDraft<'d>);

#[rustfmt::skip]
pub(super) const TARGET_KEYS: &[Key<TargetRead>] = &[
    key("name", |p, e, d| d.name = p.declared_name(&e, Declares::Target)),
    key("url", |_, e, d| d.url_sources.push(e)),
    key("url_file", |_, e, d| d.url_sources.push(e)),
    key("url_env", |_, e, d| d.url_sources.push(e)),
    key("events", |p, e, d| set(&mut d.target.events, p.events(&e))),
    key("accounts", |p, e, d| d.target.accounts = p.account_filter(&e)),
    key("min_severity", min_severity),
    key("mention", |p, e, d| d.target.mention = p.non_empty_string(&e).map(str::to_string)),
    key("batch_window", |p, e, d| set(&mut d.target.batch_window, p.duration(&e))),
    key("max_age", |p, e, d| set(&mut d.target.max_age, p.positive_duration(&e))),
    key("batch_size", batch_size),
    key("bearer_token", bearer_token),
    key("bearer_token_file", bearer_token),
    key("headers", |p, e, d| { d.webhook_only.push(e); set(&mut d.target.headers, p.headers(&e)) }),
    key("tls_ca_file", |p, e, d| { d.email_only.push(e); d.target.tls_ca = p.ca_bundle(&e) }),
];

fn min_severity(p: &mut Parser, entry: Entry, d: &mut TargetDraft) {
    if let Some(text) = p.string(&entry) {
        match Severity::from_str(text) {
            Ok(severity) => d.target.min_severity = severity,
            Err(e) => p.error(entry.value_at, format!("min_severity: {e}")),
        }
    }
}

fn batch_size<'d>(p: &mut Parser, entry: Entry<'d>, d: &mut TargetDraft<'d>) {
    d.webhook_only.push(entry);
    if let Some(n) = p.integer(&entry) {
        match usize::try_from(n) {
            Ok(n) if n >= 1 => d.target.batch_size = n,
            _ => p.error(
                entry.value_at,
                "batch_size must be a whole number of at least 1".into(),
            ),
        }
    }
}

fn bearer_token<'d>(_: &mut Parser, entry: Entry<'d>, d: &mut TargetDraft<'d>) {
    d.webhook_only.push(entry);
    d.bearer_sources.push(entry);
}

impl TargetDraft<'_> {
    pub(super) fn new(p: &Parser, at: usize) -> Self {
        let mut target = TargetConfig::with_defaults("", TargetUrl::Console);
        target.origin = Origin {
            file: p.path.to_path_buf(),
            line: p.line_of(at),
        };
        TargetDraft {
            target,
            name: None,
            url_sources: Vec::new(),
            bearer_sources: Vec::new(),
            webhook_only: Vec::new(),
            email_only: Vec::new(),
        }
    }

    /// The target, once every key is read: its URL, the keys its service does not take, its
    /// bearer token. `None` without a valid name.
    pub(super) fn finish(self, p: &mut Parser, at: usize) -> Option<TargetConfig> {
        let TargetDraft {
            mut target,
            name,
            url_sources,
            bearer_sources,
            webhook_only,
            email_only,
        } = self;
        let url = p
            .exactly_one(&url_sources, URL_SOURCES, "[[target]]", at)
            .and_then(|source| {
                let text = p.secret(&source)?;
                match parse_target_url(&text) {
                    Ok(url) => Some(url),
                    Err(e) => {
                        let message = match source.key {
                            "url" => format!("invalid url: {e}"),
                            _ => format!("invalid URL in {}: {e}", p.secret_origin(&source)),
                        };
                        p.error(source.value_at, message);
                        None
                    }
                }
            });
        if let Some(url) = url {
            let is_webhook = matches!(url, TargetUrl::Webhook { .. });
            if !is_webhook {
                for entry in &webhook_only {
                    let message = format!(
                        "{} is only for json:// and jsons:// targets (this target is {})",
                        entry.key,
                        url.service()
                    );
                    p.error(entry.key_at, message);
                }
            }
            if !matches!(url, TargetUrl::Email { .. }) {
                for entry in &email_only {
                    let message = format!(
                        "{} is only for mailto:// and mailtos:// targets (this target is {})",
                        entry.key,
                        url.service()
                    );
                    p.error(entry.key_at, message);
                }
            }
            target.url = url;
        }
        match bearer_sources.as_slice() {
            [] => {}
            [source] => {
                let token = p.secret(source).filter(|token| {
                    // The token goes into an Authorization header: a line break in it would end
                    // the header early (and smuggle another one in).
                    let sendable = HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
                    if !sendable {
                        p.error(
                            source.value_at,
                            format!(
                                "{} holds characters that cannot be sent in an HTTP header (a line break or another control character)",
                                source.key
                            ),
                        );
                    }
                    sendable
                });
                if let Some(token) = token {
                    if matches!(
                        &target.url,
                        TargetUrl::Webhook {
                            basic_auth: Some(_),
                            ..
                        }
                    ) {
                        p.error(
                            source.key_at,
                            format!(
                                "{} and a USER:PASSWORD in the URL are both set: use one",
                                source.key
                            ),
                        );
                    }
                    target.bearer_token = Some(Secret::new(token));
                }
            }
            [first, rest @ ..] => {
                for extra in rest {
                    let message = format!(
                        "{} and {} are both set: use one of bearer_token, bearer_token_file",
                        first.key, extra.key
                    );
                    p.error(extra.key_at, message);
                }
            }
        }
        target.name = name?;
        Some(target)
    }
}

impl Parser<'_> {
    /// `tls_ca_file`: a PEM file of CA certificates, read and checked now so that a missing,
    /// unreadable or malformed file is reported at its line instead of failing every send.
    fn ca_bundle(&mut self, entry: &Entry) -> Option<CaBundle> {
        let path = self.path_value(entry)?;
        let problem = match read_bounded(&path, MAX_SECRET_FILE) {
            Ok(pem) => match ca_certificates(&pem) {
                Ok(certificates) => return Some(CaBundle { path, certificates }),
                Err(reason) => format!("{} \"{}\" {reason}", entry.key, path.display()),
            },
            Err(e) => format!("cannot read {} \"{}\": {e}", entry.key, path.display()),
        };
        self.error(entry.value_at, problem);
        None
    }

    fn events(&mut self, entry: &Entry) -> Option<EventFilter> {
        let names = self.strings(entry)?;
        let mut kinds = BTreeSet::new();
        let mut ok = true;
        for (at, name) in names {
            match EventKind::expand_filter_name(name) {
                Some(expanded) => kinds.extend(expanded),
                None => {
                    ok = false;
                    let message = match did_you_mean(name, EventKind::filter_names()) {
                        Some(hint) => format!("unknown event \"{name}\" (did you mean \"{hint}\"?)"),
                        None => format!(
                            "unknown event \"{name}\" (expected an event name such as \"rental_start\", or all, error, recovery, system, startup)"
                        ),
                    };
                    self.error(at, message);
                }
            }
        }
        ok.then_some(EventFilter(kinds))
    }

    fn account_filter(&mut self, entry: &Entry) -> Option<BTreeSet<String>> {
        let names = self.strings(entry)?;
        let mut set = BTreeSet::new();
        let mut ok = true;
        for (at, name) in names {
            if let Some(problem) = name_problem(name) {
                ok = false;
                self.error(at, format!("accounts: {problem}"));
                continue;
            }
            let (line, col) = self.lines.position(at);
            self.account_refs.push(Declared {
                name: name.to_string(),
                line,
                col,
            });
            set.insert(name.to_string());
        }
        ok.then_some(set)
    }

    fn headers(&mut self, entry: &Entry) -> Option<BTreeMap<String, String>> {
        let table = match entry.item {
            Item::Table(t) => TableRef::Table(t),
            Item::Value(Value::InlineTable(t)) => TableRef::Inline(t),
            _ => {
                self.wrong_type(entry, "a table of header names to strings");
                return None;
            }
        };
        let mut headers = BTreeMap::new();
        let mut ok = true;
        for header in table.entries(entry.key_at) {
            let Some(value) = header.item.as_str() else {
                ok = false;
                let message = format!(
                    "header \"{}\" must be a string, found {}",
                    header.key,
                    header.item.type_name()
                );
                self.error(header.value_at, message);
                continue;
            };
            if HeaderName::from_bytes(header.key.as_bytes()).is_err() {
                ok = false;
                self.error(
                    header.key_at,
                    format!("\"{}\" is not a valid HTTP header name", header.key),
                );
            } else if CLIENT_HEADERS.contains(&header.key.to_ascii_lowercase().as_str()) {
                // A second Content-Length or Transfer-Encoding would make the request's framing
                // ambiguous (request smuggling through a proxy); the HTTP client sets these.
                ok = false;
                self.error(
                    header.key_at,
                    format!(
                        "header \"{}\" is set by the HTTP client from the message itself; remove it",
                        header.key
                    ),
                );
            } else if HeaderValue::from_str(value).is_err() {
                // The value may be a credential: name the header, not the value.
                ok = false;
                self.error(
                    header.value_at,
                    format!(
                        "header \"{}\" has a value that is not a valid HTTP header value",
                        header.key
                    ),
                );
            } else {
                headers.insert(header.key.to_string(), value.to_string());
            }
        }
        ok.then_some(headers)
    }
}

/// The DER certificates of a PEM CA bundle, each checked the way the TLS client will use it
/// (as a trust anchor). The error completes "tls_ca_file \"PATH\" ...".
fn ca_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
    use rustls_pki_types::pem::{Error as PemError, PemObject};
    use rustls_pki_types::CertificateDer;

    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let der = item.map_err(|e| match e {
            PemError::MissingSectionEnd { .. } => {
                "is not valid PEM: a section has no END line".to_string()
            }
            PemError::IllegalSectionStart { .. } => {
                "is not valid PEM: a BEGIN line is malformed".to_string()
            }
            PemError::Base64Decode(_) => {
                "is not valid PEM: a section is not valid base64".to_string()
            }
            other => format!("is not valid PEM: {other}"),
        })?;
        certificates.push(der.to_vec());
    }
    if certificates.is_empty() {
        return Err(
            "holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)".into(),
        );
    }
    let count = certificates.len();
    for (i, der) in certificates.iter().enumerate() {
        let usable = Certificate::from_der(der.clone()).and_then(|certificate| {
            TlsParameters::builder("localhost".into())
                .certificate_store(CertificateStore::None)
                .add_root_certificate(certificate)
                .build_rustls()
        });
        if usable.is_err() {
            return Err(format!(
                "holds a certificate that is not a valid X.509 certificate (number {} of {count})",
                i + 1
            ));
        }
    }
    Ok(certificates)
}
