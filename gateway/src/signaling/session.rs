//! One signaling socket: parses client events, applies the room rules, and writes server events.

use std::sync::Arc;

use crate::bus::{Event, topic};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use backyard_core::router::RouterError;
use backyard_core::rtc::{CloseReason, MediaEvent, NodeError, PeerHandle, TrackSource};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::protocol::{self, ClientMessage, ErrorData, ModerateAction, Participant, frame};
use super::{ChatMessage, Control, Hub, Member, RoomEvent};
use crate::auth::{Caller, Role};
use crate::scene::{ApplyError, Scene};
use crate::state::AppState;
use crate::store::{Broadcast, BroadcastStatus};

/// The socket's receivers that exist only while it is in a room. Kept apart from [`Session`] so `select!` can
/// borrow each one while the handlers borrow the session.
#[derive(Default)]
struct Inbox {
    room: Option<broadcast::Receiver<Arc<Event>>>,
    media: Option<mpsc::UnboundedReceiver<MediaEvent>>,
    control: Option<mpsc::UnboundedReceiver<Control>>,
}

struct Joined {
    broadcast: Broadcast,
    participant: Uuid,
    role: Role,
    /// The WebRTC session; `None` after it ended, until the client offers again.
    media: Option<PeerHandle>,
}

/// What one socket may send per second, sustained and in a burst: more is refused with `rate-limited`, so
/// one participant cannot flood the room (and the bus every node shares).
const CHAT_PER_SECOND: (u32, u32) = (5, 10);
const STATUS_PER_SECOND: (u32, u32) = (20, 40);

fn per_second((rate, burst): (u32, u32)) -> governor::DefaultDirectRateLimiter {
    let n = |v: u32| std::num::NonZeroU32::new(v.max(1)).expect("max(1) makes it non-zero");
    governor::RateLimiter::direct(governor::Quota::per_second(n(rate)).allow_burst(n(burst)))
}

struct Session {
    state: AppState,
    hub: Arc<Hub>,
    caller: Caller,
    joined: Option<Joined>,
    /// This socket's chat and own-status rates.
    chat_rate: governor::DefaultDirectRateLimiter,
    status_rate: governor::DefaultDirectRateLimiter,
    /// Frames to write before reading on.
    out: Vec<String>,
    /// Close the socket after flushing `out`.
    close: Option<&'static str>,
}

pub(super) async fn run(socket: WebSocket, state: AppState, hub: Arc<Hub>, caller: Caller) {
    let (mut tx, mut rx) = socket.split();
    let session_topic = topic::session(caller.session_key());
    let mut revocations = state.bus.subscribe(&session_topic);
    let mut s = Session {
        state,
        hub,
        caller,
        joined: None,
        chat_rate: per_second(CHAT_PER_SECOND),
        status_rate: per_second(STATUS_PER_SECOND),
        out: vec![],
        close: None,
    };
    let mut inbox = Inbox::default();
    loop {
        for text in std::mem::take(&mut s.out) {
            if tx.send(Message::Text(text.into())).await.is_err() {
                s.detach();
                return;
            }
        }
        if let Some(reason) = s.close {
            let _ =
                tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: Utf8Bytes::from_static(reason) }))).await;
            break;
        }
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(text))) => s.on_text(text.as_str(), &mut inbox).await,
                Some(Ok(Message::Binary(_))) => s.error(ErrorData::new("unsupported_frame", "send JSON text frames"), None),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    // Includes frames beyond the hard size limit.
                    tracing::debug!("signaling socket failed: {e}");
                    break;
                }
            },
            ev = recv_room(&mut inbox.room) => match ev {
                Some(RoomIn::Event(ev)) => s.on_room_event(Some(ev)),
                Some(RoomIn::Lagged(n)) => s.resync_room(n).await,
                None => s.on_room_event(None),
            },
            ev = recv(&mut inbox.media) => s.on_media_event(ev, &mut inbox).await,
            ctl = recv(&mut inbox.control) => s.on_control(ctl, &mut inbox).await,
            ev = revocations.recv() => {
                if ev.is_ok_and(|e| e.event == "session-revoked") {
                    s.error(ErrorData::new("session_revoked", "your session ended; sign in or open the invite again"), None);
                    s.leave(&mut inbox, "removed").await;
                    s.close = Some("session revoked");
                }
            }
        }
    }
    // A closed socket that did not leave keeps its seat for a while (see `detach`); a deliberate close
    // (removal, revocation) has left already.
    s.detach();
}

