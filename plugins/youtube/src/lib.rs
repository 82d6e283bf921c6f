//! YouTube Live. Keys look like `abcd-1234-efgh-5678-ijkl` (five groups of four letters or digits).
//! Ingest: `a.rtmp(s).youtube.com/live2` (primary) and `b.rtmp(s).youtube.com/live2?backup=1` (backup,
//! used only with redundant ingest). Limits follow YouTube's live encoder settings (up to 2160p60,
//! 51 Mb/s, keyframe every 2 s, at most 4 s).

use backyard_plugin_api::destination::*;
use backyard_plugin_api::url;

struct YouTube;

const DEFAULT_SERVER: &str = "rtmps://a.rtmps.youtube.com:443/live2";

impl Guest for YouTube {
    fn info() -> DestinationInfo {
        DestinationInfo {
            platform: "youtube".into(),
            name: "YouTube Live".into(),
            default_server_url: Some(DEFAULT_SERVER.into()),
        }
    }

    fn validate(req: IngestRequest) -> Result<Ingest, FieldError> {
        let key = clean_key(&req.stream_key)?;
        if !is_youtube_key(key) {
            return Err(field_error(
                "stream-key",
                "is not a YouTube stream key (five groups of four letters or digits, like abcd-1234-efgh-5678-ijkl)",
            ));
        }
        let server = if req.server_url.trim().is_empty() { DEFAULT_SERVER } else { req.server_url.trim() };
        let u = url::parse(server).map_err(|m| field_error("server-url", format!("server URL {m}")))?;
        let secure = match u.scheme.as_str() {
            "rtmps" => true,
            "rtmp" => false,
            other => return Err(field_error("server-url", format!("must be rtmp:// or rtmps://, not {other}://"))),
        };
        let (primary_host, backup_host) = if secure {
            ("a.rtmps.youtube.com", "b.rtmps.youtube.com")
        } else {
            ("a.rtmp.youtube.com", "b.rtmp.youtube.com")
        };
        if u.host != primary_host && u.host != backup_host {
            return Err(field_error(
                "server-url",
                format!("is not a YouTube ingest server (use {scheme}://{primary_host}/live2)", scheme = u.scheme),
            ));
        }
        if u.segments() != ["live2"] {
            return Err(field_error("server-url", "must end in /live2"));
        }
        let port = if secure { ":443" } else { "" };
        let base = |host: &str| format!("{}://{host}{port}/live2", u.scheme);
        Ok(Ingest {
            primary: join_key(&base(primary_host), key),
            backup: Some(format!("{}?backup=1/{key}", base(backup_host))),
            constraints: h264_aac_constraints(3840, 2160, 60, 51_000, 128, 4),
        })
    }
}

fn is_youtube_key(k: &str) -> bool {
    let groups: Vec<&str> = k.split('-').collect();
    groups.len() == 5 && groups.iter().all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_alphanumeric()))
}

backyard_plugin_api::export_destination!(YouTube);
