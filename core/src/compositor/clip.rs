//! Video clips (an intro, an outro, a bumper) played into the program: a file decoded in real time on a thread
//! of its own and pushed into the [`Program`] as one more source, its pictures as frames and its sound into
//! the mix. Where the clip shows (the whole canvas or a tile) is the director's business.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ffmpeg_next::{format, media};

use super::decode::{AudioDecoder, VideoDecoder};
use super::program::Program;

/// Why a file cannot be played as a clip: said to the user who uploaded it.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// Not a container FFmpeg reads.
    #[error("the file is not a video this server can read ({0})")]
    Unreadable(String),
    /// No video stream in it.
    #[error("the file has no video stream")]
    NoVideo,
    /// A stream in a codec this FFmpeg cannot decode.
    #[error(
        "its {kind} codec ({codec}) cannot be decoded here; use H.264, VP8, VP9 or AV1 video and AAC or Opus audio"
    )]
    Codec {
        /// `video` or `audio`.
        kind: &'static str,
        /// FFmpeg's codec name.
        codec: String,
    },
    /// Too short or too long to play.
    #[error("a clip lasts from 0.1 s to {max} minutes; this one lasts {secs:.1} s")]
    Duration {
        /// Its duration.
        secs: f64,
        /// The longest accepted, minutes.
        max: u64,
    },
}

/// What a clip holds, as checked when it is uploaded.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClipInfo {
    pub width: u32,
    pub height: u32,
    pub duration_secs: f64,
    pub has_audio: bool,
}

/// The longest clip accepted, minutes.
pub const MAX_CLIP_MINUTES: u64 = 30;

/// A clip's streams, opened for decoding: its video, and its sound when it has some.
struct Streams {
    video_index: usize,
    video_time_base: ffmpeg_next::Rational,
    video: VideoDecoder,
    audio: Option<(usize, AudioDecoder)>,
}

/// Finds the clip's video stream (and any audio stream) in `input` and opens a decoder for each; a stream this
/// FFmpeg cannot decode is an error naming its codec.
fn open_streams(input: &format::context::Input) -> Result<Streams, ClipError> {
    let codec_name = |p: &ffmpeg_next::codec::Parameters| format!("{:?}", p.id()).to_lowercase();
    let video = input.streams().best(media::Type::Video).ok_or(ClipError::NoVideo)?;
    let decoder = VideoDecoder::for_stream(video.parameters())
        .map_err(|_| ClipError::Codec { kind: "video", codec: codec_name(&video.parameters()) })?;
    let audio = match input.streams().best(media::Type::Audio) {
        Some(a) => Some((
            a.index(),
            AudioDecoder::for_stream(a.parameters())
                .map_err(|_| ClipError::Codec { kind: "audio", codec: codec_name(&a.parameters()) })?,
        )),
        None => None,
    };
    Ok(Streams { video_index: video.index(), video_time_base: video.time_base(), video: decoder, audio })
}

/// Checks that `path` can be played as a clip: a readable container with a video stream this FFmpeg decodes
/// (and, if it has sound, an audio stream it decodes), lasting a sensible time.
pub fn probe_clip(path: &Path) -> Result<ClipInfo, ClipError> {
    crate::ffmpeg::init();
    let input = format::input(&path).map_err(|e| ClipError::Unreadable(e.to_string()))?;
    let streams = open_streams(&input)?;
    let (width, height) = streams.video.size();
    let secs = if input.duration() > 0 {
        input.duration() as f64 / f64::from(ffmpeg_next::ffi::AV_TIME_BASE)
    } else {
        let video = input.stream(streams.video_index).ok_or(ClipError::NoVideo)?;
        video.duration() as f64 * f64::from(streams.video_time_base)
    };
    if !(0.1..=(MAX_CLIP_MINUTES * 60) as f64).contains(&secs) {
        return Err(ClipError::Duration { secs, max: MAX_CLIP_MINUTES });
    }
    Ok(ClipInfo { width, height, duration_secs: secs, has_audio: streams.audio.is_some() })
}

/// How a clip's playing ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ClipEnd {
    /// It played to its end.
    Finished,
    /// It could not be read or decoded further (said in the text).
    Failed(String),
}

/// A clip playing into a program. Dropping it stops it (its end callback is then not called).
pub struct ClipPlayer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ClipPlayer {
    /// Starts playing `path` into `program` as source `source`, in real time from now; `on_end` is called
    /// once when it finished or failed.
    pub fn start(
        path: PathBuf,
        program: Arc<Program>,
        source: String,
        on_end: impl FnOnce(ClipEnd) + Send + 'static,
    ) -> std::io::Result<ClipPlayer> {
        Self::spawn("clip", move |stop| {
            let end = match play(&path, &program, &source, stop) {
                Ok(()) => ClipEnd::Finished,
                Err(e) => {
                    tracing::warn!(clip = %path.display(), "the clip stopped: {e}");
                    ClipEnd::Failed(e)
                }
            };
            if !stop.load(Ordering::Acquire) {
                on_end(end);
            }
        })
    }

