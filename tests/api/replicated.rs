//! `store.redeem_replicas`: a redeem answers 200 only once replicas
//! confirmed its consume, so a failover cannot bring a redeemed ticket back.
//! Deterministic, with real processes: a replica paused with SIGSTOP, a
//! master killed with SIGKILL, the replica promoted by Sentinel.

use crate::helpers::*;
use crate::redis_server::{RedisSentinel, RedisServer, free_port};
use std::time::{Duration, Instant};

/// A master and a replica in sync.
fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(
        free_port(),
        &[
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ],
    );
    let port = replica.port.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !redis_info(&port).contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "the replica never synced");
        std::thread::sleep(Duration::from_millis(20));
    }
    (master, replica)
}

fn redis_info(port: &str) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", port, "info", "replication"])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A wsticket on the Redis at `url`, with `store_extra` in `[store]`.
async fn spawn_on(url: &str, prefix: &str, store_extra: &str) -> TestApp {
    let text = base_config(Backend::Redis, Some(url), prefix, "").replace(
        "command_timeout_ms = 1000",
        &format!("command_timeout_ms = 1000\n{store_extra}"),
    );
    assert!(text.contains(store_extra));
    spawn_toml(&text, prefix.to_owned()).await
}

const WAIT_ONE: &str = "redeem_replicas = 1\nredeem_replicas_timeout_ms = 300";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeem_waits_for_a_replica_and_is_never_200_without_one() {
    let (master, replica) = master_and_replica();
    let prefix = random_prefix();
    let waits = spawn_on(&master.url(), &prefix, WAIT_ONE).await;
    let plain = spawn_on(&master.url(), &prefix, "").await;

    // Replicated: as before.
    let t = waits.mint().await;
    waits.redeem(&t, Some(ORIGIN)).await.expect(200, None);

    // Replication stopped: the consume is applied on the master, but no
    // replica confirms it, so the answer is 503 (outcome unknown), after
    // the WAIT timeout, and never 200.
    replica.pause();
    let t = waits.mint().await;
    let started = Instant::now();
    let r = waits.redeem(&t, Some(ORIGIN)).await;
    r.expect(503, Some("store_unavailable"));
    assert!(r.body["detail"].as_str().unwrap().contains("unknown"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The ticket is burned: its retry is no success either (and is counted
    // as a retry, not a leak).
    waits
        .redeem(&t, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    let m = waits.metrics().await;
    assert!(
        m.contains(r#"wsticket_store_errors_total{kind="not_replicated",op="redeem"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"outcome="reused_after_store_error"} 1"#),
        "{m}"
    );

    // For contrast, redeem_replicas = 0 (the default) answers 200 at once.
    let t = plain.mint().await;
    plain.redeem(&t, Some(ORIGIN)).await.expect(200, None);
    replica.resume();
}

/// A waiting redeem holds its own connection: mints, pings and plain
/// redeems do not queue behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_redeem_blocks_nothing_else() {
    let (master, replica) = master_and_replica();
    let prefix = random_prefix();
    let app = spawn_on(
        &master.url(),
        &prefix,
        "redeem_replicas = 1\nredeem_replicas_timeout_ms = 3000",
    )
    .await;
    let app = std::sync::Arc::new(app);
    replica.pause();
    let t = app.mint().await;
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { app.redeem(&t, Some(ORIGIN)).await.status })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // (Other redeems would wait too: a WAIT waits for everything written
    // before it, by anyone.)
    for _ in 0..5 {
        app.mint().await;
        app.get("/readyz").await.expect(200, None);
    }
    assert!(
        !waiting.is_finished(),
        "the waiting redeem ended before the others were served"
    );
    replica.resume();
    // Its replica is back: the WAIT returns, and the consume was confirmed.
    assert_eq!(waiting.await.unwrap(), 200);
}

/// The hole, and the option that closes it: a redeem the master answered
/// while the replica was cut off, then the master lost and the replica
/// promoted. Without waiting, the promoted replica still holds the fresh
/// ticket and it redeems a second time; with `redeem_replicas = 1` the
/// first answer was a 503, so there is at most one success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_after_a_redeem_gives_at_most_one_success() {
    for wait in [false, true] {
        let mut sentinel = RedisSentinel::start();
        let prefix = random_prefix();
        // Straight at the master: the replica is what Sentinel promotes.
        let app = spawn_on(
            &sentinel.master_url(),
            &prefix,
            if wait { WAIT_ONE } else { "" },
        )
        .await;
        let t = app.mint().await;
        // Cut the replica off: paused, and its link closed by the master,
        // so that what the master writes next never reaches it.
        sentinel.replica.pause();
        sentinel.cut_replica_link();
        let first = app.redeem(&t, Some(ORIGIN)).await.status;
        sentinel.kill_master();
        sentinel.replica.resume();
        sentinel.wait_replica_promoted();
        let promoted = spawn_on(&sentinel.replica.url(), &prefix, "").await;
        let second = promoted.redeem(&t, Some(ORIGIN)).await.status;
        let successes = [first, second].iter().filter(|s| **s == 200).count();
        if wait {
            assert_eq!((first, second, successes), (503, 200, 1));
        } else {
            // Today's behaviour, for contrast: redeemed twice.
            assert_eq!((first, second, successes), (200, 200, 2));
        }
    }
}

/// A redeem answered 200 with `redeem_replicas = 1` survives the master's
/// death: the promoted replica refuses the ticket as used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeem_answered_200_survives_a_sentinel_failover() {
    let mut sentinel = RedisSentinel::start();
    let prefix = random_prefix();
    let text = base_config(Backend::Memory, None, &prefix, "").replace(
        "memory_max_entries = 100000",
        &sentinel
            .store_toml(1000)
            .replace("[store.sentinel]", &format!("{WAIT_ONE}\n[store.sentinel]")),
    );
    let app = spawn_toml(&text, prefix).await;
    let t = app.mint().await;
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
    sentinel.kill_master();
    sentinel.wait_replica_promoted();
    // Each HTTP worker finds its old master gone once, then asks Sentinel.
    // wsticket follows Sentinel to the new master, where the ticket is used.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.redeem(&t, Some(ORIGIN)).await;
        if r.status != 503 {
            r.expect(409, Some("ticket_reused"));
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The promoted replica has no replica of its own: a redeem cannot be
    // confirmed there, and answers 503, never 200.
    for _ in 0..4 {
        let r = app
            .mint_as(
                ISSUER,
                serde_json::json!({"user_id": "bob", "origin": ORIGIN}),
            )
            .await;
        if r.status == 201 {
            let t = r.body["ticket"].as_str().unwrap();
            app.redeem(t, Some(ORIGIN))
                .await
                .expect(503, Some("store_unavailable"));
        }
    }
    let m = app.metrics().await;
    assert!(
        m.contains(r#"wsticket_store_errors_total{kind="not_replicated",op="redeem"}"#),
        "{m}"
    );
}
