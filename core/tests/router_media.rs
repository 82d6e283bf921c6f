//! The router end to end: str0m clients in this process exchange media through a real
//! `MediaNode` over loopback UDP (DTLS-SRTP, ICE, RTCP and all).

mod router_support;

use std::time::Duration;

use backyard_core::router::RouterError;
use backyard_core::rtc::{MediaEvent, NodeError, TrackSource};
use router_support::{Client, Source, node, wait_for};
use str0m::media::MediaKind;

const AUDIO: MediaKind = MediaKind::Audio;
const VIDEO: MediaKind = MediaKind::Video;

/// Generous bound for things that take ~100 ms on loopback.
const SOON: Duration = Duration::from_secs(10);

fn gets_from(c: &Client, from: &str, frames: u32) -> bool {
    let a = c.received(from, AUDIO);
    let v = c.received(from, VIDEO);
    a.frames >= frames && v.frames >= frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_exchange_audio_and_video() -> anyhow::Result<()> {
    let node = node().await;
    let names = ["alice", "bob", "carol"];
    let mut clients = vec![];
    for n in names {
        clients.push(Client::join(&node, "room-1", n, Source::default()).await?);
    }
    for c in &clients {
        for other in names.iter().filter(|&&o| o != c.name) {
            wait_for(&format!("{} to get 20 frames of {other}'s audio and video", c.name), SOON, || {
                gets_from(c, other, 20)
            })
            .await?;
            c.check_alive()?;
        }
    }
    for c in &clients {
        let stats = c.stats.lock();
        // Each client sees exactly the other two participants' microphone and camera.
        let mut open: Vec<_> = stats.open.iter().cloned().collect();
        open.sort_by_key(|(s, k)| (s.clone(), k.is_video()));
        let mut want: Vec<_> = names
            .iter()
            .filter(|&&o| o != c.name)
            .flat_map(|o| [(o.to_string(), AUDIO), (o.to_string(), VIDEO)])
            .collect();
        want.sort_by_key(|(s, k)| (s.clone(), k.is_video()));
        assert_eq!(open, want, "{}'s forwarded tracks", c.name);
        for ((stream, kind), r) in &stats.received {
            assert_eq!(r.foreign, 0, "{} got frames on {stream}/{kind:?} from someone else", c.name);
            if kind.is_video() {
                assert_eq!(r.first.map(|f| f.1), Some(true), "{}'s first frame of {stream} is a keyframe", c.name);
            }
        }
    }
    let mut participants = node.participants("room-1");
    participants.sort();
    assert_eq!(participants, names);
    for c in clients {
        c.leave().await?;
    }
    wait_for("the room to empty", SOON, || node.participants("room-1").is_empty()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_a_keyframe_within_a_second() -> anyhow::Result<()> {
    let node = node().await;
    let alice = Client::join(&node, "room-2", "alice", Source::default()).await?;
    let bob = Client::join(&node, "room-2", "bob", Source::default()).await?;
    wait_for("bob to see alice", SOON, || gets_from(&bob, "alice", 30)).await?;
    // Let keyframe requests from bob's arrival die down: alice now sends only delta frames.
    pause(1500).await;
    let requests_before = alice.stats.lock().keyframe_requests;
    let keyframes_before = alice.stats.lock().keyframes_sent;

    let carol = Client::join(&node, "room-2", "carol", Source::default()).await?;
    wait_for("carol to connect", SOON, || carol.stats.lock().connected_at.is_some()).await?;
    wait_for("carol's first frame from alice", SOON, || carol.received("alice", VIDEO).frames > 0).await?;
    let connected = carol.stats.lock().connected_at.expect("connected");
    let (first_at, first_is_key) = carol.received("alice", VIDEO).first.expect("a frame");
    let after_connect = first_at.saturating_duration_since(connected);
    eprintln!(
        "late joiner: first keyframe {after_connect:?} after ICE+DTLS, {:?} after join",
        first_at - carol.joined_at
    );
    assert!(first_is_key, "the first frame a late joiner gets is a keyframe");
    assert!(after_connect < Duration::from_secs(1), "keyframe took {after_connect:?}");
    // The keyframe exists only because the server asked alice for it.
    assert!(alice.stats.lock().keyframe_requests > requests_before);
    assert!(alice.stats.lock().keyframes_sent > keyframes_before);
    // Bob kept receiving throughout.
    let bob_frames = bob.received("alice", VIDEO).frames;
    wait_for("bob to keep receiving", SOON, || bob.received("alice", VIDEO).frames > bob_frames + 10).await?;
    for c in [alice, bob, carol] {
        c.leave().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_tracks_disappear_from_the_others() -> anyhow::Result<()> {
    let node = node().await;
    let alice = Client::join(&node, "room-3", "alice", Source::default()).await?;
    let bob = Client::join(&node, "room-3", "bob", Source::default()).await?;
    let carol = Client::join(&node, "room-3", "carol", Source::default()).await?;
    for c in [&alice, &bob] {
        wait_for("carol's media to arrive", SOON, || gets_from(c, "carol", 10)).await?;
    }
    carol.leave().await?;
    for c in [&alice, &bob] {
        wait_for("carol's tracks to be stopped", SOON, || !c.has_open("carol", AUDIO) && !c.has_open("carol", VIDEO))
            .await?;
        let frames = c.received("carol", VIDEO).frames;
        pause(300).await;
        assert_eq!(c.received("carol", VIDEO).frames, frames, "no frames from a participant who left");
    }
    // The others still exchange media.
    let seen = bob.received("alice", VIDEO).frames;
    wait_for("bob to keep getting alice", SOON, || bob.received("alice", VIDEO).frames > seen + 10).await?;
    assert!(alice.has_open("bob", VIDEO) && bob.has_open("alice", AUDIO));
    let mut left = node.participants("room-3");
    left.sort();
    assert_eq!(left, ["alice", "bob"]);
    alice.leave().await?;
    bob.leave().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_an_error_and_the_room_keeps_working() -> anyhow::Result<()> {
    let node = node().await;
    let alice = Client::join(&node, "room-4", "alice", Source::default()).await?;

    let (mallory, mut events) = node.join("room-4", "mallory")?;
    let err = mallory.offer("v=0\r\nthis is not SDP".into()).await.expect_err("garbage SDP");
    assert!(matches!(err, NodeError::Router(RouterError::InvalidSdp(_))), "{err}");
    let err = mallory.offer(String::new()).await.expect_err("empty SDP");
    assert!(matches!(err, NodeError::Router(RouterError::InvalidSdp(_))), "{err}");
    let err = mallory.answer("v=0".into()).await.expect_err("an answer nobody asked for");
    assert!(matches!(err, NodeError::Router(RouterError::InvalidSdp(_) | RouterError::NoPendingOffer)), "{err}");
    let err = mallory.add_ice_candidate("candidate:nonsense".into()).await.expect_err("bad candidate");
    assert!(matches!(err, NodeError::Router(RouterError::InvalidCandidate(_))), "{err}");
    mallory.add_ice_candidate(String::new()).await?; // end-of-candidates is fine
    drop(mallory);
    loop {
        match tokio::time::timeout(SOON, events.recv()).await? {
            Some(MediaEvent::Closed(_)) | None => break,
            Some(_) => {}
        }
    }

    // The room keeps working: a newcomer exchanges media with alice.
    let bob = Client::join(&node, "room-4", "bob", Source::default()).await?;
    wait_for("bob and alice to exchange media", SOON, || gets_from(&bob, "alice", 10) && gets_from(&alice, "bob", 10))
        .await?;
    assert!(!alice.has_open("mallory", VIDEO));
    alice.leave().await?;
    bob.leave().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_and_moderation_mute() -> anyhow::Result<()> {
    let node = node().await;
    let loud = Source { audio_level: -15, ..Source::default() };
    let alice = Client::join(&node, "room-5", "alice", loud).await?;
    let bob = Client::join(&node, "room-5", "bob", Source::default()).await?;
    wait_for("alice to be reported speaking", SOON, || alice.stats.lock().speaking.first() == Some(&true)).await?;
    wait_for("bob to hear alice", SOON, || gets_from(&bob, "alice", 10)).await?;
    assert!(bob.stats.lock().speaking.is_empty(), "silence is not speech");

    node.set_muted("room-5", "alice", TrackSource::Microphone, true)?;
    wait_for("alice's speaking to end on mute", SOON, || alice.stats.lock().speaking.last() == Some(&false)).await?;
    pause(100).await;
    let audio = bob.received("alice", AUDIO).frames;
    let video = bob.received("alice", VIDEO).frames;
    pause(400).await;
    assert_eq!(bob.received("alice", AUDIO).frames, audio, "muted audio is not forwarded");
    assert!(bob.received("alice", VIDEO).frames > video + 5, "video still flows");

    node.set_muted("room-5", "alice", TrackSource::Microphone, false)?;
    wait_for("alice's audio to flow again", SOON, || bob.received("alice", AUDIO).frames > audio + 10).await?;
    assert!(node.set_muted("room-5", "nobody", TrackSource::Camera, true).is_err());
    alice.leave().await?;
    bob.leave().await?;
    Ok(())
}

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_refuses_a_join_and_frees_the_seat_on_leave() -> anyhow::Result<()> {
    let mut config = backyard_core::rtc::NodeConfig::new("127.0.0.1:0".parse()?);
    config.room.max_peers = 2;
    let node = backyard_core::rtc::MediaNode::bind(config).await?;
    let alice = Client::join(&node, "room-6", "alice", Source::default()).await?;
    let bob = Client::join(&node, "room-6", "bob", Source::default()).await?;
    let err = node.join("room-6", "carol").err().expect("a third participant is refused");
    assert!(matches!(err, NodeError::Router(RouterError::RoomFull(2))), "{err}");
    // Another room on the same node is unaffected.
    let (_elsewhere, _events) = node.join("room-7", "carol")?;
    bob.leave().await?;
    wait_for("bob's seat to free", SOON, || node.participants("room-6").len() == 1).await?;
    let carol = Client::join(&node, "room-6", "carol", Source::default()).await?;
    wait_for("carol and alice to exchange media", SOON, || {
        gets_from(&carol, "alice", 10) && gets_from(&alice, "carol", 10)
    })
    .await?;
    alice.leave().await?;
    carol.leave().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_put_on_stage_is_asked_for_a_keyframe_even_just_after_a_subscriber_was() -> anyhow::Result<()> {
    let node = node().await;
    let alice = Client::join(&node, "room-stage", "alice", Source::default()).await?;
    // The program takes the room's frames (only then are keyframes asked for it).
    node.set_tap("room-stage", Some(std::sync::Arc::new(|_: &backyard_core::rtc::TapFrame<'_>| {})));
    let bob = Client::join(&node, "room-stage", "bob", Source::default()).await?;
    wait_for("bob to see alice", SOON, || gets_from(&bob, "alice", 5)).await?;
    // Bob's arrival asked alice for a keyframe a moment ago; the program's decoder starting now still needs one.
    let before = alice.stats.lock().keyframes_sent;
    node.request_keyframes("room-stage", "alice");
    wait_for("alice to send a keyframe for the program", SOON, || alice.stats.lock().keyframes_sent > before).await?;
    Ok(())
}
