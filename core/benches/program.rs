//! `cargo xtask bench program`: the program at 720p30 (four VP8 720p tiles, lower third + logo, x264
//! veryfast 3 Mb/s + AAC) pushing to real nginx-rtmp servers and recording fMP4, then the ffmpeg CLI doing
//! the same composite from the same encoded inputs, one after the other (that pair twice, interleaved). Prints a
//! table and writes `target/bench/program.json`. `BENCH_SECS` sets each phase's length (default 120 s).
//!
//! The four inputs arrive as they would from cameras: four str0m publishers send them over WebRTC (loopback)
//! to a media node whose tap feeds the program, and the live preview (VP8) is encoded as if a host watched.
//! CPU is read per thread from /proc and grouped by thread name, so WebRTC receive (the node's runtime),
//! decode, the program thread (compose, overlays, mix, encoder calls), x264's own threads, the senders and
//! recorder (mux + network), and the preview are told apart; the publishers are not counted.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/router_support/mod.rs"]
mod router_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use backyard_core::compositor::{
    CompositorConfig, Fit, OverlayLayer, Placement, PreviewPacket, PreviewSink, Program, Rect, StageMember,
};
use backyard_core::egress::{DestinationConfig, EgressConfig, EncoderSettings, OutputStatus, no_status_sink};
use backyard_core::rtc::{MediaNode, NodeConfig};
use common::{Nginx, NginxOptions, TempDir};
use router_support::{Packet, Publisher};

const W: u32 = 1280;
const H: u32 = 720;

/// Reads the frames of an IVF file (VP8 elementary stream).
fn read_ivf(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)?;
    ensure!(data.len() > 32 && &data[..4] == b"DKIF", "not IVF");
    let header = u16::from_le_bytes([data[6], data[7]]) as usize;
    let mut frames = Vec::new();
    let mut at = header;
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        at += 12;
        ensure!(at + size <= data.len(), "truncated IVF");
        frames.push(data[at..at + size].to_vec());
        at += size;
    }
    Ok(frames)
}

fn make_inputs(dir: &Path) -> Result<Vec<PathBuf>> {
    // Input 0 carries its frame number as ten black/white blocks along its top edge, so the receiver can
    // tell which source frame it is looking at (added latency).
    let counter = format!(
        "testsrc2=size=1280x720:rate=30,format=yuv420p,geq=lum='if(lt(Y,{COUNTER_H}),if(mod(floor(N/pow(2,floor(X/{COUNTER_W}))),2),235,16),lum(X,Y))':cb='cb(X,Y)':cr='cr(X,Y)'"
    );
    let sources = [
        counter.as_str(),
        "smptebars=size=1280x720:rate=30",
        "mandelbrot=size=1280x720:rate=30",
        "rgbtestsrc=size=1280x720:rate=30",
    ];
    let mut out = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let path = dir.join(format!("in{i}.ivf"));
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                src,
                "-t",
                "10",
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
            ])
            .args(["-cpu-used", "8", "-b:v", "1500k", "-g", "60", "-pix_fmt", "yuv420p"])
            .arg(&path)
            .status()?;
        ensure!(status.success(), "ffmpeg could not make {}", path.display());
        out.push(path);
    }
    Ok(out)
}

/// A lower third and a round logo, on a `width`×`height` canvas.
fn overlays(width: u32, height: u32) -> Vec<OverlayLayer> {
    let lower = Rect::new(40, height as i32 - 140, 700.min(width - 80), 90);
    let mut rgba = Vec::with_capacity((lower.width * lower.height * 4) as usize);
    for _ in 0..lower.height {
        for x in 0..lower.width {
            rgba.extend_from_slice(&[20, 40, 160, if x < 8 { 255 } else { 220 }]);
        }
    }
    let logo = Rect::new(width as i32 - 180, 30, 150, 150);
    let mut logo_px = Vec::with_capacity((150 * 150 * 4) as usize);
    for y in 0..150i32 {
        for x in 0..150i32 {
            let inside = (x - 75).pow(2) + (y - 75).pow(2) < 70 * 70;
            logo_px.extend_from_slice(&[240, 200, 40, if inside { 255 } else { 0 }]);
        }
    }
    vec![
        OverlayLayer { id: "lower-third".into(), rect: lower, rgba, z: 1 },
        OverlayLayer { id: "logo".into(), rect: logo, rgba: logo_px, z: 2 },
    ]
}

