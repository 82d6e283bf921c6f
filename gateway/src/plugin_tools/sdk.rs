//! The plugin SDK this binary carries (`plugin-api/` as it was built), written out beside a plugin crate so
//! that crate builds anywhere, with no Backyard checkout and no network beyond crates.io.

use std::path::Path;

use anyhow::Context as _;

/// The SDK's version: the workspace's, which the SDK shares.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every file of the SDK crate but its manifest, by path inside the crate.
pub const FILES: &[(&str, &[u8])] = &[
    ("src/lib.rs", include_bytes!("../../../plugin-api/src/lib.rs")),
    ("src/draw.rs", include_bytes!("../../../plugin-api/src/draw.rs")),
    ("src/geometry.rs", include_bytes!("../../../plugin-api/src/geometry.rs")),
    ("src/url.rs", include_bytes!("../../../plugin-api/src/url.rs")),
    ("wit/plugin.wit", include_bytes!("../../../plugin-api/wit/plugin.wit")),
    ("fonts/DejaVuSans.ttf", include_bytes!("../../../plugin-api/fonts/DejaVuSans.ttf")),
    ("fonts/DejaVuSans-Bold.ttf", include_bytes!("../../../plugin-api/fonts/DejaVuSans-Bold.ttf")),
    ("fonts/DejaVuSerif.ttf", include_bytes!("../../../plugin-api/fonts/DejaVuSerif.ttf")),
    ("fonts/DejaVuSerif-Bold.ttf", include_bytes!("../../../plugin-api/fonts/DejaVuSerif-Bold.ttf")),
    ("fonts/DejaVuSansMono.ttf", include_bytes!("../../../plugin-api/fonts/DejaVuSansMono.ttf")),
    ("fonts/DejaVuSansMono-Bold.ttf", include_bytes!("../../../plugin-api/fonts/DejaVuSansMono-Bold.ttf")),
    ("fonts/LICENSE-DejaVu.txt", include_bytes!("../../../plugin-api/fonts/LICENSE-DejaVu.txt")),
];

const SDK_MANIFEST: &str = include_str!("../../../plugin-api/Cargo.toml");
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The SDK's `Cargo.toml` standing on its own: what it inherits from the Backyard workspace (version,
/// edition, dependency versions) written in, and the workspace's lint table dropped.
pub fn manifest() -> anyhow::Result<String> {
    let workspace: toml::Table = WORKSPACE_MANIFEST.parse().context("the workspace manifest")?;
    let ws = |key: &str| workspace.get("workspace").and_then(|w| w.get(key)).and_then(|v| v.as_table());
    let package_defaults = ws("package").context("[workspace.package]")?;
    let dependency_versions = ws("dependencies").context("[workspace.dependencies]")?;
    let mut sdk: toml::Table = SDK_MANIFEST.parse().context("the SDK manifest")?;
    sdk.remove("lints");
    if let Some(toml::Value::Table(package)) = sdk.get_mut("package") {
        for (key, value) in package.iter_mut() {
            if is_inherited(value) {
                *value = package_defaults.get(key).with_context(|| format!("workspace.package.{key}"))?.clone();
            }
        }
    }
    if let Some(toml::Value::Table(deps)) = sdk.get_mut("dependencies") {
        for (name, dep) in deps.iter_mut() {
            let Some(table) = dep.as_table().filter(|_| is_inherited(dep)) else { continue };
            let mut resolved =
                match dependency_versions.get(name).with_context(|| format!("workspace dependency {name}"))? {
                    toml::Value::String(v) => {
                        let mut t = toml::Table::new();
                        t.insert("version".into(), toml::Value::String(v.clone()));
                        t
                    }
                    toml::Value::Table(t) => t.clone(),
                    other => anyhow::bail!("workspace dependency {name} is {other}"),
                };
            for (k, v) in table.iter().filter(|(k, _)| *k != "workspace") {
                resolved.insert(k.clone(), v.clone());
            }
            *dep = toml::Value::Table(resolved);
        }
    }
    let body = toml::to_string(&sdk).context("writing the SDK manifest")?;
    Ok(format!(
        "# The Backyard plugin SDK {SDK_VERSION}, as the `backyard` binary carries it (`backyard plugin sdk` writes it).\n\n{body}"
    ))
}

/// `workspace = true` (written `key.workspace = true` or `key = { workspace = true, ... }`).
fn is_inherited(v: &toml::Value) -> bool {
    v.as_table().and_then(|t| t.get("workspace")).and_then(|w| w.as_bool()) == Some(true)
}

/// Write the SDK crate into `dir` (made if missing; files of an older SDK there are replaced).
pub fn write(dir: &Path) -> anyhow::Result<()> {
    for (path, bytes) in FILES {
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&to, bytes).with_context(|| format!("writing {}", to.display()))?;
    }
    let to = dir.join("Cargo.toml");
    std::fs::write(&to, manifest()?).with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_manifest_stands_on_its_own() {
        let text = manifest().unwrap();
        let m: toml::Table = text.parse().unwrap();
        assert!(!text.contains("workspace"), "{text}");
        assert_eq!(m["package"]["name"].as_str(), Some("backyard-plugin-api"));
        assert_eq!(m["package"]["version"].as_str(), Some(SDK_VERSION));
        assert_eq!(m["package"]["edition"].as_str(), Some("2024"));
        assert!(m["dependencies"]["wit-bindgen"]["version"].is_str());
        assert_eq!(m["dependencies"]["ab_glyph"]["optional"].as_bool(), Some(true));
        assert!(m["features"]["draw"].is_array());
    }

    #[test]
    fn every_file_of_the_sdk_is_carried() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
        let mut on_disk = Vec::new();
        for dir in ["src", "wit", "fonts"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                on_disk.push(format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()));
            }
        }
        on_disk.sort();
        let mut carried: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        carried.sort();
        assert_eq!(carried, on_disk, "plugin-api gained or lost a file: list it in FILES");
    }
}
