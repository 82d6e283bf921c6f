//! The viewers' HLS stream: CMAF segments cut from the program's one encode, a rolling playlist that names
//! them with their wall-clock time, old segments deleted as the playlist moves on, and an end mark when the
//! program stops. Read back with ffprobe.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use backyard_core::egress::{Egress, EgressConfig, EncoderSettings, OutputKind, OutputStatus, TestPattern};
use common::{TempDir, probe};

fn segments_in(dir: &std::path::Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".m4s"))
        .collect();
    names.sort();
    Ok(names)
}

#[test]
fn the_program_is_cut_into_a_rolling_hls_stream_that_ffprobe_reads() -> Result<()> {
    let tmp = TempDir::new("hls")?;
    let dir = tmp.path().join("stream");
    let statuses: Arc<Mutex<Vec<OutputStatus>>> = Arc::default();
    let seen = Arc::clone(&statuses);
    let config = EgressConfig {
        encoder: EncoderSettings {
            width: 640,
            height: 360,
            fps: 30,
            video_kbps: 800,
            keyframe_interval: Duration::from_secs(1),
            ..Default::default()
        },
        hls: Some(dir.clone()),
        ..Default::default()
    };
    let mut egress = Egress::start(config, Arc::new(move |s: &OutputStatus| seen.lock().unwrap().push(s.clone())))?;
    let mut pattern = TestPattern::new(640, 360, 30);
    pattern.run_realtime(&mut egress, Duration::from_secs(10), &AtomicBool::new(false))?;

    let playlist = std::fs::read_to_string(dir.join("index.m3u8"))?;
    ensure!(playlist.contains("#EXT-X-MAP:URI=\"init.mp4\""), "no init segment in\n{playlist}");
    ensure!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:"), "no wall-clock times in\n{playlist}");
    ensure!(!playlist.contains("#EXT-X-ENDLIST"), "ended while live:\n{playlist}");
    let listed: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".m4s")).collect();
    ensure!(listed.len() == 6, "the playlist should keep 6 segments, lists {}:\n{playlist}", listed.len());
    for name in &listed {
        ensure!(dir.join(name).exists(), "{name} is listed but not on disk");
    }
    // Ten one-second segments were written; the folder keeps the listed ones and one more at most.
    let on_disk = segments_in(&dir)?;
    ensure!(on_disk.len() <= listed.len() + 2, "old segments are not deleted: {on_disk:?}");
    ensure!(!on_disk.contains(&"seg-00000.m4s".to_owned()), "the first segment is still there: {on_disk:?}");
    for line in playlist.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
        let secs: f64 = line.trim_end_matches(',').parse()?;
        ensure!((0.9..=1.1).contains(&secs), "segment of {secs} s with a 1 s keyframe interval:\n{playlist}");
    }

    let report = egress.stop();
    let hls = report.outputs.iter().find(|o| o.kind == OutputKind::Hls).expect("an hls output");
    ensure!(hls.connects == 1, "{hls:?}");
    ensure!(statuses.lock().unwrap().iter().any(|s| s.kind == OutputKind::Hls && s.is_live()), "never reported live");
    let ended = std::fs::read_to_string(dir.join("index.m3u8"))?;
    ensure!(ended.contains("#EXT-X-ENDLIST"), "no end mark after stop:\n{ended}");
    // Read once ended (a player of a live playlist waits for the next segment).
    let p = probe(&dir.join("index.m3u8"))?;
    ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{p:?}");
    ensure!((p.width, p.height) == (640, 360), "{p:?}");
    ensure!(p.video_times.len() >= 150, "only {} frames in the playlist's window", p.video_times.len());
    Ok(())
}
