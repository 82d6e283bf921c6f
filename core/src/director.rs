//! The director: what the program shows, decided from the room. It is sans-IO, in the shape of
//! [`crate::router::Room`]: inputs (`handle_*`, each given the program time now) change its view of the room
//! (who is there, who speaks, the scene the hosts set); it answers with [`Output`]s that its shell carries
//! out (the program's stage, placements, overlay layers, keyframe requests, the stage the studio draws). It
//! keeps no clock and starts no thread: animation advances only when the shell calls
//! [`Director::handle_tick`], at [`Director::poll_timeout`].
//!
//! The studio's vocabulary meets the plugins' here, in one place: a scene's layout id (`grid`, or
//! `<plugin>/<id>` for a third-party layout) names a layout plugin and one of its layouts; the studio's
//! overlays (`banner`, `lowerThird`, `logo`, `comment`, `ticker`) become the overlay plugin's requests.
//!
//! Plugin calls go through [`Layouts`] and [`Painter`], on whatever thread drives the director: the
//! gateway gives each program a director thread of its own, so a slow plugin never holds an async worker.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::compositor::{Fit, OverlayLayer, Placement, Rect, StageMember};
use crate::plugin_host::{self as ph, LayoutInstance, OverlayInstance, PluginError, PluginHost, PluginKind};

/// The first-party layout plugin: its layout ids are plain (`grid`); others are `<plugin>/<id>`.
pub const FIRST_PARTY_LAYOUTS: &str = "layouts";
/// The overlay plugin that draws the studio's overlays.
pub const OVERLAY_PLUGIN: &str = "overlays";
/// How often animated overlays (the ticker) are drawn again while shown.
pub const ANIMATE_EVERY: Duration = Duration::from_millis(33);

/// A participant in the room as the director sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub speaking: bool,
    pub video_enabled: bool,
    pub screen_sharing: bool,
}

/// An overlay the hosts show, in the studio's vocabulary.
#[derive(Clone, Debug, PartialEq)]
pub enum Overlay {
    Banner {
        text: String,
        color: Option<String>,
    },
    LowerThird {
        name: String,
        title: String,
        color: Option<String>,
    },
    Logo {
        url: String,
        position: Option<String>,
        size: Option<f64>,
    },
    Comment {
        author: String,
        text: String,
        color: Option<String>,
    },
    Ticker {
        text: String,
        color: Option<String>,
    },
    /// The slate's words ("Be right back", "Starting soon"...), centred, under the other overlays; behind a
    /// slate the stage is empty, so the program's background is all around them.
    Slate {
        title: String,
        text: String,
        color: Option<String>,
        /// An uploaded image filling the canvas behind the words.
        image: Option<String>,
    },
    /// An uploaded image covering the whole canvas over the tiles (a PNG whose transparent parts show them: a
    /// frame, a border, a sponsor strip), under the other overlays. Drawn by the director itself, like the
    /// slate's picture.
    Picture {
        url: String,
    },
    /// An overlay of an installed overlay plugin other than the first-party one (`scene.overlays.plugins`),
    /// with the props the hosts set for it.
    Plugin {
        plugin: String,
        id: String,
        props: Vec<(String, String)>,
    },
}

impl Overlay {
    /// The studio's name for it (`scene.overlays.<key>`, or `<plugin>/<id>` for a plugin's), also the program
    /// layer's id.
    pub fn key(&self) -> String {
        match self {
            Overlay::Banner { .. } => "banner".into(),
            Overlay::LowerThird { .. } => "lowerThird".into(),
            Overlay::Logo { .. } => "logo".into(),
            Overlay::Comment { .. } => "comment".into(),
            Overlay::Ticker { .. } => "ticker".into(),
            Overlay::Slate { .. } => "slate".into(),
            Overlay::Picture { .. } => "picture".into(),
            Overlay::Plugin { plugin, id, .. } => format!("{plugin}/{id}"),
        }
    }

    /// Drawing order among overlays: the slate lowest, then a full-canvas picture, the ticker along the bottom
    /// edge, ..., a chat comment and plugins' overlays on top.
    fn z(&self) -> i32 {
        match self {
            Overlay::Picture { .. } => 0,
            Overlay::Ticker { .. } => 1,
            Overlay::Logo { .. } => 2,
            Overlay::LowerThird { .. } => 3,
            Overlay::Banner { .. } => 4,
            Overlay::Comment { .. } => 5,
            Overlay::Plugin { .. } => 6,
            // Over every tile, under the other overlays: a ticker or the logo still shows on a slate.
            Overlay::Slate { .. } => -1,
        }
    }

    /// Whether it may change with time while shown (and so is drawn again every [`ANIMATE_EVERY`]): the
    /// ticker, and any plugin's overlay (it answers `unchanged` when it did not move, which costs one call).
    fn animates(&self) -> bool {
        matches!(self, Overlay::Ticker { .. } | Overlay::Plugin { .. })
    }

    /// The overlay plugin, its overlay id and the properties for it, and the upload it shows, if any.
    fn request(&self) -> (&str, &str, Vec<(&str, String)>, Option<&str>) {
        let color = |c: &Option<String>| c.clone().unwrap_or_default();
        let first = OVERLAY_PLUGIN;
        match self {
            Overlay::Banner { text, color: c } => {
                (first, "banner", vec![("text", text.clone()), ("color", color(c))], None)
            }
            Overlay::LowerThird { name, title, color: c } => (
                first,
                "lower-third",
                vec![("name", name.clone()), ("title", title.clone()), ("color", color(c))],
                None,
            ),
            Overlay::Logo { url, position, size } => (
                first,
                "logo",
                vec![
                    ("position", position.clone().unwrap_or_default()),
                    ("size", size.map(|s| s.to_string()).unwrap_or_default()),
                ],
                Some(url.as_str()),
            ),
            Overlay::Comment { author, text, color: c } => {
                (first, "chat", vec![("author", author.clone()), ("message", text.clone()), ("color", color(c))], None)
            }
            Overlay::Ticker { text, color: c } => {
                (first, "ticker", vec![("text", text.clone()), ("color", color(c))], None)
            }
            // Over a picture (drawn by the director itself, see `paint`) the words sit on a dark panel.
            Overlay::Slate { title, text, color: c, image } => (
                first,
                "slate",
                vec![
                    ("title", title.clone()),
                    ("text", text.clone()),
                    ("color", color(c)),
                    ("panel", if image.is_some() { "true".into() } else { String::new() }),
                ],
                None,
            ),
            // Never sent to a plugin: the director scales it itself (see `paint`).
            Overlay::Picture { url } => (first, "picture", Vec::new(), Some(url.as_str())),
            Overlay::Plugin { plugin, id, props } => {
                (plugin, id, props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(), None)
            }
        }
    }
}

/// The scene as the director takes it: who is on stage in order, the layout id, and the overlays shown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scene {
    pub stage: Vec<String>,
    pub layout: String,
    /// Visible overlays only.
    pub overlays: Vec<Overlay>,
    /// The colour behind the tiles (RGB; the brand's), or the program's default.
    pub background: Option<[u8; 3]>,
    /// An uploaded image (`/api/uploads/<sha256>`, the brand's) covering the canvas behind the tiles; none: the
    /// background colour.
    pub background_image: Option<String>,
    /// A slate the hosts show on purpose ("Starting soon", "Be right back", "Thanks for watching"): its words
    /// on the background, and nobody on stage is seen or heard meanwhile.
    pub slate: Option<Slate>,
    /// The brand's colour, for the slate's accent.
    pub accent: Option<String>,
    /// The brand's font for the first-party overlays' text (`sans`, `serif` or `mono`); none: sans.
    pub font: Option<String>,
    /// An uploaded image (`/api/uploads/<sha256>`) filling the canvas behind every slate, the one the hosts
    /// show and the one the program shows by itself; none: the program's background.
    pub slate_image: Option<String>,
    /// A video clip playing into the program (source [`CLIP_SOURCE`]): over the whole canvas, or in a tile
    /// beside the people on stage. While it plays no slate shows; the people on stage are still heard.
    pub clip: Option<Clip>,
    /// An uploaded clip whose sound loops under every slate (source [`SLATE_AUDIO_SOURCE`], on the stage while a
    /// slate shows); none: silence under a slate.
    pub slate_audio: Option<String>,
}

/// A clip on the program.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clip {
    /// Its name, on its tile.
    pub name: String,
    /// Over the whole canvas (else a tile the layout places, like a screen share).
    pub full: bool,
}

