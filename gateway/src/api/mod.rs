//! The HTTP surface: `app(state)` builds the whole router (REST API, health, metrics, OpenAPI, studio files).
//! Every REST route is registered through `utoipa_axum::routes!`, so the router and `/api/openapi.json` are
//! generated from the same handler annotations and cannot drift apart.

pub mod auth;
pub mod brands;
pub mod broadcasts;
pub mod cluster;
pub mod destinations;
pub mod extract;
pub mod forward;
pub mod ingest_keys;
pub mod invites;
pub mod local_recordings;
pub mod openapi;
pub mod plugins;
pub mod recordings;
pub mod uploads;
pub mod watch;
pub mod whep;
pub mod whip;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Backyard API", description = "Self-hosted live-streaming studio: REST API. Errors are `{\"error\": {code, message, field}}`."),
    components(schemas(ErrorBody)),
    tags((name = "auth"), (name = "brands"), (name = "broadcasts"), (name = "destinations"), (name = "ingest"), (name = "invites"), (name = "plugins"), (name = "recordings"), (name = "uploads"), (name = "watch"), (name = "system"))
)]
struct ApiDoc;

/// The REST routes and their OpenAPI description, from one list.
pub fn api_router(upload_bytes: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let uploads = OpenApiRouter::new()
        .routes(routes!(uploads::upload))
        // The file plus multipart overhead; overrides the JSON limit set further out.
        .layer(DefaultBodyLimit::max(upload_bytes + 64 * 1024));
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(broadcasts::list, broadcasts::create))
        .routes(routes!(broadcasts::get, broadcasts::patch, broadcasts::delete))
        .routes(routes!(broadcasts::start))
        .routes(routes!(broadcasts::end))
        .routes(routes!(broadcasts::get_scene, broadcasts::put_scene))
        .routes(routes!(broadcasts::program_preview))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(destinations::patch, destinations::delete))
        .routes(routes!(destinations::test))
        .routes(routes!(ingest_keys::list, ingest_keys::create))
        .routes(routes!(ingest_keys::delete))
        .routes(routes!(ingest_keys::reveal))
        .routes(routes!(whip::publish))
        .routes(routes!(whip::end))
        .routes(routes!(invites::list, invites::create))
        .routes(routes!(invites::revoke))
        .routes(routes!(invites::redeem))
        .routes(routes!(plugins::list))
        .routes(routes!(brands::list, brands::create))
        .routes(routes!(brands::replace, brands::delete))
        .routes(routes!(recordings::list))
        .routes(routes!(recordings::get, recordings::delete))
        .routes(routes!(recordings::file))
        .routes(routes!(uploads::serve))
        .routes(routes!(uploads::list))
        .routes(routes!(cluster::view))
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(join_page))
        .routes(routes!(watch::list))
        .routes(routes!(watch::get))
        .routes(routes!(watch::hls))
        .routes(routes!(watch::flv))
        .routes(routes!(whep::watch))
        .routes(routes!(whep::end))
        .routes(routes!(watch::page))
        .merge(uploads)
        .split_for_parts();
    let mut doc = doc;
    openapi::complete(&mut doc);
    (router, doc)
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api_router(state.cfg.limits.upload_bytes);
    let openapi = std::sync::Arc::new(openapi);
    api.route("/ws", axum::routing::get(crate::signaling::ws))
        .merge(local_recordings::routes())
        .layer(axum::Extension(openapi))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), forward::viewer_streams_to_home))
        .layer(middleware::from_fn_with_state(state.clone(), origin_check))
        .layer(middleware::from_fn(webrtc_cors))
        .layer(middleware::from_fn(close_after_refusal))
        // On every response: the policy above, no MIME sniffing (an upload is served as the type it was checked
        // to be, never as HTML), no referrer to other sites.
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(DefaultBodyLimit::max(state.cfg.limits.json_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The studio's content security policy: its own scripts, styles, images and media only (uploads and camera
/// streams are same-origin or `blob:`), signaling to itself, and no framing by other sites.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// A refusal that may come before the request body was read (auth, access, size, rate) says `Connection: close`,
/// so the client knows the connection ends with it instead of finding out mid-upload.
async fn close_after_refusal(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let early =
        [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::PAYLOAD_TOO_LARGE, StatusCode::TOO_MANY_REQUESTS];
    if early.contains(&res.status()) {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Refuses state-changing requests that a browser sent from another site (CSRF), on top of SameSite=Lax. WHIP and
/// WHEP are left to [`webrtc_cors`]: no cookie gets anyone through them.
async fn origin_check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state && !webrtc_http(req.uri().path()) && !crate::auth::same_origin(&state, req.headers()) {
        return ApiError::forbidden("cross-origin request refused (Origin does not match public_url)").into_response();
    }
    next.run(req).await
}

/// WHIP and WHEP: called by encoders and players anywhere, a page on another site included (RFC 9725 asks
/// for CORS). They take no cookie (WHIP a Bearer ingest key, WHEP nothing: the show is open to viewers), so
/// nothing a browser sends on its own can use them.
fn webrtc_http(path: &str) -> bool {
    path == "/api/whip"
        || path.starts_with("/api/whip/")
        || (path.starts_with("/api/watch/") && (path.ends_with("/whep") || path.contains("/whep/")))
}

/// Answers CORS preflights for WHIP and WHEP and lets any site read their answers (`Location` included).
async fn webrtc_cors(req: Request, next: Next) -> Response {
    if !webrtc_http(req.uri().path()) {
        return next.run(req).await;
    }
    let mut res =
        if req.method() == Method::OPTIONS { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, DELETE, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Location"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    res
}

/// Unknown `/api/*` paths get a JSON 404; everything else is a studio file.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    if req.uri().path().starts_with("/api/") || req.uri().path() == "/api" {
        return ApiError::bad_request(
            "route_not_found",
            format!("no route {} {}", req.method(), req.uri().path()),
            None,
        )
        .with_status(StatusCode::NOT_FOUND)
        .into_response();
    }
    let dir = tower_http::services::ServeDir::new(&state.cfg.server.studio_dir).append_index_html_on_directories(true);
    match dir.oneshot(req).await {
        Ok(res) => res.into_response(),
        Err(e) => ApiError::Internal(e.into()).into_response(),
    }
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::bad_request(
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
        None,
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .into_response()
}

#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "ok")))]
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.count_users().await {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "store": state.store.backend()})))
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable", "error": e.to_string()})),
        )
            .into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), (status = 401, body = crate::error::ErrorBody)))]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.cfg.secrets.metrics_token {
        use sha2::Digest as _;
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compared as digests, so the time taken says nothing about how much of the token matched.
        let digest = |t: &str| sha2::Sha256::digest(t.as_bytes());
        if given.is_none_or(|g| digest(g) != digest(token)) {
            return ApiError::Unauthenticated.into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, description = "this document")))]
async fn openapi_json(axum::Extension(doc): axum::Extension<std::sync::Arc<utoipa::openapi::OpenApi>>) -> Response {
    axum::Json(doc.as_ref().clone()).into_response()
}

#[utoipa::path(get, path = "/join/{token}", tag = "system", params(("token" = String, Path)),
    responses((status = 200, description = "the studio's guest join page", content_type = "text/html")))]
async fn join_page(State(state): State<AppState>, req: Request) -> Response {
    studio_page(&state, "join.html", req).await
}

/// One of the studio's pages (`join.html`, `watch.html`) for a route of its own.
pub(crate) async fn studio_page(state: &AppState, file: &str, req: Request) -> Response {
    let page = state.cfg.server.studio_dir.join(file);
    match tower_http::services::ServeFile::new(page).oneshot(req).await {
        Ok(res) => res.into_response(),
        Err(e) => ApiError::Internal(e.into()).into_response(),
    }
}
