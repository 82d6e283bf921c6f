//! Software drawing for overlays: an RGBA canvas with filled (rounded) rectangles, scaled images and
//! anti-aliased text in the embedded DejaVu fonts: Sans, Serif and Sans Mono, each regular and bold (Bitstream
//! Vera licence, `fonts/LICENSE-DejaVu.txt`). Text functions take a [`Face`]; a [`Weight`] alone is that weight of
//! DejaVu Sans.
//!
//! Pixels are straight (not premultiplied) RGBA, as the WIT `image` record carries them.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

use crate::types::Image;

/// The embedded fonts, by family then weight.
static TTF: [[&[u8]; 2]; 3] = [
    [include_bytes!("../fonts/DejaVuSans.ttf"), include_bytes!("../fonts/DejaVuSans-Bold.ttf")],
    [include_bytes!("../fonts/DejaVuSerif.ttf"), include_bytes!("../fonts/DejaVuSerif-Bold.ttf")],
    [include_bytes!("../fonts/DejaVuSansMono.ttf"), include_bytes!("../fonts/DejaVuSansMono-Bold.ttf")],
];

/// Which weight of a font to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Regular.
    Regular,
    /// Bold.
    Bold,
}

/// Which of the embedded fonts to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// DejaVu Sans.
    #[default]
    Sans,
    /// DejaVu Serif.
    Serif,
    /// DejaVu Sans Mono.
    Mono,
}

impl Family {
    /// The family a prop names: `sans`, `serif` or `mono` (any case); `None` for anything else.
    pub fn parse(s: &str) -> Option<Family> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sans" => Some(Family::Sans),
            "serif" => Some(Family::Serif),
            "mono" => Some(Family::Mono),
            _ => None,
        }
    }
}

/// A font family at a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Face {
    /// Which font.
    pub family: Family,
    /// Which of its weights.
    pub weight: Weight,
}

impl Face {
    /// `family` at `weight`.
    pub const fn new(family: Family, weight: Weight) -> Face {
        Face { family, weight }
    }
}

/// A weight alone is DejaVu Sans at that weight.
impl From<Weight> for Face {
    fn from(weight: Weight) -> Face {
        Face { family: Family::Sans, weight }
    }
}

fn font(face: Face) -> &'static FontRef<'static> {
    static FONTS: [[OnceLock<FontRef<'static>>; 2]; 3] = [const { [const { OnceLock::new() }; 2] }; 3];
    let (f, w) = (face.family as usize, face.weight as usize);
    let (cell, bytes) = (&FONTS[f][w], TTF[f][w]);
    // Parsing is lazy (tables are read on use), so the first call stays within a frame's deadline.
    cell.get_or_init(|| {
        FontRef::try_from_slice(bytes)
            .expect("the embedded font is a known-good TTF; a broken one fails every test at once")
    })
}

/// The scale at which the font's em square is `px` pixels (as CSS `font-size`).
fn scale(f: &FontRef<'static>, px: f32) -> PxScale {
    f.pt_to_px_scale(px).unwrap_or(PxScale::from(px))
}

/// An sRGB colour with straight alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    /// Red, 0 to 255.
    pub r: u8,
    /// Green, 0 to 255.
    pub g: u8,
    /// Blue, 0 to 255.
    pub b: u8,
    /// Opacity, 0 (transparent) to 255 (opaque).
    pub a: u8,
}

impl Color {
    /// Opaque white.
    pub const WHITE: Color = Color::rgba(255, 255, 255, 255);
    /// Opaque black.
    pub const BLACK: Color = Color::rgba(0, 0, 0, 255);
    /// Nothing at all.
    pub const TRANSPARENT: Color = Color::rgba(0, 0, 0, 0);

    /// A colour from its four channels.
    pub const fn rgba(r: u8, g: u8, b: u8, a: u8) -> Color {
        Color { r, g, b, a }
    }

    /// `#rgb`, `#rrggbb` or `#rrggbbaa` (the `#` is optional).
    pub fn parse(s: &str) -> Option<Color> {
        let h = s.trim().trim_start_matches('#');
        let byte = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
        let nib = |i: usize| u8::from_str_radix(h.get(i..i + 1)?, 16).ok().map(|v| v * 17);
        match h.len() {
            3 => Some(Color::rgba(nib(0)?, nib(1)?, nib(2)?, 255)),
            6 => Some(Color::rgba(byte(0)?, byte(2)?, byte(4)?, 255)),
            8 => Some(Color::rgba(byte(0)?, byte(2)?, byte(4)?, byte(6)?)),
            _ => None,
        }
    }

    /// The same colour with alpha multiplied by `f` (0..=1).
    pub fn fade(self, f: f32) -> Color {
        Color { a: (self.a as f32 * f.clamp(0.0, 1.0)).round() as u8, ..self }
    }
}

/// An RGBA pixel buffer to draw into.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes, straight alpha.
    pub rgba: Vec<u8>,
}

