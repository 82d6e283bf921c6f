//! The Backyard plugin contract: the WIT package under `wit/` and the Rust guest SDK.
//!
//! A plugin is a crate built for `wasm32-wasip2` that depends on this one with the feature of its kind
//! (`layout`, `overlay`, `destination` or `filter`), implements that kind's `Guest` trait and exports it
//! with the kind's macro: [`layout`] and [`overlay`] open with a whole plugin each.
//!
//! Only the kind's bindings are generated (one cargo feature per kind) because a component built from
//! this crate must export exactly its own world. The host imports (`log`, `now_ms`, `config`) are in
//! [`host`] for every kind.

#![cfg_attr(not(test), warn(clippy::unwrap_used))] // outside tests, what cannot fail says why with `expect`
#![warn(missing_docs)] // `cargo doc` is the SDK's reference: every public item says what it is

extern crate self as backyard_plugin_api;

/// Re-exported so the export macros work in crates that do not depend on `wit-bindgen` themselves.
#[doc(hidden)]
pub use wit_bindgen;

pub mod geometry;

#[cfg(feature = "draw")]
pub mod draw;

pub mod url;

#[doc(hidden)]
pub mod common_bindings {
    wit_bindgen::generate!({
        world: "common",
        path: "wit",
        runtime_path: "::backyard_plugin_api::wit_bindgen::rt",
    });
}

/// What the host offers every plugin: logging, a monotonic clock and the operator's configuration.
///
/// Settings are declared in `plugin.toml` and set by the operator in `backyard.toml`; a plugin reads them
/// with the helper of their type. They are fixed for the life of an instance: a changed setting reloads
/// the plugin.
///
/// ```no_run
/// // plugin.toml:   [config.speed]  type = "integer"  default = 120
/// //                [config.scale]  type = "number"   default = 1.0
/// // backyard.toml: [plugins.my-ticker]  speed = 200
/// use backyard_plugin_api::host::{LogLevel, config_integer, config_number, log};
///
/// let speed = config_integer("speed", 120); // 200
/// let scale = config_number("scale", 1.0); // 1.0 (an integer setting is taken too)
/// log(LogLevel::Debug, &format!("speed {speed}, scale {scale}"));
/// ```
pub mod host {
    use crate::common_bindings::backyard::plugin::host as imp;
    pub use crate::common_bindings::backyard::plugin::host::{ConfigValue, LogLevel};

    /// Write a line to the host's log; the host tags it with the plugin's name.
    pub fn log(level: LogLevel, message: &str) {
        imp::log(level, message);
    }

    /// Milliseconds on the host's monotonic clock.
    pub fn now_ms() -> u64 {
        imp::now_ms()
    }

    /// The operator's value (or the manifest default) for a key of the manifest's `[config]` schema.
    pub fn config(key: &str) -> Option<ConfigValue> {
        imp::config(key)
    }

    /// A `bool` config value, or `default` when it is unset or of another type.
    pub fn config_flag(key: &str, default: bool) -> bool {
        match config(key) {
            Some(ConfigValue::Flag(b)) => b,
            _ => default,
        }
    }

    /// A `string` config value, or `default` when it is unset or of another type.
    pub fn config_text(key: &str, default: &str) -> String {
        match config(key) {
            Some(ConfigValue::Text(s)) => s,
            _ => default.to_string(),
        }
    }

    /// An `integer` config value, or `default` when it is unset or of another type.
    pub fn config_integer(key: &str, default: i64) -> i64 {
        match config(key) {
            Some(ConfigValue::Integer(i)) => i,
            _ => default,
        }
    }

    /// A `number` config value (an `integer` one is taken too), or `default` when it is unset or of another
    /// type.
    pub fn config_number(key: &str, default: f64) -> f64 {
        match config(key) {
            Some(ConfigValue::Number(n)) => n,
            Some(ConfigValue::Integer(i)) => i as f64,
            _ => default,
        }
    }
}

/// Shared records: sizes, rectangles, participants, images.
pub mod types {
    pub use crate::common_bindings::backyard::plugin::types::*;
}

/// Export a type implementing [`layout::Guest`] as this component's `layout` world.
#[cfg(feature = "layout")]
#[macro_export]
macro_rules! export_layout {
    ($t:ident) => {
        // The component glue exists on wasm32 only: a host build (`cargo build`, `cargo test`, an IDE's check)
        // compiles and links the plugin's own code without it.
        #[cfg(target_arch = "wasm32")]
        $crate::layout_bindings::export_layout!($t);
        // Elsewhere the implementation is only referenced, so the host build sees it used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            let _ = <$t as $crate::layout::Guest>::layouts;
            let _ = <$t as $crate::layout::Guest>::place;
        };
    };
}

