//! `/api/broadcasts/{id}/destinations`: where the program is pushed. Stream keys are encrypted at rest and
//! only ever returned masked.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::check_name;
use super::extract::{ApiJson, ClientIp, PathParams};
use backyard_core::egress::{AddressError, AddressPolicy, TestOptions, check_address};
use backyard_core::plugin_host::{Constraints, DestinationError, Ingest, PluginKind};

use crate::auth::{BroadcastAccess, HostAccess, OwnerAccess, path_uuid};
use crate::config::ProgramConfig;
use crate::crypto::mask;
use crate::error::{ApiError, ApiResult};
use crate::scene::Scene;
use crate::state::{AppState, Limit};
use crate::store::{DestinationRow, EncoderProfile, NewDestination};

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
    /// Its own encode as the host asked for it (a field left out takes the program's); absent: the program's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<EncoderProfile>,
    /// What it is encoded as: the program's settings with the profile's fields over them (every field
    /// set), at its canvas's size unless the profile says otherwise. A platform whose limits are below the
    /// program's gets its encode lowered to them at go-live.
    pub encode: EncoderProfile,
    /// The program canvas it streams: `main`, or the id of one of the scene's `canvases`.
    pub canvas: String,
    /// `idle` off air; while the broadcast is live, the output's state (`connecting`, `live`,
    /// `reconnecting`, `failed`, `stopped`), with the details in `live`.
    pub status: String,
    /// While live: the output's status as `destination-status` carries it (bitrate, dropped frames, uptime,
    /// reconnect reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub live: Option<serde_json::Value>,
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
    /// Its own encode; left out, the program's. Checked against the platform's limits (422 naming the field).
    pub profile: Option<EncoderProfile>,
    /// The program canvas it streams: `main` (left out) or the id of one of the scene's `canvases`.
    pub canvas: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchDestination {
    pub name: Option<String>,
    pub rtmp_url: Option<String>,
    pub stream_key: Option<String>,
    pub enabled: Option<bool>,
    /// A new profile, or `null` for the program's encode again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<EncoderProfile>)]
    pub profile: Option<Option<EncoderProfile>>,
    /// Another program canvas: `main` or the id of one of the scene's `canvases`.
    pub canvas: Option<String>,
}

/// A field that is present, even as `null`, is `Some` (absent stays `None` through `#[serde(default)]`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The size of the canvas a destination streams (`None`: the main one), from the scene: 422 naming `canvas`
/// when the scene has no such canvas.
pub fn canvas_size(program: &ProgramConfig, scene: &Scene, canvas: Option<&str>) -> ApiResult<(u32, u32)> {
    scene.find_canvas(canvas, (program.width, program.height)).map(|(_, size)| size).ok_or_else(|| {
        let ids: Vec<&str> =
            std::iter::once(crate::scene::MAIN_CANVAS).chain(scene.canvases.iter().map(|c| c.id.as_str())).collect();
        let id = canvas.unwrap_or_default();
        ApiError::invalid("canvas", format!("the scene has no canvas {id}; one of {}", ids.join(", ")))
    })
}

/// The size of the canvas a stored destination streams: the main one's when the scene no longer has its canvas.
fn canvas_size_or_main(program: &ProgramConfig, scene: &Scene, canvas: Option<&str>) -> (u32, u32) {
    let main = (program.width, program.height);
    scene.find_canvas(canvas, main).map_or(main, |(_, size)| size)
}

/// The canvas id a row keeps: `None` for the main canvas.
fn stored_canvas(canvas: &str) -> Option<String> {
    (canvas != crate::scene::MAIN_CANVAS).then(|| canvas.to_owned())
}

