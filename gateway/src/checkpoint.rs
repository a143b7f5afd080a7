//! The gateway's checkpoint: everything its core thread folded from the log, as of
//! one committed command, in one file, so a restarted gateway follows the log from
//! that command instead of from cmd_seq 1.
//!
//! Owns [`Checkpoint`] (the replica engine, the order and fill history, the
//! idempotency cache, market data's trades and candles), its file format
//! ([`write`], [`read`]), [`LastCommand`] (which command it was taken after, as the
//! log has it) and [`Checkpointer`], the thread that writes checkpoints while the
//! core thread goes on.
//!
//! Why: the history, the idempotency cache and the candles are defined as a fold
//! over every committed command since genesis, so without a checkpoint a restart
//! re-applies the whole ledger (17–20 s for a million commands) before it serves.
//!
//! Trust: a checkpoint is the gateway's own derived state, never the record. It is
//! used only if its file is whole (CRC-32 over the body), its format version is
//! this one, its bounds are the ones configured, and the log's command at its
//! `cmd_seq` is the one it was taken after ([`LastCommand`]: sequence number,
//! timestamp, first event, SHA-256 of payload and events). Otherwise the gateway
//! says why and folds from cmd_seq 1, as without one. After a restore every
//! command is still re-applied and compared with the committed events, so a
//! checkpoint that does not match the log shows as a divergence and is rebuilt
//! from cmd_seq 1. File layout: `docs/ARCHITECTURE.md`, "The gateway's read
//! replica".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use gpux_engine::Engine;
use gpux_sequencer::CommittedCommand;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bookcount::BookCounts;
use crate::history::History;
use crate::idempotency::RequestsCheckpoint;
use crate::marketdata::MarketDataCheckpoint;

/// The checkpoint's file name in its directory.
pub const FILE_NAME: &str = "gateway.checkpoint";

/// The lock file a writer holds in its directory.
const LOCK_NAME: &str = "gateway.lock";

/// First bytes of a checkpoint file.
const MAGIC: &[u8; 8] = b"GPUXGWCK";

/// The file format's version; a file of another version is not read.
const VERSION: u32 = 1;

/// Bytes before the body: magic, version, body length.
const HEADER_BYTES: usize = 8 + 4 + 8;

/// Default [`GatewayConfig::checkpoint_every_commands`](crate::GatewayConfig::checkpoint_every_commands).
pub const EVERY_COMMANDS_DEFAULT: u64 = 100_000;

/// Least time between two checkpoints while running: a checkpoint costs about
/// 1.5 s of a core per million orders of history to write, so under a sustained
/// load `every_commands` alone could keep a core busy writing them.
pub const SPACING_MIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The committed command a checkpoint was taken after, as the log has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCommand {
    /// Its sequence number.
    pub cmd_seq: u64,
    /// Its timestamp.
    pub ts_ns: u64,
    /// `event_seq` of its first event.
    pub first_event_seq: u64,
    /// SHA-256 of its payload bytes.
    pub payload_sha256: [u8; 32],
    /// SHA-256 of its events as JSON.
    pub events_sha256: [u8; 32],
}

impl LastCommand {
    /// `cmd`'s identity.
    pub fn of(cmd: &CommittedCommand) -> Self {
        let events = serde_json::to_vec(&cmd.events).unwrap_or_default();
        LastCommand {
            cmd_seq: cmd.cmd_seq,
            ts_ns: cmd.ts_ns,
            first_event_seq: cmd.first_event_seq,
            payload_sha256: Sha256::digest(&cmd.payload).into(),
            events_sha256: Sha256::digest(&events).into(),
        }
    }
}

/// The core thread's state after [`LastCommand`].
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The command it was taken after.
    pub last: LastCommand,
    /// The replica engine.
    pub engine: Engine,
    /// Orders, fills and delivery schedules.
    pub history: History,
    /// Resting orders and levels per market (for metrics).
    pub books: BookCounts,
    /// Completed keyed requests and originals of duplicates.
    pub requests: RequestsCheckpoint,
    /// Trades, candles and book sequence numbers.
    pub market_data: MarketDataCheckpoint,
}

/// The file's body (postcard), as read.
#[derive(Deserialize)]
struct Body {
    last: LastCommand,
    /// `Engine::snapshot`.
    engine: Vec<u8>,
    history: History,
    books: BookCounts,
    requests: RequestsCheckpoint,
    market_data: MarketDataCheckpoint,
}

