//! An RTMP encoder as a source in the studio: its stream becomes a participant's camera and microphone that
//! browsers receive over WebRTC ([`LocalPublisher`]) and the program decodes.
//!
//! Browsers take H.264 without B-frames as it is: while the encoder sends none, its access units go out
//! unchanged (rewritten as Annex B with the parameter sets before each keyframe). OBS's default x264 settings
//! send B-frames, which WebRTC decoders do not reorder: from the first one, the video is decoded and encoded
//! once more for the browsers (x264 without B-frames, at most 1280×720) on this source's own thread, whose CPU
//! time is measured ([`StudioSource::cpu`]). AAC becomes Opus for the browsers. The program always gets the
//! encoder's own H.264 (its decoder reorders) and the decoded audio.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::MediaTime;

use super::Event;
use crate::compositor::blit::Scaler;
use crate::compositor::decode::{AudioDecoder, VideoCodec, VideoDecoder};
use crate::compositor::{Fit, Rect};
use crate::egress::webrtc::{AnnexB, OpusEncoder};
use crate::media::{SAMPLE_RATE, VideoFrame};
use crate::router::{LocalFrame, TrackSource};
use crate::rtc::LocalPublisher;

/// What the program gets of the source: the encoder's own video (Annex B) and its decoded audio (interleaved
/// stereo f32 at 48 kHz), each at its time on the encoder's clock.
pub enum ProgramMedia {
    Video { annex_b: Vec<u8>, at: Duration },
    Audio { samples: Vec<f32>, at: Duration },
}

/// Hands the source's media to the program (whichever runs now); called on the source's thread, must not block.
pub type ProgramInput = Arc<dyn Fn(ProgramMedia) + Send + Sync>;

/// Media waiting for the source's thread; more is dropped (a slow transcode loses frames, not memory).
const QUEUE: usize = 600;
/// The largest picture sent to browsers when transcoding.
const MAX_SIZE: (u32, u32) = (1280, 720);
/// The transcode's rate and frame rate.
const TRANSCODE_KBPS: u32 = 1500;
const TRANSCODE_FPS: u32 = 30;
/// A keyframe asked for by a browser is made at most this often.
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// One RTMP encoder in the studio: its own thread, fed the ingest's events.
pub struct StudioSource {
    tx: Option<SyncSender<Event>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The video is decoded and encoded again for the browsers (the encoder sends B-frames).
    transcoding: AtomicBool,
    /// The thread's CPU time over its latest two seconds, in thousandths of a core.
    cpu_millicores: AtomicU32,
}

impl StudioSource {
    /// Starts the source's thread: browsers get its media through `publisher`, the program through `program`.
    pub fn start(publisher: LocalPublisher, program: ProgramInput) -> std::io::Result<StudioSource> {
        let (tx, rx) = sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let for_worker = shared.clone();
        // The decoders and encoders are made on the thread that uses them (FFmpeg's converters are not `Send`).
        let thread = std::thread::Builder::new()
            .name("studio-source".into())
            .spawn(move || Worker::new(publisher, program, for_worker).run(rx))?;
        Ok(StudioSource { tx: Some(tx), thread: Some(thread), shared })
    }

