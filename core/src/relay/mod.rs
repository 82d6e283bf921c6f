//! The node-to-node media relay: rooms that span nodes. One QUIC connection (quinn) per pair of nodes carries the
//! tracks each needs of the other.
//!
//! ```text
//!  node A                                              node B
//!  publisher ─▶ room ─▶ relay peer (RelayOut) ─QUIC─▶ RemotePublisher ─▶ room ─▶ subscribers, program
//!                 ▲                                                         │
//!                 └──────────── keyframe requests (control stream) ◀────────┘
//! ```
//!
//! - **Who connects**: the gateway tells the relay which nodes exist ([`Relay::set_peers`], from the cluster
//!   directory); of each pair, the node with the smaller id dials. Each node has a self-signed certificate made at
//!   start; a peer is admitted only once both sides proved they hold the cluster secret: each sends an HMAC-SHA256
//!   of its name under the secret, bound to this connection's TLS keying material (RFC 5705 exporter), so a proof
//!   cannot be replayed on another connection. A peer that fails is closed with [`REFUSED`].
//! - **What crosses**: a node says which rooms it has people in (`want`); the other adds it to those rooms as a
//!   relay peer, which announces every track published there by its own participants (`track`) and carries every
//!   simulcast layer of each; the wanting node publishes them as remote participants, so its subscribers, layer
//!   choice and program treat them like anyone's. Keyframe requests go back as `keyframe`.
//! - **Frames** travel on unidirectional streams, one per track and layer, a new one at each video keyframe
//!   (a group of pictures), each newer stream sent at a higher priority: a loss delays only its own group, and
//!   under congestion the newest group goes first while the receiver drops frames of a group older than one that
//!   has started.
//!
//! Architecture Invariant: the relay moves frames between rooms; what each subscriber gets is still decided by
//! each node's router.

pub mod wire;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use str0m::media::KeyframeRequestKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::router::TrackId;
use crate::rtc::{MediaNode, RelayOut, RelayOutput, RelayedData, RemoteKeyframe, RemotePublisher};
use wire::{Control, FrameRecord, StreamHeader, StreamKind};

/// The application protocol both sides name in the TLS handshake.
const ALPN: &[u8] = b"backyard-relay/1";
/// The name a dialer asks for (every node's certificate carries it).
const SERVER_NAME: &str = "backyard-relay";
/// The TLS exporter label the proofs are bound to.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-backyard-relay";
/// How long a peer has to prove itself.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with nothing heard for this long is dead (keep-alives go every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Streams one side may have open at once (a track layer's group of pictures each).
const MAX_STREAMS: u32 = 1024;
/// The QUIC close code for a peer that could not prove it holds the cluster secret.
pub const REFUSED: u32 = 0x101;

/// How a node's relay binds and proves itself.
#[derive(Clone)]
pub struct RelayConfig {
    /// This node's id in the cluster directory.
    pub node: String,
    /// The UDP address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// The cluster secret every node shares.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig").field("node", &self.node).field("bind", &self.bind).finish_non_exhaustive()
    }
}

/// Errors of the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot bind the relay on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("relay TLS setup: {0}")]
    Tls(String),
    #[error("cannot reach node {node} at {addr}: {reason}")]
    Connect { node: String, addr: SocketAddr, reason: String },
    #[error("node {node} was refused: {reason}")]
    Refused { node: String, reason: String },
}

/// This node's relay. Cheap to clone; the last clone dropped closes every connection.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Shared>,
}

struct Shared {
    node: String,
    secret: Vec<u8>,
    endpoint: quinn::Endpoint,
    media: MediaNode,
    links: Mutex<HashMap<String, Arc<Link>>>,
    /// Nodes being dialed now.
    dialing: Mutex<HashSet<String>>,
    /// Peers refused since start (a wrong or missing cluster secret).
    refused: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
        self.endpoint.close(0u32.into(), b"node stopping");
    }
}

