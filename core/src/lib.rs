//! Backyard's media engine: packet router, director, compositor, egress and plugin host.
//!
//! Architecture Invariant: no HTTP server and no SQL in this crate; the gateway drives it.

#![cfg_attr(not(test), warn(clippy::unwrap_used))] // outside tests, what cannot fail says why with `expect`

pub mod compositor;
pub mod director;
pub mod egress;
pub mod ffmpeg;
pub mod ingest;
pub mod media;
pub mod plugin_host;
pub mod relay;
pub mod router;
pub mod rtc;
