//! Participants without a socket: an encoder publishing with a `source` ingest key joins the broadcast as a
//! participant named after the key's label ([`take_seat`], [`leave_seat`]), over WHIP (RFC 9725; the HTTP
//! side is `api/whip.rs`) or RTMP (`crate::ingest`). For WHIP, one task per publisher holds its media session
//! (publish-only, never sent an offer) and takes it out of the room when the session ends, when the publisher
//! `DELETE`s its resource, when its key is revoked, or when a host removes it.

use std::collections::HashMap;
use std::sync::Arc;

use backyard_core::rtc::{CloseReason, MediaEvent, NodeError, PeerHandle};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::protocol::ModerateAction;
use super::{Control, Hub, Member, Participant, RoomEvent};
use crate::auth::Role;
use crate::bus::topic;
use crate::ingest::IngestStatus;
use crate::state::AppState;
use crate::store::{Broadcast, IngestKeyRow};

/// The WHIP publishers of this node, by resource (the participant id).
#[derive(Default)]
pub struct WhipSessions {
    sessions: Mutex<HashMap<Uuid, Session>>,
}

struct Session {
    key: Uuid,
    stop: Arc<Notify>,
}

/// Why a WHIP offer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    /// The key already publishes.
    #[error("this key already publishes over WHIP; DELETE that session first")]
    KeyInUse,
    /// The room is full.
    #[error("{0}")]
    RoomFull(String),
    /// The offer was refused by the media node.
    #[error("{0}")]
    Media(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl WhipSessions {
    /// Whether `resource` is a session published with `key`.
    pub fn owned_by(&self, resource: Uuid, key: Uuid) -> bool {
        self.sessions.lock().get(&resource).is_some_and(|s| s.key == key)
    }

    /// Ends the session `resource` (its publisher sent `DELETE`). False when there is none.
    pub fn end(&self, resource: Uuid) -> bool {
        let Some(s) = self.sessions.lock().remove(&resource) else { return false };
        s.stop.notify_one();
        true
    }

    /// A key was revoked: its session, if any, ends.
    pub fn revoked(&self, key: Uuid) {
        let ended: Vec<_> = {
            let mut sessions = self.sessions.lock();
            let ids: Vec<Uuid> = sessions.iter().filter(|(_, s)| s.key == key).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| sessions.remove(&id)).collect()
        };
        for s in ended {
            s.stop.notify_one();
        }
    }
}

