//! The real `wsticket` binary: CLI commands, `serve --dev`, and what it logs.

use crate::helpers::*;
use crate::redis_server::shared_url;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wsticket");

pub fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wsticket-test-{}",
        random_prefix().trim_end_matches(':')
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test that fails before `stop` must not leave the process running.
impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `addr` field of the "wsticket listening" line, human or JSON.
fn listening_addr(line: &str) -> Option<String> {
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        return v["fields"]["addr"].as_str().map(str::to_owned);
    }
    let rest = line.split("addr=").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
}

/// A running `wsticket` process whose stderr is captured.
pub struct Proc {
    pub child: Child,
    log: Arc<Mutex<String>>,
    pub base: String,
}

impl Proc {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("WSTICKET_CONFIG")
            .env_remove("WSTICKET_REDIS_URL")
            .env("WSTICKET_LISTEN", "127.0.0.1:0")
            .env("WSTICKET_ADMIN_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("wsticket binary runs");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let base = loop {
            if let Some(addr) = log
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains("wsticket listening"))
                .and_then(listening_addr)
            {
                break format!("http://{addr}");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("wsticket exited with {status}:\n{}", log.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "wsticket did not start:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Proc { child, log, base }
    }

    /// Stops it as an orchestrator does (SIGTERM; SIGKILL only if it is
    /// still running 10 s later), so that it writes out the log lines still
    /// queued for its writer thread, and returns its log.
    pub fn stop(mut self) -> String {
        // Not once it has exited and been waited for: its pid may be reused.
        if self.child.try_wait().unwrap().is_none() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        // Let the reader thread drain the pipe.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().unwrap().clone()
    }
}

/// The test process's own HTTP client (rustls needs its provider first).
pub fn http() -> reqwest::Client {
    wsticket::tls::ensure_crypto_provider();
    reqwest::Client::builder()
        // Below the server's 5 s keep-alive: never send on a connection the
        // server is closing.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client")
}

async fn post(base: &str, route: &str, key: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{base}{route}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn serve_dev_runs_the_readme_walkthrough() {
    use wsticket::config::{DEV_ISSUE_KEY, DEV_ORIGIN, DEV_REDEEM_KEY};
    let p = Proc::spawn(&["serve", "--dev"], &[]);
    let (status, minted) = post(
        &p.base,
        "/v1/tickets",
        DEV_ISSUE_KEY,
        json!({"user_id": "alice", "origin": DEV_ORIGIN, "claims": {"room": "42"}}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let ticket = minted["ticket"].as_str().unwrap().to_owned();
    assert!(ticket.starts_with("wst_dev_"));
    let body = json!({"ticket": ticket, "origin": DEV_ORIGIN});
    let (status, redeemed) =
        post(&p.base, "/v1/tickets/redeem", DEV_REDEEM_KEY, body.clone()).await;
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(redeemed["user_id"], "alice");
    let (status, again) = post(&p.base, "/v1/tickets/redeem", DEV_REDEEM_KEY, body).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("ticket_reused"))
    );
    let log = p.stop();
    assert!(log.contains("NOT FOR PRODUCTION"), "{log}");
}

#[test]
fn serve_dev_refuses_a_redis_url() {
    let out = Command::new(BIN)
        .args(["serve", "--dev"])
        .env("WSTICKET_REDIS_URL", "redis://127.0.0.1:1/0")
        .env("WSTICKET_LISTEN", "127.0.0.1:0")
        .env("WSTICKET_ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store.redis_url") && err.contains("--dev"),
        "{err}"
    );
}

/// Run `cmd`, which must exit on its own (a refusal): if it is still
/// running after 10 s, it accepted what it should have refused and is
/// serving; kill it and fail.
fn must_exit(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running after 10 s: it started serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The public demo keys never run beside a real deployment's clients, or
/// on a non-loopback address.
#[test]
fn serve_dev_refuses_a_production_config_and_public_addresses() {
    let prod = temp_file("prod.toml", &base_config(Backend::Memory, None, "p:", ""));
    let out = must_exit(
        Command::new(BIN)
            .args(["serve", "--dev", "--config"])
            .arg(&prod)
            .env("WSTICKET_LISTEN", "127.0.0.1:0")
            .env("WSTICKET_ADMIN_LISTEN", "127.0.0.1:0"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("clients") && err.contains("--dev"), "{err}");

    let out = must_exit(
        Command::new(BIN)
            .args(["serve", "--dev"])
            .env("WSTICKET_LISTEN", "0.0.0.0:0")
            .env("WSTICKET_ADMIN_LISTEN", "127.0.0.1:0"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen") && err.contains("loopback"), "{err}");
}

#[test]
fn keygen_prints_a_key_its_hash_and_a_secret() {
    let out = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |name: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{text}"));
        line.split('"').nth(1).unwrap().to_owned()
    };
    let key = value("api_key");
    assert!(key.starts_with("wsk_") && key.len() == 4 + 43, "{key}");
    assert_eq!(value("key_sha256"), wsticket::auth::key_sha256_hex(&key));
    let secrets_line = text.lines().find(|l| l.starts_with("secrets")).unwrap();
    let secret = secrets_line
        .split("secret = \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(wsticket::crypto::ServerSecret::parse("k1", secret).is_ok());
    // The printed snippet is valid configuration.
    let config = format!(
        "[store]\nredis_url = \"redis://127.0.0.1:1\"\n[tickets]\n{secrets_line}\n\
         [[clients]]\nname = \"x\"\n{}\ncan = [\"issue\"]\n",
        text.lines().find(|l| l.starts_with("key_sha256")).unwrap()
    );
    assert_config_ok(&temp_file("keygen.toml", &config));
    // Two runs, two keys.
    let again = Command::new(BIN).arg("keygen").output().unwrap();
    assert_ne!(String::from_utf8(again.stdout).unwrap(), text);
}

#[test]
fn check_config_names_the_bad_field() {
    let good = temp_file(
        "good.toml",
        "[tickets]\nallowed_origins = [\"https://app.example.com\"]\n",
    );
    let out = assert_config_ok(&good);
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));

    let bad = temp_file("bad.toml", "[tickets]\nmax_ttl_secs = 100000\n");
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tickets.max_ttl_secs"));

    let missing = check_config(Path::new("/nonexistent/wsticket.toml"));
    assert_eq!(missing.status.code(), Some(2));

    // A Redis URL serve could not use is refused here too, password unsaid.
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .env("WSTICKET_REDIS_URL", "redis://:hunter2@[::1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WSTICKET_REDIS_URL") && !err.contains("hunter2"),
        "{err}"
    );

    // A value of the wrong type: the field by name, not the value.
    let typed = temp_file("typed.toml", "[tickets]\nmax_ttl_secs = \"ten\"\n");
    let out = check_config(&typed);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tickets.max_ttl_secs"), "{err}");
    assert!(!err.contains("ten"), "{err}");
}

/// A configuration in which nobody can mint is valid, and check-config
/// says what `serve` would warn about.
#[test]
fn check_config_prints_the_start_up_warnings() {
    let out = assert_config_ok(&temp_file("nobody.toml", "[tickets]\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ") && err.contains("nobody can mint"),
        "{err}"
    );
    assert!(err.contains("allowed_origins is empty"), "{err}");
}

/// `wsticket check-config --config <path>`.
fn check_config(path: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

/// `check-config` on `path` exits 0; its output, for more checks.
fn assert_config_ok(path: &Path) -> std::process::Output {
    let out = check_config(path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A whole session in JSON at debug level for every crate (actix, redis,
/// ...): every line is JSON, requests have their fields, failures their
/// outcome and user, and not a single credential appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_the_fields_and_no_secret() {
    let prefix = random_prefix();
    let config = base_config(Backend::Redis, Some(&shared_url()), &prefix, "");
    let path = temp_file("logs.toml", &config);
    let p = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "debug"), ("WSTICKET_LOG_FORMAT", "json")],
    );

    let user = "logged-user-5e1f";
    let mint = json!({"user_id": user, "origin": ORIGIN});
    let (_, minted) = post(&p.base, "/v1/tickets", ISSUER, mint.clone()).await;
    let ticket = minted["ticket"].as_str().unwrap().to_owned();
    let ok = json!({"ticket": ticket, "origin": ORIGIN});
    let r = http()
        .post(format!("{}/v1/tickets/redeem", p.base))
        .bearer_auth(REDEEMER)
        .header("x-request-id", "trace-redeem-1")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-redeem-1");
    assert_eq!(
        post(&p.base, "/v1/tickets/redeem", REDEEMER, ok).await.0,
        409
    );
    let (_, other) = post(&p.base, "/v1/tickets", ISSUER, mint).await;
    let other = other["ticket"].as_str().unwrap().to_owned();
    let wrong = json!({"ticket": other, "origin": "https://evil.example.com"});
    assert_eq!(
        post(&p.base, "/v1/tickets/redeem", REDEEMER, wrong).await.0,
        403
    );
    assert_eq!(
        post(&p.base, "/v1/tickets", UNKNOWN_KEY, json!({})).await.0,
        401
    );
    let bad = json!({"ticket": format!("{ticket}x")});
    assert_eq!(
        post(&p.base, "/v1/tickets/redeem", REDEEMER, bad).await.0,
        400
    );
    // A ticket in a query string and a cookie (as browsers and WebSocket
    // URLs carry them).
    let r = http()
        .get(format!("{}/healthz?ticket={ticket}", p.base))
        .header("cookie", "session=cookie-secret-77")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let log = p.stop();
    for secret in [
        ticket.as_str(),
        &ticket[7..],
        &other[7..],
        ISSUER,
        REDEEMER,
        UNKNOWN_KEY,
        &ISSUER[4..],
        SECRET_K1,
        "cookie-secret-77",
        "ticket=",
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} appears in the log:\n{log}"
        );
    }
    assert!(
        !log.to_ascii_lowercase().contains("authorization"),
        "a header was logged:\n{log}"
    );

    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 8, "{log}");
    for r in &requests {
        let f = &r["fields"];
        assert!(f["method"].is_string() && f["route"].is_string(), "{r}");
        assert!(f["status"].is_u64() && f["latency_ms"].is_f64(), "{r}");
        assert!(r["span"]["request_id"].is_string(), "{r}");
    }
    let traced = requests
        .iter()
        .find(|r| r["span"]["request_id"] == "trace-redeem-1")
        .unwrap_or_else(|| panic!("no line for the given request id:\n{log}"));
    assert_eq!(traced["fields"]["route"], "/v1/tickets/redeem");
    assert_eq!(traced["fields"]["status"], 200);
    let by_message = |m: &str| {
        lines
            .iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|x| x.starts_with(m))
            })
            .collect::<Vec<_>>()
    };
    // The audit line of the redemption names the user; the reuse warning
    // names the same ticket_ref (a fingerprint, not the ticket), so the two
    // can be joined.
    let redeemed = by_message("ticket redeemed");
    assert_eq!(redeemed.len(), 1, "{log}");
    assert_eq!(redeemed[0]["level"], "INFO");
    assert_eq!(redeemed[0]["fields"]["user_id"], user);
    assert_eq!(redeemed[0]["fields"]["caller"], "redeemer");
    let ticket_ref = redeemed[0]["fields"]["ticket_ref"].as_str().unwrap();
    assert_eq!(ticket_ref.len(), 12, "{log}");
    let reuse = by_message("ticket reused");
    assert_eq!(reuse.len(), 1, "{log}");
    assert_eq!(reuse[0]["level"], "WARN");
    assert_eq!(reuse[0]["fields"]["user_id"], user);
    assert_eq!(reuse[0]["fields"]["ticket_ref"], ticket_ref);
    assert_eq!(reuse[0]["fields"]["caller"], "redeemer");
    assert_eq!(reuse[0]["fields"]["outcome"], "reused");
    let refused = by_message("redeem refused");
    assert!(
        refused
            .iter()
            .any(|l| l["fields"]["outcome"] == "origin_mismatch" && l["fields"]["user_id"] == user),
        "{log}"
    );
    assert!(
        refused
            .iter()
            .any(|l| l["fields"]["outcome"] == "malformed"),
        "{log}"
    );
}

