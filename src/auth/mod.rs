//! Who is calling. A caller is a configured API client (trusted backends,
//! WebSocket servers) or a frontend user proven by a JWT or by the app's own
//! session (forward auth). The core asks a caller what it may do and does not
//! care how it proved who it is.
//!
//! Which check a credential gets (docs/contract.md, "Callers"):
//!
//! * `Authorization: Bearer wsk_…` is an API key;
//! * a `Bearer` credential shaped like a JWT goes to `[auth.jwt]` when it is
//!   configured;
//! * any other `Authorization` value (e.g. `Token <key>` of Django REST
//!   framework, or a Bearer that is not a JWT), or cookies alone, go to
//!   `[auth.forward]` when it is configured;
//! * anything else is refused. A credential that starts with `wsk_` under
//!   another scheme is refused too: an API key is never forwarded anywhere.
//!
//! Nothing here knows HTTP frameworks: `routes::extract` copies what is
//! needed out of a request into [`Credentials`].

pub(crate) mod forward;
mod http;
pub(crate) mod jwt;

use crate::domain::{Audience, AudienceScope, UserId};
use crate::metrics::Metrics;
use forward::ForwardAuth;
use jwt::JwtVerifier;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub(crate) const API_KEY_PREFIX: &str = "wsk_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Permission {
    Issue,
    Redeem,
    Revoke,
}

impl Permission {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
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
pub(crate) struct ApiClient {
    pub(crate) name: String,
    key_sha256: [u8; 32],
    can: HashSet<Permission>,
    audiences: AudienceScope,
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
    pub(crate) fn new(
        name: String,
        key_sha256_hex: &str,
        can: HashSet<Permission>,
        audiences: AudienceScope,
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

    pub(crate) fn can(&self, permission: Permission) -> bool {
        self.can.contains(&permission)
    }

    pub(crate) fn audiences(&self) -> &AudienceScope {
        &self.audiences
    }
}

/// The SHA-256 of an API key, as `key_sha256` in the config holds it.
pub fn key_sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// What a frontend credential proved: who the user is, and the claims taken
/// from the credential (`copy_claims`, `claims_pointer`).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) user: UserId,
    pub(crate) claims: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontendKind {
    Jwt,
    Forward,
}

/// A browser's signed-in user, proven by a frontend credential.
#[derive(Debug, Clone)]
pub(crate) struct FrontendUser {
    pub(crate) identity: Identity,
    kind: FrontendKind,
    audiences: AudienceScope,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Client(Arc<ApiClient>),
    Frontend(FrontendUser),
}

/// A caller tried something its permissions do not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this caller lacks the {:?} permission", .0.as_str())]
pub(crate) struct NotPermitted(Permission);

impl Caller {
    pub(crate) fn require(&self, permission: Permission) -> Result<(), NotPermitted> {
        let allowed = match self {
            Caller::Client(c) => c.can(permission),
            // A signed-in user may mint tickets for themselves, nothing else.
            Caller::Frontend(_) => permission == Permission::Issue,
        };
        if allowed {
            Ok(())
        } else {
            Err(NotPermitted(permission))
        }
    }

    /// May this caller mint or redeem tickets for `audience`?
    pub(crate) fn may_use(&self, audience: &Audience) -> bool {
        match self {
            Caller::Client(c) => c.audiences.allows(audience),
            Caller::Frontend(f) => f.audiences.allows(audience),
        }
    }

    /// For logs: which configured client or which frontend method, never a
    /// credential.
    pub(crate) fn name(&self) -> &str {
        match self {
            Caller::Client(c) => &c.name,
            Caller::Frontend(f) => match f.kind {
                FrontendKind::Jwt => "frontend-jwt",
                FrontendKind::Forward => "frontend-forward",
            },
        }
    }
}

/// Why authentication failed. The reason is a bounded label for metrics and
/// logs, never the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No usable credential (401).
    #[error("unauthenticated ({0})")]
    Unauthenticated(&'static str),
    /// The identity provider or the forward-auth endpoint could not be
    /// asked or gave no usable answer (503).
    #[error("authentication unavailable ({0})")]
    Unavailable(&'static str),
}

impl AuthError {
    fn reason(self) -> &'static str {
        match self {
            AuthError::Unauthenticated(r) | AuthError::Unavailable(r) => r,
        }
    }
}

/// What a request presents, copied out of it by the HTTP layer.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    /// The whole `Authorization` value, when it is visible ASCII.
    pub(crate) authorization: Option<String>,
    pub(crate) has_cookie: bool,
    /// The headers `[auth.forward]` forwards (see
    /// [`Authenticator::forward_headers`]), as presented.
    pub(crate) forwarded: Vec<(String, Vec<u8>)>,
}

/// What the `Authorization` value is, by the rules of the module doc.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
    /// Anything else, for forward auth to judge.
    Other,
    /// An API key under another scheme than Bearer: refused, not forwarded.
    MisplacedKey,
    None,
}

