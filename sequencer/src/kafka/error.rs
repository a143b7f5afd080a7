//! [`KafkaError`]: why a Kafka-mode operation failed — a client librdkafka refused,
//! a topic the admin API could not create, an events-topic message that does not
//! decode, the events publisher's producer failing.
//!
//! Like [`PipelineError`], every message is complete (it includes its cause's), so
//! causes are typed fields rather than [`std::error::Error::source`]: printing the
//! chain, as `anyhow`'s `{:#}` does, would repeat them.

use std::time::Duration;

use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{FeedError, PipelineError};

/// Why a Kafka-mode operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// A librdkafka call failed; `action` says which ("cannot create the command
    /// producer").
    #[error("{action}: {error}")]
    Client {
        /// What was being done.
        action: String,
        /// What librdkafka said.
        error: RdKafkaError,
    },
    /// An offset that Kafka's signed offsets cannot hold.
    #[error("offset {offset} too large")]
    OffsetTooLarge {
        /// The offset.
        offset: u64,
    },
    /// The admin API refused to create a topic.
    #[error("cannot create the topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// The admin API refused to delete a topic.
    #[error("cannot delete the topic {topic}: {code}")]
    DeleteTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// A partition had records but retention removed all of them: what was last
    /// cannot be known.
    #[error("{topic}/{partition} had records up to offset {last} but holds none now")]
    Emptied {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The last offset it had.
        last: u64,
    },
    /// The last record of a partition could not be read in time.
    #[error(
        "cannot read the last record (offset {offset}) of {topic}/{partition} within {timeout:?}"
    )]
    LastRecordTimeout {
        /// The record's offset.
        offset: u64,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// How long it waited.
        timeout: Duration,
    },
    /// A record of the events topic could not be read in time.
    #[error("cannot read offset {offset} of the events topic within {timeout:?}")]
    ReadTimeout {
        /// The record's offset.
        offset: u64,
        /// How long it waited.
        timeout: Duration,
    },
    /// A record of the events topic is not JSON of an events-topic message.
    #[error("not an events-topic message: {0}")]
    NotAMessage(serde_json::Error),
    /// An events-topic message (or a sequence of parts) has the wrong shape; the
    /// text says how.
    #[error("{0}")]
    BadMessage(String),
    /// The events topic's last command has the largest `cmd_seq` there is.
    #[error("the events topic is at cmd_seq {0}")]
    TopicFull(u64),
    /// Following the ledger (to publish what it commits) failed.
    #[error("cannot follow the ledger: {0}")]
    Follow(FeedError),
    /// The events publisher's producer failed (`why`, when librdkafka says).
    #[error("the events producer failed{}", why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    ProducerFailed {
        /// librdkafka's fatal error, if it reported one.
        why: Option<String>,
    },
    /// A part of a committed command could not be queued for the events topic.
    #[error("cannot queue cmd_seq {cmd_seq} (part {part}) for the events topic: {error}")]
    Queue {
        /// The command.
        cmd_seq: u64,
        /// The part.
        part: usize,
        /// What librdkafka said.
        error: RdKafkaError,
    },
    /// The events publisher's thread could not be started.
    #[error("cannot start the events publisher: {0}")]
    Spawn(std::io::Error),
    /// The exchange could not start.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// `error`, while doing what `context` says.
    #[error("{context}: {error}")]
    Context {
        /// What was being done.
        context: String,
        /// What failed.
        error: Box<KafkaError>,
    },
}

impl KafkaError {
    /// Maps a librdkafka error to [`KafkaError::Client`] naming `action`.
    pub(crate) fn client(action: impl Into<String>) -> impl FnOnce(RdKafkaError) -> KafkaError {
        let action = action.into();
        move |error| KafkaError::Client { action, error }
    }

    /// Wraps an error in [`KafkaError::Context`] naming what was being done.
    pub(crate) fn context(context: impl Into<String>) -> impl FnOnce(KafkaError) -> KafkaError {
        let context = context.into();
        move |error| KafkaError::Context {
            context,
            error: Box::new(error),
        }
    }

    /// A malformed events-topic message.
    pub(crate) fn bad_message(what: impl Into<String>) -> KafkaError {
        KafkaError::BadMessage(what.into())
    }
}