/// A mint refused by a limit is logged with whom and where from (so that an
/// operator can find the client in a retry loop), like a mint is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_mints_log_the_user_and_address() {
    let prefix = random_prefix();
    let config = format!(
        "{}\n[limits]\nmint_per_user = \"1/h\"\nmint_per_user_burst = 1\napply_to_api_keys = true\n",
        base_config(Backend::Memory, None, &prefix, "")
    );
    let path = temp_file("limited.toml", &config);
    let p = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "info"), ("WSTICKET_LOG_FORMAT", "json")],
    );
    let mint = json!({"user_id": "eager-user", "origin": ORIGIN});
    assert_eq!(
        post(&p.base, "/v1/tickets", ISSUER, mint.clone()).await.0,
        201
    );
    assert_eq!(post(&p.base, "/v1/tickets", ISSUER, mint).await.0, 429);
    // Through a proxy that is not in trusted_proxies: said once.
    for user in ["proxied-1", "proxied-2"] {
        let r = http()
            .post(format!("{}/v1/tickets", p.base))
            .bearer_auth(ISSUER)
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"user_id": user, "origin": ORIGIN}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    let log = p.stop();
    let line = |message: &str| -> Value {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line:\n{log}"))
    };
    let minted = line("ticket minted");
    assert_eq!(minted["fields"]["client_ip"], "127.0.0.1", "{minted}");
    let refused = line("mint refused");
    let f = &refused["fields"];
    assert_eq!(f["user_id"], "eager-user", "{refused}");
    assert_eq!(f["client_ip"], "127.0.0.1", "{refused}");
    assert_eq!(f["caller"], "issuer", "{refused}");
    assert_eq!(
        (&f["reason"], &f["limit"]),
        (&json!("rate_limited"), &json!("user"))
    );
    assert!(
        f["retry_after_ms"].as_u64().unwrap() > 3_500_000,
        "{refused}"
    );
    assert_eq!(
        log.matches("limits.trusted_proxies is empty").count(),
        1,
        "{log}"
    );
}

