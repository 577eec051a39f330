//! The control socket (SPEC §8): a Unix socket speaking one JSON request and one or more JSON
//! reply lines per connection. Owns the protocol, the server (connection and follower caps,
//! request size and time limits, mode 0660 from the start) and the client side used by `status`
//! and `events`. `status` is answered from a snapshot the supervisor publishes, so it is fast
//! however busy the actors are. Must not reach into actors directly: everything it serves comes
//! from the snapshot, the store or a request channel to the supervisor.

mod client;
pub mod commands;
mod protocol;
pub mod render;
mod server;

pub use client::{request, ClientError};
pub use protocol::{ControlRequest, PublishedStatus, StatusCounts, StatusSnapshot};
pub use server::{bind, serve, ControlContext, MAX_FOLLOWERS, MAX_REQUEST_LINE};
