//! A room across nodes, as the media node sees it: another node with people in the room is a relay peer here
//! ([`MediaNode::relay_out`]: every track published on this node goes to it, every layer), and a participant
//! whose session is on another node is a remote publisher here ([`MediaNode::publish_remote`]: its tracks arrive
//! over the relay and go to this node's subscribers and program like anyone's). Moving the bytes between nodes
//! is [`crate::relay`]'s job.

use super::*;

/// What a relay peer must carry to its node, in the order the room decided it.
pub enum RelayOutput {
    /// A track to announce (published, or there when the node arrived).
    Track(RelayTrack),
    /// A track announced before is gone.
    Untrack(TrackId),
    /// One frame of an announced track.
    Frame(RelayedFrame),
}

/// A track as another node needs it to publish it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTrack {
    pub id: TrackId,
    pub participant: String,
    pub source: TrackSource,
    /// Simulcast layers (1 without).
    pub layers: u8,
    /// Fixed-rate video ([`crate::router::Room::publish_fixed`]).
    pub fixed: bool,
}

/// A frame on its way to another node: the copy this node's subscribers share.
pub struct RelayedFrame(Arc<Forwarded>);

/// The frame's data: depacketized from a participant, or encoded by the node.
pub enum RelayedData<'a> {
    Rtc(&'a MediaData),
    Local(&'a LocalFrame),
}

impl RelayedFrame {
    pub fn track(&self) -> TrackId {
        self.0.track
    }

    /// The simulcast layer (0 without).
    pub fn layer(&self) -> u8 {
        self.0.layer
    }

    pub fn data(&self) -> RelayedData<'_> {
        match &self.0.payload {
            Payload::Relayed(d) => RelayedData::Rtc(d),
            Payload::Local(f) => RelayedData::Local(f),
        }
    }
}

/// Another node's place in one room of this node ([`MediaNode::relay_out`]). Dropping it takes the node out.
pub struct RelayOut {
    inner: Arc<Inner>,
    room: Arc<RoomShared>,
    id: PeerId,
    cmds: mpsc::UnboundedReceiver<PeerCmd>,
    frames: mpsc::Receiver<Arc<Forwarded>>,
}

impl RelayOut {
    /// The next thing to carry, or `None` once the room has left the node.
    pub async fn next(&mut self) -> Option<RelayOutput> {
        loop {
            // Announcements first: a frame of a track not announced yet would be dropped on the other side.
            let cmd = match self.cmds.try_recv() {
                Ok(cmd) => Some(cmd),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            };
            let cmd = match cmd {
                Some(cmd) => cmd,
                None => tokio::select! {
                    biased;
                    cmd = self.cmds.recv() => cmd?,
                    frame = self.frames.recv() => return frame.map(|f| RelayOutput::Frame(RelayedFrame(f))),
                },
            };
            match cmd {
                PeerCmd::Subscribe(info) => {
                    let shape = self.room.state.lock().room.track_shape(info.id);
                    let Some((layers, fixed)) = shape else { continue };
                    return Some(RelayOutput::Track(RelayTrack {
                        id: info.id,
                        participant: info.participant.to_string(),
                        source: info.source,
                        layers,
                        fixed,
                    }));
                }
                PeerCmd::Unsubscribe(track) => return Some(RelayOutput::Untrack(track)),
                PeerCmd::Leave => return None,
                // A relay peer publishes nothing and negotiates nothing.
                _ => {}
            }
        }
    }

    /// A subscriber on the other node needs a keyframe of `layer` of `track`.
    pub fn keyframe(&self, track: TrackId, layer: u8, kind: KeyframeRequestKind) {
        let mut st = self.room.state.lock();
        st.room.relay_keyframe(track, layer, kind, Instant::now());
        dispatch(&mut st);
    }
}

impl Drop for RelayOut {
    fn drop(&mut self) {
        leave(&self.inner, &self.room, self.id);
    }
}

/// What a remote publisher's keyframe requests say: which of its tracks (this node's id), which layer (0 without
/// simulcast), PLI or FIR.
pub type RemoteKeyframe = (TrackId, u8, KeyframeRequestKind);

/// A participant on another node, publishing here what arrives over the relay ([`MediaNode::publish_remote`]).
/// Dropping it withdraws its tracks.
pub struct RemotePublisher {
    inner: Arc<Inner>,
    room: Arc<RoomShared>,
    id: PeerId,
}

impl RemotePublisher {
    /// Publishes one of the participant's tracks here.
    pub fn publish(&self, source: TrackSource, layers: u8, fixed: bool) -> Result<TrackId, NodeError> {
        let mut st = self.room.state.lock();
        let track = if fixed {
            st.room.publish_fixed(self.id, source)?
        } else {
            st.room.publish_layers(self.id, source, layers)?
        };
        dispatch(&mut st);
        Ok(track)
    }

    /// Withdraws a track published with [`RemotePublisher::publish`].
    pub fn unpublish(&self, track: TrackId) {
        let mut st = self.room.state.lock();
        if st.room.track(track).is_some_and(|t| t.publisher == self.id) {
            st.room.unpublish(track);
            dispatch(&mut st);
        }
    }

