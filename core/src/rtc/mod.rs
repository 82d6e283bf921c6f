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

pub use crate::router::{LocalFrame, Tapped, TrackSource};

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
#[derive(Debug, Clone, PartialEq)]
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
    /// This participant's link, measured over the last second.
    Quality(crate::router::quality::ConnectionQuality),
    /// This participant's link cannot carry even the lowest layer of `participant`'s `source` (its video is
    /// paused), or can again.
    VideoPaused { participant: String, source: TrackSource, paused: bool },
    /// The session ended; no more events follow.
    Closed(CloseReason),
}

/// One frame a tap sees: whose, from which source, and the frame.
pub struct TapFrame<'a> {
    pub participant: &'a str,
    pub source: TrackSource,
    /// The simulcast layer (0 without simulcast): the tap gets one layer of a track at a time
    /// ([`MediaNode::set_tap_size`]), switching at a keyframe.
    pub layer: u8,
    pub data: TapData<'a>,
    /// Who takes it: the program (the layer its tile needs), the publisher's recording (the best layer), or
    /// both.
    pub to: Tapped,
}

/// What a tapped frame is.
pub enum TapData<'a> {
    /// Depacketized from a browser's or a WHIP client's RTP (str0m `MediaData`), here or on another node.
    Rtc(&'a MediaData),
    /// Encoded by another node itself (an encoder in the studio there), carried over the relay. An encoder
    /// on this node feeds this node's program by its own path, not through the tap.
    Local(&'a LocalFrame),
}

/// Receives every frame published in a room that moderation lets through (muted tracks are not tapped) and
/// that the program or a recording takes ([`TapFrame::to`]),
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
/// The most viewers one room of viewers takes ([`MediaNode::join_viewer`]).
pub const MAX_VIEWERS: usize = 200;

/// What a media session does in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionKind {
    /// Publishes and receives (a studio).
    Participant,
    /// Only publishes (WHIP).
    Publisher,
    /// Only watches the program track (WHEP).
    Viewer,
}

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
    /// Counts every time a session joins or leaves a room ([`MediaNode::watch_sessions`]).
    sessions: tokio::sync::watch::Sender<u64>,
    /// The socket's receive loop; aborted when the node is dropped.
    recv_task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.recv_task.abort();
    }
}

mod demux;
mod handle;
mod peer_task;
mod relay;
mod room;

