//! `gpux bench engine` prints one JSON line with the agreed fields, and the same
//! seed drives the same work; `gpux bench pipeline` refuses bad Kafka batch flags.
//! (Speed is reported, never asserted.)

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

/// `--kafka-batch` outside 1..=10,000, or without `--kafka`, is refused before
/// anything runs, with a message naming the flag (no broker is contacted: the
/// address below is never listened on).
#[test]
fn a_kafka_batch_size_out_of_range_or_without_kafka_is_refused() {
    for args in [
        &["--kafka", "127.0.0.1:9", "--kafka-batch", "0"][..],
        &["--kafka", "127.0.0.1:9", "--kafka-batch", "10001"][..],
        &["--kafka-batch", "100"][..],
        &["--kafka-option", "compression.type=lz4"][..],
        &["--kafka", "127.0.0.1:9", "--kafka-option", "novalue"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gpux"))
            .args(["bench", "pipeline", "--orders", "10"])
            .args(args)
            .output()
            .expect("gpux runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            stderr.contains("--kafka-batch") || stderr.contains("--kafka-option"),
            "{args:?}: {stderr}"
        );
    }
}
