//! `gpux markets`, `buy`, `sell`, `watch`, …: the client command line, talking to
//! any gpux exchange over its HTTP API and WebSocket.
//!
//! Owns the client subcommands: what each asks the exchange and how it shows the
//! answer — tables for people, or with `--json` the exchange's answers as JSON
//! (one document per line) for scripts. Times are **UTC** throughout: a delivery
//! slot is a UTC hour, and `--start` takes the small grammar of [`when`].
//!
//! | module | owns |
//! |---|---|
//! | [`api`] | requests, the error type and exit statuses |
//! | [`creds`] | `--api`/`GPUX_API`, `GPUX_API_KEY`, the client file `gpux login` writes |
//! | [`when`] | human time (`tomorrow 09:00`) to a slot |
//! | [`trade`] | `buy` and `sell`: the plan, its cost estimated from the book, the orders |
//! | [`views`] | the reads and small writes: login, signup, markets, curve, book, orders, cancel, cancel-after, … |
//! | [`delivery`] | `report` and `dispute`: settling a delivery entry |
//! | [`keys`] | `keys list|create|revoke`: the account's API keys |
//! | [`watch`] | `watch`: a book and its trades live over the WebSocket |
//! | [`table`] | tables |

pub mod api;
pub mod creds;
pub mod delivery;
pub mod keys;
pub mod table;
pub mod trade;
pub mod views;
pub mod watch;
pub mod when;

use api::{Api, Failure, Outcome};

/// Where the exchange is, and how to print. Every client subcommand takes these.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Conn {
    /// The exchange's address, http://HOST:PORT [env: GPUX_API] [default: the
    /// client file's (`gpux login`), else http://127.0.0.1:8080]. The API key comes
    /// from GPUX_API_KEY or the client file, never from the command line
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// Print the exchange's answers as JSON, one document per line (for scripts)
    #[arg(long)]
    pub json: bool,
}

impl Conn {
    /// The exchange these flags, the environment and the client file name.
    pub fn connect(&self) -> Outcome<Api> {
        let env = |k: &str| std::env::var(k).ok();
        let file = match creds::file_path(env) {
            Some(p) => creds::read(&p)?,
            None => creds::ClientFile::default(),
        };
        let flag = self
            .api
            .clone()
            .or_else(|| env("GPUX_API"))
            .filter(|a| !a.is_empty());
        Api::new(&creds::api(flag.as_deref(), &file), creds::key(env, &file))
    }
}

/// The client subcommands (flattened into `gpux`'s).
#[derive(Debug, clap::Subcommand)]
pub enum ClientCmd {
    /// Save the exchange's address and your API key for the other commands.
    ///
    /// Reads the key from GPUX_API_KEY or, without it, one line of standard input
    /// (never from the command line); checks it with the exchange, then writes
    /// GPUX_CLIENT_CONFIG, else ~/.config/gpux/client.toml, readable only by you.
    Login(#[command(flatten)] Conn),
    /// Open an account yourself (where the exchange allows self-serve signup) and
    /// save its key like `gpux login`. The account starts with no funds.
    Signup(#[command(flatten)] Conn),
    /// Dead man's switch: unless you run this again within SECONDS, all your open
    /// orders are cancelled (0 disarms it). Renew through the same exchange
    /// address: the deadline is kept by the gateway that received it.
    CancelAfter(views::CancelAfterArgs),
    /// List the markets: GPU model and region, tick, lot, price and size limits, fees.
    Markets(#[command(flatten)] Conn),
    /// A market's forward curve: best bid, ask, last price and volume of each open
    /// delivery hour (UTC).
    Curve(views::CurveArgs),
    /// One delivery hour's order book.
    Book(views::BookArgs),
    /// Buy GPUs for a run of delivery hours (times are UTC).
    ///
    /// Prints what it will send and the cost estimated from the book, and asks
    /// before sending unless --yes. One hour: a limit order at --max-price that
    /// rests until filled or cancelled (without --max-price, a market order). More
    /// hours: one all-or-nothing window order, filled now in every hour or not at
    /// all. --colocate: every GPU from one provider's machines, all or nothing.
    Buy(trade::TradeArgs),
    /// Sell GPUs (your listed capacity, or GPUs you bought) for a run of delivery
    /// hours (times are UTC): one limit order per hour at --min-price, resting until
    /// filled or cancelled (without a price, market orders). Asks unless --yes.
    Sell(trade::TradeArgs),
    /// Your open orders.
    Orders(views::OrdersArgs),
    /// Cancel orders: by id, or --all (of one --market, of one --slot).
    Cancel(views::CancelArgs),
    /// Your delivery schedule: the GPUs you deliver (as provider) or receive (as
    /// holder) in each hour whose gate has closed.
    Schedule(#[command(flatten)] Conn),
    /// Your USD, and your GPUs per market and delivery hour.
    Balances(#[command(flatten)] Conn),
    /// List (add) or take back (remove) your GPUs as a provider, in every hour of a
    /// run of delivery hours (times are UTC).
    Capacity {
        /// add or remove.
        #[command(subcommand)]
        action: views::CapacityCmd,
    },
    /// Report what you delivered of a delivery entry, as its provider: from the
    /// hour's start until its report deadline (`gpux schedule` lists your entries).
    /// Without --gpus, the entry's full quantity. A later report replaces an earlier one.
    Report(delivery::EntryArgs),
    /// Dispute a delivery entry, as its holder: say you received only --gpus
    /// (default 0) GPUs, once, until its dispute deadline; an admin then decides.
    Dispute(delivery::EntryArgs),
    /// Your account's API keys: list them, create one with a scope (full, trade,
    /// read), revoke one. Needs a full key.
    Keys {
        /// list, create or revoke.
        #[command(subcommand)]
        action: keys::KeysCmd,
    },
    /// Watch a delivery hour's book and trades live (without SLOT: the market's
    /// forward curve), over the WebSocket, until Ctrl-C or --updates.
    Watch(watch::WatchArgs),
}

/// Runs a client subcommand.
pub fn run(cmd: ClientCmd) -> Outcome {
    match cmd {
        ClientCmd::Login(c) => views::login(&c),
        ClientCmd::Signup(c) => views::signup(&c),
        ClientCmd::CancelAfter(a) => views::cancel_after(&a),
        ClientCmd::Markets(c) => views::markets(&c),
        ClientCmd::Curve(a) => views::curve(&a),
        ClientCmd::Book(a) => views::book(&a),
        ClientCmd::Buy(a) => trade::run(&a, trade::Side::Buy),
        ClientCmd::Sell(a) => trade::run(&a, trade::Side::Sell),
        ClientCmd::Orders(a) => views::orders(&a),
        ClientCmd::Cancel(a) => views::cancel(&a),
        ClientCmd::Schedule(c) => views::schedule(&c),
        ClientCmd::Balances(c) => views::balances(&c),
        ClientCmd::Capacity { action } => views::capacity(&action),
        ClientCmd::Report(a) => delivery::report(&a),
        ClientCmd::Dispute(a) => delivery::dispute(&a),
        ClientCmd::Keys { action } => keys::run(&action),
        ClientCmd::Watch(a) => watch::run(&a),
    }
}

/// The current unix time, seconds (the client's only clock: `--start` is relative
/// to it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A slot argument: human time ([`when`]) relative to now.
pub fn slot_arg(flag: &str, text: &str) -> Outcome<u64> {
    when::parse_when(text, now_secs()).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// Prints a JSON document on one line.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// A path segment, percent-encoded where it must be.
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
