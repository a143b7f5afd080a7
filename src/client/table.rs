//! Tables for people: aligned columns under a header, numbers to the right.
//!
//! Owns the one way the client prints rows, so every command's table looks alike
//! and `--json` (the server's answers, one JSON document per line) stays the
//! format for scripts.

use serde_json::Value;

/// A table being built.
pub struct Table {
    head: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(head: &[&'static str]) -> Self {
        Table {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row after the header; a column whose cells
    /// all look like numbers is aligned right.
    pub fn render(&self) -> String {
        let n = self.head.len();
        let mut width: Vec<usize> = self.head.iter().map(|h| h.len()).collect();
        let mut numeric = vec![true; n];
        for row in &self.rows {
            for (i, c) in row.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
                numeric[i] &= looks_numeric(c);
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = width[i].saturating_sub(c.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if numeric[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    if i + 1 < cells.len() {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = line(self.head.clone());
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

fn looks_numeric(s: &str) -> bool {
    s == "-"
        || (!s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-'))
            && s.bytes().filter(|b| *b == b'-').count() <= 1
}

/// A JSON field as a cell: strings bare, `null` and missing as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let mut t = Table::new(&["market", "price", "qty"]);
        t.row(vec!["h100".into(), "2.41".into(), "10".into()]);
        t.row(vec!["a100-80gb".into(), "-".into(), "2.5".into()]);
        assert_eq!(
            t.render(),
            "market     price  qty\nh100        2.41   10\na100-80gb      -  2.5"
        );
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&serde_json::json!("x")), "x");
        assert_eq!(cell(&serde_json::json!(3)), "3");
    }
}
