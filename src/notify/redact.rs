//! Removes known secrets from text before it becomes an error detail or a log field.
//!
//! Senders never put a secret into an error on purpose; this is the second line of defence for
//! text we do not control (a service echoing our request, a library error quoting a URL).

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// Shorter values are not treated as secrets: replacing every "ab" would garble messages, and
/// such values are not credentials worth the name.
const MIN_SECRET_LEN: usize = 4;

#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let encoded = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
        for value in [secret.to_string(), encoded] {
            if !self.secrets.contains(&value) {
                self.secrets.push(value);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every known secret replaced by `***`.
    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_plain_and_percent_encoded_forms() {
        let mut r = Redactor::default();
        r.add("s3cr3t/token");
        r.add("ab");
        assert_eq!(
            r.clean("POST /x/s3cr3t/token and s3cr3t%2Ftoken, ab stays"),
            "POST /x/*** and ***, ab stays"
        );
    }

    #[test]
    fn longest_secret_wins() {
        let mut r = Redactor::default();
        r.add("user");
        r.add("user:password");
        assert_eq!(r.clean("auth user:password"), "auth ***");
    }
}
