//! The WebAssembly plugin host: layouts, overlays, destination adapters and filters run as sandboxed
//! wasmtime components built against `plugin-api/wit` (`backyard:plugin@0.1.0`).
//!
//! # API for the gateway
//!
//! ```ignore
//! use backyard_core::plugin_host::*;
//! // Start-up: load every `<dir>/<name>/{plugin.toml, plugin.wasm}` and check the operator's
//! // `[plugins.<name>]` / `[destinations.<platform>]` blocks against each manifest's config schema.
//! let host = PluginHost::start(HostConfig {
//!     dirs: vec![data_dir.join("plugins"), "target/plugins".into()],
//!     settings: OperatorSettings { plugins, destinations },   // figment-extracted maps
//!     watch: Some(Duration::from_millis(500)),                // hot reload
//!     ..HostConfig::default()
//! })?;                                                        // PluginError names plugin + field
//! host.list();                        // GET /api/plugins: Vec<PluginSummary> (Serialize, camelCase)
//! host.validate_destination("youtube", server_url, stream_key)   // blocking: use spawn_blocking
//!     -> Result<Ingest { primary, backup, constraints }, DestinationError::Field(FieldError { field, message })>;
//! render_plugins(&[PluginFile { wasm, manifest }], &settings, &RenderOptions::default())?;  // `backyard plugin render`
//! // Compositor: one instance per program, called on its own thread.
//! let mut layout = host.layout("layouts")?;  layout.place(&stage)?;
//! let mut overlay = host.overlay("overlays")?;  overlay.render(&request)?;
//! ```
//!
//! # Rules
//! - Compile once per `.wasm` ([`wasmtime::component::InstancePre`] cached); one `Store` per instance.
//! - Per-call deadline from the manifest (`limits.call-ms`, default 10 ms, at most 33 ms for per-frame
//!   kinds) by epoch interruption: a ticker thread advances the epoch every millisecond.
//! - Memory cap from the manifest (`limits.memory-mb`) through `StoreLimits`.
//! - WASI with no filesystem, environment, arguments or sockets; stdio is discarded.
//! - Every output is validated; a trap, timeout, out-of-memory or invalid output is a failure: the call
//!   serves the last good result, the instance is re-created from the cached `InstancePre`, and after
//!   [`FailurePolicy::max_failures`] failures within its window that instance (one broadcast's) is switched
//!   off until the plugin is reloaded; other instances of the plugin go on (`list()` shows `failed` while
//!   any instance is switched off).
//! - Hot reload: a watcher thread polls the plugin dirs; a changed `.wasm` is compiled on that thread and
//!   swapped in; instances pick it up at their next call.

mod bindings;
mod destination;
mod filter;
#[cfg(test)]
mod fuzz;
mod http;
mod instance;
mod layout;
pub mod manifest;
mod overlay;
pub mod render;
mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use destination::{Constraints, DestinationError, DestinationInfo, DestinationInstance, FieldError, Ingest};
pub use filter::FilterInstance;
pub use instance::FailurePolicy;
pub use layout::{Fit, LayoutInfo, LayoutInstance, Participant, Placement, Rect, Size, Stage};
pub use manifest::{Manifest, PluginKind, PluginSettings};
pub use overlay::{Image, Layer, NamedImage, OverlayInfo, OverlayInstance, OverlayOutput, OverlayRequest, Prop};
pub use render::{RenderOptions, Rgba, render_plugins, render_scene, render_to_png};

use instance::{Health, Pre};
use state::HostState;

/// Plugin instances one host can run at once (pooled slots).
pub const MAX_INSTANCES: u32 = 256;

/// File names inside a plugin's folder.
pub const MANIFEST_FILE: &str = "plugin.toml";
pub const WASM_FILE: &str = "plugin.wasm";

