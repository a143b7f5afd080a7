//! `rebuild::state_at` and `state`: any past state, equal to a direct engine run,
//! with bad snapshots skipped.

use gpux_engine::Side;
use gpux_ledger::{Cf, Ledger};
use gpux_replay::rebuild::{rebuild, state_at, RebuildProgress};
use gpux_replay::{state, Progress, ReplayError};
use gpux_sequencer::recovery::Replayer;

use crate::common::{
    capture, direct_engine, json_of, ledger_opts, raw, raw_get, raw_put, standard,
};

#[test]
fn the_state_at_any_seq_equals_a_direct_engine_run() {
    let (dir, w) = standard();
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    let reader = ledger.reader();
    let s = w.snapshots[1];
    let last = w.last_seq();
    for seq in [0, 1, 5, 37, s - 1, s, s + 1, last / 2, last - 1, last] {
        let engine = state_at(&reader, Some(seq), None).unwrap();
        assert_eq!(engine.last_seq(), seq);
        assert_eq!(
            engine.state_hash(),
            w.hashes[seq as usize],
            "at cmd_seq {seq}"
        );
    }
    let head = state_at(&reader, None, None).unwrap();
    assert_eq!(head.state_hash(), *w.hashes.last().unwrap());
}

#[test]
fn a_rebuild_starts_from_the_latest_snapshot_at_or_before_the_target() {
    let (dir, w) = standard();
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    let s = w.snapshots[1];
    let r = rebuild(&ledger.reader(), Some(s + 3), None).unwrap();
    assert_eq!(r.snapshot_seq, Some(s));
    assert_eq!(r.commands_replayed, 3);
    assert!(r.skipped_snapshots.is_empty());
    let before_first = rebuild(&ledger.reader(), Some(w.snapshots[0] - 1), None).unwrap();
    assert_eq!(before_first.snapshot_seq, None);
    assert_eq!(before_first.commands_replayed, w.snapshots[0] - 1);
    let head = rebuild(&ledger.reader(), None, None).unwrap();
    assert_eq!(
        head.snapshot_seq,
        Some(w.last_seq()),
        "clean shutdown snapshot at the head"
    );
    assert_eq!(head.commands_replayed, 0);
}

#[test]
fn a_corrupt_snapshot_falls_back_to_an_older_one() {
    let (dir, w) = standard();
    let newest = *w.snapshots.last().unwrap();
    let older = w.snapshots[w.snapshots.len() - 2];
    raw(dir.path(), |db| {
        let mut v = raw_get(db, Cf::Snapshots, newest);
        v[30] ^= 0x04;
        raw_put(db, Cf::Snapshots, newest, &v);
    });
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    let r = rebuild(&ledger.reader(), None, None).unwrap();
    assert_eq!(r.snapshot_seq, Some(older));
    assert_eq!(r.skipped_snapshots.len(), 1);
    assert_eq!(r.skipped_snapshots[0].cmd_seq, newest);
    assert_eq!(r.engine.state_hash(), *w.hashes.last().unwrap());
}

#[test]
fn snapshot_bytes_that_do_not_restore_fall_back_too() {
    let (dir, w) = standard();
    let s = w.snapshots[2];
    {
        let mut l = Ledger::open(dir.path(), &ledger_opts()).unwrap();
        l.put_snapshot(s, b"not an engine").unwrap();
    }
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    let r = rebuild(&ledger.reader(), Some(s + 1), None).unwrap();
    assert_eq!(r.snapshot_seq, Some(w.snapshots[1]));
    assert_eq!(r.skipped_snapshots[0].cmd_seq, s);
    assert!(r.skipped_snapshots[0].reason.contains("invalid snapshot"));
    assert_eq!(r.engine.state_hash(), w.hashes[s as usize + 1]);
}

#[test]
fn progress_is_reported_and_ends_complete() {
    let (dir, w) = standard();
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    let mut seen: Vec<RebuildProgress> = Vec::new();
    let mut cb = |p: RebuildProgress| seen.push(p);
    let target = w.snapshots[0] - 1;
    state_at(&ledger.reader(), Some(target), Some(&mut cb)).unwrap();
    let last = seen.last().expect("called at least once");
    assert_eq!(last.commands_done, last.commands_total);
    assert_eq!(last.commands_total, target);
    assert_eq!(last.applied_seq, target);
    assert_eq!(last.snapshot_seq, None);
}

