//! `gpux bench pipeline`: the engine workload through the whole embedded pipeline
//! into a durable ledger.
//!
//! Commands are the engine bench's seeded workload as `CommandEnvelope` JSON. A
//! producer thread submits them to the embedded command log in chunks (as a
//! gateway's group of concurrent requests would) while the pipeline decodes, applies
//! and commits them; the run ends when the last command is durable. Latency is per
//! chunk: from handing it to the log to the ledger holding the chunk's last command
//! (a monitor thread watches the durable sequence number), so it includes queueing,
//! decoding, matching and the commit fsync. The report gives the bytes written to
//! the ledger's device per command (`/proc/diskstats`, start to clean close).
//!
//! By default the loop is closed (at most `--in-flight` commands not yet durable,
//! as waiting clients keep); `--rate N` opens it: submissions go on a fixed
//! schedule of N commands a second whatever is in flight, each timed from when it
//! was due, so the latency at a stated offered rate includes any queueing.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gpux_engine::{Command, CommandEnvelope};
use gpux_ledger::LatencyHistogram;
use gpux_sequencer::{EmbeddedSubmitter, Exchange, PipelineOptions, PipelineStats, SubmitError};
use serde::Serialize;

use super::disk::DiskWrites;
use super::workload::{self, WorkloadConfig};

/// The result of `gpux bench pipeline` (embedded).
#[derive(Debug, Clone, Serialize)]
pub struct PipelineBenchReport {
    /// Always `"pipeline"`.
    pub bench: &'static str,
    /// `"embedded"`, or `"embedded-prejournaled"` with `--prejournal`.
    pub mode: &'static str,
    /// Commands that went through (setup + orders).
    pub commands: u64,
    /// From the first submission to the last command durable.
    pub seconds: f64,
    /// `commands / seconds`.
    pub commands_per_sec: f64,
    /// Median submission-to-durable latency of a chunk, microseconds.
    pub p50_command_to_durable_us: u64,
    /// 99th percentile.
    pub p99_command_to_durable_us: u64,
    /// Slowest chunk.
    pub max_command_to_durable_us: u64,
    /// Commands per submission.
    pub chunk: usize,
    /// Most commands submitted but not yet durable (closed loop).
    pub in_flight: usize,
    /// The offered rate, commands per second, when open loop (`--rate`).
    pub offered_rate: Option<u64>,
    /// Ledger batches written.
    pub batches: u64,
    /// Events written.
    pub events: u64,
    /// Bytes written to the ledger directory's block device per command, from
    /// the pipeline's start to its clean close (WAL, memtable flushes, anything
    /// else on that device); absent where `/proc/diskstats` does not list it.
    pub disk_bytes_per_command: Option<f64>,
}

/// Serializes the workload as envelopes with increasing timestamps.
pub fn envelopes(orders: usize, seed: u64) -> Vec<Vec<u8>> {
    let cfg = WorkloadConfig::new(orders, seed);
    let commands: Vec<Command> = workload::setup(&cfg)
        .into_iter()
        .chain(workload::orders(&cfg))
        .collect();
    commands
        .into_iter()
        .enumerate()
        .map(|(i, command)| {
            let env = CommandEnvelope {
                v: gpux_engine::PROTOCOL_VERSION,
                ts_ns: workload::ts_ns(i as u64),
                request_id: None,
                idempotent: false,
                command,
            };
            serde_json::to_vec(&env).expect("commands serialize")
        })
        .collect()
}

/// Runs the embedded pipeline bench in `dir` (which must be empty).
pub fn embedded(
    dir: &std::path::Path,
    orders: usize,
    seed: u64,
    shape: Shape,
    opts: PipelineOptions,
    prejournal: bool,
) -> Result<PipelineBenchReport> {
    let run = Run {
        dir,
        payloads: envelopes(orders, seed),
        shape,
        opts,
    };
    if prejournal {
        run.prejournaled()
    } else {
        run.live()
    }
}

/// One run of the bench: the ledger directory, the commands, how they are handed
/// to the log, and the pipeline's options.
struct Run<'a> {
    dir: &'a std::path::Path,
    payloads: Vec<Vec<u8>>,
    shape: Shape,
    opts: PipelineOptions,
}

