//! `cargo xtask bench latency`: how late a picture is where people see it, read from a frame counter drawn
//! into the picture. An RTMP encoder (the bench's own publisher, so it knows when each packet left) sends a
//! 1280×720 clip whose every frame carries its number as ten black/white blocks, paced by the clip's clock:
//!
//! - **RTMP → studio**: the encoder is a source in the studio; a str0m client in the studio receives its
//!   video over WebRTC and decodes it. Once with H.264 without B-frames (forwarded as it is) and once with
//!   OBS's default x264 settings (B-frames: decoded and encoded once more for browsers).
//! - **Program → WHEP viewer**: the OBS-like source goes on stage, the show goes live open to viewers, and a
//!   str0m WHEP viewer decodes the program and reads the counter inside the source's tile.
//!
//! Latency is from the moment the packet carrying a picture left the encoder to the moment that picture was
//! decoded at the receiver, on loopback. With B-frames it includes the stream's own reordering (a picture
//! can be shown only after the later one it depends on has arrived: up to two frames here). A new receiver's
//! downlink estimate starts below a 2.5 Mb/s stream and the server paces at 1.1× the estimate, so the table
//! gives the median of the first 10 s and of the rest apart. Prints a table and writes
//! `target/bench/latency.json`; `BENCH_SECS` sets each measured phase (default 20 s).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backyard::bus::topic;
use backyard_core::compositor::{VideoCodec, VideoDecoder};
use backyard_core::media::VideoFrame;
use common::rtc::{Endpoint, StudioClient};
use common::rtmp::{Publisher, read_flv};
use common::{Backend, Cookies, TestApp};
use serde_json::{Value, json};
use str0m::media::{Direction, MediaKind};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;
/// The counter: bit `i` is the block at x in [LEFT + i·BLOCK_W, LEFT + (i+1)·BLOCK_W), y in [TOP, TOP +
/// BLOCK_H), in source pixels, across the middle of the picture (a tile that crops the picture keeps it).
const BITS: u32 = 10;
const BLOCK_W: u32 = 96;
const BLOCK_H: u32 = 48;
const LEFT: u32 = 160;
const TOP: u32 = (H - BLOCK_H) / 2;
/// What is not measured at the start of a phase (the first keyframe, the receiver's start).
const WARM_UP: Duration = Duration::from_secs(3);

