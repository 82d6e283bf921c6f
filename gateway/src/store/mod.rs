//! The store: one trait, two backends (SQLite for embedded mode, PostgreSQL for production) sharing one
//! test suite. Queries are checked at run time (`query_as` + `FromRow`); both dialects accept the same SQL
//! text (`$n` placeholders, `RETURNING`, `ON CONFLICT`), so each query is written once and the two impls are
//! generated from one body by `impl_store!`. Timestamps come from Rust (UTC), never from SQL functions.
//!
//! Architecture Invariant: handlers reach the database only through `Store`.

mod model;

pub use model::*;

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. an email already registered).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A write under a fence token older than the newest one claimed for the broadcast's home: another node
    /// has taken its program over.
    #[error("a newer node is this broadcast's home: this node's token {token} is stale")]
    Fenced { token: i64 },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What runs a live broadcast at its home node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HomeKind {
    /// The studio's program (composed, encoded, published): another node takes it over if its home is lost.
    Program,
    /// An RTMP encoder's stream copied to the destinations: it resumes where the encoder reconnects.
    Relay,
}

impl HomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HomeKind::Program => "program",
            HomeKind::Relay => "relay",
        }
    }
}

/// The fence token of writers that are not a broadcast's home: restart recovery of a broadcast no node
/// holds.
pub const UNFENCED: i64 = i64::MAX;

