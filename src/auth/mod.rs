//! Who is calling. A handler names the caller it accepts in its signature
//! (`Caller` is an actix extractor), and the extractor turns the
//! `Authorization` header into a verified identity or a 401.
//!
//! A caller is a configured API client (trusted backends, WebSocket servers)
//! or a frontend user proven by a JWT or by the app's own session (forward
//! auth). Handlers ask the caller what it may do and do not care how it
//! proved who it is.
//!
//! Which check a credential gets (SPEC): a bearer with the `wsk_` prefix is
//! an API key; one that parses as a JWT goes to `[auth.jwt]`; anything else,
//! or a request with only cookies, goes to `[auth.forward]` when configured.

pub mod forward;
mod http;
pub mod jwt;

use crate::domain::{Audience, UserId};
use crate::error::ApiError;
use crate::metrics::Metrics;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use forward::ForwardAuth;
use futures_util::future::LocalBoxFuture;
use jwt::JwtVerifier;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub const API_KEY_PREFIX: &str = "wsk_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Issue,
    Redeem,
    Revoke,
}

impl Permission {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "issue" => Ok(Permission::Issue),
            "redeem" => Ok(Permission::Redeem),
            "revoke" => Ok(Permission::Revoke),
            other => Err(format!(
                "unknown permission {other:?} (expected issue, redeem or revoke)"
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Permission::Issue => "issue",
            Permission::Redeem => "redeem",
            Permission::Revoke => "revoke",
        }
    }
}

/// A `[[clients]]` entry: a trusted backend or a WebSocket server.
pub struct ApiClient {
    pub name: String,
    key_sha256: [u8; 32],
    can: HashSet<Permission>,
    /// `None`: every configured audience.
    audiences: Option<HashSet<Audience>>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("name", &self.name)
            .field("can", &self.can)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(
        name: String,
        key_sha256_hex: &str,
        can: HashSet<Permission>,
        audiences: Option<HashSet<Audience>>,
    ) -> Result<Self, String> {
        let valid_hex = key_sha256_hex.len() == 64
            && key_sha256_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut key_sha256 = [0u8; 32];
        if !valid_hex || hex::decode_to_slice(key_sha256_hex, &mut key_sha256).is_err() {
            return Err("key_sha256 must be 64 lower-case hex characters".into());
        }
        Ok(ApiClient {
            name,
            key_sha256,
            can,
            audiences,
        })
    }

    pub fn may_use(&self, audience: &Audience) -> bool {
        self.audiences.as_ref().is_none_or(|a| a.contains(audience))
    }
}

/// The SHA-256 of an API key, as `key_sha256` in the config holds it.
pub fn key_sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendKind {
    Jwt,
    Forward,
}

/// A browser's signed-in user, proven by a frontend credential.
#[derive(Debug, Clone)]
pub struct Frontend {
    pub user: UserId,
    /// Claims taken from the credential (`copy_claims`, `claims_pointer`).
    pub claims: Map<String, Value>,
    pub kind: FrontendKind,
    audiences: Option<Arc<HashSet<Audience>>>,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Client(Arc<ApiClient>),
    Frontend(Frontend),
}

impl Caller {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        let allowed = match self {
            Caller::Client(c) => c.can.contains(&permission),
            // A signed-in user may mint tickets for themselves, nothing else.
            Caller::Frontend(_) => permission == Permission::Issue,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this caller lacks the {:?} permission",
                permission.as_str()
            )))
        }
    }

    /// May this caller mint or redeem tickets for `audience`?
    pub fn may_use(&self, audience: &Audience) -> bool {
        match self {
            Caller::Client(c) => c.may_use(audience),
            Caller::Frontend(f) => f.audiences.as_ref().is_none_or(|a| a.contains(audience)),
        }
    }

    /// For logs: which configured client or which frontend method, never a
    /// credential.
    pub fn name(&self) -> &str {
        match self {
            Caller::Client(c) => &c.name,
            Caller::Frontend(f) => match f.kind {
                FrontendKind::Jwt => "frontend-jwt",
                FrontendKind::Forward => "frontend-forward",
            },
        }
    }
}

