//! Participants' local recordings: with the host's consent (`settings.localRecording`), every participant's
//! browser records its own camera and microphone at full quality while the show is live and uploads the file
//! to `/api/local-recordings` with the tus resumable-upload protocol (1.0.0 with `creation`,
//! `creation-defer-length` and `termination`; fileloft speaks it), part by part during the show and the rest
//! after. A dropped connection or a reloaded page carries on from the offset the server holds. When the last
//! part is in, the server copies the file's packets into a WebM (or Matroska) file players can seek in, checks
//! it holds timed media, and lists it beside the show's other recordings with the participant's name.
//!
//! Who may upload: someone seated in the broadcast's studio on this node; each upload belongs to the session
//! that created it. What a broadcast keeps (kept files and uploads in progress) is bounded by
//! `limits.local_recording_bytes_per_broadcast`; a part past it is refused with a 413 naming that key. The room
//! hears of every part and of the file kept (`local-recording`), so the host sees each guest's upload.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fileloft_core::{
    Config as TusConfig, Extensions, Metadata, SendDataStore as _, SendUpload as _, TusBody, TusHandler, TusRequest,
    UploadId, UploadInfo,
};
use fileloft_store_fs::{FileLocker, FileStore};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::signaling::RoomEvent;
use crate::state::AppState;
use crate::store::{Broadcast, NewLocalRecording};

/// Where uploads are created; each lives at `PATH/<upload id>`.
pub const PATH: &str = "/api/local-recordings";
/// The most one part (one PATCH) may carry; the studio sends 512 KiB parts.
const MOST_PER_PART: u64 = 32 * 1024 * 1024;
/// The `[limits]` key that bounds a broadcast's local recordings, named in refusals.
const QUOTA_KEY: &str = "limits.local_recording_bytes_per_broadcast";

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Parts are coming in.
    Uploading,
    /// Every part is in, verified and listed (`recordingId`).
    Kept,
    /// Every part is in but the file holds no playable media (`message` says why).
    Failed,
    /// A part was refused: the broadcast's storage for local recordings is full (`message`).
    Refused,
}

/// An upload's progress as the room hears it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub state: UploadState,
    /// Bytes the server holds.
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<Uuid>,
    /// Seconds of media in the kept file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Progress {
    /// `state` with `bytes` held, nothing else said.
    fn at(state: UploadState, bytes: u64) -> Progress {
        Progress { state, bytes, recording_id: None, duration: None, message: None }
    }
}

/// Whether the host asked every participant's browser to record them while live.
pub fn asked_for(b: &Broadcast) -> bool {
    b.setting_on("localRecording")
}

/// The tus endpoints (outside the OpenAPI document: the tus protocol is their contract).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, axum::routing::any(collection))
        .route(&format!("{PATH}/{{id}}"), axum::routing::any(resource))
}

/// Uploads in progress are kept here, as fileloft writes them (`<id>` and `<id>.info`).
fn dir(state: &AppState) -> PathBuf {
    state.cfg.data_dir.join("local-uploads")
}

fn tus(state: &AppState) -> TusHandler<FileStore, FileLocker> {
    let root = dir(state);
    let config = TusConfig {
        base_path: format!("{PATH}/"),
        base_url: Some(state.public_origin.to_string()),
        max_size: state.cfg.limits.local_recording_bytes_per_broadcast,
        extensions: Extensions {
            creation: true,
            creation_with_upload: false,
            creation_defer_length: true,
            expiration: false,
            expiration_ttl: None,
            checksum: false,
            checksum_trailer: false,
            termination: true,
            concatenation: false,
            cleanup_concat_partials: false,
        },
        lock_timeout: std::time::Duration::from_secs(5),
        ..TusConfig::default()
    };
    TusHandler::new(FileStore::new(&root), Some(FileLocker::new(root.join("locks"))), config)
}

