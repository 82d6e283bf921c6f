//! The shell around core's [`Director`]: a thread of its own per program, so layout and overlay plugin calls
//! and the program's replies never hold an async worker, fed by a task that follows the room on the bus.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::bus::{Event, topic};
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
    Scene(director::Scene),
    Member(Member),
    Left(String),
    /// Everyone in the room (after events were missed).
    Members(Vec<Member>),
    /// The program went on air, or came off it.
    OnAir(bool),
}

/// The director thread of one program: inputs go in over a channel; the latest stage as the studio draws
/// it is kept for late joiners.
pub(super) struct DirectorThread {
    inputs: mpsc::Sender<Input>,
    stage: Arc<Mutex<Option<StageLayout>>>,
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
        let shell = Shell {
            broadcast,
            program,
            media,
            stage: stage.clone(),
            bus: state.bus.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let data_dir = state.cfg.data_dir.clone();
        std::thread::Builder::new().name("program-director".into()).spawn(move || {
            let painter = PluginPainter::new(host.clone(), move |url: &str| load_upload(&data_dir, url));
            let director = Director::new(canvas, PluginLayouts::new(host), painter);
            shell.run(director, rx);
        })?;
        Ok(DirectorThread { inputs, stage })
    }

    pub(super) fn send(&self, input: Input) {
        let _ = self.inputs.send(input);
    }

    /// The stage as the studio draws it, once anyone was placed.
    pub(super) fn stage(&self) -> Option<StageLayout> {
        self.stage.lock().clone()
    }
}

/// Carries out what the director decides.
struct Shell {
    broadcast: Uuid,
    program: Arc<Program>,
    media: MediaNode,
    stage: Arc<Mutex<Option<StageLayout>>>,
    bus: Arc<dyn crate::bus::Bus>,
    /// The server's runtime, for publishing on the bus from this thread.
    runtime: tokio::runtime::Handle,
}

impl Shell {
    fn run<L: director::Layouts, P: director::Painter>(self, mut d: Director<L, P>, rx: mpsc::Receiver<Input>) {
        loop {
            let wait = d.poll_timeout().map_or(Duration::from_secs(3600), |t| t.saturating_sub(self.program.now()));
            match rx.recv_timeout(wait) {
                Ok(input) => {
                    let now = self.program.now();
                    match input {
                        Input::Scene(scene) => d.handle_scene(scene, now),
                        Input::Member(m) => d.handle_member(m, now),
                        Input::Left(id) => d.handle_left(&id, now),
                        Input::Members(all) => d.handle_members(all, now),
                        Input::OnAir(on) => d.handle_on_air(on, now),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The program was stopped: its `Live` (and so the sender) is gone.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            d.handle_tick(self.program.now());
            while let Some(out) = d.poll_output() {
                self.carry_out(out);
            }
        }
        tracing::debug!(broadcast = %self.broadcast, "director stopped");
    }

    fn carry_out(&self, out: Output) {
        let room = self.broadcast.to_string();
        match out {
            Output::Stage(members) => self.program.set_stage(members),
            Output::Placements { placements, stage } => {
                // Each tile takes the smallest simulcast layer at least as large as its rectangle.
                let sizes: Vec<(String, TrackSource, (u16, u16))> = placements
                    .iter()
                    .map(|p| {
                        let (participant, source) = match p.source.strip_suffix(":screen") {
                            Some(participant) => (participant.to_owned(), TrackSource::Screen),
                            None => (p.source.clone(), TrackSource::Camera),
                        };
                        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                        (participant, source, (clamp(p.rect.width), clamp(p.rect.height)))
                    })
                    .collect();
                if let Err(e) = self.program.set_placements(placements) {
                    tracing::warn!(broadcast = %self.broadcast, "placements refused, the last good ones stay: {e}");
                    return;
                }
                for (participant, source, size) in sizes {
                    self.media.set_tap_size(&room, &participant, source, Some(size));
                }
                *self.stage.lock() = Some(stage.clone());
                let (bus, broadcast) = (self.bus.clone(), self.broadcast);
                let event = RoomEvent::StageLayout(stage).to_bus();
                self.runtime.spawn(async move {
                    let _ = bus.publish(&topic::broadcast(broadcast), event).await;
                });
            }
            Output::ShowOverlay(layer) => self.program.put_overlay(layer),
            Output::HideOverlay(id) => self.program.remove_overlay(&id),
            Output::Keyframe(participant) => self.media.request_keyframes(&room, &participant),
            Output::Background(rgb) => self.program.set_background(rgb),
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
            live.director.send(Input::Scene(scene.to_director()))
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
