//! The column families of a ledger: [`Cf`], named by the store (where records
//! live) and by the errors (where a corruption was found). It depends on neither,
//! so both can depend on it.

use std::fmt;

/// The column families of a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Commands as applied, key = `cmd_seq` (u64 big-endian).
    Commands,
    /// Events, key = `event_seq` (u64 big-endian).
    Events,
    /// Batch headers (the hash chain), key = `batch_no` (u64 big-endian).
    Batches,
    /// Engine-state snapshots, key = `cmd_seq` (u64 big-endian).
    Snapshots,
    /// Metadata: format, head, consumed offsets (ASCII keys).
    Meta,
    /// The embedded command log, key = inbox seq (u64 big-endian).
    Inbox,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 6] = [
        Cf::Commands,
        Cf::Events,
        Cf::Batches,
        Cf::Snapshots,
        Cf::Meta,
        Cf::Inbox,
    ];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Commands => "commands",
            Cf::Events => "events",
            Cf::Batches => "batches",
            Cf::Snapshots => "snapshots",
            Cf::Meta => "meta",
            Cf::Inbox => "inbox",
        }
    }

    /// Position in [`Cf::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Cf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