/// The frame counter of input 0: bit `i` is the block at x in [i·W, (i+1)·W), y < H, in source pixels.
const COUNTER_W: u32 = 96;
const COUNTER_H: u32 = 48;
const COUNTER_BITS: u32 = 10;

/// Watches what nginx relays (an ffmpeg player, low-delay flags) and reads input 0's frame counter in the
/// top-left tile (the source scaled by ½): (when the frame arrived here, the counter). Stop it by killing
/// the returned player (nginx keeps a player's connection open after the publisher leaves).
/// What the latency watcher saw: (when a frame arrived here, the counter it showed).
type Seen = std::thread::JoinHandle<Vec<(Instant, u32)>>;

fn watch_counter(url: &str) -> Result<(std::process::Child, Seen)> {
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32768"])
        .args(["-analyzeduration", "0", "-i", url, "-an", "-vf", &format!("scale={W}:{H}")])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start the ffmpeg player")?;
    let mut out = child.stdout.take().context("piped stdout")?;
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = Vec::new();
        let mut frame = vec![0u8; (W * H) as usize];
        while out.read_exact(&mut frame).is_ok() {
            let at = Instant::now();
            // Tile 0 is the top-left quarter; the source is scaled by ½ into it.
            let y = COUNTER_H / 4;
            let mut value = 0u32;
            for bit in 0..COUNTER_BITS {
                let x = (bit * COUNTER_W + COUNTER_W / 2) / 2;
                if frame[(y * W + x) as usize] > 128 {
                    value |= 1 << bit;
                }
            }
            seen.push((at, value));
        }
        seen
    });
    Ok((child, reader))
}

/// Added latency per frame seen at the receiver: from pushing source frame `n` (counter `n % frames`) into
/// the program to seeing it decoded from nginx, matched with the latest push of that counter before it.
fn latencies(sent: &[Instant], seen: &[(Instant, u32)], frames: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for &(at, counter) in seen {
        let pushed = sent
            .iter()
            .enumerate()
            .rev()
            .find(|(n, t)| **t <= at && (*n % frames) as u32 == counter % (1 << COUNTER_BITS));
        if let Some((_, t)) = pushed {
            let ms = at.duration_since(*t).as_secs_f64() * 1000.0;
            // A wrong read (a block mid-transition) matches a push a whole loop earlier: not a latency.
            if ms < 2000.0 {
                out.push(ms);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

struct Phase {
    name: String,
    stats: Option<backyard_core::compositor::ProgramStats>,
    /// CPU of the program's own stages (WebRTC receive and publishers excluded), cores.
    cores: f64,
    /// Cores by thread group (program phases only).
    groups: BTreeMap<&'static str, f64>,
    ticks_per_sec: f64,
    /// Ticks skipped while measured (the program fell behind real time).
    skipped: u64,
    statuses: Vec<OutputStatus>,
    /// Added latency camera (publisher send) → decoded from nginx, ms, sorted.
    latency_ms: Vec<f64>,
    /// Live preview bytes per second.
    preview_bps: f64,
}

/// Thread groups that are the program's stages (what the ffmpeg CLI's work is compared with).
const STAGES: [&str; 5] = ["decode", "program thread", "x264 threads", "mux + send", "preview"];

fn group(comm: &str) -> &'static str {
    match comm {
        c if c.starts_with("webrtc-rx") => "webrtc receive",
        c if c.starts_with("decode-") => "decode",
        "program" => "program thread",
        c if c.starts_with("x264") => "x264 threads",
        c if c.starts_with("egress-") => "mux + send",
        "program-preview" => "preview",
        c if c.starts_with("publishers") => "publishers",
        _ => "other",
    }
}

/// CPU time (user + system) of each of this process's threads: tid → (name, time).
fn thread_cpu() -> HashMap<u64, (String, Duration)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u64>() else { continue };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3, utime 14, stime 15 (clock ticks of 10 ms).
        let ticks: u64 = [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<u64>().ok()).sum();
        out.insert(tid, (comm, Duration::from_millis(ticks * 10)));
    }
    out
}

/// Cores used per thread group between two snapshots over `wall`.
fn groups_between(
    before: &HashMap<u64, (String, Duration)>,
    after: &HashMap<u64, (String, Duration)>,
    wall: Duration,
) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    for (tid, (comm, t)) in after {
        let t0 = before.get(tid).map_or(Duration::ZERO, |(_, t)| *t);
        *out.entry(group(comm)).or_insert(0.0) += t.saturating_sub(t0).as_secs_f64() / wall.as_secs_f64();
    }
    out
}