/// Errors of the plugin host. Every variant names the plugin (or file) it is about.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// A `plugin.toml` is missing, unreadable or invalid.
    #[error("{origin}: {message}")]
    Manifest { origin: String, message: String },
    /// An operator's setting does not match the plugin's config schema.
    #[error("plugin '{plugin}': {field}: {message}")]
    Settings { plugin: String, field: String, message: String },
    /// The operator configured a plugin that is not installed.
    #[error("{section}.{name}: no {kind} plugin named '{name}' is installed")]
    NotInstalled { section: String, name: String, kind: String },
    /// Reading a plugin's files failed.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// The component could not be compiled, linked or is of another kind than its manifest says.
    #[error("plugin '{plugin}': {message}")]
    Load { plugin: String, message: String },
    /// Two plugin folders use the same name.
    #[error("plugin '{name}' is installed twice: {first} and {second}")]
    Duplicate { name: String, first: String, second: String },
    /// No plugin of that name and kind is installed.
    #[error("no {kind} plugin named '{name}' is installed")]
    NotFound { name: String, kind: PluginKind },
    /// The operator turned the plugin off.
    #[error("plugin '{plugin}' is disabled in backyard.toml")]
    NotEnabled { plugin: String },
    /// The failure policy switched the plugin off.
    #[error("plugin '{plugin}' is {reason}")]
    Disabled { plugin: String, reason: String },
    /// One call into the plugin failed.
    #[error("plugin '{plugin}': {failure}")]
    Call { plugin: String, failure: CallFailure },
    /// Rendering a preview failed.
    #[error("render: {0}")]
    Render(String),
}

/// Why one call into a plugin failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallFailure {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, stack overflow...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline and was stopped.
    #[error("call stopped after its {0} ms deadline")]
    Timeout(u32),
    /// The guest asked for more memory than its limit.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// The guest returned something the host does not accept.
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The guest returned an error of its own.
    #[error("plugin error: {0}")]
    Plugin(String),
    /// The guest's HTTP request was refused (host not allowed).
    #[error("HTTP request refused: {0}")]
    HttpRefused(String),
}

/// The operator's plugin blocks from `backyard.toml`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct OperatorSettings {
    /// `[plugins.<name>]` blocks, for layouts, overlays and filters.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSettings>,
    /// `[destinations.<platform>]` blocks, for destination adapters.
    #[serde(default)]
    pub destinations: BTreeMap<String, PluginSettings>,
}

impl OperatorSettings {
    /// Build from the free-form TOML tables of `backyard.toml` (as JSON maps): `enabled` must be a
    /// boolean; every other key is checked against the plugin's schema when the host starts.
    pub fn from_tables(
        plugins: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
        destinations: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    ) -> Result<OperatorSettings, PluginError> {
        let convert = |section: &str, tables: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>| {
            tables
                .iter()
                .map(|(name, table)| {
                    let mut values = table.clone();
                    let enabled = match values.remove("enabled") {
                        None => None,
                        Some(serde_json::Value::Bool(b)) => Some(b),
                        Some(_) => {
                            return Err(PluginError::Settings {
                                plugin: name.clone(),
                                field: format!("{section}.{name}.enabled"),
                                message: "must be true or false".into(),
                            });
                        }
                    };
                    Ok((name.clone(), PluginSettings { enabled, values }))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        Ok(OperatorSettings {
            plugins: convert("plugins", plugins)?,
            destinations: convert("destinations", destinations)?,
        })
    }
}

/// How the host starts.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Folders holding one sub-folder per plugin; later folders cannot reuse an earlier name.
    pub dirs: Vec<PathBuf>,
    pub settings: OperatorSettings,
    pub failure: FailurePolicy,
    /// Poll the dirs for changed plugins this often (hot reload); `None` turns reloading off.
    pub watch: Option<Duration>,
    /// Keep compiled components here (wasmtime's serialized form, named by the `.wasm` file's SHA-256 and the
    /// engine's configuration), so a restart loads them instead of compiling again. `None`: compile every time.
    /// The folder must be the server's own (what is in it is loaded as machine code).
    pub compile_cache: Option<PathBuf>,
}

/// A plugin given as files rather than found in a plugin folder (`backyard plugin render`).
#[derive(Debug, Clone)]
pub struct PluginFile {
    /// The component.
    pub wasm: PathBuf,
    /// Its `plugin.toml`; `None` makes one from the component's exports (name from the file name).
    pub manifest: Option<PathBuf>,
}

/// How plugins were made ready since the host started: compiled from `.wasm`, or loaded from the compile cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompileStats {
    pub compiled: u64,
    pub cache_hits: u64,
}

/// One row of `GET /api/plugins`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PluginSummary {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub api: String,
    pub description: String,
    /// The operator has not turned it off.
    pub enabled: bool,
    pub capabilities: manifest::Capabilities,
    pub limits: manifest::Limits,
    /// `ok`, `disabled` (by the operator) or `failed` (the failure policy switched off at least one running
    /// instance: one broadcast's, the others keep theirs).
    pub status: &'static str,
    pub last_error: Option<String>,
    pub failures: u64,
    pub calls: u64,
    /// How many times the plugin was hot-reloaded.
    pub reloads: u64,
    pub path: String,
}

