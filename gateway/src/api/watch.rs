//! `/api/watch`: what a viewer without an account may know of a show, and its HLS stream.
//!
//! A broadcast's `settings.watch` says who may watch it on this server: `off` (the default: nobody), `unlisted`
//! (anyone with the link to `/watch/{id}`) or `public` (also listed by `GET /api/watch`). While it is live the
//! program's one encode (or, for a relay, the encoder's own packets) is also cut into an HLS stream (CMAF
//! segments, see core's egress and [`crate::viewers`]), which the watch page plays; players that read FLV over
//! HTTP (VLC, ffplay, flv.js) get the same stream at `live.flv`. Nothing here
//! needs a session: everything returned is what the host chose to show.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::extract::PathParams;
use crate::auth::path_uuid;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Broadcast;
use crate::viewers::{ViewerStream, Visibility, visibility};

/// The settings the server itself reads are checked when a broadcast is created or changed; the rest of the
/// object stays free-form for the studio.
pub fn check_settings(settings: &serde_json::Map<String, serde_json::Value>) -> ApiResult<()> {
    if let Some(w) = settings.get("watch")
        && Visibility::of(w).is_none()
    {
        return Err(ApiError::invalid("settings.watch", "must be \"off\", \"unlisted\" or \"public\""));
    }
    for switch in crate::store::Broadcast::SWITCHES {
        if settings.get(switch).is_some_and(|b| !b.is_boolean()) {
            return Err(ApiError::invalid(format!("settings.{switch}"), "must be true or false"));
        }
    }
    Ok(())
}

/// A show as its viewers see it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchInfo {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub status: crate::store::BroadcastStatus,
    pub visibility: Visibility,
    /// The HLS playlist, while the show is live on this server.
    pub hls: Option<String>,
    /// The same stream as FLV over HTTP (for players such as VLC or ffplay), while the show is live.
    pub flv: Option<String>,
    /// The WHEP endpoint (WebRTC, about a second behind live), while a show from the studio is live.
    pub whep: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_time: Option<OffsetDateTime>,
}

async fn info(state: &AppState, b: Broadcast) -> WatchInfo {
    let stream = streaming(state, b.id).await;
    let live = stream.is_some();
    let hls = live.then(|| format!("/api/watch/{}/hls/index.m3u8", b.id));
    let flv = live.then(|| format!("/api/watch/{}/live.flv", b.id));
    let whep = stream.is_some_and(|s| s.webrtc.is_some()).then(|| format!("/api/watch/{}/whep", b.id));
    WatchInfo {
        flv,
        whep,
        id: b.id,
        visibility: visibility(&b),
        title: b.title,
        description: b.description,
        status: b.status,
        hls,
        start_time: b.start_time,
        end_time: b.end_time,
    }
}

/// The broadcast's stream for viewers, while its program or an RTMP relay has it on air on this node.
pub(super) async fn streaming(state: &AppState, broadcast: Uuid) -> Option<Arc<ViewerStream>> {
    if let Some(live) = crate::signaling::Hub::running(state).and_then(|hub| hub.programs.get(broadcast))
        && let Some(stream) = live.viewers().await
    {
        return Some(stream);
    }
    state.ingest.viewers(broadcast)
}

/// A broadcast someone may watch, or 404 (as for one that does not exist: whether a private show exists is
/// nobody's business).
pub(super) async fn watchable(state: &AppState, params: &HashMap<String, String>) -> ApiResult<Broadcast> {
    let id = path_uuid(params, "id")?;
    state.store.broadcast(id).await?.filter(|b| visibility(b) != Visibility::Off).ok_or(ApiError::NotFound("show"))
}

