//! `/api/recordings`: list, get, delete, and download with HTTP Range.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;

use super::extract::{ApiQuery, PageOf, PageQuery, PathParams};
use crate::auth::{CurrentUser, path_uuid};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Recording;

async fn own(state: &AppState, user: &CurrentUser, params: &HashMap<String, String>) -> ApiResult<Recording> {
    let id = path_uuid(params, "id")?;
    state.store.recording(id).await?.filter(|r| r.user_id == user.id).ok_or(ApiError::NotFound("recording"))
}

#[utoipa::path(get, path = "/api/recordings", tag = "recordings", params(PageQuery),
    responses((status = 200, body = PageOf<Recording>), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<PageOf<Recording>>> {
    let (limit, offset) = page.bounds()?;
    let p = state.store.list_recordings(user.id, limit, offset).await?;
    Ok(axum::Json(PageOf { items: p.items, total: p.total, limit, offset }))
}

#[utoipa::path(get, path = "/api/recordings/{id}", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 200, body = Recording), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    PathParams(params): PathParams,
) -> ApiResult<axum::Json<Recording>> {
    Ok(axum::Json(own(&state, &user, &params).await?))
}

#[utoipa::path(delete, path = "/api/recordings/{id}", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    PathParams(params): PathParams,
    req: Request,
) -> ApiResult<Response> {
    let rec = own(&state, &user, &params).await?;
    if rec.status == crate::store::RecordingStatus::Recording {
        return Err(ApiError::conflict("recording_in_progress", "end the broadcast before deleting its recording"));
    }
    let path = crate::program::recording_file(&state.cfg, &rec);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // On the disk of the node that recorded it, if that node is up: it deletes the file and the row.
        if let Ok(res) = super::forward::to_node(&state, &rec.node, req).await {
            return Ok(res);
        }
    }
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ApiError::Internal(e.into())),
    }
    state.store.delete_recording(rec.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/recordings/{id}/file", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the file: MP4 for the program, WebM or Matroska for a participant", content_type = "video/mp4"), (status = 206, description = "a byte range"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn file(
    State(state): State<AppState>,
    user: CurrentUser,
    PathParams(params): PathParams,
    req: Request,
) -> ApiResult<Response> {
    let rec = own(&state, &user, &params).await?;
    let path = crate::program::recording_file(&state.cfg, &rec);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // Written to the folder of the node that recorded it: that node serves it.
        return match super::forward::to_node(&state, &rec.node, req).await {
            Ok(res) => Ok(res),
            Err(_) => Err(ApiError::NotFound("recording file")),
        };
    }
    let res =
        tower_http::services::ServeFile::new(&path).oneshot(req).await.map_err(|e| ApiError::Internal(e.into()))?;
    Ok(res.into_response())
}