/// Writes the participants row's end and tells the room.
pub(super) async fn record_leave(state: &AppState, broadcast: Uuid, participant: Uuid, reason: &'static str) {
    state.metrics.connection.remove(&broadcast.to_string(), &participant.to_string());
    // `false`: their seat moved to another node (their studio reconnected there), so they did not leave.
    let left = state.store.participant_left(participant, &state.cluster.node).await.unwrap_or_else(|e| {
        tracing::warn!("could not record participant {participant} leaving: {e}");
        true
    });
    let event = RoomEvent::ParticipantLeft { participant_id: participant, reason: reason.into() };
    if left && let Err(e) = state.bus.publish(&topic::broadcast(broadcast), event.to_bus()).await {
        tracing::warn!(%broadcast, "could not publish participant-left: {e}");
    }
    // The last host left: the program stops unless the broadcast is on air (then it goes on, showing name
    // cards for whoever is gone).
    if let Ok(hub) = Hub::get(state).await
        && !hub.has_host(broadcast)
    {
        hub.programs.stop_if_idle(&hub.media, broadcast).await;
    }
}

/// Whether the broadcast's guests wait backstage when they join (`settings.backstage`, set by the host).
pub fn waits_backstage(broadcast: &Broadcast) -> bool {
    broadcast.setting_on("backstage")
}

/// A scene that could not be applied, as the socket reports it.
fn scene_error(e: ApplyError) -> ErrorData {
    match e {
        ApplyError::Invalid(e) => ErrorData::new("invalid_field", e.message).field(e.field),
        ApplyError::Store(e) => {
            tracing::error!("could not store the scene: {e}");
            ErrorData::new("internal", "the server could not store the scene")
        }
    }
}

/// A text field the shared rule refused, as the socket reports it.
fn invalid(e: crate::text::TextError) -> ErrorData {
    ErrorData::new("invalid_field", e.message).field(e.field)
}

fn rate_limited(event: &str, (rate, burst): (u32, u32)) -> ErrorData {
    ErrorData::new("rate_limited", format!("too many {event} messages: at most {rate} a second (bursts of {burst})"))
}

async fn recv<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the room's bus subscription yields.
enum RoomIn {
    Event(Arc<Event>),
    /// A burst outran this socket and this many events were skipped: the client gets the room's state again.
    Lagged(u64),
}

