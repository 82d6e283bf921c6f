//! Egress: encode the program **once**, then fan the packets out to every destination and the recorder.
//!
//! ```text
//!  push_video / push_audio ──► Encoder (x264 + AAC FIFO) ──► Arc<EncodedPacket>
//!                                                              │ (never blocks: bounded queues, drop on overflow)
//!                           ┌──────────────────────┬───────────┴──────────┐
//!                     OutputQueue            OutputQueue              OutputQueue
//!                     sender thread          sender thread            sender thread
//!                     FLV → rtmp://…         FLV → rtmps://…          fMP4 → file
//! ```
//!
//! The HLS output (for the watch page) is one more output of the same kind: CMAF segments cut at the
//! encoder's keyframes into a folder, a rolling playlist beside them.
//!
//! "Once" means once per distinct setting: the program's own encode (the recording, HLS and viewers take it)
//! and one more for each different profile destinations ask for ([`DestinationConfig::profile`], held within
//! the platform's limits). Destinations with equal settings share an encode; each extra encode scales the
//! program's frame to its own size.
//!
//! Each output thread owns its FFmpeg context; every blocking FFmpeg call it makes is bounded by a watchdog
//! (an AVIO interrupt callback plus `rw_timeout`), so a dead or frozen server costs only its own output,
//! which reconnects on its own ([`ReconnectPolicy`]). Status changes go to a [`StatusSink`].
//!
//! Architecture Invariant: the encoder thread never waits for an output; outputs never touch the encoder
//! except to ask for a keyframe.

mod address;
pub(crate) mod encoder;
pub(crate) mod muxer;
mod probe;
mod relay;
mod sender;
mod source_recording;
mod status;
mod test_pattern;
pub(crate) mod webrtc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use address::{AddressError, AddressPolicy, check as check_address};
pub use encoder::{
    AAC_FRAME, AUDIO_STREAM, DestinationConstraints, EncodedPacket, EncoderSettings, H264Profile, SAMPLE_RATE,
    VIDEO_STREAM, VideoFrame, limit_for_shape,
};
pub use muxer::{ByteSink, Remuxed, media_duration, media_span, remux};
pub use probe::{DestinationTestError, TestOptions, TestReport, test_destination, test_destination_with};
pub use relay::{Relay, RelayConfig};
pub use sender::ReconnectPolicy;
pub use source_recording::{AUDIO_ONLY_AFTER, ProgramTimeline, SourceRecording, SourceRecordingReport};
pub use status::{OutputKind, OutputState, OutputStatus, StatusSink, no_status_sink};
pub use test_pattern::TestPattern;
pub use webrtc::{AudioTap, VideoTap, WebRtcFrame};

use encoder::Encoder;
use muxer::{OutputOptions, StreamSpec};
use sender::{OutputQueue, SenderSetup, SenderSummary};

/// Errors of the egress API.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The encoder settings cannot be used.
    #[error("invalid encoder settings: {0}")]
    InvalidSettings(String),
    /// A destination URL is malformed or uses an unsupported scheme (the URL itself is never shown).
    #[error("invalid destination {id}: {reason}")]
    InvalidDestination {
        /// The destination id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Two outputs share an id.
    #[error("duplicate output id {0}")]
    DuplicateId(String),
    /// No output with this id.
    #[error("no output {0}")]
    UnknownOutput(String),
    /// FFmpeg refused to set up or run an encoder.
    #[error("encoder: {0}")]
    Encoder(String),
    /// A frame does not have the size the encoder was opened with.
    #[error("frame is {got:?}, encoder expects {expected:?}")]
    FrameSize {
        /// Encoder size.
        expected: (u32, u32),
        /// Frame size.
        got: (u32, u32),
    },
    /// The recording file cannot be created.
    #[error("recording {path}: {reason}")]
    Recording {
        /// Path of the file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// As many viewers as a program serves are already watching.
    #[error("{0} viewers are already watching this program over HTTP")]
    TooManyViewers(usize),
    /// The OS refused to start a thread.
    #[error("spawn thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// One RTMP/RTMPS destination.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// Caller's id (the destination row id); used in status and logs.
    pub id: String,
    /// Full ingest URL including the stream key, `rtmp://` or `rtmps://`. Never logged unredacted.
    pub url: String,
    /// Extra CA bundle for RTMPS (PEM); the system store is used otherwise. Verification is always on.
    pub ca_file: Option<PathBuf>,
    /// This destination's own encode (size, rate, bitrates, keyframes, profile); `None` takes the program's.
    /// Destinations whose settings come out equal share one encode.
    pub profile: Option<EncoderSettings>,
    /// Limits of the platform: the encode this destination gets stays within them.
    pub constraints: DestinationConstraints,
    /// Which addresses the URL's host may resolve to (checked on every connect).
    pub address_policy: AddressPolicy,
    /// The program canvas it streams (0: the main one; see [`EgressConfig::canvases`]).
    pub canvas: usize,
}

/// Timeouts of every blocking network operation of an output.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Connect + TLS + RTMP handshake + publish.
    pub open: Duration,
    /// One write (also FFmpeg's `rw_timeout`).
    pub write: Duration,
    /// Trailer + close.
    pub close: Duration,
    /// How long [`Egress::stop`] lets outputs drain before interrupting them.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            open: Duration::from_secs(5),
            write: Duration::from_secs(5),
            close: Duration::from_secs(2),
            drain: Duration::from_secs(2),
        }
    }
}

