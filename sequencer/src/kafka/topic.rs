//! Reading one topic partition by offset: [`TopicReader`], the consumer core shared
//! by the command source, the events-topic feed, the publisher's resume point, the
//! benchmark's bare consumer and the tests; and [`last_offset_message`].
//!
//! A reader is a `BaseConsumer` with the partition assigned by hand (it never joins
//! a consumer group), no automatic offset commit or store, and
//! `auto.offset.reset=error`: an offset the broker no longer has is reported and
//! retried, never silently replaced by the start or the end of the log. Records come
//! out in offset order; a record at an offset below one already returned (a
//! redelivery) is dropped. Broker trouble is logged (throttled) and waited out.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::error::KafkaError;
use super::{KafkaConfig, LogContext, Throttle, GROUP_ID_DEFAULT, LOG_EVERY};

impl ConsumerContext for LogContext {}

/// Settings of every reader that the client settings cannot change: consumption
/// positions live in the ledger, not in the broker.
const CONSUMER_ENFORCED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "error"),
    ("enable.partition.eof", "false"),
];

/// A consumer of one topic partition, positioned by offset.
pub struct TopicReader {
    consumer: BaseConsumer<LogContext>,
    topic: String,
    partition: i32,
    /// The offset the reader was positioned at (`None`: the log's beginning).
    position: Option<u64>,
    /// The offset after the last record returned.
    next: Option<u64>,
    throttle: Throttle,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("next", &self.next)
            .finish()
    }
}

impl TopicReader {
    /// A reader of `topic`/`partition` with `cfg`'s brokers and client settings;
    /// `role` names it in logs and in its `client.id`. Not positioned yet.
    pub fn new(
        cfg: &KafkaConfig,
        role: &'static str,
        topic: &str,
        partition: i32,
    ) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<LogContext> = cfg
            .client_config(role, &[("group.id", GROUP_ID_DEFAULT)], CONSUMER_ENFORCED)
            .create_with_context(LogContext::new(role))
            .map_err(KafkaError::client(format!(
                "cannot create a Kafka consumer for {topic}"
            )))?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partition,
            position: None,
            next: None,
            throttle: Throttle::new(LOG_EVERY),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset after the last record returned, if any was.
    pub fn next_offset(&self) -> Option<u64> {
        self.next
    }

    /// The underlying consumer (for monitoring commits).
    pub(crate) fn consumer(&self) -> &BaseConsumer<LogContext> {
        &self.consumer
    }

    /// Positions the reader at `offset` (`None`: the beginning of the log). Needs no
    /// broker: fetching starts when one answers.
    pub fn seek(&mut self, offset: Option<u64>) -> Result<(), KafkaError> {
        self.position = offset;
        self.next = offset;
        self.assign()
    }

    fn assign(&self) -> Result<(), KafkaError> {
        let at = match self.next {
            Some(o) => Offset::Offset(
                i64::try_from(o).map_err(|_| KafkaError::OffsetTooLarge { offset: o })?,
            ),
            None => Offset::Beginning,
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, at)
            .map_err(KafkaError::client(format!("cannot position at {at:?}")))?;
        self.consumer
            .assign(&tpl)
            .map_err(KafkaError::client(format!(
                "cannot assign {}/{}",
                self.topic, self.partition
            )))
    }

    /// The partition's low and high watermarks (first offset held, offset the next
    /// record will get), asking the broker.
    pub fn watermarks(&self, timeout: Duration) -> Result<(u64, u64), KafkaError> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(&self.topic, self.partition, timeout)
            .map_err(KafkaError::client(format!(
                "cannot read the watermarks of {}/{}",
                self.topic, self.partition
            )))?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }

    /// Hands up to `max` next records to `f` as `(offset, key, payload)`, in offset
    /// order, waiting at most `timeout` for the first. Returns how many it handed.
    /// Broker trouble is logged and waited out (up to `timeout`), never returned.
    pub fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        mut f: impl FnMut(u64, Option<&[u8]>, Option<&[u8]>),
    ) -> usize {
        self.poll_counted(max, timeout, |o, k, v| {
            f(o, k, v);
            1
        })
    }

    /// [`poll`](Self::poll) where `f` says how much of `max` each record used (a
    /// batch record counts its commands): records are handed until their counts
    /// reach `max`, and the sum is returned. A record is never split.
    pub fn poll_counted(
        &mut self,
        max: usize,
        timeout: Duration,
        mut f: impl FnMut(u64, Option<&[u8]>, Option<&[u8]>) -> usize,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let mut n = 0;
        while n < max {
            let wait = if n == 0 {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    if m.topic() != self.topic || m.partition() != self.partition {
                        continue; // not ours (cannot happen with one assignment)
                    }
                    let Ok(offset) = u64::try_from(m.offset()) else {
                        continue;
                    };
                    if let Some(next) = self.next {
                        if offset < next {
                            tracing::debug!(topic = %self.topic, offset, next, "redelivered record dropped");
                            continue;
                        }
                    }
                    self.next = Some(offset + 1);
                    n += f(offset, m.key(), m.payload());
                }
                Some(Err(e)) => {
                    self.trouble(&e);
                    if n == 0 {
                        // Back off a little (errors come back at once while the
                        // broker is away), within the caller's timeout.
                        std::thread::sleep(
                            deadline
                                .saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(100)),
                        );
                    }
                    break;
                }
            }
        }
        n
    }

    /// Logs a consumption error and, when the position was lost, asks again for the
    /// same offset (never another one).
    fn trouble(&mut self, e: &RdKafkaError) {
        let lost_position = matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
        );
        if let Some(held_back) = self.throttle.allow() {
            if lost_position {
                tracing::error!(
                    topic = %self.topic,
                    partition = self.partition,
                    offset = ?self.next,
                    held_back,
                    error = %e,
                    "the broker does not have the offset to consume next; retrying the same offset (never skipping)"
                );
            } else {
                tracing::warn!(
                    topic = %self.topic,
                    partition = self.partition,
                    held_back,
                    error = %e,
                    "Kafka consumption trouble; retrying"
                );
            }
        }
        if lost_position {
            if let Err(e) = self.assign() {
                tracing::warn!(error = %e, "cannot re-assign the partition");
            }
        }
    }
}

/// The offset and payload of the last record of `topic`/`partition`, `None` when the
/// partition never had a record. An error when the broker cannot be asked within
/// `timeout`, or when records existed but none is left (retention removed them:
/// what was last cannot be known).
pub fn last_offset_message(
    cfg: &KafkaConfig,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Option<(u64, Vec<u8>)>, KafkaError> {
    let mut reader = TopicReader::new(cfg, "last-record", topic, partition)?;
    let (low, high) = reader.watermarks(timeout)?;
    if high == 0 {
        return Ok(None);
    }
    if high <= low {
        return Err(KafkaError::Emptied {
            topic: topic.to_owned(),
            partition,
            last: high - 1,
        });
    }
    reader.seek(Some(high - 1))?;
    let deadline = Instant::now() + timeout;
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        reader.poll(
            1,
            deadline.saturating_duration_since(Instant::now()),
            |o, _, p| {
                got = Some((o, p.unwrap_or_default().to_vec()));
            },
        );
    }
    got.map(Some).ok_or_else(|| KafkaError::LastRecordTimeout {
        offset: high - 1,
        topic: topic.to_owned(),
        partition,
        timeout,
    })
}