/// The program source a playing clip's pictures and sound are pushed as.
pub const CLIP_SOURCE: &str = "clip";

/// The program source the sound under a slate is pushed as: on the stage (mixed, never placed) while a slate shows.
pub const SLATE_AUDIO_SOURCE: &str = "slate-audio";

/// A full-screen card: a title and a line under it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slate {
    pub title: String,
    pub text: String,
}

/// The id of the layer under the slate's words that shows the picture behind every slate.
pub const SLATE_PICTURE: &str = "slate-picture";
/// The id of the picture behind the tiles (the brand's background image).
pub const BACKDROP: &str = "backdrop";

/// `img` scaled (bilinear) to cover a `width` × `height` canvas, centred, its overflow cropped: RGBA.
fn cover(img: &ph::Image, width: u32, height: u32) -> Vec<u8> {
    let (iw, ih) = (img.width as f32, img.height as f32);
    let scale = (width as f32 / iw).max(height as f32 / ih);
    let (ox, oy) = ((iw * scale - width as f32) / 2.0, (ih * scale - height as f32) / 2.0);
    let at = |x: u32, y: u32, c: usize| f32::from(img.rgba[(y as usize * img.width as usize + x as usize) * 4 + c]);
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        let fy = ((y as f32 + 0.5 + oy) / scale - 0.5).clamp(0.0, ih - 1.0);
        let (y0, ty) = (fy.floor() as u32, fy.fract());
        let y1 = (y0 + 1).min(img.height - 1);
        for x in 0..width {
            let fx = ((x as f32 + 0.5 + ox) / scale - 0.5).clamp(0.0, iw - 1.0);
            let (x0, tx) = (fx.floor() as u32, fx.fract());
            let x1 = (x0 + 1).min(img.width - 1);
            for c in 0..4 {
                let top = at(x0, y0, c) * (1.0 - tx) + at(x1, y0, c) * tx;
                let bottom = at(x0, y1, c) * (1.0 - tx) + at(x1, y1, c) * tx;
                out.push((top * (1.0 - ty) + bottom * ty).round() as u8);
            }
        }
    }
    out
}

/// The uploaded image at `url` scaled to cover a `canvas`, as layer `id` at `z`; none without a usable one.
fn picture_covering(
    painter: &mut impl Painter,
    canvas: ph::Size,
    url: Option<&str>,
    id: &str,
    z: i32,
) -> Option<OverlayLayer> {
    let p = painter
        .image(url?)
        .filter(|i| i.width > 0 && i.height > 0 && i.rgba.len() == i.width as usize * i.height as usize * 4)?;
    Some(OverlayLayer {
        id: id.into(),
        rect: Rect::new(0, 0, canvas.width, canvas.height),
        rgba: cover(&p, canvas.width, canvas.height),
        z,
    })
}

/// Shows `layer`, or takes the layer `id` off when there is none to show.
fn shown_or_hidden(layer: Option<OverlayLayer>, id: &str) -> Output {
    match layer {
        Some(layer) => Output::ShowOverlay(layer),
        None => Output::HideOverlay(id.to_owned()),
    }
}

/// The slate shown on its own while on air with nobody (present) on stage, so platforms keep receiving a
/// show and viewers know it goes on.
pub const AWAY_SLATE_TITLE: &str = "Be right back";

/// The layout plugin and its layout a scene's layout id names (`grid` → first-party `layouts`/`grid`,
/// `corner-layouts/corner` → `corner-layouts`/`corner`; the studio's old `screen-share` is `screen`).
pub fn layout_ref(id: &str) -> (&str, &str) {
    match id.split_once('/') {
        Some((plugin, layout)) => (plugin, layout),
        None if id == "screen-share" => (FIRST_PARTY_LAYOUTS, "screen"),
        None => (FIRST_PARTY_LAYOUTS, id),
    }
}

/// A layout the studio can offer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutChoice {
    /// What a scene's `layout` holds.
    pub id: String,
    pub name: String,
    pub description: String,
    /// The layout plugin it comes from.
    pub plugin: String,
}

/// An overlay of a plugin other than the first-party one, as the studio offers it (`joined.overlays`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OverlayChoice {
    /// `<plugin>/<overlay id>`: the key under `scene.overlays.plugins`.
    pub id: String,
    pub name: String,
    pub description: String,
    /// The props it reads, which the hosts fill in.
    pub props: Vec<String>,
    /// The overlay plugin it comes from.
    pub plugin: String,
}

/// What the loaded plugins offer the studio (`joined.layouts`, `joined.overlays`), as of one version of the
/// host's plugins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Offered {
    /// Every enabled layout plugin's layouts: the first-party ones first, in their order, then each other
    /// plugin's by plugin name.
    pub layouts: Vec<LayoutChoice>,
    /// Every overlay of the enabled overlay plugins other than the first-party one (the studio's own overlays
    /// have controls of their own), by plugin name.
    pub overlays: Vec<OverlayChoice>,
    /// [`PluginHost::changes`] when this was asked: it holds until a plugin is added or reloaded.
    pub changes: u64,
    /// Every plugin answered. A plugin that fails to answer offers nothing, and a list missing it is not worth
    /// keeping.
    pub complete: bool,
}

/// Asks every layout plugin and every third-party overlay plugin what it offers. Calls plugins: blocking.
pub fn offered(host: &PluginHost) -> Offered {
    let changes = host.changes();
    let mut complete = true;
    let mut layout_plugins = host.names(PluginKind::Layout);
    layout_plugins.sort_by_key(|p| (p != FIRST_PARTY_LAYOUTS, p.clone()));
    let mut layouts = Vec::new();
    for plugin in layout_plugins {
        match host.layout(&plugin).and_then(|mut i| i.layouts()) {
            Ok(list) => layouts.extend(list.into_iter().map(|l| LayoutChoice {
                id: if plugin == FIRST_PARTY_LAYOUTS { l.id } else { format!("{plugin}/{}", l.id) },
                name: l.name,
                description: l.description,
                plugin: plugin.clone(),
            })),
            Err(e) => {
                complete = false;
                tracing::warn!(plugin, "layout plugin offers no layouts: {e}");
            }
        }
    }
    let mut overlay_plugins = host.names(PluginKind::Overlay);
    overlay_plugins.retain(|p| p != OVERLAY_PLUGIN);
    overlay_plugins.sort();
    let mut overlays = Vec::new();
    for plugin in overlay_plugins {
        match host.overlay(&plugin).and_then(|mut i| i.overlays()) {
            Ok(list) => overlays.extend(list.into_iter().map(|o| OverlayChoice {
                id: format!("{plugin}/{}", o.id),
                name: o.name,
                description: o.description,
                props: o.props,
                plugin: plugin.clone(),
            })),
            Err(e) => {
                complete = false;
                tracing::warn!(plugin, "overlay plugin offers no overlays: {e}");
            }
        }
    }
    Offered { layouts, overlays, changes, complete }
}

/// The stage as the studio draws it: exactly the program's tiles.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageLayout {
    pub layout: String,
    pub canvas: CanvasSize,
    pub tiles: Vec<Tile>,
}

/// The program canvas in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanvasSize {
    pub width: u32,
    pub height: u32,
}

/// One tile of the program, in canvas pixels.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tile {
    /// The program source: the participant id, or `<participantId>:screen`.
    pub source: String,
    pub participant_id: String,
    pub screen: bool,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub z: i32,
    /// `cover` or `contain`.
    pub fit: String,
}

/// What the shell is to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The program's stage: its sources in order, with names (decoders run for these only).
    Stage(Vec<StageMember>),
    /// New tile placements for the program, and the same tiles as the studio draws them.
    Placements { placements: Vec<Placement>, stage: StageLayout },
    /// Show or replace one overlay layer (by id).
    ShowOverlay(OverlayLayer),
    /// Take one overlay layer off (by id).
    HideOverlay(String),
    /// Ask this participant's browser for a keyframe (their source just came on stage).
    Keyframe(String),
    /// The colour behind the tiles changed (RGB; `None`: the program's default).
    Background(Option<[u8; 3]>),
    /// The picture behind this canvas's tiles changed: a layer covering the canvas, or none (the colour).
    Backdrop(Option<OverlayLayer>),
}

/// Placements from layout plugins.
pub trait Layouts {
    /// Placements from layout plugin `plugin` for `stage`.
    fn place(&mut self, plugin: &str, stage: &ph::Stage) -> Result<Vec<ph::Placement>, PluginError>;
}

