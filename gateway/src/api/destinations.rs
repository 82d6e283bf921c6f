//! `/api/broadcasts/{id}/destinations`: where the program is pushed. Stream keys are encrypted at rest and
//! only ever returned masked.

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
use crate::state::AppState;
use crate::store::{DestinationRow, NewDestination};

type Json<T> = axum::Json<T>;

/// A destination as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    /// `youtube` | `twitch` | `facebook` | `rtmp`
    pub platform: String,
    pub name: String,
    pub rtmp_url: String,
    /// Masked: at most the last four characters.
    pub stream_key: String,
    /// Set when the stored key cannot be decrypted (tampered, or its encryption key was removed): re-enter it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_error: Option<String>,
    pub enabled: bool,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateDestination {
    pub platform: String,
    pub name: Option<String>,
    /// Required for `rtmp`; defaults to the platform's primary ingest otherwise.
    pub rtmp_url: Option<String>,
    pub stream_key: String,
    pub enabled: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchDestination {
    pub name: Option<String>,
    pub rtmp_url: Option<String>,
    pub stream_key: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestCheck {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestReport {
    pub ok: bool,
    pub checks: Vec<TestCheck>,
}

pub const PLATFORMS: &[&str] = &["youtube", "twitch", "facebook", "rtmp"];

fn default_ingest(platform: &str) -> Option<&'static str> {
    match platform {
        "youtube" => Some("rtmp://a.rtmp.youtube.com/live2"),
        "twitch" => Some("rtmp://live.twitch.tv/app"),
        "facebook" => Some("rtmps://live-api-s.facebook.com:443/rtmp"),
        _ => None,
    }
}

fn display_name(platform: &str) -> &'static str {
    match platform {
        "youtube" => "YouTube",
        "twitch" => "Twitch",
        "facebook" => "Facebook",
        _ => "Custom RTMP",
    }
}

/// An `rtmp://` or `rtmps://` URL with a host, no credentials, no whitespace.
pub fn check_rtmp_url(url: &str) -> ApiResult<String> {
    let url = url.trim();
    let bad = |m: &str| Err(ApiError::invalid("rtmpUrl", m.to_owned()));
    let Some((scheme, rest)) = url.split_once("://") else { return bad("must be an rtmp:// or rtmps:// URL") };
    if scheme != "rtmp" && scheme != "rtmps" {
        return bad("scheme must be rtmp or rtmps");
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return bad("must name a host, without credentials");
    }
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must be at most 2048 characters without spaces");
    }
    Ok(url.to_owned())
}

pub fn check_stream_key(key: &str) -> ApiResult<&str> {
    if key.is_empty() || key.len() > 512 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid("streamKey", "must be 1..=512 characters without spaces"));
    }
    Ok(key)
}

