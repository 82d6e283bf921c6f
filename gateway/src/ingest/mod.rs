//! The node's RTMP ingest: which key may publish, and the relay broadcasts it feeds.
//!
//! core's ingest server speaks RTMP; this decides. A publish names an ingest key (`/api/broadcasts/{id}/ingest-keys`),
//! found by its SHA-256 and never logged. A key in `relay` mode makes its broadcast a pure relay: the stream
//! goes to every enabled destination and the recording with its packets copied (core's
//! [`Relay`]), with the program's per-destination isolation and reconnects. One task per relay broadcast
//! ([`run_relay`]) owns it: it starts the outputs once the publisher's codec configuration is known, marks the
//! broadcast live, carries a reconnecting encoder on without a gap in the outputs' timeline, starts a new
//! recording part if the encoder's parameters changed, and ends the broadcast when the encoder has been gone
//! for [`RECONNECT_GRACE`] or a host ends it.
//!
//! A relay is its broadcast's home as a program is (a fenced lease, see `crate::cluster`): one node at a time
//! copies the stream to the destinations, and its recording rows are written under its token. A relay that
//! loses its lease stops its outputs at once and leaves the show live; when an encoder's node dies, the encoder
//! reconnecting to another node carries the show on there (its publish waits for the lost lease to lapse), and
//! no node takes it over as a program.
//!
//! One publisher per key and per broadcast: a second is refused while the first sends, but a publisher that
//! sent nothing for [`STALE`] (its network died without closing the socket) is dropped for the newcomer,
//! so an encoder reconnecting after a drop gets back in at once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backyard_core::egress::{OutputStatus, Relay, RelayConfig};
use backyard_core::ingest::{AacConfig, Accepted, AvcConfig, Event, IngestHandler, Limits, PublishSink, Verdict};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::cluster::Fence;
use crate::signaling::RoomEvent;
use crate::state::AppState;
use crate::store::{Broadcast, BroadcastStatus, HomeKind, IngestMode, RecordingStatus};
use crate::viewers::ViewerStream;

mod source;

/// How long a relay broadcast waits for its encoder to come back before it ends.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(30);
/// A publisher silent this long is taken for dead when someone else publishes with its key.
pub const STALE: Duration = Duration::from_secs(3);
/// Media a relay holds while it waits for the stream's configuration (a publisher sends it first).
const PENDING_PACKETS: usize = 600;
/// Media a relay waits for audio configuration before it starts without audio.
const AUDIO_WAIT_MS: u32 = 1000;

/// What the studio is told about an ingest key (`ingest-status`, and `status` in the key list).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestStatus {
    /// `idle`, `live` (an encoder is publishing) or `error` (the last publish was ended: see `message`).
    pub state: String,
    /// Why the last publish ended, when it was not the encoder's choice (an unsupported codec, a timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The stream as received: `1280×720 H.264 (High), AAC 48 kHz stereo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

struct Publisher {
    broadcast: Uuid,
    stop: Arc<Notify>,
    last_data: Arc<Mutex<Instant>>,
}

enum Msg {
    /// A publisher with this key took over the broadcast's stream.
    Attach(Uuid),
    Media(Event),
    Detached {
        error: Option<String>,
    },
    End(oneshot::Sender<()>),
}

/// The node's ingest: its address, who publishes, the relay broadcasts.
#[derive(Default)]
pub struct Ingest {
    addr: OnceLock<SocketAddr>,
    publishers: Mutex<HashMap<Uuid, Publisher>>,
    relays: Mutex<HashMap<Uuid, mpsc::Sender<Msg>>>,
    statuses: Mutex<HashMap<Uuid, IngestStatus>>,
    /// The latest status of each output of each relay, by broadcast then output id.
    outputs: Mutex<HashMap<Uuid, OutputStatuses>>,
    /// The stream viewers play, for each relay on air whose show is open to viewers.
    viewers: Mutex<HashMap<Uuid, Arc<ViewerStream>>>,
}