/// The same body, as written (fields in the same order).
#[derive(Serialize)]
struct BodyRef<'a> {
    last: &'a LastCommand,
    engine: Vec<u8>,
    history: &'a History,
    books: &'a BookCounts,
    requests: &'a RequestsCheckpoint,
    market_data: &'a MarketDataCheckpoint,
}

/// Why a checkpoint file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a whole checkpoint of this version.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Writes `ck` to `dir` atomically (a temporary file, synced, renamed over the
/// old one, the directory synced). Returns the bytes written.
pub fn write(dir: &Path, ck: &Checkpoint) -> Result<u64, CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    let path = dir.join(FILE_NAME);
    let body = BodyRef {
        last: &ck.last,
        engine: ck.engine.snapshot(),
        history: &ck.history,
        books: &ck.books,
        requests: &ck.requests,
        market_data: &ck.market_data,
    };
    let body = postcard::to_stdvec(&body).map_err(|e| CheckpointError::Invalid {
        path: path.clone(),
        why: format!("cannot encode: {e}"),
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut out = std::io::BufWriter::new(&mut f);
        out.write_all(MAGIC)
            .and_then(|()| out.write_all(&VERSION.to_le_bytes()))
            .and_then(|()| out.write_all(&(body.len() as u64).to_le_bytes()))
            .and_then(|()| out.write_all(&body))
            .and_then(|()| out.write_all(&crc32fast::hash(&body).to_le_bytes()))
            .and_then(|()| out.flush())
            .map_err(io(&tmp))?;
        drop(out);
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok((HEADER_BYTES + body.len() + 4) as u64)
}

/// Reads the checkpoint in `dir`: `Ok(None)` if there is none.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path, source }),
    };
    let invalid = |why: String| CheckpointError::Invalid {
        path: path.clone(),
        why,
    };
    let body = framed_body(&bytes).map_err(invalid)?;
    let body: Body =
        postcard::from_bytes(body).map_err(|e| invalid(format!("cannot decode: {e}")))?;
    let engine = Engine::restore(&body.engine)
        .map_err(|e| invalid(format!("its engine state does not restore: {e}")))?;
    if engine.last_seq() != body.last.cmd_seq {
        return Err(invalid(format!(
            "its engine is at cmd_seq {}, not {}",
            engine.last_seq(),
            body.last.cmd_seq
        )));
    }
    Ok(Some(Checkpoint {
        last: body.last,
        engine,
        history: body.history,
        books: body.books,
        requests: body.requests,
        market_data: body.market_data,
    }))
}

/// The body of a whole file of this version.
fn framed_body(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER_BYTES + 4 || &bytes[..8] != MAGIC {
        return Err("not a gateway checkpoint".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(format!(
            "checkpoint format version {version}; this gateway reads version {VERSION}"
        ));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let len = usize::try_from(len).map_err(|_| "body length out of range".to_string())?;
    if bytes.len() != HEADER_BYTES + len + 4 {
        return Err(format!(
            "{} bytes, the header says {}: cut short or extended",
            bytes.len(),
            HEADER_BYTES + len + 4
        ));
    }
    let (body, crc) = bytes[HEADER_BYTES..].split_at(len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("its CRC-32 does not match: damaged".into());
    }
    Ok(body)
}

/// Removes `dir`'s temporary files of unfinished writes (`FILE_NAME.tmp.*`).
fn remove_partial_writes(dir: &Path) {
    let prefix = format!("{FILE_NAME}.tmp.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a partial gateway checkpoint");
            }
        }
    }
}

/// The thread that writes checkpoints, one at a time, while the core thread goes
/// on. Dropping it waits for the checkpoint being written.
pub struct Checkpointer {
    /// `LOCK_NAME`, locked while this writer lives.
    _lock: std::fs::File,
    tx: Option<SyncSender<(Checkpoint, std::time::Duration)>>,
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("busy", &self.busy())
            .finish()
    }
}