/// How the commands are handed to the log.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Commands per submission.
    pub chunk: usize,
    /// Most commands submitted but not yet durable (closed loop).
    pub in_flight: usize,
    /// Open loop: commands per second on a fixed schedule (`in_flight` unused).
    pub rate: Option<u64>,
}

impl Run<'_> {
    /// `--prejournal`: every command in the log first, then the pipeline timed
    /// from its start until the last command is durable.
    fn prejournaled(self) -> Result<PipelineBenchReport> {
        let total = self.payloads.len() as u64;
        let mut ledger = gpux_ledger::Ledger::open(self.dir, &self.opts.ledger)?;
        for part in self.payloads.chunks(4096) {
            ledger.journal(part)?;
        }
        ledger.close()?;
        let disk = DiskWrites::start(self.dir);
        let started = Instant::now();
        let exchange = Exchange::start_embedded(self.dir, self.opts)?;
        let stats = exchange.stats();
        while stats.durable_seq.load(Ordering::Acquire) < total {
            std::thread::sleep(Duration::from_micros(200));
        }
        let seconds = started.elapsed().as_secs_f64();
        let hist = stats.latency();
        let mut report = report(
            "embedded-prejournaled",
            total,
            seconds,
            &hist,
            self.shape,
            &stats,
        );
        exchange.shutdown()?;
        report.disk_bytes_per_command = per_command(disk.as_ref(), total);
        Ok(report)
    }

    /// Commands submitted while the pipeline runs, `shape.chunk` at a time with
    /// at most `shape.in_flight` not yet durable, timed until the last is durable.
    fn live(self) -> Result<PipelineBenchReport> {
        let total = self.payloads.len() as u64;
        let disk = DiskWrites::start(self.dir);
        let exchange = Exchange::start_embedded(self.dir, self.opts)?;
        if exchange.stats().durable_seq.load(Ordering::Acquire) != 0 {
            return Err(anyhow!("{} already holds a ledger", self.dir.display()));
        }
        let submitter: EmbeddedSubmitter = exchange
            .embedded_submitter()
            .context("the embedded pipeline has a submitter")?;
        let stats = exchange.stats();
        let (sub_tx, sub_rx) = mpsc::channel::<(u64, Instant)>();
        let monitor = spawn_monitor(Arc::clone(&stats), sub_rx, total);
        let started = Instant::now();
        submit_chunks(&submitter, &stats, self.payloads, self.shape, &sub_tx)?;
        drop(sub_tx);
        let (hist, finished) = monitor
            .join()
            .map_err(|_| anyhow!("the monitor thread panicked"))?;
        let seconds = finished.duration_since(started).as_secs_f64();
        let mut report = report("embedded", total, seconds, &hist, self.shape, &stats);
        exchange.shutdown()?;
        report.disk_bytes_per_command = per_command(disk.as_ref(), total);
        Ok(report)
    }
}