    /// One frame of `track`'s `layer` from the other node: forwarded and tapped as if its publisher were here.
    pub fn send_rtc(&self, track: TrackId, layer: u8, keyframe: bool, data: MediaData) {
        let size = (keyframe && data.params.spec().codec == str0m::format::Codec::Vp8)
            .then(|| crate::router::layers::vp8_keyframe_size(&data.data))
            .flatten();
        let frame = crate::router::Frame {
            keyframe,
            contiguous: data.contiguous,
            audio_level: data.ext_vals.audio_level,
            voice_activity: data.ext_vals.voice_activity,
        };
        let mut targets = Vec::new();
        let (tap, forwarded) = {
            let mut st = self.room.state.lock();
            if st.room.track(track).is_none_or(|t| t.publisher != self.id) {
                return;
            }
            let tapped = st.room.on_frame(track, layer, frame, size, data.data.len(), Instant::now(), &mut targets);
            let tap = tap_for(&st, track, tapped);
            let forwarded = deliver(&st, &targets, track, layer, Payload::Relayed(data));
            dispatch(&mut st);
            (tap, forwarded)
        };
        if let (Some((tap, participant, source, to)), Payload::Relayed(data)) = (tap, &forwarded.payload) {
            tap(&TapFrame { participant: &participant, source, layer, data: TapData::Rtc(data), to });
        }
    }

    /// One frame the other node encoded itself (an encoder in the studio there).
    pub fn send_local(&self, track: TrackId, frame: LocalFrame) {
        let mut targets = Vec::new();
        let mut st = self.room.state.lock();
        if st.room.track(track).is_none_or(|t| t.publisher != self.id) {
            return;
        }
        let info = crate::router::Frame { keyframe: frame.keyframe, contiguous: true, ..Default::default() };
        let tapped = st.room.on_frame(track, 0, info, None, frame.data.len(), Instant::now(), &mut targets);
        // This node's program, if the source is on its stage: the encoder's own node feeds only its own.
        let tap = tap_for(&st, track, tapped);
        let forwarded = deliver(&st, &targets, track, 0, Payload::Local(frame));
        dispatch(&mut st);
        drop(st);
        if let (Some((tap, participant, source, to)), Payload::Local(frame)) = (tap, &forwarded.payload) {
            tap(&TapFrame { participant: &participant, source, layer: 0, data: TapData::Local(frame), to });
        }
    }
}

impl Drop for RemotePublisher {
    fn drop(&mut self) {
        leave(&self.inner, &self.room, self.id);
    }
}

impl MediaNode {
    /// Adds another node, `node`, to `room` here (made if need be): its [`RelayOut`] announces every track
    /// published on this node (not those that came from other nodes) and carries every layer of each. Must
    /// run inside a tokio runtime.
    pub fn relay_out(&self, room: &str, node: &str) -> Result<RelayOut, NodeError> {
        let id = PeerId(self.inner.next_peer.fetch_add(1, Ordering::Relaxed));
        let (cmd_tx, cmds) = mpsc::unbounded_channel();
        let (frames_tx, frames) = mpsc::channel(FRAME_QUEUE);
        // Nothing a room says to a session (speaking, paused video) concerns another node.
        let (events, _) = mpsc::unbounded_channel();
        let (room, ()) = self.enter(room, false, |st| {
            st.room.add_relay(id, node)?;
            st.links.insert(
                id,
                PeerLink { participant: node.to_string(), relay: true, cmd: cmd_tx, frames: frames_tx, events },
            );
            Ok(())
        })?;
        tracing::debug!(room = %room.name, node, peer = id.0, "relay joined");
        Ok(RelayOut { inner: self.inner.clone(), room, id, cmds, frames })
    }

    /// Adds `participant`, whose session is on another node, to `room` here (made if need be): what it
    /// publishes there is published here through the returned [`RemotePublisher`], and the keyframes this node's
    /// subscribers need of it come out of `keyframes`. Must run inside a tokio runtime.
    pub fn publish_remote(
        &self,
        room: &str,
        participant: &str,
        keyframes: mpsc::UnboundedSender<RemoteKeyframe>,
    ) -> Result<RemotePublisher, NodeError> {
        let id = PeerId(self.inner.next_peer.fetch_add(1, Ordering::Relaxed));
        let (room, ()) = self.enter(room, false, |st| {
            st.room.add_remote(id, participant)?;
            st.remotes.insert(id, keyframes);
            super::drop_stale_remotes(st, participant, id);
            Ok(())
        })?;
        tracing::debug!(room = %room.name, participant, peer = id.0, "remote participant published");
        Ok(RemotePublisher { inner: self.inner.clone(), room, id })
    }

    /// The rooms with a session of this node in them (those other nodes must relay their tracks to).
    pub fn rooms_with_sessions(&self) -> Vec<String> {
        let rooms: Vec<_> = self.inner.rooms.lock().values().cloned().collect();
        rooms.into_iter().filter(|r| r.state.lock().links.values().any(|l| !l.relay)).map(|r| r.name.clone()).collect()
    }
}
