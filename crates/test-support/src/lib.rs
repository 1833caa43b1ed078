//! Test harness for Palisade: real `redis-server` processes on free loopback ports.
//!
//! - [`RedisServer`] starts one `redis-server` (optionally with a password or an ACL user),
//!   waits until it answers `PING`, and can be killed and restarted on the same port to test
//!   outages.
//! - [`RedisCluster`] starts three masters with `--cluster-enabled yes`, joins them with
//!   `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes` and waits until every
//!   node reports `cluster_state:ok`.
//!
//! Every process is killed and every temporary directory removed on `Drop`, so a failing test
//! does not leak servers. Nothing here touches a Redis the machine already runs (6379): ports
//! come from the kernel (bind to port 0).
//!
//! All waits poll a condition with a deadline (never a fixed sleep that hopes the server is up).
//!
//! # Examples
//!
//! ```no_run
//! let redis = palisade_test_support::RedisServer::start().expect("redis-server starts");
//! let url = redis.url(); // redis://127.0.0.1:<port>/
//! # drop(url);
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server gets to answer `PING` (or a cluster to become `ok`) before the harness
/// gives up. Generous: CI machines are slow and have two cores.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Authentication to configure on a spawned server.
#[derive(Debug, Clone, Default)]
enum Auth {
    #[default]
    None,
    Password(String),
    AclUser {
        user: String,
        password: String,
    },
}

/// Options for [`RedisServer`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RedisServerBuilder {
    auth: Auth,
    extra_args: Vec<String>,
}

impl RedisServerBuilder {
    /// Requires `password` for the `default` user (`requirepass`).
    pub fn password(mut self, password: &str) -> Self {
        self.auth = Auth::Password(password.to_owned());
        self
    }

    /// Adds an ACL user `user` with `password` and every permission, and turns the `default`
    /// user off, so only `redis://user:password@…` gets in.
    pub fn acl_user(mut self, user: &str, password: &str) -> Self {
        self.auth = Auth::AclUser {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        self
    }

    /// Passes extra `--name value` arguments to `redis-server`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }

    /// Starts the server on a free port and waits until it answers `PING`.
    pub fn start(self) -> io::Result<RedisServer> {
        // Another process may grab the port between our probe and redis-server's bind; retry
        // with a fresh port a few times.
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("palisade-redis-")
                .tempdir()?;
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                options: self.clone(),
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }
}

/// A `redis-server` process on a free loopback port, killed on `Drop`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    options: RedisServerBuilder,
}

impl RedisServer {
    /// Starts a plain server (no password) on a free port and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        Self::builder().start()
    }

    /// Options: password, ACL user, extra arguments.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`, with the configured credentials.
    pub fn url(&self) -> String {
        self.url_with_db(0)
    }

    /// Like [`url`](Self::url), selecting database `db`.
    pub fn url_with_db(&self, db: u8) -> String {
        let port = self.port;
        match &self.options.auth {
            Auth::None => format!("redis://127.0.0.1:{port}/{db}"),
            Auth::Password(p) => format!("redis://:{p}@127.0.0.1:{port}/{db}"),
            Auth::AclUser { user, password } => {
                format!("redis://{user}:{password}@127.0.0.1:{port}/{db}")
            }
        }
    }

    /// Whether the process is running (not [`kill`](Self::kill)ed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, no shutdown handshake) and waits for the process to exit, so
    /// the port refuses connections when this returns.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, as with a hung
    /// or partitioned Redis. [`resume`](Self::resume) undoes it; `Drop` kills it anyway.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Resumes a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Err(io::Error::other("redis-server is not running"));
        };
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)) and waits until it
    /// answers `PING`. The data set starts empty: persistence is off.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn_and_wait()
    }

    /// Sends one command (inline protocol) and returns the raw first reply line.
    pub fn command(&self, command: &str) -> io::Result<String> {
        let password = match &self.options.auth {
            Auth::None => None,
            Auth::Password(p) => Some((None, p.as_str())),
            Auth::AclUser { user, password } => Some((Some(user.as_str()), password.as_str())),
        };
        raw_command(self.port, password, command)
    }

    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.args(base_args(self.port, self.dir.path()));
        match &self.options.auth {
            Auth::None => {}
            Auth::Password(p) => {
                cmd.args(["--requirepass", p]);
            }
            Auth::AclUser { user, password } => {
                let acl = self.dir.path().join("users.acl");
                std::fs::write(
                    &acl,
                    format!("user {user} on >{password} ~* &* +@all\nuser default off\n"),
                )?;
                cmd.arg("--aclfile").arg(acl);
            }
        }
        cmd.args(&self.options.extra_args);
        let child = spawn_quiet(&mut cmd, self.dir.path())?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Ok(reply) = self.command("PING")
                && reply.starts_with("+PONG")
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server exited with {status} on port {}: {}",
                    self.port,
                    log_tail(self.dir.path())
                )));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on port {} did not answer PING", self.port),
                ));
            }
            // A child process gives no readiness event to await: poll it, briefly.
            #[expect(
                clippy::disallowed_methods,
                reason = "polls a child process; no event to await"
            )]
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A three-master Redis Cluster (no replicas) on free loopback ports, killed on `Drop`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters and creates the cluster, waiting until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> io::Result<Self> {
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            // The cluster bus port is set explicitly (`cluster-port`, Redis ≥ 7) so it is free
            // too, instead of the default port + 10000.
            let bus = free_port()?;
            let node = RedisServer::builder()
                .arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-port")
                .arg(&bus.to_string())
                .arg("--cluster-node-timeout")
                .arg("5000")
                .start()?;
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let cluster = Self { nodes };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// `redis://127.0.0.1:<port>/` of every node, for a cluster client's initial nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port()))
            .collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    fn wait_ok(&self) -> io::Result<()> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let all_ok = self.nodes.iter().all(|n| {
                bulk_command(n.port, "CLUSTER INFO")
                    .map(|info| info.contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if all_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis cluster did not reach cluster_state:ok",
                ));
            }
            // A child process gives no readiness event to await: poll it, briefly.
            #[expect(
                clippy::disallowed_methods,
                reason = "polls a child process; no event to await"
            )]
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A port that was free a moment ago (the kernel picked it for a listener we then closed).
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

fn base_args(port: u16, dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir,
        "--daemonize",
        "no",
        "--logfile",
        "redis.log",
        "--protected-mode",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn spawn_quiet(cmd: &mut Command, dir: &Path) -> io::Result<Child> {
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run redis-server: {e}")))
}

fn log_tail(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("redis.log"))
        .map(|log| {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(5)..].join("\n")
        })
        .unwrap_or_default()
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(1),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

fn raw_command(port: u16, auth: Option<(Option<&str>, &str)>, command: &str) -> io::Result<String> {
    let mut stream = connect(port)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    if let Some((user, password)) = auth {
        let line = match user {
            Some(user) => format!("AUTH {user} {password}\r\n"),
            None => format!("AUTH {password}\r\n"),
        };
        stream.write_all(line.as_bytes())?;
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
    }
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reply = String::new();
    reader.read_line(&mut reply)?;
    Ok(reply)
}

/// Sends `command` and reads a bulk-string reply (`$<len>\r\n<data>\r\n`).
fn bulk_command(port: u16, command: &str) -> io::Result<String> {
    let mut stream = connect(port)?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let len: usize = header
        .trim_start_matches('$')
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("unexpected reply {header:?}")))?;
    let mut body = vec![0; len + 2];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
