//! `POST /api/upload`: images for overlays and backgrounds, and MP4 video clips to play into the program. The
//! type is checked from the bytes, not the client's claim (a clip is also opened and its streams' decoders
//! found, so one that cannot play is refused now, not on air); files are stored content-addressed (`<data_dir>/uploads/<sha256>`) and served back at
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

const ALLOWED: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp", crate::uploads::CLIP_TYPE];

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadView {
    pub id: uuid::Uuid,
    pub sha256: String,
    pub content_type: String,
    pub size: i64,
    pub url: String,
    /// The file name it came with (empty when none was sent).
    pub name: String,
}

impl UploadView {
    fn of(row: crate::store::Upload) -> UploadView {
        UploadView {
            id: row.id,
            url: crate::uploads::url(&row.sha256),
            sha256: row.sha256,
            content_type: row.content_type,
            size: row.size,
            name: row.name,
        }
    }
}

/// Which uploads to list.
#[derive(Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    /// Video clips (MP4).
    Clip,
    /// Images.
    Image,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUploads {
    /// `clip` for video clips only, `image` for images only; all when left out.
    #[param(inline)]
    pub kind: Option<UploadKind>,
}

#[utoipa::path(get, path = "/api/uploads", tag = "uploads", params(ListUploads),
    responses((status = 200, body = Vec<UploadView>), (status = 422, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    super::extract::ApiQuery(q): super::extract::ApiQuery<ListUploads>,
) -> ApiResult<axum::Json<Vec<UploadView>>> {
    let rows = match q.kind {
        None => state.store.uploads(user.id, None).await?,
        Some(UploadKind::Clip) => state.store.uploads(user.id, Some(crate::uploads::CLIP_TYPE)).await?,
        Some(UploadKind::Image) => {
            let mut all = state.store.uploads(user.id, None).await?;
            all.retain(|u| u.content_type.starts_with("image/"));
            all
        }
    };
    // One row per upload of the same file: the newest.
    let mut seen = std::collections::HashSet::new();
    Ok(axum::Json(rows.into_iter().filter(|r| seen.insert(r.sha256.clone())).map(UploadView::of).collect()))
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the multipart form for OpenAPI only
pub struct UploadForm {
    /// The image (PNG, JPEG, GIF or WebP) or video clip (MP4: H.264, VP8, VP9 or AV1 with AAC or Opus).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A 415 naming the `file` field: what was sent is not something the server takes.
fn unsupported(code: &'static str, message: String) -> ApiError {
    ApiError::Invalid { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, code, message, field: Some("file".into()) }
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
    let mut name = String::new();
    while let Some(field) = multipart.next_field().await.map_err(too_large)? {
        if field.name() == Some("file") {
            // The file name as the browser sent it, kept as a label (bounded, control characters dropped).
            name = field.file_name().unwrap_or_default().chars().filter(|c| !c.is_control()).take(120).collect();
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
    let content_type = infer::get(&data).map(|t| t.mime_type()).filter(|m| ALLOWED.contains(m)).ok_or_else(|| {
        unsupported("unsupported_image", "only PNG, JPEG, GIF and WebP images and MP4 video clips are accepted".into())
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
        if content_type == crate::uploads::CLIP_TYPE {
            let file = tmp.clone();
            let probed = tokio::task::spawn_blocking(move || backyard_core::compositor::clip::probe_clip(&file))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            if let Err(e) = probed {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(unsupported("unsupported_clip", format!("this clip cannot be played: {e}")));
            }
        }
        tokio::fs::rename(&tmp, &path).await.map_err(|e| ApiError::Internal(e.into()))?;
    }
    let row = state.store.create_upload(user.id, &sha, content_type, data.len() as i64, name.trim()).await?;
    Ok((StatusCode::CREATED, axum::Json(UploadView::of(row))))
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