/// The preview as if a host watched: always wanted, a keyframe asked for at the start, bytes counted.
#[derive(Default)]
struct CountingPreview {
    bytes: AtomicU64,
    asked: std::sync::atomic::AtomicBool,
}

impl PreviewSink for CountingPreview {
    fn watched(&self) -> bool {
        true
    }
    fn take_keyframe_request(&self) -> bool {
        !self.asked.swap(true, Ordering::Relaxed)
    }
    fn send(&self, frame: PreviewPacket) {
        self.bytes.fetch_add(frame.data.len() as u64, Ordering::Relaxed);
    }
}

/// One program phase: `inputs` publishers in the room, the first `on_stage` of them on stage (the 2×2 grid shows
/// the first four), pushing to `servers` while recording to `rec`.
/// The destinations' own encodes in the profiles phases: the program's (720p, 3000 kb/s), 720p at 1500 kb/s,
/// and 360p at 800 kb/s; three encodes in all.
fn profiles() -> Vec<Option<EncoderSettings>> {
    let at = |width, height, video_kbps| EncoderSettings { width, height, fps: 30, video_kbps, ..Default::default() };
    vec![None, Some(at(W, H, 1500)), Some(at(640, 360, 800))]
}

fn run_program(inputs: &[Vec<Vec<u8>>], on_stage: usize, servers: &[&Nginx], secs: u64, rec: &Path) -> Result<Phase> {
    run_program_with(inputs, on_stage, servers, &[], (W, H), false, secs, rec)
}

/// The four tiles of a 2×2 grid filling a `width`×`height` canvas.
fn grid(ids: &[String], width: u32, height: u32) -> Vec<Placement> {
    let (hw, hh) = (width / 2, height / 2);
    ids.iter()
        .take(4)
        .enumerate()
        .map(|(i, id)| Placement {
            source: id.clone(),
            rect: Rect::new((i as u32 % 2 * hw) as i32, (i as u32 / 2 * hh) as i32, hw, hh),
            z: 0,
            fit: Fit::Cover,
        })
        .collect()
}

