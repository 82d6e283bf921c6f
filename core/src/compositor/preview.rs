//! Previews of the program for the studio.
//!
//! - Live: [`PreviewEncoder`], a second, small VP8 encode (libvpx, realtime) of the composed frames that the
//!   program sends to a [`PreviewSink`] — the media node's program track, which carries it to hosts and co-hosts
//!   over their WebRTC connection.
//! - Still: [`jpeg`], the latest composed frame scaled down as a JPEG (`GET .../program.jpg`).

use ffmpeg_next::{Dictionary, Packet, Rational, codec, encoder, format, frame, picture, software::scaling};

use super::{Fit, Rect, blit};
use crate::media::VideoFrame;

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
#[error("program preview: {0}")]
pub struct PreviewError(String);

fn ff(what: &'static str) -> impl Fn(ffmpeg_next::Error) -> PreviewError {
    move |e| PreviewError(format!("{what}: {e}"))
}

pub use crate::media::{PreviewPacket, PreviewSink};

/// Size, rate and bitrate of the live preview.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviewSettings {
    /// The longer side of the preview, pixels (the canvas's aspect is kept).
    pub max_side: u32,
    /// Frames per second (the program's rate divided by a whole number, at most this).
    pub fps: u32,
    /// Target bitrate, kb/s.
    pub kbps: u32,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        PreviewSettings { max_side: 640, fps: 15, kbps: 700 }
    }
}

/// The size a `width`×`height` canvas is previewed at: longer side `max_side` at most, even sides.
pub fn preview_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let long = width.max(height).max(1);
    let scale = |side: u32| {
        let s = if long <= max_side { side } else { (u64::from(side) * u64::from(max_side) / u64::from(long)) as u32 };
        s.max(2) & !1
    };
    (scale(width), scale(height))
}

/// The live preview's encoder: composed canvas → scaled ([`blit::Scaler`]) → VP8 (libvpx, realtime, fastest
/// speed, one thread, no lag, a keyframe every 5 s and whenever a viewer asks).
pub struct PreviewEncoder {
    canvas: (u32, u32),
    size: (u32, u32),
    /// The canvas scaled down (the compositor's own scaler: a pairwise average for the usual 2:1).
    small: VideoFrame,
    scaler: blit::Scaler,
    dst: frame::Video,
    vp8: encoder::Video,
    next_pts: i64,
}

// SAFETY: the codec context and frame are owned by this value and used from one thread at a time (FFmpeg
// contexts are not tied to the thread that made them).
unsafe impl Send for PreviewEncoder {}

impl PreviewEncoder {
    /// An encoder for a `canvas` (width, height) program.
    pub fn new(canvas: (u32, u32), settings: PreviewSettings) -> Result<PreviewEncoder, PreviewError> {
        crate::ffmpeg::init();
        let size = preview_size(canvas.0, canvas.1, settings.max_side);
        let vpx = encoder::find_by_name("libvpx")
            .ok_or_else(|| PreviewError("this FFmpeg has no libvpx (VP8) encoder".into()))?;
        let mut ctx = codec::context::Context::new_with_codec(vpx).encoder().video().map_err(ff("libvpx"))?;
        let fps = settings.fps.max(1);
        ctx.set_width(size.0);
        ctx.set_height(size.1);
        ctx.set_format(format::Pixel::YUV420P);
        ctx.set_time_base(Rational(1, fps as i32));
        ctx.set_frame_rate(Some(Rational(fps as i32, 1)));
        ctx.set_bit_rate(settings.kbps as usize * 1000);
        ctx.set_gop(fps * 5);
        ctx.set_max_b_frames(0);
        ctx.set_threading(codec::threading::Config::count(1));
        let mut opts = Dictionary::new();
        opts.set("deadline", "realtime");
        opts.set("cpu-used", "16");
        opts.set("lag-in-frames", "0");
        // Entropy contexts are not carried from frame to frame, so a lost packet spoils less of what follows.
        opts.set("error-resilient", "default");
        let vp8 = ctx.open_as_with(vpx, opts).map_err(ff("open libvpx"))?;
        Ok(PreviewEncoder {
            canvas,
            size,
            small: VideoFrame::filled(size.0, size.1, [16, 128, 128]),
            scaler: blit::Scaler::default(),
            dst: frame::Video::new(format::Pixel::YUV420P, size.0, size.1),
            vp8,
            next_pts: 0,
        })
    }

    /// The preview's size.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Encodes one composed frame; returns the VP8 frames that came out (one, with no lag) as
    /// (data, keyframe). `keyframe` forces one.
    pub fn encode(&mut self, canvas: &VideoFrame, keyframe: bool) -> Result<Vec<(Vec<u8>, bool)>, PreviewError> {
        if (canvas.width(), canvas.height()) != self.canvas {
            return Err(PreviewError(format!(
                "frame is {}x{}, the preview encoder was made for {}x{}",
                canvas.width(),
                canvas.height(),
                self.canvas.0,
                self.canvas.1
            )));
        }
        let whole = Rect::new(0, 0, self.size.0, self.size.1);
        self.scaler.draw(&mut self.small, canvas, whole, Fit::Contain, [16, 128, 128]);
        // The encoder may still hold the previous frame's buffer: copy-on-write if so.
        // SAFETY: `dst` is a valid, allocated video frame owned by self.
        if unsafe { ffmpeg_next::ffi::av_frame_make_writable(self.dst.as_mut_ptr()) } < 0 {
            return Err(PreviewError("out of memory for a preview frame".into()));
        }
        self.small.write_into(&mut self.dst);
        self.dst.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.dst.set_kind(if keyframe { picture::Type::I } else { picture::Type::None });
        self.vp8.send_frame(&self.dst).map_err(ff("encode"))?;
        let mut out = Vec::new();
        let mut packet = Packet::empty();
        loop {
            match self.vp8.receive_packet(&mut packet) {
                Ok(()) => out.push((packet.data().map(<[u8]>::to_vec).unwrap_or_default(), packet.is_key())),
                Err(ffmpeg_next::Error::Other { errno: ffmpeg_next::util::error::EAGAIN })
                | Err(ffmpeg_next::Error::Eof) => return Ok(out),
                Err(e) => return Err(ff("receive")(e)),
            }
        }
    }
}

