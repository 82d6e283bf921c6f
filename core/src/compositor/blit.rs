//! Pixels: bilinear scaling of an I420 source straight into a rectangle of the I420 canvas (no
//! intermediate frame), fills, and the name card of a participant without video.

use super::placement::{Fit, Rect};
use crate::media::VideoFrame;

/// Source crop and destination rectangle for drawing a `sw`×`sh` source into `tile` with `fit`.
/// Both come back with even coordinates.
pub fn fit_rects(sw: u32, sh: u32, tile: Rect, fit: Fit) -> (Rect, Rect) {
    let tile = tile.even();
    let full = Rect::new(0, 0, sw & !1, sh & !1);
    if sw < 2 || sh < 2 || tile.width < 2 || tile.height < 2 {
        return (full, Rect::new(tile.x, tile.y, 0, 0));
    }
    // Compare aspect ratios without floats: sw/sh vs tw/th.
    let (sw64, sh64, tw, th) = (sw as u64, sh as u64, tile.width as u64, tile.height as u64);
    match fit {
        Fit::Cover => {
            if sw64 * th > tw * sh64 {
                // Source wider: crop its sides.
                let cw = ((sh64 * tw / th) as u32).clamp(2, sw) & !1;
                (Rect::new((((sw - cw) / 2) & !1) as i32, 0, cw, sh & !1), tile)
            } else {
                let ch = ((sw64 * th / tw) as u32).clamp(2, sh) & !1;
                (Rect::new(0, (((sh - ch) / 2) & !1) as i32, sw & !1, ch), tile)
            }
        }
        Fit::Contain => {
            if sw64 * th > tw * sh64 {
                let dh = ((tw * sh64 / sw64) as u32).clamp(2, tile.height) & !1;
                let y = tile.y + (((tile.height - dh) / 2) & !1) as i32;
                (full, Rect::new(tile.x, y, tile.width, dh))
            } else {
                let dw = ((th * sw64 / sh64) as u32).clamp(2, tile.width) & !1;
                let x = tile.x + (((tile.width - dw) / 2) & !1) as i32;
                (full, Rect::new(x, tile.y, dw, tile.height))
            }
        }
    }
}

/// Per-row buffers of [`scale_plane`], kept between calls so scaling the tiles of every tick allocates nothing.
#[derive(Default)]
pub struct Scaler {
    /// Per destination column: (source column, weight of the next one out of 256).
    xs: Vec<(u32, u32)>,
    /// One vertically blended source row, 8.8 fixed point (one extra column: the last one repeated).
    row: Vec<u16>,
}

impl Scaler {
    /// Draws `src` into `tile` of `canvas`; with [`Fit::Contain`] the uncovered part of the tile is filled
    /// with `letterbox` (Y, U, V). The tile must lie inside the canvas (checked by placement validation).
    pub fn draw(&mut self, canvas: &mut VideoFrame, src: &VideoFrame, tile: Rect, fit: Fit, letterbox: [u8; 3]) {
        let tile = clip(tile.even(), canvas.width(), canvas.height());
        let (crop, to) = fit_rects(src.width(), src.height(), tile, fit);
        let to = clip(to, canvas.width(), canvas.height());
        if fit == Fit::Contain && to != tile {
            fill(canvas, tile, letterbox);
        }
        let (cw, sw) = (canvas.width() as usize, src.width() as usize);
        let (cw2, sw2) = (cw.div_ceil(2), sw.div_ceil(2));
        let (sy, su, sv) = src.planes();
        let (dy, du, dv) = canvas.planes_mut();
        let c = |r: Rect| (r.x as usize, r.y as usize, r.width as usize, r.height as usize);
        let h = |r: Rect| (r.x as usize / 2, r.y as usize / 2, r.width as usize / 2, r.height as usize / 2);
        scale_plane(self, sy, sw, c(crop), dy, cw, c(to));
        scale_plane(self, su, sw2, h(crop), du, cw2, h(to));
        scale_plane(self, sv, sw2, h(crop), dv, cw2, h(to));
    }
}

