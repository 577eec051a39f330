//! Text shared by every renderer: headline, context and time lines, digest summaries, and the
//! size tools (truncate, split without cutting escapes, pack lines into messages).
//!
//! Pure functions only; each service module decides its own markup and limits with them.

use crate::event::{Event, Severity, Subject};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Appended where text was cut to fit a service.
pub const TRUNCATED: &str = "… [truncated]";

/// The body of one rendered request.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(serde_json::Value),
    Text(String),
    Form(Vec<(String, String)>),
}

/// One request as a service module renders it: the per-message headers and the body. The
/// sender adds the URL and the credentials, so a rendered request never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Rendered {
    pub fn json(value: serde_json::Value) -> Rendered {
        Rendered {
            headers: Vec::new(),
            body: Body::Json(value),
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self.body {
            Body::Json(_) => "application/json",
            Body::Text(_) => "text/plain; charset=utf-8",
            Body::Form(_) => "application/x-www-form-urlencoded",
        }
    }

    /// The exact bytes sent on the wire.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Json(value) => value.to_string().into_bytes(),
            Body::Text(text) => text.clone().into_bytes(),
            Body::Form(fields) => url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
                .into_bytes(),
        }
    }

    /// A readable form for golden files: headers, a blank line, then the body (JSON pretty
    /// printed, form fields one per line).
    pub fn to_golden(&self) -> String {
        let mut out = format!("Content-Type: {}\n", self.content_type());
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        out.push('\n');
        match &self.body {
            Body::Json(value) => {
                out.push_str(&serde_json::to_string_pretty(value).unwrap_or_default())
            }
            Body::Text(text) => out.push_str(text),
            Body::Form(fields) => {
                let lines: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&lines.join("\n"));
            }
        }
        out.push('\n');
        out
    }
}

/// Several rendered requests as one golden text, each under a "--- message i/n ---" line.
pub fn golden_text(messages: &[Rendered]) -> String {
    let n = messages.len();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| format!("--- message {}/{n} ---\n{}", i + 1, m.to_golden()))
        .collect()
}

/// "CRITICAL", "WARNING", "INFO".
pub fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "INFO",
        Severity::Warning => "WARNING",
        Severity::Critical => "CRITICAL",
    }
}

/// A coloured marker for services without colour bars.
pub fn severity_emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "🔵",
        Severity::Warning => "🟠",
        Severity::Critical => "🔴",
    }
}

/// The most severe severity of a batch.
pub fn max_severity(events: &[Event]) -> Severity {
    events
        .iter()
        .map(|e| e.severity)
        .max()
        .unwrap_or(Severity::Info)
}

/// Whether the configured `mention` applies: warning and critical messages only.
pub fn wants_mention(events: &[Event]) -> bool {
    max_severity(events) >= Severity::Warning
}

/// The configured mention, if any and if the batch is warning or worse.
pub fn mention_for<'m>(events: &[Event], mention: Option<&'m str>) -> Option<&'m str> {
    mention
        .map(str::trim)
        .filter(|m| !m.is_empty() && wants_mention(events))
}

/// The event's title, or a fallback built from kind and subject when the title is empty.
pub fn headline(event: &Event) -> String {
    let title = event.title.trim();
    if title.is_empty() {
        format!("{} · {}", event.kind, event.subject.label())
    } else {
        title.to_string()
    }
}

/// "Machine", "Instance", "Account" or "Supervisor".
pub fn subject_kind(subject: &Subject) -> &'static str {
    match subject {
        Subject::Machine { .. } => "Machine",
        Subject::Instance { .. } => "Instance",
        Subject::Account { .. } => "Account",
        Subject::Supervisor => "Supervisor",
    }
}

/// "alice · rig-02 (23456) · machine_offline".
pub fn context_line(event: &Event) -> String {
    let mut parts: Vec<String> = Vec::with_capacity(3);
    if let Some(account) = &event.account {
        parts.push(account.clone());
    }
    match &event.subject {
        Subject::Supervisor => {}
        Subject::Account { id } if event.account.as_deref() == Some(id.as_str()) => {}
        subject => parts.push(subject.label()),
    }
    parts.push(event.kind.to_string());
    parts.join(" · ")
}

/// "2026-11-22 19:10:26 UTC".
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "Seen 2026-11-22 19:10:26 UTC (changed after 19:09:56)": the change happened in (since, time].
pub fn when_line(event: &Event) -> String {
    let seen = format_time(event.time);
    match event.since {
        Some(since) if since.date_naive() == event.time.date_naive() => {
            format!("Seen {seen} (changed after {})", since.format("%H:%M:%S"))
        }
        Some(since) => format!("Seen {seen} (changed after {})", format_time(since)),
        None => format!("Seen {seen}"),
    }
}

/// The plain-text body of one event: its text, then context and time.
pub fn plain_lines(event: &Event) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let text = event.text.trim_end();
    if !text.is_empty() {
        lines.extend(text.lines().map(str::to_string));
        lines.push(String::new());
    }
    lines.push(context_line(event));
    lines.push(when_line(event));
    lines
}

