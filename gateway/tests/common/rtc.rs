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
