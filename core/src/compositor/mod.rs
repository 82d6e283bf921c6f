//! The program's compositor core, sans-IO: decoded frames and audio in, one composed frame and mixed
//! audio out, all on one program clock. No threads, no sockets, no decoders here: the shell around it
//! decodes (ffmpeg-next, a thread per track), feeds this core, and hands the output to [`crate::egress`].
//!
//! ```text
//!  push_video(src, I420, source_time, arrival) ─┐            ┌─► compose(now) ─► VideoFrame (canvas)
//!  push_audio(src, f32 stereo, source_time, arrival) ─► per-source clock mapping
//!  set_placements(tiles from the layout plugin) ┘            └─► mix(until) ─► f32 stereo 48 kHz
//! ```
//!
//! Timing: each source's timeline is mapped onto the program clock ([`clock::SourceClock`]) and both its
//! audio and its video are presented at `mapped time + playout_delay`, so lip sync holds and a source clock
//! running fast or slow is followed instead of accumulating drift.
//!
//! Architecture Invariant: this module never blocks, sleeps, reads a clock or spawns; time is an argument.

pub mod blit;
pub mod clip;
pub mod clock;
pub mod decode;
mod feed;
mod label;
pub mod mixer;
pub mod overlay;
pub mod placement;
pub mod preview;
pub mod program;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::media::{SAMPLE_RATE, VideoFrame};
pub use decode::{AudioDecoder, DecodeError, VideoCodec, VideoDecoder};
pub use feed::{ProgramFeed, encoded_media};
pub use overlay::{OverlayError, OverlayLayer};
pub use placement::{Fit, Placement, PlacementError, Rect};
pub use preview::{PreviewPacket, PreviewSink};
pub use program::{EncodedMedia, Program, ProgramStats};

/// Canvas and timing of a program.
#[derive(Clone, Debug)]
pub struct CompositorConfig {
    /// Canvas width (even).
    pub width: u32,
    /// Canvas height (even).
    pub height: u32,
    /// Background colour (Y, U, V).
    pub background: [u8; 3],
    /// Delay between a source's media time (mapped) and its presentation: absorbs network jitter.
    pub playout_delay: Duration,
    /// A source that sent no video for this long shows its name card instead of its last frame.
    pub stall_after: Duration,
    /// Output frame duration (the program tick), used to centre video presentation on the tick.
    pub frame_duration: Duration,
    /// Draw each participant's name on their tile (and under the avatar of a name card).
    pub name_labels: bool,
}

impl Default for CompositorConfig {
    fn default() -> Self {
        CompositorConfig {
            width: 1280,
            height: 720,
            background: [16, 128, 128],
            playout_delay: Duration::from_millis(100),
            stall_after: Duration::from_millis(1500),
            frame_duration: Duration::from_micros(33_333),
            name_labels: true,
        }
    }
}

/// Someone (or a screen share) on stage.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageMember {
    /// Source id: participant id, or `<participantId>:screen`.
    pub id: String,
    /// Display name (for the name card).
    pub name: String,
}

/// What a tile shows right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileView {
    /// Fresh video.
    Video,
    /// The last frame, held while video is briefly missing.
    LastFrame,
    /// The name card: no video for longer than `stall_after` (or never any).
    NameCard,
}

#[derive(Default)]
struct Source {
    name: String,
    clock: clock::SourceClock,
    /// Frames waiting for their presentation time: (source time, frame).
    pending: VecDeque<(Duration, VideoFrame)>,
    current: Option<VideoFrame>,
    last_video_arrival: Option<Duration>,
    audio: mixer::AudioTrack,
    gain: f32,
    muted: bool,
}

impl Source {
    /// What this source's tile shows at program time `now`.
    fn view(&self, now: Duration, stall_after: Duration) -> TileView {
        if self.current.is_none() {
            return TileView::NameCard;
        }
        match self.last_video_arrival.map(|t| now.saturating_sub(t)) {
            Some(age) if age < HELD_AFTER => TileView::Video,
            Some(age) if age < stall_after => TileView::LastFrame,
            _ => TileView::NameCard,
        }
    }
}

