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

/// Starts this test binary again as a child running only the helper `test`, told where to record by `env`,
/// and waits until it has started recording (it writes `<path>.started`).
fn start_child(test: &str, env: &str, path: &std::path::Path) -> Result<std::process::Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([test, "--exact", "--ignored", "--nocapture"])
        .env(env, path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn child")?;
    let marker = path.with_extension("started");
    if wait_until(Duration::from_secs(60), || marker.exists()).is_none() {
        let _ = child.kill();
        anyhow::bail!("child never started recording");
    }
    Ok(child)
}

#[test]
fn recording_survives_kill_9() -> Result<()> {
    let dir = TempDir::new("kill9")?;
    let path = dir.path().join("program.mp4");
    let mut child = start_child("recording_child_process", CHILD_ENV, &path)?;
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

const SOURCE_CHILD_ENV: &str = "BACKYARD_SOURCE_RECORD_TO";

/// One packet of a clip: is video, time in seconds, keyframe, bytes.
type ClipPacket = (bool, f64, bool, Vec<u8>);

/// H.264 (Annex B, the parameter sets before each keyframe, as a browser or an encoder sends them) and Opus
/// packets of a `secs`-long clip made by ffmpeg.
fn h264_opus_packets(dir: &std::path::Path, secs: u32) -> Result<Vec<ClipPacket>> {
    let video = dir.join("clip.h264");
    let audio = dir.join("clip.webm");
    for args in [
        vec!["-f", "lavfi", "-i", "testsrc=s=640x360:r=30", "-t"],
        vec!["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t"],
    ] {
        let is_video = args[3].starts_with("testsrc");
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y"]).args(args).arg(secs.to_string());
        if is_video {
            cmd.args(["-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-g", "30"]);
            cmd.args(["-bsf:v", "dump_extra=freq=keyframe"]);
            cmd.args(["-f", "h264"]).arg(&video);
        } else {
            cmd.args(["-c:a", "libopus", "-ac", "2", "-frame_duration", "20"]).arg(&audio);
        }
        let out = cmd.output().context("run ffmpeg")?;
        ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    }
    ffmpeg_next::init()?;
    let mut packets = Vec::new();
    for (path, is_video) in [(&video, true), (&audio, false)] {
        let mut input = ffmpeg_next::format::input(path)?;
        let mut n = 0u32;
        for (stream, packet) in input.packets() {
            let Some(data) = packet.data() else { continue };
            let t = if is_video {
                f64::from(n) / 30.0
            } else {
                packet.pts().unwrap_or(0) as f64 * f64::from(stream.time_base())
            };
            n += 1;
            packets.push((is_video, t.max(0.0), packet.is_key(), data.to_vec()));
        }
    }
    packets.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(packets)
}

/// Not a test on its own: the body of the child process that
/// `a_participant_s_h264_recording_is_matroska_on_the_program_s_timeline_and_survives_kill_9` starts. It
/// records an H.264 + Opus participant in real time, two seconds into the show, until it is killed.
#[test]
#[ignore = "helper process for a_participant_s_h264_recording_is_matroska_on_the_program_s_timeline_and_survives_kill_9"]
fn source_recording_child_process() {
    use backyard_core::compositor::EncodedMedia;
    use backyard_core::compositor::VideoCodec;
    use backyard_core::egress::{ProgramTimeline, SourceRecording};
    let Some(stem) = std::env::var_os(SOURCE_CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let dir = stem.parent().expect("a folder").to_path_buf();
    let packets = h264_opus_packets(&dir, 20).expect("a clip");
    let timeline = std::sync::Arc::new(ProgramTimeline::default());
    // On air since program time 0; the participant's media arrive at once (offset 0), 2 s into the show.
    timeline.set_live_since(Some(Duration::ZERO));
    let recording = SourceRecording::start(stem.clone(), true, timeline, Duration::from_millis(100)).expect("start");
    std::fs::write(stem.with_extension("started"), b"").expect("write marker");
    let start = Instant::now();
    for (video, t, key, data) in packets {
        let at = Duration::from_secs_f64(2.0 + t);
        if let Some(wait) = Duration::from_secs_f64(t).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let media = match video {
            true => EncodedMedia::Video { codec: VideoCodec::H264, data },
            false => EncodedMedia::Opus { data },
        };
        recording.push(media, key, at, at);
    }
}

#[test]
fn a_participant_s_h264_recording_is_matroska_on_the_program_s_timeline_and_survives_kill_9() -> Result<()> {
    let dir = TempDir::new("own-recording-kill9")?;
    let stem = dir.path().join("participant");
    let mut child = start_child("source_recording_child_process", SOURCE_CHILD_ENV, &stem)?;
    std::thread::sleep(Duration::from_secs(6));
    child.kill()?; // SIGKILL
    child.wait()?;
    let path = stem.with_extension("mkv");
    ensure!(!stem.with_extension("webm").exists(), "H.264 goes into Matroska, not WebM");
    let p = probe(&path)?;
    ensure!((p.video_codec.as_str(), p.audio_codec.as_str(), p.width, p.height) == ("h264", "opus", 640, 360), "{p:?}");
    let (first, last) = backyard_core::egress::media_span(&path).context("the file's span")?;
    // Stamped 2 s in, shown after the program's 100 ms playout delay: that is where the file starts.
    ensure!((first - 2.1).abs() < 0.01, "the file starts at {first:.3} s on the program's timeline");
    ensure!(last - first > 3.0, "{:.2} s kept of ~6 s written before the kill", last - first);
    ensure!(p.video_times.len() >= 90, "only {} pictures", p.video_times.len());
    Ok(())
}
