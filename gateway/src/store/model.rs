//! Rows as the store returns them. JSON uses the seed's camelCase names; secrets are skipped.

use serde::Serialize;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::auth::Role;

/// A unit enum kept in a TEXT column as its lowercase name on both backends (and spelled the same in JSON and
/// the OpenAPI schema): the store hands out the enum, never the string, and a stored value it does not know is
/// a decode error. Each variant's text must be its name in lowercase (serde and the schema derive it so).
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant.
            pub const ALL: &'static [$name] = &[$(Self::$variant,)+];

            /// The stored (and JSON) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Reads the stored spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Self::parse(text).ok_or_else(|| format!("unknown {} {text:?}", stringify!($name)).into())
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// Where a broadcast is in its life.
    pub enum BroadcastStatus {
        /// Made, not on air yet.
        Scheduled = "scheduled",
        /// On air (the program or a relay is sending).
        Live = "live",
        /// Over; it cannot go live again.
        Ended = "ended",
    }
}

text_enum! {
    /// Where a recording is in its life.
    pub enum RecordingStatus {
        /// Being written while the show is on air.
        Recording = "recording",
        /// Finalised and playable.
        Ready = "ready",
        /// Nothing playable was written.
        Failed = "failed",
    }
}

text_enum! {
    /// What an ingest key's stream becomes.
    pub enum IngestMode {
        /// The broadcast is a pure relay: the RTMP stream goes to the destinations, recording and watch page
        /// as it is.
        Relay = "relay",
        /// A participant in the studio (WHIP), which the host can put on stage like a camera.
        Source = "source",
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// argon2id PHC string; never serialized.
    #[serde(skip)]
    pub password: String,
    pub name: String,
    pub avatar: Option<String>,
    pub subscription_tier: String,
    pub is_admin: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Broadcast {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: BroadcastStatus,
    #[schema(value_type = Object)]
    pub settings: Json<serde_json::Value>,
    /// Stage, layout and overlays; read and written through `/scene`.
    #[serde(skip)]
    pub scene: Json<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The newest fence token a node claimed this broadcast's home with (`gateway/src/cluster.rs`).
    #[serde(skip)]
    pub home_fence: i64,
}

impl Broadcast {
    /// The on/off settings the server reads (`settings.<name>`, true or false): guests wait backstage, everyone
    /// records locally while live.
    pub const SWITCHES: [&str; 2] = ["backstage", "localRecording"];

    /// Whether the switch `name` (one of [`Self::SWITCHES`]) is on; off when absent.
    pub fn setting_on(&self, name: &str) -> bool {
        self.settings.0.get(name).and_then(serde_json::Value::as_bool).unwrap_or(false)
    }
}

/// A destination as stored: the stream key only as AES-256-GCM ciphertext.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DestinationRow {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    pub platform: String,
    pub name: String,
    pub rtmp_url: String,
    pub stream_key: Vec<u8>,
    pub stream_key_nonce: Vec<u8>,
    pub stream_key_kid: String,
    pub enabled: bool,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The destination's own encode as JSON ([`EncoderProfile`]); `None`: the program's.
    pub profile: Option<String>,
    /// The program canvas it streams (a scene canvas's id); `None`: the main one.
    pub canvas: Option<String>,
}

impl DestinationRow {
    /// The stored profile; one this version cannot read is an error, never silently the program's.
    pub fn encoder_profile(&self) -> Result<Option<EncoderProfile>, serde_json::Error> {
        self.profile.as_deref().map(serde_json::from_str).transpose()
    }
}

/// A destination's own encode, as the host asked for it. Each field left out takes the program's; the
/// platform's limits hold either way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EncoderProfile {
    /// Frame width in pixels (even; with `height`). The program's canvas is scaled into it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Frame height in pixels (even; with `width`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Frames per second, at most the program's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Video bitrate, kb/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_kbps: Option<u32>,
    /// AAC bitrate, kb/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_kbps: Option<u32>,
    /// Seconds between keyframes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframe_interval_s: Option<f64>,
    /// `baseline`, `main` or `high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264_profile: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub role: Role,
    pub audio_enabled: bool,
    pub video_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub left_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The node whose studio they are in (empty for rows from before several nodes).
    pub node: String,
    /// The user or guest session behind the seat (empty for rows from before seats moved between nodes).
    #[serde(skip)]
    pub session: String,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    /// Seconds.
    pub duration: f64,
    pub file_size: i64,
    /// Download path (`/api/recordings/:id/file`); the file itself lives under the data directory.
    pub url: String,
    pub status: RecordingStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The node that writes (or wrote) its file (`cluster.node_id`; empty for rows from before several nodes).
    #[serde(skip)]
    pub node: String,
    /// A participant's own recording (their media as published, on the program's timeline: a WebM or
    /// Matroska file): whose. `None` for the program's recording (MP4).
    pub participant_id: Option<String>,
    pub participant_name: Option<String>,
    /// A local recording: the file the participant's own browser recorded and uploaded, not one the server wrote.
    pub local: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invite {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    /// Lowercase hex SHA-256 of the link's token; the token itself is never stored.
    pub token_sha256: String,
    pub role: Role,
    pub created_by: Uuid,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl Invite {
    /// Not revoked and not expired at `now`: the link still lets someone in.
    pub fn usable_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GuestSession {
    pub id: Uuid,
    pub token_hash: Vec<u8>,
    pub invite_id: Uuid,
    pub broadcast_id: Uuid,
    pub name: String,
    pub role: Role,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub id: Uuid,
    pub user_id: Uuid,
    pub sha256: String,
    pub content_type: String,
    pub size: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The file name it came with (empty when none was sent).
    pub name: String,
}

/// What taking (using) a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid and now marked used: issue a new one in the same family.
    Valid { family_id: Uuid, user_id: Uuid },
    /// Already used before: a replay. The caller revokes the family.
    Reused { family_id: Uuid, user_id: Uuid },
    /// Unknown or expired.
    Invalid,
}

/// Who takes a seat in a broadcast's room, and the node whose studio they are in.
#[derive(Debug, Clone)]
pub struct Seat<'a> {
    pub broadcast_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: &'a str,
    pub role: Role,
    pub audio: bool,
    pub video: bool,
    pub node: &'a str,
    /// The user or guest session taking the seat (who may take it over on another node).
    pub session: Uuid,
}

/// A participant's local recording as it is kept: uploaded, verified, and its file in the recordings folder as
/// `<id>.webm`.
#[derive(Debug, Clone)]
pub struct NewLocalRecording<'a> {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    /// The broadcast's owner, whose library lists it.
    pub user_id: Uuid,
    pub title: &'a str,
    pub participant_id: &'a str,
    pub participant_name: &'a str,
    pub node: &'a str,
    pub duration: f64,
    pub file_size: i64,
}

