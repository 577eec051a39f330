//! Configuration: reads the main file and `conf.d/*.toml`, validates every value and reports each
//! problem as `path:line:col: message`. Owns file discovery, parsing, secret loading and target URL
//! parsing. Must not start anything or touch the network: the result is plain data ([`model`]).

pub mod model;
pub use model::*;
