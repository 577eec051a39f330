//! Target URLs in Apprise's syntax (SPEC §4) -> [`TargetUrl`], and their redacted form for status
//! and log lines. Owns only the string syntax; sending lives in `notify`.
//!
//! Target URLs carry secrets (webhook tokens, passwords), so no error message built here ever
//! quotes the input: errors show the expected shape and a reason, and echo at most a scheme or a
//! parameter name.

use super::model::{EmailSecurity, TargetUrl};
use crate::util::{did_you_mean, Secret};
use percent_encoding::percent_decode_str;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;
use url::Url;

/// Every scheme `parse_target_url` accepts, for "did you mean" hints.
const SCHEMES: &[&str] = &[
    "discord", "slack", "tgram", "ntfy", "ntfys", "pover", "gotify", "gotifys", "mailto",
    "mailtos", "json", "jsons", "file", "console", "https",
];

const DISCORD_HOSTS: &[&str] = &[
    "discord.com",
    "discordapp.com",
    "www.discord.com",
    "ptb.discord.com",
    "canary.discord.com",
];

/// Parses a target URL. The error explains the expected shape and never contains the input.
pub fn parse_target_url(input: &str) -> Result<TargetUrl, String> {
    let input = input.trim();
    let (scheme, rest) = split_scheme(input)?;
    if rest.contains('#') {
        return Err(format!(
            "{scheme} URL must not contain \"#\" (percent-encode it as %23)"
        ));
    }
    let (body, query) = match rest.split_once('?') {
        Some((body, query)) => (body, Some(query)),
        None => (rest, None),
    };
    let mut params = Params::parse(query, &scheme)?;
    let accepted: &[&str] = match scheme.as_str() {
        "mailto" | "mailtos" => &["to", "from"],
        "file" | "console" => &[],
        _ => &["endpoint"],
    };
    params.reject_unknown(&scheme, accepted)?;
    match scheme.as_str() {
        "discord" => parse_discord(body, &mut params),
        "https" => parse_native_https(body, &mut params),
        "slack" => parse_slack(body, &mut params),
        "tgram" => parse_telegram(body, &mut params),
        "ntfy" | "ntfys" => parse_ntfy(&scheme, body, &mut params),
        "pover" => parse_pushover(body, &mut params),
        "gotify" | "gotifys" => parse_gotify(&scheme, body, &mut params),
        "mailto" | "mailtos" => parse_email(&scheme, body, &mut params),
        "json" | "jsons" => parse_webhook(&scheme, body, &mut params),
        "file" => parse_file_url(body),
        "console" => parse_console(body),
        "http" => Err(
            "http:// URLs are not target URLs: use https://discord.com/api/webhooks/... for Discord \
             or json://HOST/PATH for a generic webhook"
                .into(),
        ),
        other => Err(unknown_scheme(other)),
    }
}

/// A target URL with its secret parts replaced by `***`, safe for logs and `status`. Unparseable
/// input keeps only its scheme, and only when that is a known one.
pub fn redact_url(input: &str) -> String {
    match parse_target_url(input) {
        Ok(url) => url.redacted(),
        Err(_) => match split_scheme(input.trim()) {
            Ok((scheme, _)) if SCHEMES.contains(&scheme.as_str()) => format!("{scheme}://***"),
            _ => "***".into(),
        },
    }
}

