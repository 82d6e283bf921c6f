//! Hostile plugins are contained: an infinite loop, running out of memory, a trap, a stack overflow,
//! bad output (NaN, outside the canvas, unknown ids, wrong buffer sizes) and HTTP to a host not in
//! `allowed-hosts` are each stopped or rejected within their limit; the host keeps serving the last good
//! result, the error names the plugin, and the process and other plugins carry on. Also: hot reload.

mod plugin_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use backyard_core::plugin_host::{
    CallFailure, DestinationError, FailurePolicy, HostConfig, OverlayRequest, PluginError, PluginHost, Prop, Size,
};
use plugin_support::*;

/// Host over first-party plugins and fixtures; K large so single-failure tests don't disable.
fn both(max_failures: u32) -> PluginHost {
    PluginHost::start(HostConfig {
        dirs: vec![plugins_dir(), fixtures_dir()],
        failure: FailurePolicy { max_failures, window: Duration::from_secs(60) },
        ..HostConfig::default()
    })
    .unwrap()
}

fn failure(e: Option<&PluginError>) -> CallFailure {
    match e {
        Some(PluginError::Call { plugin, failure }) => {
            assert_eq!(plugin, "hostile-layout");
            failure.clone()
        }
        other => panic!("expected a call failure, got {other:?}"),
    }
}

#[test]
fn each_hostile_layout_is_contained_and_the_last_good_result_is_served() {
    let host = both(100);
    let mut bad = host.layout("hostile-layout").unwrap();
    let good_stage = stage("row", &["Ann", "Bob", "Cy"], 1280, 720);
    let good = bad.place(&good_stage).unwrap();
    assert_eq!(good.len(), 3);
    assert!(bad.last_failure().is_none());

    type Expect = fn(&CallFailure) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("trap", |f| matches!(f, CallFailure::Trap(_))),
        ("loop", |f| matches!(f, CallFailure::Timeout(20))),
        ("oom", |f| matches!(f, CallFailure::OutOfMemory(_))),
        ("stack", |f| matches!(f, CallFailure::Trap(_))),
        ("nan", |f| matches!(f, CallFailure::InvalidOutput(m) if m.contains("non-finite"))),
        ("outside", |f| matches!(f, CallFailure::InvalidOutput(m) if m.contains("outside"))),
        ("ghost", |f| matches!(f, CallFailure::InvalidOutput(m) if m.contains("not on stage"))),
        ("slow:60", |f| matches!(f, CallFailure::Timeout(20))),
        ("refuse", |f| matches!(f, CallFailure::Plugin(_))),
    ];
    for (mode, expected) in cases {
        // Same participant ids as the good stage, so the whole last good result applies.
        let s = stage("row", &[*mode, "Bob", "Cy"], 1280, 720);
        let started = Instant::now();
        let served = bad.place(&s).unwrap_or_else(|e| panic!("{mode}: no last good result served: {e}"));
        let took = started.elapsed();
        assert_eq!(served, good, "{mode}: last good result not served");
        let f = failure(bad.last_failure());
        assert!(expected(&f), "{mode}: unexpected failure {f:?}");
        let msg = bad.last_failure().unwrap().to_string();
        assert!(msg.contains("hostile-layout"), "{mode}: error does not name the plugin: {msg}");
        if *mode == "loop" || mode.starts_with("slow") {
            // Deadline 20 ms plus one 1 ms tick; generous margin for a loaded CI machine.
            assert!(took < Duration::from_millis(500), "{mode}: stopped only after {took:?}");
        }
        // The instance was re-created: the next good call works.
        assert_eq!(bad.place(&good_stage).unwrap(), good, "{mode}: not recovered");
        assert!(bad.last_failure().is_none());
    }

    // Slow but within the deadline is fine.
    let ok = bad.place(&stage("row", &["slow:3", "Bob", "Cy"], 1280, 720)).unwrap();
    assert!(bad.last_failure().is_none(), "{:?}", bad.last_failure());
    assert_eq!(ok.len(), 3);

    // Other plugins are untouched.
    let mut layouts = host.layout("layouts").unwrap();
    assert_eq!(layouts.place(&stage_n("grid", 4, 1280, 720)).unwrap().len(), 4);
}

