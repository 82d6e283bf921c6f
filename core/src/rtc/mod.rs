//! The tokio shell around [`crate::router`]: one UDP socket per node, one task per peer owning
//! its `str0m::Rtc`, a timer task per room, and the API the gateway's signaling calls.
//!
//! ```text
//!  UDP socket ──recv task──▶ demux (STUN ufrag, then remote address) ──▶ peer task ─┐
//!                                                                                  │ frames
//!  peer task ◀── forwarded frames (bounded queue, dropped when full) ◀── room ◀────┘
//!      │ transmit: try_send_to on the shared socket
//!      └──▶ MediaEvent (offer to send, connected, speaking, closed) ──▶ gateway
//! ```
//!
//! A [`PeerHandle`] is the gateway's grip on one participant's media session: it passes the
//! client's SDP and candidates in, and dropping it ends the session. The session's events come
//! out of the receiver [`MediaNode::join`] returns.
//!
//! Architecture Invariant: the decisions (who gets which frame, when to ask for a keyframe,
//! when to renegotiate) are made in `router`; this module only moves bytes and time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use str0m::config::CryptoProvider;
use str0m::ice::StunMessage;
use str0m::media::{KeyframeRequestKind, MediaData};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::router::{Decision, Peer, PeerEvent, PeerId, PeerOutput, Room, RoomConfig, RouterError, TrackId, TrackInfo};

pub use crate::router::{LocalFrame, TrackSource};

/// How a node binds and what it tells clients.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The UDP address to bind (port 0 picks a free port).
    pub bind: SocketAddr,
    /// The IP clients send media to, announced as the host candidate. Needed when `bind` is a
    /// wildcard address or behind NAT; defaults to the bind IP. The port is the bound port.
    pub advertised_ip: Option<IpAddr>,
    /// Room limits and tuning.
    pub room: RoomConfig,
}

impl NodeConfig {
    /// A node on `bind`, announcing the bind address.
    pub fn new(bind: SocketAddr) -> Self {
        NodeConfig { bind, advertised_ip: None, room: RoomConfig::default() }
    }
}

/// Errors of the media node and its sessions.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The node binds a wildcard address and has no advertised IP to announce to clients.
    #[error("bind address {0} is a wildcard: configure the IP clients should send media to")]
    NoAdvertisedAddress(SocketAddr),
    /// The router refused the input (bad SDP, full room, ...).
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The peer's media session has ended.
    #[error("the media session has ended")]
    Closed,
    /// No such participant in the room.
    #[error("participant {participant} is not in room {room}")]
    UnknownParticipant { room: String, participant: String },
}

/// What a media session reports to the signaling layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// Send this SDP offer to the client (`webrtc-offer`); pass its answer to
    /// [`PeerHandle::answer`]. After the client's first offer only the server offers.
    Offer(String),
    /// ICE and DTLS are up: media flows.
    Connected,
    /// The client started publishing a track.
    TrackPublished(TrackSource),
    /// The participant started or stopped speaking (rate-limited).
    Speaking(bool),
    /// The session ended; no more events follow.
    Closed(CloseReason),
}

/// One frame a tap sees: whose, from which source, and the depacketized data (str0m `MediaData`).
pub struct TapFrame<'a> {
    pub participant: &'a str,
    pub source: TrackSource,
    pub data: &'a MediaData,
}

/// Receives every frame published in a room that moderation lets through (muted tracks are not tapped),
/// on the publisher's task: it must not block (hand the frame to a bounded queue).
pub type MediaTap = Arc<dyn Fn(&TapFrame<'_>) + Send + Sync>;

/// Why a media session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The handle was dropped or [`PeerHandle::leave`] called.
    Left,
    /// The client stopped answering (ICE timed out) or never connected.
    Disconnected,
    /// str0m failed on the session's input.
    Failed(String),
}

/// How long a peer may take from its first offer to a working connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Datagrams queued for one peer task before the socket task drops new ones.
const DATAGRAM_QUEUE: usize = 2048;
/// Forwarded frames queued for one subscriber before new ones are dropped (its decoder then
/// asks for a keyframe).
const FRAME_QUEUE: usize = 512;
/// Upper bound of a room timer's sleep, so timers scheduled by frames are never late by more.
const ROOM_TICK: Duration = Duration::from_millis(50);

