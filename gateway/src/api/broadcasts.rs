//! `/api/broadcasts`: list, create, get, patch, delete, start, end, and the scene.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::check_name;
use super::extract::{ApiJson, ApiQuery, PageOf, PageQuery};
use crate::auth::{BroadcastAccess, CurrentUser, HostAccess, OwnerAccess};
use crate::error::{ApiError, ApiResult};
use crate::scene::Scene;
use crate::state::{AppState, Quota};
use crate::store::{Broadcast, BroadcastStatus};

type Json<T> = axum::Json<T>;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBroadcast {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    /// Studio settings, a JSON object. The server reads `watch` (`off` | `unlisted` | `public`: who may watch
    /// the show on this server's watch page) and `backstage` (guests wait until admitted); the rest is free-form.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBroadcast {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub title: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

fn check_description(d: &str) -> ApiResult<String> {
    if d.chars().count() > 5000 {
        return Err(ApiError::invalid("description", "must be at most 5000 characters"));
    }
    Ok(d.to_owned())
}

#[utoipa::path(get, path = "/api/broadcasts", tag = "broadcasts", params(PageQuery),
    responses((status = 200, body = PageOf<Broadcast>), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<PageOf<Broadcast>>> {
    let (limit, offset) = page.bounds()?;
    let p = state.store.list_broadcasts(user.id, limit, offset).await?;
    Ok(axum::Json(PageOf { items: p.items, total: p.total, limit, offset }))
}

#[utoipa::path(post, path = "/api/broadcasts", tag = "broadcasts", request_body = CreateBroadcast,
    responses((status = 201, body = Broadcast), (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<CreateBroadcast>,
) -> ApiResult<(StatusCode, Json<Broadcast>)> {
    let title = check_name("title", &body.title, 200)?;
    let description = check_description(&body.description)?;
    let settings = body.settings.unwrap_or_default();
    super::watch::check_settings(&settings)?;
    state.check_quota(user.id, Quota::Broadcast).await?;
    let settings = serde_json::Value::Object(settings);
    let b = state.store.create_broadcast(user.id, &title, &description, settings).await?;
    Ok((StatusCode::CREATED, axum::Json(b)))
}

#[utoipa::path(get, path = "/api/broadcasts/{id}", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Broadcast), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(access: BroadcastAccess) -> ApiResult<Json<Broadcast>> {
    Ok(axum::Json(access.broadcast))
}

#[utoipa::path(patch, path = "/api/broadcasts/{id}", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    request_body = PatchBroadcast, responses((status = 200, body = Broadcast), (status = 404, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    ApiJson(body): ApiJson<PatchBroadcast>,
) -> ApiResult<Json<Broadcast>> {
    let mut b = access.broadcast;
    if let Some(t) = body.title {
        b.title = check_name("title", &t, 200)?;
    }
    if let Some(d) = body.description {
        b.description = check_description(&d)?;
    }
    if let Some(s) = body.settings {
        super::watch::check_settings(&s)?;
        b.settings = sqlx::types::Json(serde_json::Value::Object(s));
    }
    Ok(axum::Json(state.store.update_broadcast(&b).await?))
}

#[utoipa::path(delete, path = "/api/broadcasts/{id}", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, OwnerAccess(access): OwnerAccess) -> ApiResult<StatusCode> {
    if access.broadcast.status == BroadcastStatus::Live {
        return Err(ApiError::conflict("broadcast_live", "end the broadcast before deleting it"));
    }
    state.store.delete_broadcast(access.broadcast.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/start", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Broadcast), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn start(State(state): State<AppState>, HostAccess(access): HostAccess) -> ApiResult<Json<Broadcast>> {
    match access.broadcast.status {
        BroadcastStatus::Live => return Err(ApiError::conflict("already_live", "the broadcast is already live")),
        BroadcastStatus::Ended => {
            return Err(ApiError::conflict(
                "broadcast_ended",
                "an ended broadcast cannot be restarted; create a new one",
            ));
        }
        BroadcastStatus::Scheduled => {}
    }
    // The owner's quotas count, whoever of the hosts presses Go live.
    state.check_quota(access.broadcast.user_id, Quota::GoLive).await?;
    // Encode once and push to every enabled destination while recording; nothing is marked live unless
    // that started.
    let hub = crate::signaling::Hub::get(&state).await?;
    let members = hub.participants(access.broadcast.id);
    hub.programs.go_live(&state, &hub.media, &access.broadcast, members).await?;
    Ok(axum::Json(crate::program::mark_live(&state, access.broadcast.id).await?))
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/end", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Broadcast), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn end(State(state): State<AppState>, HostAccess(access): HostAccess) -> ApiResult<Json<Broadcast>> {
    if access.broadcast.status != BroadcastStatus::Live {
        return Err(ApiError::conflict("not_live", "the broadcast is not live"));
    }
    // A relay broadcast (an encoder publishing through the RTMP ingest) ends its own way: outputs closed,
    // recording finalised, the broadcast marked ended and announced.
    if state.ingest.end_relay(access.broadcast.id).await {
        let b = state.store.broadcast(access.broadcast.id).await?.ok_or(ApiError::NotFound("broadcast"))?;
        return Ok(axum::Json(b));
    }
    // Flush and close every output and finalise the recording (bounded by egress' timeouts). An ended
    // broadcast cannot go live again, so its program stops too.
    let hub = crate::signaling::Hub::get(&state).await?;
    hub.programs.end_live(&state, &hub.media, access.broadcast.id).await?;
    Ok(axum::Json(crate::program::mark_ended(&state, access.broadcast.id, None).await?))
}

#[utoipa::path(get, path = "/api/broadcasts/{id}/scene", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Scene), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_scene(access: BroadcastAccess) -> ApiResult<Json<Scene>> {
    Ok(axum::Json(Scene::of(&access.broadcast)))
}

