//! The `backyard` binary.

#![cfg_attr(not(test), warn(clippy::unwrap_used))] // outside tests, what cannot fail says why with `expect`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use backyard::config::Config;
use backyard::plugin_tools::{self, PluginCommand};
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "backyard", version, about = "Self-hosted live-streaming studio")]
struct Cli {
    /// Configuration file (TOML). Missing is fine: defaults, env and flags apply.
    #[arg(long, short, env = "BACKYARD_CONFIG", default_value = "backyard.toml", global = true)]
    config: PathBuf,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags that override the file and the environment.
#[derive(clap::Args, Serialize, Default)]
struct Overrides {
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<SocketAddr>,
    /// The URL browsers use to reach this instance.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    public_url: Option<String>,
    /// Data directory (SQLite file, secrets, uploads, recordings).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://... or postgres://...
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration, secrets masked.
    Config,
    /// Plugin tools for authors.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// Shapes flag overrides like the config file, so figment can merge them.
#[derive(Serialize)]
struct Layer {
    #[serde(skip_serializing_if = "Option::is_none")]
    public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    server: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    database: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    log: serde_json::Map<String, serde_json::Value>,
}

impl From<&Overrides> for Layer {
    fn from(o: &Overrides) -> Self {
        let mut server = serde_json::Map::new();
        if let Some(b) = o.bind {
            server.insert("bind".into(), b.to_string().into());
        }
        let mut database = serde_json::Map::new();
        if let Some(u) = &o.database_url {
            database.insert("url".into(), u.clone().into());
        }
        let mut log = serde_json::Map::new();
        if o.log_json {
            log.insert("json".into(), true.into());
        }
        Self { public_url: o.public_url.clone(), data_dir: o.data_dir.clone(), server, database, log }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if cfg.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Plugin tools show the plugins' own log lines (every level) and the host's warnings, without timestamps.
fn init_plugin_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,backyard_core::plugin_host::state=trace"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let load = || Config::load(&cli.config, Layer::from(&cli.overrides));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            let masked = load()?.masked();
            let text = toml_like(&serde_json::to_value(&masked)?);
            // A closed pipe (`backyard config | head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            Ok(())
        }
        Command::Plugin(command) => {
            // An author's mistake is one line, not a backtrace.
            if let Err(e) = plugin(command, &cli.config, &cli.overrides) {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Serve => {
            let mut cfg = load()?;
            init_logging(&cfg);
            cfg.ensure_secrets()?;
            serve(cfg).await
        }
    }
}

/// `backyard plugin ...`.
fn plugin(command: PluginCommand, config_file: &std::path::Path, overrides: &Overrides) -> anyhow::Result<()> {
    match command {
        PluginCommand::New { kind, name, dir, sdk } => {
            let made = plugin_tools::new::create(&plugin_tools::new::NewPlugin { kind: kind.into(), name, dir, sdk })?;
            let shown = made.dir.strip_prefix(std::env::current_dir()?).unwrap_or(&made.dir).display().to_string();
            let kind = backyard_core::plugin_host::PluginKind::from(kind);
            let article = if kind == backyard_core::plugin_host::PluginKind::Overlay { "an" } else { "a" };
            println!("created {shown}/ ({article} {kind} plugin)");
            println!("next (once per machine: rustup target add wasm32-wasip2):");
            println!("  cd {shown}");
            println!("  cargo build --release --target wasm32-wasip2");
            match &made.preview {
                Some(p) => println!("  {p}"),
                None => println!("  cargo test"),
            }
            Ok(())
        }
        PluginCommand::Sdk { dir } => {
            plugin_tools::sdk::write(&dir)?;
            println!("wrote the Backyard plugin SDK {} into {}", plugin_tools::sdk::SDK_VERSION, dir.display());
            Ok(())
        }
        PluginCommand::Render(args) => {
            init_plugin_logging();
            // An explicit `-c` that does not exist is a mistake; the default file may be missing.
            let explicit = config_file != std::path::Path::new("backyard.toml");
            if explicit && !config_file.is_file() {
                anyhow::bail!("-c {}: no such file", config_file.display());
            }
            let config = config_file.is_file().then_some(config_file);
            let overrides = Layer::from(overrides);
            let settings = || -> anyhow::Result<backyard_core::plugin_host::OperatorSettings> {
                let cfg = Config::load(config_file, &overrides)?;
                Ok(backyard_core::plugin_host::OperatorSettings::from_tables(&cfg.plugins.settings, &cfg.destinations)?)
            };
            plugin_tools::render::run(&args, config, &settings)
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let bind = cfg.server.bind;
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => anyhow::bail!("server.tls_cert and server.tls_key must be set together"),
    };
    let public_url = cfg.public_url.clone();
    let state = backyard::AppState::new(cfg).await?;
    // A broken plugin or a bad `[plugins.*]` / `[destinations.*]` setting stops start-up, naming it.
    let host = state.plugins.host().await.context("loading plugins")?;
    let installed = host.list();
    tracing::info!(
        plugins = installed.len(),
        dirs = ?state.plugins.dirs(),
        "plugins loaded: {}",
        installed.iter().map(|p| format!("{} {} ({})", p.name, p.version, p.kind.as_str())).collect::<Vec<_>>().join(", ")
    );
    // Alone (no Redis), every row is this node's, whatever id it had before; with others, only its own.
    let mine = state.cfg.redis.url.as_ref().map(|_| state.cluster.node.as_str());
    let closed = state.store.close_all_participants(mine).await?;
    if closed > 0 {
        tracing::info!(closed, "marked participants from a previous run as left");
    }
    backyard::program::recover_after_restart(&state).await.context("recovering broadcasts and recordings")?;
    let rtmp = backyard::ingest::start(&state).await.context("starting the RTMP ingest")?;
    let app = backyard::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    println!("Backyard studio: {public_url}  (listening on {}://{bind})", if tls.is_some() { "https" } else { "http" });
    if let Some(url) = backyard::ingest::rtmp_url(&state).filter(|_| rtmp.is_some()) {
        println!("RTMP ingest for encoders: {url}  (keys in each broadcast's Sources panel)");
    }
    if state.cfg.redis.url.is_some() {
        tokio::spawn(backyard::program::tend(state.clone()));
    }
    if state.cfg.cluster.secret.is_some() {
        // The relay listens from the start: other nodes' people may share a room with nobody here yet.
        let hub = backyard::signaling::Hub::get(&state).await.map_err(|e| anyhow::anyhow!("starting media: {e:?}"))?;
        tokio::spawn(backyard::signaling::follow_orders(state.clone()));
        if let Some((_, addr)) = &hub.relay {
            tracing::info!(%addr, "media relay listening: rooms span the nodes that share cluster.secret");
        }
    } else if state.cfg.redis.url.is_some() {
        tracing::warn!("cluster.secret is not set: rooms do not span nodes (everyone in a studio must reach one node)");
    }
    tokio::spawn(shutdown_on_signal(handle.clone(), state));
    tracing::info!(%bind, %public_url, "listening");
    match tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| format!("loading TLS cert {} / key {}", cert.display(), key.display()))?;
            let mut server = axum_server::bind_rustls(bind, config).handle(handle);
            cap_headers(server.http_builder());
            server.serve(app).await?;
        }
        None => {
            let mut server = axum_server::bind(bind).handle(handle);
            cap_headers(server.http_builder());
            server.serve(app).await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Request headers a client may send in all: more is answered `431` before any handler runs.
const MAX_HEADER_BYTES: usize = 64 * 1024;

fn cap_headers(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder.http1().max_buf_size(MAX_HEADER_BYTES);
    builder.http2().max_header_list_size(MAX_HEADER_BYTES as u32);
}

/// On SIGINT/SIGTERM: ends the programs on air (outputs flushed, recordings finalised, rows updated), then
/// stops accepting and gives open requests 10 s to finish.
async fn shutdown_on_signal(handle: axum_server::Handle, state: backyard::AppState) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    backyard::program::end_all(&state).await;
    backyard::ingest::end_all(&state).await;
    handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
}

/// Prints a JSON value as TOML-ish `key = value` lines grouped by table, for `backyard config`.
fn toml_like(v: &serde_json::Value) -> String {
    fn scalar(v: &serde_json::Value) -> String {
        v.to_string()
    }
    fn walk(prefix: &str, map: &serde_json::Map<String, serde_json::Value>, out: &mut String) {
        let (tables, scalars): (Vec<_>, Vec<_>) = map.iter().partition(|(_, v)| v.is_object());
        if !scalars.is_empty() && !prefix.is_empty() {
            out.push_str(&format!("\n[{prefix}]\n"));
        }
        for (k, v) in scalars {
            if !v.is_null() {
                out.push_str(&format!("{k} = {}\n", scalar(v)));
            }
        }
        for (k, v) in tables {
            let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if let Some(m) = v.as_object() {
                if m.is_empty() {
                    out.push_str(&format!("\n[{p}]\n"));
                }
                walk(&p, m, out);
            }
        }
    }
    let mut out = String::new();
    if let Some(m) = v.as_object() {
        walk("", m, &mut out);
    }
    out
}