/// A UDP media node: the socket, its rooms and their peers.
#[derive(Clone)]
pub struct MediaNode {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Arc<UdpSocket>,
    /// The host candidate announced to clients.
    advertised: SocketAddr,
    crypto: Arc<CryptoProvider>,
    room_config: RoomConfig,
    rooms: Mutex<HashMap<String, Arc<RoomShared>>>,
    /// Taps by room name; kept here too so a room that empties and fills again keeps its tap.
    taps: Mutex<HashMap<String, MediaTap>>,
    /// Program previews by room name, kept for the same reason.
    programs: Mutex<HashMap<String, Arc<ProgramShared>>>,
    demux: Arc<Mutex<Demux>>,
    next_peer: AtomicU64,
    /// The socket's receive loop; aborted when the node is dropped.
    recv_task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.recv_task.abort();
    }
}

/// One room: the router's state machine and the channels to its peers' tasks.
struct RoomShared {
    name: String,
    state: Mutex<RoomState>,
}

struct RoomState {
    room: Room,
    links: HashMap<PeerId, PeerLink>,
    /// The room's program, fed every frame moderation lets through.
    tap: Option<MediaTap>,
    /// The program preview the node publishes into the room, if any.
    program: Option<(TrackId, Arc<ProgramShared>)>,
    /// The room left the node (last peer gone); its timer task ends.
    closed: bool,
}

/// The way into a peer task.
struct PeerLink {
    participant: String,
    cmd: mpsc::UnboundedSender<PeerCmd>,
    frames: mpsc::Sender<Arc<Forwarded>>,
    events: mpsc::UnboundedSender<MediaEvent>,
}

/// A frame on its way from a publisher's task (or the node's program preview) to a subscriber's.
struct Forwarded {
    track: TrackId,
    payload: Payload,
}

#[allow(clippy::large_enum_variant, reason = "a frame moves by value on the hot path; boxing would allocate per frame")]
enum Payload {
    /// Depacketized from a publisher.
    Relayed(MediaData),
    /// Encoded by the node.
    Local(LocalFrame),
}

/// A [`ProgramTrack`]'s state the room reaches.
struct ProgramShared {
    /// A watcher's decoder needs a keyframe.
    keyframe_wanted: AtomicBool,
}

enum PeerCmd {
    Offer(String, oneshot::Sender<Result<String, RouterError>>),
    Answer(String, oneshot::Sender<Result<(), RouterError>>),
    Candidate(String, oneshot::Sender<Result<(), RouterError>>),
    Subscribe(TrackInfo),
    Unsubscribe(TrackId),
    RequestKeyframe(TrackId, KeyframeRequestKind),
    Leave,
}

struct Datagram {
    received: Instant,
    source: SocketAddr,
    data: Vec<u8>,
}

/// Finds the peer a datagram belongs to: by the local ufrag in a STUN request's USERNAME, and
/// afterwards by the remote address those requests came from.
#[derive(Default)]
struct Demux {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    inboxes: HashMap<PeerId, mpsc::Sender<Datagram>>,
}

impl Demux {
    fn route(&mut self, buf: &[u8], source: SocketAddr) -> Option<&mpsc::Sender<Datagram>> {
        let is_stun = buf.len() >= 20 && buf[0] < 2;
        let peer = if is_stun {
            let msg = StunMessage::parse(buf).ok()?;
            match msg.split_username().and_then(|(local, _)| self.by_ufrag.get(local)).copied() {
                Some(peer) => {
                    self.by_addr.insert(source, peer);
                    peer
                }
                None => *self.by_addr.get(&source)?,
            }
        } else {
            *self.by_addr.get(&source)?
        };
        self.inboxes.get(&peer)
    }

    fn remove(&mut self, peer: PeerId) {
        self.by_ufrag.retain(|_, p| *p != peer);
        self.by_addr.retain(|_, p| *p != peer);
        self.inboxes.remove(&peer);
    }
}