/// Hands a request to the tus handler and its answer back to axum.
async fn pass(
    state: &AppState,
    parts: axum::http::request::Parts,
    id: Option<String>,
    body: axum::body::Body,
) -> Response {
    if let Err(e) = tokio::fs::create_dir_all(dir(state).join("locks")).await {
        return ApiError::Internal(e.into()).into_response();
    }
    let body: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>> = (parts.method == Method::PATCH).then(|| {
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        Box::new(tokio_util::io::StreamReader::new(stream)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>
    });
    let req = TusRequest { method: parts.method, uri: parts.uri, upload_id: id, headers: parts.headers, body };
    let res = tus(state).handle(req).await;
    let mut out = match res.body {
        TusBody::Bytes(b) => Response::new(axum::body::Body::from(b)),
        TusBody::Reader(r) => Response::new(axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(r))),
    };
    *out.status_mut() = res.status;
    out.headers_mut().extend(res.headers);
    out
}

async fn collection(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let result = match parts.method {
        Method::OPTIONS => return pass(&state, parts, None, body).await,
        Method::POST => create(&state, &mut parts).await,
        _ => Err(not_allowed()),
    };
    match result {
        Ok(()) => pass(&state, parts, None, body).await,
        Err(e) => e.into_response(),
    }
}

async fn resource(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    if parts.method == Method::OPTIONS {
        return pass(&state, parts, Some(id), body).await;
    }
    if !matches!(parts.method, Method::HEAD | Method::PATCH | Method::DELETE) {
        return not_allowed().into_response();
    }
    let upload = match owned_upload(&state, &mut parts, &id).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if parts.method != Method::PATCH {
        return pass(&state, parts, Some(id), body).await;
    }
    if let Err(e) = check_part(&state, &parts.headers, &upload).await {
        return e.into_response();
    }
    let res = pass(&state, parts, Some(id.clone()), body).await;
    if res.status() == StatusCode::NO_CONTENT
        && let Some(info) = read_info(&state, &id).await
    {
        if info.is_complete() {
            let state = state.clone();
            tokio::spawn(async move { keep(&state, info).await });
        } else {
            tell(&state, &upload, Progress::at(UploadState::Uploading, info.offset)).await;
        }
    }
    res
}

fn not_allowed() -> ApiError {
    ApiError::bad_request("method_not_allowed", "the tus protocol's methods only", None)
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// Checks a new upload (`POST`) and writes who it is from into its metadata, over anything the client said.
async fn create(state: &AppState, parts: &mut axum::http::request::Parts) -> ApiResult<()> {
    let caller = Caller::from_request_parts(parts, state).await?;
    let meta = match parts.headers.get("upload-metadata") {
        None => Metadata::default(),
        Some(v) => v.to_str().ok().and_then(|s| Metadata::parse(s).ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_header", "not tus metadata (key base64, …)", Some("Upload-Metadata".into()))
        })?,
    };
    let text = |key: &str| meta.get(key).cloned().flatten();
    let broadcast_id = text("broadcast")
        .and_then(|s| Uuid::parse_str(&s).ok())
        .ok_or_else(|| ApiError::invalid("Upload-Metadata.broadcast", "the broadcast's id is required"))?;
    let broadcast = state.store.broadcast(broadcast_id).await?.ok_or(ApiError::NotFound("broadcast"))?;
    crate::auth::role_in(&caller, &broadcast).ok_or(ApiError::NotFound("broadcast"))?;
    if !asked_for(&broadcast) {
        return Err(ApiError::forbidden("the host has not turned on local recordings for this broadcast"));
    }
    let seat = crate::signaling::Hub::running(state)
        .and_then(|hub| hub.seat_of(broadcast_id, caller.session_key()))
        .ok_or_else(|| ApiError::conflict("not_in_studio", "join the broadcast's studio before recording in it"))?;
    let declared = match parts.headers.get("upload-length") {
        Some(v) => Some(v.to_str().ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_header", "must be a number of bytes", Some("Upload-Length".into()))
        })?),
        None => None,
    };
    let used = used_bytes(state, broadcast_id).await?;
    if used.saturating_add(declared.unwrap_or(1)) > quota(state) {
        return Err(over_quota(state, used));
    }
    let filetype = text("filetype").filter(|t| t.len() <= 100).unwrap_or_else(|| "video/webm".into());
    let mut stamped = Metadata::default();
    for (k, v) in [
        ("broadcast", broadcast_id.to_string()),
        ("owner", caller.session_key().to_string()),
        ("participant", seat.id.to_string()),
        ("name", seat.name),
        ("filetype", filetype),
    ] {
        stamped.0.insert(k.into(), Some(v));
    }
    let header = HeaderValue::from_str(&stamped.encode()).map_err(|e| ApiError::Internal(e.into()))?;
    parts.headers.insert("upload-metadata", header);
    Ok(())
}

