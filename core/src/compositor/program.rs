//! The thread shell around the sans-IO [`Compositor`]: a program per broadcast that ticks at the output
//! frame rate, decodes each track on its own thread, and, once live, feeds [`Egress`].
//!
//! Inputs arrive over a channel and are applied at the start of each tick, so the core never sees two
//! threads. A decoder that falls behind drops its own packets (bounded queue) and never slows the tick.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::decode::{AudioDecoder, DecodeError, VideoCodec, VideoDecoder};
use super::preview::{PreviewEncoder, PreviewPacket, PreviewSettings, PreviewSink};
use super::{
    CanvasError, Compositor, CompositorConfig, OverlayError, OverlayLayer, Placement, PlacementError, StageMember,
};
use crate::egress::{
    Egress, EgressConfig, EgressControl, EgressError, EgressReport, EncoderSettings, ProgramTimeline, SourceRecording,
    SourceRecordingReport, StatusSink,
};
use crate::media::VideoFrame;

/// One encoded unit from the router (str0m `MediaData`, already depacketized).
#[derive(Clone, Debug)]
pub enum EncodedMedia {
    /// A whole video frame.
    Video { codec: VideoCodec, data: Vec<u8> },
    /// One Opus packet.
    Opus { data: Vec<u8> },
}

enum Command {
    Video {
        /// Shared with every frame of the source (no string made per frame).
        source: Arc<str>,
        frame: VideoFrame,
        source_time: Duration,
        arrival: Duration,
    },
    Audio {
        source: Arc<str>,
        samples: Vec<f32>,
        source_time: Duration,
        arrival: Duration,
    },
    Stage(Vec<StageMember>),
    /// The canvases beside the main one, by size.
    Canvases(Vec<(u32, u32)>, mpsc::Sender<Result<(), CanvasError>>),
    /// A canvas's new tiles.
    Placements(usize, Vec<Placement>, mpsc::Sender<Result<(), PlacementError>>),
    /// A canvas's new overlay layers; the reply (if asked for) says whether they were taken.
    Overlays(usize, Vec<OverlayLayer>, Option<mpsc::Sender<Result<(), OverlayError>>>),
    /// One overlay layer shown or replaced by id on a canvas.
    PutOverlay(usize, OverlayLayer),
    /// One overlay layer taken off a canvas by id.
    RemoveOverlay(usize, String),
    /// The colour behind the tiles (RGB), or the starting one.
    Background(Option<[u8; 3]>),
    /// The picture behind a canvas's tiles, or none.
    Backdrop(usize, Option<OverlayLayer>),
    Gain(String, f32),
    Muted(String, bool),
    GoLive(Box<Egress>),
    EndLive(mpsc::Sender<Option<EgressReport>>),
    Preview(Option<Arc<dyn PreviewSink>>),
    /// A copy of a canvas's latest composed frame, if any.
    Still(usize, mpsc::Sender<Option<VideoFrame>>),
    Stop,
}

/// Time spent per stage, summed since start (for benches and metrics).
#[derive(Debug, Default)]
struct Counters {
    ticks: AtomicU64,
    skipped_ticks: AtomicU64,
    compose_ns: AtomicU64,
    overlay_ns: AtomicU64,
    mix_ns: AtomicU64,
    encode_ns: AtomicU64,
    decoded_frames: AtomicU64,
    decode_ns: AtomicU64,
    preview_frames: AtomicU64,
    preview_ns: AtomicU64,
}

/// Per-stage cost of a program so far.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgramStats {
    /// Output frames composed.
    pub ticks: u64,
    /// Ticks skipped because the machine was late by more than a frame.
    pub skipped_ticks: u64,
    /// Mean compose time per frame (tiles scaled into the canvas, name cards and labels), ms.
    pub compose_ms: f64,
    /// Mean overlay blending time per frame, ms.
    pub overlay_ms: f64,
    /// Mean audio mix time per frame, ms.
    pub mix_ms: f64,
    /// Mean encode + fan-out time per frame while live, ms.
    pub encode_ms: f64,
    /// Video frames decoded (all tracks).
    pub decoded_frames: u64,
    /// Mean decode time per video frame, ms.
    pub decode_ms: f64,
    /// Live preview frames encoded (VP8, for hosts watching over WebRTC).
    pub preview_frames: u64,
    /// Mean live preview scale + encode time per preview frame, ms.
    pub preview_ms: f64,
    /// Sources with a running decoder (each on stage; a source off stage has none).
    pub decoding: Vec<String>,
    /// The simulcast layer (lowest first, 0 without simulcast) each decoded source's video comes from.
    #[serde(default)]
    pub layers: std::collections::BTreeMap<String, u8>,
    /// While on air, every encode (the program's own first) and the outputs each feeds: destinations
    /// asking for the same settings share one.
    #[serde(default)]
    pub encodes: Vec<crate::egress::EncodeInfo>,
}

