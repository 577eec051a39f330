//! What each fake service accepts and how it refuses the rest, with the real service's limits and
//! error bodies: Discord, Slack, Telegram (its HTML subset too), ntfy, Pushover and Gotify. An
//! accepted message is recorded (`accept`); a refused one is a violation the tests can read.

use super::answers::{
    chat_key, json_response, migrate_answer, request_id, response, text, with_header,
};
use super::{accept, violation, Incoming, Shared};
use axum::body::Body;
use base64::Engine;
use hyper::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

// ---- Discord ---------------------------------------------------------------------------------

fn discord_error(shared: &Shared, field: &str, message: String) -> Response<Body> {
    violation(shared, format!("discord: {field}: {message}"));
    json_response(
        400,
        json!({"message": "Invalid Form Body", "code": 50035,
               "errors": {field: {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": message}]}}}),
    )
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

pub(super) fn discord(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return json_response(
            400,
            json!({"message": "The request body contains invalid JSON.", "code": 50109}),
        );
    };
    let content = chars(&body["content"]);
    if content > 2000 {
        return discord_error(
            shared,
            "content",
            format!("Must be 2000 or fewer in length (got {content})."),
        );
    }
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    if content == 0 && embeds.is_empty() {
        return json_response(
            400,
            json!({"message": "Cannot send an empty message", "code": 50006}),
        );
    }
    if embeds.len() > 10 {
        return discord_error(shared, "embeds", "Must be 10 or fewer in length.".into());
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let limits = [
            ("title", chars(&embed["title"]), 256),
            ("description", chars(&embed["description"]), 4096),
            ("footer.text", chars(&embed["footer"]["text"]), 2048),
            ("author.name", chars(&embed["author"]["name"]), 256),
        ];
        for (name, len, max) in limits {
            if len > max {
                return discord_error(
                    shared,
                    &format!("embeds.{i}.{name}"),
                    format!("Must be {max} or fewer in length (got {len})."),
                );
            }
            total += len;
        }
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        if fields.len() > 25 {
            return discord_error(
                shared,
                &format!("embeds.{i}.fields"),
                "Must be 25 or fewer in length.".into(),
            );
        }
        for (j, field) in fields.iter().enumerate() {
            let (name, value) = (chars(&field["name"]), chars(&field["value"]));
            if name == 0 || name > 256 || value == 0 || value > 1024 {
                return discord_error(
                    shared,
                    &format!("embeds.{i}.fields.{j}"),
                    "Field name must be 1-256 and value 1-1024 characters.".into(),
                );
            }
            total += name + value;
        }
    }
    if total > 6000 {
        return discord_error(
            shared,
            "embeds",
            format!("Embed size exceeds maximum size of 6000 (got {total})."),
        );
    }
    let id = accept(shared, incoming);
    let (remaining, reset_after) = {
        let mut state = shared.lock();
        let recent = state
            .discord_recent
            .entry(incoming.path.clone())
            .or_default();
        recent.retain(|t| incoming.at.saturating_duration_since(*t) < Duration::from_secs(2));
        recent.push(incoming.at);
        let oldest = recent.first().copied().unwrap_or(incoming.at);
        let reset =
            Duration::from_secs(2).saturating_sub(incoming.at.saturating_duration_since(oldest));
        (5usize.saturating_sub(recent.len()), reset)
    };
    let wait = incoming
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "wait=true"));
    let mut r = if wait {
        json_response(
            200,
            json!({"id": format!("{}", 1_300_000_000_000_000_000u64 + id), "type": 0,
                   "channel_id": "1100000000000000000", "content": body["content"].as_str().unwrap_or(""),
                   "embeds": embeds}),
        )
    } else {
        response(204, "text/plain", String::new())
    };
    r = with_header(r, "x-ratelimit-limit", "5".into());
    r = with_header(r, "x-ratelimit-remaining", remaining.to_string());
    r = with_header(
        r,
        "x-ratelimit-reset-after",
        format!("{:.3}", reset_after.as_secs_f64()),
    );
    with_header(r, "x-ratelimit-bucket", "fake0bucket".into())
}

// ---- Slack -----------------------------------------------------------------------------------

pub(super) fn slack(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return text(400, "invalid_payload");
    };
    let text_len = chars(&body["text"]);
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    if text_len == 0 && blocks.is_empty() {
        return text(400, "no_text");
    }
    if blocks.len() > 50 {
        violation(shared, format!("slack: {} blocks (max 50)", blocks.len()));
        return text(400, "invalid_blocks");
    }
    for block in &blocks {
        let kind = block["type"].as_str().unwrap_or("");
        let len = chars(&block["text"]["text"]);
        let max = match kind {
            "header" => 150,
            "section" => 3000,
            "context" => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.len() > 10 || elements.iter().any(|e| chars(&e["text"]) > 3000) {
                    violation(shared, "slack: context block too large".into());
                    return text(400, "invalid_blocks");
                }
                continue;
            }
            _ => 3000,
        };
        if len > max {
            violation(
                shared,
                format!("slack: {kind} text of {len} characters (max {max})"),
            );
            return text(400, "invalid_blocks");
        }
    }
    if text_len > 40_000 {
        // Slack accepts and truncates; a client that relies on that loses text silently.
        violation(
            shared,
            format!("slack: text of {text_len} characters truncated by Slack"),
        );
    }
    accept(shared, incoming);
    text(200, "ok")
}

