//! `POST .../destinations/:id/test`: a real connect and a few seconds of published test pattern, step by
//! step, so the host learns *which* step failed (DNS, TCP, TLS, RTMP handshake, key rejected, publish).

use std::ffi::{CString, c_void};
use std::net::TcpStream;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ffmpeg_next::{Dictionary, ffi};

use super::address::{self, AddressError, AddressPolicy, Pinned};
use super::encoder::{Encoder, EncoderSettings};
use super::muxer::{Muxer, Watchdog, interrupt_callback};
use super::test_pattern::TestPattern;
use super::{DestinationConfig, Timeouts, register_url_secrets, rtmp_options, validate_url};
use crate::ffmpeg::{LogCapture, redact_url};

/// A connection that dies this soon after the publish request counts as a refused stream key.
const REJECTION_WINDOW: Duration = Duration::from_secs(3);

/// How to test.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// Budget for the whole test (each step gets what is left).
    pub timeout: Duration,
    /// How long to publish the test pattern once accepted.
    pub publish_for: Duration,
    /// Extra CA bundle for RTMPS.
    pub ca_file: Option<PathBuf>,
    /// Which addresses the host may resolve to. A refused address is never connected to, and the reply
    /// says only "could not connect", so a test cannot map the server's network.
    pub address_policy: AddressPolicy,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            timeout: Duration::from_secs(15),
            publish_for: Duration::from_secs(3),
            ca_file: None,
            address_policy: AddressPolicy::PublicOnly,
        }
    }
}

/// A successful test.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// The URL tested, key redacted.
    pub target: String,
    /// Addresses the host name resolved to.
    pub addresses: Vec<String>,
    /// Time to resolve, ms.
    pub dns_ms: u64,
    /// Time to open a TCP connection, ms.
    pub tcp_ms: u64,
    /// Time to complete a verified TLS handshake (RTMPS only), ms.
    pub tls_ms: Option<u64>,
    /// Time from connect to the server accepting the publish, ms.
    pub publish_accept_ms: u64,
    /// How long the pattern was published, s.
    pub published_secs: f64,
    /// Video frames sent.
    pub frames_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
}

/// The step that failed, with a human-readable reason (never containing the stream key).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "stage", content = "reason", rename_all = "camelCase")]
pub enum DestinationTestError {
    /// The URL is not an rtmp:// or rtmps:// URL with a host and a path.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The host name did not resolve.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// No TCP connection could be opened (refused, unreachable, timed out).
    #[error("TCP connection failed: {0}")]
    Tcp(String),
    /// The TLS handshake failed (certificate not trusted, wrong host name, not TLS).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The server does not speak RTMP or broke off before the publish request.
    #[error("RTMP handshake failed: {0}")]
    Handshake(String),
    /// The server refused the publish (wrong or disabled stream key, app not found).
    #[error("the server rejected the stream: {0}")]
    Rejected(String),
    /// The server accepted, then the stream failed while publishing.
    #[error("publishing failed: {0}")]
    Publish(String),
    /// FFmpeg could not encode the test pattern (a broken installation, not the destination).
    #[error("test pattern encoder: {0}")]
    Encoder(String),
}

/// Tests `url` with default options (system CAs, 3 s of pattern, public addresses only), within `timeout`.
pub fn test_destination(url: &str, timeout: Duration) -> Result<TestReport, DestinationTestError> {
    test_destination_with(url, &TestOptions { timeout, ..TestOptions::default() })
}

fn remaining(deadline: Instant, step: &str) -> Result<Duration, DestinationTestError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| DestinationTestError::Tcp(format!("test timed out before {step}")))
}

fn tls_check(pinned: &Pinned, ca_file: Option<&PathBuf>, budget: Duration) -> Result<(), DestinationTestError> {
    let capture = LogCapture::start();
    let url = CString::new(format!("tls://{}", pinned.address))
        .map_err(|_| DestinationTestError::InvalidUrl("NUL in host".into()))?;
    let mut opts = Dictionary::new();
    opts.set("tls_verify", "1");
    for (k, v) in pinned.io.iter().filter(|(k, _)| k == "verifyhost") {
        opts.set(k, v);
    }
    opts.set("rw_timeout", &budget.as_micros().to_string());
    if let Some(ca) = ca_file {
        opts.set("ca_file", &ca.display().to_string());
    }
    let watchdog = Box::new(Watchdog::new(Arc::new(AtomicBool::new(false))));
    watchdog.arm(budget);
    let callback = ffi::AVIOInterruptCB {
        callback: Some(interrupt_callback),
        opaque: &*watchdog as *const Watchdog as *mut c_void,
    };
    let mut pb: *mut ffi::AVIOContext = ptr::null_mut();
    // SAFETY: ownership comes back with Dictionary::own right after the call.
    let mut raw = unsafe { opts.disown() };
    // SAFETY: valid out-pointer, URL and callback (the watchdog outlives the IO context, closed below).
    let code = unsafe {
        let code = ffi::avio_open2(&mut pb, url.as_ptr(), ffi::AVIO_FLAG_READ_WRITE, &callback, &mut raw);
        Dictionary::own(raw);
        if !pb.is_null() {
            ffi::avio_closep(&mut pb);
        }
        code
    };
    if code < 0 {
        let lines = capture.lines();
        let detail = if lines.is_empty() { ffmpeg_next::Error::from(code).to_string() } else { lines.join("; ") };
        return Err(DestinationTestError::Tls(detail));
    }
    Ok(())
}

