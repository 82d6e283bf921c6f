//! Preview rendering without a broadcast: a layout's placements drawn as labelled, coloured tiles, or an
//! overlay's layer over a neutral checkerboard, written as PNG. Used by `backyard plugin render` and
//! by the snapshot tests.

use std::path::Path;
use std::sync::OnceLock;

use super::{
    Fit, Layer, OperatorSettings, OverlayRequest, Participant, Placement, PluginError, PluginFile, PluginHost,
    PluginKind, Prop, Size, Stage,
};

/// An RGBA image (straight alpha, rows top to bottom, no padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Rgba {
    /// Filled with one colour.
    pub fn filled(width: u32, height: u32, c: [u8; 4]) -> Rgba {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
        for _ in 0..width as usize * height as usize {
            pixels.extend_from_slice(&c);
        }
        Rgba { width, height, pixels }
    }

    fn blend(&mut self, x: i32, y: i32, c: [u8; 4], coverage: f32) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let a = c[3] as f32 / 255.0 * coverage.clamp(0.0, 1.0);
        if a <= 0.0 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        let px = &mut self.pixels[i..i + 4];
        let da = px[3] as f32 / 255.0;
        let oa = a + da * (1.0 - a);
        for ch in 0..3 {
            let v = (c[ch] as f32 * a + px[ch] as f32 * da * (1.0 - a)) / oa.max(1e-6);
            px[ch] = v.round().clamp(0.0, 255.0) as u8;
        }
        px[3] = (oa * 255.0).round() as u8;
    }

    fn rounded_rect(&mut self, x: f32, y: f32, w: f32, h: f32, r: f32, c: [u8; 4]) {
        let r = r.clamp(0.0, w.min(h) / 2.0);
        let (x0, y0) = (x.floor().max(0.0) as i32, y.floor().max(0.0) as i32);
        let (x1, y1) = ((x + w).ceil().min(self.width as f32) as i32, (y + h).ceil().min(self.height as f32) as i32);
        for py in y0..y1 {
            for px in x0..x1 {
                let (cx, cy) = (px as f32 + 0.5, py as f32 + 0.5);
                // Signed distance to the rounded rectangle, for anti-aliased edges and corners.
                let qx = (cx - (x + w / 2.0)).abs() - (w / 2.0 - r);
                let qy = (cy - (y + h / 2.0)).abs() - (h / 2.0 - r);
                let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0) - r;
                self.blend(px, py, c, 0.5 - outside);
            }
        }
    }

    /// Draw a layer (straight-alpha RGBA) at its position with "over" compositing.
    pub fn draw_layer(&mut self, layer: &Layer) {
        let img = &layer.image;
        for row in 0..img.height as i32 {
            for col in 0..img.width as i32 {
                let i = ((row as usize) * img.width as usize + col as usize) * 4;
                let c = [img.rgba[i], img.rgba[i + 1], img.rgba[i + 2], img.rgba[i + 3]];
                self.blend(layer.x + col, layer.y + row, c, 1.0);
            }
        }
    }

    fn text(&mut self, x: f32, baseline: f32, text: &str, px: f32, c: [u8; 4]) -> f32 {
        let f = font();
        let mut pen = x;
        for ch in text.chars() {
            let (m, bitmap) = f.rasterize(ch, px);
            let gx = (pen + m.xmin as f32).round() as i32;
            let gy = (baseline - m.height as f32 - m.ymin as f32).round() as i32;
            for row in 0..m.height {
                for col in 0..m.width {
                    let cov = bitmap[row * m.width + col] as f32 / 255.0;
                    self.blend(gx + col as i32, gy + row as i32, c, cov);
                }
            }
            pen += m.advance_width;
        }
        pen - x
    }

    /// Encode as an 8-bit RGBA PNG.
    pub fn to_png(&self) -> Result<Vec<u8>, PluginError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Best);
            let mut w = enc.write_header().map_err(|e| PluginError::Render(e.to_string()))?;
            w.write_image_data(&self.pixels).map_err(|e| PluginError::Render(e.to_string()))?;
        }
        Ok(out)
    }

    /// Decode an 8-bit RGBA or RGB PNG.
    pub fn from_png(bytes: &[u8]) -> Result<Rgba, PluginError> {
        let dec = png::Decoder::new(bytes);
        let mut reader = dec.read_info().map_err(|e| PluginError::Render(e.to_string()))?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).map_err(|e| PluginError::Render(e.to_string()))?;
        buf.truncate(info.buffer_size());
        let pixels = match (info.color_type, info.bit_depth) {
            (png::ColorType::Rgba, png::BitDepth::Eight) => buf,
            (png::ColorType::Rgb, png::BitDepth::Eight) => {
                buf.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
            }
            other => return Err(PluginError::Render(format!("unsupported PNG format {other:?}"))),
        };
        Ok(Rgba { width: info.width, height: info.height, pixels })
    }

    /// Fraction of pixels whose channels differ by more than `tolerance`, or `None` when sizes differ.
    pub fn diff_fraction(&self, other: &Rgba, tolerance: u8) -> Option<f64> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let differing = self
            .pixels
            .chunks(4)
            .zip(other.pixels.chunks(4))
            .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > tolerance))
            .count();
        Some(differing as f64 / (self.width as f64 * self.height as f64).max(1.0))
    }
}

