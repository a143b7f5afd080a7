//! The environment layer of [`Config`]: `GPUX_*` variables.
//!
//! Owns the variable names and their parsing; every error names the variable and
//! says what it expects. The lookup is a function so tests pass their own
//! environment instead of touching the process's.

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};

use super::Config;

/// The environment: a lookup function and error messages naming the variable.
pub(crate) struct Env<'a>(pub(crate) &'a dyn Fn(&str) -> Option<OsString>);

impl Env<'_> {
    /// The variable as UTF-8 text, if set.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        match (self.0)(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| anyhow!("{name}: the value is not valid UTF-8")),
        }
    }

    /// The variable parsed, if set; `expected` says what it should be.
    fn parse<T: FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>> {
        match self.string(name)? {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| anyhow!("{name}: invalid value {v:?}: expected {expected}")),
        }
    }

    /// Sets `slot` from the variable, if set.
    fn set<T: FromStr>(&self, slot: &mut T, name: &str, expected: &str) -> Result<()> {
        if let Some(v) = self.parse(name, expected)? {
            *slot = v;
        }
        Ok(())
    }

    /// A yes/no variable, if set.
    fn flag(&self, name: &str) -> Result<Option<bool>> {
        let Some(v) = self.string(name)? else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" | "" => Ok(Some(false)),
            _ => bail!("{name}: invalid value {v:?}: expected true or false (1 or 0)"),
        }
    }

    /// Overrides `cfg` with every variable that is set.
    pub(crate) fn apply(&self, cfg: &mut Config) -> Result<()> {
        if let Some(v) = self.string("GPUX_DATA")? {
            cfg.data = PathBuf::from(v);
        }
        self.set(
            &mut cfg.listen,
            "GPUX_LISTEN",
            "a socket address such as 127.0.0.1:8080",
        )?;
        if let Some(v) = self.string("GPUX_ADMIN_KEY")? {
            cfg.admin_key = Some(v);
        }
        self.set(
            &mut cfg.snapshot_every_events,
            "GPUX_SNAPSHOT_EVERY",
            "a positive whole number of events",
        )?;
        self.set(
            &mut cfg.verify_on_open,
            "GPUX_VERIFY_ON_OPEN",
            "`background` or `full`",
        )?;
        self.set(
            &mut cfg.max_batch_commands,
            "GPUX_MAX_BATCH",
            "a positive whole number of commands",
        )?;
        self.set(
            &mut cfg.clock_tick_ms,
            "GPUX_CLOCK_TICK_MS",
            &format!("milliseconds, 0 (off) to {}", super::CLOCK_TICK_MS_MAX),
        )?;
        self.set(
            &mut cfg.time_scale,
            "GPUX_TIME_SCALE",
            &format!("1 to {}", gpux_sequencer::TIME_SCALE_MAX),
        )?;
        self.apply_log(cfg)?;
        self.apply_kafka(cfg)?;
        self.apply_demo(cfg)
    }

    fn apply_log(&self, cfg: &mut Config) -> Result<()> {
        self.set(&mut cfg.log.format, "GPUX_LOG_FORMAT", "`text` or `json`")?;
        if let Some(v) = self.string("GPUX_LOG")? {
            cfg.log.filter = v;
        } else if let Some(v) = self.string("RUST_LOG")? {
            cfg.log.filter = v;
        }
        Ok(())
    }

    fn apply_kafka(&self, cfg: &mut Config) -> Result<()> {
        let k = &mut cfg.kafka;
        if let Some(v) = self.string("GPUX_KAFKA_BROKERS")? {
            k.brokers = Some(v);
        }
        if let Some(v) = self.string("GPUX_KAFKA_COMMANDS_TOPIC")? {
            k.commands_topic = v;
        }
        if let Some(v) = self.string("GPUX_KAFKA_EVENTS_TOPIC")? {
            k.events_topic = v;
        }
        self.set(
            &mut k.partition,
            "GPUX_KAFKA_PARTITION",
            "a partition number, 0 or more",
        )
    }

    fn apply_demo(&self, cfg: &mut Config) -> Result<()> {
        if let Some(on) = self.flag("GPUX_DEMO")? {
            cfg.demo.enabled = on;
        }
        self.set(
            &mut cfg.demo.rate_per_sec,
            "GPUX_DEMO_RATE",
            "commands per second, 1 to 10000",
        )?;
        self.set(&mut cfg.demo.seed, "GPUX_DEMO_SEED", "a whole number")
    }
}
