//! `gpux bench pipeline --kafka BROKERS`: the whole pipeline fed by a real broker,
//! against the broker's own ceiling.
//!
//! Through a broker, the broker is usually the bottleneck, so the figure that says
//! something about our code is the ratio between the pipeline and a bare consumer
//! draining the same topic in the same run. [`run`]:
//! 1. generates the engine workload ([`workload`]: market, funded
//!    accounts, then the order flow) as protocol envelopes, and produces it to a
//!    fresh one-partition topic (idempotent producer, `acks=all`), `batch`
//!    commands per record ([`batch`](gpux_sequencer::kafka::batch) records when
//!    above 1);
//! 2. drains that topic with a bare librdkafka consumer (records' payloads copied
//!    out, nothing else) and times it;
//! 3. runs the pipeline (`KafkaSource` → decode → engine → group commit, every batch
//!    fsynced to a ledger in a temporary directory) over the same topic, timed from
//!    start until the last command is durable;
//! 4. drains the topic with the bare consumer again (the broker's caches are warm
//!    for both the pipeline and this run) and keeps the faster bare run;
//! 5. runs the pipeline again on a fresh ledger with the events publisher, timed
//!    until the broker has acknowledged every command's events-topic message
//!    (`with_events_per_sec`: consuming and publishing share the broker);
//! 6. deletes the topics.
//!
//! `p99_command_to_durable_us` is the pipeline's read-to-durable histogram: one
//! sample per committed batch, from when its first command was read from the
//! broker until the batch was synced (an upper bound for every command in it).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use gpux_engine::CommandEnvelope;
use gpux_sequencer::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use gpux_sequencer::kafka::rdkafka::message::Message;
use gpux_sequencer::kafka::rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};
use gpux_sequencer::kafka::rdkafka::types::RDKafkaErrorCode;
use gpux_sequencer::kafka::rdkafka::{Offset, TopicPartitionList};
use gpux_sequencer::kafka::{self, batch, EventsPublisher, KafkaConfig, KafkaSource};
use gpux_sequencer::{Exchange, PipelineOptions};
use serde_json::json;

use super::workload::{self, WorkloadConfig};

/// How long any one phase may take before the bench gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The workload as command envelopes (JSON bytes), setup first.
pub fn commands(orders: usize, seed: u64) -> Vec<Vec<u8>> {
    let cfg = WorkloadConfig::new(orders, seed);
    workload::setup(&cfg)
        .into_iter()
        .chain(workload::orders(&cfg))
        .enumerate()
        .map(|(i, command)| {
            CommandEnvelope {
                v: gpux_engine::PROTOCOL_VERSION,
                ts_ns: workload::ts_ns(i as u64),
                request_id: None,
                idempotent: false,
                command,
            }
            .to_json()
            .into_bytes()
        })
        .collect()
}

/// What `gpux bench pipeline --kafka` runs.
#[derive(Debug, Clone)]
pub struct KafkaBench {
    /// Order messages (plus the setup commands).
    pub orders: usize,
    /// Workload seed.
    pub seed: u64,
    /// Bootstrap brokers.
    pub brokers: String,
    /// Commands per record: batch records above 1.
    pub batch: usize,
    /// librdkafka settings for every client the bench makes.
    pub client_settings: Vec<(String, String)>,
}

/// Runs the benchmark (see the module docs) and returns its report: `commands`,
/// `records`, `seconds`, `commands_per_sec`, `p99_command_to_durable_us`,
/// `bare_consumer_per_sec` (commands per second: the records' commands over the
/// bare drain's time), `ratio` (pipeline / bare consumer), and more.
pub fn run(b: &KafkaBench) -> Result<serde_json::Value> {
    let (orders, seed, batch) = (b.orders, b.seed, b.batch);
    let commands = commands(orders, seed);
    let n = commands.len() as u64;
    let payloads: Vec<Vec<u8>> = if batch <= 1 {
        commands
    } else {
        commands.chunks(batch).map(batch::encode).collect()
    };
    let records = payloads.len() as u64;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut cfg = KafkaConfig::new(&b.brokers);
    cfg.client_settings.clone_from(&b.client_settings);
    cfg.commands_topic = format!("gpux.bench.{}.{stamp}", std::process::id());
    cfg.events_topic = format!("{}.events", cfg.commands_topic);
    kafka::create_topic(&cfg, &cfg.commands_topic, 1, Duration::from_secs(30))?;
    kafka::create_topic(&cfg, &cfg.events_topic, 1, Duration::from_secs(30))?;

    let result = measure(&cfg, &payloads, n, records);
    for topic in [&cfg.commands_topic, &cfg.events_topic] {
        if let Err(e) = kafka::delete_topic(&cfg, topic, Duration::from_secs(30)) {
            tracing::warn!(error = %format!("{e:#}"), %topic, "bench topic not deleted");
        }
    }
    let m = result?;
    let bare_best = m.bare.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let per_sec = n as f64 / m.pipeline_secs.max(f64::MIN_POSITIVE);
    Ok(json!({
        "bench": "pipeline",
        "mode": "kafka",
        "seed": seed,
        "orders": orders,
        "commands": n,
        "commands_per_record": batch,
        "client_settings": b.client_settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "records": records,
        "seconds": m.pipeline_secs,
        "commands_per_sec": per_sec,
        "p99_command_to_durable_us": m.p99_us,
        "batches": m.batches,
        "bare_consumer_per_sec": bare_best,
        "bare_consumer_runs_per_sec": m.bare,
        "ratio": per_sec / bare_best,
        "with_events_per_sec": n as f64 / m.with_events_secs.max(f64::MIN_POSITIVE),
        "produce_per_sec": n as f64 / m.produce_secs.max(f64::MIN_POSITIVE),
        "topic": cfg.commands_topic,
    }))
}