/// Fields of a new destination (the key already encrypted).
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub broadcast_id: Uuid,
    pub platform: String,
    pub name: String,
    pub rtmp_url: String,
    pub stream_key: Vec<u8>,
    pub stream_key_nonce: Vec<u8>,
    pub stream_key_kid: String,
    pub enabled: bool,
    /// [`EncoderProfile`] as JSON.
    pub profile: Option<String>,
    /// A scene canvas's id; `None`: the main canvas.
    pub canvas: Option<String>,
}

/// An account's brand kit.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Brand {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// `#rrggbb` behind the tiles, or none.
    pub background: Option<String>,
    /// `/api/uploads/<sha256>`, or none.
    pub logo_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// `/api/uploads/<sha256>` of a picture covering the canvas behind the tiles, or none.
    pub background_image: Option<String>,
    /// `sans`, `serif` or `mono`; none: sans.
    pub font: Option<String>,
}

/// A brand kit's fields, checked by the API.
#[derive(Debug, Clone)]
pub struct BrandFields {
    pub name: String,
    pub color: String,
    pub background: Option<String>,
    pub logo_url: Option<String>,
    pub background_image: Option<String>,
    pub font: Option<String>,
}

/// An ingest key as stored: found by its SHA-256, kept sealed (AES-256-GCM) so its owner can copy it again.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IngestKeyRow {
    pub id: Uuid,
    pub broadcast_id: Uuid,
    pub label: String,
    pub mode: IngestMode,
    pub key_sha256: Vec<u8>,
    pub key_sealed: Vec<u8>,
    pub key_nonce: Vec<u8>,
    pub key_kid: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// What creating an ingest key stores.
#[derive(Debug, Clone)]
pub struct NewIngestKey {
    pub broadcast_id: Uuid,
    pub label: String,
    pub mode: IngestMode,
    pub key_sha256: Vec<u8>,
    pub key_sealed: Vec<u8>,
    pub key_nonce: Vec<u8>,
    pub key_kid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the store writes is what JSON and the OpenAPI schema say, for every variant.
    fn spelled_alike<T: serde::Serialize + utoipa::ToSchema>(all: &[T], text: impl Fn(&T) -> &'static str) {
        let schema = serde_json::to_value(T::schema()).expect("a schema serialises");
        for v in all {
            assert_eq!(serde_json::to_value(v).expect("serialises"), serde_json::json!(text(v)));
            let listed = schema["enum"].as_array().expect("a string enum");
            assert!(listed.contains(&serde_json::json!(text(v))), "{} not in {schema}", text(v));
        }
    }

    #[test]
    fn stored_json_and_schema_spellings_agree() {
        spelled_alike(BroadcastStatus::ALL, |v| v.as_str());
        spelled_alike(RecordingStatus::ALL, |v| v.as_str());
        spelled_alike(Role::ALL, |v| v.as_str());
        spelled_alike(IngestMode::ALL, |v| v.as_str());
        assert_eq!(BroadcastStatus::parse("live"), Some(BroadcastStatus::Live));
        assert_eq!(Role::parse("Host"), None);
    }
}
