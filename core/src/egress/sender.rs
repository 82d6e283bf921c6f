//! One output = one thread with its own bounded queue. Nothing an output does can block the encoder or
//! another output: the encoder only ever appends to queues (dropping when one is full), and every blocking
//! FFmpeg call of the thread is bounded by its [`super::muxer::Watchdog`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ffmpeg_next::Rational;
use parking_lot::{Condvar, Mutex};

use super::address::{self, AddressError, AddressPolicy};
use super::encoder::EncodedPacket;
use super::muxer::{MuxError, Muxer, OutputOptions, StreamSpec};
use super::status::{OutputState, OutputStatus, RateMeter, StatusSink};

/// Retry cadence after a failure: every `fast_interval` during `fast_period`, then growing by `factor`
/// from `slow_start` up to `max`. Retries go on for as long as the output exists.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay between attempts right after a failure.
    pub fast_interval: Duration,
    /// How long the fast cadence lasts, counted from the first failure.
    pub fast_period: Duration,
    /// First delay after the fast period.
    pub slow_start: Duration,
    /// Growth of the delay per attempt after the fast period.
    pub factor: f64,
    /// Longest delay.
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            fast_interval: Duration::from_secs(1),
            fast_period: Duration::from_secs(60),
            slow_start: Duration::from_secs(2),
            factor: 1.5,
            max: Duration::from_secs(30),
        }
    }
}

/// Backoff state of one output (pure: time is passed in).
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    failing_since: Option<Duration>,
    slow_delay: Duration,
    pub(crate) attempts: u32,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy) -> Self {
        let slow_delay = policy.slow_start;
        Backoff { policy, failing_since: None, slow_delay, attempts: 0 }
    }

    /// Delay before the next attempt, given a failure at `now`.
    pub(crate) fn on_failure(&mut self, now: Duration) -> Duration {
        self.attempts += 1;
        let since = *self.failing_since.get_or_insert(now);
        if now.saturating_sub(since) < self.policy.fast_period {
            return self.policy.fast_interval;
        }
        let delay = self.slow_delay;
        self.slow_delay = self.slow_delay.mul_f64(self.policy.factor).min(self.policy.max);
        delay
    }

    /// The output is live again.
    pub(crate) fn on_success(&mut self) {
        self.failing_since = None;
        self.slow_delay = self.policy.slow_start;
        self.attempts = 0;
    }
}

/// Packets waiting for one output.
pub(crate) struct OutputQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    packets: VecDeque<Arc<EncodedPacket>>,
    capacity: usize,
    /// The output is connected and wants packets; otherwise pushes are discarded (a reconnecting
    /// output starts again from a fresh keyframe, it does not replay old media).
    accepting: bool,
    /// After an overflow (or on connect): discard until the next video keyframe.
    waiting_keyframe: bool,
    /// No more packets will come: drain and finish.
    closed: bool,
    /// Video frames lost because this output was too slow.
    dropped_frames: u64,
}

pub(crate) enum Pop {
    Packet(Arc<EncodedPacket>),
    Idle,
    Closed,
}