#[test]
fn a_failure_without_a_last_good_result_is_an_error_naming_the_plugin() {
    let host = both(100);
    let mut bad = host.layout("hostile-layout").unwrap();
    let e = bad.place(&stage("row", &["trap"], 1280, 720)).unwrap_err();
    assert!(e.to_string().contains("plugin 'hostile-layout'") && e.to_string().contains("trapped"), "{e}");
}

#[test]
fn an_instance_that_keeps_failing_is_switched_off_alone_and_listed_as_failed() {
    let host = both(3);
    // Two broadcasts' programs, each with its own instance of the same plugin.
    let mut bad = host.layout("hostile-layout").unwrap();
    let mut other = host.layout("hostile-layout").unwrap();
    let good = bad.place(&stage("row", &["Ann"], 640, 360)).unwrap();
    for _ in 0..3 {
        assert_eq!(bad.place(&stage("row", &["trap"], 640, 360)).unwrap(), good);
    }
    let row = host.list().into_iter().find(|p| p.name == "hostile-layout").unwrap();
    assert_eq!(row.status, "failed");
    assert!(row.last_error.as_deref().unwrap_or("").contains("after 3 failures"), "{row:?}");
    // Switched off: even a good stage gets the last good result, and the failure says why.
    assert_eq!(bad.place(&stage("row", &["Ann"], 640, 360)).unwrap(), good);
    assert!(matches!(bad.last_failure(), Some(PluginError::Disabled { .. })), "{:?}", bad.last_failure());
    // The other broadcast's instance, and new ones, are not touched by what this one was fed.
    assert_eq!(other.place(&stage("row", &["Bo", "Cy"], 640, 360)).unwrap().len(), 2);
    let mut fresh = host.layout("hostile-layout").unwrap();
    assert_eq!(fresh.place(&stage("row", &["Ann"], 640, 360)).unwrap().len(), 1);
    // Once the failing instance is gone, the plugin is healthy again.
    drop(bad);
    let row = host.list().into_iter().find(|p| p.name == "hostile-layout").unwrap();
    assert_eq!(row.status, "ok", "{row:?}");
    // Other plugins still serve.
    assert_eq!(host.layout("layouts").unwrap().place(&stage_n("grid", 2, 640, 360)).unwrap().len(), 2);
}

fn overlay_req(overlay: &str) -> OverlayRequest {
    OverlayRequest {
        overlay: overlay.into(),
        canvas: Size { width: 320, height: 180 },
        time_ms: 0,
        props: vec![],
        images: vec![],
    }
}

#[test]
fn overlays_with_wrong_buffer_sizes_or_off_canvas_layers_are_rejected() {
    let host = both(100);
    let mut o = host.overlay("hostile-overlay").unwrap();
    let mut req = overlay_req("ok");
    let first = o.render(&req).unwrap();
    assert!(first.changed);
    let good = first.layer.cloned().expect("a layer");
    for mode in ["bad-size", "outside"] {
        req.props = vec![Prop { key: "mode".into(), value: mode.into() }];
        let out = o.render(&req).unwrap();
        assert_eq!(out.layer, Some(&good), "{mode}: last good layer not served");
        assert!(!out.changed);
        let e = o.last_failure().expect("failure recorded").to_string();
        assert!(e.contains("hostile-overlay") && e.contains("invalid output"), "{mode}: {e}");
    }
    // `unchanged` before any layer is a lie.
    let e = o.render(&overlay_req("lazy")).unwrap_err();
    assert!(e.to_string().contains("unchanged"), "{e}");
}

