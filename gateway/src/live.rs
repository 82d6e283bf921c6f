//! The program of each broadcast on this node, from the studio opening to the end of the broadcast.
//!
//! A host entering the studio starts the broadcast's [`Program`]: the router's tap feeds it every on-stage
//! participant's frames (no network hop), a director task follows the room on the bus (who is there, who
//! speaks, the scene the hosts set) and turns it into placements (the layout plugin) and overlay layers (the
//! overlay plugin). `POST /start` attaches egress (the broadcast's enabled destinations, resolved by their
//! adapters, plus the recording); `POST /end` flushes and finalises it. Output status goes to the room as
//! `destination-status` and to Prometheus; program health as `program-status`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backyard_core::bus::{Event, topic};
use backyard_core::compositor::{CompositorConfig, OverlayLayer, Program, ProgramFeed, Rect, StageMember};
use backyard_core::egress::{DestinationConfig, DestinationConstraints, EgressConfig, EncoderSettings, OutputStatus};
use backyard_core::plugin_host::{self as ph, LayoutInstance, OverlayInstance, PluginHost};
use backyard_core::rtc::{MediaNode, TapFrame};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api::broadcasts::Scene;
use crate::error::{ApiError, ApiResult};
use crate::signaling::Participant;
use crate::state::AppState;
use crate::store::Broadcast;

/// The layout plugin the studio's layouts come from, and the overlay plugin for banner, lower third, logo
/// and comment.
const LAYOUT_PLUGIN: &str = "layouts";
const OVERLAY_PLUGIN: &str = "overlays";
/// How often `program-status` is published.
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// How often visible overlays are drawn again while shown, so animated ones (the ticker) move; a plugin
/// answers "unchanged" for the others and nothing reaches the program then.
const ANIMATE_EVERY: Duration = Duration::from_millis(33);

/// The programs running on this node, by broadcast.
#[derive(Default)]
pub struct Programs {
    running: Mutex<HashMap<Uuid, Arc<Live>>>,
}

/// One broadcast's running program.
pub struct Live {
    pub broadcast: Uuid,
    pub program: Arc<Program>,
    director: mpsc::UnboundedSender<Order>,
    on_air: tokio::sync::Mutex<Option<OnAir>>,
    /// The latest status of each output while on air, by output id (destination id or `recording`).
    statuses: Arc<Mutex<HashMap<String, OutputStatus>>>,
}

impl Live {
    /// The latest status of an output (a destination's id), if the program is on air.
    pub fn output_status(&self, id: &str) -> Option<OutputStatus> {
        self.statuses.lock().get(id).cloned()
    }
}

/// Egress attached to a program.
struct OnAir {
    recording: Option<Uuid>,
}

enum Order {
    /// Stop the director (the program ends with the last reference).
    Stop,
    /// Re-read the members from the hub and relayout.
    Refresh,
}