impl TargetUrl {
    /// This URL with every secret part replaced by `***`: scheme, host and port stay readable.
    pub fn redacted(&self) -> String {
        let (base, endpoint) = match self {
            TargetUrl::Discord {
                webhook_id,
                endpoint,
                ..
            } => (format!("discord://{webhook_id}/***"), endpoint),
            TargetUrl::Slack { endpoint, .. } => ("slack://***/***/***".to_string(), endpoint),
            TargetUrl::Telegram {
                chat_id, endpoint, ..
            } => (format!("tgram://***/{chat_id}"), endpoint),
            TargetUrl::Ntfy {
                tls,
                host,
                port,
                auth,
                endpoint,
                ..
            } => {
                let scheme = if *tls { "ntfys" } else { "ntfy" };
                let auth = if auth.is_some() { "***@" } else { "" };
                // Anyone who knows an ntfy topic can read it, so the topic is a secret too.
                (
                    format!("{scheme}://{auth}{host}{}/***", port_suffix(*port)),
                    endpoint,
                )
            }
            TargetUrl::Pushover { endpoint, .. } => ("pover://***@***".to_string(), endpoint),
            TargetUrl::Gotify {
                tls,
                host,
                port,
                path,
                endpoint,
                ..
            } => {
                let scheme = if *tls { "gotifys" } else { "gotify" };
                (
                    format!("{scheme}://{host}{}{path}/***", port_suffix(*port)),
                    endpoint,
                )
            }
            TargetUrl::Email {
                security,
                host,
                port,
                user,
                ..
            } => {
                let scheme = match security {
                    EmailSecurity::Opportunistic => "mailto",
                    EmailSecurity::StartTls | EmailSecurity::ImplicitTls => "mailtos",
                };
                let auth = if user.is_some() { "***@" } else { "" };
                return format!("{scheme}://{auth}{host}:{port}");
            }
            TargetUrl::Webhook {
                tls,
                host,
                port,
                path,
                basic_auth,
                endpoint,
            } => {
                let scheme = if *tls { "jsons" } else { "json" };
                let auth = if basic_auth.is_some() { "***@" } else { "" };
                // Webhook paths often embed a secret id (Home Assistant, Zapier, ...).
                let path = if path == "/" { "/" } else { "/***" };
                (
                    format!("{scheme}://{auth}{host}{}{path}", port_suffix(*port)),
                    endpoint,
                )
            }
            TargetUrl::File { path } => return format!("file://{}", path.display()),
            TargetUrl::Console => return "console://".into(),
        };
        match endpoint {
            Some(endpoint) => format!(
                "{base}?endpoint={}",
                endpoint.origin().ascii_serialization()
            ),
            None => base,
        }
    }
}

fn port_suffix(port: Option<u16>) -> String {
    port.map(|p| format!(":{p}")).unwrap_or_default()
}

/// Splits "scheme://rest", lower-casing the scheme.
fn split_scheme(input: &str) -> Result<(String, &str), String> {
    let not_a_url = || {
        "not a target URL: expected SCHEME://..., e.g. discord://WEBHOOK_ID/WEBHOOK_TOKEN"
            .to_string()
    };
    let (scheme, rest) = input.split_once("://").ok_or_else(not_a_url)?;
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return Err(not_a_url());
    }
    Ok((scheme.to_ascii_lowercase(), rest))
}

fn unknown_scheme(scheme: &str) -> String {
    // The "scheme" may be pasted junk or a token: name it only when it is close to a real one.
    match did_you_mean(scheme, SCHEMES.iter().copied()) {
        Some(hint) => format!("unknown URL scheme \"{scheme}\" (did you mean \"{hint}\"?)"),
        None => "unknown URL scheme (supported: discord, slack, tgram, ntfy(s), pover, gotify(s), \
                 mailto(s), json(s), file, console)"
            .into(),
    }
}

fn shape(scheme: &str) -> String {
    let tail = match scheme {
        "discord" => "WEBHOOK_ID/WEBHOOK_TOKEN",
        "https" => "discord.com/api/webhooks/WEBHOOK_ID/WEBHOOK_TOKEN",
        "slack" => "TOKEN_A/TOKEN_B/TOKEN_C",
        "tgram" => "BOT_TOKEN/CHAT_ID",
        "ntfy" | "ntfys" => "[USER:PASSWORD@ or TOKEN@]HOST[:PORT]/TOPIC",
        "pover" => "USER_KEY@APP_TOKEN",
        "gotify" | "gotifys" => "HOST[:PORT][/PATH]/APP_TOKEN",
        "mailto" | "mailtos" => "USER:PASSWORD@HOST[:PORT]?to=ADDRESS[,ADDRESS][&from=ADDRESS]",
        "json" | "jsons" => "[USER:PASSWORD@]HOST[:PORT]/PATH",
        "file" => "/ABSOLUTE/PATH.jsonl",
        _ => "",
    };
    format!("{scheme}://{tail}")
}

