//! The encode's video as WebRTC carries it (WHEP viewers): an RTP packetizer wants H.264 in Annex B (start
//! codes) with the parameter sets in band, so a decoder can start at any keyframe. The encoder keeps its SPS and
//! PPS in a global header (libx264 writes it in Annex B; a stream that arrived as FLV or MP4 has an avcC record
//! and length-prefixed NAL units): either is turned into Annex B with the parameter sets before each keyframe.

use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next::{ChannelLayout, Dictionary, Rational, codec, encoder, format, frame};
use h264_reader::avcc::AvcDecoderConfigurationRecord;

use crate::media::SAMPLE_RATE;

/// One encoded video frame of the program for WebRTC viewers.
pub struct WebRtcFrame<'a> {
    /// H.264, Annex B; a keyframe starts with the SPS and PPS.
    pub data: &'a [u8],
    /// An IDR frame (a decoder can start on it).
    pub keyframe: bool,
    /// Presentation time from the start of the encode.
    pub at: Duration,
}

/// Receives each encoded video frame on the encoding thread: it must not block (hand the frame to a
/// bounded queue).
pub type VideoTap = Arc<dyn Fn(&WebRtcFrame<'_>) + Send + Sync>;

/// Receives each Opus packet of the encode's audio with its time (48 kHz ticks from the start), on the
/// encoding thread: it must not block.
pub type AudioTap = Arc<dyn Fn(&[u8], u64) + Send + Sync>;

/// The encode's audio as Opus, handed to an [`AudioTap`].
pub(crate) struct OpusTap {
    tap: AudioTap,
    encoder: OpusEncoder,
    packets: Vec<(Vec<u8>, u64)>,
}

impl OpusTap {
    pub(crate) fn new(tap: AudioTap) -> Result<OpusTap, String> {
        Ok(OpusTap { tap, encoder: OpusEncoder::new()?, packets: Vec::new() })
    }

    /// Encodes interleaved stereo f32 at 48 kHz and hands every whole packet to the tap.
    pub(crate) fn push(&mut self, samples: &[f32]) {
        self.encoder.encode(samples, &mut self.packets);
        for (packet, at) in self.packets.drain(..) {
            (self.tap)(&packet, at);
        }
    }
}

/// Opus frames: 20 ms at 48 kHz.
const OPUS_FRAME: usize = 960;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The global header (extradata) of an encoder's or stream's codec parameters; empty if it has none.
pub(crate) fn global_header(params: &ffmpeg_next::codec::Parameters) -> &[u8] {
    // SAFETY: reads the extradata `params` owns, for as long as `params` is borrowed.
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts((*p).extradata, (*p).extradata_size.max(0) as usize)
        }
    }
}

/// Rewrites the encoder's H.264 packets as Annex B with the parameter sets before each keyframe.
pub(crate) struct AnnexB {
    /// Start code + SPS, start code + PPS, for each set the global header holds.
    parameter_sets: Vec<u8>,
    /// Bytes of each NAL unit's length prefix in length-prefixed packets.
    length_size: usize,
    out: Vec<u8>,
}

/// Whether `data` starts with an Annex B start code.
fn starts_with_start_code(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&START_CODE)
}

impl AnnexB {
    /// From the encoder's global header: Annex B parameter sets, or an avcC record; `None` if it is neither.
    pub(crate) fn new(header: &[u8]) -> Option<AnnexB> {
        if starts_with_start_code(header) {
            return Some(AnnexB { parameter_sets: header.to_vec(), length_size: 4, out: Vec::new() });
        }
        let avcc = AvcDecoderConfigurationRecord::try_from(header).ok()?;
        let mut parameter_sets = Vec::new();
        for sps in avcc.sequence_parameter_sets() {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(sps.ok()?);
        }
        for pps in avcc.picture_parameter_sets() {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(pps.ok()?);
        }
        let length_size = usize::from(avcc.length_size_minus_one()) + 1;
        Some(AnnexB { parameter_sets, length_size, out: Vec::new() })
    }

    /// The frame `packet` holds (Annex B, or length-prefixed NAL units), in Annex B with the parameter sets
    /// first on a keyframe. A truncated length-prefixed NAL unit ends the frame where it is cut.
    pub(crate) fn convert(&mut self, packet: &[u8], keyframe: bool) -> &[u8] {
        self.out.clear();
        if keyframe {
            self.out.extend_from_slice(&self.parameter_sets);
        }
        if starts_with_start_code(packet) {
            self.out.extend_from_slice(packet);
            return &self.out;
        }
        let mut rest = packet;
        while rest.len() > self.length_size {
            let (len, tail) = rest.split_at(self.length_size);
            let len = len.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
            if len > tail.len() {
                break;
            }
            self.out.extend_from_slice(&START_CODE);
            self.out.extend_from_slice(&tail[..len]);
            rest = &tail[len..];
        }
        &self.out
    }
}