/// A one-shot HTTP server on loopback that answers `body` and reports whether anyone connected.
fn serve_once(body: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).to_string());
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (port, rx)
}

#[test]
fn http_only_reaches_allowed_hosts() {
    let host = both(100);
    // Allowed: `localhost` is in the fixture's allowed-hosts.
    let (port, seen) = serve_once("okkey");
    let ingest =
        host.validate_destination("hostile-destination", "", &format!("http://localhost:{port}/check")).unwrap();
    assert_eq!(ingest.primary, "rtmp://127.0.0.1/live/okkey");
    assert!(seen.recv_timeout(Duration::from_secs(5)).unwrap().starts_with("GET /check"));

    // Not allowed: the same server by IP is not in allowed-hosts, so no connection is made.
    let (port, seen) = serve_once("stolen");
    let e =
        host.validate_destination("hostile-destination", "", &format!("http://127.0.0.1:{port}/steal")).unwrap_err();
    match e {
        DestinationError::Field(f) => assert!(f.message.contains("not in allowed-hosts"), "{f:?}"),
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(seen.recv_timeout(Duration::from_millis(300)).is_err(), "the refused host was contacted");
}

#[test]
fn a_filter_round_trips_the_frame_through_one_read_and_one_write() {
    let host = both(100);
    let mut f = host.filter("invert-filter").unwrap();
    let (w, h) = (64u32, 36u32);
    let mut frame: Vec<u8> = (0..w * h * 4).map(|i| (i % 251) as u8).collect();
    let orig = frame.clone();
    f.apply(&mut frame, w, h, 0).unwrap();
    for (i, (a, b)) in frame.iter().zip(&orig).enumerate() {
        let want = if i % 4 == 3 { *b } else { 255 - *b };
        assert_eq!(*a, want, "byte {i}");
    }
    // A frame of the wrong size is refused before the plugin sees it.
    let mut short = vec![0u8; 10];
    assert!(f.apply(&mut short, w, h, 0).is_err());
}

#[test]
fn hot_reload_swaps_a_layout_between_two_calls() {
    let dir = std::env::temp_dir().join(format!("backyard-reload-{}", std::process::id()));
    let p = dir.join("swap");
    std::fs::create_dir_all(&p).unwrap();
    let manifest = "name = \"swap\"\nversion = \"0.1.0\"\nkind = \"layout\"\napi = \"0.1.0\"\n";
    std::fs::write(p.join("plugin.toml"), manifest).unwrap();
    std::fs::copy(fixtures_dir().join("hostile-layout/plugin.wasm"), p.join("plugin.wasm")).unwrap();
    let host = PluginHost::start(HostConfig {
        dirs: vec![dir.clone()],
        watch: Some(Duration::from_millis(50)),
        ..HostConfig::default()
    })
    .unwrap();
    let mut inst = host.layout("swap").unwrap();
    let changes = host.changes();
    let s = stage_n("grid", 4, 1280, 720);
    let before = inst.place(&s).unwrap();
    // The fixture puts everyone in one row.
    assert!(before.iter().all(|p| p.rect.y == before[0].rect.y), "{before:?}");

    // Replace the .wasm the way an installer does (write a temp file, rename over).
    let tmp = p.join(".new.wasm");
    std::fs::copy(plugins_dir().join("layouts/plugin.wasm"), &tmp).unwrap();
    std::fs::rename(&tmp, p.join("plugin.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.list()[0].reloads == 0 {
        assert!(Instant::now() < deadline, "the watcher never reloaded the plugin");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(host.changes() > changes, "a reload is a change: what the plugins offer is asked again");
    // The very next call on the same instance uses the new code: a 2x2 grid has two rows.
    let after = inst.place(&s).unwrap();
    assert!(inst.last_failure().is_none());
    let rows: std::collections::BTreeSet<i64> = after.iter().map(|p| p.rect.y.round() as i64).collect();
    assert_eq!(rows.len(), 2, "{after:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
