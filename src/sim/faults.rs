//! Faults the simulator can inject per account, with the exact bodies Vast and its gateways send
//! (reference/vast-api.md §4 and §5).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One misbehaviour of the API, applied to the next request(s) of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 429, `text/plain`: `API requests too frequent`.
    RateLimitText,
    /// 429, `text/plain`: `API requests too frequent: endpoint threshold=2.0`.
    RateLimitTextThreshold,
    /// 429, JSON: `{"detail": "API requests too frequent endpoint threshold=2.0"}`.
    RateLimitJsonDetail,
    /// 429, JSON: `{"success": false, "error": "rate_limit_exceeded", "msg": ...}`.
    RateLimitJsonError,
    /// 502 with the HTML page of an nginx gateway.
    #[serde(rename = "bad_gateway_502_html")]
    BadGateway502Html,
    /// 503 with an HTML page.
    #[serde(rename = "service_unavailable_503")]
    ServiceUnavailable503,
    /// 504 with an HTML page.
    #[serde(rename = "gateway_timeout_504")]
    GatewayTimeout504,
    /// Holds the request this long, then answers normally.
    Hang(#[serde(with = "duration_text")] Duration),
    /// Aborts the TCP connection with a reset (SO_LINGER 0), without any response.
    Reset,
    /// A 200 whose JSON body is cut in half (with a consistent Content-Length).
    TruncatedJson,
    /// Removes a field from every row (machines, instances) or from the body object.
    RemoveField(String),
    /// Sets a field to `null` in every row.
    NullField(String),
    /// Turns a field into a string in every row (`0` becomes `"0"`).
    StringifyField(String),
    /// 401 `{"success": false, "error": "auth_error", "msg": "Invalid user key"}`.
    #[serde(rename = "unauthorized_401")]
    Unauthorized401,
    /// 400 `invalid_token` on the next v1 instance page that carries an `after_token`.
    InvalidPageToken,
    /// A 200 whose JSON is followed by whitespace up to this many bytes (a runaway body).
    Oversized(u64),
    /// Every row answers with another subject's id (`id` and `machine_id` one higher), as a
    /// confused gateway or cache would.
    ForeignRow,
}

/// How long an injected fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultDuration {
    /// The next `n` requests it applies to.
    Requests(u32),
    /// Until `clear_faults`.
    UntilCleared,
}

/// A ready-made error response.
pub(crate) struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub body: &'static str,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html";

pub(crate) const INVALID_USER_KEY: &str =
    r#"{"success": false, "error": "auth_error", "msg": "Invalid user key"}"#;

impl Fault {
    /// The response of faults that replace the answer entirely.
    pub(crate) fn canned(&self) -> Option<Canned> {
        let (status, content_type, body) = match self {
            Fault::RateLimitText => (429, TEXT, "API requests too frequent"),
            Fault::RateLimitTextThreshold => (
                429,
                TEXT,
                "API requests too frequent: endpoint threshold=2.0",
            ),
            Fault::RateLimitJsonDetail => (
                429,
                JSON,
                r#"{"detail": "API requests too frequent endpoint threshold=2.0"}"#,
            ),
            Fault::RateLimitJsonError => (
                429,
                JSON,
                r#"{"success": false, "error": "rate_limit_exceeded", "msg": "API requests too frequent endpoint threshold=3.0"}"#,
            ),
            Fault::BadGateway502Html => (
                502,
                HTML,
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            ),
            Fault::ServiceUnavailable503 => (
                503,
                HTML,
                "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            ),
            Fault::GatewayTimeout504 => (
                504,
                HTML,
                "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            ),
            Fault::Unauthorized401 => (401, JSON, INVALID_USER_KEY),
            Fault::InvalidPageToken => (
                400,
                JSON,
                r#"{"success": false, "error": "invalid_token", "msg": "Invalid or expired after_token."}"#,
            ),
            _ => return None,
        };
        Some(Canned {
            status,
            content_type,
            body,
        })
    }

    /// The 429 styles, in the order of reference/vast-api.md §4.
    pub const RATE_LIMIT_STYLES: [Fault; 4] = [
        Fault::RateLimitText,
        Fault::RateLimitTextThreshold,
        Fault::RateLimitJsonDetail,
        Fault::RateLimitJsonError,
    ];
}

/// Durations written as in the configuration (`"1500ms"`, `"3s"`), or as a number of seconds.
pub(crate) mod duration_text {
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;
    use std::fmt;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or \"250ms\", or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                crate::util::parse_duration(v).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("invalid number of seconds {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("negative duration {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Option<Duration>` with the same syntax.
pub(crate) mod opt_duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::duration_text")] Duration);
        Ok(Some(Wrap::deserialize(d)?.0))
    }
}
