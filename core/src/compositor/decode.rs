//! Decoders for what participants send (VP8, VP9, H.264 video; Opus audio) into what the compositor core
//! takes (I420 frames; interleaved stereo f32 at 48 kHz). One decoder per track, used on one thread (the
//! pixel converter is not `Send`).

use ffmpeg_next::{codec, decoder, format, frame, software::scaling};

use crate::media::VideoFrame;

/// Decoding errors.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// This FFmpeg has no decoder for the codec.
    #[error("no decoder for {0:?}")]
    Unsupported(codec::Id),
    /// FFmpeg refused the data or failed.
    #[error("decode: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
}

/// Video codecs a participant may publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
}

impl VideoCodec {
    fn id(self) -> codec::Id {
        match self {
            VideoCodec::Vp8 => codec::Id::VP8,
            VideoCodec::Vp9 => codec::Id::VP9,
            VideoCodec::H264 => codec::Id::H264,
        }
    }
}

/// Decodes one video track to I420.
pub struct VideoDecoder {
    decoder: decoder::Video,
    /// Converter for sources that are not 4:2:0 planar (e.g. H.264 4:4:4), made on first need.
    scaler: Option<(scaling::Context, format::Pixel, u32, u32)>,
    decoded: frame::Video,
}

impl VideoDecoder {
    pub fn new(codec: VideoCodec) -> Result<VideoDecoder, DecodeError> {
        crate::ffmpeg::init();
        let found = decoder::find(codec.id()).ok_or(DecodeError::Unsupported(codec.id()))?;
        let mut ctx = codec::context::Context::new_with_codec(found);
        // One thread per decoder: a program decodes several tracks at once (a thread each), so the cores are
        // already shared out; slice threads only add hand-offs (browsers' VP8 has one token partition).
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        let decoder = ctx.decoder().open_as(found)?.video()?;
        Ok(VideoDecoder { decoder, scaler: None, decoded: frame::Video::empty() })
    }

    /// A decoder for a file's video stream (a clip), from its codec parameters.
    pub fn for_stream(params: codec::Parameters) -> Result<VideoDecoder, DecodeError> {
        let decoder = open_stream(params)?.video()?;
        Ok(VideoDecoder { decoder, scaler: None, decoded: frame::Video::empty() })
    }

    /// The coded picture size (of a stream opened with [`Self::for_stream`]).
    pub fn size(&self) -> (u32, u32) {
        (self.decoder.width(), self.decoder.height())
    }

    /// Feeds one whole encoded frame; returns the pictures it produced (usually one).
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<VideoFrame>, DecodeError> {
        self.decoder.send_packet(&ffmpeg_next::Packet::copy(data))?;
        self.receive(|_, picture| picture)
    }

    /// Feeds one packet (`None`: the end of the stream, drains what the decoder holds); returns the pictures
    /// it produced with their timestamps in the packet's time base.
    pub fn decode_timed(
        &mut self,
        packet: Option<&ffmpeg_next::Packet>,
    ) -> Result<Vec<(Option<i64>, VideoFrame)>, DecodeError> {
        match packet {
            Some(p) => self.decoder.send_packet(p)?,
            None => self.decoder.send_eof()?,
        }
        self.receive(|pts, picture| (pts, picture))
    }

    /// Every picture the decoder has ready, as I420, each with its timestamp handed to `each`.
    fn receive<T>(&mut self, each: impl Fn(Option<i64>, VideoFrame) -> T) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            let pts = self.decoded.timestamp().or(self.decoded.pts());
            out.push(each(pts, self.convert_to_i420()?));
        }
        Ok(out)
    }

    fn convert_to_i420(&mut self) -> Result<VideoFrame, DecodeError> {
        let (w, h) = (self.decoded.width() & !1, self.decoded.height() & !1);
        let src = if matches!(self.decoded.format(), format::Pixel::YUV420P | format::Pixel::YUVJ420P) {
            &self.decoded
        } else {
            let fmt = self.decoded.format();
            let stale = !matches!(&self.scaler, Some((_, f, sw, sh)) if *f == fmt && *sw == w && *sh == h);
            if stale {
                let ctx = scaling::Context::get(fmt, w, h, format::Pixel::YUV420P, w, h, scaling::Flags::BILINEAR)?;
                self.scaler = Some((ctx, fmt, w, h));
            }
            let mut converted = frame::Video::empty();
            self.scaler
                .as_mut()
                .expect("the scaler was created just above when missing")
                .0
                .run(&self.decoded, &mut converted)?;
            self.decoded = converted;
            &self.decoded
        };
        let (w, h) = (w.max(2), h.max(2));
        let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
        let planes = [(w as usize, h as usize), (cw, ch), (cw, ch)];
        // Rows appended straight from the decoder's planes: the frame's bytes are written once.
        let mut data = Vec::with_capacity(w as usize * h as usize + 2 * cw * ch);
        for (plane, (pw, ph)) in planes.into_iter().enumerate() {
            let stride = src.stride(plane);
            let bytes = src.data(plane);
            for row in 0..ph {
                data.extend_from_slice(&bytes[row * stride..row * stride + pw]);
            }
        }
        // expect: the length is the I420 size of w×h by construction.
        Ok(VideoFrame::from_i420(w, h, data).expect("an I420 frame"))
    }
}

