//! [`KafkaSubmitter`]: commands into the commands topic through an idempotent
//! producer.
//!
//! `done(Ok(()))` is called from the delivery report, i.e. once the broker has the
//! record with `acks=all`: from then on the engine will apply it exactly once. The
//! producer is idempotent (`enable.idempotence=true`), so librdkafka's own retries
//! never write a record twice. A full local queue answers
//! [`SubmitError::Overloaded`] at once; a payload over [`MAX_COMMAND_BYTES`] answers
//! [`SubmitError::TooLarge`]; a record the broker did not take within
//! `message.timeout.ms` (default here 30 s) or a fatal producer error answers
//! [`SubmitError::Unavailable`]. A timed-out record may still have been written
//! (Kafka cannot tell): its effect, if any, shows in the feed under its `request_id`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::error::KafkaError;
use super::{KafkaConfig, LogContext};
use crate::error::SubmitError;
use crate::submit::{SubmitDone, Submitter, MAX_COMMAND_BYTES};

/// Producer settings the client settings may change.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // No linger: against tansu, one command in flight is acknowledged in 0.4 ms
    // (p50) with linger.ms=0 against 1.8 ms with 1 and 5.9 ms with 5, and 50,000
    // pipelined commands go as fast (about 40,000/s, the broker's pace): under load
    // librdkafka batches anyway while requests are in flight. See ARCHITECTURE.md.
    ("linger.ms", "0"),
    ("message.timeout.ms", "30000"),
];
/// Producer settings exactly-once depends on.
const PRODUCER_ENFORCED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// A submission's callback, travelling with its record through librdkafka.
type Opaque = Box<Mutex<Option<SubmitDone>>>;

fn finish(opaque: &Mutex<Option<SubmitDone>>, r: Result<(), SubmitError>) {
    let done = opaque.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(done) = done {
        done(r);
    }
}

/// Delivery reports → submission callbacks; logs like [`LogContext`].
struct SubmitContext {
    log: LogContext,
}

impl ClientContext for SubmitContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(%error, "{reason}: the command producer stopped for good");
        }
        self.log.error(error, reason);
    }
}

impl ProducerContext for SubmitContext {
    type DeliveryOpaque = Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Opaque) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(unavailable(e)),
        };
        finish(&opaque, r);
    }
}

fn unavailable(e: &RdKafkaError) -> SubmitError {
    let why = match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => {
            "the broker did not acknowledge the command in time (it may still be applied)"
                .to_owned()
        }
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight) => {
            "the producer was shut down".to_owned()
        }
        _ => e.to_string(),
    };
    SubmitError::Unavailable(why)
}

/// Appends commands to the commands topic's partition (see the module docs).
pub struct KafkaSubmitter {
    producer: ThreadedProducer<SubmitContext>,
    topic: String,
    partition: i32,
}

impl std::fmt::Debug for KafkaSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubmitter")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish()
    }
}

impl KafkaSubmitter {
    /// A producer to `cfg`'s commands topic and partition.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = cfg
            .client_config("submitter", PRODUCER_DEFAULTS, PRODUCER_ENFORCED)
            .create_with_context(SubmitContext {
                log: LogContext::new("submitter"),
            })
            .map_err(KafkaError::client("cannot create the command producer"))?;
        Ok(Self {
            producer,
            topic: cfg.commands_topic.clone(),
            partition: cfg.partition,
        })
    }

    /// Waits up to `timeout` for every submitted command's delivery report.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(KafkaError::client("commands still undelivered"))
    }

    /// Commands handed to librdkafka and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

impl Submitter for KafkaSubmitter {
    fn submit(&self, payload: Vec<u8>, done: SubmitDone) {
        if payload.len() > MAX_COMMAND_BYTES {
            done(Err(SubmitError::TooLarge {
                max: MAX_COMMAND_BYTES,
            }));
            return;
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::error!(%code, %reason, "the command producer has failed for good");
            done(Err(SubmitError::Unavailable(format!(
                "the command producer failed: {reason}"
            ))));
            return;
        }
        let opaque: Opaque = Box::new(Mutex::new(Some(done)));
        let record = BaseRecord::<(), [u8], Opaque>::with_opaque_to(&self.topic, opaque)
            .partition(self.partition)
            .payload(payload.as_slice());
        if let Err((e, record)) = self.producer.send(record) {
            let r = match e.rdkafka_error_code() {
                Some(RDKafkaErrorCode::QueueFull) => SubmitError::Overloaded,
                _ => {
                    tracing::warn!(error = %e, "a command could not be queued for the broker");
                    unavailable(&e)
                }
            };
            finish(&record.delivery_opaque, Err(r));
        }
    }
}
