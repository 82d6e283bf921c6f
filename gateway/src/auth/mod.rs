//! Who is calling and what they may do. Every handler gets its caller through one of these extractors, so no
//! handler can forget the check: `Caller` (a user or a guest), `CurrentUser` (an account), and `BroadcastAccess`
//! (the broadcast in the path plus the caller's role in it; someone else's broadcast is a 404).

pub mod password;
pub mod tokens;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Broadcast, GuestSession};

pub const ACCESS_COOKIE: &str = "by_access";
pub const REFRESH_COOKIE: &str = "by_refresh";
pub const GUEST_COOKIE: &str = "by_guest";

crate::store::text_enum! {
    /// A role in one broadcast.
    pub enum Role {
        /// Created the broadcast: may do everything.
        Host = "host",
        /// Invited as co-host: runs the show (start/end, scene, moderation, invites) but cannot delete the
        /// broadcast or touch destinations' keys.
        Cohost = "cohost",
        /// Invited guest: joins and talks.
        Guest = "guest",
    }
}

/// The caller's role in `broadcast`: the one derivation the REST API and the WebSocket share. `None` when the
/// broadcast is not the caller's (which callers make indistinguishable from a missing one). A stored invite
/// role that does not read never gets this far: the store refuses to load the row (an error, never a silent
/// guest).
pub fn role_in(caller: &Caller, broadcast: &crate::store::Broadcast) -> Option<Role> {
    match caller {
        Caller::User(u) if u.id == broadcast.user_id => Some(Role::Host),
        Caller::Guest(g) if g.broadcast_id == broadcast.id => Some(g.role),
        _ => None,
    }
}

/// Whether a request is not a cross-site browser request: the one check behind the REST API's state-changing
/// requests and the WebSocket upgrade. `Sec-Fetch-Site: cross-site` is refused; a browser `Origin` must be
/// `public_url`'s (scheme, host and port), or the request's own host over `public_url`'s scheme (a studio
/// opened as `localhost` while `public_url` says `127.0.0.1`). No `Origin` is not a browser: nothing to forge.
pub fn same_origin(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    use axum::http::header;
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin.eq_ignore_ascii_case(&state.public_origin) {
        return true;
    }
    let scheme = state.public_origin.split_once("://").map_or("", |(s, _)| s);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    !host.is_empty()
        && origin.split_once("://").is_some_and(|(s, h)| s.eq_ignore_ascii_case(scheme) && h.eq_ignore_ascii_case(host))
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: Uuid,
    pub session_id: Uuid,
}

/// Whoever is calling: an account, or a guest session from an invite.
#[derive(Debug, Clone)]
pub enum Caller {
    User(CurrentUser),
    Guest(GuestSession),
}

impl Caller {
    /// The user session or guest session behind the request: whose seat in a studio, whose upload.
    pub fn session_key(&self) -> Uuid {
        match self {
            Caller::User(u) => u.session_id,
            Caller::Guest(g) => g.id,
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let access = bearer(parts).map(str::to_owned).or_else(|| jar.get(ACCESS_COOKIE).map(|c| c.value().to_owned()));
        if let Some(token) = access {
            let claims = state.jwt.verify(&token).ok_or(ApiError::Unauthenticated)?;
            // The session must be the token's user's: a token naming someone else's session is refused.
            if !state.active_sessions.is_fresh(claims.sid, claims.sub) {
                if !state.tokens.session_active(claims.sid, claims.sub).await.map_err(ApiError::Internal)? {
                    return Err(ApiError::Unauthenticated);
                }
                state.active_sessions.confirm(claims.sid, claims.sub);
            }
            return Ok(Caller::User(CurrentUser { id: claims.sub, session_id: claims.sid }));
        }
        if let Some(guest) = jar.get(GUEST_COOKIE) {
            let hash = tokens::hash_token(guest.value());
            let session = state.store.guest_session_by_hash(&hash).await?.ok_or(ApiError::Unauthenticated)?;
            if session.revoked_at.is_some() || session.expires_at < time::OffsetDateTime::now_utc() {
                return Err(ApiError::Unauthenticated);
            }
            return Ok(Caller::Guest(session));
        }
        Err(ApiError::Unauthenticated)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User(u) => Ok(u),
            Caller::Guest(_) => Err(ApiError::forbidden("this action needs an account; guests cannot do it")),
        }
    }
}

/// The broadcast named by the path's `id` and the caller's role in it.
#[derive(Debug, Clone)]
pub struct BroadcastAccess {
    pub broadcast: Broadcast,
    pub role: Role,
    pub caller: Caller,
}

impl BroadcastAccess {
    /// Host or co-host: running the show.
    pub fn require_host(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Host | Role::Cohost => Ok(()),
            Role::Guest => Err(ApiError::forbidden("only the host or a co-host may do this")),
        }
    }

    /// The broadcast's owner only.
    pub fn require_owner(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Host => Ok(()),
            _ => Err(ApiError::forbidden("only the broadcast's host may do this")),
        }
    }

    /// The account to attribute actions to (the owner for guests' and co-hosts' actions).
    pub fn user_id(&self) -> Uuid {
        match &self.caller {
            Caller::User(u) => u.id,
            Caller::Guest(_) => self.broadcast.user_id,
        }
    }
}

/// `BroadcastAccess` for the host or a co-host only: guests get 403 before the body is even read.
pub struct HostAccess(pub BroadcastAccess);

/// `BroadcastAccess` for the broadcast's owner only.
pub struct OwnerAccess(pub BroadcastAccess);

impl FromRequestParts<AppState> for HostAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let access = BroadcastAccess::from_request_parts(parts, state).await?;
        access.require_host()?;
        Ok(Self(access))
    }
}

impl FromRequestParts<AppState> for OwnerAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let access = BroadcastAccess::from_request_parts(parts, state).await?;
        access.require_owner()?;
        Ok(Self(access))
    }
}

/// Tells every node that a session (sign-in or guest) ended, so sockets opened with it close.
pub async fn announce_revoked(state: &AppState, session_id: Uuid) {
    state.active_sessions.evict(session_id);
    let event = crate::bus::Event::new("session-revoked", serde_json::json!({ "sessionId": session_id }));
    for topic in [crate::bus::topic::session(session_id), crate::state::REVOCATIONS_TOPIC.to_owned()] {
        if let Err(e) = state.bus.publish(&topic, event.clone()).await {
            tracing::warn!(error = %e, "could not announce session revocation");
        }
    }
}

/// Parses a UUID path parameter, naming it in the error.
pub fn path_uuid(params: &HashMap<String, String>, name: &str) -> Result<Uuid, ApiError> {
    let raw = params
        .get(name)
        .ok_or_else(|| ApiError::bad_request("bad_path", format!("missing {name}"), Some(name.into())))?;
    raw.parse().map_err(|_| ApiError::bad_request("invalid_id", format!("{name} must be a UUID"), Some(name.into())))
}

impl FromRequestParts<AppState> for BroadcastAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("bad_path", e.body_text(), None))?;
        let id = path_uuid(&params, "id")?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let broadcast = state.store.broadcast(id).await?.ok_or(ApiError::NotFound("broadcast"))?;
        let role = role_in(&caller, &broadcast).ok_or(ApiError::NotFound("broadcast"))?;
        Ok(Self { broadcast, role, caller })
    }
}
