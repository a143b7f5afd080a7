//! `gpux keys list|create|revoke`: an account's API keys from the terminal.
//!
//! Owns the client side of key management: every subcommand needs the account's
//! `full` key. `create` prints the new key once (it is not saved: hand it to the
//! machine or bot that will use it, or `gpux login` with it); `list` shows each
//! key's id and scope, never a key; `revoke` takes a key id from `list`. Rotation
//! is `create`, switch over, `revoke` the old key.

use reqwest::Method;
use serde_json::json;

use super::api::Outcome;
use super::table::{cell, Table};
use super::{print_json, seg, Conn};

/// `gpux keys …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCmd {
    /// Your account's keys: id, scope, and which one this is.
    List(#[command(flatten)] Conn),
    /// A new key, printed once: full (everything), trade (no withdrawals, no key
    /// management) or read (read only).
    Create(CreateArgs),
    /// Revoke a key by its id (`gpux keys list`); every gateway refuses it from
    /// then on. Your account's last key cannot be revoked.
    Revoke(RevokeArgs),
}

/// What a new key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Everything.
    Full,
    /// Trade, report and dispute; no withdrawals, no key management.
    Trade,
    /// Read only.
    Read,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Trade => "trade",
            Scope::Read => "read",
        }
    }
}

/// `gpux keys create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// What the key may do.
    #[arg(long, value_enum, default_value_t = Scope::Full)]
    pub scope: Scope,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux keys revoke KEY_ID`.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The key's id, as `gpux keys list` shows it (16 hex digits).
    pub key_id: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// Runs `gpux keys …`.
pub fn run(cmd: &KeysCmd) -> Outcome {
    match cmd {
        KeysCmd::List(conn) => list(conn),
        KeysCmd::Create(a) => create(a),
        KeysCmd::Revoke(a) => revoke(a),
    }
}

fn list(conn: &Conn) -> Outcome {
    let v = conn.connect()?.get("/v1/keys")?;
    if conn.json {
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new(&["key_id", "scope", "this"]);
    for k in v["keys"].as_array().into_iter().flatten() {
        let this = if k["current"] == true { "*" } else { "" };
        t.row(vec![cell(&k["key_id"]), cell(&k["scope"]), this.into()]);
    }
    println!("account {}:", cell(&v["account"]));
    println!("{}", t.render());
    Ok(())
}

fn create(a: &CreateArgs) -> Outcome {
    let body = json!({ "scope": a.scope.name() });
    let v = a
        .conn
        .connect()?
        .send(Method::POST, "/v1/keys", Some(&body))?;
    if a.conn.json {
        print_json(&v);
    } else {
        println!(
            "New {} key {} for account {} (shown this once; it is not saved here):\n{}",
            cell(&v["scope"]),
            cell(&v["key_id"]),
            cell(&v["account"]),
            cell(&v["api_key"])
        );
    }
    Ok(())
}

fn revoke(a: &RevokeArgs) -> Outcome {
    let v = a.conn.connect()?.send(
        Method::DELETE,
        &format!("/v1/keys/{}", seg(a.key_id.trim())),
        None,
    )?;
    if a.conn.json {
        print_json(&v);
    } else {
        println!(
            "revoked key {} of account {}: every gateway refuses it now",
            cell(&v["key_id"]),
            cell(&v["account"])
        );
    }
    Ok(())
}
