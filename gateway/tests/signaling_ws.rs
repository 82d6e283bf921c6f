//! `GET /ws` over a real socket: a backyard on loopback, a host and guests as WebSocket clients, and str0m
//! clients for the WebRTC offer. Checks the room rules and that bad input gets an `error` event while the
//! room keeps working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backyard::AppState;
use backyard::config::Config;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::Rtc;
use str0m::media::{Direction, MediaKind};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

mod common;
use common::rtc::Endpoint;
use common::ws::{self, Socket, expect, expect_within, send, whip};

struct Server {
    addr: SocketAddr,
    state: AppState,
}

async fn server() -> anyhow::Result<Server> {
    server_with(|_| {}).await
}

async fn server_with(tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut cfg = Config {
        public_url: format!("http://{addr}"),
        data_dir: std::env::temp_dir().join(format!("backyard-signaling-{}", Uuid::new_v4())),
        ..Config::default()
    };
    cfg.server.bind = addr;
    cfg.limits.max_participants = 3;
    tweak(&mut cfg);
    cfg.ensure_secrets()?;
    let state = AppState::new(cfg).await?;
    let app = backyard::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // As the real server's listener does: no Nagle, so small signaling frames are not held back.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Server { addr, state })
}

/// A host account with a broadcast; returns (bearer token, user id, broadcast id).
async fn host(s: &Server, email: &str) -> anyhow::Result<(String, Uuid, Uuid)> {
    let user = s.state.store.create_user(email, "not-a-real-hash", "Hosty", false).await?;
    let sid = s.state.tokens.create_session(user.id).await?;
    let b = s.state.store.create_broadcast(user.id, "Friday show", "", json!({})).await?;
    Ok((s.state.jwt.issue(user.id, sid), user.id, b.id))
}

/// A guest session for the broadcast; returns the cookie value.
async fn guest(s: &Server, broadcast: Uuid, host: Uuid, name: &str, role: &str) -> anyhow::Result<String> {
    let role = backyard::store::Role::parse(role).expect("a role");
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let invite =
        s.state.store.create_invite(broadcast, &format!("inv-{}", Uuid::new_v4()), role, host, expires).await?;
    let raw = format!("guest-{}", Uuid::new_v4());
    s.state.store.create_guest_session(&backyard::auth::tokens::hash_token(&raw), &invite, name, expires).await?;
    Ok(raw)
}

