//! `cargo xtask plugins [--watch] [--check-template]`, `cargo xtask new-plugin <kind> <name> [--dir D]`,
//! `cargo xtask bench plugins`, and the plugin step of `cargo xtask test`.
//!
//! Plugins build for `wasm32-wasip2` in release, without debug info, into `target/plugins/<name>/`
//! (first-party, loaded by default) and `target/plugin-fixtures/<name>/` (hostile test fixtures and the
//! freshly generated template, loaded only by tests). Each folder holds `plugin.toml` + `plugin.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::root;

const TARGET: &str = "wasm32-wasip2";
/// Only wasm artifacts see these flags, so they never invalidate the shared host build cache.
const WASM_RUSTFLAGS: &str = "-C strip=debuginfo";

/// `cargo` with the shared linker settings, the wasm flags, and the shared target dir (also for
/// generated plugins outside the workspace).
fn cargo() -> Command {
    let mut c = crate::cargo_cmd();
    c.env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", WASM_RUSTFLAGS)
        // xtask itself runs with target/xtask; the builds it starts use the shared target dir.
        .env("CARGO_TARGET_DIR", root().join("target"));
    c
}

fn run(mut c: Command) -> Result<()> {
    crate::status(&mut c)
}

/// Install the wasm target with rustup when it is missing.
pub fn ensure_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output().context("running rustup")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("xtask: installing the {TARGET} target");
    let mut c = Command::new("rustup");
    c.args(["target", "add", TARGET]);
    run(c)
}

/// A plugin crate in the repo.
#[derive(Debug, Clone)]
pub struct PluginCrate {
    /// Cargo package name.
    pub package: String,
    /// Name from `plugin.toml` (the install folder name).
    pub name: String,
    pub dir: PathBuf,
    /// Hostile fixtures and other test-only plugins.
    pub fixture: bool,
}

fn toml_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Every crate under `plugins/` (first-party) and `plugins/fixtures/` (fixtures) with a `plugin.toml`.
pub fn plugin_crates() -> Result<Vec<PluginCrate>> {
    let mut out = Vec::new();
    for (base, fixture) in [(root().join("plugins"), false), (root().join("plugins/fixtures"), true)] {
        let Ok(rd) = std::fs::read_dir(&base) else { continue };
        let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let (cargo_toml, manifest) = (dir.join("Cargo.toml"), dir.join("plugin.toml"));
            if !cargo_toml.is_file() || !manifest.is_file() {
                continue;
            }
            let package = toml_string(&std::fs::read_to_string(&cargo_toml)?, "name")
                .with_context(|| format!("{} has no package name", cargo_toml.display()))?;
            let name = toml_string(&std::fs::read_to_string(&manifest)?, "name")
                .with_context(|| format!("{} has no name", manifest.display()))?;
            out.push(PluginCrate { package, name, dir, fixture });
        }
    }
    Ok(out)
}

/// `--exclude <package>` for every plugin crate, so `cargo test --workspace` stays on the host crates.
pub fn workspace_excludes() -> Result<Vec<String>> {
    Ok(plugin_crates()?.into_iter().flat_map(|p| ["--exclude".to_string(), p.package]).collect())
}

/// Where first-party plugins are installed (a default `plugins.dirs` entry).
pub fn plugins_dir() -> PathBuf {
    root().join("target/plugins")
}

/// Where test-only plugins are installed.
pub fn fixtures_dir() -> PathBuf {
    root().join("target/plugin-fixtures")
}

/// Build every plugin (first-party and fixtures) for wasm32-wasip2 in release and install each into its
/// folder. With `with_template_check`, also generate a fresh plugin with the `new-plugin` template into
/// a temp dir, run its own tests, build it and install it as fixture `new-plugin-check`, so the tests
/// can load and render it (the template never rots).
pub fn build_plugins(with_template_check: bool) -> Result<()> {
    ensure_target()?;
    let crates = plugin_crates()?;
    if crates.is_empty() {
        bail!("no plugin crates found under plugins/");
    }
    let mut c = cargo();
    c.args(["build", "--release", "--target", TARGET]);
    for p in &crates {
        c.args(["-p", &p.package]);
    }
    run(c)?;
    let wasm_dir = root().join("target").join(TARGET).join("release");
    for p in &crates {
        let dest = if p.fixture { fixtures_dir() } else { plugins_dir() }.join(&p.name);
        install(&wasm_dir.join(format!("{}.wasm", p.package.replace('-', "_"))), &p.dir.join("plugin.toml"), &dest)?;
    }
    eprintln!("xtask: {} plugins in {} and {}", crates.len(), plugins_dir().display(), fixtures_dir().display());
    if with_template_check {
        template_check()?;
    }
    Ok(())
}

