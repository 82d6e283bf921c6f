//! Simulcast: what the router knows about each layer a publisher sends, and which layer each subscriber gets.
//!
//! A publisher may send its camera in up to [`MAX_LAYERS`] layers (RIDs, lowest first: about 1/4, 1/2 and full
//! resolution). Each subscriber gets one of them, chosen in two steps, both plain functions of their inputs:
//! - [`ceiling`]: the smallest layer at least as large as the size the subscriber renders the track at (the
//!   studio reports each tile's size; the program its tiles' rectangles). Larger layers would be wasted.
//! - [`allocate`]: within one subscriber's downlink estimate, every shown track gets at least its lowest sending
//!   layer, then tracks step up toward their ceilings while the total fits. Below the floor (not even the lowest
//!   layers fit) video pauses, cameras before screen shares. A step above what a track has now needs headroom
//!   ([`UPGRADE_HEADROOM`]), so a subscriber near a boundary does not flap between two layers.
//!
//! Switching happens only at a keyframe of the target layer ([`Room`](super::Room) keeps forwarding the current
//! one until then), so a switch never shows a broken picture.

use std::time::{Duration, Instant};

/// At most this many simulcast layers per track; a publisher offering more gets the extra ones refused.
pub const MAX_LAYERS: usize = 3;

/// A layer that sent nothing for this long is not sending (the publisher's encoder dropped it, e.g. on a
/// capped uplink); subscribers move off it and no keyframe is asked of it.
pub const LAYER_IDLE: Duration = Duration::from_millis(1000);

/// An upgrade must fit within the estimate divided by this.
pub const UPGRADE_HEADROOM: f64 = 1.25;

/// What is kept back for each audio track before video is allocated (Opus plus packet overhead), so audio is
/// never starved for video.
pub const AUDIO_RESERVE: u64 = 48_000;

/// How long a layer's bitrate is measured over.
const RATE_WINDOW: Duration = Duration::from_millis(1000);

/// One simulcast layer of a published track (the only layer, for a track without simulcast).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layer {
    /// Width and height from its latest keyframe, where the codec tells them cheaply (VP8).
    pub size: Option<(u16, u16)>,
    /// When its latest frame arrived.
    pub last_frame: Option<Instant>,
    /// Bits per second over the latest whole window.
    pub bitrate: u64,
    /// When a keyframe was last asked of this layer.
    pub last_keyframe_request: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
}