/// Verifies credentials against the configuration.
#[derive(Default)]
pub struct Authenticator {
    clients: Vec<Arc<ApiClient>>,
    jwt: Option<Arc<JwtVerifier>>,
    forward: Option<Arc<ForwardAuth>>,
    metrics: Option<Arc<Metrics>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("clients", &self.clients.len())
            .field("jwt", &self.jwt.is_some())
            .field("forward", &self.forward.is_some())
            .finish()
    }
}

/// Three dot-separated base64url segments, the first two non-empty.
fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Authenticator {
    pub fn new(clients: Vec<ApiClient>) -> Self {
        Authenticator {
            clients: clients.into_iter().map(Arc::new).collect(),
            jwt: None,
            forward: None,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Count a refusal by a bounded reason, and pass the error on.
    fn refused(&self, reason: &'static str, error: ApiError) -> ApiError {
        if let Some(m) = &self.metrics {
            m.auth_failure(reason);
        }
        tracing::debug!(reason, code = error.code(), "authentication failed");
        error
    }

    pub fn with_jwt(mut self, jwt: Arc<JwtVerifier>) -> Self {
        self.jwt = Some(jwt);
        self
    }

    pub fn with_forward(mut self, forward: ForwardAuth) -> Self {
        self.forward = Some(Arc::new(forward));
        self
    }

    pub fn has_frontend_auth(&self) -> bool {
        self.jwt.is_some() || self.forward.is_some()
    }

    /// The SHA-256 of the presented key is compared, in constant time, with
    /// every configured client's; the loop does not stop at a match, so the
    /// time taken does not tell which entry (or whether any) matched.
    fn api_client(&self, key: &str) -> Option<Arc<ApiClient>> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for client in &self.clients {
            if bool::from(client.key_sha256.ct_eq(&presented)) {
                found = Some(client.clone());
            }
        }
        found
    }

    /// The API-key path alone (synchronous; used by `authenticate`).
    pub fn authenticate_key(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        let Some(credential) = bearer(req) else {
            return Err(self.refused("missing_credential", ApiError::Unauthenticated));
        };
        if !credential.starts_with(API_KEY_PREFIX) {
            return Err(self.refused("not_an_api_key", ApiError::Unauthenticated));
        }
        self.api_client(credential)
            .map(Caller::Client)
            .ok_or_else(|| self.refused("unknown_api_key", ApiError::Unauthenticated))
    }

    /// Route the credential to the check it belongs to. Everything the
    /// future needs is copied out of the request first.
    pub fn authenticate(
        self: Arc<Self>,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Caller, ApiError>> {
        let credential = bearer(req).map(str::to_owned);
        let has_cookie = req.headers().contains_key(header::COOKIE);
        let forwarded = self.forward.as_ref().map(|f| f.pick_headers(req.headers()));
        Box::pin(async move {
            match credential.as_deref() {
                Some(c) if c.starts_with(API_KEY_PREFIX) => self
                    .api_client(c)
                    .map(Caller::Client)
                    .ok_or_else(|| self.refused("unknown_api_key", ApiError::Unauthenticated)),
                Some(c) if looks_like_jwt(c) && self.jwt.is_some() => self.verify_jwt(c).await,
                _ if self.forward.is_some() && (credential.is_some() || has_cookie) => {
                    self.verify_forward(forwarded.unwrap_or_default()).await
                }
                None => Err(self.refused("missing_credential", ApiError::Unauthenticated)),
                Some(_) => Err(self.refused("unrecognised_credential", ApiError::Unauthenticated)),
            }
        })
    }

    async fn verify_jwt(&self, token: &str) -> Result<Caller, ApiError> {
        let Some(jwt) = &self.jwt else {
            return Err(ApiError::Unauthenticated);
        };
        match jwt.verify(token).await {
            Ok(u) => Ok(Caller::Frontend(Frontend {
                user: u.user,
                claims: u.claims,
                kind: FrontendKind::Jwt,
                audiences: jwt.audiences(),
            })),
            Err(e) => {
                tracing::info!(reason = e.reason(), "JWT refused");
                let reason = e.reason();
                Err(self.refused(reason, e.into()))
            }
        }
    }

    async fn verify_forward(&self, forwarded: Vec<(String, Vec<u8>)>) -> Result<Caller, ApiError> {
        let Some(fwd) = &self.forward else {
            return Err(ApiError::Unauthenticated);
        };
        match fwd.check(forwarded).await {
            Ok(u) => Ok(Caller::Frontend(Frontend {
                user: u.user,
                claims: u.claims,
                kind: FrontendKind::Forward,
                audiences: fwd.audiences(),
            })),
            Err(e) => {
                let reason = match &e {
                    forward::ForwardError::Denied => {
                        tracing::info!("forward auth refused the caller");
                        "forward_denied"
                    }
                    forward::ForwardError::Unavailable(why) => {
                        tracing::warn!(why = %why, "forward auth unavailable");
                        "forward_unavailable"
                    }
                };
                Err(self.refused(reason, e.into()))
            }
        }
    }
}

/// The credential of `Authorization: Bearer <credential>` (scheme name
/// case-insensitive, as RFC 9110 says).
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let credential = credential.trim();
    (!credential.is_empty()).then_some(credential)
}

/// A caller that proved itself with an API key and nothing else: the redeem
/// route's extractor. WebSocket servers never reach the JWT or forward-auth
/// paths (so their key is never forwarded anywhere).
#[derive(Debug, Clone)]
pub struct KeyCaller(pub Caller);

impl FromRequest for KeyCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(match req.app_data::<web::Data<Authenticator>>() {
            Some(auth) => auth.authenticate_key(req).map(KeyCaller),
            None => {
                tracing::error!("no Authenticator registered in the app");
                Err(ApiError::Internal)
            }
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        match req.app_data::<web::Data<Authenticator>>() {
            Some(auth) => auth.clone().into_inner().authenticate(req),
            None => {
                tracing::error!("no Authenticator registered in the app");
                Box::pin(async { Err(ApiError::Internal) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn client(name: &str, key: &str, can: &[Permission]) -> ApiClient {
        ApiClient::new(
            name.into(),
            &key_sha256_hex(key),
            can.iter().copied().collect(),
            None,
        )
        .unwrap()
    }

    const KEY_A: &str = "wsk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &str = "wsk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn auth() -> Authenticator {
        Authenticator::new(vec![
            client("a", KEY_A, &[Permission::Issue]),
            client("b", KEY_B, &[Permission::Redeem]),
        ])
    }

    fn with_header(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request()
    }

    #[test]
    fn finds_the_client_by_key_and_checks_permissions() {
        let caller = auth()
            .authenticate_key(&with_header(&format!("Bearer {KEY_B}")))
            .unwrap();
        assert_eq!(caller.name(), "b");
        assert!(caller.require(Permission::Redeem).is_ok());
        assert!(matches!(
            caller.require(Permission::Issue),
            Err(ApiError::Forbidden(_))
        ));
        let caller = auth()
            .authenticate_key(&with_header(&format!("bearer  {KEY_A}")))
            .unwrap();
        assert_eq!(caller.name(), "a");
    }

    #[test]
    fn refuses_missing_unknown_and_malformed_credentials() {
        let a = auth();
        assert!(
            a.authenticate_key(&TestRequest::default().to_http_request())
                .is_err()
        );
        for h in [
            "Bearer wsk_cccccccccccccccccccccccccccccccccccccccccccc".to_owned(),
            format!("Basic {KEY_A}"),
            format!("Bearer{KEY_A}"),
            "Bearer ".to_owned(),
            format!("Bearer {}", &KEY_A[4..]),
        ] {
            assert!(
                matches!(
                    a.authenticate_key(&with_header(&h)),
                    Err(ApiError::Unauthenticated)
                ),
                "{h}"
            );
        }
    }

    #[test]
    fn jwt_shape_is_three_base64url_segments() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("eyJh.eyJz"));
        assert!(!looks_like_jwt(".eyJz.c2ln"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("good-token"));
        assert!(!looks_like_jwt("a+b.c.d"));
    }

    #[test]
    fn key_hash_must_be_lower_case_hex() {
        let upper = key_sha256_hex(KEY_A).to_uppercase();
        assert!(ApiClient::new("x".into(), &upper, HashSet::new(), None).is_err());
        assert!(ApiClient::new("x".into(), "abc", HashSet::new(), None).is_err());
    }

    #[test]
    fn debug_output_has_no_key_hash() {
        let c = client("a", KEY_A, &[Permission::Issue]);
        assert!(!format!("{c:?}").contains(&key_sha256_hex(KEY_A)));
    }
}
