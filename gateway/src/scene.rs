//! The scene: who is on stage, the layout, and the overlays the hosts set. One type and one validation serve
//! the REST API (`PUT /api/broadcasts/{id}/scene`) and the WebSocket (`scene-update`); the program reads the
//! same type. Every text has a documented length limit, so no accepted scene can make an overlay plugin miss
//! its deadline (`docs/protocol.md`, "Scene").

use backyard_core::director;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signaling::RoomEvent;
use crate::state::AppState;
use crate::store::Broadcast;

/// At most this many participants on stage.
pub const MAX_STAGE: usize = 25;

/// Length limits of the overlay texts, in characters.
pub mod limits {
    pub const BANNER_TEXT: usize = 200;
    pub const LOWER_THIRD_NAME: usize = 80;
    pub const LOWER_THIRD_TITLE: usize = 120;
    pub const COMMENT_NAME: usize = 80;
    pub const COMMENT_TEXT: usize = 2000;
    pub const TICKER_TEXT: usize = 500;
    /// Overlays of plugins in one scene, shown or not.
    pub const PLUGIN_OVERLAYS: usize = 8;
    /// Props one plugin overlay is given.
    pub const PLUGIN_PROPS: usize = 16;
    /// One prop's value.
    pub const PLUGIN_PROP_TEXT: usize = 500;
    /// The name of the brand a scene carries.
    pub const BRAND_NAME: usize = 60;
    /// The line under a slate's title.
    pub const SLATE_TEXT: usize = 120;
}

/// What is on screen.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scene {
    /// Participant ids on stage, in order (at most 25, no repeats).
    #[serde(default)]
    pub stage: Vec<Uuid>,
    /// A layout id the server offers (`joined.layouts`; first-party ids are plain, a third-party plugin's are
    /// `<plugin>/<id>`).
    #[serde(default = "default_layout")]
    pub layout: String,
    #[serde(default)]
    pub overlays: Overlays,
    /// The brand the hosts applied (a copy of one of their brand kits), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<SceneBrand>,
    /// A full-screen slate shown on purpose instead of the stage (nobody on stage is seen or heard meanwhile),
    /// or none. While on air with nobody on stage the program shows "Be right back" by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slate: Option<Slate>,
    /// An uploaded image (`/api/uploads/<sha256>` from `POST /api/upload`) filling the canvas behind every
    /// slate: the one the hosts show and the "Be right back" the program shows by itself. None: the program's
    /// background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slate_image: Option<String>,
    /// A video clip playing into the program, or none. The server takes it off the scene when it has played
    /// to its end; setting it again plays it from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<SceneClip>,
    /// An uploaded clip (`/api/uploads/<sha256>` of a video with sound) whose sound loops under every slate, the
    /// one the hosts show and the "Be right back" the program shows by itself, so viewers hear the show go on;
    /// none: silence under a slate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slate_audio: Option<String>,
    /// Canvases composed beside the program's main one (at most 2): a 9:16 picture of the same show for
    /// Shorts, TikTok or Reels beside the 16:9 one, say. Each has its own size and layout; the stage, overlays,
    /// slates and clips are the main canvas's, laid out for each canvas. A destination streams one of them by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canvases: Vec<SceneCanvas>,
}

/// A canvas beside the program's main one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SceneCanvas {
    /// Names it, for destinations (`canvas` on a destination): 1–32 of `a-z`, `0-9` and `-`, unique; `main` is the
    /// program's own canvas.
    pub id: String,
    /// Width in pixels: even, 160 to 3840.
    pub width: u32,
    /// Height in pixels: even, 160 to 3840.
    pub height: u32,
    /// A layout id the server offers, as the scene's `layout`.
    #[serde(default = "default_layout")]
    pub layout: String,
    /// Overlays of its own, as the scene's `overlays`; absent: the main canvas's, laid out for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlays: Option<Overlays>,
}

/// The id of the program's own canvas, as destinations name it.
pub const MAIN_CANVAS: &str = "main";

/// A side of a canvas or of a destination's encode, in pixels: even, 160 to 3840; else what is wrong with it.
pub fn check_side(pixels: u32) -> Result<(), &'static str> {
    if pixels.is_multiple_of(2) && (160..=3840).contains(&pixels) {
        Ok(())
    } else {
        Err("must be an even number of pixels from 160 to 3840")
    }
}

