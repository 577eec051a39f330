//! The Vast.ai API client: typed rows, typed errors, retries and per-endpoint pacing. Owns every
//! HTTP request to Vast. Must not interpret rows (that is `detect`) or keep monitoring state.

pub mod model;
pub use model::*;
