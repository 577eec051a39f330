//! Apprise URLs (as vast-monitor's `apprise.targets` hold them) -> vast-supervisor target URLs
//! (SPEC §4, `config::target_url`). Owns only the rewriting of Apprise's dialect: a bot name,
//! cosmetic options, several chats or topics in one URL, a mail provider's domain instead of its
//! SMTP server, `+Header=` options of `json://`. The result is checked with our own parser, so a
//! URL converted here is one the daemon accepts.
//!
//! URLs carry secrets: no message built here quotes a URL, a value or a token; they name a scheme
//! or an option name at most (and only when it looks like one).

use crate::config::parse_target_url;
use crate::util::Secret;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;

/// What a URL's user, password or query value may hold unencoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Recipient lists keep their `@`, `+` and `,` readable.
const ADDRESSES: &AsciiSet = &COMPONENT.remove(b'@').remove(b'+').remove(b',');

/// One Apprise URL, converted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Converted {
    /// One of our target URLs per destination (Apprise lets one URL name several chats, topics
    /// or webhooks' copies; we have one destination per target).
    pub urls: Vec<Secret>,
    /// `json://` headers (`+Name=value`), except `Authorization: Bearer`, which is `bearer`.
    pub headers: BTreeMap<String, String>,
    pub bearer: Option<Secret>,
    /// What changed on the way, one sentence each, without secrets.
    pub notes: Vec<String>,
}

/// Query options, names percent-decoded (matched without regard to case), values as written.
struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    fn parse(query: Option<&str>) -> Options {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (name, value) = p.split_once('=').unwrap_or((p, ""));
                (decode(name), value.to_string())
            })
            .collect();
        Options { pairs }
    }

    fn take(&mut self, name: &str) -> Vec<String> {
        let (taken, kept) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(n, _)| n.eq_ignore_ascii_case(name));
        self.pairs = kept;
        taken.into_iter().map(|(_, v)| decode(&v)).collect()
    }

    fn take_last(&mut self, name: &str) -> Option<String> {
        self.take(name).pop()
    }

    /// Options nobody took: reported as dropped.
    fn dropped(self, notes: &mut Vec<String>, why: &str) {
        if self.pairs.is_empty() {
            return;
        }
        let names: Vec<String> = self
            .pairs
            .iter()
            .map(|(n, _)| {
                // A name may be a pasted token: show only names that look like option names.
                if n.len() <= 16 && n.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    n.clone()
                } else {
                    "(unnamed)".into()
                }
            })
            .collect();
        notes.push(format!(
            "Apprise options dropped: {} ({why})",
            names.join(", ")
        ));
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The parts of `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, raw.
struct Parts<'a> {
    scheme: String,
    userinfo: Option<&'a str>,
    hostport: &'a str,
    /// Path segments, raw, empty ones dropped.
    path: Vec<&'a str>,
    fragment: Option<&'a str>,
    options: Options,
}

fn split(url: &str) -> Result<Parts<'_>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("not a URL: expected SCHEME://...")?;
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Ok(Parts {
        scheme: scheme.to_ascii_lowercase(),
        userinfo,
        hostport,
        path: path.split('/').filter(|s| !s.is_empty()).collect(),
        fragment,
        options: Options::parse(query),
    })
}

/// The scheme, if it is safe to repeat in a message (schemes are service names, but the text
/// before "://" may be anything pasted).
fn scheme_label(url: &str) -> String {
    match url.split_once("://") {
        Some((s, _))
            if !s.is_empty()
                && s.len() <= 12
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            format!("\"{}\"", s.to_ascii_lowercase())
        }
        _ => "this".into(),
    }
}

/// Converts one Apprise URL. The error says why it cannot be converted, without quoting it.
pub fn convert(url: &str) -> Result<Converted, String> {
    let url = url.trim();
    let parts = split(url)?;
    let mut out = Converted::default();
    let urls: Vec<String> = match parts.scheme.as_str() {
        "discord" => discord(parts, &mut out.notes)?,
        "https" | "http" => native_https(url, parts, &mut out.notes)?,
        "slack" => slack(parts, &mut out.notes)?,
        "tgram" => telegram(parts, &mut out.notes)?,
        "ntfy" | "ntfys" => ntfy(parts, &mut out.notes)?,
        "pover" => pushover(parts, &mut out.notes)?,
        "gotify" | "gotifys" => gotify(parts, &mut out.notes)?,
        "mailto" | "mailtos" => email(parts, &mut out.notes)?,
        "json" | "jsons" => webhook(parts, &mut out)?,
        "form" | "forms" | "xml" | "xmls" => {
            return Err(format!(
            "{} webhooks (form or XML bodies) have no equivalent: json:// posts each event as JSON",
            scheme_label(url)
        ))
        }
        _ => {
            return Err(format!(
                "the Apprise service {} has no vast-supervisor target (supported: discord, slack, \
                 tgram, ntfy(s), pover, gotify(s), mailto(s), json(s))",
                scheme_label(url)
            ))
        }
    };
    for converted in &urls {
        parse_target_url(converted)?;
    }
    out.urls = urls.into_iter().map(Secret::new).collect();
    Ok(out)
}

fn no_fragment(parts: &Parts, what: &str) -> Result<(), String> {
    match parts.fragment {
        Some(_) => Err(format!(
            "{what} URL has a \"#\" part vast-supervisor cannot use"
        )),
        None => Ok(()),
    }
}

fn discord(mut parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    no_fragment(&parts, "discord")?;
    if parts.userinfo.is_some() {
        notes.push("the bot name before \"@\" is dropped: the webhook's own name is used".into());
    }
    if !parts.options.take("thread").is_empty() {
        notes.push("thread= is dropped: messages go to the webhook's channel".into());
    }
    let url = match parts.path.as_slice() {
        [token] => format!("discord://{}/{token}", parts.hostport),
        _ => return Err("discord URL must be discord://WEBHOOK_ID/WEBHOOK_TOKEN".into()),
    };
    parts.options.dropped(
        notes,
        "layout and avatar follow vast-supervisor's Discord format",
    );
    Ok(vec![url])
}

/// `https://discord.com/api/webhooks/...` and `https://hooks.slack.com/services/...`, which
/// Apprise and vast-supervisor both take as they are.
fn native_https(url: &str, parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    let host = parts.hostport.to_ascii_lowercase();
    let base = url.split(['?', '#']).next().unwrap_or(url);
    let native = host == "hooks.slack.com"
        || host.ends_with("discord.com")
        || host.ends_with("discordapp.com");
    if !native || parts.scheme != "https" {
        return Err(format!(
            "{} URLs are taken only as Discord or Slack webhook URLs (https://discord.com/api/webhooks/..., \
             https://hooks.slack.com/services/...)",
            scheme_label(url)
        ));
    }
    parts.options.dropped(notes, "not supported");
    Ok(vec![base.to_string()])
}

