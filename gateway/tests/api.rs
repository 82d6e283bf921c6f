//! The REST API end to end, in-process, on both backends (see `common`).

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, Cookies, RawDb, TestApp};
use serde_json::{Value, json};

both_backends!(
    clips_are_checked_when_uploaded_listed_and_a_scene_plays_only_a_clip,
    host_flow_register_login_broadcast_destination_start_end,
    stream_keys_are_encrypted_at_rest_and_never_returned,
    tampered_stream_key_is_reported_clearly,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_session,
    rate_limit_on_login_gives_429_with_retry_after,
    failed_logins_cannot_lock_the_owner_out,
    an_access_token_must_name_a_session_of_its_own_user,
    account_quotas_are_refused_naming_the_limit,
    invites_guest_sessions_and_roles,
    revoking_an_invite_ends_its_guest_sessions,
    cohosts_see_and_manage_guest_invites_only,
    registration_modes_and_first_admin,
    lists_are_paginated_and_ordered,
    scene_round_trip_and_validation,
    brand_kits_are_kept_per_account_and_a_scene_takes_one_on,
    recordings_list_get_range_delete,
    uploads_are_type_checked_size_limited_and_served,
    start_and_end_are_announced_on_the_bus,
    cross_origin_state_changes_are_refused,
    health_and_metrics,
    the_cluster_view_lists_live_nodes_to_administrators_only,
    a_show_open_to_viewers_streams_hls_while_live,
    ingest_keys_are_sealed_listed_masked_and_revocable,
);

async fn host_flow_register_login_broadcast_destination_start_end(b: Backend) {
    let t = TestApp::new(b).await;
    t.user("host@example.com").await;
    // Log in again with the password, as a returning host would.
    let login = t
        .post("/api/auth/login")
        .json(json!({"email": "HOST@example.com", "password": "correct horse battery"}))
        .send()
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let host = login.cookies();
    assert!(host.get("by_access").is_some() && host.get("by_refresh").is_some());
    let set_cookie =
        login.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(set_cookie.iter().all(|c| c.contains("HttpOnly") && c.contains("SameSite=Lax")), "{set_cookie:?}");

    let me = t.get("/api/auth/me").cookies(&host).send().await;
    assert_eq!(me.body["user"]["email"], "host@example.com");
    assert_eq!(me.body["user"]["isAdmin"], true, "first account is the admin");
    assert!(me.body["user"].get("password").is_none());

    let id = t.broadcast(&host, "Friday show").await;
    let got = t.get(&format!("/api/broadcasts/{id}")).cookies(&host).send().await;
    assert_eq!(got.body["title"], "Friday show");
    assert_eq!(got.body["status"], "scheduled");

    let key = "abcd-efgh-ijkl-mnop-qrst";
    let dest = t
        .post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "youtube", "streamKey": key}))
        .send()
        .await;
    assert_eq!(dest.status, StatusCode::CREATED, "{}", dest.body);
    assert_eq!(dest.body["streamKey"], "••••qrst");
    assert_eq!(dest.body["rtmpUrl"], "rtmps://a.rtmps.youtube.com:443/live2");
    let list = t.get(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).send().await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["streamKey"], "••••qrst");
    assert!(!list.bytes.windows(key.len()).any(|w| w == key.as_bytes()));

    let dest_id = dest.body["id"].as_str().unwrap();
    let patched = t
        .req(Method::PATCH, &format!("/api/broadcasts/{id}/destinations/{dest_id}"))
        .cookies(&host)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(patched.body["enabled"], false);
    // The adapter accepts the key; the real connect can only fail (a made-up key, and no route to YouTube
    // from the test machine) and names the stage it failed at.
    let test = t.post(&format!("/api/broadcasts/{id}/destinations/{dest_id}/test")).cookies(&host).send().await;
    assert_eq!(test.status, StatusCode::OK);
    assert_eq!(test.body["ok"], false, "{}", test.body);
    assert_eq!(test.body["checks"][0]["name"], "streamKey", "{}", test.body);
    assert_eq!(test.body["checks"][0]["ok"], true, "{}", test.body);
    assert_eq!(test.body["checks"][1]["name"], "ingest", "{}", test.body);
    assert_eq!(test.body["checks"][1]["ok"], true, "{}", test.body);
    let stage = test.body["checks"][2]["name"].as_str().unwrap_or_default();
    assert!(["dns", "tcp", "tls", "handshake", "rejected", "publish"].contains(&stage), "{}", test.body);

    let started = t.post(&format!("/api/broadcasts/{id}/start")).cookies(&host).send().await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert_eq!(started.body["status"], "live");
    assert!(started.body["startTime"].is_string());
    t.post(&format!("/api/broadcasts/{id}/start")).cookies(&host).send().await.assert_error(StatusCode::CONFLICT);
    let ended = t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    assert_eq!(ended.body["status"], "ended");
    assert!(ended.body["endTime"].is_string());
    t.post(&format!("/api/broadcasts/{id}/start")).cookies(&host).send().await.assert_error(StatusCode::CONFLICT);

    let del =
        t.req(Method::DELETE, &format!("/api/broadcasts/{id}/destinations/{dest_id}")).cookies(&host).send().await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let del = t.req(Method::DELETE, &format!("/api/broadcasts/{id}")).cookies(&host).send().await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    t.get(&format!("/api/broadcasts/{id}")).cookies(&host).send().await.assert_error(StatusCode::NOT_FOUND);
}

/// Every column of every destination row, as text and as raw bytes.
async fn raw_destination_rows(t: &TestApp) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    type Row = (String, String, String, Vec<u8>, Vec<u8>, String, String);
    let sql = "SELECT platform, name, rtmp_url, stream_key, stream_key_nonce, stream_key_kid, status FROM destinations ORDER BY created_at";
    let rows: Vec<Row> = match &t.raw {
        RawDb::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        RawDb::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    };
    rows.into_iter().map(|r| (format!("{} {} {} {} {}", r.0, r.1, r.2, r.5, r.6), r.3, r.4)).collect()
}

fn forms_of(key: &str) -> Vec<String> {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD;
    let u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![key.to_owned(), hex::encode(key), hex::encode(key).to_uppercase(), e.encode(key), u.encode(key)]
}

