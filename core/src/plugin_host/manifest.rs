//! `plugin.toml`: what a plugin is, what it may reach, its limits and its config schema; and the check
//! of an operator's `[plugins.<name>]` / `[destinations.<platform>]` block against that schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PluginError;

/// Highest WIT major.minor this host serves; plugins built against `0.1.x` load.
pub const API_VERSION: &str = "0.1.0";

/// Per-call deadline when the manifest sets none.
pub const DEFAULT_CALL_MS: u32 = 10;
/// A per-frame call may take at most one frame at 30 fps.
pub const MAX_FRAME_CALL_MS: u32 = 33;
/// Destination adapters are called off the frame path and may make an HTTP call.
pub const DEFAULT_DESTINATION_CALL_MS: u32 = 2_000;
pub const MAX_DESTINATION_CALL_MS: u32 = 10_000;
/// Linear memory cap when the manifest sets none.
pub const DEFAULT_MEMORY_MB: u32 = 64;
pub const MAX_MEMORY_MB: u32 = 512;

/// The four plugin kinds, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Layout,
    Overlay,
    Destination,
    Filter,
}

impl PluginKind {
    /// The exported interface that marks a component as this kind (without its version).
    pub fn export_interface(self) -> &'static str {
        match self {
            PluginKind::Layout => "backyard:plugin/layout",
            PluginKind::Overlay => "backyard:plugin/overlay",
            PluginKind::Destination => "backyard:plugin/destination",
            PluginKind::Filter => "backyard:plugin/filter",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Layout => "layout",
            PluginKind::Overlay => "overlay",
            PluginKind::Destination => "destination",
            PluginKind::Filter => "filter",
        }
    }

    /// Called once per frame (layout, overlay, filter) rather than on demand.
    pub fn is_per_frame(self) -> bool {
        self != PluginKind::Destination
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin may reach beyond its own memory. Everything is denied by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Capabilities {
    /// Hosts (`api.example.com`, `*.example.com`, `127.0.0.1:8080`) a destination adapter may call
    /// through the host's HTTP import.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Hard limits the host enforces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap in MiB.
    pub memory_mb: u32,
    /// Deadline for one call in milliseconds.
    pub call_ms: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<u32>,
    call_ms: Option<u32>,
}

/// Type of one config setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    String,
    Bool,
    Integer,
    Number,
}

/// One entry of the manifest's `[config.<key>]` schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Setting {
    #[serde(rename = "type")]
    pub ty: SettingType,
    #[serde(default)]
    pub description: String,
    /// The operator must set it.
    #[serde(default)]
    pub required: bool,
    /// Value used when the operator sets none.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// For numbers: inclusive bounds.
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// For strings: the allowed values.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
}

/// A parsed and checked `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    /// WIT package version the plugin was built against.
    pub api: String,
    pub description: String,
    pub capabilities: Capabilities,
    pub limits: Limits,
    pub config: BTreeMap<String, Setting>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    kind: PluginKind,
    api: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    config: BTreeMap<String, Setting>,
}

impl Manifest {
    /// Parse and check a `plugin.toml`. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, PluginError> {
        let bad = |message: String| PluginError::Manifest { origin: origin.to_string(), message };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if raw.name.is_empty()
            || !raw.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(bad(format!("name '{}' must be lower-case letters, digits, - or _", raw.name)));
        }
        check_api(&raw.api).map_err(bad)?;
        let (default_ms, max_ms) = if raw.kind.is_per_frame() {
            (DEFAULT_CALL_MS, MAX_FRAME_CALL_MS)
        } else {
            (DEFAULT_DESTINATION_CALL_MS, MAX_DESTINATION_CALL_MS)
        };
        let call_ms = raw.limits.call_ms.unwrap_or(default_ms);
        if call_ms == 0 || call_ms > max_ms {
            return Err(bad(format!("limits.call-ms must be 1..={max_ms} for a {} plugin, got {call_ms}", raw.kind)));
        }
        let memory_mb = raw.limits.memory_mb.unwrap_or(DEFAULT_MEMORY_MB);
        if memory_mb == 0 || memory_mb > MAX_MEMORY_MB {
            return Err(bad(format!("limits.memory-mb must be 1..={MAX_MEMORY_MB}, got {memory_mb}")));
        }
        if raw.kind != PluginKind::Destination && !raw.capabilities.allowed_hosts.is_empty() {
            return Err(bad("capabilities.allowed-hosts is only for destination plugins".into()));
        }
        for (key, setting) in &raw.config {
            if key == "enabled" {
                return Err(bad("config key 'enabled' is reserved for the operator".into()));
            }
            if let Some(d) = &setting.default {
                check_value(setting, d).map_err(|m| bad(format!("config.{key}.default {m}")))?;
            }
        }
        Ok(Manifest {
            name: raw.name,
            version: raw.version,
            kind: raw.kind,
            api: raw.api,
            description: raw.description,
            capabilities: raw.capabilities,
            limits: Limits { memory_mb, call_ms },
            config: raw.config,
        })
    }

    /// Check an operator's block for this plugin and return the effective values (defaults filled in)
    /// plus whether the plugin is enabled. Errors name the plugin and the field.
    pub fn resolve_settings(
        &self,
        section: &str,
        block: Option<&PluginSettings>,
    ) -> Result<ResolvedSettings, PluginError> {
        let err = |field: &str, message: String| PluginError::Settings {
            plugin: self.name.clone(),
            field: format!("{section}.{}.{field}", self.name),
            message,
        };
        let mut values = BTreeMap::new();
        let empty = serde_json::Map::new();
        let given = block.map(|b| &b.values).unwrap_or(&empty);
        for key in given.keys() {
            if !self.config.contains_key(key) {
                let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
                return Err(err(
                    key,
                    format!(
                        "unknown setting (known: {})",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                ));
            }
        }
        for (key, setting) in &self.config {
            match given.get(key).or(setting.default.as_ref()) {
                Some(v) => {
                    check_value(setting, v).map_err(|m| err(key, m))?;
                    values.insert(key.clone(), v.clone());
                }
                None if setting.required => return Err(err(key, "is required".into())),
                None => {}
            }
        }
        Ok(ResolvedSettings { enabled: block.and_then(|b| b.enabled).unwrap_or(true), values })
    }
}

