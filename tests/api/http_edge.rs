//! The HTTP edge: every rejection is problem+json with the right code, and no
//! input gets a 5xx or takes the server down.

use crate::helpers::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;

fn auth(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let app = spawn_app(Backend::Memory).await;
    let a = auth(ISSUER);
    let body = br#"{"user_id":"a","origin":"https://app.example.com"}"#.to_vec();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let mut headers = vec![("authorization", a.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let r = app.post_raw("/v1/tickets", &headers, body.clone()).await;
        r.expect(415, Some("unsupported_media_type"));
    }
    // Parameters and case do not matter.
    let headers = [
        ("authorization", a.as_str()),
        ("content-type", "Application/JSON; charset=utf-8"),
    ];
    app.post_raw("/v1/tickets", &headers, body)
        .await
        .expect(201, None);
}

#[tokio::test]
async fn bodies_over_16_kib_are_413() {
    let app = spawn_app(Backend::Memory).await;
    let filler = "x".repeat(16 * 1024);
    let r = app
        .mint_as(
            ISSUER,
            json!({"user_id": "a", "origin": ORIGIN, "claims": {"f": filler}}),
        )
        .await;
    r.expect(413, Some("payload_too_large"));

    // Chunked, so no Content-Length announces it: the limit holds while
    // reading.
    let port = app.base.rsplit(':').next().unwrap();
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let head = format!(
        "POST /v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ISSUER}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for _ in 0..5 {
        let chunk = "y".repeat(4096);
        let _ = s.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("payload_too_large"), "{out}");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app(Backend::Memory).await;
    for path in [
        "/",
        "/v1",
        "/v1/tickets/",
        "/v2/tickets",
        "/metrics",
        "/v1/tickets/redeem/x",
    ] {
        let url = format!("{}{path}", app.base);
        let r = app.send("GET", None, &url, &[], None).await;
        r.expect(404, Some("not_found"));
    }
    for (method, path, allow) in [
        ("GET", "/v1/tickets", "POST, OPTIONS"),
        ("PUT", "/v1/tickets", "POST, OPTIONS"),
        ("DELETE", "/v1/tickets/redeem", "POST"),
        ("POST", "/healthz", "GET"),
        ("POST", "/readyz", "GET"),
    ] {
        let url = format!("{}{path}", app.base);
        let r = app.send(method, Some(path), &url, &[], None).await;
        r.expect(405, Some("method_not_allowed"));
        assert_eq!(r.header("allow"), Some(allow));
    }
    let url = format!("{}/metrics", app.admin);
    let r = app.send("POST", Some("/metrics"), &url, &[], None).await;
    r.expect(405, Some("method_not_allowed"));
    let url = format!("{}/v1/tickets", app.admin);
    app.send("GET", None, &url, &[], None)
        .await
        .expect(404, Some("not_found"));
}

#[tokio::test]
async fn malformed_bodies_are_400_without_echo() {
    let app = spawn_app(Backend::Memory).await;
    let a = auth(REDEEMER);
    let headers = [
        ("authorization", a.as_str()),
        ("content-type", "application/json"),
    ];
    let deep = "[".repeat(10_000);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"{\"ticket\": \"wst_k1_SECRETSECRETSECRETSECRETSECRETSECRETSECRE\"".to_vec(),
        b"{\"ticket\": wst_k1_SECRETSECRETSECRETSECRETSECRETSECRETSECRE}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"ticket\": \"\xff\xfe\"}".to_vec(),
        deep.into_bytes(),
        b"{\"ticket\": \"a\", \"ticket\": \"b\"}".to_vec(),
        b"\"just a string\"".to_vec(),
        b"1e999999".to_vec(),
    ];
    for body in bodies {
        let r = app
            .post_raw("/v1/tickets/redeem", &headers, body.clone())
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{:?}: {}",
            String::from_utf8_lossy(&body),
            r.text
        );
        assert!(!r.text.contains("SECRET"), "{}", r.text);
    }
}

