//! One media clock: every source's timeline is mapped onto the program clock, so audio and video of a
//! participant play with the same delay, and a source clock that runs fast or slow is followed (the
//! mapping is re-estimated continuously) instead of accumulating drift.

use std::collections::VecDeque;
use std::time::Duration;

/// Estimates `program_time - source_time` for one source from arrivals.
///
/// Network jitter only ever delays arrivals, so the smallest offset seen recently is the best estimate of
/// the true one. Taking the minimum per one-second bucket over a few seconds follows a drifting clock
/// (the offset changes by ~1 ms/s at 0.1 % drift) while ignoring late packets.
#[derive(Debug, Default, Clone)]
pub struct SourceClock {
    /// (program second, smallest offset in µs seen during it), oldest first.
    buckets: VecDeque<(u64, i64)>,
}

impl SourceClock {
    /// Buckets kept: the estimate looks back this many seconds.
    const WINDOW: usize = 3;

    /// Records that media stamped `source` arrived at program time `arrival`.
    pub fn observe(&mut self, source: Duration, arrival: Duration) {
        let offset = arrival.as_micros() as i64 - source.as_micros() as i64;
        let second = arrival.as_secs();
        match self.buckets.back_mut() {
            Some((s, min)) if *s == second => *min = (*min).min(offset),
            Some((s, _)) if *s > second => {} // arrival times go backwards: ignore
            _ => {
                self.buckets.push_back((second, offset));
                while self.buckets.len() > Self::WINDOW {
                    self.buckets.pop_front();
                }
            }
        }
    }

    /// Current offset estimate in µs, once anything arrived.
    pub fn offset_us(&self) -> Option<i64> {
        self.buckets.iter().map(|(_, o)| *o).min()
    }

    /// Program time at which media stamped `source` should be presented, before the playout delay.
    pub fn to_program_us(&self, source: Duration) -> Option<i64> {
        self.offset_us().map(|o| source.as_micros() as i64 + o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_ignores_jitter_and_follows_drift() {
        let mut c = SourceClock::default();
        // Source clock 0.1 % fast, started 5 s before the program; arrivals 0–30 ms late.
        for i in 0..6000u64 {
            let program = Duration::from_millis(i * 10);
            let source = Duration::from_secs_f64(5.0 + program.as_secs_f64() * 1.001);
            let jitter = Duration::from_millis((i * 7919) % 31);
            c.observe(source, program + jitter);
        }
        // At program time 60 s the true offset is -5 s - 60 ms.
        let est = c.offset_us().unwrap();
        assert!((est - -5_060_000).abs() < 5_000, "estimate {est}");
    }
}
