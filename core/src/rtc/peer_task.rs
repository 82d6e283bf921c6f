//! One task per peer: it owns the peer's `str0m::Rtc`, takes the gateway's commands and the room's
//! forwarded frames, and drives the connection's time.

use super::*;

pub(super) enum PeerCmd {
    Offer(String, oneshot::Sender<Result<String, RouterError>>),
    Answer(String, oneshot::Sender<Result<(), RouterError>>),
    Candidate(String, oneshot::Sender<Result<(), RouterError>>),
    Subscribe(TrackInfo),
    Unsubscribe(TrackId),
    RequestKeyframe(TrackId, Option<u8>, KeyframeRequestKind),
    Leave,
}

/// Removes a peer from the node when its task ends, however it ends (including a panic).
pub(super) struct Registration {
    pub(super) inner: Arc<Inner>,
    pub(super) room: Arc<RoomShared>,
    pub(super) id: PeerId,
    pub(super) events: mpsc::UnboundedSender<MediaEvent>,
    pub(super) reason: CloseReason,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inner.demux.lock().remove(self.id);
        leave(&self.inner, &self.room, self.id);
        tracing::debug!(room = %self.room.name, peer = self.id.0, reason = ?self.reason, "left");
        let _ = self.events.send(MediaEvent::Closed(self.reason.clone()));
    }
}

pub(super) struct PeerTask {
    pub(super) registration: Registration,
    pub(super) peer: Peer,
    pub(super) cmd_rx: mpsc::UnboundedReceiver<PeerCmd>,
    pub(super) frames_rx: mpsc::Receiver<Arc<Forwarded>>,
    pub(super) dgram_rx: mpsc::Receiver<Datagram>,
    /// Set by the first offer: the connection must be up by then.
    pub(super) connect_by: Option<Instant>,
}

impl PeerTask {
    pub(super) async fn run(mut self) {
        let reason = match self.run_loop().await {
            Ok(reason) => reason,
            Err(e) => CloseReason::Failed(e.to_string()),
        };
        self.peer.disconnect();
        self.registration.reason = reason;
    }

