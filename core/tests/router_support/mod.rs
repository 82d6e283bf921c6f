//! Test harness for the router: in-process str0m clients talking to a real `MediaNode` over
//! loopback UDP. A client publishes a synthetic microphone (Opus-typed frames carrying an RFC
//! 6464 level) and camera (VP8-typed frames); the camera sends a keyframe ONLY when the server
//! asks for one with PLI/FIR, so a subscriber that gets a picture proves the request path.
//! Every payload names its sender, so a receiver can check a frame came from the participant
//! its MediaStream id claims.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backyard_core::rtc::{CloseReason, MediaEvent, MediaNode, NodeConfig, PeerHandle};
use parking_lot::Mutex;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A node on loopback with a free port.
pub async fn node() -> MediaNode {
    MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse().expect("an address")))
        .await
        .expect("binding a loopback media node")
}

/// What one client received on one remote stream.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub frames: u32,
    pub keyframes: u32,
    /// When the first frame arrived and whether it was a keyframe.
    pub first: Option<(Instant, bool)>,
    pub last: Option<Instant>,
    /// Frames whose payload did not name the stream's participant.
    pub foreign: u32,
    /// Payload bytes received.
    pub bytes: u64,
    /// For video: how long each frame took from the publisher's write to here, in microseconds (publisher and
    /// subscriber share this process's clock).
    pub latency_us: Vec<u32>,
}

/// The clock video payloads carry their send time on ([`Received::latency_us`]).
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Everything a client observed.
#[derive(Debug, Default)]
pub struct Stats {
    /// By (MediaStream id, kind) of the forwarded track.
    pub received: HashMap<(String, MediaKind), Received>,
    /// Remote tracks whose m-lines are negotiated and not stopped.
    pub open: HashSet<(String, MediaKind)>,
    /// Keyframe requests the server sent to this client's camera.
    pub keyframe_requests: u32,
    pub keyframes_sent: u32,
    pub connected_at: Option<Instant>,
    pub speaking: Vec<bool>,
    pub server_offers: u32,
    pub closed: Option<CloseReason>,
}

/// How a client's synthetic sources behave.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// RFC 6464 level of the microphone, -127 (silence) ..= 0.
    pub audio_level: i8,
    /// Camera frame size in bytes (several RTP packets each).
    pub video_frame_bytes: usize,
}

impl Default for Source {
    fn default() -> Self {
        Source { audio_level: -127, video_frame_bytes: 2500 }
    }
}

pub struct Client {
    pub name: String,
    pub stats: Arc<Mutex<Stats>>,
    pub joined_at: Instant,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A str0m client joined to a node's room, publishing a microphone and a camera (its first offer is
/// answered); the caller drives it.
pub struct Joined {
    pub handle: PeerHandle,
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pub rtc: Rtc,
    pub mic: Mid,
    pub cam: Mid,
}

/// Joins `room` as `name` on loopback and negotiates a send-only microphone and camera.
pub async fn join_publishing(node: &MediaNode, room: &str, name: &str) -> anyhow::Result<Joined> {
    join_publishing_on(node, None, room, name).await
}

/// [`join_publishing`] with the node's peer task spawned on `media` (default: the current runtime).
pub async fn join_publishing_on(
    node: &MediaNode,
    media: Option<&tokio::runtime::Handle>,
    room: &str,
    name: &str,
) -> anyhow::Result<Joined> {
    let (handle, events) = {
        let _on = media.map(|h| h.enter());
        node.join(room, name)?
    };
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc =
        Rtc::builder().set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags())).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut api = rtc.sdp_api();
    let mic = api.add_media(MediaKind::Audio, Direction::SendOnly, Some(name.into()), Some("mic".into()), None);
    let cam = api.add_media(MediaKind::Video, Direction::SendOnly, Some(name.into()), Some("cam".into()), None);
    let (offer, pending) = api.apply().context("an offer")?;
    let answer = handle.offer(offer.to_sdp_string()).await?;
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    Ok(Joined { handle, events, socket, local, rtc, mic, cam })
}

impl Client {
    /// Joins `room` as `name`, publishes microphone and camera in the first offer, and runs
    /// the client until [`Client::leave`].
    pub async fn join(node: &MediaNode, room: &str, name: &str, source: Source) -> anyhow::Result<Client> {
        Client::join_on(node, None, room, name, source).await
    }