impl OutputQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        OutputQueue {
            state: Mutex::new(QueueState {
                packets: VecDeque::with_capacity(capacity),
                capacity: capacity.max(2),
                accepting: false,
                waiting_keyframe: true,
                closed: false,
                dropped_frames: 0,
            }),
            wake: Condvar::new(),
        }
    }

    /// Called by the encoder side; never blocks on the output.
    pub(crate) fn push(&self, packet: &Arc<EncodedPacket>) {
        let mut s = self.state.lock();
        if s.closed || !s.accepting {
            return;
        }
        if s.packets.len() >= s.capacity {
            let lost = s.packets.iter().filter(|p| p.is_video()).count() as u64;
            s.dropped_frames += lost;
            s.packets.clear();
            s.waiting_keyframe = true;
        }
        if s.waiting_keyframe {
            if packet.is_video() && packet.keyframe {
                s.waiting_keyframe = false;
            } else {
                if packet.is_video() && s.dropped_frames > 0 {
                    s.dropped_frames += 1;
                }
                return;
            }
        }
        s.packets.push_back(Arc::clone(packet));
        drop(s);
        self.wake.notify_one();
    }

    pub(crate) fn pop(&self, wait: Duration) -> Pop {
        let mut s = self.state.lock();
        if s.packets.is_empty() && !s.closed {
            self.wake.wait_for(&mut s, wait);
        }
        match s.packets.pop_front() {
            Some(p) => Pop::Packet(p),
            None if s.closed => Pop::Closed,
            None => Pop::Idle,
        }
    }

    /// Starts (or stops) taking packets; a new connection starts at the next keyframe.
    pub(crate) fn set_accepting(&self, accepting: bool) {
        let mut s = self.state.lock();
        s.accepting = accepting;
        s.waiting_keyframe = true;
        s.packets.clear();
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    pub(crate) fn dropped_frames(&self) -> u64 {
        self.state.lock().dropped_frames
    }
}

/// Everything a sender thread needs.
pub(crate) struct SenderSetup {
    pub url: String,
    pub options: OutputOptions,
    /// For network outputs: which addresses the URL's host may resolve to, checked before every connect;
    /// the connection then goes to the checked address. `None` for files.
    pub address_policy: Option<AddressPolicy>,
    pub streams: Vec<StreamSpec>,
    pub queue: Arc<OutputQueue>,
    /// Set to interrupt any FFmpeg call of this output now.
    pub abort: Arc<AtomicBool>,
    /// Ask the encoder for a keyframe so a (re)connected output starts without waiting a whole GOP.
    pub keyframe_request: Arc<AtomicBool>,
    /// `None` for outputs that cannot be retried (a recording file would be truncated by reopening).
    pub reconnect: Option<ReconnectPolicy>,
    pub status: Arc<Mutex<OutputStatus>>,
    pub sink: StatusSink,
}

/// What a sender thread reports when it ends.
#[derive(Debug, Default)]
pub(crate) struct SenderSummary {
    /// Payload bytes written over all connections.
    pub bytes: u64,
    /// Media time written (end of last packet, first connection's timeline), for recordings.
    pub media_duration: Duration,
}

fn to_micros(ts: i64, tb: Rational) -> i64 {
    (ts as i128 * tb.numerator() as i128 * 1_000_000 / tb.denominator().max(1) as i128) as i64
}

fn from_micros(us: i64, tb: Rational) -> i64 {
    (us as i128 * tb.denominator() as i128 / (1_000_000 * tb.numerator().max(1) as i128)) as i64
}

struct Sender {
    setup: SenderSetup,
    started: Instant,
    meter: RateMeter,
    bytes_total: u64,
}

impl Sender {
    fn publish(&self, change: impl FnOnce(&mut OutputStatus)) {
        let snapshot = {
            let mut s = self.setup.status.lock();
            change(&mut s);
            s.dropped_frames = self.setup.queue.dropped_frames();
            s.clone()
        };
        (self.setup.sink)(&snapshot);
    }

