//! SFU load generator for `cargo xtask bench sfu`: str0m clients that join a broadcast through the real
//! signaling socket (`/ws`), one publisher sending ~2.5 Mb/s of VP8-typed video plus Opus-typed audio, and N
//! subscribers counting what the server forwards to them. Runs as its own process so the server's CPU can be
//! measured apart from the clients'.
//!
//! Prints `ready` once every subscriber receives the publisher's video, `measure-start` / `measure-end` around
//! the measured window, then one `result key=value ...` line with the totals.
//!
//! Usage: sfu_load --ws ws://127.0.0.1:PORT/ws --token JWT --broadcast ID --subscribers N
//!                 [--seconds 10] [--warmup 2] [--kbps 2500]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Args {
    ws: String,
    token: String,
    broadcast: String,
    subscribers: usize,
    seconds: u64,
    warmup: u64,
    kbps: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        map.insert(k.trim_start_matches("--").to_string(), v);
    }
    let get = |k: &str| map.get(k).cloned().with_context(|| format!("--{k} is required"));
    Ok(Args {
        ws: get("ws")?,
        token: get("token")?,
        broadcast: get("broadcast")?,
        subscribers: get("subscribers")?.parse()?,
        seconds: map.get("seconds").map_or(Ok(10), |v| v.parse())?,
        warmup: map.get("warmup").map_or(Ok(2), |v| v.parse())?,
        kbps: map.get("kbps").map_or(Ok(2500), |v| v.parse())?,
    })
}

/// What all subscribers received, summed.
#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    frames: AtomicU64,
    /// Subscribers that got at least one video frame.
    receiving: AtomicU64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = vec![];
    tasks.push(tokio::spawn(client(
        a.ws.clone(),
        a.token.clone(),
        a.broadcast.clone(),
        Some(a.kbps),
        counters.clone(),
        stop.clone(),
    )));
    for _ in 0..a.subscribers {
        tasks.push(tokio::spawn(client(
            a.ws.clone(),
            a.token.clone(),
            a.broadcast.clone(),
            None,
            counters.clone(),
            stop.clone(),
        )));
        // Joining all at once is a different bench; pace the joins a little.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.receiving.load(Ordering::Relaxed) < a.subscribers as u64 {
        if Instant::now() > deadline {
            bail!("only {} of {} subscribers receive video", counters.receiving.load(Ordering::Relaxed), a.subscribers);
        }
        if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
            bail!("a client ended early: {t:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("ready");
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let (b0, f0) = (counters.bytes.load(Ordering::Relaxed), counters.frames.load(Ordering::Relaxed));
    let t0 = Instant::now();
    println!("measure-start");
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (b1, f1) = (counters.bytes.load(Ordering::Relaxed), counters.frames.load(Ordering::Relaxed));
    println!("measure-end");
    let bytes = b1 - b0;
    println!(
        "result subscribers={} seconds={elapsed:.3} forwarded_bytes={bytes} forwarded_mbps={:.3} frames_per_sec={:.1}",
        a.subscribers,
        bytes as f64 * 8.0 / elapsed / 1e6,
        (f1 - f0) as f64 / elapsed,
    );
    stop.notify_waiters();
    Ok(())
}

async fn ws_send(ws: &mut Socket, event: &str, data: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(json!({"event": event, "data": data}).to_string().into())).await?;
    Ok(())
}

