//! A room as the node keeps it: the router's state machine, the links to its peers' tasks, and the fan-out
//! of frames and decisions to them.

use super::*;

/// One room: the router's state machine and the channels to its peers' tasks.
pub(super) struct RoomShared {
    pub(super) name: String,
    pub(super) state: Mutex<RoomState>,
}

pub(super) struct RoomState {
    pub(super) room: Room,
    pub(super) links: HashMap<PeerId, PeerLink>,
    /// Sources the node publishes itself ([`LocalPublisher`]), by their peer id.
    pub(super) locals: HashMap<PeerId, Arc<LocalShared>>,
    /// Participants on other nodes ([`RemotePublisher`]), by their peer id: where their keyframe requests go.
    pub(super) remotes: HashMap<PeerId, mpsc::UnboundedSender<RemoteKeyframe>>,
    /// The room's program, fed every frame moderation lets through.
    pub(super) tap: Option<MediaTap>,
    /// The program preview the node publishes into the room, if any.
    pub(super) program: Option<(TrackId, Arc<ProgramShared>)>,
    /// The room left the node (last peer gone); its timer task ends.
    pub(super) closed: bool,
}

/// The way into a peer task.
pub(super) struct PeerLink {
    /// The participant (for a relay peer: the other node).
    pub(super) participant: String,
    /// Another node ([`RelayOut`]), not a session.
    pub(super) relay: bool,
    pub(super) cmd: mpsc::UnboundedSender<PeerCmd>,
    pub(super) frames: mpsc::Sender<Arc<Forwarded>>,
    pub(super) events: mpsc::UnboundedSender<MediaEvent>,
}

/// A frame on its way from a publisher's task (or the node's program preview) to a subscriber's.
pub(super) struct Forwarded {
    pub(super) track: TrackId,
    /// The simulcast layer it is from (0 without simulcast).
    pub(super) layer: u8,
    pub(super) payload: Payload,
}

#[allow(clippy::large_enum_variant, reason = "a frame moves by value on the hot path; boxing would allocate per frame")]
pub(super) enum Payload {
    /// Depacketized from a publisher.
    Relayed(MediaData),
    /// Encoded by the node.
    Local(LocalFrame),
}

/// A [`ProgramTrack`]'s state the room reaches.
pub(super) struct ProgramShared {
    /// A watcher's decoder needs a keyframe.
    pub(super) keyframe_wanted: AtomicBool,
}

/// A [`LocalPublisher`]'s state the room reaches.
pub(super) struct LocalShared {
    /// A subscriber's decoder (or the program) needs a keyframe.
    pub(super) keyframe_wanted: AtomicBool,
}

/// Who takes a frame of `track` through the room's tap, if anyone does (`tapped`, as the router said): the tap,
/// the publisher and the source, for the call made after the room is unlocked.
pub(super) fn tap_for(
    st: &RoomState,
    track: TrackId,
    tapped: Tapped,
) -> Option<(MediaTap, Arc<str>, TrackSource, Tapped)> {
    let tap = st.tap.clone().filter(|_| tapped.any())?;
    st.room.track(track).map(|info| (tap, info.participant.clone(), info.source, tapped))
}

/// Queues one frame of `track` to each of `targets`' tasks (one shared copy; a full queue drops it for that
/// subscriber only) and returns that copy, for the room's tap.
pub(super) fn deliver(
    st: &RoomState,
    targets: &[PeerId],
    track: TrackId,
    layer: u8,
    payload: Payload,
) -> Arc<Forwarded> {
    let f = Arc::new(Forwarded { track, layer, payload });
    for peer in targets {
        if let Some(link) = st.links.get(peer)
            && link.frames.try_send(f.clone()).is_err()
        {
            tracing::debug!(peer = peer.0, "subscriber queue full, frame dropped");
        }
    }
    f
}

/// Takes peer `id` (a session or a source the node publishes) out of `room`, and the room out of the node once
/// nobody is left in it.
pub(super) fn leave(inner: &Inner, room: &Arc<RoomShared>, id: PeerId) {
    // Lock order: rooms, then a room's state (as in `MediaNode::enter`).
    let mut rooms = inner.rooms.lock();
    let mut st = room.state.lock();
    st.room.remove_peer(id);
    let session = st.links.remove(&id).is_some_and(|l| !l.relay);
    st.locals.remove(&id);
    st.remotes.remove(&id);
    dispatch(&mut st);
    if session {
        inner.sessions.send_modify(|n| *n += 1);
    }
    if st.room.is_empty() {
        st.closed = true;
        if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
        }
    }
}

/// Carries the room's decisions to the peers' tasks. Called with the room locked, after every
/// input to the room.
pub(super) fn dispatch(st: &mut RoomState) {
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
            Decision::RequestKeyframe { publisher, .. } if st.locals.contains_key(&publisher) => {
                if let Some(local) = st.locals.get(&publisher) {
                    local.keyframe_wanted.store(true, Ordering::Relaxed);
                }
                continue;
            }
            Decision::RequestKeyframe { publisher, track, layer, kind } if st.remotes.contains_key(&publisher) => {
                if let Some(remote) = st.remotes.get(&publisher) {
                    let _ = remote.send((track, layer.unwrap_or(0), kind));
                }
                continue;
            }
            Decision::RequestKeyframe { publisher, track, layer, kind } => {
                (publisher, PeerCmd::RequestKeyframe(track, layer, kind))
            }
            Decision::VideoPaused { peer, track, paused } => {
                if let (Some(link), Some(info)) = (st.links.get(&peer), st.room.track(track)) {
                    let _ = link.events.send(MediaEvent::VideoPaused {
                        participant: info.participant.to_string(),
                        source: info.source,
                        paused,
                    });
                }
                continue;
            }
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

pub(super) async fn room_timer(shared: Arc<RoomShared>) {
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
