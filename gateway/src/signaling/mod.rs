//! `GET /ws`: the studio's signaling (documented message by message in `docs/protocol.md`).
//!
//! One task per socket ([`session`]) speaks the protocol; the [`Hub`] holds what the sockets of a broadcast
//! share on this node: who is in the room (with their live mic/camera/speaking state), the recent chat, and
//! the media node whose router forwards their WebRTC media. Room-wide events travel over the bus
//! (`topic::broadcast`), so the REST API's `broadcast-started` and friends reach the same sockets; events for
//! one participant (their SDP, moderation) go straight to that socket.
//!
//! Auth happens at the upgrade (the `Caller` extractor: access cookie/Bearer or guest cookie); a revoked
//! session closes its socket through `topic::session`.

pub mod events;
mod ice;
pub mod protocol;
mod session;
pub mod whip;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use backyard_core::rtc::{MediaNode, NodeConfig};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use events::RoomEvent;
pub use protocol::{ChatMessage, ErrorData, Participant};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Chat messages kept per broadcast for late joiners.
pub const CHAT_HISTORY: usize = 100;
/// How long a participant whose socket dropped keeps their seat: the same session joining again within it takes
/// the seat back (same participant id, no leave/join churn for the others); after it they have left.
pub const RECONNECT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the sockets of this node share.
pub struct Hub {
    /// The SFU: one UDP socket, rooms keyed by broadcast id.
    pub media: MediaNode,
    /// The media relay to other nodes (with `cluster.secret` set) and the address it announces: rooms span the
    /// nodes that have people in them.
    pub relay: Option<(backyard_core::relay::Relay, SocketAddr)>,
    /// Handed to clients in `joined`, TURN with a credential per join.
    ice_servers: ice::IceServers,
    max_participants: usize,
    rooms: Mutex<HashMap<Uuid, Room>>,
    /// Generations for detached members.
    next_detach: std::sync::atomic::AtomicU64,
    /// The program of each broadcast whose studio is open on this node.
    pub programs: crate::program::Programs,
}

#[derive(Default)]
struct Room {
    members: HashMap<Uuid, Member>,
    chat: VecDeque<ChatMessage>,
}

struct Member {
    participant: Participant,
    /// The guest session behind the socket, revoked on removal (hosts are accounts and cannot be removed).
    guest_session: Option<Uuid>,
    /// The user session or guest session: who may take the seat back after a dropped socket.
    session_key: Uuid,
    /// Orders for that socket only.
    control: mpsc::UnboundedSender<Control>,
    /// Set while the socket is gone (within [`RECONNECT_GRACE`]): a generation, so a stale expiry does nothing.
    detached: Option<u64>,
    /// The media session of a detached member, ended when the seat is taken back or given up.
    parked_media: Option<backyard_core::rtc::PeerHandle>,
}

/// Something another socket's handler tells this socket to do.
#[derive(Debug)]
pub(crate) enum Control {
    /// A host muted us or removed us.
    Moderated { action: protocol::ModerateAction, by: Uuid },
    /// Our studio reconnected through another node, which holds the seat now: this socket lets it go quietly.
    Moved,
}

impl Hub {
    /// Binds the media node. Its UDP socket binds to `media.bind` (default: the HTTP server's IP) on `media.port`
    /// (default: a free port) and announces `media.advertised_ip`, else the bind IP, else (wildcard bind) the IP of `public_url`'s host.
    async fn start(state: &AppState) -> anyhow::Result<Hub> {
        let media_cfg = &state.cfg.media;
        let bind_ip = media_cfg.bind.unwrap_or(state.cfg.server.bind.ip());
        let mut config = NodeConfig::new(SocketAddr::new(bind_ip, media_cfg.port));
        config.advertised_ip = match media_cfg.advertised_ip {
            Some(ip) => Some(ip),
            None if bind_ip.is_unspecified() => Some(public_ip(&state.cfg.public_url).await?),
            None => None,
        };
        config.room.max_peers = state.cfg.limits.max_participants as usize;
        let media = MediaNode::bind(config).await?;
        tracing::info!(udp = %media.advertised_addr(), "signaling ready");
        let relay = match &state.cfg.cluster.secret {
            Some(secret) => {
                let config = backyard_core::relay::RelayConfig {
                    node: state.cluster.node.clone(),
                    bind: SocketAddr::new(bind_ip, state.cfg.cluster.relay_port),
                    secret: secret.as_bytes().to_vec(),
                };
                let relay = backyard_core::relay::Relay::start(config, media.clone())?;
                let announced = SocketAddr::new(media.advertised_addr().ip(), relay.local_addr().port());
                Some((relay, announced))
            }
            None => None,
        };
        Ok(Hub {
            media,
            relay,
            ice_servers: ice::IceServers::new(&state.cfg.ice),
            max_participants: state.cfg.limits.max_participants as usize,
            rooms: Mutex::new(HashMap::new()),
            next_detach: std::sync::atomic::AtomicU64::new(1),
            programs: crate::program::Programs::default(),
        })
    }