/// What an overlay shows after a render.
#[derive(Clone, Debug, PartialEq)]
pub enum Painted {
    /// As it was.
    Unchanged,
    /// Nothing to draw.
    Hidden,
    /// A new layer at (x, y) on the canvas.
    Layer { x: i32, y: i32, image: ph::Image },
}

/// Overlay layers from overlay plugins, and the uploads they show.
pub trait Painter {
    /// A layer from overlay plugin `plugin` for `req`.
    fn render(&mut self, plugin: &str, req: &ph::OverlayRequest) -> Result<Painted, PluginError>;
    /// An uploaded image by its URL, decoded; `None` when it is not there or not an image.
    fn image(&mut self, url: &str) -> Option<ph::Image>;
}

/// An overlay on screen.
#[derive(Debug)]
struct Shown {
    overlay: Overlay,
    /// Program time it came on (its animation clock).
    since: Duration,
}

/// The director of one program.
pub struct Director<L: Layouts, P: Painter> {
    canvas: ph::Size,
    layouts: L,
    painter: P,
    scene: Scene,
    members: BTreeMap<String, Member>,
    /// Who the layout focuses on: the speaker, held while they are on stage until someone else speaks.
    focus: Option<String>,
    /// The layout request last made (plugin, layout, participants, focus), to skip identical ones.
    last_request: Option<RequestKey>,
    on_stage: Vec<StageMember>,
    stage_layout: Option<StageLayout>,
    shown: HashMap<String, Shown>,
    last_animation: Option<Duration>,
    outputs: VecDeque<Output>,
    /// The program is on air (an empty stage then shows the away slate).
    on_air: bool,
    /// Shown overlays whose last render failed (e.g. a plugin call over its deadline on a busy machine):
    /// drawn again on the next tick.
    unpainted: HashSet<String>,
}

type RequestKey = (String, String, Vec<(String, String, bool, bool, bool)>, Option<String>);

impl<L: Layouts, P: Painter> Director<L, P> {
    pub fn new(canvas: ph::Size, layouts: L, painter: P) -> Self {
        Director {
            canvas,
            layouts,
            painter,
            scene: Scene::default(),
            members: BTreeMap::new(),
            focus: None,
            last_request: None,
            on_stage: Vec::new(),
            stage_layout: None,
            shown: HashMap::new(),
            last_animation: None,
            outputs: VecDeque::new(),
            on_air: false,
            unpainted: HashSet::new(),
        }
    }

    /// The hosts set a new scene.
    pub fn handle_scene(&mut self, scene: Scene, now: Duration) {
        let slate = self.slate();
        let font_changed = scene.font != self.scene.font;
        if font_changed {
            // Every overlay is set again in the new font (each layer replaces its own by id).
            self.shown.clear();
        }
        let overlays_changed = scene.overlays != self.scene.overlays || font_changed;
        if scene.background != self.scene.background {
            self.outputs.push_back(Output::Background(scene.background));
        }
        let backdrop_changed = scene.background_image != self.scene.background_image;
        self.scene = scene;
        if backdrop_changed {
            let url = self.scene.background_image.as_deref();
            let layer = picture_covering(&mut self.painter, self.canvas, url, BACKDROP, 0);
            self.outputs.push_back(Output::Backdrop(layer));
        }
        self.relayout();
        if overlays_changed || self.slate() != slate {
            self.restage_overlays(now);
        }
    }

    /// A participant joined or changed (name, speaking, camera, screen share).
    pub fn handle_member(&mut self, member: Member, now: Duration) {
        if self.members.get(&member.id) == Some(&member) {
            return;
        }
        let slate = self.slate();
        self.members.insert(member.id.clone(), member);
        self.relayout();
        self.restage_if_slate_changed(slate, now);
    }

    /// A participant left the room.
    pub fn handle_left(&mut self, id: &str, now: Duration) {
        let slate = self.slate();
        if self.members.remove(id).is_some() {
            self.relayout();
            self.restage_if_slate_changed(slate, now);
        }
    }

    /// Everyone in the room now (after the shell lost track, e.g. it missed events).
    pub fn handle_members(&mut self, members: Vec<Member>, now: Duration) {
        let slate = self.slate();
        self.members = members.into_iter().map(|m| (m.id.clone(), m)).collect();
        self.relayout();
        self.restage_if_slate_changed(slate, now);
    }

    /// The program went on air or came off it.
    pub fn handle_on_air(&mut self, on_air: bool, now: Duration) {
        let slate = self.slate();
        self.on_air = on_air;
        self.restage_if_slate_changed(slate, now);
    }

    /// The slate on screen: the one the hosts chose, else the away slate while on air with nobody present
    /// on stage.
    fn slate(&self) -> Option<Overlay> {
        if self.scene.clip.is_some() {
            return None;
        }
        let away = || {
            let present = self.scene.stage.iter().any(|id| self.members.contains_key(id));
            (self.on_air && !present).then(|| Slate { title: AWAY_SLATE_TITLE.into(), text: String::new() })
        };
        let slate = self.scene.slate.clone().or_else(away)?;
        let image = self.scene.slate_image.clone();
        Some(Overlay::Slate { title: slate.title, text: slate.text, color: self.scene.accent.clone(), image })
    }

    fn restage_if_slate_changed(&mut self, before: Option<Overlay>, now: Duration) {
        if self.slate() != before {
            // The sound under a slate comes and goes with it.
            self.relayout();
            self.restage_overlays(now);
        }
    }

    /// Time passed: animated overlays move.
    pub fn handle_tick(&mut self, now: Duration) {
        if self.last_animation.is_some_and(|t| now < t + ANIMATE_EVERY) {
            return;
        }
        self.last_animation = Some(now);
        let animated: Vec<String> =
            self.shown.iter().filter(|(_, s)| s.overlay.animates()).map(|(k, _)| k.clone()).collect();
        for key in animated {
            self.paint(&key, now, false);
        }
        let failed: Vec<String> = self.unpainted.drain().filter(|k| self.shown.contains_key(k)).collect();
        for key in failed {
            self.paint(&key, now, true);
        }
    }

