//! `cargo xtask bench sync`: A/V sync over real time. Two sources whose clocks run 0.1 % fast and 0.1 % slow
//! (camera + microphone each, side by side) flash and beep on the same source frame every 10 s; the program
//! pushes to a real nginx-rtmp for `BENCH_SECS` (default 600: the 10 minutes), and the stream nginx
//! recorded is decoded to measure each flash's offset to its beep. Goal: every offset ≤ 40 ms, no drift
//! accumulated from the first minute to the last. Table on stdout, `target/bench/sync.json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use backyard_core::compositor::{CompositorConfig, Fit, Placement, Program, Rect, StageMember};
use backyard_core::egress::{DestinationConfig, EgressConfig, EncoderSettings, VideoFrame, no_status_sink};
use common::{Nginx, NginxOptions};

const W: u32 = 640;
const H: u32 = 360;
const FPS: f64 = 30.0;
/// Each source flashes and beeps once per this many source seconds, at its own phase.
const EVERY: f64 = 10.0;

struct Source {
    id: &'static str,
    /// Source clock rate relative to real time.
    rate: f64,
    /// Source second (within each period) of the flash + beep.
    phase: f64,
    /// Columns of the 16×9 analysis grid covering its tile.
    columns: std::ops::Range<usize>,
}

fn main() -> Result<()> {
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(600.0);
    let sources = [
        Source { id: "fast", rate: 1.001, phase: 2.0, columns: 1..7 },
        Source { id: "slow", rate: 0.999, phase: 7.0, columns: 9..15 },
    ];
    let nginx = Nginx::start(NginxOptions::default())?;
    let program = Program::start(CompositorConfig { width: W, height: H, ..Default::default() }, 30)?;
    program.set_stage(sources.iter().map(|s| StageMember { id: s.id.into(), name: s.id.into() }).collect());
    program
        .set_placements(
            sources
                .iter()
                .enumerate()
                .map(|(i, s)| Placement {
                    source: s.id.into(),
                    rect: Rect::new(i as i32 * W as i32 / 2, 0, W / 2, H),
                    z: 0,
                    fit: Fit::Cover,
                })
                .collect(),
        )
        .map_err(anyhow::Error::msg)?;
    program.go_live(
        EgressConfig {
            encoder: EncoderSettings { width: W, height: H, fps: 30, video_kbps: 800, ..Default::default() },
            destinations: vec![DestinationConfig {
                id: "nginx".into(),
                url: nginx.rtmp_url("sync"),
                ca_file: None,
                profile: None,
                constraints: Default::default(),
                address_policy: backyard_core::egress::AddressPolicy::Any,
                canvas: 0,
            }],
            ..Default::default()
        },
        no_status_sink(),
    )?;
    println!("pushing two sources (clocks +0.1 % and -0.1 %) for {secs:.0} s ...");
    let start = Instant::now();
    // Next source frame (30 per source second) of each source; each frame carries 1600 samples of audio.
    let mut next = [0u64; 2];
    loop {
        let now = start.elapsed().as_secs_f64();
        if now >= secs {
            break;
        }
        // The source whose next frame is due first (in real time: source time / rate).
        let (i, due) = (0..2)
            .map(|i| (i, next[i] as f64 / FPS / sources[i].rate))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("two sources");
        if let Some(wait) = (start + Duration::from_secs_f64(due)).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let s = &sources[i];
        let n = next[i];
        let t = n as f64 / FPS;
        let period_frame = ((s.phase * FPS) as u64, (EVERY * FPS) as u64);
        let flash = n % period_frame.1 == period_frame.0;
        let source_time = Duration::from_secs_f64(t);
        program.push_frame(s.id, VideoFrame::filled(320, 180, [if flash { 235 } else { 30 }, 128, 128]), source_time);
        let first = n as usize * 1600;
        let beep_start = (s.phase * 48_000.0) as usize;
        let chunk: Vec<f32> = (first..first + 1600)
            .flat_map(|k| {
                let in_beep = k >= beep_start && (k - beep_start) % (EVERY as usize * 48_000) < 4_800;
                let v = if in_beep { 0.6 * (k as f32 * 0.13).sin().signum() } else { 0.0 };
                [v, v]
            })
            .collect();
        program.push_samples(s.id, chunk, source_time);
        next[i] += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let stats = program.stats();
    program.end_live();
    drop(program);

    let recorded = nginx.recordings();
    ensure!(!recorded.is_empty(), "nginx recorded nothing");
    let file = &recorded[0];
    let mut rows = Vec::new();
    for s in &sources {
        let (flashes, beeps) = common::flashes_and_beeps(file, Some(s.columns.clone()))?;
        for f in flashes {
            // Beeps of both sources are in one mix; the other source's are ~5 s away.
            let offset = beeps.iter().map(|b| b - f).min_by(|a, b| a.abs().total_cmp(&b.abs()));
            rows.push((s.id, f, offset.map(|o| o * 1000.0)));
        }
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!();
    println!("{:<6} {:>10} {:>12}", "source", "at (s)", "beep - flash");
    for (id, at, off) in &rows {
        match off {
            Some(ms) => println!("{id:<6} {at:>10.1} {ms:>9.1} ms"),
            None => println!("{id:<6} {at:>10.1} {:>12}", "no beep"),
        }
    }
    let offsets: Vec<f64> = rows.iter().filter_map(|r| r.2).collect();
    let worst = offsets.iter().copied().map(f64::abs).fold(0.0, f64::max);
    let minute = |from: f64, to: f64| {
        let v: Vec<f64> = rows.iter().filter(|r| r.1 >= from && r.1 < to).filter_map(|r| r.2).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let (first, last) = (minute(0.0, 60.0), minute(secs - 60.0, secs + 10.0));
    println!(
        "{} flashes; worst |offset| {worst:.1} ms (goal ≤ 40 ms); mean offset first minute {:?} ms, last minute {:?} ms; skipped ticks {}",
        rows.len(),
        first.map(|v| (v * 10.0).round() / 10.0),
        last.map(|v| (v * 10.0).round() / 10.0),
        stats.skipped_ticks
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({
        "secs": secs,
        "clock_rates": sources.iter().map(|s| (s.id, s.rate)).collect::<Vec<_>>(),
        "flashes": rows.iter().map(|(id, at, off)| serde_json::json!({"source": id, "at": at, "offset_ms": off})).collect::<Vec<_>>(),
        "worst_abs_offset_ms": worst,
        "mean_offset_first_minute_ms": first,
        "mean_offset_last_minute_ms": last,
        "skipped_ticks": stats.skipped_ticks,
    });
    std::fs::write(out.join("sync.json"), serde_json::to_string_pretty(&json)?)?;
    println!("wrote target/bench/sync.json");
    Ok(())
}
