//! The Backyard plugin contract: the WIT package under `wit/` and the Rust guest SDK.
