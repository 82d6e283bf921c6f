//! Layout instances: stage in, validated placements out; a failure serves the last good placements.

use std::sync::Arc;

use wasmtime::Engine;

use super::bindings::layout::LayoutPlugin;
use super::instance::Slot;
use super::{CallFailure, PluginEntry, PluginError};

pub use super::bindings::layout::exports::backyard::plugin::layout::{LayoutInfo, Placement, Stage};
pub use super::bindings::types::{Fit, Participant, Rect, Size};

/// Slack for rounding when checking that a rectangle lies inside the canvas, in pixels.
const EDGE_SLACK: f32 = 0.5;

/// One instance of a layout plugin, owned by one program (not shared between threads).
pub struct LayoutInstance {
    slot: Slot<LayoutPlugin>,
    /// Placements of the last call that succeeded.
    last_good: Option<Vec<Placement>>,
}

impl LayoutInstance {
    pub(crate) fn new(entry: Arc<PluginEntry>, engine: Engine) -> Result<LayoutInstance, PluginError> {
        Ok(LayoutInstance { slot: Slot::new(entry, engine)?, last_good: None })
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.slot.entry.name
    }

    /// The layouts this plugin offers.
    pub fn layouts(&mut self) -> Result<Vec<LayoutInfo>, PluginError> {
        self.slot.call(
            |b, s| b.backyard_plugin_layout().call_layouts(s),
            |list| {
                if list.iter().any(|l| l.id.is_empty()) { Err("a layout has an empty id".into()) } else { Ok(()) }
            },
        )
    }

    /// Placements for `stage`. On any failure (trap, timeout, out-of-memory, invalid output, plugin
    /// error) the last good placements are returned, minus participants no longer on stage; with no
    /// last good result the error is returned. The failure is in [`Self::last_failure`] either way.
    pub fn place(&mut self, stage: &Stage) -> Result<Vec<Placement>, PluginError> {
        let plugin = self.slot.entry.name.clone();
        let result = self.slot.call(
            |b, s| b.backyard_plugin_layout().call_place(s, stage),
            |out| match out {
                Ok(p) => validate(stage, p),
                Err(_) => Ok(()),
            },
        );
        match result {
            Ok(Ok(placements)) => {
                self.last_good = Some(placements.clone());
                Ok(placements)
            }
            Ok(Err(message)) => {
                // The plugin refused (e.g. an unknown layout id): not a crash, so not counted.
                let err = PluginError::Call { plugin: plugin.to_string(), failure: CallFailure::Plugin(message) };
                self.slot.last_failure = Some(err.clone());
                self.fallback(stage, err)
            }
            Err(err) => self.fallback(stage, err),
        }
    }

    fn fallback(&self, stage: &Stage, err: PluginError) -> Result<Vec<Placement>, PluginError> {
        match &self.last_good {
            Some(last) => Ok(last
                .iter()
                .filter(|p| stage.participants.iter().any(|q| q.id == p.participant_id))
                .cloned()
                .collect()),
            None => Err(err),
        }
    }

    /// The error of the last call if it failed (cleared by a call that succeeds).
    pub fn last_failure(&self) -> Option<&PluginError> {
        self.slot.last_failure.as_ref()
    }
}

/// Placements must name participants on stage (each once) and lie inside the canvas, with finite,
/// positive sizes and corner radii no larger than half the shorter side.
pub(crate) fn validate(stage: &Stage, placements: &[Placement]) -> Result<(), String> {
    let (w, h) = (stage.canvas.width as f32, stage.canvas.height as f32);
    for (i, p) in placements.iter().enumerate() {
        if !stage.participants.iter().any(|q| q.id == p.participant_id) {
            return Err(format!("placement {i} names '{}', who is not on stage", p.participant_id));
        }
        if placements[..i].iter().any(|q| q.participant_id == p.participant_id) {
            return Err(format!("'{}' is placed twice", p.participant_id));
        }
        let r = &p.rect;
        if ![r.x, r.y, r.width, r.height, p.corner_radius].iter().all(|v| v.is_finite()) {
            return Err(format!("placement of '{}' has a non-finite number", p.participant_id));
        }
        if r.width <= 0.0 || r.height <= 0.0 {
            return Err(format!("placement of '{}' is empty ({}x{})", p.participant_id, r.width, r.height));
        }
        if r.x < -EDGE_SLACK || r.y < -EDGE_SLACK || r.x + r.width > w + EDGE_SLACK || r.y + r.height > h + EDGE_SLACK {
            return Err(format!(
                "placement of '{}' ({}, {}, {}x{}) is outside the {}x{} canvas",
                p.participant_id, r.x, r.y, r.width, r.height, w, h
            ));
        }
        if p.corner_radius < 0.0 || p.corner_radius > r.width.min(r.height) / 2.0 + EDGE_SLACK {
            return Err(format!("corner radius {} of '{}' is out of range", p.corner_radius, p.participant_id));
        }
    }
    Ok(())
}
