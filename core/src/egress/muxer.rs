//! One FFmpeg output (FLV over RTMP/RTMPS, a fragmented MP4 file, or an HLS folder) whose every blocking call is bounded.
//!
//! A frozen RTMP server (SIGSTOPped, or a stuck middlebox) accepts the TCP connection and then stops
//! reading: FFmpeg's write blocks forever, and so does its close (RTMP sends `deleteStream` on close).
//! `rw_timeout` alone does not cover the handshake and close paths, so the context gets an AVIO interrupt
//! callback ([`Watchdog`]) installed *before* `avio_open2` (FFmpeg copies the callback into every nested
//! protocol: rtmp → tls → tcp). This needs `avformat_alloc_output_context2` + `avio_open2` by hand:
//! ffmpeg-next's `format::output*` opens the IO without a callback.

use std::ffi::{CString, c_int, c_void};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ffmpeg_next::codec::Parameters;
use ffmpeg_next::packet::Mut as _;
use ffmpeg_next::{Dictionary, Rational, ffi};

use super::encoder::EncodedPacket;

/// Decides when FFmpeg must give up a blocking call: at a per-call deadline, or at once when aborted.
pub(crate) struct Watchdog {
    /// Reference point for `deadline_ms`.
    epoch: Instant,
    /// Milliseconds after `epoch` at which the current call is interrupted; `u64::MAX` = no call running.
    deadline_ms: AtomicU64,
    /// Set by whoever owns the sender when the output must stop now (stop, remove).
    abort: Arc<AtomicBool>,
}

impl Watchdog {
    pub(crate) fn new(abort: Arc<AtomicBool>) -> Self {
        Watchdog { epoch: Instant::now(), deadline_ms: AtomicU64::new(u64::MAX), abort }
    }

    pub(crate) fn arm(&self, budget: Duration) {
        let at = self.epoch.elapsed() + budget;
        self.deadline_ms.store(at.as_millis() as u64, Ordering::Release);
    }

    pub(crate) fn disarm(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::Release);
    }

    fn should_interrupt(&self) -> bool {
        self.abort.load(Ordering::Acquire)
            || self.epoch.elapsed().as_millis() as u64 >= self.deadline_ms.load(Ordering::Acquire)
    }
}

pub(crate) unsafe extern "C" fn interrupt_callback(opaque: *mut c_void) -> c_int {
    // SAFETY: opaque is the `Watchdog` boxed inside the `Muxer` that owns the context calling us; the box
    // is freed only after the context is closed and freed.
    let watchdog = unsafe { &*(opaque as *const Watchdog) };
    c_int::from(watchdog.should_interrupt())
}

/// One elementary stream to create in the output.
pub(crate) struct StreamSpec {
    /// Codec parameters (with the encoder's global header / extradata).
    pub params: Parameters,
    /// Time base of the packets handed to [`Muxer::write`].
    pub time_base: Rational,
}

impl Clone for StreamSpec {
    fn clone(&self) -> Self {
        StreamSpec { params: self.params.clone(), time_base: self.time_base }
    }
}

/// How to open an output and how long each blocking call may take.
#[derive(Clone)]
pub(crate) struct OutputOptions {
    /// Muxer short name: "flv", "mp4" or "hls".
    pub format: &'static str,
    /// Options for the protocol stack (`avio_open2`): rw_timeout, tls_verify, ca_file...
    pub io: Vec<(String, String)>,
    /// Options for the muxer (`avformat_write_header`): movflags, flvflags...
    pub muxer: Vec<(String, String)>,
    /// Budget for connect + handshake + publish + header.
    pub open_timeout: Duration,
    /// Budget for one packet write.
    pub write_timeout: Duration,
    /// Budget for trailer + close.
    pub close_timeout: Duration,
    /// Where the bytes go instead of `url` (an HTTP viewer's connection); it answers `false` when it takes no
    /// more (gone, or too slow), which ends the output.
    pub sink: Option<ByteSink>,
}

