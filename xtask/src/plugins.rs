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
    for (kind, name) in [("layout", "new-plugin-check"), ("overlay", "new-overlay-check")] {
        // Made outside the checkout, as an author's would be: its own workspace, the SDK written into it.
        let dir = new_plugin(kind, name, Some(&tmp))?;
        // Its own unit tests, on the host.
        let mut t = cargo();
        t.current_dir(&dir).args(["test", "--quiet"]);
        run(t)?;
        // A plain host build (what an IDE's check or `cargo build` does) compiles and links without warnings:
        // the SDK's export macro adds the component glue on wasm32 only.
        let mut h = cargo();
        h.current_dir(&dir).args(["build", "--quiet"]).env("RUSTFLAGS", "-D warnings -C link-arg=-fuse-ld=mold");
        run(h)?;
        let mut b = cargo();
        b.current_dir(&dir).args(["build", "--release", "--target", TARGET]);
        run(b)?;
        let wasm = root().join("target").join(TARGET).join("release").join(format!("{}.wasm", name.replace('-', "_")));
        install(&wasm, &dir.join("plugin.toml"), &fixtures_dir().join(name))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "xtask: the new-plugin templates (layout, overlay) build for wasm32 and the host, pass their tests and are \
         installed for the host tests"
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
    new_plugin(kind, name, dir.as_deref())?;
    Ok(())
}

/// The `backyard` binary of this checkout, built (dev profile) if needed: `backyard plugin new` lives there.
fn backyard_bin() -> Result<PathBuf> {
    crate::status(crate::cargo_cmd().args(["build", "--quiet", "-p", "backyard", "--bin", "backyard"]))?;
    Ok(root().join("target").join("debug").join("backyard"))
}

/// A new plugin crate for `kind` named `name` in `<dir or plugins>/<name>`, made by `backyard plugin new`;
/// returns its path. Inside this checkout it joins the workspace and uses the checkout's SDK; elsewhere it is
/// what any author gets (its own workspace, the SDK written into it).
pub fn new_plugin(kind: &str, name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    let base = dir.map(Path::to_path_buf).unwrap_or_else(|| root().join("plugins"));
    let base = if base.is_absolute() { base } else { std::env::current_dir()?.join(base) };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let inside_repo = base.starts_with(root());
    let mut c = Command::new(backyard_bin()?);
    c.args(["plugin", "new", kind, name, "--dir"]).arg(&base);
    if inside_repo {
        c.arg("--sdk").arg(root().join("plugin-api"));
    }
    run(c)?;
    let out = base.join(name);
    if inside_repo {
        // A member of this workspace: no workspace table of its own, and the SDK by a path that moves with
        // the checkout.
        let manifest = out.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)?;
        let sdk = root().join("plugin-api").display().to_string();
        let depth = out.strip_prefix(root())?.components().count();
        let relative = format!("{}plugin-api", "../".repeat(depth));
        let text = text
            .replace(&sdk, &relative)
            .replace("# A plugin is a workspace of its own, wherever its folder is.\n[workspace]\n", "");
        std::fs::write(&manifest, text)?;
        eprintln!("note: add \"{}\" to `members` in the root Cargo.toml", out.strip_prefix(root())?.display());
    }
    Ok(out)
}

/// `cargo xtask bench plugins`: build the plugins, then run the host benchmark in release. It prints a
/// table and writes `target/bench/plugins.json`.
pub fn bench() -> Result<()> {
    build_plugins(false)?;
    let mut c = cargo();
    c.args(["bench", "-p", "backyard-core", "--bench", "plugins"]);
    run(c)
}