    /// The hub of this node (`state`), started on first use.
    pub async fn get(state: &AppState) -> Result<Arc<Hub>, ApiError> {
        state
            .hub
            .get_or_try_init(|| async { Hub::start(state).await.map(Arc::new) })
            .await
            .cloned()
            .map_err(ApiError::Internal)
    }

    /// How many people are in this node's studios.
    pub fn participant_count(&self) -> usize {
        self.rooms.lock().values().map(|r| r.members.len()).sum()
    }

    /// The node's hub, if it was started.
    pub fn running(state: &AppState) -> Option<Arc<Hub>> {
        state.hub.get().cloned()
    }

    /// The participants in a broadcast's room on this node.
    pub fn participants(&self, broadcast: Uuid) -> Vec<Participant> {
        let rooms = self.rooms.lock();
        let mut list: Vec<_> = rooms
            .get(&broadcast)
            .map(|r| r.members.values().map(|m| m.participant.clone()).collect())
            .unwrap_or_default();
        list.sort_by_key(|p| p.id);
        list
    }

    /// The participant seated in a broadcast's room on this node for `session_key` (a user session or a guest
    /// session), if any.
    pub fn seat_of(&self, broadcast: Uuid, session_key: Uuid) -> Option<Participant> {
        let rooms = self.rooms.lock();
        rooms.get(&broadcast)?.members.values().find(|m| m.session_key == session_key).map(|m| m.participant.clone())
    }