/// Takes an output's bytes as the muxer writes them; `false` ends the output.
pub type ByteSink = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Size of the buffer FFmpeg fills before it hands bytes to a [`ByteSink`].
const SINK_BUFFER: usize = 32 * 1024;

unsafe extern "C" fn sink_write(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    if size <= 0 {
        return 0;
    }
    // SAFETY: opaque is the `ByteSink` boxed inside the `Muxer` whose context calls us (freed after the
    // context); FFmpeg hands us `size` readable bytes at `buf`.
    let (sink, bytes) = unsafe { (&*(opaque as *const ByteSink), std::slice::from_raw_parts(buf, size as usize)) };
    if sink(bytes) { size } else { ffi::AVERROR(ffi::EPIPE) }
}

/// An FFmpeg error with the operation that failed and FFmpeg's own explanation (redacted).
#[derive(Debug, thiserror::Error)]
#[error("{op}: {error}{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
pub(crate) struct MuxError {
    /// What was being done: "open", "write header", "write", "close".
    pub op: &'static str,
    /// FFmpeg's error code.
    pub error: ffmpeg_next::Error,
    /// Warning/error lines FFmpeg logged during the call (already redacted).
    pub detail: String,
}

pub(crate) struct Muxer {
    ctx: *mut ffi::AVFormatContext,
    /// Kept boxed at a stable address: FFmpeg holds a pointer to it until `ctx` is freed.
    watchdog: Box<Watchdog>,
    /// Time base of the incoming packets, per stream.
    packet_time_bases: Vec<Rational>,
    write_timeout: Duration,
    close_timeout: Duration,
    /// Payload bytes written so far (for the bitrate shown to the host).
    pub bytes_written: u64,
    /// The sink of a custom-IO output, at a stable address: FFmpeg's IO context points to it.
    sink: Option<Box<ByteSink>>,
}

// SAFETY: the context is only touched through `&mut self`; FFmpeg contexts may move between threads.
unsafe impl Send for Muxer {}

fn dictionary(pairs: &[(String, String)]) -> Dictionary<'static> {
    let mut dict = Dictionary::new();
    for (k, v) in pairs {
        dict.set(k, v);
    }
    dict
}

fn check(op: &'static str, code: c_int, capture: &crate::ffmpeg::LogCapture) -> Result<c_int, MuxError> {
    if code < 0 {
        Err(MuxError { op, error: ffmpeg_next::Error::from(code), detail: capture.lines().join("; ") })
    } else {
        Ok(code)
    }
}

impl Muxer {
    /// Says "timed out" instead of FFmpeg's "Immediate exit requested" when the watchdog fired.
    fn explain(&self, mut e: MuxError, budget: Duration) -> MuxError {
        if e.error == ffmpeg_next::Error::Exit && !self.watchdog.abort.load(Ordering::Acquire) {
            let note = format!("no progress for {:.1} s: server not reading (frozen?)", budget.as_secs_f64());
            e.detail = if e.detail.is_empty() { note } else { format!("{note}; {}", e.detail) };
        }
        e
    }
}