/// A clip of `secs` seconds with the counter and a tone, encoded by ffmpeg with `x264` settings, as FLV.
fn clip(dir: &Path, name: &str, secs: u64, x264: &[&str]) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.flv"));
    let counter = format!(
        "testsrc2=size={W}x{H}:rate={FPS},format=yuv420p,geq=lum='if(between(Y,{TOP},{bottom})*between(X,{LEFT},{right}),if(mod(floor(N/pow(2,floor((X-{LEFT})/{BLOCK_W}))),2),235,16),lum(X,Y))':cb='cb(X,Y)':cr='cr(X,Y)'",
        bottom = TOP + BLOCK_H - 1,
        right = LEFT + BITS * BLOCK_W - 1,
    );
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", &counter, "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={secs}"))
        .args(["-t", &secs.to_string(), "-c:v", "libx264", "-preset", "veryfast"])
        .args(x264)
        .args(["-b:v", "2500k", "-g", "60", "-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "160k", "-f", "flv"])
        .arg(&path)
        .status()
        .context("run ffmpeg")?;
    ensure!(status.success(), "ffmpeg could not make {}", path.display());
    Ok(path)
}

/// When each picture (by its number in the clip) left the encoder.
type Sent = Arc<Mutex<Vec<Option<Instant>>>>;

/// Publishes the clip to `key`, each tag at its time on the clip's clock, noting when each picture left.
fn publish(addr: SocketAddr, key: String, clip: &Path, sent: Sent) -> Result<std::thread::JoinHandle<Result<()>>> {
    let tags = read_flv(&std::fs::read(clip)?)?;
    Ok(std::thread::spawn(move || {
        let mut publisher = Publisher::connect(addr, "live", &key)?;
        let start = Instant::now();
        for tag in &tags {
            let due = start + Duration::from_millis(tag.ms.into());
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tag.kind == 8 {
                publisher.audio(tag.ms, &tag.body)?;
                continue;
            }
            publisher.video(tag.ms, &tag.body)?;
            // An AVC picture (packet type 1): its presentation time is the tag's time plus the composition offset.
            if tag.body.len() > 5 && tag.body[1] == 1 {
                let cts = i32::from_be_bytes([0, tag.body[2], tag.body[3], tag.body[4]]) << 8 >> 8;
                let pts = i64::from(tag.ms) + i64::from(cts);
                let n = ((pts * i64::from(FPS) + 500) / 1000) as usize;
                let mut sent = sent.lock().expect("not poisoned");
                if sent.len() <= n {
                    sent.resize(n + 1, None);
                }
                sent[n] = Some(Instant::now());
            }
        }
        Ok(())
    }))
}

/// Where the counter is in what a receiver decodes: a source picture scaled by `scale` and moved by `(dx, dy)`.
#[derive(Clone, Copy)]
struct Mapping {
    scale: f64,
    dx: f64,
    dy: f64,
}

impl Mapping {
    const SAME: Mapping = Mapping { scale: 1.0, dx: 0.0, dy: 0.0 };

    /// A source of W×H drawn to cover a tile (scaled to fill it, centred, the overflow cut).
    fn cover(x: f64, y: f64, width: f64, height: f64) -> Mapping {
        let scale = (width / f64::from(W)).max(height / f64::from(H));
        Mapping { scale, dx: x - (f64::from(W) * scale - width) / 2.0, dy: y - (f64::from(H) * scale - height) / 2.0 }
    }

    fn read(&self, frame: &VideoFrame) -> Option<u32> {
        let (y_plane, _, _) = frame.planes();
        let y = (self.dy + (f64::from(TOP) + f64::from(BLOCK_H) / 2.0) * self.scale) as u32;
        let mut value = 0;
        for bit in 0..BITS {
            let x = (self.dx + f64::from(LEFT + bit * BLOCK_W + BLOCK_W / 2) * self.scale) as u32;
            let luma = *y_plane.get((y * frame.width() + x) as usize)?;
            if luma > 128 {
                value |= 1 << bit;
            }
        }
        Some(value)
    }
}

/// Milliseconds from a picture leaving the encoder to its decode here: `counter` is matched with the latest
/// picture of that number sent before now (the counter wraps every 2^BITS pictures).
fn latency(sent: &Sent, counter: u32, now: Instant) -> Option<f64> {
    let sent = sent.lock().expect("not poisoned");
    let (_, at) = sent
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(n, at)| at.map(|at| (n, at)))
        .find(|(n, at)| *at <= now && (*n as u32) % (1 << BITS) == counter)?;
    let ms = now.duration_since(at).as_secs_f64() * 1000.0;
    // A wrong read (a block caught mid-change) matches a picture a whole loop earlier: not a latency.
    (ms < 2000.0).then_some(ms)
}

/// Decodes the H.264 a receiver gets and reads the counter of each picture after the warm-up.
struct Receiver {
    decoder: VideoDecoder,
    pictures: usize,
    first: Option<Instant>,
    /// (since the first picture, latency in ms) per picture read.
    latencies: Vec<(Duration, f64)>,
    misreads: usize,
}

impl Receiver {
    fn new() -> Result<Receiver> {
        Ok(Receiver {
            decoder: VideoDecoder::new(VideoCodec::H264)?,
            pictures: 0,
            first: None,
            latencies: Vec::new(),
            misreads: 0,
        })
    }

    fn frame(&mut self, data: &[u8], sent: &Sent, mapping: Mapping) {
        let Ok(pictures) = self.decoder.decode(data) else { return };
        let now = Instant::now();
        for picture in pictures {
            self.pictures += 1;
            let first = *self.first.get_or_insert(now);
            if now.duration_since(first) < WARM_UP {
                continue;
            }
            match mapping.read(&picture).and_then(|c| latency(sent, c, now)) {
                Some(ms) => self.latencies.push((now.duration_since(first), ms)),
                None => self.misreads += 1,
            }
        }
    }

    fn done(&self, secs: u64) -> bool {
        self.first.is_some_and(|f| f.elapsed() >= WARM_UP + Duration::from_secs(secs))
    }
}

/// Where a receiver has caught up: latencies after this much time since its first picture are "settled".
const SETTLED: Duration = Duration::from_secs(10);