enum Cred<'a> {
    Bearer(&'a str),
    Guest(&'a str),
}

async fn connect(s: &Server, cred: Cred<'_>) -> anyhow::Result<Socket> {
    match cred {
        Cred::Bearer(t) => ws::connect(&s.addr.to_string(), "authorization", &format!("Bearer {t}")).await,
        Cred::Guest(t) => ws::connect(&s.addr.to_string(), "cookie", &format!("by_guest={t}")).await,
    }
}

/// Sends `event` and expects an `error` with `code` naming that event.
async fn expect_error(ws: &mut Socket, event: &str, data: Value, code: &str) -> anyhow::Result<Value> {
    send(ws, event, data).await?;
    let e = expect(ws, "error").await?;
    assert_eq!(e["code"], code, "{event}: {e}");
    Ok(e)
}

fn str0m_offer() -> anyhow::Result<String> {
    let mut rtc =
        Rtc::builder().set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags())).build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:50000".parse()?, "udp")?);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    Ok(api.apply().context("an offer")?.0.to_sdp_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_upgrade_is_refused() -> anyhow::Result<()> {
    let s = server().await?;
    let req = format!("ws://{}/ws", s.addr).into_client_request()?;
    let err = tokio_tungstenite::connect_async(req).await.err().context("must fail")?;
    assert!(err.to_string().contains("401"), "{err}");
    let err = connect(&s, Cred::Guest("forged")).await.err().context("must fail")?;
    assert!(err.to_string().contains("401"), "{err}");
    // Signed in, but from another site: the same check as the REST API's.
    let (token, _, _) = host(&s, "cross@example.org").await?;
    for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let mut req = format!("ws://{}/ws", s.addr).into_client_request()?;
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        req.headers_mut().insert(name, value.parse()?);
        let err = tokio_tungstenite::connect_async(req).await.err().context("must fail")?;
        assert!(err.to_string().contains("403"), "{name}: {err}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_and_the_room_keeps_working() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "h1@example.org").await?;
    let (_other_token, _, foreign) = host(&s, "h2@example.org").await?;
    let mut ws = connect(&s, Cred::Bearer(&token)).await?;

    expect_error(&mut ws, "webrtc-offer", json!({"sdp": "v=0"}), "not_joined").await?;
    expect_error(&mut ws, "join-broadcast", json!({"broadcastId": foreign}), "not_found").await?;
    expect_error(&mut ws, "join-broadcast", json!({"broadcastId": "nope"}), "invalid_field").await?;
    send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast, "audioEnabled": true, "videoEnabled": true}))
        .await?;
    let joined = expect(&mut ws, "joined").await?;
    assert_eq!(joined["role"], "host");
    assert_eq!(joined["broadcast"]["id"], broadcast.to_string());
    assert_eq!(joined["participants"], json!([]));

    expect_error(&mut ws, "no-such-event", json!({}), "unknown_event").await?;
    ws.send(Message::Text("{not json".into())).await?;
    assert_eq!(expect(&mut ws, "error").await?["code"], "malformed_message");
    ws.send(Message::Text(json!({"event": "chat-message", "data": {"text": "x".repeat(300_000)}}).to_string().into()))
        .await?;
    assert_eq!(expect(&mut ws, "error").await?["code"], "message_too_large");
    let e = expect_error(&mut ws, "chat-message", json!({"txt": "hi"}), "invalid_field").await?;
    assert_eq!(e["field"], "txt");
    assert_eq!(e["event"], "chat-message");
    expect_error(
        &mut ws,
        "ice-candidate",
        json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
        "no_media_session",
    )
    .await?;
    expect_error(&mut ws, "webrtc-offer", json!({"sdp": "this is not SDP"}), "invalid_sdp").await?;
    expect_error(&mut ws, "moderate", json!({"participantId": Uuid::new_v4(), "action": "remove"}), "not_found")
        .await?;
    expect_error(&mut ws, "join-broadcast", json!({"broadcastId": broadcast}), "already_joined").await?;

    // A real offer is answered, and candidates of another ICE session are refused.
    send(&mut ws, "webrtc-offer", json!({"sdp": str0m_offer()?})).await?;
    let answer = expect(&mut ws, "webrtc-answer").await?;
    assert!(answer["sdp"].as_str().is_some_and(|s| s.contains("a=candidate")), "{answer}");
    let foreign_candidate = "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host ufrag someoneelse";
    expect_error(&mut ws, "ice-candidate", json!({"candidate": foreign_candidate, "sdpMid": "0"}), "invalid_candidate")
        .await?;
    expect_error(&mut ws, "webrtc-answer", json!({"sdp": "garbage"}), "invalid_sdp").await?;

    // The room still works: chat round-trips and is kept for late joiners.
    send(&mut ws, "chat-message", json!({"text": "still here"})).await?;
    let chat = expect(&mut ws, "chat-message").await?;
    assert_eq!(chat["text"], "still here");
    assert_eq!(chat["name"], "Hosty");
    let g = guest(&s, broadcast, user, "Gus", "guest").await?;
    let mut gws = connect(&s, Cred::Guest(&g)).await?;
    send(&mut gws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let joined = expect(&mut gws, "joined").await?;
    assert_eq!(joined["chat"][0]["text"], "still here");
    assert_eq!(joined["participants"][0]["name"], "Hosty");
    let pj = expect(&mut ws, "participant-joined").await?;
    assert_eq!(pj["participant"]["name"], "Gus");
    // A guest's cookie does not grant another broadcast.
    let mut gws2 = connect(&s, Cred::Guest(&g)).await?;
    expect_error(&mut gws2, "join-broadcast", json!({"broadcastId": foreign}), "not_found").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_status_and_room_limits() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "h3@example.org").await?;
    let mut host_ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut host_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let joined = expect(&mut host_ws, "joined").await?;
    let host_id = joined["participantId"].clone();
    // The layouts on offer are the layout plugins' own.
    let layouts: Vec<&str> = joined["layouts"].as_array().unwrap().iter().filter_map(|l| l["id"].as_str()).collect();
    for id in
        ["grid", "spotlight", "sidebar", "solo", "pip", "screen", "stack", "one-over-two", "inset", "screen-above"]
    {
        assert!(layouts.contains(&id), "{id} not offered: {layouts:?}");
    }

    // A scene the rules refuse gets an error naming the field, and is neither stored nor announced.
    let crowd: Vec<String> = (0..30).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (data, field) in [
        (json!({"layout": "disco"}), "layout"),
        (json!({"stage": crowd}), "stage"),
        (json!({"overlays": {"banner": "hi"}}), "overlays.banner"),
        (json!({"overlays": {"ticker": {"text": "y".repeat(3000), "visible": true}}}), "overlays.ticker.text"),
    ] {
        let e = expect_error(&mut host_ws, "scene-update", data, "invalid_field").await?;
        assert_eq!(e["field"], field, "{e}");
    }
    send(&mut host_ws, "scene-update", json!({"layout": "spotlight"})).await?;
    assert_eq!(expect(&mut host_ws, "scene-updated").await?["scene"]["layout"], "spotlight");

    let g1 = guest(&s, broadcast, user, "Gus", "guest").await?;
    let mut g1_ws = connect(&s, Cred::Guest(&g1)).await?;
    send(&mut g1_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let gus = expect(&mut g1_ws, "joined").await?;
    assert_eq!(gus["role"], "guest");
    let gus_id = gus["participantId"].clone();
    expect(&mut host_ws, "participant-joined").await?;

    // Guests may not moderate or set the scene.
    expect_error(&mut g1_ws, "moderate", json!({"participantId": host_id, "action": "mute-audio"}), "forbidden")
        .await?;
    expect_error(&mut g1_ws, "scene-update", json!({"stage": [], "layout": "grid", "overlays": {}}), "forbidden")
        .await?;

    // Status changes reach everyone.
    send(&mut g1_ws, "participant-status", json!({"videoEnabled": false, "name": "Gus B."})).await?;
    let up = expect(&mut host_ws, "participant-status-updated").await?;
    assert_eq!(up["participant"]["videoEnabled"], false);
    assert_eq!(up["participant"]["name"], "Gus B.");
    expect_error(&mut g1_ws, "participant-status", json!({"name": "  "}), "invalid_field").await?;
    // The REST API's rule for names and texts: no control characters either.
    let e = expect_error(&mut g1_ws, "participant-status", json!({"name": "Gus\u{7}"}), "invalid_field").await?;
    assert_eq!(e["field"], "name");
    let e = expect_error(&mut g1_ws, "chat-message", json!({"text": "two\nlines"}), "invalid_field").await?;
    assert_eq!(e["field"], "text");

    // The host mutes the guest: the guest is told, everyone sees the new state; the guest may unmute.
    send(&mut host_ws, "moderate", json!({"participantId": gus_id, "action": "mute-audio"})).await?;
    let m = expect(&mut g1_ws, "moderated").await?;
    assert_eq!(m, json!({"action": "mute-audio", "byParticipantId": host_id}));
    let up = expect(&mut host_ws, "participant-status-updated").await?;
    assert_eq!(up["participant"]["audioEnabled"], false);
    send(&mut g1_ws, "participant-status", json!({"audioEnabled": true})).await?;
    let up = expect(&mut host_ws, "participant-status-updated").await?;
    assert_eq!(up["participant"]["audioEnabled"], true);

    // The room holds 3: a co-host fills it, a fourth is refused.
    let c = guest(&s, broadcast, user, "Cora", "cohost").await?;
    let mut c_ws = connect(&s, Cred::Guest(&c)).await?;
    send(&mut c_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    assert_eq!(expect(&mut c_ws, "joined").await?["role"], "cohost");
    let g2 = guest(&s, broadcast, user, "Gwen", "guest").await?;
    let mut g2_ws = connect(&s, Cred::Guest(&g2)).await?;
    expect_error(&mut g2_ws, "join-broadcast", json!({"broadcastId": broadcast}), "room_full").await?;
    // A co-host may not moderate the host.
    expect_error(&mut c_ws, "moderate", json!({"participantId": host_id, "action": "remove"}), "forbidden").await?;

    // The host removes the guest: told, disconnected, session revoked; the others see them leave.
    send(&mut host_ws, "moderate", json!({"participantId": gus_id, "action": "remove"})).await?;
    assert_eq!(expect(&mut g1_ws, "moderated").await?["action"], "remove");
    let left = expect(&mut host_ws, "participant-left").await?;
    assert_eq!(left, json!({"participantId": gus_id, "reason": "removed"}));
    assert!(connect(&s, Cred::Guest(&g1)).await.is_err(), "a removed guest's session is revoked");
    // The seat is free again.
    send(&mut g2_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let g2_id = expect(&mut g2_ws, "joined").await?["participantId"].clone();
    // Leaving is seen by the others (the co-host saw the removal first).
    send(&mut g2_ws, "leave-broadcast", json!({})).await?;
    assert_eq!(expect(&mut c_ws, "participant-left").await?["participantId"], gus_id);
    let left = expect(&mut c_ws, "participant-left").await?;
    assert_eq!(left, json!({"participantId": g2_id, "reason": "left"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_keeps_its_seat_for_the_grace_period() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "h4@example.org").await?;
    let mut host_ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut host_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut host_ws, "joined").await?;
    let g = guest(&s, broadcast, user, "Gus", "guest").await?;
    let mut gws = connect(&s, Cred::Guest(&g)).await?;
    send(&mut gws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let gus = expect(&mut gws, "joined").await?["participantId"].clone();
    expect(&mut host_ws, "participant-joined").await?;

    // The socket drops without leave-broadcast; the same session comes back within the grace period.
    drop(gws);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut gws = connect(&s, Cred::Guest(&g)).await?;
    send(&mut gws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let again = expect(&mut gws, "joined").await?;
    assert_eq!(again["participantId"], gus, "the same seat");
    assert_eq!(again["participants"][0]["name"], "Hosty");
    let (up, skipped) = expect_within(&mut host_ws, "participant-status-updated", Duration::from_secs(5)).await?;
    assert_eq!(up["participant"]["id"], gus);
    assert!(!skipped.iter().any(|e| e == "participant-left"), "the host never saw the guest leave: {skipped:?}");

    // Gone for longer than the grace period: then the others see them leave.
    drop(gws);
    let within = backyard::signaling::RECONNECT_GRACE + Duration::from_secs(5);
    let (left, _) = expect_within(&mut host_ws, "participant-left", within).await?;
    assert_eq!(left, json!({"participantId": gus, "reason": "disconnected"}));
    Ok(())
}

#[tokio::test]
async fn guests_wait_backstage_until_admitted_and_can_be_sent_back() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "backstage@example.org").await?;
    let mut b = s.state.store.broadcast(broadcast).await?.context("the broadcast")?;
    b.settings = sqlx::types::Json(json!({"backstage": true}));
    s.state.store.update_broadcast(&b).await?;
    let mut host_ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut host_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let joined = expect(&mut host_ws, "joined").await?;
    assert_eq!(joined["broadcast"]["backstage"], true);
    let host_id = joined["participantId"].clone();

    let g = guest(&s, broadcast, user, "Gus", "guest").await?;
    let mut gws = connect(&s, Cred::Guest(&g)).await?;
    send(&mut gws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let gus = expect(&mut gws, "joined").await?["participantId"].clone();
    let seen = expect(&mut host_ws, "participant-joined").await?;
    assert_eq!(seen["participant"]["backstage"], true, "a guest joins backstage: {seen}");

    // Backstage is off the stage.
    let e = expect_error(&mut host_ws, "scene-update", json!({"stage": [host_id, gus]}), "invalid_field").await?;
    assert_eq!(e["field"], "stage[1]", "{e}");

    // Admitted: in the show, and on stage the host may put them.
    send(&mut host_ws, "moderate", json!({"participantId": gus, "action": "admit"})).await?;
    assert_eq!(expect(&mut gws, "moderated").await?["action"], "admit");
    let (up, _) = expect_within(&mut host_ws, "participant-status-updated", Duration::from_secs(5)).await?;
    assert_eq!(up["participant"]["backstage"], false);
    send(&mut host_ws, "scene-update", json!({"stage": [host_id, gus]})).await?;
    expect(&mut host_ws, "scene-updated").await?;

    // Sent back: off the stage first, then backstage.
    send(&mut host_ws, "moderate", json!({"participantId": gus, "action": "send-backstage"})).await?;
    let (scene, _) = expect_within(&mut host_ws, "scene-updated", Duration::from_secs(5)).await?;
    assert_eq!(scene["scene"]["stage"], json!([host_id]), "{scene}");
    let (up, _) = expect_within(&mut host_ws, "participant-status-updated", Duration::from_secs(5)).await?;
    assert_eq!(up["participant"]["backstage"], true);
    assert_eq!(expect_within(&mut gws, "moderated", Duration::from_secs(5)).await?.0["action"], "send-backstage");

    // Only guests wait backstage; a guest cannot send anyone there.
    let c = guest(&s, broadcast, user, "Cora", "cohost").await?;
    let mut cws = connect(&s, Cred::Guest(&c)).await?;
    send(&mut cws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let cora = expect(&mut cws, "joined").await?["participantId"].clone();
    let (joined, _) = expect_within(&mut host_ws, "participant-joined", Duration::from_secs(5)).await?;
    assert_eq!(joined["participant"]["backstage"], false, "a co-host comes straight in");
    let e = expect_error(
        &mut host_ws,
        "moderate",
        json!({"participantId": cora, "action": "send-backstage"}),
        "invalid_field",
    )
    .await?;
    assert_eq!(e["field"], "participantId");
    expect_error(&mut gws, "moderate", json!({"participantId": cora, "action": "admit"}), "forbidden").await?;
    Ok(())
}

#[tokio::test]
async fn the_program_stops_when_the_last_host_leaves_a_studio_that_is_not_on_air() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, _, broadcast) = host(&s, "stops@example.org").await?;
    let mut ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut ws, "joined").await?;
    let hub = backyard::signaling::Hub::get(&s.state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let program = Arc::downgrade(&hub.programs.get(broadcast).context("a host in the studio starts the program")?);
    send(&mut ws, "leave-broadcast", json!({})).await?;
    // Stopped for good: off the node's list, and nothing (the room follower, the director) keeps it alive,
    // so its thread stops composing.
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        while program.strong_count() > 0 || hub.programs.running().contains(&broadcast) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(stopped.is_ok(), "the program still runs: {} references", program.strong_count());
    Ok(())
}

/// One plain HTTP/1.1 `GET /healthz` on a fresh connection; returns how long the answer took.
async fn healthz_time(addr: SocketAddr) -> anyhow::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await?;
    anyhow::ensure!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    Ok(start.elapsed())
}

fn p99(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[(times.len() * 99).div_ceil(100) - 1]
}

/// p99 of 200 `/healthz` requests and of 100 signaling round trips on `ws` (a message the session answers
/// itself, so a chat rate limit does not pace it), spread over about 1.5 s.
async fn latencies(s: &Server, ws: &mut Socket) -> anyhow::Result<(Duration, Duration)> {
    let mut http = Vec::new();
    for _ in 0..200 {
        http.push(healthz_time(s.addr).await?);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut signaling = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        send(ws, "latency-probe", json!({})).await?;
        expect(ws, "error").await?;
        signaling.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((p99(http), p99(signaling)))
}

/// A layout plugin that spins on every call in a broadcast does not slow the API or signaling: plugin calls
/// run on the program's own director thread, never on the server's async workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_plugin_spinning_on_every_call_does_not_slow_the_api_or_signaling() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let s = server_with(|cfg| {
        cfg.plugins.dirs = vec![root.join("target/plugins"), root.join("target/plugin-fixtures")];
    })
    .await?;
    // The hostile layout spins for as long as the first person on stage's name says, just under its 20 ms
    // deadline (so it is never switched off and spins on every call).
    let user = s.state.store.create_user("spin@example.org", "not-a-real-hash", "slow:15", false).await?;
    let sid = s.state.tokens.create_session(user.id).await?;
    let broadcast = s.state.store.create_broadcast(user.id, "Spin show", "", json!({})).await?.id;
    let token = s.state.jwt.issue(user.id, sid);
    let mut ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let me = expect(&mut ws, "joined").await?["participantId"].clone();
    send(&mut ws, "scene-update", json!({"stage": [me], "layout": "grid"})).await?;
    expect(&mut ws, "scene-updated").await?;
    // Going live puts the program on air (recording only).
    let started = s.state.store.broadcast(broadcast).await?.expect("the broadcast");
    let hub = backyard::signaling::Hub::get(&s.state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    hub.programs.go_live(&s.state, &hub.media, &started, hub.participants(broadcast)).await?;

    // A guest on stage keeps the layout busy: every camera toggle of theirs is a new stage to place. The same
    // load runs with a quick layout first, so the comparison isolates what the spinning plugin costs.
    let g = guest(&s, broadcast, user.id, "Gus", "guest").await?;
    let mut toggler = connect(&s, Cred::Guest(&g)).await?;
    send(&mut toggler, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let gus = expect(&mut toggler, "joined").await?["participantId"].clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toggling = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut on = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                on = !on;
                if send(&mut toggler, "participant-status", json!({"videoEnabled": on})).await.is_err() {
                    break;
                }
                // The next toggle once this one is through (within the socket's status rate), reading what the
                // room sends as a client does.
                let pace = tokio::time::sleep(Duration::from_millis(50));
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), toggler.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("participant-status-updated") => break,
                        Ok(Some(Ok(_))) => {}
                        _ => return,
                    }
                }
                pace.await;
            }
        })
    };
    send(&mut ws, "scene-update", json!({"stage": [me, gus], "layout": "grid"})).await?;
    expect(&mut ws, "scene-updated").await?;
    let (http_quick, chat_quick) = latencies(&s, &mut ws).await?;

    send(&mut ws, "scene-update", json!({"stage": [me, gus], "layout": "hostile-layout/row"})).await?;
    expect(&mut ws, "scene-updated").await?;
    let calls_before = plugin_calls(&s).await?;
    let (http_spin, chat_spin) = latencies(&s, &mut ws).await?;
    let calls = plugin_calls(&s).await? - calls_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toggling.await?;
    println!(
        "p99 /healthz {http_quick:?} → {http_spin:?}; p99 signaling {chat_quick:?} → {chat_spin:?}; {calls} spinning layout calls"
    );
    assert!(calls >= 10, "the spinning layout was called only {calls} times");
    // Generous: twice the p99 under the same load with a quick layout, and never less than 50 ms of room on a
    // loaded two-core machine.
    let bound = |quick: Duration| (quick * 2).max(Duration::from_millis(50));
    assert!(http_spin <= bound(http_quick), "/healthz p99 {http_quick:?} → {http_spin:?}");
    assert!(chat_spin <= bound(chat_quick), "signaling p99 {chat_quick:?} → {chat_spin:?}");
    hub.programs.end_live(&s.state, &hub.media, broadcast).await?;
    Ok(())
}

