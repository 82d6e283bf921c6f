//! `/api/whip`: WHIP ingest (RFC 9725). An encoder or a page `POST`s its SDP offer with a `source` ingest key as
//! the Bearer token and gets `201` with the answer and its resource URL (`Location`); `DELETE` on that URL ends
//! it. The publisher joins the key's broadcast as a participant named after the key's label
//! ([`crate::signaling::whip`]). Trickle ICE and ICE restarts are not offered (`PATCH` is not a method of the
//! session, so it answers 405): the server is ICE-lite with one host candidate, so an offer with its gathered
//! candidates is all it needs.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::PathParams;
use crate::auth::path_uuid;
use crate::error::{ApiError, ApiResult};
use crate::signaling::Hub;
use crate::signaling::whip::{self, WhipError};
use crate::state::AppState;
use crate::store::{BroadcastStatus, IngestKeyRow, IngestMode};

/// The largest SDP offer taken (a browser's offer with every codec and candidate is about 10 KiB).
const MAX_OFFER_BYTES: usize = 64 * 1024;

/// The ingest key in `Authorization: Bearer`, found by its SHA-256.
async fn key(state: &AppState, headers: &HeaderMap) -> ApiResult<IngestKeyRow> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthenticated)?;
    state.store.ingest_key_by_hash(&crate::auth::tokens::hash_token(token)).await?.ok_or(ApiError::Unauthenticated)
}

#[utoipa::path(post, path = "/api/whip", tag = "ingest",
    request_body(content = String, content_type = "application/sdp", description = "The publisher's SDP offer."),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session's resource URL.",
            content_type = "application/sdp", body = String),
        (status = 401, description = "No ingest key, or an unknown or revoked one.", body = crate::error::ErrorBody),
        (status = 409, description = "The key relays RTMP, its broadcast has ended or is full, or it publishes already.",
            body = crate::error::ErrorBody),
    ))]
pub async fn publish(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let key = match key(&state, &headers).await {
        Ok(key) => key,
        Err(e) => {
            // Read the rest of the offer first (bounded): a refusal sent while the encoder is still writing would
            // end the connection under it, and it would see a broken pipe instead of the 401.
            let _ = axum::body::to_bytes(body, MAX_OFFER_BYTES).await;
            return Err(e);
        }
    };
    let offer = sdp_offer(&headers, body).await?;
    if key.mode != IngestMode::Source {
        return Err(ApiError::conflict(
            "wrong_key_mode",
            "this key relays an RTMP stream; create a key in `source` mode to publish into the studio over WHIP",
        ));
    }
    let broadcast = state.store.broadcast(key.broadcast_id).await?.ok_or(ApiError::Unauthenticated)?;
    if broadcast.status == BroadcastStatus::Ended {
        return Err(ApiError::conflict("broadcast_ended", "this broadcast has ended"));
    }
    let hub = Hub::get(&state).await?;
    let (resource, answer) = whip::publish(&state, &hub, &broadcast, &key, offer).await.map_err(|e| match e {
        WhipError::KeyInUse => ApiError::conflict("key_in_use", e.to_string()),
        WhipError::RoomFull(message) => ApiError::conflict("room_full", message),
        WhipError::Media(e) => ApiError::bad_request("invalid_sdp", format!("the SDP offer was refused: {e}"), None),
        WhipError::Store(e) => e.into(),
    })?;
    created(answer, &format!("/api/whip/{resource}"))
}

/// The SDP offer a WHIP or WHEP client sends (`Content-Type: application/sdp`, UTF-8, at most 64 KiB).
pub(super) async fn sdp_offer(headers: &HeaderMap, body: Body) -> ApiResult<String> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be an SDP offer (Content-Type: application/sdp)".into(),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_OFFER_BYTES).await.map_err(|_| ApiError::PayloadTooLarge)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("invalid_sdp", "the SDP offer is not UTF-8 text", None))
}

/// `201 Created` with the SDP answer and the session's resource URL.
pub(super) fn created(answer: String, location: &str) -> ApiResult<Response> {
    let mut res = (StatusCode::CREATED, answer).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    headers.insert(header::LOCATION, HeaderValue::from_str(location).map_err(|e| ApiError::Internal(e.into()))?);
    Ok(res)
}

#[utoipa::path(delete, path = "/api/whip/{session}", tag = "ingest", params(("session" = Uuid, Path)),
    responses(
        (status = 200, description = "The session ended and its participant left the studio."),
        (status = 401, description = "No ingest key, or an unknown or revoked one.", body = crate::error::ErrorBody),
    ))]
pub async fn end(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams(params): PathParams,
) -> ApiResult<StatusCode> {
    let key = key(&state, &headers).await?;
    let resource = path_uuid(&params, "session")?;
    // Another key's session looks like a missing one.
    if !state.whip.owned_by(resource, key.id) || !state.whip.end(resource) {
        return Err(ApiError::NotFound("WHIP session"));
    }
    Ok(StatusCode::OK)
}