impl Layer {
    /// Counts a frame of `bytes`, with the size its keyframe header gave.
    pub fn on_frame(&mut self, bytes: usize, keyframe_size: Option<(u16, u16)>, now: Instant) {
        if keyframe_size.is_some() {
            self.size = keyframe_size;
        }
        self.last_frame = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            self.bitrate = (self.window_bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
    }

    /// Whether it sent a frame lately.
    pub fn sending(&self, now: Instant) -> bool {
        self.last_frame.is_some_and(|t| now.saturating_duration_since(t) < LAYER_IDLE)
    }
}

/// Width and height of a VP8 keyframe, read from its header (RFC 6386 §9.1); `None` for a delta frame or
/// anything else. Other codecs' layers are sized by their position (see [`ceiling`]).
pub fn vp8_keyframe_size(data: &[u8]) -> Option<(u16, u16)> {
    if data.len() < 10 || data[0] & 1 != 0 || data[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([data[6], data[7]]) & 0x3fff;
    let h = u16::from_le_bytes([data[8], data[9]]) & 0x3fff;
    (w > 0 && h > 0).then_some((w, h))
}

/// The heights the layers have: measured where known, otherwise halved per step down from the nearest known
/// layer (what every browser's simulcast does), or from 720p when none is known yet.
fn heights(layers: &[Layer]) -> [u32; MAX_LAYERS] {
    let n = layers.len().min(MAX_LAYERS);
    let known = layers.iter().take(n).enumerate().find_map(|(i, l)| l.size.map(|(_, h)| (i, u32::from(h))));
    let (ki, kh) = known.unwrap_or((n.saturating_sub(1), 720));
    let mut out = [0; MAX_LAYERS];
    for (i, slot) in out.iter_mut().enumerate().take(n) {
        *slot = match layers[i].size {
            Some((_, h)) => u32::from(h),
            None if i >= ki => kh << (i - ki),
            None => kh >> (ki - i),
        };
    }
    out
}

/// The best layer worth sending to a subscriber that renders the track at `render` (width, height in device
/// pixels): the smallest at least about as tall as the tile (a tenth less still looks the same), or the top
/// layer when none is. `None` when the track is not shown (a zero size); the top layer when the size is unknown.
pub fn ceiling(layers: &[Layer], render: Option<(u16, u16)>) -> Option<u8> {
    let n = layers.len().clamp(1, MAX_LAYERS);
    let top = (n - 1) as u8;
    let Some((w, h)) = render else { return Some(top) };
    if w == 0 || h == 0 {
        return None;
    }
    let heights = heights(layers);
    let need = u32::from(h) * 9 / 10;
    let need_w = u32::from(w) * 9 / 10;
    for (i, &lh) in heights.iter().enumerate().take(n) {
        let lw = layers[i].size.map_or(0, |(lw, _)| u32::from(lw));
        if lh >= need && (lw == 0 || lw >= need_w) {
            return Some(i as u8);
        }
    }
    Some(top)
}

/// One track a subscriber receives, as [`allocate`] sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    /// The best layer worth sending ([`ceiling`]); `None`: not shown, nothing is sent.
    pub ceiling: Option<u8>,
    /// Bits per second of each layer; only layers that are sending count.
    pub rates: [u64; MAX_LAYERS],
    /// Which layers are sending.
    pub sending: [bool; MAX_LAYERS],
    /// The layer the subscriber gets now.
    pub current: Option<u8>,
    /// May go above `current` (no downgrade for lack of bandwidth happened lately).
    pub may_upgrade: bool,
    /// Kept over others when bandwidth is short (a screen share: its text must stay readable).
    pub priority: bool,
}

/// A layer's bitrate for budgeting: measured, or a guess by position before a window has passed.
fn rate(want: &Want, layer: u8) -> u64 {
    const GUESS: [u64; MAX_LAYERS] = [150_000, 500_000, 1_500_000];
    let l = usize::from(layer);
    if want.rates[l] > 0 { want.rates[l] } else { GUESS[l] }
}

/// What a subscriber's link carries, bits per second: `now` (the latest estimate) bounds what it keeps; a step up
/// must fit in `sustained` (the lowest estimate of the last few seconds) with headroom, so one optimistic sample
/// does not start a layer the link cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub now: u64,
    pub sustained: u64,
}

impl Budget {
    /// The same figure for both.
    pub fn flat(bits_per_second: u64) -> Budget {
        Budget { now: bits_per_second, sustained: bits_per_second }
    }
}