    /// Plays the sound of `path` into `program` as source `source`, from its start again each time it ends, on
    /// one continuous timeline, until dropped (music under a slate). Its pictures are not decoded.
    pub fn loop_sound(path: PathBuf, program: Arc<Program>, source: String) -> std::io::Result<ClipPlayer> {
        Self::spawn("clip-loop", move |stop| {
            if let Err(e) = loop_sound(&path, &program, &source, stop) {
                tracing::warn!(clip = %path.display(), "the sound under the slate stopped: {e}");
            }
        })
    }

    /// Runs `work` on a thread named `name`, given the flag that dropping the player sets.
    fn spawn(name: &str, work: impl FnOnce(&AtomicBool) + Send + 'static) -> std::io::Result<ClipPlayer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || work(&flag))?;
        Ok(ClipPlayer { stop, thread: Some(thread) })
    }
}

impl Drop for ClipPlayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // The thread sleeps at most one frame's time before it sees the flag.
            let _ = t.join();
        }
    }
}

/// Decodes `path` and pushes its pictures and sound into `program`, each when its time comes, until the file
/// ends or `stop` is set.
fn play(path: &Path, program: &Program, source: &str, stop: &AtomicBool) -> Result<(), String> {
    crate::ffmpeg::init();
    let mut input = format::input(&path).map_err(|e| e.to_string())?;
    let Streams { video_index, video_time_base: video_tb, mut video, mut audio } =
        open_streams(&input).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // Paced: pictures and sound go in when their time comes, as a camera's would (the program maps a
    // source's clock from arrivals). False once stopped.
    let due = |at: Duration| {
        if let Some(wait) = (started + at).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        !stop.load(Ordering::Acquire)
    };
    // Where the file's first picture is: the clip's time zero.
    let mut origin: Option<f64> = None;
    let mut audio_at = Duration::ZERO;
    let mut last_video = Duration::ZERO;
    let seconds = |pts: i64| pts as f64 * f64::from(video_tb);
    let mut push_pictures = |pictures: Vec<(Option<i64>, crate::media::VideoFrame)>, origin: &mut Option<f64>| {
        for (pts, frame) in pictures {
            let t = pts.map_or(last_video.as_secs_f64(), seconds);
            let zero = *origin.get_or_insert(t);
            let at = Duration::from_secs_f64((t - zero).max(0.0));
            if !due(at) {
                return false;
            }
            program.push_frame(source, frame, at);
            last_video = at;
        }
        true
    };
    for (stream, packet) in input.packets() {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if stream.index() == video_index {
            let pictures = video.decode_timed(Some(&packet)).map_err(|e| e.to_string())?;
            if !push_pictures(pictures, &mut origin) {
                return Ok(());
            }
        } else if let Some((audio_index, decoder)) = audio.as_mut()
            && stream.index() == *audio_index
        {
            let samples = decoder.decode_packet(Some(&packet)).map_err(|e| e.to_string())?;
            if !samples.is_empty() {
                // Sound is stamped by the samples before it: continuous, whatever the container's timestamps.
                let frames = samples.len() / 2;
                if !due(audio_at) {
                    return Ok(());
                }
                program.push_samples(source, samples, audio_at);
                audio_at += Duration::from_secs_f64(frames as f64 / f64::from(crate::media::SAMPLE_RATE));
            }
        }
    }
    let rest = video.decode_timed(None).map_err(|e| e.to_string())?;
    if !push_pictures(rest, &mut origin) {
        return Ok(());
    }
    // The last picture shows for one frame's time.
    std::thread::sleep(Duration::from_millis(40));
    Ok(())
}

/// Decodes the sound of `path` into `program` when its time comes, again from the start whenever it ends, until
/// `stop` is set. A file without sound is an error at once.
fn loop_sound(path: &Path, program: &Program, source: &str, stop: &AtomicBool) -> Result<(), String> {
    crate::ffmpeg::init();
    let started = Instant::now();
    let mut at = Duration::ZERO;
    loop {
        let mut input = format::input(&path).map_err(|e| e.to_string())?;
        let Some((index, mut decoder)) = open_streams(&input).map_err(|e| e.to_string())?.audio else {
            return Err("the clip has no sound".into());
        };
        let round_start = at;
        for (stream, packet) in input.packets() {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if stream.index() != index {
                continue;
            }
            let samples = decoder.decode_packet(Some(&packet)).map_err(|e| e.to_string())?;
            if samples.is_empty() {
                continue;
            }
            // Paced as a microphone's would be; stamped by the samples before it, across rounds.
            if let Some(wait) = (started + at).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let frames = samples.len() / 2;
            program.push_samples(source, samples, at);
            at += Duration::from_secs_f64(frames as f64 / f64::from(crate::media::SAMPLE_RATE));
        }
        if at == round_start {
            return Err("no sound could be decoded from the clip".into());
        }
    }
}
