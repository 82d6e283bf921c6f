//! One broadcast's media bookkeeping: peers, published tracks, subscriptions, and decisions.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind};

use super::layers::{self, Budget, Layer, MAX_LAYERS, Want};
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
    /// At most one keyframe request per layer within this interval to repair a picture broken by loss (a
    /// subscriber's PLI, or a gap upstream): a subscriber on a lossy link must not make its publisher send a
    /// storm of keyframes that everyone else pays for. Starting a decoder uses `keyframe_interval`.
    pub repair_interval: Duration,
    /// Active-speaker detection.
    pub speaker: SpeakerConfig,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_peers: 16,
            keyframe_interval: Duration::from_millis(300),
            repair_interval: Duration::from_millis(1000),
            speaker: SpeakerConfig::default(),
        }
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
    /// Ask the publisher of `track` for a keyframe (RTCP PLI or FIR), of one simulcast layer (lowest first)
    /// or of the track without simulcast.
    RequestKeyframe { publisher: PeerId, track: TrackId, layer: Option<u8>, kind: KeyframeRequestKind },
    /// `peer`'s bandwidth cannot carry even the lowest layer of `track` (paused), or can again: its studio
    /// says so on the tile.
    VideoPaused { peer: PeerId, track: TrackId, paused: bool },
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

/// Where one subscriber (or the tap) stands with one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sub {
    /// The m-line is negotiated and the connection is up: frames may flow.
    ready: bool,
    /// The layer being forwarded; `None` until a keyframe of `target` passes (a video decoder cannot start on
    /// a delta frame, and a switch to another layer must start on one too).
    current: Option<u8>,
    /// The layer chosen for this subscriber; `None`: paused (not shown, or no bandwidth for it).
    target: Option<u8>,
    /// The size the subscriber renders the track at, if it said (`(0, 0)`: not shown).
    render: Option<(u16, u16)>,
    /// No step up before this: the subscriber's bandwidth made it step down lately.
    hold_until: Option<Instant>,
    /// Paused for lack of bandwidth, and told so.
    starved: bool,
    /// Takes every layer of the track as it comes (another node, which chooses layers for its own subscribers).
    all: bool,
}

impl Sub {
    fn new() -> Sub {
        Sub { ready: false, current: None, target: None, render: None, hold_until: None, starved: false, all: false }
    }

    /// A subscription of another node: ready at once, every layer, never paused or waiting for a keyframe (the
    /// node asks for the keyframes its own subscribers need).
    fn relay() -> Sub {
        Sub { ready: true, all: true, ..Sub::new() }
    }

    /// Waits for a keyframe of the layer it should get.
    fn awaits_keyframe(&self) -> bool {
        self.ready && !self.all && self.target.is_some() && self.current != self.target
    }

    /// Gets frames of `layer` now.
    fn gets(&self, layer: u8) -> bool {
        self.current == Some(layer) || (self.all && self.ready)
    }
}

/// What a consumer outside the room takes of a track through the tap: one layer of it, like a subscriber that is
/// never short of bandwidth. The program takes the layer its tile needs; a participant's recording the best one
/// sending.
#[derive(Debug, Clone, Copy)]
struct TapSub {
    /// The layer the tap gets now (`None` until a keyframe of `target` passes, for a simulcast track).
    current: Option<u8>,
    target: u8,
    /// The size of the track's tile in the program, if the program said.
    render: Option<(u16, u16)>,
    /// A decoder started on this track (or the tap switches layers) and has had no keyframe of `target` since:
    /// one is asked for until it passes.
    wants_keyframe: bool,
}

impl TapSub {
    /// Takes the best layer there is (its target moves to the best sending one when layers start and stop).
    /// Without simulcast it takes every frame (the decoder waits for a keyframe itself); with it, its layer
    /// starts at a keyframe.
    fn new(layers: usize) -> TapSub {
        TapSub { current: (layers == 1).then_some(0), target: (layers - 1) as u8, render: None, wants_keyframe: false }
    }

    /// A frame of `layer` passes: whether this consumer takes it (its target's keyframe switches it over).
    fn on_frame(&mut self, layer: u8, keyframe: bool) -> bool {
        if keyframe && self.target == layer {
            self.current = Some(layer);
            self.wants_keyframe = false;
        }
        self.current == Some(layer)
    }
}

/// Which consumers outside the room take a frame through the tap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tapped {
    /// The program: the layer its tile needs.
    pub program: bool,
    /// The publisher's own recording ([`Room::set_recorded`]): the best layer sending, as published.
    pub record: bool,
}

impl Tapped {
    pub fn any(self) -> bool {
        self.program || self.record
    }
}

#[derive(Debug)]
struct Track {
    info: TrackInfo,
    /// Subscribers and where each stands.
    subscribers: BTreeMap<PeerId, Sub>,
    /// Simulcast layers, lowest first (one for a track without simulcast).
    layers: Vec<Layer>,
    /// Moderation stopped forwarding this track.
    muted: bool,
    tap: TapSub,
    /// While its publisher is recorded: what the recording takes.
    record: Option<TapSub>,
    /// Speaking state (audio tracks only).
    speaker: Option<SpeakerDetector>,
    /// One layer at a rate nobody can change (the program, an encoder's stream the node publishes): never
    /// paused for a subscriber's bandwidth, and what it takes is kept back from the rest.
    fixed: bool,
}

#[derive(Debug)]
struct PeerEntry {
    participant: Arc<str>,
    /// Tracks this peer publishes.
    published: Vec<TrackId>,
    /// Sources muted by moderation; a track published later from the same source starts muted.
    muted: Vec<TrackSource>,
    /// The bandwidth estimate of the link to this peer, bits per second.
    estimate: Option<u64>,
    /// The share of the packets sent to this peer lost over the latest second.
    downlink_loss: Option<f32>,
    /// The estimates of the last [`FLOOR_WINDOW`]: a step up must fit the lowest of the last
    /// [`SUSTAINED_WINDOW`]; video pauses only when even the highest could not carry the lowest layers.
    recent_estimates: VecDeque<(Instant, u64)>,
    /// False for a peer that only publishes ([`Room::add_publisher`]): it is subscribed to nothing.
    receives: bool,
    /// What the peer stands for: a participant's session here, another node, or a participant on another node.
    kind: PeerKind,
}

/// Whom a peer of the room stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    /// A session (or a source) of this node.
    Local,
    /// Another node of the cluster with people in this room ([`Room::add_relay`]): it gets every layer of every
    /// track published on this node, and counts for no seat.
    Relay,
    /// A participant whose session is on another node ([`Room::add_remote`]): its tracks arrive over the relay
    /// and are never relayed on.
    Remote,
}

impl PeerEntry {
    /// `self` is subscribed to a track `publisher` publishes: a relay only to tracks published on this node.
    fn subscribes_to(&self, publisher: &PeerEntry) -> bool {
        self.receives && !(self.kind == PeerKind::Relay && publisher.kind == PeerKind::Remote)
    }
}

impl Track {
    fn new(info: TrackInfo, layers: u8, muted: bool, speaker: Option<SpeakerDetector>) -> Track {
        let layers = usize::from(layers).clamp(1, MAX_LAYERS);
        let tap = TapSub::new(layers);
        let fixed = info.source == TrackSource::Program;
        let layers = vec![Layer::default(); layers];
        Track { info, subscribers: BTreeMap::new(), layers, muted, tap, record: None, speaker, fixed }
    }

    /// Someone (a subscriber, the program's decoder or a recording through the tap) waits for a keyframe of
    /// `layer`.
    fn awaits_keyframe(&self, layer: u8) -> bool {
        let tap_waits = |t: &TapSub| t.wants_keyframe && t.target == layer;
        tap_waits(&self.tap)
            || self.record.as_ref().is_some_and(tap_waits)
            || self.subscribers.values().any(|s| s.awaits_keyframe() && s.target == Some(layer))
    }