/// "30 events: 28 machine_offline, 2 machine_recovered" (ASCII: it also goes into headers).
pub fn digest_summary(events: &[Event]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for event in events {
        let name = event.kind.as_str();
        match index.get(name) {
            Some(&i) => counts[i].1 += 1,
            None => {
                index.insert(name, counts.len());
                counts.push((name, 1));
            }
        }
    }
    // Most frequent first; ties keep the order of first appearance (stable sort).
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let mut parts: Vec<String> = counts
        .iter()
        .take(3)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    if counts.len() > 3 {
        parts.push("...".to_string());
    }
    format!("{} events: {}", events.len(), parts.join(", "))
}

/// One digest line: "19:10:26 CRITICAL alice · rig-02 (23456): rig-02 is offline".
pub fn digest_line(event: &Event) -> String {
    let mut who: Vec<String> = Vec::with_capacity(2);
    if let Some(account) = &event.account {
        who.push(account.clone());
    }
    if !matches!(event.subject, Subject::Supervisor | Subject::Account { .. }) {
        who.push(event.subject.label());
    }
    let who = if who.is_empty() {
        String::new()
    } else {
        format!("{}: ", who.join(" · "))
    };
    format!(
        "{} {} {who}{}",
        event.time.format("%H:%M:%S"),
        severity_label(event.severity),
        truncate_chars(&headline(event), 200)
    )
}

/// Lines joined with '\n' that fit `limit` (by `measure`); when some do not fit, the result
/// ends with "… and N more {unit}" (which is counted in the limit).
pub fn fit_lines(
    lines: &[String],
    limit: usize,
    unit: &str,
    measure: impl Fn(&str) -> usize,
) -> String {
    let more_line = |n: usize| format!("… and {n} more {unit}");
    let total = lines.len();
    let mut out = String::new();
    let mut used = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let separator = usize::from(i > 0);
        let remaining_after = total - i - 1;
        // Leave room for the "more" line unless this is the last line.
        let reserve = if remaining_after > 0 {
            1 + measure(&more_line(remaining_after))
        } else {
            0
        };
        let cost = separator + measure(line);
        if used + cost + reserve <= limit {
            if separator == 1 {
                out.push('\n');
            }
            out.push_str(line);
            used += cost;
            continue;
        }
        if i == 0 {
            // Even the first line does not fit: cut it, and count the rest.
            let rest = total - 1;
            let reserve = if rest > 0 {
                1 + measure(&more_line(rest))
            } else {
                0
            };
            let mut out = truncate_measured(line, limit.saturating_sub(reserve), &measure);
            if rest > 0 {
                out.push('\n');
                out.push_str(&more_line(rest));
            }
            return out;
        }
        let more = more_line(total - i);
        out.push('\n');
        out.push_str(&more);
        return out;
    }
    out
}

/// `text` cut so that it, plus [`TRUNCATED`] when cut, measures at most `max`.
pub fn truncate_measured(text: &str, max: usize, measure: impl Fn(&str) -> usize) -> String {
    if measure(text) <= max {
        return text.to_string();
    }
    let room = max.saturating_sub(measure(TRUNCATED));
    if room == 0 {
        return String::new();
    }
    let pieces = chunk_text(text, room, |c| measure(c.encode_utf8(&mut [0; 4])));
    let mut out = pieces.first().map(|p| p.to_string()).unwrap_or_default();
    out.push_str(TRUNCATED);
    out
}

/// `text` cut to at most `max` characters, ending with [`TRUNCATED`] when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let marker_len = TRUNCATED.chars().count();
    if max <= marker_len {
        return text.chars().take(max).collect();
    }
    let mut out: String = text.chars().take(max - marker_len).collect();
    out.push_str(TRUNCATED);
    out
}

/// `text` cut on a character boundary to at most `max` UTF-8 bytes, ending with [`TRUNCATED`].
pub fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let room = max.saturating_sub(TRUNCATED.len());
    let mut cut = room;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = text[..cut].to_string();
    if max >= TRUNCATED.len() {
        out.push_str(TRUNCATED);
    }
    out
}

