//! {{name}}: a Backyard overlay plugin. It draws the `text` prop as a badge in a corner of the program;
//! the operator picks the corner (`corner` in `[plugins.{{name}}]` of `backyard.toml`).
//!
//! Build: `cargo build --release --target wasm32-wasip2`. Test: `cargo test`.

use std::sync::Mutex;

use backyard_plugin_api::draw::{Canvas, Color, Weight, ellipsize, measure};
use backyard_plugin_api::host::{self, LogLevel};
use backyard_plugin_api::overlay::*;

struct Plugin;

/// What each overlay was last drawn from. The host keeps the last layer it was given, so when nothing the
/// drawing depends on changed, `render` answers `Unchanged` and the host reuses that layer.
static SEEN: Mutex<Option<ChangeTracker>> = Mutex::new(None);

impl Guest for Plugin {
    /// The overlays this plugin offers, with the props each reads. The studio's host sets the props; an
    /// overlay's `id` must not be offered by another installed plugin.
    fn overlays() -> Vec<OverlayInfo> {
        vec![info("{{name}}", "{{title}}", "A text badge in a corner", &["text"])]
    }

    /// Called for every frame while the overlay is on the program (30 times a second).
    fn render(req: OverlayRequest) -> Result<Rendered, String> {
        // The operator's settings are fixed for the life of an instance (a change reloads the plugin), so
        // only the request decides whether the badge changed.
        let key = input_hash(&req, 0);
        {
            let mut seen = SEEN.lock().map_err(|_| "state poisoned")?;
            if !seen.get_or_insert_with(ChangeTracker::default).changed(&req.overlay, key) {
                return Ok(Rendered::Unchanged);
            }
        }
        let corner = host::config_text("corner", "top-left");
        Ok(match prop(&req, "text") {
            Some(text) if !text.trim().is_empty() => {
                host::log(LogLevel::Debug, &format!("drawing '{text}' at {corner}"));
                Rendered::Layer(badge(text, req.canvas, &corner))
            }
            _ => Rendered::Hidden,
        })
    }
}

/// Draw the badge: a pure function, so it is tested without a host.
pub fn badge(text: &str, canvas: Size, corner: &str) -> Layer {
    let px = (canvas.height as f32 / 24.0).max(10.0);
    let text = ellipsize(text, px, Weight::Bold, canvas.width as f32 * 0.6);
    let w = (measure(&text, px, Weight::Bold) + px) as u32;
    let h = (px * 1.6) as u32;
    let mut c = Canvas::new(w, h);
    c.fill_rounded_rect(0, 0, w as i32, h as i32, px / 3.0, Color::rgba(0, 0, 0, 180));
    c.text(px / 2.0, px * 1.15, &text, px, Weight::Bold, Color::WHITE);
    let margin = (canvas.height / 30) as i32;
    let right = canvas.width as i32 - w as i32 - margin;
    let bottom = canvas.height as i32 - h as i32 - margin;
    let (x, y) = match corner {
        "top-right" => (right, margin),
        "bottom-left" => (margin, bottom),
        "bottom-right" => (right, bottom),
        _ => (margin, margin),
    };
    Layer { x, y, image: c.into_image() }
}

backyard_plugin_api::export_overlay!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Size = Size { width: 1280, height: 720 };

    #[test]
    fn the_badge_is_opaque_where_it_draws() {
        let l = badge("Hello", HD, "top-left");
        assert_eq!(l.image.rgba.len() as u32, l.image.width * l.image.height * 4);
        assert!(l.image.rgba.chunks(4).any(|p| p[3] > 0));
    }

    #[test]
    fn the_operator_picks_the_corner() {
        let tl = badge("Hello", HD, "top-left");
        let br = badge("Hello", HD, "bottom-right");
        assert!(tl.x < 100 && tl.y < 100);
        assert!(br.x as u32 + br.image.width > 1180 && br.y as u32 + br.image.height > 620);
    }
}
