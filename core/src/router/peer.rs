//! One participant's WebRTC connection: a `str0m::Rtc` in frame mode plus the negotiation and
//! m-line bookkeeping the SFU needs around it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::CryptoProvider;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::layers::{self, MAX_LAYERS};
use super::quality::{self, ConnectionQuality};
use super::room::{Frame, TrackInfo};
use super::{PeerId, RouterError, TrackId, TrackSource};

/// What the shell must act on.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "polled one at a time and consumed at once; boxing would allocate per packet"
)]
pub enum PeerOutput {
    /// Send this datagram.
    Transmit(Transmit),
    /// Something for the room or the signaling layer.
    Event(PeerEvent),
    /// Nothing more until this time (or new input).
    Timeout(Instant),
}

/// What happened on the connection, translated into the router's terms.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "a frame moves by value on the hot path; boxing would allocate per frame")]
pub enum PeerEvent {
    /// The client added an m-line it sends on. The shell registers it with the room
    /// ([`Room::publish`](super::Room::publish)) and reports the id back with
    /// [`Peer::bind_published`]. `layers`: how many simulcast layers it sends (1 without simulcast).
    Published { mid: Mid, source: TrackSource, layers: u8 },
    /// A whole frame arrived on a published track, on simulcast `layer` (lowest first; 0 without simulcast).
    /// `size`: the picture size its keyframe header gave (VP8).
    Frame { track: TrackId, layer: u8, frame: Frame, size: Option<(u16, u16)>, data: MediaData },
    /// The estimate of the bandwidth towards this client (bits per second) changed.
    Estimate(u64),
    /// The link's statistics of the last second (the `layers` field is the room's to fill in).
    Quality(ConnectionQuality),
    /// The client's decoder asked for a keyframe on a track forwarded to it.
    KeyframeRequest { track: TrackId, kind: KeyframeRequestKind },
    /// A forwarded track's m-line is negotiated and the connection is up: frames can flow.
    SubscriptionReady { track: TrackId },
    /// The server needs to renegotiate: send this offer to the client and pass its answer to
    /// [`Peer::accept_answer`].
    Offer(String),
    /// ICE and DTLS are up.
    Connected,
}

/// A frame the node encoded itself (the program preview), written to subscribers like a forwarded one.
#[derive(Debug, Clone)]
pub struct LocalFrame {
    /// The codec of `data`; a subscriber that did not negotiate it does not get the frame.
    pub codec: Codec,
    /// Media time (90 kHz for video).
    pub time: MediaTime,
    /// The real time `time` stands for.
    pub wallclock: Instant,
    /// A keyframe (a decoder can start on it).
    pub keyframe: bool,
    /// The whole encoded frame, shared by every subscriber.
    pub data: Arc<[u8]>,
}

/// A forwarded track's m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// Waiting for the next server offer to add it.
    ToOpen,
    /// Added in the outstanding offer.
    Negotiating(Mid),
    /// Added in the outstanding offer, but unsubscribed meanwhile: stop once answered.
    NegotiatingThenStop(Mid),
    /// Negotiated.
    Open(Mid),
    /// Waiting for the next server offer to stop it.
    ToStop(Mid),
    /// Stopped in the outstanding offer.
    Stopping(Mid),
}

#[derive(Debug)]
struct Outbound {
    track: TrackInfo,
    state: OutState,
    /// `SubscriptionReady` was emitted.
    ready: bool,
    /// The timeline written so far: simulcast layers have RTP clocks of their own, so a switch carries the
    /// outgoing time on from the last frame written instead of jumping to the new layer's.
    timeline: Option<Timeline>,
}

#[derive(Debug, Clone, Copy)]
struct Timeline {
    /// The layer of the last frame written.
    layer: u8,
    /// Added to that layer's media time (in its clock's ticks) to give the time written.
    offset: i64,
    /// The last time written and the arrival of its frame.
    last_out: MediaTime,
    last_arrival: Instant,
}

#[derive(Debug)]
struct Inbound {
    mid: Mid,
    source: TrackSource,
    /// Simulcast layers, lowest first (empty without simulcast).
    rids: Vec<Rid>,
    /// Set by [`Peer::bind_published`].
    track: Option<TrackId>,
}

/// The bandwidth estimate a subscriber's link starts from, before feedback says more.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1500);
/// How often the connection's statistics are gathered ([`PeerEvent::Quality`]).
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// What the estimator probes up to: every layer of a full studio.
const DESIRED_BITRATE: Bitrate = Bitrate::mbps(8);

