//! The exchange's clock: a `tick` command sequenced when the log has been idle.
//!
//! The engine reads no clock; time enters only as each command's `ts_ns`. GTD
//! orders expire at the first command timestamped after their `good_till_ns`, so
//! on an exchange where nobody trades nothing would ever expire. The clock keeps
//! time moving: when no command has been sequenced for its interval, it submits
//! `{"v":3,"ts_ns":<now>,"command":{"type":"tick"}}` through the exchange's
//! ordinary [`Submitter`] (the embedded log, or the commands topic), so the
//! tick is in the log like any command and replay reproduces what it caused.
//!
//! Ticks never compete with real commands: one is submitted only after a whole
//! interval without any sequenced command, at most one is outstanding (submitted
//! but not yet sequenced), and a refused submission (a full queue) is simply
//! skipped. Stopping the clock wakes its thread at once and joins it; the pipeline
//! stops it first when it stops, then waits (at most [`CLOCK_DRAIN_WAIT`]) for the
//! clock's last tick to be sequenced, so a clean stop leaves none of its own ticks
//! unapplied in the log (in Kafka mode a standby would otherwise apply a tick the
//! stopped engine never did).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpux_engine::command::Tick;
use gpux_engine::{Command, CommandEnvelope, PROTOCOL_VERSION};

use crate::submit::Submitter;

/// Default idle interval, in milliseconds, after which the clock sequences a tick
/// (the one default of `clock_tick_ms` in every way to set it). A GTD order or a
/// gate closure is then late by at most about this much on an idle exchange, and
/// an idle exchange's log grows by one small command per interval.
pub const CLOCK_TICK_MS_DEFAULT: u64 = 1_000;

/// Longest a stopping clock waits for its last tick to be sequenced.
pub const CLOCK_DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How often a stopping clock looks whether its last tick was sequenced.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// When the engine last sequenced a command, and which tick it sequenced last:
/// written by the engine thread, read by the clock.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    last_ns: AtomicU64,
    last_tick_ts_ns: AtomicU64,
}

impl Activity {
    /// Activity "now": the clock's first tick is one interval after start.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            last_ns: AtomicU64::new(0),
            last_tick_ts_ns: AtomicU64::new(0),
        })
    }

    /// A tick stamped `ts_ns` (its envelope's, before the sequencer raises it) was
    /// just sequenced.
    pub(crate) fn ticked(&self, ts_ns: u64) {
        self.last_tick_ts_ns.store(ts_ns, Ordering::Release);
    }

    /// Whether the tick stamped `ts_ns`, or a later one, was sequenced.
    fn sequenced(&self, ts_ns: u64) -> bool {
        self.last_tick_ts_ns.load(Ordering::Acquire) >= ts_ns
    }

    /// A command was just sequenced.
    pub(crate) fn touch(&self) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.store(ns, Ordering::Release);
    }

    /// When a command was last sequenced.
    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_ns.load(Ordering::Acquire))
    }
}

/// A stop flag a sleeping thread is woken by.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Sleeps until `deadline` or a stop; false if stopped.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *stopped {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }
}

/// The running clock thread.
#[derive(Debug)]
pub(crate) struct Clock {
    stop: Arc<Stop>,
    activity: Arc<Activity>,
    thread: Option<JoinHandle<Option<u64>>>,
}

impl Clock {
    /// Starts the clock: a tick through `submitter` after every `every` without a
    /// sequenced command (as `activity` says).
    pub(crate) fn spawn(
        submitter: Arc<dyn Submitter>,
        time: ExchangeClock,
        every: Duration,
        activity: Arc<Activity>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(Stop::default());
        let (s, a) = (Arc::clone(&stop), Arc::clone(&activity));
        let thread = std::thread::Builder::new()
            .name("gpux-clock".into())
            .spawn(move || run(&*submitter, &time, every, &a, &s))?;
        tracing::info!(every_ms = every.as_millis() as u64, "clock ticking");
        Ok(Self {
            stop,
            activity,
            thread: Some(thread),
        })
    }

