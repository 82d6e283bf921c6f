//! Fuzz target for the signaling message parser: every text frame a client can send goes through
//! `ClientMessage::parse`, the function the server's sessions use, and a parsed scene, chat line or name through
//! the checks the session applies next. Properties: nothing panics; a refusal is one of the documented error
//! codes and names the client event whenever the envelope could be read; a parsed message knows its event.
//! How runs work: `core/tests/fuzz_support` (`cargo xtask fuzz` runs it for minutes).

#[path = "../../core/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use backyard::signaling::protocol::{self, ClientMessage};

const DICT: &[&str] = &[
    "\"event\"",
    "\"data\"",
    "\"join-broadcast\"",
    "\"leave-broadcast\"",
    "\"webrtc-offer\"",
    "\"webrtc-answer\"",
    "\"ice-candidate\"",
    "\"participant-status\"",
    "\"chat-message\"",
    "\"moderate\"",
    "\"scene-update\"",
    "\"broadcastId\"",
    "\"sdp\"",
    "\"candidate\"",
    "\"text\"",
    "\"name\"",
    "\"stage\"",
    "\"layout\"",
    "\"overlays\"",
    "\"banner\"",
    "\"lowerThird\"",
    "\"ticker\"",
    "\"comment\"",
    "\"logo\"",
    "\"visible\"",
    "\"plugins\"",
    "\"scoreboard/score\"",
    "\"props\"",
    "\"home\"",
    "\"color\"",
    "\"#fff\"",
    "\"action\"",
    "\"remove\"",
    "\"participantId\"",
    "\"0192f1c4-0000-7000-8000-000000000009\"",
    "\\u0000",
    "\\n",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
];

/// Every code a parse may refuse with (`docs/protocol.md`, "error").
const PARSE_CODES: &[&str] = &["message_too_large", "malformed_message", "unknown_event", "invalid_field"];

#[test]
fn signaling_messages_never_panic_and_refusals_are_documented() {
    let layouts: Vec<String> = ["grid", "solo", "spotlight"].map(String::from).to_vec();
    let overlays = vec![backyard_core::director::OverlayChoice {
        id: "scoreboard/score".into(),
        name: "Score".into(),
        description: String::new(),
        props: vec!["home".into(), "away".into()],
        plugin: "scoreboard".into(),
    }];
    fuzz_support::run("signaling", DICT, |input| {
        let text = String::from_utf8_lossy(input);
        match ClientMessage::parse(&text) {
            Ok(msg) => {
                let event = msg.event();
                let checked = match msg {
                    ClientMessage::SceneUpdate(scene) => scene.validate(&layouts, &overlays).map_err(|e| e.to_string()),
                    ClientMessage::ChatMessage(c) => {
                        backyard::text::one_line("text", &c.text, protocol::MAX_CHAT_CHARS)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                    ClientMessage::ParticipantStatus(s) => match s.name {
                        Some(n) => backyard::text::one_line("name", &n, protocol::MAX_NAME_CHARS)
                            .map(drop)
                            .map_err(|e| e.to_string()),
                        None => Ok(()),
                    },
                    _ => Ok(()),
                };
                format!("{event}: {}", if checked.is_ok() { "ok" } else { "refused" })
            }
            Err(e) => {
                assert!(PARSE_CODES.contains(&e.code), "undocumented code {:?} for {text:?}", e.code);
                if e.code == "invalid_field" || e.code == "unknown_event" {
                    assert!(e.event.is_some(), "{e:?} does not name the client event");
                }
                // Outcome classes stay few: a field or event is named only when it is one the protocol has.
                let known = |s: &Option<String>| {
                    s.as_deref().filter(|s| DICT.contains(&format!("\"{s}\"").as_str())).unwrap_or("other").to_owned()
                };
                format!("{} {} {}", e.code, known(&e.event), known(&e.field))
            }
        }
    });
}