impl Programs {
    /// The broadcast's program, started if it is not running. `members` are who is in the room now.
    pub async fn ensure(
        &self,
        state: &AppState,
        media: &MediaNode,
        broadcast: &Broadcast,
        members: Vec<Participant>,
    ) -> ApiResult<Arc<Live>> {
        if let Some(live) = self.running.lock().get(&broadcast.id) {
            return Ok(live.clone());
        }
        let host = state.plugins.api_host().await?;
        let cfg = &state.cfg.program;
        let mut running = self.running.lock();
        if let Some(live) = running.get(&broadcast.id) {
            return Ok(live.clone());
        }
        let program = Program::start(
            CompositorConfig { width: cfg.width, height: cfg.height, ..CompositorConfig::default() },
            cfg.fps,
        )
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("starting the program: {e}")))?;
        let program = Arc::new(program);
        let feed = Arc::new(ProgramFeed::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let live = Arc::new(Live {
            broadcast: broadcast.id,
            program: program.clone(),
            director: tx,
            on_air: tokio::sync::Mutex::new(None),
            statuses: Arc::default(),
        });
        running.insert(broadcast.id, live.clone());
        drop(running);

        let room = broadcast.id.to_string();
        let tap_program = program.clone();
        let tap_feed = feed.clone();
        media.set_tap(
            &room,
            Some(Arc::new(move |f: &TapFrame<'_>| tap_feed.push(&tap_program, f.participant, f.source, f.data))),
        );
        // The live preview goes to hosts and co-hosts over their WebRTC connections (msid `program`).
        program.set_preview_sink(Some(Arc::new(media.publish_program(&room))));
        let director = Director::new(state, &host, broadcast, program, feed, members);
        tokio::spawn(director.run(state.clone(), media.clone(), rx));
        tracing::info!(broadcast = %broadcast.id, width = cfg.width, height = cfg.height, fps = cfg.fps, "program started");
        Ok(live)
    }

    pub fn get(&self, broadcast: Uuid) -> Option<Arc<Live>> {
        self.running.lock().get(&broadcast).cloned()
    }

    /// The room changed in a way the bus does not carry (a member's seat was given back): relayout.
    pub fn refresh(&self, broadcast: Uuid) {
        if let Some(live) = self.get(broadcast) {
            let _ = live.director.send(Order::Refresh);
        }
    }

    /// Stops the program unless it is on air.
    pub async fn stop_if_idle(&self, broadcast: Uuid) {
        let Some(live) = self.get(broadcast) else { return };
        if live.on_air.lock().await.is_some() {
            return;
        }
        self.running.lock().remove(&broadcast);
        let _ = live.director.send(Order::Stop);
    }

    /// `POST /start`: encode once and push to every enabled destination, recording as well. Fails before
    /// anything goes out when a destination cannot be resolved (naming it) or the encoder cannot start.
    pub async fn go_live(
        &self,
        state: &AppState,
        media: &MediaNode,
        broadcast: &Broadcast,
        members: Vec<Participant>,
    ) -> ApiResult<()> {
        let live = self.ensure(state, media, broadcast, members).await?;
        let mut on_air = live.on_air.lock().await;
        if on_air.is_some() {
            return Err(ApiError::conflict("already_live", "the program is already on air"));
        }
        let destinations = resolve_destinations(state, broadcast.id).await?;
        let recording = state.store.create_recording(broadcast.id, broadcast.user_id, &broadcast.title).await?;
        let path = crate::api::recordings::recording_path(state, recording.id);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| ApiError::Internal(e.into()))?;
        }
        let p = &state.cfg.program;
        let config = EgressConfig {
            encoder: EncoderSettings {
                width: p.width,
                height: p.height,
                fps: p.fps,
                video_kbps: p.video_kbps,
                audio_kbps: p.audio_kbps,
                preset: p.preset.clone(),
                ..EncoderSettings::default()
            },
            destinations,
            recording: Some(path.clone()),
            ..EgressConfig::default()
        };
        let (tx, rx) = mpsc::unbounded_channel::<OutputStatus>();
        live.statuses.lock().clear();
        tokio::spawn(publish_statuses(state.clone(), broadcast.id, live.statuses.clone(), rx));
        let program = live.program.clone();
        let started = tokio::task::spawn_blocking(move || {
            program.go_live(
                config,
                Arc::new(move |s: &OutputStatus| {
                    let _ = tx.send(s.clone());
                }),
            )
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
        match started {
            Ok(settings) => {
                tracing::info!(broadcast = %broadcast.id, ?settings, recording = %path.display(), "on air");
                *on_air = Some(OnAir { recording: Some(recording.id) });
                Ok(())
            }
            Err(e) => {
                let _ = state.store.finish_recording(recording.id, "failed", 0.0, 0).await;
                Err(ApiError::Internal(anyhow::anyhow!("starting the encoder: {e}")))
            }
        }
    }

    /// `POST /end`: flushes and closes every output (bounded by egress' own timeouts), finalises the
    /// recording row, and stops the program.
    pub async fn end_live(&self, state: &AppState, broadcast: Uuid) -> ApiResult<()> {
        let Some(live) = self.get(broadcast) else { return Ok(()) };
        let on_air = live.on_air.lock().await.take();
        if let Some(on_air) = on_air {
            let program = live.program.clone();
            let report = tokio::task::spawn_blocking(move || program.end_live())
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            if let Some(id) = on_air.recording {
                let (duration, size) = report
                    .as_ref()
                    .and_then(|r| r.recording.as_ref())
                    .map(|r| (r.duration_secs, r.size_bytes as i64))
                    .unwrap_or((0.0, 0));
                let status = if size > 0 { "ready" } else { "failed" };
                state.store.finish_recording(id, status, duration, size).await?;
                tracing::info!(%broadcast, recording = %id, duration, size, "recording finalised");
            }
        }
        self.stop_if_idle(broadcast).await;
        Ok(())
    }
}

/// The enabled destinations of a broadcast as egress takes them: each adapter resolves its ingest URL (the
/// key decrypted only here) and encoder limits.
async fn resolve_destinations(state: &AppState, broadcast: Uuid) -> ApiResult<Vec<DestinationConfig>> {
    let mut out = Vec::new();
    for row in state.store.destinations(broadcast).await?.into_iter().filter(|d| d.enabled) {
        let field = format!("destinations.{}", row.id);
        let key = state.cipher.open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid).map_err(|e| {
            ApiError::invalid(&field, format!("{}: the stream key cannot be read ({e}); enter it again", row.name))
        })?;
        let resolved = crate::api::destinations::resolve(state, &row.platform, &row.rtmp_url, &key)
            .await
            .map_err(|e| ApiError::invalid(&field, format!("{}: {e}", row.name)))?;
        let c = resolved.ingest.constraints;
        out.push(DestinationConfig {
            id: row.id.to_string(),
            url: resolved.ingest.primary,
            ca_file: None,
            constraints: DestinationConstraints {
                max_width: Some(c.max_width),
                max_height: Some(c.max_height),
                max_video_kbps: Some(c.max_video_kbps),
                max_audio_kbps: Some(c.max_audio_kbps),
                max_keyframe_interval: Some(Duration::from_secs(c.max_keyframe_interval_s.into())),
                max_fps: Some(c.max_fps),
            },
        });
    }
    Ok(out)
}

