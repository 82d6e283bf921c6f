//! A relay: a stream that arrives already encoded (an RTMP ingest) goes to the same outputs as the program's
//! encode (destinations, recording, HLS, viewers) with its packets copied, never decoded or re-encoded.
//!
//! The outputs are the program's: one sender thread and bounded queue per destination, reconnects, the
//! crash-safe recording. The streams' codec parameters are the publisher's own (its H.264 configuration
//! record and AAC AudioSpecificConfig become the muxers' extradata unchanged), so every destination gets the
//! parameter sets and packets the encoder made.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next::Rational;
use ffmpeg_next::codec::Parameters;
use ffmpeg_next::ffi;

use super::muxer::StreamSpec;
use super::{
    AUDIO_STREAM, DestinationConfig, EgressControl, EgressError, EgressReport, EncodedPacket, Outputs, ReconnectPolicy,
    Shared, StatusSink, Timeouts, VIDEO_STREAM,
};
use crate::ingest::{AacConfig, AvcConfig};

/// The publisher's clock: FLV timestamps are milliseconds.
const MILLIS: Rational = Rational(1, 1000);

/// What a relay needs to start.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub video: AvcConfig,
    /// `None` for a stream without audio.
    pub audio: Option<AacConfig>,
    pub destinations: Vec<DestinationConfig>,
    pub recording: Option<PathBuf>,
    pub hls: Option<PathBuf>,
    /// HLS segment length (segments are cut at the publisher's keyframes, so never shorter than its GOP).
    pub segment: Duration,
    pub reconnect: ReconnectPolicy,
    pub timeouts: Timeouts,
    /// Media each output may hold in its queue before it is considered slow.
    pub queue: Duration,
}

/// A running relay. Packets pushed into it never block on an output.
pub struct Relay {
    shared: Arc<Shared>,
    video: AvcConfig,
    audio: Option<AacConfig>,
    /// Added to the publisher's timestamps so the outputs' timeline goes on when a publisher reconnects
    /// (its clock starts again at zero); `None` until the first packet after a (re)start.
    shift: Option<i64>,
    /// The latest decode time written, on the outputs' timeline.
    last: i64,
}

/// Packets per second a relay's queues are sized for (60 fps video and 48 kHz AAC with room to spare).
const PACKETS_PER_SECOND: f64 = 120.0;

pub(super) fn extradata(params: &mut Parameters, data: &[u8]) {
    // SAFETY: `params` owns its AVCodecParameters; extradata is allocated with the padding FFmpeg requires and
    // freed by avcodec_parameters_free (Parameters' Drop), which also frees any previous buffer... of which
    // there is none: this is called once on fresh parameters.
    unsafe {
        let p = params.as_mut_ptr();
        let buffer = ffi::av_mallocz(data.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize) as *mut u8;
        if buffer.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buffer, data.len());
        (*p).extradata = buffer;
        (*p).extradata_size = data.len() as i32;
    }
}

fn video_stream(c: &AvcConfig) -> StreamSpec {
    let mut params = Parameters::new();
    // SAFETY: plain fields of the parameters this function owns.
    unsafe {
        let p = params.as_mut_ptr();
        (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*p).codec_id = ffi::AVCodecID::AV_CODEC_ID_H264;
        (*p).width = c.width as i32;
        (*p).height = c.height as i32;
        (*p).profile = c.profile.into();
        (*p).level = c.level.into();
    }
    extradata(&mut params, &c.record);
    StreamSpec { params, time_base: MILLIS }
}

