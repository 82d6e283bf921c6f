//! Overlay instances: request in, validated RGBA layer out, cached per overlay id so the host only
//! re-composites when the plugin says something changed.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::Engine;

use super::bindings::overlay::OverlayPlugin;
use super::bindings::overlay::exports::backyard::plugin::overlay::Rendered;
use super::instance::Slot;
use super::{CallFailure, PluginEntry, PluginError};

pub use super::bindings::overlay::exports::backyard::plugin::overlay::{
    Layer, NamedImage, OverlayInfo, OverlayRequest, Prop,
};
pub use super::bindings::types::Image;

/// What an overlay shows now.
#[derive(Debug)]
pub struct OverlayOutput<'a> {
    /// The layer to blend, or `None` when the overlay is hidden.
    pub layer: Option<&'a Layer>,
    /// The layer differs from the one returned by the previous call for this overlay id.
    pub changed: bool,
}

/// One instance of an overlay plugin.
pub struct OverlayInstance {
    slot: Slot<OverlayPlugin>,
    /// Last good layer per overlay id (`None` = hidden). Also the fallback when a call fails.
    cache: HashMap<String, Option<Layer>>,
}

impl OverlayInstance {
    pub(crate) fn new(entry: Arc<PluginEntry>, engine: Engine) -> Result<OverlayInstance, PluginError> {
        Ok(OverlayInstance { slot: Slot::new(entry, engine)?, cache: HashMap::new() })
    }

    pub fn plugin(&self) -> &str {
        &self.slot.entry.name
    }

    /// The overlays this plugin offers.
    pub fn overlays(&mut self) -> Result<Vec<OverlayInfo>, PluginError> {
        self.slot.call(|b, s| b.backyard_plugin_overlay().call_overlays(s), |_| Ok(()))
    }

    /// Render `req.overlay`. On failure the cached layer for that overlay is served (error in
    /// [`Self::last_failure`]); with nothing cached the error is returned.
    pub fn render(&mut self, req: &OverlayRequest) -> Result<OverlayOutput<'_>, PluginError> {
        let has_cache = self.cache.contains_key(&req.overlay);
        let result = self.slot.call(
            |b, s| b.backyard_plugin_overlay().call_render(s, req),
            |out| match out {
                Ok(Rendered::Layer(layer)) => validate(req, layer),
                Ok(Rendered::Unchanged) if !has_cache => Err("'unchanged' before any layer was drawn".into()),
                _ => Ok(()),
            },
        );
        let key = req.overlay.clone();
        match result {
            Ok(Ok(Rendered::Layer(layer))) => {
                self.cache.insert(key.clone(), Some(layer));
                Ok(OverlayOutput { layer: self.cache[&key].as_ref(), changed: true })
            }
            Ok(Ok(Rendered::Hidden)) => {
                let changed = !matches!(self.cache.insert(key.clone(), None), Some(None));
                Ok(OverlayOutput { layer: None, changed })
            }
            Ok(Ok(Rendered::Unchanged)) => Ok(OverlayOutput { layer: self.cache[&key].as_ref(), changed: false }),
            Ok(Err(message)) => {
                let err =
                    PluginError::Call { plugin: self.plugin().to_string(), failure: CallFailure::Plugin(message) };
                self.slot.last_failure = Some(err.clone());
                self.fallback(&key, err)
            }
            Err(err) => self.fallback(&key, err),
        }
    }

    fn fallback(&self, key: &str, err: PluginError) -> Result<OverlayOutput<'_>, PluginError> {
        match self.cache.get(key) {
            Some(layer) => Ok(OverlayOutput { layer: layer.as_ref(), changed: false }),
            None => Err(err),
        }
    }

    pub fn last_failure(&self) -> Option<&PluginError> {
        self.slot.last_failure.as_ref()
    }
}

/// A layer must be non-empty, lie wholly inside the canvas and carry exactly `width * height * 4` bytes.
pub(crate) fn validate(req: &OverlayRequest, layer: &Layer) -> Result<(), String> {
    let img = &layer.image;
    let want = img.width as u64 * img.height as u64 * 4;
    if img.rgba.len() as u64 != want {
        return Err(format!("layer is {}x{} but carries {} bytes, not {want}", img.width, img.height, img.rgba.len()));
    }
    if img.width == 0 || img.height == 0 {
        return Err("layer is empty (use `hidden`)".into());
    }
    let (x, y) = (layer.x as i64, layer.y as i64);
    if x < 0
        || y < 0
        || x + img.width as i64 > req.canvas.width as i64
        || y + img.height as i64 > req.canvas.height as i64
    {
        return Err(format!(
            "layer at ({x}, {y}) size {}x{} is outside the {}x{} canvas",
            img.width, img.height, req.canvas.width, req.canvas.height
        ));
    }
    Ok(())
}
