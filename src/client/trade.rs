//! `gpux buy` and `gpux sell`: from what a person says (`--gpus 8 --start
//! "tomorrow 09:00" --hours 8 --max-price 2.50`) to the orders the API takes, with
//! the plan and its cost estimated from the book shown before anything is sent.
//!
//! Owns the mapping to orders:
//!
//! - a buy of one hour is a limit order at `--max-price` that rests (`gtc`); without
//!   a price, a market order;
//! - a buy of several hours is one **window** order (`fok`): the same GPUs in every
//!   hour, filled now in all of them or not at all; it needs `--max-price`;
//! - `--colocate` makes the buy a cluster order (`fok`): every GPU of every hour
//!   from one provider's own machines;
//! - a sell is one order per hour: a resting limit order at `--min-price`, or
//!   without a price a market order.
//!
//! The estimate walks each hour's book (the other side, within the limit) as it is
//! when asked; the exchange decides at the moment the order arrives, so the plan
//! says "estimated". Fees are the market's taker fee on the estimated cost.

use std::io::{BufRead, IsTerminal, Write};
use std::str::FromStr;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::api::{Api, Failure, Outcome, EXIT_NOT_CONFIRMED, EXIT_OTHER};
use super::table::Table;
use super::views::orders_table;
use super::{print_json, seg, slot_arg, when, Conn};

/// Most hours one `buy`/`sell` may span (a week: a market's default horizon).
pub const HOURS_MAX: u64 = 168;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// `gpux buy` / `gpux sell`.
#[derive(Debug, Clone, clap::Args)]
pub struct TradeArgs {
    /// The market, e.g. h100-sxm.us-east (`gpux markets` lists them).
    pub market: String,
    /// GPUs in each hour.
    #[arg(long)]
    pub gpus: String,
    /// The first delivery hour, UTC: `tomorrow 09:00`, `9am`, `in 3 hours`,
    /// `2026-12-07 09:00`, `2026-12-07T09:00Z`
    #[arg(long, value_name = "WHEN")]
    pub start: String,
    /// How many consecutive hours.
    #[arg(long, default_value_t = 1)]
    pub hours: u64,
    /// The limit per GPU-hour in USD: the most a buy pays (--max-price), the
    /// least a sell takes (--min-price). Without it: market orders
    #[arg(long = "price", visible_aliases = ["max-price", "min-price"], value_name = "USD")]
    pub price: Option<String>,
    /// Buy a cluster: every GPU of every hour from one provider's machines
    #[arg(long)]
    pub colocate: bool,
    /// Send without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the plan and its estimate, send nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// What will be sent, and what the book says it would cost now.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Buy or sell.
    pub side: Side,
    /// The request bodies, in order.
    pub orders: Vec<Value>,
    /// Per hour: slot, GPUs wanted, GPUs the book offers within the limit, their cost.
    pub hours: Vec<(u64, Decimal, Decimal, Decimal)>,
    /// The taker fee, basis points.
    pub fee_bps: Decimal,
}

/// Runs `gpux buy` or `gpux sell`.
pub fn run(a: &TradeArgs, side: Side) -> Outcome {
    let orders = build(a, side, when_start(a)?)?;
    let api = a.conn.connect()?;
    let plan = estimate(&api, a, side, orders)?;
    if a.dry_run || !a.conn.json {
        show_plan(a, &plan);
    }
    if a.dry_run {
        return Ok(());
    }
    if !a.yes {
        confirm()?;
    }
    let mut placed = Vec::new();
    for body in &plan.orders {
        let v = api.send(Method::POST, "/v1/orders", Some(body))?;
        if a.conn.json {
            print_json(&v);
        }
        placed.push(v);
    }
    if !a.conn.json {
        println!("{}", orders_table(&placed).render());
    }
    Ok(())
}

fn when_start(a: &TradeArgs) -> Outcome<u64> {
    if a.hours == 0 || a.hours > HOURS_MAX {
        return Err(Failure::usage(format!("--hours: 1 to {HOURS_MAX}")));
    }
    slot_arg("--start", &a.start)
}

fn decimal(flag: &str, s: &str) -> Outcome<Decimal> {
    match Decimal::from_str(s.trim()) {
        Ok(d) if d > Decimal::ZERO => Ok(d),
        _ => Err(Failure::usage(format!(
            "{flag}: a positive decimal number, e.g. 2.50; got {s:?}"
        ))),
    }
}

