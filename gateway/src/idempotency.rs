//! Request ↔ command correlation and idempotency.
//!
//! Every command the gateway submits carries a `request_id` in its envelope; the
//! core thread sees it again on the committed command and resolves the waiting
//! request. This module owns the request ids, the table of requests in flight and
//! the cache of completed keyed requests ([`Requests`]).
//!
//! **Keyed requests.** A request with an `Idempotency-Key` (or, for orders, a
//! `client_order_id`) gets a request id derived from who sent it and the key:
//! `i:` + 32 hex digits of SHA-256(principal, key) + `:` + 32 hex digits of the
//! request's fingerprint (SHA-256 of the operation, its path parameters and its
//! normalised body). Because the id is in the log, the core thread — which sees every
//! committed command from cmd_seq 1 — rebuilds the cache after a restart, and every
//! gateway following the same log shares it. A retry with the same key and body
//! returns the original result without submitting; with another body it is refused
//! (`idempotency_key_reused`); while the first is in flight it waits for it.
//!
//! **Window.** Completed keyed requests are remembered for
//! [`IdempotencyConfig::window`] of exchange time and at most
//! [`IdempotencyConfig::max_entries`] of them, whichever is smaller; the window is
//! measured on the commands' timestamps, so it is the same after a replay.
//!
//! **Across gateways.** Two copies of one keyed request sent at the same moment to
//! two *different* gateways are both submitted (each gateway's in-flight table is
//! its own), as is a retry while the first attempt is still in a restarting
//! gateway's producer queue. The engine settles it: keyed requests are submitted
//! as `idempotent` commands, so the engine applies the first copy and records
//! the second as `duplicate_request { original_cmd_seq }` without effect
//! (`docs/PROTOCOL.md`, "Idempotent requests"). Every gateway answers such a
//! duplicate with the original command's outcome: it keeps the outcome of every
//! keyed command the engine still remembers ([`Requests::committed`]), so both
//! copies get the same answer. What the engine cannot catch is the same key with a
//! *different* body on two gateways at once (two request ids): both take effect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use gpux_engine::Event;
use gpux_sequencer::SubmitError;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::auth::Principal;
use crate::config::IdempotencyConfig;
use crate::error::ApiError;

/// Longest accepted `Idempotency-Key`, bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

const KEYED_PREFIX: &str = "i:";
const RANDOM_PREFIX: &str = "r:";

/// [`Requests`] as the gateway's checkpoint keeps it: each outcome once (a
/// duplicate's cached answer is its original's), events as JSON (the engine's
/// events are tagged JSON objects).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestsCheckpoint {
    /// The outcomes referred to below, by `cmd_seq`.
    outcomes: Vec<OutcomeRecord>,
    /// Completed keyed requests, oldest first: `(ts_ns, slot, fingerprint,
    /// outcome's cmd_seq)`.
    completed: Vec<(u64, String, String, u64)>,
    /// `cmd_seq`s of the originals kept for answering duplicates.
    originals: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct OutcomeRecord {
    cmd_seq: u64,
    ts_ns: u64,
    events_json: String,
}

/// What the log and engine made of a command: enough to build any response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The command's sequence number.
    pub cmd_seq: u64,
    /// Its sequenced timestamp.
    pub ts_ns: u64,
    /// Its events (possibly including other accounts' GTD expiries).
    pub events: Vec<Event>,
}

/// How a submitted request ended.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Committed and applied by the replica.
    Committed(Arc<Outcome>),
    /// The log refused it; nothing was sequenced.
    Failed(SubmitError),
    /// The gateway refused it before submitting (checks against the replica).
    Refused(ApiError),
}

/// The identity of one request in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    /// What the in-flight table and the cache are keyed by (the whole request id for
    /// unkeyed requests; the principal+key part for keyed ones).
    pub slot: String,
    /// The request's fingerprint (keyed requests only).
    pub fingerprint: Option<String>,
    /// The `request_id` written into the command envelope.
    pub request_id: String,
}

