//! One broadcast's media bookkeeping: peers, published tracks, subscriptions, and decisions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind};

use super::speaker::{SpeakerConfig, SpeakerDetector};
use super::{PeerId, RouterError, TrackId, TrackSource};

/// Limits and tuning of a room.
#[derive(Debug, Clone, Copy)]
pub struct RoomConfig {
    /// At most this many peers; joining a full room is refused.
    pub max_peers: usize,
    /// At most one keyframe request per published track within this interval (several
    /// subscribers asking at once get the same keyframe), and how often a subscriber that still
    /// waits for a keyframe has it requested again.
    pub keyframe_interval: Duration,
    /// Active-speaker detection.
    pub speaker: SpeakerConfig,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig { max_peers: 16, keyframe_interval: Duration::from_millis(300), speaker: SpeakerConfig::default() }
    }
}

/// A published track as subscribers' peers need to know it to add an m-line for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The track.
    pub id: TrackId,
    /// Who publishes it.
    pub publisher: PeerId,
    /// The publisher's participant id (the protocol's `participantId`), shared: every frame's tap names it.
    pub participant: Arc<str>,
    /// Camera, microphone or screen.
    pub source: TrackSource,
}

impl TrackInfo {
    /// The media kind.
    pub fn kind(&self) -> MediaKind {
        self.source.kind()
    }

    /// The MediaStream id subscribers see (see [`TrackSource::stream_id`]).
    pub fn stream_id(&self) -> String {
        self.source.stream_id(&self.participant)
    }

    /// The MediaStreamTrack id subscribers see: unique per track, readable in browser devtools.
    pub fn track_label(&self) -> String {
        format!("{}-{}-{}", self.participant, self.source.as_str(), self.id.0)
    }
}

/// What the shell must do, other than forwarding a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Add a send-only m-line for `track` to `peer` (its next server offer carries it).
    Subscribe { peer: PeerId, track: TrackInfo },
    /// Stop the m-line that carries `track` to `peer`.
    Unsubscribe { peer: PeerId, track: TrackId },
    /// Ask the publisher of `track` for a keyframe (RTCP PLI or FIR).
    RequestKeyframe { publisher: PeerId, track: TrackId, kind: KeyframeRequestKind },
    /// The participant of `peer` started or stopped speaking.
    Speaking { peer: PeerId, participant: Arc<str>, speaking: bool },
}

/// What the room needs to know about a frame a publisher sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frame {
    /// The frame is a keyframe (video).
    pub keyframe: bool,
    /// str0m saw no loss since the previous frame.
    pub contiguous: bool,
    /// RFC 6464 audio level, -127..=0 dBov (audio).
    pub audio_level: Option<i8>,
    /// RFC 6464 voice-activity flag (audio).
    pub voice_activity: Option<bool>,
}

/// Where one subscriber stands with one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscription {
    /// The m-line is not negotiated or the peer is not connected yet: nothing is forwarded.
    Negotiating,
    /// Ready, but a video decoder cannot start on a delta frame: deltas are held back until a
    /// keyframe passes, which this subscriber's arrival requested.
    AwaitingKeyframe,
    /// Every frame is forwarded.
    Active,
}

#[derive(Debug)]
struct Track {
    info: TrackInfo,
    /// Subscribers and where each stands.
    subscribers: BTreeMap<PeerId, Subscription>,
    /// Moderation stopped forwarding this track.
    muted: bool,
    /// When a keyframe was last requested from the publisher.
    last_keyframe_request: Option<Instant>,
    /// A consumer outside the room (the program's decoder) started on this track and has not had a
    /// keyframe since: asked for one like a subscriber awaiting a keyframe, until one passes.
    tap_awaits_keyframe: bool,
    /// Speaking state (audio tracks only).
    speaker: Option<SpeakerDetector>,
}

#[derive(Debug)]
struct PeerEntry {
    participant: Arc<str>,
    /// Tracks this peer publishes.
    published: Vec<TrackId>,
    /// Sources muted by moderation; a track published later from the same source starts muted.
    muted: Vec<TrackSource>,
}