impl Relay {
    /// Binds the relay's UDP socket and starts accepting peers and following `media`'s rooms. Must run inside a
    /// tokio runtime.
    pub fn start(config: RelayConfig, media: MediaNode) -> Result<Relay, RelayError> {
        let (server, client) = tls_configs()?;
        let socket =
            std::net::UdpSocket::bind(config.bind).map_err(|source| RelayError::Bind { addr: config.bind, source })?;
        let runtime = quinn::default_runtime().ok_or_else(|| RelayError::Tls("no async runtime".into()))?;
        let mut endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime)
            .map_err(|source| RelayError::Bind { addr: config.bind, source })?;
        endpoint.set_default_client_config(client);
        let relay = Relay {
            inner: Arc::new(Shared {
                node: config.node,
                secret: config.secret,
                endpoint,
                media,
                links: Mutex::new(HashMap::new()),
                dialing: Mutex::new(HashSet::new()),
                refused: AtomicU64::new(0),
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let weak = Arc::downgrade(&relay.inner);
        let accept = tokio::spawn(accept_loop(relay.inner.endpoint.clone(), weak.clone()));
        let rooms = tokio::spawn(follow_rooms(relay.inner.media.watch_sessions(), weak));
        relay.inner.tasks.lock().extend([accept, rooms]);
        tracing::info!(node = %relay.inner.node, addr = %relay.local_addr(), "relay listening");
        Ok(relay)
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.endpoint.local_addr().expect("a bound endpoint has an address")
    }

    /// The other nodes of the cluster and their relay addresses (from the directory): the relay dials those whose id
    /// is greater than this node's and that it has no connection to; the others dial it.
    pub fn set_peers(&self, peers: &[(String, SocketAddr)]) {
        for (node, addr) in peers {
            if *node <= self.inner.node || self.inner.links.lock().contains_key(node) {
                continue;
            }
            if !self.inner.dialing.lock().insert(node.clone()) {
                continue;
            }
            let (relay, node, addr) = (self.clone(), node.clone(), *addr);
            tokio::spawn(async move {
                if let Err(e) = relay.connect(&node, addr).await {
                    tracing::warn!("relay: {e}");
                }
                relay.inner.dialing.lock().remove(&node);
            });
        }
    }

    /// Dials `node` at `addr` and proves this node to it (and it to this node).
    pub async fn connect(&self, node: &str, addr: SocketAddr) -> Result<(), RelayError> {
        let failed = |reason: String| RelayError::Connect { node: node.to_string(), addr, reason };
        let conn = self
            .inner
            .endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|e| failed(e.to_string()))?
            .await
            .map_err(|e| failed(e.to_string()))?;
        let handshake = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            let hello = Control::Hello {
                node: self.inner.node.clone(),
                proof: self.inner.proof(&conn, Side::Dialer, &self.inner.node)?,
            };
            send.write_all(&hello.encode()).await.map_err(|e| e.to_string())?;
            let theirs = read_hello(&mut recv).await?;
            Ok::<_, String>((send, recv, theirs))
        };
        let (send, recv, (their_node, proof)) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(v)) => v,
            Ok(Err(reason)) => {
                return Err(match conn.close_reason() {
                    Some(quinn::ConnectionError::ApplicationClosed(c)) if c.error_code == REFUSED.into() => {
                        RelayError::Refused {
                            node: node.to_string(),
                            reason: "it does not share our cluster secret".into(),
                        }
                    }
                    _ => failed(reason),
                });
            }
            Err(_) => return Err(failed("no answer to the handshake".into())),
        };
        if their_node != node || !self.inner.verify(&conn, Side::Acceptor, &their_node, &proof) {
            conn.close(REFUSED.into(), b"not a member of this cluster");
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(RelayError::Refused {
                node: node.to_string(),
                reason: "its proof of the cluster secret is wrong".into(),
            });
        }
        self.inner.clone().add_link(their_node, conn, send, recv);
        Ok(())
    }

    /// The nodes this relay has a proven connection to.
    pub fn connected(&self) -> Vec<String> {
        let mut nodes: Vec<_> = self.inner.links.lock().keys().cloned().collect();
        nodes.sort();
        nodes
    }

    /// How many peers were refused since start (no or a wrong cluster secret).
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

/// Which end of a connection a proof is for: each side's proof has its own label, so one cannot be reflected back.
#[derive(Clone, Copy)]
enum Side {
    Dialer,
    Acceptor,
}