/// Calls made to the hostile layout so far, as the plugin list counts them.
async fn plugin_calls(s: &Server) -> anyhow::Result<u64> {
    let host = s.state.plugins.host().await?;
    let row = host.list().into_iter().find(|p| p.name == "hostile-layout").context("hostile-layout installed")?;
    anyhow::ensure!(row.status == "ok", "{row:?}");
    Ok(row.calls)
}

/// Outputs are the hosts' business: a guest's socket is not sent `destination-status`, a host's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_not_told_about_destinations() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "dest@example.org").await?;
    let mut host_ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut host_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut host_ws, "joined").await?;
    let g = guest(&s, broadcast, user, "Gus", "guest").await?;
    let mut guest_ws = connect(&s, Cred::Guest(&g)).await?;
    send(&mut guest_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut guest_ws, "joined").await?;
    // What the program publishes when a destination goes live.
    let status = json!({"id": "d1", "destinationId": "d1", "kind": "destination", "target": "rtmp://example.com/live/••••",
        "state": "live", "bitrateKbps": 2980, "droppedFrames": 0, "uptimeSecs": 1, "connects": 1});
    let event = backyard::bus::Event::new("destination-status", status);
    s.state.bus.publish(&backyard::bus::topic::broadcast(broadcast), event).await?;
    assert_eq!(expect(&mut host_ws, "destination-status").await?["state"], "live");
    // The guest's next event is the chat after it, not the status.
    send(&mut host_ws, "chat-message", json!({"text": "after the status"})).await?;
    let (chat, skipped) = expect_within(&mut guest_ws, "chat-message", Duration::from_secs(5)).await?;
    assert_eq!(chat["text"], "after the status");
    assert!(!skipped.iter().any(|e| e == "destination-status"), "the guest saw {skipped:?}");
    Ok(())
}