fn install(wasm: &Path, manifest: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::copy(manifest, dest.join("plugin.toml")).with_context(|| format!("copying {}", manifest.display()))?;
    // Write to a temporary name and rename, so a running host's watcher never sees half a file.
    let tmp = dest.join(".plugin.wasm.tmp");
    std::fs::copy(wasm, &tmp).with_context(|| format!("copying {}", wasm.display()))?;
    std::fs::rename(&tmp, dest.join("plugin.wasm"))?;
    Ok(())
}

fn template_check() -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("backyard-new-plugin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let dir = new_plugin("layout", "new-plugin-check", Some(&tmp))?;
    // Its own unit tests, on the host.
    let mut t = cargo();
    t.current_dir(&dir).args(["test", "--lib", "--quiet"]);
    run(t)?;
    // A plain host build (what an IDE's check or `cargo build` does) compiles and links without warnings: the
    // SDK's export macro adds the component glue on wasm32 only.
    let mut h = cargo();
    h.current_dir(&dir).args(["build", "--quiet"]).env("RUSTFLAGS", "-D warnings -C link-arg=-fuse-ld=mold");
    run(h)?;
    let mut b = cargo();
    b.current_dir(&dir).args(["build", "--release", "--target", TARGET]);
    run(b)?;
    let wasm = root().join("target").join(TARGET).join("release").join("new_plugin_check.wasm");
    install(&wasm, &dir.join("plugin.toml"), &fixtures_dir().join("new-plugin-check"))?;
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "xtask: the new-plugin template builds (wasm32 and host), passes its tests and is installed for the host tests"
    );
    Ok(())
}

/// `cargo xtask plugins [--watch]`.
pub fn cmd_plugins(args: &[String]) -> Result<()> {
    // `--check-template` also runs the new-plugin template check that `cargo xtask test` runs.
    build_plugins(args.iter().any(|a| a == "--check-template"))?;
    if args.iter().any(|a| a == "--watch") {
        eprintln!("xtask: watching plugins/ and plugin-api/ (Ctrl-C to stop)");
        let mut last = newest_source()?;
        loop {
            std::thread::sleep(Duration::from_millis(700));
            let now = newest_source()?;
            if now > last {
                last = now;
                if let Err(e) = build_plugins(false) {
                    eprintln!("xtask: build failed: {e:#}");
                }
            }
        }
    }
    Ok(())
}

fn newest_source() -> Result<SystemTime> {
    fn walk(p: &Path, newest: &mut SystemTime) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(t);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&root().join("plugins"), &mut newest);
    walk(&root().join("plugin-api"), &mut newest);
    Ok(newest)
}

/// `cargo xtask new-plugin <kind> <name> [--dir D]`.
pub fn cmd_new_plugin(args: &[String]) -> Result<()> {
    let mut pos = Vec::new();
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--dir" {
            dir = Some(PathBuf::from(it.next().context("--dir needs a folder")?));
        } else {
            pos.push(a.clone());
        }
    }
    let [kind, name] = pos.as_slice() else {
        bail!("usage: cargo xtask new-plugin <layout|overlay|destination|filter> <name> [--dir D]");
    };
    let out = new_plugin(kind, name, dir.as_deref())?;
    println!("created {}", out.display());
    println!("build:  cargo build --release --target {TARGET}   (in that folder)");
    println!("render: backyard plugin render <the .wasm> --participants 4 --size 1280x720 --out scene.png");
    Ok(())
}