/// "discord URL must look like discord://WEBHOOK_ID/WEBHOOK_TOKEN (the token is missing)".
fn malformed(scheme: &str, reason: &str) -> String {
    let service = match scheme {
        "https" => "discord",
        "tgram" => "telegram",
        "pover" => "pushover",
        "ntfys" => "ntfy",
        "gotifys" => "gotify",
        "mailto" | "mailtos" => "email",
        "json" | "jsons" => "webhook",
        other => other,
    };
    format!("{service} URL must look like {} ({reason})", shape(scheme))
}

/// Query parameters, percent-decoded. `+` stays a plus: addresses like `me+alerts@x` are common.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn parse(query: Option<&str>, scheme: &str) -> Result<Params, String> {
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name)
                .ok_or_else(|| format!("{scheme} URL has a parameter that is not valid UTF-8"))?;
            let value = decode(value).ok_or_else(|| {
                format!("{scheme} URL has a parameter value that is not valid UTF-8")
            })?;
            pairs.push((name, value));
        }
        Ok(Params { pairs })
    }

    fn reject_unknown(&self, scheme: &str, accepted: &[&str]) -> Result<(), String> {
        let Some((name, _)) = self
            .pairs
            .iter()
            .find(|(n, _)| !accepted.contains(&n.as_str()))
        else {
            return Ok(());
        };
        // A parameter "name" may be a pasted token: echo it only when it is close to an
        // accepted name or short and plain, as option names are ("avatar", "priority").
        let hint = did_you_mean(name, accepted.iter().copied());
        let echo = hint.is_some()
            || (name.len() <= 10 && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        let what = if echo {
            format!("unknown parameter \"{name}\"")
        } else {
            "an unknown parameter".to_string()
        };
        let hint = match hint {
            Some(hint) => format!(" (did you mean \"{hint}\"?)"),
            _ if accepted.is_empty() => " (it takes no parameters)".to_string(),
            _ => format!(" (accepted: {})", accepted.join(", ")),
        };
        Err(format!("{scheme} URL has {what}{hint}"))
    }

    fn take_all(&mut self, name: &str) -> Vec<String> {
        let (taken, kept) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.pairs = kept;
        taken.into_iter().map(|(_, v)| v).collect()
    }

    fn take_one(&mut self, scheme: &str, name: &str) -> Result<Option<String>, String> {
        let mut values = self.take_all(name);
        if values.len() > 1 {
            return Err(format!("{scheme} URL sets {name}= more than once"));
        }
        Ok(values.pop())
    }

    /// `?endpoint=`: another base URL for an HTTP target (tests, proxies).
    fn endpoint(&mut self, scheme: &str) -> Result<Option<Url>, String> {
        let Some(raw) = self.take_one(scheme, "endpoint")? else {
            return Ok(None);
        };
        match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Ok(Some(url))
            }
            _ => Err(format!(
                "{scheme} URL: endpoint= must be an http:// or https:// base URL such as http://127.0.0.1:8080"
            )),
        }
    }
}

fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Splits a path into percent-decoded, non-empty segments; one trailing slash is allowed.
fn segments(path: &str) -> Result<Vec<String>, &'static str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    path.split('/')
        .map(|segment| {
            if segment.is_empty() {
                return Err("the path has an empty segment");
            }
            let decoded = decode(segment).ok_or("the path is not valid percent-encoded UTF-8")?;
            if decoded.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("the path contains spaces or control characters");
            }
            Ok(decoded)
        })
        .collect()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
}

/// `[user[:password]@]host[:port]`, percent-decoded.
struct Authority {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
}

/// Splits "authority/path" into the authority and the path (with its leading slash, or "").
fn split_authority(body: &str) -> (&str, &str) {
    match body.find('/') {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    }
}