    /// [`Client::join`] with the node's peer task spawned on `media` (default: the current runtime).
    pub async fn join_on(
        node: &MediaNode,
        media: Option<&tokio::runtime::Handle>,
        room: &str,
        name: &str,
        source: Source,
    ) -> anyhow::Result<Client> {
        let joined_at = Instant::now();
        let Joined { handle, events, socket, local, rtc, mic, cam } =
            join_publishing_on(node, media, room, name).await?;

        let stats = Arc::new(Mutex::new(Stats::default()));
        let (stop, stop_rx) = oneshot::channel();
        let state = ClientLoop {
            name: name.to_string(),
            rtc,
            socket,
            local,
            handle,
            events,
            mic,
            cam,
            source,
            stats: stats.clone(),
            remote: HashMap::new(),
            want_keyframe: false,
        };
        let task = tokio::spawn(state.run(stop_rx));
        Ok(Client { name: name.to_string(), stats, joined_at, stop: Some(stop), task })
    }

    /// Leaves (drops the session handle) and returns the client loop's result.
    pub async fn leave(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }

    /// A snapshot of what this client received from `stream`.
    pub fn received(&self, stream: &str, kind: MediaKind) -> Received {
        self.stats.lock().received.get(&(stream.to_string(), kind)).cloned().unwrap_or_default()
    }

    /// Whether a forwarded track of `stream` is open on this client.
    pub fn has_open(&self, stream: &str, kind: MediaKind) -> bool {
        self.stats.lock().open.contains(&(stream.to_string(), kind))
    }

    /// Fails if the client loop has already ended with an error.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        if self.task.is_finished() {
            bail!("client {} stopped early", self.name);
        }
        Ok(())
    }
}

/// Polls `cond` every 10 ms until it holds, failing after `within`.
pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct ClientLoop {
    name: String,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    handle: PeerHandle,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    mic: Mid,
    cam: Mid,
    source: Source,
    stats: Arc<Mutex<Stats>>,
    /// Forwarded tracks by the m-line they arrive on.
    remote: HashMap<Mid, (String, MediaKind)>,
    /// The server asked for a keyframe; the next camera frame is one.
    want_keyframe: bool,
}

const AUDIO_EVERY: Duration = Duration::from_millis(20);
const VIDEO_EVERY: Duration = Duration::from_millis(33);

