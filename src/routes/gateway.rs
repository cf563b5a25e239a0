//! `GET /v1/gateway/check[/{audience}[/…]]`: the door for proxies in front
//! of a WebSocket server that knows nothing of wsticket (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik ForwardAuth, Envoy
//! `ext_authz`). It finds the ticket of the request the proxy is about to
//! pass on, redeems it through the core like `POST /v1/tickets/redeem`, and
//! answers in the few statuses every proxy understands: 200 (identity in
//! `X-Wsticket-*` headers), 401 (no valid ticket), 403 (wrong origin or
//! audience, or a bad gateway key), 503 (the store failed). See
//! docs/gateways.md.

use super::extract::client_ip;
use super::no_store;
use super::problem::{ApiError, Code};
use crate::auth::{AuthError, Authenticator};
use crate::core::{Door, Outcome, RedeemError, RedeemRequest, TicketCore, rfc3339_ms};
use crate::domain::Audience;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// How the gateway proves itself: a client key with `redeem`.
const GATEWAY_KEY: HeaderName = HeaderName::from_static("x-wsticket-gateway-key");

/// Where gateways put the URI of the request they check, in the order the
/// ticket is looked for: nginx (by convention), ingress-nginx (a whole
/// URL), Traefik and Caddy.
static URI_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-forwarded-uri"),
];

/// What a user id keeps of itself in `X-Wsticket-User`: every byte but
/// these is sent as it is; these (and every non-ASCII byte) percent-encoded.
const USER_ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%').add(b',').add(b';');

/// The `ticket` query parameters of a URI (or of a query alone).
fn query_tickets(uri: &str) -> impl Iterator<Item = String> + '_ {
    let query = match uri.split_once('?') {
        Some((_, q)) => q,
        None if !uri.contains('/') => uri,
        None => "",
    };
    let query = query.split('#').next().unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
}

/// A request that carries two different tickets: which one the user meant
/// is not for the gateway to guess (an app's own `ticket` parameter, or
/// one a client slipped into a header the proxy should have set).
struct MoreThanOne;

/// The ticket of the checked request, from every place that may hold one:
/// the URI headers of the proxies, the check's own query (Envoy sends the
/// original path and query as the check's), the subprotocol entry. The
/// same ticket in several (ingress-nginx sets two URI headers) is one.
fn ticket_of(req: &HttpRequest) -> Result<Option<String>, MoreThanOne> {
    let headers = req.headers();
    let in_uris = URI_HEADERS
        .iter()
        .filter_map(|name| headers.get(name)?.to_str().ok())
        .chain([req.query_string()])
        .flat_map(query_tickets);
    let in_protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|entry| {
            let (prefix, ticket) = entry.split_at_checked(TICKET_ENTRY.len())?;
            prefix
                .eq_ignore_ascii_case(TICKET_ENTRY)
                .then(|| ticket.to_owned())
        });
    let mut found: Option<String> = None;
    for ticket in in_uris.chain(in_protocols) {
        match &found {
            Some(first) if *first != ticket => return Err(MoreThanOne),
            Some(_) => {}
            None => found = Some(ticket),
        }
    }
    Ok(found)
}

/// The subprotocol entry that carries a ticket (docs/integrating.md).
const TICKET_ENTRY: &str = "wsticket.";

fn forbidden(detail: &'static str) -> ApiError {
    ApiError::with_detail(Code::Forbidden, detail)
}

/// Gateways understand 401 and 403 (nginx turns anything else into a 500):
/// every verdict on the ticket is one of them.
fn answer(e: RedeemError) -> ApiError {
    match e {
        RedeemError::NotPermitted(_) => forbidden("the gateway key lacks the redeem permission"),
        // A set-up fault, answered before a ticket is spent.
        RedeemError::AudienceNotPermitted => route_audience_refused(),
        RedeemError::StoreUnavailable(_) => e.into(),
        RedeemError::Refused(r) => match r.outcome {
            Outcome::OriginMismatch => Code::OriginMismatch.into(),
            Outcome::AudienceMismatch => Code::AudienceMismatch.into(),
            Outcome::IpMismatch => Code::IpMismatch.into(),
            Outcome::Malformed
            | Outcome::Invalid
            | Outcome::Reused
            | Outcome::ReusedAfterStoreError
            | Outcome::Revoked
            | Outcome::Ok => ApiError::with_detail(
                Code::Unauthenticated,
                "no valid ticket: missing, malformed, unknown, expired, revoked or already \
                 used; mint a new one",
            ),
        },
    }
}

fn route_audience_refused() -> ApiError {
    forbidden("the route's audience is not one this gateway key may redeem")
}

fn gateway_key_refused(_: AuthError) -> ApiError {
    forbidden("the gateway key (X-Wsticket-Gateway-Key) is missing or unknown")
}