    /// Anyone gets `layer` now (a loss on it breaks their picture).
    fn serves(&self, layer: u8) -> bool {
        self.tap.current == Some(layer)
            || self.record.is_some_and(|r| r.current == Some(layer))
            || self.subscribers.values().any(|s| s.gets(layer))
    }

    /// What [`layers::allocate`] needs of this track for one subscriber.
    fn want(&self, sub: &Sub, now: Instant) -> Want {
        let mut want = Want {
            ceiling: layers::ceiling(&self.layers, sub.render),
            current: sub.current,
            may_upgrade: sub.hold_until.is_none_or(|t| now >= t),
            priority: self.info.source == TrackSource::Screen,
            ..Want::default()
        };
        for (i, l) in self.layers.iter().enumerate() {
            want.rates[i] = l.bitrate;
            want.sending[i] = l.sending(now);
        }
        if self.layers.len() == 1 || !want.sending.iter().any(|&s| s) {
            // One layer, or none sending now (the track has not started, or its publisher paused): keep to what
            // the size asks for, and the first keyframe that comes starts it.
            let started = self.layers.iter().any(|l| l.last_frame.is_some());
            for (i, l) in self.layers.iter().enumerate() {
                want.sending[i] = !started || l.last_frame.is_some() || self.layers.len() == 1;
            }
        }
        want
    }
}

/// How often each subscriber's layers are chosen again (new estimates, layers that started or stopped sending).
const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

/// How long a subscriber that stepped down for lack of bandwidth stays down before trying a step up.
const HOLD_AFTER_DOWNGRADE: Duration = Duration::from_secs(4);

/// A step up must fit every estimate of this window (estimates swing; a layer started on one good sample would
/// be stopped again a moment later, each time costing a keyframe and a freeze).
const SUSTAINED_WINDOW: Duration = Duration::from_secs(5);

/// Below the floor by the estimate, video pauses only when no estimate of this window could carry the lowest
/// layers or the link loses [`PAUSE_LOSS`] of what it gets: a delay-based estimator on a lossy, queueing link swings
/// far below the link's rate between its probes, and the lowest layers are what keeps a picture moving on a poor
/// link. A paused track resumes when the estimate itself carries it.
const FLOOR_WINDOW: Duration = Duration::from_secs(10);

