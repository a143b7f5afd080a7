//! `gpux bench engine` prints one JSON line with the agreed fields, and the same
//! seed drives the same work. (Speed is reported, never asserted.)

use std::process::Command;

fn bench(orders: &str, seed: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_gpux"))
        .args(["bench", "engine", "--orders", orders, "--seed", seed])
        .output()
        .expect("gpux runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "exactly one line: {text}");
    serde_json::from_str(&text).expect("the line is JSON")
}

#[test]
fn engine_bench_reports_the_agreed_fields_and_is_seeded() {
    let a = bench("3000", "7");
    for field in [
        "messages",
        "seconds",
        "msgs_per_sec",
        "p50_ns",
        "p99_ns",
        "p999_ns",
    ] {
        assert!(
            a.get(field).is_some_and(|v| v.is_number()),
            "missing {field}: {a}"
        );
    }
    assert_eq!(a["messages"], 3000);
    assert!(a["p50_ns"].as_u64() <= a["p99_ns"].as_u64());
    assert!(a["p99_ns"].as_u64() <= a["p999_ns"].as_u64());
    // The flow trades and the generator's cancels mostly hit live orders.
    assert!(a["trades"].as_u64().unwrap() > 0);
    assert!(a["rejects"].as_u64().unwrap() < 3000 / 10);
    // Orders spread over a week of delivery slots: many books are live.
    let live = a["live_books"].as_u64().unwrap();
    assert!((10..=168).contains(&live), "{a}");
    let b = bench("3000", "7");
    for field in [
        "events",
        "trades",
        "rejects",
        "resting_orders",
        "live_books",
    ] {
        assert_eq!(a[field], b[field], "same seed, same {field}");
    }
    let c = bench("3000", "8");
    assert_ne!((&a["events"], &a["trades"]), (&c["events"], &c["trades"]));
}