impl ClientLoop {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        let start = Instant::now();
        let (mut audio_n, mut video_n) = (0u64, 0u64);
        let mut events_open = true;
        loop {
            let timeout = self.drive().await?;
            let next_audio = start + AUDIO_EVERY * audio_n as u32;
            let next_video = start + VIDEO_EVERY * video_n as u32;
            let wake = timeout.min(next_audio).min(next_video);
            tokio::select! {
                _ = &mut stop => return Ok(()),
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r?;
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        self.rtc.handle_input(Input::Receive(Instant::now(), receive))?;
                    }
                }
                ev = self.events.recv(), if events_open => match ev {
                    Some(ev) => self.on_server_event(ev).await?,
                    None => events_open = false,
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    self.rtc.handle_input(Input::Timeout(now))?;
                    if now >= next_audio {
                        self.send_audio(audio_n, now)?;
                        audio_n += 1;
                    }
                    if now >= next_video {
                        self.send_video(video_n, now)?;
                        video_n += 1;
                    }
                }
            }
        }
    }

    async fn on_server_event(&mut self, ev: MediaEvent) -> anyhow::Result<()> {
        match ev {
            MediaEvent::Offer(sdp) => {
                self.stats.lock().server_offers += 1;
                let offer = SdpOffer::from_sdp_string(&sdp)?;
                let answer = self.rtc.sdp_api().accept_offer(offer)?;
                self.handle.answer(answer.to_sdp_string()).await?;
                // The offer may have stopped m-lines of tracks that went away.
                let mut stats = self.stats.lock();
                for (mid, key) in &self.remote {
                    if self.rtc.media(*mid).is_none_or(|m| m.disabled()) {
                        stats.open.remove(key);
                    }
                }
            }
            MediaEvent::Speaking(s) => self.stats.lock().speaking.push(s),
            MediaEvent::Closed(reason) => self.stats.lock().closed = Some(reason),
            MediaEvent::Connected
            | MediaEvent::TrackPublished(_)
            | MediaEvent::VideoPaused { .. }
            | MediaEvent::Quality(_) => {}
        }
        Ok(())
    }

    async fn drive(&mut self) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    self.socket.send_to(&t.contents, t.destination).await?;
                }
                Output::Timeout(t) => return Ok(t),
                Output::Event(e) => self.on_rtc_event(e),
            }
        }
    }

    fn on_rtc_event(&mut self, e: Event) {
        let mut stats = self.stats.lock();
        match e {
            Event::Connected => stats.connected_at = Some(Instant::now()),
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                let stream = self.rtc.media(m.mid).map(|m| m.stream_id().to_string()).unwrap_or_default();
                self.remote.insert(m.mid, (stream.clone(), m.kind));
                stats.open.insert((stream, m.kind));
            }
            Event::MediaData(d) => {
                let Some(key) = self.remote.get(&d.mid) else { return };
                let keyframe = d.is_keyframe();
                let marker = format!("from:{};", key.0.split(':').next().unwrap_or_default());
                let genuine = d.data.windows(marker.len()).any(|w| w == marker.as_bytes());
                let now = Instant::now();
                let sent = sent_at(&d.data);
                let r = stats.received.entry(key.clone()).or_default();
                r.frames += 1;
                r.bytes += d.data.len() as u64;
                if let Some(at) = sent.filter(|_| key.1.is_video()) {
                    let elapsed = now.saturating_duration_since(epoch()).as_micros() as u64;
                    r.latency_us.push(elapsed.saturating_sub(at).min(u64::from(u32::MAX)) as u32);
                }
                r.keyframes += u32::from(keyframe);
                r.foreign += u32::from(!genuine);
                r.first.get_or_insert((now, keyframe));
                r.last = Some(now);
            }
            Event::KeyframeRequest(req) if req.mid == self.cam => {
                stats.keyframe_requests += 1;
                self.want_keyframe = true;
            }
            _ => {}
        }
    }

    fn send_audio(&mut self, n: u64, now: Instant) -> anyhow::Result<()> {
        let Some(writer) = self.rtc.writer(self.mic) else { return Ok(()) };
        let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()) else {
            bail!("no Opus negotiated");
        };
        let mut payload = format!("from:{};", self.name).into_bytes();
        payload.resize(80, 0xa5);
        let level = self.source.audio_level;
        writer.audio_level(level, level > -50).write(
            pt,
            now,
            MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ),
            payload,
        )?;
        Ok(())
    }

    fn send_video(&mut self, n: u64, now: Instant) -> anyhow::Result<()> {
        if self.stats.lock().connected_at.is_none() {
            return Ok(());
        }
        let keyframe = std::mem::take(&mut self.want_keyframe);
        let Some(writer) = self.rtc.writer(self.cam) else { return Ok(()) };
        let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()) else {
            bail!("no VP8 negotiated");
        };
        // A VP8 frame tag: bit 0 clear marks a keyframe, which also carries the start code and
        // the picture size; a delta frame has bit 0 set.
        let mut payload = if keyframe {
            vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
        } else {
            vec![0x11, 0x02, 0x00]
        };
        payload.extend_from_slice(format!("from:{};", self.name).as_bytes());
        let at = now.saturating_duration_since(epoch()).as_micros() as u64;
        payload.extend_from_slice(format!("at:{at};").as_bytes());
        payload.resize(self.source.video_frame_bytes, (n % 251) as u8);
        writer.write(pt, now, MediaTime::new(n * 3000, Frequency::NINETY_KHZ), payload)?;
        if keyframe {
            self.stats.lock().keyframes_sent += 1;
        }
        Ok(())
    }
}

