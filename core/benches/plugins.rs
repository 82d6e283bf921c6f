//! `cargo xtask bench plugins`: the plugin host's per-call costs against their goals. Prints a
//! table and writes `target/bench/plugins.json`. Needs `cargo xtask plugins` first (xtask does it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backyard_core::plugin_host::render::sample_stage;
use backyard_core::plugin_host::{HostConfig, OverlayRequest, PluginHost, PluginKind, Prop, Size};

struct Row {
    name: &'static str,
    unit: &'static str,
    median: f64,
    p99: f64,
    goal: f64,
    iterations: usize,
}

/// Time `f` `n` times (after `n / 10 + 1` warm-up runs); returns per-call durations sorted.
fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 + 1 {
        f();
    }
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn row(name: &'static str, unit: &'static str, goal: f64, samples: &[Duration]) -> Row {
    let scale = match unit {
        "µs" => 1e6,
        "ms" => 1e3,
        _ => 1.0,
    };
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * scale;
    Row { name, unit, median: at(0.5), p99: at(0.99), goal, iterations: samples.len() }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let plugins = root.join("target/plugins");
    let fixtures = root.join("target/plugin-fixtures");
    let host = PluginHost::start(HostConfig { dirs: vec![plugins.clone(), fixtures.clone()], ..HostConfig::default() })
        .expect("plugins installed: run `cargo xtask plugins`");
    let mut rows = Vec::new();

    let mut layout = host.layout("layouts").unwrap();
    let stage = sample_stage("grid", 9, Size { width: 1280, height: 720 }, false);
    rows.push(row(
        "layout call, 9 participants",
        "µs",
        5.0,
        &time(20_000, || {
            std::hint::black_box(layout.place(&stage).unwrap());
        }),
    ));

    let mut overlay = host.overlay("overlays").unwrap();
    // Calls that served the cached layer because the render failed (e.g. ran past its deadline on a
    // loaded machine): reported, not fatal.
    let mut missed = 0u32;
    let mut req = OverlayRequest {
        overlay: "ticker".into(),
        canvas: Size { width: 1280, height: 720 },
        time_ms: 0,
        props: vec![Prop { key: "text".into(), value: "Breaking: Backyard renders overlays in WebAssembly".into() }],
        images: vec![],
    };
    rows.push(row(
        "overlay render 1280x720 (ticker, every frame)",
        "ms",
        2.0,
        &time(300, || {
            req.time_ms += 33;
            if !overlay.render(&req).unwrap().changed {
                missed += 1;
            }
        }),
    ));
    req.overlay = "lower-third".into();
    req.props = vec![
        Prop { key: "name".into(), value: "Alex Morgan".into() },
        Prop { key: "title".into(), value: "Host".into() },
    ];
    let mut n = 0u64;
    rows.push(row(
        "overlay render 1280x720 (lower third, new text)",
        "ms",
        2.0,
        &time(300, || {
            n += 1;
            req.props[1].value = format!("Host #{n}");
            if !overlay.render(&req).unwrap().changed {
                missed += 1;
            }
        }),
    ));

    // The worst input a scene may carry (its text limits: banner 200, ticker 500, chat comment 2000
    // characters): one render must stay well inside the overlay plugin's 33 ms deadline.
    let long = |n: usize| "Wide words and more wide words ".repeat(n / 31 + 1).chars().take(n).collect::<String>();
    for (name, overlay_id, props) in [
        ("overlay worst accepted banner (200 chars)", "banner", vec![("text", long(200))]),
        ("overlay worst accepted ticker (500 chars, moving)", "ticker", vec![("text", long(500))]),
        ("overlay worst accepted chat (2000 chars)", "chat", vec![("author", long(80)), ("message", long(2000))]),
    ] {
        req.overlay = overlay_id.into();
        req.props = props.into_iter().map(|(k, v)| Prop { key: k.into(), value: v }).collect();
        let mut n = 0u64;
        rows.push(row(
            name,
            "ms",
            10.0,
            &time(100, || {
                // New inputs every call, so each is a full render.
                n += 1;
                req.time_ms = n * 33;
                req.props[0].value.replace_range(0..1, if n.is_multiple_of(2) { "W" } else { "V" });
                if !overlay.render(&req).unwrap().changed {
                    missed += 1;
                }
            }),
        ));
    }

    if missed > 0 {
        println!("note: {missed} overlay renders failed and served the cached layer: {:?}", overlay.last_failure());
    }

    let mut filter = host.filter("invert-filter").unwrap();
    let mut frame = vec![128u8; 1280 * 720 * 4];
    rows.push(row(
        "filter round trip 1280x720",
        "ms",
        1.5,
        &time(200, || {
            filter.apply(&mut frame, 1280, 720, 0).unwrap();
        }),
    ));

    rows.push(row(
        "instantiate (from cached InstancePre)",
        "µs",
        20.0,
        &time(2_000, || {
            std::hint::black_box(host.layout("layouts").unwrap());
        }),
    ));

    let wasm = std::fs::read(plugins.join("layouts/plugin.wasm")).unwrap();
    rows.push(row(
        "compile layouts plugin",
        "ms",
        100.0,
        &time(10, || {
            host.compile_only(PluginKind::Layout, &wasm).unwrap();
        }),
    ));

    // Host start with every first-party plugin: compiled (an empty compile cache each time), then loaded from a
    // filled cache, as a restart or a node joining a cluster does. Goal: the cached start ≥ 10× faster.
    let cache_root = std::env::temp_dir().join(format!("backyard-bench-compile-cache-{}", std::process::id()));
    let start_with = |cache: PathBuf| {
        let host = PluginHost::start(HostConfig {
            dirs: vec![plugins.clone()],
            compile_cache: Some(cache),
            ..HostConfig::default()
        })
        .unwrap();
        host.compile_stats()
    };
    let mut n = 0;
    let cold = time(3, || {
        n += 1;
        let stats = start_with(cache_root.join(format!("cold-{n}")));
        assert_eq!(stats.cache_hits, 0);
    });
    let warm_dir = cache_root.join("warm");
    start_with(warm_dir.clone());
    let warm = time(10, || {
        let stats = start_with(warm_dir.clone());
        assert_eq!(stats.compiled, 0, "a start from a filled cache compiles nothing");
    });
    let _ = std::fs::remove_dir_all(&cache_root);
    let cold_row = row("host start, plugins compiled (empty cache)", "ms", 2000.0, &cold);
    let warm_goal = cold_row.median / 10.0;
    rows.push(cold_row);
    rows.push(row("host start, plugins from the compile cache", "ms", warm_goal, &warm));

    println!("\n{:<48} {:>10} {:>10} {:>8} {:>6} {:>7}", "plugins", "median", "p99", "goal", "", "n");
    for r in &rows {
        let ok = if r.median <= r.goal { "ok" } else { "SLOW" };
        println!(
            "{:<48} {:>7.2} {:<2} {:>7.2} {:<2} {:>5.1} {:<2} {:>4} {:>7}",
            r.name, r.median, r.unit, r.p99, r.unit, r.goal, r.unit, ok, r.iterations
        );
    }
    let json = serde_json::json!({
        "bench": "plugins",
        "rows": rows.iter().map(|r| serde_json::json!({
            "name": r.name, "unit": r.unit, "median": r.median, "p99": r.p99, "goal": r.goal,
            "meetsGoal": r.median <= r.goal, "iterations": r.iterations,
        })).collect::<Vec<_>>(),
    });
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugins.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {}", dir.join("plugins.json").display());
}
