//! FFmpeg, once per process ([`init`]), and its logs, in which stream keys never appear.
//!
//! An RTMP URL carries the stream key in its path (`rtmp://host/app/KEY`) or its query, so every URL is
//! logged through [`redact_url`]. FFmpeg logs on its own (e.g. `Connection to tcp://... failed`,
//! `Server error: ...` with the play path), so [`install_ffmpeg_log_bridge`] replaces FFmpeg's log callback
//! with one that formats the line, scrubs it with [`redact_text`] and hands it to `tracing`.

use std::collections::HashSet;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{Once, OnceLock};

use parking_lot::RwLock;

use ffmpeg_next::ffi;

const MASK: &str = "<redacted>";

/// Initialises FFmpeg and routes its log through [`install_ffmpeg_log_bridge`]; every user of FFmpeg (decoders,
/// the preview, egress) calls it first. Runs once.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // An init failure only means some registration did not happen; opening a codec reports it.
        let _ = ffmpeg_next::init();
        install_ffmpeg_log_bridge();
    });
}

/// Secrets (stream keys) registered by the senders: scrubbed even where they appear outside a URL.
fn secrets() -> &'static RwLock<HashSet<String>> {
    static SECRETS: OnceLock<RwLock<HashSet<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(HashSet::new()))
}

/// Remembers a secret (a stream key) so that [`redact_text`] scrubs it wherever it shows up.
/// Very short strings are ignored: masking "a" everywhere would make logs unreadable and protects nothing.
pub fn register_secret(secret: &str) {
    if secret.len() >= 4 {
        secrets().write().insert(secret.to_owned());
    }
}

/// Returns the URL with everything that may carry a credential replaced: user info, every path segment
/// after the first (the RTMP application) and the query. `rtmp://u:p@host:1935/live/KEY?x=1` becomes
/// `rtmp://host:1935/live/<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return if url.is_empty() { String::new() } else { MASK.to_owned() };
    };
    let (scheme, rest) = (&url[..scheme_end], &url[scheme_end + 3..]);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let tail = &rest[authority_end..];
    let mut out = format!("{scheme}://{host}");
    if let Some(path) = tail.strip_prefix('/') {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut segments = path.splitn(2, '/');
        let app = segments.next().unwrap_or("");
        out.push('/');
        out.push_str(app);
        let rest_of_path = segments.next().unwrap_or("");
        if !rest_of_path.is_empty() || tail.contains('?') {
            out.push('/');
            out.push_str(MASK);
        }
    } else if !tail.is_empty() {
        out.push('/');
        out.push_str(MASK);
    }
    out
}

/// Scrubs free text: every `rtmp*://…` URL is passed through [`redact_url`] and every registered secret
/// is masked.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_rtmp_url(rest) {
        out.push_str(&rest[..pos]);
        let url_len = rest[pos..]
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | ',' | ')'))
            .unwrap_or(rest.len() - pos);
        out.push_str(&redact_url(&rest[pos..pos + url_len]));
        rest = &rest[pos + url_len..];
    }
    out.push_str(rest);
    let secrets = secrets().read();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

fn find_rtmp_url(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    lower.find("rtmp").and_then(|start| {
        let after = &lower[start..];
        let scheme_len = after.find("://")?;
        // rtmp, rtmps, rtmpt, rtmpe, rtmpte, rtmpts: short alphabetic schemes only.
        if scheme_len <= 6 && after[..scheme_len].chars().all(|c| c.is_ascii_alphabetic()) {
            Some(start)
        } else {
            // Not a URL at this spot: keep searching after it.
            find_rtmp_url(&text[start + 4..]).map(|p| p + start + 4)
        }
    })
}

/// Routes FFmpeg's own log output through [`redact_text`] into `tracing` (target `ffmpeg`). Idempotent.
pub fn install_ffmpeg_log_bridge() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: `ffmpeg_log` has the exact signature FFmpeg expects and never unwinds.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_INFO);
            ffi::av_log_set_callback(Some(ffmpeg_log));
        }
    });
}

