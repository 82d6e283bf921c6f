//! The plugin platform as operators and hosts meet it: `GET /api/plugins`, destinations checked by their
//! platform's adapter plugin, `[destinations.*]` switches, and bad operator settings stopping start-up with an
//! error that names the plugin and the field.

mod common;

use axum::http::StatusCode;
use backyard::config::Config;
use common::{Backend, TestApp};
use serde_json::json;

both_backends!(
    installed_plugins_are_listed_with_kind_version_and_status,
    destinations_are_checked_by_their_platform_adapter,
    custom_rtmp_refuses_every_spelling_of_a_private_address,
    destination_tests_are_limited_per_account_and_at_once,
    a_destination_s_profile_is_held_to_its_platform_s_limits_and_the_program_s
);

async fn installed_plugins_are_listed_with_kind_version_and_status(b: Backend) {
    let t = TestApp::new(b).await;
    t.get("/api/plugins").send().await.assert_error(StatusCode::UNAUTHORIZED);
    let user = t.user("ops@example.com").await;
    let r = t.get("/api/plugins").cookies(&user).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body.as_array().expect("an array");
    let find = |name: &str| list.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} in {}", r.body));
    for (name, kind) in [
        ("layouts", "layout"),
        ("overlays", "overlay"),
        ("youtube", "destination"),
        ("twitch", "destination"),
        ("facebook", "destination"),
        ("rtmp", "destination"),
    ] {
        let p = find(name);
        assert_eq!(p["kind"], kind, "{p}");
        assert_eq!(p["enabled"], true, "{p}");
        assert_eq!(p["status"], "ok", "{p}");
        assert_eq!(p["api"], "0.1.0", "{p}");
        assert!(p["version"].as_str().is_some_and(|v| !v.is_empty()), "{p}");
        assert!(p["capabilities"]["allowedHosts"].is_array(), "{p}");
        assert!(p["limits"]["callMs"].as_u64().is_some_and(|ms| ms > 0), "{p}");
    }
}

async fn destinations_are_checked_by_their_platform_adapter(b: Backend) {
    let t = TestApp::with(b, |cfg| {
        let mut off = serde_json::Map::new();
        off.insert("enabled".into(), json!(false));
        cfg.destinations.insert("facebook".into(), off);
    })
    .await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let create = |body: serde_json::Value| {
        let t = &t;
        let host = &host;
        let id = &id;
        async move { t.post(&format!("/api/broadcasts/{id}/destinations")).cookies(host).json(body).send().await }
    };
    // The YouTube adapter knows YouTube's key shape and ingest servers.
    let r = create(json!({"platform": "youtube", "streamKey": "not-a-youtube-key"})).await;
    r.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["field"], "streamKey", "{}", r.body);
    let r = create(
        json!({"platform": "youtube", "rtmpUrl": "rtmp://evil.example/live2", "streamKey": "abcd-1234-efgh-5678-ijkl"}),
    )
    .await;
    assert_eq!(r.body["error"]["field"], "rtmpUrl", "{}", r.body);
    let ok = create(json!({"platform": "youtube", "streamKey": "abcd-1234-efgh-5678-ijkl"})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["rtmpUrl"], "rtmps://a.rtmps.youtube.com:443/live2", "the adapter's default server");
    // A patch is checked the same way, against the stored key.
    let dest = ok.body["id"].as_str().unwrap();
    let r = t
        .req(axum::http::Method::PATCH, &format!("/api/broadcasts/{id}/destinations/{dest}"))
        .cookies(&host)
        .json(json!({"rtmpUrl": "rtmp://live.twitch.tv/app"}))
        .send()
        .await;
    assert_eq!(r.body["error"]["field"], "rtmpUrl", "{}", r.body);
    // The operator turned Facebook off: it is not a platform here.
    let r = create(json!({"platform": "facebook", "streamKey": "FB-1234567890-0-AbCdEfGhIjKlMnOp"})).await;
    assert_eq!(r.body["error"]["field"], "platform", "{}", r.body);
    assert!(!r.body["error"]["message"].as_str().unwrap().contains("facebook"), "{}", r.body);
    let listed = t.get("/api/plugins").cookies(&host).send().await;
    let fb = listed.body.as_array().unwrap().iter().find(|p| p["name"] == "facebook").cloned().unwrap();
    assert_eq!((fb["enabled"].clone(), fb["status"].clone()), (json!(false), json!("disabled")));
    // Custom RTMP refuses other schemes.
    let r = create(json!({"platform": "rtmp", "rtmpUrl": "http://example.com/live", "streamKey": "k-123456"})).await;
    assert_eq!(r.body["error"]["field"], "rtmpUrl", "{}", r.body);
}

