//! The plain media types every part of the engine shares: the uncompressed picture the decoders produce, the
//! compositor composes and the encoders take; the program's audio sample rate; and where the program's live
//! preview goes (so the media node carries it without knowing the compositor). A leaf: it depends on nothing
//! else in the crate.

use std::time::Duration;

use ffmpeg_next::frame;

/// Audio sample rate of the program (Hz).
pub const SAMPLE_RATE: u32 = 48_000;

/// One uncompressed I420 (YUV 4:2:0 planar, limited range) picture, planes tightly packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl VideoFrame {
    /// A frame filled with one colour given as Y, U, V.
    pub fn filled(width: u32, height: u32, yuv: [u8; 3]) -> VideoFrame {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![yuv[0]; w * h + 2 * cw * ch];
        data[w * h..w * h + cw * ch].fill(yuv[1]);
        data[w * h + cw * ch..].fill(yuv[2]);
        VideoFrame { width, height, data }
    }

    /// Becomes a copy of `other`, in its own allocation when that is large enough (no allocation per frame
    /// for a buffer written over again and again).
    pub fn copy_from(&mut self, other: &VideoFrame) {
        self.width = other.width;
        self.height = other.height;
        self.data.clear();
        self.data.extend_from_slice(&other.data);
    }

    /// Copies the picture into an allocated FFmpeg YUV420P frame of the same size (whose rows may be padded).
    pub(crate) fn write_into(&self, dst: &mut frame::Video) {
        let (w, cw) = (self.width as usize, self.width.div_ceil(2) as usize);
        let (y, u, v) = self.planes();
        for (plane, (src, width)) in [(y, w), (u, cw), (v, cw)].into_iter().enumerate() {
            let stride = dst.stride(plane);
            for (src_row, dst_row) in src.chunks_exact(width).zip(dst.data_mut(plane).chunks_mut(stride)) {
                dst_row[..width].copy_from_slice(src_row);
            }
        }
    }

    /// Wraps I420 bytes; `None` if the length does not match the size.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>) -> Option<VideoFrame> {
        let (w, h) = (width as usize, height as usize);
        (data.len() == w * h + 2 * w.div_ceil(2) * h.div_ceil(2)).then_some(VideoFrame { width, height, data })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Y, U and V planes (row stride = width, and width/2 rounded up for chroma).
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        let (y, rest) = self.data.split_at(w * h);
        let (u, v) = rest.split_at(c);
        (y, u, v)
    }

    /// Mutable Y, U and V planes.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        let (y, rest) = self.data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(c);
        (y, u, v)
    }
}

/// Where the live preview goes. Implemented by the media node's program track
/// (`rtc::ProgramTrack`); the program bench counts bytes with its own.
pub trait PreviewSink: Send + Sync {
    /// Whether anyone watches: nothing is encoded while no one does.
    fn watched(&self) -> bool;
    /// Whether a viewer's decoder needs a keyframe; the request is cleared by asking.
    fn take_keyframe_request(&self) -> bool;
    /// One encoded VP8 frame of the program at program time `at`.
    fn send(&self, frame: PreviewPacket);
}

/// One encoded preview frame.
#[derive(Clone, Debug)]
pub struct PreviewPacket {
    /// A whole VP8 frame.
    pub data: Vec<u8>,
    /// A keyframe (a decoder can start on it).
    pub keyframe: bool,
    /// Program time of the composed frame it shows.
    pub at: Duration,
}
