//! One request as the simulated cloud sees it, and its answer (status, body, and whether to send
//! it, hang, or reset the connection). Plain data shared by `http` and `endpoints`.

use crate::sim::faults::Canned;
use serde_json::Value;
use std::time::Duration;

/// What to do after computing the answer.
pub(crate) enum After {
    Respond,
    Hang(Duration),
    Reset,
}

/// The answer to one request.
pub(crate) struct Outcome {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub after: After,
}

impl Outcome {
    pub(super) fn json(status: u16, value: &Value) -> Outcome {
        Outcome {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
            after: After::Respond,
        }
    }

    pub(super) fn raw(status: u16, content_type: &'static str, body: &str) -> Outcome {
        Outcome {
            status,
            content_type,
            body: body.as_bytes().to_vec(),
            after: After::Respond,
        }
    }

    pub(super) fn canned(c: Canned) -> Outcome {
        Outcome::raw(c.status, c.content_type, c.body)
    }
}

/// One HTTP request as the world sees it.
pub(crate) struct SimRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub bearer: Option<&'a str>,
    pub authorization_header: bool,
    pub body: &'a [u8],
}
