//! The shell around core's [`Director`]: a thread of its own per program, so layout and overlay plugin calls
//! and the program's replies never hold an async worker, fed by a task that follows the room on the bus.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::bus::{Event, topic};
use backyard_core::compositor::clip::ClipPlayer;
use backyard_core::compositor::{Program, ProgramFeed};
use backyard_core::director::{self, Director, Member, Output, PluginLayouts, PluginPainter, StageLayout};
use backyard_core::plugin_host::{self as ph, PluginHost};
use backyard_core::rtc::{MediaNode, TrackSource};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::signaling::{Participant, RoomEvent};
use crate::state::AppState;

/// How often `program-status` is published.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// What the director thread is told.
pub(super) enum Input {
    Scene(Box<crate::scene::Scene>),
    Member(Member),
    Left(String),
    /// Everyone in the room (after events were missed).
    Members(Vec<Member>),
    /// The program went on air, or came off it.
    OnAir(bool),
}

/// The director thread of one program: inputs go in over a channel; the latest stage as the studio draws
/// it is kept for late joiners. One director per canvas: the main canvas's decides the stage; each other canvas's
/// lays out the same stage and overlays at its own size with its own layout.
pub(super) struct DirectorThread {
    inputs: mpsc::Sender<Input>,
    stage: Arc<Mutex<Option<StageLayout>>>,
    /// The same for each other canvas, by the scene's canvas id.
    canvas_stages: Arc<Mutex<BTreeMap<String, StageLayout>>>,
}

impl DirectorThread {
    /// Starts directing `program`: plugin instances of its own, the canvas from `canvas`.
    pub(super) fn spawn(
        state: &AppState,
        host: PluginHost,
        broadcast: Uuid,
        program: Arc<Program>,
        media: MediaNode,
        canvas: ph::Size,
    ) -> std::io::Result<DirectorThread> {
        let (inputs, rx) = mpsc::channel();
        let stage = Arc::new(Mutex::new(None));
        let canvas_stages = Arc::new(Mutex::new(BTreeMap::new()));
        let shell = Shell {
            broadcast,
            program,
            media,
            stage: stage.clone(),
            canvas_stages: canvas_stages.clone(),
            bus: state.bus.clone(),
            runtime: tokio::runtime::Handle::current(),
            tiles: Vec::new(),
            canvas_ids: Vec::new(),
            data_dir: state.cfg.data_dir.clone(),
            slate_audio: (None, false),
            slate_loop: None,
        };
        let data_dir = state.cfg.data_dir.clone();
        std::thread::Builder::new().name("program-director".into()).spawn(move || {
            let new_director = move |size: ph::Size| {
                let data_dir = data_dir.clone();
                let painter = PluginPainter::new(host.clone(), move |url: &str| load_upload(&data_dir, url));
                Director::new(size, PluginLayouts::new(host.clone()), painter)
            };
            shell.run(canvas, new_director, rx);
        })?;
        Ok(DirectorThread { inputs, stage, canvas_stages })
    }

    pub(super) fn send(&self, input: Input) {
        let _ = self.inputs.send(input);
    }

    /// The stage as the studio draws it, once anyone was placed.
    pub(super) fn stage(&self) -> Option<StageLayout> {
        self.stage.lock().clone()
    }

    /// The stage of each of the scene's other canvases as the studio draws it, by canvas id.
    pub(super) fn canvas_stages(&self) -> BTreeMap<String, StageLayout> {
        self.canvas_stages.lock().clone()
    }
}

/// Carries out what the director decides.
struct Shell {
    broadcast: Uuid,
    program: Arc<Program>,
    media: MediaNode,
    stage: Arc<Mutex<Option<StageLayout>>>,
    canvas_stages: Arc<Mutex<BTreeMap<String, StageLayout>>>,
    bus: Arc<dyn crate::bus::Bus>,
    /// The server's runtime, for publishing on the bus from this thread.
    runtime: tokio::runtime::Handle,
    /// Per canvas, the size of each tile placed (participant, camera or screen).
    tiles: Vec<HashMap<(String, TrackSource), (u16, u16)>>,
    /// The ids of the canvases beside the main one, in order.
    canvas_ids: Vec<String>,
    /// Where uploads are, for the sound under the slate.
    data_dir: std::path::PathBuf,
    /// The scene's sound under the slate (an upload's URL), and whether the main director has it on stage now.
    slate_audio: (Option<String>, bool),
    /// That sound looping into the program while on stage, with its URL.
    slate_loop: Option<(String, ClipPlayer)>,
}