pub(crate) async fn check(
    req: HttpRequest,
    core: web::Data<TicketCore>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, ApiError> {
    let key = req
        .headers()
        .get(&GATEWAY_KEY)
        .and_then(|v| v.to_str().ok());
    let caller = auth
        .authenticate_bare_key(key)
        .map_err(gateway_key_refused)?;
    let route_audience = match req.match_info().get("audience") {
        None => None,
        Some(a) => Some(Audience::parse(a).map_err(|_| route_audience_refused())?),
    };
    // Two tickets go to the core as none (counted and logged as malformed),
    // and are answered as what they are.
    let found = ticket_of(&req);
    let ticket = found
        .as_ref()
        .ok()
        .and_then(Option::as_deref)
        .unwrap_or_default();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let request = RedeemRequest {
        ticket,
        origin,
        door: Door::Gateway,
        audience: route_audience.as_ref(),
        // The browser's address as the proxy reports it (X-Forwarded-For,
        // believed from limits.trusted_proxies), for tickets bound to one.
        client_ip: client_ip(&req, &core.limits().trusted_proxies),
    };
    let r = core
        .redeem(&caller, request)
        .await
        .map_err(|e| match found {
            Err(MoreThanOne) if matches!(e, RedeemError::Refused(_)) => ApiError::with_detail(
                Code::Unauthenticated,
                "more than one ticket in the request: send one, in the query or the \
             subprotocol list",
            ),
            _ => answer(e),
        })?;
    let mut res = no_store(StatusCode::OK);
    let user = utf8_percent_encode(r.user.as_ref(), USER_ENCODED).to_string();
    let claims = URL_SAFE_NO_PAD.encode(r.claims.as_raw().get());
    // What a WebSocket server behind the proxy compares with a revocation's
    // `before`.
    let issued_at = rfc3339_ms(r.issued_at);
    for (name, value) in [
        ("x-wsticket-user", Some(user.as_str())),
        ("x-wsticket-audience", Some(r.audience.as_ref())),
        ("x-wsticket-origin", r.origin.as_ref().map(AsRef::as_ref)),
        ("x-wsticket-claims", Some(claims.as_str())),
        ("x-wsticket-issued-at", Some(issued_at.as_str())),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            res.insert_header((HeaderName::from_static(name), value));
        }
    }
    Ok(res.json(serde_json::json!({"status": "ok"})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const T: &str = "wst_k1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn found(req: TestRequest) -> Option<String> {
        ticket_of(&req.to_http_request()).unwrap_or_else(|_| panic!("two tickets"))
    }

    #[test]
    fn the_ticket_is_taken_from_the_first_place_that_holds_one() {
        let uri = format!("/ws?room=1&ticket={T}");
        assert_eq!(
            found(TestRequest::default().insert_header(("x-original-uri", uri.as_str())))
                .as_deref(),
            Some(T)
        );
        let url = format!("https://chat.example.com/ws?ticket={T}#x");
        assert_eq!(
            found(TestRequest::default().insert_header(("x-original-url", url.as_str())))
                .as_deref(),
            Some(T)
        );
        assert_eq!(
            found(TestRequest::default().insert_header(("x-forwarded-uri", uri.as_str())))
                .as_deref(),
            Some(T)
        );
        // Envoy: the original query as the check's own.
        assert_eq!(
            found(TestRequest::with_uri(&format!(
                "/v1/gateway/check/chat/ws?ticket={T}"
            )))
            .as_deref(),
            Some(T)
        );
        let protocols = format!("chat.v1, WsTicket.{T}");
        assert_eq!(
            found(
                TestRequest::default()
                    .insert_header(("sec-websocket-protocol", protocols.as_str()))
            )
            .as_deref(),
            Some(T)
        );
        // A URI without one does not stop the search; the same ticket in
        // several places is one.
        let same = TestRequest::default()
            .insert_header(("x-original-uri", "/ws?room=1"))
            .insert_header(("x-original-url", format!("https://h/ws?ticket={T}")))
            .insert_header(("x-forwarded-uri", format!("/ws?ticket={T}")));
        assert_eq!(found(same).as_deref(), Some(T));
        assert_eq!(
            found(TestRequest::default().insert_header(("x-original-uri", "/ws?room=1"))),
            None
        );
        // Percent-encoding in the query is undone.
        assert_eq!(
            query_tickets("/ws?ticket=wst_k1_a%2Db").collect::<Vec<_>>(),
            ["wst_k1_a-b"]
        );
    }

    #[test]
    fn two_different_tickets_are_refused_wherever_they_are() {
        let two = |req: TestRequest| ticket_of(&req.to_http_request()).is_err();
        assert!(two(TestRequest::default()
            .insert_header(("x-original-uri", "/ws?ticket=a"))
            .insert_header((
                "sec-websocket-protocol",
                "chat.v1, wsticket.b"
            ))));
        assert!(two(
            TestRequest::default().insert_header(("x-original-uri", "/ws?ticket=a&ticket=b"))
        ));
        assert!(two(TestRequest::default()
            .insert_header(("x-original-uri", "/ws?ticket=a"))
            .insert_header(("x-forwarded-uri", "/ws?ticket=b"))));
        assert!(two(TestRequest::default().insert_header((
            "sec-websocket-protocol",
            "wsticket.a, wsticket.b"
        ))));
        assert!(two(TestRequest::with_uri(
            "/v1/gateway/check/chat/ws?ticket=a"
        )
        .insert_header(("sec-websocket-protocol", "wsticket.b"))));
    }

    #[test]
    fn user_ids_keep_plain_ascii_and_encode_the_rest() {
        let enc = |s: &str| utf8_percent_encode(s, USER_ENCODED).to_string();
        assert_eq!(enc("alice@example.com"), "alice@example.com");
        assert_eq!(enc("4242"), "4242");
        assert_eq!(enc("a b,c;d%e\"f"), "a%20b%2Cc%3Bd%25e%22f");
        assert_eq!(enc("é"), "%C3%A9");
    }
}