/// Joins the publisher of `offer` to `broadcast`'s room as a participant named after `key`'s label, and returns
/// its resource id (the participant id) and the SDP answer.
pub async fn publish(
    state: &AppState,
    hub: &Arc<Hub>,
    broadcast: &Broadcast,
    key: &IngestKeyRow,
    offer: String,
) -> Result<(Uuid, String), WhipError> {
    let sessions = &state.whip;
    if sessions.sessions.lock().values().any(|s| s.key == key.id) {
        return Err(WhipError::KeyInUse);
    }
    let (participant, control_rx) = take_seat(state, hub, broadcast.id, &key.label).await?;
    let id = participant.id;
    let joined = hub.media.join_publisher(&broadcast.id.to_string(), &id.to_string());
    let answer = match joined {
        Ok((handle, events)) => match handle.offer(offer).await {
            Ok(answer) => Ok((handle, events, answer)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (handle, events, answer) = match answer {
        Ok(ok) => ok,
        Err(e) => {
            // Never announced: the room is not told it left.
            hub.remove(broadcast.id, id);
            let _ = state.store.participant_left(id, &state.cluster.node).await;
            return Err(e.into());
        }
    };
    announce_joined(state, broadcast.id, participant).await;
    let stop = Arc::new(Notify::new());
    sessions.sessions.lock().insert(id, Session { key: key.id, stop: stop.clone() });
    let _ = state.store.ingest_key_used(key.id).await;
    tracing::info!(broadcast = %broadcast.id, key = %key.id, participant = %id, "whip: publishing");
    let live = IngestStatus { state: "live".into(), stream: Some("WebRTC (WHIP)".into()), ..Default::default() };
    state.ingest.set_status(state, broadcast.id, key.id, live);
    let task =
        Publisher { state: state.clone(), hub: hub.clone(), broadcast: broadcast.id, participant: id, key: key.id };
    tokio::spawn(task.run(handle, events, control_rx, stop));
    Ok((id, answer))
}

/// Seats an encoder in `broadcast`'s room as a participant called `name` (a guest, in the show, not backstage);
/// returns it and the orders hosts give it (removal). The room is told once its media is there
/// ([`announce_joined`]).
pub(crate) async fn take_seat(
    state: &AppState,
    hub: &Hub,
    broadcast: Uuid,
    name: &str,
) -> Result<(Participant, mpsc::UnboundedReceiver<Control>), WhipError> {
    let seat = crate::store::Seat {
        broadcast_id: broadcast,
        user_id: None,
        name,
        role: Role::Guest,
        audio: true,
        video: true,
        node: &state.cluster.node,
        // Nobody can take an encoder's seat over: it has no session of its own.
        session: Uuid::new_v4(),
    };
    let row = state.store.participant_joined(seat).await?;
    let participant = Participant {
        id: row.id,
        user_id: None,
        name: name.to_owned(),
        role: Role::Guest,
        audio_enabled: true,
        video_enabled: true,
        screen_sharing: false,
        speaking: false,
        backstage: false,
    };
    let (control, control_rx) = mpsc::unbounded_channel();
    let member = Member {
        participant: participant.clone(),
        guest_session: None,
        // Nobody can take an encoder's seat back: it has no session of its own.
        session_key: Uuid::new_v4(),
        control,
        detached: None,
        parked_media: None,
    };
    if let Err(e) = hub.admit(broadcast, member) {
        let _ = state.store.participant_left(row.id, &state.cluster.node).await;
        return Err(WhipError::RoomFull(e.message));
    }
    Ok((participant, control_rx))
}

/// Tells the room an encoder took its seat.
pub async fn announce_joined(state: &AppState, broadcast: Uuid, participant: Participant) {
    let event = RoomEvent::ParticipantJoined { participant };
    if let Err(e) = state.bus.publish(&topic::broadcast(broadcast), event.to_bus()).await {
        tracing::warn!(%broadcast, "could not publish participant-joined: {e}");
    }
}

/// An encoder's seat is given up (`reason`: `left`, `removed`, `disconnected`): the room is told.
pub async fn leave_seat(state: &AppState, hub: &Hub, broadcast: Uuid, participant: Uuid, reason: &'static str) {
    hub.remove(broadcast, participant);
    super::session::record_leave(state, broadcast, participant, reason).await;
}

struct Publisher {
    state: AppState,
    hub: Arc<Hub>,
    broadcast: Uuid,
    participant: Uuid,
    key: Uuid,
}

impl Publisher {
    async fn run(
        self,
        media: PeerHandle,
        mut events: mpsc::UnboundedReceiver<MediaEvent>,
        mut control: mpsc::UnboundedReceiver<Control>,
        stop: Arc<Notify>,
    ) {
        let reason = loop {
            tokio::select! {
                _ = stop.notified() => break "left",
                ctl = control.recv() => match ctl {
                    Some(Control::Moderated { action: ModerateAction::Remove, .. }) => break "removed",
                    // Mutes act on the media itself; an encoder's seat never moves (it names none to take).
                    Some(Control::Moderated { .. } | Control::Moved) => {}
                    None => break "left",
                },
                ev = events.recv() => match ev {
                    Some(MediaEvent::Closed(CloseReason::Left)) | None => break "left",
                    Some(MediaEvent::Closed(reason)) => {
                        tracing::info!(broadcast = %self.broadcast, participant = %self.participant, ?reason, "whip: session ended");
                        break "disconnected";
                    }
                    Some(MediaEvent::Speaking(speaking)) => self.speaking(speaking).await,
                    Some(MediaEvent::Quality(quality)) => {
                        let (b, p) = (self.broadcast, self.participant);
                        self.state.metrics.connection.set(&b.to_string(), &p.to_string(), &quality);
                        self.publish(RoomEvent::ConnectionQuality { participant_id: p, quality }).await;
                    }
                    Some(_) => {}
                },
            }
        };
        drop(media);
        self.state.whip.sessions.lock().remove(&self.participant);
        let idle = IngestStatus { state: "idle".into(), ..Default::default() };
        self.state.ingest.set_status(&self.state, self.broadcast, self.key, idle);
        leave_seat(&self.state, &self.hub, self.broadcast, self.participant, reason).await;
    }

    async fn speaking(&self, speaking: bool) {
        if let Some(p) = self.hub.update(self.broadcast, self.participant, |p| p.speaking = speaking) {
            self.publish(RoomEvent::ParticipantStatusUpdated { participant: p }).await;
        }
    }

    async fn publish(&self, event: RoomEvent) {
        if let Err(e) = self.state.bus.publish(&topic::broadcast(self.broadcast), event.to_bus()).await {
            tracing::warn!(broadcast = %self.broadcast, "could not publish {}: {e}", event.name());
        }
    }
}
