//! The answers every operation of a kind can give, added to `/api/openapi.json` by rule rather than repeated in
//! each handler's annotation, so the description stays complete as routes are added: a malformed path parameter
//! (400), a body that is not the declared JSON or multipart (400 unreadable, 413 too large, 415 wrong type, 422 a
//! field out of range), no or an expired session (401), a broadcast the caller may not run or cannot see (403,
//! 404). How a caller signs in is declared once (`securitySchemes`): the access token as a Bearer header or the
//! `by_access` cookie, or a guest's `by_guest` cookie; the public operations say they need none.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::auth::{ACCESS_COOKIE, GUEST_COOKIE};

/// Operations anyone may call: signing up and in, redeeming an invite, the join page, health, metrics (which
/// has its own optional token), this description, uploaded images (by content hash), and what a show's viewers
/// see (the watch page, its facts and its streams; a show not open to viewers is not found).
const PUBLIC: &[(&str, &str)] = &[
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/logout"),
    ("post", "/api/invites/{token}/redeem"),
    ("get", "/join/{token}"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
    ("get", "/api/uploads/{sha256}"),
    ("get", "/watch/{id}"),
    ("get", "/api/watch"),
    ("get", "/api/watch/{id}"),
    ("get", "/api/watch/{id}/hls/{file}"),
    ("get", "/api/watch/{id}/live.flv"),
    ("post", "/api/watch/{id}/whep"),
    ("delete", "/api/watch/{id}/whep/{session}"),
];

/// Operations an encoder calls with an ingest key as its Bearer token (WHIP), not a session.
const INGEST_KEY: &[(&str, &str)] = &[("post", "/api/whip"), ("delete", "/api/whip/{session}")];

/// Adds the rule-based answers and the sign-in schemes to `doc`.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    components
        .add_security_scheme("accessCookie", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(ACCESS_COOKIE))));
    components
        .add_security_scheme("guestCookie", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(GUEST_COOKIE))));
    components.add_security_scheme(
        "ingestKey",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("ingest key").build()),
    );
    let signed_in: Vec<SecurityRequirement> = ["bearer", "accessCookie", "guestCookie"]
        .into_iter()
        .map(|scheme| SecurityRequirement::new(scheme, Vec::<String>::new()))
        .collect();

    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
            ("patch", item.patch.as_mut()),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let public = PUBLIC.contains(&(method, path.as_str()));
            op.security = Some(if public {
                vec![SecurityRequirement::default()]
            } else if INGEST_KEY.contains(&(method, path.as_str())) {
                vec![SecurityRequirement::new("ingestKey", Vec::<String>::new())]
            } else {
                signed_in.clone()
            });
            let has_path_params = op.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Path));
            if has_path_params {
                add(op, "400", "A path parameter is malformed (`field` names it).");
                add(op, "404", "Nothing by that id, or nothing the caller may see.");
            }
            if op.request_body.is_some() {
                add(op, "400", "The body could not be read as the declared content.");
                add(op, "413", "The body is larger than the server accepts.");
                add(op, "415", "The body is not of the declared content type.");
                add(op, "422", "A field is missing, unknown, of the wrong type or out of range (`field` names it).");
            }
            if op.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Query)) {
                add(op, "400", "A query parameter is malformed or out of range (`field` names it).");
            }
            if !public {
                add(op, "401", "No session, or it expired or was revoked.");
            }
            if path.starts_with("/api/broadcasts/{id}") {
                add(op, "403", "The caller's role in this broadcast may not do this.");
            }
        }
    }
}

/// Documents `status` (an error body) on `op` unless the handler already describes it.
fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    });
}
