//! The program end to end: three in-process WebRTC publishers (str0m clients sending real VP8 + Opus made
//! by ffmpeg: a distinct colour and tone each) join a media node; the room's tap feeds the program, the
//! first-party layout plugin places them, and the program goes live to two nginx-rtmp servers (one over
//! verified RTMPS) while recording. What nginx received is H.264 + AAC at the configured size and ~30 fps,
//! each participant's colour sits in the rectangle the layout plugin gave it, and a live layout switch
//! changes the picture without a second publish.

mod common;
mod router_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backyard_core::compositor::{CompositorConfig, Fit, Placement, Program, Rect, StageMember};
use backyard_core::egress::{DestinationConfig, EgressConfig, EncoderSettings, no_status_sink};
use backyard_core::plugin_host::{self as ph, HostConfig, PluginHost};
use backyard_core::rtc::{MediaEvent, MediaNode, NodeConfig};
use common::{Nginx, NginxOptions, TempDir, TestCa, probe};
use router_support::{Packet, Publisher};
use str0m::change::SdpOffer;
use str0m::media::Mid;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};
use tokio::sync::oneshot;

const W: u32 = 640;
const H: u32 = 360;

/// A `secs`-long WebM of a solid colour (VP8, a keyframe every 10 frames) and a sine tone (Opus, stereo),
/// read back into packets.
fn clip(dir: &Path, name: &str, rgb: &str, tone_hz: u32, secs: u32) -> Result<(Vec<Packet>, f64)> {
    let inputs = [
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("color=c=0x{rgb}:s=640x360:r=30:d={secs}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency={tone_hz}:sample_rate=48000:duration={secs}"),
    ];
    encode_clip(&dir.join(format!("{name}.webm")), &inputs, secs)
}

/// Encodes what `args` (ffmpeg inputs and filters) make into a `secs`-long WebM (VP8, a keyframe every 10
/// frames; Opus, stereo, 20 ms frames) at `path` and reads it back into packets, a lap of the clip exactly
/// `secs` long as a browser's media would be: Opus starts slightly before zero (its pre-skip), so the clip
/// starts at its first packet, and a sound packet that would overlap the next lap's first is left out.
fn encode_clip(path: &Path, args: &[String], secs: u32) -> Result<(Vec<Packet>, f64)> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k", "-g", "10"])
        .args(["-c:a", "libopus", "-ac", "2", "-b:a", "64k", "-frame_duration", "20"])
        .arg(path)
        .output()
        .context("run ffmpeg")?;
    ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    ffmpeg_next::init()?;
    let mut input = ffmpeg_next::format::input(path)?;
    let kinds: Vec<(bool, f64)> = input
        .streams()
        .map(|s| (s.parameters().medium() == ffmpeg_next::media::Type::Video, f64::from(s.time_base())))
        .collect();
    let mut packets = Vec::new();
    for (stream, packet) in input.packets() {
        let (video, tb) = kinds[stream.index()];
        let Some(data) = packet.data() else { continue };
        packets.push(Packet { video, pts: packet.pts().unwrap_or(0) as f64 * tb, data: data.to_vec() });
    }
    packets.sort_by(|a, b| a.pts.total_cmp(&b.pts));
    let first = packets.first().map_or(0.0, |p| p.pts);
    for p in &mut packets {
        p.pts -= first;
    }
    packets.retain(|p| p.video || p.pts + 0.02 <= f64::from(secs) + 1e-6);
    ensure!(packets.iter().any(|p| p.video) && packets.iter().any(|p| !p.video), "clip has audio and video");
    Ok((packets, f64::from(secs)))
}