/// Every output status change goes to the room (`destination-status`) and to the metrics.
async fn publish_statuses(
    state: AppState,
    broadcast: Uuid,
    latest: Arc<Mutex<HashMap<String, OutputStatus>>>,
    mut rx: mpsc::UnboundedReceiver<OutputStatus>,
) {
    const STATES: [&str; 5] = ["connecting", "live", "reconnecting", "failed", "stopped"];
    while let Some(status) = rx.recv().await {
        latest.lock().insert(status.id.clone(), status.clone());
        let mut data = serde_json::to_value(&status).unwrap_or_default();
        let kind = data["kind"].as_str().unwrap_or("destination").to_owned();
        let current = data["state"].as_str().unwrap_or("").to_owned();
        if kind == "destination" {
            data["destinationId"] = data["id"].clone();
        }
        let b = broadcast.to_string();
        let m = &state.metrics;
        for s in STATES {
            m.output_state.with_label_values(&[&b, &status.id, &kind, s]).set(i64::from(s == current));
        }
        m.output_bitrate_kbps.with_label_values(&[&b, &status.id, &kind]).set(status.bitrate_kbps.into());
        m.output_dropped_frames.with_label_values(&[&b, &status.id, &kind]).set(status.dropped_frames as i64);
        m.output_connects.with_label_values(&[&b, &status.id, &kind]).set(status.connects.into());
        if let Err(e) = state.bus.publish(&topic::broadcast(broadcast), Event::new("destination-status", data)).await {
            tracing::debug!(%broadcast, "could not publish destination-status: {e}");
        }
    }
}

/// Follows the room and keeps the program's stage, placements and overlays in step with it.
struct Director {
    broadcast: Uuid,
    program: Arc<Program>,
    feed: Arc<ProgramFeed>,
    layout: Option<LayoutInstance>,
    overlays: Option<OverlayInstance>,
    scene: Scene,
    members: HashMap<Uuid, Participant>,
    canvas: ph::Size,
    data_dir: PathBuf,
    /// When each overlay was shown (overlay time for animations).
    shown_at: HashMap<String, Instant>,
    /// Decoded uploads by URL (the logo).
    images: HashMap<String, Option<ph::Image>>,
    /// On-stage sources last time, to ask newcomers for a keyframe.
    on_stage: Vec<String>,
}

