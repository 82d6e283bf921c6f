//! Request extractors whose failures become `ApiError`s naming the field: JSON bodies (content type, syntax,
//! types, unknown fields, size), query strings, and the client address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body deserialized with the failing field's path in the error.
pub struct ApiJson<T>(pub T);

fn field_of(path: &serde_path_to_error::Path, message: &str) -> Option<String> {
    // serde reports unknown and missing fields at the parent's path; the name is in the message.
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            let parent = path.to_string();
            return Some(if parent == "." {
                name.to_owned()
            } else if parent == name || parent.ends_with(&format!(".{name}")) {
                parent
            } else {
                format!("{parent}.{name}")
            });
        }
    }
    let p = path.to_string();
    (p != ".").then_some(p)
}

/// Parses `bytes` as `T`, mapping every failure to a 400 (not JSON) or 422 (not the expected shape) naming
/// the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a truncated body is reported as malformed rather than by the first bad field in it.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("malformed JSON: {e}"), None))?;
    if !value.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let message = e.inner().to_string();
        let field = field_of(e.path(), &message).unwrap_or_else(|| "body".into());
        ApiError::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message,
            field: Some(field),
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType("expected Content-Type: application/json".into()));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("unreadable_body", e.body_text(), None)
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A query string, errors naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let message = e.inner().to_string();
            let field = field_of(e.path(), &message).unwrap_or_else(|| "query".into());
            ApiError::bad_request("invalid_query", message, Some(field))
        })
    }
}

/// The client's address: `X-Forwarded-For`'s first hop when `server.trust_proxy` is on, else the peer.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.cfg.server.trust_proxy
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Ok(Self(Some(ip)));
        }
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// Pagination: `?limit=&offset=`, limit 1..=100 (default 20).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 1_000_000_000)]
    pub offset: Option<i64>,
}

impl PageQuery {
    pub fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(20);
        let offset = self.offset.unwrap_or(0);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request("invalid_query", "limit must be 1..=100", Some("limit".into())));
        }
        if !(0..=1_000_000_000).contains(&offset) {
            return Err(ApiError::bad_request("invalid_query", "offset must be 0..=1000000000", Some("offset".into())));
        }
        Ok((limit, offset))
    }
}

/// A page of results as every list endpoint returns it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The path's parameters by name. Every `id`/`…Id` parameter is checked to be a UUID here, before the body is
/// read, so a bad id is reported as such whatever else is wrong with the request.
pub struct PathParams(pub std::collections::HashMap<String, String>);

impl FromRequestParts<AppState> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("bad_path", e.body_text(), None))?
            .0;
        for name in params.keys().filter(|k| *k == "id" || k.ends_with("Id")) {
            crate::auth::path_uuid(&params, name)?;
        }
        Ok(PathParams(params))
    }
}