/// The decoded RGB frame nearest to `at` seconds in `path`.
fn rgb_at(path: &Path, at: f64) -> Result<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at:.2}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .context("run ffmpeg")?;
    ensure!(
        out.status.success() && out.stdout.len() == (W * H * 3) as usize,
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

/// Mean colour of a rectangle's inner half (away from scaled edges and the name label).
fn mean_rgb(rgb: &[u8], r: Rect) -> [f64; 3] {
    let (x0, y0) = (r.x as u32 + r.width / 4, r.y as u32 + r.height / 4);
    let (x1, y1) = (r.x as u32 + r.width * 3 / 4, r.y as u32 + r.height * 3 / 4);
    let mut sum = [0u64; 3];
    for y in y0..y1 {
        for x in x0..x1 {
            let i = ((y * W + x) * 3) as usize;
            for c in 0..3 {
                sum[c] += u64::from(rgb[i + c]);
            }
        }
    }
    let n = ((x1 - x0) * (y1 - y0)).max(1) as f64;
    sum.map(|s| s as f64 / n)
}

fn colour(hex: &str) -> [f64; 3] {
    let v = u32::from_str_radix(hex, 16).expect("hex colour");
    [(v >> 16) as f64, ((v >> 8) & 0xff) as f64, (v & 0xff) as f64]
}

/// Every participant's colour is in the rectangle `placements` gives it.
fn check_places(
    frame: &[u8],
    placements: &[backyard_core::compositor::Placement],
    who: &[(&str, &str)],
    when: &str,
) -> Result<()> {
    for (name, hex) in who {
        let p = placements.iter().find(|p| p.source == *name).with_context(|| format!("{name} placed"))?;
        let got = mean_rgb(frame, p.rect);
        let want = colour(hex);
        let off = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        ensure!(off < 40.0, "{when}: {name}'s tile {:?} is {got:?}, want ~{want:?}", p.rect);
    }
    Ok(())
}

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")
}

fn placements(
    layout: &mut ph::LayoutInstance,
    name: &str,
    who: &[(&str, &str)],
    speaker: &str,
) -> Result<Vec<backyard_core::compositor::Placement>> {
    let participants = who
        .iter()
        .map(|(id, _)| ph::Participant {
            id: (*id).into(),
            name: (*id).into(),
            speaking: *id == speaker,
            screen_share: false,
            video_enabled: true,
        })
        .collect();
    let stage = ph::Stage {
        layout: name.into(),
        canvas: ph::Size { width: W, height: H },
        participants,
        active_speaker: Some(speaker.into()),
    };
    Ok(backyard_core::director::program_placements(layout.place(&stage)?, W, H))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock, reason = "the suite's serial lock is held for the whole test on purpose")]
