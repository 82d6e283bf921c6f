//! Twitch. Keys look like `live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123`. Ingest: `live.twitch.tv/app`
//! (nearest server) or a regional `*.contribute.live-video.net/app` / `live-*.twitch.tv/app`, over RTMP
//! or RTMPS. Limits follow Twitch's broadcast guidelines: 1080p60, 6000 kb/s video, 160 kb/s audio,
//! keyframe every 2 s.

use backyard_plugin_api::destination::*;
use backyard_plugin_api::url;

struct Twitch;

const DEFAULT_SERVER: &str = "rtmps://live.twitch.tv:443/app";

impl Guest for Twitch {
    fn info() -> DestinationInfo {
        DestinationInfo {
            platform: "twitch".into(),
            name: "Twitch".into(),
            default_server_url: Some(DEFAULT_SERVER.into()),
        }
    }

    fn validate(req: IngestRequest) -> Result<Ingest, FieldError> {
        let key = clean_key(&req.stream_key)?;
        if !is_twitch_key(key) {
            return Err(field_error(
                "stream-key",
                "is not a Twitch stream key (live_ followed by your user id, _ and the secret)",
            ));
        }
        let server = if req.server_url.trim().is_empty() { DEFAULT_SERVER } else { req.server_url.trim() };
        let u = url::parse(server).map_err(|m| field_error("server-url", format!("server URL {m}")))?;
        if u.scheme != "rtmp" && u.scheme != "rtmps" {
            return Err(field_error("server-url", format!("must be rtmp:// or rtmps://, not {}://", u.scheme)));
        }
        let twitch_host = u.host == "live.twitch.tv"
            || (u.host.starts_with("live-") && u.host.ends_with(".twitch.tv"))
            || u.host.ends_with(".contribute.live-video.net");
        if !twitch_host {
            return Err(field_error("server-url", "is not a Twitch ingest server (use rtmps://live.twitch.tv/app)"));
        }
        if u.segments() != ["app"] {
            return Err(field_error("server-url", "must end in /app"));
        }
        let port = u.port.map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Ingest {
            primary: join_key(&format!("{}://{}{port}/app", u.scheme, u.host), key),
            backup: None,
            constraints: h264_aac_constraints(1920, 1080, 60, 6_000, 160, 2),
        })
    }
}

fn is_twitch_key(k: &str) -> bool {
    let Some(rest) = k.strip_prefix("live_") else { return false };
    let Some((user, secret)) = rest.split_once('_') else { return false };
    !user.is_empty()
        && user.chars().all(|c| c.is_ascii_digit())
        && (20..=40).contains(&secret.len())
        && secret.chars().all(|c| c.is_ascii_alphanumeric())
}

backyard_plugin_api::export_destination!(Twitch);
