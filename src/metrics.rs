//! Prometheus metrics of a running exchange: one registry, a cheap handle to update
//! it, and the text a `/metrics` endpoint serves.
//!
//! Owns the names, help texts and label sets of every gpux metric, so dashboards have
//! one place to look. It is deliberately independent of the gateway: every input is
//! a plain number or a plain struct ([`PipelineSample`], [`BookDepth`]), and the
//! integrator connects the parts (`gpux serve`). Built on `prometheus-client`, the
//! Prometheus project's Rust client, which writes the OpenMetrics text format.
//!
//! | metric | type | fed by |
//! |---|---|---|
//! | `gpux_commands_applied_total` | counter | [`Metrics::record_pipeline`] (commands/s: `rate(…[1m])`) |
//! | `gpux_events_durable_total` | counter | [`Metrics::record_pipeline`] |
//! | `gpux_ledger_batches_total` | counter | [`Metrics::record_pipeline`] |
//! | `gpux_durable_cmd_seq` | gauge | [`Metrics::record_pipeline`] |
//! | `gpux_batch_commit_latency_seconds{quantile}` | gauge | [`Metrics::record_commit_latency`] |
//! | `gpux_batch_commit_latency_max_seconds`, `…_mean_seconds` | gauge | [`Metrics::record_commit_latency`] |
//! | `gpux_follower_cmd_seq{follower}`, `gpux_follower_lag_commands{follower}` | gauge | [`Metrics::set_follower_seq`] |
//! | `gpux_book_resting_orders{market,side}`, `gpux_book_levels{market,side}` | gauge | [`Metrics::set_book_depth`] |
//! | `gpux_websocket_clients` | gauge | [`Metrics::ws_client_connected`] / [`Metrics::set_ws_clients`] |
//! | `gpux_http_requests_total{method,route,status}` | counter | [`Metrics::http_request`] |
//! | `gpux_build_info{version}` | info | constant |
//!
//! A gateway without an exchange (`gpux gateway`, [`Metrics::for_gateway`]) serves
//! only the follower `cmd_seq`, book, WebSocket, HTTP and build series: it has no
//! pipeline, and no ledger to measure a lag against.
//!
//! # Commit latency: quantile gauges, not a histogram
//!
//! The pipeline already measures every batch's read-to-durable time into
//! `PipelineStats::read_to_durable`, a bounded log-linear [`LatencyHistogram`] (about
//! 3 % precision, fixed memory, cumulative since start) that `gpux bench` reports
//! from too. It exposes quantiles, not its buckets, and feeding a Prometheus
//! histogram instead would need a hook in the sequencer's commit callback for every
//! batch. So the metrics export that histogram as a summary would: p50, p90, p99,
//! p99.9 and the maximum as `{quantile="…"}` gauges, plus the mean, read when the
//! metrics are rendered. They are exact to the pipeline's own precision and agree
//! with the benchmark figures, but they cover the whole run (not a sliding window)
//! and cannot be aggregated across processes; `rate()` of
//! `gpux_ledger_batches_total` gives the batch rate. If windowed latency is needed
//! later, the sequencer can add a per-batch hook and this module a histogram.
//!
//! # Example
//! ```
//! use gpux::metrics::{BookDepth, Metrics, PipelineSample};
//!
//! let metrics = Metrics::new();
//! metrics.record_pipeline(PipelineSample { applied: 10, durable_seq: 10, durable_events: 25, batches: 2 });
//! metrics.set_follower_seq("gateway", 8);
//! metrics.set_book_depth(&[BookDepth { market: "h100-sxm.us-east".into(), bid_orders: 3, bid_levels: 2, ask_orders: 1, ask_levels: 1 }]);
//! metrics.http_request("POST", "/v1/orders", 201);
//! let text = metrics.render();
//! assert!(text.contains("gpux_commands_applied_total 10"));
//! assert!(text.contains("gpux_follower_lag_commands{follower=\"gateway\"} 2"));
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gpux_ledger::LatencyHistogram;
use gpux_sequencer::PipelineStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s text (OpenMetrics, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Quantiles of the commit latency exported, in per mille, with their label values.
const QUANTILES: [(u32, &str); 5] = [
    (500, "0.5"),
    (900, "0.9"),
    (990, "0.99"),
    (999, "0.999"),
    (1000, "1"),
];

/// One reading of the pipeline's counters (`PipelineStats`), all since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineSample {
    /// Commands applied by the engine.
    pub applied: u64,
    /// Highest `cmd_seq` durable in the ledger.
    pub durable_seq: u64,
    /// Events made durable.
    pub durable_events: u64,
    /// Ledger batches committed.
    pub batches: u64,
}

