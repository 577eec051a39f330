//! Small helpers shared by several modules: secrets that cannot be printed by accident, the
//! duration syntax of the configuration ("30s", "5m", "2h"), "did you mean" hints and label globs.
//! Nothing here does I/O.

use std::fmt;
use std::time::Duration;

/// A secret string (API key, webhook token, password). `Debug` and `Display` print `***`, so a
/// secret cannot reach a log line, an error or `status` output through formatting.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it (an auth header, an SMTP login).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The longest duration the configuration accepts (100 years): every duration the daemon adds to
/// a clock or multiplies stays far from overflowing `Instant`, `chrono` and `Duration` itself.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86400);

/// Parses "30s", "5m", "2h", "1d", "250ms", "0s" and combinations such as "1h30m". Anything
/// longer than [`MAX_DURATION`] (however many digits) is an error, never an overflow.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let shown = shorten(s, 40);
    let bytes = s.as_bytes();
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "invalid duration \"{shown}\": expected a number followed by ms, s, m, h or d (e.g. \"30s\")"
            ));
        }
        let number: f64 = s[start..i]
            .parse()
            .map_err(|_| format!("invalid number in duration \"{shown}\""))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let seconds = match &s[unit_start..i] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            "d" => number * 86400.0,
            "" => {
                return Err(format!(
                    "duration \"{shown}\" needs a unit: ms, s, m, h or d (e.g. \"{number}s\")"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit \"{}\" in duration \"{shown}\" (use ms, s, m, h or d)",
                    shorten(other, 10)
                ))
            }
        };
        total = Duration::try_from_secs_f64(seconds)
            .ok()
            .and_then(|d| total.checked_add(d))
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| {
                format!(
                    "duration \"{shown}\" is out of range (at most {})",
                    format_duration(MAX_DURATION)
                )
            })?;
    }
    Ok(total)
}

/// `text` cut to at most `max` characters (with "..." when cut), for quoting user input in an
/// error message without repeating a megabyte of it.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// A count with its noun, singular or plural: "1 rental", "3 rentals", "0 targets". For nouns
/// whose plural adds an "s".
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Formats a duration the way people read it: "45s", "3m", "1h 5m", "2d 3h".
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && d.as_millis() > 0 {
        return format!("{}ms", d.as_millis());
    }
    let (days, hours, mins, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (mins, "m"), (s, "s")]
        .iter()
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.into_iter().take(2).collect::<Vec<_>>().join(" ")
    }
}

/// Levenshtein distance, for "did you mean" hints on unknown keys and names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Names this long are not typos of a key or a name, and comparing them costs their length
    // times the candidate's.
    const LONGEST: usize = 64;
    if word.len() > LONGEST {
        return None;
    }
    candidates
        .into_iter()
        .filter(|c| c.len() <= LONGEST)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Shell-style glob match with `*` (any run) and `?` (one character), used for instance labels.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn durations_out_of_range_are_errors_not_panics() {
        for huge in [
            "99999999999999999999999s",
            "9999999999999999d",
            "36501d",
            "36500d1s",
            "99999999999999999999999999999999999999999999999999ms",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("out of range"), "{huge}: {e}");
        }
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        let long = format!("{}s", "9".repeat(10_000));
        assert!(
            parse_duration(&long).unwrap_err().len() < 200,
            "the input is shortened"
        );
    }

    #[test]
    fn durations_format() {
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_secs(3900)), "1h 5m");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
        assert_eq!(
            format_duration(Duration::from_secs(2 * 86400 + 3 * 3600 + 7)),
            "2d 3h"
        );
    }

    #[test]
    fn secrets_never_format() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn hints_and_globs() {
        assert_eq!(
            did_you_mean("pol_interval", ["poll_interval", "name"]),
            Some("poll_interval")
        );
        assert_eq!(did_you_mean("zzzzzz", ["poll_interval", "name"]), None);
        // A megabyte-long name against a hundred candidates: skipped, not billions of steps.
        let absurd = format!("poll_interval{}", "x".repeat(1_000_000));
        let names: Vec<String> = (0..100).map(|i| format!("account-name-{i:050}")).collect();
        let started = std::time::Instant::now();
        assert_eq!(
            did_you_mean(&absurd, names.iter().map(String::as_str)),
            None
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "no hang"
        );
        assert!(glob_match("train-*", "train-7"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("train-*", "eval-1"));
        assert!(glob_match("*", ""));
    }
}
