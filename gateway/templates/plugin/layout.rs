//! {{name}}: a Backyard layout plugin. It places the people on stage in a grid with rounded corners, the
//! active speaker first.
//!
//! Build: `cargo build --release --target wasm32-wasip2`. Test: `cargo test`.

use backyard_plugin_api::layout::*;

struct Plugin;

impl Guest for Plugin {
    /// The layouts this plugin offers. Each `id` is what a scene names and must not be offered by another
    /// installed plugin; the studio shows `name` in its layout picker.
    fn layouts() -> Vec<LayoutInfo> {
        vec![info("{{name}}", "{{title}}", "Everyone in a grid with rounded corners, the speaker first")]
    }

    /// Called whenever the stage changes (people, speaker, screen share, canvas); return one placement
    /// per participant to show. Who is left out is not shown.
    fn place(stage: Stage) -> Result<Vec<Placement>, String> {
        Ok(arrange(&stage))
    }
}

/// The layout itself: a pure function of the stage, so it is tested without a host.
pub fn arrange(stage: &Stage) -> Vec<Placement> {
    let area = inset(canvas_rect(stage.canvas), 16.0);
    let mut order: Vec<&Participant> = stage.participants.iter().collect();
    if let Some(speaker) = focus(stage) {
        order.sort_by_key(|p| p.id != speaker.id);
    }
    let cells = grid_cells(area, order.len(), 16.0 / 9.0, 8.0);
    order
        .into_iter()
        .zip(cells)
        .map(|(p, r)| {
            // A screen share is letterboxed (its text must stay readable); cameras fill their tile.
            let fit = if p.screen_share { Fit::Contain } else { Fit::Cover };
            tile(&p.id, r).radius(12.0).fit(fit).build()
        })
        .collect()
}

backyard_plugin_api::export_layout!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(n: usize, speaker: Option<usize>) -> Stage {
        let participants: Vec<Participant> = (0..n)
            .map(|i| Participant {
                id: format!("p{i}"),
                name: format!("Guest {i}"),
                speaking: speaker == Some(i),
                screen_share: false,
                video_enabled: true,
            })
            .collect();
        let active_speaker = speaker.map(|i| format!("p{i}"));
        Stage { layout: "{{name}}".into(), canvas: Size { width: 1280, height: 720 }, participants, active_speaker }
    }

    #[test]
    fn everyone_is_placed_inside_the_canvas_without_overlap() {
        for n in 1..=9 {
            let placed = arrange(&stage(n, None));
            assert_eq!(placed.len(), n);
            for (i, a) in placed.iter().enumerate() {
                let r = &a.rect;
                assert!(r.x >= 0.0 && r.y >= 0.0 && r.x + r.width <= 1280.0 && r.y + r.height <= 720.0);
                for b in &placed[i + 1..] {
                    let s = &b.rect;
                    let apart = r.x + r.width <= s.x || s.x + s.width <= r.x || r.y + r.height <= s.y || s.y + s.height <= r.y;
                    assert!(apart, "{n} people: tiles overlap");
                }
            }
        }
    }

    #[test]
    fn the_active_speaker_takes_the_first_tile() {
        let placed = arrange(&stage(4, Some(2)));
        assert_eq!(placed[0].participant_id, "p2");
    }
}