fn presented(authorization: Option<&str>) -> Presented<'_> {
    let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
        return Presented::None;
    };
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    let credential = credential.trim();
    let bearer = scheme.eq_ignore_ascii_case("bearer");
    if bearer && credential.is_empty() {
        return Presented::None;
    }
    if bearer && credential.starts_with(API_KEY_PREFIX) {
        return Presented::ApiKey(credential);
    }
    if value.contains(API_KEY_PREFIX) {
        // An API key in any other form (no scheme, another scheme): never
        // passed on to forward auth.
        return Presented::MisplacedKey;
    }
    if bearer && looks_like_jwt(credential) {
        return Presented::Jwt(credential);
    }
    Presented::Other
}

/// Where a credential goes.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
    Forward,
    /// Refused, with the reason for the metric.
    Refuse(&'static str),
}

/// Three dot-separated base64url segments, the first two non-empty.
pub(crate) fn looks_like_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(p), Some(_), None) if !h.is_empty() && !p.is_empty()
    ) && s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Verifies credentials against the configuration.
pub(crate) struct Authenticator {
    clients: Vec<Arc<ApiClient>>,
    jwt: Option<(Arc<JwtVerifier>, AudienceScope)>,
    forward: Option<(ForwardAuth, AudienceScope)>,
    metrics: Arc<Metrics>,
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

impl Authenticator {
    pub(crate) fn new(clients: Vec<ApiClient>, metrics: Arc<Metrics>) -> Self {
        Authenticator {
            clients: clients.into_iter().map(Arc::new).collect(),
            jwt: None,
            forward: None,
            metrics,
        }
    }

    pub(crate) fn with_jwt(mut self, jwt: Arc<JwtVerifier>, audiences: AudienceScope) -> Self {
        self.jwt = Some((jwt, audiences));
        self
    }

    pub(crate) fn with_forward(mut self, forward: ForwardAuth, audiences: AudienceScope) -> Self {
        self.forward = Some((forward, audiences));
        self
    }

    /// The lower-case names of the headers forward auth passes on (none
    /// without `[auth.forward]`).
    pub(crate) fn forward_headers(&self) -> &[String] {
        self.forward
            .as_ref()
            .map_or(&[], |(f, _)| f.forward_headers())
    }

    /// Count a refusal by its bounded reason, and pass it on.
    fn refused(&self, error: AuthError) -> AuthError {
        self.metrics.auth_failure(error.reason());
        tracing::debug!(reason = error.reason(), "authentication failed");
        error
    }

    /// The SHA-256 of the presented key is compared, in constant time, with
    /// every configured client's; the loop does not stop at a match, so the
    /// time taken does not tell which entry (or whether any) matched.
    fn api_client(&self, key: &str) -> Result<Caller, AuthError> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for client in &self.clients {
            if bool::from(client.key_sha256.ct_eq(&presented)) {
                found = Some(client.clone());
            }
        }
        found
            .map(Caller::Client)
            .ok_or_else(|| self.refused(AuthError::Unauthenticated("unknown_api_key")))
    }

    /// A bare API key, as a gateway presents it in its own header (the
    /// `Authorization` a gateway passes on is the browser's).
    pub(crate) fn authenticate_bare_key(&self, key: Option<&str>) -> Result<Caller, AuthError> {
        match key.map(str::trim) {
            Some(k) if k.starts_with(API_KEY_PREFIX) => self.api_client(k),
            Some(_) => Err(self.refused(AuthError::Unauthenticated("not_an_api_key"))),
            None => Err(self.refused(AuthError::Unauthenticated("missing_credential"))),
        }
    }

    /// An API key and nothing else (the redeem route: WebSocket servers never
    /// reach the frontend paths, so their key is never forwarded anywhere).
    pub(crate) fn authenticate_key(
        &self,
        authorization: Option<&str>,
    ) -> Result<Caller, AuthError> {
        match presented(authorization) {
            Presented::ApiKey(key) => self.api_client(key),
            Presented::None => Err(self.refused(AuthError::Unauthenticated("missing_credential"))),
            _ => Err(self.refused(AuthError::Unauthenticated("not_an_api_key"))),
        }
    }

