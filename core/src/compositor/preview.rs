//! Still previews of the program for the studio: the latest composed frame scaled down and JPEG-encoded
//! (FFmpeg's MJPEG encoder), a few times a second while a host watches.

use ffmpeg_next::{Packet, codec, encoder, format, frame, software::scaling};

use crate::egress::VideoFrame;

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
#[error("program preview: {0}")]
pub struct PreviewError(String);

fn ff(what: &'static str) -> impl Fn(ffmpeg_next::Error) -> PreviewError {
    move |e| PreviewError(format!("{what}: {e}"))
}

/// `frame` scaled to at most `max_width` pixels wide (aspect kept, even sizes) as a JPEG.
pub fn jpeg(frame: &VideoFrame, max_width: u32) -> Result<Vec<u8>, PreviewError> {
    crate::egress::init_ffmpeg();
    let (fw, fh) = (frame.width(), frame.height());
    let w = (max_width.min(fw).max(2)) & !1;
    let h = (((u64::from(fh) * u64::from(w)) / u64::from(fw).max(1)) as u32).max(2) & !1;

    let mut src = frame::Video::new(format::Pixel::YUV420P, fw, fh);
    let (y, u, v) = frame.planes();
    for (plane, data, width) in [(0, y, fw as usize), (1, u, fw.div_ceil(2) as usize), (2, v, fw.div_ceil(2) as usize)]
    {
        let stride = src.stride(plane);
        let dst = src.data_mut(plane);
        for (src_row, dst_row) in data.chunks_exact(width).zip(dst.chunks_mut(stride)) {
            dst_row[..width].copy_from_slice(src_row);
        }
    }
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
}