/// A user id is the caller's to choose: in the text log it is one quoted
/// field, never something that reads as other fields. A JWT sent as a
/// request id is neither echoed nor logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_values_cannot_forge_log_fields() {
    let prefix = random_prefix();
    let config = base_config(Backend::Memory, None, &prefix, "");
    let path = temp_file("forge.toml", &config);
    let p = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "info")],
    );

    let forged = "mallory audience=admin ticket_ref=FORGED";
    let mint = json!({"user_id": forged, "origin": ORIGIN});
    let (status, minted) = post(&p.base, "/v1/tickets", ISSUER, mint).await;
    assert_eq!(status, 201);
    let ticket = minted["ticket"].as_str().unwrap().to_owned();
    let redeem = json!({"ticket": ticket, "origin": ORIGIN});
    assert_eq!(
        post(&p.base, "/v1/tickets/redeem", REDEEMER, redeem.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        post(&p.base, "/v1/tickets/redeem", REDEEMER, redeem)
            .await
            .0,
        409
    );
    // Characters that would hide or reorder what a reader sees are refused.
    let hidden = json!({"user_id": "alice\u{202e}nimda", "origin": ORIGIN});
    assert_eq!(post(&p.base, "/v1/tickets", ISSUER, hidden).await.0, 400);

    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    let r = http()
        .get(format!("{}/healthz", p.base))
        .header("x-request-id", jwt)
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], jwt);

    let log = p.stop();
    assert!(!log.contains(jwt), "a JWT request id was logged:\n{log}");
    let quoted = format!("user_id={forged:?}");
    for message in ["ticket minted", "ticket redeemed", "ticket reused"] {
        let line = log
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} line:\n{log}"));
        assert!(line.contains(&quoted), "{line}");
    }
    for line in log.lines().filter(|l| l.contains("ticket_ref=FORGED")) {
        assert_eq!(
            line.matches("ticket_ref=FORGED").count(),
            line.matches(&quoted).count(),
            "the user id reads as fields: {line}"
        );
    }
}

