//! Active-speaker detection from the RFC 6464 audio level a sender puts in each audio packet.
//!
//! The level is in -dBov (0 is the loudest, -127 silence). A frame counts as voice when the
//! smoothed level is above a threshold and the sender did not flag it as non-voice; a
//! participant is speaking while voice was heard within the last `hold`. Changes are reported
//! at most once per `min_interval` per participant, so a stuttering talker does not flood the
//! signaling channel with `participant-status-updated`.

use std::time::{Duration, Instant};

/// Tuning of the detector.
#[derive(Debug, Clone, Copy)]
pub struct SpeakerConfig {
    /// Smoothed level (dBov, -127..=0) at or above which a frame counts as voice.
    pub threshold_dbov: f32,
    /// How long a participant stays "speaking" after the last voiced frame.
    pub hold: Duration,
    /// Minimum time between two reported changes of one participant.
    pub min_interval: Duration,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            threshold_dbov: -50.0,
            hold: Duration::from_millis(800),
            min_interval: Duration::from_millis(400),
        }
    }
}

/// Weight of the newest frame in the exponential moving average of the level. Opus frames are
/// 20 ms, so this smooths over roughly 100 ms and ignores a single click.
const SMOOTHING: f32 = 0.3;

/// Speaking state of one audio track.
#[derive(Debug, Clone)]
pub struct SpeakerDetector {
    config: SpeakerConfig,
    /// Exponential moving average of the level, dBov.
    smoothed: f32,
    /// When the last voiced frame arrived.
    last_voice: Option<Instant>,
    /// The state last reported to the room.
    reported: bool,
    /// When a change was last reported, for rate limiting.
    last_report: Option<Instant>,
}

impl SpeakerDetector {
    /// A detector for a silent track.
    pub fn new(config: SpeakerConfig) -> Self {
        SpeakerDetector { config, smoothed: -127.0, last_voice: None, reported: false, last_report: None }
    }

    /// Feeds one frame's audio level (`-127..=0` dBov) and the optional voice-activity flag.
    pub fn on_level(&mut self, level_dbov: i8, voice_activity: Option<bool>, now: Instant) {
        let level = f32::from(level_dbov.clamp(-127, 0));
        self.smoothed = self.smoothed * (1.0 - SMOOTHING) + level * SMOOTHING;
        if self.smoothed >= self.config.threshold_dbov && voice_activity != Some(false) {
            self.last_voice = Some(now);
        }
    }

    /// Whether voice was heard recently, regardless of rate limiting.
    fn heard(&self, now: Instant) -> bool {
        self.last_voice.is_some_and(|t| now.saturating_duration_since(t) < self.config.hold)
    }

    /// The state last reported.
    pub fn speaking(&self) -> bool {
        self.reported
    }

    /// Returns the new state when it changed and the rate limit allows reporting it.
    pub fn poll_change(&mut self, now: Instant) -> Option<bool> {
        let heard = self.heard(now);
        if heard == self.reported {
            return None;
        }
        if let Some(last) = self.last_report
            && now < last + self.config.min_interval
        {
            return None;
        }
        self.reported = heard;
        self.last_report = Some(now);
        Some(heard)
    }

    /// When [`poll_change`](Self::poll_change) may next return a change without new input.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let heard = self.heard(now);
        let allowed = self.last_report.map(|t| t + self.config.min_interval);
        if heard != self.reported {
            // A change is pending, held back by the rate limit.
            return Some(allowed.unwrap_or(now).max(now));
        }
        if heard {
            // Speaking ends when the hold expires without new voice.
            let ends = self.last_voice.map(|t| t + self.config.hold)?;
            return Some(allowed.map_or(ends, |a| a.max(ends)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds 20 ms frames of `level` from `from` for `count` frames, collecting reported changes.
    fn feed(d: &mut SpeakerDetector, from: Instant, count: u32, level: i8) -> Vec<bool> {
        let mut changes = vec![];
        for i in 0..count {
            let now = from + ms(20) * i;
            d.on_level(level, None, now);
            changes.extend(d.poll_change(now));
        }
        changes
    }

    #[test]
    fn loud_speech_starts_and_silence_ends_speaking() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        assert_eq!(feed(&mut d, t0, 25, -20), vec![true]);
        assert!(d.speaking());
        // Silence: still speaking within the hold, then the change is due at the timeout.
        let silent_from = t0 + ms(500);
        assert_eq!(feed(&mut d, silent_from, 10, -127), Vec::<bool>::new());
        let due = d.poll_timeout(silent_from + ms(200)).expect("a pending end of speech");
        assert!(due <= silent_from + SpeakerConfig::default().hold + ms(20), "{:?}", due - t0);
        assert_eq!(d.poll_change(due), Some(false));
        assert_eq!(d.poll_timeout(due), None);
    }

    #[test]
    fn background_noise_and_single_clicks_are_not_speech() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        assert!(feed(&mut d, t0, 50, -70).is_empty());
        // One loud frame among quiet ones is smoothed away.
        d.on_level(-10, None, t0 + ms(1000));
        assert_eq!(d.poll_change(t0 + ms(1000)), None);
        // A loud frame the sender marks as non-voice is ignored.
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        for i in 0..10 {
            d.on_level(-10, Some(false), t0 + ms(20) * i);
        }
        assert_eq!(d.poll_change(t0 + ms(200)), None);
    }

    #[test]
    fn changes_are_rate_limited() {
        let t0 = Instant::now();
        let cfg = SpeakerConfig { hold: ms(100), min_interval: ms(400), ..SpeakerConfig::default() };
        let mut d = SpeakerDetector::new(cfg);
        let mut reports = vec![];
        // Alternate 120 ms of speech and 200 ms of silence for 3 s.
        let mut now = t0;
        while now < t0 + ms(3000) {
            let phase = (now - t0).as_millis() % 320;
            d.on_level(if phase < 120 { -15 } else { -127 }, None, now);
            if let Some(c) = d.poll_change(now) {
                reports.push(now);
                assert_eq!(c, d.speaking());
            }
            now += ms(20);
        }
        assert!(reports.len() >= 2, "some changes must be reported: {reports:?}");
        for w in reports.windows(2) {
            assert!(w[1] - w[0] >= ms(400), "reports closer than the interval: {reports:?}");
        }
    }
}