impl Track {
    /// Someone (a subscriber, or the program's decoder through the tap) waits for this track's next keyframe.
    fn awaits_keyframe(&self) -> bool {
        self.tap_awaits_keyframe || self.subscribers.values().any(|s| *s == Subscription::AwaitingKeyframe)
    }
}

/// The sans-IO SFU room. See the [module docs](super).
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    peers: BTreeMap<PeerId, PeerEntry>,
    tracks: BTreeMap<TrackId, Track>,
    next_track: u64,
    decisions: VecDeque<Decision>,
    /// The program preview track, while the node publishes one.
    program: Option<TrackId>,
    /// Peers that watch the program preview (hosts and co-hosts), whether or not it is published yet.
    program_watchers: BTreeSet<PeerId>,
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Room {
            config,
            peers: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_track: 1,
            decisions: VecDeque::new(),
            program: None,
            program_watchers: BTreeSet::new(),
        }
    }

    /// Number of peers in the room.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no peer is in the room.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The published tracks, in publication order.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackInfo> {
        self.tracks.values().map(|t| &t.info)
    }

    /// The info of one track.
    pub fn track(&self, id: TrackId) -> Option<&TrackInfo> {
        self.tracks.get(&id).map(|t| &t.info)
    }

    /// The peer of a participant, if it is in the room.
    pub fn peer_of(&self, participant: &str) -> Option<PeerId> {
        self.peers.iter().find(|(_, p)| &*p.participant == participant).map(|(&id, _)| id)
    }

    /// Who subscribes to `track`.
    pub fn subscribers(&self, track: TrackId) -> impl Iterator<Item = PeerId> + '_ {
        self.tracks.get(&track).into_iter().flat_map(|t| t.subscribers.keys().copied())
    }

    /// Adds a peer and subscribes it to every published track (but the program preview, which only watchers
    /// get: [`Room::watch_program`]).
    pub fn add_peer(&mut self, peer: PeerId, participant: &str) -> Result<(), RouterError> {
        if self.peers.contains_key(&peer) {
            return Err(RouterError::DuplicatePeer(peer));
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(RouterError::RoomFull(self.config.max_peers));
        }
        self.peers.insert(peer, PeerEntry { participant: participant.into(), published: vec![], muted: vec![] });
        for track in self.tracks.values_mut().filter(|t| t.info.source != TrackSource::Program) {
            track.subscribers.insert(peer, Subscription::Negotiating);
            self.decisions.push_back(Decision::Subscribe { peer, track: track.info.clone() });
        }
        Ok(())
    }

    /// Removes a peer: its tracks are unsubscribed from everyone, its subscriptions dropped.
    pub fn remove_peer(&mut self, peer: PeerId) {
        let Some(entry) = self.peers.remove(&peer) else { return };
        self.program_watchers.remove(&peer);
        for track in entry.published {
            self.unpublish(track);
        }
        for track in self.tracks.values_mut() {
            track.subscribers.remove(&peer);
        }
        self.decisions.retain(|d| match d {
            Decision::Subscribe { peer: p, .. } | Decision::Unsubscribe { peer: p, .. } => *p != peer,
            Decision::RequestKeyframe { publisher, .. } => *publisher != peer,
            Decision::Speaking { .. } => true,
        });
    }

    /// Registers a track the peer publishes and subscribes every other peer to it.
    pub fn publish(&mut self, peer: PeerId, source: TrackSource) -> Result<TrackId, RouterError> {
        let entry = self.peers.get_mut(&peer).ok_or(RouterError::UnknownPeer(peer))?;
        let id = TrackId(self.next_track);
        self.next_track += 1;
        entry.published.push(id);
        let info = TrackInfo { id, publisher: peer, participant: entry.participant.clone(), source };
        let muted = entry.muted.contains(&source);
        let mut subscribers = BTreeMap::new();
        for &other in self.peers.keys().filter(|&&p| p != peer) {
            subscribers.insert(other, Subscription::Negotiating);
            self.decisions.push_back(Decision::Subscribe { peer: other, track: info.clone() });
        }
        let speaker = (source == TrackSource::Microphone).then(|| SpeakerDetector::new(self.config.speaker));
        self.tracks.insert(
            id,
            Track { info, subscribers, muted, last_keyframe_request: None, tap_awaits_keyframe: false, speaker },
        );
        Ok(id)
    }

    /// Publishes the program preview, the node's own track ([`PeerId::PROGRAM`], msid `program`), to the
    /// watchers. Its keyframe requests are decisions like any other, addressed to [`PeerId::PROGRAM`].
    /// Publishing it again returns the same track.
    pub fn publish_program(&mut self) -> TrackId {
        if let Some(id) = self.program {
            return id;
        }
        let id = TrackId(self.next_track);
        self.next_track += 1;
        let info =
            TrackInfo { id, publisher: PeerId::PROGRAM, participant: "program".into(), source: TrackSource::Program };
        let mut subscribers = BTreeMap::new();
        for &peer in &self.program_watchers {
            subscribers.insert(peer, Subscription::Negotiating);
            self.decisions.push_back(Decision::Subscribe { peer, track: info.clone() });
        }
        self.tracks.insert(
            id,
            Track {
                info,
                subscribers,
                muted: false,
                last_keyframe_request: None,
                tap_awaits_keyframe: false,
                speaker: None,
            },
        );
        self.program = Some(id);
        id
    }

    /// Withdraws the program preview.
    pub fn unpublish_program(&mut self) {
        if let Some(id) = self.program.take() {
            self.unpublish(id);
        }
    }

    /// The program preview track, while published.
    pub fn program_track(&self) -> Option<TrackId> {
        self.program
    }

    /// Whether anyone watches the program preview (a subscription exists, ready or not).
    pub fn program_watched(&self) -> bool {
        self.program.and_then(|id| self.tracks.get(&id)).is_some_and(|t| !t.subscribers.is_empty())
    }

    /// Lets the peer watch the program preview, now and whenever it is published, or stops that.
    pub fn watch_program(&mut self, peer: PeerId, watch: bool) -> Result<(), RouterError> {
        if !self.peers.contains_key(&peer) {
            return Err(RouterError::UnknownPeer(peer));
        }
        let changed = if watch { self.program_watchers.insert(peer) } else { self.program_watchers.remove(&peer) };
        let track = self.program.and_then(|id| self.tracks.get_mut(&id));
        if let (true, Some(t)) = (changed, track) {
            if watch {
                t.subscribers.insert(peer, Subscription::Negotiating);
                self.decisions.push_back(Decision::Subscribe { peer, track: t.info.clone() });
            } else {
                t.subscribers.remove(&peer);
                self.decisions.push_back(Decision::Unsubscribe { peer, track: t.info.id });
            }
        }
        Ok(())
    }

    /// Withdraws a track: every subscriber's m-line for it is stopped.
    pub fn unpublish(&mut self, track: TrackId) {
        if self.program == Some(track) {
            self.program = None;
        }
        let Some(t) = self.tracks.remove(&track) else { return };
        if let Some(p) = self.peers.get_mut(&t.info.publisher) {
            p.published.retain(|&id| id != track);
        }
        for peer in t.subscribers.into_keys() {
            self.decisions.push_back(Decision::Unsubscribe { peer, track });
        }
        if t.speaker.is_some_and(|s| s.speaking()) {
            self.decisions.push_back(Decision::Speaking {
                peer: t.info.publisher,
                participant: t.info.participant,
                speaking: false,
            });
        }
    }

    /// The subscriber's m-line for `track` is negotiated and its connection is up: audio flows
    /// at once; video waits for a keyframe, which is requested now.
    pub fn subscription_ready(&mut self, peer: PeerId, track: TrackId, now: Instant) {
        let Some(t) = self.tracks.get_mut(&track) else { return };
        let Some(sub) = t.subscribers.get_mut(&peer) else { return };
        if *sub != Subscription::Negotiating {
            return;
        }
        if t.info.kind().is_audio() {
            *sub = Subscription::Active;
        } else {
            *sub = Subscription::AwaitingKeyframe;
            Self::request_keyframe(
                &mut self.decisions,
                t,
                KeyframeRequestKind::Fir,
                now,
                self.config.keyframe_interval,
            );
        }
    }

    /// A subscriber's decoder asked for a keyframe (it lost packets or started late).
    pub fn keyframe_requested(&mut self, peer: PeerId, track: TrackId, kind: KeyframeRequestKind, now: Instant) {
        let interval = self.config.keyframe_interval;
        let Some(t) = self.tracks.get_mut(&track) else { return };
        if t.subscribers.contains_key(&peer) {
            Self::request_keyframe(&mut self.decisions, t, kind, now, interval);
        }
    }

    fn request_keyframe(
        decisions: &mut VecDeque<Decision>,
        t: &mut Track,
        kind: KeyframeRequestKind,
        now: Instant,
        interval: Duration,
    ) {
        if t.muted || t.info.kind().is_audio() {
            return;
        }
        if t.last_keyframe_request.is_some_and(|last| now < last + interval) {
            return;
        }
        t.last_keyframe_request = Some(now);
        decisions.push_back(Decision::RequestKeyframe { publisher: t.info.publisher, track: t.info.id, kind });
    }

    /// Frames of `track` are forwarded (it exists and moderation has not muted it).
    pub fn forwards(&self, track: TrackId) -> bool {
        self.tracks.get(&track).is_some_and(|t| !t.muted)
    }

    /// Asks the publishers of every video track (or only `participant`'s) for a keyframe: a consumer outside
    /// the room (the program's decoders, which start only when a source comes on stage) is starting on them.
    /// The request is repeated (coalesced like a subscriber's) until a keyframe passes: publishers ignore
    /// requests that come too soon after another, and a keyframe a subscriber got a moment ago reached no
    /// decoder that starts now.
    pub fn request_keyframes(&mut self, participant: Option<&str>, now: Instant) {
        let interval = self.config.keyframe_interval;
        for t in self.tracks.values_mut().filter(|t| t.info.source != TrackSource::Program) {
            if participant.is_none_or(|p| p == &*t.info.participant) && t.info.kind().is_video() {
                t.tap_awaits_keyframe = true;
                Self::request_keyframe(&mut self.decisions, t, KeyframeRequestKind::Fir, now, interval);
            }
        }
    }

    /// A frame arrived from the publisher of `track`: returns the peers to forward it to
    /// (written into `to`, which is cleared first). May queue keyframe requests and speaking
    /// changes.
    pub fn on_frame(&mut self, track: TrackId, frame: Frame, now: Instant, to: &mut Vec<PeerId>) {
        to.clear();
        let interval = self.config.keyframe_interval;
        let Some(t) = self.tracks.get_mut(&track) else { return };
        if let (Some(speaker), Some(level)) = (t.speaker.as_mut(), frame.audio_level) {
            speaker.on_level(level, frame.voice_activity, now);
            if let Some(speaking) = speaker.poll_change(now) {
                self.decisions.push_back(Decision::Speaking {
                    peer: t.info.publisher,
                    participant: t.info.participant.clone(),
                    speaking,
                });
            }
        }
        if t.muted {
            return;
        }
        let video = t.info.kind().is_video();
        if frame.keyframe {
            t.tap_awaits_keyframe = false;
        }
        if video && !frame.contiguous {
            // Loss upstream: every subscriber's picture is broken until the next keyframe.
            Self::request_keyframe(&mut self.decisions, t, KeyframeRequestKind::Pli, now, interval);
        }
        for (&peer, sub) in t.subscribers.iter_mut() {
            match sub {
                Subscription::Active => to.push(peer),
                Subscription::AwaitingKeyframe if frame.keyframe => {
                    *sub = Subscription::Active;
                    to.push(peer);
                }
                Subscription::AwaitingKeyframe | Subscription::Negotiating => {}
            }
        }
    }

    /// Moderation: stop (or resume) forwarding the peer's tracks from `source`. Resuming video
    /// holds subscribers until a fresh keyframe, which is requested at once.
    pub fn set_muted(
        &mut self,
        peer: PeerId,
        source: TrackSource,
        muted: bool,
        now: Instant,
    ) -> Result<(), RouterError> {
        let entry = self.peers.get_mut(&peer).ok_or(RouterError::UnknownPeer(peer))?;
        entry.muted.retain(|&s| s != source);
        if muted {
            entry.muted.push(source);
        }
        let interval = self.config.keyframe_interval;
        for id in entry.published.clone() {
            let Some(t) = self.tracks.get_mut(&id) else { continue };
            if t.info.source != source || t.muted == muted {
                continue;
            }
            t.muted = muted;
            if muted {
                if let Some(s) = t.speaker.as_mut().filter(|s| s.speaking()) {
                    *s = SpeakerDetector::new(self.config.speaker);
                    self.decisions.push_back(Decision::Speaking {
                        peer,
                        participant: t.info.participant.clone(),
                        speaking: false,
                    });
                }
            } else if t.info.kind().is_video() {
                for sub in t.subscribers.values_mut().filter(|s| **s == Subscription::Active) {
                    *sub = Subscription::AwaitingKeyframe;
                }
                t.last_keyframe_request = None;
                Self::request_keyframe(&mut self.decisions, t, KeyframeRequestKind::Fir, now, interval);
            }
        }
        Ok(())
    }

    /// Whether moderation muted the peer's `source`.
    pub fn is_muted(&self, peer: PeerId, source: TrackSource) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.muted.contains(&source))
    }

    /// Drives time: re-requests keyframes for subscribers still waiting, ends speaking after
    /// silence.
    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.config.keyframe_interval;
        for t in self.tracks.values_mut() {
            if t.awaits_keyframe() {
                Self::request_keyframe(&mut self.decisions, t, KeyframeRequestKind::Fir, now, interval);
            }
            if let Some(speaking) = t.speaker.as_mut().and_then(|s| s.poll_change(now)) {
                self.decisions.push_back(Decision::Speaking {
                    peer: t.info.publisher,
                    participant: t.info.participant.clone(),
                    speaking,
                });
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for t in self.tracks.values() {
            if !t.muted && t.awaits_keyframe() {
                let due = t.last_keyframe_request.map_or(now, |l| l + self.config.keyframe_interval);
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            if let Some(due) = t.speaker.as_ref().and_then(|s| s.poll_timeout(now)) {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next
    }

    /// The next queued decision.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.decisions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(room: &mut Room) -> Vec<Decision> {
        std::iter::from_fn(|| room.poll_decision()).collect()
    }

    const DELTA: Frame = Frame { keyframe: false, contiguous: true, audio_level: None, voice_activity: None };
    const KEY: Frame = Frame { keyframe: true, contiguous: true, audio_level: None, voice_activity: None };

    fn forward(room: &mut Room, track: TrackId, frame: Frame, now: Instant) -> Vec<PeerId> {
        let mut to = vec![];
        room.on_frame(track, frame, now, &mut to);
        to
    }

    #[test]
    fn publishing_subscribes_others_and_late_joiners() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
        room.add_peer(a, "alice").unwrap();
        room.add_peer(b, "bob").unwrap();
        let cam = room.publish(a, TrackSource::Camera).unwrap();
        let d = drain(&mut room);
        assert_eq!(d.len(), 1);
        let Decision::Subscribe { peer, track } = &d[0] else { panic!("{d:?}") };
        assert_eq!((*peer, track.id, track.stream_id()), (b, cam, "alice".to_string()));
        // Nothing is forwarded before the subscription is ready.
        assert!(forward(&mut room, cam, KEY, t0).is_empty());

        room.add_peer(c, "carol").unwrap();
        let d = drain(&mut room);
        assert!(matches!(&d[..], [Decision::Subscribe { peer, track }] if *peer == c && track.id == cam));
        assert_eq!(room.subscribers(cam).collect::<Vec<_>>(), vec![b, c]);
        let screen = room.publish(b, TrackSource::Screen).unwrap();
        let d = drain(&mut room);
        let streams: Vec<_> = d
            .iter()
            .map(|d| match d {
                Decision::Subscribe { peer, track } => (*peer, track.stream_id()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(streams, vec![(a, "bob:screen".into()), (c, "bob:screen".into())]);
        assert_eq!(room.track(screen).unwrap().kind(), MediaKind::Video);
    }

    /// Alice (peer 1) publishes a camera that bob (peer 2) subscribes to at `t0`.
    fn alice_camera_to_bob(t0: Instant) -> (Room, PeerId, PeerId, TrackId) {
        let mut room = Room::new(RoomConfig::default());
        let (a, b) = (PeerId(1), PeerId(2));
        room.add_peer(a, "alice").unwrap();
        room.add_peer(b, "bob").unwrap();
        let cam = room.publish(a, TrackSource::Camera).unwrap();
        drain(&mut room);
        room.subscription_ready(b, cam, t0);
        (room, a, b, cam)
    }

    #[test]
    fn a_new_video_subscriber_gets_a_keyframe_request_and_no_deltas_before_it() {
        let t0 = Instant::now();
        let (mut room, a, b, cam) = alice_camera_to_bob(t0);
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe { publisher: a, track: cam, kind: KeyframeRequestKind::Fir }]
        );
        assert!(forward(&mut room, cam, DELTA, t0 + ms(10)).is_empty());
        // No keyframe yet: asked again after the interval, not before.
        room.handle_timeout(t0 + ms(100));
        assert!(drain(&mut room).is_empty());
        assert_eq!(room.poll_timeout(t0 + ms(100)), Some(t0 + ms(300)));
        room.handle_timeout(t0 + ms(300));
        assert_eq!(drain(&mut room).len(), 1);
        assert_eq!(forward(&mut room, cam, KEY, t0 + ms(320)), vec![b]);
        assert_eq!(forward(&mut room, cam, DELTA, t0 + ms(350)), vec![b]);
        room.handle_timeout(t0 + ms(2000));
        assert!(drain(&mut room).is_empty(), "no request once the subscriber is served");
        assert_eq!(room.poll_timeout(t0 + ms(2000)), None);
    }

    #[test]
    fn a_decoder_starting_on_a_track_is_asked_a_keyframe_until_one_passes() {
        let t0 = Instant::now();
        let (mut room, a, b, cam) = alice_camera_to_bob(t0);
        room.publish(a, TrackSource::Microphone).unwrap();
        drain(&mut room);
        assert_eq!(forward(&mut room, cam, KEY, t0 + ms(20)), vec![b]);
        // Alice goes on stage 100 ms later: the publisher would ignore a request this soon, and the keyframe
        // bob got came before the program's decoder existed, so the request stands until a keyframe passes.
        room.request_keyframes(Some("alice"), t0 + ms(100));
        assert!(drain(&mut room).is_empty(), "coalesced with bob's");
        assert_eq!(room.poll_timeout(t0 + ms(100)), Some(t0 + ms(300)));
        forward(&mut room, cam, DELTA, t0 + ms(150));
        room.handle_timeout(t0 + ms(300));
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe { publisher: a, track: cam, kind: KeyframeRequestKind::Fir }],
            "video only, asked again"
        );
        forward(&mut room, cam, KEY, t0 + ms(340));
        room.handle_timeout(t0 + ms(2000));
        assert!(drain(&mut room).is_empty(), "no request once a keyframe passed");
        assert_eq!(room.poll_timeout(t0 + ms(2000)), None);
    }

    #[test]
    fn keyframe_requests_from_many_subscribers_are_coalesced() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        room.add_peer(PeerId(1), "a").unwrap();
        let cam = room.publish(PeerId(1), TrackSource::Camera).unwrap();
        for p in 2..10 {
            room.add_peer(PeerId(p), "x").unwrap();
            room.subscription_ready(PeerId(p), cam, t0);
        }
        drain(&mut room);
        for p in 2..10 {
            room.keyframe_requested(PeerId(p), cam, KeyframeRequestKind::Pli, t0 + ms(50));
        }
        assert!(drain(&mut room).is_empty(), "within the interval of the first request");
        room.keyframe_requested(PeerId(3), cam, KeyframeRequestKind::Pli, t0 + ms(400));
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe { publisher: PeerId(1), track: cam, kind: KeyframeRequestKind::Pli }]
        );
        // A peer that does not subscribe cannot trigger requests.
        room.keyframe_requested(PeerId(1), cam, KeyframeRequestKind::Pli, t0 + ms(900));
        assert!(drain(&mut room).is_empty());
    }

    #[test]
    fn loss_upstream_requests_a_keyframe() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        room.add_peer(PeerId(1), "a").unwrap();
        room.add_peer(PeerId(2), "b").unwrap();
        let cam = room.publish(PeerId(1), TrackSource::Camera).unwrap();
        room.subscription_ready(PeerId(2), cam, t0);
        forward(&mut room, cam, KEY, t0);
        drain(&mut room);
        let lossy = Frame { contiguous: false, ..DELTA };
        assert_eq!(forward(&mut room, cam, lossy, t0 + ms(500)), vec![PeerId(2)]);
        assert!(matches!(&drain(&mut room)[..], [Decision::RequestKeyframe { kind: KeyframeRequestKind::Pli, .. }]));
    }

    #[test]
    fn leaving_unsubscribes_everyone_from_the_leavers_tracks() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
        for (p, n) in [(a, "a"), (b, "b"), (c, "c")] {
            room.add_peer(p, n).unwrap();
        }
        let mic = room.publish(a, TrackSource::Microphone).unwrap();
        let cam = room.publish(a, TrackSource::Camera).unwrap();
        let bmic = room.publish(b, TrackSource::Microphone).unwrap();
        room.subscription_ready(a, bmic, t0);
        drain(&mut room);
        room.remove_peer(a);
        let mut d = drain(&mut room);
        d.sort_by_key(|d| format!("{d:?}"));
        assert_eq!(
            d,
            vec![
                Decision::Unsubscribe { peer: b, track: mic },
                Decision::Unsubscribe { peer: b, track: cam },
                Decision::Unsubscribe { peer: c, track: mic },
                Decision::Unsubscribe { peer: c, track: cam },
            ]
        );
        assert_eq!(room.tracks().count(), 1);
        assert_eq!(room.subscribers(bmic).collect::<Vec<_>>(), vec![c]);
        assert!(forward(&mut room, mic, DELTA, t0).is_empty());
        assert!(matches!(room.publish(a, TrackSource::Camera), Err(RouterError::UnknownPeer(_))));
    }

    #[test]
    fn a_full_room_refuses_and_ids_are_unique() {
        let mut room = Room::new(RoomConfig { max_peers: 2, ..RoomConfig::default() });
        room.add_peer(PeerId(1), "a").unwrap();
        assert!(matches!(room.add_peer(PeerId(1), "a"), Err(RouterError::DuplicatePeer(_))));
        room.add_peer(PeerId(2), "b").unwrap();
        assert!(matches!(room.add_peer(PeerId(3), "c"), Err(RouterError::RoomFull(2))));
        room.remove_peer(PeerId(2));
        room.add_peer(PeerId(3), "c").unwrap();
    }

    #[test]
    fn moderation_mute_stops_forwarding_and_unmute_waits_for_a_keyframe() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        let (a, b) = (PeerId(1), PeerId(2));
        room.add_peer(a, "a").unwrap();
        room.add_peer(b, "b").unwrap();
        let mic = room.publish(a, TrackSource::Microphone).unwrap();
        let cam = room.publish(a, TrackSource::Camera).unwrap();
        room.subscription_ready(b, mic, t0);
        room.subscription_ready(b, cam, t0);
        forward(&mut room, cam, KEY, t0);
        drain(&mut room);
        assert_eq!(forward(&mut room, mic, DELTA, t0), vec![b]);

        room.set_muted(a, TrackSource::Microphone, true, t0).unwrap();
        assert!(room.is_muted(a, TrackSource::Microphone));
        assert!(forward(&mut room, mic, DELTA, t0 + ms(10)).is_empty());
        assert_eq!(forward(&mut room, cam, DELTA, t0 + ms(10)), vec![b], "only the muted source stops");

        room.set_muted(a, TrackSource::Camera, true, t0 + ms(20)).unwrap();
        assert!(forward(&mut room, cam, KEY, t0 + ms(30)).is_empty());
        room.set_muted(a, TrackSource::Camera, false, t0 + ms(40)).unwrap();
        assert!(matches!(&drain(&mut room)[..], [Decision::RequestKeyframe { publisher, .. }] if *publisher == a));
        assert!(forward(&mut room, cam, DELTA, t0 + ms(50)).is_empty());
        assert_eq!(forward(&mut room, cam, KEY, t0 + ms(60)), vec![b]);
        room.set_muted(a, TrackSource::Microphone, false, t0 + ms(70)).unwrap();
        assert_eq!(forward(&mut room, mic, DELTA, t0 + ms(80)), vec![b]);
    }

    #[test]
    fn only_watchers_get_the_program_and_its_keyframe_requests_go_to_the_node() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        let (host, guest, cohost) = (PeerId(1), PeerId(2), PeerId(3));
        room.add_peer(host, "host").unwrap();
        room.add_peer(guest, "guest").unwrap();
        // Watching before the program exists subscribes when it is published.
        room.watch_program(host, true).unwrap();
        assert!(drain(&mut room).is_empty());
        assert!(!room.program_watched());
        let program = room.publish_program();
        assert_eq!(room.publish_program(), program, "publishing twice is one track");
        let d = drain(&mut room);
        assert!(
            matches!(&d[..], [Decision::Subscribe { peer, track }]
                if *peer == host && track.stream_id() == "program" && track.publisher == PeerId::PROGRAM),
            "{d:?}"
        );
        assert!(room.program_watched());
        // A late joiner is not subscribed to it; a co-host who watches is.
        room.add_peer(cohost, "cohost").unwrap();
        assert!(drain(&mut room).is_empty());
        room.watch_program(cohost, true).unwrap();
        room.watch_program(cohost, true).unwrap();
        assert_eq!(drain(&mut room).len(), 1, "one subscription however often asked");
        assert!(matches!(room.watch_program(PeerId(9), true), Err(RouterError::UnknownPeer(_))));

        room.subscription_ready(host, program, t0);
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe {
                publisher: PeerId::PROGRAM,
                track: program,
                kind: KeyframeRequestKind::Fir
            }]
        );
        assert!(forward(&mut room, program, DELTA, t0).is_empty());
        assert_eq!(forward(&mut room, program, KEY, t0 + ms(10)), vec![host]);
        // Consumers outside the room (the program's own decoders) never ask the program for keyframes.
        room.request_keyframes(None, t0 + ms(1000));
        assert!(drain(&mut room).is_empty());

        room.watch_program(cohost, false).unwrap();
        assert_eq!(drain(&mut room), vec![Decision::Unsubscribe { peer: cohost, track: program }]);
        room.unpublish_program();
        assert_eq!(drain(&mut room), vec![Decision::Unsubscribe { peer: host, track: program }]);
        assert_eq!(room.program_track(), None);
        assert!(!room.program_watched());
        // The host still watches: a program published again reaches them.
        room.remove_peer(guest);
        let again = room.publish_program();
        assert_ne!(again, program);
        assert!(matches!(&drain(&mut room)[..], [Decision::Subscribe { peer, .. }] if *peer == host));
    }

    #[test]
    fn speaking_is_reported_from_audio_levels() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        room.add_peer(PeerId(1), "alice").unwrap();
        let mic = room.publish(PeerId(1), TrackSource::Microphone).unwrap();
        drain(&mut room);
        let loud = Frame { audio_level: Some(-12), voice_activity: Some(true), ..DELTA };
        let mut now = t0;
        for _ in 0..20 {
            forward(&mut room, mic, loud, now);
            now += ms(20);
        }
        assert_eq!(
            drain(&mut room),
            vec![Decision::Speaking { peer: PeerId(1), participant: "alice".into(), speaking: true }]
        );
        let quiet = Frame { audio_level: Some(-127), voice_activity: Some(false), ..DELTA };
        forward(&mut room, mic, quiet, now);
        let due = room.poll_timeout(now).expect("end of speech is scheduled");
        room.handle_timeout(due);
        assert_eq!(
            drain(&mut room),
            vec![Decision::Speaking { peer: PeerId(1), participant: "alice".into(), speaking: false }]
        );
    }
}
