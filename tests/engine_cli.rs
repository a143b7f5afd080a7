//! `gpux engine` run as a process: what an operator sees when its configuration
//! cannot work (it exits non-zero before touching the ledger or a broker).

use std::process::Command;

fn gpux_engine(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpux"))
        .arg("engine")
        .args(args)
        .env_remove("GPUX_CONFIG")
        .env_remove("GPUX_KAFKA_BROKERS")
        .env("GPUX_DATA", dir.join("ledger"))
        .output()
        .expect("gpux runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_engine_without_a_broker_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = gpux_engine(&[], dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("gpux engine needs a broker: --kafka"),
        "{stderr}"
    );
    assert!(!dir.path().join("ledger").exists(), "nothing was created");
}

#[test]
fn an_engine_with_a_bad_setting_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = gpux_engine(
        &["--kafka", "127.0.0.1:1", "--snapshot-every", "0"],
        dir.path(),
    );
    assert!(!ok);
    assert!(
        stderr.contains("snapshot_every_events must be positive"),
        "{stderr}"
    );
    let config = dir.path().join("gpux.toml");
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"127.0.0.1:1\"\npartition = -1\n",
    )
    .unwrap();
    let (ok, stderr) = gpux_engine(&["--config", config.to_str().unwrap()], dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("kafka.partition must be 0 or more"),
        "{stderr}"
    );
}