/// One socket cannot flood the room: chat beyond its rate is refused with an error, the room gets at most the
/// burst, and the socket keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flood_is_refused_past_the_socket_rate() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "flood@example.org").await?;
    let mut host_ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut host_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut host_ws, "joined").await?;
    let g = guest(&s, broadcast, user, "Flo", "guest").await?;
    let mut flood = connect(&s, Cred::Guest(&g)).await?;
    send(&mut flood, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut flood, "joined").await?;
    for i in 0..60 {
        send(&mut flood, "chat-message", json!({"text": format!("spam {i}")})).await?;
    }
    let e = expect(&mut flood, "error").await?;
    assert_eq!((e["code"].as_str(), e["event"].as_str()), (Some("rate_limited"), Some("chat-message")), "{e}");
    // The host hears the burst, not the flood: count what arrives within a second.
    let mut heard = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok((_, _))) = tokio::time::timeout(
        until.saturating_duration_since(Instant::now()),
        expect_within(&mut host_ws, "chat-message", Duration::from_secs(1)),
    )
    .await
    {
        heard += 1;
    }
    assert!((10..=15).contains(&heard), "the host heard {heard} of 60");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send(&mut flood, "chat-message", json!({"text": "calm again"})).await?;
    let (chat, _) = expect_within(&mut host_ws, "chat-message", Duration::from_secs(5)).await?;
    assert_eq!(chat["text"], "calm again");
    Ok(())
}

