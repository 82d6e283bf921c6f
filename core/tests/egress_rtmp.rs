//! Egress against real nginx-rtmp servers: what arrives (ffprobe), faults (kill, freeze), RTMPS with a
//! verified certificate, and the destination test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use backyard_core::egress::{
    AddressPolicy, DestinationConfig, DestinationTestError, Egress, EgressConfig, EncoderSettings, OutputKind,
    OutputState, OutputStatus, StatusSink, TestOptions, TestPattern, test_destination_with,
};
use common::{Nginx, NginxOptions, TempDir, TestCa, probe, wait_until};
use parking_lot::Mutex;

/// Every status an egress published, with when it arrived.
#[derive(Clone, Default)]
struct StatusLog(Arc<Mutex<Vec<(Instant, OutputStatus)>>>);

impl StatusLog {
    fn sink(&self) -> StatusSink {
        let log = self.0.clone();
        Arc::new(move |s: &OutputStatus| log.lock().push((Instant::now(), s.clone())))
    }

    fn latest(&self, id: &str) -> Option<OutputStatus> {
        self.0.lock().iter().rev().find(|(_, s)| s.id == id).map(|(_, s)| s.clone())
    }

    /// First time `id` was live at or after `since`.
    fn live_after(&self, id: &str, since: Instant) -> Option<Instant> {
        self.0.lock().iter().find(|(t, s)| *t >= since && s.id == id && s.is_live()).map(|(t, _)| *t)
    }

    fn all(&self, id: &str) -> Vec<OutputStatus> {
        self.0.lock().iter().filter(|(_, s)| s.id == id).map(|(_, s)| s.clone()).collect()
    }
}

fn destination(id: &str, url: String) -> DestinationConfig {
    DestinationConfig {
        id: id.into(),
        url,
        ca_file: None,
        profile: None,
        constraints: Default::default(),
        address_policy: AddressPolicy::Any,
        canvas: 0,
    }
}

/// The test's nginx runs on loopback, which the operator of a real server would have to allow.
fn local() -> TestOptions {
    TestOptions { timeout: Duration::from_secs(10), address_policy: AddressPolicy::Any, ..Default::default() }
}

fn small() -> EncoderSettings {
    EncoderSettings { width: 640, height: 360, fps: 30, video_kbps: 800, ..Default::default() }
}

/// Runs the test pattern into `egress` on a thread until `stop` is set; returns frames pushed.
fn feed(mut egress: Egress, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Egress, u64)> {
    std::thread::spawn(move || {
        let s = egress.settings().clone();
        let mut pattern = TestPattern::new(s.width, s.height, s.fps);
        // unwrap: the pattern always matches the encoder size.
        let frames = pattern.run_realtime(&mut egress, Duration::from_secs(3600), &stop).unwrap();
        (egress, frames)
    })
}

