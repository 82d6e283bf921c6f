//! Fuzz target for plugin output validation: whatever a layout or overlay plugin returns, the host's checks
//! either refuse it or let through only what the compositor takes and draws. Random stages and placements,
//! random overlay requests and layers (sizes, positions, byte counts, non-finite numbers) are built from the
//! fuzz input; anything validation accepts must convert to compositor placements and layers that the compositor
//! accepts and composes without panicking. Runs like the other fuzz targets (`cargo xtask fuzz`).

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::Bytes;

use super::layout::{self, Fit, Participant, Placement, Rect as PluginRect, Size, Stage};
use super::overlay::{self, Image, Layer, OverlayRequest};
use crate::compositor::{Compositor, CompositorConfig, OverlayLayer, Rect, StageMember};
use crate::director::program_placements;

/// The compositor is only built for canvases up to this side (drawing a huge canvas per case would starve the
/// run); validation is exercised at every size.
const COMPOSE_MAX_SIDE: u32 = 640;

fn canvas(b: &mut Bytes) -> Size {
    let side = |b: &mut Bytes| match b.u8() % 4 {
        0 => b.u32() % 8,
        1 => 2 * (1 + b.u32() % 320),
        _ => 2 * (1 + b.u32() % 2048),
    };
    Size { width: side(b), height: side(b) }
}

fn compositor(size: Size, ids: &[String]) -> Option<Compositor> {
    let even = size.width.is_multiple_of(2) && size.height.is_multiple_of(2);
    if !even || size.width < 2 || size.height < 2 || size.width.max(size.height) > COMPOSE_MAX_SIDE {
        return None;
    }
    let mut c = Compositor::new(CompositorConfig { width: size.width, height: size.height, ..Default::default() });
    c.set_stage(&ids.iter().map(|id| StageMember { id: id.clone(), name: id.clone() }).collect::<Vec<_>>());
    Some(c)
}

fn layout_case(b: &mut Bytes) -> String {
    let size = canvas(b);
    let people = (b.u8() % 8) as usize;
    let ids: Vec<String> = (0..people).map(|i| format!("p{i}")).collect();
    let stage = Stage {
        layout: "grid".into(),
        canvas: size,
        participants: ids
            .iter()
            .map(|id| Participant {
                id: id.clone(),
                name: id.clone(),
                speaking: false,
                screen_share: false,
                video_enabled: true,
            })
            .collect(),
        active_speaker: None,
    };
    let count = (b.u8() % 10) as usize;
    let placements: Vec<Placement> = (0..count)
        .map(|_| {
            let pick = b.u8() as usize;
            Placement {
                participant_id: if pick % 16 == 15 || ids.is_empty() {
                    format!("x{pick}")
                } else {
                    ids[pick % ids.len()].clone()
                },
                rect: PluginRect { x: b.f32(), y: b.f32(), width: b.f32(), height: b.f32() },
                z: (b.u8() as i32) - 128,
                fit: if b.u8().is_multiple_of(2) { Fit::Cover } else { Fit::Contain },
                corner_radius: b.f32(),
                show_name: b.u8().is_multiple_of(2),
            }
        })
        .collect();
    match layout::validate(&stage, &placements) {
        Err(_) => "layout refused".into(),
        Ok(()) => {
            if size.width < 2 || size.height < 2 {
                return "layout accepted, canvas too small to draw".into();
            }
            let placed = program_placements(placements, size.width, size.height);
            for p in &placed {
                let r = p.rect;
                assert!(r.x >= 0 && r.y >= 0, "{p:?} starts outside the canvas");
                assert!(
                    r.x as u32 + r.width <= size.width && r.y as u32 + r.height <= size.height,
                    "{p:?} ends outside {size:?}"
                );
            }
            if let Some(mut c) = compositor(size, &ids) {
                c.set_placements(placed).expect("the compositor takes what layout validation accepted");
                c.compose(std::time::Duration::from_millis(40));
            }
            format!("layout accepted ({count})")
        }
    }
}

fn overlay_case(b: &mut Bytes) -> String {
    let size = canvas(b);
    let request = OverlayRequest { overlay: "banner".into(), canvas: size, time_ms: 0, props: vec![], images: vec![] };
    let (w, h) = (b.u32() % 1200, b.u32() % 1200);
    let len = match b.u8() % 8 {
        0 => b.u32() as usize % 4096,
        _ => (w * h * 4) as usize,
    };
    let x = if b.u8().is_multiple_of(4) { b.u32() as i32 } else { (b.u32() % 1400) as i32 - 100 };
    let y = if b.u8().is_multiple_of(4) { b.u32() as i32 } else { (b.u32() % 1400) as i32 - 100 };
    let fill = b.u8();
    let layer = Layer { x, y, image: Image { width: w, height: h, rgba: vec![fill; len.min(8 << 20)] } };
    match overlay::validate(&request, &layer) {
        Err(_) => "overlay refused".into(),
        Ok(()) => {
            if let Some(mut c) = compositor(size, &[]) {
                let l = OverlayLayer { id: "o".into(), rect: Rect::new(x, y, w, h), rgba: layer.image.rgba, z: 0 };
                c.put_overlay(&l).expect("the compositor takes what overlay validation accepted");
                c.compose(std::time::Duration::from_millis(40));
            }
            "overlay accepted".into()
        }
    }
}

#[test]
fn plugin_output_that_validation_accepts_is_drawn_and_nothing_panics() {
    fuzz_support::run("plugin-output", &[], |input| {
        let mut b = Bytes::new(input);
        let mut outcome = Vec::new();
        while !b.is_empty() && outcome.len() < 4 {
            outcome.push(if b.u8().is_multiple_of(2) { layout_case(&mut b) } else { overlay_case(&mut b) });
        }
        outcome.join(", ")
    });
}
