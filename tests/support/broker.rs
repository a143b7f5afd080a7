//! A real Kafka-protocol broker for tests: tansu 0.6.0 with SQLite storage in a
//! temporary directory, on a free 127.0.0.1 port, killed when dropped (also when
//! the test panics, and by the kernel if the test process dies: the child gets
//! SIGKILL when the thread that started it exits).
//!
//! The binary is `$GPUX_TANSU`, else `~/.cache/gpux/tools/bin/tansu`; when neither
//! exists the test fails and says to run `scripts/install-broker`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpux_sequencer::kafka::{self, KafkaConfig};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The tansu binary, or a failed test telling how to install it.
pub fn tansu_bin() -> PathBuf {
    let bin = match std::env::var_os("GPUX_TANSU") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/gpux/tools/bin/tansu"),
    };
    assert!(
        bin.is_file(),
        "the Kafka tests need the tansu broker at {} — run scripts/install-broker \
         (scripts/test does), or set GPUX_TANSU to its path",
        bin.display()
    );
    bin
}

/// A running tansu broker (see the module docs).
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    starts: u32,
}

impl Broker {
    /// Starts a broker with empty storage on a free port.
    pub fn start() -> Broker {
        let bin = tansu_bin();
        let port = free_port();
        let mut b = Broker {
            child: None,
            port,
            dir: tempfile::tempdir().expect("a temporary directory"),
            bin,
            starts: 0,
        };
        b.spawn();
        b
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A Kafka configuration for this broker with the given topics.
    pub fn config(&self, commands_topic: &str, events_topic: &str) -> KafkaConfig {
        KafkaConfig {
            commands_topic: commands_topic.to_owned(),
            events_topic: events_topic.to_owned(),
            ..KafkaConfig::new(self.addr())
        }
    }

    /// Creates one-partition topics (through the admin API, as `gpux engine
    /// --create-topics` does).
    pub fn create_topics(&self, names: &[&str]) {
        let cfg = KafkaConfig::new(self.addr());
        for name in names {
            kafka::create_topic(&cfg, name, 1, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("cannot create {name}: {e:#}\n{}", self.log_tail()));
        }
    }

    /// Kills the broker (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again, on the same port with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The last lines of the broker's output (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("the broker's log file");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            // tansu resolves a sqlite:// path against its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("tansu starts");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("tansu exited ({status}) on start:\n{}", self.log_tail());
                }
            }
            assert!(
                t0.elapsed() < START_TIMEOUT,
                "tansu did not listen on {} within {START_TIMEOUT:?}:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Makes the child get SIGKILL when the thread that spawned it exits (Linux), so
/// no broker or engine outlives a test process that was killed.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        extern "C" {
            fn prctl(option: i32, ...) -> i32;
        }
        const PR_SET_PDEATHSIG: i32 = 1;
        const SIGKILL: u64 = 9;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory
        // of the parent; it is all the child runs before exec.
        unsafe {
            cmd.pre_exec(|| {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                Ok(())
            });
        }
    }
}
