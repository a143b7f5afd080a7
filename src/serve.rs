//! `gpux serve`: the whole exchange in one process — the embedded command log,
//! sequencer, engine and ledger (`gpux_sequencer::Exchange::start_embedded`) and
//! the HTTP gateway (`gpux_gateway`) following it from cmd_seq 1.
//!
//! Prints one JSON line once listening (`{"listen":…,"data":…,"admin_key_file":…}`),
//! serves until Ctrl-C or SIGTERM, then shuts the gateway down gracefully (open
//! requests finish) and the exchange cleanly (snapshot at the head, ledger closed).
//! Without an admin key, one is generated into `DIR/admin.key` (mode 0600) and
//! reused on the next start.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use gpux_gateway::{Backend, GatewayConfig};
use gpux_sequencer::{Exchange, PipelineOptions};

/// What `gpux serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Ledger directory (created if missing).
    pub data: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The admin key; `None`: read or create `DATA/admin.key`.
    pub admin_key: Option<String>,
}

/// File name of the generated admin key inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The admin key from `DIR/admin.key`, creating the file (mode 0600) with a fresh
/// random key if it does not exist.
fn admin_key_file(dir: &Path) -> Result<(String, PathBuf)> {
    let path = dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_string();
        if key.len() < GatewayConfig::ADMIN_KEY_MIN_BYTES {
            return Err(anyhow!("{} holds no usable admin key", path.display()));
        }
        return Ok((key, path));
    }
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let key: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("gpux_admin_{key}");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{key}")?;
    f.sync_all()?;
    Ok((key, path))
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `gpux serve` until Ctrl-C or SIGTERM, printing the ready line on stdout.
pub fn run(opts: ServeOptions) -> Result<()> {
    run_until(opts, &mut std::io::stdout(), stop_signal())
}

/// Runs until `stop` completes, writing the one ready line to `out`: what `run`
/// does, with the signal and the output handed in (for tests).
pub fn run_until(
    opts: ServeOptions,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("cannot create {}", opts.data.display()))?;
    let (admin_key, key_file) = match opts.admin_key {
        Some(k) => (k, None),
        None => {
            let (k, p) = admin_key_file(&opts.data)?;
            (k, Some(p))
        }
    };
    let cfg = GatewayConfig::new(opts.listen, admin_key);
    cfg.validate().map_err(|e| anyhow!("{e}"))?;
    let exchange = Exchange::start_embedded(&opts.data, PipelineOptions::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gpux-gateway")
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let backend = Backend {
            submitter: exchange
                .submitter()
                .ok_or_else(|| anyhow!("the embedded exchange has no submitter"))?,
            feed: Box::new(exchange.follow(1)),
        };
        let gateway = gpux_gateway::start(cfg, backend).await?;
        let line = serde_json::json!({
            "listen": gateway.addr.to_string(),
            "data": opts.data.display().to_string(),
            "admin_key_file": key_file.as_ref().map(|p| p.display().to_string()),
        });
        writeln!(out, "{line}")?;
        out.flush()?;
        stop.await;
        tracing::info!("stopping");
        gateway.shutdown().await
    });
    drop(runtime);
    let stopped = exchange.shutdown().map(|_| ());
    served.and(stopped)
}