    /// Sleeps up to `delay`, returning early (true) if the output is being stopped.
    fn sleep_unless_stopped(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if self.setup.queue.is_closed() || self.setup.abort.load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
        }
        false
    }

    fn run(mut self) -> SenderSummary {
        let mut backoff = self.setup.reconnect.clone().map(Backoff::new);
        let mut summary = SenderSummary::default();
        loop {
            if self.setup.abort.load(Ordering::Acquire) || self.setup.queue.is_closed() {
                break;
            }
            // Accept packets before connecting so the keyframe requested below is not missed.
            self.setup.queue.set_accepting(true);
            let attempt = backoff.as_ref().map_or(0, |b| b.attempts);
            let failure = match self.connect(attempt) {
                Ok(muxer) => {
                    if let Some(b) = backoff.as_mut() {
                        b.on_success();
                    }
                    self.setup.keyframe_request.store(true, Ordering::Release);
                    self.publish(|s| {
                        s.state = OutputState::Live;
                        s.connects += 1;
                        s.uptime_secs = 0;
                    });
                    tracing::info!(target = %self.target(), "output live");
                    let session_start = Instant::now();
                    match self.session(muxer, &mut summary) {
                        Ok(()) => break,
                        Err(mut e) if session_start.elapsed() < Duration::from_secs(3) && e.detail.is_empty() => {
                            // Typical of a refused stream key: the server accepts the connection, then
                            // hangs up after the publish request.
                            e.detail =
                                "the server closed the connection right after publish: stream key refused?".into();
                            Failure::from(e)
                        }
                        Err(e) => Failure::from(e),
                    }
                }
                Err(f) => f,
            };
            self.setup.queue.set_accepting(false);
            if self.setup.abort.load(Ordering::Acquire) || self.setup.queue.is_closed() {
                break;
            }
            let Failure { reason, permanent } = failure;
            match backoff.as_mut() {
                Some(b) if !permanent => {
                    let delay = b.on_failure(self.started.elapsed());
                    let attempt = b.attempts;
                    tracing::warn!(target = %self.target(), %reason, attempt, "output failed, retrying");
                    self.publish(|s| {
                        s.state = OutputState::Reconnecting { reason, attempt, retry_in_ms: delay.as_millis() as u64 };
                        s.bitrate_kbps = 0;
                        s.uptime_secs = 0;
                    });
                    if self.sleep_unless_stopped(delay) {
                        break;
                    }
                }
                _ => {
                    tracing::error!(target = %self.target(), %reason, "output failed");
                    self.publish(|s| {
                        s.state = OutputState::Failed { reason };
                        s.bitrate_kbps = 0;
                    });
                    summary.bytes = self.bytes_total;
                    return summary;
                }
            }
        }
        self.setup.queue.set_accepting(false);
        summary.bytes = self.bytes_total;
        self.publish(|s| {
            s.state = OutputState::Stopped;
            s.bitrate_kbps = 0;
        });
        summary
    }

    fn target(&self) -> String {
        self.setup.status.lock().target.clone()
    }

    /// Opens the output; a network output first has its host resolved and checked, and connects to the
    /// checked address.
    fn connect(&self, attempt: u32) -> Result<Muxer, Failure> {
        let abort = Arc::clone(&self.setup.abort);
        let Some(policy) = self.setup.address_policy else {
            return Muxer::open(&self.setup.url, &self.setup.streams, &self.setup.options, abort)
                .map_err(Failure::from);
        };
        let pinned = address::pin(&self.setup.url, policy, attempt, self.setup.options.open_timeout)
            .map_err(|e| Failure { permanent: !matches!(e, AddressError::Dns(_)), reason: e.to_string() })?;
        let mut options = self.setup.options.clone();
        options.io.extend(pinned.io);
        Muxer::open(&pinned.url, &self.setup.streams, &options, abort).map_err(Failure::from)
    }

    /// Writes packets until the queue is closed (Ok) or the connection fails (Err).
    fn session(&mut self, mut muxer: Muxer, summary: &mut SenderSummary) -> Result<(), MuxError> {
        let live_since = Instant::now();
        let mut last_report = Instant::now();
        let mut offset_us: Option<i64> = None;
        self.meter.reset();
        let session_base = self.bytes_total;
        loop {
            match self.setup.queue.pop(Duration::from_millis(200)) {
                Pop::Packet(packet) => {
                    let tb = self.setup.streams[packet.stream_index].time_base;
                    let base = *offset_us.get_or_insert_with(|| to_micros(packet.dts, tb));
                    let offset = from_micros(base, tb);
                    if packet.dts < offset {
                        continue;
                    }
                    muxer.write(&packet, offset)?;
                    self.bytes_total = session_base + muxer.bytes_written;
                    let end = Duration::from_micros(to_micros(packet.pts + packet.duration, tb).max(0) as u64);
                    summary.media_duration = summary.media_duration.max(end);
                }
                Pop::Closed => {
                    let result = muxer.finish();
                    return result;
                }
                Pop::Idle => {}
            }
            if self.setup.abort.load(Ordering::Acquire) {
                // Stop now: the watchdog makes this close return at once.
                drop(muxer);
                return Ok(());
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let kbps = self.meter.update(self.started.elapsed(), self.bytes_total - session_base);
                let uptime = live_since.elapsed().as_secs();
                self.publish(|s| {
                    s.bitrate_kbps = kbps;
                    s.uptime_secs = uptime;
                });
            }
        }
    }
}