    pub(super) async fn run_loop(&mut self) -> Result<CloseReason, RouterError> {
        let mut targets = Vec::new();
        loop {
            let deadline = self.drive(&mut targets)?;
            if !self.peer.is_alive() {
                return Ok(CloseReason::Disconnected);
            }
            if let Some(by) = self.connect_by {
                if self.peer.is_connected() {
                    self.connect_by = None;
                } else if Instant::now() >= by {
                    return Ok(CloseReason::Disconnected);
                }
            }
            let deadline = self.connect_by.map_or(deadline, |by| deadline.min(by));
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(PeerCmd::Leave) => return Ok(CloseReason::Left),
                    Some(cmd) => self.handle_cmd(cmd),
                },
                Some(d) = self.dgram_rx.recv() => {
                    self.peer.handle_receive(d.received, d.source, &d.data)?;
                    // Take what else arrived without going round the select.
                    while let Ok(d) = self.dgram_rx.try_recv() {
                        self.peer.handle_receive(d.received, d.source, &d.data)?;
                    }
                }
                Some(f) = self.frames_rx.recv() => {
                    self.write(&f);
                    while let Ok(f) = self.frames_rx.try_recv() {
                        self.write(&f);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.peer.handle_timeout(Instant::now())?;
                }
            }
        }
    }

    pub(super) fn write(&mut self, f: &Forwarded) {
        let written = match &f.payload {
            Payload::Relayed(data) => self.peer.write_frame(f.track, f.layer, data),
            Payload::Local(frame) => self.peer.write_local(f.track, frame),
        };
        if let Err(e) = written {
            tracing::debug!(peer = self.peer.id().0, "frame not written: {e}");
        }
    }

    pub(super) fn handle_cmd(&mut self, cmd: PeerCmd) {
        match cmd {
            PeerCmd::Offer(sdp, reply) => {
                let result = self.peer.accept_offer(&sdp);
                if result.is_ok() && self.connect_by.is_none() && !self.peer.is_connected() {
                    self.connect_by = Some(Instant::now() + CONNECT_TIMEOUT);
                }
                let _ = reply.send(result);
            }
            PeerCmd::Answer(sdp, reply) => {
                let _ = reply.send(self.peer.accept_answer(&sdp));
            }
            PeerCmd::Candidate(c, reply) => {
                let _ = reply.send(self.peer.add_remote_candidate(&c));
            }
            PeerCmd::Subscribe(track) => self.peer.subscribe(track),
            PeerCmd::Unsubscribe(track) => self.peer.unsubscribe(track),
            PeerCmd::RequestKeyframe(track, layer, kind) => self.peer.request_keyframe(track, layer, kind),
            // `run_loop` ends the task on Leave before it gets here.
            PeerCmd::Leave => {}
        }
    }

    /// Polls the peer until it only waits for time, acting on what it says.
    pub(super) fn drive(&mut self, targets: &mut Vec<PeerId>) -> Result<Instant, RouterError> {
        loop {
            match self.peer.poll_output()? {
                PeerOutput::Transmit(t) => {
                    if let Err(e) = self.registration.inner.socket.try_send_to(&t.contents, t.destination) {
                        tracing::debug!(destination = %t.destination, "UDP send failed: {e}");
                    }
                }
                PeerOutput::Timeout(t) => return Ok(t),
                PeerOutput::Event(e) => self.on_event(e, targets),
            }
        }
    }

    pub(super) fn on_event(&mut self, event: PeerEvent, targets: &mut Vec<PeerId>) {
        let id = self.peer.id();
        let room = &self.registration.room;
        let events = &self.registration.events;
        let now = Instant::now();
        match event {
            PeerEvent::Frame { track, layer, frame, size, data } => {
                let (tap, forwarded) = {
                    let mut st = room.state.lock();
                    let tapped = st.room.on_frame(track, layer, frame, size, data.data.len(), now, targets);
                    // Who the frame is from, for the tap, which runs after the room is unlocked.
                    let tap = tap_for(&st, track, tapped);
                    let forwarded = deliver(&st, targets, track, layer, Payload::Relayed(data));
                    dispatch(&mut st);
                    (tap, forwarded)
                };
                if let (Some((tap, participant, source, to)), Payload::Relayed(data)) = (tap, &forwarded.payload) {
                    tap(&TapFrame { participant: &participant, source, layer, data: TapData::Rtc(data), to });
                }
            }
            PeerEvent::Quality(mut q) => {
                {
                    let mut st = room.state.lock();
                    st.room.set_downlink_loss(id, q.downlink_loss, now);
                    // Reported beside the grade, which does not depend on it.
                    q.layers = st.room.camera_layers(id, now);
                    dispatch(&mut st);
                }
                let _ = events.send(MediaEvent::Quality(q));
            }
            PeerEvent::Estimate(bits) => {
                tracing::debug!(target: "backyard_core::bwe", peer = id.0, kbps = bits / 1000, "downlink estimate");
                let mut st = room.state.lock();
                st.room.set_estimate(id, bits, now);
                dispatch(&mut st);
            }
            PeerEvent::Published { mid, source, layers } => {
                let mut st = room.state.lock();
                match st.room.publish_layers(id, source, layers) {
                    Ok(track) => {
                        tracing::info!(room = %room.name, peer = id.0, source = source.as_str(), layers, "track published");
                        self.peer.bind_published(mid, track);
                        let _ = events.send(MediaEvent::TrackPublished(source));
                    }
                    Err(e) => tracing::warn!(peer = id.0, "track not published: {e}"),
                }
                dispatch(&mut st);
            }
            PeerEvent::KeyframeRequest { track, kind } => {
                let mut st = room.state.lock();
                st.room.keyframe_requested(id, track, kind, now);
                dispatch(&mut st);
            }
            PeerEvent::SubscriptionReady { track } => {
                let mut st = room.state.lock();
                st.room.subscription_ready(id, track, now);
                dispatch(&mut st);
            }
            PeerEvent::Offer(sdp) => {
                let _ = events.send(MediaEvent::Offer(sdp));
            }
            PeerEvent::Connected => {
                let _ = events.send(MediaEvent::Connected);
            }
        }
    }
}