/// Opus for WebRTC (20 ms frames of 48 kHz stereo), from interleaved stereo f32.
pub(crate) struct OpusEncoder {
    encoder: encoder::Audio,
    fifo: Vec<f32>,
    /// Samples encoded so far (the Opus track's clock).
    samples: u64,
}

impl OpusEncoder {
    pub(crate) fn new() -> Result<OpusEncoder, String> {
        crate::ffmpeg::init();
        let found = encoder::find_by_name("libopus").ok_or("libopus is not available in this FFmpeg")?;
        let mut a = codec::context::Context::new_with_codec(found).encoder().audio().map_err(|e| e.to_string())?;
        a.set_rate(SAMPLE_RATE as i32);
        a.set_format(format::Sample::F32(format::sample::Type::Packed));
        a.set_channel_layout(ChannelLayout::STEREO);
        a.set_channels(2);
        a.set_bit_rate(96_000);
        a.set_time_base(Rational(1, SAMPLE_RATE as i32));
        let mut opts = Dictionary::new();
        opts.set("application", "lowdelay");
        let encoder = a.open_as_with(found, opts).map_err(|e| e.to_string())?;
        Ok(OpusEncoder { encoder, fifo: Vec::new(), samples: 0 })
    }

    /// Encodes every whole 20 ms of `samples` queued; returns the packets with their times (48 kHz ticks).
    pub(crate) fn encode(&mut self, samples: &[f32], out: &mut Vec<(Vec<u8>, u64)>) {
        self.fifo.extend_from_slice(samples);
        while self.fifo.len() >= OPUS_FRAME * 2 {
            let mut f =
                frame::Audio::new(format::Sample::F32(format::sample::Type::Packed), OPUS_FRAME, ChannelLayout::STEREO);
            f.set_rate(SAMPLE_RATE);
            f.set_pts(Some(self.samples as i64));
            for (i, s) in self.fifo.drain(..OPUS_FRAME * 2).enumerate() {
                let b = s.clamp(-1.0, 1.0).to_ne_bytes();
                f.data_mut(0)[i * 4..i * 4 + 4].copy_from_slice(&b);
            }
            if self.encoder.send_frame(&f).is_err() {
                continue;
            }
            let mut packet = ffmpeg_next::Packet::empty();
            while self.encoder.receive_packet(&mut packet).is_ok() {
                let at = packet.pts().map_or(self.samples, |p| p.max(0) as u64);
                out.push((packet.data().map(<[u8]>::to_vec).unwrap_or_default(), at));
            }
            self.samples += OPUS_FRAME as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An avcC record with one SPS and one PPS and 4-byte lengths.
    fn record() -> Vec<u8> {
        let sps = [0x67, 0x64, 0x00, 0x1f, 0xac];
        let pps = [0x68, 0xee, 0x3c, 0x80];
        let mut r = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, sps.len() as u8];
        r.extend_from_slice(&sps);
        r.extend_from_slice(&[1, 0, pps.len() as u8]);
        r.extend_from_slice(&pps);
        r
    }

    #[test]
    fn length_prefixed_nal_units_become_annex_b_with_the_parameter_sets_before_a_keyframe() {
        let mut a = AnnexB::new(&record()).expect("an avcC record");
        let packet = [0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 3, 0x65, 0x88, 0x84];
        let key = a.convert(&packet, true).to_vec();
        assert_eq!(
            key,
            [
                &START_CODE[..],
                &[0x67, 0x64, 0x00, 0x1f, 0xac],
                &START_CODE,
                &[0x68, 0xee, 0x3c, 0x80],
                &START_CODE,
                &[0x06, 0x05],
                &START_CODE,
                &[0x65, 0x88, 0x84]
            ]
            .concat()
        );
        let delta = a.convert(&[0, 0, 0, 2, 0x41, 0x9a], false);
        assert_eq!(delta, [0, 0, 0, 1, 0x41, 0x9a]);
        // A length past the end stops at the last whole unit instead of reading beyond it.
        assert_eq!(a.convert(&[0, 0, 0, 2, 0x41, 0x9a, 0, 0, 0, 9, 0x41], false), [0, 0, 0, 1, 0x41, 0x9a]);
        assert!(AnnexB::new(b"not a record").is_none());
    }

    #[test]
    fn annex_b_from_the_encoder_passes_through_with_its_header_before_a_keyframe() {
        let header = [0, 0, 0, 1, 0x67, 0x64, 0, 0, 0, 1, 0x68, 0xee];
        let mut a = AnnexB::new(&header).expect("an Annex B header");
        let idr = [0, 0, 0, 1, 0x65, 0x88];
        assert_eq!(a.convert(&idr, true), [&header[..], &idr].concat());
        assert_eq!(a.convert(&[0, 0, 1, 0x41, 0x9a], false), [0, 0, 1, 0x41, 0x9a]);
    }
}
