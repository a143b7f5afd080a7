//! Every replay tool against real RocksDB ledgers written the way gpux writes them
//! (see `common`): verification and tampering, state rebuilds, exports, statements,
//! the audit, diffs, and proof that replay never writes.

mod common;

mod audit;
mod diff;
mod export;
mod read_only;
mod rebuild;
mod statement;
mod verify;
