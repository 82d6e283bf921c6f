//! `backyard plugin new <kind> <name>`: a complete plugin crate in any folder, from templates this binary
//! carries, with the SDK written beside it (or a given SDK folder), so it builds with one command.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use backyard_core::plugin_host::PluginKind;
use backyard_core::plugin_host::manifest::API_VERSION;

use super::sdk;

/// What `new` makes.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    pub kind: PluginKind,
    /// Lower-case letters, digits and `-`, starting with a letter: the folder, the crate and the plugin's name.
    pub name: String,
    /// The folder to create it in (default: the current one).
    pub dir: Option<PathBuf>,
    /// An SDK folder to depend on instead of writing one into the crate (e.g. a checkout's `plugin-api`).
    pub sdk: Option<PathBuf>,
}

/// What was made, for the caller to print.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    /// The component a release build writes, relative to `dir`.
    pub wasm: PathBuf,
    /// A `backyard plugin render` command line for it, when its kind renders.
    pub preview: Option<String>,
}

const CARGO: &str = include_str!("../../templates/plugin/Cargo.toml.in");
const MANIFEST: &str = include_str!("../../templates/plugin/plugin.toml.in");
const README: &str = include_str!("../../templates/plugin/README.md.in");
const GITIGNORE: &str = include_str!("../../templates/plugin/gitignore.in");
const LAYOUT: &str = include_str!("../../templates/plugin/layout.rs");
const OVERLAY: &str = include_str!("../../templates/plugin/overlay.rs");
const DESTINATION: &str = include_str!("../../templates/plugin/destination.rs");
const FILTER: &str = include_str!("../../templates/plugin/filter.rs");

/// The overlay template's one operator setting.
const OVERLAY_CONFIG: &str = r#"
# Settings the operator may give in backyard.toml, e.g.
#   [plugins.{{name}}]
#   corner = "bottom-right"
[config.corner]
type = "string"
default = "top-left"
choices = ["top-left", "top-right", "bottom-left", "bottom-right"]
description = "Where the badge sits on the program."
"#;

/// Checks a plugin name: what `plugin.toml` and the crate both accept.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!("name '{name}': use 1 to 40 lower-case letters, digits and '-', starting with a letter");
    }
    Ok(())
}