fn slack(mut parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    if parts.userinfo.is_some() {
        notes.push("the bot name before \"@\" is dropped: the webhook's own name is used".into());
    }
    let mut tokens: Vec<&str> = vec![parts.hostport];
    let mut channels = 0;
    for segment in &parts.path {
        if segment.starts_with(['#', '@', '+']) || segment.starts_with("%23") {
            channels += 1;
        } else {
            tokens.push(segment);
        }
    }
    channels += usize::from(parts.fragment.is_some());
    channels += parts.options.take("to").len();
    if tokens.first().is_some_and(|t| t.starts_with("xox")) {
        return Err(
            "Slack bot tokens (xoxb-/xoxp-) are not supported: create an incoming webhook and use \
             slack://A/B/C"
                .into(),
        );
    }
    let [a, b, c] = tokens.as_slice() else {
        return Err(
            "slack URL must be slack://TOKEN_A/TOKEN_B/TOKEN_C (an incoming webhook)".into(),
        );
    };
    if channels > 0 {
        notes.push(
            "channels in the URL are dropped: an incoming webhook posts to its own channel".into(),
        );
    }
    parts
        .options
        .dropped(notes, "layout follows vast-supervisor's Slack format");
    Ok(vec![format!("slack://{a}/{b}/{c}")])
}

fn telegram(mut parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    no_fragment(&parts, "tgram")?;
    if parts.userinfo.is_some() {
        return Err("tgram URL must be tgram://BOT_TOKEN/CHAT_ID".into());
    }
    let token = parts.hostport;
    let mut chats: Vec<String> = parts.path.iter().map(|c| c.to_string()).collect();
    for to in parts.options.take("to") {
        chats.extend(to.split([',', ' ']).filter(|c| !c.is_empty()).map(encode));
    }
    if chats.is_empty() {
        return Err(
            "the chat id is missing (Apprise looks it up from the bot's updates): use \
             tgram://BOT_TOKEN/CHAT_ID"
                .into(),
        );
    }
    for topic in ["topic", "thread"] {
        if !parts.options.take(topic).is_empty() {
            notes.push(format!(
                "{topic}= is dropped: messages go to the chat itself"
            ));
        }
    }
    parts
        .options
        .dropped(notes, "layout follows vast-supervisor's Telegram format");
    if chats.len() > 1 {
        notes.push(format!("{} chats: one target per chat", chats.len()));
    }
    Ok(chats
        .iter()
        .map(|chat| format!("tgram://{token}/{chat}"))
        .collect())
}