/// Median, p90 and worst over the phase, the medians before and after [`SETTLED`], and how many pictures
/// were read.
struct Summary {
    median: f64,
    p90: f64,
    max: f64,
    early_median: Option<f64>,
    settled_median: Option<f64>,
    pictures: usize,
    misreads: usize,
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

fn summary(r: Receiver) -> Result<Summary> {
    ensure!(!r.latencies.is_empty(), "no counter was read back from {} pictures", r.pictures);
    let all = sorted(r.latencies.iter().map(|(_, ms)| *ms).collect());
    let early = sorted(r.latencies.iter().filter(|(t, _)| *t < SETTLED).map(|(_, ms)| *ms).collect());
    let settled = sorted(r.latencies.iter().filter(|(t, _)| *t >= SETTLED).map(|(_, ms)| *ms).collect());
    Ok(Summary {
        median: percentile(&all, 0.5).unwrap_or_default(),
        p90: percentile(&all, 0.9).unwrap_or_default(),
        max: all.last().copied().unwrap_or_default(),
        early_median: percentile(&early, 0.5),
        settled_median: percentile(&settled, 0.5),
        pictures: all.len(),
        misreads: r.misreads,
    })
}

/// A broadcast with a source ingest key, the encoder publishing `clip` to it, and the encoder's participant id.
struct Show {
    id: String,
    participant: String,
    sent: Sent,
    encoder: std::thread::JoinHandle<Result<()>>,
}

async fn show(t: &TestApp, host: &Cookies, addr: SocketAddr, title: &str, clip: &Path) -> Result<Show> {
    let r = t.post("/api/broadcasts").cookies(host).json(json!({"title": title, "settings": {"watch": "unlisted"}}));
    let created = r.send().await;
    ensure!(created.status.is_success(), "create the broadcast: {}", created.body);
    let id = created.body["id"].as_str().context("broadcast id")?.to_owned();
    let key = t
        .post(&format!("/api/broadcasts/{id}/ingest-keys"))
        .cookies(host)
        .json(json!({"label": "Encoder", "mode": "source"}))
        .send()
        .await;
    ensure!(key.status.is_success(), "create the ingest key: {}", key.body);
    let key = key.body["key"].as_str().context("ingest key")?.to_owned();
    let mut room = t.state.bus.subscribe(&topic::broadcast(id.parse()?));
    let sent = Sent::default();
    let encoder = publish(addr, key, clip, sent.clone())?;
    let participant = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ev = room.recv().await.context("room events")?;
            if ev.event == "participant-joined" {
                return ev.data["participant"]["id"].as_str().map(str::to_owned).context("participant id");
            }
        }
    })
    .await
    .context("the encoder never joined the studio")??;
    Ok(Show { id, participant, sent, encoder })
}

/// RTMP → studio: a str0m client in the studio decodes the source's video for `secs`.
async fn studio(t: &TestApp, show: &Show, secs: u64) -> Result<Summary> {
    let hub = backyard::signaling::Hub::get(&t.state).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut studio = StudioClient::join(&hub.media, &show.id, "latency-bench").await?;
    let mut rx = Receiver::new()?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while !rx.done(secs) {
        ensure!(Instant::now() < deadline, "the studio decoded {} pictures", rx.pictures);
        let (wake, media) = studio.poll().await?;
        for (stream, d) in media {
            if stream == show.participant && d.params.spec().codec == str0m::format::Codec::H264 {
                rx.frame(&d.data, &show.sent, Mapping::SAME);
            }
        }
        studio.endpoint.receive(wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(10))).await?;
    }
    drop(studio);
    summary(rx)
}

