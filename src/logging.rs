//! Process-wide logging: `tracing` events to standard error, as human-readable text
//! or as JSON lines, filtered with `RUST_LOG` syntax.
//!
//! Owns the one `tracing` subscriber of a `gpux` process, so every part (pipeline,
//! gateway, demo) logs the same way and an operator switches the whole process to
//! JSON with one setting (`log.format`, see [`crate::config`]). Standard output stays
//! free for the machine-readable lines commands print.
//!
//! [`init`] may be called more than once (tests, or a library user who installed
//! their own subscriber): only the first call installs anything.

use std::io::{self, IsTerminal};

use anyhow::{anyhow, Result};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the process-wide subscriber writing to standard error. Returns
/// `Ok(true)` if this call installed it, `Ok(false)` if one was already installed
/// (left as it is), and `Err` for a filter that does not parse.
///
/// Text is coloured only when standard error is a terminal and `NO_COLOR` is unset.
pub fn init(format: LogFormat, filter: &str) -> Result<bool> {
    let ansi = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let subscriber = subscriber(format, filter, io::stderr, ansi)?;
    Ok(tracing::subscriber::set_global_default(subscriber).is_ok())
}

/// [`init`] with the `[log]` settings every role shares.
pub fn init_from(log: &LogConfig) -> Result<bool> {
    init(log.format, &log.filter)
}

/// A subscriber writing `format` lines that pass `filter` to `writer`, with ANSI
/// colours in text if `ansi` (what [`init`] installs, with standard error; tests
/// pass a buffer).
///
/// JSON lines carry `timestamp`, `level`, `target` and the event's fields at the top
/// level (`message` included), e.g.
/// `{"timestamp":"…","level":"INFO","target":"gpux_sequencer::pipeline","cmd_seq":7,"message":"engine recovered"}`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| anyhow!("invalid log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Text => Box::new(builder.with_target(true).with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer collecting everything into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture(format: LogFormat, filter: &str, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let sub = subscriber(format, filter, buf.clone(), false).unwrap();
        tracing::subscriber::with_default(sub, f);
        buf.text()
    }

    #[test]
    fn json_lines_carry_level_target_message_and_fields() {
        let out = capture(LogFormat::Json, "info", || {
            tracing::info!(
                cmd_seq = 7u64,
                market = "h100-sxm.us-east",
                "engine recovered"
            );
            tracing::debug!("filtered out");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "engine recovered");
        assert_eq!(v["cmd_seq"], 7);
        assert_eq!(v["market"], "h100-sxm.us-east");
        assert!(v["target"].as_str().unwrap().starts_with("gpux"));
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn text_lines_are_human_readable_and_filtered_per_target() {
        let out = capture(LogFormat::Text, "warn,gpux::logging=debug", || {
            tracing::debug!(n = 3, "kept by the per-target directive");
            tracing::trace!("dropped");
        });
        assert!(out.contains("DEBUG"), "{out}");
        assert!(
            out.contains("kept by the per-target directive n=3"),
            "{out}"
        );
        assert!(!out.contains("dropped"), "{out}");
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
    }

    #[test]
    fn a_bad_filter_is_an_error_naming_it() {
        let e = subscriber(LogFormat::Text, "gpux=loud", io::stderr, false)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("gpux=loud"), "{e}");
    }

    #[test]
    fn init_twice_is_harmless() {
        // Whichever test installs first wins; the second call must not fail.
        let _first = init(LogFormat::Text, "off").unwrap();
        let second = init(LogFormat::Json, "off").unwrap();
        assert!(!second, "a subscriber was already installed");
        assert!(init(LogFormat::Text, "gpux=loud").is_err());
    }
}
