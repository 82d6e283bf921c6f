//! The `backyard` gateway: configuration, the HTTP API, WebSocket signaling, auth and the store, around the
//! media engine in `backyard-core`.
//!
//! Architecture Invariant: the gateway never touches RTP or pixels; it drives `backyard_core`.

#![cfg_attr(not(test), warn(clippy::unwrap_used))] // outside tests, what cannot fail says why with `expect`

pub mod api;
pub mod auth;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod plugin_tools;
pub mod plugins;
pub mod program;
pub mod scene;
pub mod signaling;
pub mod state;
pub mod store;
pub mod text;
pub mod uploads;
pub mod viewers;

pub use api::app;
pub use state::AppState;
