//! Invite links: `/api/broadcasts/{id}/invites` (host side) and `/api/invites/{token}/redeem` (guest side).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::auth::{GuestInfo, check_name};
use super::extract::{ApiJson, ClientIp, PathParams};
use crate::auth::tokens::random_token;
use crate::auth::{GUEST_COOKIE, HostAccess, Role, announce_revoked, path_uuid};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Limit};
use crate::store::Invite;

type Json<T> = axum::Json<T>;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteView {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    /// The link's secret, in the reply that created the invite only: the server keeps just its hash, so a lost
    /// link is replaced by a new invite (and the old one revoked), never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The link to send (opens the guest join page), in the reply that created the invite only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `guest` | `cohost`
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl InviteView {
    /// A stored invite, without its link (the server cannot show it again).
    fn listed(i: Invite) -> Self {
        Self {
            url: None,
            token: None,
            id: i.id,
            broadcast_id: i.broadcast_id,
            role: i.role,
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

/// Who an invite lets in.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: the body's `role` is checked where it is read
pub enum InviteRole {
    Guest,
    Cohost,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateInvite {
    /// `guest` (default) or `cohost`.
    #[schema(value_type = Option<InviteRole>)]
    pub role: Option<String>,
    /// Whole hours, 1..=720, default 24 (`24` and `24.0` are the same number).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<f64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemInvite {
    /// The name shown to others in the studio.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GuestEnvelope {
    pub guest: GuestInfo,
}

#[utoipa::path(get, path = "/api/broadcasts/{id}/invites", tag = "invites", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<InviteView>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, HostAccess(access): HostAccess) -> ApiResult<Json<Vec<InviteView>>> {
    let now = OffsetDateTime::now_utc();
    let invites = state.store.invites(access.broadcast.id).await?;
    // Co-hosts see and manage guest links only: co-host links are the owner's to hand out.
    let owner = access.require_owner().is_ok();
    Ok(axum::Json(
        invites
            .into_iter()
            .filter(|i| i.usable_at(now) && (owner || i.role == Role::Guest))
            .map(InviteView::listed)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/broadcasts/{id}/invites", tag = "invites", params(("id" = Uuid, Path)),
    request_body = CreateInvite, responses((status = 201, body = InviteView), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    HostAccess(access): HostAccess,
    ApiJson(body): ApiJson<CreateInvite>,
) -> ApiResult<(StatusCode, Json<InviteView>)> {
    let role = match body.role.as_deref().map(Role::parse) {
        None => Role::Guest,
        Some(Some(role @ (Role::Guest | Role::Cohost))) => role,
        Some(_) => return Err(ApiError::invalid("role", "guest or cohost")),
    };
    if role == Role::Cohost {
        // Only the owner hands out co-host rights.
        access.require_owner()?;
    }
    let hours = body.expires_in_hours.unwrap_or(24.0);
    if !(1.0..=720.0).contains(&hours) || hours.fract() != 0.0 {
        return Err(ApiError::invalid("expiresInHours", "must be a whole number 1..=720"));
    }
    let hours = hours as i64;
    let (token, _) = random_token();
    let invite = state
        .store
        .create_invite(
            access.broadcast.id,
            &token,
            role,
            access.user_id(),
            OffsetDateTime::now_utc() + Duration::hours(hours),
        )
        .await?;
    let url = format!("{}/join/{}", state.cfg.public_url.trim_end_matches('/'), token);
    Ok((
        StatusCode::CREATED,
        axum::Json(InviteView { url: Some(url), token: Some(token), ..InviteView::listed(invite) }),
    ))
}

#[utoipa::path(delete, path = "/api/broadcasts/{id}/invites/{inviteId}", tag = "invites",
    params(("id" = Uuid, Path), ("inviteId" = Uuid, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    HostAccess(access): HostAccess,
    PathParams(params): PathParams,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&params, "inviteId")?;
    if access.require_owner().is_err() {
        // A co-host may revoke guest links only; the owner's co-host links look like missing ones.
        let invites = state.store.invites(access.broadcast.id).await?;
        if !invites.iter().any(|i| i.id == id && i.role == Role::Guest) {
            return Err(ApiError::NotFound("invite"));
        }
    }
    let sessions = state.store.revoke_invite(access.broadcast.id, id).await?.ok_or(ApiError::NotFound("invite"))?;
    // Guests who came in through this link lose their session; their open sockets close via the bus.
    for s in sessions {
        announce_revoked(&state, s).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/invites/{token}/redeem", tag = "invites", params(("token" = String, Path)),
    request_body = RedeemInvite, responses((status = 201, body = GuestEnvelope), (status = 404, body = crate::error::ErrorBody)))]
pub async fn redeem(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    jar: CookieJar,
    ApiJson(body): ApiJson<RedeemInvite>,
) -> ApiResult<impl IntoResponse> {
    state.limits.check(Limit::Auth, ip, None)?;
    let name = check_name("name", &body.name, 64)?;
    let now = OffsetDateTime::now_utc();
    let invite =
        state.store.invite_by_token(&token).await?.filter(|i| i.usable_at(now)).ok_or(ApiError::NotFound("invite"))?;
    let (session_token, hash) = random_token();
    let ttl = Duration::hours(state.cfg.auth.guest_ttl_hours as i64);
    let expires = (now + ttl).min(invite.expires_at.max(now + Duration::hours(1)));
    let session = state.store.create_guest_session(&hash, &invite, &name, expires).await?;
    let cookie = Cookie::build((GUEST_COOKIE, session_token))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies())
        .path("/")
        .max_age(expires - now)
        .build();
    let guest =
        GuestInfo { id: session.id, broadcast_id: session.broadcast_id, role: session.role, name: session.name };
    Ok((StatusCode::CREATED, jar.add(cookie), axum::Json(GuestEnvelope { guest })))
}