/// A socket that falls behind a burst of room events is not left with a silently wrong room: once it catches
/// up it gets `room-state`, the room as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_lags_behind_the_room_gets_its_state_again() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, _, broadcast) = host(&s, "lag@example.org").await?;
    let mut ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let me = expect(&mut ws, "joined").await?["participantId"].clone();
    // The client reads nothing while a burst far larger than its socket's buffers (80 MB, against at most about
    // 10 MB that loopback buffers hold) goes by: the session blocks on the socket and its bus queue overflows.
    let filler = "x".repeat(4000);
    for i in 0..20_000 {
        let ev = backyard::bus::Event::new("chat-message", json!({"id": i, "text": filler}));
        s.state.bus.publish(&backyard::bus::topic::broadcast(broadcast), ev).await?;
    }
    let (state, _) = expect_within(&mut ws, "room-state", Duration::from_secs(30)).await?;
    assert!(state["skipped"].as_u64().unwrap_or(0) > 0, "{}", state["skipped"]);
    let ids: Vec<&Value> = state["participants"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
    assert_eq!(ids, [&me], "the room as it is: just us");
    assert_eq!(state["scene"]["layout"], "grid");
    Ok(())
}

/// An ingest key of the broadcast made through the API; returns (id, key).
async fn ingest_key(
    s: &Server,
    token: &str,
    broadcast: Uuid,
    label: &str,
    mode: &str,
) -> anyhow::Result<(Uuid, String)> {
    let (url, token) = (format!("http://{}/api/broadcasts/{broadcast}/ingest-keys", s.addr), token.to_owned());
    let body = json!({"label": label, "mode": mode}).to_string();
    let (status, _, body) = tokio::task::spawn_blocking(move || {
        let res =
            ureq::post(&url).set("Authorization", &format!("Bearer {token}")).set("Content-Type", "application/json");
        match res.send_string(&body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), String::new(), r.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        }
    })
    .await?;
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["mode"], mode);
    Ok((v["id"].as_str().context("id")?.parse()?, v["key"].as_str().context("key")?.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_joins_the_studio_and_leaves_on_delete_or_revocation() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, _, broadcast) = host(&s, "whip@example.org").await?;
    let (key_id, key) = ingest_key(&s, &token, broadcast, "Phone on a tripod", "source").await?;
    let (_, relay_key) = ingest_key(&s, &token, broadcast, "OBS", "relay").await?;
    let endpoint = format!("http://{}/api/whip", s.addr);

    // The host is in the studio, receiving over WebRTC.
    let mut ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast, "audioEnabled": false, "videoEnabled": false}))
        .await?;
    expect(&mut ws, "joined").await?;
    let mut studio = Endpoint::new().await?;
    let mut api = studio.rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().context("an offer")?;
    send(&mut ws, "webrtc-offer", json!({"sdp": offer.to_sdp_string()})).await?;
    let answer = expect(&mut ws, "webrtc-answer").await?;
    let answer = str0m::change::SdpAnswer::from_sdp_string(answer["sdp"].as_str().context("sdp")?)?;
    studio.rtc.sdp_api().accept_answer(pending, answer)?;
    // A host watches the program preview: the server offers it at once.
    let offer = expect(&mut ws, "webrtc-offer").await?;
    let offer = str0m::change::SdpOffer::from_sdp_string(offer["sdp"].as_str().context("sdp")?)?;
    let answer = studio.rtc.sdp_api().accept_offer(offer)?;
    send(&mut ws, "webrtc-answer", json!({"sdp": answer.to_sdp_string()})).await?;

    // Bad input: each refused with a JSON error, the room unaffected.
    let mut publisher = Endpoint::new().await?;
    let mut api = publisher.rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let cam = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().context("an offer")?;
    let offer = offer.to_sdp_string();
    let sdp = "application/sdp";
    for (what, key, content_type, body, status, code) in [
        ("no key", None, sdp, offer.clone(), 401, "unauthenticated"),
        ("unknown key", Some("by_nope".to_owned()), sdp, offer.clone(), 401, "unauthenticated"),
        ("JSON body", Some(key.clone()), "application/json", "{}".to_owned(), 415, "unsupported_media_type"),
        ("relay key", Some(relay_key.clone()), sdp, offer.clone(), 409, "wrong_key_mode"),
        ("not SDP", Some(key.clone()), sdp, "v=0 garbage".to_owned(), 400, "invalid_sdp"),
    ] {
        let (got, _, body) = whip("POST", endpoint.clone(), key, content_type, body).await;
        assert_eq!(got, status, "{what}: {body}");
        let v: Value = serde_json::from_str(&body).with_context(|| format!("{what}: {body}"))?;
        assert_eq!(v["error"]["code"], code, "{what}: {body}");
    }
    let resource = format!("http://{}/api/whip/{}", s.addr, Uuid::new_v4());
    let (status, _, _) =
        whip("PATCH", resource.clone(), Some(key.clone()), "application/trickle-ice-sdpfrag", String::new()).await;
    assert_eq!(status, 405);
    let (status, _, _) = whip("DELETE", resource, Some(key.clone()), sdp, String::new()).await;
    assert_eq!(status, 404, "someone else's (or no) session");

    // The offer is answered with 201 and a resource; the studio sees a participant named after the key.
    let (status, location, answer) = whip("POST", endpoint.clone(), Some(key.clone()), sdp, offer.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert!(location.starts_with("/api/whip/"), "{location}");
    publisher.rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(&answer)?)?;
    let joined = expect(&mut ws, "participant-joined").await?;
    assert_eq!(joined["participant"]["name"], "Phone on a tripod");
    let participant = joined["participant"]["id"].as_str().context("id")?.to_owned();
    assert!(location.ends_with(&participant), "{location} is the participant's resource");
    let (status, _, body) = whip("POST", endpoint.clone(), Some(key.clone()), sdp, offer.clone()).await;
    assert_eq!((status, serde_json::from_str::<Value>(&body)?["error"]["code"].clone()), (409, json!("key_in_use")));

    // Its camera reaches the studio: frames naming the publisher arrive on a track whose stream is its id.
    ws::pump(&mut publisher, cam, &mut studio, &mut ws, &participant, 30, Duration::from_secs(20)).await?;

    // DELETE ends it: the participant leaves the studio.
    let resource = format!("http://{}{location}", s.addr);
    let (status, _, _) = whip("DELETE", resource.clone(), Some(relay_key.clone()), sdp, String::new()).await;
    assert_eq!(status, 404, "another key cannot end it");
    let (status, _, body) = whip("DELETE", resource.clone(), Some(key.clone()), sdp, String::new()).await;
    assert_eq!(status, 200, "{body}");
    let left = expect(&mut ws, "participant-left").await?;
    assert_eq!(left["participantId"], participant);
    let (status, _, _) = whip("DELETE", resource, Some(key.clone()), sdp, String::new()).await;
    assert_eq!(status, 404, "ended already");

    // Publishing again works; revoking the key ends that session too, and the key is refused after.
    let (status, _, _) = whip("POST", endpoint.clone(), Some(key.clone()), sdp, str0m_offer()?).await;
    assert_eq!(status, 201);
    let again = expect(&mut ws, "participant-joined").await?["participant"]["id"].clone();
    let (url, bearer) = (format!("http://{}/api/broadcasts/{broadcast}/ingest-keys/{key_id}", s.addr), token.clone());
    let revoked = tokio::task::spawn_blocking(move || {
        ureq::delete(&url)
            .set("Authorization", &format!("Bearer {bearer}"))
            .call()
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    })
    .await?;
    assert_eq!(revoked, Ok(204));
    assert_eq!(expect(&mut ws, "participant-left").await?["participantId"], again);
    let (status, _, _) = whip("POST", endpoint, Some(key), sdp, str0m_offer()?).await;
    assert_eq!(status, 401);
    Ok(())
}