/// The latest status of each output of one relay, by output id.
type OutputStatuses = Arc<Mutex<HashMap<String, OutputStatus>>>;

impl Ingest {
    /// Where the RTMP ingest listens, once started.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.get().copied()
    }

    /// The latest status of an ingest key.
    pub fn status(&self, key: Uuid) -> IngestStatus {
        self.statuses
            .lock()
            .get(&key)
            .cloned()
            .unwrap_or_else(|| IngestStatus { state: "idle".into(), ..Default::default() })
    }

    /// The latest status of a relay's output (a destination's id), while the relay runs.
    pub fn output_status(&self, broadcast: Uuid, id: &str) -> Option<OutputStatus> {
        self.outputs.lock().get(&broadcast).and_then(|o| o.lock().get(id).cloned())
    }

    /// The stream viewers of a relayed show play, while it is on air and open to viewers.
    pub fn viewers(&self, broadcast: Uuid) -> Option<Arc<ViewerStream>> {
        self.viewers.lock().get(&broadcast).cloned()
    }

    /// True while a relay runs for the broadcast.
    pub fn relaying(&self, broadcast: Uuid) -> bool {
        self.relays.lock().get(&broadcast).is_some_and(|tx| !tx.is_closed())
    }

    /// Ends a relay broadcast (a host pressed End): outputs closed, recording finalised, broadcast ended.
    /// False when no relay runs for it.
    /// The broadcasts this node relays an encoder for.
    pub fn relayed(&self) -> Vec<Uuid> {
        self.relays.lock().iter().filter(|(_, tx)| !tx.is_closed()).map(|(b, _)| *b).collect()
    }

    pub async fn end_relay(&self, broadcast: Uuid) -> bool {
        let Some(tx) = self.relays.lock().get(&broadcast).cloned() else { return false };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::End(done)).await.is_err() {
            return false;
        }
        let _ = wait.await;
        true
    }

    /// A key was revoked: its publisher, if any, is disconnected now.
    pub fn revoked(&self, key: Uuid) {
        if let Some(p) = self.publishers.lock().remove(&key) {
            p.stop.notify_one();
        }
        self.statuses.lock().remove(&key);
    }

    /// Makes way for a new publisher: refused with `busy` while a publisher `conflicts` sends; one silent for
    /// [`STALE`] (its network died without closing the connection) is stopped and the newcomer takes over.
    fn make_way(&self, conflicts: impl Fn(&Uuid, &Publisher) -> bool, busy: &str) -> Result<(), String> {
        let mut publishers = self.publishers.lock();
        let Some((&key, p)) = publishers.iter().find(|(k, p)| conflicts(k, p)) else { return Ok(()) };
        if p.last_data.lock().elapsed() < STALE {
            return Err(busy.to_owned());
        }
        p.stop.notify_one();
        publishers.remove(&key);
        Ok(())
    }

    /// An encoder now publishes with `key` into `broadcast`: it is recorded (the key's last use too) and the studio
    /// told. Returns what ends it and when it last sent.
    async fn publishing(&self, state: &AppState, broadcast: Uuid, key: Uuid) -> (Arc<Notify>, Arc<Mutex<Instant>>) {
        let _ = state.store.ingest_key_used(key).await;
        let stop = Arc::new(Notify::new());
        let last_data = Arc::new(Mutex::new(Instant::now()));
        self.publishers.lock().insert(key, Publisher { broadcast, stop: stop.clone(), last_data: last_data.clone() });
        self.set_status(state, broadcast, key, IngestStatus { state: "live".into(), ..Default::default() });
        (stop, last_data)
    }

    /// The encoder publishing with `key` (the one `stop` ends) is gone, for `error` if it was ended: it leaves the
    /// publishers, and the studio is told (unless the key was revoked meanwhile).
    fn publisher_ended(&self, state: &AppState, broadcast: Uuid, key: Uuid, stop: &Arc<Notify>, error: Option<&str>) {
        {
            let mut publishers = self.publishers.lock();
            if publishers.get(&key).is_some_and(|p| Arc::ptr_eq(&p.stop, stop)) {
                publishers.remove(&key);
            }
        }
        let status = match error {
            Some(message) => IngestStatus { state: "error".into(), message: Some(message.to_owned()), stream: None },
            None => IngestStatus { state: "idle".into(), ..Default::default() },
        };
        if self.statuses.lock().contains_key(&key) {
            self.set_status(state, broadcast, key, status);
        }
    }

    /// Keeps a key's status and tells the broadcast's studio (`ingest-status`).
    pub(crate) fn set_status(&self, state: &AppState, broadcast: Uuid, key: Uuid, status: IngestStatus) {
        self.statuses.lock().insert(key, status.clone());
        let state = state.clone();
        tokio::spawn(async move {
            let event = RoomEvent::IngestStatus { ingest_key_id: key, status };
            crate::program::announce(&state, broadcast, event).await;
        });
    }
}