#[test]
fn publishes_h264_aac_to_rtmp_and_verified_rtmps_and_records_once() -> Result<()> {
    let _serial = common::serial();
    let certs = TempDir::new("ca")?;
    let ca = TestCa::create(certs.path())?;
    let plain = Nginx::start(NginxOptions::default())?;
    let tls =
        Nginx::start(NginxOptions { tls: Some((ca.cert_pem.clone(), ca.key_pem.clone())), ..Default::default() })?;
    let out = TempDir::new("rec")?;
    let recording = out.path().join("program.mp4");
    let statuses = StatusLog::default();
    let mut secure = destination("secure", tls.rtmps_url("key-secure-123"));
    secure.ca_file = Some(ca.ca_pem.clone());
    let config = EgressConfig {
        encoder: EncoderSettings { width: 1280, height: 720, fps: 30, video_kbps: 2500, ..Default::default() },
        destinations: vec![destination("plain", plain.rtmp_url("key-plain-456")), secure],
        recording: Some(recording.clone()),
        ..Default::default()
    };
    let cpu0 = common::cpu_time();
    let wall0 = Instant::now();
    let mut egress = Egress::start(config, statuses.sink())?;
    let mut pattern = TestPattern::new(1280, 720, 30);
    let frames = pattern.run_realtime(&mut egress, Duration::from_secs(8), &AtomicBool::new(false))?;
    let live: Vec<_> = egress.statuses().into_iter().filter(|s| s.is_live()).map(|s| s.id).collect();
    let report = egress.stop();
    let cpu = common::cpu_time().saturating_sub(cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    println!("720p30 2.5 Mb/s, 2 RTMP(S) + fMP4, incl. pattern generation: {:.1} % of a core", cpu * 100.0);
    ensure!(live.len() == 3, "not all outputs live while streaming: {live:?}; {:?}", report.outputs);
    ensure!(frames >= 235, "pushed only {frames} frames");

    for (name, server) in [("plain", &plain), ("secure", &tls)] {
        ensure!(server.publish_count() == 1, "{name}: {} publishes", server.publish_count());
        let files = server.recordings();
        ensure!(files.len() == 1, "{name}: recordings {files:?}");
        let p = probe(&files[0])?;
        ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{name}: {p:?}");
        ensure!((p.width, p.height) == (1280, 720), "{name}: size {}x{}", p.width, p.height);
        ensure!((28.5..=31.5).contains(&p.fps()), "{name}: fps {}", p.fps());
        ensure!(p.video_times.len() >= 200, "{name}: only {} frames arrived", p.video_times.len());
        ensure!(p.max_video_gap() < 0.1, "{name}: gap {}", p.max_video_gap());
    }
    let rec = report.recording.expect("recording report");
    let p = probe(&recording)?;
    ensure!(p.video_codec == "h264" && p.audio_codec == "aac" && (p.width, p.height) == (1280, 720), "{p:?}");
    ensure!((p.duration - 8.0).abs() < 0.5, "recording duration {}", p.duration);
    ensure!((rec.duration_secs - 8.0).abs() < 0.5 && rec.size_bytes > 100_000, "{rec:?}");
    for s in report.outputs {
        ensure!(s.state == OutputState::Stopped, "{s:?}");
        ensure!(!s.target.contains("key-plain-456") && !s.target.contains("key-secure-123"), "key leaked: {s:?}");
    }
    Ok(())
}

/// A destination with its own encode settings.
fn with_profile(id: &str, url: String, width: u32, height: u32, fps: u32, video_kbps: u32) -> DestinationConfig {
    let profile = EncoderSettings { width, height, fps, video_kbps, audio_kbps: 96, ..Default::default() };
    DestinationConfig { profile: Some(profile), ..destination(id, url) }
}

#[test]
fn each_distinct_profile_is_encoded_once_and_destinations_asking_the_same_share_it() -> Result<()> {
    let _serial = common::serial();
    let nginx = Nginx::start(NginxOptions::default())?;
    let out = TempDir::new("profiles")?;
    let recording = out.path().join("program.mp4");
    let main = EncoderSettings { width: 1280, height: 720, fps: 30, video_kbps: 2500, ..Default::default() };
    let config = EgressConfig {
        encoder: main.clone(),
        destinations: vec![
            destination("program", nginx.rtmp_url("key-program")),
            // Asking for exactly the program's settings is the program's encode.
            DestinationConfig { profile: Some(main.clone()), ..destination("same", nginx.rtmp_url("key-same")) },
            with_profile("small", nginx.rtmp_url("key-small"), 640, 360, 15, 500),
            with_profile("lean", nginx.rtmp_url("key-lean"), 1280, 720, 30, 1000),
        ],
        recording: Some(recording.clone()),
        ..Default::default()
    };
    let statuses = StatusLog::default();
    let egress = Egress::start(config, statuses.sink())?;
    let control = egress.control();
    let stop = Arc::new(AtomicBool::new(false));
    let feeding = feed(egress, stop.clone());
    let outputs = |e: &backyard_core::egress::EncodeInfo| e.outputs.clone();
    let encodes = control.encodes();
    ensure!(encodes.len() == 3, "three encodes for three distinct settings: {encodes:?}");
    ensure!(outputs(&encodes[0]) == ["recording", "program", "same"], "the program's encode: {:?}", encodes[0]);
    std::thread::sleep(Duration::from_secs(3));
    // While live: one more on an encode that exists, one on settings nobody had, and one leaving its encode.
    control.add_destination(&with_profile("late-small", nginx.rtmp_url("key-late-small"), 640, 360, 15, 500))?;
    control.add_destination(&with_profile("late-480", nginx.rtmp_url("key-late-480"), 854, 480, 30, 800))?;
    let encodes = control.encodes();
    ensure!(encodes.len() == 4, "a new encode only for new settings: {encodes:?}");
    ensure!(outputs(&encodes[1]) == ["small", "late-small"], "joined the same encode: {encodes:?}");
    control.remove_destination("lean")?;
    ensure!(control.encodes().len() == 3, "an encode feeding nothing stops: {:?}", control.encodes());
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Release);
    let (egress, _) = feeding.join().expect("feeder thread");
    let report = egress.stop();
    for s in &report.outputs {
        ensure!(s.state == OutputState::Stopped, "{s:?}");
    }

    // (key, size, fps, video kb/s asked for)
    let expected = [
        ("key-program", (1280, 720), 30.0, 2500.0),
        ("key-same", (1280, 720), 30.0, 2500.0),
        ("key-small", (640, 360), 15.0, 500.0),
        ("key-lean", (1280, 720), 30.0, 1000.0),
        ("key-late-small", (640, 360), 15.0, 500.0),
        ("key-late-480", (854, 480), 30.0, 800.0),
    ];
    for (key, size, fps, kbps) in expected {
        let files = nginx.recordings_of(key);
        ensure!(files.len() == 1, "{key}: one publish, got {files:?}");
        let p = probe(&files[0])?;
        println!(
            "{key}: {}x{} {:.1} fps {:.0} kb/s of video ({} frames)",
            p.width,
            p.height,
            p.fps(),
            p.video_kbps(),
            p.video_times.len()
        );
        ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{key}: {p:?}");
        ensure!((p.width, p.height) == size, "{key}: {}x{}, not {size:?}", p.width, p.height);
        ensure!((p.fps() - fps).abs() < 1.5, "{key}: {:.1} fps, not {fps}", p.fps());
        // x264's rate control is CBR-like over a second-long buffer: well within ±35 % over a few seconds.
        ensure!((p.video_kbps() / kbps - 1.0).abs() < 0.35, "{key}: {:.0} kb/s, not about {kbps}", p.video_kbps());
        ensure!(p.max_video_gap() < 0.15, "{key}: gap {}", p.max_video_gap());
        // An encode started mid-show stamps audio and video on one timeline.
        let (v0, a0) = (p.video_times[0], p.audio_times.first().copied().unwrap_or(f64::MAX));
        ensure!((v0 - a0).abs() < 0.1, "{key}: video starts at {v0}, audio at {a0}");
    }
    let p = probe(&recording)?;
    ensure!((p.width, p.height) == (1280, 720), "the recording takes the program's encode: {p:?}");
    Ok(())
}

