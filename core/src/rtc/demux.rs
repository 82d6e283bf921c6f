//! The node's one UDP socket: the receive loop, and which peer each datagram belongs to.

use super::*;

pub(super) struct Datagram {
    pub(super) received: Instant,
    pub(super) source: SocketAddr,
    pub(super) data: Vec<u8>,
}

/// Finds the peer a datagram belongs to: by the local ufrag in a STUN request's USERNAME, and
/// afterwards by the remote address those requests came from.
#[derive(Default)]
pub(super) struct Demux {
    pub(super) by_ufrag: HashMap<String, PeerId>,
    pub(super) by_addr: HashMap<SocketAddr, PeerId>,
    pub(super) inboxes: HashMap<PeerId, mpsc::Sender<Datagram>>,
}

impl Demux {
    pub(super) fn route(&mut self, buf: &[u8], source: SocketAddr) -> Option<&mpsc::Sender<Datagram>> {
        let is_stun = buf.len() >= 20 && buf[0] < 2;
        let peer = if is_stun {
            let msg = StunMessage::parse(buf).ok()?;
            match msg.split_username().and_then(|(local, _)| self.by_ufrag.get(local)).copied() {
                Some(peer) => {
                    self.by_addr.insert(source, peer);
                    peer
                }
                None => *self.by_addr.get(&source)?,
            }
        } else {
            *self.by_addr.get(&source)?
        };
        self.inboxes.get(&peer)
    }

    pub(super) fn remove(&mut self, peer: PeerId) {
        self.by_ufrag.retain(|_, p| *p != peer);
        self.by_addr.retain(|_, p| *p != peer);
        self.inboxes.remove(&peer);
    }
}

pub(super) async fn receive_loop(socket: Arc<UdpSocket>, demux: Arc<Mutex<Demux>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // Errors on an unconnected UDP socket concern one datagram (e.g. ICMP); go on.
                tracing::debug!("UDP receive failed: {e}");
                continue;
            }
        };
        let data = &buf[..n];
        let mut demux = demux.lock();
        let Some(inbox) = demux.route(data, source) else {
            tracing::trace!(%source, len = n, "datagram for no peer");
            continue;
        };
        let dgram = Datagram { received: Instant::now(), source, data: data.to_vec() };
        if inbox.try_send(dgram).is_err() {
            tracing::debug!(%source, "peer inbox full or closed, datagram dropped");
        }
    }
}
