//! The one encode of the program: libx264 (CBR-like, fixed GOP) + AAC 48 kHz stereo.

use std::collections::VecDeque;
use std::time::Duration;

use ffmpeg_next::codec::{self, Parameters};
use ffmpeg_next::util::channel_layout::ChannelLayout;
use ffmpeg_next::{Dictionary, Rational, encoder, format, frame, picture};

use super::EgressError;
use super::muxer::StreamSpec;
pub use crate::media::VideoFrame;

pub use crate::media::SAMPLE_RATE;
/// Samples per AAC frame (per channel). AAC accepts nothing else, hence the FIFO.
pub const AAC_FRAME: usize = 1024;
/// Stream index of video in every output.
pub const VIDEO_STREAM: usize = 0;
/// Stream index of audio in every output.
pub const AUDIO_STREAM: usize = 1;

/// What the program encodes once for every output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncoderSettings {
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Frames per second (integer; the program clock ticks at this rate).
    pub fps: u32,
    /// Target (and maximum) video bitrate, kb/s.
    pub video_kbps: u32,
    /// Keyframe interval. Ingests want ≤ 2 s and a fixed cadence, so scene-cut keyframes are off.
    #[serde(rename = "keyframeIntervalS", with = "seconds")]
    pub keyframe_interval: Duration,
    /// AAC bitrate, kb/s.
    pub audio_kbps: u32,
    /// x264 preset.
    pub preset: String,
    /// H.264 profile; x264 picks one from the settings when `None` (High for the program's 4:2:0 frames).
    #[serde(default)]
    pub h264_profile: Option<H264Profile>,
}

/// A duration as (fractional) seconds, as the API spells them.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// The H.264 profiles a destination may ask for (what ingests document accepting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    /// Constrained Baseline: no B-frames or CABAC, for old decoders.
    Baseline,
    /// Main.
    Main,
    /// High: what YouTube, Twitch and Facebook recommend.
    High,
}

impl H264Profile {
    /// The name x264 takes.
    pub fn x264_name(self) -> &'static str {
        match self {
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            width: 1280,
            height: 720,
            fps: 30,
            video_kbps: 3000,
            keyframe_interval: Duration::from_secs(2),
            audio_kbps: 128,
            preset: "veryfast".into(),
            h264_profile: None,
        }
    }
}

/// Limits one destination puts on the shared encode (from its adapter plugin).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationConstraints {
    /// Largest accepted frame width.
    pub max_width: Option<u32>,
    /// Largest accepted frame height.
    pub max_height: Option<u32>,
    /// Largest accepted video bitrate, kb/s.
    pub max_video_kbps: Option<u32>,
    /// Largest accepted audio bitrate, kb/s.
    pub max_audio_kbps: Option<u32>,
    /// Longest accepted keyframe interval.
    pub max_keyframe_interval: Option<Duration>,
    /// Highest accepted frame rate.
    pub max_fps: Option<u32>,
}

/// A platform's largest frame (`max`: width, height) as it holds for a `width` × `height` picture: turned for a
/// picture of the other orientation (a 1080x1920 vertical stream is within a 1920x1080 limit).
pub fn limit_for_shape(max: (u32, u32), width: u32, height: u32) -> (u32, u32) {
    if (height > width) != (max.1 > max.0) { (max.1, max.0) } else { max }
}

