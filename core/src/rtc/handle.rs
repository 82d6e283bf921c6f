//! What the gateway holds: a participant's media session ([`PeerHandle`]) and the room's program preview
//! track ([`ProgramTrack`]).

use super::*;

/// The gateway's grip on one participant's media session. Dropping it ends the session.
pub struct PeerHandle {
    pub(super) id: PeerId,
    pub(super) participant: String,
    pub(super) room: Arc<RoomShared>,
    pub(super) cmd: mpsc::UnboundedSender<PeerCmd>,
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

    /// The size (device pixels) at which this participant shows `participant`'s `source` (`(0, 0)`: not shown):
    /// they get the smallest simulcast layer at least that large that their bandwidth allows, and nothing for a
    /// track they do not show.
    pub fn set_render_size(&self, participant: &str, source: TrackSource, size: (u16, u16)) {
        let mut st = self.room.state.lock();
        let track = st.room.tracks().find(|t| &*t.participant == participant && t.source == source).map(|t| t.id);
        if let Some(track) = track {
            st.room.set_render_size(self.id, track, size, Instant::now());
            dispatch(&mut st);
        }
    }

    /// Ends the session (same as dropping the handle).
    pub fn leave(self) {}
}

/// The program preview a node publishes into a room ([`MediaNode::publish_program`]): the frames the program's
/// preview encoder sends go to the peers that watch it. Dropping it withdraws the track.
pub struct ProgramTrack {
    pub(super) inner: Arc<Inner>,
    pub(super) room: String,
    pub(super) shared: Arc<ProgramShared>,
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
            let bytes = frame.data.len();
            st.room.on_frame(track, 0, info, None, bytes, Instant::now(), &mut targets);
            deliver(st, &targets, track, 0, Payload::Local(frame));
            dispatch(st);
        });
    }
}

impl ProgramTrack {
    /// Sends the frames an encode's video tap gives (H.264 in Annex B) to the watchers: the program's own encode
    /// for WebRTC viewers. Nothing is copied while nobody watches.
    pub fn h264_tap(track: Arc<ProgramTrack>) -> crate::egress::VideoTap {
        Arc::new(move |f: &crate::egress::WebRtcFrame<'_>| {
            if !track.watched() {
                return;
            }
            let ticks = f.at.as_micros() * 90_000 / 1_000_000;
            track.send(LocalFrame {
                codec: str0m::format::Codec::H264,
                time: str0m::media::MediaTime::from_90khz(ticks as u64),
                wallclock: Instant::now(),
                keyframe: f.keyframe,
                data: f.data.into(),
            });
        })
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

/// Tracks the node publishes in a room on behalf of a participant ([`MediaNode::publish_source`]): an RTMP
/// encoder in the studio. Dropping it withdraws them.
pub struct LocalPublisher {
    pub(super) inner: Arc<Inner>,
    pub(super) room: Arc<RoomShared>,
    pub(super) id: PeerId,
    pub(super) participant: String,
    pub(super) tracks: Vec<(TrackSource, TrackId)>,
    pub(super) shared: Arc<LocalShared>,
}

impl LocalPublisher {
    /// The participant the tracks belong to.
    pub fn participant(&self) -> &str {
        &self.participant
    }

    /// Sends one encoded frame of `source` to its subscribers (those waiting for a keyframe skip deltas;
    /// those that did not negotiate the codec do not get it). A source not published is ignored.
    pub fn send(&self, source: TrackSource, frame: LocalFrame) {
        let Some(&(_, track)) = self.tracks.iter().find(|(s, _)| *s == source) else { return };
        let mut targets = Vec::new();
        let mut st = self.room.state.lock();
        let info = crate::router::Frame { keyframe: frame.keyframe, contiguous: true, ..Default::default() };
        st.room.on_frame(track, 0, info, None, frame.data.len(), Instant::now(), &mut targets);
        deliver(&st, &targets, track, 0, Payload::Local(frame));
        dispatch(&mut st);
    }

    /// Whether a subscriber asked for a keyframe since the last call (the first call says yes).
    pub fn take_keyframe_request(&self) -> bool {
        self.shared.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Whether a host muted `source` (its frames go to nobody, and must not reach the program either).
    pub fn is_muted(&self, source: TrackSource) -> bool {
        self.room.state.lock().room.is_muted(self.id, source)
    }
}

impl LocalPublisher {
    /// Sends the Opus packets an encode's audio tap gives as this publisher's microphone: the program's sound
    /// for WebRTC viewers.
    pub fn opus_tap(publisher: Arc<LocalPublisher>) -> crate::egress::AudioTap {
        Arc::new(move |packet: &[u8], ticks: u64| {
            let time = str0m::media::MediaTime::new(ticks, str0m::media::Frequency::FORTY_EIGHT_KHZ);
            let frame = LocalFrame {
                codec: str0m::format::Codec::Opus,
                time,
                wallclock: Instant::now(),
                keyframe: true,
                data: packet.into(),
            };
            publisher.send(TrackSource::Microphone, frame);
        })
    }
}

impl Drop for LocalPublisher {
    fn drop(&mut self) {
        leave(&self.inner, &self.room, self.id);
    }
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        // The task may be gone already; then there is nothing to end.
        let _ = self.cmd.send(PeerCmd::Leave);
    }
}