impl Counters {
    fn stats(&self) -> ProgramStats {
        let ms = |ns: &AtomicU64, n: u64| ns.load(Ordering::Relaxed) as f64 / 1e6 / n.max(1) as f64;
        let ticks = self.ticks.load(Ordering::Relaxed);
        let decoded = self.decoded_frames.load(Ordering::Relaxed);
        let previews = self.preview_frames.load(Ordering::Relaxed);
        ProgramStats {
            ticks,
            skipped_ticks: self.skipped_ticks.load(Ordering::Relaxed),
            compose_ms: ms(&self.compose_ns, ticks),
            overlay_ms: ms(&self.overlay_ns, ticks),
            mix_ms: ms(&self.mix_ns, ticks),
            encode_ms: ms(&self.encode_ns, ticks),
            decoded_frames: decoded,
            decode_ms: ms(&self.decode_ns, decoded),
            preview_frames: previews,
            preview_ms: ms(&self.preview_ns, previews),
            decoding: Vec::new(),
            layers: Default::default(),
            encodes: Vec::new(),
        }
    }
}

fn add_elapsed(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Packets a decoder thread may hold before it drops new ones.
const DECODE_QUEUE: usize = 60;

/// Where a source's decoder thread takes its packets: (source id, is video) → queue.
type DecoderInput = SyncSender<(EncodedMedia, Duration)>;

/// A running program.
pub struct Program {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    /// Per source: its audio decoder's input (`[0]`) and its video decoder's (`[1]`), started on first use;
    /// looked up by `&str` on every frame.
    decoders: Mutex<HashMap<String, [Option<DecoderInput>; 2]>>,
    /// Source ids on stage: the only ones decoded.
    on_stage: Mutex<HashSet<String>>,
    /// The simulcast layer each source's video comes from (as the feed last said).
    layers: Mutex<HashMap<String, u8>>,
    epoch: Instant,
    fps: u32,
    counters: Arc<Counters>,
    /// The running egress's control while on air (viewers join through it).
    egress: Mutex<Option<EgressControl>>,
    /// Where the program stands on air, for its participants' recordings.
    timeline: Arc<ProgramTimeline>,
    playout_delay: Duration,
    /// Participants' own recordings, by source id.
    recordings: Mutex<HashMap<String, SourceRecording>>,
}

impl Program {
    /// Starts ticking at `fps` on a new thread.
    pub fn start(config: CompositorConfig, fps: u32) -> Result<Program, EgressError> {
        let (commands, rx) = mpsc::channel();
        let epoch = Instant::now();
        let fps = fps.clamp(1, 120);
        let core =
            Compositor::new(CompositorConfig { frame_duration: Duration::from_secs_f64(1.0 / fps as f64), ..config });
        let counters = Arc::new(Counters::default());
        let timeline = Arc::new(ProgramTimeline::default());
        let playout_delay = core.config().playout_delay;
        let tick = Ticker {
            default_background: core.config().background,
            core,
            rx,
            epoch,
            fps,
            egress: None,
            live_since: None,
            timeline: Arc::clone(&timeline),
            composed: false,
            live_preview: None,
            counters: Arc::clone(&counters),
        };
        let thread = std::thread::Builder::new().name("program".into()).spawn(move || tick.run())?;
        Ok(Program {
            commands,
            thread: Some(thread),
            decoders: Mutex::new(HashMap::new()),
            on_stage: Mutex::new(HashSet::new()),
            layers: Mutex::new(HashMap::new()),
            epoch,
            fps,
            counters,
            egress: Mutex::new(None),
            timeline,
            playout_delay,
            recordings: Mutex::new(HashMap::new()),
        })
    }

    /// Program time now (the one clock everything is stamped with).
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Per-stage cost so far, and which sources are being decoded.
    pub fn stats(&self) -> ProgramStats {
        let mut stats = self.counters.stats();
        let mut decoding: Vec<String> = self
            .decoders
            .lock()
            .iter()
            .filter(|(_, inputs)| inputs.iter().any(Option::is_some))
            .map(|(source, _)| source.clone())
            .collect();
        decoding.sort();
        let layers = self.layers.lock();
        stats.layers = decoding.iter().filter_map(|s| Some((s.clone(), *layers.get(s)?))).collect();
        stats.decoding = decoding;
        drop(layers);
        stats.encodes = self.egress.lock().as_ref().map(EgressControl::encodes).unwrap_or_default();
        stats
    }

    /// Who is on stage, in order. Only on-stage sources are decoded: a source's decoders start with its
    /// first frame on stage and stop when it leaves the stage.
    pub fn set_stage(&self, members: Vec<StageMember>) {
        {
            let mut on_stage = self.on_stage.lock();
            *on_stage = members.iter().map(|m| m.id.clone()).collect();
            self.decoders.lock().retain(|source, _| on_stage.contains(source));
        }
        let _ = self.commands.send(Command::Stage(members));
    }

    /// Sends `command` made with a reply channel and waits for the reply (at most 2 s; `ok` when the program
    /// thread is gone or does not answer).
    fn ask<T>(&self, command: impl FnOnce(mpsc::Sender<T>) -> Command, ok: T) -> T {
        let (tx, rx) = mpsc::channel();
        if self.commands.send(command(tx)).is_err() {
            return ok;
        }
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or(ok)
    }

    /// Sets the canvases composed beside the main one (a vertical 720 × 1280 beside a 1280 × 720, say), each
    /// by its size, from the next tick. A canvas keeping its place and size keeps its tiles and overlays.
    pub fn set_canvases(&self, others: Vec<(u32, u32)>) -> Result<(), CanvasError> {
        self.ask(|tx| Command::Canvases(others, tx), Ok(()))
    }

    /// Applies new placements on the main canvas at the next tick; an invalid set is refused and the last good
    /// one stays.
    pub fn set_placements(&self, placements: Vec<Placement>) -> Result<(), PlacementError> {
        self.set_placements_on(0, placements)
    }

    /// Applies new placements on canvas `canvas` (0 is the main one), as [`Self::set_placements`] does.
    pub fn set_placements_on(&self, canvas: usize, placements: Vec<Placement>) -> Result<(), PlacementError> {
        self.ask(|tx| Command::Placements(canvas, placements, tx), Ok(()))
    }

    /// Replaces the main canvas's overlay layers (as the overlay plugins rendered them) from the next tick.
    pub fn set_overlays(&self, layers: Vec<OverlayLayer>) -> Result<(), OverlayError> {
        self.set_overlays_on(0, layers)
    }

    /// Replaces canvas `canvas`'s overlay layers from the next tick.
    pub fn set_overlays_on(&self, canvas: usize, layers: Vec<OverlayLayer>) -> Result<(), OverlayError> {
        self.ask(|tx| Command::Overlays(canvas, layers, Some(tx)), Ok(()))
    }

    /// Like [`Self::set_overlays`] without waiting for the next tick (animation frames, e.g. a scrolling
    /// ticker); refused layers are logged and the previous ones stay.
    pub fn update_overlays(&self, layers: Vec<OverlayLayer>) {
        let _ = self.commands.send(Command::Overlays(0, layers, None));
    }

    /// Shows or replaces one overlay layer by id on canvas `canvas` (0 is the main one) from the next tick, leaving
    /// the other layers alone (a scrolling ticker re-renders only itself); a refused layer is logged and the
    /// previous one stays.
    pub fn put_overlay_on(&self, canvas: usize, layer: OverlayLayer) {
        let _ = self.commands.send(Command::PutOverlay(canvas, layer));
    }

    /// Puts `layer` behind canvas `canvas`'s tiles from the next tick (`None`: the background colour alone).
    pub fn set_backdrop_on(&self, canvas: usize, layer: Option<OverlayLayer>) {
        let _ = self.commands.send(Command::Backdrop(canvas, layer));
    }

    /// Takes overlay layer `id` off canvas `canvas` from the next tick.
    pub fn remove_overlay_on(&self, canvas: usize, id: &str) {
        let _ = self.commands.send(Command::RemoveOverlay(canvas, id.to_owned()));
    }

    /// The colour behind the tiles from the next tick (RGB; `None`: the colour the program started with).
    pub fn set_background(&self, rgb: Option<[u8; 3]>) {
        let _ = self.commands.send(Command::Background(rgb));
    }

    pub fn set_gain(&self, source: &str, gain: f32) {
        let _ = self.commands.send(Command::Gain(source.to_owned(), gain));
    }

    pub fn set_muted(&self, source: &str, muted: bool) {
        let _ = self.commands.send(Command::Muted(source.to_owned(), muted));
    }

    /// A decoded frame (e.g. from a test source), stamped on the source's clock.
    pub fn push_frame(&self, source: &str, frame: VideoFrame, source_time: Duration) {
        let arrival = self.now();
        let _ = self.commands.send(Command::Video { source: source.into(), frame, source_time, arrival });
    }

    /// Decoded audio (interleaved stereo f32, 48 kHz), stamped on the source's clock.
    pub fn push_samples(&self, source: &str, samples: Vec<f32>, source_time: Duration) {
        let arrival = self.now();
        let _ = self.commands.send(Command::Audio { source: source.into(), samples, source_time, arrival });
    }

    /// The simulcast layer `source`'s video now comes from (reported in [`ProgramStats::layers`]).
    pub fn set_layer(&self, source: &str, layer: u8) {
        self.layers.lock().insert(source.to_owned(), layer);
    }

    /// The sources on stage now.
    pub fn on_stage(&self) -> Vec<String> {
        self.on_stage.lock().iter().cloned().collect()
    }

    /// Whether `source` is on stage (only on-stage sources are decoded).
    pub fn wants(&self, source: &str) -> bool {
        self.on_stage.lock().contains(source)
    }

    /// Encoded media from the router; decoded on the track's own thread (started on first use) while the
    /// source is on stage, dropped otherwise.
    pub fn push_encoded(&self, source: &str, media: EncodedMedia, source_time: Duration) {
        if !self.wants(source) {
            return;
        }
        let kind = usize::from(matches!(media, EncodedMedia::Video { .. }));
        let mut decoders = self.decoders.lock();
        if !decoders.contains_key(source) {
            decoders.insert(source.to_owned(), [None, None]);
        }
        // Inserted just above when missing.
        let inputs = decoders.get_mut(source).expect("the source's decoder inputs");
        if inputs[kind].is_none() {
            match spawn_decoder(source, &media, self.commands.clone(), self.epoch, Arc::clone(&self.counters)) {
                Ok(tx) => inputs[kind] = Some(tx),
                Err(e) => {
                    tracing::warn!(source, error = %e, "cannot start decoder");
                    return;
                }
            }
        }
        if let Some(tx) = &inputs[kind]
            && let Err(TrySendError::Disconnected(_)) = tx.try_send((media, source_time))
        {
            inputs[kind] = None;
        }
    }

    /// Starts recording `source` as published (its own media, not decoded again) into `stem` + `.webm` or
    /// `.mkv`, on the program's timeline; its frames come through [`Self::push_recorded`]. `with_audio`: the
    /// source has a microphone (a camera's does, a screen share's not). A recording already running goes on.
    pub fn start_recording(&self, source: &str, stem: std::path::PathBuf, with_audio: bool) -> std::io::Result<()> {
        let mut recordings = self.recordings.lock();
        if !recordings.contains_key(source) {
            let timeline = Arc::clone(&self.timeline);
            recordings
                .insert(source.to_owned(), SourceRecording::start(stem, with_audio, timeline, self.playout_delay)?);
        }
        Ok(())
    }

    /// Whether `source` is being recorded.
    pub fn records(&self, source: &str) -> bool {
        self.recordings.lock().contains_key(source)
    }

    /// Stops recording `source`: what is queued is written and the file closed (this blocks until it is).
    pub fn stop_recording(&self, source: &str) -> Option<SourceRecordingReport> {
        let recording = self.recordings.lock().remove(source)?;
        Some(recording.stop())
    }

    /// A frame of a recorded source, as published (`keyframe`: a video frame that starts a picture), stamped on
    /// the feed's clock.
    pub fn push_recorded(&self, source: &str, media: EncodedMedia, keyframe: bool, source_time: Duration) {
        if let Some(r) = self.recordings.lock().get(source) {
            r.push(media, keyframe, source_time, self.now());
        }
    }

    /// Starts encoding and pushing: destinations + recording. Each encode scales the canvas to its own size
    /// if they differ. Returns the program's own encode settings.
    pub fn go_live(&self, config: EgressConfig, sink: StatusSink) -> Result<EncoderSettings, EgressError> {
        let egress = Egress::start(config, sink)?;
        let settings = egress.settings().clone();
        *self.egress.lock() = Some(egress.control());
        let _ = self.commands.send(Command::GoLive(Box::new(egress)));
        Ok(settings)
    }

    /// The encode's control while on air: viewers are added through it.
    pub fn egress(&self) -> Option<EgressControl> {
        self.egress.lock().clone()
    }

    /// Stops egress (flush, close, finalise), bounded; the program keeps running for the preview.
    pub fn end_live(&self) -> Option<EgressReport> {
        self.egress.lock().take();
        let (tx, rx) = mpsc::channel();
        self.commands.send(Command::EndLive(tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(15)).ok().flatten()
    }

    /// Sends a live preview (a small VP8 encode of every second or third composed frame, on its own thread) to
    /// `sink` while it is watched, or stops with `None`.
    pub fn set_preview_sink(&self, sink: Option<Arc<dyn PreviewSink>>) {
        let _ = self.commands.send(Command::Preview(sink));
    }

    /// A copy of the latest composed frame (`None` before the first), taken by the program thread between two
    /// ticks when asked: frames are not copied for a still nobody asked for. Waits at most about a tick.
    pub fn preview(&self) -> Option<VideoFrame> {
        self.preview_of(0)
    }

    /// A copy of canvas `canvas`'s latest composed frame (0 is the main one), as [`Self::preview`] gives the main
    /// one's; `None` where there is no such canvas.
    pub fn preview_of(&self, canvas: usize) -> Option<VideoFrame> {
        self.ask(|tx| Command::Still(canvas, tx), None)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        self.decoders.lock().clear();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decodes one video frame, counting its time and the frame in the program's stats.
fn timed_decode(d: &mut VideoDecoder, data: &[u8], counters: &Counters) -> Result<Vec<VideoFrame>, DecodeError> {
    let t = Instant::now();
    let r = d.decode(data);
    add_elapsed(&counters.decode_ns, t);
    counters.decoded_frames.fetch_add(1, Ordering::Relaxed);
    r
}

fn spawn_decoder(
    source: &str,
    first: &EncodedMedia,
    commands: Sender<Command>,
    epoch: Instant,
    counters: Arc<Counters>,
) -> Result<SyncSender<(EncodedMedia, Duration)>, EgressError> {
    let (tx, rx) = mpsc::sync_channel::<(EncodedMedia, Duration)>(DECODE_QUEUE);
    let source: Arc<str> = source.into();
    let video_codec = match first {
        EncodedMedia::Video { codec, .. } => Some(*codec),
        EncodedMedia::Opus { .. } => None,
    };
    std::thread::Builder::new().name(format!("decode-{source}")).spawn(move || {
        let mut video = None;
        let mut audio = None;
        let result = match video_codec {
            Some(c) => VideoDecoder::new(c).map(|d| video = Some(d)),
            None => AudioDecoder::opus().map(|d| audio = Some(d)),
        };
        if let Err(e) = result {
            tracing::warn!(%source, error = %e, "decoder failed to open");
            return;
        }
        while let Ok((media, source_time)) = rx.recv() {
            match (media, video.as_mut(), audio.as_mut()) {
                (EncodedMedia::Video { data, .. }, Some(d), _) => match timed_decode(d, &data, &counters) {
                    Ok(frames) => {
                        for frame in frames {
                            let arrival = epoch.elapsed();
                            let cmd = Command::Video { source: Arc::clone(&source), frame, source_time, arrival };
                            if commands.send(cmd).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(%source, error = %e, "video decode error"),
                },
                (EncodedMedia::Opus { data }, _, Some(d)) => match d.decode(&data) {
                    Ok(samples) if !samples.is_empty() => {
                        let arrival = epoch.elapsed();
                        let cmd = Command::Audio { source: Arc::clone(&source), samples, source_time, arrival };
                        if commands.send(cmd).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(%source, error = %e, "audio decode error"),
                },
                _ => {}
            }
        }
    })?;
    Ok(tx)
}

/// The live preview's encoder thread and the sink it feeds.
struct LivePreview {
    sink: Arc<dyn PreviewSink>,
    /// Composed frames for the encoder; one waits at most (a busy encoder skips frames, never the tick).
    frames: SyncSender<(VideoFrame, Duration)>,
    /// Frames the encoder is done with, written over for the next preview frame (no allocation per frame).
    spare: Receiver<VideoFrame>,
    /// Frames made so far: one being encoded and one waiting at most.
    buffers: usize,
    /// Every how many ticks a frame is previewed.
    every: u64,
}

impl LivePreview {
    fn start(sink: Arc<dyn PreviewSink>, canvas: (u32, u32), fps: u32, counters: Arc<Counters>) -> Option<Self> {
        let settings = PreviewSettings::default();
        let every = u64::from(fps.div_ceil(settings.fps).max(1));
        let settings = PreviewSettings { fps: (fps / every as u32).max(1), ..settings };
        let mut encoder = match PreviewEncoder::new(canvas, settings) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "no live program preview (the studio falls back to stills)");
                return None;
            }
        };
        let (frames, rx) = mpsc::sync_channel::<(VideoFrame, Duration)>(1);
        let (spare_tx, spare) = mpsc::channel();
        let out = Arc::clone(&sink);
        let spawned = std::thread::Builder::new().name("program-preview".into()).spawn(move || {
            while let Ok((frame, at)) = rx.recv() {
                let t = Instant::now();
                let keyframe = out.take_keyframe_request();
                match encoder.encode(&frame, keyframe) {
                    Ok(packets) => {
                        add_elapsed(&counters.preview_ns, t);
                        counters.preview_frames.fetch_add(1, Ordering::Relaxed);
                        for (data, keyframe) in packets {
                            out.send(PreviewPacket { data, keyframe, at });
                        }
                        let _ = spare_tx.send(frame);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live program preview stopped");
                        return;
                    }
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no live program preview");
            return None;
        }
        Some(LivePreview { sink, frames, spare, buffers: 0, every })
    }

    /// Hands tick `n`'s frame to the encoder if it is a preview tick, someone watches and the encoder is free:
    /// copied into a frame the encoder gave back, or a new one while fewer than two exist.
    fn offer(&mut self, n: u64, frame: &VideoFrame, at: Duration) {
        if !n.is_multiple_of(self.every) || !self.sink.watched() {
            return;
        }
        let copy = match self.spare.try_recv() {
            Ok(mut spare) => {
                spare.copy_from(frame);
                spare
            }
            Err(_) if self.buffers < 2 => {
                self.buffers += 1;
                frame.clone()
            }
            // Both frames are with the encoder: it is still busy, this frame is skipped.
            Err(_) => return,
        };
        // Full: the encoder is still on the last one, this frame is skipped (and its buffer lost, made again
        // later). Gone: it stopped and said why.
        if self.frames.try_send((copy, at)).is_err() {
            self.buffers -= 1;
        }
    }
}

struct Ticker {
    core: Compositor,
    /// The colour behind the tiles the program started with (a brand's may replace it).
    default_background: [u8; 3],
    rx: Receiver<Command>,
    epoch: Instant,
    fps: u32,
    egress: Option<Box<Egress>>,
    /// Program time at which egress started (its media time zero).
    live_since: Option<Duration>,
    /// The same, for the participants' recordings.
    timeline: Arc<ProgramTimeline>,
    /// Whether a frame was composed yet (the canvas holds the latest one between ticks).
    composed: bool,
    live_preview: Option<LivePreview>,
    counters: Arc<Counters>,
}

impl Ticker {
    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Video { source, frame, source_time, arrival } => {
                self.core.push_video(&source, frame, source_time, arrival)
            }
            Command::Audio { source, samples, source_time, arrival } => {
                self.core.push_audio(&source, &samples, source_time, arrival)
            }
            Command::Stage(members) => self.core.set_stage(&members),
            Command::Canvases(sizes, reply) => {
                let _ = reply.send(self.core.set_canvases(&sizes));
            }
            Command::Placements(canvas, p, reply) => {
                let _ = reply.send(self.core.set_placements_on(canvas, p));
            }
            Command::PutOverlay(canvas, layer) => {
                if let Err(e) = self.core.put_overlay_on(canvas, &layer) {
                    tracing::warn!(error = %e, "overlay layer refused; the previous one stays");
                }
            }
            Command::RemoveOverlay(canvas, id) => self.core.remove_overlay_on(canvas, &id),
            Command::Backdrop(canvas, layer) => {
                if let Err(e) = self.core.set_backdrop_on(canvas, layer.as_ref()) {
                    tracing::warn!(error = %e, "background picture refused; the background colour shows");
                }
            }
            Command::Background(Some(rgb)) => self.core.set_background_rgb(rgb),
            Command::Background(None) => self.core.set_background(self.default_background),
            Command::Overlays(canvas, layers, reply) => {
                let result = self.core.set_overlays_on(canvas, &layers);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::warn!(error = %e, "overlay layers refused; the previous ones stay");
                        }
                    }
                }
            }
            Command::Gain(s, g) => self.core.set_gain(&s, g),
            Command::Muted(s, m) => self.core.set_muted(&s, m),
            Command::GoLive(egress) => {
                if let Some(old) = self.egress.replace(egress) {
                    old.stop();
                }
                self.live_since = None;
                self.timeline.set_live_since(None);
            }
            Command::EndLive(reply) => {
                let report = self.egress.take().map(|e| e.stop());
                self.live_since = None;
                self.timeline.set_live_since(None);
                let _ = reply.send(report);
            }
            Command::Preview(sink) => {
                let (w, h) = self.core.canvas_size();
                self.live_preview = sink.and_then(|s| LivePreview::start(s, (w, h), self.fps, self.counters.clone()));
            }
            Command::Still(canvas, reply) => {
                let _ = reply.send(self.core.canvas_frame(canvas).filter(|_| self.composed).cloned());
            }
            Command::Stop => return false,
        }
        true
    }

    fn run(mut self) {
        let tick = Duration::from_secs_f64(1.0 / self.fps as f64);
        let mut n: u64 = 0;
        loop {
            let due = tick * n as u32;
            // Apply inputs until this tick is due.
            loop {
                let now = self.epoch.elapsed();
                let Some(wait) = due.checked_sub(now).filter(|w| !w.is_zero()) else {
                    break;
                };
                match self.rx.recv_timeout(wait) {
                    Ok(cmd) => {
                        if !self.apply(cmd) {
                            return self.shutdown();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return self.shutdown(),
                }
            }
            while let Ok(cmd) = self.rx.try_recv() {
                if !self.apply(cmd) {
                    return self.shutdown();
                }
            }
            // Late by more than a tick (machine overloaded): skip ticks instead of bursting.
            let now = self.epoch.elapsed();
            if now > due + tick {
                let caught_up = (now.as_nanos() / tick.as_nanos()) as u64;
                self.counters.skipped_ticks.fetch_add(caught_up.saturating_sub(n), Ordering::Relaxed);
                n = caught_up;
                continue;
            }
            let t = Instant::now();
            let audio_from = self.core.mixed_until();
            let mut audio = self.core.mix(due + tick);
            add_elapsed(&self.counters.mix_ns, t);
            let t = Instant::now();
            self.core.compose_tiles(due);
            add_elapsed(&self.counters.compose_ns, t);
            let t = Instant::now();
            let frame = self.core.blend_overlays();
            add_elapsed(&self.counters.overlay_ns, t);
            self.counters.ticks.fetch_add(1, Ordering::Relaxed);
            self.composed = true;
            if let Some(p) = &mut self.live_preview {
                p.offer(n, frame, due);
            }
            let encode_start = Instant::now();
            if let Some(egress) = self.egress.as_mut() {
                if self.live_since.is_none() && audio_from < due {
                    // Going live right after skipped ticks: this mix also covers the skipped span before
                    // `due`, which has no video. Egress media time 0 is `due` for both, so drop that audio
                    // (else the whole broadcast's audio would lag its video by the skipped span).
                    let early =
                        (due - audio_from).as_micros() as usize * crate::media::SAMPLE_RATE as usize / 1_000_000;
                    audio.drain(..(early * 2).min(audio.len()));
                }
                let since = *self.live_since.get_or_insert_with(|| {
                    self.timeline.set_live_since(Some(due));
                    due
                });
                let media = due - since;
                let frames: Vec<&VideoFrame> = self.core.frames().collect();
                let result = egress.push_canvases(&frames, media);
                if let Err(e) = result.and_then(|_| egress.push_audio(&audio)) {
                    tracing::error!(error = %e, "egress refused the program; ending live");
                    if let Some(e) = self.egress.take() {
                        e.stop();
                    }
                }
                add_elapsed(&self.counters.encode_ns, encode_start);
            }
            n += 1;
        }
    }

    fn shutdown(mut self) {
        if let Some(e) = self.egress.take() {
            e.stop();
        }
    }
}