impl Canvas {
    /// A transparent canvas.
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas { width, height, rgba: vec![0; width as usize * height as usize * 4] }
    }

    /// Hand the pixels over as a WIT image.
    pub fn into_image(self) -> Image {
        Image { width: self.width, height: self.height, rgba: self.rgba }
    }

    /// Composite `c` over the pixel at (x, y) with `coverage` (0..=255) — the "over" operator.
    #[inline]
    pub fn blend(&mut self, x: i32, y: i32, c: Color, coverage: u8) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let sa = c.a as u32 * coverage as u32 / 255;
        if sa == 0 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        let px = &mut self.rgba[i..i + 4];
        let da = px[3] as u32;
        if sa == 255 || da == 0 {
            px.copy_from_slice(&[c.r, c.g, c.b, sa as u8]);
            return;
        }
        // out_a = sa + da (1 - sa); channels weighted by their alphas (all in 0..=255 fixed point).
        let db = da * (255 - sa) / 255;
        let oa = sa + db;
        let mix = |s: u8, d: u8| ((s as u32 * sa + d as u32 * db) / oa) as u8;
        px[0] = mix(c.r, px[0]);
        px[1] = mix(c.g, px[1]);
        px[2] = mix(c.b, px[2]);
        px[3] = oa as u8;
    }

    /// Fill an axis-aligned rectangle (clipped to the canvas).
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, c: Color) {
        self.fill_rounded_rect(x, y, w, h, 0.0, c);
    }

    /// Fill a rectangle with anti-aliased rounded corners of radius `r` pixels.
    pub fn fill_rounded_rect(&mut self, x: i32, y: i32, w: i32, h: i32, r: f32, c: Color) {
        if w <= 0 || h <= 0 {
            return;
        }
        let r = r.clamp(0.0, (w.min(h) as f32) / 2.0);
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = (x + w).min(self.width as i32);
        let y1 = (y + h).min(self.height as i32);
        for py in y0..y1 {
            for px in x0..x1 {
                let cov = if r < 0.5 { 255 } else { corner_coverage(px - x, py - y, w, h, r) };
                self.blend(px, py, c, cov);
            }
        }
    }

    /// Draw `img` scaled (bilinear) into the rectangle (x, y, w, h), multiplied by `opacity`.
    pub fn draw_image(&mut self, img: &Image, x: i32, y: i32, w: i32, h: i32, opacity: f32) {
        if w <= 0 || h <= 0 || img.width == 0 || img.height == 0 {
            return;
        }
        if img.rgba.len() != img.width as usize * img.height as usize * 4 {
            return;
        }
        let sx = img.width as f32 / w as f32;
        let sy = img.height as f32 / h as f32;
        let op = (opacity.clamp(0.0, 1.0) * 255.0) as u8;
        for py in y.max(0)..(y + h).min(self.height as i32) {
            let fy = ((py - y) as f32 + 0.5) * sy - 0.5;
            for px in x.max(0)..(x + w).min(self.width as i32) {
                let fx = ((px - x) as f32 + 0.5) * sx - 0.5;
                let c = sample_bilinear(img, fx, fy);
                self.blend(px, py, c, op);
            }
        }
    }

    /// Draw `text` with its baseline at `baseline_y`, starting at `x`; returns the advance width. Glyphs
    /// wholly outside the canvas are laid out but not rasterised, so a long scrolling text costs what its
    /// visible part costs.
    pub fn text(&mut self, x: f32, baseline_y: f32, text: &str, px: f32, face: impl Into<Face>, c: Color) -> f32 {
        let f = font(face.into());
        let sc = scale(f, px);
        let scaled = f.as_scaled(sc);
        let right = self.width as f32;
        let mut pen = x;
        let mut prev = None;
        for ch in text.chars() {
            let id = f.glyph_id(ch);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            let advance = scaled.h_advance(id);
            // A glyph's ink stays within about one em of its pen position.
            let visible = pen + advance + px >= 0.0 && pen - px <= right;
            if visible {
                let glyph = id.with_scale_and_position(sc, point(pen, baseline_y));
                if let Some(outlined) = f.outline_glyph(glyph) {
                    let b = outlined.px_bounds();
                    let (ox, oy) = (b.min.x as i32, b.min.y as i32);
                    outlined.draw(|gx, gy, cov| {
                        let a = (cov.clamp(0.0, 1.0) * 255.0) as u8;
                        if a > 0 {
                            self.blend(ox + gx as i32, oy + gy as i32, c, a);
                        }
                    });
                }
            }
            pen += advance;
            prev = Some(id);
        }
        pen - x
    }
}