#[cfg(feature = "layout")]
#[doc(hidden)]
pub mod layout_bindings {
    wit_bindgen::generate!({
        world: "layout-plugin",
        path: "wit",
        runtime_path: "::backyard_plugin_api::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "export_layout",
        default_bindings_module: "::backyard_plugin_api::layout_bindings",
        with: {
            "backyard:plugin/types@0.1.0": crate::common_bindings::backyard::plugin::types,
            "backyard:plugin/host@0.1.0": crate::common_bindings::backyard::plugin::host,
        },
    });
}

/// Everything a layout plugin needs: the `Guest` trait, the records and placement helpers.
///
/// A whole layout plugin:
///
/// ```
/// use backyard_plugin_api::layout::*;
///
/// struct Rows;
///
/// impl Guest for Rows {
///     fn layouts() -> Vec<LayoutInfo> {
///         vec![info("rows", "Rows", "Everyone in one row")]
///     }
///     fn place(stage: Stage) -> Result<Vec<Placement>, String> {
///         let area = canvas_rect(stage.canvas);
///         let cells = grid_cells(area, stage.participants.len(), 16.0 / 9.0, 8.0);
///         Ok(stage.participants.iter().zip(cells)
///             .map(|(p, r)| tile(&p.id, r).fit(Fit::Cover).name(true).build())
///             .collect())
///     }
/// }
///
/// backyard_plugin_api::export_layout!(Rows);
/// ```
#[cfg(feature = "layout")]
pub mod layout {
    pub use crate::geometry::*;
    pub use crate::layout_bindings::exports::backyard::plugin::layout::{Guest, LayoutInfo, Placement, Stage};
    pub use crate::types::{Fit, Participant, Rect, Size};

    /// A `LayoutInfo` from three strings.
    pub fn info(id: &str, name: &str, description: &str) -> LayoutInfo {
        LayoutInfo { id: id.into(), name: name.into(), description: description.into() }
    }

    /// Start a placement of participant `id` in `rect`; defaults: z 0, cover, square, name shown.
    pub fn tile(id: &str, rect: Rect) -> TileBuilder {
        TileBuilder(Placement {
            participant_id: id.to_string(),
            rect,
            z: 0,
            fit: Fit::Cover,
            corner_radius: 0.0,
            show_name: true,
        })
    }

    /// Builder returned by [`tile`].
    pub struct TileBuilder(Placement);

    impl TileBuilder {
        /// Stacking order: higher is drawn over lower (a picture-in-picture tile over the full one).
        pub fn z(mut self, z: i32) -> Self {
            self.0.z = z;
            self
        }
        /// `Cover` fills the tile and crops the picture; `Contain` shows all of it, letterboxed (screen shares).
        pub fn fit(mut self, fit: Fit) -> Self {
            self.0.fit = fit;
            self
        }
        /// Rounded corners, clamped to half the shorter side.
        pub fn radius(mut self, r: f32) -> Self {
            let max = self.0.rect.width.min(self.0.rect.height) / 2.0;
            self.0.corner_radius = r.clamp(0.0, max.max(0.0));
            self
        }
        /// Whether the compositor writes the participant's name on the tile.
        pub fn name(mut self, show: bool) -> Self {
            self.0.show_name = show;
            self
        }
        /// The placement.
        pub fn build(self) -> Placement {
            self.0
        }
    }

    /// The first screen share on stage, if any.
    pub fn screen_share(stage: &Stage) -> Option<&Participant> {
        stage.participants.iter().find(|p| p.screen_share)
    }

    /// The stage's active speaker if they are on stage, else the first participant speaking, else the first.
    pub fn focus(stage: &Stage) -> Option<&Participant> {
        let by_id = |id: &str| stage.participants.iter().find(|p| p.id == id);
        stage
            .active_speaker
            .as_deref()
            .and_then(by_id)
            .or_else(|| stage.participants.iter().find(|p| p.speaking))
            .or_else(|| stage.participants.first())
    }
}

/// Export a type implementing [`overlay::Guest`] as this component's `overlay` world.
#[cfg(feature = "overlay")]
#[macro_export]
macro_rules! export_overlay {
    ($t:ident) => {
        // The component glue exists on wasm32 only: a host build (`cargo build`, `cargo test`, an IDE's check)
        // compiles and links the plugin's own code without it.
        #[cfg(target_arch = "wasm32")]
        $crate::overlay_bindings::export_overlay!($t);
        // Elsewhere the implementation is only referenced, so the host build sees it used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            let _ = <$t as $crate::overlay::Guest>::overlays;
            let _ = <$t as $crate::overlay::Guest>::render;
        };
    };
}

