//! What viewers of a live show get from this server: who may watch ([`Visibility`], the broadcast's
//! `settings.watch`), and while the show is live its [`ViewerStream`]: the HLS folder egress cuts (from the
//! program's one encode, or from a relay's copied packets), the output that fans HTTP-FLV out to viewers, and
//! the cache in front of them. `api::watch` serves it; the program and the RTMP relay make one when they go
//! on air and drop it when they come off.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backyard_core::egress::EgressControl;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

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
}

impl ViewerStream {
    pub fn new(dir: PathBuf, control: EgressControl) -> ViewerStream {
        ViewerStream { dir, control, cache: StreamCache::default() }
    }
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