/// `frame` scaled to at most `max_width` pixels wide (aspect kept, even sizes) as a JPEG.
pub fn jpeg(frame: &VideoFrame, max_width: u32) -> Result<Vec<u8>, PreviewError> {
    crate::ffmpeg::init();
    let (fw, fh) = (frame.width(), frame.height());
    let w = (max_width.min(fw).max(2)) & !1;
    let h = (((u64::from(fh) * u64::from(w)) / u64::from(fw).max(1)) as u32).max(2) & !1;

    let mut src = frame::Video::new(format::Pixel::YUV420P, fw, fh);
    frame.write_into(&mut src);
    let mut scaled = frame::Video::empty();
    scaling::Context::get(format::Pixel::YUV420P, fw, fh, format::Pixel::YUVJ420P, w, h, scaling::Flags::BILINEAR)
        .map_err(ff("scaler"))?
        .run(&src, &mut scaled)
        .map_err(ff("scale"))?;

    let mjpeg = encoder::find(codec::Id::MJPEG).ok_or_else(|| PreviewError("FFmpeg has no MJPEG encoder".into()))?;
    let mut ctx = codec::context::Context::new_with_codec(mjpeg).encoder().video().map_err(ff("mjpeg"))?;
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(format::Pixel::YUVJ420P);
    ctx.set_time_base((1, 25));
    // Fixed quantiser (about JPEG quality 80): a preview, not the program's quality.
    ctx.set_flags(codec::Flags::QSCALE);
    ctx.set_global_quality(4 * 118);
    let mut enc = ctx.open_as(mjpeg).map_err(ff("open mjpeg"))?;
    scaled.set_pts(Some(0));
    enc.send_frame(&scaled).map_err(ff("encode"))?;
    enc.send_eof().map_err(ff("flush"))?;
    let mut packet = Packet::empty();
    enc.receive_packet(&mut packet).map_err(ff("receive"))?;
    Ok(packet.data().map(<[u8]>::to_vec).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_becomes_a_smaller_jpeg() {
        let frame = VideoFrame::filled(1280, 720, [81, 90, 240]);
        let jpeg = jpeg(&frame, 640).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "JPEG start-of-image marker");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "JPEG end-of-image marker");
        // SOF0 carries the size: height then width, big-endian.
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("a baseline frame header");
        let h = u16::from_be_bytes([jpeg[sof + 5], jpeg[sof + 6]]);
        let w = u16::from_be_bytes([jpeg[sof + 7], jpeg[sof + 8]]);
        assert_eq!((w, h), (640, 360));
    }

    #[test]
    fn preview_sizes_keep_the_aspect() {
        assert_eq!(preview_size(1280, 720, 640), (640, 360));
        assert_eq!(preview_size(1920, 1080, 640), (640, 360));
        assert_eq!(preview_size(720, 1280, 640), (360, 640));
        assert_eq!(preview_size(320, 240, 640), (320, 240));
    }

    #[test]
    fn the_live_preview_is_vp8_that_decodes_to_the_canvas_and_keyframes_on_request() {
        use crate::compositor::{VideoCodec, VideoDecoder};
        let mut enc = PreviewEncoder::new((1280, 720), PreviewSettings::default()).unwrap();
        assert_eq!(enc.size(), (640, 360));
        let mut frame = VideoFrame::filled(1280, 720, [81, 90, 240]);
        // Left half green-ish, so the decoded picture's halves tell the scaling kept the layout.
        {
            let (y, u, v) = frame.planes_mut();
            for row in y.chunks_exact_mut(1280) {
                row[..640].fill(145);
            }
            for row in u.chunks_exact_mut(640) {
                row[..320].fill(54);
            }
            for row in v.chunks_exact_mut(640) {
                row[..320].fill(34);
            }
        }
        let mut dec = VideoDecoder::new(VideoCodec::Vp8).unwrap();
        let mut keys = vec![];
        let mut decoded = None;
        for i in 0..30 {
            let out = enc.encode(&frame, i == 20).unwrap();
            assert_eq!(out.len(), 1, "no lag: one frame out per frame in");
            let (data, key) = &out[0];
            keys.push(*key);
            // VP8's frame tag: bit 0 clear on a keyframe.
            assert_eq!(data[0] & 1 == 0, *key);
            if let Some(f) = dec.decode(data).unwrap().pop() {
                decoded = Some(f);
            }
        }
        assert!(keys[0] && keys[20], "first frame and the requested one are keyframes: {keys:?}");
        assert_eq!(keys.iter().filter(|k| **k).count(), 2, "{keys:?}");
        let decoded = decoded.expect("frames decode");
        assert_eq!((decoded.width(), decoded.height()), (640, 360));
        let (y, _, _) = decoded.planes();
        let (left, right) = (y[180 * 640 + 160], y[180 * 640 + 480]);
        assert!(left.abs_diff(145) <= 6 && right.abs_diff(81) <= 6, "left {left}, right {right}");
    }
}
