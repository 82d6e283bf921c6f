//! The studio's side of a real server, for the tests that run one: the WebSocket signaling (`/ws`), WHIP calls,
//! and the VP8 frames a test publisher sends.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws` on the server at `addr`, signed in by the header `name: value` (a bearer token or a cookie).
pub async fn connect(addr: &str, name: &'static str, value: &str) -> anyhow::Result<Socket> {
    let mut req = format!("ws://{addr}/ws").into_client_request()?;
    req.headers_mut().insert(name, value.parse()?);
    // No Nagle: small frames go out at once, as a browser sends them, so round trips measure the server.
    Ok(tokio_tungstenite::connect_async_with_config(req, None, true).await?.0)
}

pub async fn send(ws: &mut Socket, event: &str, data: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(json!({"event": event, "data": data}).to_string().into())).await?;
    Ok(())
}

/// Reads events until `event` arrives (within 5 s) and returns its data; other events are skipped.
pub async fn expect(ws: &mut Socket, event: &str) -> anyhow::Result<Value> {
    Ok(expect_within(ws, event, Duration::from_secs(5)).await?.0)
}

/// Reads events until `event` arrives within `within`; returns its data and the names of the events skipped.
pub async fn expect_within(ws: &mut Socket, event: &str, within: Duration) -> anyhow::Result<(Value, Vec<String>)> {
    let deadline = Instant::now() + within;
    let mut seen = vec![];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .with_context(|| format!("waiting for {event}; saw {seen:?}"))?
            .with_context(|| format!("socket ended waiting for {event}; saw {seen:?}"))??;
        let Message::Text(text) = msg else {
            if let Message::Close(_) = msg {
                bail!("socket closed waiting for {event}; saw {seen:?}");
            }
            continue;
        };
        let v: Value = serde_json::from_str(text.as_str())?;
        if v["event"] == event {
            return Ok((v["data"].clone(), seen));
        }
        seen.push(v["event"].as_str().unwrap_or_default().to_owned());
    }
}

/// What a WHIP call answered: status, `Location`, body.
pub fn whip_call(method: &str, url: &str, key: Option<&str>, content_type: &str, body: &str) -> (u16, String, String) {
    let mut req = ureq::request(method, url).set("Content-Type", content_type);
    if let Some(key) = key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let res = match req.send_string(body) {
        Ok(res) | Err(ureq::Error::Status(_, res)) => res,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let location = res.header("Location").unwrap_or_default().to_owned();
    (res.status(), location, res.into_string().unwrap_or_default())
}

/// [`whip_call`] off the async runtime.
pub async fn whip(
    method: &str,
    url: String,
    key: Option<String>,
    content_type: &str,
    body: String,
) -> (u16, String, String) {
    let content_type = content_type.to_owned();
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || whip_call(&method, &url, key.as_deref(), &content_type, &body))
        .await
        .expect("the WHIP call")
}

/// A VP8 frame naming its sender: a keyframe (with the picture size) when `key`.
pub fn vp8_frame(key: bool, marker: &str) -> Vec<u8> {
    let mut payload =
        if key { vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01] } else { vec![0x11, 0x02, 0x00] };
    payload.extend_from_slice(marker.as_bytes());
    payload.resize(1200, 0x5a);
    payload
}

/// What [`pump`] saw.
pub struct Pumped {
    /// Frames the publisher sent.
    pub sent: u32,
    /// When the studio got the first of them, after the pump started.
    pub first: Duration,
}

/// Sends VP8 frames naming `participant` from `publisher`'s `cam` (a keyframe whenever the server asks for one) at
/// 30 fps until `studio` has received `count` of them on a track whose stream is `participant`, answering the
/// server's offers to the studio on `ws`; fails after `within`, saying what arrived.
pub async fn pump(
    publisher: &mut super::rtc::Endpoint,
    cam: str0m::media::Mid,
    studio: &mut super::rtc::Endpoint,
    ws: &mut Socket,
    participant: &str,
    count: u32,
    within: Duration,
) -> anyhow::Result<Pumped> {
    let marker = format!("from:{participant};");
    let (mut sent, mut want_key, mut received, mut first) = (0u32, true, 0u32, None);
    let mut forwarded = std::collections::HashMap::new();
    let start = Instant::now();
    let mut next_frame = start;
    while received < count {
        ensure!(
            start.elapsed() < within,
            "the studio got {received} of {sent} frames (connected: {}, forwarded tracks: {forwarded:?})",
            studio.rtc.is_connected()
        );
        let (publisher_wake, events) = publisher.drive().await?;
        for e in events {
            if let str0m::Event::KeyframeRequest(r) = e
                && r.mid == cam
            {
                want_key = true;
            }
        }
        if Instant::now() >= next_frame && publisher.rtc.is_connected() {
            next_frame += Duration::from_millis(33);
            if let Some(writer) = publisher.rtc.writer(cam) {
                let vp8 = writer.payload_params().find(|p| p.spec().codec == str0m::format::Codec::Vp8);
                let pt = vp8.context("VP8")?.pt();
                let time = str0m::media::MediaTime::from_90khz(u64::from(sent) * 3000);
                writer.write(pt, Instant::now(), time, vp8_frame(std::mem::take(&mut want_key), &marker))?;
                sent += 1;
            }
        }
        let (studio_wake, events) = studio.drive().await?;
        for e in events {
            match e {
                str0m::Event::MediaAdded(m) => {
                    let stream = studio.rtc.media(m.mid).map(|m| m.stream_id().to_owned()).unwrap_or_default();
                    forwarded.insert(m.mid, stream);
                }
                str0m::Event::MediaData(d)
                    if forwarded.get(&d.mid).is_some_and(|s| s == participant)
                        && d.data.windows(marker.len()).any(|w| w == marker.as_bytes()) =>
                {
                    first.get_or_insert(start.elapsed());
                    received += 1
                }
                _ => {}
            }
        }
        // The server offers the studio the publisher's tracks.
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_millis(1), ws.next()).await {
            let v: Value = serde_json::from_str(text.as_str())?;
            if v["event"] == "webrtc-offer" {
                let offer = str0m::change::SdpOffer::from_sdp_string(v["data"]["sdp"].as_str().context("sdp")?)?;
                let answer = studio.rtc.sdp_api().accept_offer(offer)?;
                send(ws, "webrtc-answer", json!({"sdp": answer.to_sdp_string()})).await?;
            }
        }
        let wake = publisher_wake.min(studio_wake).min(next_frame);
        publisher.receive(wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(5))).await?;
        studio.receive(Duration::ZERO).await?;
    }
    Ok(Pumped { sent, first: first.unwrap_or_default() })
}