/// The sans-IO peer. See the [module docs](super).
pub struct Peer {
    id: PeerId,
    rtc: Rtc,
    /// The address clients send to (the host candidate); used as the destination of every
    /// received datagram so str0m's ICE matches it with the candidate.
    local_addr: SocketAddr,
    /// The client's first offer was accepted; only then may the server offer.
    negotiated: bool,
    /// The server's outstanding offer.
    pending: Option<SdpPendingOffer>,
    /// The client's ICE username fragment from its offer: trickled candidates must carry it.
    remote_ufrag: Option<String>,
    connected: bool,
    inbound: Vec<Inbound>,
    outbound: Vec<Outbound>,
    events: VecDeque<PeerEvent>,
    /// The worst jitter of the client's streams in the latest statistics, milliseconds.
    jitter_ms: Option<u32>,
    /// A viewer (WHEP): what it is subscribed to goes out on the m-lines its one offer asked to receive on, and
    /// it is never sent an offer.
    viewer: bool,
    /// A viewer's offered receive m-lines that no subscription took yet.
    spare: Vec<(Mid, MediaKind)>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("negotiated", &self.negotiated)
            .field("connected", &self.connected)
            .field("inbound", &self.inbound)
            .field("outbound", &self.outbound)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer that will be reached at `local_addr` (advertised as its only, host, candidate).
    /// The server is ICE-lite: clients start the connectivity checks, so the first datagram
    /// from a client is a STUN request naming this peer's ufrag (see [`Peer::local_ufrag`]).
    pub fn new(id: PeerId, local_addr: SocketAddr, crypto: Arc<CryptoProvider>, now: Instant) -> Self {
        let mut rtc = Rtc::builder()
            .set_crypto_provider(crypto)
            .set_ice_lite(true)
            .enable_bwe(Some(INITIAL_ESTIMATE))
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(now);
        rtc.bwe().set_bitrate(Bitrate::ZERO, DESIRED_BITRATE);
        // unwrap: a UDP host candidate from a socket address is always valid.
        let candidate = Candidate::host(local_addr, "udp").expect("a host candidate");
        rtc.add_local_candidate(candidate);
        Peer {
            id,
            rtc,
            local_addr,
            negotiated: false,
            pending: None,
            remote_ufrag: None,
            connected: false,
            inbound: vec![],
            outbound: vec![],
            events: VecDeque::new(),
            jitter_ms: None,
            viewer: false,
            spare: vec![],
        }
    }