/// One tus call as a browser makes it (same origin): status, headers asked for, and body.
fn tus_call(
    method: &str,
    url: &str,
    origin: &str,
    cookie: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<Option<String>>, String) {
    let mut req = ureq::request(method, url).set("Tus-Resumable", "1.0.0").set("Origin", origin).set("Cookie", cookie);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    // No body, no Content-Length: as a browser sends tus-js-client's last, empty part.
    let res = match if body.is_empty() { req.call() } else { req.send_bytes(body) } {
        Ok(res) | Err(ureq::Error::Status(_, res)) => res,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let wanted = ["Location", "Upload-Offset"].iter().map(|h| res.header(h).map(str::to_owned)).collect();
    (res.status(), wanted, res.into_string().unwrap_or_default())
}

async fn tus(
    s: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> (u16, Vec<Option<String>>, String) {
    let url = if path.starts_with("http") { path.to_owned() } else { format!("http://{}{path}", s.addr) };
    let (origin, cookie, method) = (format!("http://{}", s.addr), cookie.to_owned(), method.to_owned());
    tokio::task::spawn_blocking(move || tus_call(&method, &url, &origin, &cookie, &headers, &body))
        .await
        .expect("the tus call")
}

/// A 3 s WebM (VP8 + Opus) as a browser's MediaRecorder makes one: streamed, so it says no duration.
fn recorded_webm() -> Vec<u8> {
    let args = "-v error -f lavfi -i testsrc2=s=320x240:r=30:d=3 -f lavfi -i sine=d=3 \
                -c:v libvpx -b:v 500k -c:a libopus -f webm -live 1 pipe:1";
    let made = std::process::Command::new("ffmpeg").args(args.split_whitespace()).output().expect("ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    made.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_s_local_recording_uploads_in_parts_resumes_and_is_kept() -> anyhow::Result<()> {
    let s = server().await?;
    let (token, user, broadcast) = host(&s, "local@example.org").await?;
    let guest_raw = guest(&s, broadcast, user, "Gus", "guest").await?;
    let guest_cookie = format!("by_guest={guest_raw}");
    let stranger = format!("by_guest={}", guest(&s, broadcast, user, "Stan", "guest").await?);
    let mut host_ws = connect(&s, Cred::Bearer(&token)).await?;
    send(&mut host_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut host_ws, "joined").await?;
    let mut guest_ws = connect(&s, Cred::Guest(&guest_raw)).await?;
    send(&mut guest_ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    let gus = expect(&mut guest_ws, "joined").await?["participantId"].clone();
    let meta =
        format!("broadcast {},filetype {}", common::b64(broadcast.to_string().as_bytes()), common::b64(b"video/webm"));
    let create = || vec![("Upload-Defer-Length", "1".to_owned()), ("Upload-Metadata", meta.clone())];

    // Not until the host asks for local recordings; never without naming the broadcast.
    let (status, _, body) = tus(&s, "POST", "/api/local-recordings", &guest_cookie, create(), vec![]).await;
    assert_eq!(status, 403, "{body}");
    let mut b = s.state.store.broadcast(broadcast).await?.context("the broadcast")?;
    b.settings = sqlx::types::Json(json!({"localRecording": true}));
    s.state.store.update_broadcast(&b).await?;
    let (status, _, body) =
        tus(&s, "POST", "/api/local-recordings", &guest_cookie, vec![("Upload-Defer-Length", "1".into())], vec![])
            .await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body)?["error"]["field"].clone()),
        (422, json!("Upload-Metadata.broadcast"))
    );
    // Someone with no seat in the studio.
    let (status, _, body) = tus(&s, "POST", "/api/local-recordings", &stranger, create(), vec![]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not_in_studio"), "{body}");

    let (status, headers, body) = tus(&s, "POST", "/api/local-recordings", &guest_cookie, create(), vec![]).await;
    assert_eq!(status, 201, "{body}");
    let location = headers[0].clone().context("a Location")?;
    assert!(location.starts_with(&format!("http://{}/api/local-recordings/", s.addr)), "{location}");

    let webm = recorded_webm();
    let half = webm.len() / 2;
    let part = |offset: usize| {
        vec![("Upload-Offset", offset.to_string()), ("Content-Type", "application/offset+octet-stream".to_owned())]
    };
    let (status, headers, body) = tus(&s, "PATCH", &location, &guest_cookie, part(0), webm[..half].to_vec()).await;
    assert_eq!((status, headers[1].clone()), (204, Some(half.to_string())), "{body}");
    let progress = expect(&mut host_ws, "local-recording").await?;
    assert_eq!(
        (progress["state"].clone(), progress["bytes"].clone(), progress["name"].clone()),
        (json!("uploading"), json!(half), json!("Gus"))
    );
    assert_eq!(progress["participantId"], gus);

    // Another session cannot see or touch it; a part at the wrong offset is refused; HEAD says where to resume.
    let (status, _, _) = tus(&s, "HEAD", &location, &stranger, vec![], vec![]).await;
    assert_eq!(status, 404);
    let (status, _, _) = tus(&s, "PATCH", &location, &guest_cookie, part(3), webm[3..].to_vec()).await;
    assert_eq!(status, 409);
    let (status, headers, _) = tus(&s, "HEAD", &location, &guest_cookie, vec![], vec![]).await;
    assert_eq!((status, headers[1].clone()), (204, Some(half.to_string())));

    // The rest, then an empty part saying the length (as tus-js-client ends a stream): the file is copied,
    // verified and listed under the guest's name.
    let (status, _, body) = tus(&s, "PATCH", &location, &guest_cookie, part(half), webm[half..].to_vec()).await;
    assert_eq!(status, 204, "{body}");
    let mut last = part(webm.len());
    last.push(("Upload-Length", webm.len().to_string()));
    let (status, _, body) = tus(&s, "PATCH", &location, &guest_cookie, last, vec![]).await;
    assert_eq!(status, 204, "{body}");
    let (kept, _) = expect_within(&mut host_ws, "local-recording", Duration::from_secs(10)).await?;
    let kept = if kept["state"] == "uploading" { expect(&mut host_ws, "local-recording").await? } else { kept };
    assert_eq!(kept["state"], "kept", "{kept}");
    let id: Uuid = kept["recordingId"].as_str().context("a recording id")?.parse()?;
    let rec = s.state.store.recording(id).await?.context("listed")?;
    assert!(rec.local && rec.participant_name.as_deref() == Some("Gus") && rec.user_id == user, "{rec:?}");
    assert!((rec.duration - 3.0).abs() < 0.2, "{} s", rec.duration);
    let file = s.state.cfg.recordings_dir().join(format!("{id}.webm"));
    assert_eq!(
        backyard_core::egress::media_duration(&file).map(|d| (d * 10.0).round() / 10.0),
        Some(3.0),
        "the copy says its duration"
    );
    assert_eq!(s.state.store.local_recording_bytes(broadcast).await?, rec.file_size);
    let (status, _, _) = tus(&s, "HEAD", &location, &guest_cookie, vec![], vec![]).await;
    assert_eq!(status, 404, "a kept upload is gone");

    // Bytes that are not media: told to the room, nothing listed.
    let (_, headers, _) = tus(&s, "POST", "/api/local-recordings", &guest_cookie, create(), vec![]).await;
    let junk_at = headers[0].clone().context("a Location")?;
    let mut junk = part(0);
    junk.push(("Upload-Length", "4096".into()));
    let (status, _, _) = tus(&s, "PATCH", &junk_at, &guest_cookie, junk, vec![7u8; 4096]).await;
    assert_eq!(status, 204);
    let failed = loop {
        let ev = expect(&mut host_ws, "local-recording").await?;
        if ev["state"] != "uploading" {
            break ev;
        }
    };
    assert_eq!(failed["state"], "failed", "{failed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_recording_past_the_broadcast_s_storage_is_refused_naming_the_limit() -> anyhow::Result<()> {
    let s = server_with(|c| c.limits.local_recording_bytes_per_broadcast = 1000).await?;
    let (_, user, broadcast) = host(&s, "quota@example.org").await?;
    let mut b = s.state.store.broadcast(broadcast).await?.context("the broadcast")?;
    b.settings = sqlx::types::Json(json!({"localRecording": true}));
    s.state.store.update_broadcast(&b).await?;
    let raw = guest(&s, broadcast, user, "Gus", "guest").await?;
    let mut ws = connect(&s, Cred::Guest(&raw)).await?;
    send(&mut ws, "join-broadcast", json!({"broadcastId": broadcast})).await?;
    expect(&mut ws, "joined").await?;
    let cookie = format!("by_guest={raw}");
    let meta = format!("broadcast {}", common::b64(broadcast.to_string().as_bytes()));
    let (status, headers, body) = tus(
        &s,
        "POST",
        "/api/local-recordings",
        &cookie,
        vec![("Upload-Defer-Length", "1".into()), ("Upload-Metadata", meta.clone())],
        vec![],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let at = headers[0].clone().context("a Location")?;
    let part = vec![("Upload-Offset", "0".to_owned()), ("Content-Type", "application/offset+octet-stream".to_owned())];
    let (status, _, body) = tus(&s, "PATCH", &at, &cookie, part.clone(), vec![1u8; 600]).await;
    assert_eq!(status, 204, "{body}");
    let (status, _, body) =
        tus(&s, "PATCH", &at, &cookie, vec![("Upload-Offset", "600".to_owned()), part[1].clone()], vec![1u8; 600])
            .await;
    assert_eq!(status, 413, "{body}");
    let err: Value = serde_json::from_str(&body)?;
    assert_eq!(err["error"]["code"], "over_quota");
    assert_eq!(err["error"]["field"], "limits.local_recording_bytes_per_broadcast");
    let refused = loop {
        let ev = expect(&mut ws, "local-recording").await?;
        if ev["state"] != "uploading" {
            break ev;
        }
    };
    assert_eq!(refused["state"], "refused");
    // A new upload declaring more than is left is refused at once.
    let (status, _, _) = tus(
        &s,
        "POST",
        "/api/local-recordings",
        &cookie,
        vec![("Upload-Length", "900".into()), ("Upload-Metadata", meta)],
        vec![],
    )
    .await;
    assert_eq!(status, 413);
    Ok(())
}
