//! Table-driven bad input against every REST endpoint: malformed JSON, wrong types, wrong content type,
//! oversized bodies, bad and unknown ids, someone else's resources, no credentials, and guests calling host
//! actions. Every answer must be a 4xx with the JSON error body; none may be a 5xx.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, Cookies, Res, TestApp};
use serde_json::{Value, json};

both_backends!(every_endpoint_rejects_bad_input_with_a_json_4xx);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    /// Anyone, no credentials needed.
    Public,
    /// Any signed-in caller, guests included.
    Anyone,
    /// An account (guests get 403).
    Account,
    /// The broadcast's host or co-host (guests get 403).
    Host,
    /// An encoder with an ingest key as its Bearer token (WHIP): sessions and cookies count for nothing.
    IngestKey,
}

struct Endpoint {
    method: Method,
    path: &'static str,
    who: Who,
    /// A JSON body whose first field has the wrong type, for endpoints that take JSON.
    wrong_type: Option<Value>,
}

fn endpoints() -> Vec<Endpoint> {
    use Who::*;
    let e = |m: Method, path, who, wrong_type: Option<Value>| Endpoint { method: m, path, who, wrong_type };
    vec![
        e(
            Method::POST,
            "/api/auth/register",
            Public,
            Some(json!({"email": 5, "password": "long enough", "name": "n"})),
        ),
        e(Method::POST, "/api/auth/login", Public, Some(json!({"email": ["x"], "password": "p"}))),
        e(Method::POST, "/api/auth/refresh", Public, None),
        e(Method::GET, "/api/auth/me", Anyone, None),
        e(Method::GET, "/api/broadcasts", Account, None),
        e(Method::POST, "/api/broadcasts", Account, Some(json!({"title": 5}))),
        e(Method::GET, "/api/broadcasts/{b}", Anyone, None),
        e(Method::PATCH, "/api/broadcasts/{b}", Host, Some(json!({"title": false}))),
        e(Method::DELETE, "/api/broadcasts/{b}", Host, None),
        e(Method::POST, "/api/broadcasts/{b}/start", Host, None),
        e(Method::POST, "/api/broadcasts/{b}/end", Host, None),
        e(Method::GET, "/api/broadcasts/{b}/scene", Anyone, None),
        e(Method::PUT, "/api/broadcasts/{b}/scene", Host, Some(json!({"layout": 5}))),
        e(Method::GET, "/api/broadcasts/{b}/program.jpg", Host, None),
        e(Method::GET, "/api/broadcasts/{b}/destinations", Host, None),
        e(Method::POST, "/api/broadcasts/{b}/destinations", Host, Some(json!({"platform": 5, "streamKey": "k"}))),
        e(Method::PATCH, "/api/broadcasts/{b}/destinations/{d}", Host, Some(json!({"enabled": "yes"}))),
        e(Method::DELETE, "/api/broadcasts/{b}/destinations/{d}", Host, None),
        e(Method::POST, "/api/broadcasts/{b}/destinations/{d}/test", Host, None),
        e(Method::GET, "/api/broadcasts/{b}/ingest-keys", Host, None),
        e(Method::POST, "/api/broadcasts/{b}/ingest-keys", Host, Some(json!({"label": 5}))),
        e(Method::POST, "/api/broadcasts/{b}/ingest-keys/{k}/reveal", Host, None),
        e(Method::DELETE, "/api/broadcasts/{b}/ingest-keys/{k}", Host, None),
        e(Method::GET, "/api/broadcasts/{b}/invites", Host, None),
        e(Method::POST, "/api/broadcasts/{b}/invites", Host, Some(json!({"role": 5}))),
        e(Method::DELETE, "/api/broadcasts/{b}/invites/{i}", Host, None),
        e(Method::POST, "/api/invites/{t}/redeem", Public, Some(json!({"name": 5}))),
        e(Method::GET, "/api/plugins", Account, None),
        e(Method::GET, "/api/brands", Account, None),
        e(Method::POST, "/api/brands", Account, Some(json!({"name": 5, "color": "#000000"}))),
        e(Method::PUT, "/api/brands/{br}", Account, Some(json!({"name": 5, "color": "#000000"}))),
        e(Method::DELETE, "/api/brands/{br}", Account, None),
        e(Method::GET, "/api/recordings", Account, None),
        e(Method::GET, "/api/recordings/{r}", Account, None),
        e(Method::DELETE, "/api/recordings/{r}", Account, None),
        e(Method::GET, "/api/recordings/{r}/file", Account, None),
        e(Method::POST, "/api/upload", Account, None),
        e(Method::GET, "/api/uploads/{u}", Public, None),
        e(Method::GET, "/api/watch", Public, None),
        e(Method::GET, "/api/watch/{b}", Public, None),
        e(Method::GET, "/api/watch/{b}/hls/index.m3u8", Public, None),
        e(Method::POST, "/api/watch/{b}/whep", Public, None),
        e(Method::DELETE, "/api/watch/{b}/whep/{s}", Public, None),
        e(Method::POST, "/api/whip", IngestKey, None),
        e(Method::DELETE, "/api/whip/00000000-0000-4000-8000-000000000000", IngestKey, None),
    ]
}

