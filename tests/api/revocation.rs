//! Revoking a ticket or a user, `tickets.on_reuse`, and the event stream
//! that tells WebSocket servers: on every backend, and across replicas
//! sharing a Redis.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

impl TestApp {
    async fn revoke_ticket(&self, key: &str, ticket: &str) -> Resp {
        self.post_json(
            "/v1/tickets/revoke",
            Some(key),
            &json!({ "ticket": ticket }),
        )
        .await
    }

    async fn revoke_user(&self, key: &str, body: Value) -> Resp {
        self.post_json("/v1/users/revoke", Some(key), &body).await
    }

    /// Revoke `user` (all audiences) as REVOKER; the `revoked_before`.
    async fn revoke_all_of(&self, user: &str) -> String {
        let r = self.revoke_user(REVOKER, json!({ "user_id": user })).await;
        r.expect(200, None);
        r.body["revoked_before"].as_str().unwrap().to_owned()
    }

    async fn mint_for(&self, user: &str, audience: &str) -> String {
        self.mint_with(json!({ "user_id": user, "origin": ORIGIN, "audience": audience }))
            .await
    }
}

/// An open `GET /v1/events`, read frame by frame.
pub struct Events {
    res: reqwest::Response,
    buf: String,
}

#[derive(Debug)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
    pub text: String,
}

impl Events {
    pub async fn open(app: &TestApp, key: &str, last_event_id: Option<&str>) -> Events {
        let mut req = app
            .http
            .get(format!("{}/v1/events", app.base))
            .bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.expect("events answer");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        assert_eq!(res.headers()["cache-control"].to_str().unwrap(), "no-store");
        let mut events = Events {
            res,
            buf: String::new(),
        };
        let first = events.frame().await;
        assert_eq!(first.text, "retry: 1000");
        events
    }

    /// The next frame (anything up to a blank line), within 5 s.
    pub async fn frame(&mut self) -> Frame {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let text = self.buf[..end].to_owned();
                self.buf.drain(..end + 2);
                let field = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .map(str::to_owned)
                };
                return Frame {
                    id: field("id"),
                    event: field("event"),
                    data: field("data")
                        .map(|d| serde_json::from_str(&d).expect("data is JSON"))
                        .unwrap_or(Value::Null),
                    text,
                };
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.res.chunk())
                .await
                .expect("a frame within 5 s")
                .expect("the stream reads")
                .expect("the stream is still open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next frame that is an event (not a heartbeat).
    pub async fn event(&mut self) -> Frame {
        loop {
            let f = self.frame().await;
            if f.event.is_some() {
                return f;
            }
            assert_eq!(f.text, ": keep-alive");
        }
    }

    /// Nothing but heartbeats for `d`.
    pub async fn quiet_for(&mut self, d: Duration) {
        let got = tokio::time::timeout(d, self.event()).await;
        assert!(got.is_err(), "unexpected event: {:?}", got.unwrap());
    }
}