/// Bilinear scale of one plane region into another plane region, in two passes per output row: a vertical
/// blend of the two source rows (8-bit weights, straight-line code the compiler vectorises) into a row of
/// 16-bit values, then a horizontal blend from that row (a plain pairwise average when the row halves
/// exactly, the common 1280 → 640 tile case).
#[allow(clippy::too_many_arguments)]
fn scale_plane(
    scratch: &mut Scaler,
    src: &[u8],
    src_stride: usize,
    crop: (usize, usize, usize, usize),
    dst: &mut [u8],
    dst_stride: usize,
    to: (usize, usize, usize, usize),
) {
    let (sx, sy, sw, sh) = crop;
    let (dx, dy, dw, dh) = to;
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return;
    }
    // Sample positions at pixel centres (16.16 fixed point); per-column source index and weight once.
    let step_x = ((sw as u64) << 16) / dw as u64;
    let step_y = ((sh as u64) << 16) / dh as u64;
    let Scaler { xs, row } = scratch;
    xs.clear();
    xs.extend((0..dw).map(|i| {
        let fx = ((i as u64 * step_x) + step_x / 2).saturating_sub(1 << 15);
        let x0 = ((fx >> 16) as usize).min(sw - 1);
        (x0 as u32, ((fx & 0xffff) >> 8) as u32)
    }));
    let halving = sw == 2 * dw && xs.iter().enumerate().all(|(i, &(x0, w))| x0 as usize == 2 * i && w == 128);
    row.clear();
    row.resize(sw + 1, 0);
    for j in 0..dh {
        let fy = ((j as u64 * step_y) + step_y / 2).saturating_sub(1 << 15);
        let y0 = ((fy >> 16) as usize).min(sh - 1);
        let y1 = (y0 + 1).min(sh - 1);
        let wy = ((fy & 0xffff) >> 8) as u16;
        let r0 = &src[(sy + y0) * src_stride + sx..(sy + y0) * src_stride + sx + sw];
        let r1 = &src[(sy + y1) * src_stride + sx..(sy + y1) * src_stride + sx + sw];
        if wy == 0 {
            for (t, &a) in row[..sw].iter_mut().zip(r0) {
                *t = u16::from(a) << 8;
            }
        } else {
            let w0 = 256 - wy;
            for ((t, &a), &b) in row[..sw].iter_mut().zip(r0).zip(r1) {
                *t = u16::from(a) * w0 + u16::from(b) * wy;
            }
        }
        // The last column's right neighbour is itself.
        row[sw] = row[sw - 1];
        let out = &mut dst[(dy + j) * dst_stride + dx..(dy + j) * dst_stride + dx + dw];
        if halving {
            for (o, pair) in out.iter_mut().zip(row[..sw].chunks_exact(2)) {
                *o = ((u32::from(pair[0]) + u32::from(pair[1]) + 256) >> 9) as u8;
            }
        } else {
            for (o, &(x0, wx)) in out.iter_mut().zip(xs.iter()) {
                let (a, b) = (u32::from(row[x0 as usize]), u32::from(row[x0 as usize + 1]));
                *o = ((a * (256 - wx) + b * wx + (1 << 15)) >> 16) as u8;
            }
        }
    }
}

/// [`Scaler::draw`] with buffers of its own, for a one-off drawing (a repeated one keeps a [`Scaler`]).
pub fn draw_scaled(canvas: &mut VideoFrame, src: &VideoFrame, tile: Rect, fit: Fit, letterbox: [u8; 3]) {
    Scaler::default().draw(canvas, src, tile, fit, letterbox);
}

fn clip(r: Rect, width: u32, height: u32) -> Rect {
    let x0 = r.x.clamp(0, width as i32);
    let y0 = r.y.clamp(0, height as i32);
    let x1 = (r.x + r.width as i32).clamp(0, width as i32);
    let y1 = (r.y + r.height as i32).clamp(0, height as i32);
    Rect::new(x0, y0, (x1 - x0) as u32, (y1 - y0) as u32)
}

/// Fills a rectangle (snapped to even) with one colour.
pub fn fill(canvas: &mut VideoFrame, rect: Rect, yuv: [u8; 3]) {
    let r = clip(rect.even(), canvas.width(), canvas.height());
    let cw = canvas.width() as usize;
    let cw2 = cw.div_ceil(2);
    let (y, u, v) = canvas.planes_mut();
    for row in r.y as usize..(r.y as usize + r.height as usize) {
        y[row * cw + r.x as usize..row * cw + r.x as usize + r.width as usize].fill(yuv[0]);
    }
    for row in r.y as usize / 2..(r.y as usize + r.height as usize) / 2 {
        let (a, b) = (row * cw2 + r.x as usize / 2, row * cw2 + (r.x as usize + r.width as usize) / 2);
        u[a..b].fill(yuv[1]);
        v[a..b].fill(yuv[2]);
    }
}

/// A stable colour per name (Y, U, V), mid-dark so white initials would read on it.
pub fn card_colour(name: &str) -> [u8; 3] {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let hues: [[u8; 3]; 6] =
        [[82, 150, 96], [76, 168, 120], [90, 110, 160], [70, 160, 150], [95, 100, 120], [80, 130, 170]];
    hues[(hash % hues.len() as u64) as usize]
}

