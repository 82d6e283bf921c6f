//! Facebook Live. Facebook accepts RTMPS only, at `rtmps://live-api-s.facebook.com:443/rtmp/`. Keys look
//! like `FB-123456789012345-0-AbCdEf...` (persistent and per-event keys); older keys are a numeric id
//! followed by `?s_...` parameters. Limits follow Facebook's live video specs: up to 1080p60, 9000 kb/s
//! video, 128 kb/s AAC, keyframe at most every 2 s.

use backyard_plugin_api::destination::*;
use backyard_plugin_api::url;

struct Facebook;

const SERVER: &str = "rtmps://live-api-s.facebook.com:443/rtmp";

impl Guest for Facebook {
    fn info() -> DestinationInfo {
        DestinationInfo {
            platform: "facebook".into(),
            name: "Facebook Live".into(),
            default_server_url: Some(format!("{SERVER}/")),
        }
    }

    fn validate(req: IngestRequest) -> Result<Ingest, FieldError> {
        let raw_key = req.stream_key.trim();
        let key = if raw_key.contains('?') { check_query_key(raw_key)? } else { clean_key(raw_key)? };
        if !raw_key.contains('?') && !is_fb_key(key) {
            return Err(field_error("stream-key", "is not a Facebook stream key (like FB-123456789012345-0-Ab1...)"));
        }
        let server = req.server_url.trim();
        if !server.is_empty() {
            let u = url::parse(server).map_err(|m| field_error("server-url", format!("server URL {m}")))?;
            if u.scheme == "rtmp" {
                return Err(field_error(
                    "server-url",
                    "Facebook accepts only RTMPS: use rtmps://live-api-s.facebook.com:443/rtmp/",
                ));
            }
            if u.scheme != "rtmps" {
                return Err(field_error("server-url", format!("must be rtmps://, not {}://", u.scheme)));
            }
            if u.host != "live-api-s.facebook.com" || u.segments() != ["rtmp"] {
                return Err(field_error(
                    "server-url",
                    "is not Facebook's ingest (rtmps://live-api-s.facebook.com:443/rtmp/)",
                ));
            }
        }
        Ok(Ingest {
            primary: join_key(SERVER, key),
            backup: None,
            constraints: h264_aac_constraints(1920, 1080, 60, 9_000, 128, 2),
        })
    }
}

fn is_fb_key(k: &str) -> bool {
    let parts: Vec<&str> = k.splitn(4, '-').collect();
    parts.len() == 4
        && parts[0] == "FB"
        && parts[1].len() >= 10
        && parts[1].chars().all(|c| c.is_ascii_digit())
        && !parts[2].is_empty()
        && parts[2].chars().all(|c| c.is_ascii_digit())
        && parts[3].len() >= 16
        && parts[3].chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Older keys: `<numeric id>?s_bl=1&s_sc=...&a=...`.
fn check_query_key(k: &str) -> Result<&str, FieldError> {
    let (id, query) = k.split_once('?').unwrap_or((k, ""));
    let ok = id.len() >= 10
        && id.chars().all(|c| c.is_ascii_digit())
        && query.split('&').all(|kv| kv.contains('=') && !kv.contains(char::is_whitespace))
        && query.split('&').any(|kv| kv.starts_with("s_") || kv.starts_with("a="));
    if ok { Ok(k) } else { Err(field_error("stream-key", "is not a Facebook stream key")) }
}

backyard_plugin_api::export_destination!(Facebook);
