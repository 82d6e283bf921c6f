//! `/api/watch/{id}/whep`: WHEP viewers of a live show (the WebRTC-HTTP Egress Protocol, the counterpart of
//! WHIP). A player `POST`s its SDP offer (to receive video) and gets `201` with the answer and its resource
//! URL; `DELETE` there ends it (`PATCH`, for trickle ICE, answers 405, as for WHIP). The viewer gets the program's own H.264, packetized as it comes out of the
//! encoder: no second encode. Who may watch is the watch page's rule (`settings.watch`), with no session;
//! a show relayed from an RTMP encoder has no WebRTC viewers (its stream may carry B-frames).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use backyard_core::router::RouterError;
use backyard_core::rtc::{MediaEvent, NodeError};
use uuid::Uuid;

use super::extract::PathParams;
use super::watch::{streaming, watchable};
use super::whip::{created, sdp_offer};
use crate::auth::path_uuid;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[utoipa::path(post, path = "/api/watch/{id}/whep", tag = "watch", params(("id" = Uuid, Path)),
    request_body(content = String, content_type = "application/sdp", description = "The player's SDP offer to receive."),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session's resource URL.",
            content_type = "application/sdp", body = String),
        (status = 404, description = "No show open to viewers by that id, or it is not live.", body = crate::error::ErrorBody),
        (status = 409, description = "The show is relayed from an encoder: play its HLS stream.", body = crate::error::ErrorBody),
        (status = 503, description = "The show has as many WebRTC viewers as this server takes.", body = crate::error::ErrorBody),
    ))]
pub async fn watch(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams(params): PathParams,
    body: Body,
) -> ApiResult<Response> {
    let b = watchable(&state, &params).await?;
    let offer = sdp_offer(&headers, body).await?;
    let stream = streaming(&state, b.id).await.ok_or(ApiError::NotFound("stream (the show is not live)"))?;
    let Some(webrtc) = &stream.webrtc else {
        return Err(ApiError::conflict(
            "no_webrtc",
            "this show is relayed from an encoder and has no WebRTC viewers; play its HLS stream",
        ));
    };
    let viewer = Uuid::new_v4();
    let (handle, mut events) = webrtc.media.join_viewer(&webrtc.room, &viewer.to_string()).map_err(|e| match e {
        NodeError::Router(RouterError::RoomFull(n)) => {
            ApiError::Unavailable(format!("this show has as many WebRTC viewers as the server takes ({n})"))
        }
        e => ApiError::Internal(e.into()),
    })?;
    let answer = handle
        .offer(offer)
        .await
        .map_err(|e| ApiError::bad_request("invalid_sdp", format!("the SDP offer was refused: {e}"), None))?;
    webrtc.sessions.lock().insert(viewer, handle);
    // The session ends by itself when the viewer goes away: it leaves the list then.
    let weak = std::sync::Arc::downgrade(&stream);
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if matches!(ev, MediaEvent::Closed(_)) {
                break;
            }
        }
        if let Some(w) = weak.upgrade().as_ref().and_then(|s| s.webrtc.as_ref()) {
            w.sessions.lock().remove(&viewer);
        }
    });
    tracing::debug!(broadcast = %b.id, %viewer, "whep: watching");
    created(answer, &format!("/api/watch/{}/whep/{viewer}", b.id))
}

#[utoipa::path(delete, path = "/api/watch/{id}/whep/{session}", tag = "watch",
    params(("id" = Uuid, Path), ("session" = Uuid, Path)),
    responses((status = 200, description = "The viewer's session ended."), (status = 404, body = crate::error::ErrorBody)))]
pub async fn end(State(state): State<AppState>, PathParams(params): PathParams) -> ApiResult<StatusCode> {
    let id = path_uuid(&params, "id")?;
    let session = path_uuid(&params, "session")?;
    let gone = || ApiError::NotFound("WHEP session");
    let stream = streaming(&state, id).await.ok_or_else(gone)?;
    let removed = stream.webrtc.as_ref().and_then(|w| w.sessions.lock().remove(&session));
    removed.map(|_| StatusCode::OK).ok_or_else(gone)
}
