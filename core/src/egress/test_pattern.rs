//! A generated source: colour bars with a moving box and a 1 kHz tone. Used to test a destination
//! (`POST .../destinations/:id/test`) and by the egress tests and benches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::encoder::{SAMPLE_RATE, VideoFrame};
use super::{Egress, EgressError};

/// 75 % colour bars in BT.601 limited-range Y, U, V: white, yellow, cyan, green, magenta, red, blue, black.
pub const BARS: [[u8; 3]; 8] = [
    [180, 128, 128],
    [162, 44, 142],
    [131, 156, 44],
    [112, 72, 58],
    [84, 184, 198],
    [65, 100, 212],
    [35, 212, 114],
    [16, 128, 128],
];

/// Generates frames and audio on one media clock.
pub struct TestPattern {
    background: VideoFrame,
    fps: u32,
    frames: u64,
    samples: u64,
    tone_hz: f32,
}

impl TestPattern {
    /// A pattern of this size (even sizes) at `fps`.
    pub fn new(width: u32, height: u32, fps: u32) -> TestPattern {
        let mut background = VideoFrame::filled(width, height, BARS[7]);
        let (w, h) = (width as usize, height as usize);
        let bar = |x: usize| BARS[(x * BARS.len() / w.max(1)).min(BARS.len() - 1)];
        {
            let (y, u, v) = background.planes_mut();
            for row in 0..h {
                for x in 0..w {
                    y[row * w + x] = bar(x)[0];
                }
            }
            let cw = w.div_ceil(2);
            for row in 0..h.div_ceil(2) {
                for cx in 0..cw {
                    let c = bar(cx * 2);
                    u[row * cw + cx] = c[1];
                    v[row * cw + cx] = c[2];
                }
            }
        }
        TestPattern { background, fps: fps.max(1), frames: 0, samples: 0, tone_hz: 1000.0 }
    }

    /// Media time of the next frame.
    pub fn next_time(&self) -> Duration {
        Duration::from_secs_f64(self.frames as f64 / self.fps as f64)
    }

    /// The next frame (bars plus a grey box that moves one step per frame) and its media time.
    pub fn next_frame(&mut self) -> (VideoFrame, Duration) {
        let at = self.next_time();
        let mut frame = self.background.clone();
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let size = (h / 6).max(2) & !1;
        let x0 = ((self.frames as usize * 8) % w.saturating_sub(size).max(1)) & !1;
        let y0 = (h / 2).saturating_sub(size / 2) & !1;
        let (y, _, _) = frame.planes_mut();
        for row in y0..(y0 + size).min(h) {
            y[row * w + x0..row * w + (x0 + size).min(w)].fill(128);
        }
        self.frames += 1;
        (frame, at)
    }

    /// Tone samples (interleaved stereo) from where the last call stopped up to media time `until`.
    pub fn audio_until(&mut self, until: Duration) -> Vec<f32> {
        let end = (until.as_secs_f64() * SAMPLE_RATE as f64) as u64;
        let mut out = Vec::with_capacity(end.saturating_sub(self.samples) as usize * 2);
        while self.samples < end {
            let t = self.samples as f32 / SAMPLE_RATE as f32;
            let s = 0.25 * (2.0 * std::f32::consts::PI * self.tone_hz * t).sin();
            out.push(s);
            out.push(s);
            self.samples += 1;
        }
        out
    }

    /// Feeds `egress` in real time for `duration` (or until `stop` is set). Returns frames pushed.
    pub fn run_realtime(
        &mut self,
        egress: &mut Egress,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<u64, EgressError> {
        let start = Instant::now();
        let first = self.next_time();
        let mut pushed = 0;
        while !stop.load(Ordering::Acquire) {
            let media = self.next_time() - first;
            if media >= duration {
                break;
            }
            let wake = start + media;
            if let Some(wait) = wake.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let (frame, at) = self.next_frame();
            let audio = self.audio_until(at + Duration::from_secs_f64(1.0 / self.fps as f64));
            egress.push_video(&frame, at)?;
            egress.push_audio(&audio)?;
            pushed += 1;
        }
        Ok(pushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_audio_share_one_clock() {
        let mut p = TestPattern::new(64, 36, 30);
        let (f0, t0) = p.next_frame();
        let (f1, t1) = p.next_frame();
        assert_eq!(t0, Duration::ZERO);
        assert_eq!(t1, Duration::from_secs_f64(1.0 / 30.0));
        assert_ne!(f0, f1, "the box moves");
        assert_eq!(f0.planes().0[0], BARS[0][0]);
        assert_eq!(p.audio_until(Duration::from_secs(1)).len(), 96_000);
        assert_eq!(p.audio_until(Duration::from_secs(1)).len(), 0);
    }
}