/// Starts the RTMP ingest if the configuration asks for it. An explicitly configured address that cannot be
/// bound stops start-up; the embedded default (port 1935) only warns, so a second instance still runs.
pub async fn start(state: &AppState) -> anyhow::Result<Option<SocketAddr>> {
    let Some((bind, explicit)) = state.cfg.rtmp_ingest()? else { return Ok(None) };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) if !explicit => {
            tracing::warn!(%bind, "RTMP ingest off: cannot listen ({e}); set ingest.rtmp_bind to choose an address");
            return Ok(None);
        }
        Err(e) => return Err(anyhow::anyhow!("ingest.rtmp_bind {bind}: {e}")),
    };
    let addr = listener.local_addr()?;
    let _ = state.ingest.addr.set(addr);
    backyard_core::ingest::serve(listener, Arc::new(Handler { state: state.clone() }), Limits::default());
    tracing::info!(%addr, "RTMP ingest listening");
    Ok(Some(addr))
}

/// The URL an encoder is given (the key goes in its own field): `rtmp://<host>:<port>/live`.
pub fn rtmp_url(state: &AppState) -> Option<String> {
    if let Some(url) = &state.cfg.ingest.rtmp_url {
        return Some(url.clone());
    }
    let addr = state.ingest.addr()?;
    let uri: axum::http::Uri = state.cfg.public_url.parse().ok()?;
    let host = uri.host()?.to_owned();
    Some(format!("rtmp://{host}:{}/live", addr.port()))
}

struct Handler {
    state: AppState,
}

impl IngestHandler for Handler {
    fn publish(&self, _app: String, key: String, peer: SocketAddr) -> Pin<Box<dyn Future<Output = Verdict> + Send>> {
        let state = self.state.clone();
        Box::pin(async move { authorize(&state, &key, peer).await })
    }
}

