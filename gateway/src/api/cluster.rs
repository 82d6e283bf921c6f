//! `GET /api/cluster`: the nodes of this deployment, their load and the broadcasts each is home to (admins).

use axum::extract::State;
use serde::Serialize;

use crate::auth::CurrentUser;
use crate::cluster::NodeInfo;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The cluster as the directory sees it now.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The node that answered.
    pub this_node: String,
    /// Nodes whose entry is current (renewed within the last few seconds), by id.
    pub nodes: Vec<NodeInfo>,
    /// The broadcasts whose program runs on one of them, so the operator sees which shows they are.
    pub broadcasts: Vec<BroadcastBrief>,
}

/// A broadcast as the cluster view names it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastBrief {
    pub id: uuid::Uuid,
    pub title: String,
    pub status: crate::store::BroadcastStatus,
}

#[utoipa::path(get, path = "/api/cluster", tag = "system",
    responses((status = 200, body = ClusterView), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
pub async fn view(State(state): State<AppState>, user: CurrentUser) -> ApiResult<axum::Json<ClusterView>> {
    let me = state.store.user_by_id(user.id).await?.ok_or(ApiError::Unauthenticated)?;
    if !me.is_admin {
        return Err(ApiError::forbidden("only an administrator sees the cluster"));
    }
    let nodes = state.cluster.directory.nodes().await.map_err(|e| ApiError::Internal(e.into()))?;
    let mut broadcasts = Vec::new();
    for &id in nodes.iter().flat_map(|n| &n.programs) {
        if let Some(b) = state.store.broadcast(id).await? {
            broadcasts.push(BroadcastBrief { id, title: b.title, status: b.status });
        }
    }
    Ok(axum::Json(ClusterView { this_node: state.cluster.node.clone(), nodes, broadcasts }))
}