async fn recv_room(rx: &mut Option<broadcast::Receiver<Arc<Event>>>) -> Option<RoomIn> {
    let Some(rx) = rx else { return std::future::pending().await };
    match rx.recv().await {
        Ok(e) => Some(RoomIn::Event(e)),
        Err(broadcast::error::RecvError::Lagged(n)) => Some(RoomIn::Lagged(n)),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

fn media_error(e: NodeError) -> ErrorData {
    match e {
        NodeError::Router(RouterError::InvalidSdp(m)) => ErrorData::new("invalid_sdp", m).field("sdp"),
        NodeError::Router(RouterError::OfferCollision) => ErrorData::new(
            "offer_collision",
            "answer the server's offer first; after the first offer only the server offers",
        ),
        NodeError::Router(RouterError::NoPendingOffer) => {
            ErrorData::new("no_pending_offer", "the server has no offer awaiting an answer")
        }
        NodeError::Router(RouterError::InvalidCandidate(m)) => {
            ErrorData::new("invalid_candidate", m).field("candidate")
        }
        NodeError::Router(RouterError::RoomFull(n)) => {
            ErrorData::new("room_full", format!("the room is full ({n} participants)"))
        }
        NodeError::Closed => ErrorData::new("media_closed", "the media session ended; send a new offer"),
        other => ErrorData::new("media_error", other.to_string()),
    }
}

impl Session {
    fn send(&mut self, event: &str, data: impl serde::Serialize) {
        self.out.push(frame(event, data));
    }

    fn error(&mut self, mut e: ErrorData, event: Option<&str>) {
        e.event = event.map(str::to_owned);
        self.send("error", e);
    }

    async fn publish(&self, broadcast: Uuid, event: RoomEvent) {
        publish(&self.state, broadcast, event).await
    }

    async fn on_text(&mut self, text: &str, inbox: &mut Inbox) {
        let msg = match ClientMessage::parse(text) {
            Ok(msg) => msg,
            // The parse error already names the client event when the envelope could be read.
            Err(e) => return self.send("error", e),
        };
        let event = msg.event();
        if let Err(e) = self.dispatch(msg, inbox).await {
            self.error(e, Some(event));
        }
    }

    async fn dispatch(&mut self, msg: ClientMessage, inbox: &mut Inbox) -> Result<(), ErrorData> {
        match msg {
            ClientMessage::JoinBroadcast(req) => self.join(req, inbox).await,
            ClientMessage::LeaveBroadcast => {
                self.joined()?;
                self.leave(inbox, "left").await;
                Ok(())
            }
            ClientMessage::WebrtcOffer(sdp) => self.offer(sdp, inbox).await,
            ClientMessage::WebrtcAnswer(sdp) => self.media()?.answer(sdp.sdp).await.map_err(media_error),
            ClientMessage::IceCandidate(c) => self.media()?.add_ice_candidate(c.candidate).await.map_err(media_error),
            ClientMessage::ParticipantStatus(st) => {
                if self.status_rate.check().is_err() {
                    return Err(rate_limited("participant-status", STATUS_PER_SECOND));
                }
                self.status(st).await
            }
            ClientMessage::ChatMessage(msg) => {
                if self.chat_rate.check().is_err() {
                    return Err(rate_limited("chat-message", CHAT_PER_SECOND));
                }
                self.chat(msg).await
            }
            ClientMessage::Moderate(req) => self.moderate(req).await,
            ClientMessage::SceneUpdate(scene) => self.scene(*scene).await,
            ClientMessage::TrackSizes(t) => {
                let media = self.media()?;
                for s in t.sizes {
                    let source = match s.source {
                        protocol::VideoSource::Camera => TrackSource::Camera,
                        protocol::VideoSource::Screen => TrackSource::Screen,
                    };
                    media.set_render_size(&s.participant_id.to_string(), source, (s.width, s.height));
                }
                Ok(())
            }
        }
    }

    fn joined(&self) -> Result<&Joined, ErrorData> {
        self.joined.as_ref().ok_or_else(|| ErrorData::new("not_joined", "send join-broadcast first"))
    }

    fn media(&self) -> Result<&PeerHandle, ErrorData> {
        self.joined()?.media.as_ref().ok_or_else(|| ErrorData::new("no_media_session", "send webrtc-offer first"))
    }

    async fn join(&mut self, req: protocol::JoinBroadcast, inbox: &mut Inbox) -> Result<(), ErrorData> {
        if self.joined.is_some() {
            return Err(ErrorData::new("already_joined", "leave the current broadcast first"));
        }
        let store = &self.state.store;
        let internal = |e: crate::store::StoreError| {
            tracing::error!("signaling store error: {e}");
            ErrorData::new("internal", "the server could not complete that")
        };
        let not_found = || ErrorData::new("not_found", "no such broadcast").field("broadcastId");
        let broadcast = store.broadcast(req.broadcast_id).await.map_err(internal)?.ok_or_else(not_found)?;
        let session_key = self.caller.session_key();
        // Someone else's broadcast looks like a missing one, as in the REST API.
        let role = crate::auth::role_in(&self.caller, &broadcast).ok_or_else(not_found)?;
        let (user_id, name, guest_session) = match &self.caller {
            Caller::User(u) => {
                let user = store.user_by_id(u.id).await.map_err(internal)?.ok_or_else(not_found)?;
                (Some(u.id), user.name, None)
            }
            Caller::Guest(g) => (None, g.name.clone(), Some(g.id)),
        };
        if broadcast.status == BroadcastStatus::Ended {
            return Err(ErrorData::new("broadcast_ended", "this broadcast has ended"));
        }

        // Subscribe before anyone can see us, so no room event is missed between the snapshot and the stream.
        inbox.room = Some(self.state.bus.subscribe(&topic::broadcast(broadcast.id)));
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        if let Some(participant) = self.hub.reattach(broadcast.id, session_key, control_tx.clone()) {
            // Back within the grace period: the same seat, and the others never saw us leave.
            inbox.control = Some(control_rx);
            self.send_joined(&broadcast, &participant, role).await;
            let id = broadcast.id;
            self.start_program(&broadcast, role).await;
            self.joined = Some(Joined { broadcast, participant: participant.id, role, media: None });
            self.publish(id, RoomEvent::ParticipantStatusUpdated { participant }).await;
            self.hub.programs.refresh(id);
            return Ok(());
        }
        // Reconnecting after its node died (or a load balancer chose this one): the seat moves here with its id, so
        // the others keep its tiles and it keeps its place on stage. The node it left, if alive, lets it go.
        let moved = match req.participant_id {
            Some(seat) if self.state.cfg.redis.url.is_some() => {
                store.take_seat(broadcast.id, seat, session_key, &self.state.cluster.node).await.map_err(internal)?
            }
            _ => None,
        };
        let row = match &moved {
            Some((row, _)) => {
                store
                    .participant_status(row.id, req.audio_enabled, req.video_enabled, &row.name)
                    .await
                    .map_err(internal)?;
                row.clone()
            }
            None => store
                .participant_joined(crate::store::Seat {
                    broadcast_id: broadcast.id,
                    user_id,
                    name: &name,
                    role,
                    audio: req.audio_enabled,
                    video: req.video_enabled,
                    node: &self.state.cluster.node,
                    session: session_key,
                })
                .await
                .map_err(internal)?,
        };
        // A guest waiting backstage still waits after moving, unless a host had put them on stage.
        let backstage = role == Role::Guest
            && waits_backstage(&broadcast)
            && (moved.is_none() || !Scene::of(&broadcast).stage.contains(&row.id));
        let participant = Participant {
            id: row.id,
            user_id,
            name: if moved.is_some() { row.name.clone() } else { name },
            role,
            audio_enabled: req.audio_enabled,
            video_enabled: req.video_enabled,
            screen_sharing: false,
            speaking: false,
            backstage,
        };
        let member = Member {
            participant: participant.clone(),
            guest_session,
            session_key,
            control: control_tx,
            detached: None,
            parked_media: None,
        };
        if let Err(e) = self.hub.admit(broadcast.id, member) {
            inbox.room = None;
            if moved.is_some() {
                // A seat that came from another node and cannot be kept here is given up, and the room told.
                record_leave(&self.state, broadcast.id, row.id, "disconnected").await;
            } else {
                let _ = store.participant_left(row.id, &self.state.cluster.node).await;
            }
            return Err(e);
        }
        inbox.control = Some(control_rx);
        self.send_joined(&broadcast, &participant, role).await;
        let id = broadcast.id;
        match moved {
            Some((_, from)) => {
                tracing::info!(broadcast = %id, participant = %row.id, from, "a seat moved to this node");
                super::let_seat_go(&self.state, &from, id, row.id).await;
                self.publish(id, RoomEvent::ParticipantStatusUpdated { participant }).await;
            }
            None => self.publish(id, RoomEvent::ParticipantJoined { participant }).await,
        }
        self.start_program(&broadcast, role).await;
        self.joined = Some(Joined { broadcast, participant: row.id, role, media: None });
        Ok(())
    }

    /// A host or co-host in the studio starts the broadcast's program, so they see the composed preview
    /// before going live. A program that cannot start is logged; the room works without it.
    async fn start_program(&self, broadcast: &Broadcast, role: Role) {
        if role == Role::Guest {
            return;
        }
        let members = self.hub.roster(&self.state, broadcast.id).await;
        if let Err(e) = self.hub.programs.ensure(&self.state, &self.hub.media, broadcast, members).await {
            tracing::error!(broadcast = %broadcast.id, "program not started: {e}");
        }
    }

    async fn send_joined(&mut self, broadcast: &Broadcast, me: &Participant, role: Role) {
        let others: Vec<_> =
            self.hub.roster(&self.state, broadcast.id).await.into_iter().filter(|p| p.id != me.id).collect();
        let offered = self.state.plugins.offered().await;
        let program = self.hub.programs.get(broadcast.id);
        let stage_layout = program.as_ref().and_then(|l| l.stage_layout());
        let canvas_layouts = program.map(|l| l.canvas_layouts()).unwrap_or_default();
        let data = json!({
            "participantId": me.id,
            "role": role.as_str(),
            "broadcast": {"id": broadcast.id, "title": broadcast.title, "status": broadcast.status,
                "backstage": waits_backstage(broadcast),
                "localRecording": crate::api::local_recordings::asked_for(broadcast),
                // Someone joining a live show sees how long it has been on air.
                "startTime": broadcast.start_time.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())},
            "participants": others,
            "self": me,
            "iceServers": self.hub.ice_servers.for_participant(me.id, std::time::SystemTime::now()),
            "chat": self.hub.chat(broadcast.id),
            "scene": Scene::of(broadcast),
            "layouts": offered.layouts,
            "overlays": offered.overlays,
            "stageLayout": stage_layout,
            "canvasLayouts": canvas_layouts,
        });
        self.send("joined", data);
    }

    /// Ends room membership (and the media session) if any.
    async fn leave(&mut self, inbox: &mut Inbox, reason: &'static str) {
        let Some(j) = self.joined.take() else { return };
        *inbox = Inbox::default();
        self.hub.remove(j.broadcast.id, j.participant);
        drop(j.media);
        record_leave(&self.state, j.broadcast.id, j.participant, reason).await;
    }

    /// The socket dropped without a leave: keep the seat for [`RECONNECT_GRACE`](super::RECONNECT_GRACE), then
    /// leave unless the same session took it back.
    fn detach(&mut self) {
        let Some(j) = self.joined.take() else { return };
        let Some(generation) = self.hub.detach(j.broadcast.id, j.participant, j.media) else { return };
        let (hub, state) = (self.hub.clone(), self.state.clone());
        let (broadcast, participant) = (j.broadcast.id, j.participant);
        tokio::spawn(async move {
            tokio::time::sleep(super::RECONNECT_GRACE).await;
            if hub.expire(broadcast, participant, generation) {
                record_leave(&state, broadcast, participant, "disconnected").await;
            }
        });
    }

    async fn offer(&mut self, sdp: protocol::Sdp, inbox: &mut Inbox) -> Result<(), ErrorData> {
        let j = self.joined.as_mut().ok_or_else(|| ErrorData::new("not_joined", "send join-broadcast first"))?;
        if j.media.is_none() {
            let (handle, events) =
                self.hub.media.join(&j.broadcast.id.to_string(), &j.participant.to_string()).map_err(media_error)?;
            // A participant who muted before publishing stays muted.
            if let Some((p, ..)) = self.hub.member(j.broadcast.id, j.participant) {
                let _ = handle.set_muted(TrackSource::Microphone, !p.audio_enabled);
                let _ = handle.set_muted(TrackSource::Camera, !p.video_enabled);
            }
            // Hosts and co-hosts watch the program preview over this connection; a guest backstage watches it
            // as the return feed.
            let backstage = self.hub.member(j.broadcast.id, j.participant).is_some_and(|(p, ..)| p.backstage);
            if j.role != Role::Guest || backstage {
                let _ = handle.watch_program(true);
            }
            j.media = Some(handle);
            inbox.media = Some(events);
        }
        // unwrap: set just above when missing.
        let answer = j.media.as_ref().expect("a media session").offer(sdp.sdp).await.map_err(media_error)?;
        self.send("webrtc-answer", protocol::Sdp { sdp: answer });
        Ok(())
    }

    async fn status(&mut self, st: protocol::ParticipantStatus) -> Result<(), ErrorData> {
        let j = self.joined()?;
        let (broadcast, me) = (j.broadcast.id, j.participant);
        let name = match st.name.as_deref() {
            Some(n) => Some(crate::text::one_line("name", n, protocol::MAX_NAME_CHARS).map_err(invalid)?),
            None => None,
        };
        if let Some(handle) = &j.media {
            // Unmuting oneself lifts a moderator's mute too, as in StreamYard.
            if let Some(on) = st.audio_enabled {
                let _ = handle.set_muted(TrackSource::Microphone, !on);
            }
            if let Some(on) = st.video_enabled {
                let _ = handle.set_muted(TrackSource::Camera, !on);
            }
        }
        let updated = self
            .hub
            .update(broadcast, me, |p| {
                p.audio_enabled = st.audio_enabled.unwrap_or(p.audio_enabled);
                p.video_enabled = st.video_enabled.unwrap_or(p.video_enabled);
                p.screen_sharing = st.screen_sharing.unwrap_or(p.screen_sharing);
                if let Some(n) = name {
                    p.name = n;
                }
            })
            .ok_or_else(|| ErrorData::new("not_joined", "send join-broadcast first"))?;
        self.persist_status(&updated).await;
        self.publish(broadcast, RoomEvent::ParticipantStatusUpdated { participant: updated }).await;
        Ok(())
    }

    async fn persist_status(&self, p: &Participant) {
        persist_status(&self.state, p).await
    }

    async fn chat(&mut self, msg: protocol::ChatIn) -> Result<(), ErrorData> {
        let j = self.joined()?;
        let broadcast = j.broadcast.id;
        let text = crate::text::one_line("text", &msg.text, protocol::MAX_CHAT_CHARS).map_err(invalid)?;
        let (me, ..) = self
            .hub
            .member(broadcast, j.participant)
            .ok_or_else(|| ErrorData::new("not_joined", "send join-broadcast first"))?;
        let sent_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let chat = ChatMessage { id: Uuid::now_v7(), participant_id: me.id, name: me.name, text, sent_at };
        self.hub.push_chat(broadcast, chat.clone());
        self.publish(broadcast, RoomEvent::ChatMessage(chat)).await;
        Ok(())
    }

    async fn moderate(&mut self, req: protocol::Moderate) -> Result<(), ErrorData> {
        let j = self.joined()?;
        let (broadcast, me, my_role) = (j.broadcast.id, j.participant, j.role);
        if my_role == Role::Guest {
            return Err(ErrorData::new("forbidden", "only the host or a co-host may moderate"));
        }
        let not_found = || ErrorData::new("not_found", "no such participant in this room").field("participantId");
        // Someone in the room through another node is moderated there: their node carries the order out.
        let (target, here) = match self.hub.member(broadcast, req.participant_id) {
            Some((target, guest_session, control)) => (target, Some((guest_session, control))),
            None => {
                let elsewhere = self.hub.roster(&self.state, broadcast).await;
                (elsewhere.into_iter().find(|p| p.id == req.participant_id).ok_or_else(not_found)?, None)
            }
        };
        if target.id == me {
            return Err(ErrorData::new("invalid_field", "you cannot moderate yourself").field("participantId"));
        }
        // The host is beyond moderation; co-hosts moderate guests only.
        if target.role == Role::Host || (my_role == Role::Cohost && target.role != Role::Guest) {
            return Err(ErrorData::new("forbidden", "you may not moderate that participant"));
        }
        if matches!(req.action, ModerateAction::Admit | ModerateAction::SendBackstage) && target.role != Role::Guest {
            return Err(ErrorData::new("invalid_field", "only guests wait backstage").field("participantId"));
        }
        match here {
            Some((guest_session, control)) => {
                carry_out(&self.state, &self.hub, broadcast, &target, guest_session, &control, req.action, me).await
            }
            None => super::order_elsewhere(&self.state, broadcast, target.id, req.action, me).await.map_err(|e| {
                tracing::warn!(%broadcast, "could not pass a moderation order to another node: {e}");
                ErrorData::new("internal", "the server could not complete that")
            }),
        }
    }

    async fn scene(&mut self, scene: Scene) -> Result<(), ErrorData> {
        let j = self.joined()?;
        if j.role == Role::Guest {
            return Err(ErrorData::new("forbidden", "only the host or a co-host may change the scene"));
        }
        let broadcast = j.broadcast.id;
        crate::scene::apply(&self.state, broadcast, scene).await.map(|_| ()).map_err(scene_error)
    }

    /// Room events were skipped: nothing is lost silently, the client gets the room as it is now (`room-state`).
    async fn resync_room(&mut self, skipped: u64) {
        let Some(j) = self.joined.as_ref() else { return };
        let id = j.broadcast.id;
        tracing::info!(broadcast = %id, skipped, "a socket lagged behind the room: sending its state again");
        let scene = match self.state.store.broadcast(id).await {
            Ok(Some(b)) => Scene::of(&b),
            _ => Scene::of(&j.broadcast),
        };
        let data = json!({
            "participants": self.hub.participants(id),
            "scene": scene,
            "stageLayout": self.hub.programs.get(id).and_then(|l| l.stage_layout()),
            "canvasLayouts": self.hub.programs.get(id).map(|l| l.canvas_layouts()).unwrap_or_default(),
            "chat": self.hub.chat(id),
            "skipped": skipped,
        });
        self.send("room-state", data);
    }

    fn on_room_event(&mut self, ev: Option<Arc<Event>>) {
        let Some(ev) = ev else { return };
        let me = self.joined.as_ref().map(|j| j.participant);
        let guest = self.joined.as_ref().is_none_or(|j| j.role == Role::Guest);
        let about = match RoomEvent::from_bus(&ev) {
            Ok(RoomEvent::ParticipantJoined { participant }) => Some(participant.id),
            Ok(RoomEvent::ParticipantLeft { participant_id, .. }) => Some(participant_id),
            // Outputs are the hosts' business: guests do not learn destinations or their state.
            Ok(RoomEvent::DestinationStatus { .. }) if guest => return,
            _ => None,
        };
        if about.is_some() && about == me {
            return; // the client knows it joined (`joined`) or left
        }
        self.out.push(frame(&ev.event, &ev.data));
    }

    async fn on_media_event(&mut self, ev: Option<MediaEvent>, inbox: &mut Inbox) {
        let Some(j) = self.joined.as_mut() else { return };
        let (broadcast, me) = (j.broadcast.id, j.participant);
        match ev {
            Some(MediaEvent::Offer(sdp)) => self.send("webrtc-offer", protocol::Sdp { sdp }),
            Some(MediaEvent::Speaking(speaking)) => {
                if let Some(p) = self.hub.update(broadcast, me, |p| p.speaking = speaking) {
                    self.publish(broadcast, RoomEvent::ParticipantStatusUpdated { participant: p }).await;
                }
            }
            Some(MediaEvent::Closed(reason)) => {
                j.media = None;
                inbox.media = None;
                if reason != CloseReason::Left {
                    let message =
                        format!("the media connection ended ({reason:?}); send a new webrtc-offer to reconnect");
                    self.error(ErrorData::new("media_disconnected", message), None);
                }
            }
            None => {
                j.media = None;
                inbox.media = None;
            }
            Some(MediaEvent::Quality(quality)) => {
                self.state.metrics.connection.set(&broadcast.to_string(), &me.to_string(), &quality);
                self.publish(broadcast, RoomEvent::ConnectionQuality { participant_id: me, quality }).await;
            }
            Some(MediaEvent::VideoPaused { participant, source, paused }) => {
                let source = match source {
                    TrackSource::Screen => protocol::VideoSource::Screen,
                    _ => protocol::VideoSource::Camera,
                };
                self.send("video-paused", json!({ "participantId": participant, "source": source, "paused": paused }));
            }
            Some(MediaEvent::Connected | MediaEvent::TrackPublished(_)) => {}
        }
    }

    async fn on_control(&mut self, ctl: Option<Control>, inbox: &mut Inbox) {
        match ctl {
            Some(Control::Moderated { action, by }) => {
                self.send("moderated", json!({ "action": action, "byParticipantId": by }));
                // Backstage, a guest watches the program as the return feed; in the show, the studio.
                if let Some(media) = self.joined.as_ref().and_then(|j| j.media.as_ref()) {
                    match action {
                        ModerateAction::Admit => _ = media.watch_program(false),
                        ModerateAction::SendBackstage => _ = media.watch_program(true),
                        _ => {}
                    }
                }
                if action == ModerateAction::Remove {
                    self.leave(inbox, "removed").await;
                    self.close = Some("removed by a host");
                }
            }
            Some(Control::Moved) => {
                self.leave(inbox, "moved").await;
                self.close = Some("the studio reconnected through another node");
            }
            None => inbox.control = None,
        }
    }
}

/// Carries out a host's order about `target`, a member of this node's room: stops forwarding what was muted, puts
/// them backstage or in the show, or removes them; their studio is told, and the room through the bus.
#[allow(clippy::too_many_arguments, reason = "the order, its target and the target's handles on this node")]
pub(super) async fn carry_out(
    state: &AppState,
    hub: &Hub,
    broadcast: Uuid,
    target: &Participant,
    guest_session: Option<Uuid>,
    control: &mpsc::UnboundedSender<Control>,
    action: ModerateAction,
    by: Uuid,
) -> Result<(), ErrorData> {
    let room = broadcast.to_string();
    let who = target.id.to_string();
    match action {
        ModerateAction::MuteAudio | ModerateAction::MuteVideo => {
            let (source, audio) = match action {
                ModerateAction::MuteAudio => (TrackSource::Microphone, true),
                _ => (TrackSource::Camera, false),
            };
            // Stop forwarding at once, even before the target's client reacts. No media session yet is fine.
            let _ = hub.media.set_muted(&room, &who, source, true);
            let updated = hub
                .update(broadcast, target.id, |p| {
                    if audio {
                        p.audio_enabled = false;
                    } else {
                        p.video_enabled = false;
                    }
                })
                .ok_or_else(|| ErrorData::new("not_found", "the participant left").field("participantId"))?;
            let _ = control.send(Control::Moderated { action, by });
            persist_status(state, &updated).await;
            publish(state, broadcast, RoomEvent::ParticipantStatusUpdated { participant: updated }).await;
        }
        ModerateAction::Admit | ModerateAction::SendBackstage => {
            let backstage = action == ModerateAction::SendBackstage;
            if backstage {
                // Off the stage first, so the program never shows someone backstage.
                take_off_stage(state, broadcast, target.id).await?;
            }
            let updated = hub
                .update(broadcast, target.id, |p| p.backstage = backstage)
                .ok_or_else(|| ErrorData::new("not_found", "the participant left").field("participantId"))?;
            let _ = control.send(Control::Moderated { action, by });
            publish(state, broadcast, RoomEvent::ParticipantStatusUpdated { participant: updated }).await;
        }
        ModerateAction::Remove => {
            // Their session ends too, so the invite cookie cannot bring them back.
            if let Some(id) = guest_session
                && let Err(e) = state.store.revoke_guest_session(id).await
            {
                tracing::warn!("could not revoke guest session {id}: {e}");
            }
            if control.send(Control::Moderated { action, by }).is_err() {
                // Their socket is gone (within the reconnect grace): give the seat up now.
                hub.remove(broadcast, target.id);
                record_leave(state, broadcast, target.id, "removed").await;
            }
        }
    }
    Ok(())
}

/// Takes `participant` (camera and screen) off the broadcast's stage, if on it.
async fn take_off_stage(state: &AppState, broadcast: Uuid, participant: Uuid) -> Result<(), ErrorData> {
    let stored = state
        .store
        .broadcast(broadcast)
        .await
        .map_err(|e| {
            tracing::error!(%broadcast, "taking someone off stage: {e}");
            ErrorData::new("internal", "the server could not complete that")
        })?
        .ok_or_else(|| ErrorData::new("not_found", "no such broadcast"))?;
    let mut scene = Scene::of(&stored);
    if !scene.stage.contains(&participant) {
        return Ok(());
    }
    scene.stage.retain(|id| *id != participant);
    crate::scene::apply(state, broadcast, scene).await.map(|_| ()).map_err(scene_error)
}

async fn publish(state: &AppState, broadcast: Uuid, event: RoomEvent) {
    if let Err(e) = state.bus.publish(&topic::broadcast(broadcast), event.to_bus()).await {
        tracing::warn!(%broadcast, "could not publish {}: {e}", event.name());
    }
}

async fn persist_status(state: &AppState, p: &Participant) {
    if let Err(e) = state.store.participant_status(p.id, p.audio_enabled, p.video_enabled, &p.name).await {
        tracing::warn!("could not record participant {} status: {e}", p.id);
    }
}
