//! Configuration: reads the main file and `conf.d/*.toml`, validates every value and reports each
//! problem as `path:line:col: message`. Owns file discovery, parsing, secret loading and target URL
//! parsing. Must not start anything or touch the network: the result is plain data ([`model`]).
//!
//! - [`load`]: the directory, file order, and the checks that span files.
//! - [`parse`]: one file, with positions for every problem.
//! - [`target_url`]: the Apprise-style target URLs and their redacted form.
//! - [`files`]: reading configuration, secret and CA files safely (regular files, bounded).
//! - [`check`]: the `check` command's output.

pub mod check;
pub mod diagnostic;
pub mod files;
pub mod load;
pub mod model;
pub mod parse;
pub mod target_url;

pub use check::check_command;
pub use diagnostic::Diagnostic;
pub use load::{load_dir, load_dir_with_env, FileConfig, FileOutcome, LoadedConfig, CONF_D};
pub use model::*;
pub use parse::parse_file;
pub use target_url::{parse_target_url, redact_url};