/// A malformed request is the client's doing: at the default level it
/// leaves no ERROR line (actix's own "stream error" line is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_logs_no_error() {
    let prefix = random_prefix();
    let path = temp_file(
        "malformed.toml",
        &base_config(Backend::Memory, None, &prefix, ""),
    );
    let p = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "info")],
    );
    let addr = p.base.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"POST /v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    })
    .await
    .unwrap();
    let log = p.stop();
    assert!(!log.contains("ERROR"), "{log}");
}

/// `serve --dev` on free ports with its stderr piped to the test.
fn spawn_dev_with_piped_log(log_filter: &str) -> Child {
    Command::new(BIN)
        .args(["serve", "--dev"])
        .env("WSTICKET_LISTEN", "127.0.0.1:0")
        .env("WSTICKET_ADMIN_LISTEN", "127.0.0.1:0")
        .env("WSTICKET_LOG", log_filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(pid: u32) {
    let pid = pid.to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.unwrap().success(), "kill -TERM {pid}");
}

/// SIGTERM, then its exit status (killed and failed after 10 s).
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    sigterm(child.id());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whoever reads the log may go away first (a supervisor, a pipe to a
/// log shipper): a line that cannot be written is lost, nothing more. The
/// service keeps serving and still stops cleanly on SIGTERM.
#[test]
fn a_closed_log_pipe_neither_panics_nor_blocks_shutdown() {
    use std::io::BufRead;
    let mut child = spawn_dev_with_piped_log("info");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| listening_addr(&l))
        .expect("a listening line");
    let base = format!("http://{addr}");
    drop(lines); // the reading end of the pipe closes
    // Requests log access lines into the closed pipe.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..3 {
        let status = rt.block_on(async {
            http()
                .get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status.as_u16(), 200);
    }
    assert_eq!(terminate(&mut child).code(), Some(0), "exit status");
}

/// Whoever reads the log may stall (a log shipper that fell behind): the
/// requests go on being answered, and every access line is either written
/// or counted as dropped, none lost unseen.
#[test]
fn a_stalled_log_reader_costs_lines_not_requests() {
    const REQUESTS: usize = 32_000;
    let mut child = spawn_dev_with_piped_log("info");
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let (base, admin) = loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        if line.contains("wsticket listening") {
            let addr = listening_addr(&line).unwrap();
            let rest = line.split("admin_addr=").nth(1).unwrap();
            let admin = rest.split_whitespace().next().unwrap().trim_matches('"');
            break (format!("http://{addr}"), format!("http://{admin}"));
        }
    };
    // Nobody reads the pipe now: its buffer fills after a few hundred lines.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dropped = rt.block_on(async {
        let client = http();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    for _ in 0..REQUESTS / 16 {
                        let r = tokio::time::timeout(
                            Duration::from_secs(10),
                            client.get(format!("{base}/healthz")).send(),
                        )
                        .await
                        .expect("a request waited for the log");
                        assert_eq!(r.unwrap().status().as_u16(), 200);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        gauge(
            &scrape(&client, &admin).await,
            "wsticket_log_lines_dropped_total",
        )
    });
    assert!(
        dropped > 0.0,
        "the queue of 8192 lines cannot hold {REQUESTS}"
    );
    // Read again; stop the server; count what was written.
    let counter = std::thread::spawn(move || {
        reader
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("wsticket::access") && l.contains("/healthz"))
            .count()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(terminate(&mut child).code(), Some(0));
    let written = counter.join().unwrap();
    assert!(
        written as f64 + dropped >= REQUESTS as f64,
        "{written} access lines written and {dropped} dropped of {REQUESTS}"
    );
    assert!(written >= 8192, "the queued lines were written: {written}");
}