/// Everything egress needs to start.
#[derive(Clone, Debug)]
pub struct EgressConfig {
    /// The program's encode before destination constraints apply.
    pub encoder: EncoderSettings,
    /// Destinations (may be empty: record only).
    pub destinations: Vec<DestinationConfig>,
    /// fMP4 recording path, if recording.
    pub recording: Option<PathBuf>,
    /// Folder of the HLS stream (`index.m3u8`, `init.mp4`, `seg-NNNNN.m4s`), if viewers may watch.
    pub hls: Option<PathBuf>,
    /// Reconnect cadence of destinations.
    pub reconnect: ReconnectPolicy,
    /// Network timeouts.
    pub timeouts: Timeouts,
    /// Media each destination may hold in its queue before it is considered slow.
    pub queue: Duration,
    /// The sizes of the program's canvases beside the main one (canvas 1 first): a destination on one of them
    /// without a profile of its own is encoded at its canvas's size.
    pub canvases: Vec<(u32, u32)>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            encoder: EncoderSettings::default(),
            destinations: Vec::new(),
            recording: None,
            hls: None,
            reconnect: ReconnectPolicy::default(),
            timeouts: Timeouts::default(),
            queue: Duration::from_secs(2),
            canvases: Vec::new(),
        }
    }
}

/// The recording as it was finalised.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReport {
    /// The file.
    pub path: PathBuf,
    /// Size on disk in bytes.
    pub size_bytes: u64,
    /// Media duration written.
    pub duration_secs: f64,
}

/// What [`Egress::stop`] returns.
#[derive(Clone, Debug)]
pub struct EgressReport {
    /// Final status of each output.
    pub outputs: Vec<OutputStatus>,
    /// The recording, if there was one.
    pub recording: Option<RecordingReport>,
}

struct OutputHandle {
    id: String,
    kind: OutputKind,
    queue: Arc<OutputQueue>,
    abort: Arc<AtomicBool>,
    status: Arc<Mutex<OutputStatus>>,
    thread: Option<JoinHandle<SenderSummary>>,
    path: Option<PathBuf>,
}

/// State shared by the encoding side and [`EgressControl`].
struct Shared {
    outputs: Mutex<Vec<OutputHandle>>,
    streams: Vec<StreamSpec>,
    keyframe_request: Arc<AtomicBool>,
    sink: StatusSink,
    reconnect: ReconnectPolicy,
    timeouts: Timeouts,
    queue_capacity: usize,
    /// Viewers started so far (names each one).
    viewers_started: std::sync::atomic::AtomicU64,
    /// Where the video goes for WebRTC viewers, with its Annex B rewriter.
    video_tap: Mutex<Option<(VideoTap, webrtc::AnnexB)>>,
    /// Where the mixed audio goes for WebRTC viewers, with its Opus encoder.
    audio_tap: Mutex<Option<webrtc::OpusTap>>,
}

/// Viewers reading the program over HTTP at once, per program (each has a thread and a 2 s queue).
pub const MAX_VIEWERS: usize = 200;

// SAFETY: `streams` holds codec parameters that are only read (cloned) under `&self`; FFmpeg parameter
// structs are plain data with no thread affinity. Everything else is Sync already.
unsafe impl Sync for Shared {}

/// One encode and the outputs it feeds.
struct Lane {
    /// The canvas it encodes (0: the main one).
    canvas: usize,
    encoder: Encoder,
    shared: Arc<Shared>,
    /// The program's frame scaled to this encode's size, when the two differ.
    scaled: Option<VideoFrame>,
    scaler: crate::compositor::blit::Scaler,
}

impl Lane {
    fn new(canvas: usize, settings: &EncoderSettings, config: &LaneConfig) -> Result<Lane, EgressError> {
        let encoder = Encoder::new(settings)?;
        let packets_per_second = settings.fps as f64 + SAMPLE_RATE as f64 / AAC_FRAME as f64;
        let capacity = (packets_per_second * config.queue.as_secs_f64()).ceil().max(8.0) as usize;
        let sink = Arc::clone(&config.sink);
        let shared = Arc::new(Shared::new(encoder.streams(), sink, &config.reconnect, &config.timeouts, capacity));
        Ok(Lane { canvas, encoder, shared, scaled: None, scaler: Default::default() })
    }