impl Shared {
    fn mac(&self, conn: &quinn::Connection, side: Side, node: &str) -> Result<Hmac<Sha256>, String> {
        let mut exported = [0u8; 32];
        conn.export_keying_material(&mut exported, EXPORTER_LABEL, b"")
            .map_err(|_| "no TLS keying material for this connection".to_string())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|e| e.to_string())?;
        mac.update(match side {
            Side::Dialer => b"dialer\0",
            Side::Acceptor => b"acceptor",
        });
        mac.update(&exported);
        mac.update(node.as_bytes());
        Ok(mac)
    }

    fn proof(&self, conn: &quinn::Connection, side: Side, node: &str) -> Result<String, String> {
        Ok(hex::encode(self.mac(conn, side, node)?.finalize().into_bytes()))
    }

    fn verify(&self, conn: &quinn::Connection, side: Side, node: &str, proof: &str) -> bool {
        let (Ok(mac), Ok(proof)) = (self.mac(conn, side, node), hex::decode(proof)) else { return false };
        mac.verify_slice(&proof).is_ok()
    }

    /// A proven connection to `node`: replaces any older one, starts its tasks, and tells it which rooms this node
    /// wants.
    fn add_link(
        self: Arc<Self>,
        node: String,
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) {
        let (control, control_rx) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            node: node.clone(),
            conn: conn.clone(),
            control,
            media: self.media.clone(),
            wanted: Mutex::new(HashSet::new()),
            serving: Mutex::new(HashMap::new()),
            incoming: Mutex::new(Incoming::default()),
            next_seq: AtomicU64::new(1),
            tasks: Mutex::new(Vec::new()),
        });
        if let Some(old) = self.links.lock().insert(node.clone(), link.clone()) {
            old.conn.close(0u32.into(), b"replaced");
            old.shut();
        }
        tracing::info!(peer = %node, addr = %conn.remote_address(), "relay connected");
        let tasks = [
            tokio::spawn(write_control(send, control_rx)),
            tokio::spawn(read_control(recv, Arc::downgrade(&link))),
            tokio::spawn(accept_streams(conn.clone(), Arc::downgrade(&link))),
        ];
        link.tasks.lock().extend(tasks);
        link.set_wanted(self.media.rooms_with_sessions().into_iter().collect());
        let weak = Arc::downgrade(&self);
        tokio::spawn(async move {
            let reason = conn.closed().await;
            tracing::info!(peer = %node, "relay connection ended: {reason}");
            if let Some(shared) = weak.upgrade() {
                let mut links = shared.links.lock();
                if links.get(&node).is_some_and(|l| Arc::ptr_eq(l, &link)) {
                    links.remove(&node);
                }
            }
            link.shut();
        });
    }
}

async fn read_hello(recv: &mut quinn::RecvStream) -> Result<(String, String), String> {
    let body =
        wire::read_message(recv, wire::MAX_HELLO).await.map_err(|e| e.to_string())?.ok_or("the peer said nothing")?;
    match serde_json::from_slice(&body).map_err(|e| e.to_string())? {
        Control::Hello { node, proof } => Ok((node, proof)),
        _ => Err("the peer did not start with hello".into()),
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: std::sync::Weak<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let Ok(conn) = incoming.await else { return };
            let handshake = async {
                let (send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                let (node, proof) = read_hello(&mut recv).await?;
                Ok::<_, String>((send, recv, node, proof))
            };
            let Ok(Ok((mut send, recv, node, proof))) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else {
                conn.close(REFUSED.into(), b"no hello");
                return;
            };
            let Some(shared) = shared.upgrade() else { return };
            if !shared.verify(&conn, Side::Dialer, &node, &proof) || node == shared.node {
                tracing::warn!(%remote, claimed = %node, "relay peer refused: it does not prove the cluster secret");
                shared.refused.fetch_add(1, Ordering::Relaxed);
                conn.close(REFUSED.into(), b"not a member of this cluster");
                return;
            }
            let Ok(proof) = shared.proof(&conn, Side::Acceptor, &shared.node) else { return };
            let hello = Control::Hello { node: shared.node.clone(), proof };
            if send.write_all(&hello.encode()).await.is_err() {
                return;
            }
            shared.add_link(node, conn, send, recv);
        });
    }
}

