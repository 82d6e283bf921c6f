//! FLV audio and video tag bodies, as RTMP carries them: H.264 (AVC) and AAC only.
//!
//! Everything else is refused with [`Unsupported`], naming the codec, so the studio can say why a stream was
//! turned away (HEVC or AV1 over Enhanced RTMP, MP3, Speex...). Sans-IO: bytes in, typed tags out.

use bytes::Bytes;

/// A codec the ingest does not take, as the encoder's user would call it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported {kind} codec: {codec}; send H.264 video and AAC audio")]
pub struct Unsupported {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// The codec's name (`HEVC (Enhanced RTMP)`, `MP3`...).
    pub codec: String,
}

/// A video tag's body.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoTag {
    /// The decoder configuration (AVCDecoderConfigurationRecord) with the picture size from its SPS.
    Config(AvcConfig),
    /// One access unit, NAL units length-prefixed as the configuration says.
    Frame {
        keyframe: bool,
        /// Composition time offset (pts − dts), milliseconds; positive with B-frames.
        cts: i32,
        data: Bytes,
    },
    /// End of sequence, or an empty tag: nothing to pass on.
    Skip,
}

/// H.264 decoder configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord as sent (it becomes the muxers' extradata unchanged).
    pub record: Bytes,
    pub width: u32,
    pub height: u32,
    /// `profile_idc` (66 Baseline, 77 Main, 100 High...).
    pub profile: u8,
    pub level: u8,
}

/// An audio tag's body.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioTag {
    /// The AudioSpecificConfig.
    Config(AacConfig),
    /// One raw AAC frame.
    Frame(Bytes),
    Skip,
}

/// AAC decoder configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct AacConfig {
    /// The AudioSpecificConfig as sent (the muxers' extradata).
    pub asc: Bytes,
    pub sample_rate: u32,
    pub channels: u32,
}

/// Why a tag for a supported codec could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

const FOURCC_NAMES: [(&[u8; 4], &str); 5] =
    [(b"hvc1", "HEVC"), (b"av01", "AV1"), (b"vp09", "VP9"), (b"avc1", "H.264"), (b"Opus", "Opus")];

fn fourcc_name(fourcc: &[u8]) -> String {
    let name = FOURCC_NAMES.iter().find(|(f, _)| f.as_slice() == fourcc).map(|(_, n)| *n);
    match name {
        Some(n) => format!("{n} (Enhanced RTMP)"),
        None => format!("'{}' (Enhanced RTMP)", String::from_utf8_lossy(fourcc).escape_debug()),
    }
}