async fn stream_keys_are_encrypted_at_rest_and_never_returned(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let key = "live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz";
    for _ in 0..2 {
        let r = t
            .post(&format!("/api/broadcasts/{id}/destinations"))
            .cookies(&host)
            .json(json!({"platform": "twitch", "streamKey": key}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.body["streamKey"], "••••WxYz");
    }
    let rows = raw_destination_rows(&t).await;
    assert_eq!(rows.len(), 2);
    for (text, ciphertext, nonce) in &rows {
        let mut haystack = text.clone().into_bytes();
        haystack.extend_from_slice(ciphertext);
        haystack.extend_from_slice(nonce);
        haystack.extend_from_slice(hex::encode(ciphertext).as_bytes());
        for form in forms_of(key) {
            assert!(!haystack.windows(form.len()).any(|w| w == form.as_bytes()), "found {form} in the raw row");
        }
    }
    assert_ne!(rows[0].1, rows[1].1, "same key stored twice must give different ciphertexts");
    assert_ne!(rows[0].2, rows[1].2, "nonces must differ");
}

async fn tampered_stream_key_is_reported_clearly(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let r = t
        .post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "rtmp", "rtmpUrl": "rtmp://127.0.0.1/live", "streamKey": "secret-key-123456"}))
        .send()
        .await;
    let dest = r.body["id"].as_str().unwrap().to_owned();
    let (_, mut ciphertext, _) = raw_destination_rows(&t).await.remove(0);
    ciphertext[0] ^= 0x55;
    match &t.raw {
        RawDb::Sqlite(p) => sqlx::query("UPDATE destinations SET stream_key = $1")
            .bind(&ciphertext)
            .execute(p)
            .await
            .map(|_| ())
            .unwrap(),
        RawDb::Postgres(p) => sqlx::query("UPDATE destinations SET stream_key = $1")
            .bind(&ciphertext)
            .execute(p)
            .await
            .map(|_| ())
            .unwrap(),
    }
    let list = t.get(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).send().await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body[0]["keyError"].as_str().unwrap().contains("tampered"), "{}", list.body);
    let test = t.post(&format!("/api/broadcasts/{id}/destinations/{dest}/test")).cookies(&host).send().await;
    assert_eq!(test.body["ok"], false);
    let key_check = test.body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "streamKey").cloned();
    assert!(key_check.is_some_and(|c| c["message"].as_str().unwrap().contains("tampered")), "{}", test.body);
}

async fn refresh_rotates_and_reuse_revokes_the_family(b: Backend) {
    let t = TestApp::new(b).await;
    let mut c = t.user("r@example.com").await;
    let r1 = c.only("by_refresh");
    let res = t.post("/api/auth/refresh").cookies(&r1).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    c.update(&res);
    let r2 = c.only("by_refresh");
    assert_ne!(r1.get("by_refresh"), r2.get("by_refresh"), "refresh token rotates");
    assert_eq!(t.get("/api/auth/me").cookies(&c).send().await.status, StatusCode::OK);
    // Replaying the spent token: refused, and the whole family (session) is revoked.
    t.post("/api/auth/refresh").cookies(&r1).send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.post("/api/auth/refresh").cookies(&r2).send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.get("/api/auth/me").cookies(&c.only("by_access")).send().await.assert_error(StatusCode::UNAUTHORIZED);
    // A fresh login still works.
    let login = t
        .post("/api/auth/login")
        .json(json!({"email": "r@example.com", "password": "correct horse battery"}))
        .send()
        .await;
    assert_eq!(login.status, StatusCode::OK);
}

