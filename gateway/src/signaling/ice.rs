//! The ICE servers each participant gets in `joined`: the configured STUN servers as they are, and the TURN
//! servers with a credential made for that participant that expires after `ice.turn_ttl_secs`.
//!
//! The credential is the TURN REST API's (draft-uberti-behave-turn-rest, what coturn checks with
//! `use-auth-secret` + `static-auth-secret`): username `<unix expiry>:<participant id>`, password
//! base64(HMAC-SHA1(secret, username)). The TURN server recomputes it from the shared secret, so nothing is
//! stored, and a leaked credential stops working at its expiry.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::IceConfig;

/// The configured servers; [`IceServers::for_participant`] renders them as `RTCIceServer` JSON.
pub struct IceServers {
    stun_urls: Vec<String>,
    turn_urls: Vec<String>,
    /// The secret shared with the TURN server; `None` when no TURN server is configured.
    turn_secret: Option<String>,
    turn_ttl: Duration,
}

/// A TURN REST API credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<unix expiry>:<user>`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub credential: String,
}

impl IceServers {
    /// From `[ice]`, already validated (`Config::validate`: TURN URLs come with a secret).
    pub fn new(cfg: &IceConfig) -> Self {
        IceServers {
            stun_urls: cfg.stun_urls.clone(),
            turn_urls: cfg.turn_urls.clone(),
            turn_secret: cfg.turn_secret.clone(),
            turn_ttl: Duration::from_secs(cfg.turn_ttl_secs),
        }
    }

    /// The `iceServers` array for `participant` joining at `now`: `[{urls}]` for STUN, `[{urls, username,
    /// credential}]` for TURN; empty entries are left out.
    pub fn for_participant(&self, participant: Uuid, now: SystemTime) -> Value {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(json!({ "urls": self.stun_urls }));
        }
        if !self.turn_urls.is_empty()
            && let Some(secret) = &self.turn_secret
        {
            let expires = (now + self.turn_ttl).duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
            let c = turn_credential(secret, &participant.to_string(), expires);
            servers.push(json!({ "urls": self.turn_urls, "username": c.username, "credential": c.credential }));
        }
        Value::Array(servers)
    }
}

/// The credential for `user` valid until `expires` (unix seconds) under the TURN server's shared `secret`.
pub fn turn_credential(secret: &str, user: &str, expires: u64) -> TurnCredential {
    let username = format!("{expires}:{user}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredential { username, credential }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTICIPANT: &str = "0192f1c4-0000-7000-8000-000000000001";

    fn config(stun: &[&str], turn: &[&str], secret: Option<&str>) -> IceConfig {
        IceConfig {
            stun_urls: stun.iter().map(|s| s.to_string()).collect(),
            turn_urls: turn.iter().map(|s| s.to_string()).collect(),
            turn_secret: secret.map(str::to_owned),
            turn_ttl_secs: 3600,
        }
    }

    #[test]
    fn credential_matches_an_independent_hmac_sha1() {
        // Reference: `printf %s '1700003600:<id>' | openssl dgst -sha1 -hmac north-wind -binary | base64`.
        let c = turn_credential("north-wind", PARTICIPANT, 1_700_003_600);
        assert_eq!(c.username, format!("1700003600:{PARTICIPANT}"));
        assert_eq!(c.credential, "6RCNjvwUeJz+h5P+hCGsjTudx5k=");
        assert_ne!(turn_credential("south-wind", PARTICIPANT, 1_700_003_600).credential, c.credential);
        assert_ne!(turn_credential("north-wind", PARTICIPANT, 1_700_003_601).credential, c.credential);
    }

    #[test]
    fn joined_gets_stun_as_is_and_turn_with_a_credential_expiring_after_the_ttl() {
        let ice = IceServers::new(&config(
            &["stun:stun.example.org:3478"],
            &["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
            Some("north-wind"),
        ));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let got = ice.for_participant(PARTICIPANT.parse().unwrap(), now);
        assert_eq!(
            got,
            json!([
                {"urls": ["stun:stun.example.org:3478"]},
                {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
                 "username": format!("1700003600:{PARTICIPANT}"), "credential": "6RCNjvwUeJz+h5P+hCGsjTudx5k="},
            ])
        );
    }

    #[test]
    fn nothing_configured_is_an_empty_list_and_stun_alone_has_no_credential() {
        let id = Uuid::now_v7();
        assert_eq!(IceServers::new(&config(&[], &[], None)).for_participant(id, SystemTime::now()), json!([]));
        let stun = IceServers::new(&config(&["stun:a:3478", "stun:b:3478"], &[], Some("unused")));
        assert_eq!(stun.for_participant(id, SystemTime::now()), json!([{"urls": ["stun:a:3478", "stun:b:3478"]}]));
    }
}