#[test]
fn a_destination_that_resolves_to_a_private_address_fails_without_connecting() -> Result<()> {
    let _serial = common::serial();
    let nginx = Nginx::start(NginxOptions::default())?;
    let statuses = StatusLog::default();
    // The same server spelled as users could spell it: the policy looks at the resolved address.
    let mut refused = destination("refused", nginx.rtmp_url("private-key").replace("127.0.0.1", "0x7f.1"));
    refused.address_policy = AddressPolicy::PublicOnly;
    let config = EgressConfig { encoder: small(), destinations: vec![refused], ..Default::default() };
    let mut egress = Egress::start(config, statuses.sink())?;
    let mut pattern = TestPattern::new(640, 360, 30);
    pattern.run_realtime(&mut egress, Duration::from_secs(2), &AtomicBool::new(false))?;
    let report = egress.stop();
    let states: Vec<_> = statuses.all("refused").into_iter().map(|s| s.state).collect();
    ensure!(
        states.iter().any(|s| matches!(s, OutputState::Failed { reason } if reason.contains("not allowed"))),
        "no clear failure: {states:?}"
    );
    ensure!(!states.iter().any(|s| matches!(s, OutputState::Live)), "went live: {states:?}");
    ensure!(nginx.publish_count() == 0, "nginx saw {} publishes", nginx.publish_count());
    ensure!(report.outputs.iter().all(|o| !o.target.contains("private-key")), "{:?}", report.outputs);
    Ok(())
}