/// Tells every link which rooms this node has people in, whenever that changes (and every second, in case).
async fn follow_rooms(mut sessions: tokio::sync::watch::Receiver<u64>, shared: std::sync::Weak<Shared>) {
    loop {
        {
            let Some(shared) = shared.upgrade() else { return };
            let rooms: HashSet<String> = shared.media.rooms_with_sessions().into_iter().collect();
            let links: Vec<_> = shared.links.lock().values().cloned().collect();
            for link in links {
                link.set_wanted(rooms.clone());
            }
        }
        tokio::select! {
            changed = sessions.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One proven connection to another node.
struct Link {
    node: String,
    conn: quinn::Connection,
    control: mpsc::UnboundedSender<Control>,
    media: MediaNode,
    /// Rooms this node told the peer it wants.
    wanted: Mutex<HashSet<String>>,
    /// Rooms the peer wants of this node: the task carrying each, and the way to its keyframe requests.
    serving: Mutex<HashMap<String, Serving>>,
    /// What the peer publishes into rooms this node wants.
    incoming: Mutex<Incoming>,
    /// Numbers the frame streams this node opens on the link.
    next_seq: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Serving {
    task: JoinHandle<()>,
    keyframes: mpsc::UnboundedSender<(u64, u8, KeyframeRequestKind)>,
}

/// The peer's participants as this node publishes them.
#[derive(Default)]
struct Incoming {
    /// By room and participant.
    publishers: HashMap<(String, String), Arc<RemotePublisher>>,
    /// The peer's (room, track) → participant, this node's track and how its frames come.
    tracks: HashMap<(String, u64), RemoteTrack>,
    /// The newest frame stream started per (room, track, layer).
    newest: HashMap<(String, u64, u8), u64>,
}

struct RemoteTrack {
    participant: String,
    local: TrackId,
}

impl Link {
    fn send(&self, message: Control) {
        // A closed channel means the link is ending.
        let _ = self.control.send(message);
    }

    /// Says `want` / `unwant` for the rooms that changed; what the peer published into rooms no longer wanted is
    /// withdrawn here.
    fn set_wanted(&self, rooms: HashSet<String>) {
        let mut wanted = self.wanted.lock();
        for room in rooms.difference(&wanted) {
            self.send(Control::Want { room: room.clone() });
        }
        for room in wanted.difference(&rooms) {
            self.send(Control::Unwant { room: room.clone() });
            let mut incoming = self.incoming.lock();
            incoming.publishers.retain(|(r, _), _| r != room);
            incoming.tracks.retain(|(r, _), _| r != room);
            incoming.newest.retain(|(r, _, _), _| r != room);
        }
        *wanted = rooms;
    }

    /// The connection is gone: stop serving the peer and withdraw what it published here.
    fn shut(&self) {
        for (_, s) in self.serving.lock().drain() {
            s.task.abort();
        }
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        *self.incoming.lock() = Incoming::default();
    }

    fn on_control(self: &Arc<Self>, message: Control) {
        match message {
            Control::Hello { .. } => {}
            Control::Want { room } => {
                if self.serving.lock().contains_key(&room) {
                    return;
                }
                match self.media.relay_out(&room, &self.node) {
                    Ok(out) => {
                        let (keyframes, keyframes_rx) = mpsc::unbounded_channel();
                        let task = tokio::spawn(serve_room(Arc::downgrade(self), room.clone(), out, keyframes_rx));
                        self.serving.lock().insert(room, Serving { task, keyframes });
                    }
                    Err(e) => tracing::warn!(peer = %self.node, room, "relay: cannot serve the room: {e}"),
                }
            }
            Control::Unwant { room } => {
                if let Some(s) = self.serving.lock().remove(&room) {
                    s.task.abort();
                }
            }
            Control::Track { room, track, participant, source, layers, fixed } => {
                if !self.wanted.lock().contains(&room) {
                    return;
                }
                let publisher = {
                    let incoming = self.incoming.lock();
                    incoming.publishers.get(&(room.clone(), participant.clone())).cloned()
                };
                let publisher = match publisher {
                    Some(p) => p,
                    None => match self.remote_publisher(&room, &participant) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(peer = %self.node, room, participant, "relay: cannot publish: {e}");
                            return;
                        }
                    },
                };
                match publisher.publish(source, layers, fixed) {
                    Ok(local) => {
                        let mut incoming = self.incoming.lock();
                        incoming.publishers.insert((room.clone(), participant.clone()), publisher);
                        incoming.tracks.insert((room, track), RemoteTrack { participant, local });
                    }
                    Err(e) => tracing::warn!(peer = %self.node, room, participant, "relay: track not published: {e}"),
                }
            }
            Control::Untrack { room, track } => {
                let mut incoming = self.incoming.lock();
                let Some(t) = incoming.tracks.remove(&(room.clone(), track)) else { return };
                incoming.newest.retain(|(r, id, _), _| !(r == &room && *id == track));
                let key = (room, t.participant);
                if let Some(p) = incoming.publishers.get(&key) {
                    p.unpublish(t.local);
                }
                if !incoming.tracks.iter().any(|((r, _), rt)| *r == key.0 && rt.participant == key.1) {
                    incoming.publishers.remove(&key);
                }
            }
            Control::Keyframe { room, track, layer, pli } => {
                let kind = if pli { KeyframeRequestKind::Pli } else { KeyframeRequestKind::Fir };
                if let Some(s) = self.serving.lock().get(&room) {
                    let _ = s.keyframes.send((track, layer, kind));
                }
            }
        }
    }

    /// Publishes the peer's `participant` in `room` here; its keyframe requests go back over the link.
    fn remote_publisher(self: &Arc<Self>, room: &str, participant: &str) -> Result<Arc<RemotePublisher>, String> {
        let (keyframes, mut rx) = mpsc::unbounded_channel::<RemoteKeyframe>();
        let publisher = self.media.publish_remote(room, participant, keyframes).map_err(|e| e.to_string())?;
        let (link, room) = (Arc::downgrade(self), room.to_string());
        // Ends when the publisher leaves the room (its sender is dropped with it).
        tokio::spawn(async move {
            while let Some((local, layer, kind)) = rx.recv().await {
                let Some(link) = link.upgrade() else { return };
                let theirs = {
                    let incoming = link.incoming.lock();
                    incoming.tracks.iter().find(|((r, _), t)| *r == room && t.local == local).map(|((_, id), _)| *id)
                };
                if let Some(track) = theirs {
                    link.send(Control::Keyframe {
                        room: room.clone(),
                        track,
                        layer,
                        pli: kind == KeyframeRequestKind::Pli,
                    });
                }
            }
        });
        Ok(Arc::new(publisher))
    }

    /// One frame from a stream of the peer's.
    fn on_frame(&self, header: &StreamHeader, record: FrameRecord) -> Flow {
        let (publisher, local) = {
            let mut incoming = self.incoming.lock();
            let newest = incoming.newest.entry((header.room.clone(), header.track, header.layer)).or_insert(0);
            if header.seq < *newest {
                return Flow::Stale;
            }
            *newest = header.seq;
            let Some(t) = incoming.tracks.get(&(header.room.clone(), header.track)) else { return Flow::Go };
            let local = t.local;
            let Some(p) = incoming.publishers.get(&(header.room.clone(), t.participant.clone())) else {
                return Flow::Go;
            };
            (p.clone(), local)
        };
        match &header.kind {
            StreamKind::Rtc { params } => {
                let keyframe = record.keyframe;
                publisher.send_rtc(local, header.layer, keyframe, record.into_rtc(*params));
            }
            StreamKind::Local { codec } => publisher.send_local(local, record.into_local(*codec)),
        }
        Flow::Go
    }
}

/// Whether to go on reading a frame stream.
enum Flow {
    Go,
    /// A newer group of pictures of the same track has started: this stream's frames are of no use.
    Stale,
}

async fn write_control(mut send: quinn::SendStream, mut rx: mpsc::UnboundedReceiver<Control>) {
    while let Some(message) = rx.recv().await {
        if send.write_all(&message.encode()).await.is_err() {
            return;
        }
    }
}

async fn read_control(mut recv: quinn::RecvStream, link: std::sync::Weak<Link>) {
    loop {
        let body = match wire::read_message(&mut recv, wire::MAX_MESSAGE).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("relay control stream: {e}");
                return;
            }
        };
        let Some(link) = link.upgrade() else { return };
        match serde_json::from_slice::<Control>(&body) {
            Ok(message) => link.on_control(message),
            Err(e) => tracing::warn!(peer = %link.node, "relay: a control message was not understood: {e}"),
        }
    }
}

