//! The program end to end minus WebRTC: sources → compositor thread → egress → nginx-rtmp, checked by
//! decoding what nginx recorded: each source's colour in the rectangle it was placed in, a live layout
//! switch without a second publish, and a stalled source turning into its name card.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use backyard_core::compositor::{CompositorConfig, Fit, OverlayLayer, Placement, Program, Rect, StageMember, blit};
use backyard_core::egress::{DestinationConfig, EgressConfig, EncoderSettings, VideoFrame, no_status_sink};
use common::{Nginx, NginxOptions, probe};

const W: u32 = 640;
const H: u32 = 360;

/// Luma of the decoded frame nearest to `at` seconds in `path`.
fn luma_at(path: &std::path::Path, at: f64) -> Result<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at:.2}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .context("run ffmpeg")?;
    ensure!(
        out.status.success() && out.stdout.len() == (W * H) as usize,
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

/// ffmpeg's `gray` output is full range: limited-range Y 16..235 maps onto 0..255.
fn full(y: f64) -> f64 {
    (y - 16.0) * 255.0 / 219.0
}

/// Mean luma of a rectangle's inner part (away from scaled edges).
fn mean(luma: &[u8], r: Rect) -> f64 {
    let (x0, y0) = (r.x as u32 + r.width / 4, r.y as u32 + r.height / 4);
    let (x1, y1) = (r.x as u32 + r.width * 3 / 4, r.y as u32 + r.height * 3 / 4);
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            sum += luma[(y * W + x) as usize] as u64;
        }
    }
    sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
}

fn tiles(left: &str, right: &str) -> Vec<Placement> {
    vec![
        Placement { source: left.into(), rect: Rect::new(0, 0, W / 2, H), z: 0, fit: Fit::Cover },
        Placement { source: right.into(), rect: Rect::new(W as i32 / 2, 0, W / 2, H), z: 0, fit: Fit::Cover },
    ]
}