/// A page of a list: `items` in a stable order and the `total` count.
/// What one account holds, counted for its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Usage {
    pub broadcasts: i64,
    /// Broadcasts on air now.
    pub live: i64,
    pub upload_bytes: i64,
    pub recording_bytes: i64,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    // users
    async fn create_user(&self, email: &str, password: &str, name: &str, is_admin: bool) -> StoreResult<User>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn count_users(&self) -> StoreResult<i64>;

    // sign-in sessions and refresh tokens (used when Redis is not configured)
    async fn create_session(&self, user_id: Uuid) -> StoreResult<Session>;
    async fn session(&self, id: Uuid) -> StoreResult<Option<Session>>;
    async fn revoke_session(&self, id: Uuid) -> StoreResult<()>;
    async fn insert_refresh(
        &self,
        hash: &[u8],
        family_id: Uuid,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn use_refresh(&self, hash: &[u8]) -> StoreResult<RefreshUse>;

    // broadcasts
    async fn create_broadcast(
        &self,
        user_id: Uuid,
        title: &str,
        description: &str,
        settings: serde_json::Value,
    ) -> StoreResult<Broadcast>;
    async fn broadcast(&self, id: Uuid) -> StoreResult<Option<Broadcast>>;
    async fn list_broadcasts(&self, user_id: Uuid, limit: i64, offset: i64) -> StoreResult<Page<Broadcast>>;
    async fn update_broadcast(&self, b: &Broadcast) -> StoreResult<Broadcast>;
    async fn set_broadcast_status(
        &self,
        id: Uuid,
        status: BroadcastStatus,
        start_time: Option<OffsetDateTime>,
        end_time: Option<OffsetDateTime>,
    ) -> StoreResult<Broadcast>;
    async fn set_scene(&self, id: Uuid, scene: serde_json::Value) -> StoreResult<()>;
    async fn delete_broadcast(&self, id: Uuid) -> StoreResult<bool>;
    async fn count_live_broadcasts(&self) -> StoreResult<i64>;
    /// What an account holds now, for its quotas.
    async fn usage(&self, user_id: Uuid) -> StoreResult<Usage>;
    async fn live_broadcasts(&self) -> StoreResult<Vec<Broadcast>>;

    // destinations
    async fn create_destination(&self, d: NewDestination) -> StoreResult<DestinationRow>;
    async fn destinations(&self, broadcast_id: Uuid) -> StoreResult<Vec<DestinationRow>>;
    async fn destination(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<Option<DestinationRow>>;
    async fn update_destination(&self, d: &DestinationRow) -> StoreResult<DestinationRow>;
    async fn delete_destination(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<bool>;

    // participants
    async fn participant_joined(&self, seat: Seat<'_>) -> StoreResult<Participant>;
    async fn participant_status(&self, id: Uuid, audio: bool, video: bool, name: &str) -> StoreResult<()>;
    /// Marks a participant whose seat is on `node` as left; false if they had left already or their seat moved to
    /// another node (so only one of several nodes tells the room).
    async fn participant_left(&self, id: Uuid, node: &str) -> StoreResult<bool>;
    /// Moves seat `id` of a broadcast, still open and held by `session` through another node, to `node`: a studio
    /// reconnecting to another node keeps its participant. Returns the row and the node it moved from; `None` if
    /// there is no such seat.
    async fn take_seat(
        &self,
        broadcast_id: Uuid,
        id: Uuid,
        session: Uuid,
        node: &str,
    ) -> StoreResult<Option<(Participant, String)>>;
    async fn active_participants(&self, broadcast_id: Uuid) -> StoreResult<Vec<Participant>>;
    /// Participants still in a room through a node other than `node` (rows that name one).
    async fn participants_elsewhere(&self, node: &str) -> StoreResult<Vec<Participant>>;
    /// Marks every participant of `node` still "in" as left (and those of rows that name no node): a restarted node
    /// has no live connections; other nodes' studios go on. `None`: every participant (one node, embedded mode,
    /// whose id may change at each start).
    async fn close_all_participants(&self, node: Option<&str>) -> StoreResult<u64>;

    // recordings
    /// Raises the broadcast's home fence to `token` for a home of `kind`; false if a newer token was claimed
    /// already.
    async fn claim_home(&self, broadcast_id: Uuid, token: i64, kind: HomeKind) -> StoreResult<bool>;
    /// What the broadcast's home last claimed runs (`None`: no such broadcast).
    async fn home_kind(&self, broadcast_id: Uuid) -> StoreResult<Option<HomeKind>>;
    /// A new recording row, written only under a `fence` token at least as new as the broadcast's home
    /// fence ([`StoreError::Fenced`] otherwise); `node` writes its file.
    async fn create_recording(
        &self,
        broadcast_id: Uuid,
        user_id: Uuid,
        title: &str,
        fence: i64,
        node: &str,
    ) -> StoreResult<Recording>;
    /// A participant's own recording beside `program`'s (same broadcast, owner, title and node), under `fence`
    /// as for [`Store::create_recording`].
    async fn create_participant_recording(
        &self,
        program: &Recording,
        participant_id: &str,
        participant_name: &str,
        fence: i64,
    ) -> StoreResult<Recording>;
    /// A participant's local recording, uploaded and verified: ready from the start, its file already in place.
    async fn create_local_recording(&self, rec: NewLocalRecording<'_>) -> StoreResult<Recording>;
    /// Bytes of the local recordings kept for `broadcast_id`.
    async fn local_recording_bytes(&self, broadcast_id: Uuid) -> StoreResult<i64>;
    /// Marks a recording finished, under a `fence` token as for [`Store::create_recording`].
    async fn finish_recording(
        &self,
        id: Uuid,
        status: RecordingStatus,
        duration: f64,
        file_size: i64,
        fence: i64,
    ) -> StoreResult<()>;
    async fn recording(&self, id: Uuid) -> StoreResult<Option<Recording>>;
    /// Recordings still marked as being written (their process ended without finalising them): every show's, or
    /// one `broadcast`'s.
    async fn unfinished_recordings(&self, broadcast: Option<Uuid>) -> StoreResult<Vec<Recording>>;
    async fn list_recordings(&self, user_id: Uuid, limit: i64, offset: i64) -> StoreResult<Page<Recording>>;
    async fn delete_recording(&self, id: Uuid) -> StoreResult<bool>;

    // invites and guest sessions: an invite's token is stored as its SHA-256 only, so the database never holds a
    // usable link; the link is shown once, in the reply that created it.
    async fn create_invite(
        &self,
        broadcast_id: Uuid,
        token: &str,
        role: Role,
        created_by: Uuid,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Invite>;
    async fn invites(&self, broadcast_id: Uuid) -> StoreResult<Vec<Invite>>;
    async fn invite_by_token(&self, token: &str) -> StoreResult<Option<Invite>>;
    /// Revokes the invite and every guest session redeemed from it; returns the revoked sessions' ids.
    async fn revoke_invite(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<Option<Vec<Uuid>>>;
    async fn create_guest_session(
        &self,
        token_hash: &[u8],
        invite: &Invite,
        name: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<GuestSession>;
    async fn guest_session_by_hash(&self, token_hash: &[u8]) -> StoreResult<Option<GuestSession>>;
    async fn revoke_guest_session(&self, id: Uuid) -> StoreResult<()>;

    // uploads
    async fn create_upload(
        &self,
        user_id: Uuid,
        sha256: &str,
        content_type: &str,
        size: i64,
        name: &str,
    ) -> StoreResult<Upload>;
    /// An account's uploads, newest first; of one content type when given.
    async fn uploads(&self, user_id: Uuid, content_type: Option<&str>) -> StoreResult<Vec<Upload>>;

    // Brand kits
    async fn create_brand(&self, user_id: Uuid, b: &BrandFields) -> StoreResult<Brand>;
    /// An account's brands, oldest first.
    async fn brands(&self, user_id: Uuid) -> StoreResult<Vec<Brand>>;
    async fn brand(&self, id: Uuid) -> StoreResult<Option<Brand>>;
    /// Replaces every field; `None` when there is no such brand.
    async fn update_brand(&self, id: Uuid, b: &BrandFields) -> StoreResult<Option<Brand>>;
    async fn delete_brand(&self, id: Uuid) -> StoreResult<bool>;
    async fn upload_by_sha(&self, sha256: &str) -> StoreResult<Option<Upload>>;

    // Ingest keys
    async fn create_ingest_key(&self, k: NewIngestKey) -> StoreResult<IngestKeyRow>;
    /// A broadcast's ingest keys, oldest first.
    async fn ingest_keys(&self, broadcast_id: Uuid) -> StoreResult<Vec<IngestKeyRow>>;
    async fn ingest_key(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<Option<IngestKeyRow>>;
    /// The key an encoder publishes with, found by its SHA-256.
    async fn ingest_key_by_hash(&self, key_sha256: &[u8]) -> StoreResult<Option<IngestKeyRow>>;
    async fn ingest_key_used(&self, id: Uuid) -> StoreResult<()>;
    async fn delete_ingest_key(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<bool>;
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Db(e),
    }
}

/// SQLite (embedded mode).
pub struct SqliteStore {
    pool: SqlitePool,
}

/// PostgreSQL (production).
pub struct PgStore {
    pool: PgPool,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        use std::str::FromStr as _;
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let file = options.get_filename().to_owned();
        let pool = SqlitePoolOptions::new().max_connections(max_connections.max(1)).connect_with(options).await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let store = Self { pool };
        store.hash_plain_invite_tokens().await?;
        let pool = store.pool;
        // The database holds sessions, invite links and encrypted stream keys: readable by this user only,
        // write-ahead log and shared-memory files included.
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            set_private(std::path::Path::new(&path));
        }
        Ok(Self { pool })
    }

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        let store = Self { pool };
        store.hash_plain_invite_tokens().await?;
        Ok(store)
    }

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Mode 0600 on a file that exists (Unix); a failure is logged, not fatal (the operator may have chosen otherwise).
fn set_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if path.exists()
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    {
        tracing::warn!(path = %path.display(), "could not make the database file private: {e}");
    }
}

/// Connects to the backend the URL names and runs its migrations.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PgStore::connect(url, max_connections).await?))
    } else {
        Ok(std::sync::Arc::new(SqliteStore::connect(url, max_connections).await?))
    }
}

/// One page of a user's rows from `$table`, newest first, with the total count.
macro_rules! page_of_user {
    ($pool:expr, $ty:ty, $table:literal, $user:expr, $limit:expr, $offset:expr) => {{
        let items = sqlx::query_as::<_, $ty>(concat!(
            "SELECT * FROM ",
            $table,
            " WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind($user)
        .bind($limit)
        .bind($offset)
        .fetch_all($pool)
        .await?;
        let total = sqlx::query_scalar::<_, i64>(concat!("SELECT COUNT(*) FROM ", $table, " WHERE user_id = $1"))
            .bind($user)
            .fetch_one($pool)
            .await?;
        Ok(Page { items, total })
    }};
}

macro_rules! impl_store {
    ($ty:ident, $backend:literal) => {
        #[async_trait]
        impl Store for $ty {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn create_user(&self, email: &str, password: &str, name: &str, is_admin: bool) -> StoreResult<User> {
                let t = now();
                sqlx::query_as::<_, User>(
                    "INSERT INTO users (id, email, password, name, is_admin, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(email)
                .bind(password)
                .bind(name)
                .bind(is_admin)
                .bind(t)
                .fetch_one(&self.pool)
                .await
                .map_err(unique("account with this email"))
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as::<_, User>("SELECT * FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as::<_, User>("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
            }

            async fn count_users(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
            }

            async fn create_session(&self, user_id: Uuid) -> StoreResult<Session> {
                Ok(sqlx::query_as::<_, Session>(
                    "INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(user_id)
                .bind(now())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn session(&self, id: Uuid) -> StoreResult<Option<Session>> {
                Ok(sqlx::query_as::<_, Session>("SELECT * FROM sessions WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
            }

            async fn revoke_session(&self, id: Uuid) -> StoreResult<()> {
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_refresh(
                &self,
                hash: &[u8],
                family_id: Uuid,
                user_id: Uuid,
                expires_at: OffsetDateTime,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(hash)
                .bind(family_id)
                .bind(user_id)
                .bind(expires_at)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn use_refresh(&self, hash: &[u8]) -> StoreResult<RefreshUse> {
                let t = now();
                // Marking used and reading in one statement makes two concurrent uses see one winner.
                let taken: Option<(Uuid, Uuid)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET used_at = $2
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
                     RETURNING family_id, user_id",
                )
                .bind(hash)
                .bind(t)
                .fetch_optional(&self.pool)
                .await?;
                if let Some((family_id, user_id)) = taken {
                    return Ok(RefreshUse::Valid { family_id, user_id });
                }
                let seen: Option<(Uuid, Uuid, Option<OffsetDateTime>)> =
                    sqlx::query_as("SELECT family_id, user_id, used_at FROM refresh_tokens WHERE token_hash = $1")
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(match seen {
                    Some((family_id, user_id, Some(_))) => RefreshUse::Reused { family_id, user_id },
                    _ => RefreshUse::Invalid,
                })
            }

            async fn create_broadcast(
                &self,
                user_id: Uuid,
                title: &str,
                description: &str,
                settings: serde_json::Value,
            ) -> StoreResult<Broadcast> {
                let t = now();
                Ok(sqlx::query_as::<_, Broadcast>(
                    "INSERT INTO broadcasts (id, user_id, title, description, settings, scene, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(user_id)
                .bind(title)
                .bind(description)
                .bind(Json(settings))
                .bind(Json(serde_json::json!({})))
                .bind(t)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn broadcast(&self, id: Uuid) -> StoreResult<Option<Broadcast>> {
                Ok(sqlx::query_as::<_, Broadcast>("SELECT * FROM broadcasts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_broadcasts(&self, user_id: Uuid, limit: i64, offset: i64) -> StoreResult<Page<Broadcast>> {
                page_of_user!(&self.pool, Broadcast, "broadcasts", user_id, limit, offset)
            }

            async fn update_broadcast(&self, b: &Broadcast) -> StoreResult<Broadcast> {
                Ok(sqlx::query_as::<_, Broadcast>(
                    "UPDATE broadcasts SET title = $2, description = $3, settings = $4, updated_at = $5
                     WHERE id = $1 RETURNING *",
                )
                .bind(b.id)
                .bind(&b.title)
                .bind(&b.description)
                .bind(&b.settings)
                .bind(now())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn set_broadcast_status(
                &self,
                id: Uuid,
                status: BroadcastStatus,
                start_time: Option<OffsetDateTime>,
                end_time: Option<OffsetDateTime>,
            ) -> StoreResult<Broadcast> {
                Ok(sqlx::query_as::<_, Broadcast>(
                    "UPDATE broadcasts SET status = $2, start_time = COALESCE($3, start_time),
                     end_time = $4, updated_at = $5 WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(status)
                .bind(start_time)
                .bind(end_time)
                .bind(now())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn set_scene(&self, id: Uuid, scene: serde_json::Value) -> StoreResult<()> {
                sqlx::query("UPDATE broadcasts SET scene = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(Json(scene))
                    .bind(now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_broadcast(&self, id: Uuid) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM broadcasts WHERE id = $1").bind(id).execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn usage(&self, user_id: Uuid) -> StoreResult<Usage> {
                Ok(sqlx::query_as::<_, Usage>(
                    "SELECT (SELECT COUNT(*) FROM broadcasts WHERE user_id = $1) AS broadcasts, \
                     (SELECT COUNT(*) FROM broadcasts WHERE user_id = $1 AND status = 'live') AS live, \
                     CAST((SELECT COALESCE(SUM(size), 0) FROM uploads WHERE user_id = $1) AS BIGINT) AS upload_bytes, \
                     CAST((SELECT COALESCE(SUM(file_size), 0) FROM recordings WHERE user_id = $1) AS BIGINT) AS recording_bytes",
                )
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn count_live_broadcasts(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM broadcasts WHERE status = 'live'")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn live_broadcasts(&self) -> StoreResult<Vec<Broadcast>> {
                Ok(sqlx::query_as::<_, Broadcast>("SELECT * FROM broadcasts WHERE status = 'live'")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn create_destination(&self, d: NewDestination) -> StoreResult<DestinationRow> {
                let t = now();
                Ok(sqlx::query_as::<_, DestinationRow>(
                    "INSERT INTO destinations (id, broadcast_id, platform, name, rtmp_url, stream_key, stream_key_nonce,
                     stream_key_kid, enabled, created_at, updated_at, profile, canvas)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(d.broadcast_id)
                .bind(&d.platform)
                .bind(&d.name)
                .bind(&d.rtmp_url)
                .bind(&d.stream_key)
                .bind(&d.stream_key_nonce)
                .bind(&d.stream_key_kid)
                .bind(d.enabled)
                .bind(t)
                .bind(&d.profile)
                .bind(&d.canvas)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn destinations(&self, broadcast_id: Uuid) -> StoreResult<Vec<DestinationRow>> {
                Ok(sqlx::query_as::<_, DestinationRow>(
                    "SELECT * FROM destinations WHERE broadcast_id = $1 ORDER BY created_at, id",
                )
                .bind(broadcast_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn destination(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<Option<DestinationRow>> {
                Ok(sqlx::query_as::<_, DestinationRow>("SELECT * FROM destinations WHERE broadcast_id = $1 AND id = $2")
                    .bind(broadcast_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn update_destination(&self, d: &DestinationRow) -> StoreResult<DestinationRow> {
                Ok(sqlx::query_as::<_, DestinationRow>(
                    "UPDATE destinations SET name = $2, rtmp_url = $3, stream_key = $4, stream_key_nonce = $5,
                     stream_key_kid = $6, enabled = $7, status = $8, updated_at = $9, profile = $10, canvas = $11
                     WHERE id = $1 RETURNING *",
                )
                .bind(d.id)
                .bind(&d.name)
                .bind(&d.rtmp_url)
                .bind(&d.stream_key)
                .bind(&d.stream_key_nonce)
                .bind(&d.stream_key_kid)
                .bind(d.enabled)
                .bind(&d.status)
                .bind(now())
                .bind(&d.profile)
                .bind(&d.canvas)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn delete_destination(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM destinations WHERE broadcast_id = $1 AND id = $2")
                    .bind(broadcast_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn participant_joined(&self, seat: Seat<'_>) -> StoreResult<Participant> {
                let t = now();
                Ok(sqlx::query_as::<_, Participant>(
                    "INSERT INTO participants (id, broadcast_id, user_id, name, role, audio_enabled, video_enabled,
                     joined_at, created_at, updated_at, node, session)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $9, $10) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(seat.broadcast_id)
                .bind(seat.user_id)
                .bind(seat.name)
                .bind(seat.role)
                .bind(seat.audio)
                .bind(seat.video)
                .bind(t)
                .bind(seat.node)
                .bind(seat.session.to_string())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn participant_status(&self, id: Uuid, audio: bool, video: bool, name: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE participants SET audio_enabled = $2, video_enabled = $3, name = $4, updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(audio)
                .bind(video)
                .bind(name)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn participant_left(&self, id: Uuid, node: &str) -> StoreResult<bool> {
                let t = now();
                Ok(sqlx::query(
                    "UPDATE participants SET left_at = $2, updated_at = $2 WHERE id = $1 AND left_at IS NULL AND node = $3",
                )
                .bind(id)
                .bind(t)
                .bind(node)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0)
            }

            async fn take_seat(
                &self,
                broadcast_id: Uuid,
                id: Uuid,
                session: Uuid,
                node: &str,
            ) -> StoreResult<Option<(Participant, String)>> {
                let held: Option<(String,)> = sqlx::query_as(
                    "SELECT node FROM participants WHERE id = $1 AND broadcast_id = $2 AND session = $3
                     AND left_at IS NULL AND node <> $4 AND node <> ''",
                )
                .bind(id)
                .bind(broadcast_id)
                .bind(session.to_string())
                .bind(node)
                .fetch_optional(&self.pool)
                .await?;
                let Some((from,)) = held else { return Ok(None) };
                // Only if nobody moved or closed it meanwhile.
                let row = sqlx::query_as::<_, Participant>(
                    "UPDATE participants SET node = $3, updated_at = $4 WHERE id = $1 AND node = $2 AND left_at IS NULL
                     RETURNING *",
                )
                .bind(id)
                .bind(&from)
                .bind(node)
                .bind(now())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| (r, from)))
            }

            async fn participants_elsewhere(&self, node: &str) -> StoreResult<Vec<Participant>> {
                Ok(sqlx::query_as::<_, Participant>(
                    "SELECT * FROM participants WHERE left_at IS NULL AND node <> '' AND node <> $1 ORDER BY joined_at, id",
                )
                .bind(node)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn active_participants(&self, broadcast_id: Uuid) -> StoreResult<Vec<Participant>> {
                Ok(sqlx::query_as::<_, Participant>(
                    "SELECT * FROM participants WHERE broadcast_id = $1 AND left_at IS NULL ORDER BY joined_at, id",
                )
                .bind(broadcast_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn close_all_participants(&self, node: Option<&str>) -> StoreResult<u64> {
                let t = now();
                let query = match node {
                    Some(node) => sqlx::query(
                        "UPDATE participants SET left_at = $1, updated_at = $1 WHERE left_at IS NULL AND node IN ($2, '')",
                    )
                    .bind(t)
                    .bind(node),
                    None => sqlx::query("UPDATE participants SET left_at = $1, updated_at = $1 WHERE left_at IS NULL")
                        .bind(t),
                };
                Ok(query
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn home_kind(&self, broadcast_id: Uuid) -> StoreResult<Option<HomeKind>> {
                let kind: Option<String> = sqlx::query_scalar("SELECT home_kind FROM broadcasts WHERE id = $1")
                    .bind(broadcast_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(kind.map(|k| if k == HomeKind::Relay.as_str() { HomeKind::Relay } else { HomeKind::Program }))
            }

            async fn claim_home(&self, broadcast_id: Uuid, token: i64, kind: HomeKind) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "UPDATE broadcasts SET home_fence = $2, home_kind = $3 WHERE id = $1 AND home_fence <= $2",
                )
                    .bind(broadcast_id)
                    .bind(token)
                    .bind(kind.as_str())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1)
            }

            async fn create_recording(
                &self,
                broadcast_id: Uuid,
                user_id: Uuid,
                title: &str,
                fence: i64,
                node: &str,
            ) -> StoreResult<Recording> {
                let t = now();
                let id = Uuid::now_v7();
                sqlx::query_as::<_, Recording>(
                    "INSERT INTO recordings (id, broadcast_id, user_id, title, url, created_at, updated_at, node)
                     SELECT $1, $2, $3, $4, $5, $6, $6, $8
                     WHERE EXISTS (SELECT 1 FROM broadcasts WHERE id = $2 AND home_fence <= $7) RETURNING *",
                )
                .bind(id)
                .bind(broadcast_id)
                .bind(user_id)
                .bind(title)
                .bind(format!("/api/recordings/{id}/file"))
                .bind(t)
                .bind(fence)
                .bind(node)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::Fenced { token: fence })
            }

            async fn create_participant_recording(
                &self,
                program: &Recording,
                participant_id: &str,
                participant_name: &str,
                fence: i64,
            ) -> StoreResult<Recording> {
                let t = now();
                let id = Uuid::now_v7();
                sqlx::query_as::<_, Recording>(
                    "INSERT INTO recordings
                       (id, broadcast_id, user_id, title, url, created_at, updated_at, node, participant_id, participant_name)
                     SELECT $1, $2, $3, $4, $5, $6, $6, $8, $9, $10
                     WHERE EXISTS (SELECT 1 FROM broadcasts WHERE id = $2 AND home_fence <= $7) RETURNING *",
                )
                .bind(id)
                .bind(program.broadcast_id)
                .bind(program.user_id)
                .bind(&program.title)
                .bind(format!("/api/recordings/{id}/file"))
                .bind(t)
                .bind(fence)
                .bind(&program.node)
                .bind(participant_id)
                .bind(participant_name)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::Fenced { token: fence })
            }

            async fn create_local_recording(&self, rec: NewLocalRecording<'_>) -> StoreResult<Recording> {
                let t = now();
                Ok(sqlx::query_as::<_, Recording>(
                    "INSERT INTO recordings (id, broadcast_id, user_id, title, url, status, duration, file_size,
                       created_at, updated_at, node, participant_id, participant_name, local)
                     VALUES ($1, $2, $3, $4, $5, 'ready', $6, $7, $8, $8, $9, $10, $11, TRUE) RETURNING *",
                )
                .bind(rec.id)
                .bind(rec.broadcast_id)
                .bind(rec.user_id)
                .bind(rec.title)
                .bind(format!("/api/recordings/{}/file", rec.id))
                .bind(rec.duration)
                .bind(rec.file_size)
                .bind(t)
                .bind(rec.node)
                .bind(rec.participant_id)
                .bind(rec.participant_name)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn local_recording_bytes(&self, broadcast_id: Uuid) -> StoreResult<i64> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT CAST(COALESCE(SUM(file_size), 0) AS BIGINT) FROM recordings WHERE broadcast_id = $1 AND local",
                )
                .bind(broadcast_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn finish_recording(
                &self,
                id: Uuid,
                status: RecordingStatus,
                duration: f64,
                file_size: i64,
                fence: i64,
            ) -> StoreResult<()> {
                let written = sqlx::query(
                    "UPDATE recordings SET status = $2, duration = $3, file_size = $4, updated_at = $5 WHERE id = $1
                     AND (SELECT home_fence FROM broadcasts WHERE broadcasts.id = recordings.broadcast_id) <= $6",
                )
                .bind(id)
                .bind(status)
                .bind(duration)
                .bind(file_size)
                .bind(now())
                .bind(fence)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if written == 0 {
                    return Err(StoreError::Fenced { token: fence });
                }
                Ok(())
            }

            async fn recording(&self, id: Uuid) -> StoreResult<Option<Recording>> {
                Ok(sqlx::query_as::<_, Recording>("SELECT * FROM recordings WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn unfinished_recordings(&self, broadcast: Option<Uuid>) -> StoreResult<Vec<Recording>> {
                Ok(match broadcast {
                    None => {
                        sqlx::query_as::<_, Recording>("SELECT * FROM recordings WHERE status = 'recording'")
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some(b) => {
                        sqlx::query_as::<_, Recording>(
                            "SELECT * FROM recordings WHERE status = 'recording' AND broadcast_id = $1",
                        )
                        .bind(b)
                        .fetch_all(&self.pool)
                        .await?
                    }
                })
            }

            async fn list_recordings(&self, user_id: Uuid, limit: i64, offset: i64) -> StoreResult<Page<Recording>> {
                page_of_user!(&self.pool, Recording, "recordings", user_id, limit, offset)
            }

            async fn delete_recording(&self, id: Uuid) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM recordings WHERE id = $1").bind(id).execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn create_invite(
                &self,
                broadcast_id: Uuid,
                token: &str,
                role: Role,
                created_by: Uuid,
                expires_at: OffsetDateTime,
            ) -> StoreResult<Invite> {
                Ok(sqlx::query_as::<_, Invite>(
                    "INSERT INTO invites (id, broadcast_id, token_sha256, role, created_by, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(broadcast_id)
                .bind(invite_token_sha256(token))
                .bind(role)
                .bind(created_by)
                .bind(expires_at)
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .map_err(unique("invite token"))?)
            }

            async fn invites(&self, broadcast_id: Uuid) -> StoreResult<Vec<Invite>> {
                Ok(sqlx::query_as::<_, Invite>(
                    "SELECT * FROM invites WHERE broadcast_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
                )
                .bind(broadcast_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn invite_by_token(&self, token: &str) -> StoreResult<Option<Invite>> {
                Ok(sqlx::query_as::<_, Invite>("SELECT * FROM invites WHERE token_sha256 = $1")
                    .bind(invite_token_sha256(token))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn revoke_invite(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<Option<Vec<Uuid>>> {
                let t = now();
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE invites SET revoked_at = $3 WHERE broadcast_id = $1 AND id = $2 AND revoked_at IS NULL",
                )
                .bind(broadcast_id)
                .bind(id)
                .bind(t)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Ok(None);
                }
                let sessions: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE guest_sessions SET revoked_at = $2 WHERE invite_id = $1 AND revoked_at IS NULL RETURNING id",
                )
                .bind(id)
                .bind(t)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(sessions))
            }

            async fn create_guest_session(
                &self,
                token_hash: &[u8],
                invite: &Invite,
                name: &str,
                expires_at: OffsetDateTime,
            ) -> StoreResult<GuestSession> {
                Ok(sqlx::query_as::<_, GuestSession>(
                    "INSERT INTO guest_sessions (id, token_hash, invite_id, broadcast_id, name, role, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(token_hash)
                .bind(invite.id)
                .bind(invite.broadcast_id)
                .bind(name)
                .bind(invite.role)
                .bind(expires_at)
                .bind(now())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn guest_session_by_hash(&self, token_hash: &[u8]) -> StoreResult<Option<GuestSession>> {
                Ok(sqlx::query_as::<_, GuestSession>("SELECT * FROM guest_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn revoke_guest_session(&self, id: Uuid) -> StoreResult<()> {
                sqlx::query("UPDATE guest_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_upload(&self, user_id: Uuid, sha256: &str, content_type: &str, size: i64, name: &str)
            -> StoreResult<Upload> {
                Ok(sqlx::query_as::<_, Upload>(
                    "INSERT INTO uploads (id, user_id, sha256, content_type, size, created_at, name)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(user_id)
                .bind(sha256)
                .bind(content_type)
                .bind(size)
                .bind(now())
                .bind(name)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn uploads(&self, user_id: Uuid, content_type: Option<&str>) -> StoreResult<Vec<Upload>> {
                Ok(sqlx::query_as::<_, Upload>(
                    "SELECT * FROM uploads WHERE user_id = $1 AND ($2 IS NULL OR content_type = $2)
                     ORDER BY created_at DESC, id DESC LIMIT 200",
                )
                .bind(user_id)
                .bind(content_type)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn create_brand(&self, user_id: Uuid, b: &BrandFields) -> StoreResult<Brand> {
                Ok(sqlx::query_as::<_, Brand>(
                    "INSERT INTO brands
                       (id, user_id, name, color, background, logo_url, created_at, updated_at, background_image, font)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(user_id)
                .bind(&b.name)
                .bind(&b.color)
                .bind(&b.background)
                .bind(&b.logo_url)
                .bind(now())
                .bind(&b.background_image)
                .bind(&b.font)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn brands(&self, user_id: Uuid) -> StoreResult<Vec<Brand>> {
                Ok(sqlx::query_as::<_, Brand>("SELECT * FROM brands WHERE user_id = $1 ORDER BY created_at, id")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn brand(&self, id: Uuid) -> StoreResult<Option<Brand>> {
                Ok(sqlx::query_as::<_, Brand>("SELECT * FROM brands WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn update_brand(&self, id: Uuid, b: &BrandFields) -> StoreResult<Option<Brand>> {
                Ok(sqlx::query_as::<_, Brand>(
                    "UPDATE brands SET name = $2, color = $3, background = $4, logo_url = $5, updated_at = $6,
                       background_image = $7, font = $8
                     WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(&b.name)
                .bind(&b.color)
                .bind(&b.background)
                .bind(&b.logo_url)
                .bind(now())
                .bind(&b.background_image)
                .bind(&b.font)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_brand(&self, id: Uuid) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM brands WHERE id = $1").bind(id).execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn create_ingest_key(&self, k: NewIngestKey) -> StoreResult<IngestKeyRow> {
                Ok(sqlx::query_as::<_, IngestKeyRow>(
                    "INSERT INTO ingest_keys (id, broadcast_id, label, mode, key_sha256, key_sealed, key_nonce, key_kid,
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(k.broadcast_id)
                .bind(&k.label)
                .bind(&k.mode)
                .bind(&k.key_sha256)
                .bind(&k.key_sealed)
                .bind(&k.key_nonce)
                .bind(&k.key_kid)
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .map_err(unique("ingest key"))?)
            }

            async fn ingest_keys(&self, broadcast_id: Uuid) -> StoreResult<Vec<IngestKeyRow>> {
                Ok(sqlx::query_as::<_, IngestKeyRow>(
                    "SELECT * FROM ingest_keys WHERE broadcast_id = $1 ORDER BY created_at, id",
                )
                .bind(broadcast_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn ingest_key(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<Option<IngestKeyRow>> {
                Ok(sqlx::query_as::<_, IngestKeyRow>("SELECT * FROM ingest_keys WHERE broadcast_id = $1 AND id = $2")
                    .bind(broadcast_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn ingest_key_by_hash(&self, key_sha256: &[u8]) -> StoreResult<Option<IngestKeyRow>> {
                Ok(sqlx::query_as::<_, IngestKeyRow>("SELECT * FROM ingest_keys WHERE key_sha256 = $1")
                    .bind(key_sha256)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn ingest_key_used(&self, id: Uuid) -> StoreResult<()> {
                sqlx::query("UPDATE ingest_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_ingest_key(&self, broadcast_id: Uuid, id: Uuid) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM ingest_keys WHERE broadcast_id = $1 AND id = $2")
                    .bind(broadcast_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn upload_by_sha(&self, sha256: &str) -> StoreResult<Option<Upload>> {
                Ok(sqlx::query_as::<_, Upload>("SELECT * FROM uploads WHERE sha256 = $1 ORDER BY created_at LIMIT 1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }
    };
}

/// How an invite token is stored and looked up: lowercase hex of its SHA-256 (64 characters).
pub fn invite_token_sha256(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Databases written before invite tokens were stored hashed hold the token itself in `token_sha256`; hash those
/// rows in place (a plain token is 43 base64url characters, never 64 hex digits), so old links keep working.
macro_rules! hash_plain_invite_tokens {
    ($ty:ty) => {
        impl $ty {
            async fn hash_plain_invite_tokens(&self) -> StoreResult<()> {
                let plain: Vec<(Uuid, String)> =
                    sqlx::query_as("SELECT id, token_sha256 FROM invites WHERE length(token_sha256) <> 64")
                        .fetch_all(&self.pool)
                        .await?;
                for (id, token) in plain {
                    sqlx::query("UPDATE invites SET token_sha256 = $1 WHERE id = $2")
                        .bind(invite_token_sha256(&token))
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }
        }
    };
}

hash_plain_invite_tokens!(SqliteStore);
hash_plain_invite_tokens!(PgStore);
impl_store!(SqliteStore, "sqlite");
impl_store!(PgStore, "postgres");
