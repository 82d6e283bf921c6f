//! The one API error type and its mapping to HTTP status and the JSON body
//! `{"error": {"code", "message", "field"}}`. Every handler returns `Result<_, ApiError>`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid (400/422).
    #[error("{message}")]
    Invalid { status: StatusCode, code: &'static str, message: String, field: Option<String> },
    /// No valid credentials (401).
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but this role may not do that (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist, or is not the caller's (404, so existence does not leak).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The state forbids the action, e.g. starting an ended broadcast (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many requests; retry after this many seconds (429).
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// An account quota is reached (429, `field` names the `[limits]` key).
    #[error("{message}")]
    QuotaExceeded { limit: &'static str, message: String },
    /// The body exceeds the configured limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// Wrong Content-Type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The server cannot take this on now (e.g. as many viewers as it serves); try again later (503).
    #[error("{0}")]
    Unavailable(String),
    /// A dependency failed; details are logged, not returned (500/503).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>, field: Option<String>) -> Self {
        Self::Invalid { status: StatusCode::BAD_REQUEST, code, message: message.into(), field }
    }

    /// Overrides the status of an `Invalid` error (e.g. a JSON 404 for unknown routes).
    pub fn with_status(self, status: StatusCode) -> Self {
        match self {
            Self::Invalid { code, message, field, .. } => Self::Invalid { status, code, message, field },
            other => other,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { status, .. } => *status,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let field = match &self {
            Self::Invalid { field, .. } => field.clone(),
            Self::QuotaExceeded { limit, .. } => Some(format!("limits.{limit}")),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code: self.code().into(), message: self.to_string(), field } };
        let mut res = (self.status(), axum::Json(body)).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        res
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::scene::SceneError> for ApiError {
    fn from(e: crate::scene::SceneError) -> Self {
        Self::invalid(e.field, e.message)
    }
}

impl From<crate::scene::ApplyError> for ApiError {
    fn from(e: crate::scene::ApplyError) -> Self {
        match e {
            crate::scene::ApplyError::Invalid(e) => e.into(),
            crate::scene::ApplyError::Store(e) => e.into(),
        }
    }
}

impl From<crate::program::ProgramError> for ApiError {
    fn from(e: crate::program::ProgramError) -> Self {
        use crate::program::ProgramError as P;
        match e {
            P::AlreadyLive => Self::conflict("already_live", "the program is already on air"),
            P::Destination { field, message } => Self::invalid(field, message),
            P::Store(e) => e.into(),
            P::HostedElsewhere(node) => {
                Self::conflict("hosted_elsewhere", format!("the broadcast is on air from another node ({node})"))
            }
            e @ (P::Plugins(_) | P::Start(_) | P::Recording(_) | P::Cluster(_)) => Self::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(what) => Self::conflict("conflict", format!("{what} already exists")),
            e @ crate::store::StoreError::Fenced { .. } => Self::conflict("hosted_elsewhere", e.to_string()),
            other => Self::Internal(other.into()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
