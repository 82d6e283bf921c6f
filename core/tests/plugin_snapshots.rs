//! Snapshot tests: every first-party layout (1, 2, 4, 6, 9 participants; 16:9 and 9:16) and overlay is
//! rendered to PNG and compared, with a tolerance, against the committed images in
//! `core/tests/snapshots/plugins/` (open them to review a change). A missing snapshot is written on a
//! developer machine and fails under `CI=true`; `UPDATE_SNAPSHOTS=1` rewrites them all.

mod plugin_support;

use backyard_core::plugin_host::render::{Rgba, draw_overlay, draw_placements, sample_props, sample_stage};
use backyard_core::plugin_host::{Image, NamedImage, OverlayRequest, Prop, Size};
use plugin_support::*;

fn check(name: &str, img: &Rgba) -> Option<String> {
    snapshot::check(&root().join("core/tests/snapshots/plugins"), name, img)
}

#[test]
fn layouts_match_their_snapshots() {
    let host = host(vec![plugins_dir()]);
    let mut inst = host.layout("layouts").unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    let layouts =
        ["grid", "spotlight", "sidebar", "solo", "pip", "screen", "stack", "one-over-two", "inset", "screen-above"];
    for layout in layouts {
        for n in [1, 2, 4, 6, 9] {
            for (w, h) in [(640, 360), (360, 640)] {
                let screen = layout.starts_with("screen");
                let stage = sample_stage(layout, n, Size { width: w, height: h }, screen);
                let placements = inst.place(&stage).unwrap();
                assert!(inst.last_failure().is_none(), "{layout} {n}: {:?}", inst.last_failure());
                let img = draw_placements(&stage, &placements);
                failures.extend(check(&format!("layout-{layout}-{n}-{w}x{h}"), &img));
                count += 1;
            }
        }
    }
    assert_eq!(count, 100);
    assert!(failures.is_empty(), "{} snapshot(s) differ:\n{}", failures.len(), failures.join("\n"));
}

/// A round, two-colour test logo, as a decoded upload would arrive.
fn test_logo() -> Image {
    let (w, h) = (120u32, 80u32);
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - 60.0, (y as f32 - 40.0) * 1.5);
            let inside = dx * dx + dy * dy < 55.0 * 55.0;
            let c = if !inside {
                [0, 0, 0, 0]
            } else if x < 60 {
                [250, 204, 21, 255]
            } else {
                [22, 163, 74, 255]
            };
            rgba.extend_from_slice(&c);
        }
    }
    Image { width: w, height: h, rgba }
}

#[test]
fn overlays_match_their_snapshots() {
    let host = host(vec![plugins_dir()]);
    let mut inst = host.overlay("overlays").unwrap();
    let ids: Vec<String> = inst.overlays().unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(ids, ["banner", "lower-third", "logo", "chat", "ticker", "slate"]);
    let mut failures = Vec::new();
    for (w, h) in [(640, 360), (360, 640)] {
        for id in &ids {
            let req = OverlayRequest {
                overlay: id.clone(),
                canvas: Size { width: w, height: h },
                time_ms: 1500,
                props: sample_props(),
                images: vec![NamedImage { key: "logo".into(), image: test_logo() }],
            };
            let layer = inst.render(&req).unwrap().layer.cloned();
            assert!(inst.last_failure().is_none(), "{id}: {:?}", inst.last_failure());
            assert!(layer.is_some(), "{id} drew nothing");
            let img = draw_overlay(req.canvas, layer.as_ref());
            failures.extend(check(&format!("overlay-{id}-{w}x{h}"), &img));
        }
    }
    // The brand's font: the same overlays set in DejaVu Serif and DejaVu Sans Mono.
    for font in ["serif", "mono"] {
        for id in ["lower-third", "banner"] {
            let mut props = sample_props();
            props.push(Prop { key: "font".into(), value: font.into() });
            let req = OverlayRequest {
                overlay: id.into(),
                canvas: Size { width: 640, height: 360 },
                time_ms: 1500,
                props,
                images: vec![],
            };
            let layer = inst.render(&req).unwrap().layer.cloned();
            assert!(layer.is_some(), "{id} in {font} drew nothing");
            failures.extend(check(&format!("overlay-{id}-640x360-{font}"), &draw_overlay(req.canvas, layer.as_ref())));
        }
    }
    assert!(failures.is_empty(), "{} snapshot(s) differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn overlays_signal_change_only_when_inputs_change() {
    let host = host(vec![plugins_dir()]);
    let mut inst = host.overlay("overlays").unwrap();
    let mut req = OverlayRequest {
        overlay: "lower-third".into(),
        canvas: Size { width: 1280, height: 720 },
        time_ms: 0,
        props: vec![Prop { key: "name".into(), value: "Ada".into() }],
        images: vec![],
    };
    assert!(inst.render(&req).unwrap().changed);
    req.time_ms = 5000;
    let again = inst.render(&req).unwrap();
    assert!(!again.changed, "a static overlay re-rendered because time passed");
    assert!(again.layer.is_some(), "the cached layer is still served");
    req.props[0].value = "Grace".into();
    assert!(inst.render(&req).unwrap().changed);
    // With no text the overlay hides itself.
    req.props.clear();
    let hidden = inst.render(&req).unwrap();
    assert!(hidden.changed && hidden.layer.is_none());
    // The ticker moves with time.
    let mut t = OverlayRequest {
        overlay: "ticker".into(),
        props: vec![Prop { key: "text".into(), value: "News".into() }],
        ..req
    };
    let first = inst.render(&t).unwrap().layer.cloned().unwrap();
    t.time_ms += 500;
    let moved = inst.render(&t).unwrap();
    assert!(moved.changed);
    assert_ne!(moved.layer.unwrap().image.rgba, first.image.rgba);
}

#[test]
fn over_a_picture_the_slate_s_words_sit_on_a_dark_panel() {
    let host = host(vec![plugins_dir()]);
    let mut inst = host.overlay("overlays").unwrap();
    let mut req = OverlayRequest {
        overlay: "slate".into(),
        canvas: Size { width: 640, height: 360 },
        time_ms: 0,
        props: vec![Prop { key: "title".into(), value: "Be right back".into() }],
        images: vec![],
    };
    let bare = inst.render(&req).unwrap().layer.cloned().expect("the slate drew");
    req.props.push(Prop { key: "panel".into(), value: "true".into() });
    let panel = inst.render(&req).unwrap().layer.cloned().expect("the slate drew");
    // The same words, with room around them, centred as before; the panel's edge dark and nearly opaque.
    assert!(panel.image.width > bare.image.width && panel.image.height > bare.image.height);
    assert!((panel.x * 2 + panel.image.width as i32 - 640).abs() <= 1, "centred");
    let edge = &panel.image.rgba[(panel.image.height as usize / 2 * panel.image.width as usize + 2) * 4..][..4];
    assert!(edge[..3].iter().all(|&v| v < 30) && edge[3] > 120, "{edge:?}");
}