impl Muxer {
    /// Connects (for RTMP: TCP, TLS, handshake, connect, publish) and writes the header.
    pub(crate) fn open(
        url: &str,
        streams: &[StreamSpec],
        options: &OutputOptions,
        abort: Arc<AtomicBool>,
    ) -> Result<Muxer, MuxError> {
        let capture = crate::ffmpeg::LogCapture::start();
        let invalid = |op| MuxError { op, error: ffmpeg_next::Error::InvalidData, detail: String::new() };
        let c_url = CString::new(url).map_err(|_| invalid("open"))?;
        let c_format = CString::new(options.format).map_err(|_| invalid("open"))?;
        let mut ctx: *mut ffi::AVFormatContext = ptr::null_mut();
        // SAFETY: out-pointer and NUL-terminated strings valid for the call.
        let code = unsafe {
            ffi::avformat_alloc_output_context2(&mut ctx, ptr::null_mut(), c_format.as_ptr(), c_url.as_ptr())
        };
        check("open", code, &capture)?;
        let muxer = Muxer {
            ctx,
            watchdog: Box::new(Watchdog::new(abort)),
            packet_time_bases: streams.iter().map(|s| s.time_base).collect(),
            write_timeout: options.write_timeout,
            close_timeout: options.close_timeout,
            bytes_written: 0,
            sink: options.sink.clone().map(Box::new),
        };
        // SAFETY: ctx was just allocated; the watchdog box outlives it (see Drop).
        unsafe {
            (*ctx).interrupt_callback = ffi::AVIOInterruptCB {
                callback: Some(interrupt_callback),
                opaque: &*muxer.watchdog as *const Watchdog as *mut c_void,
            };
            for spec in streams {
                let stream = ffi::avformat_new_stream(ctx, ptr::null());
                if stream.is_null() {
                    return Err(MuxError { op: "open", error: ffmpeg_next::Error::Bug, detail: String::new() });
                }
                check("open", ffi::avcodec_parameters_copy((*stream).codecpar, spec.params.as_ptr()), &capture)?;
                (*(*stream).codecpar).codec_tag = 0;
                (*stream).time_base = spec.time_base.into();
            }
        }
        muxer.watchdog.arm(options.open_timeout);
        // SAFETY: ownership comes back with Dictionary::own right after the call.
        let mut io_opts = unsafe { dictionary(&options.io).disown() };
        // SAFETY: ctx was allocated with an output format.
        let opens_own_files = unsafe { (*(*ctx).oformat).flags & ffi::AVFMT_NOFILE as c_int != 0 };
        // A muxer that opens its own files (HLS: playlist and segments) gets no IO context from us; one that
        // writes to a sink gets a custom one (whose writes never block: the sink refuses instead).
        let code = if let Some(sink) = &muxer.sink {
            // SAFETY: ctx is valid; the buffer is handed to the IO context, which owns it from then on (freed in
            // `close_io`); the opaque pointer is the boxed sink, which lives until ctx is freed.
            unsafe {
                let buffer = ffi::av_malloc(SINK_BUFFER) as *mut u8;
                let io = if buffer.is_null() {
                    ptr::null_mut()
                } else {
                    ffi::avio_alloc_context(
                        buffer,
                        SINK_BUFFER as c_int,
                        1,
                        &**sink as *const ByteSink as *mut c_void,
                        None,
                        Some(sink_write),
                        None,
                    )
                };
                if io.is_null() {
                    ffi::av_free(buffer as *mut c_void);
                    ffi::AVERROR(ffi::ENOMEM)
                } else {
                    (*ctx).pb = io;
                    (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO as c_int;
                    0
                }
            }
        } else if opens_own_files {
            0
        } else {
            // SAFETY: ctx is valid; its interrupt callback lives as long as ctx; io_opts is owned and freed below.
            unsafe {
                ffi::avio_open2(
                    &mut (*ctx).pb,
                    c_url.as_ptr(),
                    ffi::AVIO_FLAG_WRITE,
                    &(*ctx).interrupt_callback,
                    &mut io_opts,
                )
            }
        };
        // SAFETY: io_opts came from `disown` above and is owned again here exactly once.
        unsafe { Dictionary::own(io_opts) };
        check("open", code, &capture).map_err(|e| muxer.explain(e, options.open_timeout))?;
        // SAFETY: as above.
        let mut mux_opts = unsafe { dictionary(&options.muxer).disown() };
        // SAFETY: as above.
        let code = unsafe {
            let code = ffi::avformat_write_header(ctx, &mut mux_opts);
            Dictionary::own(mux_opts);
            code
        };
        muxer.watchdog.disarm();
        check("write header", code, &capture).map_err(|e| muxer.explain(e, options.open_timeout))?;
        Ok(muxer)
    }

    /// Writes one packet (timestamps given in the stream's packet time base, see [`StreamSpec`]).
    /// `offset` is subtracted from pts/dts so that each connection's timeline starts near zero.
    pub(crate) fn write(&mut self, packet: &EncodedPacket, offset: i64) -> Result<(), MuxError> {
        let capture = crate::ffmpeg::LogCapture::start();
        let index = packet.stream_index;
        let Some(&from) = self.packet_time_bases.get(index) else {
            return Err(MuxError { op: "write", error: ffmpeg_next::Error::StreamNotFound, detail: String::new() });
        };
        let mut pkt = ffmpeg_next::Packet::copy(&packet.data);
        pkt.set_stream(index);
        pkt.set_pts(Some(packet.pts - offset));
        pkt.set_dts(Some(packet.dts - offset));
        pkt.set_duration(packet.duration);
        if packet.keyframe {
            pkt.set_flags(ffmpeg_next::packet::Flags::KEY);
        }
        // SAFETY: index < nb_streams (streams created from the same list in open).
        let to: Rational = unsafe { (*(*(*self.ctx).streams.add(index))).time_base.into() };
        pkt.rescale_ts(from, to);
        self.watchdog.arm(self.write_timeout);
        // SAFETY: ctx is open with a written header; the packet is a valid owned AVPacket.
        let code = unsafe { ffi::av_interleaved_write_frame(self.ctx, pkt.as_mut_ptr()) };
        self.watchdog.disarm();
        check("write", code, &capture).map_err(|e| self.explain(e, self.write_timeout))?;
        self.bytes_written += packet.data.len() as u64;
        Ok(())
    }

    /// Writes the trailer (flushing interleaving queues) and closes the connection, bounded by the
    /// close budget (or at once if aborted).
    pub(crate) fn finish(mut self) -> Result<(), MuxError> {
        let capture = crate::ffmpeg::LogCapture::start();
        self.watchdog.arm(self.close_timeout);
        // SAFETY: header was written in open().
        let code = unsafe { ffi::av_write_trailer(self.ctx) };
        let trailer = check("close", code, &capture).map(|_| ());
        self.close_io();
        trailer
    }

    fn close_io(&mut self) {
        if self.ctx.is_null() {
            return;
        }
        self.watchdog.arm(self.close_timeout);
        // SAFETY: ctx is valid; pb may be null (avio_closep handles it); a custom IO context (ours) is freed
        // with its buffer, never closed as a protocol; ctx freed exactly once.
        unsafe {
            if !(*self.ctx).pb.is_null() {
                if self.sink.is_some() {
                    ffi::avio_flush((*self.ctx).pb);
                    ffi::av_freep(&mut (*(*self.ctx).pb).buffer as *mut *mut u8 as *mut c_void);
                    ffi::avio_context_free(&mut (*self.ctx).pb);
                } else {
                    ffi::avio_closep(&mut (*self.ctx).pb);
                }
            }
            ffi::avformat_free_context(self.ctx);
        }
        self.ctx = ptr::null_mut();
        self.watchdog.disarm();
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        self.close_io();
    }
}

/// Media duration of a file FFmpeg can read (e.g. a recording whose writer was killed), in seconds.
pub fn media_duration(path: &std::path::Path) -> Option<f64> {
    crate::ffmpeg::init();
    let input = ffmpeg_next::format::input(&path).ok()?;
    let container = input.duration();
    if container > 0 {
        return Some(container as f64 / f64::from(ffmpeg_next::ffi::AV_TIME_BASE));
    }
    // A fragmented file without a total in its header: the longest stream.
    input
        .streams()
        .filter(|s| s.duration() > 0)
        .map(|s| s.duration() as f64 * f64::from(s.time_base()))
        .reduce(f64::max)
}

/// The first and last media times of a file FFmpeg can read, in seconds, from its packets: what a file whose
/// writer was killed spans when its header cannot say (Matroska writes its duration last).
pub fn media_span(path: &std::path::Path) -> Option<(f64, f64)> {
    crate::ffmpeg::init();
    let mut input = ffmpeg_next::format::input(&path).ok()?;
    let mut span = Span::default();
    for (stream, packet) in input.packets() {
        span.add(packet.pts(), &packet, stream.time_base());
    }
    span.0
}

/// The first and last media times (seconds) of the packets seen so far.
#[derive(Default)]
struct Span(Option<(f64, f64)>);

impl Span {
    /// A packet presented at `pts` (in `base` units; none: not counted).
    fn add(&mut self, pts: Option<i64>, packet: &ffmpeg_next::Packet, base: Rational) {
        let Some(pts) = pts else { return };
        let b = f64::from(base);
        let (start, end) = (pts as f64 * b, (pts + packet.duration().max(0)) as f64 * b);
        let (first, last) = self.0.unwrap_or((start, end));
        self.0 = Some((first.min(start), last.max(end)));
    }
}

/// What [`remux`] wrote: the file's media span in seconds and the codec of each of its streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Remuxed {
    pub duration: f64,
    pub codecs: Vec<String>,
}