async fn accept_streams(conn: quinn::Connection, link: std::sync::Weak<Link>) {
    while let Ok(stream) = conn.accept_uni().await {
        tokio::spawn(read_frames(stream, link.clone()));
    }
}

async fn read_frames(mut stream: quinn::RecvStream, link: std::sync::Weak<Link>) {
    let header = match wire::read_message(&mut stream, wire::MAX_MESSAGE).await {
        Ok(Some(body)) => match serde_json::from_slice::<StreamHeader>(&body) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!("relay: a frame stream's header was not understood: {e}");
                return;
            }
        },
        _ => return,
    };
    loop {
        let body = match wire::read_message(&mut stream, wire::MAX_MESSAGE).await {
            Ok(Some(body)) => body,
            _ => return,
        };
        let record = match FrameRecord::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("relay: {e}");
                return;
            }
        };
        let Some(link) = link.upgrade() else { return };
        if let Flow::Stale = link.on_frame(&header, record) {
            let _ = stream.stop(0u32.into());
            return;
        }
    }
}

/// The stream a track layer's frames go on now.
struct Open {
    stream: quinn::SendStream,
    kind: StreamKind,
}

/// Carries one room the peer wants: announcements on the control stream, frames on streams of their own, and the
/// peer's keyframe requests back into the room.
async fn serve_room(
    link: std::sync::Weak<Link>,
    room: String,
    mut out: RelayOut,
    mut keyframes: mpsc::UnboundedReceiver<(u64, u8, KeyframeRequestKind)>,
) {
    let mut streams: HashMap<(TrackId, u8), Open> = HashMap::new();
    loop {
        tokio::select! {
            item = out.next() => {
                let Some(item) = item else { return };
                let Some(link) = link.upgrade() else { return };
                match item {
                    RelayOutput::Track(t) => link.send(Control::Track {
                        room: room.clone(),
                        track: t.id.0,
                        participant: t.participant,
                        source: t.source,
                        layers: t.layers,
                        fixed: t.fixed,
                    }),
                    RelayOutput::Untrack(track) => {
                        streams.retain(|(t, _), _| *t != track);
                        link.send(Control::Untrack { room: room.clone(), track: track.0 });
                    }
                    RelayOutput::Frame(frame) => {
                        let (kind, record, video) = match frame.data() {
                            RelayedData::Rtc(d) => (
                                StreamKind::Rtc { params: d.params },
                                FrameRecord::from_rtc(d.is_keyframe(), d),
                                d.params.spec().codec.is_video(),
                            ),
                            RelayedData::Local(f) => {
                                (StreamKind::Local { codec: f.codec }, FrameRecord::from_local(f), f.codec.is_video())
                            }
                        };
                        let key = (frame.track(), frame.layer());
                        let fresh = streams.get(&key).is_none_or(|o| o.kind != kind || (video && record.keyframe));
                        if fresh {
                            let seq = link.next_seq.fetch_add(1, Ordering::Relaxed);
                            let Ok(mut stream) = link.conn.open_uni().await else { return };
                            let _ = stream.set_priority(seq.min(i32::MAX as u64) as i32);
                            let header = StreamHeader { room: room.clone(), track: key.0.0, layer: key.1, seq, kind: kind.clone() };
                            if stream.write_all(&header.encode()).await.is_err() {
                                continue;
                            }
                            // The previous stream of this layer finishes with what it has.
                            streams.insert(key, Open { stream, kind });
                        }
                        let Some(open) = streams.get_mut(&key) else { continue };
                        if open.stream.write_all(&record.encode()).await.is_err() {
                            streams.remove(&key);
                        }
                    }
                }
            }
            Some((track, layer, kind)) = keyframes.recv() => out.keyframe(TrackId(track), layer, kind),
        }
    }
}

/// The TLS configurations: a fresh self-signed certificate for the server side, and a client that accepts any
/// certificate (the cluster-secret proofs, bound to the session, authenticate both sides).
fn tls_configs() -> Result<(quinn::ServerConfig, quinn::ClientConfig), RelayError> {
    let tls = |e: &dyn std::fmt::Display| RelayError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()]).map_err(|e| tls(&e))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| tls(&e))?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    client.alpn_protocols = vec![ALPN.to_vec()];

    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(IDLE_TIMEOUT.try_into().map_err(|e| tls(&e))?))
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_concurrent_uni_streams(MAX_STREAMS.into());
    let transport = Arc::new(transport);
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server).map_err(|e| tls(&e))?,
    ));
    server.transport_config(transport.clone());
    let mut client = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client).map_err(|e| tls(&e))?,
    ));
    client.transport_config(transport);
    Ok((server, client))
}

/// Accepts any server certificate whose handshake signature checks out: who the peer is, is proven by the
/// cluster secret afterwards.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