struct Fixture {
    host: Cookies,
    other: Cookies,
    guest: Cookies,
    ids: Vec<(&'static str, String)>,
}

fn fill(path: &str, ids: &[(&'static str, String)]) -> String {
    ids.iter().fold(path.to_owned(), |p, (k, v)| p.replace(k, v))
}

fn check(label: &str, r: &Res, want: StatusCode) {
    assert!(!r.status.is_server_error(), "{label}: got {} {}", r.status, String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.status, want, "{label}: {}", String::from_utf8_lossy(&r.bytes));
    assert!(
        r.body["error"]["code"].is_string() && r.body["error"]["message"].is_string(),
        "{label}: no JSON error body: {}",
        String::from_utf8_lossy(&r.bytes)
    );
}

async fn every_endpoint_rejects_bad_input_with_a_json_4xx(b: Backend) {
    let t = TestApp::with(b, |c| c.limits.json_body_bytes = 16 * 1024).await;
    let host = t.user("host@example.com").await;
    let other = t.user("other@example.com").await;
    let bid = t.broadcast(&host, "show").await;
    let dest = t
        .post(&format!("/api/broadcasts/{bid}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "youtube", "streamKey": "abcd-efgh-ijkl-mnop-qrst"}))
        .send()
        .await;
    let ingest_key =
        t.post(&format!("/api/broadcasts/{bid}/ingest-keys")).cookies(&host).json(json!({"label": "OBS"})).send().await;
    assert_eq!(ingest_key.status, StatusCode::CREATED, "{}", ingest_key.body);
    let inv = t.post(&format!("/api/broadcasts/{bid}/invites")).cookies(&host).json(json!({})).send().await;
    let guest = t.guest(&host, &bid, "guest", "G").await;
    let me: uuid::Uuid =
        t.get("/api/auth/me").cookies(&host).send().await.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let rec = t.state.store.create_recording(bid.parse().unwrap(), me, "r", 0, "").await.unwrap();
    let other_bid = t.broadcast(&other, "theirs").await;
    let other_me: uuid::Uuid =
        t.get("/api/auth/me").cookies(&other).send().await.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let other_rec = t.state.store.create_recording(other_bid.parse().unwrap(), other_me, "r", 0, "").await.unwrap();
    let brand = |user| {
        let fields = backyard::store::BrandFields {
            name: "b".into(),
            color: "#000000".into(),
            background: None,
            logo_url: None,
            background_image: None,
            font: None,
        };
        let store = t.state.store.clone();
        async move { store.create_brand(user, &fields).await.unwrap() }
    };
    let my_brand = brand(me).await;
    let other_brand = brand(other_me).await;
    let f = Fixture {
        host,
        other,
        guest,
        ids: vec![
            ("{b}", bid.clone()),
            ("{d}", dest.body["id"].as_str().unwrap().to_owned()),
            ("{i}", inv.body["id"].as_str().unwrap().to_owned()),
            ("{t}", inv.body["token"].as_str().unwrap().to_owned()),
            ("{r}", rec.id.to_string()),
            ("{br}", my_brand.id.to_string()),
            ("{k}", ingest_key.body["id"].as_str().unwrap().to_owned()),
            ("{u}", "0".repeat(64)),
            ("{s}", uuid::Uuid::new_v4().to_string()),
        ],
    };
    let mut cases = 0;
    for ep in endpoints() {
        let path = fill(ep.path, &f.ids);
        let label = |case: &str| format!("{} {} [{case}]", ep.method, ep.path);
        let send = |who: &Cookies, path: &str| t.req(ep.method.clone(), path).cookies(who);

        if !matches!(ep.who, Who::Public) {
            check(&label("unauthenticated"), &t.req(ep.method.clone(), &path).send().await, StatusCode::UNAUTHORIZED);
            let bad_token = Cookies(vec![("by_access".into(), "not.a.jwt".into())]);
            check(&label("garbage token"), &send(&bad_token, &path).send().await, StatusCode::UNAUTHORIZED);
            cases += 2;
        }
        if let Some(wrong) = &ep.wrong_type {
            let who = &f.host;
            let r = send(who, &path).raw("application/json", b"{\"title\": ".to_vec()).send().await;
            check(&label("malformed JSON"), &r, StatusCode::BAD_REQUEST);
            let r = send(who, &path).json(wrong.clone()).send().await;
            check(&label("wrong type"), &r, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(r.body["error"]["field"].is_string(), "{}: field not named: {}", label("wrong type"), r.body);
            let r = send(who, &path).json(json!(["not", "an", "object"])).send().await;
            check(&label("array body"), &r, StatusCode::UNPROCESSABLE_ENTITY);
            let mut extra = wrong.as_object().unwrap().clone();
            extra.clear();
            extra.insert("unexpectedField".into(), json!(1));
            let r = send(who, &path).json(Value::Object(extra)).send().await;
            assert!(r.status.is_client_error(), "{}: {}", label("unknown field"), r.body);
            let r = send(who, &path).raw("text/plain", b"hello".to_vec()).send().await;
            check(&label("wrong content type"), &r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            cases += 5;
        }
        if ep.wrong_type.is_some() {
            let big = json!({ "title": "x".repeat(64 * 1024) });
            check(&label("oversized"), &send(&f.host, &path).json(big).send().await, StatusCode::PAYLOAD_TOO_LARGE);
            cases += 1;
        }
        // Ids: malformed and unknown.
        for (placeholder, _) in &f.ids {
            if !ep.path.contains(placeholder) || *placeholder == "{t}" || *placeholder == "{u}" {
                continue;
            }
            let others: Vec<_> = f.ids.iter().filter(|(k, _)| k != placeholder).cloned().collect();
            let malformed = fill(&ep.path.replace(placeholder, "not-a-uuid"), &others);
            let r = send(&f.host, &malformed).send().await;
            check(&label(&format!("malformed {placeholder}")), &r, StatusCode::BAD_REQUEST);
            let unknown = fill(&ep.path.replace(placeholder, &uuid::Uuid::new_v4().to_string()), &others);
            let mut req = send(&f.host, &unknown);
            if ep.wrong_type.is_some() {
                req = req.json(json!({}));
            }
            let r = req.send().await;
            check(&label(&format!("unknown {placeholder}")), &r, StatusCode::NOT_FOUND);
            cases += 2;
        }
        if ep.path.contains("{t}") {
            let r = send(&f.host, &ep.path.replace("{t}", "no-such-token")).json(json!({"name": "x"})).send().await;
            check(&label("unknown token"), &r, StatusCode::NOT_FOUND);
            cases += 1;
        }
        if ep.path.contains("{u}") {
            check(&label("unknown upload"), &send(&f.host, &path).send().await, StatusCode::NOT_FOUND);
            check(
                &label("malformed upload id"),
                &send(&f.host, "/api/uploads/..%2F..%2Fetc").send().await,
                StatusCode::BAD_REQUEST,
            );
            cases += 2;
        }
        // Someone else's broadcast, recording or brand: indistinguishable from missing.
        if ep.path.contains("{b}") || ep.path.contains("{r}") || ep.path.contains("{br}") {
            let theirs = ep
                .path
                .replace("{br}", &other_brand.id.to_string())
                .replace("{b}", &other_bid)
                .replace("{r}", &other_rec.id.to_string());
            let r = send(&f.host, &fill(&theirs, &f.ids)).send().await;
            check(&label("someone else's"), &r, StatusCode::NOT_FOUND);
            let r = send(&f.other, &path).send().await;
            check(&label("other user on mine"), &r, StatusCode::NOT_FOUND);
            cases += 2;
        }
        if matches!(ep.who, Who::Host | Who::Account) {
            let mut req = send(&f.guest, &path);
            if ep.wrong_type.is_some() {
                // A body valid enough to reach the role check.
                req = req.json(json!({}));
            }
            check(&label("guest as host"), &req.send().await, StatusCode::FORBIDDEN);
            cases += 1;
        }
    }
    // Settings the server reads are checked, naming the field.
    for (settings, field) in
        [(json!({"watch": "everyone"}), "settings.watch"), (json!({"backstage": 1}), "settings.backstage")]
    {
        let r = t
            .req(Method::PATCH, &fill("/api/broadcasts/{b}", &f.ids))
            .cookies(&f.host)
            .json(json!({"settings": settings}))
            .send()
            .await;
        check(&format!("PATCH settings {settings}"), &r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["error"]["field"], field, "{}", r.body);
    }
    let r = t.req(Method::GET, &fill("/api/watch/{b}/hls/../../secret", &f.ids)).send().await;
    assert!(r.status.is_client_error(), "a path outside the stream: {}", r.status);
    let r = t.req(Method::GET, &fill("/api/watch/{b}/hls/index.m3u8.tmp", &f.ids)).send().await;
    check("a file that is not the stream's", &r, StatusCode::NOT_FOUND);
    // Unknown routes and methods are JSON too.
    check("unknown route", &t.get("/api/nope").send().await, StatusCode::NOT_FOUND);
    check(
        "wrong method",
        &t.req(Method::PUT, "/api/broadcasts").cookies(&f.host).send().await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    assert!(cases > 100, "the table exercised {cases} cases");
}
