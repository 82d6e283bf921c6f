//! Filter instances: one host-owned RGBA frame per call, read once and written once by the guest.

use std::sync::Arc;

use wasmtime::Engine;

use super::bindings::filter::FilterPlugin;
use super::instance::Slot;
use super::state::FrameSlot;
use super::{CallFailure, PluginEntry, PluginError};

/// One instance of a filter plugin.
pub struct FilterInstance {
    slot: Slot<FilterPlugin>,
}

impl FilterInstance {
    pub(crate) fn new(entry: Arc<PluginEntry>, engine: Engine) -> Result<FilterInstance, PluginError> {
        Ok(FilterInstance { slot: Slot::new(entry, engine)? })
    }

    pub fn plugin(&self) -> &str {
        &self.slot.entry.name
    }

    /// Filter `frame` (`width * height * 4` RGBA bytes) in place.
    ///
    /// The pixels move into the guest (one copy) and the guest's output moves back (one copy). On a
    /// failure before the guest read the frame it is left as it was; after, the frame is left black
    /// rather than half-processed, and the error is returned so the compositor can drop the filter
    /// for this frame.
    pub fn apply(&mut self, frame: &mut Vec<u8>, width: u32, height: u32, time_ms: u64) -> Result<(), PluginError> {
        let want = width as usize * height as usize * 4;
        if frame.len() != want {
            return Err(PluginError::Call {
                plugin: self.plugin().to_string(),
                failure: CallFailure::InvalidOutput(format!("host frame is {} bytes, not {want}", frame.len())),
            });
        }
        let pixels = std::mem::take(frame);
        let mut back: Option<FrameSlot> = None;
        let result = self.slot.call(
            |b, s| {
                let res =
                    s.data_mut().push_frame(FrameSlot { width, height, rgba: pixels, taken: false, written: false })?;
                let borrowed = wasmtime::component::Resource::<FrameSlot>::new_borrow(res.rep());
                let out = b.backyard_plugin_filter().call_apply(&mut *s, borrowed, time_ms);
                back = Some(s.data_mut().take_frame(res)?);
                out
            },
            |_| Ok(()),
        );
        let slot = back.unwrap_or(FrameSlot { width, height, rgba: Vec::new(), taken: true, written: false });
        let outcome = match result {
            Ok(Ok(())) if slot.taken && !slot.written => Err(PluginError::Call {
                plugin: self.plugin().to_string(),
                failure: CallFailure::InvalidOutput("filter read the frame but never wrote it".into()),
            }),
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => {
                Err(PluginError::Call { plugin: self.plugin().to_string(), failure: CallFailure::Plugin(message) })
            }
            Err(e) => Err(e),
        };
        *frame = if slot.rgba.len() == want { slot.rgba } else { vec![0; want] };
        if let Err(e) = &outcome {
            self.slot.last_failure = Some(e.clone());
        }
        outcome
    }

    pub fn last_failure(&self) -> Option<&PluginError> {
        self.slot.last_failure.as_ref()
    }
}