/// Chooses a layer for each of one subscriber's tracks (`None`: paused) within `budget` (`None`: unknown,
/// every track gets its ceiling). See the [module docs](self).
pub fn allocate(budget: Option<Budget>, wants: &[Want]) -> Vec<Option<u8>> {
    // The lowest sending layer and the best sending layer at or below the ceiling (or the lowest sending above
    // it, when nothing below is sending).
    let bounds: Vec<Option<(u8, u8)>> = wants
        .iter()
        .map(|w| {
            let c = w.ceiling?;
            let sending: Vec<u8> = (0..MAX_LAYERS as u8).filter(|&l| w.sending[usize::from(l)]).collect();
            let low = *sending.first()?;
            let high = sending.iter().copied().filter(|&l| l <= c).max().unwrap_or(low);
            Some((low, high))
        })
        .collect();
    let mut chosen: Vec<Option<u8>> = bounds.iter().map(|b| b.map(|(low, _)| low)).collect();
    let Some(budget) = budget else {
        return bounds.iter().map(|b| b.map(|(_, high)| high)).collect();
    };
    let total =
        |chosen: &[Option<u8>]| -> u64 { chosen.iter().zip(wants).filter_map(|(c, w)| c.map(|l| rate(w, l))).sum() };
    // Below the floor: pause video, cameras before priority tracks, the last ones first.
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| (wants[i].priority, std::cmp::Reverse(i)));
    for &i in &order {
        if total(&chosen) <= budget.now {
            break;
        }
        chosen[i] = None;
    }
    // Step up, priority tracks first, one layer at a time round the tracks, while it fits.
    let mut ups: Vec<usize> = (0..wants.len()).filter(|&i| chosen[i].is_some()).collect();
    ups.sort_by_key(|&i| (!wants[i].priority, i));
    loop {
        let mut stepped = false;
        for &i in &ups {
            let (Some(now), Some((_, high))) = (chosen[i], bounds[i]) else { continue };
            let Some(next) = (now + 1..=high).find(|&l| wants[i].sending[usize::from(l)]) else { continue };
            let above_current = wants[i].current.is_none_or(|c| next > c);
            if above_current && !wants[i].may_upgrade {
                continue;
            }
            let limit = if above_current { (budget.sustained as f64 / UPGRADE_HEADROOM) as u64 } else { budget.now };
            let mut trial = chosen.clone();
            trial[i] = Some(next);
            if total(&trial) <= limit {
                chosen = trial;
                stepped = true;
            }
        }
        if !stepped {
            return chosen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(sizes: &[Option<(u16, u16)>]) -> Vec<Layer> {
        sizes.iter().map(|&size| Layer { size, ..Layer::default() }).collect()
    }

    fn three() -> Vec<Layer> {
        layers(&[Some((320, 180)), Some((640, 360)), Some((1280, 720))])
    }

    fn want(ceiling: u8, current: Option<u8>) -> Want {
        Want {
            ceiling: Some(ceiling),
            rates: [150_000, 500_000, 1_700_000],
            sending: [true; MAX_LAYERS],
            current,
            may_upgrade: true,
            priority: false,
        }
    }

    #[test]
    fn the_ceiling_is_the_smallest_layer_as_large_as_the_tile() {
        let l = three();
        assert_eq!(ceiling(&l, Some((640, 360))), Some(1), "a 2×2 tile at 720p takes the middle layer");
        assert_eq!(ceiling(&l, Some((1280, 720))), Some(2));
        assert_eq!(ceiling(&l, Some((200, 112))), Some(0));
        assert_eq!(ceiling(&l, Some((330, 190))), Some(0), "a tenth more than a layer still takes it");
        assert_eq!(ceiling(&l, Some((1920, 1080))), Some(2), "larger than any: the top");
        assert_eq!(ceiling(&l, Some((0, 0))), None, "hidden: nothing");
        assert_eq!(ceiling(&l, None), Some(2), "unknown: the top");
        assert_eq!(ceiling(&l, Some((700, 200))), Some(1), "a wide, short tile needs the width too");
        assert_eq!(ceiling(&layers(&[None]), Some((10, 10))), Some(0), "no simulcast: the one layer");
    }

    #[test]
    fn unknown_layer_sizes_are_halved_from_a_known_one() {
        // Only the middle layer's keyframe was seen (VP8 at 480×270): the others are 135 and 540 high.
        let l = layers(&[None, Some((480, 270)), None]);
        assert_eq!(heights(&l), [135, 270, 540]);
        assert_eq!(ceiling(&l, Some((400, 320))), Some(2));
        // Nothing known: from 720p down.
        assert_eq!(heights(&layers(&[None, None, None])), [180, 360, 720]);
    }

    #[test]
    fn vp8_keyframe_headers_give_the_size() {
        // Frame tag (keyframe, version 0, shown), start code, 14-bit width and height with scaling bits.
        let key = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x41, 0x00];
        assert_eq!(vp8_keyframe_size(&key), Some((640, 360)));
        let mut delta = key;
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_size(&delta), None);
        assert_eq!(vp8_keyframe_size(&key[..6]), None);
    }

    #[test]
    fn without_an_estimate_every_track_gets_its_ceiling() {
        assert_eq!(allocate(None, &[want(2, None), want(1, Some(0))]), [Some(2), Some(1)]);
    }

    #[test]
    fn a_capped_downlink_gets_the_layers_that_fit_and_pauses_below_the_floor() {
        let w = [want(2, Some(2)), want(2, Some(2))];
        assert_eq!(allocate(Some(Budget::flat(10_000_000)), &w), [Some(2), Some(2)]);
        // 600 kbit/s: both low layers (300k) fit, a middle one on top (650k) does not.
        assert_eq!(allocate(Some(Budget::flat(600_000)), &w), [Some(0), Some(0)]);
        // 1.2 Mbit/s: one track may be on the middle layer if it has it already; a step up needs headroom.
        let held = [want(2, Some(1)), want(2, Some(0))];
        assert_eq!(allocate(Some(Budget::flat(700_000)), &held), [Some(1), Some(0)], "keeps what it has");
        assert_eq!(
            allocate(Some(Budget::flat(700_000)), &[want(2, Some(0)), want(2, Some(0))]),
            [Some(0), Some(0)],
            "no step up"
        );
        // 200 kbit/s: only one low layer fits; the later camera pauses, a screen share is kept over a camera.
        assert_eq!(allocate(Some(Budget::flat(200_000)), &w), [Some(0), None]);
        let screen_last = [want(2, Some(0)), Want { priority: true, ..want(2, Some(0)) }];
        assert_eq!(allocate(Some(Budget::flat(200_000)), &screen_last), [None, Some(0)]);
        assert_eq!(allocate(Some(Budget::flat(50_000)), &w), [None, None]);
    }

    #[test]
    fn a_layer_that_stopped_sending_is_skipped_and_hidden_tracks_take_nothing() {
        let mut w = want(2, Some(2));
        w.sending = [true, true, false];
        assert_eq!(allocate(None, &[w]), [Some(1)], "the top stopped (capped uplink): the best one left");
        w.sending = [false, false, true];
        w.ceiling = Some(0);
        assert_eq!(allocate(None, &[w]), [Some(2)], "only a larger one is sending: that one");
        w.sending = [false; MAX_LAYERS];
        assert_eq!(allocate(None, &[w]), [None], "nothing sending");
        let hidden = Want { ceiling: None, ..want(2, Some(2)) };
        assert_eq!(allocate(Some(Budget::flat(10_000_000)), &[hidden, want(2, None)]), [None, Some(2)]);
    }

    #[test]
    fn a_step_up_needs_the_sustained_estimate_not_one_good_sample() {
        let w = [want(2, Some(0))];
        let spike = Budget { now: 5_000_000, sustained: 300_000 };
        assert_eq!(allocate(Some(spike), &w), [Some(0)]);
        let steady = Budget { now: 5_000_000, sustained: 3_000_000 };
        assert_eq!(allocate(Some(steady), &w), [Some(2)]);
        // What a track has is kept on the latest estimate alone.
        assert_eq!(allocate(Some(Budget { now: 2_000_000, sustained: 300_000 }), &[want(2, Some(2))]), [Some(2)]);
    }

    #[test]
    fn no_step_up_while_held_after_a_downgrade() {
        let held = Want { may_upgrade: false, ..want(2, Some(0)) };
        assert_eq!(allocate(Some(Budget::flat(10_000_000)), &[held]), [Some(0)]);
        let paused = Want { may_upgrade: false, ..want(2, None) };
        assert_eq!(allocate(Some(Budget::flat(10_000_000)), &[paused]), [Some(0)], "the floor is always allowed");
    }

    #[test]
    fn layer_rates_are_measured_over_a_window() {
        let t0 = Instant::now();
        let mut l = Layer::default();
        for i in 0..=30 {
            l.on_frame(2_000, None, t0 + Duration::from_millis(i * 1000 / 30));
        }
        // 31 frames of 16 kbit over one second: about 496 kbit/s.
        assert!((480_000..=520_000).contains(&l.bitrate), "{}", l.bitrate);
        assert!(l.sending(t0 + Duration::from_millis(1500)));
        assert!(!l.sending(t0 + Duration::from_millis(2100)));
    }
}