impl MediaNode {
    /// Binds the node's UDP socket and starts receiving. Must run inside a tokio runtime.
    pub async fn bind(config: NodeConfig) -> Result<Self, NodeError> {
        let socket =
            UdpSocket::bind(config.bind).await.map_err(|source| NodeError::Bind { addr: config.bind, source })?;
        let local = socket.local_addr().map_err(|source| NodeError::Bind { addr: config.bind, source })?;
        let ip = config.advertised_ip.unwrap_or(local.ip());
        if ip.is_unspecified() {
            return Err(NodeError::NoAdvertisedAddress(local));
        }
        let socket = Arc::new(socket);
        let demux = Arc::new(Mutex::new(Demux::default()));
        let recv_task = tokio::spawn(receive_loop(socket.clone(), demux.clone()));
        tracing::info!(%local, advertised = %SocketAddr::new(ip, local.port()), "media node bound");
        Ok(MediaNode {
            inner: Arc::new(Inner {
                socket,
                advertised: SocketAddr::new(ip, local.port()),
                crypto: Arc::new(str0m::crypto::from_feature_flags()),
                room_config: config.room,
                rooms: Mutex::new(HashMap::new()),
                taps: Mutex::new(HashMap::new()),
                programs: Mutex::new(HashMap::new()),
                demux,
                next_peer: AtomicU64::new(1),
                recv_task,
            }),
        })
    }

    /// The address clients send media to.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.inner.advertised
    }

    /// Starts a media session for `participant` in `room` (created on first join). The
    /// session is subscribed to every track already published in the room; the client's first
    /// offer goes to [`PeerHandle::offer`]. Must run inside a tokio runtime.
    pub fn join(
        &self,
        room: &str,
        participant: &str,
    ) -> Result<(PeerHandle, mpsc::UnboundedReceiver<MediaEvent>), NodeError> {
        let inner = &self.inner;
        let id = PeerId(inner.next_peer.fetch_add(1, Ordering::Relaxed));
        let mut peer = Peer::new(id, inner.advertised, inner.crypto.clone(), Instant::now());
        let ufrag = peer.local_ufrag();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (dgram_tx, dgram_rx) = mpsc::channel(DATAGRAM_QUEUE);

        let shared = {
            let mut rooms = inner.rooms.lock();
            let shared = rooms
                .entry(room.to_string())
                .or_insert_with(|| {
                    let mut router = Room::new(inner.room_config);
                    let program = inner.programs.lock().get(room).map(|p| (router.publish_program(), p.clone()));
                    let shared = Arc::new(RoomShared {
                        name: room.to_string(),
                        state: Mutex::new(RoomState {
                            room: router,
                            links: HashMap::new(),
                            tap: inner.taps.lock().get(room).cloned(),
                            program,
                            closed: false,
                        }),
                    });
                    tokio::spawn(room_timer(shared.clone()));
                    shared
                })
                .clone();
            let mut st = shared.state.lock();
            if let Err(e) = st.room.add_peer(id, participant) {
                if st.room.is_empty() {
                    st.closed = true;
                    rooms.remove(room);
                }
                return Err(e.into());
            }
            st.links.insert(
                id,
                PeerLink {
                    participant: participant.to_string(),
                    cmd: cmd_tx.clone(),
                    frames: frames_tx,
                    events: events_tx.clone(),
                },
            );
            dispatch(&mut st);
            drop(st);
            shared
        };
        {
            let mut demux = inner.demux.lock();
            demux.by_ufrag.insert(ufrag, id);
            demux.inboxes.insert(id, dgram_tx);
        }
        let task = PeerTask {
            registration: Registration {
                inner: inner.clone(),
                room: shared.clone(),
                id,
                events: events_tx,
                reason: CloseReason::Failed("the session task panicked".into()),
            },
            peer,
            cmd_rx,
            frames_rx,
            dgram_rx,
            connect_by: None,
        };
        tokio::spawn(task.run());
        tracing::debug!(room, participant, peer = id.0, "joined");
        Ok((PeerHandle { id, participant: participant.to_string(), room: shared, cmd: cmd_tx }, events_rx))
    }

    /// Moderation: stop (or resume) forwarding a participant's tracks from `source` in `room`.
    pub fn set_muted(&self, room: &str, participant: &str, source: TrackSource, muted: bool) -> Result<(), NodeError> {
        let unknown = || NodeError::UnknownParticipant { room: room.to_string(), participant: participant.to_string() };
        let shared = self.inner.rooms.lock().get(room).cloned().ok_or_else(unknown)?;
        let mut st = shared.state.lock();
        let peer = st.room.peer_of(participant).ok_or_else(unknown)?;
        st.room.set_muted(peer, source, muted, Instant::now())?;
        dispatch(&mut st);
        Ok(())
    }

    /// Sends every frame published in `room` (now and after it empties and fills again) to `tap`, or stops
    /// with `None`. Installing a tap asks every video publisher for a keyframe, so decoders start at once.
    pub fn set_tap(&self, room: &str, tap: Option<MediaTap>) {
        {
            let mut taps = self.inner.taps.lock();
            match &tap {
                Some(t) => taps.insert(room.to_string(), t.clone()),
                None => taps.remove(room),
            };
        }
        let Some(shared) = self.inner.rooms.lock().get(room).cloned() else { return };
        let mut st = shared.state.lock();
        let starting = tap.is_some();
        st.tap = tap;
        if starting {
            st.room.request_keyframes(None, Instant::now());
            dispatch(&mut st);
        }
    }

    /// Asks `participant`'s video publishers in `room` for a keyframe (e.g. they were just put on stage).
    pub fn request_keyframes(&self, room: &str, participant: &str) {
        let Some(shared) = self.inner.rooms.lock().get(room).cloned() else { return };
        let mut st = shared.state.lock();
        st.room.request_keyframes(Some(participant), Instant::now());
        dispatch(&mut st);
    }

    /// Publishes the program preview into `room` (now, and whenever the room empties and fills again) for the
    /// peers that watch it ([`PeerHandle::watch_program`]); dropping the returned track withdraws it. A second
    /// call replaces the first's track.
    pub fn publish_program(&self, room: &str) -> ProgramTrack {
        let shared = Arc::new(ProgramShared { keyframe_wanted: AtomicBool::new(true) });
        self.inner.programs.lock().insert(room.to_string(), shared.clone());
        let existing = self.inner.rooms.lock().get(room).cloned();
        if let Some(room) = existing {
            let mut st = room.state.lock();
            st.room.unpublish_program();
            let track = st.room.publish_program();
            st.program = Some((track, shared.clone()));
            dispatch(&mut st);
        }
        ProgramTrack { inner: self.inner.clone(), room: room.to_string(), shared }
    }

    /// The participants with a media session in `room`.
    pub fn participants(&self, room: &str) -> Vec<String> {
        let Some(shared) = self.inner.rooms.lock().get(room).cloned() else { return vec![] };
        let st = shared.state.lock();
        st.links.values().map(|l| l.participant.clone()).collect()
    }
}

