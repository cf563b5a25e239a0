//! Who is calling. A handler names the caller it accepts in its signature
//! (`Caller` is an actix extractor), and the extractor turns the
//! `Authorization` header into a verified identity or a 401.
//!
//! Today a caller is a configured API client. Frontend credentials (JWT,
//! forward auth) become further `Caller` variants produced by further
//! [`Authenticator`] methods; handlers ask the caller what it may do and do
//! not care how it proved who it is.

use crate::domain::Audience;
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::future::{Ready, ready};
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

/// A verified caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Client(Arc<ApiClient>),
}

impl Caller {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        match self {
            Caller::Client(c) if c.can.contains(&permission) => Ok(()),
            Caller::Client(_) => Err(ApiError::forbidden(format!(
                "this client lacks the {:?} permission",
                permission.as_str()
            ))),
        }
    }

    /// May this caller mint or redeem tickets for `audience`?
    pub fn may_use(&self, audience: &Audience) -> bool {
        match self {
            Caller::Client(c) => c.may_use(audience),
        }
    }

    /// For logs: which configured client, never a credential.
    pub fn name(&self) -> &str {
        match self {
            Caller::Client(c) => &c.name,
        }
    }
}

/// Verifies credentials against the configuration.
#[derive(Debug, Default)]
pub struct Authenticator {
    clients: Vec<Arc<ApiClient>>,
}

impl Authenticator {
    pub fn new(clients: Vec<ApiClient>) -> Self {
        Authenticator {
            clients: clients.into_iter().map(Arc::new).collect(),
        }
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

    pub fn authenticate(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        let credential = bearer(req).ok_or(ApiError::Unauthenticated)?;
        if credential.starts_with(API_KEY_PREFIX) {
            return self
                .api_client(credential)
                .map(Caller::Client)
                .ok_or(ApiError::Unauthenticated);
        }
        Err(ApiError::Unauthenticated)
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<Authenticator>>() {
            Some(auth) => auth.authenticate(req),
            None => {
                tracing::error!("no Authenticator registered in the app");
                Err(ApiError::Internal)
            }
        };
        ready(result)
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
            .authenticate(&with_header(&format!("Bearer {KEY_B}")))
            .unwrap();
        assert_eq!(caller.name(), "b");
        assert!(caller.require(Permission::Redeem).is_ok());
        assert!(matches!(
            caller.require(Permission::Issue),
            Err(ApiError::Forbidden(_))
        ));
        let caller = auth()
            .authenticate(&with_header(&format!("bearer  {KEY_A}")))
            .unwrap();
        assert_eq!(caller.name(), "a");
    }

    #[test]
    fn refuses_missing_unknown_and_malformed_credentials() {
        let a = auth();
        assert!(
            a.authenticate(&TestRequest::default().to_http_request())
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
                    a.authenticate(&with_header(&h)),
                    Err(ApiError::Unauthenticated)
                ),
                "{h}"
            );
        }
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