impl Director {
    fn new(
        state: &AppState,
        host: &PluginHost,
        broadcast: &Broadcast,
        program: Arc<Program>,
        feed: Arc<ProgramFeed>,
        members: Vec<Participant>,
    ) -> Director {
        fn usable<T>(broadcast: Uuid, name: &str, r: Result<T, ph::PluginError>) -> Option<T> {
            r.map_err(|e| tracing::error!(%broadcast, plugin = name, "program without it: {e}")).ok()
        }
        Director {
            broadcast: broadcast.id,
            program,
            feed,
            layout: usable(broadcast.id, LAYOUT_PLUGIN, host.layout(LAYOUT_PLUGIN)),
            overlays: usable(broadcast.id, OVERLAY_PLUGIN, host.overlay(OVERLAY_PLUGIN)),
            scene: crate::api::broadcasts::scene_of(broadcast),
            members: members.into_iter().map(|p| (p.id, p)).collect(),
            canvas: ph::Size { width: state.cfg.program.width, height: state.cfg.program.height },
            data_dir: state.cfg.data_dir.clone(),
            shown_at: HashMap::new(),
            images: HashMap::new(),
            on_stage: Vec::new(),
        }
    }

    async fn run(mut self, state: AppState, media: MediaNode, mut orders: mpsc::UnboundedReceiver<Order>) {
        let mut events = state.bus.subscribe(&topic::broadcast(self.broadcast));
        let room = self.broadcast.to_string();
        self.relayout(&media);
        self.render_overlays();
        let mut status = tokio::time::interval(STATUS_EVERY);
        let mut animate = tokio::time::interval(ANIMATE_EVERY);
        animate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_ticks = 0;
        loop {
            tokio::select! {
                _ = animate.tick(), if !self.shown_at.is_empty() => self.animate_overlays(),
                ev = events.recv() => match ev {
                    Ok(ev) => self.on_event(&ev, &media),
                    // Missed some: rebuild from the hub's view of the room.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync(&state, &media).await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                order = orders.recv() => match order {
                    Some(Order::Refresh) => self.resync(&state, &media).await,
                    Some(Order::Stop) | None => break,
                },
                _ = status.tick() => {
                    let stats = self.program.stats();
                    let fps = (stats.ticks - last_ticks) as f64 / STATUS_EVERY.as_secs_f64();
                    last_ticks = stats.ticks;
                    let data = serde_json::json!({
                        "state": "running",
                        "fps": (fps * 10.0).round() / 10.0,
                        "stats": stats,
                        "onStage": self.on_stage,
                    });
                    let _ = state.bus.publish(&topic::broadcast(self.broadcast), Event::new("program-status", data)).await;
                }
            }
        }
        media.set_tap(&room, None);
        self.program.set_preview_sink(None);
        tracing::info!(broadcast = %self.broadcast, "program stopped");
    }

    /// Takes the members from the hub (the node's view of the room) and relayouts.
    async fn resync(&mut self, state: &AppState, media: &MediaNode) {
        if let Ok(hub) = crate::signaling::Hub::get(state).await {
            self.members = hub.participants(self.broadcast).into_iter().map(|p| (p.id, p)).collect();
        }
        self.relayout(media);
    }

    fn on_event(&mut self, ev: &Event, media: &MediaNode) {
        let participant = || serde_json::from_value::<ParticipantIn>(ev.data["participant"].clone()).ok();
        match ev.event.as_str() {
            "scene-updated" => match serde_json::from_value::<Scene>(ev.data["scene"].clone()) {
                Ok(scene) => {
                    let overlays_changed = scene.overlays != self.scene.overlays;
                    self.scene = scene;
                    self.relayout(media);
                    if overlays_changed {
                        self.render_overlays();
                    }
                }
                Err(e) => tracing::warn!(broadcast = %self.broadcast, "unreadable scene: {e}"),
            },
            "participant-joined" | "participant-status-updated" => {
                if let Some(p) = participant() {
                    let p = p.into_participant();
                    let changed = self.members.get(&p.id).is_none_or(|old| {
                        (old.name != p.name
                            || old.speaking != p.speaking
                            || old.video_enabled != p.video_enabled
                            || old.screen_sharing != p.screen_sharing)
                            && self.scene.stage.contains(&p.id)
                    });
                    self.members.insert(p.id, p);
                    if changed {
                        self.relayout(media);
                    }
                }
            }
            "participant-left" => {
                if let Some(id) = ev.data["participantId"].as_str().and_then(|s| s.parse::<Uuid>().ok())
                    && self.members.remove(&id).is_some()
                {
                    self.feed.forget(&id.to_string());
                    self.relayout(media);
                }
            }
            _ => {}
        }
    }

