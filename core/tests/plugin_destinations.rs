//! Destination adapters, called through the host: real-looking valid and invalid keys and URLs for
//! each platform, the ingest URLs and limits they return, and the custom RTMP adapter's refusal of
//! other schemes and private networks unless the operator allows them.

mod plugin_support;

use std::collections::BTreeMap;

use backyard_core::plugin_host::{DestinationError, HostConfig, OperatorSettings, PluginHost, PluginSettings};
use plugin_support::*;

/// (server URL, stream key, Ok(primary) or Err(field))
type Case = (&'static str, &'static str, Result<&'static str, &'static str>);

fn run_table(host: &PluginHost, platform: &str, cases: &[Case]) {
    for (server, key, want) in cases {
        let got = host.validate_destination(platform, server, key);
        match (want, got) {
            (Ok(primary), Ok(ingest)) => assert_eq!(&ingest.primary, primary, "{platform} {server} {key}"),
            (Err(field), Err(DestinationError::Field(f))) => {
                assert_eq!(&f.field, field, "{platform} {server} {key}: {}", f.message);
                assert!(!f.message.is_empty());
            }
            (want, got) => panic!("{platform} {server:?} {key:?}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn youtube() {
    let host = host(vec![plugins_dir()]);
    run_table(
        &host,
        "youtube",
        &[
            ("", "abcd-1234-efgh-5678-ijkl", Ok("rtmps://a.rtmps.youtube.com:443/live2/abcd-1234-efgh-5678-ijkl")),
            (
                "rtmp://a.rtmp.youtube.com/live2",
                "q7x2-9kfe-u3hw-0pzb-m4ta",
                Ok("rtmp://a.rtmp.youtube.com/live2/q7x2-9kfe-u3hw-0pzb-m4ta"),
            ),
            (
                "rtmps://a.rtmps.youtube.com:443/live2/",
                " q7x2-9kfe-u3hw-0pzb-m4ta ",
                Ok("rtmps://a.rtmps.youtube.com:443/live2/q7x2-9kfe-u3hw-0pzb-m4ta"),
            ),
            ("", "", Err("streamKey")),
            ("", "abcd-1234-efgh-5678", Err("streamKey")),
            ("", "live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123", Err("streamKey")),
            ("", "abcd-1234-efgh-5678-ij!l", Err("streamKey")),
            ("rtmp://evil.example.com/live2", "abcd-1234-efgh-5678-ijkl", Err("rtmpUrl")),
            ("https://a.rtmp.youtube.com/live2", "abcd-1234-efgh-5678-ijkl", Err("rtmpUrl")),
            ("rtmp://a.rtmp.youtube.com/live", "abcd-1234-efgh-5678-ijkl", Err("rtmpUrl")),
        ],
    );
    let ingest = host.validate_destination("youtube", "", "abcd-1234-efgh-5678-ijkl").unwrap();
    assert_eq!(
        ingest.backup.as_deref(),
        Some("rtmps://b.rtmps.youtube.com:443/live2?backup=1/abcd-1234-efgh-5678-ijkl")
    );
    assert_eq!((ingest.constraints.max_width, ingest.constraints.max_height), (3840, 2160));
    assert_eq!(ingest.constraints.video_codecs, vec!["h264"]);
}

#[test]
fn twitch() {
    let host = host(vec![plugins_dir()]);
    let key = "live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123";
    run_table(
        &host,
        "twitch",
        &[
            ("", key, Ok("rtmps://live.twitch.tv:443/app/live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123")),
            (
                "rtmp://live.twitch.tv/app",
                key,
                Ok("rtmp://live.twitch.tv/app/live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123"),
            ),
            (
                "rtmp://lhr03.contribute.live-video.net/app",
                key,
                Ok("rtmp://lhr03.contribute.live-video.net/app/live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123"),
            ),
            (
                "rtmp://live-fra.twitch.tv/app/",
                key,
                Ok("rtmp://live-fra.twitch.tv/app/live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123"),
            ),
            ("", "abcd-1234-efgh-5678-ijkl", Err("streamKey")),
            ("", "live_abc_AbCdEfGhIjKlMnOpQrStUvWxYz0123", Err("streamKey")),
            ("", "live_123456789_short", Err("streamKey")),
            ("", "live_123456789_AbCdEfGhIjKlMnOp QrStUvWx", Err("streamKey")),
            ("rtmp://twitch.tv.evil.com/app", key, Err("rtmpUrl")),
            ("rtmp://live.twitch.tv/live", key, Err("rtmpUrl")),
            ("srt://live.twitch.tv/app", key, Err("rtmpUrl")),
        ],
    );
    let c = host.validate_destination("twitch", "", key).unwrap().constraints;
    assert_eq!((c.max_video_kbps, c.max_keyframe_interval_s), (6000, 2));
}

#[test]
fn facebook() {
    let host = host(vec![plugins_dir()]);
    run_table(
        &host,
        "facebook",
        &[
            (
                "",
                "FB-123456789012345-0-AbCdEfGhIjKlMnOpQr",
                Ok("rtmps://live-api-s.facebook.com:443/rtmp/FB-123456789012345-0-AbCdEfGhIjKlMnOpQr"),
            ),
            (
                "rtmps://live-api-s.facebook.com:443/rtmp/",
                "FB-987654321098765-1-Zz9_y8-Xx7Ww6Vv5Uu4",
                Ok("rtmps://live-api-s.facebook.com:443/rtmp/FB-987654321098765-1-Zz9_y8-Xx7Ww6Vv5Uu4"),
            ),
            (
                "",
                "10158012345678901?s_bl=1&s_sc=10158012345678901&s_sw=0&s_vt=api-s&a=AbC123",
                Ok(
                    "rtmps://live-api-s.facebook.com:443/rtmp/10158012345678901?s_bl=1&s_sc=10158012345678901&s_sw=0&s_vt=api-s&a=AbC123",
                ),
            ),
            ("rtmp://live-api-s.facebook.com:80/rtmp/", "FB-123456789012345-0-AbCdEfGhIjKlMnOpQr", Err("rtmpUrl")),
            ("rtmps://live-api.example.com/rtmp/", "FB-123456789012345-0-AbCdEfGhIjKlMnOpQr", Err("rtmpUrl")),
            ("", "FB-12-0-AbCdEfGhIjKlMnOpQr", Err("streamKey")),
            ("", "abcd-1234-efgh-5678-ijkl", Err("streamKey")),
            ("", "", Err("streamKey")),
        ],
    );
}

fn rtmp_host(allow_private: bool) -> PluginHost {
    let mut destinations = BTreeMap::new();
    let block: PluginSettings =
        serde_json::from_value(serde_json::json!({"enabled": true, "allow-private-hosts": allow_private})).unwrap();
    destinations.insert("rtmp".to_string(), block);
    PluginHost::start(HostConfig {
        dirs: vec![plugins_dir()],
        settings: OperatorSettings { plugins: BTreeMap::new(), destinations },
        ..HostConfig::default()
    })
    .unwrap()
}

#[test]
fn custom_rtmp_rejects_other_schemes_and_private_networks_unless_allowed() {
    let host = rtmp_host(false);
    run_table(
        &host,
        "rtmp",
        &[
            ("rtmp://live.example.com/live", "mykey", Ok("rtmp://live.example.com/live/mykey")),
            ("rtmps://ingest.example.org:4443/app/", "k-1_2", Ok("rtmps://ingest.example.org:4443/app/k-1_2")),
            ("rtmp://live.example.com/live/inline-key", "", Ok("rtmp://live.example.com/live/inline-key")),
            ("http://live.example.com/live", "k", Err("rtmpUrl")),
            ("srt://live.example.com:9000", "k", Err("rtmpUrl")),
            ("file:///etc/passwd", "k", Err("rtmpUrl")),
            ("live.example.com/live", "k", Err("rtmpUrl")),
            ("rtmp://live.example.com", "k", Err("rtmpUrl")),
            ("", "k", Err("rtmpUrl")),
            ("rtmp://127.0.0.1/live", "k", Err("rtmpUrl")),
            ("rtmp://localhost:1935/live", "k", Err("rtmpUrl")),
            ("rtmp://10.0.0.5/live", "k", Err("rtmpUrl")),
            ("rtmp://192.168.1.20/live", "k", Err("rtmpUrl")),
            ("rtmp://172.16.3.4/live", "k", Err("rtmpUrl")),
            ("rtmp://[::1]/live", "k", Err("rtmpUrl")),
            ("rtmp://[fd12::1]/live", "k", Err("rtmpUrl")),
            ("rtmp://169.254.169.254/latest", "k", Err("rtmpUrl")),
            ("rtmp://encoder.local/live", "k", Err("rtmpUrl")),
            ("rtmp://user:pw@live.example.com/live", "k", Err("rtmpUrl")),
            ("rtmp://live.example.com/live", "bad key", Err("streamKey")),
            ("rtmp://live.example.com/live", "a/b", Err("streamKey")),
        ],
    );
    let msg = match host.validate_destination("rtmp", "rtmp://127.0.0.1/live", "k") {
        Err(DestinationError::Field(f)) => f.message,
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("private"), "{msg}");

    let allowed = rtmp_host(true);
    run_table(
        &allowed,
        "rtmp",
        &[
            ("rtmp://127.0.0.1:1935/live", "k", Ok("rtmp://127.0.0.1:1935/live/k")),
            ("rtmp://192.168.1.20/live", "k", Ok("rtmp://192.168.1.20/live/k")),
            ("http://127.0.0.1/live", "k", Err("rtmpUrl")),
        ],
    );
}

#[test]
fn adapters_report_their_platform() {
    let host = host(vec![plugins_dir()]);
    for p in ["youtube", "twitch", "facebook", "rtmp"] {
        let info = host.destination(p).unwrap().info().unwrap();
        assert_eq!(info.platform, p);
        assert!(!info.name.is_empty());
    }
}
