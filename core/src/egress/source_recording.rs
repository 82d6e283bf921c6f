//! A participant's own recording: the media they publish, as published (VP8, VP9 or H.264 video and Opus
//! audio, never decoded or encoded again), written into a Matroska file of its own beside the program's
//! recording, on the program's timeline.
//!
//! Frames come from the room's tap ([`crate::rtc::Tapped::record`]: the best simulcast layer the publisher
//! sends, whatever layer the program decodes) stamped with the source time the program's feed gives them.
//! The program presents a frame stamped `s` at `s + offset + playout delay` on its clock, where `offset` is
//! what its [`SourceClock`] estimates from arrivals; a recording estimates the same offset from the same
//! arrivals, so a packet's time in the file is where the program shows it, counted from the program's first
//! frame on air. A participant who came on stage a minute into the show has a file starting at 60 s, and a
//! flash or a beep sits at the same time in both files.
//!
//! The file opens at the first video keyframe (or, for a participant without a camera, after
//! [`AUDIO_ONLY_AFTER`] of sound alone): `.webm` for VP8/VP9 and Opus, `.mkv` for H.264. Clusters are cut
//! every second and flushed as written, so a file whose writer was killed plays up to its last second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use ffmpeg_next::codec::Parameters;
use ffmpeg_next::{Rational, ffi};

use super::encoder::EncodedPacket;
use super::muxer::{Muxer, OutputOptions, StreamSpec};
use super::relay::extradata;
use crate::compositor::EncodedMedia;
use crate::compositor::clock::SourceClock;
use crate::compositor::decode::{VideoCodec, VideoDecoder};

/// Sound alone for this long and still no picture: the file opens with audio only.
pub const AUDIO_ONLY_AFTER: Duration = Duration::from_secs(3);

/// Packets waiting for the writer before new ones are dropped (a few seconds of video and audio).
const QUEUE: usize = 400;

/// Packets' time base: microseconds.
const MICROS: Rational = Rational(1, 1_000_000);

struct Packet {
    media: EncodedMedia,
    /// A video frame that starts a picture.
    keyframe: bool,
    /// On the feed's clock (the sender's wallclock, as the program's source times).
    source_time: Duration,
    /// Program time it arrived at.
    arrival: Duration,
}

/// Where the program stands, shared with its recordings.
#[derive(Debug, Default)]
pub struct ProgramTimeline {
    /// Program time of the first frame on air, in µs + 1 (0: not on air yet).
    live_since: AtomicU64,
}

impl ProgramTimeline {
    pub fn set_live_since(&self, since: Option<Duration>) {
        let v = since.map_or(0, |d| d.as_micros() as u64 + 1);
        self.live_since.store(v, Ordering::Release);
    }

    pub fn live_since(&self) -> Option<Duration> {
        match self.live_since.load(Ordering::Acquire) {
            0 => None,
            v => Some(Duration::from_micros(v - 1)),
        }
    }
}

/// What a finished recording wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecordingReport {
    /// The file (its extension says the container), if it was opened.
    pub path: Option<PathBuf>,
    /// Where its media starts and ends on the program's timeline, in seconds.
    pub start_secs: f64,
    pub end_secs: f64,
    pub size_bytes: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// A recording being written on its own thread.
pub struct SourceRecording {
    tx: Option<SyncSender<Packet>>,
    thread: Option<JoinHandle<SourceRecordingReport>>,
    dropped: AtomicBool,
}

impl SourceRecording {
    /// Starts a recording into `stem` + `.webm` or `.mkv` (whichever the codecs need). `playout_delay` is the
    /// program's.
    pub fn start(
        stem: PathBuf,
        with_audio: bool,
        timeline: Arc<ProgramTimeline>,
        playout_delay: Duration,
    ) -> std::io::Result<SourceRecording> {
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Writer {
            stem,
            with_audio,
            timeline,
            playout_delay,
            clock: SourceClock::default(),
            out: None,
            waiting: Vec::new(),
            last: [None; 2],
            start: None,
            end: Duration::ZERO,
            error: None,
        };
        let thread = std::thread::Builder::new().name("source-recording".into()).spawn(move || writer.run(rx))?;
        Ok(SourceRecording { tx: Some(tx), thread: Some(thread), dropped: AtomicBool::new(false) })
    }