    /// Who is on stage, in the scene's order: each present member's camera, and their screen when sharing.
    fn stage(&self) -> (Vec<ph::Participant>, Option<String>) {
        let mut out = Vec::new();
        let mut speaker = None;
        for id in &self.scene.stage {
            let Some(m) = self.members.get(id) else { continue };
            let pid = m.id.to_string();
            if m.speaking && speaker.is_none() {
                speaker = Some(pid.clone());
            }
            out.push(ph::Participant {
                id: pid.clone(),
                name: m.name.clone(),
                speaking: m.speaking,
                screen_share: false,
                video_enabled: m.video_enabled,
            });
            if m.screen_sharing {
                out.push(ph::Participant {
                    id: format!("{pid}:screen"),
                    name: format!("{} (screen)", m.name),
                    speaking: false,
                    screen_share: true,
                    video_enabled: true,
                });
            }
        }
        (out, speaker)
    }

    fn relayout(&mut self, media: &MediaNode) {
        let (participants, active_speaker) = self.stage();
        let stage: Vec<StageMember> =
            participants.iter().map(|p| StageMember { id: p.id.clone(), name: p.name.clone() }).collect();
        // Newcomers on stage: their decoders need a keyframe now, not at the next periodic one.
        let room = self.broadcast.to_string();
        for s in &stage {
            if !self.on_stage.contains(&s.id) {
                let participant = s.id.split(':').next().unwrap_or(&s.id);
                media.request_keyframes(&room, participant);
            }
        }
        self.on_stage = stage.iter().map(|s| s.id.clone()).collect();
        let Some(layout) = self.layout.as_mut() else {
            self.program.set_stage(stage);
            return;
        };
        let layout_id = match self.scene.layout.as_str() {
            "screen-share" => "screen",
            other => other,
        };
        let request = ph::Stage { layout: layout_id.to_owned(), canvas: self.canvas, participants, active_speaker };
        let placed = match layout.place(&request) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(broadcast = %self.broadcast, "layout failed, keeping the last placements: {e}");
                return;
            }
        };
        let placements = ph::program_placements(placed, self.canvas.width, self.canvas.height);
        self.program.set_stage(stage);
        if let Err(e) = self.program.set_placements(placements) {
            tracing::warn!(broadcast = %self.broadcast, plugin = LAYOUT_PLUGIN, "placements refused: {e}");
        }
    }

    /// The scene's overlays as the overlay plugin draws them. The studio's keys map onto the plugin's
    /// overlays: `banner` → banner, `lowerThird` → lower-third, `logo` → logo, `comment` → chat.
    fn render_overlays(&mut self) {
        if let Some(layers) = self.draw_overlays(true) {
            if let Err(e) = self.program.set_overlays(layers) {
                tracing::warn!(broadcast = %self.broadcast, plugin = OVERLAY_PLUGIN, "overlays refused: {e}");
            }
        }
    }

    /// Draws the shown overlays again at their current time; the program gets them only if one changed.
    fn animate_overlays(&mut self) {
        if let Some(layers) = self.draw_overlays(false) {
            self.program.update_overlays(layers);
        }
    }

    /// The layers of the scene's visible overlays, or `None` when `always` is false and none changed.
    fn draw_overlays(&mut self, always: bool) -> Option<Vec<OverlayLayer>> {
        let scene = &self.scene.overlays;
        self.shown_at
            .retain(|k, _| scene.get(k).and_then(|v| v.get("visible")).and_then(|x| x.as_bool()) == Some(true));
        let plugin = self.overlays.as_mut()?;
        let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").trim().to_owned();
        let mut requests = Vec::new();
        for (key, v) in &self.scene.overlays {
            if v.get("visible").and_then(|x| x.as_bool()) != Some(true) {
                self.shown_at.remove(key);
                continue;
            }
            let (overlay, props, image) = match key.as_str() {
                "banner" => ("banner", vec![("text", text(v, "text")), ("color", text(v, "color"))], None),
                "lowerThird" => (
                    "lower-third",
                    vec![("name", text(v, "name")), ("title", text(v, "title")), ("color", text(v, "color"))],
                    None,
                ),
                "logo" => {
                    ("logo", vec![("position", text(v, "position")), ("size", text(v, "size"))], Some(text(v, "url")))
                }
                "comment" => ("chat", vec![("author", text(v, "name")), ("message", text(v, "text"))], None),
                "ticker" => ("ticker", vec![("text", text(v, "text")), ("color", text(v, "color"))], None),
                _ => continue,
            };
            let shown = *self.shown_at.entry(key.clone()).or_insert_with(Instant::now);
            let props = props
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(k, value)| ph::Prop { key: k.to_owned(), value })
                .collect();
            let images = match image {
                Some(url) => match load_image(&self.data_dir, &mut self.images, &url) {
                    Some(img) => vec![ph::NamedImage { key: "logo".into(), image: img }],
                    None => continue,
                },
                None => vec![],
            };
            requests.push(ph::OverlayRequest {
                overlay: overlay.to_owned(),
                canvas: self.canvas,
                time_ms: shown.elapsed().as_millis() as u64,
                props,
                images,
            });
        }
        let mut layers = Vec::new();
        let mut changed = always;
        for (z, req) in requests.iter().enumerate() {
            match plugin.render(req) {
                Ok(out) => {
                    changed |= out.changed;
                    if let Some(layer) = out.layer {
                        layers.push(OverlayLayer {
                            id: req.overlay.clone(),
                            rect: Rect::new(layer.x, layer.y, layer.image.width, layer.image.height),
                            rgba: layer.image.rgba.clone(),
                            z: z as i32,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(broadcast = %self.broadcast, plugin = OVERLAY_PLUGIN, overlay = %req.overlay, "overlay not drawn: {e}")
                }
            }
        }
        changed.then_some(layers)
    }
}

/// An uploaded PNG (`/api/uploads/<sha256>`) decoded to RGBA, cached per URL.
fn load_image(
    data_dir: &std::path::Path,
    cache: &mut HashMap<String, Option<ph::Image>>,
    url: &str,
) -> Option<ph::Image> {
    cache
        .entry(url.to_owned())
        .or_insert_with(|| {
            let sha = url.strip_prefix("/api/uploads/")?;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let bytes = std::fs::read(data_dir.join("uploads").join(sha)).ok()?;
            match ph::Rgba::from_png(&bytes) {
                Ok(img) => Some(ph::Image { width: img.width, height: img.height, rgba: img.pixels }),
                Err(e) => {
                    tracing::warn!(url, "logo is not a PNG the program can draw: {e}");
                    None
                }
            }
        })
        .clone()
}

/// A participant as the bus carries it (the signaling `Participant` with its role as text).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantIn {
    id: Uuid,
    user_id: Option<Uuid>,
    name: String,
    role: String,
    audio_enabled: bool,
    video_enabled: bool,
    screen_sharing: bool,
    speaking: bool,
}

