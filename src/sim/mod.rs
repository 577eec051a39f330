//! (module under construction)

pub mod targets;
