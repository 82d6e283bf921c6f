//! Custom RTMP/RTMPS destination. The server URL must be `rtmp://` or `rtmps://` with a host; hosts
//! on loopback, private, link-local or local-only names are refused unless the operator sets
//! `allow-private-hosts = true` (so users cannot aim the server at its own network). The key is joined
//! to the URL; an empty key is allowed when the URL already carries it.

use backyard_plugin_api::destination::*;
use backyard_plugin_api::{host, url};

struct Rtmp;

impl Guest for Rtmp {
    fn info() -> DestinationInfo {
        DestinationInfo { platform: "rtmp".into(), name: "Custom RTMP server".into(), default_server_url: None }
    }

    fn validate(req: IngestRequest) -> Result<Ingest, FieldError> {
        let server = req.server_url.trim();
        if server.is_empty() {
            return Err(field_error("server-url", "is required"));
        }
        let u = url::parse(server).map_err(|m| field_error("server-url", format!("server URL {m}")))?;
        if u.scheme != "rtmp" && u.scheme != "rtmps" {
            return Err(field_error("server-url", format!("must be rtmp:// or rtmps://, not {}://", u.scheme)));
        }
        if u.segments().is_empty() {
            return Err(field_error("server-url", "needs an application path, like rtmp://host/live"));
        }
        if url::is_private_host(&u.host) && !host::config_flag("allow-private-hosts", false) {
            return Err(field_error(
                "server-url",
                format!("'{}' is on a private or local network; the operator has not allowed that", u.host),
            ));
        }
        let key = if req.stream_key.trim().is_empty() { "" } else { clean_key(&req.stream_key)? };
        let kbps = match host::config("max-video-kbps") {
            Some(host::ConfigValue::Integer(v)) => v.clamp(300, 100_000) as u32,
            _ => 6_000,
        };
        Ok(Ingest {
            primary: join_key(server, key),
            backup: None,
            constraints: h264_aac_constraints(1920, 1080, 60, kbps, 160, 2),
        })
    }
}

backyard_plugin_api::export_destination!(Rtmp);
