//! Configuration: defaults < `backyard.toml` < `BACKYARD_*` environment < command-line flags (figment).
//!
//! Embedded mode (the default: SQLite under `data_dir`, no Redis) generates its secrets on first run and keeps
//! them in `<data_dir>/secrets.toml`. With PostgreSQL, secrets must come from the configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rand::RngCore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address browsers use to reach this instance. Invite links, the Origin check and `Secure` cookies
    /// derive from it.
    pub public_url: String,
    /// Where the SQLite file, secrets, uploads and recordings live.
    pub data_dir: PathBuf,
    /// Where recordings are written instead of `<data_dir>/recordings`. The nodes of a cluster share one
    /// folder (a network file system): any node then serves any recording, and a node that takes a show over
    /// finalises the part the show's dead home left (`docs/cluster.md`).
    pub recordings_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub secrets: SecretsConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub media: MediaConfig,
    pub ice: IceConfig,
    /// Per-plugin and per-destination blocks (`[destinations.youtube] enabled = true`), validated against
    /// each plugin's manifest by the plugin host.
    pub destinations: BTreeMap<String, toml_value::Table>,
    pub plugins: PluginsConfig,
    pub program: ProgramConfig,
    pub ingest: IngestConfig,
    pub cluster: ClusterConfig,
}

/// This node among several sharing PostgreSQL and Redis (`docs/cluster.md`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name in the cluster directory; unset: the host name and a random suffix, new at each start.
    pub node_id: Option<String>,
    /// The secret every node of the cluster shares (at least 16 characters): with it set, the node's media relay
    /// listens, so rooms span nodes; nodes prove it to each other before any media crosses.
    pub secret: Option<String>,
    /// The UDP port of the media relay (on `media.bind`); 0 (default) picks a free one, announced in the directory.
    pub relay_port: u16,
    /// This node's own HTTP address as the directory and the Nodes page show it (`http://10.0.0.11:8080`), when
    /// the nodes share `public_url` behind a load balancer; unset: `public_url`.
    pub advertise_url: Option<String>,
}

/// Encoders publishing to this server (OBS, ffmpeg, hardware encoders).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Where the RTMP ingest listens (`0.0.0.0:1935`), or `off`. Unset: `0.0.0.0:1935` in embedded mode (and
    /// only a warning if that port is taken), off with PostgreSQL.
    pub rtmp_bind: Option<String>,
    /// The RTMP URL encoders are given, when the address they reach differs from `public_url`'s host and the
    /// bound port (behind a proxy or NAT): `rtmp://live.example.com/live`.
    pub rtmp_url: Option<String>,
}

/// The composed program of each broadcast: canvas, frame rate and the encode before destination limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramConfig {
    /// Canvas width in pixels (even): 1280 for 720p, 1920 for 1080p, 720 or 1080 for vertical 9:16.
    pub width: u32,
    /// Canvas height in pixels (even).
    pub height: u32,
    /// Output frames per second.
    pub fps: u32,
    /// Video bitrate, kb/s (lowered further by the strictest destination).
    pub video_kbps: u32,
    /// AAC bitrate, kb/s.
    pub audio_kbps: u32,
    /// x264 preset (`veryfast` suits 720p30 on two cores).
    pub preset: String,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        Self { width: 1280, height: 720, fps: 30, video_kbps: 3000, audio_kbps: 128, preset: "veryfast".into() }
    }
}

impl ProgramConfig {
    /// Checks sizes and rates, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, message: &str| Err(ConfigError::Field { field, message: message.into() });
        if !(160..=3840).contains(&self.width) || !self.width.is_multiple_of(2) {
            return bad("program.width", "must be an even number of pixels from 160 to 3840");
        }
        if !(160..=3840).contains(&self.height) || !self.height.is_multiple_of(2) {
            return bad("program.height", "must be an even number of pixels from 160 to 3840");
        }
        if !(1..=60).contains(&self.fps) {
            return bad("program.fps", "must be 1..=60");
        }
        if !(100..=50_000).contains(&self.video_kbps) {
            return bad("program.video_kbps", "must be 100..=50000");
        }
        if !(32..=512).contains(&self.audio_kbps) {
            return bad("program.audio_kbps", "must be 32..=512");
        }
        Ok(())
    }
}