/// The gateway's grip on one participant's media session. Dropping it ends the session.
pub struct PeerHandle {
    id: PeerId,
    participant: String,
    room: Arc<RoomShared>,
    cmd: mpsc::UnboundedSender<PeerCmd>,
}

impl PeerHandle {
    /// The participant this session belongs to.
    pub fn participant(&self) -> &str {
        &self.participant
    }

    /// The room.
    pub fn room(&self) -> &str {
        &self.room.name
    }

    /// Passes the client's offer (`webrtc-offer`) and returns the server's answer. Only the
    /// first exchange is client-initiated; a later client offer is refused while a server offer
    /// awaits its answer ([`RouterError::OfferCollision`]).
    pub async fn offer(&self, sdp: String) -> Result<String, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(PeerCmd::Offer(sdp, tx)).map_err(|_| NodeError::Closed)?;
        Ok(rx.await.map_err(|_| NodeError::Closed)??)
    }

    /// Passes the client's answer (`webrtc-answer`) to the server's last offer.
    pub async fn answer(&self, sdp: String) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(PeerCmd::Answer(sdp, tx)).map_err(|_| NodeError::Closed)?;
        Ok(rx.await.map_err(|_| NodeError::Closed)??)
    }

    /// Passes a trickled ICE candidate (`ice-candidate`'s `candidate` line). An empty line
    /// (end of candidates) is accepted and ignored.
    pub async fn add_ice_candidate(&self, candidate: String) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(PeerCmd::Candidate(candidate, tx)).map_err(|_| NodeError::Closed)?;
        Ok(rx.await.map_err(|_| NodeError::Closed)??)
    }

    /// Stops (or resumes) forwarding this participant's `source` — moderation, or the
    /// participant unmuting themselves.
    pub fn set_muted(&self, source: TrackSource, muted: bool) -> Result<(), NodeError> {
        let mut st = self.room.state.lock();
        st.room.set_muted(self.id, source, muted, Instant::now())?;
        dispatch(&mut st);
        Ok(())
    }

    /// Lets this participant watch the room's program preview (hosts and co-hosts), or stops that.
    pub fn watch_program(&self, watch: bool) -> Result<(), NodeError> {
        let mut st = self.room.state.lock();
        st.room.watch_program(self.id, watch)?;
        dispatch(&mut st);
        Ok(())
    }

    /// Ends the session (same as dropping the handle).
    pub fn leave(self) {}
}