    /// Makes this peer a viewer (a WHEP client, which offers once and cannot take the server's offers): each
    /// track it is subscribed to goes out on an m-line of the track's kind that its offer asked to receive
    /// on, and a track with no such m-line is not sent. Call before its offer.
    pub fn set_viewer(&mut self) {
        self.viewer = true;
    }

    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The local ICE username fragment: the first half of the USERNAME in the client's STUN
    /// requests, which is how a shared socket finds the peer a datagram belongs to.
    pub fn local_ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    /// False once the connection ended (ICE gave up, DTLS failed, or [`Peer::disconnect`]).
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Runs one negotiation step of the WebRTC stack. Some malformed SDP (found by fuzzing: a payload type
    /// mapped twice within an m-line the offer does not list it in) makes it panic; the panic is caught here so
    /// it cannot end the task that serves this peer, the client gets `InvalidSdp`, and the connection, whose
    /// state the panic may have left half-changed, is closed.
    fn guarded<T, E: std::fmt::Display>(
        &mut self,
        what: &str,
        step: impl FnOnce(&mut Rtc) -> Result<T, E>,
    ) -> Result<T, RouterError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&mut self.rtc))) {
            Ok(result) => result.map_err(|e| RouterError::InvalidSdp(e.to_string())),
            Err(_) => {
                tracing::warn!(
                    peer = self.id.0,
                    "the WebRTC stack panicked on the client's {what}; closing this connection"
                );
                self.rtc.disconnect();
                Err(RouterError::InvalidSdp(format!(
                    "the {what} could not be negotiated; the media connection is closed"
                )))
            }
        }
    }

    /// Ends the connection.
    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
    }

    /// Accepts the client's offer and returns the answer. The first offer publishes the
    /// client's tracks; a later one is accepted only while no server offer is outstanding.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, RouterError> {
        if self.pending.is_some() {
            return Err(RouterError::OfferCollision);
        }
        let (sdp, refused) = limit_simulcast(sdp);
        if !refused.is_empty() {
            tracing::info!(peer = self.id.0, ?refused, "simulcast layers refused (at most {MAX_LAYERS}, video only)");
        }
        let sdp = sdp.as_str();
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| RouterError::InvalidSdp(e.to_string()))?;
        let answer = self.guarded("offer", |rtc| rtc.sdp_api().accept_offer(offer))?;
        self.negotiated = true;
        if let Some(ufrag) = sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")) {
            self.remote_ufrag = Some(ufrag.to_string());
        }
        Ok(answer.to_sdp_string())
    }

    /// Accepts the client's answer to the outstanding server offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), RouterError> {
        // Parse before consuming the pending offer, so a garbled answer leaves it outstanding.
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| RouterError::InvalidSdp(e.to_string()))?;
        let pending = self.pending.take().ok_or(RouterError::NoPendingOffer)?;
        let result = self.guarded("answer", |rtc| rtc.sdp_api().accept_answer(pending, answer));
        let accepted = result.is_ok();
        let mut kept = Vec::with_capacity(self.outbound.len());
        for mut out in self.outbound.drain(..) {
            let next = match (out.state, accepted) {
                (OutState::Negotiating(m), true) => Some(OutState::Open(m)),
                (OutState::NegotiatingThenStop(m), true) => Some(OutState::ToStop(m)),
                (OutState::Stopping(_), true) => None,
                // A refused answer leaves the m-lines as before the offer; the next offer
                // retries what is still wanted.
                (OutState::Negotiating(_), false) => Some(OutState::ToOpen),
                (OutState::NegotiatingThenStop(_), false) => None,
                (OutState::Stopping(m), false) => Some(OutState::ToStop(m)),
                (s, _) => Some(s),
            };
            if let Some(state) = next {
                out.state = state;
                kept.push(out);
            }
        }
        self.outbound = kept;
        result?;
        self.report_ready();
        Ok(())
    }

    /// Adds a trickled ICE candidate from the client (the `candidate:...` line).
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), RouterError> {
        let line = candidate.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            // The browser's end-of-candidates marker.
            return Ok(());
        }
        // `candidate:<foundation> <component> <proto> <priority> <address> <port> typ ...`. Browsers hide local
        // addresses behind mDNS names until the page may use the camera; an ICE-lite server learns the client's
        // address from its connectivity checks anyway, so such a candidate is accepted and not needed.
        if line.split_whitespace().nth(4).is_some_and(|addr| addr.ends_with(".local")) {
            return Ok(());
        }
        let c = Candidate::from_sdp_string(line).map_err(|e| RouterError::InvalidCandidate(e.to_string()))?;
        if let (Some(theirs), Some(ours)) = (c.ufrag(), self.remote_ufrag.as_deref())
            && theirs != ours
        {
            return Err(RouterError::InvalidCandidate(format!(
                "the candidate belongs to another ICE session (ufrag {theirs})"
            )));
        }
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Forward `track` to this peer: it gets an m-line in the next server offer.
    pub fn subscribe(&mut self, track: TrackInfo) {
        if self.outbound.iter().any(|o| o.track.id == track.id) {
            return;
        }
        let spare = self.spare.iter().position(|&(_, kind)| kind == track.kind());
        let state = match spare {
            Some(i) => OutState::Open(self.spare.remove(i).0),
            None => OutState::ToOpen,
        };
        self.outbound.push(Outbound { track, state, ready: false, timeline: None });
        self.report_ready();
    }

    /// Stop forwarding `track` to this peer: its m-line is stopped in the next server offer.
    pub fn unsubscribe(&mut self, track: TrackId) {
        let Some(i) = self.outbound.iter().position(|o| o.track.id == track) else { return };
        let out = &mut self.outbound[i];
        match out.state {
            OutState::ToOpen => {
                self.outbound.remove(i);
            }
            OutState::Negotiating(m) => out.state = OutState::NegotiatingThenStop(m),
            OutState::Open(m) => out.state = OutState::ToStop(m),
            OutState::NegotiatingThenStop(_) | OutState::ToStop(_) | OutState::Stopping(_) => {}
        }
    }

    /// Records the room's id for a track the client publishes (after [`PeerEvent::Published`]).
    pub fn bind_published(&mut self, mid: Mid, track: TrackId) {
        if let Some(i) = self.inbound.iter_mut().find(|i| i.mid == mid) {
            i.track = Some(track);
        }
    }

    /// The tracks this peer publishes, with their sources.
    pub fn published(&self) -> impl Iterator<Item = (TrackId, TrackSource)> + '_ {
        self.inbound.iter().filter_map(|i| Some((i.track?, i.source)))
    }

    /// Writes a frame of `track` (forwarded from its publisher) to this peer. Frames of tracks
    /// whose m-line is not open, or in a codec this peer did not negotiate, are dropped.
    /// Returns whether the frame was written.
    pub fn write_frame(&mut self, track: TrackId, layer: u8, data: &MediaData) -> Result<bool, RouterError> {
        let Some(out) = self.outbound.iter_mut().find(|o| o.track.id == track) else { return Ok(false) };
        let OutState::Open(mid) = out.state else { return Ok(false) };
        let Some(mut writer) = self.rtc.writer(mid) else { return Ok(false) };
        let Some(pt) = writer.match_params(data.params) else { return Ok(false) };
        if let Some(level) = data.ext_vals.audio_level {
            writer = writer.audio_level(level, data.ext_vals.voice_activity.unwrap_or(false));
        }
        let time = continue_timeline(&mut out.timeline, layer, data.time, data.network_time);
        writer.write(pt, data.network_time, time, data.data.clone())?;
        Ok(true)
    }

    /// Writes a frame the node encoded ([`LocalFrame`]) on `track`'s m-line, in the payload type this peer
    /// negotiated for its codec. Returns whether the frame was written.
    pub fn write_local(&mut self, track: TrackId, frame: &LocalFrame) -> Result<bool, RouterError> {
        let Some(out) = self.outbound.iter().find(|o| o.track.id == track) else { return Ok(false) };
        let OutState::Open(mid) = out.state else { return Ok(false) };
        let Some(writer) = self.rtc.writer(mid) else { return Ok(false) };
        let Some(pt) = writer.payload_params().find(|p| p.spec().codec == frame.codec).map(|p| p.pt()) else {
            return Ok(false);
        };
        writer.write(pt, frame.wallclock, frame.time, frame.data.clone())?;
        Ok(true)
    }

    /// Asks the client for a keyframe on a track it publishes (PLI or FIR, whichever the
    /// client negotiated if the preferred one is not).
    pub fn request_keyframe(&mut self, track: TrackId, layer: Option<u8>, kind: KeyframeRequestKind) {
        let Some(inb) = self.inbound.iter().find(|i| i.track == Some(track)) else { return };
        let rid = layer.and_then(|l| inb.rids.get(usize::from(l)).copied());
        let Some(mut writer) = self.rtc.writer(inb.mid) else { return };
        let kind = if writer.is_request_keyframe_possible(kind) {
            kind
        } else {
            match kind {
                KeyframeRequestKind::Pli => KeyframeRequestKind::Fir,
                KeyframeRequestKind::Fir => KeyframeRequestKind::Pli,
            }
        };
        match writer.request_keyframe(rid, kind) {
            Ok(()) => tracing::debug!(peer = self.id.0, ?track, ?kind, "keyframe requested"),
            // No RTP seen on the m-line yet, or neither kind negotiated.
            Err(e) => tracing::debug!(peer = self.id.0, ?track, "keyframe request not sent: {e}"),
        }
    }

    /// Feeds a datagram received from `source`. Datagrams that are not STUN/DTLS/RTP/RTCP are
    /// ignored.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, buf: &[u8]) -> Result<(), RouterError> {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, buf) else {
            return Ok(());
        };
        self.rtc.handle_input(Input::Receive(now, receive))?;
        Ok(())
    }

    /// Drives time forward.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RouterError> {
        self.rtc.handle_input(Input::Timeout(now))?;
        Ok(())
    }

    /// The next thing to do. Call until it returns [`PeerOutput::Timeout`].
    pub fn poll_output(&mut self) -> Result<PeerOutput, RouterError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(PeerOutput::Event(e));
            }
            match self.rtc.poll_output()? {
                Output::Transmit(t) => return Ok(PeerOutput::Transmit(t)),
                Output::Event(e) => self.handle_event(e),
                // Offer only once str0m's events are drained: the client's m-lines must be published
                // (MediaAdded) before a new local change is staged.
                Output::Timeout(t) => match self.offer_if_needed() {
                    Some(offer) => return Ok(PeerOutput::Event(PeerEvent::Offer(offer))),
                    None => return Ok(PeerOutput::Timeout(t)),
                },
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(PeerEvent::Connected);
                self.report_ready();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // An ICE-lite server cannot restart ICE; the client rejoins instead.
                self.rtc.disconnect();
            }
            Event::MediaAdded(added) => {
                let ours = self.outbound.iter().any(|o| mid_of(o.state) == Some(added.mid));
                if ours {
                    return;
                }
                if !added.direction.is_receiving() {
                    // A viewer's offer to receive: the first subscription of its kind takes it.
                    if self.viewer {
                        match self
                            .outbound
                            .iter_mut()
                            .find(|o| o.state == OutState::ToOpen && o.track.kind() == added.kind)
                        {
                            Some(out) => out.state = OutState::Open(added.mid),
                            None => self.spare.push((added.mid, added.kind)),
                        }
                        self.report_ready();
                    }
                    return;
                }
                // The client's layers, lowest first as it listed them (str0m inverts the offer's `send` into our
                // `recv`); `limit_simulcast` already refused any beyond the maximum.
                let rids: Vec<Rid> = added
                    .simulcast
                    .as_ref()
                    .map(|s| s.recv.iter().chain(&s.send).map(|l| l.rid).take(MAX_LAYERS).collect())
                    .unwrap_or_default();
                let source = match added.kind {
                    MediaKind::Audio => TrackSource::Microphone,
                    // The first video m-line a client sends is its camera; another one its screen.
                    MediaKind::Video if self.inbound.iter().any(|i| i.source == TrackSource::Camera) => {
                        TrackSource::Screen
                    }
                    MediaKind::Video => TrackSource::Camera,
                };
                let layers = rids.len().max(1) as u8;
                self.inbound.push(Inbound { mid: added.mid, source, rids, track: None });
                self.events.push_back(PeerEvent::Published { mid: added.mid, source, layers });
            }
            Event::MediaData(data) => {
                let Some(inb) = self.inbound.iter().find(|i| i.mid == data.mid) else { return };
                let Some(track) = inb.track else { return };
                let layer = match (data.rid, inb.rids.is_empty()) {
                    (None, true) => 0,
                    // A layer the answer did not accept is dropped.
                    (Some(rid), false) => match inb.rids.iter().position(|r| *r == rid) {
                        Some(i) => i as u8,
                        None => return,
                    },
                    _ => return,
                };
                let size = (data.is_keyframe() && data.params.spec().codec == Codec::Vp8)
                    .then(|| layers::vp8_keyframe_size(&data.data))
                    .flatten();
                let frame = Frame {
                    keyframe: data.is_keyframe(),
                    contiguous: data.contiguous,
                    audio_level: data.ext_vals.audio_level,
                    voice_activity: data.ext_vals.voice_activity,
                };
                self.events.push_back(PeerEvent::Frame { track, layer, frame, size, data });
            }
            Event::MediaIngressStats(stats) => {
                // The microphone's jitter (48 kHz ticks): audio flows steadily, where a video layer the browser
                // paused and resumed makes the running jitter of its stream meaningless for a while.
                let Some(inb) = self.inbound.iter().find(|i| i.mid == stats.mid) else { return };
                if inb.source.kind().is_audio() {
                    self.jitter_ms = Some(stats.jitter / 48);
                }
            }
            Event::PeerStats(stats) => {
                let rtt = stats
                    .rtt
                    .or_else(|| stats.selected_candidate_pair.as_ref().and_then(|p| p.current_round_trip_time));
                let mut q = ConnectionQuality {
                    rtt_ms: rtt.map(quality::millis),
                    downlink_loss: stats.egress_loss_fraction,
                    uplink_loss: stats.ingress_loss_fraction,
                    jitter_ms: self.jitter_ms.take(),
                    downlink_kbps: stats.bwe_tx.map(|b| u32::try_from(b.as_u64() / 1000).unwrap_or(u32::MAX)),
                    ..ConnectionQuality::default()
                };
                q.grade = quality::grade(&q);
                self.events.push_back(PeerEvent::Quality(q));
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                self.events.push_back(PeerEvent::Estimate(estimate.as_u64()));
            }
            Event::KeyframeRequest(req) => {
                if let Some(out) = self.outbound.iter().find(|o| mid_of(o.state) == Some(req.mid)) {
                    self.events.push_back(PeerEvent::KeyframeRequest { track: out.track.id, kind: req.kind });
                }
            }
            _ => {}
        }
    }

    fn report_ready(&mut self) {
        if !self.connected {
            return;
        }
        for out in &mut self.outbound {
            if matches!(out.state, OutState::Open(_)) && !out.ready {
                out.ready = true;
                self.events.push_back(PeerEvent::SubscriptionReady { track: out.track.id });
            }
        }
    }

    /// Creates a server offer when forwarded tracks changed and no offer is outstanding.
    fn offer_if_needed(&mut self) -> Option<String> {
        if self.viewer || !self.negotiated || self.pending.is_some() || !self.rtc.is_alive() {
            return None;
        }
        if !self.outbound.iter().any(|o| matches!(o.state, OutState::ToOpen | OutState::ToStop(_))) {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for out in &mut self.outbound {
            match out.state {
                OutState::ToOpen => {
                    let mid = change.add_media(
                        out.track.kind(),
                        Direction::SendOnly,
                        Some(out.track.stream_id()),
                        Some(out.track.track_label()),
                        None,
                    );
                    out.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    out.state = OutState::Stopping(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(self.restore_stream_ids(offer.to_sdp_string()))
    }

    /// str0m keeps only RFC 8830 token characters of a stream id, which drops the `:` of
    /// `<participantId>:screen`; the protocol promises that id to the browser (which accepts
    /// any non-space characters), so it is put back in the offer text.
    fn restore_stream_ids(&self, sdp: String) -> String {
        let fixes: Vec<(String, String)> = self
            .outbound
            .iter()
            .map(|o| o.track.stream_id())
            .filter_map(|wanted| {
                let kept: String = wanted.chars().filter(is_msid_token_char).take(64).collect();
                (kept != wanted).then_some((kept, wanted))
            })
            .collect();
        if fixes.is_empty() {
            return sdp;
        }
        let mut out = String::with_capacity(sdp.len() + 16 * fixes.len());
        for line in sdp.split_inclusive("\r\n") {
            if let Some(ids) = line.strip_prefix("a=msid-semantic:") {
                // `a=msid-semantic: WMS <stream ids>`: replace whole tokens.
                let body = ids.trim_end_matches("\r\n");
                let fixed: Vec<&str> = body
                    .split(' ')
                    .map(|t| fixes.iter().find(|(k, _)| k == t).map_or(t, |(_, w)| w.as_str()))
                    .collect();
                out.push_str("a=msid-semantic:");
                out.push_str(&fixed.join(" "));
                out.push_str(&line[("a=msid-semantic:".len() + body.len())..]);
                continue;
            }
            // `a=msid:<stream> <track>` and `a=ssrc:<n> msid:<stream> <track>`.
            let mut line = line.to_string();
            for (kept, wanted) in &fixes {
                line = line.replace(&format!("msid:{kept} "), &format!("msid:{wanted} "));
            }
            out.push_str(&line);
        }
        out
    }
}

/// The media time to write for a frame of `layer` at `time`: the layer's own time while it stays the same, and
/// on a switch a time that carries on from the last one written by the time that passed between the two frames'
/// arrivals (simulcast layers' RTP clocks start at unrelated values; a receiver's jitter buffer would take the
/// jump for a frame far in the future or past).
fn continue_timeline(timeline: &mut Option<Timeline>, layer: u8, time: MediaTime, arrival: Instant) -> MediaTime {
    let freq = time.frequency();
    let ticks = time.numer() as i64;
    let offset = match *timeline {
        Some(t) if t.layer == layer => t.offset,
        Some(t) => {
            let gap = arrival.saturating_duration_since(t.last_arrival).max(std::time::Duration::from_millis(1));
            let gap_ticks = (gap.as_secs_f64() * f64::from(freq.get())) as i64;
            let last = t.last_out.rebase(freq).numer() as i64;
            last + gap_ticks - ticks
        }
        None => 0,
    };
    let out = MediaTime::new((ticks + offset).max(0) as u64, freq);
    *timeline = Some(Timeline { layer, offset, last_out: out, last_arrival: arrival });
    out
}

/// Refuses what an offer asks of simulcast beyond what the server takes: layers past [`MAX_LAYERS`] on a video
/// m-line and simulcast on audio. Their `a=rid` lines and places in `a=simulcast` are removed before the offer
/// is negotiated, so the answer accepts only the rest and the client stops sending the others. Returns the
/// offer to negotiate and the refused RIDs.
fn limit_simulcast(sdp: &str) -> (String, Vec<String>) {
    if !sdp.contains("a=simulcast:") {
        return (sdp.to_string(), vec![]);
    }
    let mut out = String::with_capacity(sdp.len());
    let mut refused = vec![];
    for section in split_media_sections(sdp) {
        let audio = section.starts_with("m=audio");
        // `a=simulcast:send q;h;f` (alternatives after commas, `~` marks one paused).
        let listed: Vec<String> = section
            .lines()
            .find_map(|l| l.strip_prefix("a=simulcast:send "))
            .map(|v| {
                v.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .split(';')
                    .flat_map(|alts| alts.split(','))
                    .map(|r| r.trim_start_matches('~').to_string())
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let keep: Vec<&String> = if audio { vec![] } else { listed.iter().take(MAX_LAYERS).collect() };
        if keep.len() == listed.len() {
            out.push_str(section);
            continue;
        }
        refused.extend(listed.iter().filter(|r| !keep.contains(r)).cloned());
        for line in section.split_inclusive('\n') {
            let text = line.trim_end();
            if let Some(rid) = text.strip_prefix("a=rid:") {
                let id = rid.split_whitespace().next().unwrap_or("");
                if !keep.iter().any(|k| k.as_str() == id) {
                    continue;
                }
            }
            if text.starts_with("a=simulcast:") {
                if keep.is_empty() {
                    continue;
                }
                let list: Vec<&str> = keep.iter().map(|k| k.as_str()).collect();
                out.push_str("a=simulcast:send ");
                out.push_str(&list.join(";"));
                out.push_str("\r\n");
                continue;
            }
            out.push_str(line);
        }
    }
    (out, refused)
}

/// The session part and each media section of an SDP text, as slices (the `m=` line starts a section).
fn split_media_sections(sdp: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = vec![0];
    let mut at = 0;
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") && at > 0 {
            starts.push(at);
        }
        at += line.len();
    }
    starts.push(sdp.len());
    starts.windows(2).map(|w| &sdp[w[0]..w[1]]).collect()
}

fn mid_of(state: OutState) -> Option<Mid> {
    match state {
        OutState::ToOpen => None,
        OutState::Negotiating(m)
        | OutState::NegotiatingThenStop(m)
        | OutState::Open(m)
        | OutState::ToStop(m)
        | OutState::Stopping(m) => Some(m),
    }
}

/// RFC 8830 `token-char`, as str0m filters stream ids.
fn is_msid_token_char(c: &char) -> bool {
    let u = *c as u32;
    u == 0x21
        || (0x23..=0x27).contains(&u)
        || (0x2a..=0x2b).contains(&u)
        || (0x2d..=0x2e).contains(&u)
        || (0x30..=0x39).contains(&u)
        || (0x41..=0x5a).contains(&u)
        || (0x5e..0x7e).contains(&u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> Arc<CryptoProvider> {
        Arc::new(str0m::crypto::from_feature_flags())
    }

    /// Polls until the peer only waits for time, keeping the events.
    fn events(peer: &mut Peer) -> Vec<PeerEvent> {
        let mut out = vec![];
        loop {
            match peer.poll_output().expect("poll") {
                PeerOutput::Event(e) => out.push(e),
                PeerOutput::Transmit(_) => {}
                PeerOutput::Timeout(_) => return out,
            }
        }
    }

    /// Shuttles datagrams between the peer and a str0m client in memory (no sockets), advancing a simulated
    /// clock, until both are connected; returns the peer's events meanwhile.
    fn connect(peer: &mut Peer, client: &mut Rtc, start: Instant) -> Vec<PeerEvent> {
        let server: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let mut out = vec![];
        let mut client_connected = false;
        let mut now = start;
        for _ in 0..2000 {
            loop {
                match peer.poll_output().expect("peer poll") {
                    PeerOutput::Event(e) => out.push(e),
                    PeerOutput::Transmit(t) => {
                        let r = Receive::new(Protocol::Udp, server, t.destination, &t.contents).expect("a datagram");
                        client.handle_input(Input::Receive(now, r)).expect("client input");
                    }
                    PeerOutput::Timeout(_) => break,
                }
            }
            loop {
                match client.poll_output().expect("client poll") {
                    Output::Event(Event::Connected) => client_connected = true,
                    Output::Event(_) => {}
                    Output::Transmit(t) => peer.handle_receive(now, t.source, &t.contents).expect("peer input"),
                    Output::Timeout(_) => break,
                }
            }
            // A viewer publishes nothing; anyone else is connected once its m-lines are published.
            let published = peer.viewer || out.iter().any(|e| matches!(e, PeerEvent::Published { .. }));
            if client_connected && peer.is_connected() && published {
                return out;
            }
            now += std::time::Duration::from_millis(5);
            peer.handle_timeout(now).expect("peer timeout");
            client.handle_input(Input::Timeout(now)).expect("client timeout");
        }
        panic!("no connection in simulated 10 s; peer events: {out:?}");
    }

    fn screen_of(participant: &str) -> TrackInfo {
        TrackInfo { id: TrackId(7), publisher: PeerId(2), participant: participant.into(), source: TrackSource::Screen }
    }

    #[test]
    fn an_offer_that_makes_the_webrtc_stack_panic_is_refused_and_closes_only_that_connection() {
        // Found by the SDP fuzz target: a payload type mapped twice in an m-line that does not list it.
        let offer = include_str!("../../../fuzz/corpus/sdp/payload-type-mapped-twice.sdp");
        let mut peer = Peer::new(PeerId(1), "192.0.2.1:5000".parse().unwrap(), crypto(), Instant::now());
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = peer.accept_offer(offer);
        std::panic::set_hook(quiet);
        assert!(matches!(result, Err(RouterError::InvalidSdp(_))), "{result:?}");
        assert!(!peer.is_alive(), "the connection the panic may have spoiled is closed");
    }

    #[test]
    fn the_client_offers_once_then_only_the_server_offers() {
        let now = Instant::now();
        let mut peer = Peer::new(PeerId(1), "192.0.2.1:5000".parse().unwrap(), crypto(), now);
        let mut client = Rtc::builder().set_crypto_provider(crypto()).build(now);
        client.add_local_candidate(Candidate::host("192.0.2.2:6000".parse().unwrap(), "udp").unwrap());
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();

        // Nothing to offer before the client's first offer: the server never offers first.
        peer.subscribe(screen_of("0192-ab"));
        assert!(events(&mut peer).iter().all(|e| !matches!(e, PeerEvent::Offer(_))));
        assert!(matches!(peer.accept_answer("v=0"), Err(RouterError::InvalidSdp(_) | RouterError::NoPendingOffer)));

        let answer = peer.accept_offer(&offer.to_sdp_string()).unwrap();
        client.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        // str0m reports the client's m-lines once media can flow, so connect the two in memory.
        let evs = connect(&mut peer, &mut client, now);
        let published: Vec<_> = evs
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Published { source, .. } => Some(*source),
                _ => None,
            })
            .collect();
        assert_eq!(published, [TrackSource::Microphone, TrackSource::Camera, TrackSource::Screen]);
        let offers: Vec<_> = evs
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Offer(sdp) => Some(sdp.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(offers.len(), 1, "one server offer for the pending subscription");
        assert!(evs.iter().any(|e| matches!(e, PeerEvent::Connected)));
        assert!(offers[0].contains("a=msid:0192-ab:screen "), "the contract's stream id: {}", offers[0]);
        assert!(!offers[0].contains("0192-abscreen"), "no trace of the filtered id: {}", offers[0]);
        assert!(SdpOffer::from_sdp_string(&offers[0]).is_ok(), "still valid SDP");

        // While that offer waits, a client offer is refused and no second server offer is made.
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (again, _) = api.apply().unwrap();
        assert!(matches!(peer.accept_offer(&again.to_sdp_string()), Err(RouterError::OfferCollision)));
        peer.subscribe(TrackInfo { id: TrackId(8), source: TrackSource::Camera, ..screen_of("0192-ab") });
        assert!(events(&mut peer).iter().all(|e| !matches!(e, PeerEvent::Offer(_))));

        // A garbled answer keeps the offer outstanding; the real one completes it and the next change is offered.
        assert!(matches!(peer.accept_answer("nonsense"), Err(RouterError::InvalidSdp(_))));
        let answer = client.sdp_api().accept_offer(SdpOffer::from_sdp_string(&offers[0]).unwrap()).unwrap();
        peer.accept_answer(&answer.to_sdp_string()).unwrap();
        assert!(matches!(peer.accept_answer(&answer.to_sdp_string()), Err(RouterError::NoPendingOffer)));
        let next: Vec<_> = events(&mut peer).into_iter().filter(|e| matches!(e, PeerEvent::Offer(_))).collect();
        assert_eq!(next.len(), 1, "the camera subscribed meanwhile is offered now");
    }

    #[test]
    fn a_viewer_gets_its_tracks_on_the_lines_it_offered_to_receive_on_and_no_offer() {
        let now = Instant::now();
        let mut peer = Peer::new(PeerId(1), "192.0.2.1:5000".parse().unwrap(), crypto(), now);
        peer.set_viewer();
        let program = TrackInfo {
            id: TrackId(3),
            publisher: PeerId::PROGRAM,
            participant: "program".into(),
            source: TrackSource::Program,
        };
        // Subscribed before its offer (the room decides on join), and a second video it has no line for.
        peer.subscribe(program.clone());
        peer.subscribe(TrackInfo { id: TrackId(4), ..program.clone() });
        let mut client = Rtc::builder().set_crypto_provider(crypto()).build(now);
        client.add_local_candidate(Candidate::host("192.0.2.2:6000".parse().unwrap(), "udp").unwrap());
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let answer = peer.accept_offer(&offer.to_sdp_string()).unwrap();
        client.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        let evs = connect(&mut peer, &mut client, now);
        assert!(!evs.iter().any(|e| matches!(e, PeerEvent::Offer(_))), "a viewer is never offered: {evs:?}");
        assert!(!evs.iter().any(|e| matches!(e, PeerEvent::Published { .. })), "a viewer publishes nothing");
        let ready: Vec<_> = evs
            .iter()
            .filter_map(|e| match e {
                PeerEvent::SubscriptionReady { track } => Some(*track),
                _ => None,
            })
            .collect();
        assert_eq!(ready, [TrackId(3)], "only the track with a line is ready");
        let frame = LocalFrame {
            codec: Codec::H264,
            time: MediaTime::from_90khz(0),
            wallclock: now,
            keyframe: true,
            data: vec![0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00].into(),
        };
        assert!(peer.write_local(TrackId(3), &frame).unwrap(), "written on the offered line");
        assert!(!peer.write_local(TrackId(4), &frame).unwrap(), "no line, not sent");
        assert!(client.media(video).is_some());
        // A track published later takes the spare audio line.
        peer.subscribe(TrackInfo { id: TrackId(5), source: TrackSource::Microphone, ..program });
        let evs = events(&mut peer);
        assert!(
            evs.iter().any(|e| matches!(e, PeerEvent::SubscriptionReady { track } if *track == TrackId(5))),
            "{evs:?}"
        );
        assert!(!evs.iter().any(|e| matches!(e, PeerEvent::Offer(_))));
    }

    #[test]
    fn simulcast_past_three_layers_and_on_audio_is_refused_in_the_answer() {
        let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rid:x send\r\na=simulcast:send x\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rid:a send\r\na=rid:b send\r\na=rid:c send\r\n\
            a=rid:d send\r\na=rid:e send\r\na=simulcast:send a;b;~c;d,e\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=rid:q send\r\na=rid:h send\r\na=simulcast:send q;h\r\n";
        let (kept, refused) = limit_simulcast(offer);
        assert_eq!(refused, ["x", "d", "e"]);
        let sections = split_media_sections(&kept);
        assert!(!sections[1].contains("a=rid") && !sections[1].contains("a=simulcast"), "{}", sections[1]);
        assert!(sections[2].contains("a=rid:a send\r\na=rid:b send\r\na=rid:c send\r\na=simulcast:send a;b;c\r\n"));
        assert!(!sections[2].contains("rid:d") && !sections[2].contains("rid:e"));
        assert_eq!(sections[3], split_media_sections(offer)[3], "an offer within the limits is left alone");
        assert_eq!(limit_simulcast("v=0\r\n").0, "v=0\r\n");
    }

    #[test]
    fn a_layer_switch_carries_the_outgoing_time_on() {
        let t0 = Instant::now();
        let ms = std::time::Duration::from_millis;
        let hz = |n: u64| MediaTime::from_90khz(n);
        let mut tl = None;
        assert_eq!(continue_timeline(&mut tl, 2, hz(1_000_000), t0), hz(1_000_000), "the first layer as it is");
        assert_eq!(continue_timeline(&mut tl, 2, hz(1_003_000), t0 + ms(33)), hz(1_003_000));
        // The low layer's clock started elsewhere: the time goes on by the 33 ms between arrivals (2970 ticks).
        let switched = continue_timeline(&mut tl, 0, hz(42), t0 + ms(66));
        assert_eq!(switched, hz(1_003_000 + 2970));
        assert_eq!(continue_timeline(&mut tl, 0, hz(42 + 3000), t0 + ms(99)), hz(1_005_970 + 3000));
    }

    #[test]
    fn candidates_must_belong_to_the_clients_ice_session() {
        let now = Instant::now();
        let mut peer = Peer::new(PeerId(1), "192.0.2.1:5000".parse().unwrap(), crypto(), now);
        let mut client = Rtc::builder().set_crypto_provider(crypto()).build(now);
        client.add_local_candidate(Candidate::host("192.0.2.2:6000".parse().unwrap(), "udp").unwrap());
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _) = api.apply().unwrap();
        let ufrag = client.direct_api().local_ice_credentials().ufrag;
        peer.accept_offer(&offer.to_sdp_string()).unwrap();
        peer.add_remote_candidate(&format!("candidate:1 1 udp 2130706431 192.0.2.2 6001 typ host ufrag {ufrag}"))
            .unwrap();
        peer.add_remote_candidate("a=candidate:1 1 udp 2130706431 192.0.2.2 6002 typ host").unwrap();
        peer.add_remote_candidate("").unwrap();
        peer.add_remote_candidate("candidate:2 1 udp 2113937151 8a1f2c3d-aaaa-bbbb.local 54321 typ host").unwrap();
        assert!(matches!(
            peer.add_remote_candidate("candidate:1 1 udp 2130706431 192.0.2.9 6001 typ host ufrag intruder"),
            Err(RouterError::InvalidCandidate(_))
        ));
        assert!(matches!(peer.add_remote_candidate("candidate:garbage"), Err(RouterError::InvalidCandidate(_))));
    }
}