/// Create the crate; fails before writing anything when the name is bad or the folder exists.
pub fn create(req: &NewPlugin) -> anyhow::Result<Created> {
    check_name(&req.name)?;
    let base = match &req.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("the current folder")?,
    };
    let dir = base.join(&req.name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let (source, features, memory_mb, call_ms, config, what) = match req.kind {
        PluginKind::Layout => (LAYOUT, "\"layout\"", 32, 10, "", "Places the people on stage in a grid."),
        PluginKind::Overlay => (OVERLAY, "\"overlay\", \"draw\"", 32, 10, OVERLAY_CONFIG, "Shows a text badge."),
        PluginKind::Destination => (DESTINATION, "\"destination\"", 16, 2000, "", "Streams to an RTMP server."),
        PluginKind::Filter => (FILTER, "\"filter\"", 32, 10, "", "Turns a camera grey."),
    };
    let crate_name = req.name.replace('-', "_");
    let wasm = Path::new("target/wasm32-wasip2/release").join(format!("{crate_name}.wasm"));
    let preview = match req.kind {
        PluginKind::Layout => Some(format!(
            "backyard plugin render {} --names \"Ada,Bob,Cat\" --speaker Bob --out preview.png",
            wasm.display()
        )),
        PluginKind::Overlay => Some(format!(
            "backyard plugin render {} --props '{{\"text\":\"Hello\"}}' --out preview.png",
            wasm.display()
        )),
        PluginKind::Destination | PluginKind::Filter => None,
    };
    let (sdk_path, sdk_note) = match &req.sdk {
        Some(p) => {
            let abs = std::fs::canonicalize(p).with_context(|| format!("--sdk {}", p.display()))?;
            if !abs.join("Cargo.toml").is_file() || !abs.join("wit/plugin.wit").is_file() {
                bail!("--sdk {}: not a Backyard plugin SDK folder (no Cargo.toml and wit/plugin.wit)", p.display());
            }
            (abs.display().to_string(), "From the folder given to `backyard plugin new --sdk`.".to_string())
        }
        None => ("sdk".to_string(), "It is in `sdk/`, written by `backyard plugin new`.".to_string()),
    };
    let title: String = req
        .name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let fill = |t: &str| {
        t.replace("{{config}}", &config.replace("{{name}}", &req.name))
            .replace("{{name}}", &req.name)
            .replace("{{title}}", &title)
            .replace("{{crate}}", &crate_name)
            .replace("{{kind}}", &req.kind.to_string())
            .replace("{{api}}", API_VERSION)
            .replace("{{description}}", what)
            .replace("{{features}}", features)
            .replace("{{sdk}}", &sdk_path)
            .replace("{{sdk_version}}", sdk::SDK_VERSION)
            .replace("{{sdk_note}}", &sdk_note)
            .replace("{{memory_mb}}", &memory_mb.to_string())
            .replace("{{call_ms}}", &call_ms.to_string())
            .replace(
                "{{preview}}",
                preview.as_deref().unwrap_or(
                    "# Destinations and filters are checked by `cargo test`; previews draw layouts and overlays.",
                ),
            )
    };
    let write = |path: &str, text: String| -> anyhow::Result<()> {
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&to, text).with_context(|| format!("writing {}", to.display()))
    };
    write("Cargo.toml", fill(CARGO))?;
    write("plugin.toml", fill(MANIFEST))?;
    write("README.md", fill(README))?;
    write(".gitignore", GITIGNORE.to_string())?;
    write("src/lib.rs", fill(source))?;
    if req.sdk.is_none() {
        sdk::write(&dir.join("sdk"))?;
    }
    Ok(Created { dir, wasm, preview })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_written() {
        for bad in ["", "Scoreboard", "9lives", "score_board", "score board", "trailing-", &"a".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["scoreboard", "my-layout-2", "x"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn an_overlay_crate_has_everything_it_needs() {
        let tmp = std::env::temp_dir().join(format!("backyard-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let made = create(&NewPlugin {
            kind: PluginKind::Overlay,
            name: "score-board".into(),
            dir: Some(tmp.clone()),
            sdk: None,
        })
        .unwrap();
        let read = |p: &str| std::fs::read_to_string(made.dir.join(p)).unwrap();
        let cargo: toml::Table = read("Cargo.toml").parse().unwrap();
        assert_eq!(cargo["lib"]["crate-type"][0].as_str(), Some("cdylib"));
        assert_eq!(cargo["dependencies"]["backyard-plugin-api"]["path"].as_str(), Some("sdk"));
        assert!(cargo.contains_key("workspace"), "a plugin is a workspace of its own");
        let manifest = backyard_core::plugin_host::Manifest::parse(&read("plugin.toml"), "plugin.toml").unwrap();
        assert_eq!(manifest.name, "score-board");
        assert_eq!(manifest.kind, PluginKind::Overlay);
        assert!(read("src/lib.rs").contains("\"score-board\""));
        assert!(!read("src/lib.rs").contains("{{"), "a placeholder is left");
        assert!(!read("README.md").contains("{{"), "a placeholder is left");
        assert!(made.dir.join("sdk/Cargo.toml").is_file() && made.dir.join("sdk/fonts/DejaVuSans.ttf").is_file());
        assert_eq!(made.wasm, Path::new("target/wasm32-wasip2/release/score_board.wasm"));
        let again = create(&NewPlugin {
            kind: PluginKind::Layout,
            name: "score-board".into(),
            dir: Some(tmp.clone()),
            sdk: None,
        });
        assert!(again.unwrap_err().to_string().contains("already exists"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