    /// Queues one ingest event; false if the queue is full (the event is dropped).
    pub fn push(&self, event: Event) -> bool {
        match self.tx.as_ref().map(|tx| tx.try_send(event)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }

    /// Whether the video is transcoded for the browsers (the encoder sends B-frames).
    pub fn transcoding(&self) -> bool {
        self.shared.transcoding.load(Ordering::Relaxed)
    }

    /// The source thread's CPU over its latest two seconds, in cores.
    pub fn cpu(&self) -> f32 {
        self.shared.cpu_millicores.load(Ordering::Relaxed) as f32 / 1000.0
    }
}

impl Drop for StudioSource {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The browsers' copy of the video, made again from decoded pictures.
struct Transcode {
    decoder: VideoDecoder,
    encoder: crate::egress::encoder::Encoder,
    scaler: Scaler,
    canvas: VideoFrame,
    /// Presentation times of the access units fed, smallest first: decoded pictures come out in that order.
    pending: BinaryHeap<Reverse<Duration>>,
    last_keyframe: Option<Instant>,
    packets: Vec<crate::egress::encoder::EncodedPacket>,
    /// The encoder keeps its SPS and PPS in a global header: they go before each keyframe it makes.
    annex_b: AnnexB,
}

impl Transcode {
    fn new(width: u32, height: u32) -> Result<Transcode, String> {
        let scale = (f64::from(MAX_SIZE.0) / f64::from(width)).min(f64::from(MAX_SIZE.1) / f64::from(height)).min(1.0);
        let even = |v: f64| ((v.round() as u32) & !1).max(2);
        let (w, h) = (even(f64::from(width) * scale), even(f64::from(height) * scale));
        let settings = crate::egress::EncoderSettings {
            width: w,
            height: h,
            fps: TRANSCODE_FPS,
            video_kbps: TRANSCODE_KBPS,
            preset: "superfast".into(),
            ..Default::default()
        };
        let encoder = crate::egress::encoder::Encoder::new(&settings).map_err(|e| e.to_string())?;
        let streams = encoder.streams();
        let header = crate::egress::webrtc::global_header(&streams[crate::egress::encoder::VIDEO_STREAM].params);
        let annex_b = AnnexB::new(header).ok_or("the encoder wrote no H.264 parameter sets")?;
        Ok(Transcode {
            decoder: VideoDecoder::new(VideoCodec::H264).map_err(|e| e.to_string())?,
            encoder,
            annex_b,
            scaler: Scaler::default(),
            canvas: VideoFrame::filled(w, h, [16, 128, 128]),
            pending: BinaryHeap::new(),
            last_keyframe: None,
            packets: Vec::new(),
        })
    }
}

struct Worker {
    publisher: LocalPublisher,
    program: ProgramInput,
    shared: Arc<Shared>,
    annex_b: Option<AnnexB>,
    /// The picture size of the encoder's configuration.
    size: (u32, u32),
    transcode: Option<Transcode>,
    audio: Option<AudioDecoder>,
    opus: Option<OpusEncoder>,
    opus_packets: Vec<(Vec<u8>, u64)>,
}

impl Worker {
    fn new(publisher: LocalPublisher, program: ProgramInput, shared: Arc<Shared>) -> Worker {
        Worker {
            publisher,
            program,
            shared,
            annex_b: None,
            size: (0, 0),
            transcode: None,
            audio: None,
            opus: None,
            opus_packets: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<Event>) {
        let mut cpu = (thread_cpu(), Instant::now());
        while let Ok(event) = rx.recv() {
            self.handle(event);
            if cpu.1.elapsed() >= Duration::from_secs(2) {
                let now = (thread_cpu(), Instant::now());
                let used = now.0.saturating_sub(cpu.0).as_secs_f64() / now.1.duration_since(cpu.1).as_secs_f64();
                self.shared.cpu_millicores.store((used * 1000.0) as u32, Ordering::Relaxed);
                cpu = now;
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::VideoConfig(c) => {
                self.annex_b = AnnexB::new(&c.record);
                self.size = (c.width, c.height);
                // A new configuration (the encoder restarted): a transcode starts again on its pictures.
                self.transcode = None;
            }
            Event::AudioConfig(c) => match AudioDecoder::aac(&c.asc) {
                Ok(d) => {
                    self.audio = Some(d);
                    self.opus =
                        OpusEncoder::new().map_err(|e| tracing::warn!("studio source: no Opus for browsers: {e}")).ok();
                }
                Err(e) => tracing::warn!("studio source: AAC decoder: {e}"),
            },
            Event::Video { dts, cts, keyframe, data } => self.video(dts, cts, keyframe, &data),
            Event::Audio { ts, data } => self.audio(ts, &data),
            Event::PublishRequested { .. } | Event::Metadata { .. } | Event::Finished => {}
        }
    }

    fn video(&mut self, dts: u32, cts: i32, keyframe: bool, data: &[u8]) {
        let Some(annex_b) = self.annex_b.as_mut() else { return };
        let at = Duration::from_millis((i64::from(dts) + i64::from(cts)).max(0) as u64);
        let frame = annex_b.convert(data, keyframe).to_vec();
        if !self.publisher.is_muted(TrackSource::Camera) {
            (self.program)(ProgramMedia::Video { annex_b: frame.clone(), at });
        }
        if cts != 0 && !self.shared.transcoding.swap(true, Ordering::Relaxed) {
            tracing::info!("studio source: the encoder sends B-frames; transcoding its video for the browsers");
        }
        if !self.shared.transcoding.load(Ordering::Relaxed) {
            self.publisher.send(TrackSource::Camera, local(Codec::H264, at, 90_000, keyframe, frame));
            return;
        }
        if self.transcode.is_none() {
            if !keyframe {
                return;
            }
            match Transcode::new(self.size.0.max(2), self.size.1.max(2)) {
                Ok(t) => self.transcode = Some(t),
                Err(e) => {
                    tracing::warn!("studio source: cannot transcode for browsers: {e}");
                    return;
                }
            }
        }
        // Set just above when missing.
        let t = self.transcode.as_mut().expect("a transcode");
        t.pending.push(Reverse(at));
        let pictures = match t.decoder.decode(&frame) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("studio source: decode: {e}");
                return;
            }
        };
        for picture in pictures {
            let Some(Reverse(shown)) = t.pending.pop() else { continue };
            let (w, h) = (t.canvas.width(), t.canvas.height());
            t.scaler.draw(
                &mut t.canvas,
                &picture,
                Rect { x: 0, y: 0, width: w, height: h },
                Fit::Contain,
                [16, 128, 128],
            );
            let wanted =
                self.publisher.take_keyframe_request() && t.last_keyframe.is_none_or(|k| k.elapsed() >= KEYFRAME_EVERY);
            if wanted {
                t.last_keyframe = Some(Instant::now());
            }
            if let Err(e) = t.encoder.encode_video(&t.canvas, shown, wanted, &mut t.packets) {
                tracing::debug!("studio source: encode: {e}");
            }
            for p in t.packets.drain(..) {
                if p.stream_index != crate::egress::encoder::VIDEO_STREAM {
                    continue;
                }
                let at = Duration::from_secs_f64(p.pts.max(0) as f64 / f64::from(TRANSCODE_FPS));
                let data = t.annex_b.convert(&p.data, p.keyframe).to_vec();
                self.publisher.send(TrackSource::Camera, local(Codec::H264, at, 90_000, p.keyframe, data));
            }
        }
    }