    /// When [`Self::handle_tick`] is next due, if anything animates.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if !self.shown.values().any(|s| s.overlay.animates()) && self.unpainted.is_empty() {
            return None;
        }
        Some(self.last_animation.map_or(Duration::ZERO, |t| t + ANIMATE_EVERY))
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The stage as the studio draws it now, once the layout placed anyone.
    pub fn stage_layout(&self) -> Option<&StageLayout> {
        self.stage_layout.as_ref()
    }

    /// Everyone in the room as this director knows them, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Whether the program is on air, as this director was told.
    pub fn on_air(&self) -> bool {
        self.on_air
    }

    /// Program sources on stage now, in order.
    pub fn on_stage(&self) -> impl Iterator<Item = &str> {
        self.on_stage.iter().map(|m| m.id.as_str())
    }

    /// Who is on stage, in the scene's order: each present member's camera, and their screen when sharing.
    fn participants(&self) -> Vec<ph::Participant> {
        let mut out = Vec::new();
        if self.scene.slate.is_some() && self.scene.clip.is_none() {
            // Behind a slate the hosts chose, nobody is seen or heard.
            return out;
        }
        for id in &self.scene.stage {
            let Some(m) = self.members.get(id) else { continue };
            out.push(ph::Participant {
                id: m.id.clone(),
                name: m.name.clone(),
                speaking: m.speaking,
                screen_share: false,
                video_enabled: m.video_enabled,
            });
            if m.screen_sharing {
                out.push(ph::Participant {
                    id: format!("{}:screen", m.id),
                    name: format!("{} (screen)", m.name),
                    speaking: false,
                    screen_share: true,
                    video_enabled: true,
                });
            }
        }
        if let Some(clip) = &self.scene.clip {
            // Laid out as a screen share is (the layouts give it the large area), or alone over the canvas.
            out.push(ph::Participant {
                id: CLIP_SOURCE.into(),
                name: clip.name.clone(),
                speaking: false,
                screen_share: true,
                video_enabled: true,
            });
        }
        out
    }

    /// Speaker focus: whoever speaks on stage; when several do, the one already focused keeps it, else the
    /// first in stage order. When nobody speaks the focus stays where it was (a pause does not move the
    /// spotlight), until that person leaves the stage.
    fn update_focus(&mut self, participants: &[ph::Participant]) {
        let speaking: Vec<&str> = participants.iter().filter(|p| p.speaking).map(|p| p.id.as_str()).collect();
        let kept = self.focus.as_deref().is_some_and(|f| speaking.contains(&f));
        if !kept {
            if let Some(first) = speaking.first() {
                self.focus = Some((*first).to_owned());
            } else if !self.focus.as_deref().is_some_and(|f| participants.iter().any(|p| p.id == f)) {
                self.focus = None;
            }
        }
    }

    fn relayout(&mut self) {
        let participants = self.participants();
        self.update_focus(&participants);
        let mut stage: Vec<StageMember> =
            participants.iter().map(|p| StageMember { id: p.id.clone(), name: p.name.clone() }).collect();
        if self.scene.slate_audio.is_some() && self.slate().is_some() {
            // The sound under the slate is heard, never placed.
            stage.push(StageMember { id: SLATE_AUDIO_SOURCE.into(), name: String::new() });
        }
        if stage != self.on_stage {
            // The program decodes on-stage sources only: newcomers' decoders start now (the stage first, so
            // the keyframe asked for next finds them) and need a keyframe, not the next periodic one.
            let newcomers: Vec<String> = stage
                .iter()
                .filter(|s| s.id != CLIP_SOURCE && s.id != SLATE_AUDIO_SOURCE)
                .filter(|s| !self.on_stage.iter().any(|o| o.id == s.id))
                .map(|s| s.id.split(':').next().unwrap_or(&s.id).to_owned())
                .collect();
            self.on_stage = stage.clone();
            self.outputs.push_back(Output::Stage(stage));
            for participant in newcomers {
                let ask = Output::Keyframe(participant);
                if !self.outputs.contains(&ask) {
                    self.outputs.push_back(ask);
                }
            }
        }
        if self.scene.clip.as_ref().is_some_and(|c| c.full) {
            // The clip over the whole canvas; the people on stage are heard, not seen.
            let whole = Rect::new(0, 0, self.canvas.width, self.canvas.height);
            let placements = vec![Placement { source: CLIP_SOURCE.into(), rect: whole, z: 0, fit: Fit::Contain }];
            let stage = self.stage_layout_of(&placements, &participants);
            self.last_request = None;
            if self.stage_layout.as_ref() != Some(&stage) {
                self.stage_layout = Some(stage.clone());
                self.outputs.push_back(Output::Placements { placements, stage });
            }
            return;
        }
        if self.scene.layout.is_empty() {
            // No scene yet: nothing to lay out.
            return;
        }
        let (plugin, layout) = layout_ref(&self.scene.layout);
        let (plugin, layout) = (plugin.to_owned(), layout.to_owned());
        let key: RequestKey = (
            plugin.clone(),
            layout.clone(),
            participants
                .iter()
                .map(|p| (p.id.clone(), p.name.clone(), p.speaking, p.video_enabled, p.screen_share))
                .collect(),
            self.focus.clone(),
        );
        if self.last_request.as_ref() == Some(&key) {
            return;
        }
        let request = ph::Stage {
            layout,
            canvas: self.canvas,
            participants: participants.clone(),
            active_speaker: self.focus.clone(),
        };
        match self.layouts.place(&plugin, &request) {
            Ok(placed) => {
                self.last_request = Some(key);
                let placements = program_placements(placed, self.canvas.width, self.canvas.height);
                let stage = self.stage_layout_of(&placements, &participants);
                if self.stage_layout.as_ref() != Some(&stage) {
                    self.stage_layout = Some(stage.clone());
                    self.outputs.push_back(Output::Placements { placements, stage });
                }
            }
            Err(e) => tracing::warn!(plugin, "layout failed, the program keeps its last placements: {e}"),
        }
    }

    fn stage_layout_of(&self, placements: &[Placement], participants: &[ph::Participant]) -> StageLayout {
        let tiles = placements
            .iter()
            .map(|p| {
                let screen = p.source.ends_with(":screen");
                let Rect { x, y, width, height } = p.rect;
                Tile {
                    source: p.source.clone(),
                    participant_id: p.source.split(':').next().unwrap_or(&p.source).to_owned(),
                    screen,
                    name: participants.iter().find(|q| q.id == p.source).map(|q| q.name.clone()).unwrap_or_default(),
                    x,
                    y,
                    width,
                    height,
                    z: p.z,
                    fit: match p.fit {
                        Fit::Cover => "cover",
                        Fit::Contain => "contain",
                    }
                    .to_owned(),
                }
            })
            .collect();
        StageLayout {
            layout: self.scene.layout.clone(),
            canvas: CanvasSize { width: self.canvas.width, height: self.canvas.height },
            tiles,
        }
    }

    /// Brings the shown overlays in line with the scene: new or changed ones drawn, gone ones taken off,
    /// unchanged ones left alone (their layers stay in the program as they are).
    fn restage_overlays(&mut self, now: Duration) {
        let wanted: HashMap<String, Overlay> =
            self.scene.overlays.iter().cloned().chain(self.slate()).map(|o| (o.key(), o)).collect();
        let gone: Vec<String> = self.shown.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        for key in gone {
            self.shown.remove(&key);
            if key == "slate" {
                self.outputs.push_back(Output::HideOverlay(SLATE_PICTURE.into()));
            }
            self.outputs.push_back(Output::HideOverlay(key));
        }
        for (key, overlay) in wanted {
            if self.shown.get(&key).is_some_and(|s| s.overlay == overlay) {
                continue;
            }
            let since = self.shown.get(&key).map_or(now, |s| s.since);
            self.shown.insert(key.clone(), Shown { overlay, since });
            self.paint(&key, now, true);
        }
    }

    /// Renders one shown overlay at `now`; `fresh` when its inputs changed (a layer is sent even if the
    /// plugin's answer is the one it gave before for other inputs).
    fn paint(&mut self, key: &str, now: Duration, fresh: bool) {
        self.unpainted.remove(key);
        let Some(shown) = self.shown.get(key) else { return };
        if let Overlay::Picture { url } = &shown.overlay {
            // Scaled here, natively, once, as the slate's picture is; an upload that is gone shows nothing.
            let layer = picture_covering(&mut self.painter, self.canvas, Some(url), key, shown.overlay.z());
            self.outputs.push_back(shown_or_hidden(layer, key));
            return;
        }
        let (plugin, overlay_id, mut props, image_url) = shown.overlay.request();
        // The brand's font, for the first-party overlays (a third-party plugin reads only its own props).
        if let Some(font) = self.scene.font.as_ref().filter(|_| plugin == OVERLAY_PLUGIN) {
            props.push(("font", font.clone()));
        }
        let z = shown.overlay.z();
        if let Overlay::Slate { image, .. } = &shown.overlay {
            // The slate's picture covers the canvas under its words: scaled here, natively, once (a plugin
            // drawing a whole canvas would not fit its call's deadline), and shown as a layer of its own. A
            // picture whose upload is gone leaves the words on the background.
            let layer = picture_covering(&mut self.painter, self.canvas, image.as_deref(), SLATE_PICTURE, z - 1);
            self.outputs.push_back(shown_or_hidden(layer, SLATE_PICTURE));
        }
        let images = match image_url {
            Some(url) => match self.painter.image(url) {
                Some(image) => vec![ph::NamedImage { key: overlay_id.to_owned(), image }],
                None => {
                    self.outputs.push_back(Output::HideOverlay(key.to_owned()));
                    return;
                }
            },
            None => Vec::new(),
        };
        let request = ph::OverlayRequest {
            overlay: overlay_id.to_owned(),
            canvas: self.canvas,
            time_ms: now.saturating_sub(shown.since).as_millis() as u64,
            props: props
                .into_iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| ph::Prop { key: k.to_owned(), value: v.trim().to_owned() })
                .collect(),
            images,
        };
        match self.painter.render(plugin, &request) {
            Ok(Painted::Layer { x, y, image }) => self.outputs.push_back(Output::ShowOverlay(OverlayLayer {
                id: key.to_owned(),
                rect: Rect::new(x, y, image.width, image.height),
                rgba: image.rgba,
                z,
            })),
            Ok(Painted::Hidden) => self.outputs.push_back(Output::HideOverlay(key.to_owned())),
            Ok(Painted::Unchanged) if fresh => {
                tracing::debug!(overlay = key, "overlay plugin drew the same layer for new inputs");
            }
            Ok(Painted::Unchanged) => {}
            Err(e) => {
                tracing::warn!(plugin, overlay = key, "overlay not drawn, trying again: {e}");
                self.unpainted.insert(key.to_owned());
            }
        }
    }
}

