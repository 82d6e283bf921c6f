//! Go live through the REST API to a real nginx-rtmp: the destination test publishes a test pattern, `start`
//! resolves the destination through its adapter plugin and pushes the program (H.264 + AAC) while recording,
//! the room hears `destination-status` and Prometheus shows the output, `end` finalises a playable
//! recording that the recordings API serves.

mod common;
#[path = "../../core/tests/common/mod.rs"]
mod media;

use std::time::Duration;

use axum::http::StatusCode;
use backyard::bus::topic;
use common::{Backend, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_live_pushes_to_nginx_records_and_ends_cleanly() -> anyhow::Result<()> {
    let nginx = media::Nginx::start(media::NginxOptions::default())?;
    let t = TestApp::new(Backend::Sqlite).await;
    let host = t.user("live@example.com").await;
    let id = t.broadcast(&host, "Live show").await;
    let bid: uuid::Uuid = id.parse()?;

    let server = format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port);
    let dest = t
        .post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "rtmp", "name": "Local nginx", "rtmpUrl": server, "streamKey": "show-key"}))
        .send()
        .await;
    assert_eq!(dest.status, StatusCode::CREATED, "{}", dest.body);
    let dest_id = dest.body["id"].as_str().unwrap().to_owned();

    // A real connect and publish of the test pattern.
    let test = t.post(&format!("/api/broadcasts/{id}/destinations/{dest_id}/test")).cookies(&host).send().await;
    assert_eq!(test.body["ok"], true, "{}", test.body);
    assert!(test.body["connection"]["framesSent"].as_u64().unwrap_or(0) > 0, "{}", test.body);
    let published_by_test = nginx.publish_count();
    assert_eq!(published_by_test, 1, "the destination test published once");

    let mut room = t.state.bus.subscribe(&topic::broadcast(bid));
    let started = t.post(&format!("/api/broadcasts/{id}/start")).cookies(&host).send().await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert_eq!(started.body["status"], "live");

    // The room hears the destination go live; the recording's status names no file on the server.
    let live = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "destination-status" && ev.data["kind"] == "recording" {
                assert_eq!(ev.data["target"], "recording", "{}", ev.data);
            }
            if ev.event == "destination-status"
                && ev.data["destinationId"] == dest_id.as_str()
                && ev.data["state"] == "live"
            {
                return ev.data.clone();
            }
        }
    })
    .await
    .expect("destination-status live within 20 s");
    assert!(!live["target"].as_str().unwrap_or_default().contains("show-key"), "the key is redacted: {live}");
    let metrics = t.get("/metrics").send().await;
    let text = String::from_utf8_lossy(&metrics.bytes);
    assert!(
        text.lines().any(|l| l.starts_with("backyard_output_state")
            && l.contains(&dest_id)
            && l.contains("state=\"live\"")
            && l.ends_with(" 1")),
        "metrics show the destination live:\n{text}"
    );

    // The destinations API shows the output's live status too.
    let listed = t.get(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).send().await;
    assert_eq!(listed.body[0]["status"], "live", "{}", listed.body);
    assert!(listed.body[0]["live"]["uptimeSecs"].is_u64(), "{}", listed.body);

    // A ticker scrolls: the director re-renders it as time passes, so the program changes with nothing else
    // moving; hidden again, the picture holds still.
    let still = || async {
        let r = t.get(&format!("/api/broadcasts/{id}/program.jpg")).cookies(&host).send().await;
        assert_eq!(r.status, StatusCode::OK);
        r.bytes
    };
    // Shows or hides the ticker, lets the director catch up, then takes two stills 600 ms apart.
    let two_stills = |visible: bool| {
        let (t, host, id, still) = (&t, &host, &id, &still);
        async move {
            let scene = json!({"layout": "grid", "overlays": {"ticker": {"visible": visible, "text": "Breaking: the ticker scrolls"}}});
            let put = t
                .req(axum::http::Method::PUT, &format!("/api/broadcasts/{id}/scene"))
                .cookies(host)
                .json(scene)
                .send()
                .await;
            assert_eq!(put.status, StatusCode::OK, "{}", put.body);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let first = still().await;
            tokio::time::sleep(Duration::from_millis(600)).await;
            (first, still().await)
        }
    };
    let (a, b) = two_stills(true).await;
    assert_ne!(a, b, "the ticker moved between two stills");
    let (c, d) = two_stills(false).await;
    assert_eq!(c, d, "with the ticker hidden the program holds still");

    // A few seconds on air, then end: flushed, closed, recording finalised.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ended = t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(nginx.publish_count(), published_by_test + 1, "exactly one publish while live");

    // What nginx received: H.264 + AAC at the configured size, ~30 fps.
    let received = nginx.recordings().into_iter().max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let received = received.expect("nginx recorded the stream");
    let probe = media::probe(&received)?;
    assert_eq!((probe.video_codec.as_str(), probe.audio_codec.as_str()), ("h264", "aac"));
    assert_eq!((probe.width, probe.height), (1280, 720));
    assert!((probe.fps() - 30.0).abs() < 3.0, "fps {}", probe.fps());

    let recs = t.get("/api/recordings").cookies(&host).send().await;
    let rec = &recs.body["items"][0];
    assert_eq!(rec["status"], "ready", "{}", recs.body);
    assert!(rec["duration"].as_f64().unwrap_or(0.0) > 2.0, "{}", recs.body);
    let file = t.get(&format!("/api/recordings/{}/file", rec["id"].as_str().unwrap())).cookies(&host).send().await;
    assert_eq!(file.status, StatusCode::OK);
    let path = std::env::temp_dir().join(format!("backyard-rec-{}.mp4", uuid::Uuid::new_v4()));
    std::fs::write(&path, &file.bytes)?;
    let recorded = media::probe(&path);
    let _ = std::fs::remove_file(&path);
    let recorded = recorded?;
    assert_eq!((recorded.video_codec.as_str(), recorded.audio_codec.as_str()), ("h264", "aac"));
    assert!(recorded.duration > 2.0, "recorded {} s", recorded.duration);
    Ok(())
}