    /// One frame, stamped with its source time and the program time it arrived at; never blocks (dropped when
    /// the writer is behind, which a disk far slower than the media would cause).
    pub fn push(&self, media: EncodedMedia, keyframe: bool, source_time: Duration, arrival: Duration) {
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_)) = tx.try_send(Packet { media, keyframe, source_time, arrival })
            && !self.dropped.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("a participant's recording cannot keep up: frames dropped");
        }
    }

    /// Writes what is queued, closes the file and reports it.
    pub fn stop(mut self) -> SourceRecordingReport {
        self.tx.take();
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(SourceRecordingReport {
            path: None,
            start_secs: 0.0,
            end_secs: 0.0,
            size_bytes: 0,
            error: Some("the recording's writer failed".into()),
        })
    }
}

impl Drop for SourceRecording {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Output {
    muxer: Muxer,
    path: PathBuf,
    /// Stream index of the video and the audio, when the file has them.
    video: Option<usize>,
    audio: Option<usize>,
}

struct Writer {
    stem: PathBuf,
    with_audio: bool,
    timeline: Arc<ProgramTimeline>,
    playout_delay: Duration,
    clock: SourceClock,
    out: Option<Output>,
    /// Packets (with their time in the file) that came before the file could open.
    waiting: Vec<(EncodedMedia, bool, i64)>,
    /// The latest time written per stream (video, audio), in µs: each next one is later.
    last: [Option<i64>; 2],
    start: Option<Duration>,
    end: Duration,
    error: Option<String>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Packet>) -> SourceRecordingReport {
        while let Ok(p) = rx.recv() {
            if self.error.is_none()
                && let Err(e) = self.on_packet(p)
            {
                tracing::warn!(file = %self.stem.display(), "a participant's recording stopped: {e}");
                self.error = Some(e);
            }
        }
        let mut report = SourceRecordingReport {
            path: None,
            start_secs: self.start.unwrap_or_default().as_secs_f64(),
            end_secs: self.end.as_secs_f64(),
            size_bytes: 0,
            error: self.error.take(),
        };
        if let Some(out) = self.out.take() {
            if let Err(e) = out.muxer.finish() {
                report.error.get_or_insert(format!("closing the file: {e}"));
            }
            report.size_bytes = std::fs::metadata(&out.path).map(|m| m.len()).unwrap_or(0);
            report.path = Some(out.path);
        }
        report
    }

    /// Where `p` sits on the program's timeline, in µs from the first frame on air (`None` before it).
    fn media_time(&mut self, p: &Packet) -> Option<i64> {
        self.clock.observe(p.source_time, p.arrival);
        let since = self.timeline.live_since()?;
        let shown = self.clock.to_program_us(p.source_time)? + self.playout_delay.as_micros() as i64;
        Some(shown - since.as_micros() as i64).filter(|&t| t >= 0)
    }

    fn on_packet(&mut self, p: Packet) -> Result<(), String> {
        let Some(at) = self.media_time(&p) else { return Ok(()) };
        if self.out.is_none() {
            let out = match &p.media {
                EncodedMedia::Video { codec, data } if p.keyframe => {
                    open(&self.stem, Some((*codec, data)), self.with_audio)?
                }
                EncodedMedia::Video { .. } => return Ok(()),
                EncodedMedia::Opus { .. } if !self.with_audio => return Ok(()),
                EncodedMedia::Opus { .. } => {
                    let first = self.waiting.first().map_or(at, |(_, _, t)| *t);
                    if Duration::from_micros((at - first).max(0) as u64) < AUDIO_ONLY_AFTER {
                        self.waiting.push((p.media, p.keyframe, at));
                        return Ok(());
                    }
                    open(&self.stem, None, true)?
                }
            };
            self.out = Some(out);
            for (media, keyframe, at) in std::mem::take(&mut self.waiting) {
                self.write(media, keyframe, at)?;
            }
        }
        self.write(p.media, p.keyframe, at)
    }

    fn write(&mut self, media: EncodedMedia, keyframe: bool, at: i64) -> Result<(), String> {
        let Some(out) = self.out.as_mut() else { return Ok(()) };
        let (stream, data, keyframe, kind) = match media {
            EncodedMedia::Video { data, .. } => (out.video, data, keyframe, 0),
            EncodedMedia::Opus { data } => (out.audio, data, true, 1),
        };
        let Some(stream_index) = stream else { return Ok(()) };
        // Each stream's times only go forward, however the clock estimate moved.
        let at = self.last[kind].map_or(at, |last| at.max(last + 1));
        self.last[kind] = Some(at);
        let t = Duration::from_micros(at as u64);
        self.start = Some(self.start.map_or(t, |s| s.min(t)));
        self.end = self.end.max(t);
        let packet = EncodedPacket { stream_index, data, pts: at, dts: at, duration: 0, keyframe };
        out.muxer.write(&packet, 0).map_err(|e| e.to_string())
    }
}

