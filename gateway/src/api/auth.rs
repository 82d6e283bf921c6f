//! `/api/auth/*`: register, login, refresh (rotating), logout (revoking), me.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::extract::{ApiJson, ClientIp};
use crate::auth::tokens::{hash_token, random_token};
use crate::auth::{ACCESS_COOKIE, Caller, GUEST_COOKIE, REFRESH_COOKIE, announce_revoked, password};
use crate::config::Registration;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, LOGIN_SLOW_PATH, Limit, LoginGate};
use crate::store::{RefreshUse, User};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterBody {
    /// Compared without case; at most 254 characters.
    #[schema(
        max_length = 254,
        pattern = r"^[^\s\u0000-\u001f\u007f-\u009f@]+@[^\s\u0000-\u001f\u007f-\u009f.][^\s\u0000-\u001f\u007f-\u009f]*\.[^\s\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f.]$"
    )]
    pub email: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Needed when `auth.registration = "invite"`: any valid invite token.
    pub invite_token: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 128)]
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserEnvelope {
    pub user: User,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestInfo {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    pub role: crate::auth::Role,
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestInfo>,
}

fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.chars().count() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(email) } else { Err(ApiError::invalid("email", "not a valid email address")) }
}

pub fn check_name(field: &str, name: &str, max: usize) -> Result<String, ApiError> {
    crate::text::one_line(field, name, max).map_err(|e| ApiError::invalid(e.field, e.message))
}

fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies())
        .path(path)
        .max_age(max_age)
        .build()
}

/// Starts a session: a new refresh family, an access cookie and a refresh cookie.
async fn sign_in(state: &AppState, jar: CookieJar, user_id: Uuid) -> ApiResult<CookieJar> {
    let session = state.tokens.create_session(user_id).await.map_err(ApiError::Internal)?;
    issue(state, jar, user_id, session).await
}

async fn issue(state: &AppState, jar: CookieJar, user_id: Uuid, session: Uuid) -> ApiResult<CookieJar> {
    let ttl = Duration::days(state.cfg.auth.refresh_ttl_days as i64);
    let (refresh, hash) = random_token();
    state
        .tokens
        .insert_refresh(&hash, session, user_id, OffsetDateTime::now_utc() + ttl)
        .await
        .map_err(ApiError::Internal)?;
    let access = state.jwt.issue(user_id, session);
    Ok(jar.add(cookie(state, ACCESS_COOKIE, access, "/", Duration::seconds(state.jwt.ttl_secs()))).add(cookie(
        state,
        REFRESH_COOKIE,
        refresh,
        "/api/auth",
        ttl,
    )))
}

fn clear(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(ACCESS_COOKIE).path("/"))
        .remove(Cookie::build(REFRESH_COOKIE).path("/api/auth"))
        .remove(Cookie::build(GUEST_COOKIE).path("/"))
}