impl Checkpointer {
    /// Starts the writer thread for `dir` (created if missing), removing what a
    /// writer killed mid-write left there. A checkpoint directory belongs to one
    /// gateway: fails if another process's writer holds its lock file.
    pub fn start(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_NAME))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("another gateway writes its checkpoint in {}", dir.display()),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        remove_partial_writes(&dir);
        let (tx, rx) = mpsc::sync_channel::<(Checkpoint, std::time::Duration)>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let writing = Arc::clone(&busy);
        let thread = std::thread::Builder::new()
            .name("gpux-gw-ckpt".into())
            .spawn(move || {
                let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                for (ck, copy) in rx {
                    let started = std::time::Instant::now();
                    match write(&dir, &ck) {
                        Ok(bytes) => tracing::info!(
                            cmd_seq = ck.last.cmd_seq,
                            bytes,
                            copy_ms = ms(copy),
                            write_ms = ms(started.elapsed()),
                            "gateway checkpoint written"
                        ),
                        Err(e) => tracing::warn!(error = %e, "cannot write the gateway checkpoint"),
                    }
                    writing.store(false, Ordering::Release);
                }
            })?;
        Ok(Checkpointer {
            _lock: lock,
            tx: Some(tx),
            busy,
            thread: Some(thread),
        })
    }

    /// Whether a checkpoint is being written (the core thread copies its state
    /// for the next one only when none is).
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Hands `ck` to the writer (waits only if one is still being written);
    /// `copy` is how long the core thread took to copy it (for the log).
    pub fn submit(&self, ck: Checkpoint, copy: std::time::Duration) {
        if let Some(tx) = &self.tx {
            self.busy.store(true, Ordering::Release);
            if tx.send((ck, copy)).is_err() {
                self.busy.store(false, Ordering::Release);
            }
        }
    }

    /// Writes `ck`, if given, after the checkpoint being written, and waits for
    /// both.
    pub fn finish(mut self, ck: Option<(Checkpoint, std::time::Duration)>) {
        if let Some((ck, copy)) = ck {
            self.submit(ck, copy);
        }
        self.join();
    }

    fn join(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.join();
    }
}

/// `#[serde(with = …)]` for `Decimal` fields kept in a checkpoint: the 16 bytes
/// of [`Decimal::serialize`] (exact, scale included; the default `Decimal`
/// deserializer asks for `deserialize_any`, which postcard has not, and
/// strings cost a parse each).
pub(crate) mod decimal_bin {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&d.serialize(), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        <[u8; 16]>::deserialize(d).map(Decimal::deserialize)
    }
}

/// [`decimal_bin`] for `Option<Decimal>`.
pub(crate) mod decimal_bin_option {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&d.map(|d| d.serialize()), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<[u8; 16]>::deserialize(d).map(|o| o.map(Decimal::deserialize))
    }
}

/// [`decimal_bin`] for a map of decimals by account (as pairs).
pub(crate) mod decimal_map {
    use std::collections::HashMap;

    use gpux_engine::AccountId;
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        m: &HashMap<AccountId, Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(a, d)| (*a, d.serialize())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<AccountId, Decimal>, D::Error> {
        Ok(Vec::<(AccountId, [u8; 16])>::deserialize(d)?
            .into_iter()
            .map(|(a, d)| (a, Decimal::deserialize(d)))
            .collect())
    }
}

/// The fills kept per account, in a checkpoint: [`Fill`](crate::history::Fill)
/// without its JSON form (decimals as in [`decimal_bin`], the slot as seconds).
pub(crate) mod fills_bin {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Arc;