async fn authorize(state: &AppState, key: &str, peer: SocketAddr) -> Verdict {
    let unknown = || "unknown or revoked stream key".to_owned();
    let row = match state.store.ingest_key_by_hash(&crate::auth::tokens::hash_token(key)).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::info!(%peer, "rtmp ingest: unknown or revoked key");
            return Err(unknown());
        }
        Err(e) => {
            tracing::error!(%peer, "rtmp ingest: store: {e}");
            return Err("the server cannot check keys right now; try again".into());
        }
    };
    let broadcast = match state.store.broadcast(row.broadcast_id).await {
        Ok(Some(b)) => b,
        _ => return Err(unknown()),
    };
    tracing::info!(%peer, key = %row.id, broadcast = %broadcast.id, mode = %row.mode, "rtmp ingest: publish");
    if broadcast.status == BroadcastStatus::Ended {
        return Err("the broadcast has ended; create a new one".into());
    }
    if row.mode == IngestMode::Source {
        return source::publish(state, &broadcast, &row).await;
    }
    let ingest = &state.ingest;
    if broadcast.status == BroadcastStatus::Live && !ingest.relaying(broadcast.id) {
        // Live from the studio, or an encoder's show whose node is gone: this encoder carries that one on.
        let relayed = state.store.home_kind(broadcast.id).await.ok().flatten() == Some(HomeKind::Relay);
        if !relayed || state.cfg.redis.url.is_none() {
            return Err("the broadcast is live from the studio".into());
        }
    }
    ingest.make_way(|_, p| p.broadcast == broadcast.id, "the broadcast already has a live encoder")?;
    if !ingest.relaying(broadcast.id) {
        if let Err(e) = state.check_quota(broadcast.user_id, crate::state::Quota::GoLive).await {
            return Err(format!("{e}"));
        }
        let home = take_home(state, broadcast.id).await?;
        let (tx, rx) = mpsc::channel(2048);
        ingest.relays.lock().insert(broadcast.id, tx);
        let (lost_tx, lost) = oneshot::channel();
        let keeper = crate::cluster::keep_home(state.cluster.clone(), home.clone(), crate::cluster::HOME_RENEW, || {
            let _ = lost_tx.send(());
        });
        let home = Home { fence: home, keeper, lost };
        tokio::spawn(run_relay(state.clone(), broadcast.clone(), row.id, rx, home));
    }
    let Some(tx) = ingest.relays.lock().get(&broadcast.id).cloned() else { return Err(unknown()) };
    if tx.send(Msg::Attach(row.id)).await.is_err() {
        return Err("the broadcast is ending; try again".into());
    }
    let (stop, last_data) = ingest.publishing(state, broadcast.id, row.id).await;
    let sink =
        RelaySink { state: state.clone(), key: row.id, broadcast: broadcast.id, tx, last_data, stop: stop.clone() };
    Ok(Accepted { sink: Box::new(sink), stop })
}

struct RelaySink {
    state: AppState,
    key: Uuid,
    broadcast: Uuid,
    tx: mpsc::Sender<Msg>,
    last_data: Arc<Mutex<Instant>>,
    stop: Arc<Notify>,
}

impl PublishSink for RelaySink {
    fn event(&mut self, event: Event) {
        *self.last_data.lock() = Instant::now();
        // A relay that cannot keep up loses media, never memory.
        let _ = self.tx.try_send(Msg::Media(event));
    }

    fn ended(self: Box<Self>, error: Option<String>) {
        self.state.ingest.publisher_ended(&self.state, self.broadcast, self.key, &self.stop, error.as_deref());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(Msg::Detached { error }).await;
        });
    }
}

/// A relay broadcast's home: one node at a time copies an encoder's stream to the destinations. The lease is
/// renewed by `keeper`; `lost` fires when it was not (this node was frozen or cut off, and another took over).
struct Home {
    fence: Fence,
    keeper: tokio::task::JoinHandle<()>,
    lost: oneshot::Receiver<()>,
}

/// How long an encoder's publish waits for a lost node's lease to lapse (a lease and a renewal), so an encoder
/// that reconnects to another node after its node died carries its show on.
const HOME_WAIT: Duration = Duration::from_secs(7);

