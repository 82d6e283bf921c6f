//! The fMP4 recording survives `kill -9` of the process writing it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use backyard_core::egress::{Egress, EgressConfig, EncoderSettings, TestPattern, no_status_sink};
use common::{TempDir, probe, wait_until};

const CHILD_ENV: &str = "BACKYARD_EGRESS_RECORD_TO";

/// Not a test on its own: the body of the child process that `recording_survives_kill_9` starts (this
/// same test binary, filtered to this function). It records the test pattern until it is killed.
#[test]
#[ignore = "helper process for recording_survives_kill_9"]
fn recording_child_process() {
    let Some(path) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let config = EgressConfig {
        encoder: EncoderSettings { width: 640, height: 360, fps: 30, video_kbps: 800, ..Default::default() },
        recording: Some(path.clone()),
        ..Default::default()
    };
    let mut egress = Egress::start(config, no_status_sink()).expect("start egress");
    std::fs::write(path.with_extension("started"), b"").expect("write marker");
    let mut pattern = TestPattern::new(640, 360, 30);
    pattern.run_realtime(&mut egress, Duration::from_secs(120), &AtomicBool::new(false)).expect("feed");
}

#[test]
fn recording_survives_kill_9() -> Result<()> {
    let dir = TempDir::new("kill9")?;
    let path = dir.path().join("program.mp4");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["recording_child_process", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn child")?;
    let marker = path.with_extension("started");
    let started = wait_until(Duration::from_secs(30), || marker.exists());
    ensure!(started.is_some(), "child never started recording");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(7));
    child.kill()?; // SIGKILL
    let wall = t0.elapsed().as_secs_f64();
    child.wait()?;
    let p = probe(&path)?;
    ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{p:?}");
    ensure!((p.duration - wall).abs() <= 3.0, "file plays {:.2} s, recorded for {wall:.2} s", p.duration);
    ensure!(p.video_times.len() as f64 >= (wall - 3.0) * 30.0, "only {} frames", p.video_times.len());
    Ok(())
}