// ---- Telegram --------------------------------------------------------------------------------

fn telegram_bad(description: String) -> Response<Body> {
    json_response(
        400,
        json!({"ok": false, "error_code": 400, "description": description}),
    )
}

/// Parses Telegram's HTML subset; returns the visible text or Telegram's error description.
fn telegram_html(html: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "blockquote",
    ];
    let mut visible = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let offset = html.len() - rest.len();
        match c {
            '<' => {
                let end = rest.find('>').ok_or_else(|| {
                    format!("Bad Request: can't parse entities: Unclosed start tag at byte offset {offset}")
                })?;
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(top) if top == name => {}
                        _ => {
                            return Err(format!(
                                "Bad Request: can't parse entities: Unmatched end tag at byte offset {offset}, expected \"</{}>\", found \"</{name}>\"",
                                open.last().cloned().unwrap_or_default()
                            ))
                        }
                    }
                } else {
                    let name = inner
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte offset {offset}"
                        ));
                    }
                    open.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').filter(|&e| e <= 10).ok_or_else(|| {
                    format!("Bad Request: can't parse entities: Character entity expected at byte offset {offset}")
                })?;
                let entity = &rest[1..end];
                let decoded = match entity {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                        .ok()
                        .and_then(char::from_u32),
                    e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                    _ => None,
                };
                let decoded = decoded.ok_or_else(|| {
                    format!("Bad Request: can't parse entities: Unsupported HTML entity at byte offset {offset}")
                })?;
                visible.push(decoded);
                rest = &rest[end + 1..];
            }
            c => {
                visible.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(tag) = open.pop() {
        return Err(format!(
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
        ));
    }
    Ok(visible)
}