/// Most canvases a program composes (the main one included).
pub const MAX_CANVASES: usize = 3;

/// A canvas that cannot be made or is not there.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanvasError {
    /// Too many canvases.
    #[error("{0} canvases, at most {MAX_CANVASES} with the main one")]
    TooMany(usize),
    /// A canvas size is odd or too small or too large.
    #[error("a canvas of {width}x{height}: each side must be even, from 16 to 4096 pixels")]
    Size {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// No canvas with this index.
    #[error("no canvas {canvas} (the program has {count})")]
    Unknown {
        /// The index asked for.
        canvas: usize,
        /// Canvases there are.
        count: usize,
    },
}

/// Canvas `canvas` of `canvases` (0: the main one).
fn canvas_in(canvases: &mut [Canvas], canvas: usize) -> Result<&mut Canvas, CanvasError> {
    let count = canvases.len();
    canvases.get_mut(canvas).ok_or(CanvasError::Unknown { canvas, count })
}

fn check_canvases(others: &[(u32, u32)]) -> Result<(), CanvasError> {
    if others.len() + 1 > MAX_CANVASES {
        return Err(CanvasError::TooMany(others.len() + 1));
    }
    let fits = |n: u32| n.is_multiple_of(2) && (16..=4096).contains(&n);
    match others.iter().find(|(w, h)| !fits(*w) || !fits(*h)) {
        Some(&(width, height)) => Err(CanvasError::Size { width, height }),
        None => Ok(()),
    }
}

/// Draws one canvas's background, tiles (scaled frames or name cards) and name labels.
fn draw_tiles(canvas: &mut Canvas, sources: &HashMap<String, Source>, config: &CompositorConfig, now: Duration) {
    let (width, height) = canvas.size();
    match &canvas.backdrop {
        Some(picture) => canvas.frame.copy_from(picture),
        None => blit::fill(&mut canvas.frame, Rect::new(0, 0, width, height), config.background),
    }
    for p in &canvas.placements {
        let Some(s) = sources.get(&p.source) else {
            continue;
        };
        let card = match (s.view(now, config.stall_after), s.current.as_ref()) {
            (TileView::Video | TileView::LastFrame, Some(frame)) => {
                canvas.scaler.draw(&mut canvas.frame, frame, p.rect, p.fit, [16, 128, 128]);
                false
            }
            _ => {
                blit::draw_name_card(&mut canvas.frame, p.rect, &s.name);
                true
            }
        };
        if config.name_labels && !s.name.is_empty() {
            if canvas.labels.len() > 256 {
                canvas.labels.clear();
            }
            let label = canvas.labels.entry((s.name.clone(), p.rect, card)).or_insert_with(|| {
                if card { label::card_name(&s.name, p.rect) } else { label::tile_label(&s.name, p.rect) }
            });
            if let Some(label) = label {
                label.blend(&mut canvas.frame);
            }
        }
    }
}

/// Video older than this counts as held (the last frame stays on screen until `stall_after`).
const HELD_AFTER: Duration = Duration::from_millis(500);

/// Frames kept per source while waiting for presentation (a burst beyond this drops the oldest).
const MAX_PENDING_FRAMES: usize = 30;

/// One picture the program composes from the shared sources: its own size, tiles, overlay layers and name labels.
/// The first canvas is the program's main one (the size in [`CompositorConfig`]); others (a vertical 9:16 beside a
/// 16:9, say) are added with [`Compositor::set_canvases`].
struct Canvas {
    placements: Vec<Placement>,
    /// Overlay layers, converted once, in drawing order.
    overlays: Vec<overlay::PreparedOverlay>,
    /// Rendered name labels by (name, tile, is name card); `None` where a tile is too small for one.
    labels: HashMap<(String, Rect, bool), Option<overlay::PreparedOverlay>>,
    frame: VideoFrame,
    /// The picture behind the tiles (a brand's background image), converted once; the background colour without.
    backdrop: Option<VideoFrame>,
    /// The tile scaler's buffers, kept from tick to tick.
    scaler: blit::Scaler,
}

