//! Faults under load on real Redis topologies: a Redis killed or paused, a
//! Cluster master killed, a Sentinel failover. The promises: no ticket is
//! ever redeemed twice, a failure is a 503 (never a success), and the same
//! wsticket process recovers by itself.

use crate::binary::{Proc, http, temp_file};
use crate::helpers::*;
use crate::redis_server::{RedisCluster, RedisSentinel, RedisServer};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Default, Debug)]
struct Report {
    mints: HashMap<u16, usize>,
    redeems: HashMap<u16, usize>,
    /// Tickets that got two successful redeems: must stay empty.
    doubled: Vec<String>,
    /// Tickets that got one.
    redeemed: Vec<String>,
}

/// Workers mint a ticket and redeem it twice at once, until `stop`.
async fn traffic(app: Arc<TestApp>, stop: Arc<AtomicBool>, workers: usize) -> Report {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (app, stop) = (app.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = Report::default();
            while !stop.load(Ordering::SeqCst) {
                let m = app
                    .mint_as(ISSUER, json!({"user_id": "u", "origin": ORIGIN}))
                    .await;
                *r.mints.entry(m.status).or_default() += 1;
                let Some(t) = m.body["ticket"].as_str().map(str::to_owned) else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let (a, b) =
                    tokio::join!(app.redeem(&t, Some(ORIGIN)), app.redeem(&t, Some(ORIGIN)));
                for s in [a.status, b.status] {
                    *r.redeems.entry(s).or_default() += 1;
                }
                if a.status == 200 && b.status == 200 {
                    r.doubled.push(t);
                } else if a.status == 200 || b.status == 200 {
                    r.redeemed.push(t);
                }
            }
            r
        }));
    }
    let mut total = Report::default();
    for t in tasks {
        let r = t.await.unwrap();
        for (k, v) in r.mints {
            *total.mints.entry(k).or_default() += v;
        }
        for (k, v) in r.redeems {
            *total.redeems.entry(k).or_default() += v;
        }
        total.doubled.extend(r.doubled);
        total.redeemed.extend(r.redeemed);
    }
    total
}

#[track_caller]
fn check(report: &Report) {
    assert!(report.doubled.is_empty(), "redeemed twice: {report:?}");
    assert!(
        report.mints.keys().all(|s| [201, 503].contains(s)),
        "{report:?}"
    );
    // 404: the ticket's node died before it replicated (or Redis restarted
    // empty); never a success for it.
    assert!(
        report
            .redeems
            .keys()
            .all(|s| [200, 409, 404, 503].contains(s)),
        "{report:?}"
    );
    assert!(
        report.redeems.get(&200).copied().unwrap_or(0) > 0,
        "no traffic got through: {report:?}"
    );
}

async fn wait_recovered(app: &TestApp, secs: u64) {
    wait_recovered_for(app, "u", secs).await;
}