impl Destination {
    fn from_row(state: &AppState, row: DestinationRow) -> ApiResult<Self> {
        let (stream_key, key_error) =
            match state.cipher.open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid) {
                Ok(key) => (mask(&key), None),
                Err(e) => {
                    tracing::error!(destination = %row.id, error = %e, "stream key unreadable");
                    (String::new(), Some(e.to_string()))
                }
            };
        Ok(Self {
            id: row.id,
            broadcast_id: row.broadcast_id,
            platform: row.platform,
            name: row.name,
            rtmp_url: row.rtmp_url,
            stream_key,
            key_error,
            enabled: row.enabled,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[utoipa::path(get, path = "/api/broadcasts/{id}/destinations", tag = "destinations", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Destination>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, HostAccess(access): HostAccess) -> ApiResult<Json<Vec<Destination>>> {
    let rows = state.store.destinations(access.broadcast.id).await?;
    Ok(axum::Json(rows.into_iter().map(|r| Destination::from_row(&state, r)).collect::<ApiResult<_>>()?))
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/destinations", tag = "destinations", params(("id" = Uuid, Path)),
    request_body = CreateDestination, responses((status = 201, body = Destination), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    ApiJson(body): ApiJson<CreateDestination>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    if !PLATFORMS.contains(&body.platform.as_str()) {
        return Err(ApiError::invalid("platform", format!("one of {}", PLATFORMS.join(", "))));
    }
    let rtmp_url = match (&body.rtmp_url, default_ingest(&body.platform)) {
        (Some(u), _) => check_rtmp_url(u)?,
        (None, Some(d)) => d.to_owned(),
        (None, None) => return Err(ApiError::invalid("rtmpUrl", "required for a custom RTMP destination")),
    };
    let key = check_stream_key(&body.stream_key)?;
    let name = match &body.name {
        Some(n) => check_name("name", n, 100)?,
        None => display_name(&body.platform).to_owned(),
    };
    let sealed = state.cipher.seal(key);
    let row = state
        .store
        .create_destination(NewDestination {
            broadcast_id: access.broadcast.id,
            platform: body.platform,
            name,
            rtmp_url,
            stream_key: sealed.ciphertext,
            stream_key_nonce: sealed.nonce,
            stream_key_kid: sealed.kid,
            enabled: body.enabled.unwrap_or(true),
        })
        .await?;
    tracing::info!(destination = %row.id, platform = %row.platform, "destination added");
    Ok((StatusCode::CREATED, axum::Json(Destination::from_row(&state, row)?)))
}

async fn load(
    state: &AppState,
    access: &BroadcastAccess,
    params: &HashMap<String, String>,
) -> ApiResult<DestinationRow> {
    let id = path_uuid(params, "destId")?;
    state.store.destination(access.broadcast.id, id).await?.ok_or(ApiError::NotFound("destination"))
}

#[utoipa::path(patch, path = "/api/broadcasts/{id}/destinations/{destId}", tag = "destinations",
    params(("id" = Uuid, Path), ("destId" = Uuid, Path)), request_body = PatchDestination,
    responses((status = 200, body = Destination), (status = 404, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    PathParams(params): PathParams,
    ApiJson(body): ApiJson<PatchDestination>,
) -> ApiResult<Json<Destination>> {
    let mut row = load(&state, &access, &params).await?;
    if let Some(n) = &body.name {
        row.name = check_name("name", n, 100)?;
    }
    if let Some(u) = &body.rtmp_url {
        row.rtmp_url = check_rtmp_url(u)?;
    }
    if let Some(k) = &body.stream_key {
        let sealed = state.cipher.seal(check_stream_key(k)?);
        row.stream_key = sealed.ciphertext;
        row.stream_key_nonce = sealed.nonce;
        row.stream_key_kid = sealed.kid;
    }
    if let Some(e) = body.enabled {
        row.enabled = e;
    }
    let row = state.store.update_destination(&row).await?;
    Ok(axum::Json(Destination::from_row(&state, row)?))
}

#[utoipa::path(delete, path = "/api/broadcasts/{id}/destinations/{destId}", tag = "destinations",
    params(("id" = Uuid, Path), ("destId" = Uuid, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    PathParams(params): PathParams,
) -> ApiResult<StatusCode> {
    let row = load(&state, &access, &params).await?;
    state.store.delete_destination(access.broadcast.id, row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/destinations/{destId}/test", tag = "destinations",
    params(("id" = Uuid, Path), ("destId" = Uuid, Path)), responses((status = 200, body = TestReport), (status = 404, body = crate::error::ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    HostAccess(access): HostAccess,
    PathParams(params): PathParams,
) -> ApiResult<Json<TestReport>> {
    let row = load(&state, &access, &params).await?;
    let mut checks = Vec::new();
    let url = check_rtmp_url(&row.rtmp_url);
    checks.push(TestCheck {
        name: "url".into(),
        ok: url.is_ok(),
        message: url.err().map(|e| e.to_string()).unwrap_or_else(|| "well-formed rtmp(s) URL".into()),
    });
    let key = state.cipher.open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid);
    let key_check = match &key {
        Ok(k) => {
            check_stream_key(k).map(|_| "stream key decrypts and is well-formed".to_owned()).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    checks.push(TestCheck {
        name: "streamKey".into(),
        ok: key_check.is_ok(),
        message: key_check.unwrap_or_else(|e| e),
    });
    tracing::debug!(destination = %row.id, url = %row.rtmp_url, "destination checked");
    Ok(axum::Json(TestReport { ok: checks.iter().all(|c| c.ok), checks }))
}