/// Ends a session everywhere: revoked in the token store, and open sockets told over the bus.
async fn revoke(state: &AppState, session: Uuid) -> ApiResult<()> {
    state.tokens.revoke_session(session).await.map_err(ApiError::Internal)?;
    announce_revoked(state, session).await;
    Ok(())
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = UserEnvelope), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<impl IntoResponse> {
    let email = normalize_email(&body.email)?;
    state.limits.check(Limit::Auth, ip, Some(&email))?;
    let name = check_name("name", &body.name, 100)?;
    if !(8..=128).contains(&body.password.chars().count()) {
        return Err(ApiError::invalid("password", "must be 8..=128 characters"));
    }
    let first = state.store.count_users().await? == 0;
    if !first {
        match state.cfg.auth.registration {
            Registration::Open => {}
            Registration::Closed => return Err(ApiError::forbidden("registration is closed on this instance")),
            Registration::Invite => {
                let token = body.invite_token.as_deref().unwrap_or("");
                let valid =
                    state.store.invite_by_token(token).await?.is_some_and(|i| i.usable_at(OffsetDateTime::now_utc()));
                if !valid {
                    return Err(ApiError::invalid("inviteToken", "registration needs a valid invite on this instance"));
                }
            }
        }
    }
    let hash = password::hash(body.password).await.map_err(ApiError::Internal)?;
    // The first account becomes the instance admin.
    let user = state.store.create_user(&email, &hash, &name, first).await?;
    tracing::info!(user = %user.id, admin = first, "account created");
    let jar = sign_in(&state, jar, user.id).await?;
    Ok((StatusCode::CREATED, jar, axum::Json(UserEnvelope { user })))
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = UserEnvelope), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<impl IntoResponse> {
    let email = body.email.trim().to_lowercase();
    // Attempts count per address; failures, not attempts, count per account (see `LoginFailures`).
    state.limits.check(Limit::Auth, ip, None)?;
    let failures = &state.limits.login_failures;
    match failures.gate(&email, ip) {
        LoginGate::Refuse { retry_after_secs } => return Err(ApiError::RateLimited { retry_after_secs }),
        LoginGate::Slow => tokio::time::sleep(LOGIN_SLOW_PATH).await,
        LoginGate::Go => {}
    }
    let user = state.store.user_by_email(&email).await?;
    let ok = password::verify(body.password, user.as_ref().map(|u| u.password.clone())).await;
    if ok {
        failures.succeeded(&email, ip);
    } else {
        failures.failed(&email, ip);
    }
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::Invalid {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_credentials",
            message: "wrong email or password".into(),
            field: None,
        });
    };
    let jar = sign_in(&state, jar, user.id).await?;
    Ok((jar, axum::Json(UserEnvelope { user })))
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    responses((status = 200, body = UserEnvelope), (status = 401, body = crate::error::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
) -> ApiResult<impl IntoResponse> {
    state.limits.check(Limit::Auth, ip, None)?;
    let token = jar.get(REFRESH_COOKIE).map(|c| c.value().to_owned()).ok_or(ApiError::Unauthenticated)?;
    match state.tokens.use_refresh(&hash_token(&token)).await.map_err(ApiError::Internal)? {
        RefreshUse::Valid { family_id, user_id } => {
            if !state.tokens.session_active(family_id, user_id).await.map_err(ApiError::Internal)? {
                return Err(ApiError::Unauthenticated);
            }
            let user = state.store.user_by_id(user_id).await?.ok_or(ApiError::Unauthenticated)?;
            let jar = issue(&state, jar, user_id, family_id).await?;
            Ok((jar, axum::Json(UserEnvelope { user })))
        }
        RefreshUse::Reused { family_id, user_id } => {
            // A spent token came back: someone holds a copy. End the whole session.
            tracing::warn!(user = %user_id, session = %family_id, "refresh token reuse: session revoked");
            revoke(&state, family_id).await?;
            Err(ApiError::Unauthenticated)
        }
        RefreshUse::Invalid => Err(ApiError::Unauthenticated),
    }
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    jar: CookieJar,
) -> ApiResult<impl IntoResponse> {
    match caller {
        Ok(Caller::User(u)) => revoke(&state, u.session_id).await?,
        Ok(Caller::Guest(g)) => {
            state.store.revoke_guest_session(g.id).await?;
            announce_revoked(&state, g.id).await;
        }
        Err(_) => {}
    }
    Ok((StatusCode::NO_CONTENT, clear(jar)))
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<MeResponse>> {
    Ok(axum::Json(match caller {
        Caller::User(u) => {
            let user = state.store.user_by_id(u.id).await?.ok_or(ApiError::Unauthenticated)?;
            MeResponse { user: Some(user), guest: None }
        }
        Caller::Guest(g) => MeResponse {
            user: None,
            guest: Some(GuestInfo { id: g.id, broadcast_id: g.broadcast_id, role: g.role, name: g.name }),
        },
    }))
}