/// Reads a video tag body.
pub fn video(data: &Bytes) -> Result<VideoTag, TagError> {
    let Some(&first) = data.first() else { return Ok(VideoTag::Skip) };
    if first & 0x80 != 0 {
        // Enhanced RTMP: a FourCC names the codec. Only the legacy AVC signalling is taken, which is what
        // every H.264 encoder sends.
        let fourcc = data.get(1..5).ok_or(TagError::Malformed("enhanced video header"))?;
        return Err(Unsupported { kind: "video", codec: fourcc_name(fourcc) }.into());
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != 7 {
        let name = match codec {
            2 => "Sorenson H.263",
            3 => "Screen video",
            4 | 5 => "On2 VP6",
            6 => "Screen video 2",
            12 => "HEVC",
            _ => "unknown",
        };
        return Err(Unsupported { kind: "video", codec: format!("{name} (FLV codec id {codec})") }.into());
    }
    if frame_type == 5 {
        // Video info / command frame: no picture.
        return Ok(VideoTag::Skip);
    }
    if data.len() < 5 {
        return Err(TagError::Malformed("AVC video tag"));
    }
    let cts_raw = (u32::from(data[2]) << 16) | (u32::from(data[3]) << 8) | u32::from(data[4]);
    // 24-bit two's complement.
    let cts = ((cts_raw << 8) as i32) >> 8;
    match data[1] {
        0 => avc_config(data.slice(5..)).map(VideoTag::Config),
        1 if data.len() > 5 => Ok(VideoTag::Frame { keyframe: frame_type == 1, cts, data: data.slice(5..) }),
        1 | 2 => Ok(VideoTag::Skip),
        _ => Err(TagError::Malformed("AVC packet type")),
    }
}

fn avc_config(record: Bytes) -> Result<AvcConfig, TagError> {
    let bad = || TagError::Malformed("AVC decoder configuration");
    let parsed = h264_reader::avcc::AvcDecoderConfigurationRecord::try_from(&record[..]).map_err(|_| bad())?;
    let context = parsed.create_context().map_err(|_| bad())?;
    let sps = context.sps().next().ok_or_else(bad)?;
    let (width, height) = sps.pixel_dimensions().map_err(|_| bad())?;
    Ok(AvcConfig { width, height, profile: record[1], level: record[3], record })
}

/// Reads an audio tag body.
pub fn audio(data: &Bytes) -> Result<AudioTag, TagError> {
    let Some(&first) = data.first() else { return Ok(AudioTag::Skip) };
    let format = first >> 4;
    if format == 9 {
        let fourcc = data.get(1..5).ok_or(TagError::Malformed("enhanced audio header"))?;
        return Err(Unsupported { kind: "audio", codec: fourcc_name(fourcc) }.into());
    }
    if format != 10 {
        let name = match format {
            2 | 14 => "MP3",
            0 | 1 | 3 => "PCM/ADPCM",
            4..=6 => "Nellymoser",
            7 | 8 => "G.711",
            11 => "Speex",
            _ => "unknown",
        };
        return Err(Unsupported { kind: "audio", codec: format!("{name} (FLV sound format {format})") }.into());
    }
    match data.get(1) {
        Some(0) => aac_config(data.slice(2..)).map(AudioTag::Config),
        Some(1) if data.len() > 2 => Ok(AudioTag::Frame(data.slice(2..))),
        Some(1) => Ok(AudioTag::Skip),
        _ => Err(TagError::Malformed("AAC audio tag")),
    }
}

const AAC_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

fn aac_config(asc: Bytes) -> Result<AacConfig, TagError> {
    let bad = TagError::Malformed("AAC AudioSpecificConfig");
    if asc.len() < 2 {
        return Err(bad);
    }
    let object_type = asc[0] >> 3;
    let rate_index = usize::from(((asc[0] & 0x07) << 1) | (asc[1] >> 7));
    let channels = u32::from((asc[1] >> 3) & 0x0f);
    // An explicit 24-bit rate (index 15) or an escaped object type are legal but no encoder sends them live.
    let sample_rate = *AAC_RATES.get(rate_index).ok_or(bad.clone())?;
    if object_type == 0 || object_type == 31 || channels == 0 || channels > 8 {
        return Err(bad);
    }
    Ok(AacConfig { asc, sample_rate, channels: if channels == 7 { 8 } else { channels } })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// High profile 1280×720 SPS/PPS as x264 writes them.
    pub(crate) const AVCC_720P_HIGH: [u8; 47] = [
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb,
        0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60, 0x01, 0x00,
        0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    fn tag(head: &[u8], body: &[u8]) -> Bytes {
        let mut v = head.to_vec();
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    #[test]
    fn an_avc_sequence_header_gives_the_picture_size_and_profile() {
        let t = video(&tag(&[0x17, 0, 0, 0, 0], &AVCC_720P_HIGH)).unwrap();
        let VideoTag::Config(c) = t else { panic!("{t:?}") };
        assert_eq!((c.width, c.height, c.profile, c.level), (1280, 720, 100, 31));
    }

    #[test]
    fn b_frames_carry_a_composition_offset_which_may_be_negative() {
        let t = video(&tag(&[0x27, 1, 0x00, 0x00, 0x50], &[0, 0, 0, 1, 0x41])).unwrap();
        assert_eq!(t, VideoTag::Frame { keyframe: false, cts: 80, data: Bytes::from_static(&[0, 0, 0, 1, 0x41]) });
        let t = video(&tag(&[0x17, 1, 0xff, 0xff, 0xd8], &[0, 0, 0, 1, 0x65])).unwrap();
        assert!(matches!(t, VideoTag::Frame { keyframe: true, cts: -40, .. }), "{t:?}");
    }

    #[test]
    fn other_codecs_are_refused_by_name() {
        let hevc = video(&tag(&[0x90], b"hvc1\0\0\0")).unwrap_err();
        assert_eq!(hevc.to_string(), "unsupported video codec: HEVC (Enhanced RTMP); send H.264 video and AAC audio");
        assert!(video(&tag(&[0x1c, 0], &[0; 8])).unwrap_err().to_string().contains("HEVC (FLV codec id 12)"));
        assert!(audio(&tag(&[0x2f], &[0; 8])).unwrap_err().to_string().contains("MP3"));
        assert!(audio(&tag(&[0x9f], b"Opus")).unwrap_err().to_string().contains("Opus (Enhanced RTMP)"));
    }

    #[test]
    fn an_aac_config_gives_rate_and_channels() {
        let t = audio(&tag(&[0xaf, 0], &[0x11, 0x90])).unwrap();
        let AudioTag::Config(c) = t else { panic!("{t:?}") };
        assert_eq!((c.sample_rate, c.channels), (48000, 2));
        assert!(audio(&tag(&[0xaf, 0], &[0x11])).is_err());
        assert!(audio(&tag(&[0xaf, 0], &[0x17, 0x90])).is_err(), "rate index 14 does not exist");
    }

    #[test]
    fn short_or_garbled_tags_are_errors_not_panics() {
        for bytes in [&[0x17u8][..], &[0x17, 0, 0], &[0x17, 0, 0, 0, 0, 1, 2], &[0x17, 9, 0, 0, 0, 1], &[0x90, 1]] {
            let _ = video(&Bytes::copy_from_slice(bytes));
        }
        assert!(video(&tag(&[0x17, 0, 0, 0, 0], &[1, 2, 3])).is_err());
        assert!(audio(&Bytes::from_static(&[0xaf])).is_err());
    }
}
