//! Destination adapter instances: what the user typed in, a validated ingest (URLs and encoder
//! constraints) or a field-level error out.

use std::sync::Arc;

use wasmtime::Engine;

use super::bindings::destination::DestinationPlugin;
use super::bindings::destination::exports::backyard::plugin::destination as wit;
use super::instance::Slot;
use super::{PluginEntry, PluginError};

pub use wit::{Constraints, DestinationInfo, Ingest};

/// A problem with one field the user typed, named as the REST API names it (`rtmpUrl`, `streamKey`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Why a destination could not be validated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DestinationError {
    /// The user's input is wrong; show it next to the field.
    #[error(transparent)]
    Field(FieldError),
    /// The adapter is missing, disabled or failed.
    #[error(transparent)]
    Plugin(PluginError),
}

/// One instance of a destination adapter.
pub struct DestinationInstance {
    slot: Slot<DestinationPlugin>,
}

impl DestinationInstance {
    pub(crate) fn new(entry: Arc<PluginEntry>, engine: Engine) -> Result<DestinationInstance, PluginError> {
        Ok(DestinationInstance { slot: Slot::new(entry, engine)? })
    }

    pub fn plugin(&self) -> &str {
        &self.slot.entry.name
    }

    /// Platform id, name and default server URL.
    pub fn info(&mut self) -> Result<DestinationInfo, PluginError> {
        self.slot.call(
            |b, s| b.backyard_plugin_destination().call_info(s),
            |i| if i.platform.is_empty() { Err("empty platform id".into()) } else { Ok(()) },
        )
    }

    /// Validate the user's server URL and stream key.
    pub fn validate(&mut self, server_url: &str, stream_key: &str) -> Result<Ingest, DestinationError> {
        let req = wit::IngestRequest { server_url: server_url.to_string(), stream_key: stream_key.to_string() };
        let out = self
            .slot
            .call(
                |b, s| b.backyard_plugin_destination().call_validate(s, &req),
                |out| match out {
                    Ok(ingest) => validate_ingest(ingest),
                    Err(fe) if fe.message.is_empty() => Err("field error without a message".into()),
                    Err(_) => Ok(()),
                },
            )
            .map_err(DestinationError::Plugin)?;
        out.map_err(|fe| {
            DestinationError::Field(FieldError {
                field: match fe.field.as_str() {
                    "server-url" | "server_url" | "serverUrl" | "rtmpUrl" => "rtmpUrl".into(),
                    "stream-key" | "stream_key" | "streamKey" => "streamKey".into(),
                    other => other.to_string(),
                },
                message: fe.message,
            })
        })
    }

    pub fn last_failure(&self) -> Option<&PluginError> {
        self.slot.last_failure.as_ref()
    }
}

/// The ingest URLs must be absolute rtmp/rtmps/srt URLs and the constraints must be usable.
fn validate_ingest(i: &Ingest) -> Result<(), String> {
    for (what, u) in std::iter::once(("primary", &i.primary)).chain(i.backup.iter().map(|b| ("backup", b))) {
        let parsed = url::Url::parse(u).map_err(|e| format!("{what} ingest URL is not a URL: {e}"))?;
        if !["rtmp", "rtmps", "srt"].contains(&parsed.scheme()) {
            return Err(format!("{what} ingest URL has scheme '{}', not rtmp, rtmps or srt", parsed.scheme()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("{what} ingest URL has no host"));
        }
    }
    let c = &i.constraints;
    if c.max_width == 0 || c.max_height == 0 || c.max_fps == 0 || c.max_video_kbps == 0 || c.max_audio_kbps == 0 {
        return Err("constraints must all be positive".into());
    }
    if c.max_keyframe_interval_s == 0 {
        return Err("keyframe interval must be positive".into());
    }
    if c.video_codecs.is_empty() || c.audio_codecs.is_empty() {
        return Err("constraints must name at least one video and one audio codec".into());
    }
    Ok(())
}