/// Opens the file for the codecs the first keyframe (if any) shows.
fn open(stem: &Path, video: Option<(VideoCodec, &[u8])>, with_audio: bool) -> Result<Output, String> {
    let mut streams = Vec::new();
    let mut indices = (None, None);
    let mut webm = true;
    if let Some((codec, keyframe)) = video {
        webm = codec != VideoCodec::H264;
        indices.0 = Some(streams.len());
        streams.push(video_stream(codec, keyframe)?);
    }
    if with_audio {
        indices.1 = Some(streams.len());
        streams.push(opus_stream());
    }
    let path = stem.with_extension(if webm { "webm" } else { "mkv" });
    let options = OutputOptions {
        format: if webm { "webm" } else { "matroska" },
        io: vec![],
        // A cluster a second, each flushed when written: a killed writer loses at most the last second.
        muxer: vec![("cluster_time_limit".into(), "1000".into()), ("flush_packets".into(), "1".into())],
        open_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(10),
        sink: None,
    };
    let url = path.to_str().ok_or("the recordings folder's path is not UTF-8")?;
    let muxer = Muxer::open(url, &streams, &options, Arc::new(AtomicBool::new(false))).map_err(|e| e.to_string())?;
    Ok(Output { muxer, path, video: indices.0, audio: indices.1 })
}

fn video_stream(codec: VideoCodec, keyframe: &[u8]) -> Result<StreamSpec, String> {
    // The picture's size, from the keyframe itself (decoded once).
    let mut decoder = VideoDecoder::new(codec).map_err(|e| e.to_string())?;
    let _ = decoder.decode(keyframe);
    let (width, height) = decoder.size();
    if width == 0 || height == 0 {
        return Err("the first keyframe does not decode".into());
    }
    let mut params = Parameters::new();
    // SAFETY: plain fields of the parameters this function owns.
    unsafe {
        let p = params.as_mut_ptr();
        (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*p).codec_id = match codec {
            VideoCodec::Vp8 => ffi::AVCodecID::AV_CODEC_ID_VP8,
            VideoCodec::Vp9 => ffi::AVCodecID::AV_CODEC_ID_VP9,
            VideoCodec::H264 => ffi::AVCodecID::AV_CODEC_ID_H264,
        };
        (*p).width = width as i32;
        (*p).height = height as i32;
    }
    if codec == VideoCodec::H264 {
        // The parameter sets the keyframe carries (Annex B), which the muxer turns into the track's avcC.
        extradata(&mut params, &parameter_sets(keyframe));
    }
    Ok(StreamSpec { params, time_base: MICROS })
}

/// The SPS and PPS NAL units of an Annex B access unit, each with its start code.
fn parameter_sets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |&next| {
            let mut e = next - 3;
            while e > start && data[e - 1] == 0 {
                e -= 1;
            }
            e
        });
        if start < end && matches!(data[start] & 0x1f, 7 | 8) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&data[start..end]);
        }
    }
    out
}

fn opus_stream() -> StreamSpec {
    // The Ogg Opus identification header Matroska carries as CodecPrivate: version 1, two channels, no
    // pre-skip, 48 kHz, no gain, mapping family 0.
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 2]);
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    let mut params = Parameters::new();
    // SAFETY: plain fields of the parameters this function owns; the channel layout is written by FFmpeg.
    unsafe {
        let p = params.as_mut_ptr();
        (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
        (*p).codec_id = ffi::AVCodecID::AV_CODEC_ID_OPUS;
        (*p).sample_rate = 48_000;
        ffi::av_channel_layout_default(&mut (*p).ch_layout, 2);
    }
    extradata(&mut params, &head);
    StreamSpec { params, time_base: MICROS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_are_taken_from_an_access_unit() {
        // AUD, SPS, PPS, IDR slice: three- and four-byte start codes.
        let au = [0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 4, 5];
        assert_eq!(parameter_sets(&au), [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]);
    }

    #[test]
    fn the_timeline_is_unset_until_on_air() {
        let t = ProgramTimeline::default();
        assert_eq!(t.live_since(), None);
        t.set_live_since(Some(Duration::ZERO));
        assert_eq!(t.live_since(), Some(Duration::ZERO));
        t.set_live_since(Some(Duration::from_millis(1500)));
        assert_eq!(t.live_since(), Some(Duration::from_millis(1500)));
    }
}
