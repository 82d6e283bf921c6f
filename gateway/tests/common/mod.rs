//! Test harness: a full `backyard` app per test on SQLite (embedded mode: temp dir, in-process bus) or on
//! PostgreSQL + Redis (production mode: a database and a Redis key prefix of its own, dropped afterwards),
//! driven in-process through `tower::ServiceExt::oneshot` — no sockets.
//!
//! PostgreSQL and Redis come from `BY_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `BY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). If they cannot be reached the tests FAIL: they are
//! never skipped.
#![allow(dead_code)]

pub mod process;
pub mod rtc;
pub mod rtmp;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use backyard::AppState;
use backyard::config::Config;
use backyard::store::{PgStore, SqliteStore, Store};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod sqlite { ... }` and `mod postgres { ... }` with one `#[tokio::test]` per listed scenario,
/// so the same suite runs on both backends and the test names say which.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::common::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::common::Backend::Postgres).await } )*
        }
    };
}

/// Raw access to the test's database, to check what is really stored.
pub enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    /// Runs a statement written in the SQL both dialects accept (a test reaching past the API on purpose).
    pub async fn execute(&self, sql: &str) {
        match self {
            RawDb::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            RawDb::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The single integer a `SELECT COUNT(*) ...` in the SQL both dialects accept returns.
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            RawDb::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            RawDb::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub app: Router,
    pub state: AppState,
    pub raw: RawDb,
    pub data_dir: PathBuf,
    cleanup: Option<Cleanup>,
}

struct Cleanup {
    pg_admin_url: String,
    database: String,
    redis_url: String,
    redis_prefix: String,
}

pub fn pg_admin_url() -> String {
    std::env::var("BY_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("BY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn test_config(data_dir: PathBuf) -> Config {
    let mut cfg = Config { data_dir, ..Config::default() };
    cfg.public_url = "http://studio.test".into();
    // Tests register many accounts; the rate-limit test sets its own small limit.
    cfg.limits.auth_per_minute = 10_000;
    cfg.limits.upload_per_minute = 10_000;
    // Tests push to nginx-rtmp on loopback through the custom RTMP adapter.
    let mut rtmp = serde_json::Map::new();
    rtmp.insert("allow-private-hosts".into(), serde_json::Value::Bool(true));
    cfg.destinations.insert("rtmp".into(), rtmp);
    cfg
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with(backend, |_| {}).await
    }

    pub async fn with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("backyard-test-{tag}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut cfg = test_config(data_dir.clone());
        let (store, raw, cleanup): (Arc<dyn Store>, RawDb, Option<Cleanup>) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", data_dir.join("backyard.db").display());
                let store = SqliteStore::connect(&url, 4).await.expect("open SQLite");
                let raw = RawDb::Sqlite(store.pool().clone());
                (Arc::new(store), raw, None)
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let database = format!("by_test_{tag}");
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin} is required for these tests and unreachable: {e}")
                });
                sqlx::query(&format!("CREATE DATABASE {database}")).execute(&mut conn).await.unwrap();
                let url = replace_db(&admin, &database);
                let store = PgStore::connect(&url, 4).await.expect("connect test database");
                let raw = RawDb::Postgres(store.pool().clone());
                let redis_prefix = format!("by_test_{tag}:");
                cfg.database.url = url;
                cfg.redis.url = Some(redis_url());
                cfg.redis.prefix = redis_prefix.clone();
                cfg.secrets.jwt_key = Some(b64(&[9u8; 32]));
                cfg.secrets.stream_key_keys.insert("k1".into(), b64(&[5u8; 32]));
                let cleanup = Cleanup { pg_admin_url: admin, database, redis_url: redis_url(), redis_prefix };
                (Arc::new(store), raw, Some(cleanup))
            }
        };
        tweak(&mut cfg);
        cfg.ensure_secrets().unwrap();
        let state = AppState::with_store(cfg, store)
            .await
            .unwrap_or_else(|e| panic!("building the app (is Redis at {} up?): {e:#}", redis_url()));
        let app = backyard::app(state.clone());
        Self { backend, app, state, raw, data_dir, cleanup }
    }

    /// A second node over the same database (and, on PostgreSQL, the same Redis prefix): its own bus, token
    /// store connections and caches, as another `backyard` process would have.
    pub async fn second_node(&self) -> Router {
        let state = AppState::with_store((*self.state.cfg).clone(), self.state.store.clone()).await.unwrap();
        backyard::app(state)
    }

    pub fn req(&self, method: Method, path: &str) -> Req<'_> {
        Req { app: self, method, path: path.to_owned(), headers: vec![], body: None, ip: None }
    }
    pub fn get(&self, path: &str) -> Req<'_> {
        self.req(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Req<'_> {
        self.req(Method::POST, path)
    }

    /// Reads at least `at_least` bytes of an endless FLV stream (`live.flv`), then hangs up.
    pub async fn read_flv(&self, path: &str, at_least: usize) -> Vec<u8> {
        let req = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "video/x-flv");
        let mut body = res.into_body();
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while out.len() < at_least {
            let frame =
                tokio::time::timeout_at(deadline, body.frame()).await.expect("the stream stalled").unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
            }
        }
        out
    }

    /// Registers an account and returns its signed-in cookies.
    pub async fn user(&self, email: &str) -> Cookies {
        let res = self
            .post("/api/auth/register")
            .json(
                json!({"email": email, "password": "correct horse battery", "name": email.split('@').next().unwrap()}),
            )
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "register {email}: {}", res.body);
        res.cookies()
    }

    /// Creates a broadcast owned by `owner` and returns its id.
    pub async fn broadcast(&self, owner: &Cookies, title: &str) -> String {
        let res = self.post("/api/broadcasts").cookies(owner).json(json!({"title": title})).send().await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.body["id"].as_str().unwrap().to_owned()
    }

    /// Invites and redeems a guest (or co-host) into `broadcast`; returns the guest's cookies.
    pub async fn guest(&self, owner: &Cookies, broadcast: &str, role: &str, name: &str) -> Cookies {
        let inv = self
            .post(&format!("/api/broadcasts/{broadcast}/invites"))
            .cookies(owner)
            .json(json!({"role": role}))
            .send()
            .await;
        assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.body);
        let token = inv.body["token"].as_str().unwrap();
        let res = self.post(&format!("/api/invites/{token}/redeem")).json(json!({"name": name})).send().await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.cookies()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(c) = self.cleanup.take() {
            // Drop cannot be async; clean up on a thread with its own runtime.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&c.pg_admin_url).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", c.database))
                            .execute(&mut conn)
                            .await;
                    }
                    if let Ok(client) = redis::Client::open(c.redis_url.as_str())
                        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{}*", c.redis_prefix))
                            .query_async(&mut conn)
                            .await
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                        }
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{db}")
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Cookies as a `Cookie:` header value.
#[derive(Clone, Debug, Default)]
pub struct Cookies(pub Vec<(String, String)>);

