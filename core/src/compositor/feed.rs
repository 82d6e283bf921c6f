//! From the router to the program: the frames a room's tap sees become [`Program::push_encoded`] calls.
//!
//! The codec comes from the negotiated payload parameters. Time is the hard part: RTP timestamps of a
//! participant's audio and video start at unrelated random values and tick at different rates, but the
//! compositor keeps one clock per source and presents audio and video against it. So each track's RTP time
//! is mapped onto the sender's wallclock: through its latest RTCP sender report (NTP time ↔ RTP time, the
//! same clock for every track of a browser) once one has arrived, and until then from the arrival of the
//! track's first frame. Both land on one timeline per participant; the compositor's clock mapping absorbs
//! the one step when a track switches to sender-report time.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use str0m::format::Codec;
use str0m::media::MediaData;

use super::decode::VideoCodec;
use super::program::{EncodedMedia, Program};
use crate::router::{LocalFrame, TrackSource};
use crate::rtc::{TapData, TapFrame};

/// Maps one track's RTP time onto the sender's wallclock.
#[derive(Debug, Default)]
struct TrackClock {
    /// (wallclock of `rtp`, `rtp` in seconds): from the latest sender report, or from the first arrival.
    anchor: Option<(Duration, f64)>,
    from_sender_report: bool,
}

impl TrackClock {
    fn source_time(&mut self, data: &MediaData) -> Duration {
        let rtp = data.time.as_seconds();
        if let Some(sr) = &data.last_sender_info
            && let Ok(ntp) = sr.ntp_time.duration_since(UNIX_EPOCH)
        {
            self.anchor = Some((ntp, sr.rtp_time.as_seconds()));
            self.from_sender_report = true;
        }
        let (wall, at) = *self.anchor.get_or_insert_with(|| {
            let age = Instant::now().saturating_duration_since(data.network_time);
            let arrived = SystemTime::now().checked_sub(age).unwrap_or_else(SystemTime::now);
            (arrived.duration_since(UNIX_EPOCH).unwrap_or_default(), rtp)
        });
        let offset = rtp - at;
        if offset >= 0.0 {
            wall + Duration::from_secs_f64(offset)
        } else {
            wall.saturating_sub(Duration::from_secs_f64(-offset))
        }
    }
}

#[derive(Default)]
struct ParticipantClocks {
    tracks: HashMap<(TrackSource, u8), TrackClock>,
    /// The simulcast layer each video source fed last.
    layers: HashMap<TrackSource, u8>,
}

/// What the program gets from one room: encoded frames with their source times.
pub struct ProgramFeed {
    /// By participant, then source and simulcast layer (each layer has its own RTP clock and sender reports):
    /// looked up by `&str` on every frame, a key made only for a new participant.
    clocks: Mutex<HashMap<String, ParticipantClocks>>,
    /// Wallclock times are given to the program relative to this (an hour before the feed started, so a
    /// sender's clock running somewhat behind ours stays positive), keeping the numbers small.
    base: Duration,
}

impl Default for ProgramFeed {
    fn default() -> Self {
        ProgramFeed::new()
    }
}

impl ProgramFeed {
    pub fn new() -> ProgramFeed {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        ProgramFeed { clocks: Mutex::new(HashMap::new()), base: now.saturating_sub(Duration::from_secs(3600)) }
    }

    /// The program source a track feeds: the participant id for camera and microphone (one clock, so they
    /// stay in sync), `<participantId>:screen` for a screen share.
    pub fn source_id(participant: &str, source: TrackSource) -> String {
        source.stream_id(participant)
    }

    /// Hands one frame to `program`, copied once, for whom the tap marked it ([`Tapped`]): its decoders if its
    /// source is on stage, its recording if the source is recorded. Frames of codecs the program cannot use
    /// and of sources neither wants are dropped before any copy.
    pub fn push(&self, program: &Program, frame: &TapFrame<'_>) {
        let (participant, source, layer) = (frame.participant, frame.source, frame.layer);
        // A camera and a microphone feed the participant's own source id: no id is made for them per frame.
        let screen;
        let id = match source {
            TrackSource::Microphone | TrackSource::Camera => participant,
            _ => {
                screen = Self::source_id(participant, source);
                screen.as_str()
            }
        };
        let decode = frame.to.program && program.wants(id);
        let record = frame.to.record && program.records(id);
        if !decode && !record {
            return;
        }
        let (media, keyframe, time) = match &frame.data {
            TapData::Rtc(data) => {
                let Some(media) = encoded_media(data) else { return };
                let time = {
                    let mut clocks = self.clocks.lock();
                    if !clocks.contains_key(participant) {
                        clocks.insert(participant.to_owned(), ParticipantClocks::default());
                    }
                    // Inserted just above when missing.
                    let p = clocks.get_mut(participant).expect("the participant's clocks");
                    let video = matches!(media, EncodedMedia::Video { .. });
                    if decode && video && p.layers.insert(source, layer) != Some(layer) {
                        program.set_layer(id, layer);
                    }
                    p.tracks.entry((source, layer)).or_default().source_time(data).saturating_sub(self.base)
                };
                (media, data.is_keyframe(), time)
            }
            TapData::Local(local) => {
                // Encoded on another node, which stamped it with its own clock on the same timeline for the
                // source's audio and video: that is the source time.
                let Some(media) = local_media(local) else { return };
                let age = Instant::now().saturating_duration_since(local.wallclock);
                let at = SystemTime::now().checked_sub(age).unwrap_or_else(SystemTime::now);
                (media, local.keyframe, at.duration_since(UNIX_EPOCH).unwrap_or_default().saturating_sub(self.base))
            }
        };
        if record {
            program.push_recorded(id, media.clone(), keyframe, time);
        }
        if decode {
            program.push_encoded(id, media, time);
        }
    }

    /// Forgets a participant's track clocks (they left; a rejoin starts fresh RTP timelines).
    pub fn forget(&self, participant: &str) {
        self.clocks.lock().remove(participant);
    }
}

/// A frame another node encoded, as the program's decoders take it, if its codec is one they decode.
fn local_media(frame: &LocalFrame) -> Option<EncodedMedia> {
    let data = frame.data.to_vec();
    Some(match frame.codec {
        Codec::Opus => EncodedMedia::Opus { data },
        Codec::Vp8 => EncodedMedia::Video { codec: VideoCodec::Vp8, data },
        Codec::Vp9 => EncodedMedia::Video { codec: VideoCodec::Vp9, data },
        Codec::H264 => EncodedMedia::Video { codec: VideoCodec::H264, data },
        _ => return None,
    })
}

/// The frame as the program's decoders take it, if its codec is one they decode.
pub fn encoded_media(data: &MediaData) -> Option<EncodedMedia> {
    let codec = match data.params.spec().codec {
        Codec::Opus => None,
        Codec::Vp8 => Some(VideoCodec::Vp8),
        Codec::Vp9 => Some(VideoCodec::Vp9),
        Codec::H264 => Some(VideoCodec::H264),
        _ => return None,
    };
    let data = data.data.to_vec();
    Some(match codec {
        Some(codec) => EncodedMedia::Video { codec, data },
        None => EncodedMedia::Opus { data },
    })
}