    /// Encodes `frame` (scaled to this encode's size if need be) and queues the packets to this lane's outputs.
    fn push_video(&mut self, frame: &VideoFrame, at: Duration, scratch: &mut Vec<EncodedPacket>) -> EgressResult {
        let force = self.shared.keyframe_request.swap(false, Ordering::AcqRel);
        let (w, h) = (self.encoder.settings().width, self.encoder.settings().height);
        let picture = if (w, h) == (frame.width(), frame.height()) {
            frame
        } else {
            const BLACK: [u8; 3] = [16, 128, 128];
            let out = self.scaled.get_or_insert_with(|| VideoFrame::filled(w, h, BLACK));
            let whole = crate::compositor::Rect::new(0, 0, w, h);
            self.scaler.draw(out, frame, whole, crate::compositor::Fit::Contain, BLACK);
            out
        };
        self.encoder.encode_video(picture, at, force, scratch)?;
        self.shared.fan_out(scratch);
        Ok(())
    }

    fn push_audio(&mut self, interleaved_stereo: &[f32], scratch: &mut Vec<EncodedPacket>) -> EgressResult {
        self.encoder.encode_audio(interleaved_stereo, scratch)?;
        self.shared.fan_out(scratch);
        Ok(())
    }

    /// Flushes the encoder into the outputs (which go on until stopped).
    fn flush(&mut self, scratch: &mut Vec<EncodedPacket>) {
        if let Err(e) = self.encoder.finish(scratch) {
            tracing::warn!(error = %e, "flushing an encoder failed");
        }
        self.shared.fan_out(scratch);
    }

    fn describe(&self) -> EncodeInfo {
        EncodeInfo { canvas: self.canvas, ..self.shared.describe(self.encoder.settings()) }
    }
}

type EgressResult = Result<(), EgressError>;

/// What every encode of one egress is started with.
#[derive(Clone)]
struct LaneConfig {
    sink: StatusSink,
    reconnect: ReconnectPolicy,
    timeouts: Timeouts,
    queue: Duration,
}

/// The encodes beside the program's own, shared by [`Egress`] (which feeds them) and [`EgressControl`] (which
/// adds and removes destinations while live).
struct OtherEncodes {
    lanes: Mutex<Vec<Lane>>,
    /// Audio samples (per channel) pushed so far: where a newly started encode's audio timeline begins.
    samples: std::sync::atomic::AtomicI64,
    config: LaneConfig,
    /// The program's own settings: a destination without a profile of its own starts from them.
    main: EncoderSettings,
    /// The sizes of the canvases beside the main one (canvas 1 first).
    canvases: Vec<(u32, u32)>,
}

impl OtherEncodes {
    /// The settings a destination without a profile starts from on canvas `canvas`: the program's, at that
    /// canvas's size.
    fn base(&self, canvas: usize) -> Option<EncoderSettings> {
        if canvas == 0 {
            return Some(self.main.clone());
        }
        let &(width, height) = self.canvases.get(canvas - 1)?;
        Some(EncoderSettings { width, height, ..self.main.clone() })
    }
}

/// One encode, as the program's statistics list it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncodeInfo {
    /// The canvas it encodes (0: the main one).
    pub canvas: usize,
    /// What it encodes.
    pub settings: EncoderSettings,
    /// The outputs it feeds (`recording`, `hls`, destination ids), viewers aside.
    pub outputs: Vec<String>,
    /// Viewers reading it over HTTP.
    pub viewers: usize,
}

/// A running egress. Owned by the program thread, which pushes frames into it.
pub struct Egress {
    main: Lane,
    others: Arc<OtherEncodes>,
    scratch: Vec<EncodedPacket>,
}

fn validate_url(id: &str, url: &str) -> Result<(), EgressError> {
    let invalid = |reason: &str| EgressError::InvalidDestination { id: id.to_owned(), reason: reason.to_owned() };
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("rtmps://") {
        r
    } else if let Some(r) = lower.strip_prefix("rtmp://") {
        r
    } else {
        return Err(invalid("URL must start with rtmp:// or rtmps://"));
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid("URL has no host"));
    }
    if url.contains(char::is_whitespace) || url.contains('\0') {
        return Err(invalid("URL contains whitespace"));
    }
    let path = &rest[host.len()..];
    if path.trim_matches('/').is_empty() {
        return Err(invalid("URL has no application/stream key path"));
    }
    Ok(())
}

/// The stream key is the last path segment (and any query) of an RTMP URL.
fn register_url_secrets(url: &str) {
    if let Some((_, after_scheme)) = url.split_once("://") {
        let path = after_scheme.split_once('/').map_or("", |(_, p)| p);
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        if let Some(key) = path.rsplit('/').next() {
            crate::ffmpeg::register_secret(key);
        }
        for part in query.split('&') {
            if let Some((_, v)) = part.split_once('=') {
                crate::ffmpeg::register_secret(v);
            }
        }
    }
}

