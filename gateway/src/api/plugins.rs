//! `GET /api/plugins`: what is installed, whether the operator enabled it, and how it is doing.

use axum::extract::State;
use backyard_core::plugin_host::PluginSummary;
use serde::Serialize;

use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::state::AppState;

/// One installed plugin.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    /// `layout` | `overlay` | `destination` | `filter`
    pub kind: String,
    pub version: String,
    /// The WIT API version it was built against.
    pub api: String,
    pub description: String,
    /// The operator has not turned it off in `backyard.toml`.
    pub enabled: bool,
    /// `ok`, `disabled` (by the operator) or `failed` (switched off by the failure policy after repeated
    /// traps, timeouts or invalid output).
    pub status: String,
    /// The error that disabled it, or the last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What it may reach: `{"allowedHosts": [...]}` (HTTP, destination adapters only).
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    /// `{"memoryMb", "callMs"}` enforced by the host.
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    pub calls: u64,
    pub failures: u64,
    /// Hot reloads since start.
    pub reloads: u64,
}

impl From<PluginSummary> for PluginInfo {
    fn from(p: PluginSummary) -> Self {
        PluginInfo {
            kind: p.kind.as_str().to_owned(),
            capabilities: serde_json::json!({ "allowedHosts": p.capabilities.allowed_hosts }),
            limits: serde_json::json!({ "memoryMb": p.limits.memory_mb, "callMs": p.limits.call_ms }),
            name: p.name,
            version: p.version,
            api: p.api,
            description: p.description,
            enabled: p.enabled,
            status: p.status.to_owned(),
            last_error: p.last_error,
            calls: p.calls,
            failures: p.failures,
            reloads: p.reloads,
        }
    }
}

#[utoipa::path(get, path = "/api/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginInfo>), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, _user: CurrentUser) -> ApiResult<axum::Json<Vec<PluginInfo>>> {
    let host = state.plugins.api_host().await?;
    Ok(axum::Json(host.list().into_iter().map(PluginInfo::from).collect()))
}
