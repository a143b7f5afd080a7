//! The batch envelope: many commands in one Kafka record.
//!
//! A producer with many commands to send may put them in one record of the
//! commands topic instead of one record each, so the broker's per-record cost
//! (request framing, offsets, acknowledgements) is paid once per batch and the
//! topic is bounded by bytes rather than by messages. The record's value is
//!
//! ```json
//! {"v":3,"batch":[<command envelope>, <command envelope>, …]}
//! ```
//!
//! (`docs/PROTOCOL.md`, "Batch records"). The source splits it into its command
//! envelopes, in order: each becomes one command of the log with its own `cmd_seq`,
//! stored with its exact bytes as they appear in the record and its position
//! `(offset, index)`, so a batch is applied exactly as the same envelopes sent one
//! per record would be, and an engine that stops in the middle of a batch goes on
//! with the next command of it.
//!
//! A record is a batch only when it is exactly that object (the keys in any
//! order, nothing else) with [`PROTOCOL_VERSION`], 1 to [`BATCH_COMMANDS_MAX`]
//! elements and at most [`BATCH_BYTES_MAX`] bytes; any other record is one
//! command, as before — so a malformed batch is recorded as one
//! `malformed_command` rejection, never half-applied or dropped. An element that
//! is not a valid command envelope is recorded as a `malformed_command` of its own,
//! like a record that is not one.

use gpux_engine::PROTOCOL_VERSION;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Most commands one batch record may carry.
pub const BATCH_COMMANDS_MAX: usize = 10_000;

/// Most bytes one batch record may have.
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    v: u32,
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
}

/// The commands of a batch record, each the exact bytes of its element; `None`
/// when `record` is not a batch (then it is one command).
pub fn split(record: &[u8]) -> Option<Vec<&[u8]>> {
    if record.len() > BATCH_BYTES_MAX || !looks_like_batch(record) {
        return None;
    }
    let b: Batch<'_> = serde_json::from_slice(record).ok()?;
    if b.v != PROTOCOL_VERSION || b.batch.is_empty() || b.batch.len() > BATCH_COMMANDS_MAX {
        return None;
    }
    Some(b.batch.into_iter().map(|c| c.get().as_bytes()).collect())
}

/// A cheap test that saves parsing ordinary command records twice: a batch
/// names its `"batch"` key somewhere, a command envelope has no such key at
/// the top level (it may contain the text elsewhere, in which case `split`
/// parses and refuses it).
fn looks_like_batch(record: &[u8]) -> bool {
    record
        .windows(b"\"batch\"".len())
        .any(|w| w == b"\"batch\"")
}