fn rtmp_options(dest: &DestinationConfig, timeouts: &Timeouts) -> OutputOptions {
    let mut io = vec![("rw_timeout".to_owned(), timeouts.write.as_micros().to_string())];
    if dest.url.to_ascii_lowercase().starts_with("rtmps://") {
        io.push(("tls_verify".into(), "1".into()));
        if let Some(ca) = &dest.ca_file {
            io.push(("ca_file".into(), ca.display().to_string()));
        }
    }
    OutputOptions {
        format: "flv",
        io,
        // A live FLV has no duration/filesize to patch in at the end (and cannot seek to do so).
        muxer: vec![("flvflags".into(), "no_duration_filesize".into())],
        open_timeout: timeouts.open,
        write_timeout: timeouts.write,
        close_timeout: timeouts.close,
        sink: None,
    }
}

fn recording_options(timeouts: &Timeouts) -> OutputOptions {
    OutputOptions {
        format: "mp4",
        io: Vec::new(),
        muxer: vec![
            // A fragment per keyframe and at least every second, moov up front: a killed process leaves
            // a playable file missing at most the last fragment.
            ("movflags".into(), "frag_keyframe+empty_moov+default_base_moof".into()),
            ("frag_duration".into(), "1000000".into()),
            ("flush_packets".into(), "1".into()),
        ],
        open_timeout: timeouts.open,
        write_timeout: timeouts.write,
        close_timeout: timeouts.close.max(Duration::from_secs(5)),
        sink: None,
    }
}

/// The outputs to start, beside the encode (or the relayed stream) they carry.
struct Outputs<'a> {
    recording: Option<&'a Path>,
    hls: Option<&'a Path>,
    destinations: &'a [DestinationConfig],
}