/// A mint and a redeem for `user` both work again. A redeem may need
/// another shard than its mint (the user's revocation key), and a failed
/// redeem burns its ticket: each try mints anew.
async fn wait_recovered_for(app: &TestApp, user: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = app
            .mint_as(ISSUER, json!({"user_id": user, "origin": ORIGIN}))
            .await;
        let last = if r.status == 201 {
            let t = r.body["ticket"].as_str().unwrap().to_owned();
            let redeemed = app.redeem(&t, Some(ORIGIN)).await;
            if redeemed.status == 200 {
                return;
            }
            assert_eq!(redeemed.status, 503, "{}", redeemed.text);
            redeemed.text
        } else {
            r.text
        };
        assert!(
            Instant::now() < deadline,
            "no recovery for {user:?} within {secs} s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run traffic, break something half-way, heal, and check the report.
async fn under_load(app: Arc<TestApp>, fault: impl AsyncFnOnce()) -> Report {
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(traffic(app.clone(), stop.clone(), 8));
    tokio::time::sleep(Duration::from_millis(400)).await;
    fault().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);
    let report = load.await.unwrap();
    check(&report);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_then_restarted() {
    let redis = RedisServer::start();
    let app = Arc::new(spawn_with(Backend::Redis, Some(&redis.url()), "").await);
    let mut port = 0;
    let report = under_load(app.clone(), async || {
        port = redis.stop();
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    assert!(
        report.mints.contains_key(&503) || report.redeems.contains_key(&503),
        "{report:?}"
    );
    let _redis = RedisServer::start_on(port);
    wait_recovered(&app, 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_does_not_pile_up_requests() {
    let redis = RedisServer::start();
    let prefix = random_prefix();
    let text = base_config(Backend::Redis, Some(&redis.url()), &prefix, "").replace(
        "command_timeout_ms = 1000",
        "command_timeout_ms = 300\nmax_in_flight = 8",
    );
    let app = Arc::new(spawn_toml(&text, prefix).await);
    let t = app.mint().await;
    redis.pause();
    let started = Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(0..100)
        .map(|_| {
            let app = app.clone();
            let t = t.clone();
            async move { app.redeem(&t, Some(ORIGIN)).await.status }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    // 100 requests, 8 admitted: the others fail at once instead of waiting
    // in line behind the stalled ones. Generous bound for slow machines.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let m = app.metrics().await;
    assert!(
        m.contains(r#"wsticket_store_errors_total{kind="busy",op="redeem"}"#),
        "{m}"
    );
    redis.resume();
    wait_recovered(&app, 15).await;
    // The paused redeems may or may not have consumed `t`; never twice.
    let r = app.redeem(&t, Some(ORIGIN)).await;
    assert!([200, 409].contains(&r.status), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_under_load() {
    let mut cluster = RedisCluster::start();
    let prefix = random_prefix();
    let text = base_config(Backend::Memory, None, &prefix, "")
        .replace("memory_max_entries = 100000", &cluster.store_toml(500));
    let app = Arc::new(spawn_toml(&text, prefix).await);
    app.get("/readyz").await.expect(200, None);
    under_load(app.clone(), async || {
        cluster.kill_a_master();
    })
    .await;
    // A replica takes over after the node timeout; wsticket follows, for
    // the dead master's slots too: 30 users' revocation keys (read by every
    // redeem) land on every shard, with odds of 1 - (2/3)^30 for the one
    // that failed over.
    cluster.wait_ok();
    for i in 0..30 {
        wait_recovered_for(&app, &format!("user-{i}"), 20).await;
    }
    app.get("/readyz").await.expect(200, None);
}

/// With `store.redeem_replicas = 1`, every redeem answered 200 under load
/// is still used after its master died and a replica took over: each is
/// presented again and never succeeds twice (WAIT is per shard: it runs on
/// the connection to the ticket's master).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_under_load_loses_no_redeem_when_replicas_are_awaited() {
    let mut cluster = RedisCluster::start();
    let prefix = random_prefix();
    let store = format!(
        "{}\nredeem_replicas = 1\nredeem_replicas_timeout_ms = 500",
        cluster.store_toml(1000)
    );
    // Tickets that outlive the failover, so that their used marks are
    // still there to be found.
    let text = base_config(Backend::Memory, None, &prefix, "default_ttl_secs = 120")
        .replace("memory_max_entries = 100000", &store);
    let app = Arc::new(spawn_toml(&text, prefix).await);
    let report = under_load(app.clone(), async || {
        cluster.kill_a_master();
    })
    .await;
    cluster.wait_ok();
    for i in 0..30 {
        wait_recovered_for(&app, &format!("user-{i}"), 20).await;
    }
    assert!(report.redeemed.len() > 20, "{report:?}");
    for t in &report.redeemed {
        let r = app.redeem(t, Some(ORIGIN)).await;
        assert_eq!(
            r.status, 409,
            "a redeemed ticket after the failover: {}",
            r.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_load() {
    let sentinel = RedisSentinel::start();
    let prefix = random_prefix();
    let text = base_config(Backend::Memory, None, &prefix, "")
        .replace("memory_max_entries = 100000", &sentinel.store_toml(500));
    let app = Arc::new(spawn_toml(&text, prefix).await);
    let before = sentinel.master_port();
    let minted = app.mint().await;
    under_load(app.clone(), async || {
        sentinel.failover();
    })
    .await;
    assert_ne!(sentinel.master_port(), before);
    // The same process now writes to the new master.
    wait_recovered(&app, 20).await;
    // A ticket minted before the failover replicated and still redeems once.
    let r = app.redeem(&minted, Some(ORIGIN)).await;
    assert!([200, 404].contains(&r.status), "{}", r.text);
    if r.status == 200 {
        app.redeem(&minted, Some(ORIGIN))
            .await
            .expect(409, Some("ticket_reused"));
    }
}

/// 10,000 tickets, 16 concurrent attempts each, spread over two wsticket
/// processes sharing one Redis: exactly 10,000 successes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_two_processes() {
    const TICKETS: usize = 10_000;
    const ATTEMPTS: usize = 16;
    let prefix = random_prefix();
    // Long-lived tickets: the run takes a while on a small machine.
    // Generous timeouts: this is about exactly-once, not about a slow
    // machine; a 503 would leave an attempt's outcome unknown.
    let config = base_config(Backend::Redis, None, &prefix, "max_ttl_secs = 900")
        .replace("command_timeout_ms = 1000", "command_timeout_ms = 10000");
    let path = temp_file("twins.toml", &config);
    let a = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "info,wsticket::access=off")],
    );
    let b = Proc::spawn(
        &["--config", path.to_str().unwrap()],
        &[("WSTICKET_LOG", "info,wsticket::access=off")],
    );
    let client = http();
    let bases = [a.base.clone(), b.base.clone()];

    let tickets: Vec<String> = futures_util::stream::iter(0..TICKETS)
        .map(|i| {
            let (client, base) = (client.clone(), bases[i % 2].clone());
            async move {
                let r = client
                    .post(format!("{base}/v1/tickets"))
                    .bearer_auth(ISSUER)
                    .json(
                        &json!({"user_id": format!("user-{i}"), "origin": ORIGIN, "ttl_secs": 900}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let body: serde_json::Value = r.json().await.unwrap();
                body["ticket"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let attempts = tickets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..ATTEMPTS).map(move |k| (i, t.clone(), k)));
    let results: Vec<(usize, u16)> = futures_util::stream::iter(attempts)
        .map(|(i, t, k)| {
            let (client, base) = (client.clone(), bases[k % 2].clone());
            async move {
                let r = client
                    .post(format!("{base}/v1/tickets/redeem"))
                    .bearer_auth(REDEEMER)
                    .json(&json!({"ticket": t, "origin": ORIGIN}))
                    .send()
                    .await
                    .unwrap();
                (i, r.status().as_u16())
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let mut wins = vec![0usize; TICKETS];
    for (i, status) in &results {
        match status {
            200 => wins[*i] += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(wins.iter().sum::<usize>(), TICKETS);
    assert!(wins.iter().all(|&w| w == 1));
    a.stop();
    b.stop();
}
