//! `/api/broadcasts/{id}/ingest-keys`: the keys an encoder (OBS, ffmpeg, a hardware encoder) publishes to the
//! RTMP ingest with. A key is shown whole when created and when its owner asks for it again (`/reveal`, for
//! the studio's copy button); lists show it masked. Stored as its SHA-256 (how the ingest finds it) and
//! sealed with the stream-key cipher. Revoking a key disconnects an encoder publishing with it.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::check_name;
use super::extract::{ApiJson, PathParams};
use crate::auth::{BroadcastAccess, HostAccess, OwnerAccess, path_uuid};
use crate::crypto::mask;
use crate::error::{ApiError, ApiResult};
use crate::ingest::IngestStatus;
use crate::state::AppState;
use crate::store::{IngestKeyRow, IngestMode, NewIngestKey};

type Json<T> = axum::Json<T>;

/// Keys one broadcast may have.
pub const MAX_KEYS: usize = 10;
/// A key's label, in characters.
pub const LABEL_MAX: usize = 60;

/// An ingest key as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestKey {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    pub label: String,
    /// `relay`: the RTMP stream goes to the broadcast's destinations, recording and watch page as it is;
    /// `source`: a WHIP publisher joins the studio as a participant.
    pub mode: IngestMode,
    /// Masked in lists (the last four characters); whole when just created.
    pub key: String,
    /// Whether an encoder is publishing with it now.
    pub status: IngestStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A broadcast's ingest keys and where encoders send to.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestKeyList {
    /// The server URL for the encoder (`rtmp://host:1935/live`); the key goes in its own field. Absent when
    /// the RTMP ingest is off on this server.
    pub rtmp_url: Option<String>,
    /// The WHIP endpoint a `source` key publishes to (its key as the Bearer token).
    pub whip_url: String,
    pub items: Vec<IngestKey>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateIngestKey {
    /// 1–60 characters: what the studio calls the encoder ("OBS on the desk").
    #[schema(
        min_length = 1,
        max_length = 60,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub label: String,
    /// `relay` (the default) or `source`.
    #[serde(default)]
    pub mode: Option<IngestMode>,
}

/// A key shown whole.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevealedKey {
    pub key: String,
}

fn shown(state: &AppState, row: IngestKeyRow, key: String) -> IngestKey {
    IngestKey {
        status: state.ingest.status(row.id),
        id: row.id,
        broadcast_id: row.broadcast_id,
        label: row.label,
        mode: row.mode,
        key,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
    }
}

fn open(state: &AppState, row: &IngestKeyRow) -> ApiResult<String> {
    state.cipher.open(&row.key_sealed, &row.key_nonce, &row.key_kid).map_err(|e| {
        ApiError::conflict("key_unreadable", format!("the key cannot be read ({e}); revoke it and create another"))
    })
}

async fn load(state: &AppState, access: &BroadcastAccess, params: &HashMap<String, String>) -> ApiResult<IngestKeyRow> {
    let id = path_uuid(params, "keyId")?;
    state.store.ingest_key(access.broadcast.id, id).await?.ok_or(ApiError::NotFound("ingest key"))
}

#[utoipa::path(get, path = "/api/broadcasts/{id}/ingest-keys", tag = "ingest", params(("id" = Uuid, Path)),
    responses((status = 200, body = IngestKeyList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, HostAccess(access): HostAccess) -> ApiResult<Json<IngestKeyList>> {
    let rows = state.store.ingest_keys(access.broadcast.id).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let masked = open(&state, &row).map(|k| mask(&k)).unwrap_or_else(|_| "••••".into());
            shown(&state, row, masked)
        })
        .collect();
    let whip_url = format!("{}/api/whip", state.cfg.public_url.trim_end_matches('/'));
    Ok(axum::Json(IngestKeyList { rtmp_url: crate::ingest::rtmp_url(&state), whip_url, items }))
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/ingest-keys", tag = "ingest", params(("id" = Uuid, Path)),
    request_body = CreateIngestKey,
    responses((status = 201, body = IngestKey), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    ApiJson(input): ApiJson<CreateIngestKey>,
) -> ApiResult<(StatusCode, Json<IngestKey>)> {
    let label = check_name("label", &input.label, LABEL_MAX)?;
    let mode = input.mode.unwrap_or(IngestMode::Relay);
    if state.store.ingest_keys(access.broadcast.id).await?.len() >= MAX_KEYS {
        return Err(ApiError::conflict(
            "too_many_ingest_keys",
            format!("a broadcast has at most {MAX_KEYS} ingest keys"),
        ));
    }
    let (token, _) = crate::auth::tokens::random_token();
    let key = format!("by_{token}");
    let sealed = state.cipher.seal(&key);
    let row = state
        .store
        .create_ingest_key(NewIngestKey {
            broadcast_id: access.broadcast.id,
            label,
            mode,
            key_sha256: crate::auth::tokens::hash_token(&key),
            key_sealed: sealed.ciphertext,
            key_nonce: sealed.nonce,
            key_kid: sealed.kid,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(shown(&state, row, key))))
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/ingest-keys/{keyId}/reveal", tag = "ingest",
    params(("id" = Uuid, Path), ("keyId" = Uuid, Path)),
    responses((status = 200, body = RevealedKey), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reveal(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    PathParams(params): PathParams,
) -> ApiResult<Json<RevealedKey>> {
    let row = load(&state, &access, &params).await?;
    Ok(axum::Json(RevealedKey { key: open(&state, &row)? }))
}

#[utoipa::path(delete, path = "/api/broadcasts/{id}/ingest-keys/{keyId}", tag = "ingest",
    params(("id" = Uuid, Path), ("keyId" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    PathParams(params): PathParams,
) -> ApiResult<StatusCode> {
    let row = load(&state, &access, &params).await?;
    state.store.delete_ingest_key(access.broadcast.id, row.id).await?;
    state.ingest.revoked(row.id);
    state.whip.revoked(row.id);
    Ok(StatusCode::NO_CONTENT)
}