impl Shared {
    fn new(
        streams: Vec<StreamSpec>,
        sink: StatusSink,
        reconnect: &ReconnectPolicy,
        timeouts: &Timeouts,
        queue_capacity: usize,
    ) -> Shared {
        Shared {
            outputs: Mutex::new(Vec::new()),
            streams,
            keyframe_request: Arc::new(AtomicBool::new(false)),
            sink,
            reconnect: reconnect.clone(),
            timeouts: timeouts.clone(),
            queue_capacity,
            viewers_started: Default::default(),
            video_tap: Mutex::new(None),
            audio_tap: Mutex::new(None),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "each argument is one part of the output being started")]
    fn spawn_output(
        &self,
        id: &str,
        kind: OutputKind,
        url: String,
        options: OutputOptions,
        address_policy: Option<AddressPolicy>,
        path: Option<PathBuf>,
        target: String,
    ) -> Result<OutputHandle, EgressError> {
        let queue = Arc::new(OutputQueue::new(self.queue_capacity));
        let abort = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(OutputStatus::new(id, kind, target)));
        // Viewers come and go by the hundred: they are counted, not reported one by one.
        let sink = if kind == OutputKind::Viewer { no_status_sink() } else { Arc::clone(&self.sink) };
        sink(&status.lock().clone());
        let setup = SenderSetup {
            url,
            options,
            address_policy,
            streams: self.streams.clone(),
            queue: Arc::clone(&queue),
            abort: Arc::clone(&abort),
            keyframe_request: Arc::clone(&self.keyframe_request),
            reconnect: (kind == OutputKind::Destination).then(|| self.reconnect.clone()),
            status: Arc::clone(&status),
            sink,
        };
        let thread = sender::spawn(setup, id)?;
        Ok(OutputHandle { id: id.to_owned(), kind, queue, abort, status, thread: Some(thread), path })
    }

    fn add_destination(&self, dest: &DestinationConfig) -> Result<(), EgressError> {
        validate_url(&dest.id, &dest.url)?;
        let mut outputs = self.outputs.lock();
        if outputs.iter().any(|o| o.id == dest.id) {
            return Err(EgressError::DuplicateId(dest.id.clone()));
        }
        register_url_secrets(&dest.url);
        let handle = self.spawn_output(
            &dest.id,
            OutputKind::Destination,
            dest.url.clone(),
            rtmp_options(dest, &self.timeouts),
            Some(dest.address_policy),
            None,
            crate::ffmpeg::redact_url(&dest.url),
        )?;
        outputs.push(handle);
        Ok(())
    }

    fn fan_out(&self, packets: &mut Vec<EncodedPacket>) {
        if packets.is_empty() {
            return;
        }
        if let Some((tap, annex_b)) = self.video_tap.lock().as_mut() {
            let tb = self.streams[VIDEO_STREAM].time_base;
            for p in packets.iter().filter(|p| p.stream_index == VIDEO_STREAM) {
                let at = Duration::from_secs_f64((p.pts.max(0) as f64) * f64::from(tb.0) / f64::from(tb.1.max(1)));
                tap(&WebRtcFrame { data: annex_b.convert(&p.data, p.keyframe), keyframe: p.keyframe, at });
            }
        }
        let mut outputs = self.outputs.lock();
        for packet in packets.drain(..) {
            let packet = Arc::new(packet);
            for output in outputs.iter() {
                output.queue.push(&packet);
            }
        }
        // A viewer that went away (or fell too far behind) has ended its thread: it leaves the list.
        outputs.retain(|o| o.kind != OutputKind::Viewer || o.thread.as_ref().is_some_and(|t| !t.is_finished()));
    }

    fn add_viewer(&self, format: &'static str, sink: ByteSink) -> Result<String, EgressError> {
        let mut outputs = self.outputs.lock();
        if viewers(&outputs) >= MAX_VIEWERS {
            return Err(EgressError::TooManyViewers(MAX_VIEWERS));
        }
        let id = format!("viewer-{}", self.viewers_started.fetch_add(1, Ordering::Relaxed) + 1);
        let options = OutputOptions {
            format,
            io: Vec::new(),
            // A live stream has no duration or size to patch in at the end.
            muxer: vec![("flvflags".into(), "no_duration_filesize".into())],
            open_timeout: self.timeouts.open,
            write_timeout: self.timeouts.write,
            close_timeout: self.timeouts.close,
            sink: Some(sink),
        };
        let handle =
            self.spawn_output(&id, OutputKind::Viewer, format!("{format}:{id}"), options, None, None, id.clone())?;
        outputs.push(handle);
        Ok(id)
    }

    /// Starts the recording, the HLS stream and every destination of `config`; if one cannot start,
    /// whatever started before it stops again.
    fn start_outputs(&self, config: &Outputs<'_>, segment: Duration) -> Result<(), EgressError> {
        let started = (|| {
            if let Some(path) = config.recording {
                let handle = start_recording(self, path)?;
                self.outputs.lock().push(handle);
            }
            if let Some(dir) = config.hls {
                let handle = start_hls(self, dir, segment)?;
                self.outputs.lock().push(handle);
            }
            config.destinations.iter().try_for_each(|dest| self.add_destination(dest))
        })();
        if started.is_err() {
            let handles = std::mem::take(&mut *self.outputs.lock());
            shut_down(handles, Duration::ZERO);
        }
        started
    }

    /// Lets every output drain for at most `timeouts.drain`, then interrupts and closes them.
    fn stop(&self) -> EgressReport {
        self.stop_with(Vec::new())
    }

    /// Stops this one's outputs and `others` (other encodes' outputs) together: one drain for all.
    fn stop_with(&self, others: Vec<OutputHandle>) -> EgressReport {
        let mut handles = std::mem::take(&mut *self.outputs.lock());
        handles.extend(others);
        let done = shut_down(handles, self.timeouts.drain);
        let mut report = EgressReport { outputs: Vec::new(), recording: None };
        for (handle, summary) in done {
            if handle.kind == OutputKind::Viewer {
                continue;
            }
            let status = handle.status.lock().clone();
            (self.sink)(&status);
            if let (OutputKind::Recording, Some(path)) = (handle.kind, handle.path.as_ref()) {
                report.recording = Some(RecordingReport {
                    size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
                    path: path.clone(),
                    duration_secs: summary.media_duration.as_secs_f64(),
                });
            }
            report.outputs.push(status);
        }
        report
    }

    fn statuses(&self) -> Vec<OutputStatus> {
        self.outputs.lock().iter().map(|o| o.status.lock().clone()).collect()
    }

    /// This encode (`settings`) as the program's statistics list it: the outputs it feeds, viewers counted.
    fn describe(&self, settings: &EncoderSettings) -> EncodeInfo {
        let outputs = self.outputs.lock();
        EncodeInfo {
            canvas: 0,
            settings: settings.clone(),
            outputs: outputs.iter().filter(|o| o.kind != OutputKind::Viewer).map(|o| o.id.clone()).collect(),
            viewers: viewers(&outputs),
        }
    }
}

fn viewers(outputs: &[OutputHandle]) -> usize {
    outputs.iter().filter(|o| o.kind == OutputKind::Viewer).count()
}

/// Stops outputs: closes their queues, lets them drain until `drain` has passed, then interrupts whatever
/// is still blocked and joins. Returns each output's final status and summary.
fn shut_down(handles: Vec<OutputHandle>, drain: Duration) -> Vec<(OutputHandle, SenderSummary)> {
    for h in &handles {
        h.queue.close();
    }
    let deadline = Instant::now() + drain;
    while Instant::now() < deadline && handles.iter().any(|h| h.thread.as_ref().is_some_and(|t| !t.is_finished())) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in &handles {
        h.abort.store(true, Ordering::Release);
    }
    handles
        .into_iter()
        .map(|mut h| {
            // A panicking sender is a bug; its output is over either way.
            let summary = h.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
            let mut s = h.status.lock();
            if !matches!(s.state, OutputState::Failed { .. }) {
                s.state = OutputState::Stopped;
            }
            s.bitrate_kbps = 0;
            drop(s);
            (h, summary)
        })
        .collect()
}

