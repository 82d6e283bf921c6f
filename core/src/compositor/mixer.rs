//! Audio of one source on the program clock: a buffer indexed by source sample position and a reader that
//! follows the position the clock mapping asks for, by resampling slightly (drift) or jumping (gaps).

use std::collections::VecDeque;

use crate::media::SAMPLE_RATE;

/// Ratio correction per second of position error (steady-state error at 0.1 % drift: 2 ms).
const GAIN_PER_SECOND: f64 = 0.5;
/// Largest resampling correction (inaudible as pitch).
const MAX_CORRECTION: f64 = 0.02;
/// Errors beyond this are fixed by jumping instead of resampling.
const JUMP_SAMPLES: f64 = SAMPLE_RATE as f64 * 0.2;
/// Most audio buffered per source (older samples are dropped).
const MAX_BUFFER: usize = SAMPLE_RATE as usize * 4;

/// Buffered interleaved-stereo audio of one source, addressed by source sample index.
#[derive(Debug, Default)]
pub struct AudioTrack {
    buffer: VecDeque<[f32; 2]>,
    /// Source sample index of `buffer[0]`.
    start: i64,
    /// Source sample index (fractional) the next output sample reads from; `None` until playback starts.
    read: Option<f64>,
}

impl AudioTrack {
    /// Adds samples starting at source sample index `at`. A gap is filled with silence; audio that goes
    /// back in time restarts the buffer.
    pub fn push(&mut self, at: i64, interleaved: &[f32]) {
        let end = self.start + self.buffer.len() as i64;
        if self.buffer.is_empty() || at < end - (SAMPLE_RATE as i64 / 100) || at > end + SAMPLE_RATE as i64 {
            self.buffer.clear();
            self.start = at;
        } else if at > end {
            self.buffer.extend(std::iter::repeat_n([0.0, 0.0], (at - end) as usize));
        } else if at < end {
            // Small overlap (timestamp rounding): drop the overlapping part of the new chunk.
            let skip = ((end - at) as usize * 2).min(interleaved.len());
            return self.push(end, &interleaved[skip..]);
        }
        self.buffer.extend(interleaved.chunks_exact(2).map(|c| {
            let clean = |s: f32| if s.is_finite() { s } else { 0.0 };
            [clean(c[0]), clean(c[1])]
        }));
        while self.buffer.len() > MAX_BUFFER {
            self.buffer.pop_front();
            self.start += 1;
        }
    }

    /// Adds `frames` output frames to `out` (interleaved stereo, ×`gain`), reading around source sample
    /// `wanted` (where the clock says the first of them should come from).
    pub fn mix_into(&mut self, out: &mut [f32], wanted: f64, gain: f32) {
        let frames = out.len() / 2;
        let end = (self.start + self.buffer.len() as i64) as f64;
        let mut read = match self.read {
            Some(r) => r,
            // Start playing once this chunk reaches buffered audio (silence before it).
            None if wanted + frames as f64 > self.start as f64 && wanted < end => wanted,
            None => return,
        };
        let error = wanted - read;
        if error.abs() > JUMP_SAMPLES {
            read = wanted;
        }
        let correction = (error / SAMPLE_RATE as f64 * GAIN_PER_SECOND).clamp(-MAX_CORRECTION, MAX_CORRECTION);
        let step = 1.0 + if error.abs() > JUMP_SAMPLES { 0.0 } else { correction };
        for i in 0..frames {
            let pos = read - self.start as f64;
            if pos >= 0.0 {
                let i0 = pos.floor() as usize;
                let frac = (pos - i0 as f64) as f32;
                if let (Some(a), Some(b)) = (self.buffer.get(i0), self.buffer.get(i0 + 1).or(self.buffer.get(i0))) {
                    out[2 * i] += gain * (a[0] + (b[0] - a[0]) * frac);
                    out[2 * i + 1] += gain * (a[1] + (b[1] - a[1]) * frac);
                }
            }
            read += step;
        }
        self.read = Some(read);
        // Samples behind the read position (with one for interpolation) are done.
        let done = (read.floor() as i64 - 1 - self.start).clamp(0, self.buffer.len() as i64) as usize;
        self.buffer.drain(..done);
        self.start += done as i64;
    }

    /// Source sample index the reader is at.
    pub fn read_position(&self) -> Option<f64> {
        self.read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_what_was_pushed_at_the_wanted_position() {
        let mut t = AudioTrack::default();
        let ramp: Vec<f32> = (0..4800).flat_map(|i| [i as f32 / 4800.0, -(i as f32) / 4800.0]).collect();
        t.push(1000, &ramp);
        let mut out = vec![0.0; 960];
        t.mix_into(&mut out, 1100.0, 1.0);
        assert!((out[0] - 100.0 / 4800.0).abs() < 1e-6);
        assert!((out[1] + 100.0 / 4800.0).abs() < 1e-6);
        assert!((out[958] - 579.0 / 4800.0).abs() < 1e-6);
    }

    #[test]
    fn gap_is_silence_and_gain_applies() {
        let mut t = AudioTrack::default();
        t.push(0, &[0.5; 200]);
        t.push(200, &[0.5; 200]); // 100-frame gap after the first 100 frames
        let mut out = vec![0.0; 600];
        t.mix_into(&mut out, 0.0, 0.5);
        assert!((out[0] - 0.25).abs() < 1e-6);
        assert_eq!(out[2 * 150], 0.0);
        assert!((out[2 * 250] - 0.25).abs() < 1e-6);
    }
}