/// Canvases a scene may add beside the main one.
pub const MAX_EXTRA_CANVASES: usize = backyard_core::compositor::MAX_CANVASES - 1;

impl Default for Scene {
    fn default() -> Self {
        Scene {
            stage: Vec::new(),
            layout: default_layout(),
            overlays: Overlays::default(),
            brand: None,
            slate: None,
            slate_image: None,
            clip: None,
            slate_audio: None,
            canvases: Vec::new(),
        }
    }
}

/// A clip the hosts play: an uploaded video (`POST /api/upload`), over the whole canvas or in a tile.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SceneClip {
    /// `/api/uploads/<sha256>` of an uploaded MP4.
    pub url: String,
    /// Shown on its tile; at most 100 characters.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mode: ClipMode,
}

/// Where a clip shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClipMode {
    /// Over the whole canvas (the people on stage are still heard).
    #[default]
    Full,
    /// In a tile the layout places, as it places a screen share.
    Tile,
}

/// A slate the hosts show: which one, and a line of their own under its title.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Slate {
    pub kind: SlateKind,
    /// At most 120 characters; none when empty.
    #[serde(default)]
    pub text: String,
}

/// The slates a show has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlateKind {
    /// "Starting soon", before the show.
    Starting,
    /// "Be right back", a break.
    Brb,
    /// "Thanks for watching", at the end.
    Ending,
}

impl SlateKind {
    /// The slate's title on screen.
    pub fn title(self) -> &'static str {
        match self {
            SlateKind::Starting => "Starting soon",
            SlateKind::Brb => director::AWAY_SLATE_TITLE,
            SlateKind::Ending => "Thanks for watching",
        }
    }
}

/// A brand kit as a scene carries it (the studio copies it from `/api/brands` when a host applies it), so the
/// program takes its colours without reading the store.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SceneBrand {
    /// The brand kit it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default)]
    pub name: String,
    /// `#rrggbb`: the colour of every text overlay (banner, lower third, ticker, featured comment) that sets
    /// none of its own.
    pub color: String,
    /// `#rrggbb` behind the tiles; black when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// An image (`/api/uploads/<sha256>` from `POST /api/upload`) covering the canvas behind the tiles, over
    /// the background colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^/api/uploads/[0-9a-f]{64}$")]
    pub background_image: Option<String>,
    /// The font of the banner, lower third, ticker, featured comment and slate: one of [`FONTS`]; sans when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(sans|serif|mono)$")]
    pub font: Option<String>,
}

/// The fonts Backyard ships (DejaVu Sans, Serif and Sans Mono), as a brand names them.
pub const FONTS: [&str; 3] = ["sans", "serif", "mono"];

/// `#rrggbb` as RGB, or `None` when it is not that form.
pub fn rgb(hex: &str) -> Option<[u8; 3]> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

fn default_layout() -> String {
    "grid".into()
}

/// The overlays the studio controls. Each is drawn by the overlay plugin while `visible`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Overlays {
    /// A message box near the bottom; text at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<TextOverlay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_third: Option<LowerThird>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,
    /// A chat message shown on screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
    /// Text scrolling along the bottom edge; text at most 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticker: Option<TextOverlay>,
    /// An uploaded PNG covering the whole canvas over the tiles, under the other overlays (its transparent
    /// parts show the tiles: a frame, a border, a sponsor strip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<PictureOverlay>,
    /// Overlays of installed overlay plugins other than the first-party one, by `<plugin>/<overlay>` as
    /// `joined.overlays` offers them (at most 8).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub plugins: std::collections::BTreeMap<String, PluginOverlay>,
}

/// A plugin's overlay in the scene: drawn by its plugin while `visible`, with the props the hosts set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginOverlay {
    #[serde(default)]
    pub visible: bool,
    /// Values for props the overlay reads (its `props` in `joined.overlays`): at most 16, each at most 500
    /// characters.
    #[serde(default)]
    pub props: std::collections::BTreeMap<String, String>,
}

/// An overlay that shows a text (the banner, the ticker); its length limit depends on which.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TextOverlay {
    #[serde(default)]
    pub visible: bool,
    #[serde(default)]
    pub text: String,
    /// `#rgb`, `#rrggbb` or `#rrggbbaa`; the operator's accent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Name and title at the bottom left.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LowerThird {
    #[serde(default)]
    pub visible: bool,
    /// At most 80 characters.
    #[serde(default)]
    pub name: String,
    /// At most 120 characters.
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// An uploaded image over the whole canvas.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PictureOverlay {
    #[serde(default)]
    pub visible: bool,
    /// `/api/uploads/<sha256>` as `POST /api/upload` returned it, or empty.
    #[serde(default)]
    pub url: String,
}