pub(super) fn telegram(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let method = incoming.path.rsplit('/').next().unwrap_or("");
    if method != "sendMessage" {
        return json_response(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return telegram_bad("Bad Request: invalid JSON".into());
    };
    let chat = chat_key(&body["chat_id"]);
    if chat.is_empty() || chat == "null" {
        return telegram_bad("Bad Request: chat_id is empty".into());
    }
    if let Some(&new_id) = shared.lock().migrated.get(&chat) {
        return migrate_answer(new_id);
    }
    let Some(text) = body["text"].as_str().filter(|t| !t.trim().is_empty()) else {
        return telegram_bad("Bad Request: message text is empty".into());
    };
    let visible = if body["parse_mode"].as_str() == Some("HTML") {
        match telegram_html(text) {
            Ok(visible) => visible,
            Err(description) => {
                violation(shared, format!("telegram: {description}"));
                return telegram_bad(description);
            }
        }
    } else {
        text.to_string()
    };
    let length = visible.encode_utf16().count();
    if length > 4096 {
        violation(
            shared,
            format!("telegram: message of {length} characters (max 4096)"),
        );
        return telegram_bad("Bad Request: message is too long".into());
    }
    let id = accept(shared, incoming);
    json_response(
        200,
        json!({"ok": true, "result": {"message_id": id, "date": chrono::Utc::now().timestamp(),
               "chat": {"id": body["chat_id"].clone(), "type": "supergroup"}, "text": visible}}),
    )
}

// ---- ntfy ------------------------------------------------------------------------------------

/// Decodes an RFC 2047 `=?UTF-8?B?…?=` header the way ntfy does; other values as they are.
fn decode_header(value: &str) -> String {
    let v = value.trim();
    if let Some(inner) = v
        .strip_prefix("=?UTF-8?B?")
        .or_else(|| v.strip_prefix("=?utf-8?b?"))
        .and_then(|s| s.strip_suffix("?="))
    {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(inner) {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    v.to_string()
}

pub(super) fn ntfy(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| incoming.headers.get(*n))
            .map(|v| decode_header(v))
    };
    let priority = match header(&["x-priority", "priority", "prio", "p"]).as_deref() {
        None | Some("") => 3,
        Some("1" | "min") => 1,
        Some("2" | "low") => 2,
        Some("3" | "default") => 3,
        Some("4" | "high") => 4,
        Some("5" | "max" | "urgent") => 5,
        Some(_) => {
            violation(shared, "ntfy: invalid priority".into());
            return json_response(
                400,
                json!({"code": 40007, "http": 400, "error": "invalid priority",
                       "link": "https://ntfy.sh/docs/publish/#message-priority"}),
            );
        }
    };
    let title = header(&["x-title", "title", "ti", "t"]).unwrap_or_default();
    let tags: Vec<String> = header(&["x-tags", "tags", "tag", "ta"])
        .unwrap_or_default()
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let topic = incoming.path.trim_start_matches('/').to_string();
    let bytes = incoming.body.len();
    let id = accept(shared, incoming);
    let mut answer = json!({"id": format!("fake{id:08}"), "time": chrono::Utc::now().timestamp(),
                            "event": "message", "topic": topic, "title": title, "priority": priority,
                            "tags": tags, "message": incoming.body});
    if bytes > 4096 {
        violation(
            shared,
            format!("ntfy: body of {bytes} bytes became an attachment (max 4096)"),
        );
        answer["message"] = json!("You received a file: attachment.txt");
        answer["attachment"] = json!({"name": "attachment.txt", "size": bytes});
    }
    json_response(200, answer)
}

// ---- Pushover --------------------------------------------------------------------------------

pub(super) fn pushover(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(incoming.body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let request = request_id(shared);
    let bad = |key: &str, value: &str, error: &str| {
        let mut body = json!({"errors": [error], "status": 0, "request": request});
        body[key] = json!(value);
        json_response(400, body)
    };
    let answer = if field("token").is_empty() {
        bad("token", "invalid", "application token is invalid")
    } else if field("user").is_empty() {
        bad(
            "user",
            "invalid",
            "user identifier is not a valid user, group, or subscribed user key",
        )
    } else if field("message").trim().is_empty() {
        bad("message", "cannot be blank", "message cannot be blank")
    } else if field("message").chars().count() > 1024 {
        violation(
            shared,
            format!(
                "pushover: message of {} characters (max 1024)",
                field("message").chars().count()
            ),
        );
        bad(
            "message",
            "is too long",
            "message cannot be longer than 1024 characters",
        )
    } else if field("title").chars().count() > 250 {
        violation(shared, "pushover: title over 250 characters".into());
        bad(
            "title",
            "is too long",
            "title cannot be longer than 250 characters",
        )
    } else if !matches!(field("priority"), "" | "-2" | "-1" | "0" | "1" | "2") {
        bad("priority", "is invalid", "priority is invalid")
    } else {
        accept(shared, incoming);
        shared.lock().pushover_sent += 1;
        json_response(200, json!({"status": 1, "request": request}))
    };
    let remaining = 10_000u32.saturating_sub(shared.lock().pushover_sent);
    let reset = chrono::Utc::now().timestamp() + 30 * 86_400;
    let answer = with_header(answer, "x-limit-app-limit", "10000".into());
    let answer = with_header(answer, "x-limit-app-remaining", remaining.to_string());
    with_header(answer, "x-limit-app-reset", reset.to_string())
}

// ---- Gotify ----------------------------------------------------------------------------------

pub(super) fn gotify(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let token_in_query = incoming
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("token=") && p.len() > 6));
    let has_key = incoming
        .headers
        .get("x-gotify-key")
        .is_some_and(|k| !k.is_empty());
    if !has_key && !token_in_query {
        return json_response(
            401,
            json!({"error": "Unauthorized", "errorCode": 401,
                   "errorDescription": "you need to provide a valid access token or user credentials to access this api"}),
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return json_response(
            400,
            json!({"error": "Bad Request", "errorCode": 400, "errorDescription": "invalid JSON"}),
        );
    };
    if body["message"].as_str().is_none_or(str::is_empty) {
        return json_response(
            400,
            json!({"error": "Bad Request", "errorCode": 400,
                   "errorDescription": "Field 'message' is required"}),
        );
    }
    let id = accept(shared, incoming);
    json_response(
        200,
        json!({"id": id, "appid": 1, "message": body["message"], "title": body["title"],
               "priority": body["priority"], "date": chrono::Utc::now().to_rfc3339()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_html_is_parsed_like_telegram() {
        assert_eq!(
            telegram_html("<b>a &amp; b</b> &lt;x&gt;").unwrap(),
            "a & b <x>"
        );
        assert!(telegram_html("a < b").is_err());
        assert!(telegram_html("<x>y</x>")
            .unwrap_err()
            .contains("Unsupported start tag"));
        assert!(telegram_html("a & b").unwrap_err().contains("entity"));
        assert!(telegram_html("<b>open").unwrap_err().contains("end tag"));
        assert!(telegram_html("<b><i>x</b></i>").is_err());
    }
}
