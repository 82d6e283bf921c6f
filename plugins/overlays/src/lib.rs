//! Backyard's first-party overlays, written against the public SDK. Each draws only the rectangle it
//! needs (a layer smaller than the canvas), and answers `unchanged` when its inputs did not change,
//! so the host re-composites only on change. Sizes scale with the canvas's shorter side.

use std::sync::Mutex;

use backyard_plugin_api::draw::{Canvas, Color, Face, Family, Weight, ascent, ellipsize, measure, wrap};
use backyard_plugin_api::host;
use backyard_plugin_api::overlay::*;

struct Overlays;

static SEEN: Mutex<Option<ChangeTracker>> = Mutex::new(None);

impl Guest for Overlays {
    fn overlays() -> Vec<OverlayInfo> {
        vec![
            info("banner", "Banner", "A message box near the bottom", &["text", "color", "font"]),
            info(
                "lower-third",
                "Lower third",
                "Name and title at the bottom left",
                &["name", "title", "color", "font"],
            ),
            info("logo", "Logo", "An uploaded image in a corner", &["position", "size"]),
            info("chat", "Chat comment", "A viewer's comment shown on screen", &["author", "message", "color", "font"]),
            info("ticker", "Ticker", "Text scrolling along the bottom edge", &["text", "color", "font"]),
            info(
                "slate",
                "Slate",
                "A slate's words, centred: a title and a line under it",
                &["title", "text", "color", "font"],
            ),
        ]
    }

    fn render(req: OverlayRequest) -> Result<Rendered, String> {
        if req.canvas.width == 0 || req.canvas.height == 0 {
            return Err("empty canvas".into());
        }
        let s = Scale::of(&req);
        // The ticker moves with time; everything else only with its inputs.
        let time_key = if req.overlay == "ticker" { ticker_offset(&req, &s) as u64 } else { 0 };
        let key = input_hash(&req, time_key);
        {
            let mut seen = SEEN.lock().map_err(|_| "state poisoned")?;
            let tracker = seen.get_or_insert_with(ChangeTracker::default);
            if !tracker.changed(&req.overlay, key) {
                return Ok(Rendered::Unchanged);
            }
        }
        let layer = match req.overlay.as_str() {
            "banner" => banner(&req, &s),
            "lower-third" => lower_third(&req, &s),
            "logo" => logo(&req, &s),
            "chat" => chat(&req, &s),
            "ticker" => ticker(&req, &s),
            "slate" => slate(&req, &s),
            other => return Err(format!("unknown overlay '{other}'")),
        };
        Ok(match layer {
            Some(l) => Rendered::Layer(l),
            None => Rendered::Hidden,
        })
    }
}

/// Canvas-relative sizes, and the font the text is set in (the `font` prop: `sans`, `serif` or `mono`; sans
/// without one).
struct Scale {
    w: f32,
    h: f32,
    /// 1.0 on a 720-pixel shorter side.
    k: f32,
    margin: f32,
    regular: Face,
    bold: Face,
}

impl Scale {
    fn of(req: &OverlayRequest) -> Scale {
        let (w, h) = (req.canvas.width as f32, req.canvas.height as f32);
        let k = w.min(h) / 720.0;
        let family = prop(req, "font").and_then(Family::parse).unwrap_or_default();
        Scale {
            w,
            h,
            k,
            margin: 32.0 * k,
            regular: Face::new(family, Weight::Regular),
            bold: Face::new(family, Weight::Bold),
        }
    }
}

fn accent(req: &OverlayRequest) -> Color {
    prop(req, "color")
        .and_then(Color::parse)
        .or_else(|| Color::parse(&host::config_text("accent", "#2563eb")))
        .unwrap_or(Color::rgba(0x25, 0x63, 0xeb, 255))
}

/// Clamp a layer rectangle to the canvas and make it at least 1x1.
fn place(x: f32, y: f32, w: f32, h: f32, s: &Scale) -> (i32, i32, u32, u32) {
    let w = w.clamp(1.0, s.w).round();
    let h = h.clamp(1.0, s.h).round();
    let x = x.clamp(0.0, s.w - w).round();
    let y = y.clamp(0.0, s.h - h).round();
    (x as i32, y as i32, w as u32, h as u32)
}

fn layer(x: i32, y: i32, c: Canvas) -> Layer {
    Layer { x, y, image: c.into_image() }
}

fn banner(req: &OverlayRequest, s: &Scale) -> Option<Layer> {
    let text = prop(req, "text").filter(|t| !t.trim().is_empty())?;
    let px = 30.0 * s.k;
    let pad = 18.0 * s.k;
    let max_w = s.w - 2.0 * s.margin;
    let lines = wrap(text, px, s.bold, max_w - 2.0 * pad, 2);
    let text_w = lines.iter().map(|l| measure(l, px, s.bold)).fold(0.0, f32::max);
    let line_h = px * 1.3;
    let (x, y, w, h) = place(
        s.margin,
        s.h - s.margin - (lines.len() as f32 * line_h + 2.0 * pad),
        text_w + 2.0 * pad,
        lines.len() as f32 * line_h + 2.0 * pad,
        s,
    );
    let mut c = Canvas::new(w, h);
    c.fill_rounded_rect(0, 0, w as i32, h as i32, 10.0 * s.k, accent(req));
    let asc = ascent(px, s.bold);
    for (i, l) in lines.iter().enumerate() {
        c.text(pad, pad + asc + i as f32 * line_h, l, px, s.bold, Color::WHITE);
    }
    Some(layer(x, y, c))
}