fn parse_authority(authority: &str) -> Result<Authority, &'static str> {
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            let bad = "the user or password is not valid percent-encoded UTF-8";
            let user = decode(user).ok_or(bad)?;
            let password = password.map(|p| decode(p).ok_or(bad)).transpose()?;
            if user.is_empty() {
                return Err("the part before \"@\" is empty");
            }
            (Some(user), password)
        }
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address is missing its closing \"]\"")?;
        Ipv6Addr::from_str(inside).map_err(|_| "the IPv6 address is not valid")?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 address")?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing");
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err("the host contains characters a host name cannot have");
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err("the port must be a number from 1 to 65535"),
        })
        .transpose()?;
    Ok(Authority {
        user,
        password,
        host,
        port,
    })
}

fn parse_discord(body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed("discord", reason);
    if body.contains('@') {
        return Err(bad("a bot name before \"@\" is not supported"));
    }
    let parts = segments(body).map_err(bad)?;
    let [webhook_id, token] = parts.as_slice() else {
        return Err(bad("expected exactly a webhook id and a token"));
    };
    discord(webhook_id, token, params, "discord")
}

fn discord(
    webhook_id: &str,
    token: &str,
    params: &mut Params,
    scheme: &str,
) -> Result<TargetUrl, String> {
    if webhook_id.is_empty() || !webhook_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(malformed(scheme, "the webhook id must be a number"));
    }
    if !is_token(token) {
        return Err(malformed(
            scheme,
            "the webhook token is missing or has invalid characters",
        ));
    }
    Ok(TargetUrl::Discord {
        webhook_id: webhook_id.to_string(),
        token: Secret::new(token),
        endpoint: params.endpoint(scheme)?,
    })
}

/// `https://discord.com/api/webhooks/ID/TOKEN` (and `hooks.slack.com/services/A/B/C`): the URLs
/// the services hand out, accepted as they are.
fn parse_native_https(body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let only_discord = || {
        "https:// URLs are accepted only as Discord or Slack webhook URLs \
         (https://discord.com/api/webhooks/WEBHOOK_ID/WEBHOOK_TOKEN); \
         use jsons://HOST/PATH for a generic webhook"
            .to_string()
    };
    let (authority, path) = split_authority(body);
    let host = authority.to_ascii_lowercase();
    let parts = segments(path).map_err(|reason| malformed("https", reason))?;
    if host == "hooks.slack.com" {
        return match parts.as_slice() {
            [services, a, b, c] if services == "services" => slack(&[a, b, c], params, "slack"),
            _ => Err(malformed(
                "slack",
                "a Slack https:// URL must be https://hooks.slack.com/services/A/B/C",
            )),
        };
    }
    if !DISCORD_HOSTS.contains(&host.as_str()) {
        return Err(only_discord());
    }
    let rest = match parts.as_slice() {
        [api, rest @ ..] if api == "api" => rest,
        _ => {
            return Err(malformed(
                "https",
                "the path must start with /api/webhooks/",
            ))
        }
    };
    // An API version segment ("v10") may precede "webhooks".
    let rest = match rest {
        [version, rest @ ..]
            if version.len() > 1
                && version.starts_with('v')
                && version[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            rest
        }
        _ => rest,
    };
    match rest {
        [webhooks, id, token] if webhooks == "webhooks" => discord(id, token, params, "https"),
        _ => Err(malformed(
            "https",
            "expected /api/webhooks/ followed by a webhook id and a token",
        )),
    }
}

fn parse_slack(body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let parts = segments(body).map_err(|reason| malformed("slack", reason))?;
    match parts.as_slice() {
        [a, b, c] => slack(&[a, b, c], params, "slack"),
        _ => Err(malformed(
            "slack",
            "expected exactly three tokens; channels in the URL are not supported",
        )),
    }
}

fn slack(tokens: &[&String; 3], params: &mut Params, scheme: &str) -> Result<TargetUrl, String> {
    if !tokens.iter().all(|t| is_token(t)) {
        return Err(malformed(scheme, "a token has invalid characters"));
    }
    Ok(TargetUrl::Slack {
        tokens: Secret::new(format!("{}/{}/{}", tokens[0], tokens[1], tokens[2])),
        endpoint: params.endpoint(scheme)?,
    })
}

