//! The node's plugin host, built from `[plugins]` and `[destinations.*]` in the configuration.
//!
//! `backyard serve` starts it before listening, so a broken plugin or a bad operator setting stops start-up
//! with an error naming the plugin and the field. Elsewhere (tests, tools) it starts on first use.

use std::path::PathBuf;
use std::time::Duration;

use backyard_core::director::{self, Offered};
use backyard_core::plugin_host::{HostConfig, OperatorSettings, PluginError, PluginHost};
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::error::ApiError;

/// The plugin host of this node, started once.
pub struct Plugins {
    config: HostConfig,
    host: OnceCell<PluginHost>,
    /// What the plugins offered when last asked, kept while no plugin is added or reloaded.
    offered: parking_lot::Mutex<Option<Offered>>,
}

/// How often changed `.wasm` files are looked for (hot reload).
const WATCH_EVERY: Duration = Duration::from_secs(2);

impl Plugins {
    /// Reads the operator's plugin settings; fails on a malformed `enabled` naming the plugin.
    pub fn new(cfg: &Config) -> Result<Plugins, PluginError> {
        let settings = OperatorSettings::from_tables(&cfg.plugins.settings, &cfg.destinations)?;
        Ok(Plugins {
            config: HostConfig {
                dirs: plugin_dirs(cfg),
                settings,
                watch: Some(WATCH_EVERY),
                // Compiled plugins are kept in the data directory: a restart loads them instead of compiling.
                compile_cache: Some(cfg.data_dir.join("plugin-cache")),
                ..HostConfig::default()
            },
            host: OnceCell::new(),
            offered: parking_lot::Mutex::new(None),
        })
    }

    /// The host, compiling every installed plugin on first call (off the async threads).
    pub async fn host(&self) -> Result<PluginHost, PluginError> {
        self.host
            .get_or_try_init(|| {
                let config = self.config.clone();
                async move {
                    let started = std::time::Instant::now();
                    let host =
                        tokio::task::spawn_blocking(move || PluginHost::start(config)).await.unwrap_or_else(|e| {
                            Err(PluginError::Load {
                                plugin: "(host)".into(),
                                message: format!("start-up panicked: {e}"),
                            })
                        })?;
                    let stats = host.compile_stats();
                    tracing::info!(
                        compiled = stats.compiled,
                        from_cache = stats.cache_hits,
                        ms = started.elapsed().as_millis() as u64,
                        "plugins ready"
                    );
                    Ok(host)
                }
            })
            .await
            .cloned()
    }

    /// [`Self::host`] for request handlers: a failure is a 500 that names the plugin.
    pub async fn api_host(&self) -> Result<PluginHost, ApiError> {
        self.host().await.map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
    }

    /// The layouts the studio may pick from and the third-party overlays the hosts may show, as the loaded plugins
    /// offer them. Asked of the plugins (on a blocking thread) only after a plugin was added or reloaded; a
    /// partial answer (a plugin failed to answer) is asked again next time. Empty when the host does not start.
    pub async fn offered(&self) -> Offered {
        let Ok(host) = self.host().await else { return Offered::default() };
        if let Some(kept) = self.offered.lock().as_ref().filter(|o| o.changes == host.changes()) {
            return kept.clone();
        }
        let fresh = tokio::task::spawn_blocking(move || director::offered(&host)).await.unwrap_or_default();
        if fresh.complete {
            *self.offered.lock() = Some(fresh.clone());
        }
        fresh
    }

    /// Where plugins are looked for.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.config.dirs
    }
}

/// `plugins.dirs`, or by default `<data_dir>/plugins` (operators' own) then `./target/plugins` (where
/// `cargo xtask plugins` puts the first-party plugins in a checkout), and in a development build also the
/// `target/plugins` of the checkout it was built from (so tests and `cargo run` from anywhere find them), each
/// listed once. `docs/plugins.md` lists the same folders.
fn plugin_dirs(cfg: &Config) -> Vec<PathBuf> {
    if !cfg.plugins.dirs.is_empty() {
        return cfg.plugins.dirs.clone();
    }
    let mut candidates = vec![cfg.data_dir.join("plugins"), PathBuf::from("target/plugins")];
    if cfg!(debug_assertions) {
        candidates.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins")));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in candidates {
        // A missing folder is skipped by the host; an existing one is listed once, however it is spelled.
        let key = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if !seen.contains(&key) {
            seen.push(key);
            dirs.push(dir);
        }
    }
    dirs
}