/// The program preview a node publishes into a room ([`MediaNode::publish_program`]): the frames the program's
/// preview encoder sends go to the peers that watch it. Dropping it withdraws the track.
pub struct ProgramTrack {
    inner: Arc<Inner>,
    room: String,
    shared: Arc<ProgramShared>,
}

impl ProgramTrack {
    /// The room's state, while this track is the one published there.
    fn with_room<T>(&self, f: impl FnOnce(&mut RoomState, TrackId) -> T) -> Option<T> {
        let room = self.inner.rooms.lock().get(&self.room).cloned()?;
        let mut st = room.state.lock();
        let track = st.program.as_ref().filter(|(_, p)| Arc::ptr_eq(p, &self.shared)).map(|(t, _)| *t)?;
        Some(f(&mut st, track))
    }

    /// Whether anyone watches (so encoding is worth it).
    pub fn watched(&self) -> bool {
        self.with_room(|st, _| st.room.program_watched()).unwrap_or(false)
    }

    /// Whether a watcher asked for a keyframe since the last call (the first call says yes).
    pub fn take_keyframe_request(&self) -> bool {
        self.shared.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Sends one encoded frame to the watchers (those still waiting for a keyframe skip deltas).
    pub fn send(&self, frame: LocalFrame) {
        let mut targets = Vec::new();
        self.with_room(|st, track| {
            let info = crate::router::Frame { keyframe: frame.keyframe, contiguous: true, ..Default::default() };
            st.room.on_frame(track, info, Instant::now(), &mut targets);
            deliver(st, &targets, track, Payload::Local(frame));
            dispatch(st);
        });
    }
}

impl crate::media::PreviewSink for ProgramTrack {
    fn watched(&self) -> bool {
        ProgramTrack::watched(self)
    }

    fn take_keyframe_request(&self) -> bool {
        ProgramTrack::take_keyframe_request(self)
    }

    fn send(&self, frame: crate::media::PreviewPacket) {
        let ticks = frame.at.as_micros() * 90_000 / 1_000_000;
        ProgramTrack::send(
            self,
            LocalFrame {
                codec: str0m::format::Codec::Vp8,
                time: str0m::media::MediaTime::from_90khz(ticks as u64),
                wallclock: Instant::now(),
                keyframe: frame.keyframe,
                data: frame.data.into(),
            },
        );
    }
}

impl Drop for ProgramTrack {
    fn drop(&mut self) {
        {
            let mut programs = self.inner.programs.lock();
            if programs.get(&self.room).is_some_and(|p| Arc::ptr_eq(p, &self.shared)) {
                programs.remove(&self.room);
            }
        }
        self.with_room(|st, _| {
            st.room.unpublish_program();
            st.program = None;
            dispatch(st);
        });
    }
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        // The task may be gone already; then there is nothing to end.
        let _ = self.cmd.send(PeerCmd::Leave);
    }
}

/// Queues one frame of `track` to each of `targets`' tasks; a full queue drops it for that subscriber only.
fn deliver(st: &RoomState, targets: &[PeerId], track: TrackId, payload: Payload) {
    if targets.is_empty() {
        return;
    }
    let f = Arc::new(Forwarded { track, payload });
    for peer in targets {
        if let Some(link) = st.links.get(peer)
            && link.frames.try_send(f.clone()).is_err()
        {
            tracing::debug!(peer = peer.0, "subscriber queue full, frame dropped");
        }
    }
}

