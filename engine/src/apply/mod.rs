//! Applying commands: the only way the engine's state changes.
//!
//! [`Engine::apply`] is handed the command's sequence number and timestamp (time
//! is an argument, never read from a clock), moves engine time (expiring GTD
//! orders now past, closing slots whose gate passed: [`slots`]), and dispatches
//! the command to its handler, one family per file: [`markets`] (listing),
//! [`funds`] (accounts and their deposits, withdrawals and capacity), [`place`]
//! (with [`window`] for all-or-none window and cluster orders), [`amend`] and
//! [`cancel`] (orders), [`delivery`] (reports, disputes, resolutions and the
//! settlements time makes due) and [`keys`] (accounts' API keys). Each
//! handler validates the command completely before touching anything and reports
//! every outcome as events; a rejected command emits one rejection event, built
//! here, and changes nothing. Panics are reserved for broken invariants (bugs),
//! never for input.

mod amend;
mod cancel;
mod delivery;
mod funds;
mod keys;
mod markets;
mod place;
mod slots;
mod window;

use crate::book::OrderBook;
use crate::command::{Command, CommandEnvelope, CommandKind};
use crate::event::{DuplicateRequest, Event, EventSink, Rejection};
use crate::limits::EXPIRIES_PER_COMMAND_MAX;
use crate::reject::RejectReason;
use crate::state::Engine;
use crate::types::CancelReason;
use funds::Flow;

/// The one event a rejected command emits: `order_rejected` for order commands,
/// `command_rejected` for the others.
fn rejection(cmd: &Command, reason: RejectReason) -> Event {
    let (order, client_order_id) = match cmd {
        Command::PlaceOrder(c) => (None, c.client_order_id),
        Command::CancelOrder(c) => (c.order_id, c.client_order_id),
        Command::AmendOrder(c) => (c.order_id, c.client_order_id),
        _ => (None, None),
    };
    let r = Rejection {
        command: cmd.kind(),
        account: cmd.account(),
        market: cmd.market(),
        order,
        client_order_id,
        reason,
    };
    match r.command {
        CommandKind::PlaceOrder
        | CommandKind::CancelOrder
        | CommandKind::AmendOrder
        | CommandKind::MassCancel => Event::OrderRejected(r),
        _ => Event::CommandRejected(r),
    }
}

impl<B: OrderBook> Engine<B> {
    /// Applies one command. `seq` must be greater than the last applied one (the
    /// sequencer guarantees it). A `ts_ns` earlier than the last applied timestamp
    /// is raised to it, so engine time never goes backwards. GTD orders whose time
    /// has passed are expired first, then the command takes effect or is rejected.
    pub fn apply<S: EventSink>(&mut self, seq: u64, ts_ns: u64, cmd: &Command, out: &mut S) {
        self.apply_request(seq, ts_ns, None, cmd, out);
    }

    /// [`apply`](Self::apply) for a command whose envelope made it idempotent
    /// under `request_id` ([`CommandEnvelope::idempotent_request_id`]). When a
    /// command with the same id was applied within the window (see
    /// [`REQUEST_IDS_REMEMBERED_MAX`](crate::limits::REQUEST_IDS_REMEMBERED_MAX)
    /// and [`REQUEST_ID_WINDOW_NS`](crate::limits::REQUEST_ID_WINDOW_NS)), the
    /// command is not applied: it emits one `duplicate_request` naming the original
    /// command, and only its sequence number and time take effect (GTD orders past
    /// their time expire first, as before any command). Otherwise it is applied and
    /// its id remembered, whether it was accepted or rejected. With `None` this is
    /// [`apply`](Self::apply).
    pub fn apply_request<S: EventSink>(
        &mut self,
        seq: u64,
        ts_ns: u64,
        idempotent_request_id: Option<&str>,
        cmd: &Command,
        out: &mut S,
    ) {
        let ts_ns = self.advance(seq, ts_ns, out);
        if let Some(request_id) = idempotent_request_id {
            if let Some(original_cmd_seq) = self.requests.original(request_id) {
                out.push(Event::DuplicateRequest(DuplicateRequest {
                    request_id: request_id.to_string(),
                    original_cmd_seq,
                }));
                return;
            }
        }
        self.dispatch(ts_ns, cmd, out);
        if let Some(request_id) = idempotent_request_id {
            self.requests.remember(seq, ts_ns, request_id);
        }
    }