impl EncoderSettings {
    /// The settings every destination accepts: the strictest of all constraints wins. The frame is scaled
    /// down keeping its aspect ratio (even sizes) when a destination caps the resolution.
    pub fn constrained_by<'a>(
        &self,
        constraints: impl IntoIterator<Item = &'a DestinationConstraints>,
    ) -> EncoderSettings {
        let mut s = self.clone();
        for c in constraints {
            if let Some(max) = c.max_video_kbps {
                s.video_kbps = s.video_kbps.min(max.max(100));
            }
            if let Some(max) = c.max_audio_kbps {
                s.audio_kbps = s.audio_kbps.min(max.max(32));
            }
            if let Some(max) = c.max_keyframe_interval {
                s.keyframe_interval = s.keyframe_interval.min(max.max(Duration::from_millis(500)));
            }
            if let Some(max) = c.max_fps {
                s.fps = s.fps.min(max.max(1));
            }
            let (max_w, max_h) = match (c.max_width, c.max_height) {
                (Some(w), Some(h)) => {
                    let (w, h) = limit_for_shape((w, h), s.width, s.height);
                    (Some(w), Some(h))
                }
                other => other,
            };
            let scale_w = max_w.map_or(1.0, |m| (m as f64 / s.width as f64).min(1.0));
            let scale_h = max_h.map_or(1.0, |m| (m as f64 / s.height as f64).min(1.0));
            let scale = scale_w.min(scale_h);
            if scale < 1.0 {
                s.width = ((s.width as f64 * scale) as u32 & !1).max(2);
                s.height = ((s.height as f64 * scale) as u32 & !1).max(2);
            }
        }
        s
    }

    /// Frames between keyframes.
    pub fn gop_frames(&self) -> u32 {
        ((self.keyframe_interval.as_secs_f64() * self.fps as f64).round() as u32).max(1)
    }

    pub(crate) fn validate(&self) -> Result<(), EgressError> {
        let bad = |what: &str| Err(EgressError::InvalidSettings(what.to_owned()));
        if self.width < 16 || self.height < 16 || self.width % 2 == 1 || self.height % 2 == 1 {
            return bad("width and height must be even and at least 16");
        }
        if self.width > 7680 || self.height > 4320 {
            return bad("frame larger than 7680x4320");
        }
        if self.fps == 0 || self.fps > 120 {
            return bad("fps must be 1..=120");
        }
        if self.video_kbps < 100 || self.audio_kbps < 32 {
            return bad("bitrate too low");
        }
        if self.keyframe_interval < Duration::from_millis(100) {
            return bad("keyframe interval too short");
        }
        Ok(())
    }
}

/// One compressed packet, shared by every output.
#[derive(Clone, Debug)]
pub struct EncodedPacket {
    /// [`VIDEO_STREAM`] or [`AUDIO_STREAM`].
    pub stream_index: usize,
    /// Codec bitstream (H.264 as libx264 writes it, Annex B with a global header; raw AAC).
    pub data: Vec<u8>,
    /// Presentation time in the stream's time base (video 1/fps, audio 1/48000).
    pub pts: i64,
    /// Decoding time in the same time base.
    pub dts: i64,
    /// Duration in the same time base.
    pub duration: i64,
    /// Video keyframe (always true for audio: every AAC frame decodes alone).
    pub keyframe: bool,
}

impl EncodedPacket {
    pub fn is_video(&self) -> bool {
        self.stream_index == VIDEO_STREAM
    }
}

/// H.264 + AAC encoders and the AAC frame FIFO.
pub(crate) struct Encoder {
    video: encoder::video::Encoder,
    audio: encoder::audio::Encoder,
    video_time_base: Rational,
    audio_time_base: Rational,
    /// Reused frame the I420 input is copied into.
    video_frame: frame::Video,
    /// Interleaved stereo samples waiting for a full AAC frame.
    fifo: VecDeque<f32>,
    /// pts (in samples) of the next AAC frame.
    next_audio_pts: i64,
    /// pts (in frames) of the last video frame sent, to keep pts strictly increasing.
    last_video_pts: Option<i64>,
    settings: EncoderSettings,
}

fn ff(what: &'static str) -> impl Fn(ffmpeg_next::Error) -> EgressError {
    move |e| EgressError::Encoder(format!("{what}: {e}"))
}