/// Carries the room's decisions to the peers' tasks. Called with the room locked, after every
/// input to the room.
fn dispatch(st: &mut RoomState) {
    while let Some(decision) = st.room.poll_decision() {
        let (peer, cmd) = match decision {
            Decision::Subscribe { peer, track } => (peer, PeerCmd::Subscribe(track)),
            Decision::Unsubscribe { peer, track } => (peer, PeerCmd::Unsubscribe(track)),
            Decision::RequestKeyframe { publisher, .. } if publisher == PeerId::PROGRAM => {
                if let Some((_, program)) = &st.program {
                    program.keyframe_wanted.store(true, Ordering::Relaxed);
                }
                continue;
            }
            Decision::RequestKeyframe { publisher, track, kind } => (publisher, PeerCmd::RequestKeyframe(track, kind)),
            Decision::Speaking { peer, speaking, .. } => {
                if let Some(link) = st.links.get(&peer) {
                    let _ = link.events.send(MediaEvent::Speaking(speaking));
                }
                continue;
            }
        };
        if let Some(link) = st.links.get(&peer) {
            // A closed channel means the peer task is ending; its cleanup removes it.
            let _ = link.cmd.send(cmd);
        }
    }
}

async fn receive_loop(socket: Arc<UdpSocket>, demux: Arc<Mutex<Demux>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // Errors on an unconnected UDP socket concern one datagram (e.g. ICMP); go on.
                tracing::debug!("UDP receive failed: {e}");
                continue;
            }
        };
        let data = &buf[..n];
        let mut demux = demux.lock();
        let Some(inbox) = demux.route(data, source) else {
            tracing::trace!(%source, len = n, "datagram for no peer");
            continue;
        };
        let dgram = Datagram { received: Instant::now(), source, data: data.to_vec() };
        if inbox.try_send(dgram).is_err() {
            tracing::debug!(%source, "peer inbox full or closed, datagram dropped");
        }
    }
}

async fn room_timer(shared: Arc<RoomShared>) {
    loop {
        let now = Instant::now();
        let next = {
            let mut st = shared.state.lock();
            if st.closed {
                return;
            }
            st.room.handle_timeout(now);
            dispatch(&mut st);
            st.room.poll_timeout(now)
        };
        let next = next.map_or(now + ROOM_TICK, |t| t.min(now + ROOM_TICK)).max(now + Duration::from_millis(1));
        tokio::time::sleep_until(next.into()).await;
    }
}

/// Removes a peer from the node when its task ends, however it ends (including a panic).
struct Registration {
    inner: Arc<Inner>,
    room: Arc<RoomShared>,
    id: PeerId,
    events: mpsc::UnboundedSender<MediaEvent>,
    reason: CloseReason,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inner.demux.lock().remove(self.id);
        {
            // Lock order: rooms, then a room's state (as in `join`).
            let mut rooms = self.inner.rooms.lock();
            let mut st = self.room.state.lock();
            st.room.remove_peer(self.id);
            st.links.remove(&self.id);
            dispatch(&mut st);
            if st.room.is_empty() {
                st.closed = true;
                if rooms.get(&self.room.name).is_some_and(|r| Arc::ptr_eq(r, &self.room)) {
                    rooms.remove(&self.room.name);
                }
            }
        }
        tracing::debug!(room = %self.room.name, peer = self.id.0, reason = ?self.reason, "left");
        let _ = self.events.send(MediaEvent::Closed(self.reason.clone()));
    }
}

struct PeerTask {
    registration: Registration,
    peer: Peer,
    cmd_rx: mpsc::UnboundedReceiver<PeerCmd>,
    frames_rx: mpsc::Receiver<Arc<Forwarded>>,
    dgram_rx: mpsc::Receiver<Datagram>,
    /// Set by the first offer: the connection must be up by then.
    connect_by: Option<Instant>,
}

impl PeerTask {
    async fn run(mut self) {
        let reason = match self.run_loop().await {
            Ok(reason) => reason,
            Err(e) => CloseReason::Failed(e.to_string()),
        };
        self.peer.disconnect();
        self.registration.reason = reason;
    }

