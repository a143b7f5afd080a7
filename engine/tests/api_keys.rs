//! Accounts' API keys in the engine: `create_account`'s first key, `add_api_key`
//! up to `API_KEYS_PER_ACCOUNT_MAX`, `revoke_api_key` (rotation, the last key),
//! and keys surviving a snapshot with the state hash covering them.

use gpux_engine::command::{AddApiKey, CreateAccount, RevokeApiKey};
use gpux_engine::limits::API_KEYS_PER_ACCOUNT_MAX;
use gpux_engine::{Command, Engine, Event, KeyDigest, KeyScope, RejectReason};

/// A distinct digest per `n`.
fn digest(n: u8) -> KeyDigest {
    KeyDigest([n; 32])
}

struct Exchange {
    engine: Engine,
    seq: u64,
}

impl Exchange {
    /// Accounts 1 and 2, each opened with a key (digests 1 and 2).
    fn new() -> Self {
        let mut x = Exchange {
            engine: Engine::new(),
            seq: 0,
        };
        for a in [1, 2] {
            x.run(Command::CreateAccount(CreateAccount {
                account: Some(a),
                api_key_sha256: Some(digest(a as u8)),
            }));
        }
        x
    }

    fn run(&mut self, cmd: Command) -> Vec<Event> {
        self.seq += 1;
        let mut out = Vec::new();
        self.engine.apply(self.seq, self.seq, &cmd, &mut out);
        out
    }

    fn add(&mut self, account: u64, d: KeyDigest, scope: KeyScope) -> Vec<Event> {
        self.run(Command::AddApiKey(AddApiKey {
            account,
            api_key_sha256: d,
            scope,
        }))
    }

    fn revoke(&mut self, account: u64, d: KeyDigest, allow_last: bool) -> Vec<Event> {
        self.run(Command::RevokeApiKey(RevokeApiKey {
            account,
            api_key_sha256: d,
            allow_last,
        }))
    }
}

fn rejected(events: &[Event]) -> Option<RejectReason> {
    match events {
        [Event::CommandRejected(r)] => Some(r.reason),
        _ => None,
    }
}

#[test]
fn a_key_is_rotated_and_the_last_one_stays_unless_meant() {
    let mut x = Exchange::new();
    assert_eq!(x.engine.api_key(&digest(1)), Some((1, KeyScope::Full)));
    // Rotation: the new key first, then the old one goes.
    let added = x.add(1, digest(10), KeyScope::Full);
    assert!(matches!(added[..], [Event::ApiKeyAdded(_)]), "{added:?}");
    let revoked = x.revoke(1, digest(1), false);
    assert!(
        matches!(revoked[..], [Event::ApiKeyRevoked(_)]),
        "{revoked:?}"
    );
    assert_eq!(x.engine.api_key(&digest(1)), None);
    assert_eq!(x.engine.api_keys(1), vec![(digest(10), KeyScope::Full)]);
    // Refusals change nothing.
    let before = x.engine.all_api_keys();
    assert_eq!(
        rejected(&x.revoke(1, digest(1), false)),
        Some(RejectReason::UnknownApiKey)
    );
    assert_eq!(
        rejected(&x.revoke(1, digest(2), false)),
        Some(RejectReason::UnknownApiKey)
    );
    assert_eq!(
        rejected(&x.revoke(1, digest(10), false)),
        Some(RejectReason::LastApiKey)
    );
    assert_eq!(
        rejected(&x.add(1, digest(2), KeyScope::Read)),
        Some(RejectReason::ApiKeyInUse)
    );
    assert_eq!(
        rejected(&x.add(9, digest(9), KeyScope::Read)),
        Some(RejectReason::UnknownAccount)
    );
    assert_eq!(
        rejected(&x.add(0, digest(9), KeyScope::Read)),
        Some(RejectReason::ReservedAccount)
    );
    assert_eq!(x.engine.all_api_keys(), before);
    // Meant: the account is locked out.
    assert!(matches!(
        x.revoke(1, digest(10), true)[..],
        [Event::ApiKeyRevoked(_)]
    ));
    assert!(x.engine.api_keys(1).is_empty());
}

#[test]
fn an_account_has_at_most_the_named_number_of_keys() {
    let mut x = Exchange::new();
    for n in 1..API_KEYS_PER_ACCOUNT_MAX {
        let e = x.add(2, digest(100 + n as u8), KeyScope::Trade);
        assert!(matches!(e[..], [Event::ApiKeyAdded(_)]), "{n}: {e:?}");
    }
    assert_eq!(x.engine.api_keys(2).len(), API_KEYS_PER_ACCOUNT_MAX);
    assert_eq!(
        rejected(&x.add(2, digest(99), KeyScope::Read)),
        Some(RejectReason::TooManyApiKeys)
    );
    // Another account is not affected.
    assert!(matches!(
        x.add(1, digest(99), KeyScope::Read)[..],
        [Event::ApiKeyAdded(_)]
    ));
}

#[test]
fn a_digest_another_account_has_opens_an_account_without_a_key() {
    let mut x = Exchange::new();
    let e = x.run(Command::CreateAccount(CreateAccount {
        account: Some(3),
        api_key_sha256: Some(digest(1)),
    }));
    assert!(matches!(e[..], [Event::AccountCreated(_)]), "{e:?}");
    assert!(x.engine.api_keys(3).is_empty());
    assert_eq!(x.engine.api_key(&digest(1)), Some((1, KeyScope::Full)));
}

#[test]
fn keys_survive_a_snapshot_and_count_in_the_state_hash() {
    let mut x = Exchange::new();
    let without = x.engine.state_hash();
    x.add(1, digest(20), KeyScope::Read);
    assert_ne!(x.engine.state_hash(), without, "the hash covers keys");
    let restored: Engine = Engine::restore(&x.engine.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), x.engine.state_hash());
    assert_eq!(restored.all_api_keys(), x.engine.all_api_keys());
    assert_eq!(restored.api_key(&digest(20)), Some((1, KeyScope::Read)));
}
