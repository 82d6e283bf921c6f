//! Comparing rendered previews with committed PNG snapshots, for the plugin snapshot tests here and the
//! `backyard plugin render` tests of the gateway (which include this file by path). A missing snapshot is
//! written on a developer machine and fails under `CI=true`; `UPDATE_SNAPSHOTS=1` rewrites them all; on a
//! mismatch the rendered picture is written to the temp dir, to look at.

use std::path::Path;

use backyard_core::plugin_host::Rgba;

/// Channels may differ by this much (font rasterisation, float rounding)...
pub const TOLERANCE: u8 = 24;
/// ...on at most this fraction of the pixels.
pub const MAX_DIFF: f64 = 0.002;

/// Compare `img` with the snapshot `<dir>/<name>.png`; returns a description of the mismatch.
pub fn check(dir: &Path, name: &str, img: &Rgba) -> Option<String> {
    let path = dir.join(format!("{name}.png"));
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    if update || !path.exists() {
        if ci && !update {
            return Some(format!("{name}: snapshot {} is missing (CI=true never writes one)", path.display()));
        }
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&path, img.to_png().unwrap()).unwrap();
        eprintln!("wrote snapshot {}", path.display());
        return None;
    }
    let want = Rgba::from_png(&std::fs::read(&path).unwrap()).unwrap();
    match want.diff_fraction(img, TOLERANCE) {
        None => Some(format!("{name}: size {}x{} != snapshot {}x{}", img.width, img.height, want.width, want.height)),
        Some(d) if d > MAX_DIFF => {
            let actual = std::env::temp_dir().join(format!("{name}.actual.png"));
            std::fs::write(&actual, img.to_png().unwrap()).unwrap();
            Some(format!("{name}: {:.2}% of pixels differ (see {})", d * 100.0, actual.display()))
        }
        Some(_) => None,
    }
}
