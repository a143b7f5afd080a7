//! gpux sequencer: the exchange core between the command log and the ledger.
//!
//! | module | owns |
//! |---|---|
//! | [`pipeline`] | [`Exchange`]: decode → engine → group commit → publish, bounded stages, start/recover/shutdown |
//! | [`clock`] | the tick sequenced after an idle interval, so time passes in the log on an idle exchange |
//! | [`recovery`] | [`recovery::state_at`]: the engine rebuilt from the ledger (latest good snapshot, then the commands after it, each checked against the stored events); the [`recovery::Replayer`] loop the auditors' tools share |
//! | [`source`] | [`CommandSource`]: the embedded log ([`EmbeddedSource`]); Kafka lives in `kafka` |
//! | [`kafka`] | Kafka mode: [`kafka::KafkaSource`], [`kafka::KafkaSubmitter`], the events topic ([`kafka::EventsPublisher`], [`kafka::EventsTopicFeed`]), [`kafka::start_exchange`] |
//! | [`submit`] | [`Submitter`]: how commands enter the log ([`EmbeddedSubmitter`], acknowledged once applied and durable) |
//! | [`feed`] | [`Publisher`] and [`Feed`]/[`LedgerFollower`]: committed commands for followers |
//! | [`committed`] | [`CommittedCommand`], the unit every follower sees |
//! | [`error`] | [`SubmitError`], [`FeedError`], [`SourceError`], [`PipelineError`] ([`RecoveryError`] lives in [`recovery`]) |
//!
//! The engine is touched by one thread only (the pipeline's engine thread); everything
//! else (gateway, market data, the events-topic publisher) follows committed batches.

pub mod clock;
pub mod committed;
pub mod error;
pub mod feed;
pub mod kafka;
pub mod pipeline;
pub mod recovery;
pub mod source;
pub mod submit;

pub use clock::{
    tick_payload, ExchangeClock, CLOCK_DRAIN_WAIT, CLOCK_TICK_MS_DEFAULT, TIME_SCALE_MAX,
};
pub use committed::{
    decode_payload, read_committed, request_id_of, CommittedBatch, CommittedCommand,
};
pub use error::{FeedError, PipelineError, SourceError, SubmitError};
pub use feed::{Feed, LedgerFollower, Publisher};
pub use pipeline::{
    Exchange, PipelineOptions, PipelineStats, BATCHES_IN_FLIGHT_MAX_DEFAULT,
    BATCH_COMMANDS_MAX_DEFAULT, DECODE_CHUNK_COMMANDS_DEFAULT, DECODE_QUEUE_CHUNKS_DEFAULT,
    SNAPSHOT_EVERY_EVENTS_DEFAULT,
};
pub use recovery::RecoveryError;
pub use source::{CommandSource, EmbeddedSource, Inbound};
pub use submit::{
    EmbeddedSubmitter, SubmitDone, Submitter, EMBEDDED_QUEUE_BYTES, EMBEDDED_QUEUE_COMMANDS,
    MAX_COMMAND_BYTES,
};

// The engine's bounds and the ledger's, asserted together where both crates meet
// (as TigerBeetle's constants.zig does): a command whose events the ledger refuses
// would stop the pipeline, and stop it again at the same command after every
// restart. The engine emits at most `EVENTS_PER_COMMAND_WORST` events per command
// (expiries, then the command itself; see its arithmetic), each at most
// `EVENT_JSON_BYTES_MAX` bytes of JSON (and its ledger encoding is never longer
// than its JSON: engine/tests/bounds.rs and gate_bounds.rs); the ledger takes at most
// `EVENTS_PER_COMMAND_MAX` events per command and `PAYLOAD_BYTES_MAX` bytes per
// event. The ledger has no bound on a command's total bytes (the group committer's
// `max_bytes_per_write` only decides when to stop adding commands to a write), and
// the events topic splits a large command into parts.
const _: () = assert!(
    gpux_engine::limits::EVENTS_PER_COMMAND_WORST <= gpux_ledger::EVENTS_PER_COMMAND_MAX,
    "one command can emit more events than the ledger accepts"
);
const _: () = assert!(
    gpux_engine::limits::EVENT_JSON_BYTES_MAX <= gpux_ledger::PAYLOAD_BYTES_MAX,
    "one event can be larger than the ledger accepts"
);