/// Checks a destination's profile against what this server's program makes on the destination's canvas (of
/// `canvas` pixels) and what the platform accepts. Errors name the field (`profile.videoKbps`) and the limit.
pub fn check_profile(
    p: &EncoderProfile,
    program: &ProgramConfig,
    canvas: (u32, u32),
    platform: &str,
    limits: &Constraints,
) -> ApiResult<()> {
    let bad = |field: &str, message: String| Err(ApiError::invalid(format!("profile.{field}"), message));
    match (p.width, p.height) {
        (None, None) => {}
        (Some(w), Some(h)) => {
            for (field, v) in [("width", w), ("height", h)] {
                if let Err(message) = crate::scene::check_side(v) {
                    return bad(field, message.into());
                }
            }
            if w > canvas.0 || h > canvas.1 {
                return bad(
                    if w > canvas.0 { "width" } else { "height" },
                    format!("at most its canvas's {}x{} (larger would only scale it up)", canvas.0, canvas.1),
                );
            }
            let (max_w, max_h) = backyard_core::egress::limit_for_shape((limits.max_width, limits.max_height), w, h);
            if w > max_w || h > max_h {
                return bad(
                    if w > max_w { "width" } else { "height" },
                    format!("{platform} accepts at most {max_w}x{max_h}"),
                );
            }
        }
        (Some(_), None) => return bad("height", "is required with width".into()),
        (None, Some(_)) => return bad("width", "is required with height".into()),
    }
    if let Some(fps) = p.fps {
        if fps == 0 || fps > program.fps {
            return bad("fps", format!("must be 1 to the program's {} fps", program.fps));
        }
        if fps > limits.max_fps {
            return bad("fps", format!("{platform} accepts at most {} fps", limits.max_fps));
        }
    }
    if let Some(kbps) = p.video_kbps {
        if !(100..=50_000).contains(&kbps) {
            return bad("videoKbps", "must be 100 to 50000 kb/s".into());
        }
        if kbps > limits.max_video_kbps {
            return bad("videoKbps", format!("{platform} accepts at most {} kb/s of video", limits.max_video_kbps));
        }
    }
    if let Some(kbps) = p.audio_kbps {
        if !(32..=512).contains(&kbps) {
            return bad("audioKbps", "must be 32 to 512 kb/s".into());
        }
        if kbps > limits.max_audio_kbps {
            return bad("audioKbps", format!("{platform} accepts at most {} kb/s of audio", limits.max_audio_kbps));
        }
    }
    if let Some(s) = p.keyframe_interval_s {
        if !(0.5..=10.0).contains(&s) {
            return bad("keyframeIntervalS", "must be 0.5 to 10 seconds".into());
        }
        if s > f64::from(limits.max_keyframe_interval_s) {
            return bad(
                "keyframeIntervalS",
                format!("{platform} wants a keyframe at least every {} s", limits.max_keyframe_interval_s),
            );
        }
    }
    if let Some(profile) = &p.h264_profile
        && h264_profile(profile).is_none()
    {
        return bad("h264Profile", "one of baseline, main, high".into());
    }
    Ok(())
}

fn h264_profile(name: &str) -> Option<backyard_core::egress::H264Profile> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// The program's encode at its canvas's size (`canvas` pixels) with `profile`'s fields over it: what a destination
/// asks to be encoded as.
pub fn encode_settings(
    program: &ProgramConfig,
    canvas: (u32, u32),
    profile: Option<&EncoderProfile>,
) -> backyard_core::egress::EncoderSettings {
    let p = profile.cloned().unwrap_or_default();
    let base = backyard_core::egress::EncoderSettings::default();
    backyard_core::egress::EncoderSettings {
        width: p.width.unwrap_or(canvas.0),
        height: p.height.unwrap_or(canvas.1),
        fps: p.fps.unwrap_or(program.fps),
        video_kbps: p.video_kbps.unwrap_or(program.video_kbps),
        audio_kbps: p.audio_kbps.unwrap_or(program.audio_kbps),
        keyframe_interval: p.keyframe_interval_s.map_or(base.keyframe_interval, std::time::Duration::from_secs_f64),
        preset: program.preset.clone(),
        h264_profile: p.h264_profile.as_deref().and_then(h264_profile),
    }
}