impl RequestId {
    /// A fresh random id for a request without an idempotency key.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        let id = format!("{RANDOM_PREFIX}{}", hex::encode(b));
        RequestId {
            slot: id.clone(),
            fingerprint: None,
            request_id: id,
        }
    }

    /// The id of a keyed request: derived from who sent it, the key and the
    /// request's fingerprint.
    pub fn keyed(principal: Principal, key: &str, fingerprint: &[u8; 32]) -> Self {
        let scope = match principal {
            Principal::Admin => "admin".to_string(),
            Principal::Account(a) => format!("account:{a}"),
        };
        let mut h = Sha256::new();
        h.update(scope.as_bytes());
        h.update([0u8]);
        h.update(key.as_bytes());
        let slot = format!("{KEYED_PREFIX}{}", hex::encode(&h.finalize()[..16]));
        let fp = hex::encode(&fingerprint[..16]);
        RequestId {
            request_id: format!("{slot}:{fp}"),
            slot,
            fingerprint: Some(fp),
        }
    }

    /// Parses a request id seen on a committed command.
    pub fn parse(request_id: &str) -> Option<RequestId> {
        if request_id.starts_with(RANDOM_PREFIX) {
            return Some(RequestId {
                slot: request_id.to_string(),
                fingerprint: None,
                request_id: request_id.to_string(),
            });
        }
        let rest = request_id.strip_prefix(KEYED_PREFIX)?;
        let (key, fp) = rest.split_once(':')?;
        Some(RequestId {
            slot: format!("{KEYED_PREFIX}{key}"),
            fingerprint: Some(fp.to_string()),
            request_id: request_id.to_string(),
        })
    }
}

/// SHA-256 of what makes two requests "the same": the operation, its path
/// parameters and its normalised body.
pub fn fingerprint(operation: &str, path: &str, body: &impl serde::Serialize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0u8]);
    h.update(path.as_bytes());
    h.update([0u8]);
    h.update(serde_json::to_vec(body).unwrap_or_default());
    h.finalize().into()
}

/// The cmd_seq of the original command, if the engine recorded this one as a
/// repeat of it.
fn duplicate_of(outcome: &Outcome) -> Option<u64> {
    outcome.events.iter().find_map(|e| match e {
        Event::DuplicateRequest(d) => Some(d.original_cmd_seq),
        _ => None,
    })
}

/// Checks an `Idempotency-Key` header value: 1 to 128 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= IDEMPOTENCY_KEY_BYTES_MAX
        && key.bytes().all(|b| b.is_ascii_graphic())
}

struct InFlight {
    fingerprint: Option<String>,
    tx: watch::Sender<Option<Resolution>>,
}

struct Completed {
    fingerprint: String,
    outcome: Arc<Outcome>,
}

#[derive(Default)]
struct Table {
    in_flight: HashMap<String, InFlight>,
    cache: HashMap<String, Completed>,
    /// Cache slots by insertion, with their command's timestamp, for eviction.
    order: VecDeque<(u64, String)>,
    /// The outcome of every keyed command the engine still remembers, by cmd_seq:
    /// what a later `duplicate_request` of it is answered with.
    originals: BTreeMap<u64, Arc<Outcome>>,
}

/// What to do with a request.
pub enum Admission {
    /// Submit the command; then wait on the receiver.
    Submit(watch::Receiver<Option<Resolution>>),
    /// The same request is in flight: wait on the receiver, do not submit.
    Wait(watch::Receiver<Option<Resolution>>),
    /// The same request completed before: answer with its outcome.
    Done(Arc<Outcome>),
    /// The key was used for another request.
    KeyReused,
    /// Too many requests in flight.
    Full,
}

/// Requests in flight and completed keyed requests.
pub struct Requests {
    cfg: IdempotencyConfig,
    max_in_flight: usize,
    table: Mutex<Table>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.lock();
        f.debug_struct("Requests")
            .field("in_flight", &t.in_flight.len())
            .field("cached", &t.cache.len())
            .finish()
    }
}