/// Starts broadcast `id` as `host` and returns the encodes the first `program-status` that lists any says run.
async fn go_live_and_read_encodes(t: &TestApp, host: &common::Cookies, id: &str) -> serde_json::Value {
    let bid: uuid::Uuid = id.parse().expect("a broadcast id");
    let mut room = t.state.bus.subscribe(&topic::broadcast(bid));
    let started = t.post(&format!("/api/broadcasts/{id}/start")).cookies(host).send().await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ev = room.recv().await.expect("room events");
            if ev.event == "program-status" && ev.data["stats"]["encodes"].as_array().is_some_and(|e| !e.is_empty()) {
                return ev.data["stats"]["encodes"].clone();
            }
        }
    })
    .await
    .expect("program-status lists the encodes within 20 s")
}

/// Destinations asking for their own encode get it: each receives its own size, frame rate and bitrate, the
/// program's `program-status` lists one encode per distinct setting, and the recording keeps the program's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_destination_goes_out_with_its_own_profile_and_equal_ones_share_an_encode() -> anyhow::Result<()> {
    let nginx = media::Nginx::start(media::NginxOptions::default())?;
    let t = TestApp::new(Backend::Sqlite).await;
    let host = t.user("profiles@example.com").await;
    let id = t.broadcast(&host, "Profiles").await;
    let server = format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port);
    // (name, key, profile, expected size, fps, video kb/s)
    let wanted = [
        ("Program", "key-program", json!(null), (1280, 720), 30.0, 3000.0),
        ("Also program", "key-also", json!({"videoKbps": 3000}), (1280, 720), 30.0, 3000.0),
        ("Lean", "key-lean", json!({"videoKbps": 1200}), (1280, 720), 30.0, 1200.0),
        (
            "Small",
            "key-small",
            json!({"width": 640, "height": 360, "fps": 15, "videoKbps": 600}),
            (640, 360),
            15.0,
            600.0,
        ),
    ];
    for (name, key, profile, ..) in &wanted {
        let mut body = json!({"platform": "rtmp", "name": name, "rtmpUrl": server, "streamKey": key});
        if !profile.is_null() {
            body["profile"] = profile.clone();
        }
        let r = t.post(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).json(body).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    let encodes = go_live_and_read_encodes(&t, &host, &id).await;
    let encodes = encodes.as_array().expect("an array");
    assert_eq!(encodes.len(), 3, "three distinct settings, three encodes: {encodes:?}");
    assert_eq!(encodes[0]["outputs"].as_array().map(Vec::len), Some(3), "recording + two destinations: {encodes:?}");
    assert_eq!(encodes[2]["settings"]["width"], 640, "{encodes:?}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ended = t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);

    for (name, key, _, size, fps, kbps) in wanted {
        let files = nginx.recordings_of(key);
        assert_eq!(files.len(), 1, "{name}: one publish: {files:?}");
        let p = media::probe(&files[0])?;
        println!("{name}: {}x{} {:.1} fps {:.0} kb/s", p.width, p.height, p.fps(), p.video_kbps());
        assert_eq!((p.width, p.height), size, "{name}");
        assert!((p.fps() - fps).abs() < 3.0, "{name}: {} fps", p.fps());
        // The program's own picture is mostly still: x264 may spend less than the target, never much more.
        assert!(p.video_kbps() < kbps * 1.35, "{name}: {:.0} kb/s for a {kbps} kb/s profile", p.video_kbps());
    }
    let recs = t.get("/api/recordings").cookies(&host).send().await;
    assert_eq!(recs.body["items"][0]["status"], "ready", "{}", recs.body);
    Ok(())
}

/// A show in two formats: the scene adds a 9:16 canvas beside the program's 16:9 one, a destination chooses it by
/// id (an unknown canvas, or a profile larger than the canvas, is refused naming the field), the program encodes
/// once per canvas and profile, each destination receives its own canvas's size, and `program.jpg` shows either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertical_canvas_goes_to_the_destinations_that_chose_it() -> anyhow::Result<()> {
    use axum::http::Method;
    let nginx = media::Nginx::start(media::NginxOptions::default())?;
    let t = TestApp::new(Backend::Sqlite).await;
    let host = t.user("canvases@example.com").await;
    let id = t.broadcast(&host, "Two formats").await;
    let scene_url = format!("/api/broadcasts/{id}/scene");
    let put_scene = |scene: serde_json::Value| t.req(Method::PUT, &scene_url).cookies(&host).json(scene).send();
    let vertical = json!({"id": "vertical", "width": 360, "height": 640, "layout": "grid"});
    for (canvas, field) in [
        (json!({"id": "main", "width": 360, "height": 640}), "canvases[0].id"),
        (json!({"id": "Tall!", "width": 360, "height": 640}), "canvases[0].id"),
        (json!({"id": "tall", "width": 361, "height": 640}), "canvases[0].width"),
        (json!({"id": "tall", "width": 360, "height": 8000}), "canvases[0].height"),
        (json!({"id": "tall", "width": 360, "height": 640, "layout": "disco"}), "canvases[0].layout"),
    ] {
        let r = put_scene(json!({"canvases": [canvas]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{}", r.body);
    }
    let r = put_scene(json!({"canvases": [vertical, {"id": "vertical", "width": 720, "height": 1280}]})).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("canvases[1].id"))
    );
    let r = put_scene(json!({"canvases": [vertical]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let server = format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port);
    let destinations = t.post(&format!("/api/broadcasts/{id}/destinations"));
    let r = destinations
        .cookies(&host)
        .json(json!({"platform": "rtmp", "rtmpUrl": server, "streamKey": "key-x", "canvas": "square"}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("canvas")),
        "{}",
        r.body
    );
    let too_large = json!({"platform": "rtmp", "rtmpUrl": server, "streamKey": "key-x", "canvas": "vertical",
        "profile": {"width": 720, "height": 1280}});
    let r = t.post(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).json(too_large).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "profile.width", "{}", r.body);
    // (name, key, canvas, profile, size received)
    let wanted = [
        ("Wide", "key-wide", json!(null), json!(null), (1280, 720)),
        ("Wide lean", "key-lean", json!("main"), json!({"videoKbps": 1200}), (1280, 720)),
        ("Tall", "key-tall", json!("vertical"), json!(null), (360, 640)),
    ];
    for (name, key, canvas, profile, size) in &wanted {
        let mut body = json!({"platform": "rtmp", "name": name, "rtmpUrl": server, "streamKey": key});
        if !canvas.is_null() {
            body["canvas"] = canvas.clone();
        }
        if !profile.is_null() {
            body["profile"] = profile.clone();
        }
        let r = t.post(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).json(body).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["canvas"], canvas.as_str().unwrap_or("main"), "{}", r.body);
        assert_eq!(
            (r.body["encode"]["width"].as_u64(), r.body["encode"]["height"].as_u64()),
            (Some(u64::from(size.0)), Some(u64::from(size.1))),
            "{name}: {}",
            r.body
        );
    }

    let encodes = go_live_and_read_encodes(&t, &host, &id).await;
    let summary: Vec<_> = encodes
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| (e["canvas"].as_u64(), e["settings"]["width"].as_u64(), e["settings"]["height"].as_u64()))
        .collect();
    assert_eq!(
        summary,
        [(Some(0), Some(1280), Some(720)), (Some(0), Some(1280), Some(720)), (Some(1), Some(360), Some(640))],
        "two landscape encodes and one vertical: {encodes}"
    );
    for (canvas, status) in [
        ("", StatusCode::OK),
        ("?canvas=vertical", StatusCode::OK),
        ("?canvas=square", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = t.get(&format!("/api/broadcasts/{id}/program.jpg{canvas}")).cookies(&host).send().await;
        assert_eq!(r.status, status, "program.jpg{canvas}: {}", r.body);
    }
    // Destinations stream the canvases by their places: none is taken away or moved while live; one more may come.
    let r = put_scene(json!({"layout": "solo"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "canvases[0]", "{}", r.body);
    let r = put_scene(json!({"canvases": [vertical, {"id": "square", "width": 720, "height": 720}]})).await;
    assert_eq!(r.status, StatusCode::OK, "one more canvas while live: {}", r.body);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = t.get(&format!("/api/broadcasts/{id}/program.jpg?canvas=square")).cookies(&host).send().await;
    assert_eq!(r.status, StatusCode::OK, "the canvas added while live is composed: {}", r.body);
    let ended = t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    for (name, key, _, _, size) in wanted {
        let files = nginx.recordings_of(key);
        assert_eq!(files.len(), 1, "{name}: one publish: {files:?}");
        let p = media::probe(&files[0])?;
        println!("{name}: {}x{} {:.1} fps {:.0} kb/s", p.width, p.height, p.fps(), p.video_kbps());
        assert_eq!((p.width, p.height), size, "{name}");
    }
    Ok(())
}

/// A server killed while live: on the next start the broadcast is ended and the recording (fragmented MP4,
/// cut off mid-write) is finalised from its file with its real duration.
#[tokio::test]
async fn a_restart_finalises_interrupted_recordings_and_ends_orphaned_broadcasts() -> anyhow::Result<()> {
    let t = TestApp::new(Backend::Sqlite).await;
    let host = t.user("crash@example.com").await;
    let id = t.broadcast(&host, "Crashed show").await;
    let bid: uuid::Uuid = id.parse()?;
    let owner = t.state.store.broadcast(bid).await?.expect("the broadcast").user_id;
    t.state
        .store
        .set_broadcast_status(bid, backyard::store::BroadcastStatus::Live, Some(time::OffsetDateTime::now_utc()), None)
        .await?;
    let rec = t.state.store.create_recording(bid, owner, "Crashed show", 0, "").await?;
    let lost = t.state.store.create_recording(bid, owner, "Nothing written", 0, "").await?;
    // What the recorder leaves behind when killed: 5 s of fragmented MP4 with the last fragment cut short.
    let path = backyard::program::recording_path(&t.state.cfg, rec.id);
    std::fs::create_dir_all(path.parent().unwrap())?;
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=5", "-f", "lavfi", "-i"])
        .args(["sine=d=5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac"])
        .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"])
        .arg(&path)
        .output()?;
    anyhow::ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let len = std::fs::metadata(&path)?.len();
    std::fs::OpenOptions::new().write(true).open(&path)?.set_len(len - 2000)?;

    backyard::program::recover_after_restart(&t.state).await?;

    let b = t.get(&format!("/api/broadcasts/{id}")).cookies(&host).send().await;
    assert_eq!(b.body["status"], "ended", "{}", b.body);
    let got = t.get(&format!("/api/recordings/{}", rec.id)).cookies(&host).send().await;
    assert_eq!(got.body["status"], "ready", "{}", got.body);
    let duration = got.body["duration"].as_f64().unwrap_or(0.0);
    assert!((3.5..=5.5).contains(&duration), "duration {duration}: {}", got.body);
    assert_eq!(got.body["fileSize"].as_i64(), Some((len - 2000) as i64), "{}", got.body);
    let failed = t.get(&format!("/api/recordings/{}", lost.id)).cookies(&host).send().await;
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    Ok(())
}