#[test]
fn a_seq_beyond_the_head_is_an_error() {
    let (dir, w) = standard();
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    match state_at(&ledger.reader(), Some(w.last_seq() + 1), None) {
        Err(ReplayError::BeyondHead { at, head }) => {
            assert_eq!((at, head), (w.last_seq() + 1, w.last_seq()))
        }
        other => panic!("unexpected {:?}", other.map(|e| e.last_seq())),
    }
}

#[test]
fn the_state_report_shows_books_balances_and_open_orders() {
    let (dir, w) = standard();
    let at = w.last_seq() - 40;
    let (outcome, out) = capture(|o| state::run(dir.path(), Some(at), 3, &Progress::hidden(), o));
    assert!(outcome.is_success());
    let v = json_of(&out);
    let engine = direct_engine(&w.commands, at);
    assert_eq!(v["seq"], at);
    assert_eq!(v["state_hash"], engine.state_hash().to_string());
    let markets = v["markets"].as_array().unwrap();
    assert_eq!(markets.len(), 2);
    for (m, spec) in markets.iter().zip(engine.markets()) {
        assert_eq!(m["spec"]["market"], spec.id.as_str());
        assert_eq!(m["spec"]["tick_size"], spec.tick_size.to_string());
        let slots = engine.slots(&spec.id).unwrap();
        let listed = m["slots"].as_array().unwrap();
        assert_eq!(listed.len(), slots.len());
        for (row, &slot) in listed.iter().zip(&slots) {
            assert_eq!(row["slot"], gpux_engine::slot::format_slot(slot));
            let depth = |side| {
                serde_json::to_value(engine.depth(&spec.id, slot, side, 3).unwrap()).unwrap()
            };
            assert_eq!(row["bids"], depth(Side::Buy));
            assert_eq!(row["asks"], depth(Side::Sell));
            assert!(row["bids"].as_array().unwrap().len() <= 3);
        }
    }
    let accounts = v["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), engine.account_count());
    let mut open = 0;
    for a in accounts {
        let id = a["account"].as_u64().unwrap();
        let view = engine.balances(id).unwrap();
        assert_eq!(a["usd"], serde_json::to_value(view.usd).unwrap());
        let gpus = a["gpus"].as_array().unwrap();
        assert_eq!(gpus.len(), view.gpus.len());
        for (g, p) in gpus.iter().zip(&view.gpus) {
            assert_eq!(g["market"], p.market.as_str());
            assert_eq!(g["slot"], gpux_engine::slot::format_slot(p.slot));
            assert_eq!(g["available"], p.balance.available.to_string());
            assert_eq!(g["inventory"], p.inventory.to_string());
        }
        let mut orders = serde_json::to_value(engine.open_orders(id).unwrap()).unwrap();
        for o in orders.as_array_mut().unwrap() {
            o["slot"] = gpux_engine::slot::format_slot(o["slot"].as_u64().unwrap()).into();
        }
        assert_eq!(a["open_orders"], orders);
        open += a["open_orders"].as_array().unwrap().len();
    }
    assert_eq!(open, engine.open_order_count());
    assert!(open > 0, "the scenario leaves orders resting");
}

#[test]
fn a_re_run_stopped_part_way_lets_go_of_the_ledger() {
    let (dir, w) = standard();
    let ledger = Ledger::open(dir.path(), &ledger_opts()).unwrap();
    {
        let reader = ledger.reader();
        let mut engine = gpux_engine::Engine::new();
        let mut replayer = Replayer::new(&reader, 1, 1, w.last_seq()).unwrap();
        let mut events = 0;
        for seq in 1..=3 {
            let step = replayer.step(&mut engine).unwrap().expect("a command");
            assert_eq!(step.command.cmd_seq, seq);
            assert_eq!(step.produced.len(), w.events[seq as usize - 1].len());
            events += step.produced.len() as u64;
        }
        assert_eq!(replayer.next_event_seq(), 1 + events);
        assert_eq!(engine.state_hash(), w.hashes[3]);
        // Dropped with the read-ahead thread still holding the reader and
        // hundreds of commands to go.
    }
    drop(ledger);
    // Nothing holds the store any more: RocksDB lets it be opened again.
    Ledger::open(dir.path(), &ledger_opts()).expect("the ledger reopens");
}
