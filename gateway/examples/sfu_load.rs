//! SFU load generator for `cargo xtask bench sfu`: str0m clients, one publisher sending ~2.5 Mb/s of VP8-typed
//! video plus Opus-typed audio and N subscribers counting what the server forwards to them. Runs as its own
//! process so the server's CPU can be measured apart from the clients'.
//!
//! Two servers, the same clients and media:
//! - Backyard: every client joins the broadcast through the real signaling socket (`/ws`), with `--invite` as a
//!   guest of its own (redeemed here), so the room is a pure SFU: a host in the room would also start the
//!   broadcast's program (compositor), which Janus has no counterpart for.
//! - Janus 1.1's videoroom plugin through its HTTP API: each client has its own Janus session and handle (long
//!   poll `GET /janus/<session>` for events); the publisher creates the room and sends its offer with
//!   `joinandconfigure`; each subscriber joins as `subscriber` with `feed` = the publisher's id, Janus offers and
//!   the client answers with `start`.
//!
//! Prints `ready` once every subscriber receives the publisher's video, `measure-start` / `measure-end` around
//! the measured window, then one `result key=value ...` line with the totals.
//!
//! Usage: sfu_load --ws ws://127.0.0.1:PORT/ws (--invite TOKEN | --token JWT) --broadcast ID --subscribers N
//!                 [--seconds 10] [--warmup 2] [--kbps 2500]
//!        sfu_load --janus http://127.0.0.1:PORT/janus --subscribers N [--seconds 10] [--warmup 2] [--kbps 2500]
//!        and `--bind-ip IP` (default 127.0.0.1): the clients' host candidate. Janus (libnice) never gathers
//!        loopback candidates, so against Janus the clients use the machine's own address (still no packet leaves
//!        the host).

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How a client signs in to Backyard's `/ws`.
#[derive(Clone)]
enum Auth {
    /// An account's access token (a host: joining starts the room's program).
    Bearer(String),
    /// An invite token each client redeems for a guest session of its own (a pure SFU room: no program).
    Invite(String),
}

/// Which server the clients talk to.
#[derive(Clone)]
enum Server {
    Backyard {
        ws: String,
        auth: Auth,
        broadcast: String,
    },
    /// The Janus HTTP API's base, e.g. `http://127.0.0.1:8088/janus`.
    Janus(JanusUrl),
}

struct Args {
    server: Server,
    /// The address the clients' UDP sockets bind to and announce as their host candidate.
    bind_ip: std::net::IpAddr,
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
    let server = match map.get("janus") {
        Some(url) => Server::Janus(JanusUrl::parse(url)?),
        None => {
            let auth = match map.get("invite") {
                Some(t) => Auth::Invite(t.clone()),
                None => Auth::Bearer(get("token")?),
            };
            Server::Backyard { ws: get("ws")?, auth, broadcast: get("broadcast")? }
        }
    };
    Ok(Args {
        server,
        bind_ip: map.get("bind-ip").map_or(Ok([127, 0, 0, 1].into()), |v| v.parse())?,
        subscribers: get("subscribers")?.parse()?,
        seconds: map.get("seconds").map_or(Ok(10), |v| v.parse())?,
        warmup: map.get("warmup").map_or(Ok(2), |v| v.parse())?,
        kbps: map.get("kbps").map_or(Ok(2500), |v| v.parse())?,
    })
}

/// What all subscribers received, summed.
#[derive(Default)]
struct Counters {
    /// What the publisher wrote (frame payloads), to compare the forwarded rate with.
    sent_bytes: AtomicU64,
    bytes: AtomicU64,
    frames: AtomicU64,
    /// Subscribers that got at least one video frame.
    receiving: AtomicU64,
}

/// Signaling as the media loop sees it, whatever the server.
#[derive(Debug)]
enum Sig {
    /// In: the server let us in; a client that offers first sends its offer now.
    Joined,
    Offer(String),
    Answer(String),
}