/// As [`run_program`] on a `canvas`-sized program, destination `i` asking for `profiles[i]` (the program's
/// encode when absent). With `vertical`, the program composes a second, 9:16 canvas (the main one turned, its own
/// grid and overlays) and the last destination streams it.
#[allow(clippy::too_many_arguments)]
fn run_program_with(
    inputs: &[Vec<Vec<u8>>],
    on_stage: usize,
    servers: &[&Nginx],
    profiles: &[Option<EncoderSettings>],
    canvas: (u32, u32),
    vertical: bool,
    secs: u64,
    rec: &Path,
) -> Result<Phase> {
    let (width, height) = canvas;
    let program = Arc::new(Program::start(CompositorConfig { width, height, ..Default::default() }, 30)?);
    let ids: Vec<String> = (0..inputs.len()).map(|i| format!("p{i}")).collect();
    program.set_stage(ids.iter().take(on_stage).map(|id| StageMember { id: id.clone(), name: id.clone() }).collect());
    program.set_placements(grid(&ids, width, height)).map_err(anyhow::Error::msg)?;
    program.set_overlays(overlays(width, height)).map_err(anyhow::Error::msg)?;
    let tall = (height, width);
    if vertical {
        program.set_canvases(vec![tall]).map_err(anyhow::Error::msg)?;
        program.set_placements_on(1, grid(&ids, tall.0, tall.1)).map_err(anyhow::Error::msg)?;
        program.set_overlays_on(1, overlays(tall.0, tall.1)).map_err(anyhow::Error::msg)?;
    }
    let preview = Arc::new(CountingPreview::default());
    program.set_preview_sink(Some(preview.clone()));

    // The cameras: four publishers over WebRTC into a media node whose tap feeds the program.
    let media_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("webrtc-rx").enable_all().build()?;
    let pub_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("publishers").enable_all().build()?;
    let node = media_rt.block_on(MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse()?)))?;
    router_support::tap_into(&node, "bench", &program);
    let mut publishers = Vec::new();
    for (id, frames) in ids.iter().zip(inputs) {
        let packets: Vec<Packet> = frames
            .iter()
            .enumerate()
            .map(|(n, data)| Packet { video: true, pts: n as f64 / 30.0, data: data.clone() })
            .collect();
        let clip = (packets, frames.len() as f64 / 30.0);
        publishers.push(pub_rt.block_on(Publisher::join_on(&node, Some(media_rt.handle()), "bench", id, clip))?);
    }
    for id in ids.iter().take(on_stage) {
        node.request_keyframes("bench", id);
    }
    let decoding =
        common::wait_until(Duration::from_secs(30), || program.stats().decoded_frames > on_stage as u64 * 60);
    ensure!(decoding.is_some(), "the on-stage WebRTC inputs did not start decoding: {:?}", program.stats());

    let config = EgressConfig {
        encoder: EncoderSettings {
            width,
            height,
            fps: 30,
            video_kbps: if width > W { 6000 } else { 3000 },
            ..Default::default()
        },
        destinations: servers
            .iter()
            .enumerate()
            .map(|(i, s)| DestinationConfig {
                id: format!("d{i}"),
                url: s.rtmp_url(&format!("bench{i}")),
                ca_file: None,
                profile: profiles.get(i).cloned().flatten(),
                constraints: Default::default(),
                address_policy: backyard_core::egress::AddressPolicy::Any,
                canvas: usize::from(vertical && i + 1 == servers.len()),
            })
            .collect(),
        canvases: if vertical { vec![tall] } else { Vec::new() },
        recording: Some(rec.to_owned()),
        ..Default::default()
    };
    // Opened on a thread named "x264" so the encoder's own threads (which take their creator's name) are
    // counted as encode.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("x264".into())
            .spawn_scoped(scope, || program.go_live(config, no_status_sink()))
            .map_err(anyhow::Error::from)?
            .join()
            .map_err(|_| anyhow::anyhow!("go_live panicked"))?
            .map_err(anyhow::Error::from)
    })?;
    let (mut player, watcher) = watch_counter(&servers[0].rtmp_url("bench0"))?;
    let stats0 = program.stats();
    let preview0 = preview.bytes.load(Ordering::Relaxed);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = start.elapsed();
    let groups = groups_between(&cpu0, &thread_cpu(), wall);
    let preview_bps = (preview.bytes.load(Ordering::Relaxed) - preview0) as f64 * 8.0 / wall.as_secs_f64();
    let stats = program.stats();
    let report = program.end_live().context("end live")?;
    let sent = publishers[0].sent.lock().clone();
    for p in publishers {
        pub_rt.block_on(p.leave())?;
    }
    node.set_tap("bench", None);
    program.set_preview_sink(None);
    drop(program);
    drop(node);
    media_rt.shutdown_background();
    pub_rt.shutdown_background();
    let _ = player.kill();
    let _ = player.wait();
    let seen = watcher.join().unwrap_or_default();
    // The player's first seconds (connect, probe, first keyframe) are not steady state.
    let steady: Vec<(Instant, u32)> = seen.into_iter().filter(|(at, _)| *at > start + Duration::from_secs(3)).collect();
    let encodes = if profiles.iter().any(Option::is_some) { ", 3 encodes" } else { "" };
    let mut size = if canvas == (W, H) { String::new() } else { format!(", {width}x{height}") };
    if vertical {
        size.push_str(" + 9:16 canvas");
    }
    Ok(Phase {
        name: format!("program, {} RTMP + fMP4, {on_stage} of {} on stage{encodes}{size}", servers.len(), inputs.len()),
        skipped: stats.skipped_ticks - stats0.skipped_ticks,
        cores: STAGES.iter().map(|g| groups.get(g).copied().unwrap_or(0.0)).sum(),
        groups,
        ticks_per_sec: (stats.ticks - stats0.ticks) as f64 / wall.as_secs_f64(),
        stats: Some(stats),
        statuses: report.outputs,
        latency_ms: latencies(&sent, &steady, inputs[0].len()),
        preview_bps,
    })
}

/// Children's CPU time (user + system) from /proc/self/stat (cutime + cstime).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t: u64 =
        f.get(13).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(14).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(t * 10)
}

