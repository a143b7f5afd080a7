//! Cancel-after, the dead man's switch (as Kraken's `cancel_after`): an account
//! sets a timeout with `POST /v1/cancel-after`; if it does not renew it in time,
//! the gateway cancels all the account's open orders with a sequenced `mass_cancel`
//! whose envelope's `request_id` is `cancel_after:<account>:<trigger ms>`, so the
//! ledger, replay and audits see why the orders went.
//!
//! Owns the per-account deadlines. A deadline lives in the gateway that set it (in
//! memory, like a session): a restart of that gateway, or a renewal sent to another
//! gateway, does not carry it over. Each armed account has one timer task; a
//! renewal or a disarm (timeout 0) replaces the account's generation, so an older
//! timer that wakes finds itself outdated and does nothing. The envelope is marked
//! idempotent, so the engine applies a given trigger at most once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gpux_engine::command::MassCancel;
use gpux_engine::{AccountId, Command, CommandEnvelope, PROTOCOL_VERSION};
use gpux_sequencer::Submitter;

use crate::replica::now_ns;

/// The longest accepted timeout, milliseconds (one day).
pub const TIMEOUT_MS_MAX: u64 = 86_400_000;

/// The armed deadlines of this gateway.
#[derive(Debug, Default)]
pub struct CancelAfter {
    /// The generation of each armed account's switch.
    armed: Mutex<HashMap<AccountId, u64>>,
    /// The last generation given out (never reused, so a timer of a switch that
    /// was disarmed and armed again cannot mistake the new one for its own).
    generations: std::sync::atomic::AtomicU64,
}

impl CancelAfter {
    /// Arms (or renews) `account`'s switch to fire `timeout_ms` after `now_ms`
    /// (the gateway's clock, unix ms, as the caller read it), or
    /// disarms it when `timeout_ms` is 0. Returns the trigger time, unix ms
    /// (`None`: disarmed). The caller checks `timeout_ms <= TIMEOUT_MS_MAX`.
    pub fn arm(
        self: &Arc<Self>,
        account: AccountId,
        now_ms: u64,
        timeout_ms: u64,
        submitter: Arc<dyn Submitter>,
    ) -> Option<u64> {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if timeout_ms == 0 {
            armed.remove(&account);
            return None;
        }
        let trigger_ms = now_ms + timeout_ms;
        armed.insert(account, generation);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            if me.take_if_current(account, generation) {
                submit_cancel_all(&*submitter, account, trigger_ms);
            }
        });
        Some(trigger_ms)
    }

    /// Whether `generation` is still `account`'s armed switch; if so, disarms it.
    fn take_if_current(&self, account: AccountId, generation: u64) -> bool {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        match armed.get(&account) {
            Some(g) if *g == generation => {
                armed.remove(&account);
                true
            }
            _ => false,
        }
    }
}

/// The request id of the `mass_cancel` a trigger sequences.
pub fn request_id(account: AccountId, trigger_ms: u64) -> String {
    format!("cancel_after:{account}:{trigger_ms}")
}

fn submit_cancel_all(submitter: &dyn Submitter, account: AccountId, trigger_ms: u64) {
    let payload = CommandEnvelope {
        v: PROTOCOL_VERSION,
        ts_ns: now_ns(),
        request_id: Some(request_id(account, trigger_ms)),
        idempotent: true,
        command: Command::MassCancel(MassCancel {
            account,
            market: None,
            slot: None,
        }),
    }
    .to_json()
    .into_bytes();
    submitter.submit(
        payload,
        Box::new(move |r| {
            if let Err(e) = r {
                tracing::error!(account, error = %e, "cancel-after: the mass cancel was not sequenced");
            }
        }),
    );
}