    fn audio(&mut self, ts: u32, data: &[u8]) {
        let Some(decoder) = self.audio.as_mut() else { return };
        let samples = match decoder.decode(data) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!("studio source: AAC: {e}");
                return;
            }
        };
        if let Some(opus) = self.opus.as_mut() {
            opus.encode(&samples, &mut self.opus_packets);
            for (packet, ticks) in self.opus_packets.drain(..) {
                let at = Duration::from_secs_f64(ticks as f64 / f64::from(SAMPLE_RATE));
                self.publisher.send(TrackSource::Microphone, local(Codec::Opus, at, SAMPLE_RATE, true, packet));
            }
        }
        if !self.publisher.is_muted(TrackSource::Microphone) {
            (self.program)(ProgramMedia::Audio { samples, at: Duration::from_millis(u64::from(ts)) });
        }
    }
}

/// A frame for the browsers at `at` on a clock of `rate` Hz.
fn local(codec: Codec, at: Duration, rate: u32, keyframe: bool, data: Vec<u8>) -> LocalFrame {
    let ticks = (at.as_secs_f64() * f64::from(rate)) as u64;
    let time = match rate {
        90_000 => MediaTime::from_90khz(ticks),
        _ => MediaTime::new(ticks, str0m::media::Frequency::FORTY_EIGHT_KHZ),
    };
    LocalFrame { codec, time, wallclock: Instant::now(), keyframe, data: data.into() }
}

/// The calling thread's CPU time (user + system), from `/proc/thread-self/stat` in clock ticks (100 Hz).
fn thread_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return Duration::ZERO };
    // The fields after the command name (which may hold spaces) end with `)`.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}