/// Takes `broadcast`'s home for an encoder's relay on this node, waiting up to [`HOME_WAIT`] for another node's
/// lease to lapse; the error names the node that holds it.
async fn take_home(state: &AppState, broadcast: Uuid) -> Result<Fence, String> {
    let deadline = tokio::time::Instant::now() + HOME_WAIT;
    loop {
        let floor = match state.store.broadcast(broadcast).await {
            Ok(b) => b.map_or(0, |b| b.home_fence),
            Err(e) => return Err(format!("the server cannot check the broadcast right now ({e}); try again")),
        };
        let holder = match state.cluster.take_home(broadcast, floor).await {
            Ok(Ok(fence)) => match state.store.claim_home(broadcast, fence.token, HomeKind::Relay).await {
                Ok(true) => {
                    // A lost node's part: finalised here if its file is in this node's folder.
                    if let Err(e) = crate::program::finalise_parts_left_behind(state, broadcast).await {
                        tracing::warn!(%broadcast, "finalising the recording parts left behind failed: {e:#}");
                    }
                    return Ok(fence);
                }
                // A newer home claimed the show between the lease and the row: it is that node's.
                Ok(false) => {
                    let _ = state.cluster.directory.release(&fence).await;
                    "another node".to_owned()
                }
                Err(e) => {
                    let _ = state.cluster.directory.release(&fence).await;
                    return Err(format!("the server cannot record the broadcast's home right now ({e}); try again"));
                }
            },
            Ok(Err(holder)) => holder,
            Err(e) => return Err(format!("the cluster directory cannot be reached ({e}); try again")),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("the broadcast is on air from node {holder}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A relay's outputs while they run.
struct Running {
    relay: Relay,
    recording: Uuid,
}

#[derive(Default)]
struct Stream {
    video: Option<AvcConfig>,
    audio: Option<AacConfig>,
    has_audio: Option<bool>,
    pending: VecDeque<Event>,
    /// Video time held in `pending` since its first frame, ms.
    first_video: Option<u32>,
    last_video: Option<u32>,
}

/// Whether the publisher's stream can go on into running outputs.
enum Fit {
    Same,
    /// Not known yet (its configuration is still arriving).
    Pending,
    Different,
}

impl Stream {
    fn waited_for_audio(&self) -> bool {
        match (self.first_video, self.last_video) {
            (Some(a), Some(b)) => b.saturating_sub(a) >= AUDIO_WAIT_MS,
            _ => false,
        }
    }

    fn compare(&self, relay: &Relay) -> Fit {
        let Some(video) = &self.video else { return Fit::Pending };
        if video != relay.video() {
            return Fit::Different;
        }
        match (relay.audio(), &self.audio) {
            (Some(a), Some(b)) if a == b => Fit::Same,
            (Some(_), None) if self.has_audio != Some(false) && !self.waited_for_audio() => Fit::Pending,
            (None, None) => Fit::Same,
            _ => Fit::Different,
        }
    }

    fn ready(&self) -> bool {
        self.video.is_some() && (self.audio.is_some() || self.has_audio == Some(false) || self.waited_for_audio())
    }

    fn describe(&self) -> Option<String> {
        describe(self.video.as_ref()?, self.audio.as_ref())
    }
}

/// What an encoder sends, for the studio: `1280×720 H.264 (High), AAC 48 kHz stereo`.
fn describe(v: &AvcConfig, audio: Option<&AacConfig>) -> Option<String> {
    let profile = match v.profile {
        66 => "Baseline",
        77 => "Main",
        100 => "High",
        _ => "other profile",
    };
    let mut s = format!("{}×{} H.264 ({profile})", v.width, v.height);
    if let Some(a) = audio {
        let ch = if a.channels == 2 { "stereo".to_owned() } else { format!("{} channels", a.channels) };
        s.push_str(&format!(", AAC {} kHz {ch}", a.sample_rate / 1000));
    }
    Some(s)
}

/// One relay broadcast, from its first publish to its end.
async fn run_relay(state: AppState, broadcast: Broadcast, mut key: Uuid, mut rx: mpsc::Receiver<Msg>, home: Home) {
    let b = broadcast.id;
    let Home { fence, keeper, mut lost } = home;
    let token = fence.token;
    let mut home_lost = false;
    let mut stream = Stream::default();
    let mut running: Option<Running> = None;
    let mut went_live = false;
    let mut gone_since: Option<tokio::time::Instant> = None;
    let mut ended_by: Option<oneshot::Sender<()>> = None;
    // Whether the studio was told what the current publisher sends.
    let mut announced = false;
    let reason = loop {
        let grace = gone_since.map(|since| since + RECONNECT_GRACE);
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = &mut lost => {
                home_lost = true;
                break "its home lease was lost (another node carries the show on)";
            }
            _ = tokio::time::sleep_until(grace.unwrap_or_else(tokio::time::Instant::now)), if grace.is_some() => {
                break "the encoder did not come back";
            }
        };
        let Some(msg) = msg else { break "stopped" };
        match msg {
            Msg::Attach(id) => {
                key = id;
                gone_since = None;
                // The encoder sends its configuration again; media waits for it.
                stream = Stream::default();
                announced = false;
                if let Some(r) = &mut running {
                    r.relay.resume();
                }
            }
            Msg::Detached { error } => {
                let why = error.as_deref().unwrap_or("it stopped");
                tracing::info!(broadcast = %b, "relay: the encoder is gone ({why}); waiting for it to come back");
                gone_since = Some(tokio::time::Instant::now());
            }
            Msg::End(done) => {
                ended_by = Some(done);
                break "ended by a host";
            }
            Msg::Media(event) => {
                match &event {
                    Event::VideoConfig(c) => stream.video = Some(c.clone()),
                    Event::AudioConfig(c) => stream.audio = Some(c.clone()),
                    Event::Metadata { has_audio } => stream.has_audio = Some(*has_audio),
                    _ => {}
                }
                let is_media = matches!(event, Event::Video { .. } | Event::Audio { .. });
                if let Event::Video { dts, .. } = &event {
                    stream.first_video.get_or_insert(*dts);
                    stream.last_video = Some(*dts);
                }
                if is_media {
                    if stream.pending.len() == PENDING_PACKETS {
                        stream.pending.pop_front();
                    }
                    stream.pending.push_back(event);
                }
                match running.as_ref().map(|r| stream.compare(&r.relay)) {
                    Some(Fit::Same) => {
                        if !announced {
                            announced = true;
                            let status =
                                IngestStatus { state: "live".into(), message: None, stream: stream.describe() };
                            state.ingest.set_status(&state, b, key, status);
                        }
                    }
                    Some(Fit::Pending) => continue,
                    None | Some(Fit::Different) => {
                        if !stream.ready() {
                            continue;
                        }
                        if let Some(old) = running.take() {
                            // The encoder came back with other parameters: a new recording part.
                            finish(&state, b, old, token).await;
                        }
                        match start_outputs(&state, &broadcast, &stream, token).await {
                            Ok(r) => running = Some(r),
                            Err(message) => {
                                tracing::warn!(broadcast = %b, "relay could not start: {message}");
                                if let Some(p) = state.ingest.publishers.lock().remove(&key) {
                                    p.stop.notify_one();
                                }
                                let status =
                                    IngestStatus { state: "error".into(), message: Some(message), stream: None };
                                state.ingest.set_status(&state, b, key, status);
                                break "the relay could not start";
                            }
                        }
                        announced = true;
                        let status = IngestStatus { state: "live".into(), message: None, stream: stream.describe() };
                        state.ingest.set_status(&state, b, key, status);
                        if !went_live {
                            went_live = true;
                            if let Err(e) = crate::program::mark_live(&state, broadcast.id).await {
                                tracing::error!(broadcast = %b, "could not mark the relay live: {e}");
                            }
                        }
                    }
                }
                if let Some(r) = &mut running {
                    for queued in stream.pending.drain(..) {
                        push(&mut r.relay, queued);
                    }
                }
            }
        }
    };
    tracing::info!(broadcast = %b, "relay ending: {reason}");
    state.ingest.relays.lock().remove(&b);
    rx.close();
    state.ingest.outputs.lock().remove(&b);
    if let Some(p) = state.ingest.publishers.lock().remove(&key) {
        p.stop.notify_one();
    }
    if let Some(r) = running.take() {
        finish(&state, b, r, token).await;
    }
    keeper.abort();
    if home_lost {
        // The show goes on from the node that took it: nothing here says it ended.
    } else {
        // Ended through another node: the row says so already.
        let ended_elsewhere =
            state.store.broadcast(b).await.ok().flatten().is_some_and(|row| row.status == BroadcastStatus::Ended);
        if went_live
            && !ended_elsewhere
            && let Err(e) = crate::program::mark_ended(&state, b, None).await
        {
            tracing::error!(broadcast = %b, "could not mark the relay ended: {e}");
        }
        if let Err(e) = state.cluster.directory.release(&fence).await {
            tracing::warn!(broadcast = %b, "could not give the relay's home up (it lapses by itself): {e}");
        }
    }
    if let Some(done) = ended_by {
        let _ = done.send(());
    }
}

fn push(relay: &mut Relay, event: Event) {
    match event {
        Event::Video { dts, cts, keyframe, data } => relay.push_video(dts, cts, keyframe, &data),
        Event::Audio { ts, data } => relay.push_audio(ts, &data),
        _ => {}
    }
}

async fn start_outputs(
    state: &AppState,
    broadcast: &Broadcast,
    stream: &Stream,
    token: i64,
) -> Result<Running, String> {
    let video = stream.video.clone().ok_or("no video configuration")?;
    // A relay copies the encoder's stream as it came: every destination takes it, whatever its canvas.
    let (destinations, _) = crate::program::resolve_destinations(state, broadcast).await.map_err(|e| e.to_string())?;
    let recording = state
        .store
        .create_recording(broadcast.id, broadcast.user_id, &broadcast.title, token, &state.cluster.node)
        .await
        .map_err(|e| e.to_string())?;
    let path = crate::program::recording_path(&state.cfg, recording.id);
    let hls = crate::viewers::folder(state, broadcast).await;
    let config = RelayConfig {
        video,
        audio: stream.audio.clone(),
        destinations,
        recording: Some(path),
        hls: hls.clone(),
        segment: Duration::from_secs(2),
        reconnect: Default::default(),
        timeouts: Default::default(),
        queue: Duration::from_secs(2),
    };
    let (tx, rx) = mpsc::unbounded_channel::<OutputStatus>();
    let latest = Arc::new(Mutex::new(HashMap::new()));
    state.ingest.outputs.lock().insert(broadcast.id, latest.clone());
    tokio::spawn(crate::program::publish_statuses(state.clone(), broadcast.id, latest, rx));
    let started = tokio::task::spawn_blocking(move || {
        Relay::start(
            config,
            Arc::new(move |s: &OutputStatus| {
                let _ = tx.send(s.clone());
            }),
        )
    })
    .await
    .map_err(|e| e.to_string())?;
    match started {
        Ok(relay) => {
            tracing::info!(broadcast = %broadcast.id, recording = %recording.id, "relay on air");
            if let Some(dir) = hls {
                state.ingest.viewers.lock().insert(broadcast.id, Arc::new(ViewerStream::new(dir, relay.control())));
            }
            Ok(Running { relay, recording: recording.id })
        }
        Err(e) => {
            let _ = state.store.finish_recording(recording.id, RecordingStatus::Failed, 0.0, 0, token).await;
            Err(e.to_string())
        }
    }
}

async fn finish(state: &AppState, broadcast: Uuid, running: Running, token: i64) {
    let Running { relay, recording } = running;
    let viewers = state.ingest.viewers.lock().remove(&broadcast);
    let report = tokio::task::spawn_blocking(move || relay.stop()).await.ok();
    if let Some(viewers) = viewers {
        // The stream goes with the outputs that wrote it (a new one starts if the relay starts again).
        let _ = tokio::fs::remove_dir_all(&viewers.dir).await;
    }
    match crate::program::finalise_recording(state, recording, report.as_ref(), token).await {
        Ok((duration, size)) => tracing::info!(%broadcast, %recording, duration, size, "relay recording finalised"),
        Err(e) => tracing::error!(%broadcast, "could not finalise the relay's recording: {e}"),
    }
}

/// Ends every relay on this node (the server is stopping), as a host's End would.
pub async fn end_all(state: &AppState) {
    let broadcasts: Vec<Uuid> = state.ingest.relays.lock().keys().copied().collect();
    for b in broadcasts {
        state.ingest.end_relay(b).await;
    }
}