fn classify_open_failure(error: &super::muxer::MuxError, lines: &[String]) -> DestinationTestError {
    let all = lines.join("; ");
    if let Some(server) = lines.iter().find(|l| l.contains("Server error")) {
        return DestinationTestError::Rejected(server.clone());
    }
    if lines.iter().any(|l| l.contains("Sending publish command")) {
        return DestinationTestError::Rejected(format!(
            "the server closed the connection after the publish request ({})",
            error.error
        ));
    }
    if error.op == "write header" {
        return DestinationTestError::Publish(error.to_string());
    }
    let reason = if all.is_empty() { error.error.to_string() } else { all };
    DestinationTestError::Handshake(reason)
}

/// Tests `url`: resolve, connect, TLS (verified) for RTMPS, RTMP handshake + publish, then publishes a test
/// pattern for `publish_for`.
pub fn test_destination_with(url: &str, options: &TestOptions) -> Result<TestReport, DestinationTestError> {
    crate::ffmpeg::init();
    let deadline = Instant::now() + options.timeout;
    validate_url("test", url).map_err(|e| match e {
        super::EgressError::InvalidDestination { reason, .. } => DestinationTestError::InvalidUrl(reason),
        other => DestinationTestError::InvalidUrl(other.to_string()),
    })?;
    register_url_secrets(url);
    let mut report = TestReport {
        target: redact_url(url),
        addresses: Vec::new(),
        dns_ms: 0,
        tcp_ms: 0,
        tls_ms: None,
        publish_accept_ms: 0,
        published_secs: 0.0,
        frames_sent: 0,
        bytes_sent: 0,
    };

    // Resolve once and check every address: from here on only the checked address is connected to.
    let t = Instant::now();
    let pinned = address::pin(url, options.address_policy, 0, remaining(deadline, "DNS")?).map_err(|e| match e {
        AddressError::InvalidUrl(m) => DestinationTestError::InvalidUrl(m),
        AddressError::Dns(m) => DestinationTestError::Dns(m),
        AddressError::NotAllowed => DestinationTestError::Tcp("could not connect".into()),
    })?;
    report.dns_ms = t.elapsed().as_millis() as u64;
    report.addresses = pinned.addresses.iter().map(ToString::to_string).collect();

    let t = Instant::now();
    if let Err(e) = TcpStream::connect_timeout(&pinned.address, remaining(deadline, "TCP connect")?) {
        return Err(DestinationTestError::Tcp(format!("{}: {e}", pinned.address)));
    }
    report.tcp_ms = t.elapsed().as_millis() as u64;

    if url.to_ascii_lowercase().starts_with("rtmps://") {
        let t = Instant::now();
        tls_check(&pinned, options.ca_file.as_ref(), remaining(deadline, "TLS")?)?;
        report.tls_ms = Some(t.elapsed().as_millis() as u64);
    }

    let settings = EncoderSettings { width: 640, height: 360, fps: 30, video_kbps: 800, ..Default::default() };
    let mut encoder = Encoder::new(&settings).map_err(|e| DestinationTestError::Encoder(e.to_string()))?;
    let dest = DestinationConfig {
        id: "test".into(),
        url: url.to_owned(),
        ca_file: options.ca_file.clone(),
        profile: None,
        constraints: Default::default(),
        address_policy: options.address_policy,
        canvas: 0,
    };
    let budget = remaining(deadline, "RTMP handshake")?;
    let timeouts = Timeouts { open: budget, write: budget.min(Duration::from_secs(5)), ..Timeouts::default() };
    let mut output_options = rtmp_options(&dest, &timeouts);
    output_options.io.extend(pinned.io.iter().cloned());
    let t = Instant::now();
    let abort = Arc::new(AtomicBool::new(false));
    // Debug lines tell whether the publish request was sent before the server hung up.
    let capture = LogCapture::with_level(ffi::AV_LOG_DEBUG);
    let mut muxer = match Muxer::open(&pinned.url, &encoder.streams(), &output_options, abort) {
        Ok(m) => m,
        Err(e) => return Err(classify_open_failure(&e, &capture.lines())),
    };
    drop(capture);
    report.publish_accept_ms = t.elapsed().as_millis() as u64;

    let mut pattern = TestPattern::new(settings.width, settings.height, settings.fps);
    let start = Instant::now();
    let mut packets = Vec::new();
    let publish_for = options.publish_for.min(deadline.saturating_duration_since(Instant::now()));
    // RTMP servers that refuse a key (nginx-rtmp `deny`, on_publish returning 403) often just hang up after
    // the publish request, which FFmpeg only notices on a later write; "Server error" lines carry the
    // reason when the server sends one.
    let capture = LogCapture::start();
    let failed = |e: &dyn std::fmt::Display, lines: Vec<String>, elapsed: Duration| {
        if let Some(server) = lines.iter().find(|l| l.contains("Server error")) {
            DestinationTestError::Rejected(server.clone())
        } else if elapsed < REJECTION_WINDOW {
            DestinationTestError::Rejected(format!(
                "the server closed the connection right after the publish request, the stream key was probably refused ({e})"
            ))
        } else {
            DestinationTestError::Publish(e.to_string())
        }
    };
    while pattern.next_time() < publish_for {
        if let Some(wait) = (start + pattern.next_time()).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (frame, at) = pattern.next_frame();
        let audio = pattern.audio_until(pattern.next_time());
        encoder
            .encode_video(&frame, at, false, &mut packets)
            .map_err(|e| DestinationTestError::Encoder(e.to_string()))?;
        encoder.encode_audio(&audio, &mut packets).map_err(|e| DestinationTestError::Encoder(e.to_string()))?;
        for p in packets.drain(..) {
            if let Err(e) = muxer.write(&p, 0) {
                return Err(failed(&e, capture.lines(), start.elapsed()));
            }
            if p.is_video() {
                report.frames_sent += 1;
            }
        }
    }
    report.bytes_sent = muxer.bytes_written;
    report.published_secs = start.elapsed().as_secs_f64();
    let elapsed = start.elapsed();
    muxer.finish().map_err(|e| failed(&e, capture.lines(), elapsed))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback servers are this test's own: allowed as an operator would allow a local RTMP server.
    fn local(url: &str) -> Result<TestReport, DestinationTestError> {
        let options =
            TestOptions { timeout: Duration::from_secs(5), address_policy: AddressPolicy::Any, ..Default::default() };
        test_destination_with(url, &options)
    }

    #[test]
    fn a_private_address_in_any_spelling_is_never_connected_to_and_the_reply_says_no_more() {
        // A listener that would answer: a refused test must not reach it, nor tell it from a closed port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        for host in
            ["127.0.0.1", "127.1", "0x7f.0.0.1", "0177.0.0.1", "127.000.000.001", "localhost", "[::ffff:127.0.0.1]"]
        {
            let err = test_destination(&format!("rtmp://{host}:{port}/app/key"), Duration::from_secs(5)).unwrap_err();
            assert_eq!(err, DestinationTestError::Tcp("could not connect".into()), "{host}");
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = test_destination(&format!("rtmp://127.1:{closed}/app/key"), Duration::from_secs(5)).unwrap_err();
        assert_eq!(err, DestinationTestError::Tcp("could not connect".into()), "a closed port reads the same");
        assert!(listener.accept().is_err(), "the refused test connected");
    }

    #[test]
    fn unresolvable_host_is_a_dns_error() {
        let err = test_destination("rtmp://no-such-host.invalid/app/key", Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, DestinationTestError::Dns(_)), "{err:?}");
    }

    #[test]
    fn closed_port_is_a_tcp_error() {
        // Bind then drop: the port is free and nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = local(&format!("rtmp://127.0.0.1:{port}/app/key")).unwrap_err();
        assert!(matches!(err, DestinationTestError::Tcp(_)), "{err:?}");
    }

    #[test]
    fn a_server_that_is_not_rtmp_fails_the_handshake() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::Write;
                let mut s = stream;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let err = local(&format!("rtmp://127.0.0.1:{port}/app/key")).unwrap_err();
        assert!(matches!(err, DestinationTestError::Handshake(_)), "{err:?}");
    }
}