/// Who an upload is from, as its metadata says.
struct Upload {
    broadcast: Uuid,
    participant: Uuid,
    name: String,
}

impl Upload {
    fn of(info: &UploadInfo) -> Option<(Upload, Uuid)> {
        let text = |key: &str| info.metadata.get(key).cloned().flatten();
        let uuid = |key: &str| text(key).and_then(|s| Uuid::parse_str(&s).ok());
        let upload = Upload { broadcast: uuid("broadcast")?, participant: uuid("participant")?, name: text("name")? };
        Some((upload, uuid("owner")?))
    }
}

/// The upload `id` if it is the caller's (someone else's looks like a missing one).
async fn owned_upload(state: &AppState, parts: &mut axum::http::request::Parts, id: &str) -> ApiResult<Upload> {
    let caller = Caller::from_request_parts(parts, state).await?;
    let info = read_info(state, id).await.ok_or(ApiError::NotFound("upload"))?;
    match Upload::of(&info) {
        Some((upload, owner)) if owner == caller.session_key() => Ok(upload),
        _ => Err(ApiError::NotFound("upload")),
    }
}

async fn read_info(state: &AppState, id: &str) -> Option<UploadInfo> {
    let id = UploadId::parse(id).ok()?;
    let root = dir(state);
    FileStore::new(&root).get_upload(&id).await.ok()?.get_info().await.ok()
}

fn quota(state: &AppState) -> u64 {
    state.cfg.limits.local_recording_bytes_per_broadcast
}

fn over_quota(state: &AppState, used: u64) -> ApiError {
    let mb = |b: u64| b as f64 / 1e6;
    ApiError::Invalid {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "over_quota",
        message: format!(
            "this broadcast's storage for local recordings is full ({:.1} of {:.1} MB used): the host can free it by \
             deleting local recordings, or the server's operator can raise {QUOTA_KEY}",
            mb(used),
            mb(quota(state))
        ),
        field: Some(QUOTA_KEY.into()),
    }
}

/// A part may come in if it is of a sensible size and the broadcast's storage can take it; a refused part is
/// told to the room as well as to the uploader.
async fn check_part(state: &AppState, headers: &HeaderMap, upload: &Upload) -> ApiResult<()> {
    let length_required = || {
        ApiError::bad_request("length_required", "a part says its length", Some("Content-Length".into()))
            .with_status(StatusCode::LENGTH_REQUIRED)
    };
    // A browser sends the last, empty part (the one saying `Upload-Length`) with no Content-Length at all.
    let length = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(length_required)?,
        None if headers.contains_key(header::TRANSFER_ENCODING) => return Err(length_required()),
        None => 0,
    };
    if length > MOST_PER_PART {
        return Err(ApiError::PayloadTooLarge);
    }
    let used = used_bytes(state, upload.broadcast).await?;
    if used.saturating_add(length) > quota(state) {
        let refusal = over_quota(state, used);
        let progress = Progress { message: Some(refusal.to_string()), ..Progress::at(UploadState::Refused, 0) };
        tell(state, upload, progress).await;
        return Err(refusal);
    }
    Ok(())
}

