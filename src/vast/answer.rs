//! What an answer of the Vast API means: the status code and the `success` / `error` / `msg`
//! fields mapped to a typed [`VastError`], bodies decoded into rows, and decode errors that say
//! what was wrong without quoting the key. Pure functions of the bytes received; must not send
//! anything (that is `client`).

use super::errors::{body_snippet, redact_text, VastError, VastResult};
use super::model::{Instance, Machine};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tracing::debug;

/// The lookup of one subject must answer for that subject: a row with another (or no) id is a
/// fault of the answer, never the asked subject's state.
pub(super) fn check_lookup_id(
    what: &str,
    asked: u64,
    found: Option<u64>,
    body: &[u8],
    secret: &str,
) -> VastResult<()> {
    match found {
        Some(id) if id == asked => Ok(()),
        Some(id) => Err(decode_error(
            &format!("the lookup of {what} {asked} answered {what} {id}"),
            false,
            body,
            secret,
        )),
        None => Err(decode_error(
            &format!("the lookup of {what} {asked} answered a row without an id"),
            false,
            body,
            secret,
        )),
    }
}

/// The `success` / `error` / `msg` trio Vast puts on many bodies.
#[derive(Deserialize, Default)]
pub(super) struct ApiStatus {
    #[serde(default)]
    pub success: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub msg: Option<Value>,
    #[serde(default)]
    pub message: Option<Value>,
    #[serde(default)]
    pub detail: Option<Value>,
}

/// `{"machines": [...]}`, decoded in one pass (the hot path of every poll; `#[serde(flatten)]`
/// would buffer the whole body, hence the repeated status fields).
#[derive(Deserialize)]
pub(super) struct MachinesBody {
    #[serde(default)]
    pub success: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub msg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub machines: Option<Option<Vec<Machine>>>,
}

/// A v1 page or the v0 list of instances.
#[derive(Deserialize)]
pub(super) struct InstancesBody {
    #[serde(default)]
    pub success: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub msg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub instances: Option<Option<Vec<Instance>>>,
    #[serde(default)]
    pub next_token: Option<Value>,
}

impl ApiStatus {
    pub(super) fn of(
        success: Option<Value>,
        error: Option<Value>,
        msg: Option<Value>,
    ) -> ApiStatus {
        ApiStatus {
            success,
            error,
            msg,
            ..ApiStatus::default()
        }
    }
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, via `default`).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub(super) fn text_of(v: &Option<Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(other) => Some(other.to_string()),
    }
}

impl ApiStatus {
    /// The message of an error body: `msg`, else `message`, else `detail`.
    pub(super) fn message(&self) -> Option<String> {
        text_of(&self.msg)
            .or_else(|| text_of(&self.message))
            .or_else(|| text_of(&self.detail))
    }

    pub(super) fn failed(&self) -> bool {
        match &self.success {
            Some(Value::Bool(b)) => !b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("false"),
            _ => false,
        }
    }

    pub(super) fn to_api_error(&self, secret: &str) -> VastError {
        let clip = |s: String| -> String { redact_text(&s, secret).chars().take(300).collect() };
        VastError::Api {
            error: text_of(&self.error)
                .map(clip)
                .unwrap_or_else(|| "unknown".into()),
            msg: self.message().map(clip).unwrap_or_default(),
        }
    }
}

pub(super) fn fail_if_unsuccessful(status: &ApiStatus, secret: &str) -> VastResult<()> {
    if status.failed() {
        Err(status.to_api_error(secret))
    } else {
        Ok(())
    }
}

pub(super) fn fail_if_unsuccessful_value(value: &Value, secret: &str) -> VastResult<()> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    let status = ApiStatus {
        success: map.get("success").cloned(),
        error: map.get("error").cloned(),
        msg: map.get("msg").cloned(),
        message: map.get("message").cloned(),
        detail: map.get("detail").cloned(),
    };
    fail_if_unsuccessful(&status, secret)
}

/// Maps a non-2xx status (and its body) to the error class.
pub(super) fn check_status(status: StatusCode, body: &[u8], secret: &str) -> VastResult<()> {
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    let api = serde_json::from_slice::<ApiStatus>(body).ok();
    let api_code = api.as_ref().and_then(|a| text_of(&a.error));
    match code {
        401 | 403 => Err(VastError::Unauthorized { status: code }),
        404 if api_code.as_deref() == Some("auth_error") => {
            Err(VastError::Unauthorized { status: code })
        }
        404 => Err(VastError::NotFound),
        429 => Err(VastError::RateLimited {
            body_snippet: body_snippet(body, secret),
        }),
        500..=599 => {
            debug!(status = code, body = %body_snippet(body, secret), "vast upstream error");
            Err(VastError::Upstream { status: code })
        }
        _ => match api {
            Some(api) if api_code.is_some() || api.message().is_some() => {
                Err(api.to_api_error(secret))
            }
            _ => {
                debug!(status = code, body = %body_snippet(body, secret), "vast error without JSON");
                Err(VastError::Upstream { status: code })
            }
        },
    }
}

pub(super) fn transport_error(e: reqwest::Error, secret: &str) -> VastError {
    if e.is_timeout() {
        return VastError::Timeout;
    }
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    VastError::Network {
        detail: redact_text(&detail, secret),
    }
}

pub(super) fn decode_json<T: DeserializeOwned>(body: &[u8], secret: &str) -> VastResult<T> {
    super::model::from_body(body)
        .map_err(|e| decode_error(&e.to_string(), e.is_eof(), body, secret))
}

