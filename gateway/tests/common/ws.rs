//! The studio's side of a real server, for the tests that run one: the WebSocket signaling (`/ws`), WHIP calls,
//! and the VP8 frames a test publisher sends.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
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