/// Write a new plugin crate for `kind` named `name` into `<dir or plugins>/<name>` and return its path.
pub fn new_plugin(kind: &str, name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        bail!("name '{name}' must be lower-case letters, digits and -");
    }
    let base = dir.map(Path::to_path_buf).unwrap_or_else(|| root().join("plugins"));
    let base = if base.is_absolute() { base } else { std::env::current_dir()?.join(base) };
    let out = base.join(name);
    if out.exists() {
        bail!("{} already exists", out.display());
    }
    let api = root().join("plugin-api");
    let inside_repo = out.starts_with(root());
    let (feature, lib) = match kind {
        "layout" => ("layout", TEMPLATE_LAYOUT),
        "overlay" => ("overlay", TEMPLATE_OVERLAY),
        "destination" => ("destination", TEMPLATE_DESTINATION),
        "filter" => ("filter", TEMPLATE_FILTER),
        other => bail!("unknown kind '{other}' (layout, overlay, destination, filter)"),
    };
    let features = if kind == "overlay" { format!("\"{feature}\", \"draw\"") } else { format!("\"{feature}\"") };
    let workspace = if inside_repo {
        String::new()
    } else {
        "\n# Standalone: not part of the Backyard workspace.\n[workspace]\n".to_string()
    };
    std::fs::create_dir_all(out.join("src"))?;
    std::fs::write(
        out.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\n\
             crate-type = [\"cdylib\"]\n\n[dependencies]\nbackyard-plugin-api = {{ path = \"{}\", features = [{features}] }}\n{workspace}",
            api.display()
        ),
    )?;
    let limits = if kind == "destination" { "memory-mb = 16\ncall-ms = 2000" } else { "memory-mb = 32\ncall-ms = 10" };
    std::fs::write(
        out.join("plugin.toml"),
        format!(
            "name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"{kind}\"\napi = \"0.1.0\"\ndescription = \"A new {kind} plugin.\"\n\n\
             [capabilities]\nallowed-hosts = []\n\n[limits]\n{limits}\n"
        ),
    )?;
    std::fs::write(out.join("src/lib.rs"), lib.replace("__NAME__", name))?;
    if inside_repo {
        eprintln!("note: add \"{}\" to `members` in the root Cargo.toml", out.strip_prefix(root())?.display());
    }
    Ok(out)
}

const TEMPLATE_LAYOUT: &str = r#"//! __NAME__: a Backyard layout plugin. Build with `cargo build --release --target wasm32-wasip2`.

use backyard_plugin_api::layout::*;

struct Plugin;

impl Guest for Plugin {
    fn layouts() -> Vec<LayoutInfo> {
        vec![info("__NAME__", "__NAME__", "Everyone in a grid with rounded corners")]
    }

    fn place(stage: Stage) -> Result<Vec<Placement>, String> {
        Ok(arrange(&stage))
    }
}

/// The layout itself: a pure function, so it is tested without a host.
pub fn arrange(stage: &Stage) -> Vec<Placement> {
    let area = inset(canvas_rect(stage.canvas), 16.0);
    let cells = grid_cells(area, stage.participants.len(), 16.0 / 9.0, 8.0);
    stage.participants.iter().zip(cells).map(|(p, r)| tile(&p.id, r).radius(12.0).build()).collect()
}

backyard_plugin_api::export_layout!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(n: usize) -> Stage {
        Stage {
            layout: "__NAME__".into(),
            canvas: Size { width: 1280, height: 720 },
            participants: (0..n)
                .map(|i| Participant {
                    id: format!("p{i}"),
                    name: format!("P{i}"),
                    speaking: false,
                    screen_share: false,
                    video_enabled: true,
                })
                .collect(),
            active_speaker: None,
        }
    }

    #[test]
    fn everyone_is_placed_inside_the_canvas_without_overlap() {
        for n in 1..=9 {
            let out = arrange(&stage(n));
            assert_eq!(out.len(), n);
            for (i, a) in out.iter().enumerate() {
                let r = a.rect;
                assert!(r.x >= 0.0 && r.y >= 0.0 && r.x + r.width <= 1280.0 && r.y + r.height <= 720.0);
                for b in &out[i + 1..] {
                    let s = b.rect;
                    let apart = r.x + r.width <= s.x || s.x + s.width <= r.x || r.y + r.height <= s.y || s.y + s.height <= r.y;
                    assert!(apart, "tiles overlap for n={n}");
                }
            }
        }
    }
}
"#;

const TEMPLATE_OVERLAY: &str = r#"//! __NAME__: a Backyard overlay plugin. Build with `cargo build --release --target wasm32-wasip2`.

use backyard_plugin_api::draw::{Canvas, Color, Weight, ellipsize};
use backyard_plugin_api::overlay::*;

struct Plugin;

impl Guest for Plugin {
    fn overlays() -> Vec<OverlayInfo> {
        vec![info("__NAME__", "__NAME__", "A text badge in the top-left corner", &["text"])]
    }