/// The card shown instead of a participant whose video stopped: their colour with a lighter avatar disc.
pub fn draw_name_card(canvas: &mut VideoFrame, tile: Rect, name: &str) {
    let colour = card_colour(name);
    fill(canvas, tile, colour);
    let t = clip(tile.even(), canvas.width(), canvas.height());
    let radius = (t.width.min(t.height) / 5).max(1) as i64;
    let (cx, cy) = (t.x as i64 + t.width as i64 / 2, t.y as i64 + t.height as i64 / 2);
    let cw = canvas.width() as i64;
    let (y, _, _) = canvas.planes_mut();
    let disc = colour[0].saturating_add(80);
    for py in (cy - radius).max(0)..(cy + radius) {
        for px in (cx - radius).max(0)..(cx + radius).min(cw) {
            let (dx, dy) = (px - cx, py - cy);
            if dx * dx + dy * dy <= radius * radius
                && let Some(p) = y.get_mut((py * cw + px) as usize)
            {
                *p = disc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_crops_and_contain_letterboxes() {
        // 16:9 source into a square tile.
        let (crop, to) = fit_rects(1280, 720, Rect::new(0, 0, 400, 400), Fit::Cover);
        assert_eq!(to, Rect::new(0, 0, 400, 400));
        assert_eq!(crop, Rect::new(280, 0, 720, 720));
        let (crop, to) = fit_rects(1280, 720, Rect::new(0, 0, 400, 400), Fit::Contain);
        assert_eq!(crop, Rect::new(0, 0, 1280, 720));
        assert_eq!(to, Rect::new(0, 88, 400, 224));
    }

    #[test]
    fn scaling_keeps_flat_colours_and_stays_inside_the_tile() {
        let mut canvas = VideoFrame::filled(320, 180, [16, 128, 128]);
        let src = VideoFrame::filled(64, 48, [200, 60, 180]);
        let tile = Rect::new(100, 50, 120, 80);
        draw_scaled(&mut canvas, &src, tile, Fit::Cover, [16, 128, 128]);
        let (y, u, v) = canvas.planes();
        for py in 0..180 {
            for px in 0..320 {
                let inside = tile.contains(px, py);
                let expect = if inside { 200 } else { 16 };
                assert_eq!(y[(py * 320 + px) as usize], expect, "at {px},{py}");
            }
        }
        assert_eq!(u[(60 / 2) * 160 + 110 / 2], 60);
        assert_eq!(v[(60 / 2) * 160 + 110 / 2], 180);
    }

    #[test]
    fn downscale_of_a_gradient_is_monotonic() {
        let mut src = VideoFrame::filled(256, 64, [0, 128, 128]);
        for row in 0..64 {
            for x in 0..256 {
                src.planes_mut().0[row * 256 + x] = x as u8;
            }
        }
        let mut canvas = VideoFrame::filled(64, 16, [0, 128, 128]);
        draw_scaled(&mut canvas, &src, Rect::new(0, 0, 64, 16), Fit::Cover, [0, 128, 128]);
        let row = &canvas.planes().0[..64];
        assert!(row.windows(2).all(|w| w[1] >= w[0]), "{row:?}");
        assert!(row[0] < 8 && row[63] > 247, "{row:?}");
    }

    #[test]
    fn an_exact_half_is_the_rounded_mean_of_each_two_by_two_block() {
        let mut src = VideoFrame::filled(64, 32, [0, 128, 128]);
        let mut seed = 7u32;
        for p in src.planes_mut().0.iter_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *p = (seed >> 16) as u8;
        }
        let mut canvas = VideoFrame::filled(40, 20, [16, 128, 128]);
        draw_scaled(&mut canvas, &src, Rect::new(4, 2, 32, 16), Fit::Cover, [16, 128, 128]);
        let (s, c) = (src.planes().0, canvas.planes().0);
        for y in 0..16 {
            for x in 0..32 {
                let at = |dx: usize, dy: usize| u16::from(s[(2 * y + dy) * 64 + 2 * x + dx]);
                let mean = ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) >> 2) as u8;
                assert_eq!(c[(y + 2) * 40 + x + 4], mean, "at {x},{y}");
            }
        }
        assert_eq!(c[0], 16, "outside the tile stays");
    }

    #[test]
    fn halving_averages_pixel_pairs_and_other_ratios_interpolate() {
        let mut src = VideoFrame::filled(8, 4, [0, 128, 128]);
        {
            let y = src.planes_mut().0;
            for r in 0..4 {
                y[r * 8..r * 8 + 8].copy_from_slice(&[0, 100, 100, 100, 200, 200, 255, 255]);
            }
        }
        let mut half = VideoFrame::filled(4, 2, [0, 128, 128]);
        draw_scaled(&mut half, &src, Rect::new(0, 0, 4, 2), Fit::Cover, [0, 128, 128]);
        assert_eq!(&half.planes().0[..4], &[50, 100, 200, 255]);
        // Upscaling 2 → 4 columns: samples at 0.25 px steps around the centres.
        let mut two = VideoFrame::filled(2, 2, [0, 128, 128]);
        two.planes_mut().0.copy_from_slice(&[0, 200, 0, 200]);
        let mut wide = VideoFrame::filled(4, 2, [0, 128, 128]);
        draw_scaled(&mut wide, &two, Rect::new(0, 0, 4, 2), Fit::Cover, [0, 128, 128]);
        assert_eq!(&wide.planes().0[..4], &[0, 50, 150, 200]);
    }
}