impl ParticipantIn {
    fn into_participant(self) -> Participant {
        Participant {
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            role: match self.role.as_str() {
                "host" => "host",
                "cohost" => "cohost",
                _ => "guest",
            },
            audio_enabled: self.audio_enabled,
            video_enabled: self.video_enabled,
            screen_sharing: self.screen_sharing,
            speaking: self.speaking,
        }
    }
}

/// After a restart of a single-node server (no Redis): broadcasts still marked live have lost their program,
/// so they end now, and recordings still marked as being written are finalised from their file (fragmented
/// MP4 stays playable after a crash) or marked failed when nothing usable was written. With Redis, other
/// nodes may be running those broadcasts, so nothing is touched.
pub async fn recover_after_restart(state: &AppState) -> anyhow::Result<()> {
    if state.cfg.redis.url.is_some() {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    for b in state.store.live_broadcasts().await? {
        state.store.set_broadcast_status(b.id, "ended", None, Some(now)).await?;
        state.metrics.active_broadcasts.dec();
        tracing::warn!(broadcast = %b.id, "was live when the server stopped: ended");
    }
    for rec in state.store.unfinished_recordings().await? {
        let path = crate::api::recordings::recording_path(state, rec.id);
        let size = tokio::fs::metadata(&path).await.map(|m| m.len() as i64).unwrap_or(0);
        let probe = path.clone();
        let duration = tokio::task::spawn_blocking(move || backyard_core::egress::media_duration(&probe))
            .await
            .ok()
            .flatten()
            .unwrap_or(0.0);
        let status = if size > 0 && duration > 0.0 { "ready" } else { "failed" };
        state.store.finish_recording(rec.id, status, duration, size).await?;
        tracing::warn!(recording = %rec.id, status, duration, size, "recording interrupted by a restart, finalised");
    }
    Ok(())
}