/// A compiled plugin version; replaced whole on hot reload.
pub(crate) struct Compiled {
    pub(crate) manifest: Manifest,
    pub(crate) pre: Pre,
    pub(crate) settings: Arc<BTreeMap<String, serde_json::Value>>,
    pub(crate) enabled: bool,
    pub(crate) http: Option<Arc<http::HttpPolicy>>,
    /// Modification stamps of the files it was built from, for the watcher.
    stamp: Stamp,
}

type Stamp = (Option<(SystemTime, u64)>, Option<(SystemTime, u64)>);

/// An installed plugin: the current compiled version plus shared health.
pub(crate) struct PluginEntry {
    pub(crate) name: Arc<str>,
    pub(crate) dir: PathBuf,
    compiled: RwLock<Arc<Compiled>>,
    /// Bumped on every swap; instances compare it before each call.
    pub(crate) generation: AtomicU64,
    pub(crate) health: Mutex<Health>,
    pub(crate) policy: FailurePolicy,
}

impl PluginEntry {
    pub(crate) fn compiled(&self) -> Arc<Compiled> {
        self.compiled.read().clone()
    }

    pub(crate) fn call_error(&self, failure: CallFailure) -> PluginError {
        PluginError::Call { plugin: self.name.to_string(), failure }
    }

    pub(crate) fn kind(&self) -> PluginKind {
        self.compiled().manifest.kind
    }
}

/// Engine and linkers shared by every plugin of one host.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    /// The compile cache's folder and this engine's configuration tag (part of every cached file's name).
    compile_cache: Option<(PathBuf, String)>,
    compiled: AtomicU64,
    cache_hits: AtomicU64,
    layout: Linker<HostState>,
    overlay: Linker<HostState>,
    destination: Linker<HostState>,
    filter: Linker<HostState>,
}