/// A canvas beside the main one and its director.
struct OtherCanvas<L: director::Layouts, P: director::Painter> {
    size: (u32, u32),
    director: Director<L, P>,
}

impl Shell {
    fn run<L: director::Layouts, P: director::Painter>(
        mut self,
        main_size: ph::Size,
        mut new_director: impl FnMut(ph::Size) -> Director<L, P>,
        rx: mpsc::Receiver<Input>,
    ) {
        let mut main = new_director(main_size);
        let mut others: Vec<OtherCanvas<L, P>> = Vec::new();
        loop {
            let next = others.iter().filter_map(|c| c.director.poll_timeout()).chain(main.poll_timeout()).min();
            let wait = next.map_or(Duration::from_secs(3600), |t| t.saturating_sub(self.program.now()));
            match rx.recv_timeout(wait) {
                Ok(Input::Scene(scene)) => {
                    let now = self.program.now();
                    self.set_canvases(&scene.canvases, &mut others, &mut new_director, &main, now);
                    for (c, wanted) in others.iter_mut().zip(&scene.canvases) {
                        c.director.handle_scene(scene.to_director_for(wanted), now);
                    }
                    main.handle_scene(scene.to_director(), now);
                    self.slate_audio.0.clone_from(&scene.slate_audio);
                }
                Ok(input) => {
                    let now = self.program.now();
                    for d in std::iter::once(&mut main).chain(others.iter_mut().map(|c| &mut c.director)) {
                        match &input {
                            Input::Scene(_) => unreachable!("scenes are handled above"),
                            Input::Member(m) => d.handle_member(m.clone(), now),
                            Input::Left(id) => d.handle_left(id, now),
                            Input::Members(all) => d.handle_members(all.clone(), now),
                            Input::OnAir(on) => d.handle_on_air(*on, now),
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The program was stopped: its `Live` (and so the sender) is gone.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = self.program.now();
            main.handle_tick(now);
            while let Some(out) = main.poll_output() {
                self.carry_out(0, out);
            }
            for (i, c) in others.iter_mut().enumerate() {
                c.director.handle_tick(now);
                while let Some(out) = c.director.poll_output() {
                    self.carry_out(i + 1, out);
                }
            }
            self.follow_slate_audio();
        }
        tracing::debug!(broadcast = %self.broadcast, "director stopped");
    }

    /// Makes the program's canvases beside the main one the scene's: a canvas keeping its place and size keeps
    /// its director; any other gets a new one, briefed on the room as the main canvas's director knows it.
    fn set_canvases<L: director::Layouts, P: director::Painter>(
        &mut self,
        wanted: &[crate::scene::SceneCanvas],
        others: &mut Vec<OtherCanvas<L, P>>,
        new_director: &mut impl FnMut(ph::Size) -> Director<L, P>,
        main: &Director<L, P>,
        now: Duration,
    ) {
        let size = |c: &crate::scene::SceneCanvas| (c.width, c.height);
        let same = others.len() == wanted.len() && others.iter().zip(wanted).all(|(o, w)| o.size == size(w));
        if !same {
            let sizes = wanted.iter().map(size).collect();
            if let Err(e) = self.program.set_canvases(sizes) {
                tracing::warn!(broadcast = %self.broadcast, "the scene's canvases were refused: {e}");
                return;
            }
            let mut kept = std::mem::take(others).into_iter();
            for w in wanted {
                let canvas = match kept.next() {
                    Some(c) if c.size == size(w) => c,
                    _ => {
                        let mut director = new_director(ph::Size { width: w.width, height: w.height });
                        director.handle_members(main.members().cloned().collect(), now);
                        director.handle_on_air(main.on_air(), now);
                        OtherCanvas { size: size(w), director }
                    }
                };
                others.push(canvas);
            }
            self.tiles.truncate(others.len() + 1);
        }
        self.canvas_ids = wanted.iter().map(|c| c.id.clone()).collect();
        self.canvas_stages.lock().retain(|id, _| wanted.iter().any(|c| &c.id == id));
    }

    /// Carries out what canvas `canvas`'s director decided (0: the main canvas's, which alone sets the stage and
    /// the background, and is the stage the studio draws).
    fn carry_out(&mut self, canvas: usize, out: Output) {
        let room = self.broadcast.to_string();
        match out {
            Output::Stage(members) if canvas == 0 => {
                self.slate_audio.1 = members.iter().any(|m| m.id == director::SLATE_AUDIO_SOURCE);
                self.program.set_stage(members);
            }
            Output::Background(rgb) if canvas == 0 => self.program.set_background(rgb),
            Output::Stage(_) | Output::Background(_) => {}
            // Each canvas's director covers its own canvas with the brand's picture.
            Output::Backdrop(layer) => self.program.set_backdrop_on(canvas, layer),
            Output::Placements { placements, stage } => {
                // Each tile takes the smallest simulcast layer at least as large as its rectangle on any canvas.
                let sizes: HashMap<(String, TrackSource), (u16, u16)> = placements
                    .iter()
                    .map(|p| {
                        let (participant, source) = match p.source.strip_suffix(":screen") {
                            Some(participant) => (participant.to_owned(), TrackSource::Screen),
                            None => (p.source.clone(), TrackSource::Camera),
                        };
                        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                        ((participant, source), (clamp(p.rect.width), clamp(p.rect.height)))
                    })
                    .collect();
                if let Err(e) = self.program.set_placements_on(canvas, placements) {
                    tracing::warn!(broadcast = %self.broadcast, canvas, "placements refused, the last good ones stay: {e}");
                    return;
                }
                if self.tiles.len() <= canvas {
                    self.tiles.resize_with(canvas + 1, HashMap::new);
                }
                self.tiles[canvas] = sizes;
                let mut largest: HashMap<&(String, TrackSource), (u16, u16)> = HashMap::new();
                for (key, &(w, h)) in self.tiles.iter().flatten() {
                    let e = largest.entry(key).or_default();
                    *e = (e.0.max(w), e.1.max(h));
                }
                for ((participant, source), size) in largest {
                    self.media.set_tap_size(&room, participant, *source, Some(size));
                }
                let event = match canvas.checked_sub(1).and_then(|i| self.canvas_ids.get(i)) {
                    None if canvas == 0 => {
                        *self.stage.lock() = Some(stage.clone());
                        RoomEvent::StageLayout(stage).to_bus()
                    }
                    None => return,
                    Some(id) => {
                        self.canvas_stages.lock().insert(id.clone(), stage.clone());
                        RoomEvent::CanvasLayout { canvas_id: id.clone(), stage }.to_bus()
                    }
                };
                let (bus, broadcast) = (self.bus.clone(), self.broadcast);
                self.runtime.spawn(async move {
                    let _ = bus.publish(&topic::broadcast(broadcast), event).await;
                });
            }
            Output::ShowOverlay(layer) => self.program.put_overlay_on(canvas, layer),
            Output::HideOverlay(id) => self.program.remove_overlay_on(canvas, &id),
            Output::Keyframe(participant) => self.media.request_keyframes(&room, &participant),
        }
    }
}

impl Shell {
    /// Loops the scene's sound under the slate into the program while the main director has it on stage; stops
    /// it when it leaves the stage or the scene changes it.
    fn follow_slate_audio(&mut self) {
        let wanted = match &self.slate_audio {
            (Some(url), true) => Some(url.as_str()),
            _ => None,
        };
        if self.slate_loop.as_ref().map(|(url, _)| url.as_str()) == wanted {
            return;
        }
        // Stops its thread (within a packet's time).
        self.slate_loop = None;
        let Some((url, sha)) = wanted.and_then(|u| Some((u, crate::uploads::sha_of_url(u)?))) else { return };
        let path = crate::uploads::dir(&self.data_dir).join(sha);
        match ClipPlayer::loop_sound(path, self.program.clone(), director::SLATE_AUDIO_SOURCE.into()) {
            Ok(player) => self.slate_loop = Some((url.to_owned(), player)),
            Err(e) => tracing::warn!(broadcast = %self.broadcast, "cannot start the sound under the slate: {e}"),
        }
    }
}

/// An uploaded PNG (`/api/uploads/<sha256>`) decoded to RGBA.
fn load_upload(data_dir: &Path, url: &str) -> Option<ph::Image> {
    let sha = crate::uploads::sha_of_url(url)?;
    let bytes = std::fs::read(crate::uploads::dir(data_dir).join(sha)).ok()?;
    match ph::Rgba::from_png(&bytes) {
        Ok(img) => Some(ph::Image { width: img.width, height: img.height, rgba: img.pixels }),
        Err(e) => {
            tracing::warn!(url, "logo is not a PNG the program can draw: {e}");
            None
        }
    }
}

/// The director's view of a participant.
pub(super) fn member(p: &Participant) -> Member {
    Member {
        id: p.id.to_string(),
        name: p.name.clone(),
        speaking: p.speaking,
        video_enabled: p.video_enabled,
        screen_sharing: p.screen_sharing,
    }
}

/// Follows the room on the bus and feeds the director; publishes `program-status` every 2 s. Holds the
/// program only weakly: it ends once the program stopped (the last `Live` dropped, which also closes
/// `refresh`) or the bus closed.
pub(super) async fn follow_room(
    state: AppState,
    live: std::sync::Weak<super::Live>,
    feed: Arc<ProgramFeed>,
    mut refresh: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let Some(broadcast) = live.upgrade().map(|l| l.broadcast) else { return };
    let mut events = state.bus.subscribe(&topic::broadcast(broadcast));
    // The first status comes one period after the start, judging that period (and with a frame to preview:
    // the studio starts polling for one when the first status arrives).
    let started = std::time::Instant::now();
    let mut status = tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut health = super::health::HealthWatch::default();
    if let Some(live) = live.upgrade() {
        health.observe(started.elapsed(), &live.program.stats(), live.program.fps());
    }
    let mut was = super::ProgramHealth::Ok;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(live) = live.upgrade() else { break };
                match ev {
                    Ok(ev) => on_event(&state, &live, &feed, &ev),
                    // Missed some: rebuild from the hub's view of the room.
                    Err(RecvError::Lagged(_)) => resync(&state, &live).await,
                    Err(RecvError::Closed) => break,
                }
            }
            order = refresh.recv() => match (order, live.upgrade()) {
                (Some(()), Some(live)) => resync(&state, &live).await,
                _ => break,
            },
            _ = status.tick() => {
                let Some(live) = live.upgrade() else { break };
                // Stopped (taken off the node's list) but not yet dropped: it says nothing more, so a studio is
                // never told of a program it can no longer preview.
                let listed = match crate::signaling::Hub::get(&state).await {
                    Ok(hub) => hub.programs.get(broadcast).is_some_and(|l| Arc::ptr_eq(&l, &live)),
                    Err(_) => false,
                };
                if !listed {
                    break;
                }
                let stats = live.program.stats();
                let window = health.observe(started.elapsed(), &stats, live.program.fps());
                match (was, window.health) {
                    (super::ProgramHealth::Ok, super::ProgramHealth::Starved) => tracing::warn!(%broadcast, fps = window.fps,
                        skipped = window.skipped, "the program cannot keep its frame rate (short of CPU)"),
                    (super::ProgramHealth::Starved, super::ProgramHealth::Ok) => tracing::info!(%broadcast, "the program keeps its frame rate again"),
                    _ => {}
                }
                was = window.health;
                let on_stage = live.director.stage().map(|s| s.tiles.into_iter().map(|t| t.source).collect::<Vec<_>>());
                let event = RoomEvent::ProgramStatus {
                    state: "running".into(),
                    fps: window.fps,
                    target_fps: live.program.fps(),
                    skipped: window.skipped,
                    health: window.health,
                    stats,
                    on_stage: on_stage.unwrap_or_default(),
                };
                drop(live);
                let _ = state.bus.publish(&topic::broadcast(broadcast), event.to_bus()).await;
            }
        }
    }
    tracing::debug!(%broadcast, "the program's room follower ended");
}

async fn resync(state: &AppState, live: &super::Live) {
    if let Ok(hub) = crate::signaling::Hub::get(state).await {
        live.director.send(Input::Members(hub.roster(state, live.broadcast).await.iter().map(member).collect()));
    }
}

fn on_event(state: &AppState, live: &super::Live, feed: &ProgramFeed, ev: &Event) {
    match RoomEvent::from_bus(ev) {
        Ok(RoomEvent::SceneUpdated { scene }) => {
            live.follow_clip(state, scene.clip.as_ref());
            live.director.send(Input::Scene(scene))
        }
        Ok(RoomEvent::ParticipantJoined { participant } | RoomEvent::ParticipantStatusUpdated { participant }) => {
            live.director.send(Input::Member(member(&participant)))
        }
        Ok(RoomEvent::ParticipantLeft { participant_id, .. }) => {
            let id = participant_id.to_string();
            feed.forget(&id);
            live.director.send(Input::Left(id));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(broadcast = %live.broadcast, event = %ev.event, "unreadable room event: {e}"),
    }
}
