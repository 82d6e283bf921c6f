//! `backyard plugin render`: a preview of layouts and overlays without a server, and `--watch` to draw
//! again after each build.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use backyard_core::plugin_host::render::{RenderOptions, render_scene};
use backyard_core::plugin_host::{MANIFEST_FILE, OperatorSettings, PluginFile, PluginHost, PluginKind, Prop};

/// The render flags, as given.
#[derive(clap::Args, Debug, Clone)]
pub struct RenderArgs {
    /// The plugins to draw: each a component (`.wasm`) or an installed plugin folder (`plugin.toml` and
    /// `plugin.wasm`). At most one layout; overlays are drawn over it in the order given.
    #[arg(required = true, value_name = "PLUGIN")]
    pub plugins: Vec<PathBuf>,
    /// The manifest of a lone `.wasm` (default: `plugin.toml` beside it, else in the crate folder it was built in).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Who is on stage, by name, comma-separated [layouts; default: Guest 1 to Guest 4].
    #[arg(long, value_delimiter = ',', conflicts_with = "participants")]
    pub names: Option<Vec<String>>,
    /// How many are on stage, named Guest 1, Guest 2, ... [layouts].
    #[arg(long)]
    pub participants: Option<usize>,
    /// The active speaker: a name from the stage or its number from 1 [layouts].
    #[arg(long)]
    pub speaker: Option<String>,
    /// Who shares a screen (shown as one more tile): a name from the stage or its number from 1 [layouts].
    #[arg(long)]
    pub screen: Option<String>,
    /// The layout id [layouts; default: the plugin's first].
    #[arg(long)]
    pub layout: Option<String>,
    /// Overlay ids to draw, comma-separated or repeated [overlays; default: each overlay plugin's first].
    #[arg(long, value_delimiter = ',')]
    pub overlay: Vec<String>,
    /// The overlays' props as a JSON object, e.g. '{"text":"Hello"}' [overlays; default: sample text].
    #[arg(long)]
    pub props: Option<String>,
    /// Milliseconds since the overlays appeared, for animations [overlays].
    #[arg(long)]
    pub time_ms: Option<u64>,
    /// Canvas size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// The PNG to write.
    #[arg(long, default_value = "scene.png")]
    pub out: PathBuf,
    /// Keep running and draw again whenever a plugin file (or the configuration) changes, e.g. after a build.
    #[arg(long)]
    pub watch: bool,
}

/// Which plugin (`.wasm`, manifest) each argument names.
pub fn resolve_files(args: &RenderArgs) -> anyhow::Result<Vec<PluginFile>> {
    if args.manifest.is_some() && args.plugins.len() != 1 {
        bail!("--manifest: give it with exactly one plugin ({} given)", args.plugins.len());
    }
    let mut files = Vec::new();
    for p in &args.plugins {
        if p.is_dir() {
            let wasm = p.join("plugin.wasm");
            let manifest = p.join(MANIFEST_FILE);
            if !wasm.is_file() || !manifest.is_file() {
                bail!("{}: a plugin folder holds plugin.toml and plugin.wasm", p.display());
            }
            files.push(PluginFile { wasm, manifest: Some(manifest) });
            continue;
        }
        if !p.is_file() {
            bail!("{}: no such file", p.display());
        }
        let manifest = match &args.manifest {
            Some(m) => Some(m.clone()),
            None => find_manifest(p),
        };
        if let Some(m) = &manifest
            && m.parent() != p.parent()
        {
            eprintln!("{}: using {}", p.display(), m.display());
        }
        files.push(PluginFile { wasm: p.clone(), manifest });
    }
    Ok(files)
}

/// `plugin.toml` beside the component, else in the nearest folder above it up to the crate's own
/// (`target/wasm32-wasip2/release/x.wasm` → the crate folder).
fn find_manifest(wasm: &Path) -> Option<PathBuf> {
    for dir in wasm.ancestors().skip(1) {
        let m = dir.join(MANIFEST_FILE);
        if m.is_file() {
            return Some(m);
        }
        if dir.join("Cargo.toml").is_file() {
            return None;
        }
    }
    None
}

/// Turn `--props` into props: string values as they are, numbers and booleans as written.
pub fn parse_props(text: &str) -> anyhow::Result<Vec<Prop>> {
    let value: serde_json::Value = serde_json::from_str(text).with_context(|| format!("--props: not JSON: {text}"))?;
    let serde_json::Value::Object(map) = value else {
        bail!("--props: must be a JSON object, e.g. '{{\"text\":\"Hello\"}}'")
    };
    map.into_iter()
        .map(|(key, v)| {
            let value = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => bail!("--props: \"{key}\" must be a string, a number or true/false"),
            };
            Ok(Prop { key, value })
        })
        .collect()
}

/// `WIDTHxHEIGHT`.
fn parse_size(size: &str) -> anyhow::Result<(u32, u32)> {
    size.split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .filter(|(w, h)| (1..=7680).contains(w) && (1..=7680).contains(h))
        .with_context(|| format!("--size {size:?}: give WIDTHxHEIGHT, each 1 to 7680"))
}

