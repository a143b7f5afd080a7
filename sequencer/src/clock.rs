//! The exchange's clock: a `tick` command sequenced when the log has been idle.
//!
//! The engine reads no clock; time enters only as each command's `ts_ns`. GTD
//! orders expire at the first command timestamped after their `good_till_ns`, so
//! on an exchange where nobody trades nothing would ever expire. The clock keeps
//! time moving: when no command has been sequenced for its interval, it submits
//! `{"v":1,"ts_ns":<now>,"command":{"type":"tick"}}` through the exchange's
//! ordinary [`Submitter`] (the embedded journal, or the commands topic), so the
//! tick is in the log like any command and replay reproduces what it caused.
//!
//! Ticks never compete with real commands: one is submitted only after a whole
//! interval without any sequenced command, at most one is outstanding (submitted
//! but not yet sequenced), and a refused submission (a full queue) is simply
//! skipped. Stopping the clock wakes its thread at once and joins it; the pipeline
//! stops it before the ledger closes.

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

/// When the engine last sequenced a command: written by the engine thread after
/// each chunk it applies, read by the clock.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    last_ns: AtomicU64,
}

impl Activity {
    /// Activity "now": the clock's first tick is one interval after start.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            last_ns: AtomicU64::new(0),
        })
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
    thread: Option<JoinHandle<()>>,
}

impl Clock {
    /// Starts the clock: a tick through `submitter` after every `every` without a
    /// sequenced command (as `activity` says).
    pub(crate) fn spawn(
        submitter: Arc<dyn Submitter>,
        every: Duration,
        activity: Arc<Activity>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(Stop::default());
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("gpux-clock".into())
            .spawn(move || run(&*submitter, every, &activity, &s))?;
        tracing::info!(every_ms = every.as_millis() as u64, "clock ticking");
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (at once, even mid-interval) and joins it; no tick is
    /// submitted after this returns.
    pub(crate) fn stop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the clock thread panicked");
            }
        }
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The clock's loop: sleep until the log has been idle for `every`, then tick,
/// unless the previous tick is not sequenced yet.
fn run(submitter: &dyn Submitter, every: Duration, activity: &Activity, stop: &Stop) {
    // Set while a submitted tick is neither sequenced nor refused.
    let refused = Arc::new(AtomicBool::new(false));
    let mut outstanding: Option<Instant> = None;
    let mut next = activity.last() + every;
    while stop.sleep_until(next) {
        let now = Instant::now();
        let last = activity.last();
        if let Some(at) = outstanding {
            if last >= at || refused.swap(false, Ordering::AcqRel) {
                outstanding = None;
            }
        }
        if last + every > now {
            next = last + every; // something was sequenced meanwhile
            continue;
        }
        next = now + every;
        if outstanding.is_some() {
            continue; // the last tick is still on its way: never pile them up
        }
        outstanding = Some(now);
        refused.store(false, Ordering::Release);
        let r = Arc::clone(&refused);
        submitter.submit(
            tick_payload(wall_clock_ns()),
            Box::new(move |result| {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a tick was not sequenced");
                    r.store(true, Ordering::Release);
                }
            }),
        );
    }
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

/// Nanoseconds since the Unix epoch, as every submitter stamps commands.
fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
