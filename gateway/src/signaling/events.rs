//! What goes to a whole room: one typed event per kind, carried by the bus to every socket in the room (on any
//! node), to the program's director and to other nodes. This enum is the schema: `docs/protocol.md` documents
//! every variant under "Server → client", and a test checks that the two agree.

use backyard_core::compositor::ProgramStats;
use backyard_core::director::StageLayout;
use backyard_core::egress::OutputStatus;
use backyard_core::router::quality::ConnectionQuality;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::protocol::{ChatMessage, Participant};
use crate::bus::Event;
use crate::scene::Scene;

/// A room event. On the wire (WebSocket and bus) it is `{"event": "<kebab-case name>", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum RoomEvent {
    /// Someone entered the room.
    ParticipantJoined {
        participant: Participant,
    },
    /// Someone left: `left`, `removed` or `disconnected`.
    ParticipantLeft {
        participant_id: Uuid,
        reason: String,
    },
    /// A participant's name, mute state, screen share or speaking changed.
    ParticipantStatusUpdated {
        participant: Participant,
    },
    ChatMessage(ChatMessage),
    BroadcastStarted {
        broadcast_id: Uuid,
        /// RFC 3339.
        start_time: String,
        /// The host asked every participant's browser to record them locally while live (`settings.localRecording`).
        #[serde(default)]
        local_recording: bool,
    },
    BroadcastEnded {
        broadcast_id: Uuid,
        /// RFC 3339.
        end_time: String,
        /// `server-stopping` when the server ended it on its way down.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Boxed: a scene is large beside the other events.
    SceneUpdated {
        scene: Box<Scene>,
    },
    /// An output (destination or recording) of the program on air changed.
    DestinationStatus {
        #[serde(flatten)]
        status: OutputStatus,
        /// The destination's id (absent for the recording).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        destination_id: Option<String>,
    },
    /// The program's health, every 2 s while it runs: `fps` and `skipped` are over the last 2 s.
    ProgramStatus {
        state: String,
        fps: f64,
        target_fps: u32,
        skipped: u64,
        health: crate::program::ProgramHealth,
        stats: ProgramStats,
        on_stage: Vec<String>,
    },
    /// The program's tiles, as the studio draws them.
    StageLayout(StageLayout),
    /// The tiles of one of the scene's other canvases, as the studio draws them on that canvas's tab.
    CanvasLayout {
        canvas_id: String,
        stage: StageLayout,
    },
    /// A participant's link as the server measures it, every second.
    ConnectionQuality {
        participant_id: Uuid,
        #[serde(flatten)]
        quality: ConnectionQuality,
    },
    /// A participant's local recording on its way to the server: each uploaded part, then the file kept (or why
    /// not).
    LocalRecording {
        participant_id: Uuid,
        name: String,
        #[serde(flatten)]
        progress: crate::api::local_recordings::Progress,
    },
    /// An encoder publishing (or no longer publishing) with one of the broadcast's ingest keys.
    IngestStatus {
        ingest_key_id: Uuid,
        #[serde(flatten)]
        status: crate::ingest::IngestStatus,
    },
}

impl RoomEvent {
    /// Every room event's name, as the wire spells it.
    pub const NAMES: &[&str] = &[
        "participant-joined",
        "participant-left",
        "participant-status-updated",
        "chat-message",
        "broadcast-started",
        "broadcast-ended",
        "scene-updated",
        "destination-status",
        "program-status",
        "stage-layout",
        "canvas-layout",
        "connection-quality",
        "local-recording",
        "ingest-status",
    ];