async fn a_revoked_ticket_redeems_as_invalid(b: Backend) {
    let app = spawn_app(b).await;
    let ticket = app.mint().await;
    // Its minter may revoke it; again, and an unknown ticket, change nothing.
    app.revoke_ticket(ISSUER, &ticket).await.expect(204, None);
    app.revoke_ticket(ISSUER, &ticket).await.expect(204, None);
    let mut unknown: Vec<char> = ticket.chars().collect();
    unknown[10] = if unknown[10] == 'a' { 'b' } else { 'a' };
    let unknown: String = unknown.into_iter().collect();
    app.revoke_ticket(ISSUER, &unknown).await.expect(204, None);
    app.redeem(&ticket, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // A revoked ticket stays revoked (never "reused").
    app.redeem(&ticket, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // A used ticket stays used: revoking it changes nothing.
    let used = app.mint().await;
    app.redeem(&used, Some(ORIGIN)).await.expect(200, None);
    app.revoke_ticket(REVOKER, &used).await.expect(204, None);
    app.redeem(&used, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    let m = app.metrics().await;
    assert!(
        m.contains(
            r#"wsticket_redemptions_total{audience="default",door="redeem",outcome="revoked"} 2"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"wsticket_revocations_total{kind="ticket",reason="request"} 1"#),
        "{m}"
    );
    app.revoke_ticket(ISSUER, "not-a-ticket")
        .await
        .expect(400, Some("invalid_request"));
}

async fn only_its_minter_or_a_revoker_may_revoke_a_ticket(b: Backend) {
    let app = spawn_app(b).await;
    let chat = app
        .mint_as(
            CHAT_ISSUER,
            json!({ "user_id": "alice", "origin": ORIGIN, "audience": "chat" }),
        )
        .await;
    let chat = chat.body["ticket"].as_str().unwrap().to_owned();
    // Another issuer, a redeemer: refused, and the ticket lives on.
    app.revoke_ticket(ISSUER, &chat)
        .await
        .expect(403, Some("forbidden"));
    app.revoke_ticket(REDEEMER, &chat)
        .await
        .expect(403, Some("forbidden"));
    // A revoker of another audience may not either.
    let default = app.mint().await;
    app.revoke_ticket(CHAT_REVOKER, &default)
        .await
        .expect(403, Some("forbidden"));
    app.revoke_ticket(CHAT_REVOKER, &chat)
        .await
        .expect(204, None);
    app.redeem_as(CHAT_REDEEMER, json!({ "ticket": chat, "origin": ORIGIN }))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&default, Some(ORIGIN)).await.expect(200, None);
}

async fn revoking_a_user_kills_the_tickets_issued_before(b: Backend) {
    let app = spawn_app(b).await;
    let alice = app.mint_for("alice", "default").await;
    let alice_chat = app.mint_for("alice", "chat").await;
    let bob = app.mint_for("bob", "default").await;
    let before = app.revoke_all_of("alice").await;
    assert!(
        humantime::parse_rfc3339(&before).is_ok() && before.contains('.'),
        "{before}"
    );
    app.redeem(&alice, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&alice_chat, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&bob, Some(ORIGIN)).await.expect(200, None);
    // A ticket minted afterwards is not affected; its issued_at says so.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let after = app.mint_for("alice", "default").await;
    let r = app.redeem(&after, Some(ORIGIN)).await;
    r.expect(200, None);
    let issued = r.body["issued_at"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(issued).unwrap() >= humantime::parse_rfc3339(&before).unwrap(),
        "{issued} < {before}"
    );
    let m = app.metrics().await;
    assert!(
        m.contains(r#"wsticket_revocations_total{kind="user",reason="request"} 1"#),
        "{m}"
    );
}

async fn a_user_revocation_may_name_an_audience(b: Backend) {
    let app = spawn_app(b).await;
    let default = app.mint_for("alice", "default").await;
    let chat = app.mint_for("alice", "chat").await;
    app.revoke_user(
        CHAT_REVOKER,
        json!({ "user_id": "alice", "audience": "chat" }),
    )
    .await
    .expect(200, None);
    app.redeem(&chat, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&default, Some(ORIGIN)).await.expect(200, None);
}

for_every_store!(
    a_revoked_ticket_redeems_as_invalid,
    only_its_minter_or_a_revoker_may_revoke_a_ticket,
    revoking_a_user_kills_the_tickets_issued_before,
    a_user_revocation_may_name_an_audience,
    events_tell_subscribers_of_revocations_and_reuses,
    events_resume_after_the_last_id_or_report_a_gap,
    a_reuse_can_revoke_its_user,
);

#[tokio::test]
async fn user_revocations_need_the_permission_and_a_known_audience() {
    let app = spawn_app(Backend::Memory).await;
    let cases = [
        (ISSUER, json!({ "user_id": "alice" }), 403),
        (REDEEMER, json!({ "user_id": "alice" }), 403),
        // A client of one audience must name it.
        (CHAT_REVOKER, json!({ "user_id": "alice" }), 403),
        (
            CHAT_REVOKER,
            json!({ "user_id": "alice", "audience": "default" }),
            403,
        ),
        // Not configured: as at mint and redeem. Malformed: 400.
        (
            REVOKER,
            json!({ "user_id": "alice", "audience": "nope" }),
            403,
        ),
        (
            REVOKER,
            json!({ "user_id": "alice", "audience": "no pe" }),
            400,
        ),
        (REVOKER, json!({ "user_id": "" }), 400),
        (REVOKER, json!({ "user_id": "a\u{200b}b" }), 400),
        (REVOKER, json!({ "user": "alice" }), 400),
        (
            REVOKER,
            json!({ "user_id": "alice", "audience": "chat", "x": 1 }),
            400,
        ),
    ];
    for (key, body, status) in cases {
        let r = app.revoke_user(key, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // Unauthenticated: no key, or an unknown one.
    let r = app
        .post_json("/v1/users/revoke", None, &json!({ "user_id": "alice" }))
        .await;
    r.expect(401, Some("unauthenticated"));
    app.revoke_ticket(UNKNOWN_KEY, "x")
        .await
        .expect(401, Some("unauthenticated"));
}

#[tokio::test]
async fn events_need_redeem_or_revoke() {
    let app = spawn_app(Backend::Memory).await;
    let url = format!("{}/v1/events", app.base);
    let r = app.send("GET", Some("/v1/events"), &url, &[], None).await;
    r.expect(401, Some("unauthenticated"));
    let auth = format!("Bearer {ISSUER}");
    let r = app
        .send(
            "GET",
            Some("/v1/events"),
            &url,
            &[("authorization", &auth)],
            None,
        )
        .await;
    r.expect(403, Some("forbidden"));
    // Both of these may.
    Events::open(&app, REDEEMER, None).await;
    Events::open(&app, REVOKER, None).await;
}

async fn events_tell_subscribers_of_revocations_and_reuses(b: Backend) {
    let app = spawn_app(b).await;
    let mut all = Events::open(&app, REDEEMER, None).await;
    let mut chat = Events::open(&app, CHAT_REDEEMER, None).await;
    let before = app.revoke_all_of("alice").await;
    for events in [&mut all, &mut chat] {
        let e = events.event().await;
        assert_eq!(e.event.as_deref(), Some("user_revoked"));
        assert!(e.id.is_some());
        assert_eq!(
            e.data,
            json!({ "user_id": "alice", "audience": null, "before": before, "reason": "request" })
        );
    }
    // An event of one audience reaches only the clients that may use it.
    app.revoke_user(REVOKER, json!({ "user_id": "bob", "audience": "default" }))
        .await
        .expect(200, None);
    let e = all.event().await;
    assert_eq!(e.data["user_id"], "bob");
    assert_eq!(e.data["audience"], "default");
    // A reuse, told to the subscribers (with its user, never the ticket).
    let ticket = app.mint_for("carol", "chat").await;
    app.redeem(&ticket, Some(ORIGIN)).await.expect(200, None);
    app.redeem(&ticket, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    for events in [&mut all, &mut chat] {
        let e = events.event().await;
        assert_eq!(e.event.as_deref(), Some("ticket_reused"));
        assert_eq!(e.data, json!({ "user_id": "carol", "audience": "chat" }));
        assert!(!e.text.contains(&ticket[4..]));
    }
    chat.quiet_for(Duration::from_millis(200)).await;
}

async fn events_resume_after_the_last_id_or_report_a_gap(b: Backend) {
    let app = spawn_app(b).await;
    let mut live = Events::open(&app, REDEEMER, None).await;
    app.revoke_all_of("u1").await;
    app.revoke_all_of("u2").await;
    app.revoke_all_of("u3").await;
    let first = live.event().await;
    let second = live.event().await;
    let third = live.event().await;
    assert_eq!(first.data["user_id"], "u1");
    assert!(second.id != first.id && third.id != second.id);
    // Resuming after the first: the two after it, then live ones.
    let mut resumed = Events::open(&app, REDEEMER, first.id.as_deref()).await;
    assert_eq!(resumed.event().await.data["user_id"], "u2");
    assert_eq!(resumed.event().await.data["user_id"], "u3");
    app.revoke_all_of("u4").await;
    let e = resumed.event().await;
    assert_eq!(e.data["user_id"], "u4");
    assert_eq!(live.event().await.id, e.id);
    // An id the log does not hold: a gap, then live events.
    for unknown in ["1-0", "not an id"] {
        let mut gap = Events::open(&app, REDEEMER, Some(unknown)).await;
        let e = gap.event().await;
        assert_eq!(e.event.as_deref(), Some("gap"));
        assert_eq!(e.id, None);
        assert!(e.data["detail"].as_str().unwrap().contains("missed"));
    }
}

async fn a_reuse_can_revoke_its_user(b: Backend) {
    let app = spawn_with(b, None, "on_reuse = \"revoke_user\"").await;
    let mut events = Events::open(&app, REDEEMER, None).await;
    let leaked = app.mint_for("alice", "default").await;
    let other = app.mint_for("alice", "chat").await;
    let bob = app.mint_for("bob", "default").await;
    app.redeem(&leaked, Some(ORIGIN)).await.expect(200, None);
    app.redeem(&leaked, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    let reused = events.event().await;
    assert_eq!(reused.event.as_deref(), Some("ticket_reused"));
    let revoked = events.event().await;
    assert_eq!(revoked.event.as_deref(), Some("user_revoked"));
    assert_eq!(revoked.data["user_id"], "alice");
    assert_eq!(revoked.data["audience"], Value::Null);
    assert_eq!(revoked.data["reason"], "reuse");
    app.redeem(&other, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&bob, Some(ORIGIN)).await.expect(200, None);
    let m = app.metrics().await;
    assert!(
        m.contains(r#"wsticket_revocations_total{kind="user",reason="reuse"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn by_default_a_reuse_only_reports() {
    let app = spawn_app(Backend::Memory).await;
    let leaked = app.mint_for("alice", "default").await;
    let other = app.mint_for("alice", "default").await;
    app.redeem(&leaked, Some(ORIGIN)).await.expect(200, None);
    app.redeem(&leaked, Some(ORIGIN))
        .await
        .expect(409, Some("ticket_reused"));
    app.redeem(&other, Some(ORIGIN)).await.expect(200, None);
}

#[tokio::test]
async fn quiet_streams_get_heartbeats() {
    let prefix = random_prefix();
    let text = format!(
        "{}\n[events]\nheartbeat_secs = 1\n",
        base_config(Backend::Memory, None, &prefix, "")
    );
    let app = spawn_toml(&text, prefix).await;
    let mut events = Events::open(&app, REDEEMER, None).await;
    let started = std::time::Instant::now();
    assert_eq!(events.frame().await.text, ": keep-alive");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let m = app.metrics().await;
    assert!(m.contains("wsticket_event_subscribers 1"), "{m}");
}

/// Two replicas sharing one store: a revocation on one reaches the other's
/// subscribers, and its redeems.
async fn revocations_reach_every_replica(b: Backend) {
    let prefix = random_prefix();
    let text = base_config(b, None, &prefix, "");
    let a = spawn_toml(&text, prefix.clone()).await;
    let b = spawn_toml(&text, prefix).await;
    let mut on_b = Events::open(&b, REDEEMER, None).await;
    let ticket = a.mint().await;
    let before = a.revoke_all_of("alice").await;
    let e = on_b.event().await;
    assert_eq!(e.data["before"], before.as_str());
    b.redeem(&ticket, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
}

mod shared {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        revocations_reach_every_replica(Backend::Redis).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster() {
        revocations_reach_every_replica(Backend::Cluster).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sentinel() {
        revocations_reach_every_replica(Backend::Sentinel).await
    }
}