/// The batch record of `commands`, each a command envelope's JSON (as
/// [`CommandEnvelope::to_json`](gpux_engine::CommandEnvelope::to_json) writes it).
///
/// # Panics
/// If `commands` is empty or holds more than [`BATCH_COMMANDS_MAX`] commands: such
/// a record would not be a batch.
pub fn encode<C: AsRef<[u8]>>(commands: &[C]) -> Vec<u8> {
    assert!(
        (1..=BATCH_COMMANDS_MAX).contains(&commands.len()),
        "a batch has 1 to {BATCH_COMMANDS_MAX} commands, not {}",
        commands.len()
    );
    let body: usize = commands.iter().map(|c| c.as_ref().len() + 1).sum();
    let mut out = Vec::with_capacity(body + 24);
    out.extend_from_slice(format!("{{\"v\":{PROTOCOL_VERSION},\"batch\":[").as_bytes());
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(c.as_ref());
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"v":3,"ts_ns":1,"command":{"type":"create_account","account":1}}"#;
    const B: &str = r#"{"v":3,"ts_ns":2,"command":{"type":"create_account","account":2}}"#;

    #[test]
    fn a_batch_splits_into_the_exact_bytes_of_its_commands_in_order() {
        let record = encode(&[A, B]);
        let parts = split(&record).expect("a batch");
        assert_eq!(parts, vec![A.as_bytes(), B.as_bytes()]);
        // Keys in any order, whitespace anywhere, escapes kept as written.
        let c = r#"{"v":3,"ts_ns":3,"request_id":"a\"b","command":{"type":"create_account"}}"#;
        let spaced = format!(" {{ \"batch\" : [ {A} ,\n{c} ] , \"v\" : 3 }} ");
        let parts = split(spaced.as_bytes()).expect("a batch");
        assert_eq!(parts, vec![A.as_bytes(), c.as_bytes()]);
    }

    #[test]
    fn anything_else_is_one_command() {
        let not_batches = [
            A.to_owned(),
            // The text "batch" inside a command is not a batch.
            r#"{"v":3,"ts_ns":1,"request_id":"\"batch\"","command":{"type":"tick"}}"#.to_owned(),
            r#"{"v":3,"batch":[]}"#.to_owned(),
            format!(r#"{{"v":2,"batch":[{A}]}}"#),
            format!(r#"{{"batch":[{A}]}}"#),
            format!(r#"{{"v":3,"batch":[{A}],"ts_ns":1}}"#),
            format!(r#"{{"v":3,"batch":{A}}}"#),
            format!(r#"{{"v":3,"batch":[{A}]"#),
            format!(r#"{{"v":3,"batch":[{A}]}} trailing"#),
            String::new(),
        ];
        for r in &not_batches {
            assert_eq!(split(r.as_bytes()), None, "{r}");
        }
        let too_many = vec![A; BATCH_COMMANDS_MAX + 1];
        let mut record = encode(&too_many[..BATCH_COMMANDS_MAX]);
        assert_eq!(split(&record).map(|p| p.len()), Some(BATCH_COMMANDS_MAX));
        record.truncate(record.len() - 2);
        record.extend_from_slice(format!(",{A}]}}").as_bytes());
        assert_eq!(split(&record), None);
    }

    #[test]
    fn elements_that_are_not_commands_are_still_split_out() {
        // Each is recorded as a malformed command of its own by the engine.
        let record = format!(r#"{{"v":3,"batch":[{A},1,"x",{{"v":3}}]}}"#);
        let parts = split(record.as_bytes()).expect("a batch");
        assert_eq!(
            parts,
            vec![A.as_bytes(), b"1", br#""x""#, br#"{"v":3}"#.as_slice()]
        );
    }

    proptest::proptest! {
        /// Whatever the commands' text holds (quotes, backslashes, the word
        /// "batch", any Unicode), a batch gives back exactly the bytes it was
        /// made of, in order.
        #[test]
        fn encode_then_split_gives_back_every_command(
            ids in proptest::collection::vec(".{0,40}", 1..40),
        ) {
            let commands: Vec<String> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let id = serde_json::to_string(id).expect("a string encodes");
                    format!(r#"{{"v":3,"ts_ns":{i},"request_id":{id},"command":{{"type":"tick"}}}}"#)
                })
                .collect();
            let record = encode(&commands);
            let parts = split(&record).expect("a batch");
            let want: Vec<&[u8]> = commands.iter().map(String::as_bytes).collect();
            proptest::prop_assert_eq!(parts, want);
            // One command alone is not a batch, whatever its request id says.
            proptest::prop_assert_eq!(split(commands[0].as_bytes()), None);
        }

        /// Any bytes at all: no panic, and what a batch yields are slices of the
        /// record that are JSON values each.
        #[test]
        fn any_bytes_split_without_panic(
            prefix in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            for record in [
                prefix.clone(),
                [br#"{"v":3,"batch":["#.as_slice(), &prefix, b"]}"].concat(),
                [br#"{"v":3,"batch":[1,"#.as_slice(), &prefix, b",", &tail, b"]}"].concat(),
            ] {
                if let Some(parts) = split(&record) {
                    for p in parts {
                        let at = p.as_ptr() as usize - record.as_ptr() as usize;
                        proptest::prop_assert!(at + p.len() <= record.len());
                        proptest::prop_assert!(serde_json::from_slice::<serde_json::Value>(p).is_ok());
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "a batch has 1 to")]
    fn an_empty_batch_is_not_encoded() {
        encode::<&str>(&[]);
    }
}
