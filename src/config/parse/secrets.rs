//! Secrets (`api_key`, `url`, `bearer_token` and their `_file` / `_env` forms): which of the
//! alternative keys is set, and the secret read from the file or the environment. Errors name the
//! file or the variable, never the secret; this module must not keep or log a secret.

use super::document::Entry;
use super::parser::Parser;
use crate::config::files::{read_bounded, MAX_SECRET_FILE};

impl Parser<'_> {
    /// Of a group of alternative keys (`api_key`, `api_key_file`, `api_key_env`), exactly one
    /// must be set. Returns it, or reports what is wrong.
    pub(super) fn exactly_one<'d>(
        &mut self,
        set: &[Entry<'d>],
        names: [&str; 3],
        table: &str,
        at: usize,
    ) -> Option<Entry<'d>> {
        let [a, b, c] = names;
        match set {
            [] => {
                self.error(at, format!("{table} needs one of {a}, {b} or {c}"));
                None
            }
            [one] => Some(*one),
            [first, rest @ ..] => {
                for extra in rest {
                    let message = format!(
                        "{} and {} are both set: use exactly one of {a}, {b}, {c}",
                        first.key, extra.key
                    );
                    self.error(extra.key_at, message);
                }
                None
            }
        }
    }

    /// The secret behind `KEY`, `KEY_file` or `KEY_env`. Errors name the file or variable,
    /// never the secret.
    pub(super) fn secret(&mut self, entry: &Entry) -> Option<String> {
        let key = entry.key;
        let source = self.non_empty_string(entry)?;
        if key.ends_with("_file") {
            let path = self.base_dir.join(source);
            let bytes = match read_bounded(&path, MAX_SECRET_FILE) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let message = format!("cannot read {key} \"{}\": {e}", path.display());
                    self.error(entry.value_at, message);
                    return None;
                }
            };
            let Ok(text) = String::from_utf8(bytes) else {
                let message = format!("{key} \"{}\" is not UTF-8 text", path.display());
                self.error(entry.value_at, message);
                return None;
            };
            // Files written with `echo` end in a newline that is not part of the secret.
            let secret = text.trim();
            if secret.is_empty() {
                let message = format!("{key} \"{}\" is empty", path.display());
                self.error(entry.value_at, message);
                return None;
            }
            Some(secret.to_string())
        } else if key.ends_with("_env") {
            let valid_name = source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !source.starts_with(|c: char| c.is_ascii_digit());
            if !valid_name {
                self.error(
                    entry.value_at,
                    format!("{key} must name an environment variable (letters, digits and \"_\")"),
                );
                return None;
            }
            match (self.env)(source) {
                None => {
                    let message = format!("environment variable {source} (from {key}) is not set");
                    self.error(entry.value_at, message);
                    None
                }
                Some(value) if value.trim().is_empty() => {
                    let message = format!("environment variable {source} (from {key}) is empty");
                    self.error(entry.value_at, message);
                    None
                }
                Some(value) => Some(value.trim().to_string()),
            }
        } else {
            Some(source.trim().to_string())
        }
    }

    /// Where a `_file` or `_env` secret came from, for messages about its content.
    pub(super) fn secret_origin(&self, entry: &Entry) -> String {
        let source = entry.item.as_str().unwrap_or_default();
        if entry.key.ends_with("_file") {
            format!("{} \"{}\"", entry.key, self.base_dir.join(source).display())
        } else {
            format!("environment variable {source}")
        }
    }
}