impl Encoder {
    pub(crate) fn new(settings: &EncoderSettings) -> Result<Encoder, EgressError> {
        settings.validate()?;
        crate::ffmpeg::init();
        let x264 = encoder::find_by_name("libx264")
            .ok_or_else(|| EgressError::Encoder("libx264 is not available in this FFmpeg".into()))?;
        let mut v = codec::context::Context::new_with_codec(x264).encoder().video().map_err(ff("x264"))?;
        let video_time_base = Rational(1, settings.fps as i32);
        v.set_width(settings.width);
        v.set_height(settings.height);
        v.set_format(format::Pixel::YUV420P);
        v.set_time_base(video_time_base);
        v.set_frame_rate(Some(Rational(settings.fps as i32, 1)));
        let bitrate = settings.video_kbps as usize * 1000;
        v.set_bit_rate(bitrate);
        v.set_max_bit_rate(bitrate);
        v.set_gop(settings.gop_frames());
        v.set_max_b_frames(0);
        // Both FLV and MP4 want SPS/PPS in extradata, not repeated in-band only.
        v.set_flags(codec::Flags::GLOBAL_HEADER);
        // SAFETY: plain field writes on an unopened codec context we own.
        unsafe {
            // A one-second VBV buffer keeps the rate CBR-like, as ingests ask.
            (*v.as_mut_ptr()).rc_buffer_size = bitrate as i32;
            (*v.as_mut_ptr()).keyint_min = settings.gop_frames() as i32;
        }
        let mut opts = Dictionary::new();
        opts.set("preset", &settings.preset);
        opts.set("tune", "zerolatency");
        if let Some(profile) = settings.h264_profile {
            opts.set("profile", profile.x264_name());
        }
        opts.set("forced-idr", "1");
        // Fixed GOP: keyframes exactly every keyframe_interval, as YouTube/Twitch require.
        opts.set("x264-params", "scenecut=0:nal-hrd=cbr:force-cfr=1");
        let video = v.open_as_with(x264, opts).map_err(ff("open x264"))?;

        let aac = encoder::find(codec::Id::AAC)
            .ok_or_else(|| EgressError::Encoder("AAC encoder is not available in this FFmpeg".into()))?;
        let mut a = codec::context::Context::new_with_codec(aac).encoder().audio().map_err(ff("aac"))?;
        let audio_time_base = Rational(1, SAMPLE_RATE as i32);
        a.set_rate(SAMPLE_RATE as i32);
        a.set_format(format::Sample::F32(format::sample::Type::Planar));
        a.set_channel_layout(ChannelLayout::STEREO);
        a.set_channels(2);
        a.set_bit_rate(settings.audio_kbps as usize * 1000);
        a.set_time_base(audio_time_base);
        a.set_flags(codec::Flags::GLOBAL_HEADER);
        let audio = a.open_as(aac).map_err(ff("open aac"))?;
        if audio.frame_size() as usize != AAC_FRAME {
            return Err(EgressError::Encoder(format!("unexpected AAC frame size {}", audio.frame_size())));
        }
        Ok(Encoder {
            video,
            audio,
            video_time_base,
            audio_time_base,
            video_frame: frame::Video::new(format::Pixel::YUV420P, settings.width, settings.height),
            fifo: VecDeque::with_capacity(AAC_FRAME * 8),
            next_audio_pts: 0,
            last_video_pts: None,
            settings: settings.clone(),
        })
    }

    /// Stream descriptions for muxers (codec parameters incl. extradata, packet time bases).
    pub(crate) fn streams(&self) -> Vec<StreamSpec> {
        vec![
            StreamSpec { params: Parameters::from(&self.video), time_base: self.video_time_base },
            StreamSpec { params: Parameters::from(&self.audio), time_base: self.audio_time_base },
        ]
    }

    pub(crate) fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Starts the audio timeline at `samples` (per channel) instead of zero: an encode that starts while
    /// others run stamps its audio on their timeline, as its video is (video is stamped from program time).
    pub(crate) fn start_audio_at(&mut self, samples: i64) {
        self.next_audio_pts = samples;
    }

