//! What crosses a relay connection: control messages (length-prefixed JSON on the connection's one
//! bidirectional stream) and frames (on unidirectional streams: a header naming the track, then length-prefixed
//! records). Plain functions over bytes, tested without sockets.

use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{MediaData, MediaTime};
use str0m::rtp::rtcp::SenderInfo;
use str0m::rtp::{ExtensionValues, Ssrc};

use crate::router::{LocalFrame, TrackSource};

/// The longest control message or frame accepted from a proven peer (a keyframe of a 1080p camera is well
/// under it).
pub const MAX_MESSAGE: usize = 4 << 20;
/// The longest `hello` accepted: what a peer that has proven nothing yet may make this node hold.
pub const MAX_HELLO: usize = 1024;

/// A control message. The first each side sends is `Hello`; nothing else is read before it checks out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Control {
    /// Who the sender is, and its proof of the cluster secret for this connection (hex).
    Hello { node: String, proof: String },
    /// The sender has people in `room`: send it the room's tracks.
    Want { room: String },
    /// The sender has nobody in `room` any more.
    Unwant { room: String },
    /// A track published on the sender's node in a room the receiver wants.
    Track { room: String, track: u64, participant: String, source: TrackSource, layers: u8, fixed: bool },
    /// A track announced before is gone.
    Untrack { room: String, track: u64 },
    /// A subscriber on the sender's node needs a keyframe of the receiver's `track`.
    Keyframe { room: String, track: u64, layer: u8, pli: bool },
}

impl Control {
    /// The message with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        framed_json(self)
    }
}

/// What a frame stream carries, said once at its start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamHeader {
    pub room: String,
    pub track: u64,
    pub layer: u8,
    /// Grows with every stream the sender opens: frames of an older stream of the same track and layer than
    /// one that has started are stale and dropped.
    pub seq: u64,
    pub kind: StreamKind,
}

/// Depacketized WebRTC media (with the publisher's payload parameters) or frames a node encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamKind {
    Rtc { params: PayloadParams },
    Local { codec: Codec },
}

impl StreamHeader {
    /// The header with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        framed_json(self)
    }
}

/// `value` as JSON behind its length (4 bytes, big-endian).
fn framed_json(value: &impl Serialize) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("relay messages are plain data and always serialize");
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

const KEYFRAME: u8 = 1;
const CONTIGUOUS: u8 = 2;
const LEVEL: u8 = 4;
const VOICE: u8 = 8;
const SENDER_INFO: u8 = 16;

/// One frame as it travels: the fields of `MediaData` a receiving node uses (or a `LocalFrame`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRecord {
    pub keyframe: bool,
    pub contiguous: bool,
    pub time: MediaTime,
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    /// The publisher's latest RTCP sender report: the program maps media time onto its wallclock with it.
    pub sender_info: Option<SenderInfo>,
    pub data: std::sync::Arc<[u8]>,
}

impl FrameRecord {
    pub fn from_rtc(keyframe: bool, d: &MediaData) -> FrameRecord {
        FrameRecord {
            keyframe,
            contiguous: d.contiguous,
            time: d.time,
            audio_level: d.ext_vals.audio_level,
            voice_activity: d.ext_vals.voice_activity,
            sender_info: d.last_sender_info,
            data: d.data.clone(),
        }
    }

    pub fn from_local(f: &LocalFrame) -> FrameRecord {
        FrameRecord {
            keyframe: f.keyframe,
            contiguous: true,
            time: f.time,
            audio_level: None,
            voice_activity: None,
            sender_info: None,
            data: f.data.clone(),
        }
    }