    fn render(req: OverlayRequest) -> Result<Rendered, String> {
        Ok(match prop(&req, "text") {
            Some(text) if !text.is_empty() => Rendered::Layer(badge(text, req.canvas.height)),
            _ => Rendered::Hidden,
        })
    }
}

/// Draw the badge: pure, so it is tested without a host.
pub fn badge(text: &str, canvas_height: u32) -> Layer {
    let px = (canvas_height as f32 / 24.0).max(10.0);
    let text = ellipsize(text, px, Weight::Bold, px * 20.0);
    let w = (backyard_plugin_api::draw::measure(&text, px, Weight::Bold) + px) as u32;
    let h = (px * 1.6) as u32;
    let mut c = Canvas::new(w, h);
    c.fill_rounded_rect(0, 0, w as i32, h as i32, px / 3.0, Color::rgba(0, 0, 0, 180));
    c.text(px / 2.0, px * 1.15, &text, px, Weight::Bold, Color::WHITE);
    Layer { x: 16, y: 16, image: c.into_image() }
}

backyard_plugin_api::export_overlay!(Plugin);

#[cfg(test)]
mod tests {
    #[test]
    fn badge_is_opaque_where_it_draws() {
        let l = super::badge("Hello", 720);
        assert_eq!(l.image.rgba.len() as u32, l.image.width * l.image.height * 4);
        assert!(l.image.rgba.chunks(4).any(|p| p[3] > 0));
    }
}
"#;

const TEMPLATE_DESTINATION: &str = r#"//! __NAME__: a Backyard destination adapter. Build with `cargo build --release --target wasm32-wasip2`.

use backyard_plugin_api::destination::*;
use backyard_plugin_api::url;

struct Plugin;

impl Guest for Plugin {
    fn info() -> DestinationInfo {
        DestinationInfo { platform: "__NAME__".into(), name: "__NAME__".into(), default_server_url: None }
    }

    fn validate(req: IngestRequest) -> Result<Ingest, FieldError> {
        check(&req)
    }
}

/// Validation: pure, so it is tested without a host.
pub fn check(req: &IngestRequest) -> Result<Ingest, FieldError> {
    let u = url::parse(&req.server_url).map_err(|m| field_error("server-url", format!("server URL {m}")))?;
    if u.scheme != "rtmp" && u.scheme != "rtmps" {
        return Err(field_error("server-url", "must start with rtmp:// or rtmps://"));
    }
    if req.stream_key.trim().is_empty() {
        return Err(field_error("stream-key", "is required"));
    }
    let (v, a) = h264_aac();
    Ok(Ingest {
        primary: format!("{}/{}", req.server_url.trim_end_matches('/'), req.stream_key.trim()),
        backup: None,
        constraints: Constraints {
            max_width: 1920, max_height: 1080, max_fps: 60, max_video_kbps: 6000, max_audio_kbps: 160,
            max_keyframe_interval_s: 2, video_codecs: v, audio_codecs: a,
        },
    })
}

backyard_plugin_api::export_destination!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rtmp_and_rejects_http() {
        let ok = IngestRequest { server_url: "rtmp://live.example.com/app".into(), stream_key: "abc".into() };
        assert_eq!(check(&ok).unwrap().primary, "rtmp://live.example.com/app/abc");
        let bad = IngestRequest { server_url: "http://example.com".into(), stream_key: "abc".into() };
        assert_eq!(check(&bad).unwrap_err().field, "server-url");
    }
}
"#;

const TEMPLATE_FILTER: &str = r#"//! __NAME__: a Backyard filter plugin. Build with `cargo build --release --target wasm32-wasip2`.

use backyard_plugin_api::filter::*;

struct Plugin;

impl Guest for Plugin {
    fn apply(frame: &Frame, _time_ms: u64) -> Result<(), String> {
        let mut px = frame.read();
        grayscale(&mut px);
        frame.write(&px)
    }
}

/// The filter itself: pure, so it is tested without a host.
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
        assert_eq!(px[0 + 4], px[1 + 4]);
    }
}
"#;

/// `cargo xtask bench plugins`: build the plugins, then run the host benchmark in release. It prints a
/// table and writes `target/bench/plugins.json`.
pub fn bench() -> Result<()> {
    build_plugins(false)?;
    let mut c = cargo();
    c.args(["bench", "-p", "backyard-core", "--bench", "plugins"]);
    run(c)
}