/// The operator's block for one plugin in `backyard.toml` (`[plugins.<name>]` or
/// `[destinations.<platform>]`): `enabled` plus the plugin's own settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginSettings {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// The settings a plugin runs with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedSettings {
    pub enabled: bool,
    pub values: BTreeMap<String, serde_json::Value>,
}

/// Accept `0.1.x` for this host's `0.1.0` (same major, and same minor while the major is 0, no newer
/// minor than the host).
fn check_api(api: &str) -> Result<(), String> {
    let parse = |s: &str| -> Option<(u64, u64)> {
        let mut it = s.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    let (hmaj, hmin) = parse(API_VERSION).ok_or("bad host api version")?;
    let (maj, min) = parse(api).ok_or_else(|| format!("api '{api}' is not a version like 0.1.0"))?;
    let ok = if hmaj == 0 { maj == 0 && min == hmin } else { maj == hmaj && min <= hmin };
    if ok {
        Ok(())
    } else {
        Err(format!("api {api} is not served by this host (serves {API_VERSION} and older minors of its major)"))
    }
}

fn check_value(s: &Setting, v: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    match (s.ty, v) {
        (SettingType::String, Value::String(text)) => {
            if let Some(choices) = &s.choices
                && !choices.iter().any(|c| c == text)
            {
                return Err(format!("must be one of {}", choices.join(", ")));
            }
            Ok(())
        }
        (SettingType::Bool, Value::Bool(_)) => Ok(()),
        (SettingType::Integer, Value::Number(n)) if n.is_i64() => check_range(s, n.as_f64().unwrap_or(0.0)),
        (SettingType::Number, Value::Number(n)) => check_range(s, n.as_f64().unwrap_or(f64::NAN)),
        (ty, _) => Err(format!(
            "must be {}",
            match ty {
                SettingType::String => "a string",
                SettingType::Bool => "true or false",
                SettingType::Integer => "an integer",
                SettingType::Number => "a number",
            }
        )),
    }
}

fn check_range(s: &Setting, x: f64) -> Result<(), String> {
    if !x.is_finite() {
        return Err("must be finite".into());
    }
    if let Some(min) = s.min
        && x < min
    {
        return Err(format!("must be at least {min}"));
    }
    if let Some(max) = s.max
        && x > max
    {
        return Err(format!("must be at most {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "rtmp"
        version = "0.1.0"
        kind = "destination"
        api = "0.1.0"
        [capabilities]
        allowed-hosts = ["api.example.com"]
        [config.allow-private-hosts]
        type = "bool"
        default = false
        [config.region]
        type = "string"
        choices = ["eu", "us"]
    "#;

    #[test]
    fn parses_and_defaults_limits() {
        let m = Manifest::parse(GOOD, "t").unwrap();
        assert_eq!(m.kind, PluginKind::Destination);
        assert_eq!(m.limits.call_ms, DEFAULT_DESTINATION_CALL_MS);
        assert_eq!(m.capabilities.allowed_hosts, vec!["api.example.com"]);
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases = [
            (GOOD.replace("0.1.0\"\n        [cap", "0.2.0\"\n        [cap"), "api"),
            (GOOD.replace("kind = \"destination\"", "kind = \"layout\""), "allowed-hosts"),
            (format!("{GOOD}\n[limits]\ncall-ms = 99999"), "call-ms"),
            (GOOD.replace("name = \"rtmp\"", "name = \"Bad Name\""), "name"),
            (format!("{GOOD}\nsurprise = 1"), "surprise"),
        ];
        for (text, needle) in cases {
            let e = Manifest::parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
    }

    #[test]
    fn operator_settings_are_checked_against_the_schema() {
        let m = Manifest::parse(GOOD, "t").unwrap();
        let block = |json: serde_json::Value| -> PluginSettings { serde_json::from_value(json).unwrap() };
        let ok = m
            .resolve_settings("destinations", Some(&block(serde_json::json!({"enabled": true, "region": "eu"}))))
            .unwrap();
        assert!(ok.enabled);
        assert_eq!(ok.values["allow-private-hosts"], serde_json::json!(false));
        let e = m.resolve_settings("destinations", Some(&block(serde_json::json!({"regoin": "eu"})))).unwrap_err();
        assert!(e.to_string().contains("destinations.rtmp.regoin"), "{e}");
        let e = m.resolve_settings("destinations", Some(&block(serde_json::json!({"region": "mars"})))).unwrap_err();
        assert!(e.to_string().contains("one of eu, us"), "{e}");
        let e = m
            .resolve_settings("destinations", Some(&block(serde_json::json!({"allow-private-hosts": "yes"}))))
            .unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        assert!(
            !m.resolve_settings("destinations", Some(&block(serde_json::json!({"enabled": false})))).unwrap().enabled
        );
    }
}
