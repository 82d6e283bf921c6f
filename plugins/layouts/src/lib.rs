//! Backyard's first-party layouts, written against the public SDK like any third-party plugin.
//!
//! Every layout handles any number of participants (0 gives no placements) and any canvas shape:
//! on a portrait (9:16) canvas strips run horizontally below the main tile instead of beside it. Four are made
//! for a vertical canvas (Shorts, TikTok, Reels): `stack`, `one-over-two`, `inset` and `screen-above` fill a tall
//! canvas with tall tiles, where the others would leave it mostly empty around 16:9 tiles.

use backyard_plugin_api::host;
use backyard_plugin_api::layout::*;

struct Layouts;

/// Size-dependent spacing: gap and corner radius scale with the canvas's shorter side.
struct Style {
    gap: f32,
    radius: f32,
    margin: f32,
}

fn style(canvas: Size) -> Style {
    let scale = canvas.width.min(canvas.height) as f32 / 720.0;
    let gap = host::config("gap")
        .and_then(|v| match v {
            host::ConfigValue::Integer(i) => Some(i as f32),
            _ => None,
        })
        .unwrap_or(8.0)
        .clamp(0.0, 64.0)
        * scale;
    let rounded = host::config_flag("rounded", true);
    Style { gap, radius: if rounded { 12.0 * scale } else { 0.0 }, margin: gap * 2.0 }
}

const WIDE: f32 = 16.0 / 9.0;

impl Guest for Layouts {
    fn layouts() -> Vec<LayoutInfo> {
        vec![
            info("grid", "Grid", "Everyone the same size, in the grid that makes tiles largest"),
            info("spotlight", "Spotlight", "The active speaker large, everyone else in a strip"),
            info("sidebar", "Sidebar", "The active speaker large, everyone else in a column beside"),
            info("solo", "Solo", "Only the active speaker, full screen"),
            info("pip", "Picture in picture", "The active speaker full screen, others in small corner tiles"),
            info("screen", "Screen share", "The shared screen large and whole, speakers beside it"),
            info("stack", "Stacked", "For vertical canvases: everyone one above another, across the whole width"),
            info(
                "one-over-two",
                "One over two",
                "For vertical canvases: the active speaker on top, the others side by side below",
            ),
            info(
                "inset",
                "Speaker with inset",
                "For vertical canvases: the active speaker filling the canvas, the others in small tiles in a corner",
            ),
            info(
                "screen-above",
                "Screen above cameras",
                "For vertical canvases: the shared screen across the top, everyone else below",
            ),
        ]
    }

    fn place(stage: Stage) -> Result<Vec<Placement>, String> {
        if stage.canvas.width == 0 || stage.canvas.height == 0 {
            return Err("empty canvas".into());
        }
        if stage.participants.is_empty() {
            return Ok(Vec::new());
        }
        let s = style(stage.canvas);
        let out = match stage.layout.as_str() {
            "grid" => grid(&stage, &s),
            "spotlight" => featured(&stage, &s, Strip::Below),
            "sidebar" => featured(&stage, &s, Strip::Beside),
            "solo" => solo(&stage),
            "pip" => pip(&stage, &s),
            "screen" => featured(&stage, &s, Strip::Screen),
            "stack" => {
                stack(&stage.participants.iter().collect::<Vec<_>>(), inset(canvas_rect(stage.canvas), s.margin), &s)
            }
            "one-over-two" => one_over_two(&stage, &s),
            "inset" => speaker_inset(&stage, &s),
            "screen-above" => screen_above(&stage, &s),
            other => return Err(format!("unknown layout '{other}'")),
        };
        Ok(out)
    }
}

fn fit_for(p: &Participant) -> Fit {
    if p.screen_share { Fit::Contain } else { Fit::Cover }
}