/// Why a connection attempt or a session ended, and whether trying again could help.
struct Failure {
    reason: String,
    permanent: bool,
}

impl From<MuxError> for Failure {
    fn from(e: MuxError) -> Failure {
        let permanent = matches!(
            e.error,
            ffmpeg_next::Error::ProtocolNotFound | ffmpeg_next::Error::MuxerNotFound | ffmpeg_next::Error::InvalidData
        ) && e.op == "open";
        Failure { reason: e.to_string(), permanent }
    }
}

/// Starts the thread of one output.
pub(crate) fn spawn(setup: SenderSetup, name: &str) -> std::io::Result<std::thread::JoinHandle<SenderSummary>> {
    let sender = Sender { setup, started: Instant::now(), meter: RateMeter::default(), bytes_total: 0 };
    std::thread::Builder::new().name(format!("egress-{name}")).spawn(move || sender.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(keyframe: bool) -> Arc<EncodedPacket> {
        Arc::new(EncodedPacket { stream_index: 0, data: vec![0; 10], pts: 0, dts: 0, duration: 1, keyframe })
    }

    #[test]
    fn backoff_is_fast_for_a_minute_then_grows_to_30s() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        let t = |s: u64| Duration::from_secs(s);
        assert_eq!(b.on_failure(t(100)), t(1));
        assert_eq!(b.on_failure(t(130)), t(1));
        assert_eq!(b.on_failure(t(159)), t(1));
        let slow: Vec<Duration> = (0..12).map(|i| b.on_failure(t(160 + i))).collect();
        assert_eq!(slow[0], t(2));
        assert_eq!(slow[1], Duration::from_secs(3));
        assert_eq!(slow[2], Duration::from_millis(4500));
        assert!(slow.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*slow.last().unwrap(), t(30));
        b.on_success();
        assert_eq!(b.on_failure(t(1000)), t(1));
    }

    #[test]
    fn overflow_drops_own_queue_until_next_keyframe() {
        let q = OutputQueue::new(4);
        q.set_accepting(true);
        q.push(&video(false)); // before the first keyframe: discarded
        q.push(&video(true));
        for _ in 0..3 {
            q.push(&video(false));
        }
        assert_eq!(q.state.lock().packets.len(), 4);
        q.push(&video(false)); // full: queue cleared, 4 frames lost, this one too
        assert_eq!(q.dropped_frames(), 5);
        q.push(&video(false));
        assert_eq!(q.dropped_frames(), 6);
        assert!(q.state.lock().packets.is_empty());
        q.push(&video(true));
        assert_eq!(q.state.lock().packets.len(), 1);
        assert_eq!(q.dropped_frames(), 6);
    }

    #[test]
    fn queue_ignores_packets_while_not_connected() {
        let q = OutputQueue::new(4);
        q.push(&video(true));
        assert!(matches!(q.pop(Duration::from_millis(1)), Pop::Idle));
        q.close();
        assert!(matches!(q.pop(Duration::from_millis(1)), Pop::Closed));
    }

    #[test]
    fn timestamps_convert_between_time_bases() {
        assert_eq!(to_micros(30, Rational(1, 30)), 1_000_000);
        assert_eq!(from_micros(1_000_000, Rational(1, 48_000)), 48_000);
    }
}