fn lower_third(req: &OverlayRequest, s: &Scale) -> Option<Layer> {
    let name = prop(req, "name").filter(|t| !t.trim().is_empty())?;
    let title = prop(req, "title").unwrap_or("").trim();
    let (name_px, title_px) = (34.0 * s.k, 22.0 * s.k);
    let pad = 14.0 * s.k;
    let max_w = (s.w * 0.6).max(200.0 * s.k);
    let name = ellipsize(name, name_px, s.bold, max_w - 2.0 * pad);
    let title = ellipsize(title, title_px, s.regular, max_w - 2.0 * pad);
    let name_h = name_px * 1.35 + pad;
    let title_h = if title.is_empty() { 0.0 } else { title_px * 1.4 + pad * 0.6 };
    let w = measure(&name, name_px, s.bold).max(measure(&title, title_px, s.regular)) + 2.0 * pad;
    let (x, y, w, h) = place(s.margin, s.h - s.margin * 2.0 - name_h - title_h, w, name_h + title_h, s);
    let mut c = Canvas::new(w, h);
    let r = 8.0 * s.k;
    c.fill_rounded_rect(0, 0, w as i32, name_h.round() as i32, r, accent(req));
    c.text(pad, pad * 0.5 + ascent(name_px, s.bold), &name, name_px, s.bold, Color::WHITE);
    if !title.is_empty() {
        let ty = name_h.round() as i32;
        c.fill_rounded_rect(0, ty, w as i32, h as i32 - ty, r, Color::rgba(255, 255, 255, 235));
        c.text(
            pad,
            ty as f32 + pad * 0.3 + ascent(title_px, s.regular),
            &title,
            title_px,
            s.regular,
            Color::rgba(0x11, 0x18, 0x27, 255),
        );
    }
    Some(layer(x, y, c))
}

fn logo(req: &OverlayRequest, s: &Scale) -> Option<Layer> {
    let img = image(req, "logo").filter(|i| i.width > 0 && i.height > 0)?;
    let frac: f32 = prop(req, "size").and_then(|v| v.parse().ok()).unwrap_or(0.15f32).clamp(0.02, 0.5);
    let target_w = s.w * frac;
    let aspect = img.height as f32 / img.width as f32;
    let (w, h) = (target_w, target_w * aspect);
    let (lx, ly) = match prop(req, "position").unwrap_or("top-right") {
        "top-left" => (s.margin, s.margin),
        "bottom-left" => (s.margin, s.h - s.margin - h),
        "bottom-right" => (s.w - s.margin - w, s.h - s.margin - h),
        _ => (s.w - s.margin - w, s.margin),
    };
    let (x, y, w, h) = place(lx, ly, w, h, s);
    let mut c = Canvas::new(w, h);
    c.draw_image(img, 0, 0, w as i32, h as i32, 1.0);
    Some(layer(x, y, c))
}

fn chat(req: &OverlayRequest, s: &Scale) -> Option<Layer> {
    let message = prop(req, "message").filter(|t| !t.trim().is_empty())?;
    let author = prop(req, "author").unwrap_or("Viewer");
    let (a_px, m_px) = (22.0 * s.k, 28.0 * s.k);
    let pad = 16.0 * s.k;
    let max_w = (s.w * 0.55).max(240.0 * s.k) - 2.0 * pad;
    let author = ellipsize(author, a_px, s.bold, max_w);
    let lines = wrap(message, m_px, s.regular, max_w, 3);
    let text_w = lines.iter().map(|l| measure(l, m_px, s.regular)).fold(measure(&author, a_px, s.bold), f32::max);
    let line_h = m_px * 1.3;
    let h = pad * 2.0 + a_px * 1.4 + lines.len() as f32 * line_h;
    let (x, y, w, h) = place(s.margin, s.h - s.margin * 2.5 - h, text_w + 2.0 * pad + 6.0 * s.k, h, s);
    let mut c = Canvas::new(w, h);
    c.fill_rounded_rect(0, 0, w as i32, h as i32, 12.0 * s.k, Color::rgba(255, 255, 255, 245));
    c.fill_rect(0, (12.0 * s.k) as i32, (6.0 * s.k).max(1.0) as i32, h as i32 - (24.0 * s.k) as i32, accent(req));
    let tx = pad + 6.0 * s.k;
    c.text(tx, pad + ascent(a_px, s.bold), &author, a_px, s.bold, accent(req));
    let dark = Color::rgba(0x11, 0x18, 0x27, 255);
    for (i, l) in lines.iter().enumerate() {
        let base = pad + a_px * 1.4 + ascent(m_px, s.regular) + i as f32 * line_h;
        c.text(tx, base, l, m_px, s.regular, dark);
    }
    Some(layer(x, y, c))
}