thread_local! {
    /// Active [`LogCapture`]s of this thread (nested captures each get every line they asked for).
    static CAPTURES: std::cell::RefCell<Vec<(c_int, Vec<String>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Collects the (redacted) FFmpeg log lines at or above a level logged on the current thread while it
/// lives. FFmpeg's RTMP code says *why* a connect failed only in its log ("Server error: ...").
pub(crate) struct LogCapture {
    depth: usize,
}

impl LogCapture {
    /// Captures warnings and errors.
    pub(crate) fn start() -> Self {
        Self::with_level(ffi::AV_LOG_WARNING)
    }

    /// Captures everything up to `level` (e.g. `AV_LOG_DEBUG`), whatever the global log level is.
    pub(crate) fn with_level(level: c_int) -> Self {
        install_ffmpeg_log_bridge();
        let depth = CAPTURES.with(|c| {
            let mut c = c.borrow_mut();
            c.push((level, Vec::new()));
            c.len() - 1
        });
        LogCapture { depth }
    }

    /// The lines captured so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        CAPTURES.with(|c| c.borrow().get(self.depth).map(|(_, l)| l.clone()).unwrap_or_default())
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURES.with(|c| c.borrow_mut().truncate(self.depth));
    }
}

unsafe extern "C" fn ffmpeg_log(avcl: *mut c_void, level: c_int, fmt: *const c_char, args: *mut ffi::__va_list_tag) {
    let capture_level = CAPTURES.with(|c| c.try_borrow().ok().and_then(|c| c.iter().map(|(l, _)| *l).max()));
    // SAFETY: reads FFmpeg's global log level; no arguments, callable from any thread.
    let log_level = unsafe { ffi::av_log_get_level() };
    let wanted_by_capture = capture_level.is_some_and(|l| level <= l);
    if level > log_level && !wanted_by_capture {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    let mut print_prefix: c_int = 1;
    // SAFETY: buf is writable for its length; fmt/args come straight from FFmpeg for this call.
    let written = unsafe {
        ffi::av_log_format_line2(avcl, level, fmt, args, buf.as_mut_ptr(), buf.len() as c_int, &mut print_prefix)
    };
    if written < 0 {
        return;
    }
    // SAFETY: av_log_format_line2 always NUL-terminates within the buffer.
    let line = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let line = redact_text(line.trim_end());
    if line.is_empty() {
        return;
    }
    if wanted_by_capture {
        CAPTURES.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                for (_, lines) in c.iter_mut().filter(|(max, _)| level <= *max) {
                    lines.push(line.clone());
                }
            }
        });
    }
    if level > log_level {
        return;
    }
    match level {
        l if l <= ffi::AV_LOG_ERROR => tracing::warn!(target: "ffmpeg", "{line}"),
        l if l <= ffi::AV_LOG_WARNING => tracing::info!(target: "ffmpeg", "{line}"),
        l if l <= ffi::AV_LOG_INFO => tracing::debug!(target: "ffmpeg", "{line}"),
        _ => tracing::trace!(target: "ffmpeg", "{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keeps_host_and_app_only() {
        assert_eq!(
            redact_url("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl"),
            "rtmp://a.rtmp.youtube.com/live2/<redacted>"
        );
        assert_eq!(
            redact_url("rtmps://user:pw@live.example:443/app/sub/KEY?token=zz"),
            "rtmps://live.example:443/app/<redacted>"
        );
        assert_eq!(redact_url("rtmp://h/app?key=secret"), "rtmp://h/app/<redacted>");
        assert_eq!(redact_url("rtmp://h:1935"), "rtmp://h:1935");
        assert_eq!(redact_url("not a url"), "<redacted>");
    }

    #[test]
    fn ffmpeg_own_log_lines_are_redacted() {
        let capture = LogCapture::start();
        let url = c"rtmp://ingest.example/live/abc-SECRET-123";
        // SAFETY: a NUL-terminated format with one %s and a matching C string argument.
        unsafe { ffi::av_log(std::ptr::null_mut(), ffi::AV_LOG_ERROR, c"Cannot open %s\n".as_ptr(), url.as_ptr()) };
        let lines = capture.lines();
        assert_eq!(lines, vec!["Cannot open rtmp://ingest.example/live/<redacted>".to_owned()]);
    }

    #[test]
    fn text_scrubs_urls_and_registered_secrets() {
        register_secret("sk_live_0123");
        let line = "Opening 'rtmp://127.0.0.1:1935/live/sk_live_0123' for writing; key sk_live_0123 rejected";
        let out = redact_text(line);
        assert!(!out.contains("sk_live_0123"), "{out}");
        assert!(out.contains("rtmp://127.0.0.1:1935/live/<redacted>"), "{out}");
        assert_eq!(redact_text("RTMPS://h/a/b c"), "RTMPS://h/a/<redacted> c");
        assert_eq!(redact_text("no url here, rtmp alone"), "no url here, rtmp alone");
    }
}