impl Canvas {
    fn new(width: u32, height: u32, background: [u8; 3]) -> Canvas {
        Canvas {
            placements: Vec::new(),
            overlays: Vec::new(),
            labels: HashMap::new(),
            frame: VideoFrame::filled(width, height, background),
            backdrop: None,
            scaler: blit::Scaler::default(),
        }
    }

    fn size(&self) -> (u32, u32) {
        (self.frame.width(), self.frame.height())
    }
}

/// The sans-IO compositor. See the module docs.
pub struct Compositor {
    config: CompositorConfig,
    sources: HashMap<String, Source>,
    /// The main canvas first, then the others.
    canvases: Vec<Canvas>,
    /// Program sample index up to which audio was mixed.
    mixed_until: i64,
}

fn samples_at(t: Duration) -> i64 {
    (t.as_micros() as i128 * SAMPLE_RATE as i128 / 1_000_000) as i64
}

impl Compositor {
    pub fn new(config: CompositorConfig) -> Compositor {
        let main = Canvas::new(config.width, config.height, config.background);
        Compositor { config, sources: HashMap::new(), canvases: vec![main], mixed_until: 0 }
    }

    pub fn config(&self) -> &CompositorConfig {
        &self.config
    }

    /// Sets who is on stage. New members start with gain 1; members who left are forgotten, and tiles
    /// naming them are dropped.
    pub fn set_stage(&mut self, members: &[StageMember]) {
        self.sources.retain(|id, _| members.iter().any(|m| &m.id == id));
        for m in members {
            let s = self.sources.entry(m.id.clone()).or_insert_with(|| Source { gain: 1.0, ..Default::default() });
            s.name = m.name.clone();
        }
        let sources = &self.sources;
        for c in &mut self.canvases {
            c.placements.retain(|p| sources.contains_key(&p.source));
        }
    }

    /// The main canvas (width, height).
    pub fn canvas_size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    /// Every canvas's (width, height), the main one first.
    pub fn canvas_sizes(&self) -> Vec<(u32, u32)> {
        self.canvases.iter().map(Canvas::size).collect()
    }

    /// Sets the canvases beside the main one (each even-sized, at least 16 × 16; at most
    /// [`MAX_CANVASES`] in all). A canvas keeping its place and size keeps its tiles and overlays; any other
    /// starts empty.
    pub fn set_canvases(&mut self, others: &[(u32, u32)]) -> Result<(), CanvasError> {
        check_canvases(others)?;
        let background = self.config.background;
        let mut kept = self.canvases.drain(1..).collect::<Vec<_>>().into_iter();
        for &(width, height) in others {
            let canvas = match kept.next() {
                Some(c) if c.size() == (width, height) => c,
                _ => Canvas::new(width, height, background),
            };
            self.canvases.push(canvas);
        }
        Ok(())
    }

    /// Replaces the main canvas's tiles. Invalid placements are refused and the previous ones stay (a failing
    /// layout keeps the last good one).
    pub fn set_placements(&mut self, placements: Vec<Placement>) -> Result<(), PlacementError> {
        self.set_placements_on(0, placements)
    }

    /// Replaces one canvas's tiles, as [`Self::set_placements`] does the main one's.
    pub fn set_placements_on(&mut self, canvas: usize, mut placements: Vec<Placement>) -> Result<(), PlacementError> {
        let c = canvas_in(&mut self.canvases, canvas)?;
        let (width, height) = c.size();
        let sources = &self.sources;
        placement::validate(&placements, width, height, |s| sources.contains_key(s))?;
        placements.sort_by_key(|p| p.z);
        c.placements = placements;
        c.labels.clear();
        Ok(())
    }

