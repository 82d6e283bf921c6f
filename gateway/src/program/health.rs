//! Whether the program keeps its frame rate: judged once per `program-status`, from the ticks the program
//! composed and skipped since the last one. Sans-IO (the caller passes the time), so the rules are tested on
//! simulated time.

use std::time::Duration;

use backyard_core::compositor::ProgramStats;
use serde::{Deserialize, Serialize};

/// A window that lost more than this share of its frames (skipped, or never ticked because the thread did not
/// run) is starved at once.
const SEVERE_LOSS: f64 = 0.2;
/// A window that lost more than this share is starved when the window before it did too: a start, a go-live or
/// an end costs a few ticks once, which is a hiccup, not a starved machine.
const MILD_LOSS: f64 = 0.05;

/// How the program is doing, as `program-status` says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramHealth {
    /// It composes every frame at its frame rate.
    #[default]
    Ok,
    /// It cannot keep its frame rate (the machine is short of CPU): it skips frames, so every output runs
    /// below its frame rate, whatever the outputs' own counters say.
    Starved,
}

/// One window's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Frames composed per second over the window.
    pub fps: f64,
    /// Ticks skipped in the window.
    pub skipped: u64,
    pub health: ProgramHealth,
}

/// Remembers the counters at the last judgement.
#[derive(Debug, Default)]
pub struct HealthWatch {
    last: Option<(Duration, u64, u64)>,
    /// The last window lost more than `MILD_LOSS`.
    lossy: bool,
}

impl HealthWatch {
    /// Judges the window since the last call, `now` on any monotonic clock. The first call only takes the
    /// counters as a baseline (a program that just started has composed nothing yet) and says `Ok`.
    pub fn observe(&mut self, now: Duration, stats: &ProgramStats, target_fps: u32) -> Window {
        let last = self.last.replace((now, stats.ticks, stats.skipped_ticks));
        let Some((then, ticks, skipped)) = last else {
            return Window { fps: f64::from(target_fps), skipped: 0, health: ProgramHealth::Ok };
        };
        let secs = now.saturating_sub(then).as_secs_f64();
        let ticks = stats.ticks.saturating_sub(ticks);
        let skipped = stats.skipped_ticks.saturating_sub(skipped);
        if secs <= 0.0 {
            return Window { fps: f64::from(target_fps), skipped, health: ProgramHealth::Ok };
        }
        let fps = ticks as f64 / secs;
        let expected = f64::from(target_fps) * secs;
        // Skipped ticks are counted when the thread runs again, so a stalled thread shows as missing ticks.
        let lost = ((skipped as f64).max(expected - ticks as f64) / expected).max(0.0);
        let lossy = lost > MILD_LOSS;
        let starved = lost > SEVERE_LOSS || (lossy && self.lossy);
        self.lossy = lossy;
        Window {
            fps: (fps * 10.0).round() / 10.0,
            skipped,
            health: if starved { ProgramHealth::Starved } else { ProgramHealth::Ok },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ticks: u64, skipped_ticks: u64) -> ProgramStats {
        ProgramStats { ticks, skipped_ticks, ..Default::default() }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_first_look_is_a_baseline() {
        let mut w = HealthWatch::default();
        let first = w.observe(S(0), &stats(3, 0), 30);
        assert_eq!(first.health, ProgramHealth::Ok);
        assert_eq!(first.skipped, 0);
    }

    #[test]
    fn a_program_at_its_frame_rate_is_ok_and_a_hiccup_is_forgiven() {
        let mut w = HealthWatch::default();
        w.observe(S(0), &stats(0, 0), 30);
        let steady = w.observe(S(2), &stats(60, 0), 30);
        assert_eq!((steady.fps, steady.skipped, steady.health), (30.0, 0, ProgramHealth::Ok));
        // Going live costs 9 ticks once (15 % of a window): a hiccup.
        let hiccup = w.observe(S(4), &stats(111, 9), 30);
        assert_eq!((hiccup.skipped, hiccup.health), (9, ProgramHealth::Ok));
        let steady = w.observe(S(6), &stats(171, 9), 30);
        assert_eq!(steady.health, ProgramHealth::Ok);
    }

    #[test]
    fn skipping_many_ticks_is_starved_at_the_next_look_and_ok_again_once_it_stops() {
        let mut w = HealthWatch::default();
        w.observe(S(0), &stats(0, 0), 30);
        w.observe(S(2), &stats(60, 0), 30);
        // Starved from second 2: the look at second 4 says so (at most one status period after it began).
        let starved = w.observe(S(4), &stats(100, 20), 30);
        assert_eq!((starved.fps, starved.skipped, starved.health), (20.0, 20, ProgramHealth::Starved));
        let recovered = w.observe(S(6), &stats(160, 20), 30);
        assert_eq!(recovered.health, ProgramHealth::Ok);
    }

    #[test]
    fn losing_a_few_ticks_in_two_windows_running_is_starved() {
        let mut w = HealthWatch::default();
        w.observe(S(0), &stats(0, 0), 30);
        let first = w.observe(S(2), &stats(56, 4), 30);
        assert_eq!(first.health, ProgramHealth::Ok, "one mildly lossy window");
        let second = w.observe(S(4), &stats(112, 8), 30);
        assert_eq!(second.health, ProgramHealth::Starved, "two in a row");
        let clean = w.observe(S(6), &stats(172, 8), 30);
        assert_eq!(clean.health, ProgramHealth::Ok);
        let lossy_again = w.observe(S(8), &stats(228, 12), 30);
        assert_eq!(lossy_again.health, ProgramHealth::Ok, "a clean window in between starts over");
    }

    #[test]
    fn a_thread_that_did_not_run_is_starved_before_it_counts_its_skips() {
        let mut w = HealthWatch::default();
        w.observe(S(0), &stats(0, 0), 30);
        // Half a window without a tick and without a skip counted yet (it counts them when it runs again).
        let stalled = w.observe(S(2), &stats(30, 0), 30);
        assert_eq!(stalled.health, ProgramHealth::Starved);
    }

    #[test]
    fn the_window_is_the_time_measured_not_the_period_asked_for() {
        let mut w = HealthWatch::default();
        w.observe(S(0), &stats(0, 0), 30);
        // The status task itself ran late: 3 s passed, 90 frames composed.
        let late = w.observe(S(3), &stats(90, 0), 30);
        assert_eq!((late.fps, late.health), (30.0, ProgramHealth::Ok));
        // Two looks in the same instant: nothing to judge.
        assert_eq!(w.observe(S(3), &stats(90, 0), 30).health, ProgramHealth::Ok);
    }
}