/// Free-form TOML tables kept as JSON values so they can be validated against plugin schemas.
pub mod toml_value {
    pub type Table = serde_json::Map<String, serde_json::Value>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// PEM certificate chain and key: when both are set the gateway serves HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Trust `X-Forwarded-For` for client addresses (only behind your own reverse proxy).
    pub trust_proxy: bool,
    /// Where the studio's files are served from.
    pub studio_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://...`; empty means `<data_dir>/backyard.db`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port`; when set, refresh tokens and the event bus live in Redis.
    pub url: Option<String>,
    /// Prefix for every key and channel, so several deployments can share one Redis.
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone may create an account.
    Open,
    /// An account needs a valid invite token.
    Invite,
    /// Only the first account (the instance admin) may be created.
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub registration: Registration,
    pub access_ttl_secs: u64,
    pub refresh_ttl_days: u64,
    /// Guest sessions from an invite last this long.
    pub guest_ttl_hours: u64,
}

/// Secret material. Masked by `backyard config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// HS256 key for access tokens (base64, ≥ 32 bytes).
    pub jwt_key: Option<String>,
    /// AES-256-GCM keys for stream keys, by key id (base64, 32 bytes each).
    pub stream_key_keys: BTreeMap<String, String>,
    /// The key id new stream keys are encrypted with.
    pub stream_key_active: Option<String>,
    /// When set, `GET /metrics` answers only `Authorization: Bearer <metrics_token>` (its series name
    /// broadcasts and destinations); unset, it is public, for a scraper on a private network.
    pub metrics_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub json_body_bytes: usize,
    pub upload_bytes: usize,
    /// Auth attempts (register, login, refresh) per minute, per client address and per account.
    pub auth_per_minute: u32,
    /// Uploads per minute, per client address and per account.
    pub upload_per_minute: u32,
    pub max_participants: u32,
    /// Destination tests (a real connect and publish each) per minute, per client address and per account.
    pub destination_tests_per_minute: u32,
    /// Destination tests running at once on this node; more get a 429 until one ends.
    pub destination_tests_at_once: u32,
    /// Per-account quotas: broadcasts kept, broadcasts on air at once, bytes of uploads and of recordings
    /// kept. Past one, creating more is refused with a 429 naming the limit.
    pub broadcasts_per_account: u32,
    pub live_per_account: u32,
    pub upload_bytes_per_account: u64,
    pub recording_bytes_per_account: u64,
    /// Bytes of participants' local recordings (uploaded from their browsers) kept per broadcast, uploads in
    /// progress included; an upload past it is refused with a 413 naming this key.
    pub local_recording_bytes_per_broadcast: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info,backyard=debug`.
    pub level: String,
    pub json: bool,
}

/// The media node's UDP socket (WebRTC media of every participant on this node).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The IP the UDP socket binds; unset: the IP of `server.bind`.
    pub bind: Option<IpAddr>,
    /// The UDP port every participant's media goes through (one socket per node, so one port to open in a
    /// firewall); 0: the OS picks a free one.
    pub port: u16,
    /// The IP announced to clients as the server's ICE candidate (behind NAT: the public IP); unset: the bind
    /// IP, or `public_url`'s host when the bind IP is a wildcard.
    pub advertised_ip: Option<IpAddr>,
}

/// ICE servers handed to clients on join. TURN gets time-limited credentials made from `turn_secret`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IceConfig {
    /// `stun:host:port` URLs clients use to learn their public address.
    pub stun_urls: Vec<String>,
    /// `turn:host:port?transport=udp|tcp` or `turns:host:port` URLs of a TURN server (coturn) that relays media
    /// for clients whose network blocks direct UDP to this server.
    pub turn_urls: Vec<String>,
    /// The TURN server's shared secret (coturn `use-auth-secret` + `static-auth-secret`). Masked by
    /// `backyard config`.
    pub turn_secret: Option<String>,
    /// How long a TURN credential handed out on join stays valid (it must outlive the join; a relayed
    /// connection keeps its allocation while it refreshes it).
    pub turn_ttl_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// Folders searched for `<name>/plugin.toml` + `.wasm`; empty means `<data_dir>/plugins` and `target/plugins`.
    pub dirs: Vec<PathBuf>,
    /// Per-plugin settings, validated against the plugin's config schema.
    #[serde(flatten)]
    pub settings: BTreeMap<String, toml_value::Table>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            recordings_dir: None,
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig { url: None, prefix: "backyard:".into() },
            auth: AuthConfig::default(),
            secrets: SecretsConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            media: MediaConfig::default(),
            ice: IceConfig::default(),
            destinations: BTreeMap::new(),
            plugins: PluginsConfig::default(),
            program: ProgramConfig::default(),
            ingest: IngestConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".parse().expect("a literal socket address"),
            tls_cert: None,
            tls_key: None,
            trust_proxy: false,
            studio_dir: PathBuf::from("studio"),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 8 }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { registration: Registration::Open, access_ttl_secs: 15 * 60, refresh_ttl_days: 30, guest_ttl_hours: 24 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            json_body_bytes: 64 * 1024,
            upload_bytes: 10 * 1024 * 1024,
            auth_per_minute: 20,
            upload_per_minute: 30,
            max_participants: 12,
            destination_tests_per_minute: 6,
            destination_tests_at_once: 4,
            broadcasts_per_account: 200,
            live_per_account: 3,
            upload_bytes_per_account: 500 * 1024 * 1024,
            recording_bytes_per_account: 50 * 1024 * 1024 * 1024,
            local_recording_bytes_per_broadcast: 10 * 1024 * 1024 * 1024,
        }
    }
}

impl Default for IceConfig {
    fn default() -> Self {
        Self { stun_urls: Vec::new(), turn_urls: Vec::new(), turn_secret: None, turn_ttl_secs: 3600 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), json: false }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The files, environment or flags did not form a valid configuration.
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is present but unusable.
    #[error("configuration: {field}: {message}")]
    Field { field: &'static str, message: String },
    /// Reading or writing the data directory failed.
    #[error("configuration: {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl Config {
    /// Where recordings are written: `recordings_dir`, or `<data_dir>/recordings`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir.clone().unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    /// Layers defaults, the TOML file (if it exists), `BACKYARD_*` env (`__` separates levels, e.g.
    /// `BACKYARD_DATABASE__URL`; lists as `BACKYARD_ICE__TURN_URLS='["turn:..."]'`) and `overrides` (from CLI
    /// flags), then [`validate`](Self::validate)s the result.
    pub fn load(file: &Path, overrides: impl Serialize) -> Result<Self, ConfigError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("BACKYARD_").split("__"))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types alone do not: the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let field = |field, message: String| Err(ConfigError::Field { field, message });
        self.rtmp_ingest()?;
        if let Some(url) = &self.ingest.rtmp_url
            && !has_scheme_and_host(url, &["rtmp", "rtmps"])
        {
            return field("ingest.rtmp_url", format!("{url:?} is not an rtmp:// or rtmps:// URL with a host"));
        }
        for url in &self.ice.stun_urls {
            if !has_scheme_and_host(url, &["stun", "stuns"]) {
                return field("ice.stun_urls", format!("{url:?} is not a stun: or stuns: URL with a host"));
            }
        }
        for url in &self.ice.turn_urls {
            if !has_scheme_and_host(url, &["turn", "turns"]) {
                return field("ice.turn_urls", format!("{url:?} is not a turn: or turns: URL with a host"));
            }
        }
        if !self.ice.turn_urls.is_empty() && self.ice.turn_secret.as_deref().is_none_or(str::is_empty) {
            return field(
                "ice.turn_secret",
                "required with ice.turn_urls (the TURN server's static-auth-secret)".into(),
            );
        }
        if let Some(secret) = &self.cluster.secret
            && secret.chars().count() < 16
        {
            return field("cluster.secret", "must be at least 16 characters".into());
        }
        if let Some(url) = &self.cluster.advertise_url
            && crate::state::origin_of(url).is_none()
        {
            return field("cluster.advertise_url", "must be an absolute http(s) URL".into());
        }
        if self.ice.turn_ttl_secs == 0 {
            return field("ice.turn_ttl_secs", "must be at least 1".into());
        }
        if let Some(ip) = self.media.advertised_ip
            && ip.is_unspecified()
        {
            return field("media.advertised_ip", format!("{ip} is a wildcard, not an address clients can reach"));
        }
        self.program.validate()?;
        Ok(())
    }

    /// Where the RTMP ingest listens, and whether that address was configured (not the embedded default).
    pub fn rtmp_ingest(&self) -> Result<Option<(SocketAddr, bool)>, ConfigError> {
        match self.ingest.rtmp_bind.as_deref().map(str::trim) {
            Some("off") => Ok(None),
            Some(addr) => addr.parse().map(|a| Some((a, true))).map_err(|_| ConfigError::Field {
                field: "ingest.rtmp_bind",
                message: format!("{addr:?} is not an address like 0.0.0.0:1935 (or `off`)"),
            }),
            None if self.is_postgres() => Ok(None),
            None => Ok(Some((SocketAddr::from(([0, 0, 0, 0], 1935)), false))),
        }
    }

    /// True when running on PostgreSQL (production): secrets must then be given, not generated.
    pub fn is_postgres(&self) -> bool {
        self.database.url.starts_with("postgres://") || self.database.url.starts_with("postgresql://")
    }

    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("backyard.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// Fills missing secrets: generated once and persisted in `<data_dir>/secrets.toml` in embedded mode; an
    /// error naming the field in production.
    pub fn ensure_secrets(&mut self) -> Result<(), ConfigError> {
        let missing_jwt = self.secrets.jwt_key.is_none();
        let missing_aes = self.secrets.stream_key_keys.is_empty();
        if self.is_postgres() {
            if missing_jwt {
                return Err(ConfigError::Field {
                    field: "secrets.jwt_key",
                    message: "required with PostgreSQL".into(),
                });
            }
            if missing_aes {
                return Err(ConfigError::Field {
                    field: "secrets.stream_key_keys",
                    message: "required with PostgreSQL".into(),
                });
            }
        } else if missing_jwt || missing_aes {
            let path = self.data_dir.join("secrets.toml");
            let io = |source| ConfigError::Io { path: path.clone(), source };
            let stored: SecretsConfig = match std::fs::read_to_string(&path) {
                Ok(text) => toml_from_str(&text).map_err(|message| ConfigError::Field { field: "secrets", message })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let generated = SecretsConfig {
                        jwt_key: Some(random_key()),
                        stream_key_keys: BTreeMap::from([("k1".to_owned(), random_key())]),
                        stream_key_active: Some("k1".into()),
                        metrics_token: None,
                    };
                    std::fs::create_dir_all(&self.data_dir).map_err(io)?;
                    write_private(&path, &toml_to_string(&generated)).map_err(io)?;
                    generated
                }
                Err(e) => return Err(io(e)),
            };
            if missing_jwt {
                self.secrets.jwt_key = stored.jwt_key;
            }
            if missing_aes {
                self.secrets.stream_key_keys = stored.stream_key_keys;
                self.secrets.stream_key_active = stored.stream_key_active;
            }
        }
        if self.secrets.stream_key_active.is_none() {
            self.secrets.stream_key_active = self.secrets.stream_key_keys.keys().next_back().cloned();
        }
        Ok(())
    }

    /// The configuration as `backyard config` prints it: secrets replaced by `***`, passwords in URLs masked.
    pub fn masked(&self) -> Self {
        let mut c = self.clone();
        if c.secrets.jwt_key.is_some() {
            c.secrets.jwt_key = Some("***".into());
        }
        for v in c.secrets.stream_key_keys.values_mut() {
            *v = "***".into();
        }
        if c.ice.turn_secret.is_some() {
            c.ice.turn_secret = Some("***".into());
        }
        if c.cluster.secret.is_some() {
            c.cluster.secret = Some("***".into());
        }
        if c.secrets.metrics_token.is_some() {
            c.secrets.metrics_token = Some("***".into());
        }
        c.database.url = mask_url_password(&c.database.url);
        c.redis.url = c.redis.url.as_deref().map(mask_url_password);
        c
    }
}

/// `scheme:host[:port][?query]` with one of `schemes` and a non-empty host (RFC 7064/7065 URIs have no `//`).
fn has_scheme_and_host(url: &str, schemes: &[&str]) -> bool {
    url.split_once(':').is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme) && !rest.starts_with('/') && !rest.split([':', '?']).next().unwrap_or("").is_empty()
    })
}