async fn three_webrtc_publishers_go_live_in_their_layout_rectangles() -> Result<()> {
    let _serial = common::serial();
    let dir = TempDir::new("webrtc-program")?;
    let who = [("alice", "c83232"), ("bob", "32c832"), ("carol", "3232c8")];
    let clips = [
        clip(dir.path(), "alice", who[0].1, 440, 6)?,
        clip(dir.path(), "bob", who[1].1, 660, 6)?,
        clip(dir.path(), "carol", who[2].1, 880, 6)?,
    ];

    let host = PluginHost::start(HostConfig { dirs: vec![plugin_dir()], ..HostConfig::default() })
        .context("the first-party plugins (cargo xtask plugins) load")?;
    let mut layout = host.layout("layouts")?;
    let node = MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse()?)).await?;
    let program =
        Arc::new(Program::start(CompositorConfig { width: W, height: H, ..CompositorConfig::default() }, 30)?);
    router_support::tap_into(&node, "show", &program);

    let mut publishers = Vec::new();
    for ((name, _), clip) in who.iter().zip(clips) {
        publishers.push(Publisher::join(&node, "show", name, clip).await?);
    }
    program.set_stage(who.iter().map(|(id, _)| StageMember { id: (*id).into(), name: (*id).into() }).collect());
    let grid = placements(&mut layout, "grid", &who, "alice")?;
    program.set_placements(grid.clone())?;

    // Every publisher's video is decoding before the program goes on air.
    let ready = common::wait_until(Duration::from_secs(20), || program.stats().decoded_frames > 3 * 45);
    ensure!(ready.is_some(), "decoding the three publishers: {:?}", program.stats());

    let certs = TempDir::new("webrtc-program-ca")?;
    let ca = TestCa::create(certs.path())?;
    let plain = Nginx::start(NginxOptions::default())?;
    let tls =
        Nginx::start(NginxOptions { tls: Some((ca.cert_pem.clone(), ca.key_pem.clone())), ..NginxOptions::default() })?;
    let mut secure = DestinationConfig {
        id: "secure".into(),
        url: tls.rtmps_url("key-secure-123"),
        ca_file: Some(ca.ca_pem.clone()),
        profile: None,
        constraints: Default::default(),
        address_policy: backyard_core::egress::AddressPolicy::Any,
        canvas: 0,
    };
    secure.constraints.max_fps = Some(30);
    let recording = dir.path().join("program.mp4");
    let started = Instant::now();
    program.go_live(
        EgressConfig {
            encoder: EncoderSettings { width: W, height: H, fps: 30, video_kbps: 1200, ..EncoderSettings::default() },
            destinations: vec![
                DestinationConfig {
                    id: "plain".into(),
                    url: plain.rtmp_url("key-plain-123"),
                    ca_file: None,
                    profile: None,
                    constraints: Default::default(),
                    address_policy: backyard_core::egress::AddressPolicy::Any,
                    canvas: 0,
                },
                secure,
            ],
            recording: Some(recording.clone()),
            ..EgressConfig::default()
        },
        no_status_sink(),
    )?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let switched_at = started.elapsed().as_secs_f64();
    let sidebar = placements(&mut layout, "sidebar", &who, "bob")?;
    ensure!(sidebar != grid, "the sidebar layout differs from the grid");
    program.set_placements(sidebar.clone())?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let program_for_end = program.clone();
    let report = tokio::task::spawn_blocking(move || program_for_end.end_live()).await?.context("egress report")?;
    for p in publishers {
        p.leave().await?;
    }
    node.set_tap("show", None);

    ensure!(report.recording.as_ref().is_some_and(|r| r.duration_secs > 8.0), "recording: {:?}", report.recording);
    for (server, label) in [(&plain, "rtmp"), (&tls, "rtmps")] {
        ensure!(
            server.publish_count() == 1,
            "{label}: {} publishes (a layout switch must not reconnect)",
            server.publish_count()
        );
        let files = server.recordings();
        let file = files.first().with_context(|| format!("{label}: nginx recorded nothing"))?;
        let p = probe(file)?;
        ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{label}: {} + {}", p.video_codec, p.audio_codec);
        ensure!((p.width, p.height) == (W, H), "{label}: {}x{}", p.width, p.height);
        ensure!((p.fps() - 30.0).abs() < 3.0, "{label}: {} fps", p.fps());
        // Before the switch: the grid; after it: the sidebar with bob featured.
        check_places(&rgb_at(file, switched_at - 2.0)?, &grid, &who, &format!("{label} grid"))?;
        check_places(&rgb_at(file, switched_at + 3.0)?, &sidebar, &who, &format!("{label} sidebar"))?;
    }
    check_places(&rgb_at(&recording, switched_at - 2.0)?, &grid, &who, "recording grid")?;
    Ok(())
}

/// A str0m client in the room that publishes nothing and collects the program preview's VP8 frames.
/// Preview frames a watcher received: (VP8 data, keyframe).
type Frames = Arc<parking_lot::Mutex<Vec<(Vec<u8>, bool)>>>;