impl Egress {
    /// Opens the program's encode and one more per distinct destination profile, and starts one thread per
    /// output.
    pub fn start(config: EgressConfig, sink: StatusSink) -> Result<Egress, EgressError> {
        crate::ffmpeg::init();
        for dest in &config.destinations {
            validate_url(&dest.id, &dest.url)?;
        }
        let lane_config = LaneConfig {
            sink,
            reconnect: config.reconnect.clone(),
            timeouts: config.timeouts.clone(),
            queue: config.queue,
        };
        let main = Lane::new(0, &config.encoder, &lane_config)?;
        let others = Arc::new(OtherEncodes {
            lanes: Mutex::new(Vec::new()),
            samples: Default::default(),
            config: lane_config,
            main: config.encoder.clone(),
            canvases: config.canvases.clone(),
        });
        let outputs = Outputs { recording: config.recording.as_deref(), hls: config.hls.as_deref(), destinations: &[] };
        main.shared.start_outputs(&outputs, config.encoder.keyframe_interval)?;
        let egress = Egress { main, others, scratch: Vec::new() };
        let control = egress.control();
        for dest in &config.destinations {
            if let Err(e) = control.add_destination(dest) {
                egress.stop();
                return Err(e);
            }
        }
        Ok(egress)
    }

    /// The program's own encode: the recording and viewers take it; the program renders at its size.
    pub fn settings(&self) -> &EncoderSettings {
        self.main.encoder.settings()
    }

    /// Encodes one composed frame shown at `at` (program media time, starting near zero) in every encode
    /// (each scales it to its size) and queues it to every output. Never blocks on an output.
    pub fn push_video(&mut self, frame: &VideoFrame, at: Duration) -> Result<(), EgressError> {
        self.push_canvases(&[frame], at)
    }

    /// Like [`Self::push_video`] for a program of several canvases: `frames[i]` is canvas `i`'s composed frame
    /// (the main canvas first, which the program's own encode takes); each encode takes its destinations' canvas.
    pub fn push_canvases(&mut self, frames: &[&VideoFrame], at: Duration) -> Result<(), EgressError> {
        let Some(main) = frames.first() else {
            return Ok(());
        };
        self.main.push_video(main, at, &mut self.scratch)?;
        for lane in self.others.lanes.lock().iter_mut() {
            // A canvas not composed (yet): its encodes take the main one, letterboxed.
            let frame = frames.get(lane.canvas).unwrap_or(main);
            lane.push_video(frame, at, &mut self.scratch)?;
        }
        Ok(())
    }

    /// Encodes mixed audio: interleaved stereo f32 at 48 kHz, continuous from the program's start.
    pub fn push_audio(&mut self, interleaved_stereo: &[f32]) -> Result<(), EgressError> {
        if let Some(tap) = self.main.shared.audio_tap.lock().as_mut() {
            tap.push(interleaved_stereo);
        }
        self.main.push_audio(interleaved_stereo, &mut self.scratch)?;
        let mut lanes = self.others.lanes.lock();
        for lane in lanes.iter_mut() {
            lane.push_audio(interleaved_stereo, &mut self.scratch)?;
        }
        self.others.samples.fetch_add((interleaved_stereo.len() / 2) as i64, Ordering::AcqRel);
        drop(lanes);
        Ok(())
    }

    /// A handle to add/remove destinations and read statuses from other threads.
    pub fn control(&self) -> EgressControl {
        EgressControl { shared: Arc::clone(&self.main.shared), others: Some(Arc::clone(&self.others)) }
    }

    /// Current status of every output.
    pub fn statuses(&self) -> Vec<OutputStatus> {
        self.control().statuses()
    }

    /// Flushes the encoders, lets outputs drain for at most `timeouts.drain`, then interrupts and closes
    /// them. Bounded even when a server is frozen.
    pub fn stop(mut self) -> EgressReport {
        let mut others = std::mem::take(&mut *self.others.lanes.lock());
        self.main.flush(&mut self.scratch);
        let mut handles = Vec::new();
        for lane in &mut others {
            lane.flush(&mut self.scratch);
            handles.append(&mut *lane.shared.outputs.lock());
        }
        self.main.shared.stop_with(handles)
    }
}

fn start_recording(shared: &Shared, path: &Path) -> Result<OutputHandle, EgressError> {
    let err = |reason: String| EgressError::Recording { path: path.to_owned(), reason };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let url = path.to_str().ok_or_else(|| err("path is not UTF-8".into()))?;
    // "file:" so that a name containing ':' is never taken for a protocol.
    let url = format!("file:{url}");
    shared.spawn_output(
        "recording",
        OutputKind::Recording,
        url,
        recording_options(&shared.timeouts),
        None,
        Some(path.to_owned()),
        path.display().to_string(),
    )
}