#[test]
fn killed_destination_reconnects_and_the_other_has_no_gap() -> Result<()> {
    let _serial = common::serial();
    let mut victim = Nginx::start(NginxOptions::default())?;
    let steady = Nginx::start(NginxOptions::default())?;
    let statuses = StatusLog::default();
    let config = EgressConfig {
        encoder: small(),
        destinations: vec![
            destination("victim", victim.rtmp_url("victim-key-789")),
            destination("steady", steady.rtmp_url("s")),
        ],
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let egress = Egress::start(config, statuses.sink())?;
    let started = Instant::now();
    let feeder = feed(egress, stop.clone());
    ensure!(wait_until(Duration::from_secs(10), || statuses.latest("victim").is_some_and(|s| s.is_live())).is_some());
    std::thread::sleep(Duration::from_secs(3));

    victim.kill();
    let failed = wait_until(Duration::from_secs(10), || {
        statuses.latest("victim").is_some_and(|s| matches!(s.state, OutputState::Reconnecting { .. }))
    });
    ensure!(failed.is_some(), "victim never went to reconnecting: {:?}", statuses.latest("victim"));
    std::thread::sleep(Duration::from_secs(10));
    let back = Instant::now();
    victim.restart()?;
    let relive = wait_until(Duration::from_secs(15), || statuses.live_after("victim", back).is_some());
    ensure!(relive.is_some_and(|d| d <= Duration::from_secs(5)), "victim live again after {relive:?}");
    // Published again for real: nginx saw a second publish and recorded media.
    std::thread::sleep(Duration::from_secs(3));
    ensure!(victim.publish_count() == 2, "victim nginx saw {} publishes in all", victim.publish_count());

    stop.store(true, Ordering::Release);
    // unwrap: the feeder thread only panics if the test pattern does not fit the encoder.
    let (egress, frames) = feeder.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let report = egress.stop();

    let p = probe(&steady.recordings()[0])?;
    ensure!(steady.publish_count() == 1, "steady published {} times", steady.publish_count());
    ensure!(p.max_video_gap() < 0.1, "steady destination has a gap of {} s", p.max_video_gap());
    let expected = frames as f64;
    ensure!(
        (p.video_times.len() as f64) > expected * 0.95 - 60.0,
        "steady got {} frames of {frames} pushed in {elapsed:.1} s",
        p.video_times.len()
    );
    let v = probe(victim.recordings().last().expect("victim recording after restart"))?;
    ensure!(v.video_codec == "h264" && v.video_times.len() > 30, "{v:?}");
    let reasons: Vec<String> = statuses
        .all("victim")
        .into_iter()
        .filter_map(|s| match s.state {
            OutputState::Reconnecting { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    ensure!(!reasons.is_empty() && reasons.iter().all(|r| !r.contains("victim-key-789")), "{reasons:?}");
    ensure!(report.outputs.iter().find(|s| s.id == "victim").is_some_and(|s| s.connects == 2), "{:?}", report.outputs);
    Ok(())
}

#[test]
fn frozen_destination_blocks_neither_others_nor_stop() -> Result<()> {
    let _serial = common::serial();
    let mut frozen = Nginx::start(NginxOptions::default())?;
    let steady = Nginx::start(NginxOptions::default())?;
    let statuses = StatusLog::default();
    let config = EgressConfig {
        // CBR with filler at 16 Mb/s fills the frozen server's socket buffers within seconds, so its sender
        // really blocks in a write (and then in the next handshake) instead of writing into kernel buffers.
        encoder: EncoderSettings { video_kbps: 16_000, ..small() },
        destinations: vec![destination("frozen", frozen.rtmp_url("f")), destination("steady", steady.rtmp_url("s"))],
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let egress = Egress::start(config, statuses.sink())?;
    let feeder = feed(egress, stop.clone());
    ensure!(wait_until(Duration::from_secs(10), || statuses.latest("frozen").is_some_and(|s| s.is_live())).is_some());
    std::thread::sleep(Duration::from_secs(2));
    frozen.freeze()?;
    let frozen_at = Instant::now();
    let detected = wait_until(Duration::from_secs(20), || {
        statuses.latest("frozen").is_some_and(|s| matches!(s.state, OutputState::Reconnecting { .. }))
    });
    println!("frozen server detected after {detected:?}: {:?}", statuses.latest("frozen").map(|s| s.state));
    ensure!(detected.is_some(), "the frozen destination never timed out: {:?}", statuses.latest("frozen"));
    std::thread::sleep(Duration::from_secs(20).saturating_sub(frozen_at.elapsed()));
    let steady_status = statuses.latest("steady").expect("steady status");
    ensure!(steady_status.is_live() && steady_status.bitrate_kbps > 8_000, "{steady_status:?}");
    ensure!(steady_status.dropped_frames == 0, "{steady_status:?}");

    // Still frozen: the frozen sender is stuck in a write or a handshake right now.
    stop.store(true, Ordering::Release);
    let (egress, frames) = feeder.join().unwrap();
    let t = Instant::now();
    let report = egress.stop();
    let stop_took = t.elapsed();
    println!("stop with a frozen destination took {stop_took:?}");
    ensure!(stop_took < Duration::from_secs(5), "stop took {stop_took:?} with a frozen server");
    ensure!(report.outputs.iter().all(|s| s.state == OutputState::Stopped), "{:?}", report.outputs);

    frozen.thaw()?;
    let p = probe(&steady.recordings()[0])?;
    ensure!(p.max_video_gap() < 0.1, "steady has a gap of {} s while the other froze", p.max_video_gap());
    ensure!(p.video_times.len() as f64 > frames as f64 * 0.95 - 60.0, "steady got {} of {frames}", p.video_times.len());
    Ok(())
}

#[test]
fn destination_test_reports_success_rejection_and_untrusted_tls() -> Result<()> {
    let _serial = common::serial();
    let certs = TempDir::new("ca")?;
    let ca = TestCa::create(certs.path())?;
    let open =
        Nginx::start(NginxOptions { tls: Some((ca.cert_pem.clone(), ca.key_pem.clone())), ..Default::default() })?;
    let closed = Nginx::start(NginxOptions { deny_publish: true, ..Default::default() })?;

    let ok = test_destination_with(
        &open.rtmp_url("probe-key"),
        &TestOptions { publish_for: Duration::from_secs(2), ..local() },
    )?;
    ensure!(ok.frames_sent >= 55 && ok.bytes_sent > 10_000, "{ok:?}");
    ensure!(!ok.target.contains("probe-key"), "{ok:?}");
    ensure!(open.publish_count() == 1, "nginx saw {} publishes", open.publish_count());
    let p = probe(&open.recordings()[0])?;
    ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{p:?}");

    let tls_ok = test_destination_with(
        &open.rtmps_url("probe-key-2"),
        &TestOptions { publish_for: Duration::from_secs(1), ca_file: Some(ca.ca_pem.clone()), ..local() },
    )?;
    ensure!(tls_ok.tls_ms.is_some(), "{tls_ok:?}");

    // The system store does not trust the test CA: verification must fail, at the TLS step.
    let untrusted = test_destination_with(&open.rtmps_url("probe-key-3"), &local()).unwrap_err();
    ensure!(matches!(untrusted, DestinationTestError::Tls(_)), "{untrusted:?}");

    let rejected = test_destination_with(&closed.rtmp_url("wrong-key"), &local()).unwrap_err();
    ensure!(matches!(rejected, DestinationTestError::Rejected(_)), "{rejected:?}");
    ensure!(!rejected.to_string().contains("wrong-key"), "{rejected}");
    Ok(())
}

#[test]
fn bad_destination_url_is_refused_up_front() {
    let config = EgressConfig {
        encoder: small(),
        destinations: vec![destination("x", "http://example.com/live/key".into())],
        ..Default::default()
    };
    let err = Egress::start(config, backyard_core::egress::no_status_sink()).err().expect("must refuse");
    assert!(err.to_string().contains("rtmp://"), "{err}");
}

#[test]
fn recording_only_egress_reports_status() -> Result<()> {
    let _serial = common::serial();
    let out = TempDir::new("rec")?;
    let statuses = StatusLog::default();
    let config = EgressConfig { encoder: small(), recording: Some(out.path().join("r.mp4")), ..Default::default() };
    let mut egress = Egress::start(config, statuses.sink())?;
    let mut pattern = TestPattern::new(640, 360, 30);
    pattern.run_realtime(&mut egress, Duration::from_secs(2), &AtomicBool::new(false))?;
    let report = egress.stop();
    ensure!(report.outputs.len() == 1 && report.outputs[0].kind == OutputKind::Recording, "{:?}", report.outputs);
    ensure!(statuses.all("recording").iter().any(OutputStatus::is_live));
    let p = probe(&out.path().join("r.mp4"))?;
    ensure!((p.duration - 2.0).abs() < 0.4, "{p:?}");
    Ok(())
}

/// A TCP relay to `upstream` that forwards client → server at most `bytes_per_sec` (a congested uplink).
fn slow_relay(upstream: u16, bytes_per_sec: usize) -> Result<u16> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            std::thread::spawn(move || {
                let chunk = bytes_per_sec / 20;
                let mut buf = vec![0u8; chunk];
                loop {
                    match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s_write.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    Ok(port)
}

#[test]
fn slow_destination_drops_its_own_frames_only() -> Result<()> {
    let _serial = common::serial();
    let congested = Nginx::start(NginxOptions::default())?;
    let steady = Nginx::start(NginxOptions::default())?;
    // 6 Mb/s of program through a 2 Mb/s relay: that destination cannot keep up.
    let relay = slow_relay(congested.rtmp_port, 250_000)?;
    let statuses = StatusLog::default();
    let config = EgressConfig {
        encoder: EncoderSettings { video_kbps: 6_000, ..small() },
        destinations: vec![
            destination("slow", format!("rtmp://127.0.0.1:{relay}/live/slow")),
            destination("steady", steady.rtmp_url("s")),
        ],
        ..Default::default()
    };
    let mut egress = Egress::start(config, statuses.sink())?;
    let mut pattern = TestPattern::new(640, 360, 30);
    let frames = pattern.run_realtime(&mut egress, Duration::from_secs(15), &AtomicBool::new(false))?;
    let slow_live = statuses.latest("slow");
    let report = egress.stop();
    let slow = report.outputs.iter().find(|s| s.id == "slow").expect("slow status");
    let fast = report.outputs.iter().find(|s| s.id == "steady").expect("steady status");
    println!("slow: {slow_live:?}\nfinal slow: {slow:?}\nsteady: {fast:?}");
    ensure!(slow.dropped_frames > 30, "the congested destination dropped only {} frames", slow.dropped_frames);
    ensure!(fast.dropped_frames == 0 && fast.connects == 1, "{fast:?}");
    let p = probe(&steady.recordings()[0])?;
    ensure!(p.max_video_gap() < 0.1, "steady gap {}", p.max_video_gap());
    ensure!(
        p.video_times.len() as f64 >= frames as f64 * 0.95 - 60.0,
        "steady got {} of {frames}",
        p.video_times.len()
    );
    // What the congested server did get starts on keyframes and decodes.
    let c = probe(congested.recordings().first().expect("congested recording"))?;
    ensure!(c.video_codec == "h264" && !c.video_times.is_empty(), "{c:?}");
    Ok(())
}