#[utoipa::path(put, path = "/api/broadcasts/{id}/scene", tag = "broadcasts", params(("id" = uuid::Uuid, Path)),
    request_body = Scene, responses((status = 200, body = Scene), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_scene(
    State(state): State<AppState>,
    HostAccess(access): HostAccess,
    ApiJson(scene): ApiJson<Scene>,
) -> ApiResult<Json<Scene>> {
    Ok(axum::Json(crate::scene::apply(&state, access.broadcast.id, scene).await?))
}

/// Width of the studio's program preview.
const PREVIEW_WIDTH: u32 = 640;

/// Which canvas `program.jpg` shows.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StillQuery {
    /// `main` (left out) or the id of one of the scene's `canvases`.
    pub canvas: Option<String>,
}

#[utoipa::path(get, path = "/api/broadcasts/{id}/program.jpg", tag = "broadcasts", params(("id" = uuid::Uuid, Path), StillQuery),
    responses((status = 200, description = "the latest composed frame of the program's canvas, 640 pixels wide", content_type = "image/jpeg"),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn program_preview(
    State(state): State<AppState>,
    HostAccess(access): HostAccess,
    ApiQuery(query): ApiQuery<StillQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let scene = Scene::of(&access.broadcast);
    let (canvas, _) = scene.find_canvas(query.canvas.as_deref(), (0, 0)).ok_or_else(|| {
        ApiError::invalid("canvas", "the scene has no such canvas; main or one of the scene's canvases[].id")
    })?;
    let hub = crate::signaling::Hub::get(&state).await?;
    let frame = hub
        .programs
        .get(access.broadcast.id)
        .and_then(|live| live.program.preview_of(canvas))
        .ok_or(ApiError::NotFound("program (no host is in the studio yet)"))?;
    let jpeg = tokio::task::spawn_blocking(move || backyard_core::compositor::preview::jpeg(&frame, PREVIEW_WIDTH))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/jpeg"), (axum::http::header::CACHE_CONTROL, "no-store")], jpeg)
        .into_response())
}