struct Watcher {
    frames: Frames,
    /// Every server offer's SDP.
    offers: Arc<parking_lot::Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// The `a=mid:` of the m-section whose MediaStream id is `program`, if the SDP has one.
fn program_mid(sdp: &str) -> Option<String> {
    sdp.split("\r\nm=")
        .find(|section| section.contains("msid:program "))
        .and_then(|section| section.lines().find_map(|l| l.strip_prefix("a=mid:")).map(|m| m.trim().to_string()))
}

impl Watcher {
    async fn join(node: &MediaNode, room: &str, name: &str, watch: bool) -> Result<Watcher> {
        let router_support::Joined { handle, mut events, socket, local, mut rtc, .. } =
            router_support::join_publishing(node, room, name).await?;
        handle.watch_program(watch)?;
        let frames = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let offers = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (stop, mut stop_rx) = oneshot::channel();
        let (out_frames, out_offers) = (frames.clone(), offers.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut program: Option<Mid> = None;
            loop {
                let timeout = loop {
                    match rtc.poll_output()? {
                        Output::Transmit(t) => {
                            socket.send_to(&t.contents, t.destination).await?;
                        }
                        Output::Timeout(t) => break t,
                        Output::Event(Event::MediaData(d)) if Some(d.mid) == program => {
                            out_frames.lock().push((d.data.to_vec(), d.is_keyframe()));
                        }
                        Output::Event(_) => {}
                    }
                };
                tokio::select! {
                    _ = &mut stop_rx => return Ok(()),
                    r = socket.recv_from(&mut buf) => {
                        let (n, source) = r?;
                        if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                            rtc.handle_input(Input::Receive(Instant::now(), receive))?;
                        }
                    }
                    ev = events.recv() => match ev {
                        Some(MediaEvent::Offer(sdp)) => {
                            if let Some(mid) = program_mid(&sdp) {
                                program = Some(Mid::from(mid.as_str()));
                            }
                            out_offers.lock().push(sdp.clone());
                            let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                            handle.answer(answer.to_sdp_string()).await?;
                        }
                        Some(MediaEvent::Closed(reason)) => bail!("media session closed: {reason:?}"),
                        Some(_) => {}
                        None => bail!("media session ended"),
                    },
                    _ = tokio::time::sleep_until(timeout.into()) => {
                        rtc.handle_input(Input::Timeout(Instant::now()))?;
                    }
                }
            }
        });
        Ok(Watcher { frames, offers, stop: Some(stop), task })
    }

    async fn leave(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock, reason = "the suite's serial lock is held for the whole test on purpose")]