/// Copies every audio and video packet of `from` into a new file `to` (its container chosen by `to`'s
/// extension), nothing decoded: what makes a browser's MediaRecorder WebM (no duration, no index, as it was
/// streamed) a file players can seek in. Fails on a file FFmpeg cannot read or one with no audio or video.
pub fn remux(from: &std::path::Path, to: &std::path::Path) -> Result<Remuxed, String> {
    use ffmpeg_next::media::Type;
    crate::ffmpeg::init();
    let mut input = ffmpeg_next::format::input(&from).map_err(|e| format!("not a media file FFmpeg can read: {e}"))?;
    let mut output = ffmpeg_next::format::output(&to).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    // Input stream index → output stream index and time base, for the streams kept.
    let mut map: Vec<Option<(usize, Rational)>> = vec![None; input.streams().count()];
    let mut codecs = Vec::new();
    for stream in input.streams() {
        let params = stream.parameters();
        if !matches!(params.medium(), Type::Video | Type::Audio) {
            continue;
        }
        codecs.push(params.id().name().to_owned());
        let mut out =
            output.add_stream(ffmpeg_next::encoder::find(ffmpeg_next::codec::Id::None)).map_err(|e| e.to_string())?;
        out.set_parameters(params);
        // SAFETY: the stream was just added and nothing else holds its parameters; a codec tag of the input's
        // container may mean nothing in the output's, so FFmpeg picks its own.
        unsafe { (*out.parameters().as_mut_ptr()).codec_tag = 0 };
        map[stream.index()] = Some((out.index(), stream.time_base()));
    }
    if codecs.is_empty() {
        return Err("the file holds no audio or video".into());
    }
    output.write_header().map_err(|e| format!("cannot start {}: {e}", to.display()))?;
    let out_bases: Vec<Rational> = output.streams().map(|s| s.time_base()).collect();
    let mut span = Span::default();
    for (stream, mut packet) in input.packets() {
        let Some((index, base)) = map.get(stream.index()).copied().flatten() else { continue };
        span.add(packet.pts().or(packet.dts()), &packet, base);
        packet.rescale_ts(base, out_bases[index]);
        packet.set_position(-1);
        packet.set_stream(index);
        packet.write_interleaved(&mut output).map_err(|e| format!("cannot copy a packet: {e}"))?;
    }
    output.write_trailer().map_err(|e| format!("cannot finish {}: {e}", to.display()))?;
    let (first, last) = span.0.ok_or("the file holds no timed packets")?;
    Ok(Remuxed { duration: last - first, codecs })
}