fn summary(s: &backyard_core::egress::EncoderSettings) -> EncoderProfile {
    EncoderProfile {
        width: Some(s.width),
        height: Some(s.height),
        fps: Some(s.fps),
        video_kbps: Some(s.video_kbps),
        audio_kbps: Some(s.audio_kbps),
        keyframe_interval_s: Some(s.keyframe_interval.as_secs_f64()),
        h264_profile: Some(s.h264_profile.map_or("high", |p| p.x264_name()).to_owned()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestCheck {
    /// `streamKey`, `ingest` (the platform adapter's check), then the stage of the real connection that
    /// failed or passed: `dns`, `tcp`, `tls`, `handshake`, `rejected`, `publish`, or `publish` when all passed.
    pub name: String,
    pub ok: bool,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestReport {
    pub ok: bool,
    pub checks: Vec<TestCheck>,
    /// Timings of the real connect + publish (DNS, TCP, TLS, publish accepted, frames sent), when it got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub connection: Option<backyard_core::egress::TestReport>,
}

/// How long a destination test may take in all.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What a destination adapter made of a server URL and stream key.
pub struct Resolved {
    /// The server URL to store: as typed, or the adapter's default when none was typed.
    pub server_url: String,
    /// Where and how to push (the primary URL carries the key: never log or store it).
    pub ingest: Ingest,
    /// The adapter's display name for the platform.
    pub display_name: String,
    /// Which addresses the ingest may resolve to: public ones, unless the operator allowed private hosts
    /// for this platform (`[destinations.<platform>] allow-private-hosts`).
    pub address_policy: AddressPolicy,
}

/// How long entering a destination waits for its host name to resolve. A name that does not resolve (yet)
/// is accepted: it is checked again on every connect.
const RESOLVE_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// Asks `platform`'s destination adapter (a plugin) to check what the user typed. An unknown or disabled
/// platform and the adapter's field errors are 422s naming the field.
pub async fn resolve(state: &AppState, platform: &str, server_url: &str, stream_key: &str) -> ApiResult<Resolved> {
    let host = state.plugins.api_host().await?;
    let platforms = host.names(PluginKind::Destination);
    if !platforms.iter().any(|p| p == platform) {
        return Err(ApiError::invalid(
            "platform",
            if platforms.is_empty() {
                "no destination adapters are enabled on this server".to_owned()
            } else {
                format!("one of {}", platforms.join(", "))
            },
        ));
    }
    let (platform, server_url, stream_key) = (platform.to_owned(), server_url.trim().to_owned(), stream_key.to_owned());
    tokio::task::spawn_blocking(move || {
        let info = host.destination_info(&platform);
        let ingest = host.validate_destination(&platform, &server_url, &stream_key);
        let policy = if host.setting_flag(&platform, "allow-private-hosts") == Some(true) {
            AddressPolicy::Any
        } else {
            AddressPolicy::PublicOnly
        };
        // The adapter judged the URL's text; what counts is where its host resolves to.
        let address = ingest.as_ref().ok().map(|i| check_address(&i.primary, policy, RESOLVE_BUDGET));
        (info, ingest, server_url, policy, address)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))
    .and_then(|(info, ingest, typed, address_policy, address)| {
        let info = info.map_err(destination_error)?;
        let ingest = ingest.map_err(destination_error)?;
        if let Some(Err(e @ (AddressError::NotAllowed | AddressError::InvalidUrl(_)))) = address {
            return Err(ApiError::invalid("rtmpUrl", e.to_string()));
        }
        let server_url = if typed.is_empty() {
            info.default_server_url.ok_or_else(|| ApiError::invalid("rtmpUrl", "required for this platform"))?
        } else {
            typed
        };
        Ok(Resolved { server_url, ingest, display_name: info.name, address_policy })
    })
}

fn destination_error(e: DestinationError) -> ApiError {
    match e {
        DestinationError::Field(f) => ApiError::invalid(f.field, f.message),
        DestinationError::Plugin(p) => ApiError::Internal(anyhow::anyhow!(p)),
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

/// A checked profile as the row keeps it; an empty one is the program's (no profile).
fn stored_profile(p: Option<&EncoderProfile>) -> ApiResult<Option<String>> {
    p.filter(|p| **p != EncoderProfile::default())
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| ApiError::Internal(e.into()))
}

impl Destination {
    fn from_row(state: &AppState, scene: &Scene, row: DestinationRow) -> ApiResult<Self> {
        Self::with_live(state, scene, row, None)
    }

    /// The row, with the output's live status when the program is on air; `scene` is the broadcast's.
    fn with_live(
        state: &AppState,
        scene: &Scene,
        row: DestinationRow,
        live: Option<backyard_core::egress::OutputStatus>,
    ) -> ApiResult<Self> {
        let live = live.and_then(|s| serde_json::to_value(s).ok());
        let (stream_key, key_error) =
            match state.cipher.open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid) {
                Ok(key) => (mask(&key), None),
                Err(e) => {
                    tracing::error!(destination = %row.id, error = %e, "stream key unreadable");
                    (String::new(), Some(e.to_string()))
                }
            };
        let profile = row.encoder_profile().map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("destination {}: stored profile unreadable: {e}", row.id))
        })?;
        let canvas = canvas_size_or_main(&state.cfg.program, scene, row.canvas.as_deref());
        let encode = summary(&encode_settings(&state.cfg.program, canvas, profile.as_ref()));
        Ok(Self {
            canvas: row.canvas.unwrap_or_else(|| crate::scene::MAIN_CANVAS.to_owned()),
            id: row.id,
            broadcast_id: row.broadcast_id,
            profile,
            encode,
            platform: row.platform,
            name: row.name,
            rtmp_url: row.rtmp_url,
            stream_key,
            key_error,
            enabled: row.enabled,
            status: live.as_ref().and_then(|l| l["state"].as_str()).map_or(row.status, str::to_owned),
            live,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[utoipa::path(get, path = "/api/broadcasts/{id}/destinations", tag = "destinations", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Destination>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, HostAccess(access): HostAccess) -> ApiResult<Json<Vec<Destination>>> {
    let rows = state.store.destinations(access.broadcast.id).await?;
    let program = crate::signaling::Hub::get(&state).await?.programs.get(access.broadcast.id);
    let scene = Scene::of(&access.broadcast);
    let list = rows
        .into_iter()
        .map(|r| {
            let id = r.id.to_string();
            // A show from the studio, or a relay of an encoder's stream.
            let live = program
                .as_ref()
                .and_then(|p| p.output_status(&id))
                .or_else(|| state.ingest.output_status(access.broadcast.id, &id));
            Destination::with_live(&state, &scene, r, live)
        })
        .collect::<ApiResult<_>>()?;
    Ok(axum::Json(list))
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/destinations", tag = "destinations", params(("id" = Uuid, Path)),
    request_body = CreateDestination, responses((status = 201, body = Destination), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    OwnerAccess(access): OwnerAccess,
    ApiJson(body): ApiJson<CreateDestination>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    let key = check_stream_key(&body.stream_key)?;
    if let Some(u) = &body.rtmp_url
        && !u.trim().is_empty()
    {
        check_rtmp_url(u)?;
    }
    let scene = Scene::of(&access.broadcast);
    let canvas = canvas_size(&state.cfg.program, &scene, body.canvas.as_deref())?;
    let resolved = resolve(&state, &body.platform, body.rtmp_url.as_deref().unwrap_or(""), key).await?;
    if let Some(p) = &body.profile {
        check_profile(p, &state.cfg.program, canvas, &resolved.display_name, &resolved.ingest.constraints)?;
    }
    let profile = stored_profile(body.profile.as_ref())?;
    let rtmp_url = resolved.server_url;
    let name = match &body.name {
        Some(n) => check_name("name", n, 100)?,
        None => resolved.display_name,
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
            profile,
            canvas: body.canvas.as_deref().and_then(stored_canvas),
        })
        .await?;
    tracing::info!(destination = %row.id, platform = %row.platform, "destination added");
    Ok((StatusCode::CREATED, axum::Json(Destination::from_row(&state, &scene, row)?)))
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
    let scene = Scene::of(&access.broadcast);
    let canvas = match &body.canvas {
        Some(asked) => canvas_size(&state.cfg.program, &scene, Some(asked))?,
        None => canvas_size_or_main(&state.cfg.program, &scene, row.canvas.as_deref()),
    };
    if let Some(c) = &body.canvas {
        row.canvas = stored_canvas(c);
        // The stored profile's size must fit the new canvas, unless a new profile comes with it.
        let stored = if body.profile.is_none() { row.encoder_profile().ok().flatten() } else { None };
        let larger = stored.is_some_and(|p| p.width.unwrap_or(0) > canvas.0 || p.height.unwrap_or(0) > canvas.1);
        if larger {
            return Err(ApiError::invalid(
                "canvas",
                format!("its profile is larger than the {}x{} canvas: change both at once", canvas.0, canvas.1),
            ));
        }
    }
    if let Some(n) = &body.name {
        row.name = check_name("name", n, 100)?;
    }
    if let Some(u) = &body.rtmp_url
        && !u.trim().is_empty()
    {
        check_rtmp_url(u)?;
    }
    if body.rtmp_url.is_some() || body.stream_key.is_some() || matches!(body.profile, Some(Some(_))) {
        // The adapter checks the pair as it will be pushed: the new value with the stored other half; its
        // limits are what a new profile is checked against.
        let stored_key;
        let key = match &body.stream_key {
            Some(k) => check_stream_key(k)?,
            None => {
                stored_key =
                    state.cipher.open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid).map_err(|e| {
                        ApiError::invalid("streamKey", format!("the stored key is unreadable ({e}): re-enter it"))
                    })?;
                stored_key.as_str()
            }
        };
        let url = body.rtmp_url.as_deref().unwrap_or(&row.rtmp_url);
        let resolved = resolve(&state, &row.platform, url, key).await?;
        if let Some(Some(p)) = &body.profile {
            check_profile(p, &state.cfg.program, canvas, &resolved.display_name, &resolved.ingest.constraints)?;
        }
        row.rtmp_url = resolved.server_url;
        if body.stream_key.is_some() {
            let sealed = state.cipher.seal(key);
            row.stream_key = sealed.ciphertext;
            row.stream_key_nonce = sealed.nonce;
            row.stream_key_kid = sealed.kid;
        }
    }
    if let Some(e) = body.enabled {
        row.enabled = e;
    }
    if let Some(p) = &body.profile {
        row.profile = stored_profile(p.as_ref())?;
    }
    let row = state.store.update_destination(&row).await?;
    Ok(axum::Json(Destination::from_row(&state, &scene, row)?))
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
    params(("id" = Uuid, Path), ("destId" = Uuid, Path)), responses((status = 200, body = TestReport), (status = 404, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    HostAccess(access): HostAccess,
    PathParams(params): PathParams,
) -> ApiResult<Json<TestReport>> {
    let row = load(&state, &access, &params).await?;
    // A test is a real connect and publish for seconds: limited per address and account, and bounded at once.
    let who = match &access.caller {
        crate::auth::Caller::User(u) => u.id,
        crate::auth::Caller::Guest(g) => g.id,
    };
    state.limits.check(Limit::DestinationTest, ip, Some(&who.to_string()))?;
    let _running = state
        .limits
        .destination_tests
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::RateLimited { retry_after_secs: 5 })?;
    let mut checks = Vec::new();
    let check = |name: &str, result: Result<String, String>| {
        let ok = result.is_ok();
        TestCheck { name: name.into(), ok, message: result.unwrap_or_else(|e| e) }
    };
    let key = state
        .cipher
        .open(&row.stream_key, &row.stream_key_nonce, &row.stream_key_kid)
        .map_err(|e| e.to_string())
        .and_then(|k| match check_stream_key(&k) {
            Ok(_) => Ok(k),
            Err(e) => Err(e.to_string()),
        });
    checks.push(check(
        "streamKey",
        key.as_ref().map(|_| "stream key decrypts and is well-formed".into()).map_err(Clone::clone),
    ));
    let Ok(key) = key else { return Ok(axum::Json(TestReport { ok: false, checks, connection: None })) };
    let (ingest, address_policy) = match resolve(&state, &row.platform, &row.rtmp_url, &key).await {
        Ok(r) => {
            checks.push(check("ingest", Ok(format!("{} accepts the server URL and key", r.display_name))));
            (r.ingest, r.address_policy)
        }
        Err(e) => {
            checks.push(check("ingest", Err(e.to_string())));
            return Ok(axum::Json(TestReport { ok: false, checks, connection: None }));
        }
    };
    // A real RTMP(S) connect and a few seconds of test pattern: what failed is named by its stage.
    let url = ingest.primary;
    let options = TestOptions { timeout: TEST_TIMEOUT, address_policy, ..TestOptions::default() };
    let outcome = tokio::task::spawn_blocking(move || backyard_core::egress::test_destination_with(&url, &options))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let connection = match outcome {
        Ok(report) => {
            checks.push(check(
                "publish",
                Ok(format!(
                    "published {} frames in {:.1} s (DNS {} ms, TCP {} ms{}, accepted after {} ms)",
                    report.frames_sent,
                    report.published_secs,
                    report.dns_ms,
                    report.tcp_ms,
                    report.tls_ms.map(|t| format!(", TLS {t} ms")).unwrap_or_default(),
                    report.publish_accept_ms
                )),
            ));
            Some(report)
        }
        Err(e) => {
            let stage = serde_json::to_value(&e).ok().and_then(|v| v["stage"].as_str().map(str::to_owned));
            checks.push(check(stage.as_deref().unwrap_or("connect"), Err(e.to_string())));
            None
        }
    };
    tracing::debug!(destination = %row.id, ok = connection.is_some(), "destination tested");
    Ok(axum::Json(TestReport { ok: checks.iter().all(|c| c.ok), checks, connection }))
}
