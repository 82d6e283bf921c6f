//! `POST /api/upload`: images for overlays and backgrounds. The type is checked from the bytes, not the
//! client's claim; files are stored content-addressed (`<data_dir>/uploads/<sha256>`) and served back at
//! `/api/uploads/{sha256}`.

use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::extract::ClientIp;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Limit, Quota};

const ALLOWED: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadView {
    pub id: uuid::Uuid,
    pub sha256: String,
    pub content_type: String,
    pub size: i64,
    pub url: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the multipart form for OpenAPI only
pub struct UploadForm {
    /// The image (PNG, JPEG, GIF or WebP).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn too_large(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request("bad_multipart", e.body_text(), Some("file".into()))
    }
}

#[utoipa::path(post, path = "/api/upload", tag = "uploads", request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = UploadView), (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<UploadView>)> {
    state.limits.check(Limit::Upload, ip, Some(&user.id.to_string()))?;
    let mut multipart = multipart.map_err(|e| ApiError::UnsupportedMediaType(e.body_text()))?;
    let mut data = None;
    while let Some(field) = multipart.next_field().await.map_err(too_large)? {
        if field.name() == Some("file") {
            data = Some(field.bytes().await.map_err(too_large)?);
            break;
        }
    }
    let data = data.ok_or_else(|| ApiError::invalid("file", "a multipart field named file is required"))?;
    if data.is_empty() {
        return Err(ApiError::invalid("file", "empty file"));
    }
    if data.len() > state.cfg.limits.upload_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type =
        infer::get(&data).map(|t| t.mime_type()).filter(|m| ALLOWED.contains(m)).ok_or_else(|| ApiError::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_image",
            message: "only PNG, JPEG, GIF and WebP images are accepted".into(),
            field: Some("file".into()),
        })?;
    state.check_quota(user.id, Quota::Upload(data.len() as u64)).await?;
    let sha = hex::encode(Sha256::digest(&data));
    let dir = crate::uploads::dir(&state.cfg.data_dir);
    let path = dir.join(&sha);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        tokio::fs::create_dir_all(&dir).await.map_err(|e| ApiError::Internal(e.into()))?;
        // Write then rename, so a reader never sees half a file.
        let tmp = dir.join(format!("{sha}.{}.tmp", uuid::Uuid::new_v4()));
        tokio::fs::write(&tmp, &data).await.map_err(|e| ApiError::Internal(e.into()))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| ApiError::Internal(e.into()))?;
    }
    let row = state.store.create_upload(user.id, &sha, content_type, data.len() as i64).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadView {
            id: row.id,
            url: crate::uploads::url(&sha),
            sha256: sha,
            content_type: row.content_type,
            size: row.size,
        }),
    ))
}

#[utoipa::path(get, path = "/api/uploads/{sha256}", tag = "uploads", params(("sha256" = String, Path, pattern = r"^[0-9a-f]{64}$")),
    responses((status = 200, description = "the image"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn serve(State(state): State<AppState>, Path(sha): Path<String>) -> ApiResult<Response> {
    if !crate::uploads::is_sha256(&sha) {
        return Err(ApiError::bad_request(
            "invalid_id",
            "sha256 must be 64 lowercase hex digits",
            Some("sha256".into()),
        ));
    }
    let row = state.store.upload_by_sha(&sha).await?.ok_or(ApiError::NotFound("upload"))?;
    let bytes = tokio::fs::read(crate::uploads::dir(&state.cfg.data_dir).join(&sha))
        .await
        .map_err(|_| ApiError::NotFound("upload"))?;
    Ok((
        [
            (header::CONTENT_TYPE, row.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable".into()),
        ],
        bytes,
    )
        .into_response())
}
