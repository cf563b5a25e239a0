//! Real `redis-server` processes for the tests.
//!
//! The shared server comes from `WSTICKET_TEST_REDIS_URL`, or is started once
//! per test binary on a free port. Fault tests start their own, which they
//! may stop, pause and restart. Each process is started under a small shell
//! watchdog that kills it when our end of its stdin closes, so no
//! `redis-server` outlives the test binary, however the binary ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

fn free_port() -> u16 {
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
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisServer {
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --loglevel warning >/dev/null 2>&1 & pid=$!; echo $pid; \
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port) {
            if Instant::now() > deadline {
                panic!(
                    "redis-server did not answer on 127.0.0.1:{port} within 10 s. The Redis tests \
                     need `redis-server` on PATH (apt-get install -y redis-server) or \
                     WSTICKET_TEST_REDIS_URL pointing at a running Redis."
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server
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
