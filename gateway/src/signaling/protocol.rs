//! The signaling messages of `docs/protocol.md`: JSON text frames `{"event": "...", "data": {...}}`.
//! Client messages are parsed strictly (unknown fields are errors naming the field); server messages are built
//! here so their shapes live in one place.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest text frame a client may send. An answer in a full room repeats every codec for three m-lines per
/// participant (~50 KiB for 12 participants), so this leaves headroom without letting one frame cost much.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The outer frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub event: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinBroadcast {
    pub broadcast_id: Uuid,
    #[serde(default = "yes")]
    pub audio_enabled: bool,
    #[serde(default = "yes")]
    pub video_enabled: bool,
    /// The seat this studio had before its socket dropped, when it reconnects: taken over if the same session
    /// still holds it through another node (that node died, or a load balancer chose another one).
    #[serde(default)]
    pub participant_id: Option<Uuid>,
}

fn yes() -> bool {
    true
}

/// `webrtc-offer` / `webrtc-answer`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sdp {
    pub sdp: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IceCandidate {
    pub candidate: String,
    /// The server bundles everything on one transport, so which m-line a candidate names does not matter; the
    /// fields are accepted because browsers send them.
    #[serde(default, rename = "sdpMid")]
    pub _sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub _sdp_m_line_index: Option<u32>,
    /// Browsers' `RTCIceCandidate.toJSON()` includes it; the ufrag inside `candidate` is what is checked.
    #[serde(default, rename = "usernameFragment")]
    pub _username_fragment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParticipantStatus {
    pub audio_enabled: Option<bool>,
    pub video_enabled: Option<bool>,
    pub screen_sharing: Option<bool>,
    pub name: Option<String>,
}

/// `track-sizes`: the size at which the client shows each remote video track.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackSizes {
    pub sizes: Vec<TrackSize>,
}

/// The most tracks one `track-sizes` may name (a full room's cameras and screens).
pub const MAX_TRACK_SIZES: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrackSize {
    pub participant_id: Uuid,
    pub source: VideoSource,
    /// Device pixels; 0 × 0: not shown.
    pub width: u16,
    pub height: u16,
}

/// A participant's video track, as `track-sizes` and `video-paused` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoSource {
    Camera,
    Screen,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatIn {
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModerateAction {
    MuteAudio,
    MuteVideo,
    Remove,
    /// A guest waiting backstage comes into the show.
    Admit,
    /// A guest goes (back) backstage, off the stage.
    SendBackstage,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Moderate {
    pub participant_id: Uuid,
    pub action: ModerateAction,
}

/// A participant as every client sees it (and as the bus carries it between nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub role: crate::auth::Role,
    pub audio_enabled: bool,
    pub video_enabled: bool,
    pub screen_sharing: bool,
    pub speaking: bool,
    /// A guest waiting backstage: sees and hears the program (the return feed) and talks with the studio, but
    /// cannot be put on stage until a host admits them.
    #[serde(default)]
    pub backstage: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: Uuid,
    pub participant_id: Uuid,
    pub name: String,
    pub text: String,
    /// RFC 3339.
    pub sent_at: String,
}

/// The `error` event's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorData {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl ErrorData {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorData { code, message: message.into(), field: None, event: None }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// Parses an event's data, naming the offending field in the error.
pub fn parse_data<T: DeserializeOwned>(data: serde_json::Value) -> Result<T, ErrorData> {
    // A missing `data` is `null`; treat it as an empty object so all-optional payloads need none.
    let data = if data.is_null() { serde_json::json!({}) } else { data };
    serde_path_to_error::deserialize(data).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let field = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|m| message.split(m).nth(1).and_then(|r| r.split('`').next()).map(str::to_owned))
            .or_else(|| (path != ".").then_some(path));
        let err = ErrorData::new("invalid_field", message);
        match field {
            Some(f) => err.field(f),
            None => err,
        }
    })
}

/// A client message, parsed and its data checked against its event's shape; what the session acts on.
#[derive(Debug)]
pub enum ClientMessage {
    JoinBroadcast(JoinBroadcast),
    LeaveBroadcast,
    WebrtcOffer(Sdp),
    WebrtcAnswer(Sdp),
    IceCandidate(IceCandidate),
    ParticipantStatus(ParticipantStatus),
    ChatMessage(ChatIn),
    Moderate(Moderate),
    /// Parsed as a scene, not yet checked against the room (who is in it, which layouts are loaded).
    SceneUpdate(Box<crate::scene::Scene>),
    TrackSizes(TrackSizes),
}

impl ClientMessage {
    /// Parses one text frame. The error is the `error` event to send back; its `event` is the client event
    /// when the envelope could be read (so the client knows which of its messages was refused).
    pub fn parse(text: &str) -> Result<ClientMessage, ErrorData> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(ErrorData::new(
                "message_too_large",
                format!("messages are limited to {MAX_MESSAGE_BYTES} bytes"),
            ));
        }
        let env: Envelope = serde_json::from_str(text).map_err(|e| {
            ErrorData::new("malformed_message", format!("expected {{\"event\": \"...\", \"data\": {{...}}}}: {e}"))
        })?;
        let parsed = match env.event.as_str() {
            "join-broadcast" => parse_data(env.data).map(ClientMessage::JoinBroadcast),
            "leave-broadcast" => Ok(ClientMessage::LeaveBroadcast),
            "webrtc-offer" => parse_data(env.data).map(ClientMessage::WebrtcOffer),
            "webrtc-answer" => parse_data(env.data).map(ClientMessage::WebrtcAnswer),
            "ice-candidate" => parse_data(env.data).map(ClientMessage::IceCandidate),
            "participant-status" => parse_data(env.data).map(ClientMessage::ParticipantStatus),
            "chat-message" => parse_data(env.data).map(ClientMessage::ChatMessage),
            "moderate" => parse_data(env.data).map(ClientMessage::Moderate),
            "scene-update" => parse_data(env.data).map(|s| ClientMessage::SceneUpdate(Box::new(s))),
            "track-sizes" => parse_data(env.data).and_then(|t: TrackSizes| {
                if t.sizes.len() > MAX_TRACK_SIZES {
                    Err(ErrorData::new("invalid_field", format!("at most {MAX_TRACK_SIZES} tracks")).field("sizes"))
                } else {
                    Ok(ClientMessage::TrackSizes(t))
                }
            }),
            other => Err(ErrorData::new("unknown_event", format!("unknown event {other:?}")).field("event")),
        };
        parsed.map_err(|mut e| {
            e.event = Some(env.event);
            e
        })
    }

    /// The event name, as the client spelled it.
    pub fn event(&self) -> &'static str {
        match self {
            ClientMessage::JoinBroadcast(_) => "join-broadcast",
            ClientMessage::LeaveBroadcast => "leave-broadcast",
            ClientMessage::WebrtcOffer(_) => "webrtc-offer",
            ClientMessage::WebrtcAnswer(_) => "webrtc-answer",
            ClientMessage::IceCandidate(_) => "ice-candidate",
            ClientMessage::ParticipantStatus(_) => "participant-status",
            ClientMessage::ChatMessage(_) => "chat-message",
            ClientMessage::Moderate(_) => "moderate",
            ClientMessage::SceneUpdate(_) => "scene-update",
            ClientMessage::TrackSizes(_) => "track-sizes",
        }
    }
}

/// A server event as a text frame.
pub fn frame(event: &str, data: impl Serialize) -> String {
    // unwrap: every payload here is plain data that always serializes.
    serde_json::to_string(&serde_json::json!({ "event": event, "data": data })).expect("serializable event")
}