fn parse_telegram(body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed("tgram", reason);
    let parts = segments(body).map_err(bad)?;
    let (bot_token, chat_id) = match parts.as_slice() {
        [bot_token, chat_id] => (bot_token, chat_id),
        [_, _, _, ..] => {
            return Err(bad(
                "one CHAT_ID per target: add another [[target]] for another chat",
            ))
        }
        _ => return Err(bad("expected a bot token and a chat id")),
    };
    // Apprise accepts the "bot" prefix Telegram's API paths use.
    let bot_token = bot_token.strip_prefix("bot").unwrap_or(bot_token);
    let valid_token = bot_token.split_once(':').is_some_and(|(id, key)| {
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && is_token(key)
    });
    if !valid_token {
        return Err(bad("the bot token must look like 123456789:ABC-DEF..."));
    }
    let numeric = chat_id.strip_prefix('-').unwrap_or(chat_id);
    let username = chat_id.strip_prefix('@').unwrap_or(chat_id);
    let valid_chat = (!numeric.is_empty() && numeric.chars().all(|c| c.is_ascii_digit()))
        || (!username.is_empty()
            && username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !valid_chat {
        return Err(bad("the chat id must be a number or @channel_name"));
    }
    Ok(TargetUrl::Telegram {
        bot_token: Secret::new(bot_token),
        chat_id: chat_id.to_string(),
        endpoint: params.endpoint("tgram")?,
    })
}

fn parse_ntfy(scheme: &str, body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed(scheme, reason);
    let (authority, path) = split_authority(body);
    let authority = parse_authority(authority).map_err(bad)?;
    let parts = segments(path).map_err(bad)?;
    let [topic] = parts.as_slice() else {
        return Err(bad("expected exactly one topic after the host"));
    };
    let valid_topic = topic.len() <= 64
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_topic {
        return Err(bad(
            "a topic has at most 64 letters, digits, \"-\" and \"_\"",
        ));
    }
    let auth = match (authority.user, authority.password) {
        (None, _) => None,
        (Some(token), None) => Some(Secret::new(token)),
        (Some(_), Some(password)) if password.is_empty() => {
            return Err(bad("the password after \"USER:\" is empty"))
        }
        (Some(user), Some(password)) => Some(Secret::new(format!("{user}:{password}"))),
    };
    Ok(TargetUrl::Ntfy {
        tls: scheme == "ntfys",
        host: authority.host,
        port: authority.port,
        topic: topic.clone(),
        auth,
        endpoint: params.endpoint(scheme)?,
    })
}

fn parse_pushover(body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed("pover", reason);
    let body = body.strip_suffix('/').unwrap_or(body);
    let (user_key, app_token) = body
        .split_once('@')
        .ok_or_else(|| bad("the \"@\" between user key and app token is missing"))?;
    if app_token.contains('/') {
        return Err(bad("devices in the URL are not supported"));
    }
    let alphanumeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !alphanumeric(user_key) || !alphanumeric(app_token) {
        return Err(bad("user key and app token are letters and digits"));
    }
    Ok(TargetUrl::Pushover {
        user_key: Secret::new(user_key),
        app_token: Secret::new(app_token),
        endpoint: params.endpoint("pover")?,
    })
}

fn parse_gotify(scheme: &str, body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed(scheme, reason);
    let (authority, path) = split_authority(body);
    let authority = parse_authority(authority).map_err(bad)?;
    if authority.user.is_some() {
        return Err(bad(
            "gotify takes no user or password; the app token goes last in the path",
        ));
    }
    let mut parts = segments(path).map_err(bad)?;
    let token = parts.pop().ok_or_else(|| bad("the app token is missing"))?;
    if !is_token(&token) {
        return Err(bad("the app token has invalid characters"));
    }
    let path = parts.iter().map(|p| format!("/{p}")).collect::<String>();
    Ok(TargetUrl::Gotify {
        tls: scheme == "gotifys",
        host: authority.host,
        port: authority.port,
        path,
        token: Secret::new(token),
        endpoint: params.endpoint(scheme)?,
    })
}

fn parse_email(scheme: &str, body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed(scheme, reason);
    let (authority, path) = split_authority(body);
    if !matches!(path, "" | "/") {
        return Err(bad("recipients go in ?to=, not in the path"));
    }
    let authority = parse_authority(authority).map_err(bad)?;
    let (user, password) = match (authority.user, authority.password) {
        (None, _) => (None, None),
        (Some(_), None) => return Err(bad("the password after \"USER:\" is missing")),
        (Some(_), Some(password)) if password.is_empty() => {
            return Err(bad("the password after \"USER:\" is empty"))
        }
        (Some(user), Some(password)) => (Some(user), Some(Secret::new(password))),
    };
    let tls = scheme == "mailtos";
    let port = authority.port.unwrap_or(if tls { 587 } else { 25 });
    let security = match (tls, port) {
        (false, _) => EmailSecurity::Opportunistic,
        (true, 465) => EmailSecurity::ImplicitTls,
        (true, _) => EmailSecurity::StartTls,
    };
    let from = match (params.take_one(scheme, "from")?, &user) {
        (Some(from), _) => from,
        (None, Some(user)) if user.contains('@') => user.clone(),
        (None, Some(user)) => format!("{user}@{}", authority.host),
        (None, None) => return Err(bad("from=ADDRESS is needed when the URL has no user")),
    };
    if lettre::Address::from_str(&from).is_err() {
        return Err(format!(
            "email URL: the sender \"{from}\" is not a valid email address (set from=ADDRESS)"
        ));
    }
    let mut to = Vec::new();
    for list in params.take_all("to") {
        for address in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if lettre::Address::from_str(address).is_err() {
                return Err(format!(
                    "email URL: the recipient \"{address}\" is not a valid email address"
                ));
            }
            to.push(address.to_string());
        }
    }
    if to.is_empty() {
        return Err(bad("to=ADDRESS is missing"));
    }
    Ok(TargetUrl::Email {
        security,
        host: authority.host,
        port,
        user,
        password,
        from,
        to,
    })
}