fn grid(stage: &Stage, s: &Style) -> Vec<Placement> {
    let area = inset(canvas_rect(stage.canvas), s.margin);
    let cells = grid_cells(area, stage.participants.len(), WIDE, s.gap);
    stage.participants.iter().zip(cells).map(|(p, r)| tile(&p.id, r).fit(fit_for(p)).radius(s.radius).build()).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Strip {
    /// Others in a row under the main tile (spotlight).
    Below,
    /// Others in a column beside the main tile; below it on a portrait canvas.
    Beside,
    /// Like `Beside`, but the main tile is the screen share (whole, letterboxed) and gets more room.
    Screen,
}

fn featured(stage: &Stage, s: &Style, strip: Strip) -> Vec<Placement> {
    let main = match strip {
        Strip::Screen => screen_share(stage).or_else(|| focus(stage)),
        _ => focus(stage),
    };
    // unwrap: place() returned early for an empty stage, so there is a focus.
    let main = main.unwrap();
    let others: Vec<&Participant> = stage.participants.iter().filter(|p| p.id != main.id).collect();
    let area = inset(canvas_rect(stage.canvas), s.margin);
    let main_fit = fit_for(main);
    if others.is_empty() {
        let r = fit_aspect(area, WIDE);
        return vec![tile(&main.id, r).fit(main_fit).radius(s.radius).build()];
    }
    let portrait = area.height > area.width;
    let (main_area, strip_area) = if strip == Strip::Below || portrait {
        let main_h = (area.height - s.gap) * if portrait { 0.62 } else { 0.78 };
        (
            rect(area.x, area.y, area.width, main_h),
            rect(area.x, area.y + main_h + s.gap, area.width, area.height - main_h - s.gap),
        )
    } else {
        let share = if strip == Strip::Screen { 0.82 } else { 0.76 };
        let main_w = (area.width - s.gap) * share;
        (
            rect(area.x, area.y, main_w, area.height),
            rect(area.x + main_w + s.gap, area.y, area.width - main_w - s.gap, area.height),
        )
    };
    let main_rect = fit_aspect(main_area, WIDE);
    let mut out = vec![tile(&main.id, main_rect).fit(main_fit).radius(s.radius).build()];
    // A strip across the width lays tiles side by side; down a column, one above another. With many
    // participants a grid inside the strip area keeps tiles readable.
    let cells = if others.len() <= 4 {
        strip_cells(strip_area, others.len(), WIDE, s.gap)
    } else {
        grid_cells(strip_area, others.len(), WIDE, s.gap)
    };
    out.extend(
        others.iter().zip(cells).map(|(p, r)| tile(&p.id, r).fit(fit_for(p)).radius(s.radius * 0.6).z(1).build()),
    );
    out
}

fn solo(stage: &Stage) -> Vec<Placement> {
    // unwrap: place() returned early for an empty stage.
    let main = focus(stage).unwrap();
    vec![tile(&main.id, canvas_rect(stage.canvas)).fit(fit_for(main)).name(true).build()]
}

/// The active speaker over the whole canvas, and everyone else (for the caller to place over it).
fn speaker_over_canvas(stage: &Stage) -> (Vec<Placement>, Vec<&Participant>) {
    // unwrap: place() returned early for an empty stage.
    let main = focus(stage).unwrap();
    let out = vec![tile(&main.id, canvas_rect(stage.canvas)).fit(fit_for(main)).build()];
    (out, stage.participants.iter().filter(|p| p.id != main.id).collect())
}

fn pip(stage: &Stage, s: &Style) -> Vec<Placement> {
    let canvas = canvas_rect(stage.canvas);
    let (mut out, others) = speaker_over_canvas(stage);
    if others.is_empty() {
        return out;
    }
    // Small tiles along the bottom edge from the right, each at most 22% of the canvas width, shrunk
    // so they all fit in one row.
    let n = others.len() as f32;
    let avail = canvas.width - 2.0 * s.margin;
    let w = (canvas.width * 0.22).min((avail - s.gap * (n - 1.0)) / n).max(1.0);
    let h = w / WIDE;
    let y = canvas.height - s.margin - h;
    for (i, p) in others.iter().enumerate() {
        let x = canvas.width - s.margin - w - i as f32 * (w + s.gap);
        let r = rect(x, y, w, h);
        out.push(tile(&p.id, r).fit(fit_for(p)).radius(s.radius * 0.6).z(1 + i as i32).build());
    }
    out
}

/// `people` in `area` in bands across its shorter side: one above another on a tall area, side by side on a wide
/// one; beyond four, in two bands. Each tile fills its cell (a camera is cropped to it).
fn stack(people: &[&Participant], area: Rect, s: &Style) -> Vec<Placement> {
    let n = people.len();
    if n == 0 {
        return Vec::new();
    }
    let across = if n > 4 { 2 } else { 1 };
    let along = n.div_ceil(across);
    let tall = area.height >= area.width;
    let (long, short) = if tall { (area.height, area.width) } else { (area.width, area.height) };
    let cell_long = (long - s.gap * (along as f32 - 1.0)) / along as f32;
    let cell_short = (short - s.gap * (across as f32 - 1.0)) / across as f32;
    people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (a, b) = ((i / across) as f32, (i % across) as f32);
            let (l, t) = (a * (cell_long + s.gap), b * (cell_short + s.gap));
            let r = if tall {
                rect(area.x + t, area.y + l, cell_short, cell_long)
            } else {
                rect(area.x + l, area.y + t, cell_long, cell_short)
            };
            tile(&p.id, r).fit(fit_for(p)).radius(s.radius).build()
        })
        .collect()
}