impl Requests {
    /// An empty table.
    pub fn new(cfg: IdempotencyConfig, max_in_flight: usize) -> Self {
        Requests {
            cfg,
            max_in_flight,
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides, atomically with the core thread's resolutions, whether `id` is new
    /// (registered as in flight), in flight, or done.
    pub fn admit(&self, id: &RequestId) -> Admission {
        let mut t = self.lock();
        if let Some(c) = t.cache.get(&id.slot) {
            return if Some(&c.fingerprint) == id.fingerprint.as_ref() {
                Admission::Done(Arc::clone(&c.outcome))
            } else {
                Admission::KeyReused
            };
        }
        if let Some(f) = t.in_flight.get(&id.slot) {
            return if f.fingerprint == id.fingerprint {
                Admission::Wait(f.tx.subscribe())
            } else {
                Admission::KeyReused
            };
        }
        if t.in_flight.len() >= self.max_in_flight {
            return Admission::Full;
        }
        let (tx, rx) = watch::channel(None);
        t.in_flight.insert(
            id.slot.clone(),
            InFlight {
                fingerprint: id.fingerprint.clone(),
                tx,
            },
        );
        Admission::Submit(rx)
    }

    /// The log refused the request: forget it (a retry submits again) and tell
    /// whoever waits.
    pub fn fail(&self, id: &RequestId, error: SubmitError) {
        self.resolve_unsequenced(id, Resolution::Failed(error));
    }

    /// The gateway refused the request before submitting it: forget it and give
    /// whoever waits for the same request the same answer.
    pub fn refuse(&self, id: &RequestId, error: ApiError) {
        self.resolve_unsequenced(id, Resolution::Refused(error));
    }

    fn resolve_unsequenced(&self, id: &RequestId, r: Resolution) {
        let entry = {
            let mut t = self.lock();
            match t.in_flight.get(&id.slot) {
                Some(f) if f.fingerprint == id.fingerprint => t.in_flight.remove(&id.slot),
                _ => None,
            }
        };
        if let Some(f) = entry {
            let _ = f.tx.send(Some(r));
        }
    }

    /// A request without a key gave up waiting: nobody can ask for it again.
    pub fn abandon(&self, id: &RequestId) {
        if id.fingerprint.is_none() {
            self.lock().in_flight.remove(&id.slot);
        }
    }

    /// The core thread saw `request_id` committed (and applied): remember keyed
    /// requests, wake whoever waits.
    ///
    /// A keyed command's outcome is also kept as an original while the engine
    /// remembers its request id (see [`forget_originals_before`](Self::forget_originals_before)).
    /// A command the engine recorded as `duplicate_request` resolves with its
    /// original's outcome instead of its own, exactly as if it were the first
    /// answer: a retry through another gateway gets the same response.
    pub fn committed(&self, request_id: &str, outcome: impl FnOnce() -> Arc<Outcome>) {
        let Some(id) = RequestId::parse(request_id) else {
            return;
        };
        let waiter = {
            let mut t = self.lock();
            let waiter = match t.in_flight.get(&id.slot) {
                Some(f) if f.fingerprint == id.fingerprint => t.in_flight.remove(&id.slot),
                _ => None,
            };
            if waiter.is_none() && id.fingerprint.is_none() {
                return; // nobody waits and nobody can ask again
            }
            let mut outcome = outcome();
            let ts = outcome.ts_ns;
            if id.fingerprint.is_some() {
                match duplicate_of(&outcome) {
                    Some(seq) => match t.originals.get(&seq) {
                        Some(original) => outcome = Arc::clone(original),
                        None => tracing::error!(
                            request_id,
                            original_cmd_seq = seq,
                            "a duplicate request's original outcome is not known"
                        ),
                    },
                    None => {
                        t.originals.insert(outcome.cmd_seq, Arc::clone(&outcome));
                    }
                }
            }
            if let Some(fp) = &id.fingerprint {
                if !t.cache.contains_key(&id.slot) {
                    t.cache.insert(
                        id.slot.clone(),
                        Completed {
                            fingerprint: fp.clone(),
                            outcome: Arc::clone(&outcome),
                        },
                    );
                    t.order.push_back((ts, id.slot.clone()));
                    self.evict(&mut t, ts);
                }
            }
            waiter.map(|w| (w, outcome))
        };
        if let Some((w, outcome)) = waiter {
            let _ = w.tx.send(Some(Resolution::Committed(outcome)));
        }
    }

    /// Forgets the originals of commands before `oldest` (the oldest command whose
    /// request id the engine still remembers; `None`: it remembers none). The engine
    /// can no longer call them repeated.
    pub fn forget_originals_before(&self, oldest: Option<u64>) {
        let mut t = self.lock();
        match oldest {
            Some(seq) => t.originals = t.originals.split_off(&seq),
            None => t.originals.clear(),
        }
    }

    /// Outcomes of keyed commands kept for answering duplicates.
    pub fn originals(&self) -> usize {
        self.lock().originals.len()
    }

    fn evict(&self, t: &mut Table, now_ns: u64) {
        let window = u64::try_from(self.cfg.window.as_nanos()).unwrap_or(u64::MAX);
        while let Some((ts, _)) = t.order.front() {
            let expired = now_ns.saturating_sub(*ts) > window;
            if !expired && t.order.len() <= self.cfg.max_entries {
                break;
            }
            if let Some((_, slot)) = t.order.pop_front() {
                t.cache.remove(&slot);
            }
        }
    }

    /// The completed keyed requests and the originals kept for answering
    /// duplicates, for the gateway's checkpoint (requests in flight are not
    /// part of it: their clients are waiting on this process).
    pub fn checkpoint(&self) -> RequestsCheckpoint {
        let t = self.lock();
        let mut outcomes = BTreeMap::new();
        let mut keep = |o: &Arc<Outcome>| {
            outcomes
                .entry(o.cmd_seq)
                .or_insert_with(|| (o.ts_ns, o.events.clone()));
            o.cmd_seq
        };
        let completed = t
            .order
            .iter()
            .filter_map(|(ts, slot)| {
                let c = t.cache.get(slot)?;
                Some((*ts, slot.clone(), c.fingerprint.clone(), keep(&c.outcome)))
            })
            .collect();
        let originals = t.originals.values().map(&mut keep).collect();
        RequestsCheckpoint {
            outcomes: outcomes
                .into_iter()
                .map(|(cmd_seq, (ts_ns, events))| OutcomeRecord {
                    cmd_seq,
                    ts_ns,
                    events_json: serde_json::to_string(&events).unwrap_or_default(),
                })
                .collect(),
            completed,
            originals,
        }
    }

    /// Replaces the completed requests and originals with `ck`'s (requests in
    /// flight stay). Fails if an outcome's events do not parse or an entry names
    /// an outcome `ck` lacks.
    pub fn restore(&self, ck: RequestsCheckpoint) -> Result<(), String> {
        let mut outcomes = BTreeMap::new();
        for o in ck.outcomes {
            let events: Vec<Event> = serde_json::from_str(&o.events_json)
                .map_err(|e| format!("outcome of cmd_seq {}: {e}", o.cmd_seq))?;
            outcomes.insert(
                o.cmd_seq,
                Arc::new(Outcome {
                    cmd_seq: o.cmd_seq,
                    ts_ns: o.ts_ns,
                    events,
                }),
            );
        }
        let outcome = |seq: u64| {
            outcomes
                .get(&seq)
                .cloned()
                .ok_or_else(|| format!("no outcome for cmd_seq {seq}"))
        };
        let mut cache = HashMap::new();
        let mut order = VecDeque::new();
        for (ts, slot, fingerprint, seq) in ck.completed {
            let outcome = outcome(seq)?;
            order.push_back((ts, slot.clone()));
            cache.insert(
                slot,
                Completed {
                    fingerprint,
                    outcome,
                },
            );
        }
        let originals = ck
            .originals
            .into_iter()
            .map(|seq| Ok((seq, outcome(seq)?)))
            .collect::<Result<_, String>>()?;
        let mut t = self.lock();
        t.cache = cache;
        t.order = order;
        t.originals = originals;
        Ok(())
    }

    /// Wakes every waiter with "closed" (shutdown).
    pub fn close_all(&self) {
        self.lock().in_flight.clear();
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Completed keyed requests remembered.
    pub fn cached(&self) -> usize {
        self.lock().cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(seq: u64, ts: u64) -> Arc<Outcome> {
        Arc::new(Outcome {
            cmd_seq: seq,
            ts_ns: ts,
            events: Vec::new(),
        })
    }

    #[test]
    fn keyed_ids_are_deterministic_and_parse_back() {
        let fp = fingerprint("place_order", "", &serde_json::json!({"a": 1}));
        let a = RequestId::keyed(Principal::Account(1), "k", &fp);
        assert_eq!(a, RequestId::keyed(Principal::Account(1), "k", &fp));
        assert_ne!(
            a.slot,
            RequestId::keyed(Principal::Account(2), "k", &fp).slot
        );
        assert_ne!(a.slot, RequestId::keyed(Principal::Admin, "k", &fp).slot);
        assert_eq!(RequestId::parse(&a.request_id), Some(a.clone()));
        assert!(a.request_id.len() <= gpux_engine::command::REQUEST_ID_BYTES_MAX);
        let r = RequestId::random();
        assert_eq!(RequestId::parse(&r.request_id), Some(r));
        assert_eq!(RequestId::parse("s-01"), None);
    }

    #[test]
    fn admission_waits_caches_refuses_and_evicts() {
        let reqs = Requests::new(
            IdempotencyConfig {
                window: Duration::from_nanos(100),
                max_entries: 2,
            },
            10,
        );
        let fp1 = fingerprint("op", "", &1);
        let fp2 = fingerprint("op", "", &2);
        let a = RequestId::keyed(Principal::Account(1), "k", &fp1);
        let a2 = RequestId::keyed(Principal::Account(1), "k", &fp2);
        let Admission::Submit(rx) = reqs.admit(&a) else {
            panic!("first is submitted")
        };
        assert!(matches!(reqs.admit(&a), Admission::Wait(_)));
        assert!(matches!(reqs.admit(&a2), Admission::KeyReused));
        reqs.committed(&a.request_id, || outcome(5, 1_000));
        assert!(matches!(&*rx.borrow(), Some(Resolution::Committed(o)) if o.cmd_seq == 5));
        assert!(matches!(reqs.admit(&a), Admission::Done(o) if o.cmd_seq == 5));
        assert!(matches!(reqs.admit(&a2), Admission::KeyReused));
        // Past the window (exchange time), the key is forgotten.
        let b = RequestId::keyed(Principal::Account(1), "other", &fp1);
        assert!(matches!(reqs.admit(&b), Admission::Submit(_)));
        reqs.committed(&b.request_id, || outcome(6, 1_200));
        assert!(matches!(reqs.admit(&a), Admission::Submit(_)));
        // A failed submission is forgotten so that a retry submits again.
        let c = RequestId::keyed(Principal::Account(1), "c", &fp1);
        assert!(matches!(reqs.admit(&c), Admission::Submit(_)));
        reqs.fail(&c, SubmitError::Overloaded);
        assert!(matches!(reqs.admit(&c), Admission::Submit(_)));
        // Commands committed by other gateways fill the cache too.
        let d = RequestId::keyed(Principal::Account(9), "d", &fp1);
        reqs.committed(&d.request_id, || outcome(7, 1_250));
        assert!(matches!(reqs.admit(&d), Admission::Done(o) if o.cmd_seq == 7));
        assert!(reqs.cached() <= 2);
    }

    #[test]
    fn a_duplicate_resolves_with_the_original_outcome_until_the_engine_forgets_it() {
        let reqs = Requests::new(
            IdempotencyConfig {
                window: Duration::from_secs(3600),
                max_entries: 1,
            },
            10,
        );
        let fp = fingerprint("op", "", &1);
        let a = RequestId::keyed(Principal::Admin, "a", &fp);
        let b = RequestId::keyed(Principal::Admin, "b", &fp);
        let original = Arc::new(Outcome {
            cmd_seq: 5,
            ts_ns: 1_000,
            events: vec![Event::MassCancelled(gpux_engine::event::MassCancelled {
                account: 1,
                market: None,
                slot: None,
                count: 0,
            })],
        });
        reqs.committed(&a.request_id, || Arc::clone(&original));
        reqs.committed(&b.request_id, || outcome(6, 1_100)); // the cache forgets `a`
        assert_eq!(reqs.originals(), 2);
        // A retry of `a` is submitted again; the engine calls it a duplicate of 5.
        let Admission::Submit(rx) = reqs.admit(&a) else {
            panic!("the cache forgot it")
        };
        let duplicate = |seq| {
            Arc::new(Outcome {
                cmd_seq: seq,
                ts_ns: 1_200,
                events: vec![Event::DuplicateRequest(gpux_engine::DuplicateRequest {
                    request_id: a.request_id.clone(),
                    original_cmd_seq: 5,
                })],
            })
        };
        reqs.committed(&a.request_id, || duplicate(7));
        assert!(
            matches!(&*rx.borrow(), Some(Resolution::Committed(o)) if **o == *original),
            "answered as the first time"
        );
        assert!(matches!(reqs.admit(&a), Admission::Done(o) if *o == *original));
        // Duplicates are not originals; originals go once the engine forgets them.
        assert_eq!(reqs.originals(), 2);
        reqs.forget_originals_before(Some(6));
        assert_eq!(reqs.originals(), 1);
        reqs.forget_originals_before(None);
        assert_eq!(reqs.originals(), 0);
    }
}
