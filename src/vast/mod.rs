//! The Vast.ai API client: typed rows, typed errors, retries and per-endpoint pacing. Owns every
//! HTTP request to Vast. Must not interpret rows (that is `detect`) or keep monitoring state.

pub mod client;
pub mod errors;
pub mod model;
pub mod pacing;

pub use client::{
    shared_http_client, ClientOptions, VastClient, VastResult, INSTANCES_PAGE_LIMIT, MAX_BODY_BYTES,
};
pub use errors::{body_snippet, redact_text, redact_url, VastError, LOGS_NOT_READY};
pub use model::*;
pub use pacing::Endpoint;