fn run_ffmpeg(inputs: &[PathBuf], servers: &[&Nginx], secs: u64, rec: &Path) -> Result<Phase> {
    run_ffmpeg_with(inputs, servers, CliJob::OneEncode, secs, rec)
}

/// What the ffmpeg CLI is asked to do beside composing the four inputs.
#[derive(Clone, Copy, PartialEq)]
enum CliJob {
    /// One encode for every output.
    OneEncode,
    /// As [`profiles`] says: one filter graph split into three outputs, two of them scaled or at another bitrate,
    /// each its own x264 + AAC encode.
    Profiles,
    /// Two formats: the inputs composed at 16:9 for the first destinations and the recording, and again at 9:16
    /// (each input scaled and cropped to its tall tile) for the last destination, each its own encode.
    Dual,
}

/// The ffmpeg CLI doing the program's job, as `job` says.
fn run_ffmpeg_with(inputs: &[PathBuf], servers: &[&Nginx], job: CliJob, secs: u64, rec: &Path) -> Result<Phase> {
    let profiles = job == CliJob::Profiles;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    for i in inputs {
        cmd.args(["-re", "-stream_loop", "-1", "-c:v", "libvpx", "-i"]).arg(i);
    }
    cmd.args(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]);
    let filter = "[0:v]scale=640:360[a];[1:v]scale=640:360[b];[2:v]scale=640:360[c];[3:v]scale=640:360[d];\
                  [a][b][c][d]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0[g];\
                  [g]drawbox=x=40:y=580:w=700:h=90:color=0x1428a0@0.86:t=fill,drawbox=x=1100:y=30:w=150:h=150:color=0xf0c828:t=fill[v]";
    let tee: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("[f=flv]{}", s.rtmp_url(&format!("ffmpeg{i}"))))
        .chain(std::iter::once(format!("[f=mp4:movflags=frag_keyframe+empty_moov+default_base_moof]{}", rec.display())))
        .collect();
    let encode = |cmd: &mut Command, video: &str, kbps: u32| {
        let rate = format!("{kbps}k");
        cmd.args(["-map", video, "-map", "4:a"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", &rate, "-maxrate", &rate])
            .args(["-bufsize", &rate, "-g", "60", "-c:a", "aac", "-b:a", "128k", "-t", &secs.to_string()])
            .args(["-flags", "+global_header"]);
    };
    if job == CliJob::Dual && servers.len() == 3 {
        // Each input split in two: a 16:9 tile for the wide grid, a 9:16 one (scaled and cropped) for the tall grid.
        let mut graph = String::new();
        for i in 0..4 {
            graph.push_str(&format!(
                "[{i}:v]split=2[w{i}][t{i}];[w{i}]scale=640:360[a{i}];[t{i}]scale=-2:640,crop=360:640[b{i}];"
            ));
        }
        graph.push_str(
            "[a0][a1][a2][a3]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0[g];\
             [g]drawbox=x=40:y=580:w=700:h=90:color=0x1428a0@0.86:t=fill,drawbox=x=1100:y=30:w=150:h=150:color=0xf0c828:t=fill[v];\
             [b0][b1][b2][b3]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0[gt];\
             [gt]drawbox=x=40:y=1140:w=640:h=90:color=0x1428a0@0.86:t=fill,drawbox=x=540:y=30:w=150:h=150:color=0xf0c828:t=fill[vt]",
        );
        cmd.args(["-filter_complex", &graph]);
        encode(&mut cmd, "[v]", 3000);
        cmd.args(["-f", "tee", &[tee[0].clone(), tee[1].clone(), tee[3].clone()].join("|")]);
        encode(&mut cmd, "[vt]", 3000);
        cmd.args(["-f", "flv"]).arg(servers[2].rtmp_url("ffmpeg2"));
    } else if profiles && servers.len() == 3 {
        let split = format!("{filter};[v]split=3[v0][v1][v2x];[v2x]scale=640:360[v2]");
        cmd.args(["-filter_complex", &split]);
        encode(&mut cmd, "[v0]", 3000);
        cmd.args(["-f", "tee", &[tee[0].clone(), tee[3].clone()].join("|")]);
        encode(&mut cmd, "[v1]", 1500);
        cmd.args(["-f", "flv"]).arg(servers[1].rtmp_url("ffmpeg1"));
        encode(&mut cmd, "[v2]", 800);
        cmd.args(["-f", "flv"]).arg(servers[2].rtmp_url("ffmpeg2"));
    } else {
        cmd.args(["-filter_complex", filter]);
        encode(&mut cmd, "[v]", 3000);
        cmd.args(["-f", "tee", &tee.join("|")]);
    }
    cmd.stdin(Stdio::null());
    let cpu0 = children_cpu();
    let start = Instant::now();
    let status = cmd.status().context("run ffmpeg")?;
    ensure!(status.success(), "ffmpeg CLI failed");
    let cores = children_cpu().saturating_sub(cpu0).as_secs_f64() / start.elapsed().as_secs_f64();
    Ok(Phase {
        name: format!(
            "ffmpeg CLI, {} RTMP + fMP4{}",
            servers.len(),
            match job {
                CliJob::OneEncode => "",
                CliJob::Profiles => ", 3 encodes",
                CliJob::Dual => " + 9:16 canvas",
            }
        ),
        stats: None,
        cores,
        groups: BTreeMap::new(),
        ticks_per_sec: 30.0,
        skipped: 0,
        statuses: Vec::new(),
        latency_ms: Vec::new(),
        preview_bps: 0.0,
    })
}

/// Mean time of one call of the first-party grid layout for four participants, µs.
fn layout_call_us() -> Option<f64> {
    use backyard_core::plugin_host::{self as ph, HostConfig, PluginHost};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    let host = PluginHost::start(HostConfig { dirs: vec![dir], ..HostConfig::default() }).ok()?;
    let mut layout = host.layout("layouts").ok()?;
    let stage = ph::Stage {
        layout: "grid".into(),
        canvas: ph::Size { width: W, height: H },
        participants: (0..4)
            .map(|i| ph::Participant {
                id: format!("p{i}"),
                name: format!("Person {i}"),
                speaking: i == 0,
                screen_share: false,
                video_enabled: true,
            })
            .collect(),
        active_speaker: Some("p0".into()),
    };
    layout.place(&stage).ok()?;
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        layout.place(&stage).ok()?;
    }
    Some(t.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

fn main() -> Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let dir = TempDir::new("bench-program")?;
    println!("preparing four VP8 720p inputs ...");
    let paths = make_inputs(dir.path())?;
    let inputs: Vec<Vec<Vec<u8>>> = paths.iter().map(|p| read_ivf(p)).collect::<Result<_>>()?;
    let servers: Vec<Nginx> = (0..3).map(|_| Nginx::start(NginxOptions::default())).collect::<Result<_>>()?;
    let all: Vec<&Nginx> = servers.iter().collect();

    let one = run_program(&inputs, 4, &all[..1], secs, &dir.path().join("p1.mp4"))?;
    // The comparison with the ffmpeg CLI runs twice, interleaved (program, CLI, program, CLI): this VM's speed
    // drifts by more than the difference being measured, and alternating cancels a steady drift.
    let three = run_program(&inputs, 4, &all, secs, &dir.path().join("p3.mp4"))?;
    let cli = run_ffmpeg(&paths, &all, secs, &dir.path().join("ffmpeg.mp4"))?;
    let three_again = run_program(&inputs, 4, &all, secs, &dir.path().join("p3b.mp4"))?;
    let cli_again = run_ffmpeg(&paths, &all, secs, &dir.path().join("ffmpeg-b.mp4"))?;
    let ratio = (three.cores + three_again.cores) / (cli.cores + cli_again.cores);
    // Six people in the room, four on stage: the two backstage are not decoded. Against it, the same room with
    // all six on stage (decoded, the grid still showing four): what decoding everyone in the room used to cost.
    // Three destinations asking for three different encodes, against the CLI doing the same.
    let profiled = run_program_with(&inputs, 4, &all, &profiles(), (W, H), false, secs, &dir.path().join("pp.mp4"))?;
    // 1080p30, one destination: does it hold real time on this machine?
    let full_hd =
        run_program_with(&inputs, 4, &all[..1], &[], (1920, 1080), false, secs, &dir.path().join("p1080.mp4"))?;
    let cli_profiled = run_ffmpeg_with(&paths, &all, CliJob::Profiles, secs, &dir.path().join("ffmpeg-p.mp4"))?;
    // Two formats: 16:9 for two destinations and the recording, 9:16 for the third; against the CLI doing the same.
    let dual = run_program_with(&inputs, 4, &all, &[], (W, H), true, secs, &dir.path().join("pd.mp4"))?;
    let cli_dual = run_ffmpeg_with(&paths, &all, CliJob::Dual, secs, &dir.path().join("ffmpeg-d.mp4"))?;
    let six: Vec<Vec<Vec<u8>>> = (0..6).map(|i| inputs[i % inputs.len()].clone()).collect();
    let six_all = run_program(&six, 6, &all[..1], secs, &dir.path().join("p6a.mp4"))?;
    let six_four = run_program(&six, 4, &all[..1], secs, &dir.path().join("p6f.mp4"))?;

    let layout_us = layout_call_us();
    println!();
    println!("{:<62} {:>8} {:>10} {:>8}", "phase (720p30 unless said, 4×VP8 720p in)", "cores", "ticks/s", "skipped");
    let phases = [
        &one,
        &three,
        &cli,
        &three_again,
        &cli_again,
        &profiled,
        &cli_profiled,
        &dual,
        &cli_dual,
        &full_hd,
        &six_all,
        &six_four,
    ];
    for p in phases {
        println!("{:<62} {:>8.3} {:>10.1} {:>8}", p.name, p.cores, p.ticks_per_sec, p.skipped);
    }
    println!(
        "1080p30: {:.3} cores, {:.1} ticks/s, {} ticks skipped in {secs} s: {}",
        full_hd.cores,
        full_hd.ticks_per_sec,
        full_hd.skipped,
        if full_hd.skipped == 0 { "holds real time" } else { "does not hold real time" }
    );
    let decode = |p: &Phase| p.groups.get("decode").copied().unwrap_or(0.0);
    println!(
        "6 in the room, 4 on stage: decode {:.3} cores (all 6 decoded: {:.3}), program {:.3} cores (all 6: {:.3})",
        decode(&six_four),
        decode(&six_all),
        six_four.cores,
        six_all.cores
    );
    println!("  (program: its stages only; WebRTC receive is below, the publishers are not counted)");
    println!();
    println!("{:<34} {:>8} {:>8} {:>12}", "cores by thread group", "1 dest", "3 dests", "ms / frame");
    let names: std::collections::BTreeSet<&str> = one.groups.keys().chain(three.groups.keys()).copied().collect();
    for g in names {
        let (a, b) = (one.groups.get(g).copied().unwrap_or(0.0), three.groups.get(g).copied().unwrap_or(0.0));
        // CPU per output frame at 30 fps (3 destinations).
        println!("{:<34} {:>8.3} {:>8.3} {:>12.2}", g, a, b, b * 1000.0 / 30.0);
    }
    let per_destination = (three.cores - one.cores) / 2.0;
    // What a destination adds is its sender thread (mux + socket writes); the difference of the totals above
    // also carries the phases' noise.
    let mux = |p: &Phase| p.groups.get("mux + send").copied().unwrap_or(0.0);
    let per_sender = (mux(&three) - mux(&one)) / 2.0;
    println!();
    println!(
        "each extra destination: {:.2} % of a core by its sender thread, {:.2} % by the difference of the totals (goal ≤ 0.5 %)",
        per_sender * 100.0,
        per_destination * 100.0
    );
    println!(
        "program / ffmpeg CLI: {ratio:.2}× over both pairs (first pair {:.2}×, second {:.2}×; goal ≤ 0.85×)",
        three.cores / cli.cores,
        three_again.cores / cli_again.cores
    );
    let shared = (three.cores + three_again.cores) / 2.0;
    println!(
        "three destinations on three encodes (720p 3000, 720p 1500, 360p 800 kb/s): {:.3} cores, {:.2}× the CLI doing the same; {:.3} cores more than the three sharing one encode ({:.1} % of a core per extra encode)",
        profiled.cores,
        profiled.cores / cli_profiled.cores,
        profiled.cores - shared,
        (profiled.cores - shared) * 50.0
    );
    println!(
        "two formats (16:9 to two destinations + recording, 9:16 to one): {:.3} cores, {:.2}× the CLI doing the same (goal ≤ 0.8×); {:.2}× the one-canvas program with three destinations (goal ≤ 1.4×); {} ticks skipped",
        dual.cores,
        dual.cores / cli_dual.cores,
        dual.cores / shared,
        dual.skipped
    );
    if let Some(st) = &three.stats {
        println!();
        println!("per-stage time (wall time on the stage's thread, 3 destinations):");
        println!("  decode   {:>7.2} ms per input frame ({} frames)", st.decode_ms, st.decoded_frames);
        match layout_us {
            Some(us) => println!(
                "  layout   {:>7.3} ms per call (grid, 4 people; the layout plugin runs on stage changes, not per frame)",
                us / 1000.0
            ),
            None => println!("  layout   not measured (no plugins in target/plugins: cargo xtask plugins)"),
        }
        println!("  blit     {:>7.2} ms per frame (tiles scaled into the canvas, name labels)", st.compose_ms);
        println!("  overlay  {:>7.2} ms per frame (lower third + logo)", st.overlay_ms);
        println!("  mix      {:>7.3} ms per frame", st.mix_ms);
        println!("  encode   {:>7.2} ms per frame (x264 + AAC calls and fan-out to the queues)", st.encode_ms);
        println!(
            "  mux      {:>7.2} ms of CPU per frame (FLV/fMP4 muxing and socket writes on the sender threads)",
            three.groups.get("mux + send").copied().unwrap_or(0.0) * 1000.0 / 30.0
        );
        println!(
            "  preview  {:>7.2} ms per preview frame (scale + VP8, {} frames); skipped ticks {}",
            st.preview_ms, st.preview_frames, st.skipped_ticks
        );
    }
    println!("live preview: {:.0} kb/s VP8", three.preview_bps / 1000.0);
    let (p50, p90) = (percentile(&three.latency_ms, 0.5), percentile(&three.latency_ms, 0.9));
    match (p50, p90) {
        (Some(p50), Some(p90)) => println!(
            "added latency camera → RTMP (publisher send → decoded by an ffmpeg player at nginx): median {p50:.0} ms, p90 {p90:.0} ms over {} frames (goal ≤ 300 ms)",
            three.latency_ms.len()
        ),
        _ => println!("added latency: no frame counter was read back"),
    }
    for s in &three.statuses {
        println!("  {} {:?} dropped={} connects={}", s.id, s.state, s.dropped_frames, s.connects);
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({
        "secs": secs,
        "program_1_destination_cores": one.cores,
        "program_3_destinations_cores": three.cores,
        "ffmpeg_cli_3_destinations_cores": cli.cores,
        "second_pair": {"program_3_destinations_cores": three_again.cores, "ffmpeg_cli_3_destinations_cores": cli_again.cores},
        "extra_destination_cores": per_destination,
        "extra_destination_sender_cores": per_sender,
        "ratio_to_ffmpeg_cli": ratio,
        "full_hd_1080p30": {"program_cores": full_hd.cores, "ticks_per_sec": full_hd.ticks_per_sec, "skipped_ticks": full_hd.skipped},
        "three_encodes": {"program_cores": profiled.cores, "ffmpeg_cli_cores": cli_profiled.cores,
            "encodes": profiled.stats.as_ref().map(|s| s.encodes.len()), "extra_encode_cores": (profiled.cores - shared) / 2.0},
        "two_formats": {"program_cores": dual.cores, "ffmpeg_cli_cores": cli_dual.cores,
            "ratio_to_ffmpeg_cli": dual.cores / cli_dual.cores, "ratio_to_one_canvas": dual.cores / shared,
            "skipped_ticks": dual.skipped, "encodes": dual.stats.as_ref().map(|s| s.encodes.len())},
        "six_in_room_four_on_stage": {"program_cores": six_four.cores, "decode_cores": decode(&six_four),
            "decoding": six_four.stats.as_ref().map(|s| s.decoding.clone())},
        "six_in_room_six_decoded": {"program_cores": six_all.cores, "decode_cores": decode(&six_all)},
        "cores_by_thread_group": {"one_destination": one.groups, "three_destinations": three.groups},
        "stages": three.stats,
        "preview_bits_per_sec": three.preview_bps,
        "layout_plugin_us_per_call": layout_us,
        "added_latency_ms": {"median": p50, "p90": p90, "frames": three.latency_ms.len()},
        "outputs": three.statuses,
    });
    std::fs::write(out.join("program.json"), serde_json::to_string_pretty(&json)?)?;
    println!("wrote target/bench/program.json");
    Ok(())
}