fn font() -> &'static fontdue::Font {
    static FONT: OnceLock<fontdue::Font> = OnceLock::new();
    FONT.get_or_init(|| {
        // unwrap: the embedded font is a known-good TTF (the plugin SDK's own); any test catches a bad one.
        fontdue::Font::from_bytes(
            include_bytes!("../../../plugin-api/fonts/DejaVuSans.ttf") as &[u8],
            fontdue::FontSettings::default(),
        )
        .expect("the embedded font is a known-good TTF (the plugin SDK's own); any test catches a bad one")
    })
}

/// A distinct, readable colour for the `i`-th participant.
fn tile_color(i: usize) -> [u8; 4] {
    const PALETTE: [[u8; 4]; 10] = [
        [0x3b, 0x82, 0xf6, 255],
        [0xef, 0x44, 0x44, 255],
        [0x10, 0xb9, 0x81, 255],
        [0xf5, 0x9e, 0x0b, 255],
        [0x8b, 0x5c, 0xf6, 255],
        [0xec, 0x48, 0x99, 255],
        [0x14, 0xb8, 0xa6, 255],
        [0x84, 0xcc, 0x16, 255],
        [0xf9, 0x73, 0x16, 255],
        [0x64, 0x74, 0x8b, 255],
    ];
    PALETTE[i % PALETTE.len()]
}

/// `n` sample participants: `p1`.. named "Guest 1".., the second one speaking, screen share optional.
pub fn sample_stage(layout: &str, n: usize, canvas: Size, with_screen: bool) -> Stage {
    let mut participants: Vec<Participant> = (1..=n)
        .map(|i| Participant {
            id: format!("p{i}"),
            name: format!("Guest {i}"),
            speaking: i == 2,
            screen_share: false,
            video_enabled: true,
        })
        .collect();
    if with_screen && n > 0 {
        participants.push(Participant {
            id: "p1:screen".into(),
            name: "Guest 1 (screen)".into(),
            speaking: false,
            screen_share: true,
            video_enabled: true,
        });
    }
    let active_speaker = if n >= 2 { Some("p2".to_string()) } else { None };
    Stage { layout: layout.to_string(), canvas, participants, active_speaker }
}

/// Draw placements as a reviewer can read them: each participant a coloured tile (its rounded corners,
/// z-order and fit shown), with its name when `show-name` is set.
pub fn draw_placements(stage: &Stage, placements: &[Placement]) -> Rgba {
    let (w, h) = (stage.canvas.width, stage.canvas.height);
    let mut img = Rgba::filled(w, h, [0x11, 0x18, 0x27, 255]);
    let mut order: Vec<&Placement> = placements.iter().collect();
    order.sort_by_key(|p| p.z);
    let scale = w.min(h) as f32 / 720.0;
    for p in order {
        let idx = stage.participants.iter().position(|q| q.id == p.participant_id).unwrap_or(0);
        let r = &p.rect;
        img.rounded_rect(r.x, r.y, r.width, r.height, p.corner_radius, tile_color(idx));
        if p.fit == Fit::Contain {
            // A contained picture: show the letterbox as a darker inner 16:9 frame outline.
            let inner_h = (r.width * 9.0 / 16.0).min(r.height);
            let inner_w = inner_h * 16.0 / 9.0;
            let (ix, iy) = (r.x + (r.width - inner_w) / 2.0, r.y + (r.height - inner_h) / 2.0);
            img.rounded_rect(ix + 4.0, iy + 4.0, inner_w - 8.0, inner_h - 8.0, 0.0, [0, 0, 0, 60]);
        }
        if p.show_name {
            let name = stage.participants.get(idx).map(|q| q.name.as_str()).unwrap_or("?");
            let size = (18.0 * scale).clamp(9.0, 40.0).min(r.height / 3.0);
            let pad = 6.0 * scale;
            let label_w = font_width(name, size) + 2.0 * pad;
            let label_h = size * 1.4;
            let lx = r.x + pad;
            let ly = r.y + r.height - label_h - pad;
            img.rounded_rect(lx, ly, label_w.min(r.width - 2.0 * pad), label_h, 4.0 * scale, [0, 0, 0, 150]);
            img.text(lx + pad, ly + label_h * 0.72, name, size, [255, 255, 255, 255]);
        }
    }
    img
}

