//! A str0m WebRTC endpoint on loopback for the tests that publish to or watch the server (WHIP, WHEP, the
//! studio's media): its connection, UDP socket and address, driven by hand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::Rtc;

/// A str0m endpoint on loopback: its connection, UDP socket and address.
pub struct Endpoint {
    pub rtc: Rtc,
    pub socket: tokio::net::UdpSocket,
    pub local: SocketAddr,
}

impl Endpoint {
    pub async fn new() -> anyhow::Result<Endpoint> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut rtc =
            Rtc::builder().set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags())).build(Instant::now());
        rtc.add_local_candidate(str0m::Candidate::host(local, "udp")?);
        Ok(Endpoint { rtc, socket, local })
    }

    /// Sends what the connection has to send and returns its events, until it only waits for time.
    pub async fn drive(&mut self) -> anyhow::Result<(Instant, Vec<str0m::Event>)> {
        let mut events = vec![];
        loop {
            match self.rtc.poll_output()? {
                str0m::Output::Transmit(t) => _ = self.socket.send_to(&t.contents, t.destination).await?,
                str0m::Output::Timeout(t) => return Ok((t, events)),
                str0m::Output::Event(e) => events.push(e),
            }
        }
    }

    /// Feeds what arrives on the socket within `wait` (and whatever else is waiting then), or else the
    /// connection's timeout.
    pub async fn receive(&mut self, wait: Duration) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
            Ok(r) => {
                let mut next = Some(r?);
                while let Some((n, from)) = next {
                    if let Ok(receive) =
                        str0m::net::Receive::new(str0m::net::Protocol::Udp, from, self.local, &buf[..n])
                    {
                        self.rtc.handle_input(str0m::Input::Receive(Instant::now(), receive))?;
                    }
                    next = self.socket.try_recv_from(&mut buf).ok();
                }
            }
            Err(_) => self.rtc.handle_input(str0m::Input::Timeout(Instant::now()))?,
        }
        Ok(())
    }
}

/// A studio's media connection through the node's session API (no WebSocket): joined to a room, it answers
/// the node's offers and says whose stream each piece of media is.
pub struct StudioClient {
    pub endpoint: Endpoint,
    handle: backyard_core::rtc::PeerHandle,
    events: tokio::sync::mpsc::UnboundedReceiver<backyard_core::rtc::MediaEvent>,
    /// The stream (participant) id of each media line the node added.
    streams: std::collections::HashMap<str0m::media::Mid, String>,
}

impl StudioClient {
    /// Joins `room` as `participant`, sending an audio line (the node offers what others publish).
    pub async fn join(media: &backyard_core::rtc::MediaNode, room: &str, participant: &str) -> anyhow::Result<Self> {
        use str0m::media::{Direction, MediaKind};
        let (handle, events) = media.join(room, participant)?;
        let mut endpoint = Endpoint::new().await?;
        let mut api = endpoint.rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or_else(|| anyhow::anyhow!("no offer"))?;
        let answer = handle.offer(offer.to_sdp_string()).await?;
        endpoint.rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(&answer)?)?;
        Ok(StudioClient { endpoint, handle, events, streams: Default::default() })
    }

    /// Answers the node's offers, then drives the connection: the media that arrived with the stream it
    /// belongs to, and when to drive it again.
    pub async fn poll(&mut self) -> anyhow::Result<(Instant, Vec<(String, str0m::media::MediaData)>)> {
        while let Ok(ev) = self.events.try_recv() {
            if let backyard_core::rtc::MediaEvent::Offer(sdp) = ev {
                let offer = str0m::change::SdpOffer::from_sdp_string(&sdp)?;
                let answer = self.endpoint.rtc.sdp_api().accept_offer(offer)?;
                self.handle.answer(answer.to_sdp_string()).await?;
            }
        }
        let (wake, events) = self.endpoint.drive().await?;
        let mut media = Vec::new();
        for e in events {
            match e {
                str0m::Event::MediaAdded(m) => {
                    let stream = self.endpoint.rtc.media(m.mid).map(|m| m.stream_id().to_owned()).unwrap_or_default();
                    self.streams.insert(m.mid, stream);
                }
                str0m::Event::MediaData(d) => {
                    media.push((self.streams.get(&d.mid).cloned().unwrap_or_default(), d));
                }
                _ => {}
            }
        }
        Ok((wake, media))
    }
}
