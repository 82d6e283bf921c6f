//! The program of each broadcast on this node, from the studio opening to the end of the broadcast.
//!
//! A host entering the studio starts the broadcast's [`Program`]: the router's tap feeds it the on-stage
//! participants' frames (no network hop; off-stage sources are neither copied nor decoded). Core's director
//! decides what the program shows, on a thread of its own ([`director`]): a task follows the room on the bus
//! (who is there, who speaks, the scene the hosts set) and feeds it; it answers with the program's stage,
//! placements (the layout plugin), overlay layers (the overlay plugin) and the `stage-layout` the studio
//! draws. `POST /start` attaches egress (the broadcast's enabled destinations, resolved by their adapters,
//! plus the recording); `POST /end` flushes and finalises it. Output status goes to the room as
//! `destination-status` and to Prometheus (series removed when the outputs end); program health as
//! `program-status` (starved when it skips frames: [`health`]). Errors are [`ProgramError`]s; only `error.rs` maps them to HTTP.

mod director;
mod health;
mod stage_recordings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::topic;
use backyard_core::compositor::clip::{ClipEnd, ClipPlayer};
use backyard_core::compositor::{CompositorConfig, Program, ProgramFeed};
use backyard_core::director::StageLayout;
use backyard_core::egress::{
    DestinationConfig, DestinationConstraints, EgressConfig, EgressReport, OutputKind, OutputStatus,
};
use backyard_core::plugin_host as ph;
use backyard_core::rtc::{MediaNode, TapFrame};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::scene::Scene;
use crate::signaling::{Participant, RoomEvent};
use crate::state::AppState;
use crate::store::{Broadcast, BroadcastStatus, RecordingStatus, StoreError};
use crate::viewers::ViewerStream;

use self::director::{DirectorThread, Input};
pub use self::health::ProgramHealth;

