//! Where tiles go: plain data, as a layout plugin returns it, checked before use.

/// A rectangle on the canvas, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn new(x: i32, y: i32, width: u32, height: u32) -> Rect {
        Rect { x, y, width, height }
    }

    /// The same rectangle snapped to even coordinates and sizes (4:2:0 chroma covers 2×2 pixels).
    pub fn even(self) -> Rect {
        let x0 = self.x & !1;
        let y0 = self.y & !1;
        let x1 = (self.x + self.width as i32 + 1) & !1;
        let y1 = (self.y + self.height as i32 + 1) & !1;
        Rect { x: x0, y: y0, width: (x1 - x0).max(0) as u32, height: (y1 - y0).max(0) as u32 }
    }

    pub fn contains(&self, px: i32, py: i32) -> bool {
        px >= self.x && py >= self.y && px < self.x + self.width as i32 && py < self.y + self.height as i32
    }
}

/// How a source whose aspect ratio differs from its tile is fitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Fit {
    /// Scale to fill the tile and crop the overflow (faces fill the tile; the usual choice for cameras).
    #[default]
    Cover,
    /// Scale to fit inside the tile and letterbox (nothing is cut; the choice for screen shares).
    Contain,
}

/// One tile of the program.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Participant id (or `<participantId>:screen` for a screen share).
    pub source: String,
    /// Tile rectangle on the canvas.
    pub rect: Rect,
    /// Drawing order: higher is on top.
    pub z: i32,
    /// Fit mode.
    pub fit: Fit,
}

/// Why a set of placements was refused (the compositor keeps the last good set).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A tile leaves the canvas.
    #[error("tile for {source_id} at {rect:?} is outside the {width}x{height} canvas")]
    OutsideCanvas {
        /// The tile's source.
        source_id: String,
        /// The tile.
        rect: Rect,
        /// Canvas width.
        width: u32,
        /// Canvas height.
        height: u32,
    },
    /// A tile is too small to draw.
    #[error("tile for {0} is smaller than 2x2")]
    TooSmall(String),
    /// A tile names a source that is not on stage.
    #[error("tile for unknown source {0}")]
    UnknownSource(String),
    /// Too many tiles.
    #[error("{0} tiles, at most {1}")]
    TooMany(usize, usize),
    /// The tiles are for a canvas the program does not have.
    #[error(transparent)]
    NoCanvas(#[from] super::CanvasError),
}

/// Most tiles a program draws.
pub const MAX_TILES: usize = 64;

/// Checks placements against the canvas and the stage.
pub fn validate(
    placements: &[Placement],
    width: u32,
    height: u32,
    is_known: impl Fn(&str) -> bool,
) -> Result<(), PlacementError> {
    if placements.len() > MAX_TILES {
        return Err(PlacementError::TooMany(placements.len(), MAX_TILES));
    }
    for p in placements {
        let r = p.rect;
        if r.width < 2 || r.height < 2 {
            return Err(PlacementError::TooSmall(p.source.clone()));
        }
        let inside = r.x >= 0
            && r.y >= 0
            && (r.x as i64 + r.width as i64) <= width as i64
            && (r.y as i64 + r.height as i64) <= height as i64;
        if !inside {
            return Err(PlacementError::OutsideCanvas { source_id: p.source.clone(), rect: r, width, height });
        }
        if !is_known(&p.source) {
            return Err(PlacementError::UnknownSource(p.source.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(source: &str, rect: Rect) -> Placement {
        Placement { source: source.into(), rect, z: 0, fit: Fit::Cover }
    }

    #[test]
    fn placements_are_checked() {
        let known = |s: &str| s == "a";
        assert!(validate(&[tile("a", Rect::new(0, 0, 640, 360))], 640, 360, known).is_ok());
        assert!(matches!(
            validate(&[tile("a", Rect::new(1, 0, 640, 360))], 640, 360, known),
            Err(PlacementError::OutsideCanvas { .. })
        ));
        assert!(matches!(
            validate(&[tile("a", Rect::new(-2, 0, 10, 10))], 640, 360, known),
            Err(PlacementError::OutsideCanvas { .. })
        ));
        assert!(matches!(
            validate(&[tile("b", Rect::new(0, 0, 10, 10))], 640, 360, known),
            Err(PlacementError::UnknownSource(_))
        ));
        assert!(matches!(
            validate(&[tile("a", Rect::new(0, 0, 1, 10))], 640, 360, known),
            Err(PlacementError::TooSmall(_))
        ));
    }

    #[test]
    fn even_snapping_covers_the_rect() {
        assert_eq!(Rect::new(3, 5, 10, 7).even(), Rect::new(2, 4, 12, 8));
        assert_eq!(Rect::new(2, 4, 10, 8).even(), Rect::new(2, 4, 10, 8));
    }
}