    /// Everyone in a broadcast's room: this node's members, and the people in the same room through other nodes
    /// that are still in the cluster directory (their rows name their node; what they do next reaches every node
    /// over the bus).
    pub async fn roster(&self, state: &AppState, broadcast: Uuid) -> Vec<Participant> {
        let mut list = self.participants(broadcast);
        if self.relay.is_none() {
            // Rooms do not span nodes: everyone in this studio is here.
            return list;
        }
        let rows = match state.store.active_participants(broadcast).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(%broadcast, "cannot list the room's people on other nodes: {e}");
                return list;
            }
        };
        let elsewhere: Vec<_> =
            rows.into_iter().filter(|r| !r.node.is_empty() && r.node != state.cluster.node).collect();
        if elsewhere.is_empty() {
            return list;
        }
        let live = match state.cluster.live_node_ids().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(%broadcast, "cannot list the room's people on other nodes: {e}");
                return list;
            }
        };
        for r in elsewhere.into_iter().filter(|r| live.contains(&r.node)) {
            if list.iter().all(|p| p.id != r.id) {
                list.push(Participant {
                    id: r.id,
                    user_id: r.user_id,
                    name: r.name,
                    role: r.role,
                    audio_enabled: r.audio_enabled,
                    video_enabled: r.video_enabled,
                    screen_sharing: false,
                    speaking: false,
                    backstage: false,
                });
            }
        }
        list.sort_by_key(|p| p.id);
        list
    }

    /// Someone who may run the show (host or co-host) is in the room.
    pub fn has_host(&self, broadcast: Uuid) -> bool {
        self.rooms
            .lock()
            .get(&broadcast)
            .is_some_and(|r| r.members.values().any(|m| m.participant.role != crate::auth::Role::Guest))
    }

    fn chat(&self, broadcast: Uuid) -> Vec<ChatMessage> {
        self.rooms.lock().get(&broadcast).map(|r| r.chat.iter().cloned().collect()).unwrap_or_default()
    }

    /// Adds a member unless the room is full.
    fn admit(&self, broadcast: Uuid, member: Member) -> Result<(), ErrorData> {
        let mut rooms = self.rooms.lock();
        let room = rooms.entry(broadcast).or_default();
        if room.members.len() >= self.max_participants {
            return Err(ErrorData::new(
                "room_full",
                format!("the room is full ({} participants)", self.max_participants),
            ));
        }
        room.members.insert(member.participant.id, member);
        Ok(())
    }

    /// Takes a member out; a room nobody is in any more (detached seats count as in) is dropped with its
    /// chat history, so a long-running node does not keep every room it ever had.
    fn remove(&self, broadcast: Uuid, participant: Uuid) {
        let mut rooms = self.rooms.lock();
        if let Some(room) = rooms.get_mut(&broadcast) {
            room.members.remove(&participant);
            if room.members.is_empty() {
                rooms.remove(&broadcast);
            }
        }
    }

    /// Applies `f` to a member's participant and returns the result.
    fn update(&self, broadcast: Uuid, participant: Uuid, f: impl FnOnce(&mut Participant)) -> Option<Participant> {
        let mut rooms = self.rooms.lock();
        let p = &mut rooms.get_mut(&broadcast)?.members.get_mut(&participant)?.participant;
        f(p);
        Some(p.clone())
    }

    fn member(
        &self,
        broadcast: Uuid,
        participant: Uuid,
    ) -> Option<(Participant, Option<Uuid>, mpsc::UnboundedSender<Control>)> {
        let rooms = self.rooms.lock();
        let m = rooms.get(&broadcast)?.members.get(&participant)?;
        Some((m.participant.clone(), m.guest_session, m.control.clone()))
    }

    /// Marks a member whose socket dropped; returns the generation to expire it with.
    fn detach(&self, broadcast: Uuid, participant: Uuid, media: Option<backyard_core::rtc::PeerHandle>) -> Option<u64> {
        let generation = self.next_detach.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rooms = self.rooms.lock();
        let m = rooms.get_mut(&broadcast)?.members.get_mut(&participant)?;
        m.detached = Some(generation);
        m.parked_media = media;
        Some(generation)
    }

    /// Removes a member still detached since `generation`; true if it did.
    fn expire(&self, broadcast: Uuid, participant: Uuid, generation: u64) -> bool {
        let mut rooms = self.rooms.lock();
        let Some(room) = rooms.get_mut(&broadcast) else { return false };
        if room.members.get(&participant).is_some_and(|m| m.detached == Some(generation)) {
            room.members.remove(&participant);
            return true;
        }
        false
    }

    /// Gives a detached seat of `session_key` back to a new socket; returns its participant.
    fn reattach(
        &self,
        broadcast: Uuid,
        session_key: Uuid,
        control: mpsc::UnboundedSender<Control>,
    ) -> Option<Participant> {
        let mut rooms = self.rooms.lock();
        let m = rooms
            .get_mut(&broadcast)?
            .members
            .values_mut()
            .find(|m| m.session_key == session_key && m.detached.is_some())?;
        m.detached = None;
        m.control = control;
        // The old connection is dead; the client publishes again with a fresh offer.
        m.parked_media = None;
        m.participant.speaking = false;
        Some(m.participant.clone())
    }

    /// Another node took `participant`'s seat over (their studio reconnected there): a detached seat is dropped
    /// here with its parked media, a socket still holding it is told to let it go. Nobody is told they left.
    fn let_go(&self, broadcast: Uuid, participant: Uuid) {
        let mut rooms = self.rooms.lock();
        let Some(room) = rooms.get_mut(&broadcast) else { return };
        match room.members.get(&participant) {
            Some(m) if m.detached.is_some() => {
                room.members.remove(&participant);
                if room.members.is_empty() {
                    rooms.remove(&broadcast);
                }
            }
            Some(m) => _ = m.control.send(Control::Moved),
            None => {}
        }
    }

    fn push_chat(&self, broadcast: Uuid, msg: ChatMessage) {
        let mut rooms = self.rooms.lock();
        let chat = &mut rooms.entry(broadcast).or_default().chat;
        if chat.len() == CHAT_HISTORY {
            chat.pop_front();
        }
        chat.push_back(msg);
    }
}