use demux::*;
pub use handle::{LocalPublisher, PeerHandle, ProgramTrack};
use peer_task::*;
pub use relay::{RelayOut, RelayOutput, RelayTrack, RelayedData, RelayedFrame, RemoteKeyframe, RemotePublisher};
use room::*;

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
                sessions: tokio::sync::watch::Sender::new(0),
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
        self.start_session(room, participant, SessionKind::Participant)
    }

    /// Starts a media session that only publishes (a WHIP client): its one offer is answered and it is never
    /// sent an offer or a track; everyone in the room gets what it publishes. Must run inside a tokio runtime.
    pub fn join_publisher(
        &self,
        room: &str,
        participant: &str,
    ) -> Result<(PeerHandle, mpsc::UnboundedReceiver<MediaEvent>), NodeError> {
        self.start_session(room, participant, SessionKind::Publisher)
    }

    /// Starts a media session that only watches `room`'s program track ([`MediaNode::publish_program`]): a WHEP
    /// viewer, which offers once to receive and is never sent an offer. A room of viewers takes up to
    /// [`MAX_VIEWERS`] of them. Must run inside a tokio runtime.
    pub fn join_viewer(
        &self,
        room: &str,
        viewer: &str,
    ) -> Result<(PeerHandle, mpsc::UnboundedReceiver<MediaEvent>), NodeError> {
        self.start_session(room, viewer, SessionKind::Viewer)
    }

    fn start_session(
        &self,
        room: &str,
        participant: &str,
        kind: SessionKind,
    ) -> Result<(PeerHandle, mpsc::UnboundedReceiver<MediaEvent>), NodeError> {
        let inner = &self.inner;
        let id = PeerId(inner.next_peer.fetch_add(1, Ordering::Relaxed));
        let mut peer = Peer::new(id, inner.advertised, inner.crypto.clone(), Instant::now());
        if kind == SessionKind::Viewer {
            peer.set_viewer();
        }
        let ufrag = peer.local_ufrag();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (dgram_tx, dgram_rx) = mpsc::channel(DATAGRAM_QUEUE);

        let (shared, ()) = self.enter(room, kind == SessionKind::Viewer, |st| {
            let added = match kind {
                SessionKind::Participant => st.room.add_peer(id, participant),
                SessionKind::Publisher => st.room.add_publisher(id, participant),
                SessionKind::Viewer => st.room.add_peer(id, participant).and_then(|()| st.room.watch_program(id, true)),
            };
            added?;
            if kind != SessionKind::Viewer {
                drop_stale_remotes(st, participant, id);
            }
            st.links.insert(
                id,
                PeerLink {
                    participant: participant.to_string(),
                    relay: false,
                    cmd: cmd_tx.clone(),
                    frames: frames_tx,
                    events: events_tx.clone(),
                },
            );
            Ok(())
        })?;
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
        inner.sessions.send_modify(|n| *n += 1);
        tracing::debug!(room, participant, peer = id.0, "joined");
        Ok((PeerHandle { id, participant: participant.to_string(), room: shared, cmd: cmd_tx }, events_rx))
    }

    /// Runs `f` on room `name`'s state, making the room if it does not exist (a room of viewers takes
    /// [`MAX_VIEWERS`]), with the node's room list locked so the room cannot leave meanwhile; a room that `f`
    /// leaves empty after failing is dropped again. Must run inside a tokio runtime (a new room's timer).
    fn enter<T>(
        &self,
        name: &str,
        viewers: bool,
        f: impl FnOnce(&mut RoomState) -> Result<T, NodeError>,
    ) -> Result<(Arc<RoomShared>, T), NodeError> {
        let inner = &self.inner;
        let mut rooms = inner.rooms.lock();
        let shared = rooms
            .entry(name.to_string())
            .or_insert_with(|| {
                let config = if viewers {
                    RoomConfig { max_peers: MAX_VIEWERS, ..inner.room_config }
                } else {
                    inner.room_config
                };
                let mut router = Room::new(config);
                let program = inner.programs.lock().get(name).map(|p| (router.publish_program(), p.clone()));
                let tap = inner.taps.lock().get(name).cloned();
                router.set_tapped(tap.is_some());
                let shared = Arc::new(RoomShared {
                    name: name.to_string(),
                    state: Mutex::new(RoomState {
                        room: router,
                        links: HashMap::new(),
                        locals: HashMap::new(),
                        remotes: HashMap::new(),
                        tap,
                        program,
                        closed: false,
                    }),
                });
                tokio::spawn(room_timer(shared.clone()));
                shared
            })
            .clone();
        let mut st = shared.state.lock();
        let result = f(&mut st);
        if result.is_err() && st.room.is_empty() {
            st.closed = true;
            rooms.remove(name);
        }
        let value = result?;
        dispatch(&mut st);
        drop(st);
        Ok((shared, value))
    }

    /// Publishes `sources` in `room` on behalf of `participant` from frames the node itself has (an RTMP
    /// encoder in the studio): everyone in the room is subscribed, as to a participant's tracks, and frames go
    /// out through [`LocalPublisher::send`]. Dropping the publisher withdraws the tracks. Must run inside a
    /// tokio runtime.
    pub fn publish_source(
        &self,
        room: &str,
        participant: &str,
        sources: &[TrackSource],
    ) -> Result<LocalPublisher, NodeError> {
        let id = PeerId(self.inner.next_peer.fetch_add(1, Ordering::Relaxed));
        let shared = Arc::new(LocalShared { keyframe_wanted: AtomicBool::new(true) });
        let (room, tracks) = self.enter(room, false, |st| {
            st.room.add_publisher(id, participant)?;
            let tracks =
                sources.iter().map(|&s| st.room.publish_fixed(id, s).map(|t| (s, t))).collect::<Result<Vec<_>, _>>();
            match tracks {
                Ok(tracks) => {
                    st.locals.insert(id, shared.clone());
                    Ok(tracks)
                }
                Err(e) => {
                    st.room.remove_peer(id);
                    Err(e.into())
                }
            }
        })?;
        tracing::debug!(room = %room.name, participant, peer = id.0, "local source published");
        Ok(LocalPublisher { inner: self.inner.clone(), room, id, participant: participant.to_string(), tracks, shared })
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
        st.room.set_tapped(starting);
        if starting {
            st.room.request_keyframes(None, Instant::now());
            dispatch(&mut st);
        }
    }

    /// The size of `participant`'s `source` tile in `room`'s program (`None`: not on stage): the tap takes the
    /// smallest simulcast layer at least that large.
    pub fn set_tap_size(&self, room: &str, participant: &str, source: TrackSource, size: Option<(u16, u16)>) {
        let Some(shared) = self.inner.rooms.lock().get(room).cloned() else { return };
        let mut st = shared.state.lock();
        st.room.set_tap_size(participant, source, size, Instant::now());
        dispatch(&mut st);
    }

    /// Hands `participant`'s media in `room` to the tap as published too (the best simulcast layer, marked
    /// [`Tapped::record`]), for its own recording, or stops.
    pub fn set_recorded(&self, room: &str, participant: &str, recorded: bool) {
        let Some(shared) = self.inner.rooms.lock().get(room).cloned() else { return };
        let mut st = shared.state.lock();
        st.room.set_recorded(participant, recorded, Instant::now());
        dispatch(&mut st);
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
        st.links.values().filter(|l| !l.relay).map(|l| l.participant.clone()).collect()
    }

    /// Changes each time a session joins or leaves one of the node's rooms (see
    /// [`MediaNode::rooms_with_sessions`]).
    pub fn watch_sessions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.sessions.subscribe()
    }
}

/// `participant` came into `room` through peer `keep`: what another node still announces for them is stale (their
/// studio reconnected here or there) and leaves the room now.
fn drop_stale_remotes(st: &mut RoomState, participant: &str, keep: PeerId) {
    for id in st.room.drop_other_remotes(participant, keep) {
        st.remotes.remove(&id);
        tracing::debug!(participant, peer = id.0, "a participant's stale announcement from another node withdrawn");
    }
}