async fn logout_revokes_the_session(b: Backend) {
    let t = TestApp::new(b).await;
    let c = t.user("l@example.com").await;
    let other = t
        .post("/api/auth/login")
        .json(json!({"email": "l@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .cookies();
    let out = t.post("/api/auth/logout").cookies(&c).send().await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.cookies().get("by_access") == Some(""), "logout clears the cookie");
    t.get("/api/auth/me").cookies(&c).send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.post("/api/auth/refresh").cookies(&c.only("by_refresh")).send().await.assert_error(StatusCode::UNAUTHORIZED);
    // Another device's session is untouched.
    assert_eq!(t.get("/api/auth/me").cookies(&other).send().await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_ends_the_session_on_another_at_once() {
    use tower::ServiceExt as _;
    let t = TestApp::new(Backend::Postgres).await;
    let node_b = t.second_node().await;
    let c = t.user("n@example.com").await;
    let me_on_b = || {
        let req = axum::http::Request::builder()
            .uri("/api/auth/me")
            .header("cookie", c.header())
            .body(axum::body::Body::empty())
            .unwrap();
        node_b.clone().oneshot(req)
    };
    // Node B has now confirmed (and cached) the session.
    assert_eq!(me_on_b().await.unwrap().status(), StatusCode::OK);
    assert_eq!(t.post("/api/auth/logout").cookies(&c).send().await.status, StatusCode::NO_CONTENT);
    // The revocation reaches node B over Redis well before its cache would expire on its own (5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if me_on_b().await.unwrap().status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node B still accepts a session revoked on node A");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn rate_limit_on_login_gives_429_with_retry_after(b: Backend) {
    let t = TestApp::with(b, |c| c.limits.auth_per_minute = 3).await;
    for i in 0..3 {
        let r = t
            .post("/api/auth/login")
            .with_ip("10.0.0.1")
            .json(json!({"email": "nobody@example.com", "password": "wrong password"}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = t
        .post("/api/auth/login")
        .with_ip("10.0.0.1")
        .json(json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send()
        .await;
    assert_eq!(r.assert_error(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Failures lock out the address that failed, not the account: another address is still heard.
    let r = t
        .post("/api/auth/login")
        .with_ip("10.0.0.2")
        .json(json!({"email": "nobody@example.com", "password": "x"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Another address and account is not.
    let r = t
        .post("/api/auth/login")
        .with_ip("10.0.0.3")
        .json(json!({"email": "else@example.com", "password": "x"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Knowing someone's email is not enough to lock them out: failures from one address are refused at that
/// address only, guesses spread over many addresses are slowed down, and the right password from an address
/// that has not been failing gets in.
async fn failed_logins_cannot_lock_the_owner_out(b: Backend) {
    let t = TestApp::with(b, |c| c.limits.auth_per_minute = 4).await;
    t.user("victim@example.com").await;
    let login = |ip: &'static str, password: &'static str| {
        let t = &t;
        async move {
            t.post("/api/auth/login")
                .with_ip(ip)
                .json(json!({"email": "victim@example.com", "password": password}))
                .send()
                .await
        }
    };
    // An attacker at one address: refused after the limit.
    for _ in 0..4 {
        assert_eq!(login("10.9.0.1", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    login("10.9.0.1", "guess").await.assert_error(StatusCode::TOO_MANY_REQUESTS);
    // Spread over many addresses (4 per address, 24 in all): never a 429 for a fresh address.
    for n in 2..8u8 {
        let ip: &'static str = Box::leak(format!("10.9.0.{n}").into_boxed_str());
        for _ in 0..4 {
            assert_eq!(login(ip, "guess").await.status, StatusCode::UNAUTHORIZED);
        }
    }
    // The owner, from their own address, with the right password: in, after the slowed-down check.
    let started = std::time::Instant::now();
    let r = login("10.9.1.1", "correct horse battery").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(started.elapsed() >= backyard::state::LOGIN_SLOW_PATH, "the account under attack answers slowly");
}

/// What one account may grow is bounded: past a quota, the request is a 429 whose `field` names the limit, and
/// another account is not affected.
async fn account_quotas_are_refused_naming_the_limit(b: Backend) {
    let t = TestApp::with(b, |c| {
        c.limits.broadcasts_per_account = 2;
        c.limits.live_per_account = 1;
        c.limits.upload_bytes_per_account = (PNG.len() * 2) as u64;
    })
    .await;
    let host = t.user("q@example.com").await;
    let first = t.broadcast(&host, "one").await;
    let second = t.broadcast(&host, "two").await;
    let r = t.post("/api/broadcasts").cookies(&host).json(json!({"title": "three"})).send().await;
    assert_eq!(r.assert_error(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    assert_eq!(r.body["error"]["field"], "limits.broadcasts_per_account", "{}", r.body);
    // One on air at once.
    assert_eq!(t.post(&format!("/api/broadcasts/{first}/start")).cookies(&host).send().await.status, StatusCode::OK);
    let r = t.post(&format!("/api/broadcasts/{second}/start")).cookies(&host).send().await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["field"], "limits.live_per_account", "{}", r.body);
    assert_eq!(t.post(&format!("/api/broadcasts/{first}/end")).cookies(&host).send().await.status, StatusCode::OK);
    // Uploads: two fit, the third would pass the byte quota.
    for _ in 0..2 {
        let (ct, body) = multipart("file", PNG);
        assert_eq!(t.post("/api/upload").cookies(&host).raw(&ct, body).send().await.status, StatusCode::CREATED);
    }
    let (ct, body) = multipart("file", PNG);
    let r = t.post("/api/upload").cookies(&host).raw(&ct, body).send().await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["field"], "limits.upload_bytes_per_account", "{}", r.body);
    // Someone else starts with room of their own.
    let other = t.user("r@example.com").await;
    t.broadcast(&other, "theirs").await;
}

/// A signed access token is only good with a session of the user it names: pairing someone's user id with
/// another account's live session (as a leaked signing key or a mix-up could) gets nowhere.
async fn an_access_token_must_name_a_session_of_its_own_user(b: Backend) {
    let t = TestApp::new(b).await;
    t.user("a@example.com").await;
    t.user("b@example.com").await;
    let id_of = |email: &str| {
        let t = &t;
        let email = email.to_owned();
        async move { t.state.store.user_by_email(&email).await.unwrap().unwrap().id }
    };
    let (a, b_id) = (id_of("a@example.com").await, id_of("b@example.com").await);
    let a_session = t.state.tokens.create_session(a).await.unwrap();
    let mine = t.state.jwt.issue(a, a_session);
    let me = t.get("/api/auth/me").header("authorization", &format!("Bearer {mine}")).send().await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let crossed = t.state.jwt.issue(b_id, a_session);
    t.get("/api/auth/me")
        .header("authorization", &format!("Bearer {crossed}"))
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

async fn invites_guest_sessions_and_roles(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "show").await;
    let inv = t
        .post(&format!("/api/broadcasts/{id}/invites"))
        .cookies(&host)
        .json(json!({"role": "guest", "expiresInHours": 2}))
        .send()
        .await;
    assert_eq!(inv.status, StatusCode::CREATED);
    assert!(inv.body["url"].as_str().unwrap().starts_with("http://studio.test/join/"));
    let list = t.get(&format!("/api/broadcasts/{id}/invites")).cookies(&host).send().await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    // The server keeps only the link's hash: a listed invite has no link to show again.
    assert_eq!(list.body[0]["id"], inv.body["id"]);
    assert!(list.body[0].get("token").is_none() && list.body[0].get("url").is_none(), "{}", list.body);

    let guest = t.guest(&host, &id, "guest", "Ada").await;
    let me = t.get("/api/auth/me").cookies(&guest).send().await;
    assert_eq!(me.body["guest"]["name"], "Ada");
    assert_eq!(me.body["guest"]["role"], "guest");
    assert_eq!(t.get(&format!("/api/broadcasts/{id}")).cookies(&guest).send().await.status, StatusCode::OK);
    assert_eq!(t.get(&format!("/api/broadcasts/{id}/scene")).cookies(&guest).send().await.status, StatusCode::OK);
    // A guest may not run the show.
    for path in ["start", "end", "invites", "destinations"] {
        t.post(&format!("/api/broadcasts/{id}/{path}"))
            .cookies(&guest)
            .json(json!({}))
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    t.get("/api/broadcasts").cookies(&guest).send().await.assert_error(StatusCode::FORBIDDEN);
    // Nor see other broadcasts.
    let other = t.broadcast(&host, "other").await;
    t.get(&format!("/api/broadcasts/{other}")).cookies(&guest).send().await.assert_error(StatusCode::NOT_FOUND);

    // A co-host may start and end, but not delete or see keys.
    let cohost = t.guest(&host, &id, "cohost", "Grace").await;
    assert_eq!(t.post(&format!("/api/broadcasts/{id}/start")).cookies(&cohost).send().await.status, StatusCode::OK);
    assert_eq!(t.post(&format!("/api/broadcasts/{id}/end")).cookies(&cohost).send().await.status, StatusCode::OK);
    t.req(Method::DELETE, &format!("/api/broadcasts/{id}"))
        .cookies(&cohost)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // Bad and unknown tokens.
    t.post("/api/invites/not-a-token/redeem")
        .json(json!({"name": "x"}))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let token = inv.body["token"].as_str().unwrap();
    let r = t.post(&format!("/api/invites/{token}/redeem")).json(json!({"name": ""})).send().await;
    assert_eq!(r.body["error"]["field"], "name");
}

async fn cohosts_see_and_manage_guest_invites_only(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "show").await;
    let invite = |role: &str| {
        let (t, host, id) = (&t, &host, &id);
        let role = role.to_owned();
        async move {
            let r =
                t.post(&format!("/api/broadcasts/{id}/invites")).cookies(host).json(json!({"role": role})).send().await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let guest_link = invite("guest").await;
    let cohost_link = invite("cohost").await;
    let cohost = t.guest(&host, &id, "cohost", "Grace").await;
    // The co-host's list holds guest links only; the owner's holds both.
    let listed = t.get(&format!("/api/broadcasts/{id}/invites")).cookies(&cohost).send().await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let roles: Vec<&str> = listed.body.as_array().unwrap().iter().map(|i| i["role"].as_str().unwrap()).collect();
    assert!(!roles.is_empty() && roles.iter().all(|r| *r == "guest"), "a co-host sees {roles:?}");
    assert!(!listed.body.to_string().contains(&cohost_link), "the co-host link is not listed");
    let all = t.get(&format!("/api/broadcasts/{id}/invites")).cookies(&host).send().await;
    assert!(all.body.to_string().contains(&cohost_link), "the owner sees it");
    // A co-host may not revoke the owner's co-host link (it looks missing), but may revoke a guest link.
    t.req(Method::DELETE, &format!("/api/broadcasts/{id}/invites/{cohost_link}"))
        .cookies(&cohost)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let r = t.req(Method::DELETE, &format!("/api/broadcasts/{id}/invites/{guest_link}")).cookies(&cohost).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let all = t.get(&format!("/api/broadcasts/{id}/invites")).cookies(&host).send().await;
    assert!(all.body.to_string().contains(&cohost_link), "the co-host link survived");
}

async fn revoking_an_invite_ends_its_guest_sessions(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "show").await;
    let inv = t.post(&format!("/api/broadcasts/{id}/invites")).cookies(&host).json(json!({})).send().await;
    let token = inv.body["token"].as_str().unwrap();
    let invite_id = inv.body["id"].as_str().unwrap();
    let guest = t.post(&format!("/api/invites/{token}/redeem")).json(json!({"name": "Bob"})).send().await.cookies();
    let session_id: uuid::Uuid =
        t.get("/api/auth/me").cookies(&guest).send().await.body["guest"]["id"].as_str().unwrap().parse().unwrap();
    let mut events = t.state.bus.subscribe(&backyard::bus::topic::session(session_id));
    let r = t.req(Method::DELETE, &format!("/api/broadcasts/{id}/invites/{invite_id}")).cookies(&host).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    t.get("/api/auth/me").cookies(&guest).send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.post(&format!("/api/invites/{token}/redeem"))
        .json(json!({"name": "Bob"}))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
        .await
        .expect("revocation announced")
        .unwrap();
    assert_eq!(ev.event, "session-revoked");
    assert_eq!(
        t.get(&format!("/api/broadcasts/{id}/invites")).cookies(&host).send().await.body.as_array().unwrap().len(),
        0
    );
}

async fn registration_modes_and_first_admin(b: Backend) {
    let t = TestApp::with(b, |c| c.auth.registration = backyard::config::Registration::Closed).await;
    // The first account may always be created: it is the admin.
    t.user("admin@example.com").await;
    let r = t
        .post("/api/auth/register")
        .json(json!({"email": "late@example.com", "password": "long enough pw", "name": "Late"}))
        .send()
        .await;
    r.assert_error(StatusCode::FORBIDDEN);

    let t = TestApp::with(b, |c| c.auth.registration = backyard::config::Registration::Invite).await;
    let admin = t.user("admin@example.com").await;
    let r = t
        .post("/api/auth/register")
        .json(json!({"email": "n@example.com", "password": "long enough pw", "name": "N"}))
        .send()
        .await;
    assert_eq!(r.body["error"]["field"], "inviteToken");
    let id = t.broadcast(&admin, "x").await;
    let inv = t.post(&format!("/api/broadcasts/{id}/invites")).cookies(&admin).json(json!({})).send().await;
    let r = t
        .post("/api/auth/register")
        .json(json!({"email": "n@example.com", "password": "long enough pw", "name": "N", "inviteToken": inv.body["token"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["user"]["isAdmin"], false);
    // Duplicate email: 409.
    let r = t.post("/api/auth/register").json(json!({"email": "N@example.com", "password": "long enough pw", "name": "N", "inviteToken": inv.body["token"]})).send().await;
    r.assert_error(StatusCode::CONFLICT);
}

async fn lists_are_paginated_and_ordered(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    for i in 0..5 {
        t.broadcast(&host, &format!("b{i}")).await;
    }
    let p1 = t.get("/api/broadcasts?limit=2").cookies(&host).send().await;
    assert_eq!(p1.body["total"], 5);
    let titles = |r: &common::Res| {
        r.body["items"].as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(titles(&p1), ["b4", "b3"], "newest first");
    let p3 = t.get("/api/broadcasts?limit=2&offset=4").cookies(&host).send().await;
    assert_eq!(titles(&p3), ["b0"]);
    let r = t.get("/api/broadcasts?limit=0").cookies(&host).send().await;
    assert_eq!(r.body["error"]["field"], "limit");
    let r = t.get("/api/broadcasts?limit=abc").cookies(&host).send().await;
    assert_eq!(r.body["error"]["field"], "limit");
    // Someone else sees none of them.
    let other = t.user("o@example.com").await;
    assert_eq!(t.get("/api/broadcasts").cookies(&other).send().await.body["total"], 0);
}

async fn scene_round_trip_and_validation(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let get = t.get(&format!("/api/broadcasts/{id}/scene")).cookies(&host).send().await;
    assert_eq!(get.body["layout"], "grid");
    let p = uuid::Uuid::new_v4();
    let scene =
        json!({"stage": [p], "layout": "spotlight", "overlays": {"banner": {"text": "Welcome", "visible": false}}});
    let put =
        t.req(Method::PUT, &format!("/api/broadcasts/{id}/scene")).cookies(&host).json(scene.clone()).send().await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let get = t.get(&format!("/api/broadcasts/{id}/scene")).cookies(&host).send().await;
    assert_eq!(get.body, scene);
    let bad = t
        .req(Method::PUT, &format!("/api/broadcasts/{id}/scene"))
        .cookies(&host)
        .json(json!({"layout": "nope"}))
        .send()
        .await;
    assert_eq!(bad.body["error"]["field"], "layout");
    let bad = t
        .req(Method::PUT, &format!("/api/broadcasts/{id}/scene"))
        .cookies(&host)
        .json(json!({"stage": ["not-a-uuid"]}))
        .send()
        .await;
    assert_eq!(bad.body["error"]["field"], "stage[0]");
    // The same rules as over the WebSocket: a crowd, a non-object overlay, an over-long text; none is stored.
    let crowd: Vec<uuid::Uuid> = (0..30).map(|_| uuid::Uuid::new_v4()).collect();
    for (body, field) in [
        (json!({"stage": crowd}), "stage"),
        (json!({"overlays": {"banner": "Welcome"}}), "overlays.banner"),
        (json!({"overlays": {"banner": {"text": "x".repeat(2000), "visible": true}}}), "overlays.banner.text"),
        (json!({"overlays": {"ticker": {"text": "y".repeat(3000), "visible": true}}}), "overlays.ticker.text"),
        (json!({"slate": {"kind": "party"}}), "slate.kind"),
        (json!({"slate": {"kind": "brb", "text": "z".repeat(121)}}), "slate.text"),
        (json!({"slateImage": "https://example.com/picture.png"}), "slateImage"),
    ] {
        let bad = t.req(Method::PUT, &format!("/api/broadcasts/{id}/scene")).cookies(&host).json(body).send().await;
        bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.body["error"]["field"], field, "{}", bad.body);
    }
    let get = t.get(&format!("/api/broadcasts/{id}/scene")).cookies(&host).send().await;
    assert_eq!(get.body, scene, "a refused scene is not stored");
    // A slate (and the picture behind it) round-trips.
    let picture = format!("/api/uploads/{}", "ab".repeat(32));
    let slated = json!({"stage": [p], "layout": "grid", "overlays": {}, "slate": {"kind": "starting", "text": "At noon"},
        "slateImage": picture});
    let put =
        t.req(Method::PUT, &format!("/api/broadcasts/{id}/scene")).cookies(&host).json(slated.clone()).send().await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let get = t.get(&format!("/api/broadcasts/{id}/scene")).cookies(&host).send().await;
    assert_eq!(get.body, slated);
}

async fn brand_kits_are_kept_per_account_and_a_scene_takes_one_on(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let other = t.user("o@example.com").await;
    let made = t
        .post("/api/brands")
        .cookies(&host)
        .json(json!({"name": "Morning show", "color": "#D03030", "background": "#102030"}))
        .send()
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["color"], "#d03030", "kept in one spelling");
    let id = made.body["id"].as_str().unwrap().to_owned();
    let late = t.post("/api/brands").cookies(&host).json(json!({"name": "Late show", "color": "#3050d0"})).send().await;
    assert_eq!(late.status, StatusCode::CREATED, "{}", late.body);
    assert!(late.body["background"].is_null());
    let list = t.get("/api/brands").cookies(&host).send().await;
    let names: Vec<&str> = list.body["items"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Morning show", "Late show"], "oldest first");
    let theirs = t.get("/api/brands").cookies(&other).send().await;
    assert_eq!(theirs.body["items"], json!([]), "another account sees none of them");

    // Replaced whole; someone else's brand is missing to them.
    let picture = format!("/api/uploads/{}", "c0".repeat(32));
    let put = t
        .req(Method::PUT, &format!("/api/brands/{id}"))
        .cookies(&host)
        .json(json!({"name": "Morning", "color": "#00aa00", "backgroundImage": picture, "font": "serif"}))
        .send()
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!((put.body["name"].as_str(), put.body["background"].is_null()), (Some("Morning"), true));
    assert_eq!(put.body["backgroundImage"], json!(picture), "its picture behind the tiles is kept");
    assert_eq!(put.body["font"], "serif");
    let r = t
        .req(Method::PUT, &format!("/api/brands/{id}"))
        .cookies(&other)
        .json(json!({"name": "Mine now", "color": "#000000"}))
        .send()
        .await;
    r.assert_error(StatusCode::NOT_FOUND);
    t.req(Method::DELETE, &format!("/api/brands/{id}"))
        .cookies(&other)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // Bad input names its field.
    for (body, field) in [
        (json!({"name": "", "color": "#000000"}), "name"),
        (json!({"name": "x".repeat(61), "color": "#000000"}), "name"),
        (json!({"name": "Red", "color": "red"}), "color"),
        (json!({"name": "Red", "color": "#12345"}), "color"),
        (json!({"name": "Red", "color": "#123456", "background": "#12"}), "background"),
        (json!({"name": "Red", "color": "#123456", "logoUrl": "https://example.com/logo.png"}), "logoUrl"),
        (json!({"name": "Red", "color": "#123456", "backgroundImage": "/api/uploads/nope"}), "backgroundImage"),
        (json!({"name": "Red", "color": "#123456", "font": "comic"}), "font"),
    ] {
        let bad = t.post("/api/brands").cookies(&host).json(body).send().await;
        bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.body["error"]["field"], field, "{}", bad.body);
    }

    // A scene carries a copy of a brand, checked like the rest of the scene.
    let bid = t.broadcast(&host, "show").await;
    let scene = json!({"stage": [], "layout": "grid", "overlays": {"banner": {"text": "Hi", "visible": true}},
        "brand": {"id": id, "name": "Morning", "color": "#00aa00", "background": "#102030", "backgroundImage": picture}});
    let put =
        t.req(Method::PUT, &format!("/api/broadcasts/{bid}/scene")).cookies(&host).json(scene.clone()).send().await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let get = t.get(&format!("/api/broadcasts/{bid}/scene")).cookies(&host).send().await;
    assert_eq!(get.body["brand"], scene["brand"]);
    for (brand, field) in [
        (json!({"name": "B", "color": "blue"}), "brand.color"),
        (json!({"name": "B", "color": "#0000ff", "background": "#00f"}), "brand.background"),
        (json!({"name": "B".repeat(61), "color": "#0000ff"}), "brand.name"),
        (
            json!({"name": "B", "color": "#0000ff", "backgroundImage": "https://x.example/a.png"}),
            "brand.backgroundImage",
        ),
    ] {
        let bad = t
            .req(Method::PUT, &format!("/api/broadcasts/{bid}/scene"))
            .cookies(&host)
            .json(json!({"brand": brand}))
            .send()
            .await;
        bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.body["error"]["field"], field, "{}", bad.body);
    }

    // Deleted: gone from the list; the scene keeps its copy.
    let del = t.req(Method::DELETE, &format!("/api/brands/{id}")).cookies(&host).send().await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let list = t.get("/api/brands").cookies(&host).send().await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let get = t.get(&format!("/api/broadcasts/{bid}/scene")).cookies(&host).send().await;
    assert_eq!(get.body["brand"]["color"], "#00aa00");

    // An account keeps a bounded number of brands.
    for i in 1..backyard::api::brands::MAX_BRANDS {
        let r = t
            .post("/api/brands")
            .cookies(&host)
            .json(json!({"name": format!("Brand {i}"), "color": "#101010"}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let over = t.post("/api/brands").cookies(&host).json(json!({"name": "One more", "color": "#101010"})).send().await;
    over.assert_error(StatusCode::CONFLICT);
    assert_eq!(over.body["error"]["code"], "too_many_brands");
}

async fn recordings_list_get_range_delete(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let user_id: uuid::Uuid =
        t.get("/api/auth/me").cookies(&host).send().await.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let rec = t.state.store.create_recording(id.parse().unwrap(), user_id, "x", 0, "").await.unwrap();
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let path = backyard::program::recording_path(&t.state.cfg, rec.id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &content).unwrap();
    t.state
        .store
        .finish_recording(rec.id, backyard::store::RecordingStatus::Ready, 12.5, content.len() as i64, 0)
        .await
        .unwrap();

    let list = t.get("/api/recordings").cookies(&host).send().await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["fileSize"], 10_000);
    let one = t.get(&format!("/api/recordings/{}", rec.id)).cookies(&host).send().await;
    assert_eq!(one.body["duration"], 12.5);
    let part =
        t.get(&format!("/api/recordings/{}/file", rec.id)).cookies(&host).header("range", "bytes=100-199").send().await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes, &content[100..200]);
    assert_eq!(part.headers["content-range"], "bytes 100-199/10000");
    let whole = t.get(&format!("/api/recordings/{}/file", rec.id)).cookies(&host).send().await;
    assert_eq!(whole.bytes, content);
    // Not someone else's.
    let other = t.user("o@example.com").await;
    t.get(&format!("/api/recordings/{}/file", rec.id)).cookies(&other).send().await.assert_error(StatusCode::NOT_FOUND);
    let del = t.req(Method::DELETE, &format!("/api/recordings/{}", rec.id)).cookies(&host).send().await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(!path.exists());
    t.get(&format!("/api/recordings/{}", rec.id)).cookies(&host).send().await.assert_error(StatusCode::NOT_FOUND);
}

fn multipart(name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "XbackyardX";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A valid 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D,
    0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

async fn uploads_are_type_checked_size_limited_and_served(b: Backend) {
    let t = TestApp::with(b, |c| c.limits.upload_bytes = 4096).await;
    let host = t.user("h@example.com").await;
    let (ct, body) = multipart("file", PNG);
    let up = t.post("/api/upload").cookies(&host).raw(&ct, body).send().await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    assert_eq!(up.body["contentType"], "image/png");
    let url = up.body["url"].as_str().unwrap();
    let got = t.get(url).send().await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.bytes, PNG);
    assert_eq!(got.headers["content-type"], "image/png");
    // Never sniffed into something else (a PNG that is also valid HTML stays an image).
    assert_eq!(got.headers["x-content-type-options"], "nosniff");
    // The studio's pages carry a policy that keeps other sites from framing them and scripts to its own.
    // A refusal that may leave a body unread says the connection ends with it.
    let refused = t.get("/api/auth/me").send().await;
    assert_eq!((refused.status, refused.headers["connection"].to_str().unwrap()), (StatusCode::UNAUTHORIZED, "close"));
    let page = t.get("/").send().await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    // A text file claiming to be an image.
    let (ct, body) = multipart("file", b"<svg onload=alert(1)>");
    let r = t.post("/api/upload").cookies(&host).raw(&ct, body).send().await;
    assert_eq!(r.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE), "unsupported_image");
    // Too big.
    let mut big = PNG.to_vec();
    big.resize(200_000, 0);
    let (ct, body) = multipart("file", &big);
    t.post("/api/upload").cookies(&host).raw(&ct, body).send().await.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    // Wrong field, not multipart, unauthenticated.
    let (ct, body) = multipart("other", PNG);
    assert_eq!(t.post("/api/upload").cookies(&host).raw(&ct, body).send().await.body["error"]["field"], "file");
    t.post("/api/upload").cookies(&host).json(json!({})).send().await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (ct, body) = multipart("file", PNG);
    t.post("/api/upload").raw(&ct, body).send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.get("/api/uploads/zz").send().await.assert_error(StatusCode::BAD_REQUEST);
}

/// An MP4 is opened when it is uploaded: one FFmpeg cannot play is refused then, naming why; the account's clips
/// are listed under the names they came with; a scene plays only a clip (not an image) uploaded here.
async fn clips_are_checked_when_uploaded_listed_and_a_scene_plays_only_a_clip(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("clips@example.com").await;
    let dir = tempfile_dir();
    let file = dir.join("intro.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=320x180:r=30:d=1", "-f", "lavfi"])
        .args(["-i", "sine=f=440:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
        .arg(&file)
        .output()
        .expect("run ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let clip = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (ct, body) = multipart("file", &clip);
    let up = t.post("/api/upload").cookies(&host).raw(&ct, body).send().await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    assert_eq!((up.body["contentType"].as_str(), up.body["name"].as_str()), (Some("video/mp4"), Some("f")));
    let clip_url = up.body["url"].as_str().unwrap().to_owned();
    // An MP4 header with nothing playable behind it.
    let mut empty = vec![0, 0, 0, 24];
    empty.extend_from_slice(b"ftypisom\0\0\x02\0isommp42");
    let empty: Vec<u8> = empty.into_iter().take(24).collect();
    let (ct, body) = multipart("file", &empty);
    let r = t.post("/api/upload").cookies(&host).raw(&ct, body).send().await;
    assert_eq!(r.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE), "unsupported_clip", "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap_or_default().contains("cannot be played"), "{}", r.body);
    let (ct, body) = multipart("file", PNG);
    let png = t.post("/api/upload").cookies(&host).raw(&ct, body).send().await;
    let png_url = png.body["url"].as_str().unwrap().to_owned();

    let clips = t.get("/api/uploads?kind=clip").cookies(&host).send().await;
    assert_eq!(clips.status, StatusCode::OK, "{}", clips.body);
    let urls: Vec<&str> = clips.body.as_array().unwrap().iter().filter_map(|c| c["url"].as_str()).collect();
    assert_eq!(urls, [clip_url.as_str()]);
    let images = t.get("/api/uploads?kind=image").cookies(&host).send().await;
    assert_eq!(images.body.as_array().map(Vec::len), Some(1), "{}", images.body);
    let r = t.get("/api/uploads?kind=sound").cookies(&host).send().await;
    assert_eq!(r.body["error"]["field"], "kind", "{}", r.body);
    let other = t.user("other@example.com").await;
    let theirs = t.get("/api/uploads?kind=clip").cookies(&other).send().await;
    assert_eq!(theirs.body, json!([]), "another account's clips are not listed");

    let id = t.broadcast(&host, "Clips").await;
    let put = |clip: serde_json::Value| {
        let (t, host, id) = (&t, &host, &id);
        async move {
            let scene = json!({"layout": "grid", "clip": clip});
            t.req(axum::http::Method::PUT, &format!("/api/broadcasts/{id}/scene"))
                .cookies(host)
                .json(scene)
                .send()
                .await
        }
    };
    let r = put(json!({"url": png_url})).await;
    assert_eq!(r.body["error"]["field"], "clip.url", "an image is not a clip: {}", r.body);
    let r = put(json!({"url": "https://example.com/x.mp4"})).await;
    assert_eq!(r.body["error"]["field"], "clip.url", "{}", r.body);
    let r = put(json!({"url": clip_url, "name": "Intro", "mode": "tile"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["clip"], json!({"url": clip_url, "name": "Intro", "mode": "tile"}));
    let r = put(json!({"url": clip_url, "mode": "sideways"})).await;
    assert!(r.status.is_client_error(), "{}", r.body);
}

/// A fresh folder under the system's temp folder.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("backyard-api-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start_and_end_are_announced_on_the_bus(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let mut events = t.state.bus.subscribe(&backyard::bus::topic::broadcast(id.parse().unwrap()));
    t.post(&format!("/api/broadcasts/{id}/start")).cookies(&host).send().await;
    t.post(&format!("/api/broadcasts/{id}/end")).cookies(&host).send().await;
    // The broadcast's own events, in order; the program's status reports and its stage interleave with them.
    let wait = std::time::Duration::from_secs(10);
    let mut next = async || loop {
        let ev = tokio::time::timeout(wait, events.recv()).await.expect("an event").unwrap();
        if !ev.event.ends_with("-status") && ev.event != "stage-layout" {
            return ev;
        }
    };
    let a = next().await;
    let b2 = next().await;
    assert_eq!(a.event, "broadcast-started");
    assert_eq!(a.data["broadcastId"], id);
    assert_eq!(b2.event, "broadcast-ended");
}

async fn cross_origin_state_changes_are_refused(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let r = t
        .post("/api/broadcasts")
        .cookies(&host)
        .header("origin", "https://evil.example")
        .json(json!({"title": "x"}))
        .send()
        .await;
    r.assert_error(StatusCode::FORBIDDEN);
    let r = t
        .post("/api/broadcasts")
        .cookies(&host)
        .header("origin", "http://studio.test")
        .json(json!({"title": "x"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The whole origin counts: another scheme or port of the same host is another site.
    for origin in ["https://studio.test", "http://studio.test:8443", "http://studio.test.evil.example"] {
        let r =
            t.post("/api/broadcasts").cookies(&host).header("origin", origin).json(json!({"title": "x"})).send().await;
        r.assert_error(StatusCode::FORBIDDEN);
    }
    // The studio opened under another name of this server (its Host) over public_url's scheme is itself.
    let r = t
        .post("/api/broadcasts")
        .cookies(&host)
        .header("host", "localhost:8080")
        .header("origin", "http://localhost:8080")
        .json(json!({"title": "x"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A browser that says the request is cross-site is believed, Origin or not.
    let r = t
        .post("/api/broadcasts")
        .cookies(&host)
        .header("sec-fetch-site", "cross-site")
        .json(json!({"title": "x"}))
        .send()
        .await;
    r.assert_error(StatusCode::FORBIDDEN);
    // Reads are not affected.
    assert_eq!(
        t.get("/api/broadcasts").cookies(&host).header("origin", "https://evil.example").send().await.status,
        StatusCode::OK
    );
    // WHIP and WHEP take no cookie: a player on another site may call them (CORS), and gets their own answers.
    let preflight = t
        .req(Method::OPTIONS, "/api/whip")
        .header("origin", "https://player.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
    assert!(preflight.headers["access-control-allow-headers"].to_str().unwrap().contains("Authorization"));
    assert!(preflight.headers["access-control-allow-methods"].to_str().unwrap().contains("DELETE"));
    let whip = t
        .post("/api/whip")
        .cookies(&host)
        .header("origin", "https://player.example")
        .raw("application/sdp", b"v=0".to_vec())
        .send()
        .await;
    whip.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(whip.headers["access-control-expose-headers"], "Location");
    let id = t.broadcast(&host, "show").await;
    let whep = t
        .post(&format!("/api/watch/{id}/whep"))
        .header("origin", "https://player.example")
        .raw("application/sdp", b"v=0".to_vec())
        .send()
        .await;
    whep.assert_error(StatusCode::NOT_FOUND);
    assert_eq!(whep.headers["access-control-allow-origin"], "*");
    // Nothing else answers other sites.
    let r = t
        .post("/api/broadcasts")
        .cookies(&host)
        .header("origin", "https://player.example")
        .json(json!({"title": "x"}))
        .send()
        .await;
    r.assert_error(StatusCode::FORBIDDEN);
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

async fn health_and_metrics(b: Backend) {
    let t = TestApp::new(b).await;
    let h = t.get("/healthz").send().await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["store"], if b == Backend::Sqlite { "sqlite" } else { "postgres" });
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    t.post(&format!("/api/broadcasts/{id}/start")).cookies(&host).send().await;
    let m = t.get("/metrics").send().await;
    let text = String::from_utf8(m.bytes).unwrap();
    assert!(text.contains("backyard_active_broadcasts 1"), "{text}");
    assert!(
        text.contains("backyard_http_requests_total{method=\"POST\",route=\"/api/broadcasts\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(text.contains("backyard_http_request_duration_seconds_bucket"));

    // With a token configured, the series are the scraper's only.
    let t = TestApp::with(b, |c| c.secrets.metrics_token = Some("scrape-me".into())).await;
    t.get("/metrics").send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.get("/metrics").header("authorization", "Bearer wrong").send().await.assert_error(StatusCode::UNAUTHORIZED);
    let m = t.get("/metrics").header("authorization", "Bearer scrape-me").send().await;
    assert_eq!(m.status, StatusCode::OK);
}

#[allow(dead_code)]
fn _unused(_: Cookies) {}

async fn a_show_open_to_viewers_streams_hls_while_live(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("host@example.com").await;
    let public = t
        .post("/api/broadcasts")
        .cookies(&host)
        .json(json!({"title": "Open air", "settings": {"watch": "public"}}))
        .send()
        .await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.body);
    let id = public.body["id"].as_str().unwrap().to_owned();
    let unlisted = t.broadcast(&host, "Unlisted").await;
    let r = t
        .req(Method::PATCH, &format!("/api/broadcasts/{unlisted}"))
        .cookies(&host)
        .json(json!({"settings": {"watch": "unlisted"}}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let private = t.broadcast(&host, "Private").await;

    // Before the show: a viewer (no cookies) finds it, not yet live, with no stream.
    let info = t.get(&format!("/api/watch/{id}")).send().await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!((info.body["status"].as_str(), info.body["visibility"].as_str()), (Some("scheduled"), Some("public")));
    assert!(info.body["hls"].is_null(), "{}", info.body);
    assert_eq!(t.get(&format!("/api/watch/{unlisted}")).send().await.status, StatusCode::OK);
    t.get(&format!("/api/watch/{private}")).send().await.assert_error(StatusCode::NOT_FOUND);
    t.get(&format!("/api/watch/{id}/hls/index.m3u8")).send().await.assert_error(StatusCode::NOT_FOUND);

    for b in [&id, &unlisted, &private] {
        let r = t.post(&format!("/api/broadcasts/{b}/start")).cookies(&host).send().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let listed: Vec<String> = t
        .get("/api/watch")
        .send()
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, vec![id.clone()], "only the public live show is listed");
    let playlist_url = t.get(&format!("/api/watch/{id}")).send().await.body["hls"].as_str().unwrap().to_owned();
    assert_eq!(playlist_url, format!("/api/watch/{id}/hls/index.m3u8"));
    // The program composes and encodes in real time: the first segment is cut at the second keyframe.
    let mut playlist = String::new();
    for _ in 0..100 {
        let r = t.get(&playlist_url).send().await;
        if r.status == StatusCode::OK {
            assert_eq!(r.headers["content-type"], "application/vnd.apple.mpegurl");
            assert_eq!(r.headers["cache-control"], "no-cache");
            playlist = String::from_utf8_lossy(&r.bytes).into_owned();
            if playlist.contains(".m4s") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let segment =
        playlist.lines().find(|l| l.ends_with(".m4s")).unwrap_or_else(|| panic!("no segment in 10 s:\n{playlist}"));
    let init = t.get(&format!("/api/watch/{id}/hls/init.mp4")).send().await;
    assert_eq!((init.status, init.headers["content-type"].to_str().unwrap()), (StatusCode::OK, "video/mp4"));
    assert_eq!(&init.bytes[4..8], b"ftyp");
    let seg = t.get(&format!("/api/watch/{id}/hls/{segment}")).send().await;
    assert_eq!((seg.status, seg.headers["content-type"].to_str().unwrap()), (StatusCode::OK, "video/iso.segment"));
    assert!(seg.bytes.len() > 1000, "segment of {} bytes", seg.bytes.len());
    t.get(&format!("/api/watch/{private}/hls/index.m3u8")).send().await.assert_error(StatusCode::NOT_FOUND);

    // The same encode as an endless FLV stream over HTTP: read a few seconds of it, then hang up.
    let flv = t.read_flv(&format!("/api/watch/{id}/live.flv"), 150_000).await;
    assert_eq!(&flv[..3], b"FLV", "not an FLV stream");
    assert_eq!(flv[4], 0x05, "the FLV header announces audio and video");
    let file = t.data_dir.join("viewer.flv");
    std::fs::write(&file, &flv).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let codecs = String::from_utf8_lossy(&probe.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "ffprobe: {codecs} {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    // The viewer that hung up is let go.
    let hub = backyard::signaling::Hub::running(&t.state).unwrap();
    let control = hub.programs.get(id.parse().unwrap()).unwrap().program.egress().unwrap();
    for _ in 0..100 {
        if control.viewers() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(control.viewers(), 0, "a viewer that hung up is still served");
    t.get(&format!("/api/watch/{private}/live.flv")).send().await.assert_error(StatusCode::NOT_FOUND);

    // WHEP: a WebRTC viewer gets the same encode's H.264, a decoder's start (SPS, PPS, IDR) first, and the
    // program's sound as Opus.
    let whep = t.get(&format!("/api/watch/{id}")).send().await.body["whep"].as_str().unwrap().to_owned();
    assert_eq!(whep, format!("/api/watch/{id}/whep"));
    let (location, keyframe, frames, opus) = watch_over_webrtc(&t, &whep).await;
    assert!(opus >= 50, "{opus} Opus packets of the program's sound in 3 s");
    assert!(location.starts_with(&format!("/api/watch/{id}/whep/")), "{location}");
    let nal_types: Vec<u8> = keyframe
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 0, 1])
        .filter_map(|(i, _)| keyframe.get(i + 4).map(|b| b & 0x1f))
        .collect();
    assert!(nal_types.starts_with(&[7, 8]) && nal_types.contains(&5), "SPS, PPS, IDR: {nal_types:?}");
    assert!(frames >= 10, "{frames} frames in 3 s");
    let r = t
        .req(Method::PATCH, &location)
        .raw("application/trickle-ice-sdpfrag", b"a=end-of-candidates".to_vec())
        .send()
        .await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(t.req(Method::DELETE, &location).send().await.status, StatusCode::OK);
    t.req(Method::DELETE, &location).send().await.assert_error(StatusCode::NOT_FOUND);
    t.post(&format!("/api/watch/{private}/whep"))
        .raw("application/sdp", b"v=0".to_vec())
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND);
    t.post(&whep).raw("application/json", b"{}".to_vec()).send().await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    t.post(&whep).raw("application/sdp", b"not sdp".to_vec()).send().await.assert_error(StatusCode::BAD_REQUEST);

    for b in [&id, &unlisted, &private] {
        t.post(&format!("/api/broadcasts/{b}/end")).cookies(&host).send().await;
    }
    let after = t.get(&format!("/api/watch/{id}")).send().await;
    assert_eq!(after.body["status"], "ended", "{}", after.body);
    assert!(after.body["hls"].is_null(), "{}", after.body);
    t.get(&playlist_url).send().await.assert_error(StatusCode::NOT_FOUND);
    assert!(t.get("/api/watch").send().await.body.as_array().unwrap().is_empty());
}

/// Watches `endpoint` over WHEP with a str0m client for 3 s after its first keyframe; returns the session's
/// resource, that keyframe, how many video frames came and how many Opus packets.
async fn watch_over_webrtc(t: &TestApp, endpoint: &str) -> (String, Vec<u8>, usize, usize) {
    use str0m::media::{Direction, MediaKind};
    let mut viewer = common::rtc::Endpoint::new().await.unwrap();
    let mut api = viewer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let r = t.post(endpoint).raw("application/sdp", offer.to_sdp_string().into_bytes()).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.headers["content-type"], "application/sdp");
    let location = r.headers["location"].to_str().unwrap().to_owned();
    let answer = str0m::change::SdpAnswer::from_sdp_string(&String::from_utf8_lossy(&r.bytes)).unwrap();
    viewer.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let (mut keyframe, mut frames, mut since, mut opus) = (None::<Vec<u8>>, 0, None::<std::time::Instant>, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while since.is_none_or(|s| s.elapsed() < std::time::Duration::from_secs(3)) {
        assert!(std::time::Instant::now() < deadline, "no keyframe over WebRTC in 20 s ({frames} frames)");
        let (wake, events) = viewer.drive().await.unwrap();
        for e in events {
            if let str0m::Event::MediaData(d) = &e
                && d.params.spec().codec == str0m::format::Codec::Opus
            {
                opus += usize::from(since.is_some());
            }
            if let str0m::Event::MediaData(d) = e
                && d.params.spec().codec == str0m::format::Codec::H264
            {
                if keyframe.is_none() && d.is_keyframe() {
                    keyframe = Some(d.data.to_vec());
                    since = Some(std::time::Instant::now());
                }
                frames += usize::from(keyframe.is_some());
            }
        }
        let wait = wake.saturating_duration_since(std::time::Instant::now()).min(std::time::Duration::from_millis(20));
        viewer.receive(wait).await.unwrap();
    }
    (location, keyframe.unwrap(), frames, opus)
}

/// The first `at_least` bytes of an endless response body (then the connection is dropped).
async fn ingest_keys_are_sealed_listed_masked_and_revocable(b: Backend) {
    let t = TestApp::new(b).await;
    let host = t.user("ingest-keys@example.com").await;
    let id = t.broadcast(&host, "Keys").await;
    let base = format!("/api/broadcasts/{id}/ingest-keys");

    let created = t.post(&base).cookies(&host).json(json!({"label": "  OBS on the desk  "})).send().await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["label"], "OBS on the desk");
    assert_eq!(created.body["mode"], "relay");
    assert_eq!(created.body["status"]["state"], "idle");
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("by_") && key.len() > 40, "{key}");

    // At rest: its SHA-256 and ciphertext, never the key.
    type Row = (Vec<u8>, Vec<u8>, String);
    let sql = "SELECT key_sha256, key_sealed, label FROM ingest_keys";
    let rows: Vec<Row> = match &t.raw {
        RawDb::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        RawDb::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    };
    assert_eq!(rows.len(), 1);
    for form in forms_of(&key) {
        let stored = [&rows[0].0[..], &rows[0].1[..], rows[0].2.as_bytes()];
        assert!(
            stored.iter().all(|c| !c.windows(form.len()).any(|w| w == form.as_bytes())),
            "stored in clear as {form}"
        );
    }
    let found = t.state.store.ingest_key_by_hash(&backyard::auth::tokens::hash_token(&key)).await.unwrap();
    assert_eq!(found.map(|k| k.id.to_string()), Some(key_id.clone()));

    // Listed masked; whole only when the owner asks.
    let listed = t.get(&base).cookies(&host).send().await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let shown = listed.body["items"][0]["key"].as_str().unwrap();
    assert!(!shown.contains(&key[..10]) && shown.ends_with(&key[key.len() - 4..]), "{shown}");
    assert!(!listed.body.to_string().contains(&key), "the list never carries the key");
    let revealed = t.post(&format!("{base}/{key_id}/reveal")).cookies(&host).send().await;
    assert_eq!(revealed.body["key"], key.as_str());

    // Bad input names the field.
    let r = t.post(&base).cookies(&host).json(json!({"label": "   "})).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "label");
    let r = t.post(&base).cookies(&host).json(json!({"label": "x", "mode": "loop"})).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "mode");
    for i in 1..10 {
        let r = t.post(&base).cookies(&host).json(json!({"label": format!("Encoder {i}")})).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = t.post(&base).cookies(&host).json(json!({"label": "one too many"})).send().await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "too_many_ingest_keys");

    // A co-host sees the keys (masked) but cannot create, reveal or revoke them; a guest sees nothing.
    let cohost = t.guest(&host, &id, "cohost", "Co").await;
    assert_eq!(t.get(&base).cookies(&cohost).send().await.status, StatusCode::OK);
    t.post(&format!("{base}/{key_id}/reveal")).cookies(&cohost).send().await.assert_error(StatusCode::FORBIDDEN);
    let guest = t.guest(&host, &id, "guest", "G").await;
    t.get(&base).cookies(&guest).send().await.assert_error(StatusCode::FORBIDDEN);

    // Revoked: gone, and no longer found by the ingest.
    let del = t.req(axum::http::Method::DELETE, &format!("{base}/{key_id}")).cookies(&host).send().await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(t.state.store.ingest_key_by_hash(&backyard::auth::tokens::hash_token(&key)).await.unwrap().is_none());
    t.post(&format!("{base}/{key_id}/reveal")).cookies(&host).send().await.assert_error(StatusCode::NOT_FOUND);
}

/// `GET /api/cluster`: this node (and any other whose entry is current) with its load, for administrators;
/// its load is also a Prometheus series.
async fn the_cluster_view_lists_live_nodes_to_administrators_only(b: Backend) {
    let t = TestApp::new(b).await;
    let admin = t.user("admin@example.com").await;
    let other = t.user("not-admin@example.com").await;
    t.get("/api/cluster").send().await.assert_error(StatusCode::UNAUTHORIZED);
    t.get("/api/cluster").cookies(&other).send().await.assert_error(StatusCode::FORBIDDEN);
    // The heartbeat writes the node's entry as the node starts.
    let mut view = Value::Null;
    for _ in 0..50 {
        let r = t.get("/api/cluster").cookies(&admin).send().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        view = r.body;
        if !view["nodes"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let me = view["thisNode"].as_str().unwrap().to_owned();
    assert_eq!(me, t.state.cluster.node);
    let nodes = view["nodes"].as_array().unwrap();
    let entry = nodes.iter().find(|n| n["id"] == me.as_str()).unwrap_or_else(|| panic!("{view}"));
    assert_eq!(entry["http"], "http://studio.test");
    assert!(entry["load"]["cpuCores"].is_number() && entry["load"]["participants"] == 0, "{entry}");
    assert!(entry["programs"].as_array().unwrap().is_empty());
    assert_eq!(view["broadcasts"], serde_json::json!([]), "no program runs, so no broadcast is named");
    let metrics = String::from_utf8_lossy(&t.get("/metrics").send().await.bytes).into_owned();
    assert!(metrics.contains(&format!("backyard_node_load{{node=\"{me}\",what=\"participants\"}} 0")), "{metrics}");
}