/// Feeds every frame published in `room` to `program`, as the gateway does (the node's tap → `ProgramFeed`).
pub fn tap_into(node: &MediaNode, room: &str, program: &Arc<backyard_core::compositor::Program>) {
    let (program, feed) = (program.clone(), Arc::new(backyard_core::compositor::ProgramFeed::new()));
    node.set_tap(room, Some(Arc::new(move |f: &backyard_core::rtc::TapFrame<'_>| feed.push(&program, f))));
}

/// One encoded packet of a clip.
pub struct Packet {
    pub video: bool,
    /// Presentation time in seconds from the clip's start.
    pub pts: f64,
    pub data: Vec<u8>,
}

/// A WebRTC publisher of real media (e.g. an ffmpeg-made clip of VP8 + Opus packets), looping in real time.
pub struct Publisher {
    /// When each video packet was handed to str0m, in order.
    pub sent: Arc<Mutex<Vec<Instant>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Publisher {
    pub async fn join(node: &MediaNode, room: &str, name: &str, clip: (Vec<Packet>, f64)) -> anyhow::Result<Publisher> {
        Self::join_on(node, None, room, name, clip).await
    }

    /// Like [`Publisher::join`], with the node's side of the session (its peer task) on `media`'s runtime,
    /// so a bench can tell the node's CPU from the publisher's by thread.
    pub async fn join_on(
        node: &MediaNode,
        media: Option<&tokio::runtime::Handle>,
        room: &str,
        name: &str,
        clip: (Vec<Packet>, f64),
    ) -> anyhow::Result<Publisher> {
        let Joined { handle, events, socket, local, rtc, mic, cam } =
            join_publishing_on(node, media, room, name).await?;
        let (stop, stop_rx) = oneshot::channel();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let looped =
            Loop { rtc, socket, local, handle, events, mic, cam, packets: clip.0, period: clip.1, sent: sent.clone() };
        Ok(Publisher { sent, stop: Some(stop), task: tokio::spawn(looped.run(stop_rx)) })
    }

    pub async fn leave(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}

struct Loop {
    rtc: Rtc,
    socket: UdpSocket,
    local: std::net::SocketAddr,
    handle: PeerHandle,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    mic: Mid,
    cam: Mid,
    packets: Vec<Packet>,
    period: f64,
    sent: Arc<Mutex<Vec<Instant>>>,
}

impl Loop {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        let mut connected: Option<Instant> = None;
        let mut next = 0usize;
        let mut lap = 0u64;
        loop {
            let timeout = self.drive(&mut connected).await?;
            let due = connected.map(|start| {
                let p = &self.packets[next];
                start + Duration::from_secs_f64(p.pts + lap as f64 * self.period)
            });
            let wake = due.map_or(timeout, |d| d.min(timeout));
            tokio::select! {
                _ = &mut stop => return Ok(()),
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r?;
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        self.rtc.handle_input(Input::Receive(Instant::now(), receive))?;
                    }
                }
                ev = self.events.recv() => match ev {
                    Some(MediaEvent::Offer(sdp)) => {
                        let answer = self.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                        self.handle.answer(answer.to_sdp_string()).await?;
                    }
                    Some(MediaEvent::Closed(reason)) => bail!("media session closed: {reason:?}"),
                    Some(_) => {}
                    None => bail!("media session ended"),
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    self.rtc.handle_input(Input::Timeout(now))?;
                    while due.is_some_and(|d| d <= now) {
                        self.send(next, lap, now)?;
                        next += 1;
                        if next == self.packets.len() {
                            next = 0;
                            lap += 1;
                        }
                        let start = connected.expect("sending only once connected");
                        let p = &self.packets[next];
                        if start + Duration::from_secs_f64(p.pts + lap as f64 * self.period) > now {
                            break;
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, i: usize, lap: u64, now: Instant) -> anyhow::Result<()> {
        let p = &self.packets[i];
        let t = p.pts + lap as f64 * self.period;
        let (mid, codec, time) = if p.video {
            (self.cam, Codec::Vp8, MediaTime::new((t * 90_000.0) as u64, Frequency::NINETY_KHZ))
        } else {
            (self.mic, Codec::Opus, MediaTime::new((t * 48_000.0) as u64, Frequency::FORTY_EIGHT_KHZ))
        };
        let Some(writer) = self.rtc.writer(mid) else { return Ok(()) };
        let Some(pt) = writer.payload_params().find(|x| x.spec().codec == codec).map(|x| x.pt()) else {
            bail!("{codec:?} not negotiated");
        };
        writer.write(pt, now, time, p.data.clone())?;
        if p.video {
            self.sent.lock().push(now);
        }
        Ok(())
    }

    async fn drive(&mut self, connected: &mut Option<Instant>) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    self.socket.send_to(&t.contents, t.destination).await?;
                }
                Output::Timeout(t) => return Ok(t),
                Output::Event(Event::Connected) => *connected = Some(Instant::now()),
                Output::Event(_) => {}
            }
        }
    }
}

/// The send time a video payload carries (`at:<µs>;` after its sender's name), in microseconds since [`epoch`].
fn sent_at(data: &[u8]) -> Option<u64> {
    let head = &data[..data.len().min(96)];
    let start = head.windows(3).position(|w| w == b"at:")? + 3;
    let len = head[start..].iter().position(|&b| b == b';')?;
    std::str::from_utf8(&head[start..start + len]).ok()?.parse().ok()
}