/// Segments kept in the HLS playlist: about 12 s at the usual 2 s keyframe interval, enough for a
/// player that fell a little behind, while older segments are deleted from the folder.
const HLS_PLAYLIST_SEGMENTS: u32 = 6;

fn hls_options(timeouts: &Timeouts, dir: &str, segment: Duration) -> OutputOptions {
    OutputOptions {
        format: "hls",
        io: Vec::new(),
        muxer: vec![
            // A segment per keyframe interval (segments are cut at keyframes, so never shorter).
            ("hls_time".into(), format!("{:.3}", segment.as_secs_f64())),
            ("hls_list_size".into(), HLS_PLAYLIST_SEGMENTS.to_string()),
            ("hls_segment_type".into(), "fmp4".into()),
            ("hls_fmp4_init_filename".into(), "init.mp4".into()),
            ("hls_segment_filename".into(), format!("{dir}/seg-%05d.m4s")),
            // Written under a temporary name and renamed, so a player never reads half a segment;
            // the wall-clock time of each segment lets the watch page show how far behind live it is.
            ("hls_flags".into(), "delete_segments+independent_segments+temp_file+program_date_time".into()),
        ],
        open_timeout: timeouts.open,
        write_timeout: timeouts.write,
        close_timeout: timeouts.close,
        sink: None,
    }
}

fn start_hls(shared: &Shared, dir: &Path, segment: Duration) -> Result<OutputHandle, EgressError> {
    let err = |reason: String| EgressError::Recording { path: dir.to_owned(), reason };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let dir_str = dir.to_str().ok_or_else(|| err("path is not UTF-8".into()))?;
    if dir_str.contains(['%', ':']) {
        // FFmpeg reads '%' in segment names as a pattern and ':' as a protocol.
        return Err(err("the folder's path may not contain '%' or ':'".into()));
    }
    shared.spawn_output(
        "hls",
        OutputKind::Hls,
        format!("{dir_str}/index.m3u8"),
        hls_options(&shared.timeouts, dir_str, segment),
        None,
        Some(dir.to_owned()),
        dir.display().to_string(),
    )
}

/// Cloneable handle for the API side: destinations can be added and removed while live.
#[derive(Clone)]
pub struct EgressControl {
    /// The program's own encode (or a relay's copied stream).
    shared: Arc<Shared>,
    /// The other encodes; `None` for a relay, which encodes nothing.
    others: Option<Arc<OtherEncodes>>,
}

impl EgressControl {
    /// Starts pushing to one more destination: into the encode whose settings are the ones it gets (its
    /// profile, or the program's, within its platform's limits), started now if no encode has them yet.
    /// A relay copies its stream as it came: every destination takes it.
    pub fn add_destination(&self, dest: &DestinationConfig) -> Result<(), EgressError> {
        let Some(others) = &self.others else {
            return self.shared.add_destination(dest);
        };
        let base = others.base(dest.canvas).ok_or_else(|| EgressError::InvalidDestination {
            id: dest.id.clone(),
            reason: format!("no canvas {} (the program has {})", dest.canvas, others.canvases.len() + 1),
        })?;
        let settings = dest.profile.as_ref().unwrap_or(&base).constrained_by([&dest.constraints]);
        validate_url(&dest.id, &dest.url)?;
        if self.has_output(&dest.id) {
            return Err(EgressError::DuplicateId(dest.id.clone()));
        }
        if dest.canvas == 0 && settings == others.main {
            return self.shared.add_destination(dest);
        }
        let same = |l: &&Lane| l.canvas == dest.canvas && *l.encoder.settings() == settings;
        if let Some(lane) = others.lanes.lock().iter().find(same) {
            return lane.shared.add_destination(dest);
        }
        // A new encode, opened outside the lock the program thread encodes under.
        let mut lane = Lane::new(dest.canvas, &settings, &others.config)?;
        lane.shared.add_destination(dest)?;
        let mut lanes = others.lanes.lock();
        lane.encoder.start_audio_at(others.samples.load(Ordering::Acquire));
        lanes.push(lane);
        Ok(())
    }

    fn has_output(&self, id: &str) -> bool {
        let in_main = self.shared.outputs.lock().iter().any(|o| o.id == id);
        in_main || self.lanes(|lanes| lanes.iter().any(|l| l.shared.outputs.lock().iter().any(|o| o.id == id)))
    }

    /// Runs `f` on the other encodes (none for a relay).
    fn lanes<T>(&self, f: impl FnOnce(&mut Vec<Lane>) -> T) -> T {
        match &self.others {
            Some(others) => f(&mut others.lanes.lock()),
            None => f(&mut Vec::new()),
        }
    }

