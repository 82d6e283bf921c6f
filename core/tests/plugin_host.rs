//! The plugin host loads the first-party plugins, checks operator settings against manifests, and
//! serves layouts whose output it validates.

mod plugin_support;

use std::collections::BTreeMap;

use backyard_core::plugin_host::{HostConfig, OperatorSettings, PluginError, PluginHost, PluginKind, PluginSettings};
use plugin_support::*;

fn settings(json: serde_json::Value) -> PluginSettings {
    serde_json::from_value(json).unwrap()
}

#[test]
fn lists_installed_plugins_with_kind_version_and_status() {
    let host = host(vec![plugins_dir()]);
    let list = host.list();
    let layouts = list.iter().find(|p| p.name == "layouts").expect("layouts listed");
    assert_eq!(layouts.kind, PluginKind::Layout);
    assert_eq!(layouts.version, "0.1.0");
    assert!(layouts.enabled);
    assert_eq!(layouts.status, "ok");
    assert!(layouts.capabilities.allowed_hosts.is_empty());
    let json = serde_json::to_value(&list).unwrap();
    assert!(json[0].get("lastError").is_some(), "camelCase JSON for GET /api/plugins: {json}");
}

#[test]
fn every_first_party_layout_places_every_stage_size_on_any_canvas() {
    let host = host(vec![plugins_dir()]);
    let mut inst = host.layout("layouts").unwrap();
    let ids: Vec<String> = inst.layouts().unwrap().into_iter().map(|l| l.id).collect();
    for want in
        ["grid", "spotlight", "sidebar", "solo", "pip", "screen", "stack", "one-over-two", "inset", "screen-above"]
    {
        assert!(ids.iter().any(|i| i == want), "layout {want} missing from {ids:?}");
    }
    for id in &ids {
        for (w, h) in [(1280, 720), (720, 1280), (1920, 1080), (1080, 1920)] {
            for n in 0..=12 {
                let stage = stage_n(id, n, w, h);
                let placed = inst.place(&stage).unwrap_or_else(|e| panic!("{id} {n} {w}x{h}: {e}"));
                assert!(inst.last_failure().is_none(), "{id} {n} {w}x{h}: {:?}", inst.last_failure());
                let expected = match id.as_str() {
                    "solo" => n.min(1),
                    _ => n,
                };
                assert_eq!(placed.len(), expected, "{id} with {n} on {w}x{h}");
            }
        }
    }
}

#[test]
fn spotlight_makes_the_active_speaker_largest() {
    let host = host(vec![plugins_dir()]);
    let mut inst = host.layout("layouts").unwrap();
    let mut stage = stage_n("spotlight", 5, 1280, 720);
    stage.active_speaker = Some("p3".into());
    let placed = inst.place(&stage).unwrap();
    let biggest =
        placed.iter().max_by(|a, b| (a.rect.width * a.rect.height).total_cmp(&(b.rect.width * b.rect.height))).unwrap();
    assert_eq!(biggest.participant_id, "p3");
}