/// A layout plugin's placements as the compositor takes them: rectangles rounded to whole pixels and kept
/// inside the `width` × `height` canvas (the host validated them already; rounding may nudge an edge by a
/// pixel).
pub fn program_placements(placed: Vec<ph::Placement>, width: u32, height: u32) -> Vec<Placement> {
    let (w, h) = (width as i32, height as i32);
    placed
        .into_iter()
        .map(|p| {
            let x = (p.rect.x.round() as i32).clamp(0, w - 2);
            let y = (p.rect.y.round() as i32).clamp(0, h - 2);
            let right = ((p.rect.x + p.rect.width).round() as i32).clamp(x + 2, w);
            let bottom = ((p.rect.y + p.rect.height).round() as i32).clamp(y + 2, h);
            Placement {
                source: p.participant_id,
                rect: Rect::new(x, y, (right - x) as u32, (bottom - y) as u32),
                z: p.z,
                fit: match p.fit {
                    ph::Fit::Cover => Fit::Cover,
                    ph::Fit::Contain => Fit::Contain,
                },
            }
        })
        .collect()
}

/// [`Layouts`] from the node's plugin host: one instance per layout plugin, made on first use.
pub struct PluginLayouts {
    host: PluginHost,
    instances: HashMap<String, LayoutInstance>,
}

impl PluginLayouts {
    pub fn new(host: PluginHost) -> Self {
        PluginLayouts { host, instances: HashMap::new() }
    }
}

impl Layouts for PluginLayouts {
    fn place(&mut self, plugin: &str, stage: &ph::Stage) -> Result<Vec<ph::Placement>, PluginError> {
        if !self.instances.contains_key(plugin) {
            let instance = self.host.layout(plugin)?;
            self.instances.insert(plugin.to_owned(), instance);
        }
        self.instances.get_mut(plugin).expect("inserted just above when it was missing").place(stage)
    }
}

/// How many decoded uploads a program keeps (a logo swapped back and forth stays decoded; a stream of
/// distinct URLs does not grow memory).
const IMAGE_CACHE: usize = 4;

/// [`Painter`] from the node's overlay plugins (an instance of each, made on first use) and an upload loader
/// (file read and decode, the shell's IO).
pub struct PluginPainter<F: FnMut(&str) -> Option<ph::Image>> {
    host: PluginHost,
    /// One instance per overlay plugin used so far; `None` when it could not be made (logged once).
    instances: HashMap<String, Option<OverlayInstance>>,
    load: F,
    /// Recently used uploads, most recent last.
    images: VecDeque<(String, Option<ph::Image>)>,
}

impl<F: FnMut(&str) -> Option<ph::Image>> PluginPainter<F> {
    /// Overlays from `host`'s overlay plugins; uploads through `load`.
    pub fn new(host: PluginHost, load: F) -> Self {
        PluginPainter { host, instances: HashMap::new(), load, images: VecDeque::new() }
    }
}

impl<F: FnMut(&str) -> Option<ph::Image>> Painter for PluginPainter<F> {
    fn render(&mut self, plugin: &str, req: &ph::OverlayRequest) -> Result<Painted, PluginError> {
        // Looked up by `&str` first: this runs every frame for an animated overlay, and only the first call per
        // plugin needs an owned key.
        if !self.instances.contains_key(plugin) {
            let made = self.host.overlay(plugin);
            let made = made.map_err(|e| tracing::error!(plugin, "overlays of this plugin are not drawn: {e}")).ok();
            self.instances.insert(plugin.to_owned(), made);
        }
        let Some(Some(instance)) = self.instances.get_mut(plugin) else { return Ok(Painted::Hidden) };
        let out = instance.render(req)?;
        Ok(match (out.changed, out.layer) {
            (false, _) => Painted::Unchanged,
            (true, None) => Painted::Hidden,
            (true, Some(layer)) => Painted::Layer { x: layer.x, y: layer.y, image: layer.image.clone() },
        })
    }

    fn image(&mut self, url: &str) -> Option<ph::Image> {
        if let Some(i) = self.images.iter().position(|(u, _)| u == url) {
            let hit = self.images.remove(i)?;
            self.images.push_back(hit);
        } else {
            let image = (self.load)(url);
            if self.images.len() == IMAGE_CACHE {
                self.images.pop_front();
            }
            self.images.push_back((url.to_owned(), image));
        }
        self.images.back().and_then(|(_, i)| i.clone())
    }
}

#[cfg(test)]
mod tests {
    //! Decision logic on simulated time: no threads, sockets or sleeps. The layout here is a small one of
    //! the tests' own (one row, focus first) so a test reads which decision was made; the real plugins are
    //! exercised through the same trait in `tests/director.rs`.

    use super::*;

    /// One row of equal tiles in stage order, the focused participant first; records every call.
    #[derive(Default)]
    struct Row {
        calls: Vec<ph::Stage>,
    }

    impl Layouts for Row {
        fn place(&mut self, plugin: &str, stage: &ph::Stage) -> Result<Vec<ph::Placement>, PluginError> {
            if plugin != FIRST_PARTY_LAYOUTS {
                return Err(PluginError::NotFound { name: plugin.into(), kind: PluginKind::Layout });
            }
            self.calls.push(stage.clone());
            let mut ids: Vec<&ph::Participant> = stage.participants.iter().collect();
            if let Some(f) = &stage.active_speaker {
                ids.sort_by_key(|p| p.id != *f);
            }
            let w = stage.canvas.width as f32 / ids.len().max(1) as f32;
            Ok(ids
                .iter()
                .enumerate()
                .map(|(i, p)| ph::Placement {
                    participant_id: p.id.clone(),
                    rect: ph::Rect { x: i as f32 * w, y: 0.0, width: w, height: stage.canvas.height as f32 },
                    z: 0,
                    fit: if p.screen_share { ph::Fit::Contain } else { ph::Fit::Cover },
                    corner_radius: 0.0,
                    show_name: true,
                })
                .collect())
        }
    }

    /// Draws a 2×2 layer whose first byte is the request's time (so animation is visible), or hides an
    /// overlay with no text.
    #[derive(Default)]
    struct Ink {
        renders: Vec<(String, u64)>,
        /// The plugin of each render, in order.
        plugins: Vec<String>,
        /// Renders that fail before one succeeds (a plugin over its deadline).
        failures: u32,
        /// The `font` prop of each render, in order.
        fonts: Vec<Option<String>>,
    }