/// Decodes one Opus track (or an encoder's AAC) to interleaved stereo f32 at 48 kHz.
pub struct AudioDecoder {
    decoder: decoder::Audio,
    decoded: frame::Audio,
    /// To 48 kHz packed stereo f32, for a source at another rate (AAC at 44.1 kHz), made on its first frame.
    resampler: Option<ffmpeg_next::software::resampling::Context>,
}

impl AudioDecoder {
    pub fn opus() -> Result<AudioDecoder, DecodeError> {
        crate::ffmpeg::init();
        let found = decoder::find(codec::Id::OPUS).ok_or(DecodeError::Unsupported(codec::Id::OPUS))?;
        let decoder = codec::context::Context::new_with_codec(found).decoder().open_as(found)?.audio()?;
        Ok(AudioDecoder { decoder, decoded: frame::Audio::empty(), resampler: None })
    }

    /// An AAC decoder for the stream whose AudioSpecificConfig is `asc` (an RTMP encoder's audio).
    pub fn aac(asc: &[u8]) -> Result<AudioDecoder, DecodeError> {
        crate::ffmpeg::init();
        let found = decoder::find(codec::Id::AAC).ok_or(DecodeError::Unsupported(codec::Id::AAC))?;
        let mut ctx = codec::context::Context::new_with_codec(found);
        // SAFETY: the context is ours and not opened yet; the buffer has FFmpeg's padding and the context frees
        // it (avcodec_free_context).
        unsafe {
            let c = ctx.as_mut_ptr();
            let pad = ffmpeg_next::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let buffer = ffmpeg_next::ffi::av_mallocz(asc.len() + pad) as *mut u8;
            if !buffer.is_null() {
                std::ptr::copy_nonoverlapping(asc.as_ptr(), buffer, asc.len());
                (*c).extradata = buffer;
                (*c).extradata_size = asc.len() as i32;
            }
        }
        let decoder = ctx.decoder().open_as(found)?.audio()?;
        Ok(AudioDecoder { decoder, decoded: frame::Audio::empty(), resampler: None })
    }

    /// A decoder for a file's audio stream (a clip), from its codec parameters.
    pub fn for_stream(params: codec::Parameters) -> Result<AudioDecoder, DecodeError> {
        let decoder = open_stream(params)?.audio()?;
        Ok(AudioDecoder { decoder, decoded: frame::Audio::empty(), resampler: None })
    }

    /// Feeds one packet; returns its samples (interleaved stereo; mono is duplicated).
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<f32>, DecodeError> {
        self.decode_packet(Some(&ffmpeg_next::Packet::copy(data)))
    }

    /// Feeds one packet (`None`: the end of the stream); returns the samples it produced (interleaved stereo,
    /// 48 kHz).
    pub fn decode_packet(&mut self, packet: Option<&ffmpeg_next::Packet>) -> Result<Vec<f32>, DecodeError> {
        match packet {
            Some(p) => self.decoder.send_packet(p)?,
            None => self.decoder.send_eof()?,
        }
        let mut out = Vec::new();
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            if self.decoded.rate() != crate::media::SAMPLE_RATE {
                self.resample(&mut out)?;
                continue;
            }
            let f = &self.decoded;
            let n = f.samples();
            let channels = f.channels().max(1) as usize;
            let sample = |ch: usize, i: usize| -> f32 {
                let ch = ch.min(channels - 1);
                match f.format() {
                    format::Sample::F32(format::sample::Type::Planar) => f.plane::<f32>(ch)[i],
                    format::Sample::F32(format::sample::Type::Packed) => bytemuck_f32(f.data(0), i * channels + ch),
                    format::Sample::I16(format::sample::Type::Planar) => f.plane::<i16>(ch)[i] as f32 / 32768.0,
                    format::Sample::I16(format::sample::Type::Packed) => {
                        bytemuck_i16(f.data(0), i * channels + ch) as f32 / 32768.0
                    }
                    _ => 0.0,
                }
            };
            out.reserve(n * 2);
            for i in 0..n {
                out.push(sample(0, i));
                out.push(sample(1, i));
            }
        }
        Ok(out)
    }
}