/// The IP of `public_url`'s host: the address browsers reach this server at, hence where media goes.
async fn public_ip(public_url: &str) -> anyhow::Result<IpAddr> {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let addr = tokio::net::lookup_host((host, 0))
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("public_url host {host} does not resolve"))?;
    Ok(addr.ip())
}

/// `GET /ws`: authenticates, then upgrades to the signaling socket.
pub async fn ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A browser's WebSocket from another site carries our cookies only if SameSite allows; check anyway.
    if !crate::auth::same_origin(&state, &headers) {
        return ApiError::forbidden("cross-origin WebSocket refused (Origin does not match public_url)")
            .into_response();
    }
    let hub = match Hub::get(&state).await {
        Ok(hub) => hub,
        Err(e) => return e.into_response(),
    };
    // Frames above our own limit still arrive, so the client gets an `error` event instead of a dropped socket.
    upgrade
        .max_message_size(protocol::MAX_MESSAGE_BYTES * 16)
        .on_upgrade(move |socket| session::run(socket, state, hub, caller))
}

/// An order a host on one node gives about someone whose studio is on another node: that node carries it out.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    broadcast: Uuid,
    participant: Uuid,
    action: protocol::ModerateAction,
    by: Uuid,
}

/// Sends a moderation order to the node whose studio `participant` is in (their participants row names it).
pub(crate) async fn order_elsewhere(
    state: &AppState,
    broadcast: Uuid,
    participant: Uuid,
    action: protocol::ModerateAction,
    by: Uuid,
) -> anyhow::Result<()> {
    let rows = state.store.active_participants(broadcast).await?;
    let node = rows.into_iter().find(|r| r.id == participant).map(|r| r.node).unwrap_or_default();
    anyhow::ensure!(!node.is_empty(), "participant {participant} is in no node's studio");
    let order = Order { broadcast, participant, action, by };
    let event = crate::bus::Event::new("moderate", serde_json::to_value(&order)?);
    state.bus.publish(&crate::bus::topic::node(&node), event).await?;
    Ok(())
}

/// The seat a studio had on this room's node `from` was taken over by this node: `from`, if alive, lets it go.
pub(crate) async fn let_seat_go(state: &AppState, from: &str, broadcast: Uuid, participant: Uuid) {
    let moved = SeatMoved { broadcast, participant };
    let event = crate::bus::Event::new("seat-moved", serde_json::json!(moved));
    if let Err(e) = state.bus.publish(&crate::bus::topic::node(from), event).await {
        tracing::warn!(%broadcast, %participant, from, "could not tell the node a seat left it: {e}");
    }
}

/// A participant's seat moved from the node this is sent to.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeatMoved {
    broadcast: Uuid,
    participant: Uuid,
}

/// Carries out the orders other nodes send this one, until the state is dropped. Spawned by `serve` when rooms
/// span nodes.
pub async fn follow_orders(state: AppState) {
    let mut orders = state.bus.subscribe(&crate::bus::topic::node(&state.cluster.node));
    loop {
        let event = match orders.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "this node missed orders from other nodes");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(hub) = Hub::running(&state) else { continue };
        if event.event == "seat-moved" {
            match serde_json::from_value::<SeatMoved>(event.data.clone()) {
                Ok(m) => hub.let_go(m.broadcast, m.participant),
                Err(e) => tracing::warn!("an order from another node was not understood: {e}"),
            }
            continue;
        }
        let order: Order = match serde_json::from_value(event.data.clone()) {
            Ok(order) if event.event == "moderate" => order,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("an order from another node was not understood: {e}");
                continue;
            }
        };
        let Some((target, guest_session, control)) = hub.member(order.broadcast, order.participant) else { continue };
        if let Err(e) =
            session::carry_out(&state, &hub, order.broadcast, &target, guest_session, &control, order.action, order.by)
                .await
        {
            tracing::warn!(broadcast = %order.broadcast, participant = %order.participant, "a moderation order failed: {e:?}");
        }
    }
}