struct Measured {
    produce_secs: f64,
    bare: Vec<f64>,
    pipeline_secs: f64,
    p99_us: u64,
    batches: u64,
    with_events_secs: f64,
}

/// The phases over `payloads`: `records` records holding `n` commands.
fn measure(cfg: &KafkaConfig, payloads: &[Vec<u8>], n: u64, records: u64) -> Result<Measured> {
    let produce_secs = produce(cfg, payloads)?;
    let bare_before = bare_consumer(cfg, records)?;
    let (pipeline_secs, p99_us, batches) = pipeline(cfg, n, false)?;
    let bare_after = bare_consumer(cfg, records)?;
    let (with_events_secs, _, _) = pipeline(cfg, n, true)?;
    Ok(Measured {
        produce_secs,
        bare: vec![n as f64 / bare_before, n as f64 / bare_after],
        pipeline_secs,
        p99_us,
        batches,
        with_events_secs,
    })
}

/// Produces every payload, in order, and waits for every acknowledgement.
fn produce(cfg: &KafkaConfig, payloads: &[Vec<u8>]) -> Result<f64> {
    let producer: ThreadedProducer<DefaultProducerContext> = cfg
        .client_config(
            "bench-producer",
            &[
                ("linger.ms", "5"),
                ("queue.buffering.max.messages", "1000000"),
            ],
            &[("enable.idempotence", "true"), ("acks", "all")],
        )
        .create()
        .context("cannot create the bench producer")?;
    let t0 = Instant::now();
    for p in payloads {
        let mut record = BaseRecord::<(), [u8]>::to(&cfg.commands_topic)
            .partition(0)
            .payload(p.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    std::thread::sleep(Duration::from_millis(1));
                    record = back;
                }
                Err((e, _)) => return Err(anyhow!("cannot produce: {e}")),
            }
        }
        if t0.elapsed() > PHASE_TIMEOUT {
            return Err(anyhow!("producing took longer than {PHASE_TIMEOUT:?}"));
        }
    }
    producer
        .flush(PHASE_TIMEOUT)
        .context("the broker did not acknowledge every command")?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Seconds a plain consumer takes to read the `n` records from the beginning,
/// copying each payload out.
fn bare_consumer(cfg: &KafkaConfig, n: u64) -> Result<f64> {
    let consumer: BaseConsumer = cfg
        .client_config(
            "bench-bare-consumer",
            &[("group.id", kafka::GROUP_ID_DEFAULT)],
            &[
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "error"),
            ],
        )
        .create()
        .context("cannot create the bare consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&cfg.commands_topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let t0 = Instant::now();
    let mut got = 0u64;
    let mut bytes = 0usize;
    let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(1024);
    while got < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                chunk.push(m.payload().unwrap_or_default().to_vec());
                got += 1;
                if chunk.len() == chunk.capacity() {
                    bytes += chunk.iter().map(Vec::len).sum::<usize>();
                    chunk.clear();
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "bare consumer"),
            None => {}
        }
        if t0.elapsed() > PHASE_TIMEOUT {
            return Err(anyhow!(
                "the bare consumer read {got} of {n} records in {PHASE_TIMEOUT:?}"
            ));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    tracing::debug!(bytes, "bare consumer done");
    Ok(secs)
}

/// Seconds from starting the pipeline on an empty ledger until command `n` is
/// durable (and, `with_events`, its events-topic message acknowledged); the p99
/// read-to-durable latency; the number of batches.
fn pipeline(cfg: &KafkaConfig, n: u64, with_events: bool) -> Result<(f64, u64, u64)> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let t0 = Instant::now();
    let source = KafkaSource::new(cfg)?;
    let mut exchange = Exchange::start_with_source(
        dir.path(),
        PipelineOptions::default(),
        Box::new(source),
        None,
    )?;
    let events = if with_events {
        Some(EventsPublisher::spawn(&mut exchange, cfg)?)
    } else {
        None
    };
    let stats = exchange.stats();
    let done = || {
        stats.durable_seq.load(Ordering::Acquire) >= n
            && events
                .as_ref()
                .is_none_or(|e| e.acknowledged_seq.load(Ordering::Acquire) >= n)
    };
    while !done() {
        if let Some(why) = exchange.failure() {
            return Err(anyhow!("the pipeline failed: {why}"));
        }
        if t0.elapsed() > PHASE_TIMEOUT {
            return Err(anyhow!(
                "the pipeline made {} of {n} commands durable in {PHASE_TIMEOUT:?}",
                stats.durable_seq.load(Ordering::Acquire)
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let secs = t0.elapsed().as_secs_f64();
    let p99 = stats.latency().quantile_us(990);
    let batches = stats.batches.load(Ordering::Relaxed);
    exchange.shutdown()?;
    Ok((secs, p99, batches))
}
