//! {{name}}: a Backyard destination adapter. It checks the server URL and stream key a host types for this
//! platform and tells Backyard where to send the program and what the platform accepts.
//!
//! Build: `cargo build --release --target wasm32-wasip2`. Test: `cargo test`.

use backyard_plugin_api::destination::*;
use backyard_plugin_api::url;

struct Plugin;

impl Guest for Plugin {
    fn info() -> DestinationInfo {
        DestinationInfo { platform: "{{name}}".into(), name: "{{title}}".into(), default_server_url: None }
    }

    fn validate(req: IngestRequest) -> Result<Ingest, FieldError> {
        check(&req)
    }
}

/// Validation: a pure function, so it is tested without a host.
pub fn check(req: &IngestRequest) -> Result<Ingest, FieldError> {
    let u = url::parse(&req.server_url).map_err(|m| field_error("server-url", format!("server URL {m}")))?;
    if u.scheme != "rtmp" && u.scheme != "rtmps" {
        return Err(field_error("server-url", "must start with rtmp:// or rtmps://"));
    }
    let key = clean_key(&req.stream_key)?;
    Ok(Ingest {
        primary: join_key(&req.server_url, key),
        backup: None,
        constraints: h264_aac_constraints(1920, 1080, 60, 6000, 160, 2),
    })
}

backyard_plugin_api::export_destination!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rtmp_and_rejects_http() {
        let ok = IngestRequest { server_url: "rtmp://live.example.com/app".into(), stream_key: "abc".into() };
        assert_eq!(check(&ok).unwrap().primary, "rtmp://live.example.com/app/abc");
        let bad = IngestRequest { server_url: "http://example.com".into(), stream_key: "abc".into() };
        assert_eq!(check(&bad).unwrap_err().field, "server-url");
    }
}
