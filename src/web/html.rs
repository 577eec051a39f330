//! HTML building blocks of the server-rendered pages: escaping, the page frame (navigation,
//! the embedded style sheet and script), links with query strings, and how money, times and
//! states are written. Everything a page prints from data goes through [`esc`].

use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values (the e-mail renderer's
/// escaper: one implementation for every HTML the daemon writes).
pub use crate::notify::email::escape_html as esc;

/// The pages of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Fleet,
    Instances,
    Events,
}

/// A whole page: `body` is already HTML.
pub fn page(title: &str, nav: Option<Nav>, body: &str) -> String {
    let link = |target: Nav, href: &str, label: &str| {
        let current = if nav == Some(target) {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\">\
<title>{title} · vast-supervisor</title>\
<link rel=\"stylesheet\" href=\"/assets/style.css\">\
<script src=\"/assets/app.js\" defer></script></head>\
<body><header><nav><strong class=\"brand\">vast-supervisor</strong>{fleet}{instances}{events}</nav></header>\
<main>{body}</main>\
<footer>v{version} · read-only · <a href=\"/api/v1/status\">status JSON</a> · <a href=\"/metrics\">metrics</a></footer>\
</body></html>\n",
        title = esc(title),
        fleet = link(Nav::Fleet, "/", "Fleet"),
        instances = link(Nav::Instances, "/instances", "Instances"),
        events = link(Nav::Events, "/events", "Events"),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `path?k=v&...` with the pairs whose value is set, URL-encoded.
pub fn link(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            query.append_pair(k, v);
            any = true;
        }
    }
    match any {
        true => format!("{path}?{}", query.finish()),
        false => path.to_string(),
    }
}

/// Dollars with cents; amounts under ten cents get four decimals.
pub fn money(v: f64) -> String {
    let v = if v.abs() < 5e-5 { 0.0 } else { v };
    if v != 0.0 && v.abs() < 0.1 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// "45s", "12m", "3h 5m", "2d 4h".
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A time as `<time>`: the UTC date and time, its age as a tooltip.
pub fn time(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\" title=\"{} ago\">{}</time>",
        t.to_rfc3339(),
        span((now - t).num_seconds()),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// How long ago, as `<time>` with the exact time as a tooltip.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\" title=\"{}\">{} ago</time>",
        t.to_rfc3339(),
        t.format("%Y-%m-%d %H:%M:%S UTC"),
        span((now - t).num_seconds())
    )
}

/// A small coloured label; `kind` is a CSS class (ok, warn, bad, info, muted).
pub fn badge(kind: &str, text: &str) -> String {
    format!("<span class=\"badge {kind}\">{}</span>", esc(text))
}

/// The badge of an account or target state.
pub fn state_badge(state: &str) -> String {
    let kind = match state {
        "ok" => "ok",
        "degraded" | "retrying" => "warn",
        _ => "bad",
    };
    badge(kind, state)
}

/// Numbered page links around `current` (1-based) of `pages`.
pub fn pager(current: usize, pages: usize, href: impl Fn(usize) -> String) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut out = String::from("<nav class=\"pager\" aria-label=\"pages\">");
    let mut last = 0;
    for p in 1..=pages {
        let near = p == 1 || p == pages || p.abs_diff(current) <= 2;
        if !near {
            continue;
        }
        if last + 1 < p {
            out.push_str("<span>…</span>");
        }
        if p == current {
            let _ = write!(out, "<span aria-current=\"page\">{p}</span>");
        } else {
            let _ = write!(out, "<a href=\"{}\">{p}</a>", esc(&href(p)));
        }
        last = p;
    }
    out.push_str("</nav>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_links_encoded() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(
            link("/", &[("account", Some("a b&c".into())), ("state", None)]),
            "/?account=a+b%26c"
        );
        assert_eq!(link("/events", &[("kind", Some(String::new()))]), "/events");
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(0.0123), "$0.0123");
        assert_eq!(money(12.345), "$12.35");
        assert_eq!(span(3725), "1h 2m");
        let pager = pager(5, 10, |p| format!("/?page={p}"));
        assert!(pager.contains("<span aria-current=\"page\">5</span>"));
        assert!(pager.contains("href=\"/?page=10\"") && pager.contains("…"));
    }
}
