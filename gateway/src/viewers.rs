//! What viewers of a live show get from this server: who may watch ([`Visibility`], the broadcast's
//! `settings.watch`), and while the show is live its [`ViewerStream`]: the HLS folder egress cuts (from the
//! program's one encode, or from a relay's copied packets), the output that fans HTTP-FLV out to viewers, the
//! cache in front of them, and for the program its WebRTC viewers (WHEP: the encode's H.264 as it is, from
//! a track the media node publishes in the show's room of viewers). `api::watch` serves it; the program and
//! the RTMP relay make one when they go on air and end it when they come off.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backyard_core::egress::EgressControl;
use backyard_core::rtc::{LocalPublisher, MediaNode, PeerHandle, ProgramTrack, TrackSource};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::AppState;
use crate::store::Broadcast;

/// Who may watch a broadcast on this server's watch page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Nobody: no watch page, no HLS stream.
    Off,
    /// Anyone with the link.
    Unlisted,
    /// Anyone with the link, and listed on the server's watch page.
    Public,
}

impl Visibility {
    pub(crate) fn of(value: &serde_json::Value) -> Option<Visibility> {
        Visibility::deserialize(value).ok()
    }
}

/// The broadcast's `settings.watch` (`off` when absent; settings are checked when written, see
/// [`crate::api::watch::check_settings`]).
pub fn visibility(b: &Broadcast) -> Visibility {
    b.settings.0.get("watch").and_then(Visibility::of).unwrap_or(Visibility::Off)
}

/// The folder every show's HLS stream is written under (emptied at start-up: nobody plays those any more).
pub fn streams_root(data_dir: &Path) -> PathBuf {
    data_dir.join("hls")
}

/// The folder a broadcast going on air cuts its HLS stream into when viewers may watch it (emptied: a stream
/// left by an earlier show or a crash is not this one), or `None` when nobody may.
pub(crate) async fn folder(state: &AppState, broadcast: &Broadcast) -> Option<PathBuf> {
    if visibility(broadcast) == Visibility::Off {
        return None;
    }
    let dir = streams_root(&state.cfg.data_dir).join(broadcast.id.to_string());
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Some(dir)
}

/// A live show's stream for viewers, from when it goes on air until it comes off.
pub struct ViewerStream {
    /// The HLS folder egress writes (playlist, init segment, media segments).
    pub dir: PathBuf,
    /// The encode's (or relay's) outputs: HTTP-FLV viewers are added through it.
    pub control: EgressControl,
    pub cache: StreamCache,
    /// WebRTC viewers (WHEP), for the program's encode only (a relayed stream may carry B-frames).
    pub webrtc: Option<WebRtcViewers>,
}

impl ViewerStream {
    pub fn new(dir: PathBuf, control: EgressControl) -> ViewerStream {
        ViewerStream { dir, control, cache: StreamCache::default(), webrtc: None }
    }

    /// The program's stream: its WebRTC viewers watch the encode's video in `broadcast`'s room of viewers on
    /// `media`.
    pub fn of_program(
        dir: PathBuf,
        control: EgressControl,
        media: &MediaNode,
        broadcast: Uuid,
    ) -> Result<ViewerStream, backyard_core::egress::EgressError> {
        let room = viewers_room(broadcast);
        let track = Arc::new(media.publish_program(&room));
        control.set_video_tap(Some(ProgramTrack::h264_tap(track.clone())))?;
        // The program's sound, as Opus (WebRTC does not carry the encode's AAC), on a track of its own.
        let sound = media
            .publish_source(&room, "program", &[TrackSource::Microphone])
            .map_err(|e| backyard_core::egress::EgressError::Encoder(e.to_string()))?;
        let sound = Arc::new(sound);
        if let Err(e) = control.set_audio_tap(Some(LocalPublisher::opus_tap(sound.clone()))) {
            let _ = control.set_video_tap(None);
            return Err(e);
        }
        let webrtc =
            WebRtcViewers { media: media.clone(), room, _track: track, _sound: sound, sessions: Default::default() };
        Ok(ViewerStream { dir, control, cache: StreamCache::default(), webrtc: Some(webrtc) })
    }

    /// The show came off air: WebRTC viewers are let go and the encode's video is no longer handed out.
    pub fn end(&self) {
        if let Some(w) = &self.webrtc {
            let _ = self.control.set_video_tap(None);
            let _ = self.control.set_audio_tap(None);
            w.sessions.lock().clear();
        }
    }
}

/// The room a show's WebRTC viewers are in, apart from its studio.
pub fn viewers_room(broadcast: Uuid) -> String {
    format!("{broadcast}/viewers")
}

/// The WHEP viewers of a show on air: the media node's program track in the show's room of viewers, and
/// each viewer's media session by its resource id (dropping one ends it).
pub struct WebRtcViewers {
    pub media: MediaNode,
    pub room: String,
    /// Withdrawn when the last holder (this, and the encode's tap) lets go.
    _track: Arc<ProgramTrack>,
    /// The program's sound (Opus), withdrawn the same way.
    _sound: Arc<LocalPublisher>,
    pub sessions: parking_lot::Mutex<HashMap<Uuid, PeerHandle>>,
}

/// Segments (and the init segment) kept in memory per program: every viewer fetches the same few, and a
/// segment never changes once it is listed.
const CACHED_FILES: usize = 12;
/// What a stream's viewers fetch most: its latest segments, the playlist, and whether the show is open to
/// viewers.
#[derive(Default)]
pub struct StreamCache {
    files: parking_lot::Mutex<VecDeque<(String, Bytes)>>,
    pub(crate) open: Recent<bool>,
    pub(crate) playlist: Recent<Bytes>,
}

/// A value and when it was taken.
pub(crate) struct Recent<T>(parking_lot::Mutex<Option<(Instant, T)>>);

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent(parking_lot::Mutex::new(None))
    }
}

impl<T: Clone> Recent<T> {
    /// The value, if it was taken less than `ttl` ago.
    pub(crate) fn within(&self, ttl: Duration) -> Option<T> {
        self.0.lock().as_ref().filter(|(at, _)| at.elapsed() < ttl).map(|(_, v)| v.clone())
    }

    pub(crate) fn set(&self, value: T) {
        *self.0.lock() = Some((Instant::now(), value));
    }
}

impl StreamCache {
    pub(crate) fn file(&self, name: &str) -> Option<Bytes> {
        self.files.lock().iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
    }

    pub(crate) fn keep(&self, name: &str, bytes: Bytes) {
        let mut files = self.files.lock();
        if files.len() == CACHED_FILES {
            // The init segment stays: every new viewer needs it.
            if let Some(i) = files.iter().position(|(n, _)| n != "init.mp4") {
                files.remove(i);
            }
        }
        files.push_back((name.to_owned(), bytes));
    }
}
