//! {{name}}: a Backyard filter plugin. It turns a camera picture grey before it is composed.
//!
//! Build: `cargo build --release --target wasm32-wasip2`. Test: `cargo test`.

use backyard_plugin_api::filter::*;

struct Plugin;

impl Guest for Plugin {
    /// Called for every frame of a camera the filter is on: read the pixels once, write them once.
    fn apply(frame: &Frame, _time_ms: u64) -> Result<(), String> {
        let mut px = frame.read();
        grayscale(&mut px);
        frame.write(&px)
    }
}

/// The filter itself: a pure function, so it is tested without a host.
pub fn grayscale(rgba: &mut [u8]) {
    for p in rgba.chunks_exact_mut(4) {
        let y = ((p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8) as u8;
        p[0] = y;
        p[1] = y;
        p[2] = y;
    }
}

backyard_plugin_api::export_filter!(Plugin);

#[cfg(test)]
mod tests {
    #[test]
    fn white_stays_white_and_alpha_is_kept() {
        let mut px = [255, 255, 255, 7, 255, 0, 0, 255];
        super::grayscale(&mut px);
        assert_eq!(&px[..4], &[255, 255, 255, 7]);
        assert_eq!(px[4], px[5]);
    }
}
