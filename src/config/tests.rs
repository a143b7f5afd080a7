//! The configuration's layers, errors and example file, checked.

use super::*;
use clap::Parser;
use std::collections::HashMap;
use std::io::Write;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn args(flags: &[&str]) -> ServeArgs {
    let mut argv = vec!["gpux"];
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).expect("flags parse").serve
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |k| map.get(k).cloned()
}

fn no_env() -> impl Fn(&str) -> Option<OsString> {
    env(&[])
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn err(r: Result<Config>) -> String {
    format!("{:#}", r.expect_err("should fail"))
}

#[test]
fn defaults_work_out_of_the_box() {
    let cfg = Config::load_with(&ServeArgs::default(), no_env()).unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(cfg.data, PathBuf::from("./gpux-data"));
    assert_eq!(cfg.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(cfg.admin_key, None);
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.filter, "info");
    assert!(!cfg.kafka.enabled());
    assert!(!cfg.demo.enabled);
    assert_eq!(cfg.pipeline_options().snapshot_every_events, 1_000_000);
    assert_eq!(
        cfg.pipeline_options().ledger.verify_on_open,
        gpux_ledger::VerifyOnOpen::Background
    );
}

#[test]
fn verify_on_open_is_set_by_file_env_and_flag_and_refuses_other_words() {
    let f = file("verify_on_open = \"full\"\n");
    let path = f.path().to_str().unwrap();
    let cfg = Config::load_with(&args(&["--config", path]), no_env()).unwrap();
    assert_eq!(
        cfg.pipeline_options().ledger.verify_on_open,
        gpux_ledger::VerifyOnOpen::Full
    );
    let e = env(&[("GPUX_CONFIG", path), ("GPUX_VERIFY_ON_OPEN", "background")]);
    let cfg = Config::load_with(&ServeArgs::default(), e).unwrap();
    assert_eq!(cfg.verify_on_open, VerifyAtStart::Background);
    let cfg = Config::load_with(&args(&["--config", path, "--verify-on-open", "full"]), {
        env(&[("GPUX_VERIFY_ON_OPEN", "background")])
    })
    .unwrap();
    assert_eq!(cfg.verify_on_open, VerifyAtStart::Full, "the flag wins");
    let err = Config::load_with(
        &ServeArgs::default(),
        env(&[("GPUX_VERIFY_ON_OPEN", "tail")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("GPUX_VERIFY_ON_OPEN") && err.contains("`background` or `full`"),
        "{err}"
    );
    let bad = file("verify_on_open = \"none\"\n");
    let err = Config::load_with(&args(&["--config", bad.path().to_str().unwrap()]), no_env())
        .unwrap_err();
    assert!(format!("{err:#}").contains("verify_on_open"), "{err:#}");
}

#[test]
fn layers_override_in_order_defaults_file_env_flags() {
    let f = file(
        "data = \"/from/file\"\nlisten = \"127.0.0.1:1000\"\n\
         snapshot_every_events = 5\n[log]\nformat = \"json\"\nfilter = \"warn\"\n\
         [demo]\nrate_per_sec = 7\n",
    );
    let path = f.path().to_str().unwrap();
    // File only.
    let cfg = Config::load_with(&args(&["--config", path]), no_env()).unwrap();
    assert_eq!(cfg.data, PathBuf::from("/from/file"));
    assert_eq!(cfg.listen.port(), 1000);
    assert_eq!(cfg.snapshot_every_events, 5);
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.demo.rate_per_sec, 7);
    assert_eq!(
        cfg.gateway,
        GatewaySettings::default(),
        "unset keys keep defaults"
    );
    // The environment beats the file, and names the file itself.
    let e = env(&[
        ("GPUX_CONFIG", path),
        ("GPUX_LISTEN", "127.0.0.1:2000"),
        ("GPUX_LOG", "debug"),
        ("RUST_LOG", "trace"),
        ("GPUX_DEMO", "yes"),
    ]);
    let cfg = Config::load_with(&ServeArgs::default(), e).unwrap();
    assert_eq!(cfg.data, PathBuf::from("/from/file"));
    assert_eq!(cfg.listen.port(), 2000);
    assert_eq!(cfg.log.filter, "debug", "GPUX_LOG beats RUST_LOG");
    assert!(cfg.demo.enabled);
    // Flags beat both.
    let e = env(&[("GPUX_CONFIG", path), ("GPUX_LISTEN", "127.0.0.1:2000")]);
    let a = args(&[
        "--listen",
        "127.0.0.1:3000",
        "--log-format",
        "text",
        "--demo-rate",
        "9",
    ]);
    let cfg = Config::load_with(&a, e).unwrap();
    assert_eq!(cfg.listen.port(), 3000);
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.demo.rate_per_sec, 9);
    assert_eq!(cfg.snapshot_every_events, 5, "the file still applies");
}

#[test]
fn rust_log_is_the_fallback_filter() {
    let cfg = Config::load_with(&ServeArgs::default(), env(&[("RUST_LOG", "warn")])).unwrap();
    assert_eq!(cfg.log.filter, "warn");
}

#[test]
fn kafka_from_every_layer() {
    let f = file(
        "[kafka]\nbrokers = \"k1:9092\"\npartition = 2\n\
         [kafka.client]\n\"security.protocol\" = \"ssl\"\n\"linger.ms\" = \"5\"\n",
    );
    let path = f.path().to_str().unwrap();
    let cfg = Config::load_with(&args(&["--config", path]), no_env()).unwrap();
    assert!(cfg.kafka.enabled());
    assert_eq!(cfg.kafka.brokers.as_deref(), Some("k1:9092"));
    assert_eq!(cfg.kafka.partition, 2);
    assert_eq!(cfg.kafka.commands_topic, "gpux.commands");
    assert_eq!(
        cfg.kafka.client_settings(),
        vec![
            ("linger.ms".to_string(), "5".to_string()),
            ("security.protocol".to_string(), "ssl".to_string())
        ]
    );
    let a = args(&[
        "--config",
        path,
        "--kafka-option",
        "linger.ms=10",
        "--kafka",
        "k2:1",
    ]);
    let e = env(&[
        ("GPUX_KAFKA_BROKERS", "env:1"),
        ("GPUX_KAFKA_EVENTS_TOPIC", "ev"),
    ]);
    let cfg = Config::load_with(&a, e).unwrap();
    assert_eq!(cfg.kafka.brokers.as_deref(), Some("k2:1"));
    assert_eq!(cfg.kafka.events_topic, "ev");
    assert_eq!(cfg.kafka.client["linger.ms"], "10");
    assert_eq!(cfg.kafka.client["security.protocol"], "ssl");
    let k = cfg.kafka.kafka_config().expect("Kafka mode");
    assert_eq!(k.brokers, "k2:1");
    assert_eq!(k.commands_topic, "gpux.commands");
    assert_eq!(k.events_topic, "ev");
    assert_eq!(k.partition, 2);
    assert_eq!(k.client_settings, cfg.kafka.client_settings());
    assert_eq!(Config::default().kafka.kafka_config(), None);
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    for (text, key) in [
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("[gateway]\nbody_limit = 5\n", "body_limit"),
        ("[kafak]\n", "kafak"),
        ("[kafka]\nbroker = \"k:1\"\n", "broker"),
    ] {
        let f = file(text);
        let path = f.path().to_str().unwrap();
        let e = err(Config::load_with(&args(&["--config", path]), no_env()));
        assert!(e.contains(path), "{e}");
        assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
    }
}

#[test]
fn invalid_values_name_the_key_and_what_is_expected() {
    let cases: &[(&str, &str)] = &[
        (
            "listen = \"nowhere\"\n",
            "expected IP:PORT such as 127.0.0.1:8080",
        ),
        ("[log]\nformat = \"xml\"\n", "`text` or `json`"),
        ("snapshot_every_events = -1\n", "snapshot_every_events"),
        (
            "snapshot_every_events = 0\n",
            "snapshot_every_events must be positive",
        ),
        (
            "[gateway]\nbody_limit_bytes = 0\n",
            "gateway.body_limit_bytes must be positive",
        ),
        (
            "[gateway]\nrate_limit_per_key_burst = 0\n",
            "gateway.rate_limit_per_key_burst",
        ),
        (
            "[gateway]\nws_idle_timeout_ms = 1000\n",
            "gateway.ws_idle_timeout_ms",
        ),
        ("[log]\nfilter = \"gpux=loud\"\n", "log.filter"),
        (
            "admin_key = \"short\"\n",
            "admin_key must be at least 16 bytes",
        ),
        (
            "[kafka]\ncommands_topic = \"a b\"\n",
            "kafka.commands_topic",
        ),
        ("[kafka]\nevents_topic = \"gpux.commands\"\n", "must differ"),
        ("[kafka]\nbrokers = \"a:1,,b:2\"\n", "kafka.brokers"),
        ("[kafka]\npartition = -1\n", "kafka.partition"),
        (
            "[demo]\nrate_per_sec = 0\n",
            "demo.rate_per_sec must be 1 to 10000",
        ),
        ("[demo]\nproviders = 100000\n", "demo.providers"),
        ("[demo]\nenabled = \"maybe\"\n", "enabled"),
    ];
    for (text, want) in cases {
        let f = file(text);
        let path = f.path().to_str().unwrap();
        let e = err(Config::load_with(&args(&["--config", path]), no_env()));
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn invalid_environment_values_name_the_variable() {
    let cases = [
        (
            "GPUX_LISTEN",
            "8080",
            "GPUX_LISTEN: invalid value \"8080\": expected a socket",
        ),
        (
            "GPUX_LOG_FORMAT",
            "yaml",
            "GPUX_LOG_FORMAT: invalid value \"yaml\"",
        ),
        ("GPUX_KAFKA_PARTITION", "x", "GPUX_KAFKA_PARTITION"),
        ("GPUX_DEMO", "sometimes", "GPUX_DEMO: invalid value"),
        ("GPUX_DEMO_RATE", "-3", "GPUX_DEMO_RATE"),
        ("GPUX_SNAPSHOT_EVERY", "1e6", "GPUX_SNAPSHOT_EVERY"),
    ];
    for (name, value, want) in cases {
        let e = err(Config::load_with(
            &ServeArgs::default(),
            env(&[(name, value)]),
        ));
        assert!(e.contains(want), "{name}={value}: {e}");
    }
    let e = err(Config::load_with(
        &ServeArgs::default(),
        env(&[("GPUX_CONFIG", "/nonexistent/gpux.toml")]),
    ));
    assert!(e.contains("/nonexistent/gpux.toml"), "{e}");
}

#[test]
fn bad_flags_are_refused_by_clap() {
    let mut argv = vec!["gpux", "--listen", "nowhere"];
    assert!(Cli::try_parse_from(&argv).is_err());
    argv = vec!["gpux", "--kafka-option", "novalue"];
    assert!(Cli::try_parse_from(&argv).is_err());
    argv = vec!["gpux", "--log-format", "xml"];
    assert!(Cli::try_parse_from(&argv).is_err());
}

#[test]
fn the_admin_key_is_never_printed() {
    let key = "s3cret-admin-key-0123456789";
    let cfg = Config::load_with(&args(&["--admin-key", key]), no_env()).unwrap();
    assert_eq!(cfg.admin_key.as_deref(), Some(key));
    assert!(!format!("{cfg:?}").contains(key));
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(!json.contains(key) && json.contains("<redacted>"), "{json}");
    let e = err(Config::load_with(
        &args(&["--admin-key", "tiny-secret"]),
        no_env(),
    ));
    assert!(!e.contains("tiny-secret"), "{e}");
}

const EXAMPLE: &str = include_str!("../../docs/gpux.example.toml");

/// The example file, with its commented-out settings (`# key = value`) enabled.
fn example_uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_setting(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_setting(line: &str) -> bool {
    let Some((key, _)) = line.split_once(" = ") else {
        return false;
    };
    let key = key.trim_matches('"');
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
}

#[test]
fn the_example_file_parses_and_equals_the_defaults() {
    let cfg = Config::from_toml(EXAMPLE).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn the_example_files_commented_settings_are_valid_keys() {
    let cfg = Config::from_toml(&example_uncommented()).unwrap();
    cfg.validate().unwrap();
    assert!(cfg.admin_key.is_some());
    assert!(cfg.kafka.enabled());
    assert!(!cfg.kafka.client.is_empty());
    // Only the settings without a default were commented out.
    let reset = Config {
        admin_key: None,
        kafka: KafkaSettings {
            brokers: None,
            client: BTreeMap::new(),
            ..cfg.kafka.clone()
        },
        ..cfg
    };
    assert_eq!(reset, Config::default());
}

#[test]
fn the_example_file_documents_every_key() {
    fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let name = format!("{prefix}{k}");
            match v {
                toml::Value::Table(sub) if k != "client" => keys(&format!("{name}."), sub, out),
                _ => out.push(name),
            }
        }
    }
    let full = Config {
        admin_key: Some("x".repeat(16)),
        kafka: KafkaSettings {
            brokers: Some("b:1".into()),
            ..KafkaSettings::default()
        },
        ..Config::default()
    };
    let mut want = Vec::new();
    keys("", &toml::Table::try_from(&full).unwrap(), &mut want);
    let mut have = Vec::new();
    let example: toml::Table = toml::from_str(&example_uncommented()).unwrap();
    keys("", &example, &mut have);
    for k in &want {
        assert!(
            have.contains(k),
            "docs/gpux.example.toml does not show `{k}`"
        );
    }
    // And every key has a comment line right above it (or above its table).
    for line in EXAMPLE.lines().filter(|l| is_setting(l)) {
        let at = EXAMPLE.find(line).unwrap();
        let before = EXAMPLE[..at].trim_end().lines().last().unwrap_or("");
        assert!(before.starts_with('#'), "`{line}` has no comment above it");
    }
}

#[derive(Parser)]
struct EngineCli {
    #[command(flatten)]
    engine: EngineArgs,
}

fn engine_args(flags: &[&str]) -> EngineArgs {
    let mut argv = vec!["gpux"];
    argv.extend_from_slice(flags);
    EngineCli::try_parse_from(argv).expect("flags parse").engine
}

#[test]
fn the_engine_role_reads_the_same_layers() {
    let f = file("max_batch_commands = 8\n[kafka]\nbrokers = \"k:1\"\npartition = 3\n");
    let path = f.path().to_str().unwrap();
    // Every role's file and environment apply to the engine too.
    let e = env(&[("GPUX_CONFIG", path), ("GPUX_LOG_FORMAT", "json")]);
    let cfg = Config::load_with(&engine_args(&[]), e).unwrap();
    assert_eq!(cfg.kafka.brokers.as_deref(), Some("k:1"));
    assert_eq!(cfg.kafka.partition, 3);
    assert_eq!(cfg.max_batch_commands, 8);
    assert_eq!(cfg.pipeline_options().max_batch_commands, 8);
    assert_eq!(cfg.log.format, LogFormat::Json);
    // Its flags are serve's, and the older engine spellings still work.
    let a = engine_args(&[
        "--config",
        path,
        "--commands-topic",
        "c",
        "--events-topic",
        "e",
        "--partition",
        "5",
        "--max-batch",
        "9",
        "--no-events",
        "--create-topics",
    ]);
    assert!(a.no_events && a.create_topics);
    let cfg = Config::load_with(&a, no_env()).unwrap();
    assert_eq!(
        (
            cfg.kafka.commands_topic.as_str(),
            cfg.kafka.events_topic.as_str()
        ),
        ("c", "e")
    );
    assert_eq!((cfg.kafka.partition, cfg.max_batch_commands), (5, 9));
    let a = engine_args(&["--kafka-partition", "6", "--log", "warn"]);
    let cfg = Config::load_with(&a, env(&[("GPUX_MAX_BATCH", "10")])).unwrap();
    assert_eq!((cfg.kafka.partition, cfg.max_batch_commands), (6, 10));
    assert_eq!(cfg.log.filter, "warn");
    // Serve-only flags are not the engine's.
    assert!(EngineCli::try_parse_from(["gpux", "--listen", "127.0.0.1:1"]).is_err());
    assert!(EngineCli::try_parse_from(["gpux", "--demo"]).is_err());
}

#[test]
fn a_zero_batch_is_refused_from_every_layer() {
    let e = err(Config::load_with(
        &engine_args(&["--max-batch", "0"]),
        no_env(),
    ));
    assert!(e.contains("max_batch_commands must be positive"), "{e}");
    let e = err(Config::load_with(
        &ServeArgs::default(),
        env(&[("GPUX_MAX_BATCH", "many")]),
    ));
    assert!(e.contains("GPUX_MAX_BATCH: invalid value"), "{e}");
}

#[test]
fn the_clock_tick_comes_from_every_layer_and_zero_turns_it_off() {
    let cfg = Config::load_with(&ServeArgs::default(), no_env()).unwrap();
    assert_eq!(cfg.clock_tick_ms, 1_000);
    assert_eq!(
        cfg.pipeline_options().clock_tick,
        Some(std::time::Duration::from_secs(1))
    );
    let f = file("clock_tick_ms = 250\n");
    let path = f.path().to_str().unwrap();
    let cfg = Config::load_with(&engine_args(&["--config", path]), no_env()).unwrap();
    assert_eq!(
        cfg.pipeline_options().clock_tick,
        Some(std::time::Duration::from_millis(250))
    );
    let e = env(&[("GPUX_CONFIG", path), ("GPUX_CLOCK_TICK_MS", "0")]);
    let cfg = Config::load_with(&ServeArgs::default(), e).unwrap();
    assert_eq!(cfg.pipeline_options().clock_tick, None, "0 = off");
    let e = env(&[("GPUX_CLOCK_TICK_MS", "0")]);
    let cfg = Config::load_with(&args(&["--clock-tick-ms", "40"]), e).unwrap();
    assert_eq!(cfg.clock_tick_ms, 40, "the flag beats the environment");
    let e = err(Config::load_with(
        &engine_args(&["--clock-tick-ms", "3600001"]),
        no_env(),
    ));
    assert!(
        e.contains("clock_tick_ms must be 0 (off) to 3600000 milliseconds"),
        "{e}"
    );
    let e = err(Config::load_with(
        &ServeArgs::default(),
        env(&[("GPUX_CLOCK_TICK_MS", "soon")]),
    ));
    assert!(e.contains("GPUX_CLOCK_TICK_MS: invalid value"), "{e}");
}
