//! Real `redis-server` processes for the tests.
//!
//! The shared server comes from `WSTICKET_TEST_REDIS_URL`, or is started once
//! per test binary on a free port. Fault tests start their own, which they
//! may stop, pause and restart. Each process is started under a small shell
//! watchdog that kills it when our end of its stdin closes, so no
//! `redis-server` outlives the test binary, however the binary ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn ping(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    // A server with `requirepass` answers `-NOAUTH …`: up all the same.
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && (&buf == b"+PONG\r\n" || &buf == b"-NOAUTH")
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_any(&[])
    }

    /// On a free port; another test may grab the same port between our
    /// probe and redis-server's bind, so a server that dies at once is
    /// retried on another port.
    pub fn start_any(extra: &[String]) -> RedisServer {
        for _ in 0..5 {
            if let Some(s) = Self::try_start(free_port(), extra) {
                return s;
            }
        }
        panic!("redis-server would not start on any of 5 free ports");
    }

    pub fn start_on(port: u16) -> RedisServer {
        Self::start_with(port, &[])
    }

    /// A redis-server on `port` with extra arguments.
    pub fn start_with(port: u16, extra: &[String]) -> RedisServer {
        Self::try_start(port, extra)
            .unwrap_or_else(|| panic!("redis-server exited at once on port {port}"))
    }

    fn try_start(port: u16, extra: &[String]) -> Option<RedisServer> {
        let extra: Vec<String> = extra.iter().map(|a| format!("'{a}'")).collect();
        Self::spawn(
            port,
            &format!(
                "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
                 --loglevel warning --dir '{}' {}",
                temp_dir("node").display(),
                extra.join(" ")
            ),
        )
    }

    /// A Sentinel on `port` from its config file (which it rewrites).
    pub fn start_sentinel(port: u16, conf: &Path) -> RedisServer {
        Self::spawn(
            port,
            &format!("redis-server '{}' --sentinel", conf.display()),
        )
        .unwrap_or_else(|| panic!("redis-server --sentinel exited at once on port {port}"))
    }

    /// `None` when the process died before answering (port taken).
    fn spawn(port: u16, command: &str) -> Option<RedisServer> {
        let script = format!(
            "{command} >/dev/null 2>&1 & pid=$!; echo $pid; \
             read _; kill -CONT $pid 2>/dev/null; kill -9 $pid 2>/dev/null"
        );
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run sh");
        let stdout = watchdog.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("watchdog pid");
        let pid: u32 = line.trim().parse().expect("watchdog printed a pid");
        let stdin = watchdog.stdin.take();
        let server = RedisServer {
            port,
            pid,
            watchdog,
            stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ping(port) {
            let alive = Command::new("kill")
                .args(["-0", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !alive {
                return None;
            }
            if Instant::now() > deadline {
                panic!(
                    "redis-server did not answer on 127.0.0.1:{port} within 20 s. The Redis tests \
                     need `redis-server` on PATH (apt-get install -y redis-server) or \
                     WSTICKET_TEST_REDIS_URL pointing at a running Redis."
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {} failed", self.pid);
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Kill the process and wait until the port is closed.
    pub fn stop(mut self) -> u16 {
        let port = self.port;
        self.shutdown();
        port
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.shutdown();
        }
    }
}

/// A Redis for the shared behavioural suite (tests isolate themselves with a
/// random key prefix).
pub fn shared_url() -> String {
    static SHARED: OnceLock<(String, Option<RedisServer>)> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("WSTICKET_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let which = Command::new("sh")
                    .arg("-c")
                    .arg("command -v redis-server")
                    .output();
                if !which.is_ok_and(|o| o.status.success()) {
                    panic!(
                        "redis-server is not on PATH and WSTICKET_TEST_REDIS_URL is unset: the \
                         Redis half of the suite cannot run. Install it (apt-get install -y \
                         redis-server) or point WSTICKET_TEST_REDIS_URL at a Redis."
                    );
                }
                let s = RedisServer::start();
                (s.url(), Some(s))
            }
        })
        .0
        .clone()
}

/// A file only its owner may read or write, as wsticket wants secret files.
fn write_private(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn temp_dir(kind: &str) -> PathBuf {
    let n: u64 = rand::random();
    let dir = std::env::temp_dir().join(format!("wsticket-{kind}-{n:016x}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn redis_cli(args: &[&str]) -> String {
    redis_cli_auth(None, args)
}

/// `redis-cli`, with the password (if any) in `REDISCLI_AUTH`, not argv.
fn redis_cli_auth(password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    if let Some(p) = password {
        cmd.env("REDISCLI_AUTH", p);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("redis-cli runs (it ships with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three masters and three replicas on loopback, formed with
/// `redis-cli --cluster create`. Every node requires a password, as a
/// production cluster would, which wsticket reads from
/// `store.cluster_password_file`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    password: String,
    password_file: PathBuf,
    /// Ports of the nodes killed, which the others must see as failed.
    killed: Vec<u16>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = temp_dir("cluster");
        let password = format!("cluster-pw-{:016x}", rand::random::<u64>());
        let password_file = dir.join("password");
        write_private(&password_file, &format!("{password}\n"));
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                RedisServer::start_any(&[
                    "--requirepass".into(),
                    password.clone(),
                    "--masterauth".into(),
                    password.clone(),
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    dir.join(format!("nodes-{i}.conf")).display().to_string(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    "--dir".into(),
                    dir.display().to_string(),
                ])
            })
            .collect();
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend([
            "--cluster-replicas".into(),
            "1".into(),
            "--cluster-yes".into(),
        ]);
        let out = Command::new("redis-cli")
            .env("REDISCLI_AUTH", &password)
            .args(&args)
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster {
            nodes,
            password,
            password_file,
            killed: Vec::new(),
        };
        cluster.wait_ok();
        // A replica killed with its master before it synced never takes
        // over: wait for every replica's link.
        wait_for("every replica synced with its master", 30, || {
            cluster.nodes.iter().all(|n| {
                let info = cluster.cli(&["-p", &n.port.to_string(), "info", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            })
        });
        cluster
    }

    /// Every live node says `cluster_state:ok`, and sees every killed node
    /// as failed (right after a kill, the state is still ok: nobody has
    /// noticed yet).
    pub fn wait_ok(&self) {
        wait_for(
            "cluster_state:ok on every node, killed ones failed",
            30,
            || {
                self.nodes.iter().filter(|n| n.stdin.is_some()).all(|n| {
                    let port = n.port.to_string();
                    let nodes = self.cli(&["-p", &port, "cluster", "nodes"]);
                    let failed = |p: &u16| {
                        nodes.lines().any(|l| {
                            l.contains(&format!("127.0.0.1:{p}@"))
                                && l.split_whitespace()
                                    .nth(2)
                                    .is_some_and(|f| f.split(',').any(|flag| flag == "fail"))
                        })
                    };
                    self.killed.iter().all(failed)
                        && self
                            .cli(&["-p", &port, "cluster", "info"])
                            .contains("cluster_state:ok")
                })
            },
        );
    }

    fn cli(&self, args: &[&str]) -> String {
        redis_cli_auth(Some(&self.password), args)
    }

    /// The `[store]` lines that point wsticket at this cluster: node URLs
    /// without the password, which comes from a file.
    pub fn store_toml(&self, timeout_ms: u64) -> String {
        let urls: Vec<String> = self.nodes.iter().map(|n| n.url()).collect();
        format!(
            "cluster_urls = {urls:?}\ncluster_password_file = {:?}\n\
             command_timeout_ms = {timeout_ms}\nconnect_timeout_ms = {timeout_ms}",
            self.password_file.display().to_string()
        )
    }

    /// Kill one master; its replica takes over after the node timeout.
    pub fn kill_a_master(&mut self) -> u16 {
        let i = self
            .nodes
            .iter()
            .position(|n| {
                self.cli(&["-p", &n.port.to_string(), "role"])
                    .starts_with("master")
            })
            .expect("a master");
        let node = self.nodes.remove(i);
        let port = node.stop();
        self.killed.push(port);
        port
    }
}

/// A master, a replica and three Sentinels on loopback. The sentinels
/// require a password (`requirepass`, and `sentinel-pass` to each other),
/// which wsticket reads from `store.sentinel.sentinel_password_file`.
pub struct RedisSentinel {
    /// Kept to keep the process alive (a watchdog kills it on drop);
    /// `None` once killed.
    master: Option<RedisServer>,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
    password: String,
    password_file: PathBuf,
}

pub const MASTER_NAME: &str = "wsticket-test";

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        let dir = temp_dir("sentinel");
        let password = format!("sentinel-pw-{:016x}", rand::random::<u64>());
        let password_file = dir.join("password");
        write_private(&password_file, &format!("{password}\n"));
        let master = RedisServer::start();
        let replica = RedisServer::start_with(
            free_port(),
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port.to_string(),
            ],
        );
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|i| {
                let port = free_port();
                let conf = dir.join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 3000\n\
                         requirepass {password}\nsentinel sentinel-pass {password}\n",
                        dir.display(),
                        master.port
                    ),
                )
                .unwrap();
                RedisServer::start_sentinel(port, &conf)
            })
            .collect();
        let s = RedisSentinel {
            master: Some(master),
            replica,
            sentinels,
            password,
            password_file,
        };
        let replica_port = s.replica.port.to_string();
        wait_for("the replica in sync", 20, || {
            redis_cli(&["-p", &replica_port, "info", "replication"])
                .contains("master_link_status:up")
        });
        wait_for(
            "every sentinel to know the replica and its peers",
            30,
            || {
                s.sentinels.iter().all(|x| {
                    let p = x.port.to_string();
                    s.cli(&["-p", &p, "sentinel", "replicas", MASTER_NAME])
                        .contains(&replica_port)
                        && s.cli(&["-p", &p, "sentinel", "master", MASTER_NAME])
                            .contains("num-other-sentinels\n2")
                })
            },
        );
        s
    }

    fn cli(&self, args: &[&str]) -> String {
        redis_cli_auth(Some(&self.password), args)
    }

    /// The `[store]` lines that point wsticket at these sentinels: URLs
    /// without the password, which comes from a file.
    pub fn store_toml(&self, timeout_ms: u64) -> String {
        let urls: Vec<String> = self.sentinels.iter().map(|s| s.url()).collect();
        format!(
            "command_timeout_ms = {timeout_ms}\nconnect_timeout_ms = {timeout_ms}\n\
             [store.sentinel]\nmaster_name = \"{MASTER_NAME}\"\nurls = {urls:?}\n\
             sentinel_password_file = {:?}",
            self.password_file.display().to_string()
        )
    }

    pub fn master_port(&self) -> u16 {
        let out = self.cli(&[
            "-p",
            &self.sentinels[0].port.to_string(),
            "sentinel",
            "get-master-addr-by-name",
            MASTER_NAME,
        ]);
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Kill the master (it answers nothing from then on); the sentinels
    /// promote the replica after `down-after-milliseconds`.
    pub fn kill_master(&mut self) {
        if let Some(m) = self.master.take() {
            m.stop();
        }
    }

    /// The master closes its replica's link (a paused replica cannot come
    /// back for what it missed).
    pub fn cut_replica_link(&self) {
        let port = self
            .master
            .as_ref()
            .expect("the master runs")
            .port
            .to_string();
        let out = redis_cli(&["-p", &port, "client", "kill", "type", "replica"]);
        assert!(out.trim() == "1", "client kill: {out}");
    }

    /// Wait until the sentinels name the replica as the master, and it is.
    pub fn wait_replica_promoted(&self) {
        let port = self.replica.port;
        wait_for("the replica promoted", 30, || {
            self.master_port() == port
                && redis_cli(&["-p", &port.to_string(), "role"]).starts_with("master")
        });
    }

    /// The master's redis URL (bypassing the sentinels).
    pub fn master_url(&self) -> String {
        self.master.as_ref().expect("the master runs").url()
    }

    /// `SENTINEL FAILOVER`, then wait until the replica is the master.
    pub fn failover(&self) {
        let old = self.master_port();
        let out = self.cli(&[
            "-p",
            &self.sentinels[0].port.to_string(),
            "sentinel",
            "failover",
            MASTER_NAME,
        ]);
        assert!(out.contains("OK"), "sentinel failover: {out}");
        wait_for("the new master", 20, || {
            let now = self.master_port();
            now != old
                && now != 0
                && redis_cli(&["-p", &now.to_string(), "role"]).starts_with("master")
        });
    }
}

pub fn shared_cluster() -> &'static RedisCluster {
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(RedisCluster::start)
}

pub fn shared_sentinel() -> &'static RedisSentinel {
    static SHARED: OnceLock<RedisSentinel> = OnceLock::new();
    SHARED.get_or_init(RedisSentinel::start)
}