#[test]
fn program_places_sources_switches_layout_live_and_shows_name_cards() -> Result<()> {
    let _serial = common::serial();
    let nginx = Nginx::start(NginxOptions::default())?;
    let program = Arc::new(Program::start(CompositorConfig { width: W, height: H, ..Default::default() }, 30)?);
    program.set_stage(vec![
        StageMember { id: "ann".into(), name: "Ann".into() },
        StageMember { id: "bob".into(), name: "Bob".into() },
    ]);
    program.set_placements(tiles("ann", "bob")).map_err(anyhow::Error::msg)?;
    // A lower third: an opaque white band along the bottom.
    let band = Rect::new(0, H as i32 - 40, W, 40);
    program
        .set_overlays(vec![OverlayLayer {
            id: "lower-third".into(),
            rect: band,
            rgba: [255u8; 4].repeat((W * 40) as usize),
            z: 1,
        }])
        .map_err(anyhow::Error::msg)?;

    // Two camera-like sources: Ann bright, Bob dark; Bob's camera stops after 9 s.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (program, stop) = (program.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u32 = 0;
            while !stop.load(Ordering::Acquire) {
                let t = Duration::from_secs_f64(n as f64 / 30.0);
                if let Some(wait) = (start + t).checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                program.push_frame("ann", VideoFrame::filled(320, 240, [200, 128, 128]), t);
                if t < Duration::from_secs(9) {
                    program.push_frame("bob", VideoFrame::filled(320, 240, [50, 128, 128]), t);
                }
                program.push_samples("ann", vec![0.1; 1600 * 2], t);
                n += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let config = EgressConfig {
        encoder: EncoderSettings { width: W, height: H, fps: 30, video_kbps: 1000, ..Default::default() },
        destinations: vec![DestinationConfig {
            id: "n".into(),
            url: nginx.rtmp_url("program"),
            ca_file: None,
            profile: None,
            constraints: Default::default(),
            address_policy: backyard_core::egress::AddressPolicy::Any,
        }],
        ..Default::default()
    };
    program.go_live(config, no_status_sink())?;
    std::thread::sleep(Duration::from_secs(4));
    program.set_placements(tiles("bob", "ann")).map_err(anyhow::Error::msg)?;
    // Bob stops at 9.5 s of program time; the card shows once stall_after (1.5 s) has passed.
    std::thread::sleep(Duration::from_secs(9));
    let report = program.end_live().context("egress report")?;
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
    ensure!(report.outputs.len() == 1, "{:?}", report.outputs);

    ensure!(nginx.publish_count() == 1, "layout switch caused {} publishes", nginx.publish_count());
    let file = &nginx.recordings()[0];
    let p = probe(file)?;
    ensure!(p.video_codec == "h264" && p.audio_codec == "aac" && (p.width, p.height) == (W, H), "{p:?}");
    // Bob's camera stopping does not stop the program: frames keep coming at 30 fps through the stall.
    ensure!((p.fps() - 30.0).abs() < 1.0, "fps {} across the stalled camera", p.fps());
    ensure!(p.max_video_gap() < 0.1, "a {:.3} s gap in the program's frames", p.max_video_gap());
    ensure!(
        p.video_times.last().copied().unwrap_or(0.0) > 12.0,
        "the program ran on past the stall: {:?} s",
        p.video_times.last()
    );
    let [left, right] = [tiles("", "")[0].rect, tiles("", "")[1].rect];

    let before = luma_at(file, 2.0)?;
    let (l, r) = (mean(&before, left), mean(&before, right));
    ensure!(
        (l - full(200.0)).abs() < 12.0 && (r - full(50.0)).abs() < 12.0,
        "before switch: left {l:.0}, right {r:.0}"
    );

    let lower_third = band_mean(&before, Rect::new(8, H as i32 - 36, W - 16, 32));
    ensure!((lower_third - full(235.0)).abs() < 12.0, "lower third luma {lower_third:.0}");

    let after = luma_at(file, 6.5)?;
    let (l, r) = (mean(&after, left), mean(&after, right));
    ensure!((l - full(50.0)).abs() < 12.0 && (r - full(200.0)).abs() < 12.0, "after switch: left {l:.0}, right {r:.0}");

    let card = luma_at(file, 12.0)?;
    let expected = full(blit::card_colour("Bob")[0] as f64);
    // Sample the card away from its avatar disc: the top quarter of Bob's (left) tile.
    let band = Rect::new(left.x + 8, 8, left.width - 16, 40);
    let got = band_mean(&card, band);
    ensure!((got - expected).abs() < 12.0, "name card luma {got:.0}, expected {expected}");
    let r = mean(&card, right);
    ensure!((r - full(200.0)).abs() < 12.0, "Ann still live on the right: {r:.0}");
    Ok(())
}

fn band_mean(luma: &[u8], r: Rect) -> f64 {
    let mut sum = 0u64;
    for y in r.y as u32..(r.y as u32 + r.height) {
        for x in r.x as u32..(r.x as u32 + r.width) {
            sum += luma[(y * W + x) as usize] as u64;
        }
    }
    sum as f64 / (r.width * r.height) as f64
}

#[test]
fn flash_and_beep_arrive_within_40ms_in_the_rtmp_output() -> Result<()> {
    let _serial = common::serial();
    let nginx = Nginx::start(NginxOptions::default())?;
    let program = Arc::new(Program::start(CompositorConfig { width: W, height: H, ..Default::default() }, 30)?);
    program.set_stage(vec![StageMember { id: "s".into(), name: "Sync".into() }]);
    program
        .set_placements(vec![Placement { source: "s".into(), rect: Rect::new(0, 0, W, H), z: 0, fit: Fit::Cover }])
        .map_err(anyhow::Error::msg)?;
    let config = EgressConfig {
        encoder: EncoderSettings { width: W, height: H, fps: 30, video_kbps: 1000, ..Default::default() },
        destinations: vec![DestinationConfig {
            id: "n".into(),
            url: nginx.rtmp_url("sync"),
            ca_file: None,
            profile: None,
            constraints: Default::default(),
            address_policy: backyard_core::egress::AddressPolicy::Any,
        }],
        ..Default::default()
    };
    program.go_live(config, no_status_sink())?;
    // A camera + microphone: every 2 s (from 1 s) one white frame, and a 100 ms beep starting with it.
    let start = Instant::now();
    for n in 0..(11 * 30u32) {
        let t = Duration::from_secs_f64(n as f64 / 30.0);
        if let Some(wait) = (start + t).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let flash = n >= 30 && n % 60 == 30;
        program.push_frame("s", VideoFrame::filled(320, 180, [if flash { 235 } else { 30 }, 128, 128]), t);
        // 1600 samples = this frame's 33.3 ms of audio.
        let first = n as usize * 1600;
        let chunk: Vec<f32> = (first..first + 1600)
            .flat_map(|i| {
                let in_beep = i >= 48_000 && (i - 48_000) % 96_000 < 4_800;
                let v = if in_beep { 0.6 * (i as f32 * 0.13).sin().signum() } else { 0.0 };
                [v, v]
            })
            .collect();
        program.push_samples("s", chunk, t);
    }
    std::thread::sleep(Duration::from_millis(500));
    program.end_live().context("egress report")?;

    let (flashes, beeps) = common::flashes_and_beeps(&nginx.recordings()[0], None)?;
    println!("flashes {flashes:?}\nbeeps   {beeps:?}");
    ensure!(flashes.len() >= 4, "only {} flashes arrived", flashes.len());
    for f in &flashes {
        let nearest = beeps.iter().map(|b| b - f).min_by(|a, b| a.abs().total_cmp(&b.abs()));
        ensure!(nearest.is_some_and(|d| d.abs() <= 0.040), "flash at {f:.3}: nearest beep offset {nearest:?}");
    }
    Ok(())
}