    use gpux_engine::{AccountId, MarketId, OrderId, Side, TradeId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::history::{Fill, Liquidity};
    use crate::marketdata::wire::SlotName;

    #[derive(Serialize, Deserialize)]
    struct FillBin {
        trade_id: TradeId,
        order_id: OrderId,
        market: MarketId,
        slot: u64,
        side: Side,
        price: [u8; 16],
        quantity: [u8; 16],
        fee: [u8; 16],
        liquidity: Liquidity,
        cmd_seq: u64,
        ts_ns: u64,
        ts_ms: u64,
    }

    impl From<&Fill> for FillBin {
        fn from(f: &Fill) -> Self {
            FillBin {
                trade_id: f.trade_id,
                order_id: f.order_id,
                market: f.market,
                slot: f.slot.0,
                side: f.side,
                price: f.price.serialize(),
                quantity: f.quantity.serialize(),
                fee: f.fee.serialize(),
                liquidity: f.liquidity,
                cmd_seq: f.cmd_seq,
                ts_ns: f.ts_ns,
                ts_ms: f.ts_ms,
            }
        }
    }

    impl From<FillBin> for Fill {
        fn from(f: FillBin) -> Self {
            use rust_decimal::Decimal;
            Fill {
                trade_id: f.trade_id,
                order_id: f.order_id,
                market: f.market,
                slot: SlotName(f.slot),
                side: f.side,
                price: Decimal::deserialize(f.price),
                quantity: Decimal::deserialize(f.quantity),
                fee: Decimal::deserialize(f.fee),
                liquidity: f.liquidity,
                cmd_seq: f.cmd_seq,
                ts_ns: f.ts_ns,
                ts_ms: f.ts_ms,
            }
        }
    }

    pub fn serialize<S: Serializer>(
        m: &HashMap<AccountId, Arc<VecDeque<Fill>>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            m.iter()
                .map(|(a, q)| (*a, q.iter().map(FillBin::from).collect::<Vec<_>>())),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<AccountId, Arc<VecDeque<Fill>>>, D::Error> {
        Ok(Vec::<(AccountId, Vec<FillBin>)>::deserialize(d)?
            .into_iter()
            .map(|(a, q)| (a, Arc::new(q.into_iter().map(Fill::from).collect())))
            .collect())
    }
}

/// `#[serde(with = …)]` for maps of shared values (`HashMap<K, Arc<V>>`, which
/// the history keeps so a checkpoint's copy shares them): written as the values.
pub(crate) mod arc_map {
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &HashMap<K, Arc<V>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, &**v)))
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, Arc<V>>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(HashMap::<K, V>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HistoryConfig;

    fn checkpoint() -> Checkpoint {
        let mut engine = Engine::new();
        let mut events = Vec::new();
        let payload = br#"{"v":3,"ts_ns":5,"command":{"type":"tick"}}"#;
        engine.apply_json(1, 5, payload, &mut events);
        let cmd = CommittedCommand {
            cmd_seq: 1,
            ts_ns: 5,
            first_event_seq: 1,
            request_id: None,
            payload: payload.to_vec(),
            command: None,
            events,
        };
        Checkpoint {
            last: LastCommand::of(&cmd),
            engine,
            history: History::new(HistoryConfig::default()),
            books: BookCounts::default(),
            requests: RequestsCheckpoint::default(),
            market_data: MarketDataCheckpoint::default(),
        }
    }

    #[test]
    fn a_written_checkpoint_reads_back_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none(), "none yet");
        let ck = checkpoint();
        let bytes = write(dir.path(), &ck).unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back.last, ck.last);
        assert_eq!(back.engine.state_hash(), ck.engine.state_hash());

        let good = std::fs::read(&path).unwrap();
        let refused = |bytes: &[u8], why: &str| {
            std::fs::write(&path, bytes).unwrap();
            match read(dir.path()) {
                Err(CheckpointError::Invalid { why: w, .. }) => {
                    assert!(w.contains(why), "{w:?} should say {why:?}")
                }
                other => panic!("{why}: {other:?}"),
            }
        };
        let mut flipped = good.clone();
        let mid = HEADER_BYTES + (good.len() - HEADER_BYTES) / 2;
        flipped[mid] ^= 1;
        refused(&flipped, "CRC-32");
        refused(&good[..good.len() - 1], "cut short");
        let mut other_version = good.clone();
        other_version[8] = 9;
        refused(&other_version, "format version 9");
        refused(
            b"not a checkpoint at all, just text",
            "not a gateway checkpoint",
        );
    }

    #[test]
    fn one_writer_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = Checkpointer::start(dir.path().to_path_buf()).unwrap();
        let second = Checkpointer::start(dir.path().to_path_buf()).unwrap_err();
        assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock);
        assert!(second.to_string().contains("another gateway"), "{second}");
        drop(first);
        Checkpointer::start(dir.path().to_path_buf()).expect("free once the first stopped");
    }

    #[test]
    fn a_writer_removes_partial_writes_and_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(format!("{FILE_NAME}.tmp.999999"));
        std::fs::write(&partial, b"half a checkpoint").unwrap();
        let w = Checkpointer::start(dir.path().to_path_buf()).unwrap();
        assert!(!partial.exists(), "a killed writer's file is removed");
        w.finish(Some((checkpoint(), std::time::Duration::ZERO)));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [FILE_NAME, LOCK_NAME]);
        assert_eq!(read(dir.path()).unwrap().unwrap().last.cmd_seq, 1);
    }
}