/// An uploaded image in a corner.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Logo {
    #[serde(default)]
    pub visible: bool,
    /// `/api/uploads/<sha256>` as `POST /api/upload` returned it, or empty.
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Corner>,
    /// Width as a share of the canvas width, 0.02 to 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
}

/// A corner of the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    pub fn as_str(self) -> &'static str {
        match self {
            Corner::TopLeft => "top-left",
            Corner::TopRight => "top-right",
            Corner::BottomLeft => "bottom-left",
            Corner::BottomRight => "bottom-right",
        }
    }
}

/// A chat message on screen.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Comment {
    #[serde(default)]
    pub visible: bool,
    /// The chat message's id, so the studio knows which one is showing.
    #[serde(default)]
    pub message_id: String,
    /// Author, at most 80 characters.
    #[serde(default)]
    pub name: String,
    /// At most 500 characters.
    #[serde(default)]
    pub text: String,
}

/// Why a scene was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// It breaks a rule (names the field).
    #[error(transparent)]
    Invalid(#[from] SceneError),
    /// Storing it failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The one path a new scene takes, from REST or the WebSocket: checked against the layouts the server offers
/// now, stored, and announced to the room (`scene-updated`).
pub async fn apply(state: &AppState, broadcast: Uuid, scene: Scene) -> Result<Scene, ApplyError> {
    let offered = state.plugins.offered().await;
    let layouts: Vec<String> = offered.layouts.into_iter().map(|l| l.id).collect();
    scene.validate(&layouts, &offered.overlays)?;
    // Someone waiting backstage comes on stage only once a host admitted them.
    if let Some(hub) = crate::signaling::Hub::running(state) {
        let waiting: Vec<Uuid> =
            hub.participants(broadcast).into_iter().filter(|p| p.backstage).map(|p| p.id).collect();
        if let Some((i, id)) = scene.stage.iter().enumerate().find(|(_, id)| waiting.contains(id)) {
            return Err(bad(&format!("stage[{i}]"), format!("{id} is backstage: admit them first")).into());
        }
    }
    // While live, a destination streams its canvas by its place among the program's canvases: a canvas may be
    // added, resized or laid out again, never taken away or moved, until the show ends.
    if let Some(b) = state.store.broadcast(broadcast).await?
        && b.status == crate::store::BroadcastStatus::Live
    {
        let before = Scene::of(&b).canvases;
        for (i, c) in before.iter().enumerate() {
            if scene.canvases.get(i).is_none_or(|n| n.id != c.id) {
                return Err(bad(
                    &format!("canvases[{i}]"),
                    format!("the {} canvas stays while live: end the broadcast to take it away or move it", c.id),
                )
                .into());
            }
        }
    }
    for (field, url) in [("clip.url", scene.clip.as_ref().map(|c| &c.url)), ("slateAudio", scene.slate_audio.as_ref())]
    {
        let Some(url) = url else { continue };
        let upload = state.store.upload_by_sha(crate::uploads::sha_of_url(url).unwrap_or_default()).await?;
        if upload.is_none_or(|u| u.content_type != crate::uploads::CLIP_TYPE) {
            return Err(bad(field, "is not a video clip uploaded to this server").into());
        }
    }
    let value = serde_json::to_value(&scene).expect("a Scene always serializes");
    state.store.set_scene(broadcast, value).await?;
    let event = RoomEvent::SceneUpdated { scene: Box::new(scene.clone()) };
    if let Err(e) = state.bus.publish(&crate::bus::topic::broadcast(broadcast), event.to_bus()).await {
        tracing::warn!(%broadcast, "could not publish scene-updated: {e}");
    }
    Ok(scene)
}

/// A scene field that breaks a rule: the REST API answers 422, the WebSocket an `error` event, both naming
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SceneError {
    /// JSON path of the field, e.g. `overlays.banner.text`.
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> SceneError {
    SceneError { field: field.to_owned(), message: message.into() }
}

/// A text within `max` characters, without control characters.
fn text(field: &str, value: &str, max: usize) -> Result<(), SceneError> {
    if value.chars().count() > max {
        return Err(bad(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(())
}

fn color(field: &str, value: Option<&String>) -> Result<(), SceneError> {
    let Some(v) = value else { return Ok(()) };
    let hex = v.strip_prefix('#').unwrap_or("");
    if ![3, 6, 8].contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(field, "must be a colour like #2563eb"));
    }
    Ok(())
}

impl Overlays {
    /// Checks every overlay's rule; `prefix` is where they are in the scene (`overlays`, or a canvas's), for the
    /// field an error names; `offered` are the plugins' overlays.
    fn validate(&self, prefix: &str, choices: &[director::OverlayChoice]) -> Result<(), SceneError> {
        let o = self;
        if let Some(b) = &o.banner {
            b.validate(&format!("{prefix}.banner"), limits::BANNER_TEXT)?;
        }
        if let Some(l) = &o.lower_third {
            text(&format!("{prefix}.lowerThird.name"), &l.name, limits::LOWER_THIRD_NAME)?;
            text(&format!("{prefix}.lowerThird.title"), &l.title, limits::LOWER_THIRD_TITLE)?;
            color(&format!("{prefix}.lowerThird.color"), l.color.as_ref())?;
        }
        if let Some(p) = &o.picture
            && !p.url.is_empty()
            && crate::uploads::sha_of_url(&p.url).is_none()
        {
            return Err(bad(
                &format!("{prefix}.picture.url"),
                "must be an /api/uploads/<sha256> URL from POST /api/upload",
            ));
        }
        if let Some(l) = &o.logo {
            if !l.url.is_empty() && crate::uploads::sha_of_url(&l.url).is_none() {
                return Err(bad(
                    &format!("{prefix}.logo.url"),
                    "must be an /api/uploads/<sha256> URL from POST /api/upload",
                ));
            }
            if l.size.is_some_and(|s| !(0.02..=0.5).contains(&s)) {
                return Err(bad(&format!("{prefix}.logo.size"), "must be between 0.02 and 0.5"));
            }
        }
        if let Some(c) = &o.comment {
            text(&format!("{prefix}.comment.messageId"), &c.message_id, 64)?;
            text(&format!("{prefix}.comment.name"), &c.name, limits::COMMENT_NAME)?;
            text(&format!("{prefix}.comment.text"), &c.text, limits::COMMENT_TEXT)?;
        }
        if let Some(t) = &o.ticker {
            t.validate(&format!("{prefix}.ticker"), limits::TICKER_TEXT)?;
        }
        if o.plugins.len() > limits::PLUGIN_OVERLAYS {
            return Err(bad(
                &format!("{prefix}.plugins"),
                format!("at most {} plugin overlays", limits::PLUGIN_OVERLAYS),
            ));
        }
        for (key, overlay) in &o.plugins {
            let field = format!("{prefix}.plugins.{key}");
            let Some(offered) = choices.iter().find(|c| &c.id == key) else {
                let ids: Vec<&str> = choices.iter().map(|c| c.id.as_str()).collect();
                let known =
                    if ids.is_empty() { "none is installed".to_string() } else { format!("one of {}", ids.join(", ")) };
                return Err(bad(&field, format!("unknown plugin overlay; {known}")));
            };
            if overlay.props.len() > limits::PLUGIN_PROPS {
                return Err(bad(&format!("{field}.props"), format!("at most {} props", limits::PLUGIN_PROPS)));
            }
            for (prop, value) in &overlay.props {
                if !offered.props.contains(prop) {
                    let reads = if offered.props.is_empty() { "none".to_string() } else { offered.props.join(", ") };
                    return Err(bad(
                        &format!("{field}.props.{prop}"),
                        format!("the overlay reads no such prop; it reads {reads}"),
                    ));
                }
                text(&format!("{field}.props.{prop}"), value, limits::PLUGIN_PROP_TEXT)?;
            }
        }
        Ok(())
    }
}

impl TextOverlay {
    /// Its text within `max` characters and a well-formed colour; `field` is where it is (`overlays.banner`).
    fn validate(&self, field: &str, max: usize) -> Result<(), SceneError> {
        text(&format!("{field}.text"), &self.text, max)?;
        color(&format!("{field}.color"), self.color.as_ref())
    }
}

impl Scene {
    /// Checks every rule; `layouts` are the layout ids the server offers now, `overlays` the plugins' overlays.
    pub fn validate(&self, layouts: &[String], overlays: &[director::OverlayChoice]) -> Result<(), SceneError> {
        if !layouts.contains(&self.layout) {
            return Err(bad("layout", format!("unknown layout; one of {}", layouts.join(", "))));
        }
        if self.stage.len() > MAX_STAGE {
            return Err(bad("stage", format!("at most {MAX_STAGE} participants on stage")));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.stage.iter().find(|id| !seen.insert(**id)) {
            return Err(bad("stage", format!("{dup} is on stage twice")));
        }
        self.overlays.validate("overlays", overlays)?;
        if let Some(c) = &self.clip {
            if crate::uploads::sha_of_url(&c.url).is_none() {
                return Err(bad("clip.url", "must be an /api/uploads/<sha256> URL of a video from POST /api/upload"));
            }
            text("clip.name", &c.name, 100)?;
        }
        if let Some(b) = &self.brand {
            text("brand.name", &b.name, limits::BRAND_NAME)?;
            if rgb(&b.color).is_none() {
                return Err(bad("brand.color", "must be a colour like #2563eb"));
            }
            if b.background.as_deref().is_some_and(|c| rgb(c).is_none()) {
                return Err(bad("brand.background", "must be a colour like #14213d"));
            }
            if b.font.as_deref().is_some_and(|f| !FONTS.contains(&f)) {
                return Err(bad("brand.font", "must be one of sans, serif, mono"));
            }
            if b.background_image.as_deref().is_some_and(|url| crate::uploads::sha_of_url(url).is_none()) {
                return Err(bad("brand.backgroundImage", "must be an /api/uploads/<sha256> URL from POST /api/upload"));
            }
        }
        if self.slate_image.as_deref().is_some_and(|url| crate::uploads::sha_of_url(url).is_none()) {
            return Err(bad("slateImage", "must be an /api/uploads/<sha256> URL from POST /api/upload"));
        }
        if let Some(slate) = &self.slate {
            text("slate.text", &slate.text, limits::SLATE_TEXT)?;
        }
        if self.slate_audio.as_deref().is_some_and(|url| crate::uploads::sha_of_url(url).is_none()) {
            return Err(bad("slateAudio", "must be an /api/uploads/<sha256> URL of a clip from POST /api/upload"));
        }
        self.validate_canvases(layouts, overlays)?;
        Ok(())
    }

    fn validate_canvases(&self, layouts: &[String], choices: &[director::OverlayChoice]) -> Result<(), SceneError> {
        if self.canvases.len() > MAX_EXTRA_CANVASES {
            return Err(bad("canvases", format!("at most {MAX_EXTRA_CANVASES} canvases beside the main one")));
        }
        for (i, c) in self.canvases.iter().enumerate() {
            let field = |name: &str| format!("canvases[{i}].{name}");
            let well_formed = (1..=32).contains(&c.id.len())
                && c.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                return Err(bad(&field("id"), "must be 1 to 32 of a-z, 0-9 and -"));
            }
            if c.id == MAIN_CANVAS || self.canvases[..i].iter().any(|o| o.id == c.id) {
                return Err(bad(&field("id"), format!("{} names another canvas", c.id)));
            }
            for (name, v) in [("width", c.width), ("height", c.height)] {
                check_side(v).map_err(|message| bad(&field(name), message))?;
            }
            if !layouts.contains(&c.layout) {
                return Err(bad(&field("layout"), format!("unknown layout; one of {}", layouts.join(", "))));
            }
            if let Some(o) = &c.overlays {
                o.validate(&field("overlays"), choices)?;
            }
        }
        Ok(())
    }

    /// Where canvas `id` (`None`: the main one) is among the program's canvases (0: the main one) and its size
    /// (`main` for the main one), if the scene has it.
    pub fn find_canvas(&self, id: Option<&str>, main: (u32, u32)) -> Option<(usize, (u32, u32))> {
        match id {
            None | Some(MAIN_CANVAS) => Some((0, main)),
            Some(id) => {
                let i = self.canvases.iter().position(|c| c.id == id)?;
                Some((i + 1, (self.canvases[i].width, self.canvases[i].height)))
            }
        }
    }

    /// The scene as the director of one of its other canvases takes it: that canvas's layout, and its own overlays
    /// when it has them.
    pub fn to_director_for(&self, canvas: &SceneCanvas) -> director::Scene {
        let mut scene = match &canvas.overlays {
            Some(own) => Scene { overlays: own.clone(), ..self.clone() }.to_director(),
            None => self.to_director(),
        };
        scene.layout.clone_from(&canvas.layout);
        scene
    }

    /// The scene as the program's director takes it: visible overlays only.
    pub fn to_director(&self) -> director::Scene {
        let o = &self.overlays;
        // An overlay's own colour, else the brand's, else (none) the operator's accent.
        let brand = self.brand.as_ref().map(|b| b.color.clone());
        let colour = |own: &Option<String>| own.clone().or_else(|| brand.clone());
        let mut overlays = Vec::new();
        if let Some(b) = o.banner.as_ref().filter(|b| b.visible) {
            overlays.push(director::Overlay::Banner { text: b.text.clone(), color: colour(&b.color) });
        }
        if let Some(l) = o.lower_third.as_ref().filter(|l| l.visible) {
            overlays.push(director::Overlay::LowerThird {
                name: l.name.clone(),
                title: l.title.clone(),
                color: colour(&l.color),
            });
        }
        if let Some(p) = o.picture.as_ref().filter(|p| p.visible && !p.url.is_empty()) {
            overlays.push(director::Overlay::Picture { url: p.url.clone() });
        }
        if let Some(l) = o.logo.as_ref().filter(|l| l.visible && !l.url.is_empty()) {
            overlays.push(director::Overlay::Logo {
                url: l.url.clone(),
                position: l.position.map(|c| c.as_str().to_owned()),
                size: l.size,
            });
        }
        if let Some(c) = o.comment.as_ref().filter(|c| c.visible) {
            overlays.push(director::Overlay::Comment {
                author: c.name.clone(),
                text: c.text.clone(),
                color: brand.clone(),
            });
        }
        if let Some(t) = o.ticker.as_ref().filter(|t| t.visible) {
            overlays.push(director::Overlay::Ticker { text: t.text.clone(), color: colour(&t.color) });
        }
        for (key, p) in o.plugins.iter().filter(|(_, p)| p.visible) {
            // Validated keys are `<plugin>/<overlay>`.
            let Some((plugin, id)) = key.split_once('/') else { continue };
            overlays.push(director::Overlay::Plugin {
                plugin: plugin.to_owned(),
                id: id.to_owned(),
                props: p.props.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        }
        director::Scene {
            stage: self.stage.iter().map(Uuid::to_string).collect(),
            layout: self.layout.clone(),
            overlays,
            background: self.brand.as_ref().and_then(|b| b.background.as_deref()).and_then(rgb),
            background_image: self.brand.as_ref().and_then(|b| b.background_image.clone()),
            slate: self.slate.as_ref().map(|s| director::Slate { title: s.kind.title().into(), text: s.text.clone() }),
            accent: brand,
            font: self.brand.as_ref().and_then(|b| b.font.clone()),
            slate_image: self.slate_image.clone(),
            clip: self.clip.as_ref().map(|c| director::Clip { name: c.name.clone(), full: c.mode == ClipMode::Full }),
            slate_audio: self.slate_audio.clone(),
        }
    }

    /// The broadcast's stored scene (the default one when none was set, or a stored one no longer reads).
    pub fn of(b: &Broadcast) -> Scene {
        serde_json::from_value(b.scene.0.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layouts() -> Vec<String> {
        ["grid", "solo", "corner-layouts/corner"].map(String::from).to_vec()
    }

    fn overlays() -> Vec<director::OverlayChoice> {
        vec![director::OverlayChoice {
            id: "scoreboard/score".into(),
            name: "Score".into(),
            description: "The score".into(),
            props: vec!["home".into(), "away".into()],
            plugin: "scoreboard".into(),
        }]
    }

    fn parse(v: serde_json::Value) -> Result<Scene, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_canvas_picture_is_an_upload_shown_while_visible() {
        let url = format!("/api/uploads/{}", "ab".repeat(32));
        let shown = parse(serde_json::json!({"overlays": {"picture": {"visible": true, "url": url}}})).unwrap();
        assert_eq!(shown.validate(&layouts(), &overlays()), Ok(()));
        assert_eq!(shown.to_director().overlays, vec![director::Overlay::Picture { url: url.clone() }]);
        let hidden = parse(serde_json::json!({"overlays": {"picture": {"visible": false, "url": url}}})).unwrap();
        assert_eq!(hidden.to_director().overlays, vec![]);
        let elsewhere =
            parse(serde_json::json!({"overlays": {"picture": {"visible": true, "url": "https://x.example/f.png"}}}));
        assert_eq!(elsewhere.unwrap().validate(&layouts(), &overlays()).unwrap_err().field, "overlays.picture.url");
    }

    #[test]
    fn a_brand_colours_the_text_overlays_without_a_colour_and_the_background() {
        let s = parse(serde_json::json!({
            "layout": "grid",
            "overlays": {"banner": {"text": "Hi", "visible": true},
                         "ticker": {"text": "News", "visible": true, "color": "#00ff00"},
                         "comment": {"messageId": "m1", "name": "Viewer", "text": "hello", "visible": true}},
            "brand": {"name": "Red", "color": "#d03030", "background": "#102030"}}))
        .unwrap();
        assert_eq!(s.validate(&layouts(), &overlays()), Ok(()));
        let d = s.to_director();
        assert_eq!(d.background, Some([0x10, 0x20, 0x30]));
        let red = Some("#d03030".to_string());
        assert!(d.overlays.contains(&director::Overlay::Banner { text: "Hi".into(), color: red.clone() }));
        assert!(d.overlays.contains(&director::Overlay::Comment {
            author: "Viewer".into(),
            text: "hello".into(),
            color: red
        }));
        assert!(
            d.overlays.contains(&director::Overlay::Ticker { text: "News".into(), color: Some("#00ff00".into()) }),
            "an overlay's own colour wins over the brand's"
        );
        assert_eq!(d.background_image, None);
        let picture = format!("/api/uploads/{}", "ab".repeat(32));
        let pictured = parse(serde_json::json!({"brand": {"color": "#d03030", "backgroundImage": picture}})).unwrap();
        assert_eq!(pictured.validate(&layouts(), &overlays()), Ok(()));
        assert_eq!(pictured.to_director().background_image, Some(picture), "the brand's picture behind the tiles");
        let serif = parse(serde_json::json!({"brand": {"color": "#d03030", "font": "serif"}})).unwrap();
        assert_eq!(serif.validate(&layouts(), &overlays()), Ok(()));
        assert_eq!(serif.to_director().font.as_deref(), Some("serif"));
        let comic = parse(serde_json::json!({"brand": {"color": "#d03030", "font": "comic"}})).unwrap();
        assert_eq!(comic.validate(&layouts(), &overlays()).unwrap_err().field, "brand.font");
        let elsewhere =
            parse(serde_json::json!({"brand": {"color": "#d03030", "backgroundImage": "https://x.example/a.png"}}));
        let err = elsewhere.unwrap().validate(&layouts(), &overlays()).unwrap_err();
        assert_eq!(err.field, "brand.backgroundImage", "{err:?}");
        let plain = Scene::default().to_director();
        assert_eq!(plain.background, None, "no brand: the program's own background");
        assert_eq!(plain.background_image, None);
        assert_eq!(rgb("#0a0B0c"), Some([10, 11, 12]));
        for bad in ["0a0b0c", "#0a0b0", "#0a0b0g", "#0a0b0c0d", "#ééé"] {
            assert_eq!(rgb(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_canvas_has_its_layout_and_the_main_overlays_or_its_own_checked_under_its_name() {
        let mut s = parse(serde_json::json!({
            "layout": "grid",
            "overlays": {"banner": {"text": "Main", "visible": true}},
            "canvases": [{"id": "vertical", "width": 720, "height": 1280, "layout": "solo"},
                         {"id": "square", "width": 720, "height": 720,
                          "overlays": {"ticker": {"text": "Square news", "visible": true}}}]}))
        .unwrap();
        assert_eq!(s.validate(&layouts(), &overlays()), Ok(()));
        let (tall, square) = (s.to_director_for(&s.canvases[0]), s.to_director_for(&s.canvases[1]));
        assert_eq!((tall.layout.as_str(), square.layout.as_str()), ("solo", "grid"));
        assert_eq!(tall.overlays, s.to_director().overlays, "no overlays of its own: the main canvas's");
        assert_eq!(square.overlays, [director::Overlay::Ticker { text: "Square news".into(), color: None }]);
        let main = (1280, 720);
        assert_eq!(s.find_canvas(Some("square"), main), Some((2, (720, 720))));
        assert_eq!(s.find_canvas(None, main), Some((0, main)));
        assert_eq!(s.find_canvas(Some("round"), main), None);
        s.canvases[1].overlays.as_mut().unwrap().banner =
            Some(TextOverlay { visible: true, text: "z".repeat(500), color: None });
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "canvases[1].overlays.banner.text");
        s.canvases.push(s.canvases[0].clone());
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "canvases");
    }

    #[test]
    fn the_studio_scene_reads_and_passes() {
        let s = parse(serde_json::json!({
            "stage": [Uuid::nil()], "layout": "corner-layouts/corner",
            "overlays": {"banner": {"text": "Hello", "visible": true, "color": "#2563eb"},
                         "lowerThird": {"name": "Ada", "title": "Host", "visible": false},
                         "logo": {"url": "", "visible": false},
                         "comment": {"messageId": "", "name": "", "text": "", "visible": false}}}))
        .unwrap();
        assert_eq!(s.validate(&layouts(), &overlays()), Ok(()));
        assert_eq!(s.overlays.banner.as_ref().unwrap().text, "Hello");
    }

    #[test]
    fn unknown_layouts_crowds_long_texts_and_non_objects_are_refused_naming_the_field() {
        let mut s = Scene { layout: "disco".into(), ..Scene::default() };
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "layout");
        s.layout = "grid".into();
        s.stage = (0..30).map(|_| Uuid::new_v4()).collect();
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "stage");
        s.stage = vec![Uuid::nil(), Uuid::nil()];
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "stage");
        s.stage.clear();
        s.overlays.banner = Some(TextOverlay { visible: true, text: "x".repeat(2000), color: None });
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "overlays.banner.text");
        s.overlays.banner = None;
        s.overlays.ticker = Some(TextOverlay { visible: true, text: "y".repeat(3000), color: None });
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "overlays.ticker.text");
        s.overlays.ticker = Some(TextOverlay { visible: true, text: "ok\u{7}".into(), color: None });
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "overlays.ticker.text");
        s.overlays.ticker = None;
        s.slate_audio = Some("https://elsewhere.example/music.mp3".into());
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "slateAudio");
        assert!(parse(serde_json::json!({"overlays": {"banner": "text"}})).is_err());
        assert!(parse(serde_json::json!({"overlays": {"plugins": {"scoreboard/score": "on"}}})).is_err());
        assert!(parse(serde_json::json!({"overlays": {"fireworks": {}}})).is_err());
    }

    #[test]
    fn plugin_overlays_name_an_offered_overlay_and_only_the_props_it_reads() {
        let mut s = Scene::default();
        let on = |props: &[(&str, &str)]| PluginOverlay {
            visible: true,
            props: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        s.overlays.plugins.insert("scoreboard/score".into(), on(&[("home", "2"), ("away", "1")]));
        assert_eq!(s.validate(&layouts(), &overlays()), Ok(()));
        let d = s.to_director();
        assert_eq!(
            d.overlays,
            [director::Overlay::Plugin {
                plugin: "scoreboard".into(),
                id: "score".into(),
                props: vec![("away".into(), "1".into()), ("home".into(), "2".into())],
            }]
        );
        s.overlays.plugins.insert("scoreboard/score".into(), on(&[("colour", "red")]));
        assert_eq!(
            s.validate(&layouts(), &overlays()).unwrap_err().field,
            "overlays.plugins.scoreboard/score.props.colour"
        );
        s.overlays.plugins.insert("scoreboard/score".into(), on(&[("home", &"9".repeat(501))]));
        assert_eq!(
            s.validate(&layouts(), &overlays()).unwrap_err().field,
            "overlays.plugins.scoreboard/score.props.home"
        );
        s.overlays.plugins.clear();
        s.overlays.plugins.insert("fireworks/boom".into(), on(&[]));
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "overlays.plugins.fireworks/boom");
        s.overlays.plugins = (0..9).map(|i| (format!("scoreboard/s{i}"), on(&[]))).collect();
        assert_eq!(s.validate(&layouts(), &overlays()).unwrap_err().field, "overlays.plugins");
        // A hidden one is kept in the scene but not drawn.
        s.overlays.plugins = [("scoreboard/score".to_string(), PluginOverlay { visible: false, ..on(&[]) })].into();
        assert!(s.to_director().overlays.is_empty());
    }
}
