//! The SFU core: rooms, peers, published tracks, subscriptions — and the decisions that follow
//! from them. Sans-IO in the spirit of str0m and quinn-proto: no sockets, no tasks, no clocks
//! (every call takes `now`), so the tests drive it deterministically.
//!
//! Two state machines live here:
//! - [`Room`] is the bookkeeping of one broadcast's media: who publishes which track, who is
//!   subscribed to what, whether a subscriber still waits for a keyframe, who is speaking. It
//!   never touches a `str0m::Rtc`; it answers "forward this frame to these peers" directly and
//!   queues every other [`Decision`] (subscribe, unsubscribe, request a keyframe, speaking).
//! - [`Peer`] wraps one participant's `str0m::Rtc` in frame mode: it owns the SDP negotiation
//!   (the client makes the first offer; after that only the server offers, so renegotiation
//!   never glares), maps the client's m-lines to published tracks and the forwarded tracks to
//!   the m-lines the server added, and turns str0m's events into [`PeerEvent`]s.
//!
//! `crate::rtc` is the tokio shell that moves datagrams and frames between them.
//!
//! Architecture Invariant: nothing in this module does IO or reads the clock.

pub mod layers;
mod peer;
pub mod quality;
mod room;
mod speaker;

pub use peer::{LocalFrame, Peer, PeerEvent, PeerOutput};
pub use room::{Decision, Frame, Room, RoomConfig, Tapped, TrackInfo};
pub use speaker::{SpeakerConfig, SpeakerDetector};

use str0m::media::MediaKind;

/// Identifies a peer (one participant's WebRTC connection) within a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl PeerId {
    /// The node itself as a publisher: the program preview ([`Room::publish_program`]). No session has this id
    /// (a node numbers its peers from 1).
    pub const PROGRAM: PeerId = PeerId(0);
}

/// Identifies one published track within a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// What a published track carries, as the studio shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackSource {
    /// The participant's microphone.
    Microphone,
    /// The participant's camera.
    Camera,
    /// The participant's screen share.
    Screen,
    /// The composed program, encoded small by the node for hosts and co-hosts to watch.
    Program,
}

impl TrackSource {
    /// The media kind of a track from this source.
    pub fn kind(self) -> MediaKind {
        match self {
            TrackSource::Microphone => MediaKind::Audio,
            TrackSource::Camera | TrackSource::Screen | TrackSource::Program => MediaKind::Video,
        }
    }

    /// The MediaStream id (msid) subscribers see for this track, per the protocol contract:
    /// the participant id for camera and microphone, `<participantId>:screen` for a screen, `program` for the
    /// program preview.
    pub fn stream_id(self, participant: &str) -> String {
        match self {
            TrackSource::Microphone | TrackSource::Camera => participant.to_string(),
            TrackSource::Screen => format!("{participant}:screen"),
            TrackSource::Program => "program".to_string(),
        }
    }

    /// A short name for logs and track ids.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackSource::Microphone => "mic",
            TrackSource::Camera => "camera",
            TrackSource::Screen => "screen",
            TrackSource::Program => "program",
        }
    }
}

/// Errors of the router's state machines.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The SDP text did not parse or str0m refused it.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// A client offer arrived while a server offer waits for its answer; the client must
    /// answer the server's offer instead (after the first exchange only the server offers).
    #[error("an offer from the server is awaiting its answer; answer it instead of offering")]
    OfferCollision,
    /// An answer arrived while the server had no offer outstanding.
    #[error("no offer is awaiting an answer")]
    NoPendingOffer,
    /// An ICE candidate line did not parse.
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    /// The room already holds its configured maximum of participants.
    #[error("the room is full ({0} participants)")]
    RoomFull(usize),
    /// The peer id is already in the room.
    #[error("peer {0:?} is already in the room")]
    DuplicatePeer(PeerId),
    /// The peer id is not in the room.
    #[error("peer {0:?} is not in the room")]
    UnknownPeer(PeerId),
    /// str0m failed while handling input or producing output; the peer is unusable.
    #[error("WebRTC failure: {0}")]
    Rtc(#[from] str0m::RtcError),
}