fn parse_webhook(scheme: &str, body: &str, params: &mut Params) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed(scheme, reason);
    let (authority, path) = split_authority(body);
    let authority = parse_authority(authority).map_err(bad)?;
    // Validates the segments; the path itself is kept encoded, as it goes into a URL again.
    segments(path).map_err(bad)?;
    let path = if path.is_empty() { "/" } else { path };
    let basic_auth = authority
        .user
        .map(|user| (user, Secret::new(authority.password.unwrap_or_default())));
    Ok(TargetUrl::Webhook {
        tls: scheme == "jsons",
        host: authority.host,
        port: authority.port,
        path: path.to_string(),
        basic_auth,
        endpoint: params.endpoint(scheme)?,
    })
}

fn parse_file_url(body: &str) -> Result<TargetUrl, String> {
    let bad = |reason: &str| malformed("file", reason);
    if !body.starts_with('/') {
        return Err(bad(
            "the path must be absolute: three slashes after \"file:\"",
        ));
    }
    let path = decode(body).ok_or_else(|| bad("the path is not valid percent-encoded UTF-8"))?;
    if path.ends_with('/') {
        return Err(bad("the path names a directory, not a file"));
    }
    Ok(TargetUrl::File {
        path: PathBuf::from(path),
    })
}

fn parse_console(body: &str) -> Result<TargetUrl, String> {
    if matches!(body, "" | "/") {
        Ok(TargetUrl::Console)
    } else {
        Err("console URL is just console:// (nothing after it)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_splits_ipv6_and_ports() {
        let a = parse_authority("u%40x:p%3Aw@[::1]:8080").unwrap();
        assert_eq!(a.user.as_deref(), Some("u@x"));
        assert_eq!(a.password.as_deref(), Some("p:w"));
        assert_eq!(a.host, "[::1]");
        assert_eq!(a.port, Some(8080));
        assert!(parse_authority("host:0").is_err());
        assert!(parse_authority("host:99999").is_err());
        assert!(parse_authority("[::1").is_err());
        assert!(parse_authority("").is_err());
        assert!(parse_authority("ho st").is_err());
    }

    #[test]
    fn segments_reject_empty_parts() {
        assert_eq!(segments("/a/b/").unwrap(), vec!["a", "b"]);
        assert!(segments("/a//b").is_err());
        assert_eq!(segments("").unwrap(), Vec::<String>::new());
    }
}
