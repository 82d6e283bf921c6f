//! Overlay layers (banner, lower third, logo, on-screen chat) as the overlay plugins render them: RGBA
//! images converted to YUV + alpha once when they change, then blended every frame only where they cover.

use super::placement::Rect;
use crate::media::VideoFrame;

/// One RGBA layer to put on the program (straight alpha, row-major, `rect.width * rect.height * 4` bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct OverlayLayer {
    /// Layer id (from the overlay plugin); for logs.
    pub id: String,
    /// Where the image goes; its size is the image size.
    pub rect: Rect,
    /// Pixels.
    pub rgba: Vec<u8>,
    /// Drawing order among overlays (all overlays are above the tiles).
    pub z: i32,
}

/// Why a layer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    /// The pixel buffer does not match the rectangle.
    #[error("overlay {id}: {got} bytes for a {width}x{height} image")]
    SizeMismatch {
        /// Layer id.
        id: String,
        /// Bytes given.
        got: usize,
        /// Rect width.
        width: u32,
        /// Rect height.
        height: u32,
    },
    /// The layers are for a canvas the program does not have.
    #[error(transparent)]
    NoCanvas(#[from] super::CanvasError),
}

/// A layer ready to blend: BT.601 limited-range planes with alpha, and per row the span that has any
/// coverage (most of a lower third's rows are short; a banner's are empty outside the band).
#[derive(Debug)]
pub(crate) struct PreparedOverlay {
    /// The layer's id, so one overlay can be replaced without touching the others.
    pub(crate) id: String,
    rect: Rect,
    z: i32,
    y: Vec<u8>,
    a: Vec<u8>,
    /// Per chroma row of the layer (2×2 averaged): U, V, alpha.
    u: Vec<u8>,
    v: Vec<u8>,
    ca: Vec<u8>,
    /// Per luma row: [first, last) columns with alpha > 0.
    spans: Vec<(usize, usize)>,
}

pub(crate) fn rgb_to_yuv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    (
        16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0,
        128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0,
        128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0,
    )
}