    /// The event's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            RoomEvent::ParticipantJoined { .. } => "participant-joined",
            RoomEvent::ParticipantLeft { .. } => "participant-left",
            RoomEvent::ParticipantStatusUpdated { .. } => "participant-status-updated",
            RoomEvent::ChatMessage(_) => "chat-message",
            RoomEvent::BroadcastStarted { .. } => "broadcast-started",
            RoomEvent::BroadcastEnded { .. } => "broadcast-ended",
            RoomEvent::SceneUpdated { .. } => "scene-updated",
            RoomEvent::DestinationStatus { .. } => "destination-status",
            RoomEvent::ProgramStatus { .. } => "program-status",
            RoomEvent::StageLayout(_) => "stage-layout",
            RoomEvent::CanvasLayout { .. } => "canvas-layout",
            RoomEvent::LocalRecording { .. } => "local-recording",
            RoomEvent::IngestStatus { .. } => "ingest-status",
            RoomEvent::ConnectionQuality { .. } => "connection-quality",
        }
    }

    /// The event as the bus carries it.
    pub fn to_bus(&self) -> Event {
        let data = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut o)) => o.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        };
        Event::new(self.name(), data)
    }

    /// Reads a bus event; an event of another kind or shape is an error.
    pub fn from_bus(ev: &Event) -> Result<RoomEvent, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "event": ev.event, "data": ev.data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use backyard_core::director::CanvasSize;
    use backyard_core::egress::{OutputKind, OutputState};

    fn participant() -> Participant {
        Participant {
            id: Uuid::nil(),
            user_id: None,
            name: "Ada".into(),
            role: Role::Guest,
            audio_enabled: true,
            video_enabled: false,
            screen_sharing: false,
            speaking: true,
            backstage: false,
        }
    }

    /// One of each kind.
    fn every_kind() -> Vec<RoomEvent> {
        let status = OutputStatus {
            id: "d1".into(),
            kind: OutputKind::Destination,
            target: "rtmp://example.com/live/••••".into(),
            state: OutputState::Reconnecting { reason: "refused".into(), attempt: 2, retry_in_ms: 1000 },
            bitrate_kbps: 0,
            dropped_frames: 3,
            uptime_secs: 0,
            connects: 1,
        };
        vec![
            RoomEvent::ParticipantJoined { participant: participant() },
            RoomEvent::ParticipantLeft { participant_id: Uuid::nil(), reason: "left".into() },
            RoomEvent::ParticipantStatusUpdated { participant: participant() },
            RoomEvent::ChatMessage(ChatMessage {
                id: Uuid::nil(),
                participant_id: Uuid::nil(),
                name: "Ada".into(),
                text: "hi".into(),
                sent_at: "2026-11-29T10:12:16.123Z".into(),
            }),
            RoomEvent::BroadcastStarted {
                broadcast_id: Uuid::nil(),
                start_time: "2026-11-29T10:15:00Z".into(),
                local_recording: true,
            },
            RoomEvent::BroadcastEnded {
                broadcast_id: Uuid::nil(),
                end_time: "2026-11-29T11:15:00Z".into(),
                reason: None,
            },
            RoomEvent::SceneUpdated { scene: Box::default() },
            RoomEvent::DestinationStatus { status, destination_id: Some("d1".into()) },
            RoomEvent::ProgramStatus {
                state: "running".into(),
                fps: 30.0,
                target_fps: 30,
                skipped: 0,
                health: crate::program::ProgramHealth::Ok,
                stats: Default::default(),
                on_stage: vec![],
            },
            RoomEvent::StageLayout(StageLayout {
                layout: "grid".into(),
                canvas: CanvasSize { width: 1280, height: 720 },
                tiles: vec![],
            }),
            RoomEvent::CanvasLayout {
                canvas_id: "vertical".into(),
                stage: StageLayout {
                    layout: "stack".into(),
                    canvas: CanvasSize { width: 720, height: 1280 },
                    tiles: vec![],
                },
            },
            RoomEvent::ConnectionQuality {
                participant_id: Uuid::nil(),
                quality: ConnectionQuality {
                    grade: backyard_core::router::quality::Grade::Fair,
                    rtt_ms: Some(48),
                    downlink_loss: Some(0.03),
                    uplink_loss: Some(0.0),
                    jitter_ms: Some(4),
                    downlink_kbps: Some(610),
                    layers: Some((3, 3)),
                },
            },
            RoomEvent::LocalRecording {
                participant_id: Uuid::nil(),
                name: "Ada".into(),
                progress: crate::api::local_recordings::Progress {
                    state: crate::api::local_recordings::UploadState::Kept,
                    bytes: 9_400_000,
                    recording_id: Some(Uuid::nil()),
                    duration: Some(30.2),
                    message: None,
                },
            },
            RoomEvent::IngestStatus {
                ingest_key_id: Uuid::nil(),
                status: crate::ingest::IngestStatus {
                    state: "live".into(),
                    message: None,
                    stream: Some("1280×720 H.264 (High), AAC 48 kHz stereo".into()),
                },
            },
        ]
    }

    #[test]
    fn every_kind_is_named_and_goes_over_the_bus_and_back() {
        let all = every_kind();
        assert_eq!(all.len(), RoomEvent::NAMES.len(), "a sample of every kind");
        for ev in all {
            assert!(RoomEvent::NAMES.contains(&ev.name()), "{} is in NAMES", ev.name());
            let bus = ev.to_bus();
            assert_eq!(bus.event, ev.name());
            assert_eq!(RoomEvent::from_bus(&bus).unwrap(), ev);
        }
    }

    #[test]
    fn the_protocol_document_lists_exactly_the_events_the_server_sends() {
        // Sent to one socket only, never over the bus.
        const DIRECT: &[&str] = &[
            "joined",
            "room-state",
            "webrtc-offer",
            "webrtc-answer",
            "ice-candidate",
            "moderated",
            "video-paused",
            "error",
        ];
        let doc = include_str!("../../../docs/protocol.md");
        let section = doc.split("## Server → client").nth(1).expect("a Server → client section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut documented: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("### "))
            .flat_map(|h| h.split(" / ").map(str::trim))
            .collect();
        documented.sort();
        let mut sent: Vec<&str> = RoomEvent::NAMES.iter().chain(DIRECT).copied().collect();
        sent.sort();
        assert_eq!(documented, sent, "docs/protocol.md's server → client events and RoomEvent + direct events");
    }

    #[test]
    fn the_wire_shape_is_the_documented_one() {
        let ev = RoomEvent::ParticipantLeft { participant_id: Uuid::nil(), reason: "removed".into() }.to_bus();
        assert_eq!(ev.data, serde_json::json!({"participantId": Uuid::nil(), "reason": "removed"}));
        let ev = every_kind().swap_remove(7).to_bus();
        assert_eq!(ev.data["destinationId"], "d1");
        assert_eq!(ev.data["state"], "reconnecting");
        assert_eq!(ev.data["retryInMs"], 1000);
        assert_eq!(ev.data["kind"], "destination");
    }
}
