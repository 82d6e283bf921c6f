//! `/api/openapi.json` documents every route, and every documented route is really served.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};

/// The public API.
const DESIGN_ROUTES: &[(&str, &str)] = &[
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/logout"),
    ("post", "/api/auth/refresh"),
    ("get", "/api/auth/me"),
    ("get", "/api/broadcasts"),
    ("post", "/api/broadcasts"),
    ("get", "/api/broadcasts/{id}"),
    ("patch", "/api/broadcasts/{id}"),
    ("delete", "/api/broadcasts/{id}"),
    ("post", "/api/broadcasts/{id}/start"),
    ("post", "/api/broadcasts/{id}/end"),
    ("get", "/api/broadcasts/{id}/scene"),
    ("put", "/api/broadcasts/{id}/scene"),
    ("get", "/api/broadcasts/{id}/program.jpg"),
    ("get", "/api/broadcasts/{id}/destinations"),
    ("post", "/api/broadcasts/{id}/destinations"),
    ("patch", "/api/broadcasts/{id}/destinations/{destId}"),
    ("delete", "/api/broadcasts/{id}/destinations/{destId}"),
    ("post", "/api/broadcasts/{id}/destinations/{destId}/test"),
    ("get", "/api/broadcasts/{id}/invites"),
    ("post", "/api/broadcasts/{id}/invites"),
    ("delete", "/api/broadcasts/{id}/invites/{inviteId}"),
    ("post", "/api/invites/{token}/redeem"),
    ("get", "/join/{token}"),
    ("get", "/api/plugins"),
    ("get", "/api/recordings"),
    ("get", "/api/recordings/{id}"),
    ("delete", "/api/recordings/{id}"),
    ("get", "/api/recordings/{id}/file"),
    ("post", "/api/upload"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
];

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let t = TestApp::new(Backend::Sqlite).await;
    let doc = t.get("/api/openapi.json").send().await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths");
    for (method, path) in DESIGN_ROUTES {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} missing from openapi.json");
    }
    // Every documented operation is routed: the router answers something other than "no such route/method".
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else { continue };
            let concrete = path
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{destId}", &uuid::Uuid::new_v4().to_string())
                .replace("{inviteId}", &uuid::Uuid::new_v4().to_string())
                .replace("{token}", "x")
                .replace("{sha256}", &"0".repeat(64));
            let r = t.req(m, &concrete).send().await;
            let code = r.body["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "route_not_found" && code != "method_not_allowed",
                "{method} {path} is documented but not routed"
            );
            assert!(!r.status.is_server_error(), "{method} {path}: {}", r.status);
            operations += 1;
        }
    }
    assert!(operations >= DESIGN_ROUTES.len());
}