    /// Replaces the main canvas's overlay layers (call when an overlay plugin re-rendered; they are converted
    /// here once, not per frame). A malformed layer refuses the whole set and the previous layers stay.
    pub fn set_overlays(&mut self, layers: &[OverlayLayer]) -> Result<(), OverlayError> {
        self.set_overlays_on(0, layers)
    }

    /// Replaces one canvas's overlay layers, as [`Self::set_overlays`] does the main one's.
    pub fn set_overlays_on(&mut self, canvas: usize, layers: &[OverlayLayer]) -> Result<(), OverlayError> {
        let c = canvas_in(&mut self.canvases, canvas)?;
        let mut prepared = layers.iter().map(overlay::PreparedOverlay::new).collect::<Result<Vec<_>, _>>()?;
        prepared.sort_by_key(overlay::PreparedOverlay::z);
        c.overlays = prepared;
        Ok(())
    }

    /// Shows one overlay layer on the main canvas, replacing the layer with the same id (the others stay as
    /// they are, converted already). A malformed layer is refused and the previous one with that id stays.
    pub fn put_overlay(&mut self, layer: &OverlayLayer) -> Result<(), OverlayError> {
        self.put_overlay_on(0, layer)
    }

    /// Shows one overlay layer on one canvas, as [`Self::put_overlay`] does on the main one.
    pub fn put_overlay_on(&mut self, canvas: usize, layer: &OverlayLayer) -> Result<(), OverlayError> {
        let c = canvas_in(&mut self.canvases, canvas)?;
        let prepared = overlay::PreparedOverlay::new(layer)?;
        c.overlays.retain(|o| o.id != layer.id);
        c.overlays.push(prepared);
        c.overlays.sort_by_key(overlay::PreparedOverlay::z);
        Ok(())
    }

    /// Takes the overlay layer `id` off the main canvas.
    pub fn remove_overlay(&mut self, id: &str) {
        self.remove_overlay_on(0, id);
    }

    /// Takes the overlay layer `id` off one canvas (nothing happens where there is no such canvas or layer).
    pub fn remove_overlay_on(&mut self, canvas: usize, id: &str) {
        if let Ok(c) = canvas_in(&mut self.canvases, canvas) {
            c.overlays.retain(|o| o.id != id);
        }
    }

    /// The colour behind the tiles from the next frame, as RGB (converted to the canvas's limited-range YUV).
    pub fn set_background_rgb(&mut self, [r, g, b]: [u8; 3]) {
        let (y, u, v) = overlay::rgb_to_yuv(f32::from(r), f32::from(g), f32::from(b));
        self.config.background = [y.round() as u8, u.round() as u8, v.round() as u8];
    }

    /// The picture behind the tiles on canvas `canvas` from the next frame: `layer` (RGBA, opaque where it
    /// covers the canvas; the background colour shows through the rest), or the background colour alone.
    pub fn set_backdrop_on(&mut self, canvas: usize, layer: Option<&OverlayLayer>) -> Result<(), OverlayError> {
        let background = self.config.background;
        let c = canvas_in(&mut self.canvases, canvas)?;
        c.backdrop = match layer {
            None => None,
            Some(layer) => {
                let (width, height) = c.size();
                let mut picture = VideoFrame::filled(width, height, background);
                overlay::PreparedOverlay::new(layer)?.blend(&mut picture);
                Some(picture)
            }
        };
        Ok(())
    }

    /// The colour behind the tiles, as limited-range YUV.
    pub fn set_background(&mut self, yuv: [u8; 3]) {
        self.config.background = yuv;
    }

    /// The main canvas: the latest composed frame between two [`Self::compose`]s.
    pub fn canvas(&self) -> &VideoFrame {
        &self.canvases[0].frame
    }