impl Cookies {
    pub fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn only(&self, name: &str) -> Cookies {
        Cookies(self.0.iter().filter(|(k, _)| k == name).cloned().collect())
    }
    /// Applies `Set-Cookie` headers from a response (removals included).
    pub fn update(&mut self, res: &Res) {
        for (k, v) in res.cookies().0 {
            self.0.retain(|(n, _)| n != &k);
            if !v.is_empty() {
                self.0.push((k, v));
            }
        }
    }
}

pub struct Req<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
    ip: Option<SocketAddr>,
}

impl Req<'_> {
    pub fn cookies(mut self, c: &Cookies) -> Self {
        if !c.0.is_empty() {
            self.headers.push(("cookie".into(), c.header()));
        }
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn json(self, v: Value) -> Self {
        self.raw("application/json", serde_json::to_vec(&v).unwrap())
    }
    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = Some((content_type.into(), body));
        self
    }
    pub fn with_ip(mut self, ip: &str) -> Self {
        self.ip = Some(format!("{ip}:40000").parse().unwrap());
        self
    }
    pub async fn send(self) -> Res {
        let mut b = Request::builder().method(self.method).uri(&self.path);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let body = match self.body {
            Some((ct, bytes)) => {
                b = b.header(header::CONTENT_TYPE, ct);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = b.body(body).unwrap();
        if let Some(ip) = self.ip {
            req.extensions_mut().insert(ConnectInfo(ip));
        }
        let res = self.app.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res { status, headers, body, bytes }
    }
}

/// A bodiless request with cookies on an app of its own (for requests that run beside others); its status.
pub async fn send_with(app: Router, method: Method, path: &str, cookies: &Cookies) -> StatusCode {
    let req =
        Request::builder().method(method).uri(path).header("cookie", cookies.header()).body(Body::empty()).unwrap();
    app.oneshot(req).await.unwrap().status()
}

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Res {
    pub fn cookies(&self) -> Cookies {
        Cookies(
            self.headers
                .get_all(header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
        )
    }

    /// Asserts a 4xx with the JSON error body and returns its code.
    pub fn assert_error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.bytes));
        let code = self.body["error"]["code"].as_str();
        assert!(code.is_some(), "error body missing: {}", String::from_utf8_lossy(&self.bytes));
        assert!(self.body["error"]["message"].is_string());
        code.unwrap()
    }
}
