//! The RTMP ingest against real peers: ffmpeg publishes with OBS's x264 defaults (High profile, B-frames,
//! 2 s keyframes, AAC 48 kHz) and real nginx-rtmp servers are the destinations. A relay broadcast copies the
//! encoder's packets (no re-encode: same parameter sets, same packet bytes), a destination that dies comes back
//! without disturbing the others, and every kind of bad client is turned away without touching the show.

mod common;
#[path = "../../core/tests/common/mod.rs"]
mod media;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use backyard::bus::topic;
use common::rtmp::{closed_by_server, exits_within, obs_like_clip, publish, stderr_of};
use common::{Backend, TestApp};
use serde_json::json;

/// ffprobe's hash of every packet of one kind, and of the stream's codec configuration.
fn packet_hashes(path: &Path, stream: &str) -> (String, Vec<String>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_data_hash", "sha256"])
        .args(["-show_entries", "stream=extradata_hash:packet=data_hash", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe writes JSON");
    let hash = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let config = hash(&json["streams"][0], "extradata_hash");
    let packets =
        json["packets"].as_array().map(|p| p.iter().map(|p| hash(p, "data_hash")).collect()).unwrap_or_default();
    (config, packets)
}

async fn app_with_ingest() -> (TestApp, SocketAddr) {
    let t = TestApp::with(Backend::Sqlite, |cfg| cfg.ingest.rtmp_bind = Some("127.0.0.1:0".into())).await;
    let addr = backyard::ingest::start(&t.state).await.expect("ingest starts").expect("ingest on");
    (t, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_copies_the_encoders_packets_to_every_destination_and_survives_one_dying() -> anyhow::Result<()> {
    let dir = media::TempDir::new("relay")?;
    let clip = obs_like_clip(dir.path(), 24);
    let mut nginx: Vec<media::Nginx> =
        (0..3).map(|_| media::Nginx::start(media::NginxOptions::default())).collect::<Result<_, _>>()?;
    let (t, addr) = app_with_ingest().await;
    let host = t.user("relay@example.com").await;
    let id = t.broadcast(&host, "Relay show").await;
    let bid: uuid::Uuid = id.parse()?;
    let open = t
        .req(axum::http::Method::PATCH, &format!("/api/broadcasts/{id}"))
        .cookies(&host)
        .json(json!({"settings": {"watch": "unlisted"}}))
        .send()
        .await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.body);
    for (i, n) in nginx.iter().enumerate() {
        let server = format!("rtmp://127.0.0.1:{}/live", n.rtmp_port);
        let r = t
            .post(&format!("/api/broadcasts/{id}/destinations"))
            .cookies(&host)
            .json(json!({"platform": "rtmp", "name": format!("nginx {i}"), "rtmpUrl": server, "streamKey": format!("dest{i}")}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    // The key: whole once, masked in the list, with the URL an encoder needs.
    let created = t
        .post(&format!("/api/broadcasts/{id}/ingest-keys"))
        .cookies(&host)
        .json(json!({"label": "OBS on the desk"}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["mode"], "relay");
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    let listed = t.get(&format!("/api/broadcasts/{id}/ingest-keys")).cookies(&host).send().await;
    assert_eq!(listed.body["rtmpUrl"], format!("rtmp://studio.test:{}/live", addr.port()), "{}", listed.body);
    let masked = listed.body["items"][0]["key"].as_str().unwrap();
    assert!(!masked.contains(&key[..8]) && masked.ends_with(&key[key.len() - 4..]), "{masked}");
    let revealed = t.post(&format!("/api/broadcasts/{id}/ingest-keys/{key_id}/reveal")).cookies(&host).send().await;
    assert_eq!(revealed.body["key"], key.as_str());

    let mut room = t.state.bus.subscribe(&topic::broadcast(bid));
    let encoder = publish(&clip, &format!("rtmp://{addr}/live/{key}"));
    let live = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "broadcast-started" {
                return;
            }
        }
    })
    .await;
    assert!(live.is_ok(), "the broadcast went live when the encoder published");
    let status = t.get(&format!("/api/broadcasts/{id}/ingest-keys")).cookies(&host).send().await;
    assert_eq!(status.body["items"][0]["status"]["state"], "live", "{}", status.body);
    assert_eq!(status.body["items"][0]["status"]["stream"], "1280×720 H.264 (High), AAC 48 kHz stereo");

    // Viewers: the show is open to them, and the relay cuts the encoder's own packets into HLS and FLV too.
    let since_live = Instant::now();
    let hls = viewer_hls(&t, &id, dir.path()).await;
    let (hls_config, hls_packets) = packet_hashes(&hls, "v:0");
    let flv = t.read_flv(&format!("/api/watch/{id}/live.flv"), 600_000).await;
    assert_eq!(&flv[..3], b"FLV", "not an FLV stream");
    let flv_file = dir.path().join("viewer.flv");
    std::fs::write(&flv_file, &flv)?;
    let (flv_config, flv_packets) = packet_hashes(&flv_file, "v:0");

    // One destination dies for 10 s and comes back.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(since_live.elapsed())).await;
    nginx[1].kill();
    tokio::time::sleep(Duration::from_secs(10)).await;
    nginx[1].restart()?;
    let (ok, err) = tokio::task::spawn_blocking(move || stderr_of(encoder)).await?;
    assert!(ok, "the encoder published to the end: {err}");
    let ended = t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["status"], "ended");
    let after = t.get(&format!("/api/watch/{id}")).send().await;
    assert!(after.body["hls"].is_null(), "the stream goes with the show: {}", after.body);
    t.get(&format!("/api/watch/{id}/hls/index.m3u8")).send().await.assert_error(StatusCode::NOT_FOUND);

    // Every destination got the encoder's own parameter sets and packet bytes.
    let (src_config, src_packets) = packet_hashes(&clip, "v:0");
    let (src_audio_config, src_audio) = packet_hashes(&clip, "a:0");
    let src: HashSet<&String> = src_packets.iter().collect();
    let src_audio: HashSet<&String> = src_audio.iter().collect();
    for (what, config, packets) in [("HLS", hls_config, hls_packets), ("FLV", flv_config, flv_packets)] {
        assert_eq!(config, src_config, "{what}: the encoder's SPS/PPS, unchanged");
        assert!(packets.len() >= 30, "{what}: {} frames", packets.len());
        assert!(packets.iter().all(|p| src.contains(p)), "{what}: every video packet is one the encoder sent");
    }
    for (i, n) in nginx.iter().enumerate() {
        let files = n.recordings();
        assert!(!files.is_empty(), "nginx {i} received the stream");
        let mut received = 0;
        for f in &files {
            let (config, packets) = packet_hashes(f, "v:0");
            assert_eq!(config, src_config, "nginx {i}: the encoder's SPS/PPS, unchanged");
            assert!(packets.iter().all(|p| src.contains(p)), "nginx {i}: every video packet is one the encoder sent");
            let (audio_config, audio) = packet_hashes(f, "a:0");
            assert_eq!(audio_config, src_audio_config, "nginx {i}: the encoder's AAC configuration");
            assert!(audio.iter().all(|p| src_audio.contains(p)), "nginx {i}: every audio packet is the encoder's");
            received += packets.len();
        }
        if i == 1 {
            assert_eq!(n.publish_count(), 2, "the dead destination was published to again when it came back");
            assert!(received > 150, "nginx 1 got the stream before and after its outage ({received} frames)");
        } else {
            assert_eq!(n.publish_count(), 1, "nginx {i} was never disturbed");
            let probe = media::probe(&files[0])?;
            assert!(probe.max_video_gap() < 0.2, "nginx {i}: no gap ({:.3} s)", probe.max_video_gap());
            assert!(received >= 600, "nginx {i} got about the whole clip ({received} of 720 frames)");
            assert_eq!((probe.width, probe.height), (1280, 720));
        }
    }

    // The relay recorded too.
    let recs = t.get("/api/recordings").cookies(&host).send().await;
    let rec = recs.body["items"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["broadcastId"] == id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(rec["status"], "ready", "{}", recs.body);
    assert!(rec["duration"].as_f64().unwrap_or(0.0) > 15.0, "{rec}");
    Ok(())
}

/// The watch page's HLS stream of a live show: waits for a media segment and returns the init segment and it
/// as one fragmented MP4 file.
async fn viewer_hls(t: &TestApp, id: &str, dir: &Path) -> PathBuf {
    let mut segment = None;
    for _ in 0..100 {
        let info = t.get(&format!("/api/watch/{id}")).send().await;
        if let Some(url) = info.body["hls"].as_str() {
            let r = t.get(url).send().await;
            let playlist = String::from_utf8_lossy(&r.bytes).into_owned();
            segment = playlist.lines().find(|l| l.ends_with(".m4s")).map(str::to_owned);
            if segment.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let segment = segment.expect("a media segment within 10 s of going live");
    let init = t.get(&format!("/api/watch/{id}/hls/init.mp4")).send().await;
    let media = t.get(&format!("/api/watch/{id}/hls/{segment}")).send().await;
    assert_eq!((init.status, media.status), (StatusCode::OK, StatusCode::OK));
    let path = dir.join("viewer.mp4");
    std::fs::write(&path, [&init.bytes[..], &media.bytes[..]].concat()).expect("write the viewer's file");
    path
}

/// Opens a raw TCP connection to the ingest.
fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the ingest");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Completes an RTMP handshake by hand (C0+C1, read S0+S1+S2, send C2).
fn handshake(addr: SocketAddr) -> TcpStream {
    let mut s = raw(addr);
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    s.write_all(&c0c1).unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s0s1s2).unwrap();
    s.write_all(&s0s1s2[1..1537]).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishers_are_turned_away_and_the_show_goes_on() -> anyhow::Result<()> {
    let dir = media::TempDir::new("ingest-bad")?;
    let clip = obs_like_clip(dir.path(), 40);
    let nginx = media::Nginx::start(media::NginxOptions::default())?;
    let (t, addr) = app_with_ingest().await;
    let host = t.user("bad-ingest@example.com").await;
    let id = t.broadcast(&host, "Robust show").await;
    let bid: uuid::Uuid = id.parse()?;
    let server = format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port);
    let r = t
        .post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "rtmp", "name": "nginx", "rtmpUrl": server, "streamKey": "dest"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created =
        t.post(&format!("/api/broadcasts/{id}/ingest-keys")).cookies(&host).json(json!({"label": "OBS"})).send().await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let url = format!("rtmp://{addr}/live/{key}");

    // A wrong key is refused with an RTMP error, and nothing goes live.
    let (ok, err) = stderr_of(publish(&clip, &format!("rtmp://{addr}/live/by_not-a-key")));
    assert!(!ok, "a wrong key cannot publish");
    assert!(!err.is_empty(), "ffmpeg says why");

    // A slow client that never finishes its handshake is dropped; so is garbage; the show is unaffected.
    let mut slow = raw(addr);
    slow.write_all(&[3])?;

    let mut room = t.state.bus.subscribe(&topic::broadcast(bid));
    let first = publish(&clip, &url);
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if room.recv().await.expect("room events").event == "broadcast-started" {
                return;
            }
        }
    })
    .await
    .expect("live");

    // A second encoder on the same key is refused while the first sends.
    let (ok, _) = stderr_of(publish(&clip, &url));
    assert!(!ok, "a second publisher is refused while the first is live");

    // Garbage instead of a handshake; an absurd chunk size; malformed AMF: each connection closed.
    let mut garbage = raw(addr);
    garbage.write_all(&[0x16; 4000])?;
    assert!(closed_by_server(&mut garbage), "garbage is dropped");
    let mut chunky = handshake(addr);
    chunky.write_all(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff])?;
    assert!(closed_by_server(&mut chunky), "an absurd chunk size is dropped");
    let mut amf = handshake(addr);
    amf.write_all(&[0x03, 0, 0, 0, 0, 0, 6, 20, 0, 0, 0, 0, 0x02, 0xff, 0xff, b'c', 0x0b, 0x0b])?;
    assert!(closed_by_server(&mut amf), "malformed AMF is dropped");
    let started = Instant::now();
    assert!(closed_by_server(&mut slow), "a handshake that never finishes is dropped");
    assert!(started.elapsed() < Duration::from_secs(12));

    // The encoder's connection drops (killed): it gets back in at once, and the relay's outputs go on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(first);
    let back = Instant::now();
    let second = publish(&clip, &url);
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "ingest-status" && ev.data["state"] == "live" && ev.data["stream"].is_string() {
                return;
            }
        }
    })
    .await;
    assert!(again.is_ok(), "the reconnecting encoder got back in within 5 s");
    let took = back.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Revoking the key disconnects the encoder.
    let keys = t.get(&format!("/api/broadcasts/{id}/ingest-keys")).cookies(&host).send().await;
    let key_id = keys.body["items"][0]["id"].as_str().unwrap().to_owned();
    let del = t
        .req(axum::http::Method::DELETE, &format!("/api/broadcasts/{id}/ingest-keys/{key_id}"))
        .cookies(&host)
        .send()
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(
        tokio::task::spawn_blocking(move || exits_within(second, Duration::from_secs(10))).await?,
        "revoked: disconnected"
    );
    let (ok, _) = stderr_of(publish(&clip, &url));
    assert!(!ok, "a revoked key cannot publish");

    let ended = t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    // One publish to nginx for the whole show: the reconnect went on in the same outputs.
    assert_eq!(nginx.publish_count(), 1, "{}", nginx.log());
    let probe = media::probe(&nginx.recordings()[0])?;
    assert!(probe.max_video_gap() < took.as_secs_f64() + 1.0, "gap {:.2} s", probe.max_video_gap());
    Ok(())
}

