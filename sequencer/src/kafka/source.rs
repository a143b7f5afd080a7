//! [`KafkaSource`]: the commands topic partition as the pipeline's command log.
//!
//! The pipeline stores the position of the last command of each batch in the same
//! synced write as its events and, on start, calls
//! [`start_after`](crate::CommandSource::start_after) with it: the source assigns
//! the partition at that offset + 1 (the beginning when nothing was consumed), so a
//! record is applied exactly once however often the engine or the broker restarts.
//! Each record becomes an [`Inbound`] with its `Source::Kafka` position and its value
//! as the payload (a tombstone becomes an empty payload, which the engine records as
//! a `malformed_command` rejection), except a batch record
//! ([`batch`](super::batch)), which becomes one `Inbound` per command, each with
//! its index in the batch. When the last command consumed was inside a batch, the
//! source assigns the partition at that record again and skips the commands of it
//! up to that index. Broker trouble never fails the source.

use std::time::{Duration, Instant};

use gpux_ledger::{Position, Source, SourceKey};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::batch;
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
    /// Set by `start_after` when the last command consumed was inside a batch
    /// record: that record is read again and its commands up to this index are
    /// skipped.
    resume_in: Option<(u64, u32)>,
}

impl KafkaSource {
    /// A source on `cfg`'s commands topic and partition (positioned by
    /// [`start_after`](CommandSource::start_after)).
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            reader: TopicReader::new(cfg, "source", &cfg.commands_topic, cfg.partition)?,
            last_monitor_commit: Instant::now(),
            monitored: None,
            resume_in: None,
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

    fn start_after(&mut self, last_consumed: Option<Position>) -> Result<(), SourceError> {
        let (topic, partition) = (self.reader.topic().to_owned(), self.reader.partition());
        let from = match last_consumed {
            None => {
                tracing::info!(%topic, partition, "consuming the commands topic from its beginning");
                None
            }
            Some(Position {
                offset,
                index: None,
            }) => {
                tracing::info!(
                    %topic,
                    partition,
                    offset = offset + 1,
                    "consuming the commands topic after the last committed offset"
                );
                Some(offset + 1)
            }
            Some(Position {
                offset,
                index: Some(index),
            }) => {
                tracing::info!(
                    %topic,
                    partition,
                    offset,
                    after_index = index,
                    "consuming the commands topic inside the batch record last committed from"
                );
                self.resume_in = Some((offset, index));
                Some(offset)
            }
        };
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
        let resume_in = &mut self.resume_in;
        self.reader
            .poll_counted(max, timeout, |offset, _key, payload| {
                // Only the first record read can be the one to resume in (if it is
                // still on the topic).
                let skip_through = resume_in
                    .take()
                    .filter(|&(o, _)| o == offset)
                    .map(|(_, i)| i);
                let payload = payload.unwrap_or_default();
                let at = |index| Source::Kafka {
                    topic: topic.clone(),
                    partition,
                    offset,
                    index,
                };
                let before = out.len();
                match batch::split(payload) {
                    Some(commands) => {
                        for (index, command) in (0u32..).zip(commands) {
                            if skip_through.is_none_or(|s| index > s) {
                                out.push(Inbound {
                                    source: at(Some(index)),
                                    payload: bounded(&topic, offset, command).to_vec(),
                                });
                            }
                        }
                    }
                    // A record that is one command was consumed whole if the
                    // ledger says a command inside it was (cannot happen unless the
                    // topic was rewritten).
                    None if skip_through.is_some() => {}
                    None => out.push(Inbound {
                        source: at(None),
                        payload: bounded(&topic, offset, payload).to_vec(),
                    }),
                }
                out.len() - before
            });
        self.monitor_commit();
        Ok(())
    }
}

/// A command's payload as the ledger records it: far beyond what the engine
/// accepts (it rejects it either way), only its first bytes are kept, so the
/// ledger and the events topic stay bounded.
fn bounded<'a>(topic: &str, offset: u64, payload: &'a [u8]) -> &'a [u8] {
    if payload.len() > MAX_COMMAND_BYTES {
        tracing::warn!(
            %topic,
            offset,
            bytes = payload.len(),
            kept = MAX_COMMAND_BYTES,
            "oversized command: recording its first bytes only (it is rejected)"
        );
        &payload[..MAX_COMMAND_BYTES]
    } else {
        payload
    }
}