    impl Painter for Ink {
        fn render(&mut self, plugin: &str, req: &ph::OverlayRequest) -> Result<Painted, PluginError> {
            self.renders.push((req.overlay.clone(), req.time_ms));
            self.plugins.push(plugin.to_owned());
            self.fonts.push(req.props.iter().find(|p| p.key == "font").map(|p| p.value.clone()));
            if self.failures > 0 {
                self.failures -= 1;
                return Err(PluginError::NotFound { name: plugin.into(), kind: PluginKind::Overlay });
            }
            if req.props.is_empty() {
                return Ok(Painted::Hidden);
            }
            let mut rgba = vec![255; 16];
            rgba[0] = (req.time_ms / 33) as u8;
            Ok(Painted::Layer { x: 0, y: 0, image: ph::Image { width: 2, height: 2, rgba } })
        }
        /// Only a `.../picture` upload exists: a 2×1 image, red then blue.
        fn image(&mut self, url: &str) -> Option<ph::Image> {
            url.ends_with("/picture").then(|| ph::Image {
                width: 2,
                height: 1,
                rgba: vec![255, 0, 0, 255, 0, 0, 255, 255],
            })
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn director() -> Director<Row, Ink> {
        Director::new(ph::Size { width: 1280, height: 720 }, Row::default(), Ink::default())
    }

    fn member(id: &str) -> Member {
        Member { id: id.into(), name: id.to_uppercase(), speaking: false, video_enabled: true, screen_sharing: false }
    }

    fn scene(stage: &[&str], layout: &str) -> Scene {
        Scene { stage: stage.iter().map(|s| s.to_string()).collect(), layout: layout.into(), ..Scene::default() }
    }

    fn drain(d: &mut Director<Row, Ink>) -> Vec<Output> {
        std::iter::from_fn(|| d.poll_output()).collect()
    }

    fn tiles(d: &Director<Row, Ink>) -> Vec<String> {
        d.stage_layout().map(|s| s.tiles.iter().map(|t| t.source.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn a_new_background_is_one_output_and_the_default_comes_back_without_one() {
        let mut d = director();
        let branded = Scene { background: Some([1, 2, 3]), ..scene(&[], "grid") };
        d.handle_scene(branded.clone(), MS(0));
        assert!(drain(&mut d).contains(&Output::Background(Some([1, 2, 3]))));
        d.handle_scene(branded, MS(10));
        assert!(!drain(&mut d).iter().any(|o| matches!(o, Output::Background(_))), "unchanged: nothing to say");
        d.handle_scene(scene(&[], "grid"), MS(20));
        assert!(drain(&mut d).contains(&Output::Background(None)));
    }

    #[test]
    fn the_stage_is_the_scene_order_of_present_members_with_screens_after_cameras() {
        let mut d = director();
        for id in ["a", "b", "c"] {
            d.handle_member(member(id), MS(0));
        }
        d.handle_scene(scene(&["c", "ghost", "a"], "grid"), MS(10));
        let out = drain(&mut d);
        assert!(out.contains(&Output::Keyframe("c".into())) && out.contains(&Output::Keyframe("a".into())));
        assert!(!out.contains(&Output::Keyframe("b".into())), "off stage: no decoder, no keyframe");
        assert_eq!(tiles(&d), ["c", "a"]);
        d.handle_member(Member { screen_sharing: true, ..member("c") }, MS(20));
        assert_eq!(d.on_stage().collect::<Vec<_>>(), ["c", "c:screen", "a"]);
        let out = drain(&mut d);
        assert!(out.contains(&Output::Keyframe("c".into())), "the screen is a new source: {out:?}");
        let stage = d.stage_layout().unwrap();
        let screen = stage.tiles.iter().find(|t| t.screen).unwrap();
        assert_eq!(
            (screen.participant_id.as_str(), screen.fit.as_str(), screen.name.as_str()),
            ("c", "contain", "C (screen)")
        );
    }

    #[test]
    fn leaving_the_room_or_the_stage_takes_the_tile_off() {
        let mut d = director();
        d.handle_member(member("a"), MS(0));
        d.handle_member(member("b"), MS(0));
        d.handle_scene(scene(&["a", "b"], "grid"), MS(0));
        d.handle_left("a", MS(5));
        assert_eq!(tiles(&d), ["b"]);
        d.handle_scene(scene(&["b"], "grid"), MS(6));
        d.handle_scene(scene(&[], "grid"), MS(7));
        assert!(tiles(&d).is_empty());
        assert_eq!(d.on_stage().count(), 0);
    }

    #[test]
    fn an_identical_request_does_not_call_the_layout_again() {
        let mut d = director();
        d.handle_member(member("a"), MS(0));
        d.handle_scene(scene(&["a"], "grid"), MS(0));
        d.handle_member(member("b"), MS(1)); // joined backstage: the stage did not change
        d.handle_scene(scene(&["a"], "grid"), MS(2));
        assert_eq!(d.layouts.calls.len(), 1);
        d.handle_scene(scene(&["a"], "spotlight"), MS(3));
        assert_eq!(d.layouts.calls.len(), 2);
        assert_eq!(d.layouts.calls[1].layout, "spotlight");
    }

    #[test]
    fn layout_ids_name_their_plugin_and_an_unknown_plugin_keeps_the_last_tiles() {
        assert_eq!(layout_ref("grid"), ("layouts", "grid"));
        assert_eq!(layout_ref("screen-share"), ("layouts", "screen"));
        assert_eq!(layout_ref("corner-layouts/corner"), ("corner-layouts", "corner"));
        let mut d = director();
        d.handle_member(member("a"), MS(0));
        d.handle_scene(scene(&["a"], "grid"), MS(0));
        drain(&mut d);
        d.handle_scene(scene(&["a"], "missing/row"), MS(1));
        assert!(drain(&mut d).iter().all(|o| !matches!(o, Output::Placements { .. })));
        assert_eq!(tiles(&d), ["a"]);
    }

    #[test]
    fn speaker_focus_follows_the_speaker_and_holds_through_a_pause() {
        let mut d = director();
        for id in ["a", "b", "c"] {
            d.handle_member(member(id), MS(0));
        }
        d.handle_scene(scene(&["a", "b", "c"], "spotlight"), MS(0));
        assert_eq!(d.layouts.calls.last().unwrap().active_speaker, None);
        d.handle_member(Member { speaking: true, ..member("b") }, MS(100));
        assert_eq!(tiles(&d)[0], "b");
        // b pauses: the spotlight stays on b.
        d.handle_member(member("b"), MS(600));
        assert_eq!(d.layouts.calls.last().unwrap().active_speaker.as_deref(), Some("b"));
        // b speaks again and c joins in: b keeps it; then only c speaks: c gets it.
        d.handle_member(Member { speaking: true, ..member("b") }, MS(700));
        d.handle_member(Member { speaking: true, ..member("c") }, MS(750));
        assert_eq!(d.layouts.calls.last().unwrap().active_speaker.as_deref(), Some("b"));
        d.handle_member(member("b"), MS(1200));
        assert_eq!(tiles(&d)[0], "c");
        // The focused speaker leaves the stage: no focus until someone speaks.
        d.handle_member(member("c"), MS(1300));
        d.handle_scene(scene(&["a", "b"], "spotlight"), MS(1400));
        assert_eq!(d.layouts.calls.last().unwrap().active_speaker, None);
    }

    #[test]
    fn overlays_map_to_the_plugin_vocabulary_and_change_by_id() {
        let mut d = director();
        let mut s = scene(&[], "grid");
        s.overlays = vec![
            Overlay::LowerThird { name: "Ada".into(), title: "Host".into(), color: None },
            Overlay::Comment { author: "Viewer".into(), text: "hi".into(), color: None },
        ];
        d.handle_scene(s.clone(), MS(0));
        let out = drain(&mut d);
        let shown: Vec<&str> = out
            .iter()
            .filter_map(|o| if let Output::ShowOverlay(l) = o { Some(l.id.as_str()) } else { None })
            .collect();
        assert_eq!(shown.len(), 2);
        assert!(shown.contains(&"lowerThird") && shown.contains(&"comment"));
        let asked: Vec<&str> = d.painter.renders.iter().map(|(o, _)| o.as_str()).collect();
        assert!(asked.contains(&"lower-third") && asked.contains(&"chat"), "{asked:?}");
        // Only the comment changes: only it is drawn again; the lower third's layer stays as it is.
        s.overlays[1] = Overlay::Comment { author: "Viewer".into(), text: "bye".into(), color: None };
        d.handle_scene(s.clone(), MS(10));
        let out = drain(&mut d);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(&out[0], Output::ShowOverlay(l) if l.id == "comment"));
        // Hidden in the scene: taken off by id.
        s.overlays.truncate(1);
        d.handle_scene(s, MS(20));
        assert_eq!(drain(&mut d), [Output::HideOverlay("comment".into())]);
        assert_eq!(d.poll_timeout(), None, "nothing animates");
    }

    #[test]
    fn a_plugins_overlay_goes_to_its_plugin_with_its_props_and_keeps_being_asked() {
        let mut d = director();
        let mut s = scene(&[], "grid");
        let props = vec![("text".to_string(), "Home 2 – 1 Away".to_string())];
        s.overlays = vec![
            Overlay::Banner { text: "live".into(), color: None },
            Overlay::Plugin { plugin: "scoreboard".into(), id: "score".into(), props: props.clone() },
        ];
        d.handle_scene(s.clone(), MS(0));
        let out = drain(&mut d);
        let layer = out
            .iter()
            .find_map(|o| if let Output::ShowOverlay(l) = o { (l.id == "scoreboard/score").then_some(l) } else { None })
            .expect("the plugin's layer, by <plugin>/<id>");
        assert!(layer.z > 4, "a plugin's overlay is drawn over the studio's own");
        let i = d.painter.renders.iter().position(|(o, _)| o == "score").expect("asked for its overlay id");
        assert_eq!(d.painter.plugins[i], "scoreboard");
        assert_eq!(d.painter.plugins[1 - i], OVERLAY_PLUGIN);
        // It may animate: asked again on ticks, with the time since it appeared.
        assert_eq!(d.poll_timeout(), Some(Duration::ZERO));
        d.handle_tick(MS(500));
        assert_eq!(d.painter.renders.last(), Some(&("score".to_string(), 500)));
        // Hidden: taken off by its key.
        s.overlays.truncate(1);
        d.handle_scene(s, MS(600));
        assert_eq!(drain(&mut d).last(), Some(&Output::HideOverlay("scoreboard/score".into())));
        assert_eq!(d.poll_timeout(), None, "nothing animates any more");
    }

    #[test]
    fn a_ticker_animates_on_ticks_from_when_it_was_shown() {
        let mut d = director();
        let mut s = scene(&[], "grid");
        s.overlays = vec![
            Overlay::Banner { text: "still".into(), color: None },
            Overlay::Ticker { text: "news".into(), color: None },
        ];
        d.handle_scene(s, MS(1000));
        drain(&mut d);
        assert_eq!(d.poll_timeout(), Some(Duration::ZERO));
        for t in [1000u64, 1010, 1033, 1066] {
            d.handle_tick(MS(t));
        }
        let out = drain(&mut d);
        // Ticks closer than a frame apart are skipped; the banner is never drawn again.
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out.iter().all(|o| matches!(o, Output::ShowOverlay(l) if l.id == "ticker")));
        let times: Vec<u64> = d.painter.renders.iter().filter(|(o, _)| o == "ticker").map(|(_, t)| *t).collect();
        assert_eq!(times, [0, 0, 33, 66]);
        assert_eq!(d.poll_timeout(), Some(MS(1066) + ANIMATE_EVERY));
    }

    #[test]
    fn a_logo_whose_upload_is_missing_is_not_drawn() {
        let mut d = director();
        let mut s = scene(&[], "grid");
        s.overlays = vec![Overlay::Logo { url: "/api/uploads/nothing".into(), position: None, size: None }];
        d.handle_scene(s, MS(0));
        let overlays: Vec<Output> = drain(&mut d)
            .into_iter()
            .filter(|o| matches!(o, Output::ShowOverlay(_) | Output::HideOverlay(_)))
            .collect();
        assert_eq!(overlays, [Output::HideOverlay("logo".into())]);
        assert!(d.painter.renders.is_empty());
    }

    #[test]
    fn a_background_picture_covers_the_canvas_behind_the_tiles_and_goes_with_the_brand() {
        let mut d = director();
        let with = |url: Option<&str>| Scene { background_image: url.map(Into::into), ..scene(&["a"], "grid") };
        // Each backdrop output: the layer's id, rectangle, z and top-left pixel, or none.
        type Backdrop = Option<(String, Rect, i32, [u8; 4])>;
        let backdrops = |d: &mut Director<Row, Ink>| -> Vec<Backdrop> {
            drain(d)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Backdrop(l) => {
                        Some(l.map(|l| (l.id, l.rect, l.z, [l.rgba[0], l.rgba[1], l.rgba[2], l.rgba[3]])))
                    }
                    _ => None,
                })
                .collect()
        };
        d.handle_scene(with(None), MS(0));
        assert_eq!(backdrops(&mut d), vec![], "no picture, none before: nothing to say");
        d.handle_scene(with(Some("/api/uploads/picture")), MS(10));
        // Scaled to cover the whole 1280×720 canvas (the picture's left half is red).
        assert_eq!(
            backdrops(&mut d),
            vec![Some((BACKDROP.to_owned(), Rect::new(0, 0, 1280, 720), 0, [255, 0, 0, 255]))]
        );
        d.handle_scene(with(Some("/api/uploads/picture")), MS(20));
        assert_eq!(backdrops(&mut d), vec![], "unchanged: nothing to say");
        d.handle_scene(with(Some("/api/uploads/gone")), MS(30));
        assert_eq!(backdrops(&mut d), vec![None], "an upload that is gone: the background colour");
        d.handle_scene(with(Some("/api/uploads/picture")), MS(40));
        assert_eq!(backdrops(&mut d).len(), 1);
        d.handle_scene(with(None), MS(50));
        assert_eq!(backdrops(&mut d), vec![None], "no brand picture any more");
    }