    /// Canvas `canvas`'s latest composed frame (0 is the main one), if there is such a canvas.
    pub fn canvas_frame(&self, canvas: usize) -> Option<&VideoFrame> {
        self.canvases.get(canvas).map(|c| &c.frame)
    }

    /// Every canvas's latest composed frame, the main one first.
    pub fn frames(&self) -> impl Iterator<Item = &VideoFrame> {
        self.canvases.iter().map(|c| &c.frame)
    }

    /// The main canvas's tiles.
    pub fn placements(&self) -> &[Placement] {
        &self.canvases[0].placements
    }

    /// One canvas's tiles (none where there is no such canvas).
    pub fn placements_on(&self, canvas: usize) -> &[Placement] {
        self.canvases.get(canvas).map_or(&[], |c| &c.placements)
    }

    /// Per-source volume (0 = silent, 1 = as received); non-finite or negative values count as 0.
    pub fn set_gain(&mut self, source: &str, gain: f32) {
        if let Some(s) = self.sources.get_mut(source) {
            s.gain = if gain.is_finite() { gain.clamp(0.0, 4.0) } else { 0.0 };
        }
    }

    /// Muted sources are not mixed (their buffer keeps following the clock).
    pub fn set_muted(&mut self, source: &str, muted: bool) {
        if let Some(s) = self.sources.get_mut(source) {
            s.muted = muted;
        }
    }