    /// The record with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64 + self.data.len());
        let mut flags = 0;
        if self.keyframe {
            flags |= KEYFRAME;
        }
        if self.contiguous {
            flags |= CONTIGUOUS;
        }
        if self.audio_level.is_some() {
            flags |= LEVEL;
        }
        if self.voice_activity == Some(true) {
            flags |= VOICE;
        }
        if self.sender_info.is_some() {
            flags |= SENDER_INFO;
        }
        body.push(flags);
        body.extend_from_slice(&self.time.numer().to_be_bytes());
        body.extend_from_slice(&self.time.denom().to_be_bytes());
        body.push(self.audio_level.unwrap_or(0) as u8);
        if let Some(sr) = &self.sender_info {
            let ntp = sr.ntp_time.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
            body.extend_from_slice(&(*sr.ssrc).to_be_bytes());
            body.extend_from_slice(&ntp.to_be_bytes());
            body.extend_from_slice(&sr.rtp_time.numer().to_be_bytes());
            body.extend_from_slice(&sr.rtp_time.denom().to_be_bytes());
            body.extend_from_slice(&sr.sender_packet_count.to_be_bytes());
            body.extend_from_slice(&sr.sender_octet_count.to_be_bytes());
        }
        body.extend_from_slice(&self.data);
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads a record's body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<FrameRecord, WireError> {
        let mut r = Reader(body);
        let flags = r.u8()?;
        let time = media_time(r.u64()?, r.u32()?)?;
        let level = r.u8()? as i8;
        let sender_info = if flags & SENDER_INFO != 0 {
            let ssrc = Ssrc::from(r.u32()?);
            let ntp_time = UNIX_EPOCH + Duration::from_nanos(r.u64()?);
            let rtp_time = media_time(r.u64()?, r.u32()?)?;
            let sender_packet_count = r.u32()?;
            let sender_octet_count = r.u32()?;
            Some(SenderInfo { ssrc, ntp_time, rtp_time, sender_packet_count, sender_octet_count })
        } else {
            None
        };
        Ok(FrameRecord {
            keyframe: flags & KEYFRAME != 0,
            contiguous: flags & CONTIGUOUS != 0,
            time,
            audio_level: (flags & LEVEL != 0).then_some(level),
            voice_activity: (flags & LEVEL != 0).then_some(flags & VOICE != 0),
            sender_info,
            data: r.0.into(),
        })
    }

    /// The frame as this node's router and program take it: `MediaData` in the publisher's payload parameters,
    /// received now.
    pub fn into_rtc(self, params: PayloadParams) -> MediaData {
        let ext_vals = ExtensionValues {
            audio_level: self.audio_level,
            voice_activity: self.voice_activity,
            ..Default::default()
        };
        MediaData {
            mid: str0m::media::Mid::from("relay"),
            pt: params.pt(),
            rid: None,
            params,
            time: self.time,
            network_time: Instant::now(),
            seq_range: 0.into()..=0.into(),
            contiguous: self.contiguous,
            data: self.data,
            ext_vals,
            codec_extra: str0m::format::CodecExtra::None,
            last_sender_info: self.sender_info,
            audio_start_of_talk_spurt: false,
        }
    }

    pub fn into_local(self, codec: Codec) -> LocalFrame {
        LocalFrame { codec, time: self.time, wallclock: Instant::now(), keyframe: self.keyframe, data: self.data }
    }
}

fn media_time(numer: u64, denom: u32) -> Result<MediaTime, WireError> {
    let denom = std::num::NonZeroU32::new(denom).ok_or(WireError::Malformed("a zero clock rate"))?;
    Ok(MediaTime::new(numer, str0m::media::Frequency::from_nonzero(denom)))
}

/// Why bytes from a peer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed relay data: {0}")]
    Malformed(&'static str),
    #[error("malformed relay message: {0}")]
    Json(#[from] serde_json::Error),
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(WireError::Malformed("a record cut short"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

/// Reads one length-prefixed message body of at most `max` bytes from `stream`; `None` at a clean end of the
/// stream.
pub async fn read_message(stream: &mut quinn::RecvStream, max: usize) -> Result<Option<Vec<u8>>, ReadError> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(ReadError::Stream(e.to_string())),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(ReadError::TooLong(len));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.map_err(|e| ReadError::Stream(e.to_string()))?;
    Ok(Some(body))
}

/// Why a message could not be read off a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("relay stream: {0}")]
    Stream(String),
    #[error("a relay message of {0} bytes is over the limit")]
    TooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_with_its_sender_report_comes_out_as_it_went_in() {
        let sr = SenderInfo {
            ssrc: Ssrc::from(77),
            ntp_time: UNIX_EPOCH + Duration::from_millis(1_765_000_000_123),
            rtp_time: MediaTime::from_90khz(123_456),
            sender_packet_count: 9,
            sender_octet_count: 9_000,
        };
        let f = FrameRecord {
            keyframe: true,
            contiguous: false,
            time: MediaTime::new(48_000, str0m::media::Frequency::FORTY_EIGHT_KHZ),
            audio_level: Some(-30),
            voice_activity: Some(true),
            sender_info: Some(sr),
            data: vec![1, 2, 3, 4, 5].into(),
        };
        let bytes = f.encode();
        assert_eq!(u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len() - 4);
        assert_eq!(FrameRecord::decode(&bytes[4..]).unwrap(), f);

        let plain = FrameRecord { audio_level: None, voice_activity: None, sender_info: None, ..f };
        assert_eq!(FrameRecord::decode(&plain.encode()[4..]).unwrap(), plain);
    }

    #[test]
    fn a_cut_record_or_a_zero_clock_is_an_error_not_a_panic() {
        let f = FrameRecord {
            keyframe: false,
            contiguous: true,
            time: MediaTime::from_90khz(1),
            audio_level: None,
            voice_activity: None,
            sender_info: None,
            data: vec![].into(),
        };
        let bytes = f.encode();
        for cut in 0..bytes.len() - 4 {
            assert!(FrameRecord::decode(&bytes[4..4 + cut]).is_err(), "cut at {cut}");
        }
        let mut zero = bytes[4..].to_vec();
        zero[9..13].copy_from_slice(&0u32.to_be_bytes());
        assert!(FrameRecord::decode(&zero).is_err());
    }

    #[test]
    fn control_messages_are_tagged_json() {
        let m = Control::Track {
            room: "r".into(),
            track: 3,
            participant: "p".into(),
            source: TrackSource::Camera,
            layers: 3,
            fixed: false,
        };
        let bytes = m.encode();
        let json: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(json["type"], "track");
        assert_eq!(json["source"], "camera");
        assert_eq!(serde_json::from_slice::<Control>(&bytes[4..]).unwrap(), m);
    }
}