/// Length in UTF-16 code units, as Telegram counts.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Splits `text` into pieces whose summed `cost` (the size of a character after escaping) is
/// at most `limit`, preferring to break after whitespace. Pieces are slices of the unescaped
/// text, so escaping each piece afterwards never cuts an escape or a tag in half.
pub fn chunk_text(text: &str, limit: usize, cost: impl Fn(char) -> usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut used = 0usize;
        let mut end = rest.len();
        let mut last_break: Option<usize> = None;
        for (i, c) in rest.char_indices() {
            let c_cost = cost(c);
            if used + c_cost > limit {
                end = i;
                break;
            }
            used += c_cost;
            if c.is_whitespace() {
                last_break = Some(i + c.len_utf8());
            }
        }
        if end == rest.len() {
            pieces.push(rest);
            break;
        }
        let mut cut = match last_break {
            Some(b) if b >= end / 2 => b,
            _ => end,
        };
        if cut == 0 {
            // One character costs more than the limit: take it alone so we always progress.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

/// Packs lines into as few chunks as possible, each at most `limit` by `measure` when joined
/// with '\n'. Lines must already fit on their own (split them with [`chunk_text`] first); a
/// line that does not is cut by characters as a last resort.
pub fn pack_lines(lines: &[String], limit: usize, measure: impl Fn(&str) -> usize) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0usize;
    let mut has_line = false;
    for line in lines {
        let line_len = measure(line);
        if line_len > limit {
            let pieces = chunk_text(line, limit, |c| measure(c.encode_utf8(&mut [0; 4])));
            if has_line {
                chunks.push(std::mem::take(&mut current));
            }
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                if i + 1 < count {
                    chunks.push(piece.to_string());
                } else {
                    current = piece.to_string();
                    current_len = measure(piece);
                }
            }
            has_line = true;
            continue;
        }
        if !has_line {
            current.push_str(line);
            current_len = line_len;
            has_line = true;
        } else if current_len + 1 + line_len <= limit {
            current.push('\n');
            current.push_str(line);
            current_len += 1 + line_len;
        } else {
            chunks.push(std::mem::replace(&mut current, line.clone()));
            current_len = line_len;
        }
    }
    if has_line {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn event(kind: EventKind, title: &str) -> Event {
        let t = DateTime::parse_from_rfc3339("2026-11-22T19:10:26Z")
            .unwrap()
            .with_timezone(&Utc);
        Event::new(
            "id",
            kind,
            Some("alice".into()),
            Subject::Machine {
                id: 12345,
                name: Some("rig-01".into()),
            },
            t,
            title,
            "text",
        )
        .with_since(Some(t - chrono::Duration::seconds(30)))
    }

    #[test]
    fn summary_counts_kinds_most_frequent_first() {
        let mut events = vec![event(EventKind::RentalEnd, "a")];
        for _ in 0..3 {
            events.push(event(EventKind::MachineOffline, "b"));
        }
        assert_eq!(
            digest_summary(&events),
            "4 events: 3 machine_offline, 1 rental_end"
        );
    }

    #[test]
    fn context_and_time_lines() {
        let e = event(EventKind::MachineOffline, "rig-01 is offline");
        assert_eq!(context_line(&e), "alice · rig-01 (12345) · machine_offline");
        assert_eq!(
            when_line(&e),
            "Seen 2026-11-22 19:10:26 UTC (changed after 19:09:56)"
        );
        assert_eq!(
            digest_line(&e),
            "19:10:26 CRITICAL alice · rig-01 (12345): rig-01 is offline"
        );
        assert_eq!(
            headline(&event(EventKind::RentalEnd, " ")),
            "rental_end · rig-01 (12345)"
        );
    }

    #[test]
    fn truncation_respects_limits_and_char_boundaries() {
        let text = "é".repeat(5000);
        let cut = truncate_bytes(&text, 4096);
        assert!(cut.len() <= 4096 && cut.ends_with(TRUNCATED));
        let cut = truncate_chars(&text, 1024);
        assert_eq!(cut.chars().count(), 1024);
        assert_eq!(truncate_chars("short", 10), "short");
    }

    #[test]
    fn chunks_prefer_whitespace_and_respect_escaped_cost() {
        let text = "aaaa bbbb <<<< cccc";
        let escaped_cost = |c: char| if c == '<' { 4 } else { 1 };
        let pieces = chunk_text(text, 10, escaped_cost);
        assert_eq!(pieces.concat(), text);
        for piece in &pieces {
            assert!(
                piece.chars().map(escaped_cost).sum::<usize>() <= 10,
                "{piece:?}"
            );
        }
        assert_eq!(pieces[0], "aaaa bbbb ");
    }

    #[test]
    fn packing_never_exceeds_limit() {
        let lines: Vec<String> = (0..100).map(|i| format!("line number {i}")).collect();
        let chunks = pack_lines(&lines, 100, |s| s.chars().count());
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.chars().count() <= 100);
        }
        assert_eq!(chunks.join("\n"), lines.join("\n"));
        let long = vec!["x".repeat(250)];
        let chunks = pack_lines(&long, 100, |s| s.chars().count());
        assert_eq!(chunks.len(), 3);
    }

    #[test]
    fn fit_lines_adds_more_marker_within_limit() {
        let lines: Vec<String> = (0..30).map(|i| format!("event line {i:02}")).collect();
        let out = fit_lines(&lines, 100, "events", |s| s.chars().count());
        assert!(out.chars().count() <= 100, "{out}");
        assert!(out.ends_with("more events"), "{out}");
        let all = fit_lines(&lines[..3], 100, "events", |s| s.chars().count());
        assert_eq!(all, lines[..3].join("\n"));
        let long = vec!["x".repeat(500), "tail".to_string()];
        let cut = fit_lines(&long, 100, "lines", |s| s.chars().count());
        assert!(cut.chars().count() <= 100, "{cut}");
        assert!(
            cut.ends_with(&format!("{TRUNCATED}\n… and 1 more lines")),
            "{cut}"
        );
    }
}
