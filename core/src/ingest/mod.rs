//! RTMP ingest: encoders (OBS, a hardware encoder, ffmpeg) publish to the server.
//!
//! ```text
//!  TCP ──► server.rs (limits, one task per connection) ──► session.rs (rml_rtmp + the ingest's rules)
//!                          │  publish "key"?                      │ typed media (flv.rs: H.264 + AAC)
//!                          ▼                                      ▼
//!                   IngestHandler (the gateway: key → broadcast)  PublishSink (e.g. egress' Relay)
//! ```
//!
//! The sans-IO [`Session`] holds every protocol decision and is tested without sockets; the fuzz target feeds
//! it arbitrary bytes.

pub mod flv;
mod server;
mod session;
mod studio;

pub use flv::{AacConfig, AvcConfig, Unsupported};
pub use server::{Accepted, IngestHandler, Limits, PublishSink, Verdict, serve};
pub use session::{Event, IngestError, MAX_CHUNK_SIZE, Session};
pub use studio::{ProgramInput, ProgramMedia, StudioSource};
