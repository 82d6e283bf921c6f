//! Rectangle arithmetic for layouts: grids, aspect fitting, splits. Pure functions, no host calls.

use crate::types::{Rect, Size};

/// A rectangle.
pub fn rect(x: f32, y: f32, width: f32, height: f32) -> Rect {
    Rect { x, y, width, height }
}

/// The whole canvas.
pub fn canvas_rect(size: Size) -> Rect {
    rect(0.0, 0.0, size.width as f32, size.height as f32)
}

/// `r` shrunk by `by` pixels on every side (never below zero size).
pub fn inset(r: Rect, by: f32) -> Rect {
    let by = by.min(r.width / 2.0).min(r.height / 2.0).max(0.0);
    rect(r.x + by, r.y + by, r.width - 2.0 * by, r.height - 2.0 * by)
}

/// The largest rectangle of the given aspect ratio (width / height) centred in `area`.
pub fn fit_aspect(area: Rect, aspect: f32) -> Rect {
    // NaN is no aspect either.
    if area.width <= 0.0 || area.height <= 0.0 || aspect.is_nan() || aspect <= 0.0 {
        return area;
    }
    let (w, h) = if area.width / area.height > aspect {
        (area.height * aspect, area.height)
    } else {
        (area.width, area.width / aspect)
    };
    rect(area.x + (area.width - w) / 2.0, area.y + (area.height - h) / 2.0, w, h)
}

/// Columns and rows for `n` tiles of `aspect` in `area` that make each tile as large as possible.
pub fn best_grid(area: Rect, n: usize, aspect: f32) -> (usize, usize) {
    if n == 0 {
        return (0, 0);
    }
    let mut best = (1, n);
    let mut best_area = -1.0f32;
    for cols in 1..=n {
        let rows = n.div_ceil(cols);
        let cell = fit_aspect(rect(0.0, 0.0, area.width / cols as f32, area.height / rows as f32), aspect);
        let a = cell.width * cell.height;
        // Prefer fewer empty cells on a tie, so 2 on a 16:9 canvas sit side by side.
        if a > best_area + 0.5 {
            best_area = a;
            best = (cols, rows);
        }
    }
    best
}

/// `n` cells of `aspect` laid out in the best grid inside `area`, `gap` pixels apart, in reading order.
/// A last row that is not full is centred.
pub fn grid_cells(area: Rect, n: usize, aspect: f32, gap: f32) -> Vec<Rect> {
    let (cols, rows) = best_grid(area, n, aspect);
    if n == 0 {
        return Vec::new();
    }
    let gap = gap.max(0.0);
    let slot_w = ((area.width - gap * (cols as f32 - 1.0)) / cols as f32).max(1.0);
    let slot_h = ((area.height - gap * (rows as f32 - 1.0)) / rows as f32).max(1.0);
    let cell = fit_aspect(rect(0.0, 0.0, slot_w, slot_h), aspect);
    let block_h = rows as f32 * cell.height + (rows as f32 - 1.0) * gap;
    let top = area.y + (area.height - block_h) / 2.0;
    let mut out = Vec::with_capacity(n);
    for row in 0..rows {
        let in_row = if row + 1 == rows { n - cols * (rows - 1) } else { cols };
        let row_w = in_row as f32 * cell.width + (in_row as f32 - 1.0) * gap;
        let left = area.x + (area.width - row_w) / 2.0;
        for col in 0..in_row {
            out.push(rect(
                left + col as f32 * (cell.width + gap),
                top + row as f32 * (cell.height + gap),
                cell.width,
                cell.height,
            ));
        }
    }
    out
}

/// `n` equal slots stacked along the longer side of `area` (a filmstrip), each fitted to `aspect`.
pub fn strip_cells(area: Rect, n: usize, aspect: f32, gap: f32) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let vertical = area.height > area.width;
    let k = n as f32;
    let slot = if vertical {
        rect(0.0, 0.0, area.width, ((area.height - gap * (k - 1.0)) / k).max(1.0))
    } else {
        rect(0.0, 0.0, ((area.width - gap * (k - 1.0)) / k).max(1.0), area.height)
    };
    let cell = fit_aspect(slot, aspect);
    let total = if vertical { k * cell.height + (k - 1.0) * gap } else { k * cell.width + (k - 1.0) * gap };
    (0..n)
        .map(|i| {
            let i = i as f32;
            if vertical {
                let top = area.y + (area.height - total) / 2.0;
                rect(area.x + (area.width - cell.width) / 2.0, top + i * (cell.height + gap), cell.width, cell.height)
            } else {
                let left = area.x + (area.width - total) / 2.0;
                rect(left + i * (cell.width + gap), area.y + (area.height - cell.height) / 2.0, cell.width, cell.height)
            }
        })
        .collect()
}

/// Split `area` along its longer side: the first part gets `fraction` of it, the rest (minus `gap`) the second.
pub fn split_long(area: Rect, fraction: f32, gap: f32) -> (Rect, Rect) {
    let f = fraction.clamp(0.0, 1.0);
    if area.height > area.width {
        let h1 = (area.height - gap) * f;
        (rect(area.x, area.y, area.width, h1), rect(area.x, area.y + h1 + gap, area.width, area.height - h1 - gap))
    } else {
        let w1 = (area.width - gap) * f;
        (rect(area.x, area.y, w1, area.height), rect(area.x + w1 + gap, area.y, area.width - w1 - gap, area.height))
    }
}
