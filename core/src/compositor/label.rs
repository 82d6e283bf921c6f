//! Name labels: the participant's name in white on a dark translucent box at a tile's bottom-left corner,
//! and the name under the avatar of a name card. Rendered once per (name, size, position) with the
//! embedded DejaVu Sans and blended like any overlay.

use std::sync::OnceLock;

use super::overlay::{OverlayLayer, PreparedOverlay};
use super::placement::Rect;

fn font() -> &'static fontdue::Font {
    static FONT: OnceLock<fontdue::Font> = OnceLock::new();
    FONT.get_or_init(|| {
        // unwrap: the embedded font is a known-good TTF (the same one overlays and previews use).
        fontdue::Font::from_bytes(
            include_bytes!("../../../plugin-api/fonts/DejaVuSans-Bold.ttf") as &[u8],
            fontdue::FontSettings::default(),
        )
        .expect("the embedded font is a known-good TTF (the same one overlays and previews use)")
    })
}

/// Text width in pixels at `px`.
fn measure(text: &str, px: f32) -> f32 {
    text.chars().map(|c| font().metrics(c, px).advance_width).sum()
}

/// `text`, shortened with "…" to fit `max_width`.
fn fit_text(text: &str, px: f32, max_width: f32) -> String {
    if measure(text, px) <= max_width {
        return text.to_owned();
    }
    let mut out: String = text.to_owned();
    while !out.is_empty() && measure(&format!("{out}…"), px) > max_width {
        out.pop();
    }
    format!("{out}…")
}

/// Renders `text` as RGBA, `padding` around it, over `background` (straight RGBA).
fn render(text: &str, px: f32, padding: u32, background: [u8; 4]) -> (u32, u32, Vec<u8>) {
    let f = font();
    let line = f.horizontal_line_metrics(px);
    let (ascent, descent) = line.map_or((px * 0.8, px * -0.2), |l| (l.ascent, l.descent));
    let width = measure(text, px).ceil() as u32 + 2 * padding;
    let height = (ascent - descent).ceil() as u32 + 2 * padding;
    let mut rgba = background.repeat((width * height) as usize);
    let baseline = padding as f32 + ascent;
    let mut pen = padding as f32;
    for c in text.chars() {
        let (m, coverage) = f.rasterize(c, px);
        let x0 = (pen + m.xmin as f32).round() as i64;
        let y0 = (baseline - m.height as f32 - m.ymin as f32).round() as i64;
        for gy in 0..m.height as i64 {
            for gx in 0..m.width as i64 {
                let (x, y) = (x0 + gx, y0 + gy);
                if x < 0 || y < 0 || x >= width as i64 || y >= height as i64 {
                    continue;
                }
                let a = coverage[(gy * m.width as i64 + gx) as usize] as u32;
                let i = ((y * width as i64 + x) * 4) as usize;
                // White text over the background, both straight alpha.
                for ch in 0..3 {
                    rgba[i + ch] = ((255 * a + rgba[i + ch] as u32 * (255 - a)) / 255) as u8;
                }
                rgba[i + 3] = (a + rgba[i + 3] as u32 * (255 - a) / 255).min(255) as u8;
            }
        }
        pen += m.advance_width;
    }
    (width, height, rgba)
}

/// Font size for a tile of this height (none for tiles too small to carry a readable label).
fn label_px(tile: Rect) -> Option<f32> {
    (tile.height >= 90 && tile.width >= 120).then(|| (tile.height as f32 / 16.0).clamp(12.0, 36.0))
}

/// The name label of a live tile: bottom-left, inside the tile.
pub(crate) fn tile_label(name: &str, tile: Rect) -> Option<PreparedOverlay> {
    let px = label_px(tile)?;
    let margin = (px / 2.0) as u32;
    let padding = (px / 3.0) as u32;
    let text = fit_text(name, px, tile.width.saturating_sub(2 * margin + 2 * padding) as f32);
    let (full_w, full_h, rgba) = render(&text, px, padding, [0, 0, 0, 150]);
    let (w, h) = (full_w.min(tile.width), full_h.min(tile.height));
    let rgba = crop(&rgba, w, h, full_w);
    let x = tile.x + margin as i32;
    let y = tile.y + tile.height as i32 - margin as i32 - h as i32;
    PreparedOverlay::new(&OverlayLayer { id: format!("label:{name}"), rect: Rect::new(x, y, w, h), rgba, z: 0 }).ok()
}

/// The name under the avatar disc of a name card.
pub(crate) fn card_name(name: &str, tile: Rect) -> Option<PreparedOverlay> {
    let px = label_px(tile)? * 1.3;
    let text = fit_text(name, px, tile.width.saturating_sub(16) as f32);
    let (full_w, full_h, rgba) = render(&text, px, 2, [0, 0, 0, 0]);
    let (w, h) = (full_w.min(tile.width), full_h.min(tile.height));
    let rgba = crop(&rgba, w, h, full_w);
    let radius = (tile.width.min(tile.height) / 5) as i32;
    let x = tile.x + (tile.width as i32 - w as i32) / 2;
    let y = (tile.y + tile.height as i32 / 2 + radius + (px / 2.0) as i32).min(tile.y + tile.height as i32 - h as i32);
    PreparedOverlay::new(&OverlayLayer { id: format!("card:{name}"), rect: Rect::new(x, y, w, h), rgba, z: 0 }).ok()
}

/// The top-left `w`×`h` of an RGBA buffer whose rows are `full_w` wide.
fn crop(rgba: &[u8], w: u32, h: u32, full_w: u32) -> Vec<u8> {
    if w == full_w {
        return rgba[..(w * h * 4) as usize].to_vec();
    }
    (0..h as usize)
        .flat_map(|row| rgba[row * full_w as usize * 4..(row * full_w as usize + w as usize) * 4].to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::VideoFrame;

    #[test]
    fn label_sits_in_the_bottom_left_and_has_white_text() {
        let tile = Rect::new(0, 0, 640, 360);
        let label = tile_label("Ada Lovelace", tile).expect("label for a large tile");
        let mut canvas = VideoFrame::filled(640, 360, [60, 128, 128]);
        label.blend(&mut canvas);
        let y = canvas.planes().0;
        let bright = y.iter().filter(|&&v| v > 200).count();
        assert!(bright > 50, "text pixels: {bright}");
        // Nothing touched in the top half.
        assert!(y[..640 * 180].iter().all(|&v| v == 60));
    }

    #[test]
    fn long_names_are_shortened_and_tiny_tiles_get_none() {
        assert!(tile_label("x", Rect::new(0, 0, 64, 36)).is_none());
        let long = "A very long participant name that does not fit";
        let s = fit_text(long, 20.0, 150.0);
        assert!(s.ends_with('…') && measure(&s, 20.0) <= 150.0, "{s}");
    }
}