    /// A decoded frame of `source`, stamped `source_time` on the source's clock, that arrived at program
    /// time `arrival`. Frames of sources not on stage are ignored.
    pub fn push_video(&mut self, source: &str, frame: VideoFrame, source_time: Duration, arrival: Duration) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.clock.observe(source_time, arrival);
        s.last_video_arrival = Some(arrival);
        if s.pending.back().is_some_and(|(t, _)| *t >= source_time) {
            // Out of order or a restarted source clock: start over from this frame.
            s.pending.clear();
        }
        s.pending.push_back((source_time, frame));
        while s.pending.len() > MAX_PENDING_FRAMES {
            s.pending.pop_front();
        }
    }

    /// Decoded audio of `source` (interleaved stereo f32, 48 kHz) whose first sample is at `source_time`.
    pub fn push_audio(&mut self, source: &str, interleaved: &[f32], source_time: Duration, arrival: Duration) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.clock.observe(source_time, arrival);
        s.audio.push(samples_at(source_time), interleaved);
    }

    /// What `source`'s tile shows at program time `now`.
    pub fn tile_view(&self, source: &str, now: Duration) -> TileView {
        self.sources.get(source).map_or(TileView::NameCard, |s| s.view(now, self.config.stall_after))
    }

    /// Composes every canvas's frame presented at program time `now` (tiles, then overlays); returns the main one.
    pub fn compose(&mut self, now: Duration) -> &VideoFrame {
        self.compose_tiles(now);
        self.blend_overlays()
    }

    /// The first half of [`Self::compose`]: background, tiles (scaled frames or name cards) and name labels.
    pub fn compose_tiles(&mut self, now: Duration) {
        // A frame is due when its mapped time + delay falls before the middle of this tick.
        let due = now.as_micros() as i64 + self.config.frame_duration.as_micros() as i64 / 2
            - self.config.playout_delay.as_micros() as i64;
        for s in self.sources.values_mut() {
            while let Some((t, _)) = s.pending.front() {
                match s.clock.to_program_us(*t) {
                    Some(at) if at <= due => {
                        let (_, frame) = s.pending.pop_front().expect("front() just returned Some");
                        s.current = Some(frame);
                    }
                    _ => break,
                }
            }
        }
        for canvas in &mut self.canvases {
            draw_tiles(canvas, &self.sources, &self.config, now);
        }
    }

    /// The second half of [`Self::compose`]: the overlay layers over the tiles, on every canvas; returns the
    /// main one.
    pub fn blend_overlays(&mut self) -> &VideoFrame {
        for c in &mut self.canvases {
            for layer in &c.overlays {
                layer.blend(&mut c.frame);
            }
        }
        &self.canvases[0].frame
    }

    /// Program time up to which audio has been mixed (where the next [`Self::mix`] starts).
    pub fn mixed_until(&self) -> Duration {
        Duration::from_micros((self.mixed_until.max(0) as u64 * 1_000_000) / SAMPLE_RATE as u64)
    }

    /// Mixes program audio from where the last call stopped up to program time `until`: interleaved
    /// stereo f32 at 48 kHz, continuous (silence where nobody speaks), ready for the encoder.
    pub fn mix(&mut self, until: Duration) -> Vec<f32> {
        let end = samples_at(until);
        let frames = (end - self.mixed_until).max(0) as usize;
        let mut out = vec![0.0f32; frames * 2];
        if frames == 0 {
            return out;
        }
        let delay = samples_at(self.config.playout_delay);
        let mut scratch = vec![0.0f32; frames * 2];
        for s in self.sources.values_mut() {
            let Some(offset_us) = s.clock.offset_us() else {
                continue;
            };
            // Source sample that belongs at program sample `mixed_until`.
            let wanted = (self.mixed_until - delay) as f64 - offset_us as f64 * SAMPLE_RATE as f64 / 1e6;
            scratch.fill(0.0);
            s.audio.mix_into(&mut scratch, wanted, 1.0);
            if !s.muted {
                for (o, v) in out.iter_mut().zip(&scratch) {
                    *o += v * s.gain;
                }
            }
        }
        for o in &mut out {
            *o = o.clamp(-1.0, 1.0);
        }
        self.mixed_until = end;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> Vec<StageMember> {
        vec![StageMember { id: "a".into(), name: "Ada".into() }, StageMember { id: "b".into(), name: "Bo".into() }]
    }

    fn two_tiles() -> Vec<Placement> {
        vec![
            Placement { source: "a".into(), rect: Rect::new(0, 0, 160, 180), z: 0, fit: Fit::Cover },
            Placement { source: "b".into(), rect: Rect::new(160, 0, 160, 180), z: 0, fit: Fit::Cover },
        ]
    }

    fn y_at(frame: &VideoFrame, x: u32, y: u32) -> u8 {
        frame.planes().0[(y * frame.width() + x) as usize]
    }

    fn config() -> CompositorConfig {
        CompositorConfig { width: 320, height: 180, playout_delay: Duration::from_millis(50), ..Default::default() }
    }

    #[test]
    fn tiles_show_their_source_in_their_rectangle() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage());
        c.set_placements(two_tiles()).unwrap();
        let ms = Duration::from_millis;
        c.push_video("a", VideoFrame::filled(64, 36, [200, 128, 128]), ms(0), ms(0));
        c.push_video("b", VideoFrame::filled(64, 36, [60, 128, 128]), ms(0), ms(0));
        let f = c.compose(ms(100));
        assert_eq!(y_at(f, 80, 90), 200);
        assert_eq!(y_at(f, 240, 90), 60);
    }

    #[test]
    fn frames_wait_for_the_playout_delay() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage());
        c.set_placements(two_tiles()).unwrap();
        let ms = Duration::from_millis;
        c.push_video("a", VideoFrame::filled(64, 36, [200, 128, 128]), ms(1000), ms(0));
        // Mapped to program 0, shown from 50 ms (delay) - half a tick.
        assert_ne!(y_at(c.compose(ms(0)), 80, 90), 200);
        assert_eq!(y_at(c.compose(ms(40)), 80, 90), 200);
    }

    #[test]
    fn stalled_source_shows_last_frame_then_name_card() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage());
        c.set_placements(two_tiles()).unwrap();
        let ms = Duration::from_millis;
        c.push_video("a", VideoFrame::filled(64, 36, [200, 128, 128]), ms(0), ms(0));
        assert_eq!(y_at(c.compose(ms(100)), 80, 90 + 60), 200);
        assert_eq!(c.tile_view("a", ms(1000)), TileView::LastFrame);
        assert_eq!(y_at(c.compose(ms(1000)), 80, 150), 200);
        assert_eq!(c.tile_view("a", ms(1600)), TileView::NameCard);
        let card = blit::card_colour("Ada");
        let f = c.compose(ms(1600));
        assert_eq!(y_at(f, 10, 10), card[0]);
        // b never sent video: its name card from the start.
        assert_eq!(y_at(f, 170, 10), blit::card_colour("Bo")[0]);
    }

    #[test]
    fn invalid_layout_keeps_the_last_good_one() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage());
        c.set_placements(two_tiles()).unwrap();
        let bad = vec![Placement { source: "a".into(), rect: Rect::new(300, 0, 100, 100), z: 0, fit: Fit::Cover }];
        assert!(c.set_placements(bad).is_err());
        assert_eq!(c.placements().len(), 2);
        c.set_stage(&stage()[..1]);
        assert_eq!(c.placements().len(), 1, "tiles of people who left the stage go");
    }

    #[test]
    fn a_backdrop_shows_around_the_tiles_under_them_and_only_on_its_canvas() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage()[..1]);
        // One small tile in the top-left corner; the rest of the canvas is behind it.
        c.set_placements(vec![Placement { source: "a".into(), rect: Rect::new(0, 0, 160, 90), z: 0, fit: Fit::Cover }])
            .unwrap();
        c.set_canvases(&[(180, 320)]).unwrap();
        let white = OverlayLayer {
            id: "backdrop".into(),
            rect: Rect::new(0, 0, 320, 180),
            rgba: vec![255; 320 * 180 * 4],
            z: 0,
        };
        c.set_backdrop_on(0, Some(&white)).unwrap();
        let ms = Duration::from_millis;
        c.push_video("a", VideoFrame::filled(64, 36, [60, 128, 128]), ms(0), ms(0));
        c.compose(ms(100));
        let (main, tall) = (c.canvas_frame(0).unwrap(), c.canvas_frame(1).unwrap());
        assert_eq!(y_at(main, 80, 45), 60, "the tile over the picture");
        assert_eq!((y_at(main, 240, 45), y_at(main, 160, 150)), (235, 235), "the picture around it");
        assert_eq!(y_at(tall, 90, 300), 16, "the other canvas keeps the background colour");
        // Every tick starts again from the picture: nothing of an earlier tile stays behind.
        c.set_placements(vec![Placement {
            source: "a".into(),
            rect: Rect::new(160, 90, 160, 90),
            z: 0,
            fit: Fit::Cover,
        }])
        .unwrap();
        c.compose(ms(133));
        let main = c.canvas_frame(0).unwrap();
        assert_eq!((y_at(main, 80, 45), y_at(main, 240, 135)), (235, 60));
        c.set_backdrop_on(0, None).unwrap();
        c.compose(ms(166));
        assert_eq!(y_at(c.canvas_frame(0).unwrap(), 80, 45), 16, "taken away: the background colour again");
        let wrong = OverlayLayer { rgba: vec![255; 10], ..white };
        assert!(c.set_backdrop_on(0, Some(&wrong)).is_err(), "a layer whose pixels do not fill it is refused");
        assert!(c.set_backdrop_on(5, None).is_err(), "no such canvas");
    }

    #[test]
    fn every_canvas_shows_its_own_tiles_and_overlays_from_the_same_sources() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage());
        c.set_placements(two_tiles()).unwrap();
        c.set_canvases(&[(180, 320)]).unwrap();
        assert_eq!(c.canvas_sizes(), [(320, 180), (180, 320)]);
        let stacked = vec![
            Placement { source: "b".into(), rect: Rect::new(0, 0, 180, 160), z: 0, fit: Fit::Cover },
            Placement { source: "a".into(), rect: Rect::new(0, 160, 180, 160), z: 0, fit: Fit::Cover },
        ];
        c.set_placements_on(1, stacked).unwrap();
        let white =
            OverlayLayer { id: "bar".into(), rect: Rect::new(0, 300, 180, 20), rgba: vec![255; 180 * 20 * 4], z: 0 };
        c.set_overlays_on(1, std::slice::from_ref(&white)).unwrap();
        let ms = Duration::from_millis;
        c.push_video("a", VideoFrame::filled(64, 36, [200, 128, 128]), ms(0), ms(0));
        c.push_video("b", VideoFrame::filled(64, 36, [60, 128, 128]), ms(0), ms(0));
        c.compose(ms(100));
        let (main, tall) = (c.canvas_frame(0).unwrap(), c.canvas_frame(1).unwrap());
        assert_eq!((y_at(main, 80, 90), y_at(main, 240, 90)), (200, 60));
        assert_eq!((tall.width(), tall.height()), (180, 320));
        assert_eq!((y_at(tall, 90, 60), y_at(tall, 90, 220)), (60, 200), "b above a");
        assert_eq!(y_at(tall, 90, 310), 235, "the overlay is on the tall canvas");
        assert_eq!(y_at(main, 90, 170), 200, "and not on the main one");
        assert_eq!(c.frames().count(), 2);

        // Tiles are checked against their own canvas; a canvas that is not there refuses them.
        assert!(matches!(c.set_placements_on(1, two_tiles()), Err(PlacementError::OutsideCanvas { .. })));
        let missing = CanvasError::Unknown { canvas: 2, count: 2 };
        assert_eq!(c.set_placements_on(2, two_tiles()), Err(PlacementError::NoCanvas(missing)));
        assert!(c.set_overlays_on(2, &[]).is_err());
        // Leaving the stage leaves every canvas.
        c.set_stage(&stage()[..1]);
        assert_eq!((c.placements().len(), c.placements_on(1).len()), (1, 1));
        // A canvas that keeps its size keeps its tiles; a resized one starts empty.
        c.set_canvases(&[(180, 320)]).unwrap();
        assert_eq!(c.placements_on(1).len(), 1);
        c.set_canvases(&[(320, 320)]).unwrap();
        assert!(c.placements_on(1).is_empty());
        assert_eq!(c.set_canvases(&[(181, 320)]), Err(CanvasError::Size { width: 181, height: 320 }));
        assert_eq!(c.set_canvases(&[(16, 16); 3]), Err(CanvasError::TooMany(4)));
        c.set_canvases(&[]).unwrap();
        assert_eq!(c.canvas_sizes(), [(320, 180)]);
    }

    #[test]
    fn mixer_applies_gain_and_mute_and_is_continuous() {
        let mut c = Compositor::new(config());
        c.set_stage(&stage());
        let ms = Duration::from_millis;
        // 1 s of constant 0.25 from a and 0.5 from b, arriving at once.
        c.push_audio("a", &vec![0.25; 96_000], ms(0), ms(0));
        c.push_audio("b", &vec![0.5; 96_000], ms(0), ms(0));
        c.set_gain("b", 0.5);
        let first = c.mix(ms(200));
        assert_eq!(first.len(), 2 * 9600);
        // Before the playout delay (50 ms) nothing plays; after it both do: 0.25 + 0.5 * 0.5.
        assert_eq!(first[2 * 1000], 0.0);
        assert!((first[2 * 5000] - 0.5).abs() < 1e-3, "{}", first[2 * 5000]);
        c.set_muted("a", true);
        let second = c.mix(ms(400));
        assert_eq!(second.len(), 2 * 9600);
        assert!((second[100] - 0.25).abs() < 1e-3, "{}", second[100]);
    }
}