/// The Janus videoroom used by the bench.
const JANUS_ROOM: u64 = 4242;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = vec![];
    let (publisher_id_tx, publisher_id_rx) = oneshot::channel();
    tasks.push(spawn_client(&a.server, a.bind_ip, Role::Publisher(publisher_id_tx), Some(a.kbps), &counters, &stop));
    // Janus subscribers name the publisher's feed, so they wait for the publisher to be in the room.
    let feed = match a.server {
        Server::Janus(_) => tokio::time::timeout(Duration::from_secs(30), publisher_id_rx)
            .await
            .context("the publisher did not join the Janus room within 30 s")?
            .context("the publisher ended before joining")?,
        Server::Backyard { .. } => 0,
    };
    for _ in 0..a.subscribers {
        tasks.push(spawn_client(&a.server, a.bind_ip, Role::Subscriber { feed }, None, &counters, &stop));
        // Joining all at once is a different bench; pace the joins a little.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.receiving.load(Ordering::Relaxed) < a.subscribers as u64 {
        if Instant::now() > deadline {
            bail!("only {} of {} subscribers receive video", counters.receiving.load(Ordering::Relaxed), a.subscribers);
        }
        if let Some(t) = tasks.iter_mut().find(|t| t.is_finished()) {
            match t.await {
                Ok(Err(e)) => bail!("a client ended early: {e:#}"),
                other => bail!("a client ended early: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("ready");
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let (b0, f0) = (counters.bytes.load(Ordering::Relaxed), counters.frames.load(Ordering::Relaxed));
    let s0 = counters.sent_bytes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    println!("measure-start");
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (b1, f1) = (counters.bytes.load(Ordering::Relaxed), counters.frames.load(Ordering::Relaxed));
    let s1 = counters.sent_bytes.load(Ordering::Relaxed);
    println!("measure-end");
    let bytes = b1 - b0;
    println!(
        "result subscribers={} seconds={elapsed:.3} forwarded_bytes={bytes} forwarded_mbps={:.3} frames_per_sec={:.1} \
         sent_mbps={:.3}",
        a.subscribers,
        bytes as f64 * 8.0 / elapsed / 1e6,
        (f1 - f0) as f64 / elapsed,
        (s1 - s0) as f64 * 8.0 / elapsed / 1e6,
    );
    stop.notify_waiters();
    Ok(())
}

enum Role {
    /// Sends the publisher's id in the room once it has one (Janus only).
    Publisher(oneshot::Sender<u64>),
    /// Janus: the publisher's id to subscribe to.
    Subscriber { feed: u64 },
}

/// Starts one participant: its signaling task for `server` and its media loop, which ends the participant.
fn spawn_client(
    server: &Server,
    bind_ip: std::net::IpAddr,
    role: Role,
    kbps: Option<u64>,
    counters: &Arc<Counters>,
    stop: &Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (in_tx, in_rx) = mpsc::channel(8);
    let (out_tx, out_rx) = mpsc::channel(8);
    // A Backyard client always offers first (the studio's one offer); a Janus subscriber is offered to.
    let offers_first = !matches!((server, &role), (Server::Janus(_), Role::Subscriber { .. }));
    let signaling = match server.clone() {
        Server::Backyard { ws, auth, broadcast } => {
            drop(role);
            tokio::spawn(backyard_signaling(ws, auth, broadcast, in_tx, out_rx))
        }
        Server::Janus(url) => tokio::spawn(janus_signaling(url, role, in_tx, out_rx)),
    };
    let media = tokio::spawn(client(bind_ip, offers_first, kbps, in_rx, out_tx, counters.clone(), stop.clone()));
    tokio::spawn(async move {
        tokio::select! {
            r = media => r?,
            r = signaling => match r? {
                Ok(()) => bail!("signaling ended"),
                Err(e) => Err(e.context("signaling")),
            },
        }
    })
}

async fn ws_send(ws: &mut Socket, event: &str, data: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(json!({"event": event, "data": data}).to_string().into())).await?;
    Ok(())
}

/// Backyard's `/ws`: join the broadcast, then relay offers and answers.
async fn backyard_signaling(
    url: String,
    auth: Auth,
    broadcast: String,
    to_media: mpsc::Sender<Sig>,
    mut from_media: mpsc::Receiver<Sig>,
) -> anyhow::Result<()> {
    let mut req = url.clone().into_client_request()?;
    match auth {
        Auth::Bearer(token) => {
            req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        }
        Auth::Invite(invite) => {
            let addr = url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_owned();
            static GUEST: AtomicU64 = AtomicU64::new(1);
            let name = format!("bench guest {}", GUEST.fetch_add(1, Ordering::Relaxed));
            let (head, _) = http(&addr, "POST", &format!("/api/invites/{invite}/redeem"), Some(json!({"name": name})))
                .await
                .context("redeeming the invite")?;
            let cookie = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
                .find_map(|(_, v)| v.trim().split(';').next().filter(|c| c.starts_with("by_guest=")))
                .context("a guest cookie from the invite")?
                .to_owned();
            req.headers_mut().insert("cookie", cookie.parse()?);
        }
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws_send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    loop {
        tokio::select! {
            out = from_media.recv() => match out {
                Some(Sig::Offer(sdp)) => ws_send(&mut ws, "webrtc-offer", json!({"sdp": sdp})).await?,
                Some(Sig::Answer(sdp)) => ws_send(&mut ws, "webrtc-answer", json!({"sdp": sdp})).await?,
                Some(Sig::Joined) => {}
                None => return Ok(()),
            },
            msg = ws.next() => {
                let Some(msg) = msg else { bail!("signaling closed") };
                let Message::Text(text) = msg? else { continue };
                let v: Value = serde_json::from_str(text.as_str())?;
                let sdp = || v["data"]["sdp"].as_str().unwrap_or_default().to_owned();
                let sig = match v["event"].as_str().unwrap_or_default() {
                    "joined" => Sig::Joined,
                    "webrtc-answer" => Sig::Answer(sdp()),
                    "webrtc-offer" => Sig::Offer(sdp()),
                    "error" => bail!("server error: {}", v["data"]),
                    _ => continue,
                };
                if to_media.send(sig).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// `http://HOST:PORT/PATH` split for the minimal HTTP client below.
#[derive(Clone)]
struct JanusUrl {
    addr: String,
    path: String,
}

impl JanusUrl {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("http://").context("--janus must be an http:// URL")?;
        let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(JanusUrl { addr: addr.to_owned(), path: format!("/{}", path.trim_end_matches('/')) })
    }
}

/// One HTTP/1.0 request to Janus (a connection per request: only signaling goes this way) returning its JSON.
async fn janus_http(url: &JanusUrl, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let (_, json) = http(&url.addr, method, &format!("{}{path}", url.path), body).await?;
    serde_json::from_str(&json).with_context(|| format!("Janus {method} {path}: {json}"))
}

/// One HTTP/1.0 request with a JSON body; returns the response head and body, failing unless 2xx.
async fn http(addr: &str, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(String, String)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").with_context(|| format!("an HTTP response from {addr}"))?;
    if !head.starts_with("HTTP/1.") || head.get(9..10).is_none_or(|c| c != "2") {
        bail!("{method} {path}: {} {body}", head.lines().next().unwrap_or_default());
    }
    Ok((head.to_owned(), body.to_owned()))
}

/// A Janus API request (`janus` = create, attach, message, ...) on `path`; fails on an `error` reply or a
/// videoroom error in a synchronous reply.
async fn janus_request(url: &JanusUrl, path: &str, mut body: Value) -> anyhow::Result<Value> {
    static TX: AtomicU64 = AtomicU64::new(1);
    body["transaction"] = json!(format!("t{}", TX.fetch_add(1, Ordering::Relaxed)));
    let reply = janus_http(url, "POST", path, Some(body.clone())).await?;
    match reply["janus"].as_str() {
        Some("success" | "ack") => {}
        _ => bail!("Janus refused {body}: {reply}"),
    }
    Ok(reply)
}

/// One Janus client: its own session and videoroom handle; events come from a long-poll task.
async fn janus_signaling(
    url: JanusUrl,
    role: Role,
    to_media: mpsc::Sender<Sig>,
    mut from_media: mpsc::Receiver<Sig>,
) -> anyhow::Result<()> {
    let session = janus_request(&url, "", json!({"janus": "create"})).await?["data"]["id"]
        .as_u64()
        .context("a Janus session id")?;
    let handle =
        janus_request(&url, &format!("/{session}"), json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}))
            .await?["data"]["id"]
            .as_u64()
            .context("a Janus handle id")?;
    let handle_path = format!("/{session}/{handle}");
    let message = |body: Value, jsep: Option<Value>| {
        let mut m = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        janus_request(&url, &handle_path, m)
    };

    // Events: the long poll returns up to `maxev` of them, or a keepalive after 30 s (which also keeps the
    // session alive).
    let (ev_tx, mut events) = mpsc::channel::<Value>(16);
    let poll_url = url.clone();
    tokio::spawn(async move {
        loop {
            let got = janus_http(&poll_url, "GET", &format!("/{session}?maxev=10"), None).await;
            let batch = match got {
                Ok(Value::Array(a)) => a,
                Ok(v) => vec![v],
                Err(e) => vec![json!({"janus": "poll-failed", "error": format!("{e:#}")})],
            };
            for e in batch {
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });

    let mut publisher_id = None;
    let mut joined_as = None;
    match role {
        Role::Publisher(tx) => {
            let created = message(
                json!({"request": "create", "room": JANUS_ROOM, "publishers": 4, "bitrate": 0,
                       "videocodec": "vp8", "audiocodec": "opus", "fir_freq": 0}),
                None,
            )
            .await?;
            let data = &created["plugindata"]["data"];
            // 427: the room exists already (another run against the same Janus).
            if data["error_code"].as_u64().is_some_and(|c| c != 427) {
                bail!("Janus could not create the room: {data}");
            }
            publisher_id = Some(tx);
            if to_media.send(Sig::Joined).await.is_err() {
                return Ok(());
            }
        }
        Role::Subscriber { feed } => {
            message(
                json!({"request": "join", "ptype": "subscriber", "room": JANUS_ROOM, "streams": [{"feed": feed}]}),
                None,
            )
            .await?;
        }
    }
    loop {
        tokio::select! {
            out = from_media.recv() => match out {
                Some(Sig::Offer(sdp)) => {
                    message(
                        json!({"request": "joinandconfigure", "ptype": "publisher", "room": JANUS_ROOM,
                               "display": "bench publisher"}),
                        Some(json!({"type": "offer", "sdp": sdp, "trickle": false})),
                    )
                    .await?;
                }
                Some(Sig::Answer(sdp)) => {
                    message(
                        json!({"request": "start", "room": JANUS_ROOM}),
                        Some(json!({"type": "answer", "sdp": sdp, "trickle": false})),
                    )
                    .await?;
                }
                Some(Sig::Joined) => {}
                None => return Ok(()),
            },
            ev = events.recv() => {
                let Some(ev) = ev else { bail!("Janus event poll ended") };
                match ev["janus"].as_str().unwrap_or_default() {
                    "event" => {}
                    // The publisher's feed can be subscribed to once its PeerConnection is up.
                    "webrtcup" => {
                        if let (Some(id), Some(tx)) = (joined_as, publisher_id.take()) {
                            let _ = tx.send(id);
                        }
                        continue;
                    }
                    "keepalive" | "media" | "slowlink" | "trickle" => continue,
                    "hangup" | "detached" | "timeout" | "poll-failed" | "error" => bail!("Janus: {ev}"),
                    _ => continue,
                }
                let data = &ev["plugindata"]["data"];
                if data.get("error").is_some() {
                    bail!("Janus videoroom error: {data}");
                }
                if data["videoroom"] == "joined" {
                    joined_as = Some(data["id"].as_u64().context("the publisher's id in `joined`")?);
                }
                let sdp = ev["jsep"]["sdp"].as_str().unwrap_or_default().to_owned();
                let sig = match ev["jsep"]["type"].as_str() {
                    Some("offer") => Sig::Offer(sdp),
                    Some("answer") => Sig::Answer(sdp),
                    _ => continue,
                };
                if to_media.send(sig).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// One participant's media: answers offers, and either publishes (mic, camera, empty screen slot like the
/// studio) at `kbps` or counts what it receives. `offers_first`: sends its own offer once joined.
async fn client(
    bind_ip: std::net::IpAddr,
    offers_first: bool,
    kbps: Option<u64>,
    mut sig_in: mpsc::Receiver<Sig>,
    sig_out: mpsc::Sender<Sig>,
    counters: Arc<Counters>,
    stop: Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((bind_ip, 0)).await?;
    let local = socket.local_addr()?;
    let mut rtc =
        Rtc::builder().set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags())).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    // The publisher offers the studio's three slots; a Backyard subscriber publishes nothing (one receive-only
    // line), so subscribers do not subscribe to each other and the bench measures one-to-many forwarding.
    let mut mic_cam = None;
    let mut offer = None;
    let mut pending: Option<SdpPendingOffer> = None;
    if offers_first {
        let mut api = rtc.sdp_api();
        if kbps.is_some() {
            let mic = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let cam = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            mic_cam = Some((mic, cam));
        } else {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (o, p) = api.apply().context("an offer")?;
        offer = Some(o);
        pending = Some(p);
    }
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
                    Event::KeyframeRequest(r) if mic_cam.is_some_and(|(_, cam)| r.mid == cam) => want_keyframe = true,
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
            sig = sig_in.recv() => match sig.context("signaling ended")? {
                Sig::Joined => {
                    if !offered && let Some(o) = &offer {
                        offered = true;
                        sig_out.send(Sig::Offer(o.to_sdp_string())).await?;
                    }
                }
                Sig::Answer(sdp) => {
                    let answer = SdpAnswer::from_sdp_string(&sdp)?;
                    let p = pending.take().context("an answer without an offer")?;
                    rtc.sdp_api().accept_answer(p, answer)?;
                }
                Sig::Offer(sdp) => {
                    let offer = SdpOffer::from_sdp_string(&sdp)?;
                    let answer = rtc.sdp_api().accept_offer(offer)?;
                    sig_out.send(Sig::Answer(answer.to_sdp_string())).await?;
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                rtc.handle_input(Input::Timeout(now))?;
                if let Some((mic, cam)) = mic_cam && connected {
                    if now >= start + Duration::from_millis(20) * audio_n {
                        let data = audio_frame();
                        counters.sent_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        send(&mut rtc, mic, Codec::Opus, MediaTime::new(u64::from(audio_n) * 960, Frequency::FORTY_EIGHT_KHZ), now, data)?;
                        audio_n += 1;
                    }
                    if now >= start + Duration::from_millis(33) * video_n {
                        let key = std::mem::take(&mut want_keyframe) || video_n % 60 == 0;
                        let data = video_frame(key, frame_bytes, video_n);
                        counters.sent_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
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
