//! The Vast.ai API client: typed rows, typed errors, retries and per-endpoint pacing. Owns every
//! HTTP request to Vast. Must not interpret rows (that is `detect`) or keep monitoring state.
//!
//! - [`client`]: one account's requests: pacing, sending, retries, the body cap.
//! - `answer`: what an answer means: status codes and error bodies to [`VastError`], rows decoded.
//! - [`options`]: timeouts, retries and spacing; the shared HTTP client.
//! - [`pacing`]: the endpoints and the per-endpoint spacing of requests.
//! - [`model`]: the rows (machines, instances, user, earnings) and their lenient decoding.
//! - [`errors`]: the error classes and the redaction of keys from texts and URLs.

mod answer;
pub mod client;
pub mod errors;
pub mod model;
pub mod options;
pub mod pacing;

pub use client::{VastClient, INSTANCES_PAGE_LIMIT, MAX_BODY_BYTES};
pub use errors::{body_snippet, redact_text, redact_url, VastError, VastResult, LOGS_NOT_READY};
pub use model::*;
pub use options::{shared_http_client, ClientOptions};
pub use pacing::Endpoint;