/// Publishes `key` with the harness's RTMP client and sends `video` tag bodies; Ok when the server then ends
/// the connection. For what ffmpeg on this machine cannot send (HEVC over Enhanced RTMP).
fn publish_tags(addr: SocketAddr, key: &str, video: &[&[u8]]) -> std::io::Result<()> {
    let mut publisher = common::rtmp::Publisher::connect(addr, "live", key)?;
    for (i, tag) in video.iter().enumerate() {
        publisher.video(i as u32 * 33, tag)?;
    }
    if publisher.closed_by_server() { Ok(()) } else { Err(std::io::ErrorKind::TimedOut.into()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_is_refused_with_a_message_the_studio_shows() -> anyhow::Result<()> {
    let (t, addr) = app_with_ingest().await;
    let host = t.user("hevc@example.com").await;
    let id = t.broadcast(&host, "HEVC show").await;
    let bid: uuid::Uuid = id.parse()?;
    let created =
        t.post(&format!("/api/broadcasts/{id}/ingest-keys")).cookies(&host).json(json!({"label": "x265"})).send().await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let mut room = t.state.bus.subscribe(&topic::broadcast(bid));
    // What OBS sends for HEVC: an Enhanced RTMP sequence start (keyframe, packet type 0) with FourCC `hvc1`.
    let sequence_start: &[u8] = b"\x90hvc1\x01\x01\x60\x00\x00\x00";
    let sent = tokio::task::spawn_blocking(move || publish_tags(addr, &key, &[sequence_start])).await?;
    assert!(sent.is_ok(), "the server ended the HEVC publish: {sent:?}");
    let message = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "ingest-status" && ev.data["state"] == "error" {
                return ev.data["message"].as_str().unwrap_or_default().to_owned();
            }
        }
    })
    .await?;
    assert!(message.contains("HEVC") && message.contains("H.264"), "{message}");
    let listed = t.get(&format!("/api/broadcasts/{id}/ingest-keys")).cookies(&host).send().await;
    assert_eq!(listed.body["items"][0]["status"]["state"], "error", "{}", listed.body);
    let b = t.get(&format!("/api/broadcasts/{id}")).cookies(&host).send().await;
    assert_ne!(b.body["status"], "live", "nothing went live");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_with_b_frames_is_a_participant_the_studio_receives_over_webrtc() -> anyhow::Result<()> {
    let dir = media::TempDir::new("source")?;
    let clip = obs_like_clip(dir.path(), 30);
    let (t, addr) = app_with_ingest().await;
    let host = t.user("source@example.com").await;
    let id = t.broadcast(&host, "Source show").await;
    let bid: uuid::Uuid = id.parse()?;
    let created = t
        .post(&format!("/api/broadcasts/{id}/ingest-keys"))
        .cookies(&host)
        .json(json!({"label": "OBS on the desk", "mode": "source"}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (key_id, key) =
        (created.body["id"].as_str().unwrap().to_owned(), created.body["key"].as_str().unwrap().to_owned());
    let mut room = t.state.bus.subscribe(&topic::broadcast(bid));

    // A studio in the room, receiving over WebRTC (a str0m client behind the node's own session API).
    let hub = backyard::signaling::Hub::get(&t.state).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut studio = common::rtc::StudioClient::join(&hub.media, &id, "studio").await?;

    let encoder = publish(&clip, &format!("rtmp://{addr}/live/{key}"));
    let participant = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "participant-joined" {
                return ev.data["participant"].clone();
            }
        }
    })
    .await?;
    assert_eq!(participant["name"], "OBS on the desk");
    let pid = participant["id"].as_str().unwrap().to_owned();

    // Its video and audio reach the studio: H.264 without B-frames (transcoded from the encoder's), Opus.
    let mut decoder = backyard_core::compositor::VideoDecoder::new(backyard_core::compositor::VideoCodec::H264)?;
    let (mut pictures, mut opus, mut size) = (0, 0, (0, 0));
    let deadline = Instant::now() + Duration::from_secs(25);
    while pictures < 60 || opus < 100 {
        anyhow::ensure!(Instant::now() < deadline, "the studio decoded {pictures} pictures and {opus} Opus frames");
        let (wake, media) = studio.poll().await?;
        for (_, d) in media.into_iter().filter(|(stream, _)| *stream == pid) {
            match d.params.spec().codec {
                str0m::format::Codec::H264 => match decoder.decode(&d.data) {
                    Ok(decoded) => {
                        for p in decoded {
                            pictures += 1;
                            size = (p.width(), p.height());
                        }
                    }
                    // A decoder that joined between keyframes has nothing to start from until the next one.
                    Err(e) if pictures == 0 => {
                        eprintln!("before the first picture: {e} (keyframe: {})", d.is_keyframe())
                    }
                    Err(e) => anyhow::bail!("a frame after {pictures} pictures does not decode: {e}"),
                },
                str0m::format::Codec::Opus => opus += 1,
                other => anyhow::bail!("unexpected codec {other:?}"),
            }
        }
        let wait = wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(20));
        studio.endpoint.receive(wait).await?;
    }
    assert_eq!(size, (1280, 720), "the encoder's picture size");
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "ingest-status" && ev.data["stream"].as_str().is_some_and(|s| s.contains("transcoded")) {
                return ev.data["stream"].as_str().unwrap().to_owned();
            }
        }
    })
    .await?;
    assert!(
        status.starts_with("1280×720 H.264 (High), AAC 48 kHz stereo · B-frames: transcoded for the studio ("),
        "{status}"
    );

    // Revoking the key ends the encoder's connection and the participant leaves.
    let r = t
        .req(axum::http::Method::DELETE, &format!("/api/broadcasts/{id}/ingest-keys/{key_id}"))
        .cookies(&host)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "participant-left" {
                return ev.data["participantId"].as_str().unwrap_or_default().to_owned();
            }
        }
    })
    .await?;
    assert_eq!(left, pid);
    assert!(exits_within(encoder, Duration::from_secs(10)), "the encoder was disconnected");
    Ok(())
}