impl Runtime {
    fn new(compile_cache: Option<PathBuf>) -> Result<Runtime, PluginError> {
        let err = |e: wasmtime::Error| PluginError::Load { plugin: "(host)".into(), message: format!("{e:#}") };
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Pooled instance slots make (re-)instantiation take microseconds (~13 µs measured here); the pool
        // bounds how many plugin instances one host runs at once.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 8)
            .total_memories(MAX_INSTANCES)
            .total_tables(MAX_INSTANCES * 8)
            .max_memory_size(manifest::MAX_MEMORY_MB as usize * 1024 * 1024);
        let mut pooled = config.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = match Engine::new(&pooled) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e}); instantiating on demand");
                Engine::new(&config).map_err(err)?
            }
        };
        let base = || -> wasmtime::Result<Linker<HostState>> {
            let mut l = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut l)?;
            Ok(l)
        };
        let mut layout = base().map_err(err)?;
        bindings::layout::LayoutPlugin::add_to_linker::<_, HasSelf<_>>(&mut layout, |s| s).map_err(err)?;
        let mut overlay = base().map_err(err)?;
        bindings::overlay::OverlayPlugin::add_to_linker::<_, HasSelf<_>>(&mut overlay, |s| s).map_err(err)?;
        let mut destination = base().map_err(err)?;
        bindings::destination::DestinationPlugin::add_to_linker::<_, HasSelf<_>>(&mut destination, |s| s)
            .map_err(err)?;
        let mut filter = base().map_err(err)?;
        bindings::filter::FilterPlugin::add_to_linker::<_, HasSelf<_>>(&mut filter, |s| s).map_err(err)?;
        if let Some(dir) = &compile_cache
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), "no plugin compile cache ({e}); plugins compile at every start");
        }
        let compile_cache = compile_cache.map(|dir| {
            use std::hash::{Hash as _, Hasher as _};
            let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut engine_hash);
            (dir, format!("{:016x}", engine_hash.finish()))
        });
        Ok(Runtime {
            engine,
            compile_cache,
            compiled: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            layout,
            overlay,
            destination,
            filter,
        })
    }

    /// The component for `wasm`: from the compile cache when it holds one made by an engine configured like
    /// this one, else compiled (and then written to the cache).
    fn component(&self, wasm: &[u8]) -> wasmtime::Result<Component> {
        let Some((dir, engine_tag)) = &self.compile_cache else {
            self.compiled.fetch_add(1, Ordering::Relaxed);
            return Component::new(&self.engine, wasm);
        };
        use sha2::Digest as _;
        let key = format!("{}-{engine_tag}", hex::encode(sha2::Sha256::digest(wasm)));
        let path = dir.join(format!("{key}.cwasm"));
        // Read into memory rather than mapped: a file changed in place under a mapping would crash the process.
        if let Ok(bytes) = std::fs::read(&path) {
            // SAFETY: files in the cache folder are written only by `Component::serialize` below, by an engine
            // whose configuration hashes the same (the name says so) and for these exact `.wasm` bytes; the
            // folder is the server's own (documented on `HostConfig::compile_cache`). wasmtime still checks the
            // header and version and refuses a mismatch, which falls back to compiling.
            match unsafe { Component::deserialize(&self.engine, &bytes) } {
                Ok(c) => {
                    self.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => tracing::warn!(file = %path.display(), "compiled plugin not usable ({e:#}); compiling again"),
            }
        }
        let component = Component::new(&self.engine, wasm)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        match component.serialize() {
            Ok(bytes) => {
                // Written whole under a temporary name, then renamed: a reader never sees half a file.
                let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
                if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path)) {
                    tracing::warn!(file = %path.display(), "could not keep the compiled plugin: {e}");
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            Err(e) => tracing::warn!("could not serialize a compiled plugin: {e:#}"),
        }
        Ok(component)
    }

    /// Compile `wasm` and prepare it for fast instantiation as a `kind` plugin.
    fn prepare(&self, name: &str, kind: PluginKind, wasm: &[u8]) -> Result<Pre, PluginError> {
        let load = |message: String| PluginError::Load { plugin: name.to_string(), message };
        let component = self.component(wasm).map_err(|e| load(format!("does not compile: {e:#}")))?;
        let exports: Vec<String> =
            component.component_type().exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let want = format!("{}@", kind.export_interface());
        if !exports.iter().any(|n| n.starts_with(&want)) {
            return Err(load(format!(
                "manifest says kind '{kind}' but the component exports [{}]",
                exports.join(", ")
            )));
        }
        let link = |e: wasmtime::Error| load(format!("cannot be linked: {e:#}"));
        Ok(match kind {
            PluginKind::Layout => Pre::Layout(
                bindings::layout::LayoutPluginPre::new(self.layout.instantiate_pre(&component).map_err(link)?)
                    .map_err(link)?,
            ),
            PluginKind::Overlay => Pre::Overlay(
                bindings::overlay::OverlayPluginPre::new(self.overlay.instantiate_pre(&component).map_err(link)?)
                    .map_err(link)?,
            ),
            PluginKind::Destination => Pre::Destination(
                bindings::destination::DestinationPluginPre::new(
                    self.destination.instantiate_pre(&component).map_err(link)?,
                )
                .map_err(link)?,
            ),
            PluginKind::Filter => Pre::Filter(
                bindings::filter::FilterPluginPre::new(self.filter.instantiate_pre(&component).map_err(link)?)
                    .map_err(link)?,
            ),
        })
    }
}

struct Inner {
    runtime: Runtime,
    config: HostConfig,
    plugins: RwLock<BTreeMap<String, Arc<PluginEntry>>>,
    /// Destination instances reused by `validate_destination`.
    destinations: Mutex<BTreeMap<String, DestinationInstance>>,
    /// Tells the ticker and watcher threads to stop.
    stop: Arc<AtomicBool>,
    reloads: Mutex<BTreeMap<String, u64>>,
    /// Counts every plugin added or reloaded since start (see [`PluginHost::changes`]).
    changes: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The plugin host: installed plugins, their health, and factories for instances.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("plugins", &self.inner.plugins.read().keys().collect::<Vec<_>>()).finish()
    }
}