fn one_over_two(stage: &Stage, s: &Style) -> Vec<Placement> {
    // unwrap: place() returned early for an empty stage.
    let main = focus(stage).unwrap();
    let others: Vec<&Participant> = stage.participants.iter().filter(|p| p.id != main.id).collect();
    let area = inset(canvas_rect(stage.canvas), s.margin);
    if others.is_empty() {
        return stack(&[main], area, s);
    }
    // The speaker takes the top half of a tall canvas (the left of a wide one); the others share the rest.
    let (top, rest) = split_long(area, 0.5, s.gap);
    let mut out = vec![tile(&main.id, top).fit(fit_for(main)).radius(s.radius).build()];
    // The rest is about square: stacked along its longer side, the others sit side by side under the speaker
    // (one above another beside the speaker on a wide canvas).
    out.extend(stack(&others, rest, s));
    out
}

fn speaker_inset(stage: &Stage, s: &Style) -> Vec<Placement> {
    let canvas = canvas_rect(stage.canvas);
    let (mut out, others) = speaker_over_canvas(stage);
    if others.is_empty() {
        return out;
    }
    // Insets of the canvas's own shape, a third of its width, up the right edge from the bottom; as many as
    // fit in the canvas's lower two thirds, shrunk to fit more.
    let aspect = canvas.width / canvas.height;
    let n = others.len() as f32;
    let room = canvas.height * 2.0 / 3.0 - s.margin;
    let h = ((canvas.width / 3.0) / aspect).min((room - s.gap * (n - 1.0)) / n).max(1.0);
    let w = h * aspect;
    for (i, p) in others.iter().enumerate() {
        let y = canvas.height - s.margin - h - i as f32 * (h + s.gap);
        let r = rect(canvas.width - s.margin - w, y, w, h);
        out.push(tile(&p.id, r).fit(fit_for(p)).radius(s.radius).z(1 + i as i32).build());
    }
    out
}

fn screen_above(stage: &Stage, s: &Style) -> Vec<Placement> {
    let area = inset(canvas_rect(stage.canvas), s.margin);
    let Some(screen) = screen_share(stage) else {
        return stack(&stage.participants.iter().collect::<Vec<_>>(), area, s);
    };
    let others: Vec<&Participant> = stage.participants.iter().filter(|p| p.id != screen.id).collect();
    // The screen whole at the full width (16:9), at most half the canvas; the cameras share what is left.
    let screen_h = (area.width / WIDE).min(area.height / 2.0);
    let top = rect(area.x, area.y, area.width, screen_h);
    let mut out = vec![tile(&screen.id, top).fit(Fit::Contain).radius(s.radius).build()];
    if others.is_empty() {
        return out;
    }
    let rest = rect(area.x, area.y + screen_h + s.gap, area.width, area.height - screen_h - s.gap);
    out.extend(stack(&others, rest, s).into_iter().map(|mut p| {
        p.z = 1;
        p
    }));
    out
}

backyard_plugin_api::export_layout!(Layouts);