/// A name on stage or its number from 1, as an index.
fn pick(flag: &str, who: &str, names: &[String]) -> anyhow::Result<usize> {
    if let Some(i) = names.iter().position(|n| n == who) {
        return Ok(i);
    }
    match who.parse::<usize>() {
        Ok(n) if (1..=names.len()).contains(&n) => Ok(n - 1),
        _ => bail!("--{flag} {who:?}: not on stage (on stage: {}, or 1 to {})", names.join(", "), names.len()),
    }
}

/// The render options the flags describe, refusing flags that no given plugin uses.
pub fn options(args: &RenderArgs, kinds: &[(String, PluginKind)]) -> anyhow::Result<RenderOptions> {
    let has = |k: PluginKind| kinds.iter().any(|(_, kind)| *kind == k);
    let given = |names: &[String]| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let all: Vec<String> = kinds.iter().map(|(n, k)| format!("{n} ({k})")).collect();
    if !has(PluginKind::Layout) {
        let layout_flags = [
            ("--names", args.names.is_some()),
            ("--participants", args.participants.is_some()),
            ("--speaker", args.speaker.is_some()),
            ("--screen", args.screen.is_some()),
            ("--layout", args.layout.is_some()),
        ];
        if let Some((flag, _)) = layout_flags.iter().find(|(_, on)| *on) {
            bail!("{flag} is for a layout plugin, and none is given: {}", given(&all));
        }
    }
    if !has(PluginKind::Overlay) {
        let overlay_flags = [
            ("--overlay", !args.overlay.is_empty()),
            ("--props", args.props.is_some()),
            ("--time-ms", args.time_ms.is_some()),
        ];
        if let Some((flag, _)) = overlay_flags.iter().find(|(_, on)| *on) {
            bail!("{flag} is for an overlay plugin, and none is given: {}", given(&all));
        }
    }
    let (width, height) = parse_size(&args.size)?;
    let participants = match (&args.names, args.participants) {
        (Some(names), _) => {
            let names: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
            if names.iter().any(String::is_empty) {
                bail!("--names: a name is empty");
            }
            names
        }
        (None, Some(n)) if n > 64 => bail!("--participants {n}: at most 64"),
        (None, Some(n)) => RenderOptions::guests(n),
        (None, None) => RenderOptions::guests(4),
    };
    let speaker = args.speaker.as_deref().map(|s| pick("speaker", s, &participants)).transpose()?;
    let screen = args.screen.as_deref().map(|s| pick("screen", s, &participants)).transpose()?;
    let props = args.props.as_deref().map(parse_props).transpose()?;
    Ok(RenderOptions {
        width,
        height,
        participants,
        speaker,
        screen,
        layout: args.layout.clone(),
        overlays: args.overlay.clone(),
        props,
        time_ms: args.time_ms.unwrap_or(0),
    })
}

/// Load, check the flags against the plugins' kinds, draw and write the PNG.
fn render_once(args: &RenderArgs, settings: &OperatorSettings) -> anyhow::Result<()> {
    let files = resolve_files(args)?;
    let (host, names) = PluginHost::load_files(&files, settings)?;
    let listed = host.list();
    let kinds: Vec<(String, PluginKind)> =
        names.iter().filter_map(|n| listed.iter().find(|p| &p.name == n).map(|p| (n.clone(), p.kind))).collect();
    let opts = options(args, &kinds)?;
    let img = render_scene(&host, &names, &opts)?;
    let png = img.to_png()?;
    std::fs::write(&args.out, png).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} ({}x{})", args.out.display(), opts.width, opts.height);
    Ok(())
}

/// `backyard plugin render`. `config` is the `-c` file (watched with the plugins under `--watch`) and
/// `settings` reads the operator's plugin settings from it, again after each change.
pub fn run(
    args: &RenderArgs,
    config: Option<&Path>,
    settings: &dyn Fn() -> anyhow::Result<OperatorSettings>,
) -> anyhow::Result<()> {
    let render = || render_once(args, &settings()?);
    if !args.watch {
        return render();
    }
    let mut watched: Vec<PathBuf> = Vec::new();
    for f in resolve_files(args)? {
        watched.push(f.wasm);
        watched.extend(f.manifest);
    }
    watched.extend(config.map(Path::to_path_buf));
    let stamp = || -> Vec<Option<(SystemTime, u64)>> {
        watched.iter().map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())))).collect()
    };
    if let Err(e) = render() {
        eprintln!("error: {e:#}");
    }
    eprintln!("watching {} file(s); Ctrl-C to stop", watched.len());
    let mut last = stamp();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = stamp();
        if now == last {
            continue;
        }
        // A build writes the component in pieces: wait until it holds still.
        std::thread::sleep(Duration::from_millis(300));
        if stamp() != now {
            continue;
        }
        last = now;
        if let Err(e) = render() {
            eprintln!("error: {e:#}");
        }
    }
}