#[utoipa::path(get, path = "/api/watch", tag = "watch",
    responses((status = 200, description = "the public shows live now", body = Vec<WatchInfo>)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<WatchInfo>>> {
    let mut out = Vec::new();
    for b in state.store.live_broadcasts().await? {
        if visibility(&b) == Visibility::Public {
            out.push(info(&state, b).await);
        }
    }
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/api/watch/{id}", tag = "watch", params(("id" = Uuid, Path)),
    responses((status = 200, body = WatchInfo), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(State(state): State<AppState>, PathParams(params): PathParams) -> ApiResult<axum::Json<WatchInfo>> {
    let b = watchable(&state, &params).await?;
    Ok(axum::Json(info(&state, b).await))
}

/// The files of an HLS stream: the playlist, the init segment and media segments, nothing else.
fn hls_file(name: &str) -> Option<&'static str> {
    match name {
        "index.m3u8" => Some("application/vnd.apple.mpegurl"),
        "init.mp4" => Some("video/mp4"),
        n if n.len() == "seg-00000.m4s".len()
            && n.starts_with("seg-")
            && n.ends_with(".m4s")
            && n[4..9].bytes().all(|c| c.is_ascii_digit()) =>
        {
            Some("video/iso.segment")
        }
        _ => None,
    }
}

/// How long a playlist request trusts the last answer to "may anyone watch this show" (the store is asked
/// at most this often, not once per viewer per second).
const VISIBILITY_TTL: Duration = Duration::from_secs(1);
/// How long the playlist read from disk is served as it was: it changes once a segment (2 s), and a viewer
/// that sees the new one a quarter of a second later loses nothing.
const PLAYLIST_TTL: Duration = Duration::from_millis(250);

#[utoipa::path(get, path = "/api/watch/{id}/hls/{file}", tag = "watch",
    params(("id" = Uuid, Path), ("file" = String, Path, description = "`index.m3u8`, `init.mp4` or `seg-NNNNN.m4s`")),
    responses((status = 200, description = "the playlist or a segment"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn hls(State(state): State<AppState>, PathParams(params): PathParams) -> ApiResult<Response> {
    let name = params.get("file").map(String::as_str).unwrap_or("");
    let content_type = hls_file(name).ok_or_else(|| {
        ApiError::invalid("file", "must be index.m3u8, init.mp4 or seg-NNNNN.m4s")
            .with_status(axum::http::StatusCode::NOT_FOUND)
    })?;
    let id = path_uuid(&params, "id")?;
    let not_live = || ApiError::NotFound("stream (the show is not live)");
    let stream = streaming(&state, id).await.ok_or_else(not_live)?;
    let (cache, dir) = (&stream.cache, &stream.dir);
    let playlist = name == "index.m3u8";
    let bytes = if playlist {
        // Who may watch is checked on the playlist, which a player fetches every segment or so; segments are
        // served while the program is on air with a stream.
        let open = match cache.open.within(VISIBILITY_TTL) {
            Some(open) => open,
            None => {
                let open = watchable(&state, &params).await.is_ok();
                cache.open.set(open);
                open
            }
        };
        if !open {
            return Err(ApiError::NotFound("show"));
        }
        match cache.playlist.within(PLAYLIST_TTL) {
            Some(bytes) => bytes,
            None => {
                let bytes = Bytes::from(tokio::fs::read(dir.join(name)).await.map_err(|_| not_live())?);
                cache.playlist.set(bytes.clone());
                bytes
            }
        }
    } else if let Some(bytes) = cache.file(name) {
        bytes
    } else {
        let bytes = Bytes::from(tokio::fs::read(dir.join(name)).await.map_err(|_| ApiError::NotFound("segment"))?);
        cache.keep(name, bytes.clone());
        bytes
    };
    // The playlist changes with every segment; a segment never changes once it is listed.
    let cache_control = if playlist { "no-cache" } else { "public, max-age=60" };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
        ],
        bytes,
    )
        .into_response())
}

/// Chunks of FLV an HTTP viewer may have waiting (each at most FFmpeg's 32 KiB buffer): a viewer further behind
/// than this is too slow for the stream and is let go.
const FLV_BACKLOG: usize = 64;

#[utoipa::path(get, path = "/api/watch/{id}/live.flv", tag = "watch", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the live program as an endless FLV stream (H.264 + AAC), from a keyframe", content_type = "video/x-flv"),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn flv(State(state): State<AppState>, PathParams(params): PathParams) -> ApiResult<Response> {
    let b = watchable(&state, &params).await?;
    let control =
        streaming(&state, b.id).await.ok_or(ApiError::NotFound("stream (the show is not live)"))?.control.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(FLV_BACKLOG);
    // Called on the viewer's sender thread: never blocks; a full backlog or a closed connection ends the viewer.
    let sink: backyard_core::egress::ByteSink =
        Arc::new(move |chunk: &[u8]| tx.try_send(Bytes::copy_from_slice(chunk)).is_ok());
    control.add_flv_viewer(sink).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("video/x-flv")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

#[utoipa::path(get, path = "/watch/{id}", tag = "watch",
    params(("id" = String, Path, description = "the broadcast's id; the page itself says when no show open to viewers has it")),
    responses((status = 200, description = "the show's watch page", content_type = "text/html")))]
pub async fn page(State(state): State<AppState>, req: Request) -> Response {
    super::studio_page(&state, "watch.html", req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stream_files_are_served() {
        assert_eq!(hls_file("index.m3u8"), Some("application/vnd.apple.mpegurl"));
        assert_eq!(hls_file("init.mp4"), Some("video/mp4"));
        assert_eq!(hls_file("seg-00042.m4s"), Some("video/iso.segment"));
        for bad in
            ["", "seg-0042.m4s", "seg-00042.m4s.tmp", "../x.m4s", "seg-0004a.m4s", "index.m3u8.tmp", "seg-99999.mp4"]
        {
            assert_eq!(hls_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_the_server_reads_are_checked() {
        let ok = serde_json::json!({"watch": "public", "backstage": true, "theme": "dark"});
        assert!(check_settings(ok.as_object().unwrap()).is_ok());
        for (bad, field) in [
            (serde_json::json!({"watch": "everyone"}), "settings.watch"),
            (serde_json::json!({"watch": true}), "settings.watch"),
            (serde_json::json!({"backstage": "yes"}), "settings.backstage"),
        ] {
            match check_settings(bad.as_object().unwrap()) {
                Err(ApiError::Invalid { field: Some(f), .. }) => assert_eq!(f, field),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