/// A downlink losing this share of its packets cannot carry what it is sent.
const PAUSE_LOSS: f32 = 0.15;

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
    /// When layers are next chosen again for every subscriber.
    next_allocation: Option<Instant>,
    /// A consumer outside the room (the program) takes frames through the tap: only then does the tap's layer
    /// choice ask publishers for keyframes.
    tapped: bool,
    /// Participants whose tracks are recorded as published ([`Room::set_recorded`]).
    recorded: HashSet<Arc<str>>,
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
            next_allocation: None,
            tapped: false,
            recorded: HashSet::new(),
        }
    }

    /// Whether the program takes this room's frames (the node installed a tap).
    pub fn set_tapped(&mut self, tapped: bool) {
        self.tapped = tapped;
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

    /// The layer `peer` gets of `track` now (`None`: nothing, e.g. paused or waiting for a keyframe).
    pub fn layer_of(&self, peer: PeerId, track: TrackId) -> Option<u8> {
        self.tracks.get(&track)?.subscribers.get(&peer)?.current
    }

    /// The layer the tap gets of `track` now.
    pub fn tap_layer(&self, track: TrackId) -> Option<u8> {
        self.tracks.get(&track)?.tap.current
    }

    /// The simulcast layers of `peer`'s camera that are sending now, and how many it offered (`None` without a
    /// simulcast camera).
    pub fn camera_layers(&self, peer: PeerId, now: Instant) -> Option<(u8, u8)> {
        let entry = self.peers.get(&peer)?;
        let t = entry
            .published
            .iter()
            .filter_map(|id| self.tracks.get(id))
            .find(|t| t.info.source == TrackSource::Camera && t.layers.len() > 1)?;
        let sending = t.layers.iter().filter(|l| l.sending(now)).count() as u8;
        Some((sending, t.layers.len() as u8))
    }

    /// Adds a peer and subscribes it to every published track (but the program preview, which only watchers
    /// get: [`Room::watch_program`]).
    pub fn add_peer(&mut self, peer: PeerId, participant: &str) -> Result<(), RouterError> {
        self.insert_peer(peer, participant, true, PeerKind::Local)
    }

    /// Adds a peer that only publishes (a WHIP client, which cannot take the server's offers): it is subscribed
    /// to nothing, now or later, while everyone else gets what it publishes.
    pub fn add_publisher(&mut self, peer: PeerId, participant: &str) -> Result<(), RouterError> {
        self.insert_peer(peer, participant, false, PeerKind::Local)
    }

    /// Adds another node of the cluster, named `node`, that has people in this room: it is subscribed to every
    /// track published by this node's peers (not to those that came from other nodes), gets every simulcast
    /// layer of each as it comes, and takes no seat. Its [`Decision::Subscribe`]s say what to announce to it.
    pub fn add_relay(&mut self, peer: PeerId, node: &str) -> Result<(), RouterError> {
        self.insert_peer(peer, node, true, PeerKind::Relay)
    }

    /// Adds a participant whose session is on another node: it publishes what arrives over the relay
    /// ([`Room::publish_layers`]) and receives nothing here.
    pub fn add_remote(&mut self, peer: PeerId, participant: &str) -> Result<(), RouterError> {
        self.insert_peer(peer, participant, false, PeerKind::Remote)
    }

    fn insert_peer(
        &mut self,
        peer: PeerId,
        participant: &str,
        receives: bool,
        kind: PeerKind,
    ) -> Result<(), RouterError> {
        if self.peers.contains_key(&peer) {
            return Err(RouterError::DuplicatePeer(peer));
        }
        let seats = self.peers.values().filter(|p| p.kind != PeerKind::Relay).count();
        if kind != PeerKind::Relay && seats >= self.config.max_peers {
            return Err(RouterError::RoomFull(self.config.max_peers));
        }
        let entry = PeerEntry {
            participant: participant.into(),
            published: vec![],
            muted: vec![],
            estimate: None,
            recent_estimates: VecDeque::new(),
            downlink_loss: None,
            receives,
            kind,
        };
        for track in self.tracks.values_mut().filter(|t| t.info.source != TrackSource::Program) {
            let Some(publisher) = self.peers.get(&track.info.publisher) else { continue };
            if entry.subscribes_to(publisher) {
                track.subscribers.insert(peer, if kind == PeerKind::Relay { Sub::relay() } else { Sub::new() });
                self.decisions.push_back(Decision::Subscribe { peer, track: track.info.clone() });
            }
        }
        self.peers.insert(peer, entry);
        Ok(())
    }

    /// Removes a peer: its tracks are unsubscribed from everyone, its subscriptions dropped.
    /// Takes out the peers standing for `participant` on another node ([`Room::add_remote`]) other than `keep`,
    /// and returns them: someone is in a room through one node at a time, so once they appear through another
    /// (their studio reconnected there, keeping its seat) what the old node announced is stale, even before the
    /// relay notices that node is gone.
    pub fn drop_other_remotes(&mut self, participant: &str, keep: PeerId) -> Vec<PeerId> {
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| **id != keep && p.kind == PeerKind::Remote && &*p.participant == participant)
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            self.remove_peer(*id);
        }
        stale
    }

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
            Decision::Subscribe { peer: p, .. }
            | Decision::Unsubscribe { peer: p, .. }
            | Decision::VideoPaused { peer: p, .. } => *p != peer,
            Decision::RequestKeyframe { publisher, .. } => *publisher != peer,
            Decision::Speaking { .. } => true,
        });
    }

    /// Registers a track the peer publishes (without simulcast) and subscribes every other peer to it.
    pub fn publish(&mut self, peer: PeerId, source: TrackSource) -> Result<TrackId, RouterError> {
        self.publish_layers(peer, source, 1)
    }

    /// Registers a track the peer publishes in `layers` simulcast layers (lowest first; 1 without simulcast,
    /// at most [`MAX_LAYERS`]) and subscribes every other peer to it.
    pub fn publish_layers(&mut self, peer: PeerId, source: TrackSource, layers: u8) -> Result<TrackId, RouterError> {
        let entry = self.peers.get_mut(&peer).ok_or(RouterError::UnknownPeer(peer))?;
        let id = TrackId(self.next_track);
        self.next_track += 1;
        entry.published.push(id);
        let info = TrackInfo { id, publisher: peer, participant: entry.participant.clone(), source };
        let muted = entry.muted.contains(&source);
        let speaker = (source == TrackSource::Microphone).then(|| SpeakerDetector::new(self.config.speaker));
        let layers = if source.kind().is_audio() { 1 } else { layers };
        let mut track = Track::new(info.clone(), layers, muted, speaker);
        if self.recorded.contains(&*info.participant) {
            // Nothing sent yet: its layers are chosen, and a keyframe asked for, once they start.
            let mut record = TapSub::new(track.layers.len());
            record.wants_keyframe = source.kind().is_video();
            track.record = Some(record);
        }
        let publisher = &self.peers[&peer];
        for (&other, e) in self.peers.iter().filter(|&(&p, e)| p != peer && e.subscribes_to(publisher)) {
            track.subscribers.insert(other, if e.kind == PeerKind::Relay { Sub::relay() } else { Sub::new() });
            self.decisions.push_back(Decision::Subscribe { peer: other, track: info.clone() });
        }
        self.tracks.insert(id, track);
        Ok(id)
    }

    /// Registers a track the node publishes for `peer` from a stream it cannot adapt (an encoder's, passed
    /// through or transcoded once): one layer, never paused for a subscriber's bandwidth (its rate is kept back
    /// from the rest, up to half the subscriber's estimate).
    pub fn publish_fixed(&mut self, peer: PeerId, source: TrackSource) -> Result<TrackId, RouterError> {
        let id = self.publish_layers(peer, source, 1)?;
        if let Some(t) = self.tracks.get_mut(&id) {
            t.fixed = true;
        }
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
        let mut track = Track::new(info.clone(), 1, false, None);
        for &peer in &self.program_watchers {
            track.subscribers.insert(peer, Sub::new());
            self.decisions.push_back(Decision::Subscribe { peer, track: info.clone() });
        }
        self.tracks.insert(id, track);
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
        if !self.peers.get(&peer).is_some_and(|p| p.receives) {
            return Err(RouterError::UnknownPeer(peer));
        }
        let changed = if watch { self.program_watchers.insert(peer) } else { self.program_watchers.remove(&peer) };
        let track = self.program.and_then(|id| self.tracks.get_mut(&id));
        if let (true, Some(t)) = (changed, track) {
            if watch {
                t.subscribers.insert(peer, Sub::new());
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
    /// at once; video waits for a keyframe of the layer chosen for it, which is requested now.
    pub fn subscription_ready(&mut self, peer: PeerId, track: TrackId, now: Instant) {
        let Some(t) = self.tracks.get_mut(&track) else { return };
        let Some(sub) = t.subscribers.get_mut(&peer) else { return };
        if sub.ready {
            return;
        }
        sub.ready = true;
        if t.info.kind().is_audio() {
            sub.target = Some(0);
            sub.current = Some(0);
            return;
        }
        self.allocate(peer, now);
    }

    /// The size at which `peer` renders `track` (device pixels; `(0, 0)`: not shown, so nothing is sent). The
    /// subscriber gets the smallest layer at least that large that its bandwidth allows.
    pub fn set_render_size(&mut self, peer: PeerId, track: TrackId, size: (u16, u16), now: Instant) {
        let Some(sub) = self.tracks.get_mut(&track).and_then(|t| t.subscribers.get_mut(&peer)) else { return };
        if sub.render != Some(size) {
            sub.render = Some(size);
            self.allocate(peer, now);
        }
    }

    /// The share of the packets sent to `peer` that were lost over the latest second.
    pub fn set_downlink_loss(&mut self, peer: PeerId, loss: Option<f32>, now: Instant) {
        let Some(entry) = self.peers.get_mut(&peer) else { return };
        let was = std::mem::replace(&mut entry.downlink_loss, loss);
        if loss.is_some_and(|l| l >= PAUSE_LOSS) != was.is_some_and(|l| l >= PAUSE_LOSS) {
            self.allocate(peer, now);
        }
    }

    /// The bandwidth estimate of the link to `peer` (bits per second) changed.
    pub fn set_estimate(&mut self, peer: PeerId, bits_per_second: u64, now: Instant) {
        let Some(entry) = self.peers.get_mut(&peer) else { return };
        let was = entry.estimate.replace(bits_per_second);
        entry.recent_estimates.push_back((now, bits_per_second));
        while entry.recent_estimates.front().is_some_and(|&(t, _)| now.saturating_duration_since(t) > FLOOR_WINDOW) {
            entry.recent_estimates.pop_front();
        }
        // Act at once on a drop; a rise waits for the next regular pass.
        if was.is_none_or(|w| bits_per_second < w) {
            self.allocate(peer, now);
        }
    }

    /// Chooses the layer of each of `peer`'s video subscriptions again (see [`layers::allocate`]), asking for
    /// keyframes where the choice changed and telling the subscriber of video paused or resumed for bandwidth.
    fn allocate(&mut self, peer: PeerId, now: Instant) {
        let Some(entry) = self.peers.get(&peer).filter(|e| e.kind != PeerKind::Relay) else { return };
        let mut ids = vec![];
        let mut wants = vec![];
        let mut audio = 0u64;
        // Fixed-rate video (the program, an encoder's stream) is one layer its receivers want whole: it is never
        // paused for bandwidth, and what it takes is kept back from the rest (up to half the estimate).
        let mut fixed = vec![];
        let mut fixed_rate = 0;
        for (&id, t) in &self.tracks {
            let Some(sub) = t.subscribers.get(&peer).filter(|s| s.ready) else { continue };
            if t.fixed && !t.info.kind().is_audio() {
                fixed.push(id);
                fixed_rate += if t.muted { 0 } else { t.layers[0].bitrate };
            } else if t.info.kind().is_audio() {
                // A muted microphone is not forwarded: nothing to keep back for it.
                audio += u64::from(!t.muted);
            } else if !t.muted {
                ids.push(id);
                wants.push(t.want(sub, now));
            }
        }
        // At most half the estimate is kept back for fixed-rate video: on a short link the rest still gets its
        // lowest layers rather than a pause.
        let fixed_reserve = entry.estimate.map_or(fixed_rate, |e| fixed_rate.min(e / 2));
        let reserve = audio * layers::AUDIO_RESERVE + fixed_reserve;
        let recent = |within: Duration| {
            entry
                .recent_estimates
                .iter()
                .filter(move |&&(t, _)| now.saturating_duration_since(t) <= within)
                .map(|&(_, b)| b)
        };
        let budget = entry.estimate.map(|e| {
            let sustained = recent(SUSTAINED_WINDOW).chain([e]).min().unwrap_or(e);
            Budget { now: e.saturating_sub(reserve), sustained: sustained.saturating_sub(reserve) }
        });
        let best_recent =
            entry.estimate.map(|e| recent(FLOOR_WINDOW).chain([e]).max().unwrap_or(e).saturating_sub(reserve));
        let mut chosen = layers::allocate(budget, &wants);
        let unlimited = layers::allocate(None, &wants);
        let losing = entry.downlink_loss.is_some_and(|l| l >= PAUSE_LOSS);
        if !losing && chosen.iter().zip(&unlimited).any(|(c, u)| c.is_none() && u.is_some()) {
            // Short of the floor by the estimate, but the link is not losing what it gets: the lowest layers go on
            // (for tracks not paused already) while some estimate of the window could carry them.
            let lowest: Vec<Want> = wants.iter().map(|w| Want { current: None, may_upgrade: false, ..*w }).collect();
            let floor = layers::allocate(best_recent.map(Budget::flat), &lowest);
            for ((c, f), id) in chosen.iter_mut().zip(floor).zip(&ids) {
                let paused = self.tracks.get(id).and_then(|t| t.subscribers.get(&peer)).is_some_and(|s| s.starved);
                if c.is_none() && !paused {
                    *c = f;
                }
            }
        }
        let interval = self.config.keyframe_interval;
        for id in fixed {
            let Some(t) = self.tracks.get_mut(&id) else { continue };
            let Some(sub) = t.subscribers.get_mut(&peer) else { continue };
            sub.target = Some(0);
            if sub.awaits_keyframe() {
                Self::request_keyframe(&mut self.decisions, t, 0, KeyframeRequestKind::Fir, now, interval);
            }
        }
        for ((id, target), best) in ids.into_iter().zip(chosen).zip(unlimited) {
            let Some(t) = self.tracks.get_mut(&id) else { continue };
            let Some(sub) = t.subscribers.get_mut(&peer) else { continue };
            if target < sub.target && target < best {
                sub.hold_until = Some(now + HOLD_AFTER_DOWNGRADE);
            }
            let starved = target.is_none() && best.is_some();
            if starved != sub.starved {
                sub.starved = starved;
                self.decisions.push_back(Decision::VideoPaused { peer, track: id, paused: starved });
            }
            sub.target = target;
            if target.is_none() {
                sub.current = None;
            }
            if let Some(layer) = target.filter(|_| sub.awaits_keyframe()) {
                Self::request_keyframe(&mut self.decisions, t, layer, KeyframeRequestKind::Fir, now, interval);
            }
        }
    }

    /// A subscriber's decoder asked for a keyframe (it lost packets or started late).
    pub fn keyframe_requested(&mut self, peer: PeerId, track: TrackId, kind: KeyframeRequestKind, now: Instant) {
        let interval = self.config.repair_interval;
        let Some(t) = self.tracks.get_mut(&track) else { return };
        if let Some(layer) = t.subscribers.get(&peer).and_then(|s| s.current.or(s.target)) {
            Self::request_keyframe(&mut self.decisions, t, layer, kind, now, interval);
        }
    }

    /// Asks the publisher for a keyframe of `layer`, at most once per interval per layer (several subscribers
    /// asking at once get the same keyframe), and never of a layer that has sent nothing yet (an empty
    /// screen-share slot, a layer the encoder has not started).
    fn request_keyframe(
        decisions: &mut VecDeque<Decision>,
        t: &mut Track,
        layer: u8,
        kind: KeyframeRequestKind,
        now: Instant,
        interval: Duration,
    ) {
        if t.muted || t.info.kind().is_audio() {
            return;
        }
        let Some(l) = t.layers.get_mut(usize::from(layer)) else { return };
        if l.last_frame.is_none() || l.last_keyframe_request.is_some_and(|last| now < last + interval) {
            return;
        }
        l.last_keyframe_request = Some(now);
        let layer = (t.layers.len() > 1).then_some(layer);
        decisions.push_back(Decision::RequestKeyframe { publisher: t.info.publisher, track: t.info.id, layer, kind });
    }

    /// Another node's subscriber needs a keyframe of `layer` (0 without simulcast) of `track`: asked of the
    /// publisher like a subscriber's request here, coalesced with them.
    pub fn relay_keyframe(&mut self, track: TrackId, layer: u8, kind: KeyframeRequestKind, now: Instant) {
        let interval = match kind {
            KeyframeRequestKind::Fir => self.config.keyframe_interval,
            KeyframeRequestKind::Pli => self.config.repair_interval,
        };
        let Some(t) = self.tracks.get_mut(&track) else { return };
        Self::request_keyframe(&mut self.decisions, t, layer, kind, now, interval);
    }

    /// The layers of `track` (1 without simulcast) and whether it is fixed-rate video (see
    /// [`Room::publish_fixed`]): what another node needs to publish it again.
    pub fn track_shape(&self, track: TrackId) -> Option<(u8, bool)> {
        self.tracks.get(&track).map(|t| (t.layers.len() as u8, t.fixed))
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
        if !self.tapped {
            return;
        }
        let interval = self.config.keyframe_interval;
        for t in self.tracks.values_mut().filter(|t| t.info.source != TrackSource::Program) {
            if participant.is_none_or(|p| p == &*t.info.participant) && t.info.kind().is_video() {
                t.tap.wants_keyframe = true;
                let layer = t.tap.target;
                Self::request_keyframe(&mut self.decisions, t, layer, KeyframeRequestKind::Fir, now, interval);
            }
        }
    }

    /// The size of `participant`'s `source` tile in the program (`None`: not on stage or not known): the tap
    /// takes the smallest layer at least that large, switching at a keyframe of it (the program keeps showing
    /// the last frame meanwhile).
    pub fn set_tap_size(&mut self, participant: &str, source: TrackSource, size: Option<(u16, u16)>, now: Instant) {
        let interval = self.config.keyframe_interval;
        for t in self.tracks.values_mut() {
            if &*t.info.participant != participant || t.info.source != source || t.layers.len() < 2 {
                continue;
            }
            t.tap.render = size;
            Self::choose_tap_layer(&mut self.decisions, t, self.tapped, now, interval);
        }
    }

    fn choose_tap_layer(
        decisions: &mut VecDeque<Decision>,
        t: &mut Track,
        tapped: bool,
        now: Instant,
        interval: Duration,
    ) {
        if !tapped {
            return;
        }
        for recording in [false, true] {
            let Some(tap) = (if recording { t.record } else { Some(t.tap) }) else { continue };
            let as_sub = Sub { ready: true, current: tap.current, render: tap.render, ..Sub::new() };
            let want = Want { may_upgrade: true, ..t.want(&as_sub, now) };
            let Some(target) = layers::allocate(None, &[want])[0] else { continue };
            if target != tap.target {
                let sub = if recording { t.record.as_mut() } else { Some(&mut t.tap) };
                if let Some(sub) = sub {
                    sub.target = target;
                    sub.wants_keyframe = tap.current != Some(target);
                }
                Self::request_keyframe(decisions, t, target, KeyframeRequestKind::Fir, now, interval);
            }
        }
    }

    /// Records `participant`'s tracks as published (or stops): from now on the tap also hands over, marked
    /// [`Tapped::record`], every frame of the best layer each of its tracks sends (switching at a keyframe),
    /// whatever layer the program takes; tracks it publishes later are recorded too. A keyframe is asked for
    /// at once, so a recording starts with a picture.
    pub fn set_recorded(&mut self, participant: &str, recorded: bool, now: Instant) {
        if recorded {
            self.recorded.insert(Arc::from(participant));
        } else {
            self.recorded.remove(participant);
        }
        let interval = self.config.keyframe_interval;
        for t in self.tracks.values_mut() {
            if &*t.info.participant != participant || t.info.source == TrackSource::Program {
                continue;
            }
            Self::record_track(&mut self.decisions, t, recorded, self.tapped, now, interval);
        }
    }

    fn record_track(
        decisions: &mut VecDeque<Decision>,
        t: &mut Track,
        recorded: bool,
        tapped: bool,
        now: Instant,
        interval: Duration,
    ) {
        if !recorded {
            t.record = None;
            return;
        }
        if t.record.is_some() {
            return;
        }
        let mut record = TapSub::new(t.layers.len());
        record.wants_keyframe = t.info.kind().is_video();
        t.record = Some(record);
        Self::choose_tap_layer(decisions, t, tapped, now, interval);
        if let Some(target) = t.record.map(|r| r.target) {
            Self::request_keyframe(decisions, t, target, KeyframeRequestKind::Fir, now, interval);
        }
    }

    /// A frame of `layer` (0 without simulcast) arrived from the publisher of `track`: returns the peers to
    /// forward it to (written into `to`, which is cleared first) and whether the tap takes it. `keyframe_size`
    /// is the picture size a keyframe's header gave, `bytes` its length. May queue keyframe requests and
    /// speaking changes.
    #[allow(clippy::too_many_arguments, reason = "one call per frame; a struct would be built per frame")]
    pub fn on_frame(
        &mut self,
        track: TrackId,
        layer: u8,
        frame: Frame,
        keyframe_size: Option<(u16, u16)>,
        bytes: usize,
        now: Instant,
        to: &mut Vec<PeerId>,
    ) -> Tapped {
        to.clear();
        let interval = self.config.keyframe_interval;
        let Some(t) = self.tracks.get_mut(&track) else { return Tapped::default() };
        let Some(l) = t.layers.get_mut(usize::from(layer)) else { return Tapped::default() };
        let started = l.last_frame.is_none();
        l.on_frame(bytes, keyframe_size, now);
        // A muted microphone never makes its owner the active speaker (the browser may still send levels).
        if let (Some(speaker), Some(level), false) = (t.speaker.as_mut(), frame.audio_level, t.muted) {
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
            return Tapped::default();
        }
        let video = t.info.kind().is_video();
        let tapped = Tapped {
            program: t.tap.on_frame(layer, frame.keyframe),
            record: t.record.as_mut().is_some_and(|r| r.on_frame(layer, frame.keyframe)),
        };
        if video && !frame.contiguous && t.serves(layer) {
            // Loss upstream: the picture of everyone on this layer is broken until its next keyframe.
            let repair = self.config.repair_interval;
            Self::request_keyframe(&mut self.decisions, t, layer, KeyframeRequestKind::Pli, now, repair);
        }
        for (&peer, sub) in t.subscribers.iter_mut() {
            if !sub.ready {
                continue;
            }
            if sub.target == Some(layer) && sub.current != Some(layer) && (frame.keyframe || !video) {
                sub.current = Some(layer);
            }
            if sub.gets(layer) {
                to.push(peer);
            }
        }
        if started && video && t.layers.len() > 1 {
            // A layer began sending: the subscribers (and the tap) may want it.
            Self::choose_tap_layer(&mut self.decisions, t, self.tapped, now, interval);
            let peers: Vec<PeerId> = t.subscribers.keys().copied().collect();
            for peer in peers {
                self.allocate(peer, now);
            }
        }
        tapped
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
        let mut resumed = vec![];
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
                for sub in t.subscribers.values_mut() {
                    sub.current = None;
                }
                for l in &mut t.layers {
                    l.last_keyframe_request = None;
                }
                resumed.push(id);
            }
        }
        for id in resumed {
            let peers: Vec<PeerId> =
                self.tracks.get(&id).map(|t| t.subscribers.keys().copied().collect()).unwrap_or_default();
            for p in peers {
                self.allocate(p, now);
            }
        }
        Ok(())
    }

    /// Whether moderation muted the peer's `source`.
    pub fn is_muted(&self, peer: PeerId, source: TrackSource) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.muted.contains(&source))
    }

    /// Drives time: re-requests keyframes for subscribers still waiting, chooses layers again every
    /// [`ALLOCATION_INTERVAL`], ends speaking after silence.
    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.config.keyframe_interval;
        if self.next_allocation.is_none_or(|t| now >= t) {
            self.next_allocation = Some(now + ALLOCATION_INTERVAL);
            let peers: Vec<PeerId> = self.peers.keys().copied().collect();
            for peer in peers {
                self.allocate(peer, now);
            }
            for t in self.tracks.values_mut().filter(|t| t.layers.len() > 1) {
                Self::choose_tap_layer(&mut self.decisions, t, self.tapped, now, interval);
            }
        }
        for t in self.tracks.values_mut() {
            for layer in 0..t.layers.len() as u8 {
                if t.awaits_keyframe(layer) {
                    Self::request_keyframe(&mut self.decisions, t, layer, KeyframeRequestKind::Fir, now, interval);
                }
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
        let mut at = |due: Instant| next = Some(next.map_or(due, |n: Instant| n.min(due)));
        for t in self.tracks.values() {
            if !t.muted {
                for (i, l) in t.layers.iter().enumerate() {
                    if l.last_frame.is_some() && t.awaits_keyframe(i as u8) {
                        at(l.last_keyframe_request.map_or(now, |r| r + self.config.keyframe_interval));
                    }
                }
            }
            if let Some(due) = t.speaker.as_ref().and_then(|s| s.poll_timeout(now)) {
                at(due);
            }
            if t.layers.len() > 1 || t.subscribers.values().any(|s| s.starved) {
                at(self.next_allocation.unwrap_or(now));
            }
        }
        if self.peers.values().any(|p| p.estimate.is_some()) {
            at(self.next_allocation.unwrap_or(now));
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
        room.on_frame(track, 0, frame, None, 1000, now, &mut to);
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

    #[test]
    fn a_peer_that_only_publishes_is_subscribed_to_nothing_and_everyone_gets_its_tracks() {
        let mut room = Room::new(RoomConfig::default());
        let (a, w, c) = (PeerId(1), PeerId(2), PeerId(3));
        room.add_peer(a, "alice").unwrap();
        let cam = room.publish(a, TrackSource::Camera).unwrap();
        drain(&mut room);
        room.add_publisher(w, "whip").unwrap();
        assert!(drain(&mut room).is_empty(), "a publisher is not subscribed to what is there");
        let whip_cam = room.publish(w, TrackSource::Camera).unwrap();
        let d = drain(&mut room);
        assert!(matches!(&d[..], [Decision::Subscribe { peer, track }] if *peer == a && track.id == whip_cam), "{d:?}");
        room.add_peer(c, "carol").unwrap();
        let subscribed: Vec<_> = drain(&mut room)
            .into_iter()
            .map(|d| match d {
                Decision::Subscribe { peer, track } => (peer, track.id),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(subscribed, vec![(c, cam), (c, whip_cam)]);
        let mic = room.publish(c, TrackSource::Microphone).unwrap();
        assert!(drain(&mut room).iter().all(|d| matches!(d, Decision::Subscribe { peer, .. } if *peer == a)));
        assert_eq!(room.subscribers(mic).collect::<Vec<_>>(), vec![a]);
        assert!(room.watch_program(w, true).is_err(), "a publisher cannot watch the program");
    }

    /// Alice (peer 1) publishes a camera that bob (peer 2) subscribes to at `t0`.
    fn alice_camera_to_bob(t0: Instant) -> (Room, PeerId, PeerId, TrackId) {
        let mut room = Room::new(RoomConfig::default());
        let (a, b) = (PeerId(1), PeerId(2));
        room.add_peer(a, "alice").unwrap();
        room.add_peer(b, "bob").unwrap();
        let cam = room.publish(a, TrackSource::Camera).unwrap();
        drain(&mut room);
        // The camera is sending (no keyframe is asked of a track that has sent nothing yet).
        forward(&mut room, cam, DELTA, t0);
        room.subscription_ready(b, cam, t0);
        (room, a, b, cam)
    }

    #[test]
    fn a_new_video_subscriber_gets_a_keyframe_request_and_no_deltas_before_it() {
        let t0 = Instant::now();
        let (mut room, a, b, cam) = alice_camera_to_bob(t0);
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe { publisher: a, track: cam, layer: None, kind: KeyframeRequestKind::Fir }]
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
        room.set_tapped(true);
        room.request_keyframes(Some("alice"), t0 + ms(100));
        assert!(drain(&mut room).is_empty(), "coalesced with bob's");
        assert_eq!(room.poll_timeout(t0 + ms(100)), Some(t0 + ms(300)));
        forward(&mut room, cam, DELTA, t0 + ms(150));
        room.handle_timeout(t0 + ms(300));
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe { publisher: a, track: cam, layer: None, kind: KeyframeRequestKind::Fir }],
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
        forward(&mut room, cam, DELTA, t0);
        for p in 2..10 {
            room.add_peer(PeerId(p), "x").unwrap();
            room.subscription_ready(PeerId(p), cam, t0);
        }
        drain(&mut room);
        for p in 2..10 {
            room.keyframe_requested(PeerId(p), cam, KeyframeRequestKind::Pli, t0 + ms(50));
        }
        assert!(drain(&mut room).is_empty(), "within the interval of the first request");
        // A repair (a subscriber's PLI) waits longer than a start: a lossy subscriber cannot make a storm.
        room.keyframe_requested(PeerId(3), cam, KeyframeRequestKind::Pli, t0 + ms(400));
        assert!(drain(&mut room).is_empty(), "within the repair interval");
        room.keyframe_requested(PeerId(3), cam, KeyframeRequestKind::Pli, t0 + ms(1000));
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe {
                publisher: PeerId(1),
                track: cam,
                layer: None,
                kind: KeyframeRequestKind::Pli
            }]
        );
        // A peer that does not subscribe cannot trigger requests.
        room.keyframe_requested(PeerId(1), cam, KeyframeRequestKind::Pli, t0 + ms(2500));
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
    fn fixed_rate_video_is_never_paused_for_bandwidth_and_is_kept_back_from_the_rest() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        let (viewer, guest, obs) = (PeerId(1), PeerId(2), PeerId(3));
        room.add_peer(viewer, "viewer").unwrap();
        room.watch_program(viewer, true).unwrap();
        let program = room.publish_program();
        room.add_peer(guest, "guest").unwrap();
        let cam = room.publish(guest, TrackSource::Camera).unwrap();
        room.add_publisher(obs, "obs").unwrap();
        let encoder = room.publish_fixed(obs, TrackSource::Camera).unwrap();
        drain(&mut room);
        // A 4 Mb/s program, an encoder's 4 Mb/s stream and a camera (two seconds of frames: rates are measured over
        // whole seconds), to a viewer whose link is estimated at 300 kb/s.
        for i in 0..61 {
            let frame = if i == 0 { KEY } else { DELTA };
            for track in [program, encoder] {
                let mut to = vec![];
                room.on_frame(track, 0, frame, None, 16_000, t0 + ms(i * 33), &mut to);
            }
            forward(&mut room, cam, DELTA, t0 + ms(i * 33));
        }
        for track in [program, encoder, cam] {
            room.subscription_ready(viewer, track, t0 + ms(2100));
        }
        room.set_estimate(viewer, 300_000, t0 + ms(2100));
        let paused: Vec<_> = drain(&mut room)
            .into_iter()
            .filter_map(|d| match d {
                Decision::VideoPaused { track, paused: true, .. } => Some(track),
                _ => None,
            })
            .collect();
        assert_eq!(paused, [cam], "the camera pauses, the program and the encoder do not");
        for track in [program, encoder] {
            assert_eq!(forward(&mut room, track, KEY, t0 + ms(2200)), [viewer], "{track:?} goes on");
            assert_eq!(forward(&mut room, track, DELTA, t0 + ms(2233)), [viewer]);
        }
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

        assert!(forward(&mut room, program, DELTA, t0).is_empty());
        room.subscription_ready(host, program, t0);
        assert_eq!(
            drain(&mut room),
            vec![Decision::RequestKeyframe {
                publisher: PeerId::PROGRAM,
                track: program,
                layer: None,
                kind: KeyframeRequestKind::Fir
            }]
        );
        assert!(forward(&mut room, program, DELTA, t0).is_empty());
        assert_eq!(forward(&mut room, program, KEY, t0 + ms(10)), vec![host]);
        // Consumers outside the room (the program's own decoders) never ask the program for keyframes.
        room.set_tapped(true);
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

    /// A frame of one layer; returns who gets it and whether the program's tap takes it.
    fn layer_frame(room: &mut Room, track: TrackId, layer: u8, frame: Frame, now: Instant) -> (Vec<PeerId>, bool) {
        let (to, tapped) = tapped_frame(room, track, layer, frame, now);
        (to, tapped.program)
    }

    /// A frame of one layer; returns who gets it and which consumers of the tap take it.
    fn tapped_frame(room: &mut Room, track: TrackId, layer: u8, frame: Frame, now: Instant) -> (Vec<PeerId>, Tapped) {
        let mut to = vec![];
        let sizes = [(320, 180), (640, 360), (1280, 720)];
        let size = frame.keyframe.then_some(sizes[usize::from(layer)]);
        let tapped = room.on_frame(track, layer, frame, size, 1000, now, &mut to);
        (to, tapped)
    }

    fn keyframe_asked(layer: u8) -> impl Fn(&Decision) -> bool {
        move |d| matches!(d, Decision::RequestKeyframe { layer: Some(l), .. } if *l == layer)
    }

    /// Alice (peer 1) publishes a camera in three layers (180p, 360p, 720p, each started with a keyframe at `t0`)
    /// that bob (peer 2) subscribes to.
    fn simulcast_to_bob(t0: Instant) -> (Room, PeerId, TrackId) {
        let mut room = Room::new(RoomConfig::default());
        let (a, b) = (PeerId(1), PeerId(2));
        room.add_peer(a, "alice").unwrap();
        room.add_peer(b, "bob").unwrap();
        let cam = room.publish_layers(a, TrackSource::Camera, 3).unwrap();
        for layer in 0..3 {
            layer_frame(&mut room, cam, layer, KEY, t0);
        }
        drain(&mut room);
        room.subscription_ready(b, cam, t0);
        (room, b, cam)
    }

    #[test]
    fn a_subscriber_gets_the_layer_its_tile_needs_and_switches_only_at_its_keyframe() {
        let t0 = Instant::now();
        let (mut room, b, cam) = simulcast_to_bob(t0);
        // The size is not known yet: the top layer, whose keyframe is asked for at once.
        let d = drain(&mut room);
        assert!(matches!(&d[..], [x] if keyframe_asked(2)(x)), "{d:?}");
        assert_eq!(layer_frame(&mut room, cam, 1, KEY, t0 + ms(5)).0, [], "not the layer chosen");
        assert_eq!(layer_frame(&mut room, cam, 2, KEY, t0 + ms(10)).0, [b]);
        assert_eq!(room.layer_of(b, cam), Some(2));

        // Bob shows alice in a 320×180 tile: the low layer. Until its keyframe the top one goes on.
        room.set_render_size(b, cam, (320, 180), t0 + ms(20));
        let d = drain(&mut room);
        assert!(matches!(&d[..], [x] if keyframe_asked(0)(x)), "{d:?}");
        assert_eq!(layer_frame(&mut room, cam, 2, DELTA, t0 + ms(30)).0, [b], "no gap before the switch");
        assert_eq!(layer_frame(&mut room, cam, 0, DELTA, t0 + ms(31)).0, [], "a delta cannot start a decoder");
        assert_eq!(layer_frame(&mut room, cam, 0, KEY, t0 + ms(40)).0, [b]);
        assert_eq!(layer_frame(&mut room, cam, 2, DELTA, t0 + ms(50)).0, []);
        assert_eq!(layer_frame(&mut room, cam, 0, DELTA, t0 + ms(51)).0, [b]);
        assert_eq!(room.layer_of(b, cam), Some(0));

        // The tile is hidden: nothing is sent, and that is not a bandwidth pause.
        room.set_render_size(b, cam, (0, 0), t0 + ms(60));
        assert_eq!(layer_frame(&mut room, cam, 0, KEY, t0 + ms(70)).0, []);
        assert!(drain(&mut room).iter().all(|d| !matches!(d, Decision::VideoPaused { .. })));
    }

    #[test]
    fn a_capped_downlink_steps_down_at_once_pauses_below_the_floor_and_steps_up_after_a_hold() {
        let t0 = Instant::now();
        let (mut room, b, cam) = simulcast_to_bob(t0);
        layer_frame(&mut room, cam, 2, KEY, t0 + ms(10));
        drain(&mut room);
        // 600 kbit/s: the middle layer fits (the layers are guessed at 150k, 500k and 1.5M before a measurement).
        room.set_estimate(b, 600_000, t0 + ms(100));
        let d = drain(&mut room);
        assert!(matches!(&d[..], [x] if keyframe_asked(1)(x)), "{d:?}");
        assert_eq!(layer_frame(&mut room, cam, 1, KEY, t0 + ms(150)).0, [b]);

        // 100 kbit/s is below the guessed floor: the lowest layer goes on while an estimate of the last 10 s
        // could carry it (a delay-based estimate swings far below a lossy link's rate between probes)...
        let fresh = |room: &mut Room, t: u64| {
            for layer in 0..3 {
                layer_frame(room, cam, layer, DELTA, t0 + ms(t));
            }
        };
        room.set_estimate(b, 100_000, t0 + ms(200));
        let d = drain(&mut room);
        assert!(matches!(&d[..], [x] if keyframe_asked(0)(x)), "{d:?}");
        assert_eq!(layer_frame(&mut room, cam, 0, KEY, t0 + ms(250)).0, [b]);
        // (From here the layers' rates are measured: these test frames make a few kbit/s.)
        for t in (1000..=10_000).step_by(1000) {
            fresh(&mut room, t);
            room.set_estimate(b, 2_000, t0 + ms(t));
            room.handle_timeout(t0 + ms(t));
        }
        assert!(drain(&mut room).is_empty(), "the lowest layer goes on");
        assert_eq!(room.layer_of(b, cam), Some(0));
        // ...until no estimate of the window could: video pauses and bob's studio is told.
        fresh(&mut room, 10_500);
        room.handle_timeout(t0 + ms(10_500));
        assert_eq!(drain(&mut room), [Decision::VideoPaused { peer: b, track: cam, paused: true }]);
        assert_eq!(layer_frame(&mut room, cam, 0, KEY, t0 + ms(10_510)).0, []);

        // The link recovers: the floor at once, a step up only once the estimate held and the hold is over.
        room.set_estimate(b, 5_000_000, t0 + ms(10_900));
        room.handle_timeout(t0 + ms(11_100));
        let d = drain(&mut room);
        assert_eq!(d[0], Decision::VideoPaused { peer: b, track: cam, paused: false });
        assert!(keyframe_asked(0)(&d[1]), "{d:?}");
        assert_eq!(layer_frame(&mut room, cam, 0, KEY, t0 + ms(11_150)).0, [b]);
        for t in (11_500..=14_500).step_by(500) {
            fresh(&mut room, t);
            room.set_estimate(b, 5_000_000, t0 + ms(t));
            room.handle_timeout(t0 + ms(t + 50));
        }
        assert_eq!(room.layer_of(b, cam), Some(0), "held through the flapping window");
        assert!(drain(&mut room).iter().all(|d| !matches!(d, Decision::RequestKeyframe { layer: Some(1 | 2), .. })));
        for t in (15_500..=16_000).step_by(500) {
            fresh(&mut room, t);
            room.set_estimate(b, 5_000_000, t0 + ms(t));
            room.handle_timeout(t0 + ms(t + 50));
        }
        assert!(drain(&mut room).iter().any(keyframe_asked(2)), "back to the top after the hold");
    }

    #[test]
    fn a_layer_that_stops_sending_is_left_for_one_that_sends() {
        let t0 = Instant::now();
        let (mut room, b, cam) = simulcast_to_bob(t0);
        layer_frame(&mut room, cam, 2, KEY, t0 + ms(10));
        // Alice's uplink is capped: her browser stops sending the top layer.
        for t in (100..=1500).step_by(100) {
            layer_frame(&mut room, cam, 0, DELTA, t0 + ms(t));
            layer_frame(&mut room, cam, 1, DELTA, t0 + ms(t));
            room.handle_timeout(t0 + ms(t));
        }
        assert!(drain(&mut room).iter().any(keyframe_asked(1)), "the middle layer is asked for");
        assert_eq!(layer_frame(&mut room, cam, 1, KEY, t0 + ms(1600)).0, [b]);
        // The top layer returns: bob moves back up (no bandwidth limit is known).
        for t in (1700..=2400).step_by(100) {
            for layer in 0..3 {
                layer_frame(&mut room, cam, layer, DELTA, t0 + ms(t));
            }
            room.handle_timeout(t0 + ms(t));
        }
        assert!(drain(&mut room).iter().any(keyframe_asked(2)));
        assert_eq!(layer_frame(&mut room, cam, 2, KEY, t0 + ms(2500)).0, [b]);
    }

    #[test]
    fn the_program_takes_the_layer_its_tile_needs() {
        let t0 = Instant::now();
        let (mut room, _, cam) = simulcast_to_bob(t0);
        room.set_tapped(true);
        assert!(layer_frame(&mut room, cam, 2, KEY, t0 + ms(10)).1, "the top layer until the program says");
        assert!(!layer_frame(&mut room, cam, 1, KEY, t0 + ms(11)).1);
        drain(&mut room);
        // Alice's tile in a 2×2 layout at 720p is 640×360: the middle layer, from its next keyframe on.
        room.set_tap_size("alice", TrackSource::Camera, Some((640, 360)), t0 + ms(20));
        assert!(drain(&mut room).iter().any(keyframe_asked(1)));
        assert!(layer_frame(&mut room, cam, 2, DELTA, t0 + ms(30)).1, "the last layer goes on until then");
        assert!(!layer_frame(&mut room, cam, 1, DELTA, t0 + ms(31)).1);
        assert!(layer_frame(&mut room, cam, 1, KEY, t0 + ms(40)).1);
        assert!(!layer_frame(&mut room, cam, 2, DELTA, t0 + ms(50)).1);
        assert_eq!(room.tap_layer(cam), Some(1));
        // Solo: the whole canvas, the top layer.
        room.set_tap_size("alice", TrackSource::Camera, Some((1280, 720)), t0 + ms(400));
        assert!(drain(&mut room).iter().any(keyframe_asked(2)));
        assert!(layer_frame(&mut room, cam, 2, KEY, t0 + ms(410)).1);
    }

    #[test]
    fn a_recording_takes_the_best_layer_sending_whatever_the_program_takes() {
        let t0 = Instant::now();
        let (mut room, _, cam) = simulcast_to_bob(t0);
        room.set_tapped(true);
        room.set_tap_size("alice", TrackSource::Camera, Some((320, 180)), t0);
        for layer in 0..3 {
            tapped_frame(&mut room, cam, layer, KEY, t0 + ms(10));
        }
        drain(&mut room);
        let record = |program| Tapped { program, record: true };
        assert_eq!(tapped_frame(&mut room, cam, 2, DELTA, t0 + ms(20)).1, Tapped::default(), "nobody records yet");

        // Recording starts (past the keyframe requests' interval): the top layer, from its next keyframe, asked
        // for at once.
        room.set_recorded("alice", true, t0 + ms(2030));
        assert!(drain(&mut room).iter().any(keyframe_asked(2)));
        assert_eq!(tapped_frame(&mut room, cam, 2, DELTA, t0 + ms(2040)).1, Tapped::default());
        assert_eq!(tapped_frame(&mut room, cam, 2, KEY, t0 + ms(2050)).1, record(false));
        assert_eq!(tapped_frame(&mut room, cam, 0, DELTA, t0 + ms(2051)).1, Tapped { program: true, record: false });
        assert_eq!(tapped_frame(&mut room, cam, 1, DELTA, t0 + ms(2052)).1, Tapped::default());
        // The program wants the whole canvas now: one frame serves both.
        room.set_tap_size("alice", TrackSource::Camera, Some((1280, 720)), t0 + ms(2060));
        assert_eq!(tapped_frame(&mut room, cam, 2, KEY, t0 + ms(2070)).1, record(true));

        // The publisher's top layer stops (its uplink is short): the recording goes on with the best one left.
        for t in (2100..=4000).step_by(100) {
            for layer in 0..2 {
                tapped_frame(&mut room, cam, layer, DELTA, t0 + ms(t));
            }
            room.handle_timeout(t0 + ms(t));
        }
        assert!(drain(&mut room).iter().any(keyframe_asked(1)));
        assert_eq!(tapped_frame(&mut room, cam, 1, KEY, t0 + ms(4100)).1, record(true));

        // A track published later by a recorded participant is recorded too; nothing more after it stops.
        let mic = room.publish(PeerId(1), TrackSource::Microphone).unwrap();
        assert_eq!(tapped_frame(&mut room, mic, 0, DELTA, t0 + ms(4200)).1, record(true));
        room.set_recorded("alice", false, t0 + ms(4300));
        assert_eq!(tapped_frame(&mut room, mic, 0, DELTA, t0 + ms(4310)).1, Tapped { program: true, record: false });
        assert_eq!(tapped_frame(&mut room, cam, 1, DELTA, t0 + ms(4320)).1, Tapped { program: true, record: false });
    }

    #[test]
    fn no_keyframe_is_asked_of_a_track_that_never_sent() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        room.add_peer(PeerId(1), "alice").unwrap();
        room.add_peer(PeerId(2), "bob").unwrap();
        // Alice's screen-share slot is negotiated but she shares nothing.
        let screen = room.publish(PeerId(1), TrackSource::Screen).unwrap();
        room.subscription_ready(PeerId(2), screen, t0);
        room.set_tapped(true);
        room.request_keyframes(None, t0);
        for t in (0..10_000).step_by(50) {
            room.keyframe_requested(PeerId(2), screen, KeyframeRequestKind::Pli, t0 + ms(t));
            room.handle_timeout(t0 + ms(t));
        }
        assert!(drain(&mut room).iter().all(|d| !matches!(d, Decision::RequestKeyframe { .. })));
        // She starts sharing: the first frame is a keyframe and goes out.
        assert_eq!(forward(&mut room, screen, KEY, t0 + ms(10_000)), [PeerId(2)]);
    }

    #[test]
    fn another_node_gets_every_layer_of_local_tracks_only_and_asks_for_keyframes_through_its_own_subscribers() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig { max_peers: 2, ..RoomConfig::default() });
        let (alice, node_b, carol) = (PeerId(1), PeerId(2), PeerId(3));
        room.add_peer(alice, "alice").unwrap();
        let cam = room.publish_layers(alice, TrackSource::Camera, 3).unwrap();
        // The other node arrives after alice published, and takes no seat: carol (on node b) still fits.
        room.add_relay(node_b, "node-b").unwrap();
        room.add_remote(carol, "carol").unwrap();
        let carols = room.publish(carol, TrackSource::Camera).unwrap();
        let d = drain(&mut room);
        let subscribed: Vec<_> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Subscribe { peer, track } => Some((*peer, track.id)),
                _ => None,
            })
            .collect();
        // The relay gets alice's camera; carol's came over the relay and goes back to nobody on it; alice (here)
        // gets carol's.
        assert_eq!(subscribed, [(node_b, cam), (alice, carols)]);
        assert!(matches!(room.add_peer(PeerId(4), "dave"), Err(RouterError::RoomFull(2))));

        // Every layer goes to the other node as it comes, deltas included, with no keyframe asked for it.
        for layer in 0..3 {
            assert_eq!(layer_frame(&mut room, cam, layer, DELTA, t0).0, [node_b], "layer {layer}");
        }
        for t in (0..2_000).step_by(50) {
            room.handle_timeout(t0 + ms(t));
        }
        assert!(drain(&mut room).iter().all(|d| !matches!(d, Decision::RequestKeyframe { .. })));

        // Its subscribers' requests come back per layer and are coalesced like local ones.
        room.relay_keyframe(cam, 1, KeyframeRequestKind::Fir, t0 + ms(2_000));
        room.relay_keyframe(cam, 1, KeyframeRequestKind::Fir, t0 + ms(2_010));
        let d = drain(&mut room);
        assert!(matches!(&d[..], [x] if keyframe_asked(1)(x)), "{d:?}");
        assert_eq!(room.track_shape(cam), Some((3, false)));

        // A loss upstream on any layer breaks the other node's picture of it: repaired.
        let lost = Frame { contiguous: false, ..DELTA };
        layer_frame(&mut room, cam, 0, lost, t0 + ms(3_000));
        assert!(drain(&mut room).iter().any(keyframe_asked(0)));

        // The relay leaving unsubscribes nobody but itself.
        room.remove_peer(node_b);
        assert_eq!(layer_frame(&mut room, cam, 2, KEY, t0 + ms(3_100)).0, []);
    }

    #[test]
    fn someone_reappearing_through_another_node_replaces_what_the_old_node_announced() {
        let mut room = Room::new(RoomConfig::default());
        let (alice, carol_via_c, carol_via_a, dave_via_c) = (PeerId(1), PeerId(2), PeerId(3), PeerId(4));
        room.add_peer(alice, "alice").unwrap();
        room.add_remote(carol_via_c, "carol").unwrap();
        room.add_remote(dave_via_c, "dave").unwrap();
        let stale = room.publish(carol_via_c, TrackSource::Camera).unwrap();
        drain(&mut room);
        // Carol's studio reconnected through node a; node c's announcement of her is stale, dave's is not.
        room.add_remote(carol_via_a, "carol").unwrap();
        assert_eq!(room.drop_other_remotes("carol", carol_via_a), [carol_via_c]);
        assert!(room.track(stale).is_none());
        let d = drain(&mut room);
        assert!(d.iter().any(|d| matches!(d, Decision::Unsubscribe { peer, .. } if *peer == alice)), "{d:?}");
        let fresh = room.publish(carol_via_a, TrackSource::Camera).unwrap();
        assert!(room.track(fresh).is_some());
        // Nothing else is dropped, nor a peer of this node of the same name.
        assert_eq!(room.drop_other_remotes("carol", carol_via_a), []);
        assert_eq!(room.drop_other_remotes("alice", PeerId(9)), []);
        assert_eq!(room.drop_other_remotes("dave", PeerId(9)), [dave_via_c]);
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
