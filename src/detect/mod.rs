//! (module under construction)
pub mod instance;
pub mod logs;
pub mod money;