impl PreparedOverlay {
    /// Converts a layer. The rectangle is snapped to even coordinates (chroma), cropping odd edges.
    pub(crate) fn new(layer: &OverlayLayer) -> Result<PreparedOverlay, OverlayError> {
        let (w, h) = (layer.rect.width as usize, layer.rect.height as usize);
        if layer.rgba.len() != w * h * 4 {
            return Err(OverlayError::SizeMismatch {
                id: layer.id.clone(),
                got: layer.rgba.len(),
                width: layer.rect.width,
                height: layer.rect.height,
            });
        }
        let (ew, eh) = (w & !1, h & !1);
        let rect = Rect::new(layer.rect.x & !1, layer.rect.y & !1, ew as u32, eh as u32);
        let mut p = PreparedOverlay {
            id: layer.id.clone(),
            rect,
            z: layer.z,
            y: vec![0; ew * eh],
            a: vec![0; ew * eh],
            u: vec![128; ew * eh / 4],
            v: vec![128; ew * eh / 4],
            ca: vec![0; ew * eh / 4],
            spans: Vec::with_capacity(eh),
        };
        for row in 0..eh {
            let (mut first, mut last) = (usize::MAX, 0);
            for col in 0..ew {
                let px = &layer.rgba[(row * w + col) * 4..(row * w + col) * 4 + 4];
                let (y, _, _) = rgb_to_yuv(px[0] as f32, px[1] as f32, px[2] as f32);
                p.y[row * ew + col] = y.round() as u8;
                p.a[row * ew + col] = px[3];
                if px[3] > 0 {
                    first = first.min(col);
                    last = col + 1;
                }
            }
            p.spans.push(if first == usize::MAX { (0, 0) } else { (first, last) });
        }
        let cw = ew / 2;
        for cy in 0..eh / 2 {
            for cx in 0..cw {
                let (mut su, mut sv, mut sa) = (0.0f32, 0.0f32, 0u32);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let i = ((cy * 2 + dy) * w + cx * 2 + dx) * 4;
                    let px = &layer.rgba[i..i + 4];
                    let (_, u, v) = rgb_to_yuv(px[0] as f32, px[1] as f32, px[2] as f32);
                    // Alpha-weighted so transparent pixels' colour does not bleed into edges.
                    su += u * px[3] as f32;
                    sv += v * px[3] as f32;
                    sa += px[3] as u32;
                }
                let o = cy * cw + cx;
                if sa > 0 {
                    p.u[o] = (su / sa as f32).round() as u8;
                    p.v[o] = (sv / sa as f32).round() as u8;
                }
                p.ca[o] = (sa / 4) as u8;
            }
        }
        Ok(p)
    }

    pub(crate) fn z(&self) -> i32 {
        self.z
    }

    /// Blends onto the canvas, clipped to it, touching only covered spans.
    pub(crate) fn blend(&self, canvas: &mut VideoFrame) {
        let (cw, chh) = (canvas.width() as i64, canvas.height() as i64);
        let (ow, oh) = (self.rect.width as i64, self.rect.height as i64);
        let (ox, oy) = (self.rect.x as i64, self.rect.y as i64);
        let mix = |d: &mut u8, s: u8, a: u8| {
            *d = ((*d as u32 * (255 - a as u32) + s as u32 * a as u32 + 127) / 255) as u8;
        };
        let (yp, up, vp) = canvas.planes_mut();
        for row in 0..oh {
            let cy = oy + row;
            if cy < 0 || cy >= chh {
                continue;
            }
            let (first, last) = self.spans[row as usize];
            for col in first as i64..last as i64 {
                let cx = ox + col;
                if cx < 0 || cx >= cw {
                    continue;
                }
                let i = (row * ow + col) as usize;
                mix(&mut yp[(cy * cw + cx) as usize], self.y[i], self.a[i]);
            }
        }
        let (ccw, cch, ocw) = ((cw + 1) / 2, (chh + 1) / 2, ow / 2);
        for row in 0..oh / 2 {
            let cy = oy / 2 + row;
            let (a, b) = (self.spans[(row * 2) as usize], self.spans[(row * 2 + 1) as usize]);
            let (first, last) = (a.0.min(b.0) / 2, a.1.max(b.1).div_ceil(2));
            if cy < 0 || cy >= cch || first >= last {
                continue;
            }
            for col in first as i64..last as i64 {
                let cx = ox / 2 + col;
                if cx < 0 || cx >= ccw {
                    continue;
                }
                let i = (row * ocw + col) as usize;
                let o = (cy * ccw + cx) as usize;
                mix(&mut up[o], self.u[i], self.ca[i]);
                mix(&mut vp[o], self.v[i], self.ca[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_by_alpha_only_where_covered() {
        // 8x4 layer: left half opaque white, right half transparent.
        let mut rgba = Vec::new();
        for _ in 0..4 {
            for col in 0..8 {
                rgba.extend_from_slice(if col < 4 { &[255, 255, 255, 255] } else { &[255, 0, 0, 0] });
            }
        }
        let layer = OverlayLayer { id: "t".into(), rect: Rect::new(2, 2, 8, 4), rgba, z: 0 };
        let p = PreparedOverlay::new(&layer).unwrap();
        let mut canvas = VideoFrame::filled(16, 8, [50, 128, 128]);
        p.blend(&mut canvas);
        let (y, u, v) = canvas.planes();
        assert_eq!(y[2 * 16 + 2], 235, "opaque white");
        assert_eq!(y[2 * 16 + 7], 50, "transparent part untouched");
        assert_eq!(y[0], 50, "outside untouched");
        assert_eq!((u[8 + 1], v[8 + 1]), (128, 128), "white has neutral chroma");
    }

    #[test]
    fn half_alpha_mixes_halfway_and_clips_at_the_edge() {
        let layer =
            OverlayLayer { id: "h".into(), rect: Rect::new(12, 6, 8, 4), rgba: [0, 0, 0, 128].repeat(32), z: 0 };
        let p = PreparedOverlay::new(&layer).unwrap();
        let mut canvas = VideoFrame::filled(16, 8, [200, 128, 128]);
        p.blend(&mut canvas);
        let y = canvas.planes().0;
        // Black is Y=16: 200 * 127/255 + 16 * 128/255 ≈ 108.
        assert!((y[7 * 16 + 13] as i32 - 108).abs() <= 1, "{}", y[7 * 16 + 13]);
        assert_eq!(y[5 * 16 + 13], 200);
    }

    #[test]
    fn wrong_buffer_size_is_refused() {
        let layer = OverlayLayer { id: "x".into(), rect: Rect::new(0, 0, 4, 4), rgba: vec![0; 10], z: 0 };
        assert!(matches!(PreparedOverlay::new(&layer), Err(OverlayError::SizeMismatch { .. })));
    }
}