    /// Stops one destination (drains it briefly, then interrupts). Returns its final status. An encode left
    /// feeding nothing stops with it.
    pub fn remove_destination(&self, id: &str) -> Result<OutputStatus, EgressError> {
        let take = |shared: &Shared| {
            let mut outputs = shared.outputs.lock();
            let pos = outputs.iter().position(|o| o.id == id && o.kind == OutputKind::Destination)?;
            Some(outputs.remove(pos))
        };
        let (handle, shared, idle) = match take(&self.shared) {
            Some(handle) => (handle, Arc::clone(&self.shared), None),
            None => self.lanes(|lanes| {
                let (index, handle) = lanes
                    .iter()
                    .enumerate()
                    .find_map(|(i, l)| Some((i, take(&l.shared)?)))
                    .ok_or_else(|| EgressError::UnknownOutput(id.to_owned()))?;
                let shared = Arc::clone(&lanes[index].shared);
                let idle = shared.outputs.lock().is_empty().then(|| lanes.remove(index));
                Ok::<_, EgressError>((handle, shared, idle))
            })?,
        };
        let mut done = shut_down(vec![handle], shared.timeouts.drain);
        let (handle, _) = done.pop().expect("shut_down returns one entry per handle given");
        let status = handle.status.lock().clone();
        (shared.sink)(&status);
        // Its encoder goes with it (nothing left to flush into).
        drop(idle);
        Ok(status)
    }

    /// Current status of every output.
    pub fn statuses(&self) -> Vec<OutputStatus> {
        let mut all = self.shared.statuses();
        self.lanes(|lanes| lanes.iter().for_each(|lane| all.extend(lane.shared.statuses())));
        all
    }

    /// Every encode running now, the program's own first, with the outputs each feeds (none for a relay).
    pub fn encodes(&self) -> Vec<EncodeInfo> {
        let Some(others) = &self.others else { return Vec::new() };
        let main = self.shared.describe(&others.main);
        std::iter::once(main).chain(others.lanes.lock().iter().map(Lane::describe)).collect()
    }

    /// Starts one viewer of the encode as a live FLV stream (from the next keyframe) written to `sink`, until
    /// `sink` says it takes no more or egress stops. Returns the viewer's output id.
    pub fn add_flv_viewer(&self, sink: ByteSink) -> Result<String, EgressError> {
        self.shared.add_viewer("flv", sink)
    }

    /// Hands every encoded video frame to `tap` as WebRTC carries it (H.264 in Annex B, parameter sets before each
    /// keyframe), or stops with `None`. For the program's own encode (no B-frames); a relayed stream may carry
    /// B-frames, which WebRTC decoders do not take.
    pub fn set_video_tap(&self, tap: Option<VideoTap>) -> Result<(), EgressError> {
        let entry = match tap {
            Some(tap) => {
                let record = webrtc::global_header(&self.shared.streams[VIDEO_STREAM].params);
                let annex_b = webrtc::AnnexB::new(record).ok_or_else(|| {
                    EgressError::Encoder("the video has no H.264 configuration record for WebRTC viewers".into())
                })?;
                Some((tap, annex_b))
            }
            None => None,
        };
        *self.shared.video_tap.lock() = entry;
        Ok(())
    }

    /// Encodes the mixed audio once more, as Opus, for WebRTC viewers and hands each packet to `tap`, or stops
    /// with `None` (WebRTC does not carry the encode's AAC).
    pub fn set_audio_tap(&self, tap: Option<AudioTap>) -> Result<(), EgressError> {
        let entry = match tap {
            Some(tap) => Some(webrtc::OpusTap::new(tap).map_err(EgressError::Encoder)?),
            None => None,
        };
        *self.shared.audio_tap.lock() = entry;
        Ok(())
    }

    /// Viewers reading the encode now.
    pub fn viewers(&self) -> usize {
        viewers(&self.shared.outputs.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_urls_are_checked() {
        assert!(validate_url("a", "rtmp://host/app/s3cr3t").is_ok());
        assert!(validate_url("a", "RTMPS://host:443/app/s3cr3t").is_ok());
        for bad in
            ["http://host/app/s3cr3t", "rtmp://", "rtmp:///s3cr3t", "rtmp://host", "rtmp://h/a s3cr3t", "file:/s3cr3t"]
        {
            let err = validate_url("a", bad).unwrap_err();
            assert!(!err.to_string().contains("s3cr3t"), "error leaks the URL: {err}");
        }
    }

    #[test]
    fn stream_keys_in_urls_are_registered_as_secrets() {
        register_url_secrets("rtmp://h/app/live_abcdef?auth=tok123456");
        let out = crate::ffmpeg::redact_text("key live_abcdef and token tok123456");
        assert_eq!(out, "key <redacted> and token <redacted>");
    }
}