/// The request bodies of `a` starting at slot `start`.
pub fn build(a: &TradeArgs, side: Side, start: u64) -> Outcome<Vec<Value>> {
    decimal("--gpus", &a.gpus)?;
    if let Some(p) = &a.price {
        decimal("--max-price/--min-price", p)?;
    }
    let last = start + (a.hours - 1) * 3_600;
    let base = |slot_fields: Value| {
        let mut o = json!({"market": a.market, "side": side.name(), "quantity": a.gpus.trim()});
        for (k, v) in slot_fields.as_object().into_iter().flatten() {
            o[k] = v.clone();
        }
        match &a.price {
            Some(p) => o["price"] = json!(p.trim()),
            None => o["order_type"] = json!("market"),
        }
        o
    };
    match side {
        Side::Sell if a.colocate => Err(Failure::usage("--colocate is for buys: a cluster is bought from one provider")),
        Side::Sell => Ok((0..a.hours)
            .map(|i| base(json!({"slot": when::show(start + i * 3_600)})))
            .collect()),
        Side::Buy if (a.hours > 1 || a.colocate) && a.price.is_none() => Err(Failure::usage(
            "--max-price: a buy of several hours or a --colocate buy is all or nothing at a limit; give the most you pay per GPU-hour",
        )),
        Side::Buy => {
            let mut o = if a.hours > 1 {
                base(json!({"window": {"from_slot": when::show(start), "to_slot": when::show(last)}}))
            } else {
                base(json!({"slot": when::show(start)}))
            };
            if a.colocate {
                o["colocate"] = json!(true);
            }
            if a.hours > 1 || a.colocate {
                o["time_in_force"] = json!("fok");
            }
            Ok(vec![o])
        }
    }
}

/// Walks each hour's book for `orders`.
fn estimate(api: &Api, a: &TradeArgs, side: Side, orders: Vec<Value>) -> Outcome<Plan> {
    let spec = api.public(&format!("/v1/markets/{}", seg(&a.market)))?;
    let spec = if spec["market"].is_object() {
        &spec["market"]
    } else {
        &spec
    };
    let fee_bps = Decimal::from(spec["taker_fee_bps"].as_u64().unwrap_or(0));
    let want = decimal("--gpus", &a.gpus)?;
    let limit = a
        .price
        .as_deref()
        .map(|p| decimal("--price", p))
        .transpose()?;
    let start = when_start(a)?;
    let mut hours = Vec::new();
    for i in 0..a.hours {
        let slot = start + i * 3_600;
        let depth = api.public(&format!(
            "/v1/markets/{}/slots/{}/depth?depth=1000",
            seg(&a.market),
            when::show(slot)
        ))?;
        let levels = depth[if side == Side::Buy { "asks" } else { "bids" }].clone();
        let (got, cost) =
            walk(&levels, want, limit, side).map_err(|e| Failure::new(EXIT_OTHER, e))?;
        hours.push((slot, want, got, cost));
    }
    Ok(Plan {
        side,
        orders,
        hours,
        fee_bps,
    })
}

/// GPUs and their cost taking `levels` (best first) up to `want` within `limit`.
pub fn walk(
    levels: &Value,
    want: Decimal,
    limit: Option<Decimal>,
    side: Side,
) -> Result<(Decimal, Decimal), String> {
    let (mut got, mut cost) = (Decimal::ZERO, Decimal::ZERO);
    for l in levels.as_array().into_iter().flatten() {
        let num = |v: &Value| {
            v.as_str()
                .and_then(|s| Decimal::from_str(s).ok())
                .ok_or_else(|| {
                    format!("the exchange sent a book level that is not [price, quantity]: {l}")
                })
        };
        let (price, qty) = (num(&l[0])?, num(&l[1])?);
        let within = match (limit, side) {
            (None, _) => true,
            (Some(p), Side::Buy) => price <= p,
            (Some(p), Side::Sell) => price >= p,
        };
        if !within || got >= want {
            break;
        }
        let take = qty.min(want - got);
        got += take;
        cost += take * price;
    }
    Ok((got, cost))
}

fn show_plan(a: &TradeArgs, plan: &Plan) {
    let (got, cost): (Decimal, Decimal) = plan
        .hours
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(g, c), h| {
            (g + h.2, c + h.3)
        });
    let fee = (cost * plan.fee_bps / Decimal::from(10_000)).round_dp(6);
    let want: Decimal = plan.hours.iter().map(|h| h.1).sum();
    if a.conn.json {
        print_json(&json!({
            "side": plan.side.name(), "orders": plan.orders,
            "hours": plan.hours.iter().map(|h| json!({"slot": when::show(h.0), "gpus": h.1.to_string(), "available": h.2.to_string(), "cost": h.3.to_string()})).collect::<Vec<_>>(),
            "estimated_gpu_hours": got.to_string(), "estimated_cost": cost.to_string(), "estimated_fee": fee.to_string(),
        }));
        return;
    }
    let first = plan.hours.first().map_or(0, |h| h.0);
    let last = plan.hours.last().map_or(0, |h| h.0) + 3_600;
    println!(
        "{} {} GPUs of {} for {} hour(s): {} to {} (UTC)",
        if plan.side == Side::Buy {
            "Buy"
        } else {
            "Sell"
        },
        a.gpus.trim(),
        a.market,
        a.hours,
        when::show(first),
        when::show(last),
    );
    println!("  {}", describe(a, plan.side));
    let mut t = Table::new(&["slot (UTC)", "gpus", "in_book", "est_usd"]);
    for (slot, w, g, c) in &plan.hours {
        t.row(vec![
            when::show(*slot),
            w.to_string(),
            g.to_string(),
            c.round_dp(6).to_string(),
        ]);
    }
    println!("{}", t.render());
    println!(
        "Estimated from the book now: {got} of {want} GPU-hours for {} USD + {fee} USD taker fee ({} bps)",
        cost.round_dp(6),
        plan.fee_bps
    );
}