fn audio_stream(c: &AacConfig) -> StreamSpec {
    let mut params = Parameters::new();
    // SAFETY: plain fields of the parameters this function owns; the channel layout is written by FFmpeg.
    unsafe {
        let p = params.as_mut_ptr();
        (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
        (*p).codec_id = ffi::AVCodecID::AV_CODEC_ID_AAC;
        (*p).sample_rate = c.sample_rate as i32;
        (*p).frame_size = 1024;
        ffi::av_channel_layout_default(&mut (*p).ch_layout, c.channels as i32);
    }
    extradata(&mut params, &c.asc);
    StreamSpec { params, time_base: MILLIS }
}

impl Relay {
    /// Starts every output with the publisher's codec parameters.
    pub fn start(config: RelayConfig, sink: StatusSink) -> Result<Relay, EgressError> {
        crate::ffmpeg::init();
        for dest in &config.destinations {
            super::validate_url(&dest.id, &dest.url)?;
        }
        if config.video.record.is_empty() || config.video.width == 0 {
            return Err(EgressError::InvalidSettings("a relay needs the H.264 configuration".into()));
        }
        let mut streams = vec![video_stream(&config.video)];
        if let Some(audio) = &config.audio {
            streams.push(audio_stream(audio));
        }
        debug_assert_eq!(streams.len() > AUDIO_STREAM, config.audio.is_some());
        let capacity = (PACKETS_PER_SECOND * config.queue.as_secs_f64()).ceil().max(8.0) as usize;
        let shared = Arc::new(Shared::new(streams, sink, &config.reconnect, &config.timeouts, capacity));
        let outputs = Outputs {
            recording: config.recording.as_deref(),
            hls: config.hls.as_deref(),
            destinations: &config.destinations,
        };
        shared.start_outputs(&outputs, config.segment)?;
        Ok(Relay { shared, video: config.video, audio: config.audio, shift: None, last: 0 })
    }

    /// The video configuration the outputs were started with: a publisher with another must start new ones.
    pub fn video(&self) -> &AvcConfig {
        &self.video
    }

    /// The audio configuration the outputs were started with, if any.
    pub fn audio(&self) -> Option<&AacConfig> {
        self.audio.as_ref()
    }

    /// A new publisher takes over (the encoder reconnected): its clock starts again, the outputs' goes on.
    pub fn resume(&mut self) {
        self.shift = None;
    }

    fn timeline(&mut self, ts: u32) -> i64 {
        let ts = i64::from(ts);
        // Just after the last packet written, so the outputs' timeline never goes back.
        let shift = *self.shift.get_or_insert(if self.last == 0 { -ts } else { self.last + 1 - ts });
        let at = ts + shift;
        self.last = self.last.max(at);
        at
    }

    /// One H.264 access unit (length-prefixed NAL units), `dts` in the publisher's milliseconds.
    pub fn push_video(&mut self, dts: u32, cts: i32, keyframe: bool, data: &[u8]) {
        let dts = self.timeline(dts);
        let packet = EncodedPacket {
            stream_index: VIDEO_STREAM,
            data: data.to_vec(),
            pts: dts + i64::from(cts),
            dts,
            duration: 0,
            keyframe,
        };
        self.shared.fan_out(&mut vec![packet]);
    }

    /// One raw AAC frame, `ts` in the publisher's milliseconds. Dropped when the relay has no audio stream.
    pub fn push_audio(&mut self, ts: u32, data: &[u8]) {
        let Some(rate) = self.audio.as_ref().map(|a| a.sample_rate) else { return };
        let ts = self.timeline(ts);
        let duration = (1024 * 1000 / i64::from(rate.max(1))).max(1);
        let packet = EncodedPacket {
            stream_index: AUDIO_STREAM,
            data: data.to_vec(),
            pts: ts,
            dts: ts,
            duration,
            keyframe: true,
        };
        self.shared.fan_out(&mut vec![packet]);
    }

    /// A handle to add/remove destinations and read statuses from other threads.
    pub fn control(&self) -> EgressControl {
        EgressControl { shared: Arc::clone(&self.shared), others: None }
    }

    /// Lets outputs drain for at most `timeouts.drain`, then closes them. Bounded even when a server is frozen.
    pub fn stop(self) -> EgressReport {
        self.shared.stop()
    }
}