#[test]
fn a_second_start_loads_compiled_plugins_from_the_cache_without_compiling() {
    let cache = tempdir("compile-cache");
    let start = || {
        PluginHost::start(HostConfig {
            dirs: vec![plugins_dir()],
            compile_cache: Some(cache.clone()),
            ..HostConfig::default()
        })
        .unwrap()
    };
    let first = start();
    let plugins = first.list().len() as u64;
    assert!(plugins >= 2, "the first-party plugins are installed");
    assert_eq!((first.compile_stats().compiled, first.compile_stats().cache_hits), (plugins, 0));
    drop(first);
    let second = start();
    assert_eq!((second.compile_stats().compiled, second.compile_stats().cache_hits), (0, plugins));
    // What came from the cache works.
    let placed = second.layout("layouts").unwrap().place(&stage_n("grid", 4, 1280, 720)).unwrap();
    assert_eq!(placed.len(), 4);
    drop(second);
    // A damaged cache file is compiled again, not trusted.
    for f in std::fs::read_dir(&cache).unwrap().flatten() {
        std::fs::write(f.path(), b"not a compiled component").unwrap();
    }
    let third = start();
    assert_eq!((third.compile_stats().compiled, third.compile_stats().cache_hits), (plugins, 0));
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn operator_config_reaches_the_plugin() {
    let mut plugins = BTreeMap::new();
    plugins.insert("layouts".to_string(), settings(serde_json::json!({"rounded": false, "gap": 0})));
    let host = PluginHost::start(HostConfig {
        dirs: vec![plugins_dir()],
        settings: OperatorSettings { plugins, destinations: BTreeMap::new() },
        ..HostConfig::default()
    })
    .unwrap();
    let placed = host.layout("layouts").unwrap().place(&stage_n("grid", 4, 1280, 720)).unwrap();
    assert!(placed.iter().all(|p| p.corner_radius == 0.0), "rounded = false ignored");
    // gap 0: the two tiles of the first row touch.
    let (a, b) = (&placed[0].rect, &placed[1].rect);
    assert!((a.x + a.width - b.x).abs() < 0.01, "gap = 0 ignored: {a:?} {b:?}");
}

#[test]
fn bad_operator_settings_fail_start_up_naming_plugin_and_field() {
    let start = |plugins: BTreeMap<String, PluginSettings>, destinations: BTreeMap<String, PluginSettings>| {
        PluginHost::start(HostConfig {
            dirs: vec![plugins_dir()],
            settings: OperatorSettings { plugins, destinations },
            ..HostConfig::default()
        })
        .unwrap_err()
    };
    let e = start(BTreeMap::from([("layouts".into(), settings(serde_json::json!({"gap": "wide"})))]), BTreeMap::new());
    assert!(
        matches!(&e, PluginError::Settings { plugin, field, .. } if plugin == "layouts" && field == "plugins.layouts.gap"),
        "{e}"
    );
    assert!(e.to_string().contains("integer"), "{e}");
    let e =
        start(BTreeMap::from([("layouts".into(), settings(serde_json::json!({"colour": "red"})))]), BTreeMap::new());
    assert!(e.to_string().contains("plugins.layouts.colour") && e.to_string().contains("unknown"), "{e}");
    let e =
        start(BTreeMap::new(), BTreeMap::from([("myspace".into(), settings(serde_json::json!({"enabled": true})))]));
    assert!(e.to_string().contains("destinations.myspace"), "{e}");
}

#[test]
fn a_plugin_disabled_by_the_operator_is_listed_but_not_served() {
    let host = PluginHost::start(HostConfig {
        dirs: vec![plugins_dir()],
        settings: OperatorSettings {
            plugins: BTreeMap::from([("layouts".into(), settings(serde_json::json!({"enabled": false})))]),
            destinations: BTreeMap::new(),
        },
        ..HostConfig::default()
    })
    .unwrap();
    let row = host.list().into_iter().find(|p| p.name == "layouts").unwrap();
    assert!(!row.enabled);
    assert_eq!(row.status, "disabled");
    assert!(matches!(host.layout("layouts"), Err(PluginError::NotEnabled { .. })));
}

#[test]
fn broken_plugin_folders_are_reported_by_name() {
    let dir = tempdir("broken");
    let p = dir.join("broken");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("plugin.toml"),
        "name = \"broken\"\nversion = \"0.1.0\"\nkind = \"layout\"\napi = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(p.join("plugin.wasm"), b"\0asm not really").unwrap();
    let e = PluginHost::start(HostConfig { dirs: vec![dir.clone()], ..HostConfig::default() }).unwrap_err();
    assert!(e.to_string().contains("plugin 'broken'") && e.to_string().contains("compile"), "{e}");
    // A layout component whose manifest claims another kind.
    std::fs::copy(plugins_dir().join("layouts/plugin.wasm"), p.join("plugin.wasm")).unwrap();
    std::fs::write(
        p.join("plugin.toml"),
        "name = \"broken\"\nversion = \"0.1.0\"\nkind = \"overlay\"\napi = \"0.1.0\"\n",
    )
    .unwrap();
    let e = PluginHost::start(HostConfig { dirs: vec![dir.clone()], ..HostConfig::default() }).unwrap_err();
    assert!(e.to_string().contains("kind 'overlay'"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("backyard-{tag}-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