/// Width in pixels of `text` at size `px`.
pub fn measure(text: &str, px: f32, face: impl Into<Face>) -> f32 {
    advances(text, px, face.into()).last().copied().unwrap_or(0.0)
}

/// The pen position after each character of `text` (kerning included): one pass over the text, so callers
/// that cut or wrap text stay linear in its length.
fn advances(text: &str, px: f32, face: Face) -> Vec<f32> {
    let f = font(face);
    let scaled = f.as_scaled(scale(f, px));
    let mut w = 0.0;
    let mut prev = None;
    let mut out = Vec::with_capacity(text.len());
    for ch in text.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            w += scaled.kern(p, id);
        }
        w += scaled.h_advance(id);
        prev = Some(id);
        out.push(w);
    }
    out
}

/// Ascent of the font at size `px` (distance from the top of a line to its baseline).
pub fn ascent(px: f32, face: impl Into<Face>) -> f32 {
    let f = font(face.into());
    f.as_scaled(scale(f, px)).ascent()
}

/// `text` cut to fit in `max_width` pixels, ending with `…` when it was cut. Linear in the text's length.
pub fn ellipsize(text: &str, px: f32, face: impl Into<Face>, max_width: f32) -> String {
    let face = face.into();
    let widths = advances(text, px, face);
    if widths.last().is_none_or(|w| *w <= max_width) {
        return text.to_string();
    }
    let room = max_width - measure("…", px, face);
    // Characters that fit before the ellipsis (kerning against it is ignored: it only ever narrows).
    let keep = widths.iter().take_while(|w| **w <= room).count();
    if room <= 0.0 || keep == 0 {
        return if room >= 0.0 { "…".to_string() } else { String::new() };
    }
    let kept: String = text.chars().take(keep).collect();
    format!("{}…", kept.trim_end())
}