#[cfg(feature = "overlay")]
#[doc(hidden)]
pub mod overlay_bindings {
    wit_bindgen::generate!({
        world: "overlay-plugin",
        path: "wit",
        runtime_path: "::backyard_plugin_api::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "export_overlay",
        default_bindings_module: "::backyard_plugin_api::overlay_bindings",
        with: {
            "backyard:plugin/types@0.1.0": crate::common_bindings::backyard::plugin::types,
            "backyard:plugin/host@0.1.0": crate::common_bindings::backyard::plugin::host,
        },
    });
}

/// Everything an overlay plugin needs.
///
/// A whole overlay plugin: it shows the `text` prop in a box, and answers `Unchanged` while its inputs stay
/// the same (the host then keeps the layer it has, so nothing is drawn or copied):
///
/// ```
/// use std::sync::Mutex;
///
/// use backyard_plugin_api::draw::{Canvas, Color, Weight};
/// use backyard_plugin_api::overlay::*;
///
/// struct Caption;
///
/// static SEEN: Mutex<Option<ChangeTracker>> = Mutex::new(None);
///
/// impl Guest for Caption {
///     fn overlays() -> Vec<OverlayInfo> {
///         vec![info("caption", "Caption", "A line of text", &["text"])]
///     }
///     fn render(req: OverlayRequest) -> Result<Rendered, String> {
///         let mut seen = SEEN.lock().map_err(|_| "state poisoned")?;
///         if !seen.get_or_insert_with(ChangeTracker::default).changed(&req.overlay, input_hash(&req, 0)) {
///             return Ok(Rendered::Unchanged);
///         }
///         let Some(text) = prop(&req, "text") else { return Ok(Rendered::Hidden) };
///         let mut c = Canvas::new(400, 48);
///         c.fill_rounded_rect(0, 0, 400, 48, 8.0, Color::rgba(0, 0, 0, 160));
///         c.text(12.0, 32.0, text, 24.0, Weight::Regular, Color::WHITE);
///         Ok(Rendered::Layer(Layer { x: 20, y: 20, image: c.into_image() }))
///     }
/// }
///
/// backyard_plugin_api::export_overlay!(Caption);
/// ```
#[cfg(feature = "overlay")]
pub mod overlay {
    pub use crate::overlay_bindings::exports::backyard::plugin::overlay::{
        Guest, Layer, NamedImage, OverlayInfo, OverlayRequest, Prop, Rendered,
    };
    pub use crate::types::{Image, Size};

    /// An `OverlayInfo`.
    pub fn info(id: &str, name: &str, description: &str, props: &[&str]) -> OverlayInfo {
        OverlayInfo {
            id: id.into(),
            name: name.into(),
            description: description.into(),
            props: props.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The value of prop `key`, if the host sent it.
    pub fn prop<'a>(req: &'a OverlayRequest, key: &str) -> Option<&'a str> {
        req.props.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    /// The image sent under `key`, if any.
    pub fn image<'a>(req: &'a OverlayRequest, key: &str) -> Option<&'a Image> {
        req.images.iter().find(|i| i.key == key).map(|i| &i.image)
    }

    /// Remembers the inputs an overlay was last drawn from, so `render` can answer `unchanged`.
    ///
    /// The key is whatever the drawing depends on (props, canvas, a time bucket); compare with
    /// [`ChangeTracker::changed`] before drawing.
    #[derive(Default)]
    pub struct ChangeTracker {
        last: std::collections::HashMap<String, u64>,
    }

    impl ChangeTracker {
        /// True (and remembers `key`) when `key` differs from the last one seen for `overlay`.
        pub fn changed(&mut self, overlay: &str, key: u64) -> bool {
            let prev = self.last.insert(overlay.to_string(), key);
            prev != Some(key)
        }
    }

    /// A stable hash of the request's overlay id, canvas, props, images and an extra value (e.g. a
    /// time bucket for animations).
    pub fn input_hash(req: &OverlayRequest, extra: u64) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        req.overlay.hash(&mut h);
        (req.canvas.width, req.canvas.height).hash(&mut h);
        for p in &req.props {
            (&p.key, &p.value).hash(&mut h);
        }
        for i in &req.images {
            (&i.key, i.image.width, i.image.height, &i.image.rgba).hash(&mut h);
        }
        extra.hash(&mut h);
        h.finish()
    }
}

