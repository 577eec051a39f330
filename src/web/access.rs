//! Who may read what, and how pages may behave in the browser: HTTP basic auth from
//! `http_basic_auth_file` (everything but `/health`; compared in constant time), GET and HEAD
//! only (the listener is read-only), and the headers every answer carries: a strict
//! Content-Security-Policy (own scripts and styles only, nothing inline), no sniffing, no
//! framing, no referrer.

use crate::config::model::BasicAuth;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;

/// Every answer's policy: scripts, styles, images and connections from this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The one path answered without credentials (service managers and load balancers probe it).
const OPEN_PATH: &str = "/health";

/// Refuses anything but GET and HEAD.
pub async fn read_only(request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let mut answer = (
        StatusCode::METHOD_NOT_ALLOWED,
        "read-only: GET and HEAD only\n",
    )
        .into_response();
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    answer
}

/// Asks for the credentials of `http_basic_auth_file` on every path but `/health`.
pub async fn basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == OPEN_PATH || authorized(&auth, &request) {
        return next.run(request).await;
    }
    let mut answer = Response::new(Body::from("authentication required\n"));
    *answer.status_mut() = StatusCode::UNAUTHORIZED;
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"vast-supervisor\", charset=\"UTF-8\""),
    );
    answer
}

fn authorized(auth: &BasicAuth, request: &Request) -> bool {
    let Some(given) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
    else {
        return false;
    };
    let expected = format!("{}:{}", auth.user, auth.password.expose());
    constant_time_eq(&given, expected.as_bytes())
}

/// Compares without stopping at the first difference, so the time taken tells nothing about
/// how much of a guess was right (the length may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Adds the security headers to every answer (errors and `/metrics` included).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut answer = next.run(request).await;
    let headers = answer.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(constant_time_eq(b"admin:pw", b"admin:pw"));
        assert!(!constant_time_eq(b"admin:pw", b"admin:pX"));
        assert!(!constant_time_eq(b"admin:pw", b"admin:pw2"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