impl AudioDecoder {
    /// Appends the decoded frame at 48 kHz, interleaved stereo.
    fn resample(&mut self, out: &mut Vec<f32>) -> Result<(), DecodeError> {
        use ffmpeg_next::ChannelLayout;
        let f = &self.decoded;
        if self.resampler.is_none() {
            let layout = if f.channels() >= 2 { ChannelLayout::STEREO } else { ChannelLayout::MONO };
            let packed = format::Sample::F32(format::sample::Type::Packed);
            let ctx = ffmpeg_next::software::resampling::Context::get(
                f.format(),
                layout,
                f.rate(),
                packed,
                ChannelLayout::STEREO,
                crate::media::SAMPLE_RATE,
            )?;
            self.resampler = Some(ctx);
        }
        let mut converted = frame::Audio::empty();
        // Made just above when missing.
        self.resampler.as_mut().expect("a resampler").run(f, &mut converted)?;
        let n = converted.samples() * 2;
        out.extend((0..n).map(|i| bytemuck_f32(converted.data(0), i)));
        Ok(())
    }
}

/// A decoder opened for a file's stream from its codec parameters (`.video()` or `.audio()` of it).
fn open_stream(params: codec::Parameters) -> Result<decoder::Opened, DecodeError> {
    crate::ffmpeg::init();
    let id = params.id();
    let found = decoder::find(id).ok_or(DecodeError::Unsupported(id))?;
    Ok(codec::context::Context::from_parameters(params)?.decoder().open_as(found)?)
}

fn bytemuck_f32(data: &[u8], index: usize) -> f32 {
    data.get(index * 4..index * 4 + 4).map_or(0.0, |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn bytemuck_i16(data: &[u8], index: usize) -> i16 {
    data.get(index * 2..index * 2 + 2).map_or(0, |b| i16::from_ne_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffmpeg_next::{Dictionary, Rational, encoder};

    /// Encodes flat-colour frames with libvpx (VP8) and checks the decoder returns the colour.
    #[test]
    fn vp8_round_trip_keeps_colour() {
        crate::ffmpeg::init();
        let vp8 = encoder::find_by_name("libvpx").expect("libvpx in Debian's FFmpeg");
        let mut enc = codec::context::Context::new_with_codec(vp8).encoder().video().unwrap();
        enc.set_width(64);
        enc.set_height(48);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(Rational(1, 30));
        enc.set_bit_rate(500_000);
        let mut opts = Dictionary::new();
        opts.set("deadline", "realtime");
        let mut enc = enc.open_as_with(vp8, opts).unwrap();
        let mut dec = VideoDecoder::new(VideoCodec::Vp8).unwrap();
        let mut src = frame::Video::new(format::Pixel::YUV420P, 64, 48);
        let mut decoded = Vec::new();
        for i in 0..10 {
            for (plane, value) in [(0, 150u8), (1, 90), (2, 170)] {
                src.data_mut(plane).fill(value);
            }
            src.set_pts(Some(i));
            enc.send_frame(&src).unwrap();
            let mut pkt = ffmpeg_next::Packet::empty();
            while enc.receive_packet(&mut pkt).is_ok() {
                decoded.extend(dec.decode(pkt.data().unwrap()).unwrap());
            }
        }
        assert!(!decoded.is_empty());
        let f = decoded.last().unwrap();
        assert_eq!((f.width(), f.height()), (64, 48));
        let (y, u, v) = f.planes();
        assert!((y[100] as i32 - 150).abs() <= 3 && (u[10] as i32 - 90).abs() <= 3 && (v[10] as i32 - 170).abs() <= 3);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut dec = VideoDecoder::new(VideoCodec::H264).unwrap();
        let _ = dec.decode(&[0, 0, 0, 1, 0xff, 0xff, 0x13]);
        let mut audio = AudioDecoder::opus().unwrap();
        let _ = audio.decode(&[0xff; 3]);
    }
}