fn ntfy(mut parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    no_fragment(&parts, "ntfy")?;
    let token = parts.options.take_last("token");
    let userinfo = match (parts.userinfo, token) {
        (_, Some(token)) => Some(encode(&token)),
        (Some(u), None) => Some(u.to_string()),
        (None, None) => None,
    };
    let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let (scheme, host, topics): (&str, String, Vec<String>) = if parts.path.is_empty() {
        // ntfy://TOPIC is a topic on the public ntfy.sh server, which Apprise reaches over HTTPS.
        notes.push("ntfy://TOPIC means the public server: ntfys://ntfy.sh/TOPIC".into());
        ("ntfys", "ntfy.sh".into(), vec![parts.hostport.to_string()])
    } else {
        (
            parts.scheme.as_str(),
            parts.hostport.to_string(),
            parts.path.iter().map(|s| s.to_string()).collect(),
        )
    };
    for setting in ["mode", "auth"] {
        parts.options.take(setting);
    }
    parts
        .options
        .dropped(notes, "priority and tags follow each event's severity");
    if topics.len() > 1 {
        notes.push(format!("{} topics: one target per topic", topics.len()));
    }
    Ok(topics
        .iter()
        .map(|topic| format!("{scheme}://{auth}{host}/{topic}"))
        .collect())
}

fn pushover(mut parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    no_fragment(&parts, "pover")?;
    let Some(user) = parts.userinfo else {
        return Err("pover URL must be pover://USER_KEY@APP_TOKEN".into());
    };
    let devices = parts.path.len() + parts.options.take("to").len();
    if devices > 0 {
        notes.push("devices are dropped: messages go to every device of the user".into());
    }
    parts
        .options
        .dropped(notes, "priority and sound follow each event's severity");
    Ok(vec![format!("pover://{user}@{}", parts.hostport)])
}

fn gotify(parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    no_fragment(&parts, "gotify")?;
    if parts.userinfo.is_some() {
        return Err("gotify URL must be gotify://HOST[:PORT][/PATH]/APP_TOKEN".into());
    }
    let path = parts.path.join("/");
    parts
        .options
        .dropped(notes, "priority follows each event's severity");
    Ok(vec![format!(
        "{}://{}/{path}",
        parts.scheme, parts.hostport
    )])
}

/// SMTP settings Apprise picks by itself for some mail providers (`mailto://user:pass@gmail.com`).
const PROVIDERS: &[(&[&str], &str, u16)] = &[
    (&["gmail.com", "googlemail.com"], "smtp.gmail.com", 587),
    (
        &["outlook.com", "hotmail.com", "live.com"],
        "smtp-mail.outlook.com",
        587,
    ),
    (&["yahoo.com", "ymail.com"], "smtp.mail.yahoo.com", 465),
    (&["fastmail.com"], "smtp.fastmail.com", 465),
    (&["icloud.com", "me.com"], "smtp.mail.me.com", 587),
    (&["zoho.com"], "smtp.zoho.com", 465),
];