fn ticker_px(s: &Scale) -> f32 {
    26.0 * s.k
}

/// Scroll position in whole pixels: the ticker re-renders only when it moves by one.
fn ticker_offset(req: &OverlayRequest, s: &Scale) -> u32 {
    let Some(text) = prop(req, "text") else { return 0 };
    let speed = match host::config("ticker-speed") {
        Some(host::ConfigValue::Integer(v)) => v as f32,
        _ => 120.0,
    } * s.k;
    let period = measure(text, ticker_px(s), s.bold) + s.w * 0.5;
    ((req.time_ms as f32 / 1000.0 * speed) % period.max(1.0)) as u32
}

fn ticker(req: &OverlayRequest, s: &Scale) -> Option<Layer> {
    let text = prop(req, "text").filter(|t| !t.trim().is_empty())?;
    let px = ticker_px(s);
    let h = px * 1.8;
    let (x, y, w, hh) = place(0.0, s.h - h, s.w, h, s);
    let mut c = Canvas::new(w, hh);
    c.fill_rect(0, 0, w as i32, hh as i32, Color::rgba(0x11, 0x18, 0x27, 230));
    c.fill_rect(0, 0, w as i32, (3.0 * s.k).max(1.0) as i32, accent(req));
    let text_w = measure(text, px, s.bold);
    let period = text_w + s.w * 0.5;
    let offset = ticker_offset(req, s) as f32;
    let base = hh as f32 / 2.0 + ascent(px, s.bold) / 2.0 - px * 0.1;
    // Enough copies to cover the width as the text scrolls left.
    let mut start = s.w - offset;
    while start > -text_w {
        start -= period;
    }
    while start < s.w {
        if start + text_w > 0.0 {
            c.text(start, base, text, px, s.bold, Color::WHITE);
        }
        start += period;
    }
    Some(layer(x, y, c))
}

/// The slate's words, centred on the canvas: the title large, an accent rule under it, and the line of text
/// below. Only the block they take is drawn (behind a slate nobody is on stage, so the program's background,
/// the brand's or black, or the host's picture, is all around it): a small layer is quick to draw and to
/// composite. With `panel` (over a picture) the words sit on a dark rounded panel, so they read on any picture.
fn slate(req: &OverlayRequest, s: &Scale) -> Option<Layer> {
    let title = prop(req, "title").filter(|t| !t.trim().is_empty())?;
    let text = prop(req, "text").unwrap_or("").trim();
    let max_w = s.w - 4.0 * s.margin;
    // The title as large as 64 px on 720, smaller (down to half) when it would not fit the width.
    let mut title_px = 64.0 * s.k;
    let natural = measure(title, title_px, s.bold);
    if natural > max_w {
        title_px *= (max_w / natural).max(0.5);
    }
    let title = ellipsize(title, title_px, s.bold, max_w);
    let text_px = 28.0 * s.k;
    let lines = if text.is_empty() { Vec::new() } else { wrap(text, text_px, s.regular, max_w, 2) };
    let rule = (6.0 * s.k).max(2.0);
    let gap = 24.0 * s.k;
    // Below the title's baseline: room for its descenders, then the accent rule, then the text.
    let descent = 0.3 * title_px;
    let title_asc = ascent(title_px, s.bold);
    let line_h = text_px * 1.35;
    // The last line's descenders need room under its baseline too.
    let text_h = if lines.is_empty() { 0.0 } else { gap + lines.len() as f32 * line_h + 0.4 * text_px };
    let block_h = title_asc + descent + gap * 0.5 + rule + text_h;
    let title_w = measure(&title, title_px, s.bold);
    let widest = lines.iter().map(|l| measure(l, text_px, s.regular)).fold(title_w, f32::max);
    let pad = if prop(req, "panel") == Some("true") { gap } else { 0.0 };
    let (x, y, w, h) =
        place((s.w - widest) / 2.0 - pad, (s.h - block_h) / 2.0 - pad, widest + 2.0 * pad, block_h + 2.0 * pad, s);
    let mut c = Canvas::new(w, h);
    if pad > 0.0 {
        c.fill_rounded_rect(0, 0, w as i32, h as i32, 16.0 * s.k, Color::rgba(0, 0, 0, 150));
    }
    let baseline = pad + title_asc;
    c.text((w as f32 - title_w) / 2.0, baseline, &title, title_px, s.bold, Color::WHITE);
    let rule_y = baseline + descent + gap * 0.5;
    let rule_w = 120.0 * s.k;
    c.fill_rect(((w as f32 - rule_w) / 2.0) as i32, rule_y as i32, rule_w as i32, rule as i32, accent(req));
    for (i, l) in lines.iter().enumerate() {
        let lw = measure(l, text_px, s.regular);
        let base = rule_y + rule + gap + ascent(text_px, s.regular) + i as f32 * line_h;
        c.text((w as f32 - lw) / 2.0, base, l, text_px, s.regular, Color::rgba(0xd8, 0xdd, 0xe6, 255));
    }
    Some(layer(x, y, c))
}

backyard_plugin_api::export_overlay!(Overlays);
