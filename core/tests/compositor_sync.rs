//! A/V sync over an hour of simulated media time: two sources whose clocks run 0.1 % fast and 0.1 % slow,
//! with network jitter, each flashing its picture and beeping on the same source instant every 10 s. The
//! program output (composed frames + mixed audio, from the sans-IO core only) must keep every flash and
//! its beep within 40 ms of each other.

use std::time::Duration;

use backyard_core::compositor::{Compositor, CompositorConfig, Fit, Placement, Rect, StageMember};
use backyard_core::egress::{SAMPLE_RATE, VideoFrame};

const FPS: u64 = 30;
const HOUR_TICKS: u64 = 3600 * FPS;
/// Frames between two flash+beep events (10 s).
const EVENT_EVERY_FRAMES: f64 = 300.0;
/// The flash lasts two frames; the beep as long (~67 ms).
const EVENT_FRAMES: f64 = 2.0;

/// A simulated participant: its own clock rate, a start offset and deterministic jitter.
struct Sim {
    rate: f64,
    /// Source clock reading (s) at program time 0.
    origin: f64,
    next_frame: u64,
    next_audio: u64,
    seed: u64,
}

impl Sim {
    fn jitter(&mut self) -> f64 {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.seed >> 33) % 25) as f64 / 1000.0
    }

    /// Is source time `t` inside an event? Events start exactly on a frame: flash and beep together.
    fn is_event(&self, t: f64) -> bool {
        let frame_pos = (t - self.origin) * FPS as f64 - 45.0;
        frame_pos >= 0.0 && frame_pos.rem_euclid(EVENT_EVERY_FRAMES) < EVENT_FRAMES
    }

    /// Emits everything this source captured up to program time `now`.
    fn feed(&mut self, c: &mut Compositor, now: f64) {
        let source_now = self.origin + now * self.rate;
        while self.origin + self.next_frame as f64 / FPS as f64 <= source_now {
            let st = self.origin + self.next_frame as f64 / FPS as f64;
            let y = if self.is_event(st) { 235 } else { 40 };
            let arrival = (st - self.origin) / self.rate + self.jitter();
            c.push_video("p", VideoFrame::filled(32, 18, [y, 128, 128]), secs(st), secs(arrival));
            self.next_frame += 1;
        }
        // Audio in 20 ms chunks, sent when captured.
        while self.origin + (self.next_audio + 960) as f64 / SAMPLE_RATE as f64 <= source_now {
            let st = self.origin + self.next_audio as f64 / SAMPLE_RATE as f64;
            let chunk: Vec<f32> = (0..960)
                .flat_map(|i| {
                    let v = if self.is_event(st + i as f64 / SAMPLE_RATE as f64) { 0.5 } else { 0.0 };
                    [v, v]
                })
                .collect();
            let arrival = (st + 960.0 / SAMPLE_RATE as f64 - self.origin) / self.rate + self.jitter();
            c.push_audio("p", &chunk, secs(st), secs(arrival));
            self.next_audio += 960;
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Runs an hour of program time; returns the A/V offset (beep onset - flash onset, s) of every event.
fn run_hour(rate: f64, origin: f64, seed: u64) -> Vec<f64> {
    let mut c = Compositor::new(CompositorConfig { width: 32, height: 18, ..Default::default() });
    c.set_stage(&[StageMember { id: "p".into(), name: "P".into() }]);
    c.set_placements(vec![Placement { source: "p".into(), rect: Rect::new(0, 0, 32, 18), z: 0, fit: Fit::Cover }])
        .unwrap();
    let mut sim = Sim { rate, origin, next_frame: 0, next_audio: 0, seed };
    let (mut flashes, mut beeps) = (Vec::new(), Vec::new());
    let (mut was_bright, mut was_loud) = (false, false);
    let mut sample_index: u64 = 0;
    for tick in 0..HOUR_TICKS {
        let now = tick as f64 / FPS as f64;
        sim.feed(&mut c, now);
        let frame = c.compose(secs(now));
        // A corner pixel: the name card shown before the first frame has a bright disc in the middle.
        let bright = frame.planes().0[2 * 32 + 2] > 150;
        if bright && !was_bright {
            flashes.push(now);
        }
        was_bright = bright;
        for pair in c.mix(secs((tick + 1) as f64 / FPS as f64)).chunks_exact(2) {
            let loud = pair[0].abs() > 0.25;
            if loud && !was_loud {
                beeps.push(sample_index as f64 / SAMPLE_RATE as f64);
            }
            was_loud = loud;
            sample_index += 1;
        }
    }
    assert!(flashes.len() >= 355, "{} flashes", flashes.len());
    assert_eq!(flashes.len(), beeps.len(), "flashes {flashes:?}\nbeeps {beeps:?}");
    flashes.iter().zip(&beeps).map(|(f, b)| b - f).collect()
}

#[test]
fn flash_and_beep_stay_within_40ms_over_an_hour_of_drifting_clocks() {
    for (rate, origin, seed) in [(1.001, 1234.5, 1), (0.999, 77.25, 2)] {
        let offsets = run_hour(rate, origin, seed);
        let worst = offsets.iter().map(|o| o.abs()).fold(0.0, f64::max);
        let last = offsets.last().copied().unwrap_or_default();
        println!(
            "clock x{rate}: {} events, worst A/V offset {:.1} ms, last {:.1} ms",
            offsets.len(),
            worst * 1e3,
            last * 1e3
        );
        assert!(worst <= 0.040, "clock x{rate}: worst A/V offset {:.1} ms", worst * 1e3);
    }
}