impl PipelineSample {
    /// Reads the pipeline's live counters.
    pub fn from_stats(stats: &PipelineStats) -> Self {
        PipelineSample {
            applied: stats.applied.load(Ordering::Relaxed),
            durable_seq: stats.durable_seq.load(Ordering::Acquire),
            durable_events: stats.durable_events.load(Ordering::Relaxed),
            batches: stats.batches.load(Ordering::Relaxed),
        }
    }
}

/// One market's book size (the gateway's replica computes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookDepth {
    /// Market id, e.g. `h100-sxm.us-east`.
    pub market: String,
    /// Resting buy orders.
    pub bid_orders: u64,
    /// Price levels on the buy side.
    pub bid_levels: u64,
    /// Resting sell orders.
    pub ask_orders: u64,
    /// Price levels on the sell side.
    pub ask_levels: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BookLabels {
    market: String,
    /// `bid` or `ask`.
    side: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabels {
    follower: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabels {
    quantile: &'static str,
}

type GaugeF64 = Gauge<f64, AtomicU64>;
type GaugeU64 = Gauge<u64, AtomicU64>;

/// Every metric (at zero when defaulted), and the registry that renders them.
#[derive(Debug, Default)]
struct Inner {
    registry: Registry,
    commands_applied: Counter,
    events_durable: Counter,
    ledger_batches: Counter,
    durable_seq: GaugeU64,
    commit_latency: Family<QuantileLabels, GaugeF64>,
    commit_latency_max: GaugeF64,
    commit_latency_mean: GaugeF64,
    follower_seq: Family<FollowerLabels, GaugeU64>,
    follower_lag: Family<FollowerLabels, GaugeU64>,
    book_orders: Family<BookLabels, GaugeU64>,
    book_levels: Family<BookLabels, GaugeU64>,
    ws_clients: Gauge,
    http_requests: Family<HttpLabels, Counter>,
    /// Serializes pipeline updates (counters advance by the difference to the last
    /// sample), follower updates and book replacements; holds each follower's last
    /// `cmd_seq` (a `Family` cannot be iterated to recompute lags).
    update: Mutex<BTreeMap<String, u64>>,
    /// Where [`Metrics::render`] reads pipeline counters, if watched.
    watched: Mutex<Option<Arc<PipelineStats>>>,
}

impl Inner {
    /// Registers the metrics of the pipeline (and of followers' lag behind it) in
    /// `r`.
    fn register_pipeline(&self, r: &mut Registry) {
        r.register(
            "commands_applied",
            "Commands applied by the engine since start (commands/s: rate())",
            self.commands_applied.clone(),
        );
        r.register(
            "events_durable",
            "Events made durable in the ledger since start",
            self.events_durable.clone(),
        );
        r.register(
            "ledger_batches",
            "Ledger batches committed (one synced write each) since start",
            self.ledger_batches.clone(),
        );
        r.register(
            "durable_cmd_seq",
            "Highest command sequence number durable in the ledger",
            self.durable_seq.clone(),
        );
        r.register_with_unit(
            "batch_commit_latency",
            "Time from a command being read from the log to its batch being durable, \
             quantiles since start (the pipeline's own histogram, ~3% precision)",
            Unit::Seconds,
            self.commit_latency.clone(),
        );
        r.register_with_unit(
            "batch_commit_latency_max",
            "Longest read-to-durable time of a batch since start",
            Unit::Seconds,
            self.commit_latency_max.clone(),
        );
        r.register_with_unit(
            "batch_commit_latency_mean",
            "Mean read-to-durable time of a batch since start",
            Unit::Seconds,
            self.commit_latency_mean.clone(),
        );
        r.register(
            "follower_lag_commands",
            "Commands durable in the ledger that a follower has not applied yet",
            self.follower_lag.clone(),
        );
    }

    /// Registers the metrics every process with a gateway has in `r`: followers,
    /// books, WebSocket clients, HTTP requests and the build.
    fn register_gateway(&self, r: &mut Registry) {
        r.register(
            "follower_cmd_seq",
            "Last command sequence number a follower (gateway replica, events publisher, \
             standby) has applied",
            self.follower_seq.clone(),
        );
        r.register(
            "book_resting_orders",
            "Orders resting in a market's books (all its delivery slots), per side",
            self.book_orders.clone(),
        );
        r.register(
            "book_levels",
            "Price levels in a market's books (summed over its delivery slots), per side",
            self.book_levels.clone(),
        );
        r.register(
            "websocket_clients",
            "Open market-data WebSocket connections",
            self.ws_clients.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            self.http_requests.clone(),
        );
        r.register(
            "build",
            "The running gpux version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
    }
}

/// The metrics registry and its update handle. Cloning is cheap (one `Arc`); every
/// clone updates the same metrics. Every method takes `&self` and is thread-safe.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every gpux metric, at zero.
    pub fn new() -> Self {
        Self::build(true)
    }

    /// The metrics of a process without an exchange (`gpux gateway`): those of the
    /// gateway only (followers' `cmd_seq`, books, WebSocket clients, HTTP requests,
    /// build), so no pipeline or lag series sits at a misleading zero.
    pub fn for_gateway() -> Self {
        Self::build(false)
    }

    fn build(pipeline: bool) -> Self {
        let mut inner = Inner::default();
        let mut registry = Registry::with_prefix("gpux");
        // Metrics outside the registry are kept up to date but never rendered.
        let mut unlisted = Registry::default();
        inner.register_pipeline(if pipeline {
            &mut registry
        } else {
            &mut unlisted
        });
        inner.register_gateway(&mut registry);
        // Present from the start, so dashboards see the series before the first batch.
        for (_, label) in QUANTILES {
            drop(
                inner
                    .commit_latency
                    .get_or_create(&QuantileLabels { quantile: label }),
            );
        }
        inner.registry = registry;
        Metrics {
            inner: Arc::new(inner),
        }
    }

    fn lock_update(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.inner
            .update
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the pipeline's counters. They only move forward: a sample lower than
    /// the last one (another pipeline, restarted in-process) leaves counters as they
    /// are but still sets the durable sequence number.
    pub fn record_pipeline(&self, s: PipelineSample) {
        let followers = self.lock_update();
        let i = &self.inner;
        for (counter, now) in [
            (&i.commands_applied, s.applied),
            (&i.events_durable, s.durable_events),
            (&i.ledger_batches, s.batches),
        ] {
            let seen = counter.get();
            if now > seen {
                counter.inc_by(now - seen);
            }
        }
        i.durable_seq.set(s.durable_seq);
        self.update_lags(&followers);
    }

    /// Records the commit latency histogram (quantiles, maximum and mean).
    pub fn record_commit_latency(&self, h: &LatencyHistogram) {
        let secs = |us: u64| us as f64 / 1e6;
        for (per_mille, label) in QUANTILES {
            self.inner
                .commit_latency
                .get_or_create(&QuantileLabels { quantile: label })
                .set(secs(h.quantile_us(per_mille)));
        }
        self.inner.commit_latency_max.set(secs(h.max_us()));
        self.inner.commit_latency_mean.set(secs(h.mean_us()));
    }

    /// Reads `stats` (counters and latency) now: [`Metrics::record_pipeline`] and
    /// [`Metrics::record_commit_latency`] in one call.
    pub fn observe_pipeline(&self, stats: &PipelineStats) {
        self.record_pipeline(PipelineSample::from_stats(stats));
        self.record_commit_latency(&stats.latency());
    }

    /// Makes [`Metrics::render`] read `stats` itself before every rendering, so the
    /// pipeline's numbers are always current without a polling task.
    pub fn watch_pipeline(&self, stats: Arc<PipelineStats>) {
        *self
            .inner
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(stats);
    }

    /// Records that `follower` (e.g. `gateway`, `events_publisher`) has applied
    /// everything up to `cmd_seq`; its lag is the durable sequence number minus this.
    pub fn set_follower_seq(&self, follower: &str, cmd_seq: u64) {
        let mut followers = self.lock_update();
        followers.insert(follower.to_owned(), cmd_seq);
        self.inner
            .follower_seq
            .get_or_create(&FollowerLabels {
                follower: follower.to_owned(),
            })
            .set(cmd_seq);
        self.update_lags(&followers);
    }

    /// Recomputes every follower's lag from the current durable sequence number.
    fn update_lags(&self, followers: &BTreeMap<String, u64>) {
        let durable = self.inner.durable_seq.get();
        for (name, &seq) in followers {
            self.inner
                .follower_lag
                .get_or_create(&FollowerLabels {
                    follower: name.clone(),
                })
                .set(durable.saturating_sub(seq));
        }
    }

    /// Replaces every book gauge with `books` (markets not listed disappear).
    pub fn set_book_depth(&self, books: &[BookDepth]) {
        let _g = self.lock_update();
        let i = &self.inner;
        i.book_orders.clear();
        i.book_levels.clear();
        for b in books {
            for (side, orders, levels) in [
                ("bid", b.bid_orders, b.bid_levels),
                ("ask", b.ask_orders, b.ask_levels),
            ] {
                let l = BookLabels {
                    market: b.market.clone(),
                    side,
                };
                i.book_orders.get_or_create(&l).set(orders);
                i.book_levels.get_or_create(&l).set(levels);
            }
        }
    }

    /// Sets the number of open WebSocket connections.
    pub fn set_ws_clients(&self, n: u64) {
        self.inner
            .ws_clients
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One more WebSocket connection.
    pub fn ws_client_connected(&self) {
        self.inner.ws_clients.inc();
    }

    /// One WebSocket connection fewer.
    pub fn ws_client_disconnected(&self) {
        self.inner.ws_clients.dec();
    }

    /// Counts one answered HTTP request. `route` must be the matched route template
    /// (`/v1/orders/{id}`), never the raw path, so the number of series stays bounded.
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        self.inner
            .http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format (serve it with [`CONTENT_TYPE`]).
    /// Reads the watched pipeline first, if any.
    pub fn render(&self) -> String {
        let watched = self
            .inner
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(stats) = watched {
            self.observe_pipeline(&stats);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` (with its labels, exactly as rendered).
    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().unwrap())
        })
    }

    #[test]
    fn every_metric_is_rendered_with_help_and_type() {
        let m = Metrics::new();
        // Labelled families appear once they have a series.
        m.set_follower_seq("gateway", 0);
        m.set_book_depth(&[BookDepth {
            market: "h100-sxm.us-east".into(),
            bid_orders: 0,
            bid_levels: 0,
            ask_orders: 0,
            ask_levels: 0,
        }]);
        m.http_request("GET", "/metrics", 200);
        let text = m.render();
        for (name, kind) in [
            ("gpux_commands_applied", "counter"),
            ("gpux_events_durable", "counter"),
            ("gpux_ledger_batches", "counter"),
            ("gpux_durable_cmd_seq", "gauge"),
            ("gpux_batch_commit_latency_seconds", "gauge"),
            ("gpux_batch_commit_latency_max_seconds", "gauge"),
            ("gpux_batch_commit_latency_mean_seconds", "gauge"),
            ("gpux_follower_cmd_seq", "gauge"),
            ("gpux_follower_lag_commands", "gauge"),
            ("gpux_book_resting_orders", "gauge"),
            ("gpux_book_levels", "gauge"),
            ("gpux_websocket_clients", "gauge"),
            ("gpux_http_requests", "counter"),
            ("gpux_build", "info"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}:\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(value(&text, "gpux_commands_applied_total"), Some(0.0));
        let fresh = Metrics::new().render();
        assert_eq!(
            value(
                &fresh,
                "gpux_batch_commit_latency_seconds{quantile=\"0.99\"}"
            ),
            Some(0.0)
        );
        assert!(text.contains(&format!(
            "gpux_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn pipeline_counters_follow_samples_and_never_go_back() {
        let m = Metrics::new();
        let s = |applied, durable_seq, durable_events, batches| PipelineSample {
            applied,
            durable_seq,
            durable_events,
            batches,
        };
        m.record_pipeline(s(100, 90, 250, 4));
        m.record_pipeline(s(150, 150, 400, 6));
        let t = m.render();
        assert_eq!(value(&t, "gpux_commands_applied_total"), Some(150.0));
        assert_eq!(value(&t, "gpux_events_durable_total"), Some(400.0));
        assert_eq!(value(&t, "gpux_ledger_batches_total"), Some(6.0));
        assert_eq!(value(&t, "gpux_durable_cmd_seq"), Some(150.0));
        // A lower sample (another pipeline started in-process) keeps counters.
        m.record_pipeline(s(10, 160, 20, 1));
        let t = m.render();
        assert_eq!(value(&t, "gpux_commands_applied_total"), Some(150.0));
        assert_eq!(value(&t, "gpux_durable_cmd_seq"), Some(160.0));
    }

    #[test]
    fn follower_lag_is_durable_minus_applied() {
        let m = Metrics::new();
        m.set_follower_seq("gateway", 40);
        m.record_pipeline(PipelineSample {
            durable_seq: 100,
            ..PipelineSample::default()
        });
        m.set_follower_seq("events_publisher", 100);
        let t = m.render();
        assert_eq!(
            value(&t, "gpux_follower_lag_commands{follower=\"gateway\"}"),
            Some(60.0)
        );
        assert_eq!(
            value(
                &t,
                "gpux_follower_lag_commands{follower=\"events_publisher\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "gpux_follower_cmd_seq{follower=\"gateway\"}"),
            Some(40.0)
        );
        // A follower momentarily ahead of the sampled durable seq is not negative.
        m.set_follower_seq("gateway", 120);
        let t = m.render();
        assert_eq!(
            value(&t, "gpux_follower_lag_commands{follower=\"gateway\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn commit_latency_quantiles_come_from_the_pipeline_histogram() {
        let m = Metrics::new();
        let mut h = LatencyHistogram::default();
        for us in 1..=1000 {
            h.record_us(us);
        }
        m.record_commit_latency(&h);
        let t = m.render();
        let q = |label: &str| {
            value(
                &t,
                &format!("gpux_batch_commit_latency_seconds{{quantile=\"{label}\"}}"),
            )
            .unwrap()
        };
        assert_eq!(q("0.5"), h.quantile_us(500) as f64 / 1e6);
        assert_eq!(q("0.99"), h.quantile_us(990) as f64 / 1e6);
        assert_eq!(q("1"), 0.001);
        assert!(q("0.5") <= q("0.9") && q("0.9") <= q("0.99") && q("0.99") <= q("0.999"));
        assert_eq!(
            value(&t, "gpux_batch_commit_latency_max_seconds"),
            Some(0.001)
        );
        assert_eq!(
            value(&t, "gpux_batch_commit_latency_mean_seconds"),
            Some(h.mean_us() as f64 / 1e6)
        );
    }

    #[test]
    fn book_depth_replaces_the_previous_books() {
        let m = Metrics::new();
        let book = |market: &str, n| BookDepth {
            market: market.into(),
            bid_orders: n,
            bid_levels: n - 1,
            ask_orders: n + 1,
            ask_levels: 1,
        };
        m.set_book_depth(&[book("h100-sxm.us-east", 5), book("a100-80gb.us-east", 2)]);
        let t = m.render();
        assert_eq!(
            value(
                &t,
                "gpux_book_resting_orders{market=\"h100-sxm.us-east\",side=\"bid\"}"
            ),
            Some(5.0)
        );
        assert_eq!(
            value(
                &t,
                "gpux_book_levels{market=\"h100-sxm.us-east\",side=\"bid\"}"
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &t,
                "gpux_book_resting_orders{market=\"a100-80gb.us-east\",side=\"ask\"}"
            ),
            Some(3.0)
        );
        m.set_book_depth(&[book("a100-80gb.us-east", 7)]);
        let t = m.render();
        assert!(!t.contains("h100-sxm.us-east"), "{t}");
        assert_eq!(
            value(
                &t,
                "gpux_book_resting_orders{market=\"a100-80gb.us-east\",side=\"bid\"}"
            ),
            Some(7.0)
        );
    }

    #[test]
    fn websocket_clients_and_http_requests() {
        let m = Metrics::new();
        let h = m.clone(); // handles share the registry
        h.ws_client_connected();
        h.ws_client_connected();
        h.ws_client_disconnected();
        h.http_request("POST", "/v1/orders", 201);
        h.http_request("POST", "/v1/orders", 201);
        h.http_request("GET", "/v1/markets/{market}/depth", 404);
        let t = m.render();
        assert_eq!(value(&t, "gpux_websocket_clients"), Some(1.0));
        assert_eq!(
            value(
                &t,
                "gpux_http_requests_total{method=\"POST\",route=\"/v1/orders\",status=\"201\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                "gpux_http_requests_total{method=\"GET\",route=\"/v1/markets/{market}/depth\",status=\"404\"}"
            ),
            Some(1.0)
        );
        m.set_ws_clients(12);
        assert_eq!(value(&m.render(), "gpux_websocket_clients"), Some(12.0));
    }

    #[test]
    fn a_gateway_alone_shows_no_pipeline_or_lag_series() {
        let m = Metrics::for_gateway();
        m.set_follower_seq("gateway", 42);
        m.http_request("GET", "/v1/markets", 200);
        let t = m.render();
        assert_eq!(
            value(&t, "gpux_follower_cmd_seq{follower=\"gateway\"}"),
            Some(42.0)
        );
        assert_eq!(
            value(
                &t,
                "gpux_http_requests_total{method=\"GET\",route=\"/v1/markets\",status=\"200\"}"
            ),
            Some(1.0)
        );
        for absent in [
            "gpux_commands_applied",
            "gpux_durable_cmd_seq",
            "gpux_batch_commit_latency",
            "gpux_follower_lag_commands",
            "gpux_ledger_batches",
        ] {
            assert!(!t.contains(absent), "{absent} in:\n{t}");
        }
        let full = Metrics::new();
        full.set_follower_seq("gateway", 42);
        let t = full.render();
        assert!(t.contains("gpux_durable_cmd_seq"), "{t}");
        assert!(t.contains("gpux_follower_lag_commands"), "{t}");
    }

    #[test]
    fn a_watched_pipeline_is_read_at_every_render() {
        let m = Metrics::new();
        let stats = Arc::new(PipelineStats::default());
        m.watch_pipeline(Arc::clone(&stats));
        stats.applied.store(42, Ordering::Relaxed);
        stats.durable_seq.store(40, Ordering::Release);
        stats.batches.store(3, Ordering::Relaxed);
        stats.read_to_durable.lock().unwrap().record_us(2_000);
        let t = m.render();
        assert_eq!(value(&t, "gpux_commands_applied_total"), Some(42.0));
        assert_eq!(value(&t, "gpux_durable_cmd_seq"), Some(40.0));
        assert_eq!(value(&t, "gpux_ledger_batches_total"), Some(3.0));
        assert_eq!(
            value(&t, "gpux_batch_commit_latency_max_seconds"),
            Some(0.002)
        );
        stats.applied.store(50, Ordering::Relaxed);
        assert_eq!(
            value(&m.render(), "gpux_commands_applied_total"),
            Some(50.0)
        );
    }
}