    #[test]
    fn the_brand_s_font_reaches_the_first_party_overlays_and_redraws_them() {
        let mut d = director();
        let with = |font: Option<&str>| Scene {
            overlays: vec![Overlay::Banner { text: "Hi".into(), color: None }],
            font: font.map(Into::into),
            ..scene(&["a"], "grid")
        };
        d.handle_scene(with(None), MS(0));
        drain(&mut d);
        d.handle_scene(with(Some("serif")), MS(10));
        assert!(drain(&mut d).iter().any(|o| matches!(o, Output::ShowOverlay(l) if l.id == "banner")), "drawn again");
        assert_eq!(d.painter.fonts, [None, Some("serif".to_owned())], "drawn in sans, then in the brand's serif");
        d.handle_scene(with(Some("serif")), MS(20));
        assert!(drain(&mut d).is_empty(), "the same font: nothing to draw");
    }

    #[test]
    fn a_full_canvas_picture_covers_the_tiles_under_the_text_overlays() {
        let mut d = director();
        let banner = Overlay::Banner { text: "Hi".into(), color: None };
        let with = |url: &str| Scene {
            overlays: vec![Overlay::Picture { url: url.into() }, banner.clone()],
            ..scene(&["a"], "grid")
        };
        d.handle_scene(with("/api/uploads/picture"), MS(0));
        let shown: Vec<(String, Rect, i32)> = drain(&mut d)
            .into_iter()
            .filter_map(|o| match o {
                Output::ShowOverlay(l) => Some((l.id, l.rect, l.z)),
                _ => None,
            })
            .collect();
        let picture = shown.iter().find(|(id, ..)| id == "picture").expect("the picture is shown");
        assert_eq!((picture.1, picture.2), (Rect::new(0, 0, 1280, 720), 0), "the whole canvas, lowest");
        let over = shown.iter().find(|(id, ..)| id == "banner").expect("the banner too");
        assert!(over.2 > picture.2, "the banner over the picture");
        d.handle_scene(with("/api/uploads/gone"), MS(100));
        assert!(drain(&mut d).contains(&Output::HideOverlay("picture".into())), "its upload gone: nothing drawn");
    }

    #[test]
    fn a_slate_shows_over_its_picture_and_without_it_when_the_upload_is_missing() {
        let mut d = director();
        let slate = Some(Slate { title: "Starting soon".into(), text: String::new() });
        let with = |url: &str| Scene { slate: slate.clone(), slate_image: Some(url.into()), ..scene(&[], "grid") };
        // Each overlay output: the layer's id, and for a shown one its rectangle, z and top-left pixel.
        type Shown = Option<(Rect, i32, [u8; 4])>;
        let layers = |d: &mut Director<Row, Ink>| -> Vec<(String, Shown)> {
            drain(d)
                .into_iter()
                .filter_map(|o| match o {
                    Output::ShowOverlay(l) => {
                        let corner = [l.rgba[0], l.rgba[1], l.rgba[2], l.rgba[3]];
                        Some((l.id, Some((l.rect, l.z, corner))))
                    }
                    Output::HideOverlay(id) => Some((id, None)),
                    _ => None,
                })
                .collect()
        };
        d.handle_scene(with("/api/uploads/picture"), MS(0));
        let shown = layers(&mut d);
        // The picture covers the 1280×720 canvas under the words (its left half red), the words over it on a
        // panel the plugin draws.
        let canvas = Rect::new(0, 0, 1280, 720);
        assert_eq!(shown[0], (SLATE_PICTURE.to_owned(), Some((canvas, -2, [255, 0, 0, 255]))), "{shown:?}");
        assert_eq!(shown[1].0, "slate");
        assert_eq!(shown.len(), 2);
        let slate = d.slate().expect("a slate");
        let (_, _, props, image) = slate.request();
        assert!(props.contains(&("panel", "true".into())) && image.is_none(), "{props:?}");

        // Its upload gone: the words alone, on the background.
        d.handle_scene(with("/api/uploads/gone"), MS(100));
        assert_eq!(
            layers(&mut d),
            [
                (SLATE_PICTURE.to_owned(), None),
                ("slate".to_owned(), Some((Rect::new(0, 0, 2, 2), -1, [3, 255, 255, 255])))
            ]
        );

        // Back to the stage: the picture goes with the words.
        d.handle_scene(with("/api/uploads/picture"), MS(200));
        drain(&mut d);
        d.handle_scene(scene(&[], "grid"), MS(300));
        let hidden = layers(&mut d);
        assert!(
            hidden.contains(&(SLATE_PICTURE.to_owned(), None)) && hidden.contains(&("slate".to_owned(), None)),
            "{hidden:?}"
        );
    }