async fn hosts_watch_the_program_preview_over_their_webrtc_connection() -> Result<()> {
    use backyard_core::compositor::{Fit, Placement, VideoCodec, VideoDecoder};
    let _serial = common::serial();
    let dir = TempDir::new("webrtc-preview")?;
    let who = [("alice", "c83232"), ("bob", "32c832")];
    let node = MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse()?)).await?;
    let program =
        Arc::new(Program::start(CompositorConfig { width: W, height: H, ..CompositorConfig::default() }, 30)?);
    router_support::tap_into(&node, "show", &program);
    // Published before anyone is in the room: the room made on first join carries it.
    program.set_preview_sink(Some(Arc::new(node.publish_program("show"))));

    let mut publishers = Vec::new();
    for (i, (name, hex)) in who.iter().enumerate() {
        publishers
            .push(Publisher::join(&node, "show", name, clip(dir.path(), name, hex, 440 + 220 * i as u32, 4)?).await?);
    }
    program.set_stage(who.iter().map(|(id, _)| StageMember { id: (*id).into(), name: (*id).into() }).collect());
    let halves = [Rect::new(0, 0, W / 2, H), Rect::new(W as i32 / 2, 0, W / 2, H)];
    program.set_placements(
        who.iter()
            .zip(halves)
            .map(|((id, _), rect)| Placement { source: (*id).into(), rect, z: 0, fit: Fit::Cover })
            .collect(),
    )?;
    let host = Watcher::join(&node, "show", "host", true).await?;
    let guest = Watcher::join(&node, "show", "guest", false).await?;

    router_support::wait_for("40 program preview frames at the host", Duration::from_secs(20), || {
        host.frames.lock().len() >= 40
    })
    .await?;
    let frames = host.frames.lock().clone();
    ensure!(frames[0].1, "a watcher's first frame is a keyframe (it asked for one)");
    // The stream decodes, at the preview's size, into the composed picture: alice left, bob right.
    let mut decoder = VideoDecoder::new(VideoCodec::Vp8)?;
    let mut last = None;
    for (data, _) in &frames {
        if let Some(f) = decoder.decode(data)?.pop() {
            last = Some(f);
        }
    }
    let picture = last.context("the preview decodes")?;
    ensure!((picture.width(), picture.height()) == (W, H), "preview {}x{}", picture.width(), picture.height());
    let composed = program.preview().context("a composed frame")?;
    let yuv = |f: &backyard_core::egress::VideoFrame, x: u32, y: u32| {
        let (py, pu, pv) = f.planes();
        let c = (y / 2 * f.width().div_ceil(2) + x / 2) as usize;
        [py[(y * f.width() + x) as usize], pu[c], pv[c]]
    };
    for (x, name) in [(W / 4, "alice"), (W * 3 / 4, "bob")] {
        let (got, want) = (yuv(&picture, x, H / 2), yuv(&composed, x, H / 2));
        let off = got.iter().zip(want).map(|(g, w)| g.abs_diff(w)).max().unwrap_or(0);
        ensure!(off <= 12, "{name}'s tile in the preview is {got:?}, composed {want:?}");
    }
    ensure!(yuv(&picture, W / 4, H / 2) != yuv(&picture, W * 3 / 4, H / 2), "two different tiles");
    ensure!(guest.frames.lock().is_empty(), "a guest gets no preview frames");
    ensure!(
        guest.offers.lock().iter().all(|sdp| program_mid(sdp).is_none()),
        "a guest is never offered the program track"
    );
    let stats = program.stats();
    ensure!(stats.preview_frames >= 40 && stats.preview_ms > 0.0, "{stats:?}");

    // Withdrawing the preview renegotiates the host's m-line away and no more frames come.
    let offers_before = host.offers.lock().len();
    program.set_preview_sink(None);
    router_support::wait_for("a server offer without the program", Duration::from_secs(10), || {
        host.offers.lock().len() > offers_before
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = host.frames.lock().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(host.frames.lock().len() == settled, "no preview frames after it was withdrawn");
    for p in publishers {
        p.leave().await?;
    }
    host.leave().await?;
    guest.leave().await?;
    node.set_tap("show", None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock, reason = "the suite's serial lock is held for the whole test on purpose")]
async fn only_sources_on_stage_are_decoded() -> Result<()> {
    let _serial = common::serial();
    let dir = TempDir::new("webrtc-offstage")?;
    let who = [("alice", "c83232"), ("bob", "32c832"), ("carol", "3232c8")];
    let node = MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse()?)).await?;
    let program =
        Arc::new(Program::start(CompositorConfig { width: W, height: H, ..CompositorConfig::default() }, 30)?);
    router_support::tap_into(&node, "show", &program);
    let mut publishers = Vec::new();
    for (i, (name, hex)) in who.iter().enumerate() {
        publishers
            .push(Publisher::join(&node, "show", name, clip(dir.path(), name, hex, 440 + 220 * i as u32, 6)?).await?);
    }
    let stage = |ids: &[&str]| ids.iter().map(|id| StageMember { id: (*id).into(), name: (*id).into() }).collect();
    program.set_stage(stage(&["alice", "bob"]));
    node.request_keyframes("show", "alice");
    node.request_keyframes("show", "bob");
    let decoding = common::wait_until(Duration::from_secs(20), || {
        let s = program.stats();
        s.decoding == ["alice", "bob"] && s.decoded_frames > 60
    });
    ensure!(decoding.is_some(), "alice and bob decoding, carol not: {:?}", program.stats());

    // Bob leaves the stage and carol comes on: his decoders stop at once, hers start.
    program.set_stage(stage(&["alice", "carol"]));
    ensure!(program.stats().decoding == ["alice"], "bob's decoders stopped: {:?}", program.stats());
    node.request_keyframes("show", "carol");
    let swapped = common::wait_until(Duration::from_secs(20), || program.stats().decoding == ["alice", "carol"]);
    ensure!(swapped.is_some(), "carol decoding: {:?}", program.stats());
    for p in publishers {
        p.leave().await?;
    }
    node.set_tap("show", None);
    Ok(())
}

/// A `secs`-long WebM (VP8 + Opus) of a dark picture that flashes white for three frames, and a silence that
/// beeps for 100 ms, both `at` seconds in, read back into packets.
fn flash_clip(dir: &Path, secs: u32, at: f64) -> Result<(Vec<Packet>, f64)> {
    let from = (at * 30.0).round() as u32;
    let args = [
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("color=c=0x303030:s=640x360:r=30:d={secs}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=1000:sample_rate=48000:duration={secs}"),
        "-vf".into(),
        format!("drawbox=c=white:t=fill:enable='between(n,{from},{})'", from + 2),
        "-af".into(),
        format!("volume=enable='not(between(t,{at},{}))':volume=0,volume=4", at + 0.1),
    ];
    encode_clip(&dir.join("flash.webm"), &args, secs)
}