/// Words of `text` wrapped into lines no wider than `max_width`, at most `max_lines` (the last one
/// ellipsized when text remains). Linear in the text's length: each word is measured once.
pub fn wrap(text: &str, px: f32, face: impl Into<Face>, max_width: f32, max_lines: usize) -> Vec<String> {
    let face = face.into();
    let space = measure(" ", px, face);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0.0;
    let mut words = text.split_whitespace();
    for word in words.by_ref() {
        let w = measure(word, px, face);
        if cur.is_empty() {
            (cur, cur_w) = (word.to_string(), w);
        } else if cur_w + space + w <= max_width {
            cur.push(' ');
            cur.push_str(word);
            cur_w += space + w;
        } else {
            lines.push(std::mem::take(&mut cur));
            (cur, cur_w) = (word.to_string(), w);
            if max_lines > 0 && lines.len() == max_lines {
                break;
            }
        }
    }
    if max_lines > 0 && lines.len() == max_lines {
        // More text than lines: the last line takes the rest, cut with an ellipsis.
        let mut rest = lines.pop().unwrap_or_default();
        for word in std::iter::once(cur.as_str()).chain(words) {
            rest.push(' ');
            rest.push_str(word);
            if measure(&rest, px, face) > max_width {
                break;
            }
        }
        lines.push(ellipsize(&rest, px, face, max_width));
        return lines.into_iter().map(|l| ellipsize(&l, px, face, max_width)).collect();
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines.into_iter().map(|l| ellipsize(&l, px, face, max_width)).collect()
}

/// Coverage (0..=255) of pixel (px, py) of a w×h rectangle with corner radius r, sampled at its centre.
fn corner_coverage(px: i32, py: i32, w: i32, h: i32, r: f32) -> u8 {
    let cx = px as f32 + 0.5;
    let cy = py as f32 + 0.5;
    let (w, h) = (w as f32, h as f32);
    let dx = if cx < r {
        r - cx
    } else if cx > w - r {
        cx - (w - r)
    } else {
        return 255;
    };
    let dy = if cy < r {
        r - cy
    } else if cy > h - r {
        cy - (h - r)
    } else {
        return 255;
    };
    let d = (dx * dx + dy * dy).sqrt() - r;
    ((0.5 - d).clamp(0.0, 1.0) * 255.0) as u8
}

fn sample_bilinear(img: &Image, fx: f32, fy: f32) -> Color {
    let w = img.width as i32;
    let h = img.height as i32;
    let x0 = (fx.floor() as i32).clamp(0, w - 1);
    let y0 = (fy.floor() as i32).clamp(0, h - 1);
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    let tx = (fx - fx.floor()).clamp(0.0, 1.0);
    let ty = (fy - fy.floor()).clamp(0.0, 1.0);
    let at = |x: i32, y: i32, ch: usize| img.rgba[(y as usize * w as usize + x as usize) * 4 + ch] as f32;
    let ch = |c: usize| {
        let top = at(x0, y0, c) * (1.0 - tx) + at(x1, y0, c) * tx;
        let bottom = at(x0, y1, c) * (1.0 - tx) + at(x1, y1, c) * tx;
        (top * (1.0 - ty) + bottom * ty).round() as u8
    };
    Color::rgba(ch(0), ch(1), ch(2), ch(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colors() {
        assert_eq!(Color::parse("#fff"), Some(Color::WHITE));
        assert_eq!(Color::parse("102030"), Some(Color::rgba(16, 32, 48, 255)));
        assert_eq!(Color::parse("#10203080"), Some(Color::rgba(16, 32, 48, 128)));
        assert_eq!(Color::parse("#zzz"), None);
    }

    #[test]
    fn text_draws_pixels_inside_its_box() {
        let mut c = Canvas::new(200, 50);
        let w = c.text(10.0, 35.0, "Hello", 24.0, Weight::Bold, Color::WHITE);
        assert!(w > 40.0 && w < 120.0, "advance {w}");
        let lit = c.rgba.chunks(4).filter(|p| p[3] > 0).count();
        assert!(lit > 100, "only {lit} pixels drawn");
        assert!((measure("Hello", 24.0, Weight::Bold) - w).abs() < 0.01);
    }

    #[test]
    fn each_family_draws_its_own_letters_and_a_weight_alone_is_sans() {
        let draw = |face: Face| {
            let mut c = Canvas::new(200, 50);
            c.text(10.0, 35.0, "Rag", 30.0, face, Color::WHITE);
            c.into_image().rgba
        };
        let faces = [Family::Sans, Family::Serif, Family::Mono].map(|f| draw(Face::new(f, Weight::Regular)));
        assert!(faces.iter().all(|p| p.iter().any(|v| *v > 0)), "every family draws something");
        assert!(faces[0] != faces[1] && faces[1] != faces[2] && faces[0] != faces[2], "three different fonts");
        assert_eq!(draw(Weight::Regular.into()), faces[0]);
        // Mono: every letter as wide as the next.
        let mono = Face::new(Family::Mono, Weight::Bold);
        assert!((measure("iii", 20.0, mono) - measure("WWW", 20.0, mono)).abs() < 0.01);
        assert!(measure("iii", 20.0, Weight::Bold) < measure("WWW", 20.0, Weight::Bold));
        assert_eq!(Family::parse(" Serif "), Some(Family::Serif));
        assert_eq!((Family::parse("comic"), Family::parse("")), (None, None));
    }

    #[test]
    fn cutting_and_wrapping_long_text_fits_and_ends_with_an_ellipsis() {
        let long = "word ".repeat(2000);
        let lines = wrap(&long, 30.0, Weight::Bold, 600.0, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| measure(l, 30.0, Weight::Bold) <= 600.0), "{lines:?}");
        assert!(lines[1].ends_with('…'), "{lines:?}");
        let one_word = "x".repeat(3000);
        let cut = ellipsize(&one_word, 30.0, Weight::Bold, 300.0);
        assert!(cut.ends_with('…') && measure(&cut, 30.0, Weight::Bold) <= 300.0, "{cut}");
        assert_eq!(wrap("short text", 30.0, Weight::Bold, 600.0, 2), vec!["short text".to_string()]);
        assert_eq!(ellipsize("fits", 30.0, Weight::Bold, 600.0), "fits");
    }

    #[test]
    fn rounded_corners_leave_the_corner_empty() {
        let mut c = Canvas::new(40, 40);
        c.fill_rounded_rect(0, 0, 40, 40, 10.0, Color::BLACK);
        assert_eq!(c.rgba[3], 0, "corner pixel drawn");
        assert_eq!(c.rgba[(20 * 40 + 20) * 4 + 3], 255);
    }
}