fn describe(a: &TradeArgs, side: Side) -> String {
    let limit = match (&a.price, side) {
        (Some(p), Side::Buy) => format!("paying at most {} USD per GPU-hour", p.trim()),
        (Some(p), Side::Sell) => format!("taking at least {} USD per GPU-hour", p.trim()),
        (None, _) => "at market: whatever the book offers now".into(),
    };
    let how = match side {
        Side::Buy if a.colocate => "one cluster order: every GPU of every hour from one provider, all or nothing, now (fok)",
        Side::Buy if a.hours > 1 => "one window order: the same GPUs in every hour, all or nothing, now (fok)",
        Side::Buy if a.price.is_some() => "one limit order, resting on the book until filled or cancelled (gtc)",
        Side::Buy => "one market order, filled now as far as the book goes (ioc)",
        Side::Sell if a.price.is_some() => "one limit order per hour, resting until filled or cancelled (gtc)",
        Side::Sell => "one market order per hour, filled now as far as the book goes (ioc)",
    };
    format!("{how}, {limit}")
}

/// Asks on the terminal; anything but `y`/`yes` (or no answer) sends nothing.
fn confirm() -> Outcome {
    let mut err = std::io::stderr();
    let _ = write!(err, "Send? [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
    if read == 0 && !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            EXIT_NOT_CONFIRMED,
            "not sent: no answer on standard input; pass --yes to send without asking",
        ));
    }
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::new(EXIT_NOT_CONFIRMED, "not sent")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(hours: u64, price: Option<&str>, colocate: bool) -> TradeArgs {
        TradeArgs {
            market: "h100-sxm.us-east".into(),
            gpus: "8".into(),
            start: "x".into(),
            hours,
            price: price.map(Into::into),
            colocate,
            yes: false,
            dry_run: false,
            conn: Conn::default(),
        }
    }

    /// 2026-12-07T09:00Z.
    const T9: u64 = 1_796_634_000;

    #[test]
    fn buys_become_one_order_and_sells_one_per_hour() {
        assert_eq!(when::show(T9), "2026-12-07T09:00Z");
        let one = build(&args(1, Some("2.50"), false), Side::Buy, T9).unwrap();
        assert_eq!(
            one,
            vec![
                json!({"market":"h100-sxm.us-east","side":"buy","quantity":"8","slot":"2026-12-07T09:00Z","price":"2.50"})
            ]
        );
        let window = build(&args(8, Some("2.50"), true), Side::Buy, T9).unwrap();
        assert_eq!(
            window,
            vec![
                json!({"market":"h100-sxm.us-east","side":"buy","quantity":"8",
            "window":{"from_slot":"2026-12-07T09:00Z","to_slot":"2026-12-07T16:00Z"},"price":"2.50","colocate":true,"time_in_force":"fok"})
            ]
        );
        let market = build(&args(1, None, false), Side::Buy, T9).unwrap();
        assert_eq!(market[0]["order_type"], "market");
        let sells = build(&args(3, Some("2.40"), false), Side::Sell, T9).unwrap();
        assert_eq!(sells.len(), 3);
        assert_eq!(sells[2]["slot"], "2026-12-07T11:00Z");
        let e = build(&args(2, None, false), Side::Buy, T9).unwrap_err();
        assert!(e.message.contains("--max-price"), "{}", e.message);
        assert!(build(&args(1, Some("2"), true), Side::Sell, T9).is_err());
        assert!(build(&args(1, Some("-1"), false), Side::Buy, T9).is_err());
    }

    #[test]
    fn the_estimate_walks_the_book_within_the_limit() {
        let asks = json!([["2.40", "3"], ["2.45", "4"], ["2.60", "10"]]);
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(
            walk(&asks, d("5"), Some(d("2.50")), Side::Buy).unwrap(),
            (d("5"), d("12.10"))
        );
        assert_eq!(
            walk(&asks, d("20"), Some(d("2.50")), Side::Buy).unwrap(),
            (d("7"), d("17.00"))
        );
        assert_eq!(
            walk(&asks, d("20"), None, Side::Buy).unwrap(),
            (d("17"), d("43.00"))
        );
        let bids = json!([["2.40", "3"], ["2.30", "4"]]);
        assert_eq!(
            walk(&bids, d("5"), Some(d("2.35")), Side::Sell).unwrap(),
            (d("3"), d("7.20"))
        );
        assert!(walk(&json!([[1, 2]]), d("1"), None, Side::Buy).is_err());
    }
}