fn mask_url_password(url: &str) -> String {
    // scheme://user:password@host → scheme://user:***@host
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((auth, host)) = rest.split_once('@')
        && let Some((user, _)) = auth.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

fn random_key() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    Figment::from(Toml::string(text)).extract().map_err(|e| e.to_string())
}

fn toml_to_string(secrets: &SecretsConfig) -> String {
    let mut out =
        String::from("# Generated by backyard on first run. Keep private; losing it loses stored stream keys.\n");
    if let Some(k) = &secrets.jwt_key {
        out += &format!("jwt_key = \"{k}\"\n");
    }
    if let Some(k) = &secrets.stream_key_active {
        out += &format!("stream_key_active = \"{k}\"\n");
    }
    out += "[stream_key_keys]\n";
    for (id, k) in &secrets.stream_key_keys {
        out += &format!("{id} = \"{k}\"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_loads_with_its_plugin_blocks_commented_or_not() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../backyard.example.toml");
        let text = std::fs::read_to_string(&example).unwrap();
        Config::load(&example, serde_json::Map::new()).unwrap();
        // Every commented plugin and destination block, turned on.
        let mut on = String::new();
        let mut in_plugins = false;
        for line in text.lines() {
            if line.starts_with('[') {
                in_plugins = line == "[plugins]";
            }
            let uncommented = line.strip_prefix("# ").filter(|l| {
                let setting = l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
                });
                in_plugins && (l.starts_with("[plugins.") || l.starts_with("[destinations.") || setting)
            });
            on.push_str(uncommented.map(|l| l.split(" #").next().unwrap_or(l)).unwrap_or(line));
            on.push('\n');
        }
        let file = std::env::temp_dir().join(format!("by-example-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&file, &on).unwrap();
        let cfg = Config::load(&file, serde_json::Map::new()).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(cfg.plugins.settings["layouts"]["gap"].as_i64(), Some(8), "{on}");
        assert_eq!(cfg.plugins.settings["scoreboard"]["corner"].as_str(), Some("bottom-right"));
        assert!(cfg.plugins.dirs.is_empty());
        for platform in ["youtube", "twitch", "facebook", "rtmp"] {
            assert!(cfg.destinations.contains_key(platform), "[destinations.{platform}] in {on}");
        }
    }

    #[test]
    fn masks_secrets_and_url_passwords() {
        let mut c = Config::default();
        c.secrets.jwt_key = Some("secret".into());
        c.database.url = "postgres://u:pw@db/x".into();
        c.ice.turn_secret = Some("coturn-secret".into());
        c.cluster.secret = Some("the cluster's shared secret".into());
        let m = c.masked();
        assert_eq!(m.secrets.jwt_key.as_deref(), Some("***"));
        assert_eq!(m.ice.turn_secret.as_deref(), Some("***"));
        assert_eq!(m.cluster.secret.as_deref(), Some("***"));
        assert_eq!(m.database.url, "postgres://u:***@db/x");
    }

    #[test]
    fn embedded_secrets_are_generated_once_and_persisted() {
        let dir = std::env::temp_dir().join(format!("by-cfg-{}", uuid::Uuid::new_v4()));
        let mut a = Config { data_dir: dir.clone(), ..Config::default() };
        a.ensure_secrets().unwrap();
        let mut b = Config { data_dir: dir.clone(), ..Config::default() };
        b.ensure_secrets().unwrap();
        assert_eq!(a.secrets.jwt_key, b.secrets.jwt_key);
        assert_eq!(a.secrets.stream_key_keys, b.secrets.stream_key_keys);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn production_requires_secrets() {
        let mut c = Config::default();
        c.database.url = "postgres://localhost/x".into();
        let err = c.ensure_secrets().unwrap_err().to_string();
        assert!(err.contains("secrets.jwt_key"), "{err}");
    }

    fn ice(stun: &[&str], turn: &[&str], secret: Option<&str>) -> Config {
        let mut c = Config::default();
        c.ice.stun_urls = stun.iter().map(|s| s.to_string()).collect();
        c.ice.turn_urls = turn.iter().map(|s| s.to_string()).collect();
        c.ice.turn_secret = secret.map(str::to_owned);
        c
    }

    fn invalid_field(c: &Config) -> &'static str {
        match c.validate() {
            Err(ConfigError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_short_cluster_secret_is_refused_naming_the_field() {
        let mut c = Config::default();
        c.cluster.secret = Some("too short".into());
        assert_eq!(invalid_field(&c), "cluster.secret");
        c.cluster.secret = Some("sixteen chars ok".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_node_s_advertised_address_must_be_an_http_url() {
        let mut c = Config::default();
        c.cluster.advertise_url = Some("10.0.0.11:8080".into());
        assert_eq!(invalid_field(&c), "cluster.advertise_url");
        c.cluster.advertise_url = Some("http://10.0.0.11:8080".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn ice_urls_and_secret_are_validated_naming_the_field() {
        let ok = ice(
            &["stun:stun.example.org:3478", "stun:[2001:db8::1]:3478"],
            &[
                "turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:5349?transport=tcp",
                "turn:127.0.0.1",
            ],
            Some("s3cret"),
        );
        ok.validate().unwrap();
        assert_eq!(invalid_field(&ice(&["turn:stun.example.org"], &[], None)), "ice.stun_urls");
        assert_eq!(invalid_field(&ice(&["stun.example.org:3478"], &[], None)), "ice.stun_urls");
        assert_eq!(invalid_field(&ice(&[], &["stun:turn.example.org:3478"], Some("s"))), "ice.turn_urls");
        assert_eq!(invalid_field(&ice(&[], &["turn://turn.example.org"], Some("s"))), "ice.turn_urls");
        assert_eq!(invalid_field(&ice(&[], &["turn::3478"], Some("s"))), "ice.turn_urls");
        assert_eq!(invalid_field(&ice(&[], &["turn:turn.example.org"], None)), "ice.turn_secret");
        assert_eq!(invalid_field(&ice(&[], &["turn:turn.example.org"], Some(""))), "ice.turn_secret");
        let mut zero_ttl = ok.clone();
        zero_ttl.ice.turn_ttl_secs = 0;
        assert_eq!(invalid_field(&zero_ttl), "ice.turn_ttl_secs");
        let mut wildcard = Config::default();
        wildcard.media.advertised_ip = Some("0.0.0.0".parse().unwrap());
        assert_eq!(invalid_field(&wildcard), "media.advertised_ip");
    }
}