/// A destination's own encode is checked when it is written: against what the platform accepts (Twitch: at
/// most 6000 kb/s, a keyframe every 2 s) and what this server's program makes (nothing larger than its canvas),
/// each refusal a 422 naming the field. Fields left out take the program's.
async fn a_destination_s_profile_is_held_to_its_platform_s_limits_and_the_program_s(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let path = format!("/api/broadcasts/{id}/destinations");
    let key = "live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123";
    let twitch = |profile: serde_json::Value| json!({"platform": "twitch", "streamKey": key, "profile": profile});
    for (profile, field, says) in [
        (json!({"videoKbps": 12000}), "profile.videoKbps", "Twitch accepts at most 6000 kb/s"),
        (json!({"keyframeIntervalS": 4}), "profile.keyframeIntervalS", "every 2 s"),
        (json!({"width": 1920, "height": 1080}), "profile.width", "at most its canvas's 1280x720"),
        (json!({"width": 640}), "profile.height", "required with width"),
        (json!({"width": 641, "height": 360}), "profile.width", "even"),
        (json!({"fps": 60}), "profile.fps", "the program's 30 fps"),
        (json!({"audioKbps": 320}), "profile.audioKbps", "at most 160 kb/s"),
        (json!({"h264Profile": "extreme"}), "profile.h264Profile", "baseline, main, high"),
    ] {
        let r = t.post(&path).cookies(&host).json(twitch(profile.clone())).send().await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["error"]["field"], field, "{profile}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{profile}: {message}");
    }
    let r = t.post(&path).cookies(&host).json(twitch(json!({"videoKbps": 12000, "bogus": 1}))).send().await;
    assert!(r.status.is_client_error(), "{}", r.body);

    let profile = json!({"width": 1280, "height": 720, "fps": 30, "videoKbps": 4500, "keyframeIntervalS": 2.0, "h264Profile": "main"});
    let ok = t.post(&path).cookies(&host).json(twitch(profile.clone())).send().await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["profile"], profile, "{}", ok.body);
    assert_eq!(
        (ok.body["encode"]["videoKbps"].clone(), ok.body["encode"]["h264Profile"].clone()),
        (json!(4500), json!("main"))
    );
    let dest = ok.body["id"].as_str().unwrap().to_owned();
    let patch = |body: serde_json::Value| {
        let (t, host, path, dest) = (&t, &host, &path, &dest);
        async move { t.req(axum::http::Method::PATCH, &format!("{path}/{dest}")).cookies(host).json(body).send().await }
    };
    let r = patch(json!({"profile": {"videoKbps": 9000}})).await;
    assert_eq!(r.body["error"]["field"], "profile.videoKbps", "a patch is checked the same way: {}", r.body);
    let r = patch(json!({"profile": {"videoKbps": 2500}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["profile"], json!({"videoKbps": 2500}));
    assert_eq!((r.body["encode"]["width"].clone(), r.body["encode"]["videoKbps"].clone()), (json!(1280), json!(2500)));
    // Other changes keep the profile; `null` gives the program's encode back.
    let r = patch(json!({"name": "Main channel"})).await;
    assert_eq!(r.body["profile"], json!({"videoKbps": 2500}), "{}", r.body);
    let r = patch(json!({"profile": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("profile").is_none(), "{}", r.body);
    assert_eq!(r.body["encode"]["videoKbps"], 3000, "the program's: {}", r.body);
    let listed = t.get(&path).cookies(&host).send().await;
    assert_eq!(listed.body[0]["encode"]["fps"], 30, "{}", listed.body);
}

/// Users cannot aim the server at its own network through a custom RTMP destination, however they spell
/// the address: a private one is a 422 on create and on patch, and a stored one that has come to resolve
/// to a private address is never connected to by a destination test, whose reply says no more than that.
async fn custom_rtmp_refuses_every_spelling_of_a_private_address(b: Backend) {
    let t = TestApp::with(b, |cfg| {
        cfg.destinations.remove("rtmp");
    })
    .await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let path = format!("/api/broadcasts/{id}/destinations");
    for url in [
        "rtmp://127.0.0.1/live",
        "rtmp://127.1/live",
        "rtmp://0x7f.0.0.1/live",
        "rtmp://0177.0.0.1/live",
        "rtmp://127.000.000.001/live",
        "rtmp://2130706433/live",
        "rtmp://169.254.43518/live",
        "rtmp://0xa9.0xfe.0xa9.0xfe/live",
        "rtmp://[::1]/live",
        "rtmp://[::ffff:127.0.0.1]/live",
        "rtmp://localhost/live",
        "rtmp://localhost./live",
    ] {
        let r = t
            .post(&path)
            .cookies(&host)
            .json(json!({"platform": "rtmp", "rtmpUrl": url, "streamKey": "k-123456"}))
            .send()
            .await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["error"]["field"], "rtmpUrl", "{url}: {}", r.body);
    }
    let ok = t
        .post(&path)
        .cookies(&host)
        .json(json!({"platform": "rtmp", "rtmpUrl": "rtmp://live.example.com/app", "streamKey": "k-123456"}))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let dest = ok.body["id"].as_str().unwrap().to_owned();
    let r = t
        .req(axum::http::Method::PATCH, &format!("{path}/{dest}"))
        .cookies(&host)
        .json(json!({"rtmpUrl": "rtmp://0x7f.1/app"}))
        .send()
        .await;
    r.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["field"], "rtmpUrl", "{}", r.body);

    // A row that points at loopback already (entered before the rule, or its name now resolves there): the
    // test must not connect, and must read the same for an open port as for a closed one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // The broadcast's only destination (the test's database holds nothing else).
    t.raw.execute(&format!("UPDATE destinations SET rtmp_url = 'rtmp://127.1:{port}/app'")).await;
    let r = t.post(&format!("{path}/{dest}/test")).cookies(&host).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ok"], false, "{}", r.body);
    let text = r.body.to_string();
    assert!(!text.contains(&port.to_string()) && !text.to_lowercase().contains("refused"), "{text}");
    assert!(listener.accept().is_err(), "the destination test connected to loopback");
}

/// A destination test connects and publishes for real, so tests are rationed: per account per minute, and a
/// few at once on the node. Past either limit a 429 says when to come back; nothing piles up.
async fn destination_tests_are_limited_per_account_and_at_once(b: Backend) {
    let t = TestApp::with(b, |cfg| {
        cfg.limits.destination_tests_per_minute = 3;
        cfg.limits.destination_tests_at_once = 1;
    })
    .await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    // A server that accepts and then says nothing: a test of it runs until its own timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let r = t
        .post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "rtmp", "rtmpUrl": format!("rtmp://127.0.0.1:{port}/live"), "streamKey": "k-123456"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let path = format!("/api/broadcasts/{id}/destinations/{}/test", r.body["id"].as_str().unwrap());
    // One running: a second at the same time is turned away at once.
    let running = {
        let (app, path, host) = (t.app.clone(), path.clone(), host.clone());
        tokio::spawn(async move { common::send_with(app, axum::http::Method::POST, &path, &host).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r = t.post(&path).cookies(&host).send().await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "refused without waiting");
    assert!(r.headers.contains_key("retry-after"));
    drop(silent);
    let first = running.await.unwrap();
    assert_eq!(first, StatusCode::OK);
    // Three a minute per account: the two above counted, one more is heard, the next is not.
    assert_eq!(t.post(&path).cookies(&host).send().await.status, StatusCode::OK);
    t.post(&path).cookies(&host).send().await.assert_error(StatusCode::TOO_MANY_REQUESTS);
}

/// Defaults, with a data directory of the test's own (the plugin host keeps its compile cache there).
fn fresh_config() -> Config {
    Config {
        data_dir: std::env::temp_dir().join(format!("backyard-plugins-{}", uuid::Uuid::new_v4())),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_bad_operator_setting_stops_start_up_naming_plugin_and_field() {
    let mut cfg = fresh_config();
    let mut rtmp = serde_json::Map::new();
    rtmp.insert("max-video-kbps".into(), json!("lots"));
    cfg.destinations.insert("rtmp".into(), rtmp);
    let plugins = backyard::plugins::Plugins::new(&cfg).expect("enabled is fine");
    let err = plugins.host().await.expect_err("a string where the schema wants an integer").to_string();
    assert!(err.contains("rtmp") && err.contains("max-video-kbps"), "{err}");

    let _ = std::fs::remove_dir_all(&cfg.data_dir);
    let mut cfg = fresh_config();
    let mut yt = serde_json::Map::new();
    yt.insert("enabled".into(), json!("yes"));
    cfg.destinations.insert("youtube".into(), yt);
    let err = backyard::plugins::Plugins::new(&cfg).err().expect("enabled must be a boolean").to_string();
    assert!(err.contains("youtube") && err.contains("enabled"), "{err}");

    let mut cfg = fresh_config();
    let mut unknown = serde_json::Map::new();
    unknown.insert("enabled".into(), json!(true));
    cfg.destinations.insert("myspace".into(), unknown);
    let err = backyard::plugins::Plugins::new(&cfg).unwrap().host().await.expect_err("no such adapter").to_string();
    assert!(err.contains("myspace"), "{err}");
    let _ = std::fs::remove_dir_all(&cfg.data_dir);
}