    async fn run_loop(&mut self) -> Result<CloseReason, RouterError> {
        let mut targets = Vec::new();
        loop {
            let deadline = self.drive(&mut targets)?;
            if !self.peer.is_alive() {
                return Ok(CloseReason::Disconnected);
            }
            if let Some(by) = self.connect_by {
                if self.peer.is_connected() {
                    self.connect_by = None;
                } else if Instant::now() >= by {
                    return Ok(CloseReason::Disconnected);
                }
            }
            let deadline = self.connect_by.map_or(deadline, |by| deadline.min(by));
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(PeerCmd::Leave) => return Ok(CloseReason::Left),
                    Some(cmd) => self.handle_cmd(cmd),
                },
                Some(d) = self.dgram_rx.recv() => {
                    self.peer.handle_receive(d.received, d.source, &d.data)?;
                    // Take what else arrived without going round the select.
                    while let Ok(d) = self.dgram_rx.try_recv() {
                        self.peer.handle_receive(d.received, d.source, &d.data)?;
                    }
                }
                Some(f) = self.frames_rx.recv() => {
                    self.write(&f);
                    while let Ok(f) = self.frames_rx.try_recv() {
                        self.write(&f);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.peer.handle_timeout(Instant::now())?;
                }
            }
        }
    }

    fn write(&mut self, f: &Forwarded) {
        let written = match &f.payload {
            Payload::Relayed(data) => self.peer.write_frame(f.track, data),
            Payload::Local(frame) => self.peer.write_local(f.track, frame),
        };
        if let Err(e) = written {
            tracing::debug!(peer = self.peer.id().0, "frame not written: {e}");
        }
    }

    fn handle_cmd(&mut self, cmd: PeerCmd) {
        match cmd {
            PeerCmd::Offer(sdp, reply) => {
                let result = self.peer.accept_offer(&sdp);
                if result.is_ok() && self.connect_by.is_none() && !self.peer.is_connected() {
                    self.connect_by = Some(Instant::now() + CONNECT_TIMEOUT);
                }
                let _ = reply.send(result);
            }
            PeerCmd::Answer(sdp, reply) => {
                let _ = reply.send(self.peer.accept_answer(&sdp));
            }
            PeerCmd::Candidate(c, reply) => {
                let _ = reply.send(self.peer.add_remote_candidate(&c));
            }
            PeerCmd::Subscribe(track) => self.peer.subscribe(track),
            PeerCmd::Unsubscribe(track) => self.peer.unsubscribe(track),
            PeerCmd::RequestKeyframe(track, kind) => self.peer.request_keyframe(track, kind),
            // `run_loop` ends the task on Leave before it gets here.
            PeerCmd::Leave => {}
        }
    }

    /// Polls the peer until it only waits for time, acting on what it says.
    fn drive(&mut self, targets: &mut Vec<PeerId>) -> Result<Instant, RouterError> {
        loop {
            match self.peer.poll_output()? {
                PeerOutput::Transmit(t) => {
                    if let Err(e) = self.registration.inner.socket.try_send_to(&t.contents, t.destination) {
                        tracing::debug!(destination = %t.destination, "UDP send failed: {e}");
                    }
                }
                PeerOutput::Timeout(t) => return Ok(t),
                PeerOutput::Event(e) => self.on_event(e, targets),
            }
        }
    }

    fn on_event(&mut self, event: PeerEvent, targets: &mut Vec<PeerId>) {
        let id = self.peer.id();
        let room = &self.registration.room;
        let events = &self.registration.events;
        let now = Instant::now();
        match event {
            PeerEvent::Frame { track, frame, data } => {
                let mut st = room.state.lock();
                st.room.on_frame(track, frame, now, targets);
                if let Some(tap) = &st.tap
                    && st.room.forwards(track)
                    && let Some(info) = st.room.track(track)
                {
                    tap(&TapFrame { participant: &info.participant, source: info.source, data: &data });
                }
                deliver(&st, targets, track, Payload::Relayed(data));
                dispatch(&mut st);
            }
            PeerEvent::Published { mid, source } => {
                let mut st = room.state.lock();
                match st.room.publish(id, source) {
                    Ok(track) => {
                        self.peer.bind_published(mid, track);
                        let _ = events.send(MediaEvent::TrackPublished(source));
                    }
                    Err(e) => tracing::warn!(peer = id.0, "track not published: {e}"),
                }
                dispatch(&mut st);
            }
            PeerEvent::KeyframeRequest { track, kind } => {
                let mut st = room.state.lock();
                st.room.keyframe_requested(id, track, kind, now);
                dispatch(&mut st);
            }
            PeerEvent::SubscriptionReady { track } => {
                let mut st = room.state.lock();
                st.room.subscription_ready(id, track, now);
                dispatch(&mut st);
            }
            PeerEvent::Offer(sdp) => {
                let _ = events.send(MediaEvent::Offer(sdp));
            }
            PeerEvent::Connected => {
                let _ = events.send(MediaEvent::Connected);
            }
        }
    }
}