fn font_width(text: &str, px: f32) -> f32 {
    text.chars().map(|c| font().metrics(c, px).advance_width).sum()
}

/// A grey checkerboard (shows transparency) with `layer` drawn over it.
pub fn draw_overlay(canvas: Size, layer: Option<&Layer>) -> Rgba {
    let (w, h) = (canvas.width, canvas.height);
    let mut img = Rgba::filled(w, h, [0, 0, 0, 255]);
    let cell = (w.min(h) / 18).max(4);
    for y in 0..h {
        for x in 0..w {
            let v = if ((x / cell) + (y / cell)) % 2 == 0 { 0x55 } else { 0x66 };
            let i = (y as usize * w as usize + x as usize) * 4;
            img.pixels[i..i + 3].copy_from_slice(&[v, v, v]);
        }
    }
    if let Some(l) = layer {
        img.draw_layer(l);
    }
    img
}

/// Sample props that exercise every first-party overlay.
pub fn sample_props() -> Vec<Prop> {
    [
        ("text", "Welcome to the Backyard live show"),
        ("name", "Alex Morgan"),
        ("title", "Host · Backyard Studio"),
        ("author", "Sam"),
        ("message", "Great stream! Greetings from Lisbon 👋"),
        ("color", "#2563eb"),
        ("position", "top-right"),
    ]
    .into_iter()
    .map(|(k, v)| Prop { key: k.into(), value: v.into() })
    .collect()
}

/// What a preview draws.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub width: u32,
    pub height: u32,
    /// Who is on stage, by name, in stage order (layouts). Their ids are `p1`, `p2`, ...
    pub participants: Vec<String>,
    /// The active speaker: an index into `participants`.
    pub speaker: Option<usize>,
    /// Who shares a screen: an index into `participants`. The share is on stage as `p<n>:screen`.
    pub screen: Option<usize>,
    /// Layout id for a layout plugin (default: the plugin's first layout).
    pub layout: Option<String>,
    /// Overlay ids to draw, each from whichever overlay plugin offers it (default: each overlay plugin's
    /// first overlay).
    pub overlays: Vec<String>,
    /// Props for the overlays (default: [`sample_props`]).
    pub props: Option<Vec<Prop>>,
    /// Milliseconds since the overlays appeared (animations).
    pub time_ms: u64,
}

impl RenderOptions {
    /// `n` participants named "Guest 1", "Guest 2", ...
    pub fn guests(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("Guest {i}")).collect()
    }

    /// The stage these options describe, for `layout`.
    pub fn stage(&self, layout: &str) -> Stage {
        let canvas = Size { width: self.width, height: self.height };
        let mut participants: Vec<Participant> = self
            .participants
            .iter()
            .enumerate()
            .map(|(i, name)| Participant {
                id: format!("p{}", i + 1),
                name: name.clone(),
                speaking: self.speaker == Some(i),
                screen_share: false,
                video_enabled: true,
            })
            .collect();
        if let Some(i) = self.screen.filter(|i| *i < self.participants.len()) {
            participants.push(Participant {
                id: format!("p{}:screen", i + 1),
                name: format!("{} (screen)", self.participants[i]),
                speaking: false,
                screen_share: true,
                video_enabled: true,
            });
        }
        let active_speaker = self.speaker.filter(|i| *i < self.participants.len()).map(|i| format!("p{}", i + 1));
        Stage { layout: layout.to_string(), canvas, participants, active_speaker }
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            width: 1280,
            height: 720,
            participants: RenderOptions::guests(4),
            speaker: None,
            screen: None,
            layout: None,
            overlays: Vec::new(),
            props: None,
            time_ms: 0,
        }
    }
}

/// Render the layout or overlay in `wasm` (with the `plugin.toml` beside it, if any) to an image.
pub fn render_file(wasm: &Path, opts: &RenderOptions) -> Result<Rgba, PluginError> {
    let sibling = wasm.with_file_name(super::MANIFEST_FILE);
    let file = PluginFile { wasm: wasm.to_path_buf(), manifest: sibling.is_file().then_some(sibling) };
    render_plugins(&[file], &OperatorSettings::default(), opts)
}

