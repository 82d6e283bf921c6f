//! Rooms that span nodes: two media nodes in this process, each with its relay, joined over QUIC on loopback; str0m
//! clients on each node exchange media as if they were on one (DTLS-SRTP, ICE, RTCP and QUIC all real).

mod router_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backyard_core::relay::{Relay, RelayConfig, RelayError};
use backyard_core::rtc::{LocalFrame, MediaNode, MediaTap, TapData, TapFrame, TrackSource};
use parking_lot::Mutex;
use router_support::{Client, Source, node, wait_for};
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime};

const AUDIO: MediaKind = MediaKind::Audio;
const VIDEO: MediaKind = MediaKind::Video;

/// Generous bound for things that take ~100 ms on loopback.
const SOON: Duration = Duration::from_secs(10);

fn relay(node_id: &str, media: &MediaNode, secret: &str) -> Relay {
    let config =
        RelayConfig { node: node_id.into(), bind: "127.0.0.1:0".parse().unwrap(), secret: secret.as_bytes().to_vec() };
    Relay::start(config, media.clone()).expect("a relay on loopback")
}

fn gets_from(c: &Client, from: &str, frames: u32) -> bool {
    c.received(from, AUDIO).frames >= frames && c.received(from, VIDEO).frames >= frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_on_two_nodes_see_and_hear_each_other_over_the_relay() -> anyhow::Result<()> {
    let (a, b) = (node().await, node().await);
    let (relay_a, relay_b) = (relay("node-a", &a, "s3cret"), relay("node-b", &b, "s3cret"));
    // Each learns of the other from the directory; the smaller id dials.
    relay_a.set_peers(&[("node-b".into(), relay_b.local_addr())]);
    relay_b.set_peers(&[("node-a".into(), relay_a.local_addr())]);
    wait_for("the nodes to connect", SOON, || relay_a.connected() == ["node-b"] && relay_b.connected() == ["node-a"])
        .await?;

    // Node b's program takes the room's frames: a participant on node a among them.
    let tapped: Arc<Mutex<HashMap<(String, TrackSource), u32>>> = Arc::default();
    let counts = tapped.clone();
    let encoded_elsewhere: Arc<Mutex<u32>> = Arc::default();
    let locals = encoded_elsewhere.clone();
    let tap: MediaTap = Arc::new(move |f: &TapFrame<'_>| {
        *counts.lock().entry((f.participant.to_string(), f.source)).or_default() += 1;
        if let TapData::Local(frame) = f.data {
            assert_eq!(
                (f.participant, frame.codec),
                ("encoder", Codec::H264),
                "only the encoder's frames are node-made"
            );
            *locals.lock() += 1;
        }
    });
    b.set_tap("show", Some(tap));

    let alice = Client::join(&a, "show", "alice", Source::default()).await?;
    let bob = Client::join(&b, "show", "bob", Source::default()).await?;
    let carol = Client::join(&b, "show", "carol", Source::default()).await?;
    let everyone = [&alice, &bob, &carol];
    for c in everyone {
        for other in everyone.iter().filter(|o| o.name != c.name) {
            wait_for(&format!("{} to get 20 frames of {}'s audio and video", c.name, other.name), SOON, || {
                gets_from(c, &other.name, 20)
            })
            .await?;
            c.check_alive()?;
        }
    }
    for c in everyone {
        let stats = c.stats.lock();
        let mut open: Vec<_> = stats.open.iter().map(|(s, k)| (s.clone(), k.is_video())).collect();
        open.sort();
        let mut want: Vec<_> = everyone
            .iter()
            .filter(|o| o.name != c.name)
            .flat_map(|o| [(o.name.clone(), false), (o.name.clone(), true)])
            .collect();
        want.sort();
        assert_eq!(open, want, "{}'s forwarded tracks: each other participant once, wherever they are", c.name);
        for ((stream, kind), r) in &stats.received {
            assert_eq!(r.foreign, 0, "{} got frames on {stream}/{kind:?} from someone else", c.name);
            if kind.is_video() {
                // The cameras send a keyframe only when asked: one from another node proves requests cross back.
                assert_eq!(r.first.map(|f| f.1), Some(true), "{}'s first frame of {stream} is a keyframe", c.name);
            }
        }
    }
    // The program on node b decodes alice (on node a) as it does bob (on node b): her camera's keyframes were
    // asked for across the relay too.
    let seen = |who: &str, source| tapped.lock().get(&(who.to_string(), source)).copied().unwrap_or(0);
    wait_for("node b's program to get alice's and bob's camera and microphone", SOON, || {
        [("alice", TrackSource::Camera), ("alice", TrackSource::Microphone), ("bob", TrackSource::Camera)]
            .iter()
            .all(|&(who, source)| seen(who, source) >= 20)
    })
    .await?;
    // Each node lists its own sessions only: the other node's people are not seated here twice.
    assert_eq!(a.participants("show"), ["alice"]);
    let mut on_b = b.participants("show");
    on_b.sort();
    assert_eq!(on_b, ["bob", "carol"]);

    // An encoder in the studio on node a (frames that node encodes itself, not RTP): node b's program gets them
    // too, and bob (on node b) sees it.
    let encoder = a.publish_source("show", "encoder", &[TrackSource::Camera])?;
    let sending = tokio::spawn(async move {
        for n in 0..150u64 {
            let data: Arc<[u8]> = Arc::from(&[0, 0, 0, 1, if n % 30 == 0 { 0x65 } else { 0x41 }, 0x88, 0x84][..]);
            let time = MediaTime::new(n * 3000, Frequency::NINETY_KHZ);
            let frame = LocalFrame {
                codec: Codec::H264,
                time,
                wallclock: std::time::Instant::now(),
                keyframe: n % 30 == 0,
                data,
            };
            encoder.send(TrackSource::Camera, frame);
            tokio::time::sleep(Duration::from_millis(33)).await;
        }
        encoder
    });
    wait_for("node b's program to get the encoder's frames from node a", SOON, || {
        seen("encoder", TrackSource::Camera) >= 10 && *encoded_elsewhere.lock() >= 10
    })
    .await?;
    drop(sending.await?);

    // Someone leaving on one node is gone from the other's subscribers too.
    bob.leave().await?;
    wait_for("bob's tracks to close on alice's side", SOON, || {
        !alice.has_open("bob", VIDEO) && !alice.has_open("bob", AUDIO)
    })
    .await?;
    let before = carol.received("alice", VIDEO).frames;
    wait_for("carol to keep getting alice", SOON, || carol.received("alice", VIDEO).frames > before + 10).await?;

    // The last person on node b leaves: node a stops sending there, and node b keeps no trace of the room.
    carol.leave().await?;
    wait_for("alice to see carol go", SOON, || !alice.has_open("carol", VIDEO)).await?;
    wait_for("node b to drop the room", SOON, || b.rooms_with_sessions().is_empty()).await?;
    alice.check_alive()?;
    alice.leave().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_cluster_secret_is_refused_either_way() -> anyhow::Result<()> {
    let (a, b, c) = (node().await, node().await, node().await);
    let member = relay("node-a", &a, "the cluster's secret");
    let stranger = relay("node-s", &b, "a guess");
    let silent = relay("node-t", &c, "");

    // The stranger dials a member: the member refuses it, and the stranger learns why.
    let err = stranger.connect("node-a", member.local_addr()).await.expect_err("a stranger must be refused");
    assert!(matches!(err, RelayError::Refused { .. }), "{err}");
    wait_for("the member to count the refusal", SOON, || member.refused() == 1).await?;
    // An empty secret is no secret either.
    let err = silent.connect("node-a", member.local_addr()).await.expect_err("no secret must be refused");
    assert!(matches!(err, RelayError::Refused { .. }), "{err}");
    // The member dials the stranger: the stranger finds the member's proof wrong and closes the connection.
    let err = member.connect("node-s", stranger.local_addr()).await.expect_err("a stranger's answer must be refused");
    assert!(matches!(err, RelayError::Refused { .. }), "{err}");
    assert!(member.connected().is_empty() && stranger.connected().is_empty() && silent.connected().is_empty());

    // A node that names itself as someone else is refused too, even with the secret.
    let impostor = relay("node-b", &c, "the cluster's secret");
    let err = member.connect("node-x", impostor.local_addr()).await.expect_err("a peer must be who the directory says");
    assert!(matches!(err, RelayError::Refused { .. }), "{err}");

    // With the secret, the same dial goes through.
    let peer = relay("node-z", &b, "the cluster's secret");
    member.connect("node-z", peer.local_addr()).await?;
    wait_for("both sides to list the link", SOON, || {
        member.connected() == ["node-z"] && peer.connected() == ["node-a"]
    })
    .await?;
    Ok(())
}