    fn slate_outputs(d: &mut Director<Row, Ink>) -> Vec<String> {
        drain(d)
            .into_iter()
            .filter_map(|o| match o {
                Output::ShowOverlay(l) if l.id == "slate" => Some("show".to_owned()),
                Output::HideOverlay(id) if id == "slate" => Some("hide".to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_clip_covers_the_canvas_or_takes_a_tile_and_the_stage_comes_back_when_it_ends() {
        let mut d = director();
        d.handle_members(vec![member("a"), member("b")], MS(0));
        d.handle_scene(scene(&["a", "b"], "grid"), MS(0));
        d.handle_on_air(true, MS(0));
        drain(&mut d);
        let clip = |full| Some(Clip { name: "Intro".into(), full });
        // Over the whole canvas: only the clip is seen; everyone on stage stays on the program's stage (heard).
        d.handle_scene(Scene { clip: clip(true), ..scene(&["a", "b"], "grid") }, MS(10));
        let out = drain(&mut d);
        let stage: Vec<String> = out
            .iter()
            .find_map(|o| match o {
                Output::Stage(s) => Some(s.iter().map(|m| m.id.clone()).collect()),
                _ => None,
            })
            .expect("a new stage");
        assert_eq!(stage, ["a", "b", CLIP_SOURCE]);
        let whole = out.iter().find_map(|o| match o {
            Output::Placements { placements, .. } => Some(placements.clone()),
            _ => None,
        });
        let whole = whole.expect("placements");
        assert_eq!(whole.len(), 1, "{whole:?}");
        assert_eq!((whole[0].source.as_str(), whole[0].rect), (CLIP_SOURCE, Rect::new(0, 0, 1280, 720)));
        assert!(!out.contains(&Output::Keyframe(CLIP_SOURCE.into())), "a clip is not a participant to ask");
        // In a tile: laid out beside the people.
        d.handle_scene(Scene { clip: clip(false), ..scene(&["a", "b"], "grid") }, MS(20));
        drain(&mut d);
        assert_eq!(tiles(&d), ["a", "b", CLIP_SOURCE]);
        // An intro before anyone is on stage, on air: the clip plays, no "Be right back" over it.
        d.handle_scene(Scene { clip: clip(true), ..scene(&[], "grid") }, MS(30));
        assert!(slate_outputs(&mut d).is_empty() && d.slate().is_none(), "no slate while a clip plays");
        // It ended: the away slate for the empty stage, then the people again.
        d.handle_scene(scene(&[], "grid"), MS(40));
        assert_eq!(slate_outputs(&mut d), ["show"]);
        d.handle_scene(scene(&["a", "b"], "grid"), MS(50));
        drain(&mut d);
        assert_eq!(tiles(&d), ["a", "b"]);
    }

    #[test]
    fn on_air_with_nobody_present_on_stage_the_away_slate_shows_until_someone_is_back() {
        let mut d = director();
        d.handle_members(vec![member("a")], MS(0));
        d.handle_scene(scene(&["a"], "grid"), MS(0));
        d.handle_on_air(true, MS(10));
        assert!(slate_outputs(&mut d).is_empty(), "someone is on stage");
        // The host's browser goes away: the stage is empty while on air.
        d.handle_left("a", MS(20));
        assert_eq!(slate_outputs(&mut d), ["show"]);
        let (overlay, time) = d.painter.renders.last().cloned().unwrap();
        assert_eq!((overlay.as_str(), time), ("slate", 0));
        // Back: the slate goes.
        d.handle_member(member("a"), MS(30));
        assert_eq!(slate_outputs(&mut d), ["hide"]);
        assert_eq!(tiles(&d), ["a"]);
        // Off air, an empty stage is just empty (the studio before the show).
        d.handle_left("a", MS(40));
        d.handle_on_air(false, MS(50));
        assert!(slate_outputs(&mut d).len() <= 2, "shown while on air, then hidden");
        assert!(d.slate().is_none());
    }

    #[test]
    fn a_slate_the_hosts_choose_covers_the_canvas_and_nobody_is_seen_or_heard() {
        let mut d = director();
        d.handle_members(vec![member("a"), member("b")], MS(0));
        d.handle_scene(scene(&["a", "b"], "grid"), MS(0));
        drain(&mut d);
        let starting = Slate { title: "Starting soon".into(), text: "Our show".into() };
        d.handle_scene(
            Scene { slate: Some(starting), accent: Some("#ff0000".into()), ..scene(&["a", "b"], "grid") },
            MS(10),
        );
        let out = drain(&mut d);
        assert!(out.contains(&Output::Stage(vec![])), "the program's stage empties (no pictures, no sound): {out:?}");
        assert!(out.iter().any(|o| matches!(o, Output::ShowOverlay(l) if l.id == "slate" && l.z == -1)), "{out:?}");
        // Off again: the stage comes back, the slate goes.
        d.handle_scene(scene(&["a", "b"], "grid"), MS(20));
        let out = drain(&mut d);
        assert!(out.iter().any(|o| matches!(o, Output::Stage(s) if s.len() == 2)), "{out:?}");
        assert!(out.contains(&Output::HideOverlay("slate".into())), "{out:?}");
    }

    #[test]
    fn the_sound_under_the_slate_is_on_the_stage_while_a_slate_shows() {
        let mut d = director();
        let music = |stage: &[&str]| Scene { slate_audio: Some("/api/uploads/music".into()), ..scene(stage, "grid") };
        let heard = |out: &[Output]| {
            out.iter().rev().find_map(|o| match o {
                Output::Stage(s) => Some(s.iter().map(|m| m.id.clone()).collect::<Vec<_>>()),
                _ => None,
            })
        };
        d.handle_members(vec![member("a")], MS(0));
        d.handle_scene(music(&["a"]), MS(0));
        assert_eq!(heard(&drain(&mut d)), Some(vec!["a".to_string()]), "no slate: no music");
        d.handle_on_air(true, MS(10));
        assert_eq!(heard(&drain(&mut d)), None, "on air with someone on stage: no slate, the stage as it was");
        // The host's browser goes away while live: the away slate, and its music, with nobody else.
        d.handle_left("a", MS(20));
        let out = drain(&mut d);
        assert_eq!(heard(&out), Some(vec![SLATE_AUDIO_SOURCE.to_string()]));
        assert!(!out.iter().any(|o| matches!(o, Output::Keyframe(_))), "nobody to ask for a keyframe: {out:?}");
        d.handle_member(member("a"), MS(30));
        assert_eq!(heard(&drain(&mut d)), Some(vec!["a".to_string()]), "back: the music stops");
        // A slate the hosts choose has it too; off air as well.
        d.handle_on_air(false, MS(40));
        let chosen =
            Scene { slate: Some(Slate { title: "Starting soon".into(), text: String::new() }), ..music(&["a"]) };
        d.handle_scene(chosen, MS(50));
        assert_eq!(heard(&drain(&mut d)), Some(vec![SLATE_AUDIO_SOURCE.to_string()]));
        // Without music, a slate is silent.
        d.handle_scene(Scene { slate_audio: None, ..d.scene.clone() }, MS(60));
        assert_eq!(heard(&drain(&mut d)), Some(vec![]));
    }

    #[test]
    fn an_overlay_whose_render_failed_is_drawn_again_on_the_next_tick() {
        let mut d = director();
        d.painter.failures = 2;
        let mut s = scene(&[], "grid");
        s.overlays = vec![Overlay::Banner { text: "Hello".into(), color: None }];
        d.handle_scene(s, MS(0));
        assert!(!drain(&mut d).iter().any(|o| matches!(o, Output::ShowOverlay(_))));
        assert_eq!(d.poll_timeout(), Some(MS(0)), "a failed overlay asks for a tick");
        d.handle_tick(MS(0));
        assert!(!drain(&mut d).iter().any(|o| matches!(o, Output::ShowOverlay(_))), "failed again");
        d.handle_tick(MS(0) + ANIMATE_EVERY);
        assert!(drain(&mut d).iter().any(|o| matches!(o, Output::ShowOverlay(l) if l.id == "banner")));
        assert_eq!(d.poll_timeout(), None, "nothing left to draw");
    }
}