/// One participant: joins, answers server offers, and either publishes (mic, camera, empty screen slot like the
/// studio) at `kbps` or counts what it receives.
async fn client(
    url: String,
    token: String,
    broadcast: String,
    kbps: Option<u64>,
    counters: Arc<Counters>,
    stop: Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws_send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;

    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc =
        Rtc::builder().set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags())).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut api = rtc.sdp_api();
    // The publisher offers the studio's three slots; a subscriber publishes nothing (one receive-only line), so
    // subscribers do not subscribe to each other and the bench measures one-to-many forwarding.
    let (mic, cam) = if kbps.is_some() {
        let mic = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let cam = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        (mic, cam)
    } else {
        let m = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        (m, m)
    };
    let (offer, pending) = api.apply().context("an offer")?;
    let mut pending: Option<SdpPendingOffer> = Some(pending);
    let mut offered = false;

    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let (mut audio_n, mut video_n) = (0u32, 0u32);
    let frame_bytes = kbps.map(|k| (k * 1000 / 8 / 30) as usize).unwrap_or(0);
    let mut want_keyframe = true;
    let mut receiving = false;
    let mut connected = false;
    loop {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Timeout(t) => break t,
                Output::Event(e) => match e {
                    Event::Connected => connected = true,
                    Event::KeyframeRequest(r) if r.mid == cam => want_keyframe = true,
                    Event::MediaData(d) if kbps.is_none() => {
                        counters.bytes.fetch_add(d.data.len() as u64, Ordering::Relaxed);
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                        if !receiving && rtc.media(d.mid).is_some_and(|m| m.kind().is_video()) {
                            receiving = true;
                            counters.receiving.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                },
            }
        };
        let mut wake = timeout;
        if kbps.is_some() {
            wake =
                wake.min(start + Duration::from_millis(20) * audio_n).min(start + Duration::from_millis(33) * video_n);
        }
        tokio::select! {
            _ = stop.notified() => return Ok(()),
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    rtc.handle_input(Input::Receive(Instant::now(), receive))?;
                }
            }
            msg = ws.next() => {
                let Some(msg) = msg else { bail!("signaling closed") };
                let Message::Text(text) = msg? else { continue };
                let v: Value = serde_json::from_str(text.as_str())?;
                match v["event"].as_str().unwrap_or_default() {
                    "joined" if !offered => {
                        offered = true;
                        ws_send(&mut ws, "webrtc-offer", json!({"sdp": offer.to_sdp_string()})).await?;
                    }
                    "webrtc-answer" => {
                        let answer = SdpAnswer::from_sdp_string(v["data"]["sdp"].as_str().unwrap_or_default())?;
                        let p = pending.take().context("an answer without an offer")?;
                        rtc.sdp_api().accept_answer(p, answer)?;
                    }
                    "webrtc-offer" => {
                        let offer = SdpOffer::from_sdp_string(v["data"]["sdp"].as_str().unwrap_or_default())?;
                        let answer = rtc.sdp_api().accept_offer(offer)?;
                        ws_send(&mut ws, "webrtc-answer", json!({"sdp": answer.to_sdp_string()})).await?;
                    }
                    "error" => bail!("server error: {}", v["data"]),
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                rtc.handle_input(Input::Timeout(now))?;
                if kbps.is_some() && connected {
                    if now >= start + Duration::from_millis(20) * audio_n {
                        send(&mut rtc, mic, Codec::Opus, MediaTime::new(u64::from(audio_n) * 960, Frequency::FORTY_EIGHT_KHZ), now, audio_frame())?;
                        audio_n += 1;
                    }
                    if now >= start + Duration::from_millis(33) * video_n {
                        let key = std::mem::take(&mut want_keyframe) || video_n % 60 == 0;
                        let data = video_frame(key, frame_bytes, video_n);
                        send(&mut rtc, cam, Codec::Vp8, MediaTime::new(u64::from(video_n) * 3000, Frequency::NINETY_KHZ), now, data)?;
                        video_n += 1;
                    }
                } else if kbps.is_some() {
                    // Not connected yet: keep the clocks from piling up frames.
                    audio_n = (now - start).as_millis() as u32 / 20;
                    video_n = (now - start).as_millis() as u32 / 33;
                }
            }
        }
    }
}

fn send(rtc: &mut Rtc, mid: Mid, codec: Codec, time: MediaTime, now: Instant, data: Vec<u8>) -> anyhow::Result<()> {
    let Some(writer) = rtc.writer(mid) else { return Ok(()) };
    let Some(pt) = writer.payload_params().find(|p| p.spec().codec == codec).map(|p| p.pt()) else {
        bail!("{codec:?} not negotiated");
    };
    let writer = if codec == Codec::Opus { writer.audio_level(-30, true) } else { writer };
    writer.write(pt, now, time, data)?;
    Ok(())
}

fn audio_frame() -> Vec<u8> {
    vec![0xa5; 80]
}

/// A VP8-shaped frame: bit 0 of the first byte clear marks a keyframe.
fn video_frame(keyframe: bool, size: usize, n: u32) -> Vec<u8> {
    let mut v = if keyframe {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    v.resize(size.max(16), (n % 251) as u8);
    v
}