/// SIGTERM: /readyz turns 503 while the server still serves for
/// `shutdown_delay_secs`; then no new connection is accepted, the request in
/// flight still completes, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    use actix_web::{App, HttpResponse, HttpServer, web};
    // A forward-auth endpoint that takes 1.5 s: a mint stays in flight.
    let slow = HttpServer::new(|| {
        App::new().route(
            "/whoami",
            web::get().to(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                HttpResponse::Ok().json(json!({"user_id": "slow-user"}))
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let slow_port = slow.addrs()[0].port();
    tokio::spawn(slow.run());

    let prefix = random_prefix();
    let config = format!(
        "shutdown_grace_secs = 5\nshutdown_delay_secs = 1\n{}\n[auth.forward]\nurl = \"http://127.0.0.1:{slow_port}/whoami\"\ntimeout_ms = 5000\n",
        base_config(Backend::Memory, None, &prefix, "")
    );
    let path = temp_file("drain.toml", &config);
    let mut p = Proc::spawn(&["--config", path.to_str().unwrap()], &[]);
    let keep_alive = http();
    let r = keep_alive
        .get(format!("{}/readyz", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let base = p.base.clone();
    let in_flight = tokio::spawn(async move {
        http()
            .post(format!("{base}/v1/tickets"))
            .header("cookie", "session=x")
            .header("origin", ORIGIN)
            .json(&json!({}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // An event stream: it would hold shutdown for the whole grace period.
    let mut events = http()
        .get(format!("{}/v1/events", p.base))
        .bearer_auth(REDEEMER)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(
        &events.chunk().await.unwrap().unwrap()[..],
        b"retry: 1000\n\n"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    sigterm(p.child.id());
    // The stream ends at once, so its subscriber reconnects elsewhere.
    let end = tokio::time::timeout(Duration::from_secs(2), events.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None))),
        "the event stream did not end on SIGTERM: {end:?}"
    );
    assert!(signalled.elapsed() < Duration::from_millis(1000));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // During the delay: /readyz says it is going, everything else still works.
    let r = keep_alive
        .get(format!("{}/readyz", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "shutting_down");
    let r = http()
        .get(format!("{}/healthz", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Then a fresh connection is refused.
    let port: u16 = p.base.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting after SIGTERM"
    );
    // The request in flight completes.
    assert_eq!(in_flight.await.unwrap().unwrap(), 201);
    // And the process exits 0, well within the grace period.
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let log = p.stop();
    assert!(log.contains("draining"), "{log}");
}

/// A CA and a `localhost` certificate signed by it, as PEM files.
fn tls_files() -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    // 127.0.0.1 too: Sentinel names the master by IP address.
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (
        temp_file("ca.pem", &ca.pem()),
        temp_file("redis.pem", &leaf.pem()),
        temp_file("redis.key", &leaf_key.serialize_pem()),
    )
}

/// `rediss://`: TLS to Redis with the certificate verified against the
/// system trust store (here `SSL_CERT_FILE`); an untrusted certificate fails
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_connects_with_a_trusted_certificate_and_fails_closed_without() {
    let (ca, cert, key) = tls_files();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = KillOnDrop(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let prefix = random_prefix();
    let url = format!("rediss://localhost:{port}/0");
    let config = base_config(Backend::Redis, Some(&url), &prefix, "");
    let path = temp_file("tls.toml", &config);

    let trusted = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    mint_redeem_reuse(&trusted.base).await;
    trusted.stop();

    // The server's certificate is not trusted: no connection, every store
    // operation is a 503.
    let untrusted = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("SSL_CERT_FILE", cert.to_str().unwrap())],
    );
    let (status, body) = post(
        &untrusted.base,
        "/v1/tickets",
        ISSUER,
        json!({"user_id": "a", "origin": ORIGIN}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    let ready = http()
        .get(format!("{}/readyz", untrusted.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    untrusted.stop();
    drop(redis);
}

/// `rediss://` sentinels: the master they name is reached over verified TLS
/// too. The master here listens on TLS only, so a plain-TCP connection to it
/// (what wsticket did before) fails every call with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_sentinels_lead_to_a_tls_master() {
    let (ca, cert, key) = tls_files();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (master_port, sentinel_port) = (free(), free());
    let tls = |port: u16| {
        format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {}\ntls-key-file {}\n\
             tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
            cert.display(),
            key.display(),
            ca.display()
        )
    };
    let master_conf = temp_file(
        "tls-master.conf",
        &format!("{}save \"\"\nappendonly no\n", tls(master_port)),
    );
    let sentinel_conf = temp_file(
        "tls-sentinel.conf",
        &format!(
            "{}sentinel monitor tlsmaster 127.0.0.1 {master_port} 1\n",
            tls(sentinel_port)
        ),
    );
    let spawn = |args: &[&std::ffi::OsStr]| {
        KillOnDrop(
            Command::new("redis-server")
                .args(args)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server runs"),
        )
    };
    let _master = spawn(&[master_conf.as_os_str()]);
    let _sentinel = spawn(&[sentinel_conf.as_os_str(), "--sentinel".as_ref()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in [master_port, sentinel_port] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "TLS redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let prefix = random_prefix();
    let store = format!(
        "command_timeout_ms = 1000\nconnect_timeout_ms = 1000\n[store.sentinel]\n\
         master_name = \"tlsmaster\"\nurls = [\"rediss://localhost:{sentinel_port}\"]"
    );
    let config = base_config(Backend::Memory, None, &prefix, "")
        .replace("memory_max_entries = 100000", &store);
    let path = temp_file("tls-sentinel.toml", &config);
    let p = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    mint_redeem_reuse(&p.base).await;
}

/// Through a real store: a ticket mints (201), redeems once (200), and is
/// then reused (409).
async fn mint_redeem_reuse(base: &str) {
    let (status, minted) = post(
        base,
        "/v1/tickets",
        ISSUER,
        json!({"user_id": "a", "origin": ORIGIN}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let body = json!({"ticket": minted["ticket"], "origin": ORIGIN});
    let redeem = |b| post(base, "/v1/tickets/redeem", REDEEMER, b);
    assert_eq!(redeem(body.clone()).await.0, 200);
    assert_eq!(redeem(body).await.0, 409);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A gauge's value in a Prometheus scrape.
/// The admin listener's `/metrics`.
async fn scrape(client: &reqwest::Client, admin: &str) -> String {
    client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn gauge(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{scrape}"))
}

/// `store.memory_max_bytes` counts an estimate of each ticket's memory. It
/// must not be a wish: what the process really grows by for many tickets,
/// measured from /proc, is within the estimate's reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_is_an_honest_estimate() {
    let prefix = random_prefix();
    let config = base_config(
        Backend::Memory,
        None,
        &prefix,
        "max_ttl_secs = 600\ndefault_ttl_secs = 600",
    );
    let path = temp_file("budget.toml", &config);
    let p = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "warn,wsticket::startup=info")],
    );
    let admin = {
        let log = p.log.lock().unwrap().clone();
        let line = log
            .lines()
            .find(|l| l.contains("wsticket listening"))
            .unwrap()
            .to_owned();
        let rest = line.split("admin_addr=").nth(1).unwrap();
        format!(
            "http://{}",
            rest.split_whitespace().next().unwrap().trim_matches('"')
        )
    };
    let client = http();
    let mint_many = |n: usize| {
        let (client, base) = (client.clone(), p.base.clone());
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let (client, base) = (client.clone(), base.clone());
                    tokio::spawn(async move {
                        for i in 0..n / 8 {
                            let r = client
                                .post(format!("{base}/v1/tickets"))
                                .bearer_auth(ISSUER)
                                .json(&json!({
                                    "user_id": format!("user-{t}-{i}"),
                                    "origin": ORIGIN,
                                    "claims": { "room": "lobby", "role": "member" }
                                }))
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(r.status().as_u16(), 201);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    let scrape = || scrape(&client, &admin);
    // Warm the allocator, the connections and the map first.
    mint_many(4_000).await;
    let (rss0, s0) = (rss_bytes(p.child.id()), scrape().await);
    mint_many(40_000).await;
    let (rss1, s1) = (rss_bytes(p.child.id()), scrape().await);
    let entries =
        gauge(&s1, "wsticket_store_memory_entries") - gauge(&s0, "wsticket_store_memory_entries");
    assert_eq!(entries, 40_000.0);
    let estimated = (gauge(&s1, "wsticket_store_memory_bytes")
        - gauge(&s0, "wsticket_store_memory_bytes"))
        / entries;
    let measured = (rss1 - rss0) as f64 / entries;
    println!("per ticket: estimated {estimated:.0} bytes, measured {measured:.0} bytes of RSS");
    assert!(
        estimated >= 0.8 * measured && estimated <= 1.5 * measured,
        "estimated {estimated:.0} bytes per ticket, measured {measured:.0}"
    );
}