    /// Encodes one frame shown at `at` (program media time). Frames that land on an already used frame
    /// slot are dropped (constant frame rate output). `force_keyframe` starts a new GOP now.
    pub(crate) fn encode_video(
        &mut self,
        picture: &VideoFrame,
        at: Duration,
        force_keyframe: bool,
        out: &mut Vec<EncodedPacket>,
    ) -> Result<(), EgressError> {
        if picture.width() != self.settings.width || picture.height() != self.settings.height {
            return Err(EgressError::FrameSize {
                expected: (self.settings.width, self.settings.height),
                got: (picture.width(), picture.height()),
            });
        }
        let pts = (at.as_secs_f64() * self.settings.fps as f64).round() as i64;
        if self.last_video_pts.is_some_and(|last| pts <= last) {
            return Ok(());
        }
        self.last_video_pts = Some(pts);
        // The encoder may still reference the buffer of the previous frame: copy-on-write if so.
        // SAFETY: the frame is a valid, allocated video frame owned by self.
        if unsafe { ffmpeg_next::ffi::av_frame_make_writable(self.video_frame.as_mut_ptr()) } < 0 {
            return Err(EgressError::Encoder("out of memory for a video frame".into()));
        }
        picture.write_into(&mut self.video_frame);
        self.video_frame.set_pts(Some(pts));
        self.video_frame.set_kind(if force_keyframe { picture::Type::I } else { picture::Type::None });
        self.video.send_frame(&self.video_frame).map_err(ff("encode video"))?;
        self.drain_video(out)
    }

    /// Queues interleaved stereo f32 samples (48 kHz) and encodes every complete 1024-sample frame.
    pub(crate) fn encode_audio(
        &mut self,
        interleaved: &[f32],
        out: &mut Vec<EncodedPacket>,
    ) -> Result<(), EgressError> {
        self.fifo.extend(interleaved.iter().map(|s| if s.is_finite() { s.clamp(-1.0, 1.0) } else { 0.0 }));
        while self.fifo.len() >= AAC_FRAME * 2 {
            let mut frame =
                frame::Audio::new(format::Sample::F32(format::sample::Type::Planar), AAC_FRAME, ChannelLayout::STEREO);
            frame.set_rate(SAMPLE_RATE);
            for i in 0..AAC_FRAME {
                // unwrap: the loop condition guarantees 2 * AAC_FRAME queued samples.
                let l = self.fifo.pop_front().expect("the loop condition guarantees 2 * AAC_FRAME queued samples");
                let r = self.fifo.pop_front().expect("the loop condition guarantees 2 * AAC_FRAME queued samples");
                frame.plane_mut::<f32>(0)[i] = l;
                frame.plane_mut::<f32>(1)[i] = r;
            }
            frame.set_pts(Some(self.next_audio_pts));
            self.next_audio_pts += AAC_FRAME as i64;
            self.audio.send_frame(&frame).map_err(ff("encode audio"))?;
            self.drain_audio(out)?;
        }
        Ok(())
    }

    /// Flushes both encoders (end of program).
    pub(crate) fn finish(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), EgressError> {
        self.video.send_eof().map_err(ff("flush video"))?;
        self.drain_video(out)?;
        self.audio.send_eof().map_err(ff("flush audio"))?;
        self.drain_audio(out)
    }

    fn drain_video(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), EgressError> {
        let mut packet = ffmpeg_next::Packet::empty();
        loop {
            match self.video.receive_packet(&mut packet) {
                Ok(()) => out.push(to_encoded(&packet, VIDEO_STREAM, 1)),
                Err(ffmpeg_next::Error::Other { errno: ffmpeg_next::util::error::EAGAIN })
                | Err(ffmpeg_next::Error::Eof) => {
                    return Ok(());
                }
                Err(e) => return Err(ff("receive video")(e)),
            }
        }
    }

    fn drain_audio(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), EgressError> {
        let mut packet = ffmpeg_next::Packet::empty();
        loop {
            match self.audio.receive_packet(&mut packet) {
                Ok(()) => out.push(to_encoded(&packet, AUDIO_STREAM, AAC_FRAME as i64)),
                Err(ffmpeg_next::Error::Other { errno: ffmpeg_next::util::error::EAGAIN })
                | Err(ffmpeg_next::Error::Eof) => {
                    return Ok(());
                }
                Err(e) => return Err(ff("receive audio")(e)),
            }
        }
    }
}