/// Render a scene from plugin files: at most one layout plugin places the participants (drawn as labelled
/// tiles; without one, a checkerboard shows transparency), then each overlay plugin draws on top, in the
/// order given. The operator's `settings` apply to the plugins they name.
pub fn render_plugins(
    files: &[PluginFile],
    settings: &OperatorSettings,
    opts: &RenderOptions,
) -> Result<Rgba, PluginError> {
    if opts.width == 0 || opts.height == 0 || opts.width > 7680 || opts.height > 7680 {
        return Err(PluginError::Render(format!("size {}x{} is not 1..=7680 on each side", opts.width, opts.height)));
    }
    if files.is_empty() {
        return Err(PluginError::Render("no plugin to render".into()));
    }
    let (host, names) = PluginHost::load_files(files, settings)?;
    render_scene(&host, &names, opts)
}

/// [`render_plugins`] with plugins already loaded (by [`PluginHost::load_files`]): `names` in drawing order.
pub fn render_scene(host: &PluginHost, names: &[String], opts: &RenderOptions) -> Result<Rgba, PluginError> {
    if opts.width == 0 || opts.height == 0 || opts.width > 7680 || opts.height > 7680 {
        return Err(PluginError::Render(format!("size {}x{} is not 1..=7680 on each side", opts.width, opts.height)));
    }
    let canvas = Size { width: opts.width, height: opts.height };
    let kinds: Vec<(String, PluginKind)> = host.list().into_iter().map(|p| (p.name, p.kind)).collect();
    let kind_of = |name: &str| kinds.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
    let mut layouts = Vec::new();
    let mut overlays = Vec::new();
    for name in names {
        match kind_of(name) {
            Some(PluginKind::Layout) => layouts.push(name.clone()),
            Some(PluginKind::Overlay) => overlays.push(name.clone()),
            Some(k) => {
                return Err(PluginError::Render(format!("'{name}' is a {k} plugin; only layouts and overlays render")));
            }
            None => return Err(PluginError::Render(format!("'{name}' did not load"))),
        }
    }
    if layouts.len() > 1 {
        return Err(PluginError::Render(format!(
            "one layout plugin at a time: {} are all layouts",
            layouts.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut img = match layouts.first() {
        Some(name) => {
            let mut inst = host.layout(name)?;
            let offered = inst.layouts()?;
            let layout = match &opts.layout {
                Some(l) if offered.iter().any(|o| &o.id == l) => l.clone(),
                Some(l) => {
                    return Err(PluginError::Render(format!(
                        "'{name}' offers no layout '{l}' (it offers: {})",
                        offered.iter().map(|o| o.id.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
                None => offered
                    .into_iter()
                    .next()
                    .map(|l| l.id)
                    .ok_or_else(|| PluginError::Render(format!("'{name}' offers no layouts")))?,
            };
            let stage = opts.stage(&layout);
            let placements = inst.place(&stage)?;
            if let Some(e) = inst.last_failure() {
                return Err(e.clone());
            }
            draw_placements(&stage, &placements)
        }
        None => draw_overlay(canvas, None),
    };
    let mut drawn: Vec<String> = Vec::new();
    for name in &overlays {
        let mut inst = host.overlay(name)?;
        let offered: Vec<String> = inst.overlays()?.into_iter().map(|o| o.id).collect();
        let ids: Vec<String> = if opts.overlays.is_empty() {
            offered.first().cloned().into_iter().collect()
        } else {
            opts.overlays.iter().filter(|id| offered.contains(id)).cloned().collect()
        };
        for overlay in ids {
            let req = OverlayRequest {
                overlay: overlay.clone(),
                canvas,
                time_ms: opts.time_ms,
                props: opts.props.clone().unwrap_or_else(sample_props),
                images: Vec::new(),
            };
            let layer = inst.render(&req)?.layer.cloned();
            if let Some(e) = inst.last_failure() {
                return Err(e.clone());
            }
            if let Some(layer) = &layer {
                img.draw_layer(layer);
            }
            drawn.push(overlay);
        }
    }
    if let Some(missing) = opts.overlays.iter().find(|id| !drawn.contains(id)) {
        return Err(PluginError::Render(format!("no overlay plugin given offers an overlay '{missing}'")));
    }
    Ok(img)
}

/// [`render_file`], written to `out` as PNG.
pub fn render_to_png(wasm: &Path, opts: &RenderOptions, out: &Path) -> Result<(), PluginError> {
    let img = render_file(wasm, opts)?;
    let bytes = img.to_png()?;
    std::fs::write(out, bytes).map_err(|e| PluginError::Io { path: out.display().to_string(), message: e.to_string() })
}
