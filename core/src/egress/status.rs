//! What the host sees of each output: state, bitrate, dropped frames, uptime.

use std::sync::Arc;
use std::time::Duration;

/// Where an output stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum OutputState {
    /// First connection attempt in progress.
    Connecting,
    /// Publishing.
    Live,
    /// The connection failed or dropped; retrying.
    #[serde(rename_all = "camelCase")]
    Reconnecting {
        /// Why the last attempt failed (redacted).
        reason: String,
        /// Failed attempts since the output was last live.
        attempt: u32,
        /// Delay before the next attempt.
        retry_in_ms: u64,
    },
    /// Gave up for a reason retrying cannot fix (bad URL, unsupported protocol, disk error).
    Failed {
        /// What went wrong (redacted).
        reason: String,
    },
    /// Stopped by the host (end of broadcast or removed).
    Stopped,
}

/// Kind of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputKind {
    /// An RTMP/RTMPS destination.
    Destination,
    /// The fMP4 recording.
    Recording,
    /// The HLS stream viewers of the watch page play (CMAF segments in a folder).
    Hls,
    /// One viewer reading the program as FLV over HTTP (not reported: viewers come and go).
    Viewer,
}

/// A snapshot of one output, published on every change and once a second while live.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputStatus {
    /// The destination id given by the caller (the recording uses "recording").
    pub id: String,
    /// Destination or recording.
    pub kind: OutputKind,
    /// The URL with the stream key redacted, or the recording path.
    pub target: String,
    /// Current state.
    #[serde(flatten)]
    pub state: OutputState,
    /// Bitrate actually sent over the last few seconds, kb/s.
    pub bitrate_kbps: u32,
    /// Video frames this output lost because it was too slow (its own queue overflowed).
    pub dropped_frames: u64,
    /// Time live in the current connection, seconds.
    pub uptime_secs: u64,
    /// Successful connections so far (1 = never reconnected).
    pub connects: u32,
}

impl OutputStatus {
    pub(crate) fn new(id: &str, kind: OutputKind, target: String) -> Self {
        OutputStatus {
            id: id.to_owned(),
            kind,
            target,
            state: OutputState::Connecting,
            bitrate_kbps: 0,
            dropped_frames: 0,
            uptime_secs: 0,
            connects: 0,
        }
    }

    pub fn is_live(&self) -> bool {
        self.state == OutputState::Live
    }
}

/// Receives every status change. The gateway forwards these on the bus (`destination-status`) and into
/// metrics. Called from sender threads: keep it short and non-blocking (e.g. a channel send).
pub type StatusSink = Arc<dyn Fn(&OutputStatus) + Send + Sync>;

/// A sink that drops everything (for callers that poll [`super::Egress::statuses`] instead).
pub fn no_status_sink() -> StatusSink {
    Arc::new(|_| {})
}

/// Bitrate over a sliding window of per-second byte counts.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    samples: std::collections::VecDeque<(Duration, u64)>,
}

impl RateMeter {
    const WINDOW: Duration = Duration::from_secs(3);

    /// Records the running byte total at time `now` (any monotonic origin) and returns kb/s.
    pub(crate) fn update(&mut self, now: Duration, total_bytes: u64) -> u32 {
        self.samples.push_back((now, total_bytes));
        while self.samples.len() > 2 && now.saturating_sub(self.samples[0].0) > Self::WINDOW {
            self.samples.pop_front();
        }
        let (t0, b0) = self.samples[0];
        let dt = now.saturating_sub(t0).as_secs_f64();
        if dt < 0.2 {
            return 0;
        }
        (((total_bytes - b0.min(total_bytes)) as f64 * 8.0 / dt) / 1000.0).round() as u32
    }

    pub(crate) fn reset(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_reports_window_average() {
        let mut m = RateMeter::default();
        assert_eq!(m.update(Duration::ZERO, 0), 0);
        for s in 1..=10u64 {
            // 375 000 bytes a second = 3000 kb/s.
            let kbps = m.update(Duration::from_secs(s), s * 375_000);
            assert_eq!(kbps, 3000);
        }
    }

    #[test]
    fn status_serializes_for_the_studio() {
        let mut s = OutputStatus::new("d1", OutputKind::Destination, "rtmp://h/app/<redacted>".into());
        s.state = OutputState::Reconnecting { reason: "write: Broken pipe".into(), attempt: 2, retry_in_ms: 1000 };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["state"], "reconnecting");
        assert_eq!(json["reason"], "write: Broken pipe");
        assert_eq!(json["retryInMs"], 1000);
        assert_eq!(json["droppedFrames"], 0);
        assert_eq!(json["kind"], "destination");
    }
}