/// Program → WHEP: the source alone on stage, live, watched by a str0m WHEP viewer for `secs`.
async fn program(t: &TestApp, host: &Cookies, show: &Show, secs: u64) -> Result<Summary> {
    let mut room = t.state.bus.subscribe(&topic::broadcast(show.id.parse()?));
    let scene = json!({"stage": [show.participant], "layout": "solo"});
    let r = t.req(axum::http::Method::PUT, &format!("/api/broadcasts/{}/scene", show.id)).cookies(host).json(scene);
    let put = r.send().await;
    ensure!(put.status.is_success(), "scene: {}", put.body);
    let live = t.post(&format!("/api/broadcasts/{}/start", show.id)).cookies(host).send().await;
    ensure!(live.status.is_success(), "go live: {}", live.body);
    // Where the program draws the source: the tile the director placed.
    let tile = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ev = room.recv().await.context("room events")?;
            if ev.event != "stage-layout" {
                continue;
            }
            let tiles = ev.data["tiles"].as_array().cloned().unwrap_or_default();
            if let Some(tile) = tiles.into_iter().find(|t| t["participantId"] == show.participant.as_str()) {
                return anyhow::Ok(tile);
            }
        }
    })
    .await
    .context("the program never placed the source")??;
    let num = |v: &Value| v.as_f64().context("a tile number");
    let mapping = Mapping::cover(num(&tile["x"])?, num(&tile["y"])?, num(&tile["width"])?, num(&tile["height"])?);

    let mut viewer = Endpoint::new().await?;
    let mut api = viewer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().context("an offer")?;
    let endpoint = format!("/api/watch/{}/whep", show.id);
    let r = t.post(&endpoint).raw("application/sdp", offer.to_sdp_string().into_bytes()).send().await;
    ensure!(r.status.is_success(), "WHEP: {} {}", r.status, String::from_utf8_lossy(&r.bytes));
    let answer = str0m::change::SdpAnswer::from_sdp_string(&String::from_utf8_lossy(&r.bytes))?;
    viewer.rtc.sdp_api().accept_answer(pending, answer)?;
    let mut rx = Receiver::new()?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while !rx.done(secs) {
        ensure!(Instant::now() < deadline, "the WHEP viewer decoded {} pictures", rx.pictures);
        let (wake, evs) = viewer.drive().await?;
        for e in evs {
            if let str0m::Event::MediaData(d) = e
                && d.params.spec().codec == str0m::format::Codec::H264
            {
                rx.frame(&d.data, &show.sent, mapping);
            }
        }
        viewer.receive(wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(10))).await?;
    }
    let end = t.post(&format!("/api/broadcasts/{}/end", show.id)).cookies(host).send().await;
    ensure!(end.status.is_success(), "end: {}", end.body);
    summary(rx)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("backyard-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("making the clips ({}x{} at {FPS} fps, counter and tone)", W, H);
    let plain = clip(&dir, "plain", secs + 20, &["-profile:v", "main", "-bf", "0"])?;
    let obs = clip(&dir, "obs", 2 * secs + 30, &["-profile:v", "high", "-bf", "2"])?;

    let t = TestApp::with(Backend::Sqlite, |cfg| {
        cfg.ingest.rtmp_bind = Some("127.0.0.1:0".into());
        // A release build looks for the first-party plugins only where an installation keeps them.
        cfg.plugins.dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")];
    })
    .await;
    let addr = backyard::ingest::start(&t.state).await?.context("the ingest is on")?;
    let host = t.user("latency@example.com").await;

    println!("RTMP → studio, H.264 without B-frames (forwarded as it is), {secs} s");
    let a = show(&t, &host, addr, "Forwarded", &plain).await?;
    let forwarded = studio(&t, &a, secs).await?;
    println!("RTMP → studio, OBS's x264 defaults (B-frames: transcoded for browsers), {secs} s");
    let b = show(&t, &host, addr, "Transcoded", &obs).await?;
    let transcoded = studio(&t, &b, secs).await?;
    println!("program → WHEP viewer, the OBS-like source alone on stage, {secs} s");
    let whep = program(&t, &host, &b, secs).await?;
    for s in [a, b] {
        match s.encoder.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("the encoder failed: {e:#}"),
            Err(_) => bail!("the encoder panicked"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    let rows = [
        ("RTMP → studio (WebRTC), forwarded", &forwarded, 400.0),
        ("RTMP → studio (WebRTC), transcoded", &transcoded, 400.0),
        ("RTMP → program → WHEP viewer", &whep, 500.0),
    ];
    println!();
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    println!(
        "| path | median ms | p90 ms | max ms | median, first 10 s | median, after | pictures read | misreads | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, s, goal) in &rows {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | ≤ {goal:.0} ms |",
            s.median,
            s.p90,
            s.max,
            ms(s.early_median),
            ms(s.settled_median),
            s.pictures,
            s.misreads
        );
    }
    let json = json!({
        "secs": secs,
        "rows": rows.iter().map(|(name, s, goal)| json!({
            "path": name, "median_ms": s.median, "p90_ms": s.p90, "max_ms": s.max,
            "median_first_10s_ms": s.early_median, "median_after_10s_ms": s.settled_median,
            "pictures": s.pictures, "misreads": s.misreads, "goal_ms": goal,
        })).collect::<Vec<_>>(),
    });
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("latency.json"), serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to target/bench/latency.json");
    Ok(())
}
