//! gpux ledger: the append-only, hash-chained RocksDB event store (issue #3).
#![deny(missing_docs)]