/// Export a type implementing [`destination::Guest`] as this component's `destination` world.
#[cfg(feature = "destination")]
#[macro_export]
macro_rules! export_destination {
    ($t:ident) => {
        // The component glue exists on wasm32 only: a host build (`cargo build`, `cargo test`, an IDE's check)
        // compiles and links the plugin's own code without it.
        #[cfg(target_arch = "wasm32")]
        $crate::destination_bindings::export_destination!($t);
        // Elsewhere the implementation is only referenced, so the host build sees it used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            let _ = <$t as $crate::destination::Guest>::info;
            let _ = <$t as $crate::destination::Guest>::validate;
        };
    };
}

#[cfg(feature = "destination")]
#[doc(hidden)]
pub mod destination_bindings {
    wit_bindgen::generate!({
        world: "destination-plugin",
        path: "wit",
        runtime_path: "::backyard_plugin_api::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "export_destination",
        default_bindings_module: "::backyard_plugin_api::destination_bindings",
        with: {
            "backyard:plugin/types@0.1.0": crate::common_bindings::backyard::plugin::types,
            "backyard:plugin/host@0.1.0": crate::common_bindings::backyard::plugin::host,
        },
    });
}

/// Everything a destination adapter needs, including the allow-listed HTTP import.
#[cfg(feature = "destination")]
pub mod destination {
    pub use crate::destination_bindings::backyard::plugin::http;
    pub use crate::destination_bindings::exports::backyard::plugin::destination::{
        Constraints, DestinationInfo, FieldError, Guest, Ingest, IngestRequest,
    };

    /// A `FieldError` for `field`.
    pub fn field_error(field: &str, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }

    /// H.264 + AAC, the codecs every RTMP platform takes.
    pub fn h264_aac() -> (Vec<String>, Vec<String>) {
        (vec!["h264".into()], vec!["aac".into()])
    }

    /// H.264 + AAC constraints with the given limits.
    pub fn h264_aac_constraints(
        max_width: u32,
        max_height: u32,
        max_fps: u32,
        max_video_kbps: u32,
        max_audio_kbps: u32,
        max_keyframe_interval_s: u32,
    ) -> Constraints {
        let (video_codecs, audio_codecs) = h264_aac();
        Constraints {
            max_width,
            max_height,
            max_fps,
            max_video_kbps,
            max_audio_kbps,
            max_keyframe_interval_s,
            video_codecs,
            audio_codecs,
        }
    }

    /// `server` and `key` joined with exactly one `/`, as RTMP clients do.
    pub fn join_key(server: &str, key: &str) -> String {
        if key.is_empty() {
            return server.trim_end_matches('/').to_string();
        }
        format!("{}/{}", server.trim_end_matches('/'), key)
    }

    /// A stream key as typed, trimmed; rejects empty keys, spaces, control characters and slashes.
    pub fn clean_key(key: &str) -> Result<&str, FieldError> {
        let k = key.trim();
        if k.is_empty() {
            return Err(field_error("stream-key", "is required"));
        }
        if k.len() > 512 {
            return Err(field_error("stream-key", "is longer than 512 characters"));
        }
        if k.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
            return Err(field_error("stream-key", "must not contain spaces, slashes or control characters"));
        }
        Ok(k)
    }
}

/// Export a type implementing [`filter::Guest`] as this component's `filter` world.
#[cfg(feature = "filter")]
#[macro_export]
macro_rules! export_filter {
    ($t:ident) => {
        // The component glue exists on wasm32 only: a host build (`cargo build`, `cargo test`, an IDE's check)
        // compiles and links the plugin's own code without it.
        #[cfg(target_arch = "wasm32")]
        $crate::filter_bindings::export_filter!($t);
        // Elsewhere the implementation is only referenced, so the host build sees it used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            let _ = <$t as $crate::filter::Guest>::apply;
        };
    };
}

#[cfg(feature = "filter")]
#[doc(hidden)]
pub mod filter_bindings {
    wit_bindgen::generate!({
        world: "filter-plugin",
        path: "wit",
        runtime_path: "::backyard_plugin_api::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "export_filter",
        default_bindings_module: "::backyard_plugin_api::filter_bindings",
        with: {
            "backyard:plugin/types@0.1.0": crate::common_bindings::backyard::plugin::types,
            "backyard:plugin/host@0.1.0": crate::common_bindings::backyard::plugin::host,
        },
    });
}

/// Everything a filter plugin needs: the host-owned `Frame` and the `Guest` trait.
#[cfg(feature = "filter")]
pub mod filter {
    pub use crate::filter_bindings::backyard::plugin::frames::Frame;
    pub use crate::filter_bindings::exports::backyard::plugin::filter::Guest;
}