    /// Which check `creds` get (the rules of the module doc).
    fn route<'a>(&self, creds: &'a Credentials) -> Route<'a> {
        let presented = presented(creds.authorization.as_deref());
        match presented {
            Presented::ApiKey(key) => return Route::ApiKey(key),
            Presented::MisplacedKey => return Route::Refuse("misplaced_api_key"),
            Presented::Jwt(token) if self.jwt.is_some() => return Route::Jwt(token),
            Presented::None if !creds.has_cookie => return Route::Refuse("missing_credential"),
            Presented::Jwt(_) | Presented::None | Presented::Other => {}
        }
        match (&self.forward, presented) {
            (Some(_), _) => Route::Forward,
            (None, Presented::None) => Route::Refuse("missing_credential"),
            (None, _) => Route::Refuse("unrecognised_credential"),
        }
    }

    /// Would `creds` be checked by a frontend method (JWT, forward auth)? A
    /// door checks what a browser request must satisfy anyway (its Origin)
    /// before asking, so that a cross-site request costs no verification and
    /// no call to the app.
    pub(crate) fn is_frontend(&self, creds: &Credentials) -> bool {
        matches!(self.route(creds), Route::Jwt(_) | Route::Forward)
    }

    /// Any caller: route the credential to the check it belongs to.
    pub(crate) async fn authenticate(&self, creds: Credentials) -> Result<Caller, AuthError> {
        match self.route(&creds) {
            Route::ApiKey(key) => self.api_client(key),
            Route::Refuse(reason) => Err(self.refused(AuthError::Unauthenticated(reason))),
            Route::Jwt(token) => {
                let Some((jwt, scope)) = &self.jwt else {
                    return Err(self.refused(AuthError::Unauthenticated("unrecognised_credential")));
                };
                let verified = jwt.verify(token).await;
                self.frontend(FrontendKind::Jwt, scope, verified)
            }
            Route::Forward => {
                let Some((fwd, scope)) = &self.forward else {
                    return Err(self.refused(AuthError::Unauthenticated("unrecognised_credential")));
                };
                let verified = fwd.check(creds.forwarded).await;
                self.frontend(FrontendKind::Forward, scope, verified)
            }
        }
    }

    /// The one path from a frontend method's verdict to a caller.
    fn frontend(
        &self,
        kind: FrontendKind,
        scope: &AudienceScope,
        verified: Result<Identity, AuthError>,
    ) -> Result<Caller, AuthError> {
        match verified {
            Ok(identity) => Ok(Caller::Frontend(FrontendUser {
                identity,
                kind,
                audiences: scope.clone(),
            })),
            Err(e) => Err(self.refused(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, key: &str, can: &[Permission]) -> ApiClient {
        ApiClient::new(
            name.into(),
            &key_sha256_hex(key),
            can.iter().copied().collect(),
            AudienceScope::All,
        )
        .unwrap()
    }

    const KEY_A: &str = "wsk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &str = "wsk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn auth() -> Authenticator {
        Authenticator::new(
            vec![
                client("a", KEY_A, &[Permission::Issue]),
                client("b", KEY_B, &[Permission::Redeem]),
            ],
            Arc::new(Metrics::new(&[]).unwrap()),
        )
    }

    #[test]
    fn finds_the_client_by_key_and_checks_permissions() {
        let caller = auth()
            .authenticate_key(Some(&format!("Bearer {KEY_B}")))
            .unwrap();
        assert_eq!(caller.name(), "b");
        assert!(caller.require(Permission::Redeem).is_ok());
        assert_eq!(
            caller.require(Permission::Issue),
            Err(NotPermitted(Permission::Issue))
        );
        let caller = auth()
            .authenticate_key(Some(&format!("bearer  {KEY_A}")))
            .unwrap();
        assert_eq!(caller.name(), "a");
    }

    #[test]
    fn refuses_missing_unknown_and_malformed_credentials() {
        let a = auth();
        assert!(a.authenticate_key(None).is_err());
        for h in [
            "Bearer wsk_cccccccccccccccccccccccccccccccccccccccccccc".to_owned(),
            format!("Basic {KEY_A}"),
            format!("Bearer{KEY_A}"),
            "Bearer ".to_owned(),
            format!("Bearer {}", &KEY_A[4..]),
        ] {
            assert!(
                matches!(
                    a.authenticate_key(Some(&h)),
                    Err(AuthError::Unauthenticated(_))
                ),
                "{h}"
            );
        }
    }

    #[test]
    fn credentials_are_routed_by_scheme_and_shape() {
        assert_eq!(presented(Some("Bearer wsk_x")), Presented::ApiKey("wsk_x"));
        assert_eq!(presented(Some("bearer  a.b.c")), Presented::Jwt("a.b.c"));
        assert_eq!(presented(Some("Bearer good-token")), Presented::Other);
        assert_eq!(presented(Some("Token 9944b09199c6")), Presented::Other);
        assert_eq!(presented(Some("Basic dXNlcjpwYXNz")), Presented::Other);
        // A JWT under another scheme is not a bearer JWT.
        assert_eq!(presented(Some("Token a.b.c")), Presented::Other);
        assert_eq!(presented(Some("Token wsk_x")), Presented::MisplacedKey);
        assert_eq!(presented(Some("wsk_x")), Presented::MisplacedKey);
        assert_eq!(presented(Some("Token  x wsk_y")), Presented::MisplacedKey);
        assert_eq!(presented(Some("  ")), Presented::None);
        assert_eq!(presented(Some("Bearer \t")), Presented::None);
        assert_eq!(presented(None), Presented::None);
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
        let none = || HashSet::new();
        assert!(ApiClient::new("x".into(), &upper, none(), AudienceScope::All).is_err());
        assert!(ApiClient::new("x".into(), "abc", none(), AudienceScope::All).is_err());
    }

    #[test]
    fn debug_output_has_no_key_hash() {
        let c = client("a", KEY_A, &[Permission::Issue]);
        assert!(!format!("{c:?}").contains(&key_sha256_hex(KEY_A)));
    }
}
