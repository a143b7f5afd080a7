//! The client's reads and small writes: `login`, `markets`, `curve`, `book`,
//! `orders`, `cancel`, `schedule`, `balances`, `capacity add|remove`. Each asks
//! the exchange once or a few times and prints a table, or with `--json` the
//! exchange's answers.

use std::io::BufRead;

use reqwest::Method;
use serde_json::{json, Value};

use super::api::{Api, Failure, Outcome, EXIT_OTHER};
use super::table::{cell, Table};
use super::{creds, print_json, seg, slot_arg, when, Conn};

/// `gpux curve MARKET`.
#[derive(Debug, Clone, clap::Args)]
pub struct CurveArgs {
    /// The market, e.g. h100-sxm.us-east (`gpux markets` lists them).
    pub market: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux book MARKET SLOT`.
#[derive(Debug, Clone, clap::Args)]
pub struct BookArgs {
    /// The market.
    pub market: String,
    /// The delivery hour, UTC: `tomorrow 09:00`, `in 2 hours`, `2026-12-07T09:00Z`, …
    pub slot: String,
    /// Price levels per side.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub depth: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux orders`.
#[derive(Debug, Clone, clap::Args)]
pub struct OrdersArgs {
    /// Only this market.
    #[arg(long)]
    pub market: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux cancel`.
#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    /// Order ids (`gpux orders` lists them).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<u64>,
    /// Cancel all your open orders (of --market, of --slot).
    #[arg(long)]
    pub all: bool,
    /// With --all: only this market.
    #[arg(long, requires = "all")]
    pub market: Option<String>,
    /// With --all --market: only this delivery hour (UTC).
    #[arg(long, requires = "market", value_name = "WHEN")]
    pub slot: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux capacity add|remove`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CapacityCmd {
    /// List GPUs for sale in every hour of the run (they are then yours to sell).
    Add(CapacityArgs),
    /// Take back unsold GPUs from every hour of the run.
    Remove(CapacityArgs),
}

/// A provider's GPUs over a run of hours.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// The market.
    pub market: String,
    /// GPUs in each hour.
    #[arg(long)]
    pub gpus: String,
    /// The first hour, UTC: `tomorrow 09:00`, `in 2 hours`, `2026-12-07T09:00Z`, …
    #[arg(long, value_name = "WHEN")]
    pub start: String,
    /// How many consecutive hours.
    #[arg(long, default_value_t = 1)]
    pub hours: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux cancel-after SECONDS`.
#[derive(Debug, Clone, clap::Args)]
pub struct CancelAfterArgs {
    /// Seconds until your open orders are cancelled unless renewed; 0 disarms.
    pub seconds: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// `gpux signup`.
pub fn signup(conn: &Conn) -> Outcome {
    let env = |k: &str| std::env::var(k).ok();
    let path = creds::file_path(env).ok_or_else(|| {
        Failure::new(
            EXIT_OTHER,
            "no place for the client file: set GPUX_CLIENT_CONFIG or HOME",
        )
    })?;
    let mut file = creds::read(&path)?;
    let api_url = creds::api(
        conn.api.clone().or_else(|| env("GPUX_API")).as_deref(),
        &file,
    );
    let api = super::api::Api::new(&api_url, None)?;
    let v = api.send_public(Method::POST, "/v1/signup")?;
    let key = v["api_key"]
        .as_str()
        .ok_or_else(|| Failure::new(EXIT_OTHER, "the exchange answered no api_key"))?;
    file.api = Some(api.base().to_owned());
    file.api_key = Some(key.to_owned());
    creds::write(&path, &file)?;
    if conn.json {
        print_json(&json!({"api": api.base(), "account": v["account"], "file": path}));
    } else {
        println!(
            "Signed up at {} as account {} (no funds yet); the key is saved in {} (readable only by you).",
            api.base(),
            cell(&v["account"]),
            path.display()
        );
    }
    Ok(())
}

/// `gpux cancel-after SECONDS`.
pub fn cancel_after(a: &CancelAfterArgs) -> Outcome {
    let ms = a.seconds.saturating_mul(1_000);
    let v = a.conn.connect()?.send(
        Method::POST,
        "/v1/cancel-after",
        Some(&json!({"timeout_ms": ms})),
    )?;
    if a.conn.json {
        print_json(&v);
    } else if let Some(t) = v["trigger_time_ms"].as_u64() {
        println!(
            "Unless renewed, all your open orders are cancelled at {} UTC ({} s from now): run `gpux cancel-after` again before.",
            crate::client::when::show_ms(t),
            a.seconds
        );
    } else {
        println!("Disarmed: your open orders stay.");
    }
    Ok(())
}

/// `gpux login`.
pub fn login(conn: &Conn) -> Outcome {
    let env = |k: &str| std::env::var(k).ok();
    let path = creds::file_path(env).ok_or_else(|| {
        Failure::new(
            EXIT_OTHER,
            "no place for the client file: set GPUX_CLIENT_CONFIG or HOME",
        )
    })?;
    let mut file = creds::read(&path)?;
    let key = match env("GPUX_API_KEY").filter(|k| !k.trim().is_empty()) {
        Some(k) => k,
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("API key: ");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::new(EXIT_OTHER, format!("cannot read the key: {e}")))?;
            line
        }
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(Failure::usage(
            "no key given: paste your API key, or set GPUX_API_KEY",
        ));
    }
    let api_url = creds::api(
        conn.api.clone().or_else(|| env("GPUX_API")).as_deref(),
        &file,
    );
    let api = super::api::Api::new(&api_url, Some(key.clone()))?;
    let who = api.get("/v1/balances")?;
    file.api = Some(api.base().to_owned());
    file.api_key = Some(key);
    creds::write(&path, &file)?;
    if conn.json {
        print_json(&json!({"api": api.base(), "account": who["account"], "file": path}));
    } else {
        println!(
            "Logged in to {} as account {}; saved in {} (readable only by you).",
            api.base(),
            cell(&who["account"]),
            path.display()
        );
    }
    Ok(())
}

/// `gpux markets`: one row per market; prices are USD per GPU-hour of `base`.
pub fn markets(conn: &Conn) -> Outcome {
    let v = conn.connect()?.public("/v1/markets")?;
    if conn.json {
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new(&[
        "market",
        "base",
        "region",
        "quote",
        "tick",
        "lot",
        "min_price",
        "max_price",
        "max_qty",
        "maker_bps",
        "taker_bps",
    ]);
    for m in v["markets"].as_array().into_iter().flatten() {
        // An exchange without the metadata fields: read them off the id.
        let id = cell(&m["market"]);
        let (base, region) = id.split_once('.').unwrap_or((&id, "-"));
        let or = |k: &str, d: &str| m[k].as_str().unwrap_or(d).to_owned();
        t.row(vec![
            id.clone(),
            or("base", base),
            or("region", region),
            or("quote", "USD"),
            cell(&m["tick_size"]),
            cell(&m["lot_size"]),
            cell(&m["min_price"]),
            cell(&m["max_price"]),
            cell(&m["max_order_quantity"]),
            cell(&m["maker_fee_bps"]),
            cell(&m["taker_fee_bps"]),
        ]);
    }
    println!("{}", t.render());
    Ok(())
}

/// `gpux curve MARKET`.
pub fn curve(a: &CurveArgs) -> Outcome {
    let v = a
        .conn
        .connect()?
        .public(&format!("/v1/markets/{}/slots", seg(&a.market)))?;
    if a.conn.json {
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new(&["slot (UTC)", "best_bid", "best_ask", "last_price", "volume"]);
    for r in v["slots"].as_array().into_iter().flatten() {
        t.row(
            ["slot", "best_bid", "best_ask", "last_price", "volume"]
                .iter()
                .map(|k| cell(&r[*k]))
                .collect(),
        );
    }
    if t.is_empty() {
        println!("{}: no open delivery hour has orders yet", a.market);
    } else {
        println!("{}", t.render());
    }
    Ok(())
}

/// `gpux book MARKET SLOT`.
pub fn book(a: &BookArgs) -> Outcome {
    let slot = when::show(slot_arg("SLOT", &a.slot)?);
    let v = a.conn.connect()?.public(&format!(
        "/v1/markets/{}/slots/{slot}/depth?depth={}",
        seg(&a.market),
        a.depth
    ))?;
    if a.conn.json {
        print_json(&v);
        return Ok(());
    }
    println!("{} {slot} (UTC), seq {}", a.market, cell(&v["seq"]));
    println!("{}", book_table(&v).render());
    Ok(())
}

/// Asks (highest first, so the best ask sits above the best bid), then bids.
pub fn book_table(depth: &Value) -> Table {
    let mut t = Table::new(&["side", "price", "gpus"]);
    let levels = |k: &str| depth[k].as_array().cloned().unwrap_or_default();
    for l in levels("asks").iter().rev() {
        t.row(vec!["ask".into(), cell(&l[0]), cell(&l[1])]);
    }
    for l in &levels("bids") {
        t.row(vec!["bid".into(), cell(&l[0]), cell(&l[1])]);
    }
    t
}

/// An order table from order answers.
pub fn orders_table<'a>(orders: impl IntoIterator<Item = &'a Value>) -> Table {
    let mut t = Table::new(&[
        "order",
        "market",
        "slot (UTC)",
        "to_slot",
        "side",
        "type",
        "price",
        "gpus",
        "filled",
        "remaining",
        "status",
    ]);
    for o in orders {
        t.row(
            [
                "order_id",
                "market",
                "slot",
                "to_slot",
                "side",
                "order_type",
                "price",
                "quantity",
                "filled",
                "remaining",
                "status",
            ]
            .iter()
            .map(|k| cell(&o[*k]))
            .collect(),
        );
    }
    t
}

/// `gpux orders`.
pub fn orders(a: &OrdersArgs) -> Outcome {
    let path = match &a.market {
        Some(m) => format!("/v1/orders?market={}", seg(m)),
        None => "/v1/orders".into(),
    };
    let v = a.conn.connect()?.get(&path)?;
    if a.conn.json {
        print_json(&v);
        return Ok(());
    }
    let list = v["orders"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no open orders");
    } else {
        println!("{}", orders_table(&list).render());
    }
    Ok(())
}

/// `gpux cancel`.
pub fn cancel(a: &CancelArgs) -> Outcome {
    let api = a.conn.connect()?;
    if a.all {
        let mut path = "/v1/orders".to_owned();
        if let Some(m) = &a.market {
            path.push_str(&format!("?market={}", seg(m)));
        }
        if let Some(s) = &a.slot {
            path.push_str(&format!("&slot={}", when::show(slot_arg("--slot", s)?)));
        }
        let v = api.send(Method::DELETE, &path, None)?;
        if a.conn.json {
            print_json(&v);
        } else {
            println!(
                "cancelled {} orders: {}",
                cell(&v["count"]),
                ids(&v["cancelled"])
            );
        }
        return Ok(());
    }
    for id in &a.ids {
        let v = api.send(Method::DELETE, &format!("/v1/orders/{id}"), None)?;
        if a.conn.json {
            print_json(&v);
        } else {
            println!(
                "cancelled order {id}: {} {} {} {} GPUs at {}",
                cell(&v["side"]),
                cell(&v["market"]),
                cell(&v["slot"]),
                cell(&v["cancelled_quantity"]),
                cell(&v["price"]),
            );
        }
    }
    Ok(())
}

fn ids(v: &Value) -> String {
    let list: Vec<String> = v.as_array().into_iter().flatten().map(cell).collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(" ")
    }
}

/// `gpux balances`.
pub fn balances(conn: &Conn) -> Outcome {
    let v = conn.connect()?.get("/v1/balances")?;
    if conn.json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "account {}: {} USD available, {} USD held by open orders",
        cell(&v["account"]),
        cell(&v["usd"]["available"]),
        cell(&v["usd"]["held"])
    );
    let mut t = Table::new(&[
        "market",
        "slot (UTC)",
        "available",
        "held",
        "inventory",
        "kept",
    ]);
    for p in v["gpus"].as_array().into_iter().flatten() {
        t.row(
            ["market", "slot", "available", "held", "inventory", "kept"]
                .iter()
                .map(|k| cell(&p[*k]))
                .collect(),
        );
    }
    if !t.is_empty() {
        println!("{}", t.render());
    }
    Ok(())
}

/// The account the key is for and its delivery schedule (`GET
/// /v1/accounts/{account}/schedule`).
pub(crate) fn my_schedule(api: &Api) -> Outcome<(u64, Value)> {
    let me = api.get("/v1/balances")?;
    let account = me["account"].as_u64().ok_or_else(|| {
        Failure::new(
            EXIT_OTHER,
            "the exchange did not say which account this key is",
        )
    })?;
    Ok((
        account,
        api.get(&format!("/v1/accounts/{account}/schedule"))?,
    ))
}

/// `gpux schedule`.
pub fn schedule(conn: &Conn) -> Outcome {
    let api = conn.connect()?;
    let (account, v) = my_schedule(&api)?;
    if conn.json {
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new(&[
        "entry",
        "slot (UTC)",
        "market",
        "role",
        "gpus",
        "provider",
        "holder",
        "state",
    ]);
    for e in v["entries"].as_array().into_iter().flatten() {
        t.row(
            [
                "entry", "slot", "market", "role", "quantity", "provider", "holder", "state",
            ]
            .iter()
            .map(|k| cell(&e[*k]))
            .collect(),
        );
    }
    if t.is_empty() {
        println!("account {account}: no deliveries yet (an hour's deliveries are fixed when its gate closes)");
    } else {
        println!("{}", t.render());
    }
    Ok(())
}

/// `gpux capacity add|remove`.
pub fn capacity(cmd: &CapacityCmd) -> Outcome {
    let (a, verb, path) = match cmd {
        CapacityCmd::Add(a) => (a, "listed", "/v1/capacity/add"),
        CapacityCmd::Remove(a) => (a, "took back", "/v1/capacity/remove"),
    };
    if a.hours == 0 {
        return Err(Failure::usage("--hours: at least 1"));
    }
    let from = slot_arg("--start", &a.start)?;
    let to = from + (a.hours - 1) * 3_600;
    let body = json!({
        "market": a.market,
        "from_slot": when::show(from),
        "to_slot": when::show(to),
        "quantity": a.gpus,
    });
    let v = a.conn.connect()?.send(Method::POST, path, Some(&body))?;
    if a.conn.json {
        print_json(&v);
    } else {
        println!(
            "{verb} {} GPUs of {} in each hour from {} to {} (UTC; {} hours)",
            cell(&v["quantity"]),
            cell(&v["market"]),
            cell(&v["from_slot"]),
            cell(&v["to_slot"]),
            a.hours
        );
    }
    Ok(())
}