pub(super) fn decode_error(what: &str, truncated: bool, body: &[u8], secret: &str) -> VastError {
    let kind = if truncated { "truncated body: " } else { "" };
    let detail = if body.is_empty() {
        format!("{kind}{what}")
    } else {
        format!(
            "{kind}{what} ({} bytes, starting {})",
            body.len(),
            body_snippet(body, secret)
        )
    };
    VastError::Decode { detail }
}

pub(super) fn missing_field(field: &str, body: &[u8], secret: &str) -> VastError {
    decode_error(
        &format!("the response has no \"{field}\""),
        false,
        body,
        secret,
    )
}

pub(super) fn unexpected_shape(expected: &str, body: &[u8], secret: &str) -> VastError {
    decode_error(&format!("expected {expected}"), false, body, secret)
}

/// The machine detail body: a bare list (what Vast sends), an object, or `{"machines": [...]}`.
pub(super) fn machine_from_detail(
    value: Value,
    body: &[u8],
    secret: &str,
) -> VastResult<Option<Machine>> {
    let row = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => match items.into_iter().next() {
            Some(row) => row,
            None => return Ok(None),
        },
        Value::Object(mut map) => {
            fail_if_unsuccessful_value(&Value::Object(map.clone()), secret)?;
            if let Some(inner) = map.remove("machines") {
                return machine_from_detail(inner, body, secret);
            }
            if !map.contains_key("id") && !map.contains_key("machine_id") {
                return Ok(None);
            }
            Value::Object(map)
        }
        _ => return Err(unexpected_shape("a list or an object", body, secret)),
    };
    Machine::deserialize(row)
        .map(Some)
        .map_err(|e| decode_error(&e.to_string(), false, body, secret))
}

pub(super) fn none_if_not_found<T>(result: VastResult<Option<T>>) -> VastResult<Option<T>> {
    match result {
        Err(VastError::NotFound) => Ok(None),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(body: &str) -> VastResult<()> {
        let value: Value = serde_json::from_str(body).unwrap();
        fail_if_unsuccessful_value(&value, "KEY")
    }

    #[test]
    fn success_false_is_an_api_error() {
        assert_eq!(
            api(r#"{"success": false, "error": "Invalid date range", "msg": "bad"}"#),
            Err(VastError::Api {
                error: "Invalid date range".into(),
                msg: "bad".into()
            })
        );
        assert_eq!(
            api(r#"{"success": false, "msg": "no GPU KEY"}"#),
            Err(VastError::Api {
                error: "unknown".into(),
                msg: "no GPU ***".into()
            })
        );
        assert_eq!(api(r#"{"success": true}"#), Ok(()));
        assert_eq!(api(r#"[1]"#), Ok(()));
    }

    #[test]
    fn statuses_map_to_classes() {
        let s = |code: u16, body: &str| {
            check_status(StatusCode::from_u16(code).unwrap(), body.as_bytes(), "KEY")
        };
        assert_eq!(s(200, ""), Ok(()));
        assert_eq!(s(401, "x"), Err(VastError::Unauthorized { status: 401 }));
        assert_eq!(s(403, "{}"), Err(VastError::Unauthorized { status: 403 }));
        assert_eq!(
            s(
                404,
                r#"{"success": false, "error": "auth_error", "msg": "Invalid user key"}"#
            ),
            Err(VastError::Unauthorized { status: 404 })
        );
        assert_eq!(
            s(404, r#"{"error": "invalid_id"}"#),
            Err(VastError::NotFound)
        );
        assert_eq!(
            s(429, "API requests too frequent KEY"),
            Err(VastError::RateLimited {
                body_snippet: "API requests too frequent ***".into()
            })
        );
        assert_eq!(s(502, "<html>"), Err(VastError::Upstream { status: 502 }));
        assert_eq!(
            s(400, r#"{"error": "invalid_token", "msg": "expired"}"#),
            Err(VastError::Api {
                error: "invalid_token".into(),
                msg: "expired".into()
            })
        );
        assert_eq!(s(418, "teapot"), Err(VastError::Upstream { status: 418 }));
    }

    #[test]
    fn machine_detail_shapes() {
        let one = |v: &str| machine_from_detail(serde_json::from_str(v).unwrap(), v.as_bytes(), "");
        assert_eq!(one(r#"[{"id": 7}]"#).unwrap().unwrap().key(), Some(7));
        assert_eq!(one(r#"{"id": 7}"#).unwrap().unwrap().key(), Some(7));
        assert_eq!(
            one(r#"{"machines": [{"machine_id": 7}]}"#)
                .unwrap()
                .unwrap()
                .key(),
            Some(7)
        );
        assert_eq!(one("[]").unwrap(), None);
        assert_eq!(one("null").unwrap(), None);
        assert!(matches!(one("3"), Err(VastError::Decode { .. })));
        assert!(matches!(one("[3]"), Err(VastError::Decode { .. })));
    }

    #[test]
    fn bodies_that_are_not_utf8_are_decode_errors() {
        let body = b"{\"machines\": [{\"id\": 1, \"hostname\": \"rig\xff\"}]}";
        let err = decode_json::<crate::vast::MachineList>(body, "").unwrap_err();
        assert!(matches!(err, VastError::Decode { .. }), "{err:?}");
        let ok: crate::vast::MachineList =
            decode_json(br#"{"machines": [{"id": 1, "hostname": "r\u00e9"}]}"#, "").unwrap();
        assert_eq!(ok.machines[0].hostname.as_deref(), Some("r\u{e9}"));
    }

    #[test]
    fn truncated_bodies_say_so() {
        let err = decode_json::<Value>(br#"{"machines": [{"id": 1"#, "").unwrap_err();
        match err {
            VastError::Decode { detail } => {
                assert!(detail.starts_with("truncated body"), "{detail}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
