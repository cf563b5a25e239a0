//! Redis-only behaviour against dedicated `redis-server` processes that the
//! tests stop, pause and restart: fail closed, recover by itself, leave
//! nothing readable behind.

use crate::helpers::*;
use crate::redis_server::{RedisServer, shared_url};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_and_the_same_server_recovers() {
    let redis = RedisServer::start();
    let app = spawn_with(Backend::Redis, Some(&redis.url()), "").await;
    let before = app.mint().await;
    app.get("/readyz").await.expect(200, None);

    let port = redis.stop();
    app.mint_as(ISSUER, json!({"user_id": "a", "origin": ORIGIN}))
        .await
        .expect(503, Some("store_unavailable"));
    app.redeem(&before, Some(ORIGIN))
        .await
        .expect(503, Some("store_unavailable"));
    app.get("/readyz")
        .await
        .expect(503, Some("store_unavailable"));
    app.get("/healthz").await.expect(200, None);
    // A ticket under an unknown key id never reaches the store.
    let other_kid = before.replacen("wst_k1_", "wst_k7_", 1);
    app.redeem(&other_kid, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // Malformed input is still a 400, not a 503.
    app.redeem_as(REDEEMER, json!({"ticket": "nope"}))
        .await
        .expect(400, Some("invalid_request"));

    // Same port, empty Redis: the running server reconnects by itself.
    let _redis = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = app
            .mint_as(ISSUER, json!({"user_id": "a", "origin": ORIGIN}))
            .await;
        if r.status == 201 {
            break;
        }
        r.expect(503, Some("store_unavailable"));
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.get("/readyz").await.expect(200, None);
    // What was minted before the restart is simply gone.
    app.redeem(&before, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    let t = app.mint().await;
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
}

/// An app on `redis` whose store commands time out after 300 ms.
async fn spawn_with_short_timeout(redis: &RedisServer) -> TestApp {
    let prefix = random_prefix();
    let text = base_config(Backend::Redis, Some(&redis.url()), &prefix, "")
        .replace("command_timeout_ms = 1000", "command_timeout_ms = 300");
    spawn_toml(&text, prefix).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_gives_503_within_the_timeout_not_a_hang() {
    let redis = RedisServer::start();
    let app = spawn_with_short_timeout(&redis).await;
    let t = app.mint().await;
    redis.pause();
    let started = Instant::now();
    app.redeem(&t, Some(ORIGIN))
        .await
        .expect(503, Some("store_unavailable"));
    app.mint_as(ISSUER, json!({"user_id": "a", "origin": ORIGIN}))
        .await
        .expect(503, Some("store_unavailable"));
    app.get("/readyz")
        .await
        .expect(503, Some("store_unavailable"));
    let took = started.elapsed();
    // Three requests, each bounded by the 300 ms timeout; a hang would hit
    // the client's 15 s limit. Generous bound: CI machines are slow.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "no recovery after SIGCONT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The redeem that timed out may or may not have consumed the ticket: it
    // is either gone (409) or still there once (200), never both.
    let r = app.redeem(&t, Some(ORIGIN)).await;
    assert!(r.status == 200 || r.status == 409, "{}", r.text);
    if r.status == 200 {
        app.redeem(&t, Some(ORIGIN))
            .await
            .expect(409, Some("ticket_reused"));
    }
}

fn redis_dump(url: &str, prefix: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap();
    // Tickets only (not the event log).
    keys.into_iter()
        .filter_map(|k| {
            let kind: String = redis::cmd("TYPE").arg(&k).query(&mut con).unwrap();
            (kind == "string").then(|| {
                let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
                (k, v)
            })
        })
        .collect()
}

/// A wsticket on the shared Redis, that Redis's URL, and a connection to
/// it for looking behind wsticket's back.
async fn app_on_shared_redis() -> (String, TestApp, redis::Connection) {
    let url = shared_url();
    let app = spawn_app(Backend::Redis).await;
    let con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    (url, app, con)
}

/// Overwrite a stored value behind wsticket's back, keeping its TTL.
fn set_keepttl(con: &mut redis::Connection, key: &[u8], value: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("KEEPTTL")
        .query(con)
        .unwrap();
}

/// The first byte of a fresh ticket's stored value: without, and with the
/// name of its user's not-before key.
const FRESH: u8 = 2;
const FRESH_NAMED: u8 = 3;

fn is_fresh(v: &[u8]) -> bool {
    matches!(v.first(), Some(&FRESH | &FRESH_NAMED))
}

/// Where a fresh value's used record starts.
fn used_start(v: &[u8]) -> usize {
    let at = if v[0] == FRESH_NAMED {
        2 + usize::from(v[1])
    } else {
        1
    };
    at + 2 + usize::from(u16::from_be_bytes([v[at], v[at + 1]]))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_nothing_readable() {
    let url = shared_url();
    let app = spawn_app(Backend::Redis).await;
    let user = "user-7f3a9c-unmistakable";
    let claim = "claim-value-b41d-unmistakable";
    let t = app
        .mint_with(json!({
            "user_id": user,
            "origin": "https://tenant-xyz.example.org",
            "claims": {"marker": claim}
        }))
        .await;
    let secrets = [
        t.as_str(),
        &t[7..],
        user,
        claim,
        "tenant-xyz",
        "marker",
        ISSUER,
        REDEEMER,
        SECRET_K1,
    ];
    let check = |stage: &str| {
        let dump = redis_dump(&url, &app.prefix);
        assert_eq!(dump.len(), 1, "{stage}: one key per ticket");
        for (k, v) in &dump {
            assert!(k.starts_with(format!("{}t:", app.prefix).as_bytes()));
            for s in secrets {
                assert!(
                    !contains(k, s) && !contains(v, s),
                    "{stage}: {s:?} readable in Redis"
                );
            }
        }
    };
    check("after mint");
    app.redeem(&t, Some("https://tenant-xyz.example.org"))
        .await
        .expect(200, None);
    check("after redeem");
    // Unknown tickets create no key.
    for _ in 0..5 {
        app.redeem("wst_k1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", None)
            .await
            .expect(404, Some("ticket_invalid"));
    }
    check("after unknown redeems");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_moved_values_do_not_redeem() {
    let (url, app, mut con) = app_on_shared_redis().await;
    let a = app.mint().await;
    let b = app.mint().await;
    let dump = redis_dump(&url, &app.prefix);
    assert_eq!(dump.len(), 2);
    let (k0, v0) = &dump[0];
    let (k1, v1) = &dump[1];
    // Swap the two values: each key now holds the other ticket's payload.
    set_keepttl(&mut con, k0, v1);
    set_keepttl(&mut con, k1, v0);
    app.redeem(&a, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&b, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));

    // A flipped byte in a fresh value.
    let c = app.mint().await;
    let dump = redis_dump(&url, &app.prefix);
    let (k, v) = dump
        .iter()
        .find(|(_, v)| is_fresh(v))
        .expect("the unredeemed value");
    let mut bad = v.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    set_keepttl(&mut con, k, &bad);
    app.redeem(&c, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeem_marks_the_value_keeps_the_ttl_and_an_unknown_ticket_leaves_nothing() {
    let (url, app, mut con) = app_on_shared_redis().await;
    let t = app
        .mint_with(json!({"user_id": "u", "origin": ORIGIN, "ttl_secs": 60}))
        .await;
    let fresh = redis_dump(&url, &app.prefix).remove(0).1;
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
    let dump = redis_dump(&url, &app.prefix);
    assert_eq!(dump.len(), 1);
    let (key, value) = &dump[0];
    // The used mark and the used record: the tail of the fresh value, and
    // none of its fresh record.
    assert_eq!(value[0], 0);
    assert_eq!(&value[1..], &fresh[used_start(&fresh)..]);
    let pttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
    assert!(
        pttl > 50_000 && pttl <= 60_000,
        "the mark keeps the TTL: {pttl}"
    );
    app.redeem(&t, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));

    // A well-formed ticket that was never minted: 404, and no key appears.
    let mut chars: Vec<char> = t.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let unknown: String = chars.into_iter().collect();
    app.redeem(&unknown, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    assert_eq!(redis_dump(&url, &app.prefix).len(), 1);

    // A bare one-byte mark (as `SET key <mark> XX KEEPTTL GET` would leave)
    // reads as used too.
    let other = app.mint().await;
    let (k, _) = redis_dump(&url, &app.prefix)
        .into_iter()
        .find(|(_, v)| is_fresh(v))
        .expect("the unredeemed value");
    set_keepttl(&mut con, &k, &[0]);
    app.redeem(&other, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
}

/// A used ticket stays used, whatever is done to its stored value without
/// the server secret: stripping the used mark, flipping any bit, truncating
/// or padding it never yields a second success (409 or 404, never 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_edit_of_a_used_value_revives_the_ticket() {
    let (url, app, mut con) = app_on_shared_redis().await;
    let t = app.mint().await;
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
    let (key, used) = redis_dump(&url, &app.prefix).remove(0);
    assert_eq!(used[0], 0, "the used mark");

    let mut edits: Vec<(String, Vec<u8>)> = vec![
        ("strip the mark".into(), used[1..].to_vec()),
        ("mark as fresh".into(), [&[FRESH][..], &used[1..]].concat()),
        ("truncate".into(), used[..used.len() / 2].to_vec()),
        ("pad".into(), [&used[..], b"\x01\x02\x03"].concat()),
        ("empty".into(), vec![]),
    ];
    // The fresh layout around the used record, with every length the
    // record could be split at.
    for n in [0u16, 1, 12, 28, (used.len() - 1) as u16] {
        let mut v = vec![FRESH];
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&used[1..]);
        edits.push((format!("fresh layout, length {n}"), v));
        // The same, naming a not-before key (the user's, or none that is).
        let name = format!("{}nb:whatever", app.prefix);
        let mut v = vec![FRESH_NAMED, name.len() as u8];
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&used[1..]);
        edits.push((format!("named fresh layout, length {n}"), v));
    }
    for i in 0..used.len() {
        let mut v = used.clone();
        v[i] ^= 0x01;
        edits.push((format!("flip a bit of byte {i}"), v));
    }
    for (what, value) in edits {
        set_keepttl(&mut con, &key, &value);
        let r = app.redeem(&t, Some(ORIGIN)).await;
        assert!(
            r.status == 409 || r.status == 404,
            "{what}: answered {} {}",
            r.status,
            r.text
        );
    }
}

/// Outside a Cluster, a redeem reads its user's revocations in the take's
/// own script (one round trip), from the key the stored value names. That
/// name is stored in the clear, so a value naming another user's key is
/// not trusted: the redeem then reads its user's own key in a second call,
/// and a revoked user stays revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeem_reads_revocations_with_the_take_and_only_from_its_users_key() {
    let (url, app, mut con) = app_on_shared_redis().await;
    let separate_reads = |metrics: &str| -> u64 {
        let line = "wsticket_store_operation_duration_seconds_count{op=\"not_before\"} ";
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .map_or(0, |n| n.parse().unwrap())
    };
    let mint = async |user: &str| {
        let before: Vec<Vec<u8>> = redis_dump(&url, &app.prefix)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let t = app
            .mint_with(json!({"user_id": user, "origin": ORIGIN}))
            .await;
        let (k, v) = redis_dump(&url, &app.prefix)
            .into_iter()
            .find(|(k, _)| !before.contains(k))
            .unwrap();
        assert_eq!(v[0], FRESH_NAMED, "the value names the not-before key");
        let name = v[2..2 + usize::from(v[1])].to_vec();
        assert!(name.starts_with(format!("{}nb:", app.prefix).as_bytes()));
        (t, k, name)
    };

    let (t, _, _) = mint("alice").await;
    app.redeem(&t, Some(ORIGIN)).await.expect(200, None);
    assert_eq!(separate_reads(&app.metrics().await), 0, "one round trip");

    let (revoked, revoked_key, alice_nb) = mint("alice").await;
    let (_, _, bob_nb) = mint("bob").await;
    assert_ne!(alice_nb, bob_nb);
    assert_eq!(alice_nb.len(), bob_nb.len());
    let (also_revoked, _, _) = mint("alice").await;
    app.post_json(
        "/v1/users/revoke",
        Some(REVOKER),
        &json!({"user_id": "alice"}),
    )
    .await
    .expect(200, None);
    // Read in the same step: refused.
    app.redeem(&also_revoked, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    assert_eq!(separate_reads(&app.metrics().await), 0);
    // Pointed at bob's key (never revoked) behind wsticket's back: the
    // redeem reads alice's own in a second call, and refuses.
    let mut v: Vec<u8> = redis::cmd("GET").arg(&revoked_key).query(&mut con).unwrap();
    let at = v
        .windows(alice_nb.len())
        .position(|w| w == alice_nb)
        .unwrap();
    v[at..at + bob_nb.len()].copy_from_slice(&bob_nb);
    set_keepttl(&mut con, &revoked_key, &v);
    app.redeem(&revoked, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    assert_eq!(
        separate_reads(&app.metrics().await),
        1,
        "its own key, read apart"
    );
}

/// A redeem whose store call timed out may still have consumed the ticket:
/// its 503 says so, and the same ticket presented again afterwards (the
/// retry the docs forbid) is a 409 counted apart from leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reuse_after_a_store_timeout_is_told_apart_from_a_leak() {
    let redis = RedisServer::start();
    let app = spawn_with_short_timeout(&redis).await;
    // One redeem first: Redis then knows the script, so the timed-out
    // redeem below is one EVALSHA that runs when Redis resumes (a first
    // EVALSHA would answer NOSCRIPT, and the EVAL after it never be sent).
    let warm = app.mint().await;
    app.redeem(&warm, Some(ORIGIN)).await.expect(200, None);
    let t = app.mint().await;
    redis.pause();
    let r = app.redeem(&t, Some(ORIGIN)).await;
    r.expect(503, Some("store_unavailable"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("unknown") && detail.contains("burned") && detail.contains("never retry"),
        "{detail}"
    );
    // Redis runs the queued redeem script when it resumes.
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "no recovery after SIGCONT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.redeem(&t, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    let metrics = app.metrics().await;
    let count = |outcome: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("wsticket_redemptions_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert_eq!(count("reused_after_store_error"), 1.0, "{metrics}");
    assert_eq!(count("reused"), 0.0, "{metrics}");
    // A ticket that never met a store error is still a leak signal.
    let other = app.mint().await;
    app.redeem(&other, Some(ORIGIN)).await.expect(200, None);
    app.redeem(&other, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    let metrics = app.metrics().await;
    assert!(metrics.contains("outcome=\"reused\"} 1"), "{metrics}");
}