fn email(mut parts: Parts, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    no_fragment(&parts, "email")?;
    let (user, password) = match parts.userinfo {
        Some(info) => match info.split_once(':') {
            Some((u, p)) => (Some(decode(u)), Some(decode(p))),
            None => (Some(decode(info)), None),
        },
        None => (None, None),
    };
    let user = parts.options.take_last("user").or(user);
    let password = parts.options.take_last("pass").or(password);
    let (domain, port) = match parts.hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            Some(
                p.parse::<u16>()
                    .map_err(|_| "email URL has an invalid port")?,
            ),
        ),
        None => (parts.hostport.to_string(), None),
    };
    let mode = parts
        .options
        .take_last("mode")
        .map(|m| m.to_ascii_lowercase());
    let smtp = parts.options.take_last("smtp");
    let provider = PROVIDERS
        .iter()
        .find(|(domains, _, _)| domains.contains(&domain.to_ascii_lowercase().as_str()));
    let (host, secure, default_port) = match (&smtp, provider) {
        (Some(server), _) => (server.clone(), parts.scheme == "mailtos", None),
        (None, Some((_, server, port))) => {
            notes.push(format!(
                "the SMTP server of {domain} is {server}:{port}, as Apprise picks it"
            ));
            (server.to_string(), true, Some(*port))
        }
        (None, None) => (domain.clone(), parts.scheme == "mailtos", None),
    };
    let (secure, port) = match mode.as_deref() {
        None => (secure, port.or(default_port)),
        Some("ssl") => match port.unwrap_or(465) {
            465 => (true, Some(465)),
            _ => {
                return Err(
                    "mode=ssl (TLS from the first byte) is supported on port 465 only".into(),
                )
            }
        },
        Some("starttls") => (true, port.or(default_port)),
        Some("insecure") => (false, port),
        Some(_) => return Err("email URL: mode= must be ssl, starttls or insecure".into()),
    };
    let from = parts
        .options
        .take_last("from")
        .or_else(|| user.as_ref().filter(|u| u.contains('@')).cloned())
        .or_else(|| user.as_ref().map(|u| format!("{u}@{domain}")));
    let mut to: Vec<String> = parts
        .path
        .iter()
        .map(|s| decode(s))
        .filter(|s| s.contains('@'))
        .collect();
    for list in parts.options.take("to") {
        to.extend(
            list.split([',', ' '])
                .filter(|a| !a.is_empty())
                .map(str::to_string),
        );
    }
    let mut copies = 0;
    for field in ["cc", "bcc"] {
        for list in parts.options.take(field) {
            for address in list.split([',', ' ']).filter(|a| !a.is_empty()) {
                copies += 1;
                to.push(address.to_string());
            }
        }
    }
    if copies > 0 {
        notes.push("cc and bcc recipients become direct recipients".into());
    }
    if to.is_empty() {
        // Apprise mails the sender when no recipient is given.
        to.extend(from.clone());
    }
    parts
        .options
        .dropped(notes, "not supported by vast-supervisor's email target");
    let scheme = if secure { "mailtos" } else { "mailto" };
    let auth = match (&user, &password) {
        (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
        (Some(u), None) => format!("{}@", encode(u)),
        _ => String::new(),
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let mut query = vec![format!(
        "to={}",
        utf8_percent_encode(&to.join(","), ADDRESSES)
    )];
    if let Some(from) = from {
        query.push(format!("from={}", utf8_percent_encode(&from, ADDRESSES)));
    }
    Ok(vec![format!(
        "{scheme}://{auth}{host}{port}?{}",
        query.join("&")
    )])
}

fn webhook(mut parts: Parts, out: &mut Converted) -> Result<Vec<String>, String> {
    no_fragment(&parts, "json")?;
    let mut other = 0;
    for (name, value) in std::mem::take(&mut parts.options.pairs) {
        let value = decode(&value);
        if let Some(header) = name.strip_prefix('+') {
            if header.eq_ignore_ascii_case("authorization") {
                if let Some(token) = value.strip_prefix("Bearer ") {
                    out.bearer = Some(Secret::new(token.trim()));
                    continue;
                }
            }
            let valid = reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(&value).is_ok();
            if valid {
                out.headers.insert(header.to_string(), value);
            } else {
                out.notes
                    .push("a header that is not a valid HTTP header is dropped".into());
            }
        } else if name.eq_ignore_ascii_case("method") && !value.eq_ignore_ascii_case("post") {
            out.notes
                .push("method= is dropped: events are always POSTed".into());
        } else if !name.eq_ignore_ascii_case("method") {
            other += 1;
        }
    }
    if other > 0 {
        out.notes.push(format!(
            "{other} Apprise payload option(s) dropped (-name, :name, ...)"
        ));
    }
    out.notes.push(
        "the body is vast-supervisor's event JSON (id, kind, title, text, data...), not Apprise's \
         {title, message, type}"
            .into(),
    );
    let auth = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let path = parts.path.join("/");
    Ok(vec![format!(
        "{}://{auth}{}/{path}",
        parts.scheme, parts.hostport
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(input: &str) -> Vec<String> {
        convert(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .urls
            .iter()
            .map(|s| s.expose().to_string())
            .collect()
    }

    #[test]
    fn every_supported_scheme_converts_to_a_url_the_daemon_accepts() {
        for (apprise, ours) in [
            ("discord://1234/tok-EN_x", "discord://1234/tok-EN_x"),
            ("discord://MyBot@1234/tok?avatar=no&tts=yes", "discord://1234/tok"),
            (
                "https://discord.com/api/webhooks/1234/tok?wait=true",
                "https://discord.com/api/webhooks/1234/tok",
            ),
            (
                "https://hooks.slack.com/services/T1/B2/C3",
                "https://hooks.slack.com/services/T1/B2/C3",
            ),
            ("slack://T1/B2/C3", "slack://T1/B2/C3"),
            ("slack://bot@T1/B2/C3/#general?footer=no", "slack://T1/B2/C3"),
            ("tgram://123456:AbC-d/-1001", "tgram://123456:AbC-d/-1001"),
            ("ntfy://alerts", "ntfys://ntfy.sh/alerts"),
            ("ntfys://ntfy.example.org/alerts?priority=high", "ntfys://ntfy.example.org/alerts"),
            ("ntfy://user:pw@host:8080/alerts", "ntfy://user:pw@host:8080/alerts"),
            ("ntfys://host/alerts?token=tk_abc", "ntfys://tk_abc@host/alerts"),
            ("pover://USER1@TOKEN2", "pover://USER1@TOKEN2"),
            ("pover://USER1@TOKEN2/phone?sound=magic", "pover://USER1@TOKEN2"),
            ("gotify://host:8080/Atoken", "gotify://host:8080/Atoken"),
            ("gotifys://host/sub/path/Atoken?priority=8", "gotifys://host/sub/path/Atoken"),
            (
                "mailtos://SMTP_USER:SMTP_PASSWORD@smtp.example.com:587/?from=monitor@example.com&to=alerts@example.com",
                "mailtos://SMTP_USER:SMTP_PASSWORD@smtp.example.com:587?to=alerts@example.com&from=monitor@example.com",
            ),
            (
                "mailto://me:app%20pw@gmail.com",
                "mailtos://me:app%20pw@smtp.gmail.com:587?to=me@gmail.com&from=me@gmail.com",
            ),
            (
                "mailtos://me:pw@example.com?smtp=mail.example.com&mode=ssl&cc=b@example.com&to=a@example.com",
                "mailtos://me:pw@mail.example.com:465?to=a@example.com,b@example.com&from=me@example.com",
            ),
            ("json://127.0.0.1:18765/notify/discord", "json://127.0.0.1:18765/notify/discord"),
            ("jsons://u:p@hooks.example.org/in?-title=x&:extra=y", "jsons://u:p@hooks.example.org/in"),
        ] {
            assert_eq!(urls(apprise), [ours], "{apprise}");
        }
    }

    #[test]
    fn several_chats_or_topics_become_several_targets() {
        assert_eq!(
            urls("tgram://123456:AbC/-1001/@news"),
            ["tgram://123456:AbC/-1001", "tgram://123456:AbC/@news"]
        );
        assert_eq!(urls("ntfy://host/a/b"), ["ntfy://host/a", "ntfy://host/b"]);
    }

    #[test]
    fn json_headers_are_kept_and_a_bearer_token_stays_a_secret() {
        let c = convert("json://h/p?+X-Source=vast&+Authorization=Bearer%20s3cr3t").unwrap();
        assert_eq!(c.headers.get("X-Source").map(String::as_str), Some("vast"));
        assert!(!c.headers.contains_key("Authorization"));
        assert_eq!(c.bearer.as_ref().map(Secret::expose), Some("s3cr3t"));
    }

    #[test]
    fn what_cannot_be_converted_is_explained_without_quoting_the_url() {
        for (apprise, reason) in [
            (
                "matrix://user:SECRETPW@matrix.org/#room",
                "has no vast-supervisor target",
            ),
            ("form://host/SECRETPATH", "form or XML bodies"),
            ("slack://xoxb-SECRET/#general", "bot tokens"),
            ("tgram://123456:SECRET", "chat id is missing"),
            ("discord://SECRET", "discord URL must be"),
            ("discord://NOTANUMBER/SECRET", "webhook id must be a number"),
            (
                "mailtos://u:SECRET@host:587?mode=ssl&to=a@b.c",
                "port 465 only",
            ),
            (
                "https://example.com/SECRET",
                "taken only as Discord or Slack",
            ),
            ("no url at all SECRET", "not a URL"),
        ] {
            let e = convert(apprise).expect_err(apprise);
            assert!(e.contains(reason), "{apprise}: {e}");
            assert!(!e.contains("SECRET"), "{apprise}: {e}");
        }
    }

    #[test]
    fn notes_name_what_changed_without_values() {
        let c = convert("discord://Bot@1234/SECRETTOKEN?avatar=SECRETVALUE&thread=99").unwrap();
        let notes = c.notes.join("\n");
        assert!(notes.contains("bot name"), "{notes}");
        assert!(notes.contains("thread="), "{notes}");
        assert!(notes.contains("avatar"), "{notes}");
        assert!(!notes.contains("SECRET"), "{notes}");
    }
}