impl PluginHost {
    /// A number that grows whenever a plugin is added or reloaded (hot reload), so what was asked of the plugins
    /// (the layouts they offer, say) can be kept until it changes.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Acquire)
    }

    /// How many plugins were compiled, and how many loaded from the compile cache, since the host started.
    pub fn compile_stats(&self) -> CompileStats {
        let r = &self.inner.runtime;
        CompileStats { compiled: r.compiled.load(Ordering::Relaxed), cache_hits: r.cache_hits.load(Ordering::Relaxed) }
    }

    /// Load every plugin under `config.dirs`, check the operator's settings against their schemas,
    /// and start the epoch ticker (and the watcher when `config.watch` is set).
    ///
    /// A missing dir is skipped; a broken plugin or a bad setting is an error naming it.
    pub fn start(config: HostConfig) -> Result<PluginHost, PluginError> {
        let host = PluginHost::empty(config)?;
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in host.plugin_dirs() {
            let entry = host.load_entry(&dir)?;
            let name = entry.name.to_string();
            if let Some(first) = found.get(&name) {
                return Err(PluginError::Duplicate {
                    name,
                    first: first.display().to_string(),
                    second: dir.display().to_string(),
                });
            }
            found.insert(name.clone(), dir);
            host.inner.plugins.write().insert(name, Arc::new(entry));
        }
        host.check_operator_sections()?;
        if let Some(every) = host.inner.config.watch {
            spawn_watcher(Arc::downgrade(&host.inner), every);
        }
        Ok(host)
    }

    /// A host with its engine and epoch ticker running and no plugin loaded.
    fn empty(config: HostConfig) -> Result<PluginHost, PluginError> {
        let runtime = Runtime::new(config.compile_cache.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(runtime.engine.clone(), stop.clone()).map_err(|e| PluginError::Load {
            plugin: "(host)".into(),
            message: format!("cannot start the epoch thread: {e}"),
        })?;
        let inner = Arc::new(Inner {
            runtime,
            config,
            plugins: RwLock::new(BTreeMap::new()),
            destinations: Mutex::new(BTreeMap::new()),
            stop,
            reloads: Mutex::new(BTreeMap::new()),
            changes: AtomicU64::new(0),
        });
        Ok(PluginHost { inner })
    }

    /// Every `<dir>/<name>/` holding a `plugin.toml`, in dir order then name order.
    fn plugin_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in &self.inner.config.dirs {
            let Ok(rd) = std::fs::read_dir(dir) else { continue };
            let mut subs: Vec<PathBuf> =
                rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join(MANIFEST_FILE).is_file()).collect();
            subs.sort();
            out.extend(subs);
        }
        out
    }

    fn load_entry(&self, dir: &Path) -> Result<PluginEntry, PluginError> {
        let compiled = self.compile_dir(dir)?;
        let name: Arc<str> = compiled.manifest.name.as_str().into();
        Ok(PluginEntry {
            name,
            dir: dir.to_path_buf(),
            compiled: RwLock::new(Arc::new(compiled)),
            generation: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
            policy: self.inner.config.failure,
        })
    }

    /// Read, check and compile the plugin in `dir`.
    fn compile_dir(&self, dir: &Path) -> Result<Compiled, PluginError> {
        let stamp = (file_stamp(&dir.join(MANIFEST_FILE)), file_stamp(&dir.join(WASM_FILE)));
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| PluginError::Io { path: manifest_path.display().to_string(), message: e.to_string() })?;
        let manifest = Manifest::parse(&text, &manifest_path.display().to_string())?;
        let wasm_path = dir.join(WASM_FILE);
        let wasm = std::fs::read(&wasm_path)
            .map_err(|e| PluginError::Io { path: wasm_path.display().to_string(), message: e.to_string() })?;
        self.compile(manifest, &wasm, stamp)
    }

    fn compile(&self, manifest: Manifest, wasm: &[u8], stamp: Stamp) -> Result<Compiled, PluginError> {
        let (section, block) = self.operator_block(&manifest);
        let resolved = manifest.resolve_settings(section, block)?;
        let pre = self.inner.runtime.prepare(&manifest.name, manifest.kind, wasm)?;
        let http = (manifest.kind == PluginKind::Destination)
            .then(|| Arc::new(http::HttpPolicy::new(&manifest.capabilities.allowed_hosts)));
        Ok(Compiled { pre, settings: Arc::new(resolved.values), enabled: resolved.enabled, http, stamp, manifest })
    }

    fn operator_block(&self, manifest: &Manifest) -> (&'static str, Option<&PluginSettings>) {
        let s = &self.inner.config.settings;
        if manifest.kind == PluginKind::Destination {
            ("destinations", s.destinations.get(&manifest.name))
        } else {
            ("plugins", s.plugins.get(&manifest.name))
        }
    }

    /// Every operator block must name an installed plugin of the right kind.
    fn check_operator_sections(&self) -> Result<(), PluginError> {
        let plugins = self.inner.plugins.read();
        let s = &self.inner.config.settings;
        for name in s.destinations.keys() {
            if !plugins.get(name).is_some_and(|p| p.kind() == PluginKind::Destination) {
                return Err(PluginError::NotInstalled {
                    section: "destinations".into(),
                    name: name.clone(),
                    kind: "destination".into(),
                });
            }
        }
        for name in s.plugins.keys() {
            if !plugins.get(name).is_some_and(|p| p.kind() != PluginKind::Destination) {
                return Err(PluginError::NotInstalled {
                    section: "plugins".into(),
                    name: name.clone(),
                    kind: "layout, overlay or filter".into(),
                });
            }
        }
        Ok(())
    }

    /// What is installed, for `GET /api/plugins`.
    pub fn list(&self) -> Vec<PluginSummary> {
        let reloads = self.inner.reloads.lock().clone();
        self.inner
            .plugins
            .read()
            .values()
            .map(|e| {
                let c = e.compiled();
                let h = e.health.lock();
                let status = if !c.enabled {
                    "disabled"
                } else if h.switched_off > 0 {
                    "failed"
                } else {
                    "ok"
                };
                PluginSummary {
                    name: e.name.to_string(),
                    kind: c.manifest.kind,
                    version: c.manifest.version.clone(),
                    api: c.manifest.api.clone(),
                    description: c.manifest.description.clone(),
                    enabled: c.enabled,
                    capabilities: c.manifest.capabilities.clone(),
                    limits: c.manifest.limits,
                    status,
                    last_error: if h.switched_off > 0 { h.last_switch_off.clone() } else { h.last_error.clone() },
                    failures: h.total_failures,
                    calls: h.total_calls,
                    reloads: reloads.get(&*e.name).copied().unwrap_or(0),
                    path: e.dir.display().to_string(),
                }
            })
            .collect()
    }

    fn entry(&self, name: &str, kind: PluginKind) -> Result<Arc<PluginEntry>, PluginError> {
        let e = self
            .inner
            .plugins
            .read()
            .get(name)
            .filter(|e| e.kind() == kind)
            .cloned()
            .ok_or(PluginError::NotFound { name: name.to_string(), kind })?;
        if !e.compiled().enabled {
            return Err(PluginError::NotEnabled { plugin: name.to_string() });
        }
        Ok(e)
    }

    /// Names of the installed, enabled plugins of `kind`.
    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        self.inner
            .plugins
            .read()
            .values()
            .filter(|e| e.kind() == kind && e.compiled().enabled)
            .map(|e| e.name.to_string())
            .collect()
    }

    /// A new instance of layout plugin `name` (its own `Store`).
    pub fn layout(&self, name: &str) -> Result<LayoutInstance, PluginError> {
        LayoutInstance::new(self.entry(name, PluginKind::Layout)?, self.inner.runtime.engine.clone())
    }

    /// A new instance of overlay plugin `name`.
    pub fn overlay(&self, name: &str) -> Result<OverlayInstance, PluginError> {
        OverlayInstance::new(self.entry(name, PluginKind::Overlay)?, self.inner.runtime.engine.clone())
    }

    /// A new instance of filter plugin `name`.
    pub fn filter(&self, name: &str) -> Result<FilterInstance, PluginError> {
        FilterInstance::new(self.entry(name, PluginKind::Filter)?, self.inner.runtime.engine.clone())
    }

    /// A new instance of the destination adapter for `platform`.
    pub fn destination(&self, platform: &str) -> Result<DestinationInstance, PluginError> {
        DestinationInstance::new(self.entry(platform, PluginKind::Destination)?, self.inner.runtime.engine.clone())
    }

    /// Check what a user typed for a destination on `platform` and return where and how to push.
    /// Blocking (an adapter may make an allow-listed HTTP call): call it from `spawn_blocking`.
    pub fn validate_destination(
        &self,
        platform: &str,
        server_url: &str,
        stream_key: &str,
    ) -> Result<Ingest, DestinationError> {
        let mut cache = self.inner.destinations.lock();
        if !cache.contains_key(platform) {
            let inst = self.destination(platform).map_err(DestinationError::Plugin)?;
            cache.insert(platform.to_string(), inst);
        }
        // unwrap: inserted just above when it was missing.
        cache.get_mut(platform).expect("inserted just above when it was missing").validate(server_url, stream_key)
    }

    /// A boolean setting of plugin `name` as it runs (the operator's value or the manifest's default);
    /// `None` when the plugin or the key is missing or not a boolean.
    pub fn setting_flag(&self, name: &str, key: &str) -> Option<bool> {
        let plugins = self.inner.plugins.read();
        let entry = plugins.get(name)?;
        entry.compiled().settings.get(key)?.as_bool()
    }

    /// Platform id, display name and default server URL of the adapter for `platform`.
    pub fn destination_info(&self, platform: &str) -> Result<DestinationInfo, DestinationError> {
        let mut cache = self.inner.destinations.lock();
        if !cache.contains_key(platform) {
            let inst = self.destination(platform).map_err(DestinationError::Plugin)?;
            cache.insert(platform.to_string(), inst);
        }
        // unwrap: inserted just above when it was missing.
        cache
            .get_mut(platform)
            .expect("inserted just above when it was missing")
            .info()
            .map_err(DestinationError::Plugin)
    }

    /// Look for changed or new plugins now (the watcher does this every `watch` interval). Returns the
    /// names swapped in. A plugin whose new version fails to load keeps running the old one.
    pub fn reload_changed(&self) -> Vec<String> {
        let mut swapped = Vec::new();
        for dir in self.plugin_dirs() {
            let stamp = (file_stamp(&dir.join(MANIFEST_FILE)), file_stamp(&dir.join(WASM_FILE)));
            let existing = self.inner.plugins.read().values().find(|e| e.dir == dir).cloned();
            match existing {
                Some(entry) => {
                    if entry.compiled().stamp == stamp {
                        continue;
                    }
                    match self.compile_dir(&dir) {
                        Ok(c) if c.manifest.name == *entry.name && c.manifest.kind == entry.kind() => {
                            *entry.compiled.write() = Arc::new(c);
                            entry.generation.fetch_add(1, Ordering::AcqRel);
                            // Instances switched off get another chance at their next call.
                            *self.inner.reloads.lock().entry(entry.name.to_string()).or_default() += 1;
                            self.inner.changes.fetch_add(1, Ordering::AcqRel);
                            tracing::info!(plugin = &*entry.name, "plugin reloaded");
                            swapped.push(entry.name.to_string());
                        }
                        Ok(c) => {
                            tracing::error!(
                                plugin = &*entry.name,
                                "reload refused: name or kind changed to '{}' ({}); restart to rename",
                                c.manifest.name,
                                c.manifest.kind
                            );
                            self.mark_stamp(&entry, stamp);
                        }
                        Err(e) => {
                            tracing::error!(plugin = &*entry.name, "reload failed, keeping the running version: {e}");
                            entry.health.lock().last_error = Some(format!("reload failed: {e}"));
                            self.mark_stamp(&entry, stamp);
                        }
                    }
                }
                None => match self.load_entry(&dir) {
                    Ok(entry) => {
                        let name = entry.name.to_string();
                        let mut plugins = self.inner.plugins.write();
                        if plugins.contains_key(&name) {
                            tracing::error!(plugin = name, "ignoring {}: name already installed", dir.display());
                            continue;
                        }
                        tracing::info!(plugin = name, "new plugin loaded");
                        plugins.insert(name.clone(), Arc::new(entry));
                        self.inner.changes.fetch_add(1, Ordering::AcqRel);
                        swapped.push(name);
                    }
                    Err(e) => tracing::error!("new plugin in {} failed to load: {e}", dir.display()),
                },
            }
        }
        swapped
    }

    /// Remember a stamp we failed to load, so the watcher does not retry it every tick.
    fn mark_stamp(&self, entry: &PluginEntry, stamp: Stamp) {
        let c = entry.compiled();
        // Re-wrap the same compiled version with the new stamp; the generation does not change.
        let same = Compiled {
            manifest: c.manifest.clone(),
            pre: match &c.pre {
                Pre::Layout(p) => Pre::Layout(p.clone()),
                Pre::Overlay(p) => Pre::Overlay(p.clone()),
                Pre::Destination(p) => Pre::Destination(p.clone()),
                Pre::Filter(p) => Pre::Filter(p.clone()),
            },
            settings: c.settings.clone(),
            enabled: c.enabled,
            http: c.http.clone(),
            stamp,
        };
        *entry.compiled.write() = Arc::new(same);
    }

    /// Load a single `.wasm` (with the `plugin.toml` beside it if any, else a manifest made from the
    /// component's exports) into a host of its own, for tests.
    pub fn load_file(wasm: &Path) -> Result<(PluginHost, String), PluginError> {
        let sibling = wasm.with_file_name(MANIFEST_FILE);
        let file = PluginFile { wasm: wasm.to_path_buf(), manifest: sibling.is_file().then_some(sibling) };
        let (host, mut names) = PluginHost::load_files(&[file], &OperatorSettings::default())?;
        Ok((host, names.remove(0)))
    }

    /// Load plugin files into a host of their own (no folders, no watcher), for `backyard plugin render`:
    /// each with its manifest when given, else one made from the component's exports. The operator's
    /// blocks in `settings` apply to the plugins they name; blocks naming plugins not loaded are ignored.
    /// Returns the plugins' names in the order given.
    pub fn load_files(
        files: &[PluginFile],
        settings: &OperatorSettings,
    ) -> Result<(PluginHost, Vec<String>), PluginError> {
        let keep = |tables: &BTreeMap<String, PluginSettings>, names: &[String]| -> BTreeMap<String, PluginSettings> {
            tables.iter().filter(|(name, _)| names.contains(name)).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let mut host = PluginHost::empty(HostConfig::default())?;
        let mut loaded: Vec<(Manifest, Vec<u8>, &PluginFile)> = Vec::new();
        for file in files {
            let io = |path: &Path, e: std::io::Error| PluginError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            let bytes = std::fs::read(&file.wasm).map_err(|e| io(&file.wasm, e))?;
            let manifest = match &file.manifest {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
                    Manifest::parse(&text, &path.display().to_string())?
                }
                None => {
                    let kind = host.detect_kind(&bytes, &file.wasm)?;
                    let stem = file.wasm.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
                    let name: String = stem
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
                        .collect();
                    Manifest::parse(
                        &format!(
                            "name = \"{name}\"\nversion = \"0.0.0\"\nkind = \"{kind}\"\napi = \"{}\"\n",
                            manifest::API_VERSION
                        ),
                        &file.wasm.display().to_string(),
                    )?
                }
            };
            if let Some((_, _, first)) = loaded.iter().find(|(m, _, _)| m.name == manifest.name) {
                return Err(PluginError::Duplicate {
                    name: manifest.name.clone(),
                    first: first.wasm.display().to_string(),
                    second: file.wasm.display().to_string(),
                });
            }
            loaded.push((manifest, bytes, file));
        }
        let names: Vec<String> = loaded.iter().map(|(m, _, _)| m.name.clone()).collect();
        let settings = OperatorSettings {
            plugins: keep(&settings.plugins, &names),
            destinations: keep(&settings.destinations, &names),
        };
        // Nothing else holds the host yet (no watcher, no instance): its settings can still be set.
        Arc::get_mut(&mut host.inner).expect("a host just made has no other owner").config.settings = settings;
        for (manifest, bytes, file) in loaded {
            let name = manifest.name.clone();
            let compiled = host.compile(manifest, &bytes, (None, None))?;
            let entry = PluginEntry {
                name: name.as_str().into(),
                dir: file.wasm.parent().map(Path::to_path_buf).unwrap_or_default(),
                compiled: RwLock::new(Arc::new(compiled)),
                generation: AtomicU64::new(0),
                health: Mutex::new(Health::default()),
                policy: FailurePolicy::default(),
            };
            host.inner.plugins.write().insert(name, Arc::new(entry));
        }
        host.check_operator_sections()?;
        Ok((host, names))
    }

    fn detect_kind(&self, bytes: &[u8], path: &Path) -> Result<PluginKind, PluginError> {
        let component = Component::new(&self.inner.runtime.engine, bytes).map_err(|e| PluginError::Load {
            plugin: path.display().to_string(),
            message: format!("does not compile: {e:#}"),
        })?;
        let exports: Vec<String> =
            component.component_type().exports(&self.inner.runtime.engine).map(|(n, _)| n.to_string()).collect();
        [PluginKind::Layout, PluginKind::Overlay, PluginKind::Destination, PluginKind::Filter]
            .into_iter()
            .find(|k| exports.iter().any(|n| n.starts_with(&format!("{}@", k.export_interface()))))
            .ok_or_else(|| PluginError::Load {
                plugin: path.display().to_string(),
                message: format!("exports no Backyard plugin interface (exports: {})", exports.join(", ")),
            })
    }

    /// Compile `wasm` as a `kind` plugin without installing it (for benchmarks of compile time).
    pub fn compile_only(&self, kind: PluginKind, wasm: &[u8]) -> Result<(), PluginError> {
        self.inner.runtime.prepare("(compile-only)", kind, wasm).map(|_| ())
    }
}

fn file_stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Advance the engine's epoch every millisecond: the unit of every call deadline.
fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
            engine.increment_epoch();
        }
    })?;
    Ok(())
}

fn spawn_watcher(inner: Weak<Inner>, every: Duration) {
    let spawned = std::thread::Builder::new().name("plugin-watch".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(inner) = inner.upgrade() else { return };
            if inner.stop.load(Ordering::Acquire) {
                return;
            }
            PluginHost { inner }.reload_changed();
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the plugin watcher, hot reload is off: {e}");
    }
}