    /// Applies `cmd` at (monotonic) `ts_ns`: its effect, or one rejection event.
    fn dispatch<S: EventSink>(&mut self, ts_ns: u64, cmd: &Command, out: &mut S) {
        let result = match cmd {
            Command::ListMarket(c) => self.list_market(c, out),
            Command::CreateAccount(c) => self.create_account(c, out),
            Command::Deposit(c) => self.transfer_cash(c, Flow::In, out),
            Command::Withdraw(c) => self.transfer_cash(c, Flow::Out, out),
            Command::AddCapacity(c) => self.transfer_capacity(ts_ns, c, Flow::In, out),
            Command::RemoveCapacity(c) => self.transfer_capacity(ts_ns, c, Flow::Out, out),
            Command::PlaceOrder(c) => self.place(ts_ns, c, out),
            Command::CancelOrder(c) => self.cancel(c, out),
            Command::AmendOrder(c) => self.amend(c, out),
            Command::MassCancel(c) => self.mass_cancel(c, out),
            Command::Tick(_) => Ok(()),
            Command::DeliveryReport(c) => self.report_delivery(ts_ns, c, out),
            Command::Dispute(c) => self.dispute(ts_ns, c, out),
            Command::ResolveDispute(c) => self.resolve_dispute(c, out),
            Command::AddApiKey(c) => self.add_api_key(c, out),
            Command::RevokeApiKey(c) => self.revoke_api_key(c, out),
        };
        if let Err(reason) = result {
            out.push(rejection(cmd, reason));
        }
    }

    /// Applies a command given as protocol JSON (a [`CommandEnvelope`]), as it sits
    /// in the command log. Bytes that do not decode still take their sequence
    /// number: they produce one `command_rejected` event with reason
    /// `malformed_command` and change nothing else, so a poison message is
    /// recorded and never stops the engine. Returns the envelope when it decoded.
    pub fn apply_json<S: EventSink>(
        &mut self,
        seq: u64,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut S,
    ) -> Option<CommandEnvelope> {
        let env = CommandEnvelope::from_json(bytes).ok();
        self.apply_decoded(seq, ts_ns, env.as_ref(), out);
        env
    }

    /// [`apply_json`](Self::apply_json) for a payload decoded beforehand (on
    /// another thread, say): `Some` is what `CommandEnvelope::from_json` gave for
    /// it, `None` means it did not decode. Same events, same state.
    pub fn apply_decoded<S: EventSink>(
        &mut self,
        seq: u64,
        ts_ns: u64,
        decoded: Option<&CommandEnvelope>,
        out: &mut S,
    ) {
        match decoded {
            Some(env) => {
                self.apply_request(seq, ts_ns, env.idempotent_request_id(), &env.command, out);
            }
            None => {
                self.advance(seq, ts_ns, out);
                out.push(Event::CommandRejected(Rejection {
                    command: CommandKind::Unknown,
                    account: None,
                    market: None,
                    order: None,
                    client_order_id: None,
                    reason: RejectReason::MalformedCommand,
                }));
            }
        }
    }

    /// Moves engine time to a command: checks and records its sequence number,
    /// makes its timestamp monotonic, forgets request ids now out of the window,
    /// expires GTD orders now past (at most [`EXPIRIES_PER_COMMAND_MAX`]; any
    /// more go before the following commands), closes slots whose gate passed and
    /// settles delivery entries now due (each bounded likewise).
    fn advance<S: EventSink>(&mut self, seq: u64, ts_ns: u64, out: &mut S) -> u64 {
        assert!(
            seq > self.last_seq,
            "sequence {seq} after {}: the sequencer must increase it",
            self.last_seq
        );
        self.last_seq = seq;
        let ts_ns = ts_ns.max(self.last_ts_ns);
        self.last_ts_ns = ts_ns;
        self.requests.forget_expired(ts_ns);
        self.expire(ts_ns, out);
        self.close_gates(ts_ns, out);
        self.settle_due(ts_ns, out);
        ts_ns
    }

    /// Expires GTD orders whose time is before `ts_ns`, oldest expiry first, at
    /// most [`EXPIRIES_PER_COMMAND_MAX`] of them: any left are still due and go
    /// first before the next command.
    fn expire<S: EventSink>(&mut self, ts_ns: u64, out: &mut S) {
        for _ in 0..EXPIRIES_PER_COMMAND_MAX {
            let Some(&(good_till, id)) = self.expiries.first() else {
                break;
            };
            if good_till >= ts_ns {
                break;
            }
            let bi = self.loc(id).bi();
            self.cancel_resting(bi, id, CancelReason::Expired, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_commands_are_recorded_as_rejections_and_change_nothing() {
        let mut e: Engine = Engine::new();
        let mut events = Vec::new();
        let ok = br#"{"v":3,"ts_ns":5,"command":{"type":"create_account","account":7}}"#;
        assert!(e.apply_json(1, 5, ok, &mut events).is_some());
        let before = e.snapshot();
        for (i, bad) in [
            &b"not json"[..],
            br#"{"v":3,"ts_ns":6,"command":{"type":"teleport"}}"#,
        ]
        .iter()
        .enumerate()
        {
            events.clear();
            let seq = 2 + i as u64;
            assert!(e.apply_json(seq, 6, bad, &mut events).is_none());
            assert_eq!(events.len(), 1);
            match &events[0] {
                Event::CommandRejected(r) => {
                    assert_eq!(r.reason, RejectReason::MalformedCommand);
                    assert_eq!(r.command, CommandKind::Unknown);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(e.last_seq(), seq);
        }
        // Only the sequence number and time moved.
        let mut same: Engine = Engine::restore(&before).unwrap();
        same.last_seq = e.last_seq;
        same.last_ts_ns = e.last_ts_ns;
        assert_eq!(same.state_hash(), e.state_hash());
    }
}