/// Why a program could not start, go live or end.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The plugin host did not start (names the plugin).
    #[error("plugins: {0}")]
    Plugins(ph::PluginError),
    /// The compositor, its director or the encoder could not start.
    #[error("starting the program: {0}")]
    Start(String),
    /// `POST /start` while on air.
    #[error("the program is already on air")]
    AlreadyLive,
    /// An enabled destination cannot be used: `field` is `destinations.<id>`.
    #[error("{message}")]
    Destination { field: String, message: String },
    /// The recording's folder could not be made.
    #[error("recording: {0}")]
    Recording(std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another node is the broadcast's home (runs its program and publishes to its destinations).
    #[error("the broadcast is on air from another node ({0})")]
    HostedElsewhere(String),
    /// The cluster directory could not be reached.
    #[error("cluster directory: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// The programs running on this node, by broadcast.
#[derive(Default)]
pub struct Programs {
    running: Mutex<HashMap<Uuid, Arc<Live>>>,
}

/// One broadcast's running program.
pub struct Live {
    pub broadcast: Uuid,
    pub program: Arc<Program>,
    /// Decides the program's stage, placements and overlays on a thread of its own.
    director: DirectorThread,
    /// Asks the room follower to rebuild the director's view of the room.
    refresh: mpsc::UnboundedSender<()>,
    on_air: tokio::sync::Mutex<Option<OnAir>>,
    /// The latest status of each output while on air, by output id (destination id or `recording`).
    statuses: Arc<Mutex<HashMap<String, OutputStatus>>>,
    /// The clip playing into the program (the scene's `clip`): its URL and player.
    clip: Mutex<Option<(String, ClipPlayer)>>,
}

impl Live {
    /// Plays the scene's clip into the program (from its start when it is another one than the one playing), or
    /// stops the one playing when the scene has none. When a clip has played to its end, it comes off the scene.
    fn follow_clip(&self, state: &AppState, clip: Option<&crate::scene::SceneClip>) {
        let url = clip.map(|c| c.url.as_str());
        let stopped = {
            let mut playing = self.clip.lock();
            if playing.as_ref().map(|(u, _)| u.as_str()) == url {
                return;
            }
            playing.take()
        };
        // Stops its thread (within a frame's time) outside the lock.
        drop(stopped);
        let Some((url, sha)) = url.and_then(|u| Some((u, crate::uploads::sha_of_url(u)?))) else { return };
        let path = crate::uploads::dir(&state.cfg.data_dir).join(sha);
        let (state, broadcast, ended) = (state.clone(), self.broadcast, url.to_owned());
        let runtime = tokio::runtime::Handle::current();
        let on_end = move |end: ClipEnd| {
            runtime.spawn(async move { clip_ended(&state, broadcast, &ended, end).await });
        };
        match ClipPlayer::start(path, self.program.clone(), backyard_core::director::CLIP_SOURCE.into(), on_end) {
            Ok(player) => *self.clip.lock() = Some((url.to_owned(), player)),
            Err(e) => tracing::warn!(broadcast = %self.broadcast, "cannot start the clip: {e}"),
        }
    }

    /// The latest status of an output (a destination's id), if the program is on air.
    pub fn output_status(&self, id: &str) -> Option<OutputStatus> {
        self.statuses.lock().get(id).cloned()
    }

    /// The stream viewers play, while on air with one.
    pub async fn viewers(&self) -> Option<Arc<ViewerStream>> {
        self.on_air.lock().await.as_ref().and_then(|a| a.viewers.clone())
    }

    /// The stage as the studio draws it (the program's tiles), once anyone was placed.
    pub fn stage_layout(&self) -> Option<StageLayout> {
        self.director.stage()
    }

    /// The stage of each of the scene's other canvases as the studio draws it, by canvas id.
    pub fn canvas_layouts(&self) -> std::collections::BTreeMap<String, StageLayout> {
        self.director.canvas_stages()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        tracing::info!(broadcast = %self.broadcast, "program stopped");
    }
}

/// Egress attached to a program.
struct OnAir {
    recording: Option<Uuid>,
    /// This node's right to be the broadcast's home, and the task renewing it.
    home: crate::cluster::Fence,
    keeper: tokio::task::JoinHandle<()>,
    /// The stream for viewers, when they may watch.
    viewers: Option<Arc<ViewerStream>>,
    /// Everyone on stage, recorded as they publish.
    stage: Option<stage_recordings::StageRecordings>,
}

impl Programs {
    /// The broadcast's program, started if it is not running. `members` are who is in the room now.
    pub async fn ensure(
        &self,
        state: &AppState,
        media: &MediaNode,
        broadcast: &Broadcast,
        members: Vec<Participant>,
    ) -> Result<Arc<Live>, ProgramError> {
        if let Some(live) = self.running.lock().get(&broadcast.id) {
            return Ok(live.clone());
        }
        let host = state.plugins.host().await.map_err(ProgramError::Plugins)?;
        let cfg = &state.cfg.program;
        let mut running = self.running.lock();
        if let Some(live) = running.get(&broadcast.id) {
            return Ok(live.clone());
        }
        let program = Program::start(
            CompositorConfig { width: cfg.width, height: cfg.height, ..CompositorConfig::default() },
            cfg.fps,
        )
        .map_err(|e| ProgramError::Start(e.to_string()))?;
        let program = Arc::new(program);
        let feed = Arc::new(ProgramFeed::new());
        let canvas = ph::Size { width: cfg.width, height: cfg.height };
        let director = DirectorThread::spawn(state, host, broadcast.id, program.clone(), media.clone(), canvas)
            .map_err(|e| ProgramError::Start(format!("director thread: {e}")))?;
        director.send(Input::Members(members.iter().map(director::member).collect()));
        director.send(Input::Scene(Box::new(Scene::of(broadcast))));
        let (refresh, refresh_rx) = mpsc::unbounded_channel();
        let live = Arc::new(Live {
            broadcast: broadcast.id,
            program: program.clone(),
            director,
            refresh,
            on_air: tokio::sync::Mutex::new(None),
            statuses: Arc::default(),
            clip: Mutex::new(None),
        });
        running.insert(broadcast.id, live.clone());
        drop(running);
        live.follow_clip(state, Scene::of(broadcast).clip.as_ref());

        let room = broadcast.id.to_string();
        let tap_program = program.clone();
        let tap_feed = feed.clone();
        media.set_tap(&room, Some(Arc::new(move |f: &TapFrame<'_>| tap_feed.push(&tap_program, f))));
        // The live preview goes to hosts and co-hosts over their WebRTC connections (msid `program`).
        program.set_preview_sink(Some(Arc::new(media.publish_program(&room))));
        tokio::spawn(director::follow_room(state.clone(), Arc::downgrade(&live), feed, refresh_rx));
        tracing::info!(broadcast = %broadcast.id, width = cfg.width, height = cfg.height, fps = cfg.fps, "program started");
        Ok(live)
    }

    pub fn get(&self, broadcast: Uuid) -> Option<Arc<Live>> {
        self.running.lock().get(&broadcast).cloned()
    }

    /// The room changed in a way the bus does not carry (a member's seat was given back): relayout.
    pub fn refresh(&self, broadcast: Uuid) {
        if let Some(live) = self.get(broadcast) {
            let _ = live.refresh.send(());
        }
    }

    /// Stops the program unless it is on air: its tap and preview are withdrawn; the director thread and the
    /// room follower (which holds it only weakly) end with the last reference, and the program's thread with
    /// them.
    pub async fn stop_if_idle(&self, media: &MediaNode, broadcast: Uuid) {
        let Some(live) = self.get(broadcast) else { return };
        if live.on_air.lock().await.is_some() {
            return;
        }
        self.running.lock().remove(&broadcast);
        let room = broadcast.to_string();
        media.set_tap(&room, None);
        live.program.set_preview_sink(None);
    }

    /// The broadcasts on air from this node (it is their home).
    pub async fn on_air(&self) -> Vec<Uuid> {
        let lives: Vec<Arc<Live>> = self.running.lock().values().cloned().collect();
        let mut out = Vec::new();
        for live in lives {
            if live.on_air.lock().await.is_some() {
                out.push(live.broadcast);
            }
        }
        out
    }

    /// The broadcasts whose program runs on this node (on air or not).
    pub fn running(&self) -> Vec<Uuid> {
        self.running.lock().keys().copied().collect()
    }

    /// `POST /start`: encode once and push to every enabled destination, recording as well. Fails before
    /// anything goes out when a destination cannot be resolved (naming it) or the encoder cannot start.
    pub async fn go_live(
        &self,
        state: &AppState,
        media: &MediaNode,
        broadcast: &Broadcast,
        members: Vec<Participant>,
    ) -> Result<(), ProgramError> {
        let live = self.ensure(state, media, broadcast, members).await?;
        let mut on_air = live.on_air.lock().await;
        if on_air.is_some() {
            return Err(ProgramError::AlreadyLive);
        }
        let (destinations, canvases) = resolve_destinations(state, broadcast).await?;
        // One home per broadcast: this node takes it (a new fence token) or the show is on air elsewhere.
        let home = match state.cluster.take_home(broadcast.id, broadcast.home_fence).await? {
            Ok(fence) => fence,
            Err(holder) => return Err(ProgramError::HostedElsewhere(holder)),
        };
        let token = home.token;
        let recording = match state.store.claim_home(broadcast.id, token, crate::store::HomeKind::Program).await {
            Ok(true) => {
                state
                    .store
                    .create_recording(broadcast.id, broadcast.user_id, &broadcast.title, token, &state.cluster.node)
                    .await
            }
            Ok(false) => Err(StoreError::Fenced { token }),
            Err(e) => Err(e),
        };
        let recording = match recording {
            Ok(r) => r,
            Err(e) => {
                let _ = state.cluster.directory.release(&home).await;
                return Err(e.into());
            }
        };
        let path = recording_path(&state.cfg, recording.id);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(ProgramError::Recording)?;
        }
        // Renewed from now on, however long the encoder and the destinations take to start. Losing the home
        // (frozen past the lease, cut off, taken over) stops the outputs at once: `lose_home` waits for this
        // start to finish, as it holds `on_air`.
        let (lost_state, lost_media, id) = (state.clone(), media.clone(), broadcast.id);
        let keeper =
            crate::cluster::keep_home(state.cluster.clone(), home.clone(), crate::cluster::HOME_RENEW, move || {
                tokio::spawn(async move {
                    if let Some(hub) = crate::signaling::Hub::running(&lost_state) {
                        hub.programs.lose_home(&lost_media, id).await;
                    }
                });
            });
        let hls = crate::viewers::folder(state, broadcast).await;
        let main_canvas = (state.cfg.program.width, state.cfg.program.height);
        let config = EgressConfig {
            // Destinations whose profile comes out the same share this encode.
            encoder: crate::api::destinations::encode_settings(&state.cfg.program, main_canvas, None),
            destinations,
            canvases,
            recording: Some(path.clone()),
            hls: hls.clone(),
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
        .map_err(|e| ProgramError::Start(e.to_string()))
        .and_then(|r| r.map_err(|e| ProgramError::Start(format!("the encoder: {e}"))));
        match started {
            Ok(settings) => {
                tracing::info!(broadcast = %broadcast.id, ?settings, recording = %path.display(), "on air");
                let viewers = hls.zip(live.program.egress()).map(|(dir, control)| {
                    let webrtc = ViewerStream::of_program(dir.clone(), control.clone(), media, broadcast.id);
                    Arc::new(webrtc.unwrap_or_else(|e| {
                        tracing::warn!(broadcast = %broadcast.id, "no WebRTC viewers for this show: {e}");
                        ViewerStream::new(dir, control)
                    }))
                });
                let stage = stage_recordings::StageRecordings::start(
                    state,
                    media,
                    live.program.clone(),
                    recording.clone(),
                    token,
                );
                *on_air = Some(OnAir { recording: Some(recording.id), home, keeper, viewers, stage: Some(stage) });
                live.director.send(Input::OnAir(true));
                Ok(())
            }
            Err(e) => {
                keeper.abort();
                let _ = state.store.finish_recording(recording.id, RecordingStatus::Failed, 0.0, 0, token).await;
                let _ = state.cluster.directory.release(&home).await;
                Err(e)
            }
        }
    }

    /// `POST /end`: flushes and closes every output (bounded by egress' own timeouts), finalises the
    /// recording row, and stops the program.
    pub async fn end_live(&self, state: &AppState, media: &MediaNode, broadcast: Uuid) -> Result<(), ProgramError> {
        let Some(live) = self.get(broadcast) else { return Ok(()) };
        if let Some((on_air, report)) = take_off_air(&live, true).await {
            let report = report?;
            if let Some(id) = on_air.recording {
                match finalise_recording(state, id, report.as_ref(), on_air.home.token).await {
                    Ok((duration, size)) => {
                        tracing::info!(%broadcast, recording = %id, duration, size, "recording finalised")
                    }
                    // Another node took the show over meanwhile: its rows are its own.
                    Err(e @ StoreError::Fenced { .. }) => tracing::warn!(%broadcast, recording = %id, "{e}"),
                    Err(e) => return Err(e.into()),
                }
            }
            // The home lease is not given back: it lapses within a lease, by when the broadcast is marked
            // ended, so no other node takes an ending show for one whose home died.
        }
        self.stop_if_idle(media, broadcast).await;
        Ok(())
    }

    /// This node is no longer the broadcast's home (its lease ran out or another node took the show over):
    /// every output stops now and nothing is written to the database, which the new home owns.
    pub async fn lose_home(&self, media: &MediaNode, broadcast: Uuid) {
        let Some(live) = self.get(broadcast) else { return };
        let Some((on_air, _)) = take_off_air(&live, false).await else { return };
        tracing::warn!(%broadcast, token = on_air.home.token, "outputs stopped: this node lost the broadcast's home");
        self.stop_if_idle(media, broadcast).await;
    }
}

/// Takes a program off air, if it is on: the home lease is no longer renewed, every output is flushed and
/// closed (bounded by egress' own timeouts), and the viewers' stream ends (its watch page says so) and goes.
/// Returns what was on air and egress' report, for the caller to write (or not) the recording's row; the
/// participants' recordings are closed, and their rows written when `write_rows`.
async fn take_off_air(live: &Live, write_rows: bool) -> Option<(OnAir, Result<Option<EgressReport>, ProgramError>)> {
    let mut on_air = live.on_air.lock().await.take()?;
    on_air.keeper.abort();
    if let Some(stage) = on_air.stage.take() {
        stage.stop(write_rows).await;
    }
    live.director.send(Input::OnAir(false));
    let program = live.program.clone();
    let report =
        tokio::task::spawn_blocking(move || program.end_live()).await.map_err(|e| ProgramError::Start(e.to_string()));
    if let Some(viewers) = &on_air.viewers {
        viewers.end();
        let _ = tokio::fs::remove_dir_all(&viewers.dir).await;
    }
    Some((on_air, report))
}

/// How often a node looks for shows to end or take over ([`tend`]).
pub const TEND_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// With several nodes (Redis configured), every [`TEND_EVERY`]: ends here what was ended through another node,
/// and takes over the live shows whose home lapsed (their node died or froze): this node becomes their home
/// under a newer token, and the program starts again with a new recording part and a new publish to every
/// destination. Runs until the process stops.
pub async fn tend(state: AppState) {
    let mut tick = tokio::time::interval(TEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for n in 0u64.. {
        tick.tick().await;
        if let Err(e) = tend_once(&state).await {
            tracing::warn!("cluster: looking after live shows failed: {e:#}");
        }
        if n % SWEEP_EVERY_TICKS == 0
            && let Err(e) = sweep_lost_participants(&state).await
        {
            tracing::warn!("cluster: looking for people on lost nodes failed: {e:#}");
        }
    }
}

/// How often (in [`TEND_EVERY`] ticks) a node looks for people whose studio was on a node that is gone.
const SWEEP_EVERY_TICKS: u64 = 2;

/// People still in a room through a node the directory no longer lists (it died, froze or was cut off for
/// longer than its entry lives) have left as far as everyone else can tell: their rows are closed and their
/// rooms told (`participant-left` with `reason: "node-lost"`), by whichever node closes each row first. Nothing
/// is judged while the directory may have just forgotten every node (Redis restarted).
async fn sweep_lost_participants(state: &AppState) -> anyhow::Result<()> {
    if !state.cluster.may_take_over().await? {
        return Ok(());
    }
    let elsewhere = state.store.participants_elsewhere(&state.cluster.node).await?;
    if elsewhere.is_empty() {
        return Ok(());
    }
    let live = state.cluster.live_node_ids().await?;
    for p in elsewhere.into_iter().filter(|p| !live.contains(&p.node)) {
        if state.store.participant_left(p.id, &p.node).await? {
            tracing::info!(broadcast = %p.broadcast_id, participant = %p.id, node = %p.node, "their node is gone: they left");
            let event = RoomEvent::ParticipantLeft { participant_id: p.id, reason: "node-lost".into() };
            state.bus.publish(&topic::broadcast(p.broadcast_id), event.to_bus()).await?;
        }
    }
    Ok(())
}

async fn tend_once(state: &AppState) -> anyhow::Result<()> {
    let hub = crate::signaling::Hub::get(state).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mine = hub.programs.on_air().await;
    // A host pressed End on another node (or deleted the show): the home is here. A show that is still `scheduled`
    // is only starting (its row turns `live` once its outputs are up): not ended.
    for &id in &mine {
        let ended = state.store.broadcast(id).await?.is_none_or(|b| b.status == BroadcastStatus::Ended);
        if ended {
            tracing::info!(broadcast = %id, "ended through another node: ending its program here");
            hub.programs.end_live(state, &hub.media, id).await?;
        }
    }
    // The same for an encoder's relay on this node.
    for id in state.ingest.relayed() {
        let ended = state.store.broadcast(id).await?.is_none_or(|b| b.status == BroadcastStatus::Ended);
        if ended {
            tracing::info!(broadcast = %id, "ended through another node: ending its relay here");
            state.ingest.end_relay(id).await;
        }
    }
    // Live shows nobody is home to (an ended one is not listed). A show that never had a home is not a program's
    // to take.
    if !state.cluster.may_take_over().await? {
        return Ok(());
    }
    for b in state.store.live_broadcasts().await? {
        if b.home_fence == 0 || mine.contains(&b.id) || state.cluster.directory.home(b.id).await?.is_some() {
            continue;
        }
        // An encoder's show resumes on the node the encoder reconnects to, not as a program here.
        if state.store.home_kind(b.id).await? == Some(crate::store::HomeKind::Relay) {
            continue;
        }
        let members = hub.roster(state, b.id).await;
        match hub.programs.go_live(state, &hub.media, &b, members).await {
            Ok(()) => {
                tracing::warn!(broadcast = %b.id, node = %state.cluster.node, "took over a show whose home lapsed");
                if let Err(e) = finalise_parts_left_behind(state, b.id).await {
                    tracing::warn!(broadcast = %b.id, "finalising the recording parts left behind failed: {e:#}");
                }
            }
            // Another node was quicker.
            Err(ProgramError::HostedElsewhere(_) | ProgramError::Store(StoreError::Fenced { .. })) => {
                hub.programs.stop_if_idle(&hub.media, b.id).await
            }
            Err(e) => {
                hub.programs.stop_if_idle(&hub.media, b.id).await;
                tracing::warn!(broadcast = %b.id, "could not take over a show whose home lapsed: {e}");
            }
        }
    }
    Ok(())
}

/// Ends every broadcast on air on this node, as `POST /end` would (the server is stopping): outputs flushed
/// and closed, recordings finalised, rows and the room told. A program that cannot end cleanly is left to
/// the restart recovery, as after a crash.
pub async fn end_all(state: &AppState) {
    let Some(hub) = crate::signaling::Hub::running(state) else { return };
    for broadcast in hub.programs.running() {
        let Some(live) = hub.programs.get(broadcast) else { continue };
        if live.on_air.lock().await.is_none() {
            continue;
        }
        if let Err(e) = hub.programs.end_live(state, &hub.media, broadcast).await {
            tracing::error!(%broadcast, "could not end the broadcast cleanly: {e}");
            continue;
        }
        match mark_ended(state, broadcast, Some("server-stopping")).await {
            Ok(_) => tracing::info!(%broadcast, "ended: the server is stopping"),
            Err(e) => tracing::error!(%broadcast, "could not mark the broadcast ended: {e}"),
        }
    }
}

/// Marks a broadcast live now, counts it and tells the room (`broadcast-started`): the one way a broadcast
/// goes on air, whether its program or a relay sends it.
pub(crate) async fn mark_live(state: &AppState, broadcast: Uuid) -> Result<Broadcast, StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let b = state.store.set_broadcast_status(broadcast, BroadcastStatus::Live, Some(now), None).await?;
    state.metrics.active_broadcasts.inc();
    let local_recording = crate::api::local_recordings::asked_for(&b);
    announce(
        state,
        broadcast,
        RoomEvent::BroadcastStarted { broadcast_id: broadcast, start_time: rfc3339(now), local_recording },
    )
    .await;
    Ok(b)
}

/// Marks a broadcast ended now, uncounts it and tells the room (`broadcast-ended`, with `reason` when it was
/// not the hosts' End): the one way a broadcast comes off air.
pub(crate) async fn mark_ended(
    state: &AppState,
    broadcast: Uuid,
    reason: Option<&str>,
) -> Result<Broadcast, StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let b = state.store.set_broadcast_status(broadcast, BroadcastStatus::Ended, None, Some(now)).await?;
    state.metrics.active_broadcasts.dec();
    let event =
        RoomEvent::BroadcastEnded { broadcast_id: broadcast, end_time: rfc3339(now), reason: reason.map(Into::into) };
    announce(state, broadcast, event).await;
    Ok(b)
}

/// Publishes a broadcast's event on the bus; a bus that fails is logged (the row is already right).
pub(crate) async fn announce(state: &AppState, broadcast: Uuid, event: RoomEvent) {
    if let Err(e) = state.bus.publish(&topic::broadcast(broadcast), event.to_bus()).await {
        tracing::warn!(%broadcast, error = %e, "could not publish {}", event.name());
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formatting a valid UTC timestamp as RFC 3339 cannot fail")
}

/// Marks a recording `ready`, or `failed` when nothing was written, from what its egress reported on stopping
/// (the program's or a relay's). Returns its duration and size.
pub(crate) async fn finalise_recording(
    state: &AppState,
    id: Uuid,
    report: Option<&EgressReport>,
    fence: i64,
) -> Result<(f64, i64), StoreError> {
    let (duration, size) =
        report.and_then(|r| r.recording.as_ref()).map(|r| (r.duration_secs, r.size_bytes as i64)).unwrap_or((0.0, 0));
    let status = if size > 0 { RecordingStatus::Ready } else { RecordingStatus::Failed };
    state.store.finish_recording(id, status, duration, size, fence).await?;
    Ok((duration, size))
}

/// Where a recording is written.
/// A clip played to its end (or failed): it comes off the scene, so the stage is back and every studio is told.
async fn clip_ended(state: &AppState, broadcast: Uuid, url: &str, end: ClipEnd) {
    if let ClipEnd::Failed(e) = &end {
        tracing::warn!(%broadcast, url, "the clip could not play to its end: {e}");
    }
    let Ok(Some(b)) = state.store.broadcast(broadcast).await else { return };
    let mut scene = Scene::of(&b);
    if scene.clip.as_ref().is_some_and(|c| c.url == url) {
        scene.clip = None;
        if let Err(e) = crate::scene::apply(state, broadcast, scene).await {
            tracing::warn!(%broadcast, "could not take the ended clip off the scene: {e}");
        }
    }
}

pub fn recording_path(cfg: &crate::config::Config, id: Uuid) -> PathBuf {
    cfg.recordings_dir().join(format!("{id}.mp4"))
}

/// Where a recording's file is: the program's MP4, or a participant's WebM (VP8/VP9 and Opus) or Matroska
/// (H.264) file, named after the row as well.
pub fn recording_file(cfg: &crate::config::Config, rec: &crate::store::Recording) -> PathBuf {
    if rec.participant_id.is_none() {
        return recording_path(cfg, rec.id);
    }
    let webm = cfg.recordings_dir().join(format!("{}.webm", rec.id));
    let mkv = webm.with_extension("mkv");
    if !webm.exists() && mkv.exists() { mkv } else { webm }
}

/// The enabled destinations of a broadcast as egress takes them: each adapter resolves its ingest URL (the
/// key decrypted only here) and encoder limits. Also the sizes of the scene's canvases beside the main one, which
/// the destinations' `canvas` indexes count from.
pub(crate) async fn resolve_destinations(
    state: &AppState,
    broadcast: &Broadcast,
) -> Result<(Vec<DestinationConfig>, Vec<(u32, u32)>), ProgramError> {
    let scene = Scene::of(broadcast);
    let program = &state.cfg.program;
    let main = (program.width, program.height);
    let mut out = Vec::new();
    for row in state.store.destinations(broadcast.id).await?.into_iter().filter(|d| d.enabled) {
        let field = format!("destinations.{}", row.id);
        let key = state.cipher.open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid).map_err(|e| {
            ProgramError::Destination {
                field: field.clone(),
                message: format!("{}: the stream key cannot be read ({e}); enter it again", row.name),
            }
        })?;
        let resolved = crate::api::destinations::resolve(state, &row.platform, &row.rtmp_url, &key)
            .await
            .map_err(|e| ProgramError::Destination { field: field.clone(), message: format!("{}: {e}", row.name) })?;
        let c = resolved.ingest.constraints;
        let profile = row.encoder_profile().map_err(|e| ProgramError::Destination {
            field: format!("{field}.profile"),
            message: format!("{}: the stored profile cannot be read ({e}); set it again", row.name),
        })?;
        let canvas = row.canvas.as_deref();
        let (index, size) = scene.find_canvas(canvas, main).unwrap_or_else(|| {
            tracing::warn!(broadcast = %broadcast.id, destination = %row.id, canvas, "the scene has no such canvas: it streams the main one");
            (0, main)
        });
        out.push(DestinationConfig {
            id: row.id.to_string(),
            url: resolved.ingest.primary,
            profile: profile.map(|p| crate::api::destinations::encode_settings(program, size, Some(&p))),
            ca_file: None,
            constraints: DestinationConstraints {
                max_width: Some(c.max_width),
                max_height: Some(c.max_height),
                max_video_kbps: Some(c.max_video_kbps),
                max_audio_kbps: Some(c.max_audio_kbps),
                max_keyframe_interval: Some(Duration::from_secs(c.max_keyframe_interval_s.into())),
                max_fps: Some(c.max_fps),
            },
            address_policy: resolved.address_policy,
            canvas: index,
        });
    }
    Ok((out, scene.canvases.iter().map(|c| (c.width, c.height)).collect()))
}

/// Every output status change goes to the room (`destination-status`) and to the metrics.
pub(crate) async fn publish_statuses(
    state: AppState,
    broadcast: Uuid,
    latest: Arc<Mutex<HashMap<String, OutputStatus>>>,
    mut rx: mpsc::UnboundedReceiver<OutputStatus>,
) {
    const STATES: [&str; 5] = ["connecting", "live", "reconnecting", "failed", "stopped"];
    let mut seen: Vec<(String, String)> = Vec::new();
    while let Some(status) = rx.recv().await {
        latest.lock().insert(status.id.clone(), status.clone());
        // The labels spell kind and state as the wire does.
        let wire = serde_json::to_value(&status).unwrap_or_default();
        let kind = wire["kind"].as_str().unwrap_or("destination").to_owned();
        let current = wire["state"].as_str().unwrap_or("").to_owned();
        let b = broadcast.to_string();
        let m = &state.metrics;
        if !seen.iter().any(|(id, _)| *id == status.id) {
            seen.push((status.id.clone(), kind.clone()));
        }
        for s in STATES {
            m.output_state.with_label_values(&[&b, &status.id, &kind, s]).set(i64::from(s == current));
        }
        m.output_bitrate_kbps.with_label_values(&[&b, &status.id, &kind]).set(status.bitrate_kbps.into());
        m.output_dropped_frames.with_label_values(&[&b, &status.id, &kind]).set(status.dropped_frames as i64);
        m.output_connects.with_label_values(&[&b, &status.id, &kind]).set(status.connects.into());
        let destination_id = (status.kind == OutputKind::Destination).then(|| status.id.clone());
        let mut status = status;
        // The file's path on the server is nobody's business in the studio.
        match status.kind {
            OutputKind::Recording => status.target = "recording".into(),
            OutputKind::Hls => status.target = "hls".into(),
            OutputKind::Destination | OutputKind::Viewer => {}
        }
        let event = RoomEvent::DestinationStatus { status, destination_id };
        if let Err(e) = state.bus.publish(&topic::broadcast(broadcast), event.to_bus()).await {
            tracing::debug!(%broadcast, "could not publish destination-status: {e}");
        }
    }
    // The egress ended (its status sink was dropped): its series go, so a long-running node's metrics do not
    // grow with every broadcast it ever ran.
    let (b, m) = (broadcast.to_string(), &state.metrics);
    for (id, kind) in seen {
        for s in STATES {
            let _ = m.output_state.remove_label_values(&[&b, &id, &kind, s]);
        }
        let _ = m.output_bitrate_kbps.remove_label_values(&[&b, &id, &kind]);
        let _ = m.output_dropped_frames.remove_label_values(&[&b, &id, &kind]);
        let _ = m.output_connects.remove_label_values(&[&b, &id, &kind]);
    }
}

/// After a restart. A single node (no Redis): broadcasts still marked live have lost their program, so they end
/// now, and every recording still marked as being written is finalised from its file. With Redis, other nodes
/// may be running those broadcasts (and taking them over): only the parts this node was writing before it
/// stopped (`cluster.node_id` set, so it is the same node again) are finalised. Participants' local recordings
/// whose last part came in before the stop are kept.
pub async fn recover_after_restart(state: &AppState) -> anyhow::Result<()> {
    let clustered = state.cfg.redis.url.is_some();
    if !clustered {
        // Streams of shows that were live: nobody plays them any more.
        let _ = tokio::fs::remove_dir_all(crate::viewers::streams_root(&state.cfg.data_dir)).await;
        let now = time::OffsetDateTime::now_utc();
        for b in state.store.live_broadcasts().await? {
            state.store.set_broadcast_status(b.id, BroadcastStatus::Ended, None, Some(now)).await?;
            state.metrics.active_broadcasts.dec();
            tracing::warn!(broadcast = %b.id, "was live when the server stopped: ended");
        }
    }
    for rec in state.store.unfinished_recordings(None).await? {
        if clustered && rec.node != state.cluster.node {
            continue;
        }
        let (status, duration, size) = finalise_from_file(state, &rec, crate::store::UNFENCED).await?;
        tracing::warn!(recording = %rec.id, %status, duration, size, "recording interrupted by a restart, finalised");
    }
    crate::api::local_recordings::keep_left_over(state).await;
    Ok(())
}

/// Finalises a part whose writer stopped without finishing it (a crash, `kill -9`, a lost node) from its file:
/// fragmented MP4 stays playable up to its last fragment. `ready` with the file's duration and size, or `failed`
/// when nothing usable was written.
async fn finalise_from_file(
    state: &AppState,
    rec: &crate::store::Recording,
    fence: i64,
) -> Result<(RecordingStatus, f64, i64), StoreError> {
    let path = recording_file(&state.cfg, rec);
    let size = tokio::fs::metadata(&path).await.map(|m| m.len() as i64).unwrap_or(0);
    // A participant's file starts where they came on stage on the program's timeline.
    let participant = rec.participant_id.is_some();
    let duration = tokio::task::spawn_blocking(move || match participant {
        true => backyard_core::egress::media_span(&path).map(|(first, last)| last - first),
        false => backyard_core::egress::media_duration(&path),
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(0.0);
    let status = if size > 0 && duration > 0.0 { RecordingStatus::Ready } else { RecordingStatus::Failed };
    state.store.finish_recording(rec.id, status, duration, size, fence).await?;
    Ok((status, duration, size))
}

/// After taking a show over: the parts its earlier homes left unfinished are finalised here when their files
/// are in this node's recordings folder (the nodes share one); otherwise each is left to its own node, which
/// finalises it when it starts again. Written under the home fence this node now holds.
pub(crate) async fn finalise_parts_left_behind(state: &AppState, broadcast: Uuid) -> anyhow::Result<()> {
    let Some(b) = state.store.broadcast(broadcast).await? else { return Ok(()) };
    for rec in state.store.unfinished_recordings(Some(broadcast)).await? {
        if rec.node == state.cluster.node {
            continue;
        }
        if !tokio::fs::try_exists(recording_file(&state.cfg, &rec)).await.unwrap_or(false) {
            tracing::info!(broadcast = %broadcast, recording = %rec.id, node = %rec.node, "the part left behind is on its node's disk: left to it");
            continue;
        }
        let (status, duration, size) = finalise_from_file(state, &rec, b.home_fence).await?;
        tracing::warn!(broadcast = %broadcast, recording = %rec.id, node = %rec.node, %status, duration, size, "finalised the part a lost home left");
    }
    Ok(())
}
