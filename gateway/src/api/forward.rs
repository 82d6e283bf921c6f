//! Any node serves a live show's viewers. A show's streams (HLS, FLV, WHEP) come out of its program, which runs on
//! its home node only; a viewer's request that reaches another node (a load balancer chose it) is passed on to
//! the home node, at the address the directory lists for it (`cluster.advertise_url`, else `public_url`), and
//! the answer is passed back as it streams. A request passed on once carries [`FORWARDED`] and is never passed
//! on again: a node that receives one answers it itself.
//!
//! The same way, a recording part kept on one node's own disk is served (and deleted) through any node
//! ([`to_node`]).
//!
//! Only plain `http://` addresses are dialled: nodes reach each other on an internal network, as their relay
//! does; a home advertised as `https://` answers 503 naming `cluster.advertise_url`.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use uuid::Uuid;

use super::watch::streaming;
use crate::error::ApiError;
use crate::state::AppState;

/// Marks a request one node passed on to another.
pub const FORWARDED: HeaderName = HeaderName::from_static("x-backyard-forwarded");

/// One pool of connections to the other nodes.
static CLIENT: LazyLock<Client<HttpConnector, Body>> = LazyLock::new(|| {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(2)));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
});

/// The show whose viewer stream `path` asks for: `/api/watch/{id}/whep` (and its sessions), `/hls/…` or
/// `/live.flv`.
fn viewer_stream(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/api/watch/")?;
    let (id, tail) = rest.split_once('/')?;
    let streams = tail == "whep" || tail.starts_with("whep/") || tail.starts_with("hls/") || tail == "live.flv";
    streams.then(|| id.parse().ok()).flatten()
}

/// Middleware: passes a viewer's request on to the show's home node when the show is live on another node.
pub async fn viewer_streams_to_home(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(broadcast) = viewer_stream(req.uri().path()) else { return next.run(req).await };
    if state.cfg.redis.url.is_none() || streaming(&state, broadcast).await.is_some() {
        return next.run(req).await;
    }
    let home = match state.cluster.directory.home(broadcast).await {
        Ok(home) => home.map(|(node, _)| node),
        Err(e) => {
            tracing::warn!(%broadcast, "cluster: looking up a show's home: {e}");
            None
        }
    };
    let Some(home) = home else { return next.run(req).await };
    match to_node(&state, &home, req).await {
        Ok(res) => res,
        Err(req) => next.run(req).await,
    }
}

/// Passes `req` on to node `node` when it is another live node of the cluster and `req` has not been passed on
/// already; `Err(req)` back otherwise, for this node to answer.
pub async fn to_node(state: &AppState, node: &str, req: Request) -> Result<Response, Request> {
    if state.cfg.redis.url.is_none()
        || node.is_empty()
        || node == state.cluster.node
        || req.headers().contains_key(FORWARDED)
    {
        return Err(req);
    }
    let base = match state.cluster.directory.nodes().await {
        Ok(nodes) => nodes.into_iter().find(|n| n.id == node).map(|n| n.http),
        Err(e) => {
            tracing::warn!(node, "cluster: listing the nodes: {e}");
            None
        }
    };
    match base {
        Some(base) => Ok(pass_on(&base, req).await.unwrap_or_else(IntoResponse::into_response)),
        None => Err(req),
    }
}

/// Sends `req` to the node at `base` and returns its answer, its body streamed through.
async fn pass_on(base: &str, req: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let Some(authority) = base.strip_prefix("http://").map(|a| a.trim_end_matches('/')) else {
        return Err(ApiError::Unavailable(format!(
            "another node serves this, and its address ({base}) is not plain http://; \
             set that node's cluster.advertise_url to its internal http:// address"
        )));
    };
    let target = format!("http://{authority}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    parts.uri = target
        .parse::<Uri>()
        .map_err(|e| ApiError::Unavailable(format!("the node that serves this has an unusable address {base}: {e}")))?;
    for hop in [header::CONNECTION, header::HOST, header::TRANSFER_ENCODING, header::UPGRADE] {
        parts.headers.remove(hop);
    }
    parts.headers.remove("keep-alive");
    parts.headers.insert(FORWARDED, HeaderValue::from_static("1"));
    let res = CLIENT
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| ApiError::Unavailable(format!("the node that serves this ({base}) did not answer: {e}")))?;
    let (mut parts, body) = res.into_parts();
    parts.headers.remove(header::CONNECTION);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove("keep-alive");
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_show_s_viewer_streams_are_passed_on() {
        let id = Uuid::new_v4();
        for path in
            ["whep", "whep/0a5e1e0b-5f3a-4f8e-9b7a-2b3c4d5e6f70", "hls/index.m3u8", "hls/seg-00001.m4s", "live.flv"]
        {
            assert_eq!(viewer_stream(&format!("/api/watch/{id}/{path}")), Some(id), "{path}");
        }
        for path in [format!("/api/watch/{id}"), format!("/api/watch/{id}/program.jpg"), "/api/watch".into()] {
            assert_eq!(viewer_stream(&path), None, "{path}");
        }
        assert_eq!(viewer_stream("/api/watch/not-a-uuid/whep"), None);
    }
}