    /// Stops the thread (at once, even mid-interval) and joins it: no tick is
    /// submitted after this returns. With `drain`, then waits (at most
    /// [`CLOCK_DRAIN_WAIT`]) until the last tick it submitted is sequenced; the
    /// pipeline must still be running.
    pub(crate) fn stop(&mut self, drain: bool) {
        self.stop.stop();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let outstanding = thread.join().unwrap_or_else(|_| {
            tracing::error!("the clock thread panicked");
            None
        });
        let (Some(ts_ns), true) = (outstanding, drain) else {
            return;
        };
        let deadline = Instant::now() + CLOCK_DRAIN_WAIT;
        while !self.activity.sequenced(ts_ns) {
            if Instant::now() >= deadline {
                tracing::info!(
                    ts_ns,
                    "the clock's last tick is not sequenced yet; stopping anyway"
                );
                return;
            }
            std::thread::sleep(DRAIN_POLL);
        }
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// The clock's loop: sleep until the log has been idle for `every`, then tick,
/// unless the previous tick is not sequenced yet. Returns the timestamp of a tick
/// submitted and not (yet) known to be sequenced or refused.
fn run(
    submitter: &dyn Submitter,
    time: &ExchangeClock,
    every: Duration,
    activity: &Activity,
    stop: &Stop,
) -> Option<u64> {
    // Set when the submitter refuses the outstanding tick.
    let refused = Arc::new(AtomicBool::new(false));
    let mut outstanding: Option<u64> = None;
    let mut next = activity.last() + every;
    while stop.sleep_until(next) {
        if let Some(ts_ns) = outstanding {
            if activity.sequenced(ts_ns) || refused.load(Ordering::Acquire) {
                outstanding = None;
            }
        }
        let now = Instant::now();
        let last = activity.last();
        if last + every > now {
            next = last + every; // something was sequenced meanwhile
            continue;
        }
        next = now + every;
        if outstanding.is_some() {
            continue; // the last tick is still on its way: never pile them up
        }
        let ts_ns = time.now_ns();
        outstanding = Some(ts_ns);
        refused.store(false, Ordering::Release);
        let r = Arc::clone(&refused);
        submitter.submit(
            tick_payload(ts_ns),
            Box::new(move |result| {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a tick was not sequenced");
                    r.store(true, Ordering::Release);
                }
            }),
        );
    }
    outstanding.filter(|_| !refused.load(Ordering::Acquire))
}

/// A tick's command envelope, timestamped `ts_ns`.
pub fn tick_payload(ts_ns: u64) -> Vec<u8> {
    CommandEnvelope {
        v: PROTOCOL_VERSION,
        ts_ns,
        request_id: None,
        idempotent: false,
        command: Command::Tick(Tick {}),
    }
    .to_json()
    .into_bytes()
}

/// Most engine seconds per wall second an [`ExchangeClock`] may run (an hour a
/// second).
pub const TIME_SCALE_MAX: u32 = 3_600;

/// The time every submitter of one exchange stamps commands with: the wall clock,
/// or — for demos and tests, never for real trading — a clock running `scale`
/// times faster from the moment it started (so a newcomer sees an hour pass in a
/// minute at scale 60). Commands carry their stamps into the log, so the engine
/// and replay see only stamped times and are the same either way.
///
/// A faster clock starts at the later of the wall clock and the time already in
/// the ledger ([`not_before`](Self::not_before)), so a restarted demo goes on from
/// where it was instead of waiting for the wall clock to catch up. Clones share it.
#[derive(Debug, Clone)]
pub struct ExchangeClock {
    scale: u32,
    /// Wall clock (ns) when it started.
    origin_wall_ns: u64,
    /// Its time (ns) when it started.
    origin_ns: Arc<AtomicU64>,
}

impl PartialEq for ExchangeClock {
    /// The same clock: same scale, started at the same instant from the same time.
    fn eq(&self, other: &Self) -> bool {
        self.scale == other.scale
            && self.origin_wall_ns == other.origin_wall_ns
            && self.origin_ns.load(Ordering::Acquire) == other.origin_ns.load(Ordering::Acquire)
    }
}

impl Eq for ExchangeClock {}

impl Default for ExchangeClock {
    fn default() -> Self {
        Self::scaled(1)
    }
}

impl ExchangeClock {
    /// The wall clock (`scale` 1), or one `scale` times faster from now
    /// (1 ..= [`TIME_SCALE_MAX`]; checked by the configuration).
    pub fn scaled(scale: u32) -> Self {
        let now = wall_clock_ns();
        Self {
            scale: scale.clamp(1, TIME_SCALE_MAX),
            origin_wall_ns: now,
            origin_ns: Arc::new(AtomicU64::new(now)),
        }
    }

    /// Engine seconds per wall second.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// A faster clock moves on from `ts_ns` if it is behind it (the last stamp in
    /// the ledger); the wall clock is left alone (the engine keeps time monotonic).
    pub fn not_before(&self, ts_ns: u64) {
        if self.scale > 1 {
            self.origin_ns.fetch_max(ts_ns, Ordering::AcqRel);
        }
    }

    /// Now, in nanoseconds since the Unix epoch.
    pub fn now_ns(&self) -> u64 {
        let wall = wall_clock_ns();
        if self.scale == 1 {
            return wall;
        }
        let elapsed = wall.saturating_sub(self.origin_wall_ns);
        self.origin_ns
            .load(Ordering::Acquire)
            .saturating_add(elapsed.saturating_mul(u64::from(self.scale)))
    }
}

/// Nanoseconds since the Unix epoch, as every submitter stamps commands.
fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