/// The monitor records, for each chunk (`(last cmd_seq, submitted at)` from
/// `submitted`), when its last command became durable; it ends once command `total`
/// is, returning the latencies and that moment.
fn spawn_monitor(
    stats: Arc<PipelineStats>,
    submitted: mpsc::Receiver<(u64, Instant)>,
    total: u64,
) -> std::thread::JoinHandle<(LatencyHistogram, Instant)> {
    std::thread::spawn(move || {
        let mut hist = LatencyHistogram::default();
        let mut pending = std::collections::VecDeque::new();
        loop {
            while let Ok(s) = submitted.try_recv() {
                pending.push_back(s);
            }
            let durable = stats.durable_seq.load(Ordering::Acquire);
            let now = Instant::now();
            while let Some(&(last, at)) = pending.front() {
                if last > durable {
                    break;
                }
                hist.record_us(now.duration_since(at).as_micros() as u64);
                pending.pop_front();
            }
            if durable >= total {
                return (hist, now);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

/// Submits `payloads` in chunks, telling the monitor about each; stops at the
/// first refused submission.
fn submit_chunks(
    submitter: &EmbeddedSubmitter,
    stats: &PipelineStats,
    payloads: Vec<Vec<u8>>,
    shape: Shape,
    monitor: &mpsc::Sender<(u64, Instant)>,
) -> Result<()> {
    let failed_flag: Arc<Mutex<Option<SubmitError>>> = Arc::default();
    let mut next_seq = 1u64;
    let started = Instant::now();
    let mut it = payloads.into_iter().peekable();
    while it.peek().is_some() {
        let due = match shape.rate {
            // Open loop: each submission at its time on the schedule, timed from
            // then (a late submission counts its lateness).
            Some(rate) => {
                let due = started + Duration::from_secs_f64((next_seq - 1) as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                due
            }
            // Closed loop: a bounded number of commands in flight, as a set of
            // clients waiting for their answers would keep.
            None => {
                while next_seq - 1
                    > stats.durable_seq.load(Ordering::Acquire) + shape.in_flight as u64
                {
                    std::thread::sleep(Duration::from_micros(100));
                }
                Instant::now()
            }
        };
        let part: Vec<Vec<u8>> = it.by_ref().take(shape.chunk).collect();
        next_seq += part.len() as u64;
        let _ = monitor.send((next_seq - 1, due));
        // The embedded log's bounded queue is the back-pressure: submitting
        // blocks while it is full, as concurrent clients would wait.
        let failed = Arc::clone(&failed_flag);
        submitter.submit_many(part, move |r| {
            if let Err(e) = r {
                let mut f = failed.lock().unwrap_or_else(PoisonError::into_inner);
                f.get_or_insert(e);
            }
        });
        if let Some(e) = failed_now(&failed_flag) {
            return Err(anyhow!("the embedded log refused a submission: {e}"));
        }
    }
    if let Some(e) = failed_now(&failed_flag) {
        return Err(anyhow!("the embedded log refused a submission: {e}"));
    }
    Ok(())
}

/// The report of a run that made `total` commands durable in `seconds`.
fn report(
    mode: &'static str,
    total: u64,
    seconds: f64,
    hist: &LatencyHistogram,
    shape: Shape,
    stats: &PipelineStats,
) -> PipelineBenchReport {
    PipelineBenchReport {
        bench: "pipeline",
        mode,
        commands: total,
        seconds,
        commands_per_sec: total as f64 / seconds,
        p50_command_to_durable_us: hist.quantile_us(500),
        p99_command_to_durable_us: hist.quantile_us(990),
        max_command_to_durable_us: hist.max_us(),
        chunk: shape.chunk,
        in_flight: shape.in_flight,
        offered_rate: shape.rate,
        batches: stats.batches.load(Ordering::Relaxed),
        events: stats.durable_events.load(Ordering::Relaxed),
        disk_bytes_per_command: None,
    }
}

/// Bytes written to the device since `disk` started, per command.
fn per_command(disk: Option<&DiskWrites>, commands: u64) -> Option<f64> {
    let bytes = disk?.bytes_since()?;
    Some(bytes as f64 / commands.max(1) as f64)
}

fn failed_now(flag: &Mutex<Option<SubmitError>>) -> Option<SubmitError> {
    flag.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--rate`: every command goes through on the schedule (which the run
    /// cannot beat), and the report says what was offered.
    #[test]
    fn an_open_loop_run_submits_everything_on_its_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("ledger");
        let rate = 20_000;
        let r = embedded(
            &data,
            2_000,
            1,
            Shape {
                chunk: 16,
                in_flight: 1,
                rate: Some(rate),
            },
            PipelineOptions::default(),
            false,
        )
        .unwrap();
        assert_eq!(r.commands, envelopes(2_000, 1).len() as u64);
        assert_eq!(r.offered_rate, Some(rate));
        // The last submission was due (commands - chunk) / rate after the first.
        assert!(r.seconds >= (r.commands - 16) as f64 / rate as f64);
        assert!(r.p99_command_to_durable_us >= r.p50_command_to_durable_us);
        assert!(r.disk_bytes_per_command.is_some_and(|b| b > 0.0));
    }
}