#[tokio::test]
async fn odd_authorization_headers_are_401_never_5xx() {
    let app = spawn_app(Backend::Memory).await;
    let long = format!("Bearer wsk_{}", "a".repeat(8000));
    for value in [
        "",
        "Bearer",
        "Bearer ",
        "bearer x",
        "Basic dXNlcjpwYXNz",
        "Bearer wsk_",
        "Bearer \t",
        long.as_str(),
    ] {
        let headers = [
            ("authorization", value),
            ("content-type", "application/json"),
        ];
        let r = app.post_raw("/v1/tickets", &headers, b"{}".to_vec()).await;
        r.expect(401, Some("unauthenticated"));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    // Non-UTF-8 bytes in the header value.
    let port = app.base.rsplit(':').next().unwrap();
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.write_all(b"POST /v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
}

#[tokio::test]
async fn a_full_memory_store_refuses_to_mint_with_503() {
    let prefix = random_prefix();
    let text = base_config(Backend::Memory, None, &prefix, "")
        .replace("memory_max_entries = 100000", "memory_max_entries = 3");
    let app = spawn_toml(&text, prefix).await;
    for _ in 0..3 {
        app.mint().await;
    }
    app.mint_as(ISSUER, json!({"user_id": "a", "origin": ORIGIN}))
        .await
        .expect(503, Some("store_unavailable"));
    // Redeeming still works while full.
    let app2_ticket_redeem = app
        .redeem(
            "wst_k1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            Some(ORIGIN),
        )
        .await;
    app2_ticket_redeem.expect(404, Some("ticket_invalid"));
    // /readyz and the metrics say so.
    app.get("/readyz")
        .await
        .expect(503, Some("store_unavailable"));
    let m = app.metrics().await;
    assert!(m.contains("wsticket_store_memory_full 1"), "{m}");
    assert!(m.contains("wsticket_store_memory_entries 3"), "{m}");
    assert!(
        m.contains(r#"wsticket_store_errors_total{kind="full",op="mint"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn the_memory_budget_in_bytes_refuses_mints_past_it_until_tickets_expire() {
    let prefix = random_prefix();
    let text = base_config(Backend::Memory, None, &prefix, "")
        .replace("memory_max_entries = 100000", "memory_max_bytes = 1048576");
    let app = spawn_toml(&text, prefix).await;
    app.get("/readyz").await.expect(200, None);
    // 4 KiB claims: a few hundred tickets fill 1 MiB. They live 3 s, so
    // none expires (and frees its room) while the store fills, even on a
    // loaded machine.
    let claims = json!({ "blob": "x".repeat(4000) });
    let mut minted = 0;
    let refused = loop {
        let r = app
            .mint_as(
                ISSUER,
                json!({"user_id": "a", "origin": ORIGIN, "claims": claims, "ttl_secs": 3}),
            )
            .await;
        if r.status != 201 {
            break r;
        }
        minted += 1;
        assert!(minted < 1000, "1 MiB took 1000 tickets of 4 KiB claims");
    };
    refused.expect(503, Some("store_unavailable"));
    assert!(minted > 150, "{minted}");
    let m = app.metrics().await;
    assert!(m.contains("wsticket_store_memory_max_bytes 1048576"), "{m}");
    assert!(m.contains("wsticket_store_memory_full 1"), "{m}");
    app.get("/readyz")
        .await
        .expect(503, Some("store_unavailable"));
    // Once they expire, the store takes mints again and is ready.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    app.get("/readyz").await.expect(200, None);
    app.mint().await;
    let m = app.metrics().await;
    assert!(m.contains("wsticket_store_memory_full 0"), "{m}");
}

/// A sweep of hostile inputs across both routes: nothing answers 5xx and the
/// server still serves afterwards.
#[tokio::test]
async fn no_input_gets_a_5xx() {
    let app = spawn_app(Backend::Memory).await;
    let strings = [
        "",
        "\u{0}",
        "null",
        "wst_",
        "wst_k1_",
        "wst__",
        "wst_k1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "wst_k1_////////////////////////////////////////////",
        "https://",
        "https://[::1",
        "https://xn--",
        "https://xn--zz.example.com",
        "https://\u{202e}moc.elpmaxe",
        "http://256.256.256.256",
        "https://app.example.com:0",
        "https://app.example.com:65535",
        "javascript:alert(1)",
        "data:text/html,x",
        "\u{fffd}\u{fffd}",
        "𝕒𝕡𝕡.example.com",
        "https://𝕒𝕡𝕡.example.com",
    ];
    for s in strings {
        for body in [
            json!({"user_id": s, "origin": s}),
            json!({"user_id": "a", "origin": s, "audience": s}),
            json!({"user_id": "a", "origin": ORIGIN, "claims": {s: s}}),
        ] {
            let r = app.mint_as(ISSUER, body).await;
            assert!(r.status < 500, "{s:?}: {}", r.text);
        }
        for body in [json!({"ticket": s}), json!({"ticket": s, "origin": s})] {
            let r = app.redeem_as(REDEEMER, body).await;
            assert!(r.status < 500, "{s:?}: {}", r.text);
        }
    }
    for ttl in [
        json!(u64::MAX),
        json!(i64::MIN),
        json!("30"),
        json!(true),
        json!(1e300),
    ] {
        let r = app
            .mint_as(
                ISSUER,
                json!({"user_id": "a", "origin": ORIGIN, "ttl_secs": ttl}),
            )
            .await;
        r.expect(400, Some("invalid_request"));
    }
    app.get("/healthz").await.expect(200, None);
}

/// What actix's HTTP parser refuses before any route runs still gets a
/// problem+json answer (routes/wire.rs), never a bare 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_answered_with_problem_json() {
    let app = spawn_app(Backend::Memory).await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    for raw in [
        &b"POST /v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n{}"[..],
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nA header without a colon\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    ] {
        let port = port.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            s.write_all(raw).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .unwrap();
        let request = String::from_utf8_lossy(raw);
        assert!(out.starts_with("HTTP/1.1 400 "), "{request:?} -> {out}");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/problem+json"), "{out}");
        assert!(head.contains("cache-control: no-store"), "{out}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "invalid_request", "{out}");
        assert_eq!(problem["status"], 400, "{out}");
    }
    // The listener still serves.
    app.get("/healthz").await.expect(200, None);
}