fn to_encoded(packet: &ffmpeg_next::Packet, stream_index: usize, default_duration: i64) -> EncodedPacket {
    let pts = packet.pts().or(packet.dts()).unwrap_or(0);
    EncodedPacket {
        stream_index,
        data: packet.data().map(<[u8]>::to_vec).unwrap_or_default(),
        pts,
        dts: packet.dts().unwrap_or(pts),
        duration: if packet.duration() > 0 { packet.duration() } else { default_duration },
        keyframe: stream_index == AUDIO_STREAM || packet.is_key(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictest_constraints_win() {
        let base = EncoderSettings { width: 1920, height: 1080, video_kbps: 6000, ..Default::default() };
        let yt = DestinationConstraints { max_video_kbps: Some(4500), ..Default::default() };
        let small = DestinationConstraints {
            max_width: Some(1280),
            max_height: Some(720),
            max_keyframe_interval: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let s = base.constrained_by([&yt, &small]);
        assert_eq!((s.width, s.height), (1280, 720));
        assert_eq!(s.video_kbps, 4500);
        assert_eq!(s.keyframe_interval, Duration::from_secs(1));
        assert_eq!(s.gop_frames(), 30);
        assert_eq!(base.constrained_by([]), base);
        // A vertical picture is held to the same limits turned.
        let tall = EncoderSettings { width: 1080, height: 1920, ..base.clone() };
        let s = tall.constrained_by([&small]);
        assert_eq!((s.width, s.height), (720, 1280));
        let hd = DestinationConstraints { max_width: Some(1920), max_height: Some(1080), ..Default::default() };
        assert_eq!(tall.constrained_by([&hd]).height, 1920, "1080x1920 fits 1920x1080 turned");
    }

    #[test]
    fn invalid_settings_are_refused() {
        let odd = EncoderSettings { width: 641, ..Default::default() };
        assert!(odd.validate().is_err());
        let zero_fps = EncoderSettings { fps: 0, ..Default::default() };
        assert!(zero_fps.validate().is_err());
        assert!(EncoderSettings::default().validate().is_ok());
    }

    #[test]
    fn aac_fifo_emits_only_whole_frames() {
        let mut enc = Encoder::new(&EncoderSettings { width: 320, height: 180, ..Default::default() }).unwrap();
        let mut out = Vec::new();
        // 1500 stereo samples: one AAC frame's worth queued, 476 left in the FIFO.
        enc.encode_audio(&vec![0.1; 1500 * 2], &mut out).unwrap();
        assert_eq!(enc.next_audio_pts, 1024);
        assert_eq!(enc.fifo.len(), (1500 - 1024) * 2);
        enc.encode_audio(&vec![0.1; 548 * 2], &mut out).unwrap();
        assert_eq!(enc.next_audio_pts, 2048);
        assert!(enc.fifo.is_empty());
    }

    #[test]
    fn wrong_frame_size_is_an_error_not_a_crash() {
        let mut enc = Encoder::new(&EncoderSettings { width: 320, height: 180, ..Default::default() }).unwrap();
        let mut out = Vec::new();
        let err = enc.encode_video(&VideoFrame::filled(640, 360, [16, 128, 128]), Duration::ZERO, false, &mut out);
        assert!(matches!(err, Err(EgressError::FrameSize { .. })));
    }

    #[test]
    fn gop_is_fixed_and_forced_keyframes_work() {
        let settings = EncoderSettings {
            width: 320,
            height: 180,
            fps: 10,
            keyframe_interval: Duration::from_secs(1),
            ..Default::default()
        };
        let mut enc = Encoder::new(&settings).unwrap();
        let mut out = Vec::new();
        for i in 0..35u32 {
            let frame = VideoFrame::filled(320, 180, [(i * 7 % 200) as u8 + 16, 128, 128]);
            enc.encode_video(&frame, Duration::from_millis(i as u64 * 100), i == 25, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        let keys: Vec<i64> = out.iter().filter(|p| p.is_video() && p.keyframe).map(|p| p.pts).collect();
        assert_eq!(&keys[..4], &[0, 10, 20, 25], "{keys:?}");
        assert!(keys.windows(2).all(|w| w[1] - w[0] <= 10), "GOP longer than 1 s: {keys:?}");
        assert_eq!(out.iter().filter(|p| p.is_video()).count(), 35);
    }
}