/// When a file's sound turns loud (above 0.3 after 50 ms of quiet), in seconds on the file's own timeline: its
/// audio decoded where its timestamps put it (a gap in them stays a gap), which reading the samples one after
/// another would not.
fn beeps_in_time(path: &Path) -> Result<Vec<f64>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-copyts", "-i"])
        .arg(path)
        .args([
            "-vn",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-af",
            "aresample=async=1:min_hard_comp=0.005:first_pts=0",
            "-f",
            "f32le",
            "-",
        ])
        .output()?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut beeps = Vec::new();
    let mut quiet = 0usize;
    for (i, b) in out.stdout.chunks_exact(4).enumerate() {
        if f32::from_le_bytes([b[0], b[1], b[2], b[3]]).abs() > 0.3 {
            if quiet > 2400 {
                beeps.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    Ok(beeps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock, reason = "the suite's serial lock is held for the whole test on purpose")]
async fn a_participant_s_own_recording_is_as_sent_and_lines_up_with_the_program() -> Result<()> {
    let _serial = common::serial();
    let dir = TempDir::new("webrtc-own-recording")?;
    let node = MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse()?)).await?;
    let program =
        Arc::new(Program::start(CompositorConfig { width: W, height: H, ..CompositorConfig::default() }, 30)?);
    router_support::tap_into(&node, "show", &program);
    let alice = Publisher::join(&node, "show", "alice", flash_clip(dir.path(), 3, 1.0)?).await?;
    program.set_stage(vec![StageMember { id: "alice".into(), name: "Alice".into() }]);
    let whole = Rect { x: 0, y: 0, width: W, height: H };
    program.set_placements(vec![Placement { source: "alice".into(), rect: whole, z: 0, fit: Fit::Cover }])?;
    node.request_keyframes("show", "alice");
    let recording = dir.path().join("program.mp4");
    let encoder = EncoderSettings { width: W, height: H, fps: 30, video_kbps: 1200, ..EncoderSettings::default() };
    program.go_live(
        EgressConfig { encoder, recording: Some(recording.clone()), ..EgressConfig::default() },
        no_status_sink(),
    )?;
    // On stage a moment after going live: the participant's file starts there on the program's timeline.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    program.start_recording("alice", dir.path().join("alice"), true)?;
    node.set_recorded("show", "alice", true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let own = tokio::task::spawn_blocking({
        let program = program.clone();
        move || program.stop_recording("alice")
    })
    .await?
    .context("alice was recorded")?;
    node.set_recorded("show", "alice", false);
    let ended = tokio::task::spawn_blocking({
        let program = program.clone();
        move || program.end_live()
    })
    .await?;
    ensure!(ended.is_some(), "the program went off air");
    alice.leave().await?;
    node.set_tap("show", None);

    let path = own.path.clone().context("alice's file")?;
    ensure!(path.extension().is_some_and(|e| e == "webm"), "VP8 + Opus go into WebM: {}", path.display());
    let p = probe(&path)?;
    ensure!(
        (p.video_codec.as_str(), p.audio_codec.as_str(), p.width, p.height) == ("vp8", "opus", 640, 360),
        "as sent: {p:?}"
    );
    ensure!(own.start_secs > 1.0 && own.end_secs - own.start_secs > 6.0, "on stage from 1.5 s for 8 s: {own:?}");
    let (mine, theirs) = (common::flashes_and_beeps(&path, None)?.0, common::flashes_and_beeps(&recording, None)?.0);
    let (mine_beeps, their_beeps) = (beeps_in_time(&path)?, beeps_in_time(&recording)?);
    for (what, at, program_at) in [("flash", &mine, &theirs), ("beep", &mine_beeps, &their_beeps)] {
        ensure!(at.len() >= 2, "{what}es in alice's file: {at:?}");
        let apart: Vec<f64> =
            at.iter().map(|t| program_at.iter().map(|u| (u - t).abs()).fold(f64::INFINITY, f64::min)).collect();
        println!(
            "{what}: alice's file {at:?}, the program's nearest {:?} ms apart",
            apart.iter().map(|a| (a * 1000.0).round()).collect::<Vec<_>>()
        );
        ensure!(apart.iter().all(|&a| a <= 0.04), "each {what} within 40 ms of the program's: {apart:?}");
    }
    Ok(())
}
