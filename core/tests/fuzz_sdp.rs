//! Fuzz targets for what a browser sends the media node over signaling: SDP offers and answers, and trickled
//! ICE candidate lines, through [`Peer`], the code that takes them. Properties: nothing panics; a refused input
//! is an `InvalidSdp`/`InvalidCandidate` (or a protocol-state) error. Whether the answer to an accepted offer
//! parses again is an outcome class, not a property: for some malformed offers the WebRTC stack writes an answer
//! its own parser refuses (the client's `setRemoteDescription` then fails; the server is unaffected). See `fuzz_support` for how the runs work (`cargo xtask fuzz` runs them for minutes).

mod fuzz_support;

use std::sync::Arc;
use std::time::Instant;

use backyard_core::router::{Peer, PeerId, RouterError};

const SDP_DICT: &[&str] = &[
    "\r\n",
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1 2",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 0.0.0.0",
    "a=mid:",
    "a=sendonly",
    "a=recvonly",
    "a=inactive",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:97 apt=96",
    "a=rtcp-mux",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:sha-256 ",
    "a=setup:actpass",
    "a=ssrc:",
    "a=ssrc-group:FID ",
    "a=rid:h send",
    "a=simulcast:send h;m;l",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=msid:",
    "a=candidate:1 1 udp 2122260223 192.0.2.5 50000 typ host",
];

const CANDIDATE_DICT: &[&str] = &[
    "candidate:",
    " 1 ",
    " udp ",
    " tcp ",
    " typ host",
    " typ srflx",
    " typ relay",
    " raddr ",
    " rport ",
    " ufrag ",
    " generation 0",
    " network-id 1",
    "192.0.2.5",
    "::1",
    "[2001:db8::1]",
    "abc.local",
    " 65535",
    " 0",
];

fn crypto() -> Arc<str0m::crypto::CryptoProvider> {
    Arc::new(str0m::crypto::from_feature_flags())
}

/// The outcome class: the error's message with numbers blurred and cut short, so classes stay few but tell the
/// parser's different refusals apart.
fn classify(r: &Result<impl Sized, RouterError>) -> String {
    // The text before the first ':' or '(' names the kind of refusal; what follows often quotes the input.
    let blur = |m: &str| {
        let kind = m.split([':', '(']).next().unwrap_or("");
        kind.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).take(48).collect::<String>()
    };
    match r {
        Ok(_) => "ok".into(),
        Err(RouterError::InvalidSdp(m)) => format!("invalid-sdp: {}", blur(m)),
        Err(RouterError::InvalidCandidate(m)) => format!("invalid-candidate: {}", blur(m)),
        Err(e) => format!("other: {e}"),
    }
}

/// A peer per 64 inputs: later inputs meet a peer that already negotiated (a renegotiation path).
struct Peers {
    peer: Peer,
    used: u32,
    crypto: Arc<str0m::crypto::CryptoProvider>,
}

impl Peers {
    fn new() -> Self {
        let crypto = crypto();
        Peers {
            peer: Peer::new(PeerId(1), "192.0.2.1:5000".parse().unwrap(), crypto.clone(), Instant::now()),
            used: 0,
            crypto,
        }
    }

    fn get(&mut self) -> &mut Peer {
        self.used += 1;
        if self.used > 64 {
            self.peer = Peer::new(PeerId(1), "192.0.2.1:5000".parse().unwrap(), self.crypto.clone(), Instant::now());
            self.used = 1;
        }
        &mut self.peer
    }
}

#[test]
fn sdp_offers_and_answers_never_panic() {
    let mut peers = Peers::new();
    fuzz_support::run("sdp", SDP_DICT, |input| {
        let sdp = String::from_utf8_lossy(input);
        let peer = peers.get();
        let offer = peer.accept_offer(&sdp);
        let reparsed = match &offer {
            Ok(answer) if str0m::change::SdpAnswer::from_sdp_string(answer).is_err() => " (answer does not parse)",
            _ => "",
        };
        let answer = peer.accept_answer(&sdp);
        format!("{}{reparsed} / {}", classify(&offer), classify(&answer))
    });
}

#[test]
fn ice_candidate_lines_never_panic() {
    let mut peers = Peers::new();
    fuzz_support::run("ice-candidate", CANDIDATE_DICT, |input| {
        let line = String::from_utf8_lossy(input);
        classify(&peers.get().add_remote_candidate(&line))
    });
}
