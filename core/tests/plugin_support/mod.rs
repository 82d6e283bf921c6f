//! Shared set-up for the plugin host tests: where `cargo xtask plugins` installed the plugins, and
//! small stage builders.
#![allow(dead_code)]

pub mod snapshot;

use std::path::PathBuf;

use backyard_core::plugin_host::{HostConfig, Participant, PluginHost, Size, Stage};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// First-party plugins, installed by `cargo xtask plugins`.
pub fn plugins_dir() -> PathBuf {
    let d = root().join("target/plugins");
    assert!(d.join("layouts/plugin.wasm").is_file(), "{} has no plugins: run `cargo xtask plugins` first", d.display());
    d
}

/// Hostile fixtures and other test-only plugins, installed by `cargo xtask plugins`.
pub fn fixtures_dir() -> PathBuf {
    let d = root().join("target/plugin-fixtures");
    assert!(
        d.join("hostile-layout/plugin.wasm").is_file(),
        "{} has no fixtures: run `cargo xtask plugins` first",
        d.display()
    );
    d
}

/// A host over the given dirs with default settings and no watcher.
pub fn host(dirs: Vec<PathBuf>) -> PluginHost {
    PluginHost::start(HostConfig { dirs, ..HostConfig::default() }).expect("plugin host starts")
}

/// A stage of participants with the given names (ids p0, p1, ...).
pub fn stage(layout: &str, names: &[&str], w: u32, h: u32) -> Stage {
    Stage {
        layout: layout.into(),
        canvas: Size { width: w, height: h },
        participants: names
            .iter()
            .enumerate()
            .map(|(i, n)| Participant {
                id: format!("p{i}"),
                name: n.to_string(),
                speaking: false,
                screen_share: false,
                video_enabled: true,
            })
            .collect(),
        active_speaker: None,
    }
}

/// A stage of `n` participants named "Guest 1".."Guest n".
pub fn stage_n(layout: &str, n: usize, w: u32, h: u32) -> Stage {
    let names: Vec<String> = (1..=n).map(|i| format!("Guest {i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    stage(layout, &refs, w, h)
}
