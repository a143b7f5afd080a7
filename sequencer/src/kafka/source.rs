//! [`KafkaSource`]: the commands topic partition as the pipeline's command log.
//!
//! The pipeline stores the offset of the last command of each batch in the same
//! synced write as its events and, on start, calls
//! [`start_after`](crate::CommandSource::start_after) with it: the source assigns
//! the partition at that offset + 1 (the beginning when nothing was consumed), so a
//! record is applied exactly once however often the engine or the broker restarts.
//! Each record becomes an [`Inbound`] with its `Source::Kafka` position and its value
//! as the payload (a tombstone becomes an empty payload, which the engine records as
//! a `malformed_command` rejection). Broker trouble never fails the source.

use std::time::{Duration, Instant};

use gpux_ledger::{Source, SourceKey};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::error::KafkaError;
use super::topic::TopicReader;
use super::KafkaConfig;
use crate::error::SourceError;
use crate::source::{CommandSource, Inbound};
use crate::submit::MAX_COMMAND_BYTES;

/// How often the consumed position is committed to the broker (monitoring only).
const MONITOR_COMMIT_EVERY: Duration = Duration::from_secs(5);

/// The pipeline's [`CommandSource`] on the commands topic.
#[derive(Debug)]
pub struct KafkaSource {
    reader: TopicReader,
    last_monitor_commit: Instant,
    monitored: Option<u64>,
}

impl KafkaSource {
    /// A source on `cfg`'s commands topic and partition (positioned by
    /// [`start_after`](CommandSource::start_after)).
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            reader: TopicReader::new(cfg, "source", &cfg.commands_topic, cfg.partition)?,
            last_monitor_commit: Instant::now(),
            monitored: None,
        })
    }

    /// Commits the read position to the broker's group offsets, asynchronously and
    /// for monitoring (consumer lag dashboards) only: it is never read back.
    fn monitor_commit(&mut self) {
        let Some(next) = self.reader.next_offset() else {
            return;
        };
        if self.monitored == Some(next) || self.last_monitor_commit.elapsed() < MONITOR_COMMIT_EVERY
        {
            return;
        }
        self.last_monitor_commit = Instant::now();
        self.monitored = Some(next);
        let mut tpl = TopicPartitionList::new();
        let at = Offset::Offset(next as i64);
        if tpl
            .add_partition_offset(self.reader.topic(), self.reader.partition(), at)
            .is_ok()
        {
            if let Err(e) = self.reader.consumer().commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "monitoring offset commit not sent");
            }
        }
    }
}

impl CommandSource for KafkaSource {
    fn key(&self) -> SourceKey {
        SourceKey::Kafka {
            topic: self.reader.topic().to_owned(),
            partition: self.reader.partition(),
        }
    }

    fn start_after(&mut self, last_consumed: Option<u64>) -> Result<(), SourceError> {
        let from = last_consumed.map(|o| o + 1);
        match from {
            Some(offset) => tracing::info!(
                topic = %self.reader.topic(),
                partition = self.reader.partition(),
                offset,
                "consuming the commands topic after the last committed offset"
            ),
            None => tracing::info!(
                topic = %self.reader.topic(),
                partition = self.reader.partition(),
                "consuming the commands topic from its beginning"
            ),
        }
        self.reader
            .seek(from)
            .map_err(|e| SourceError::Kafka(format!("{e:#}")))
    }

    fn poll(
        &mut self,
        out: &mut Vec<Inbound>,
        max: usize,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        let topic = self.reader.topic().to_owned();
        let partition = self.reader.partition();
        self.reader.poll(max, timeout, |offset, _key, payload| {
            let payload = payload.unwrap_or_default();
            let payload = if payload.len() > MAX_COMMAND_BYTES {
                // Far beyond what the engine accepts (it rejects it either way): keep
                // the ledger and the events topic bounded.
                tracing::warn!(
                    topic = %topic,
                    offset,
                    bytes = payload.len(),
                    kept = MAX_COMMAND_BYTES,
                    "oversized record: recording its first bytes only (it is rejected)"
                );
                &payload[..MAX_COMMAND_BYTES]
            } else {
                payload
            };
            out.push(Inbound {
                source: Source::Kafka {
                    topic: topic.clone(),
                    partition,
                    offset,
                },
                payload: payload.to_vec(),
            });
        });
        self.monitor_commit();
        Ok(())
    }
}