/// Bytes a broadcast's local recordings take: the files kept and the uploads in progress.
async fn used_bytes(state: &AppState, broadcast: Uuid) -> ApiResult<u64> {
    let kept = state.store.local_recording_bytes(broadcast).await?.max(0) as u64;
    let in_progress: u64 = uploads(state)
        .await
        .iter()
        .filter(|i| Upload::of(i).is_some_and(|(u, _)| u.broadcast == broadcast))
        .map(|i| i.offset)
        .sum();
    Ok(kept + in_progress)
}

/// Every upload in progress (or complete and not yet kept) on this node.
async fn uploads(state: &AppState) -> Vec<UploadInfo> {
    let mut out = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir(state)).await else { return out };
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".info")) else { continue };
        if let Some(info) = read_info(state, id).await {
            out.push(info);
        }
    }
    out
}

async fn tell(state: &AppState, upload: &Upload, progress: Progress) {
    let event = RoomEvent::LocalRecording { participant_id: upload.participant, name: upload.name.clone(), progress };
    crate::program::announce(state, upload.broadcast, event).await;
}

/// Every part of `info` is in: copy it into a file players can seek in, list it, and let the upload go. A file
/// with no playable media is told to the room and left where it is.
async fn keep(state: &AppState, info: UploadInfo) {
    let Some((upload, _)) = Upload::of(&info) else { return };
    let data = dir(state).join(info.id.as_str());
    let id = Uuid::now_v7();
    let folder = state.cfg.recordings_dir();
    let result = async {
        tokio::fs::create_dir_all(&folder).await.map_err(|e| e.to_string())?;
        let broadcast =
            state.store.broadcast(upload.broadcast).await.map_err(|e| e.to_string())?.ok_or("the broadcast is gone")?;
        let (file, remuxed) = tokio::task::spawn_blocking({
            let (data, folder) = (data.clone(), folder.clone());
            move || seekable_copy(&data, &folder, id)
        })
        .await
        .map_err(|e| e.to_string())??;
        let file_size = tokio::fs::metadata(&file).await.map_err(|e| e.to_string())?.len() as i64;
        let row = NewLocalRecording {
            id,
            broadcast_id: broadcast.id,
            user_id: broadcast.user_id,
            title: &broadcast.title,
            participant_id: &upload.participant.to_string(),
            participant_name: &upload.name,
            node: &state.cluster.node,
            duration: remuxed.duration,
            file_size,
        };
        state.store.create_local_recording(row).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(remuxed.duration)
    }
    .await;
    let progress = match result {
        Ok(duration) => {
            tracing::info!(recording = %id, participant = %upload.participant, duration, "a local recording was kept");
            if let Ok(u) = FileStore::new(dir(state)).get_upload(&info.id).await
                && let Err(e) = u.delete().await
            {
                tracing::warn!(upload = %info.id.as_str(), "could not remove a kept upload: {e}");
            }
            Progress {
                recording_id: Some(id),
                duration: Some(duration),
                ..Progress::at(UploadState::Kept, info.offset)
            }
        }
        Err(e) => {
            tracing::warn!(upload = %info.id.as_str(), participant = %upload.participant, "a local recording was not kept: {e}");
            let message = Some(format!("the uploaded file is not a playable recording: {e}"));
            Progress { message, ..Progress::at(UploadState::Failed, info.offset) }
        }
    };
    tell(state, &upload, progress).await;
}

/// Copies an upload's packets into `<folder>/<id>.webm`, or `.mkv` when its codecs are not WebM's.
fn seekable_copy(data: &Path, folder: &Path, id: Uuid) -> Result<(PathBuf, backyard_core::egress::Remuxed), String> {
    let mut last = String::new();
    for ext in ["webm", "mkv"] {
        let to = folder.join(format!("{id}.{ext}"));
        match backyard_core::egress::remux(data, &to) {
            Ok(r) => return Ok((to, r)),
            Err(e) => {
                let _ = std::fs::remove_file(&to);
                last = e;
            }
        }
    }
    Err(last)
}

/// Uploads whose last part came in before this node stopped, not yet kept: kept now (at start-up).
pub async fn keep_left_over(state: &AppState) {
    for info in uploads(state).await {
        if info.is_complete() {
            keep(state, info).await;
        }
    }
}
