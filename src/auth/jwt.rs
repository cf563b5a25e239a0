//! Frontend callers with a JWT (`[auth.jwt]`).
//!
//! Checks: the signature under a configured key, the algorithm against the
//! configured list *and* against the key's own family (an HMAC algorithm with
//! an RSA/EC key — the algorithm-confusion attack — never verifies), `exp`
//! (required) and `nbf` with leeway, `iss` and `aud` when configured.
//!
//! Keys come from an HMAC secret, a PEM public key, a JWKS file, or a JWKS URL
//! fetched at start, refreshed on a schedule and when a token names an
//! unknown `kid` — at most once per 30 s, so made-up kids cannot hammer the
//! identity provider.

use super::http::{describe, read_capped};
use super::{AuthError, Identity};
use crate::domain::{AudienceScope, UserId};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The default least time between two JWKS fetches triggered by unknown kids.
pub(crate) const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// While no key set could be loaded at all, retry this often at most.
const MIN_RETRY_UNLOADED: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

pub(crate) fn family(alg: Algorithm) -> Family {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
    }
}

/// `"RS256"` → `Algorithm::RS256`; `none` and unknown names are errors.
pub(crate) fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    if name.eq_ignore_ascii_case("none") {
        return Err("\"none\" is never accepted".into());
    }
    name.parse::<Algorithm>()
        .map_err(|_| format!("unknown algorithm {name:?}"))
}

#[derive(Clone)]
pub(crate) struct VerifyingKey {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({:?}, {:?})", self.kid, self.family)
    }
}

impl VerifyingKey {
    /// An HMAC secret (at least 32 bytes).
    pub(crate) fn hmac(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("an HMAC secret must be at least 32 bytes".into());
        }
        Ok(VerifyingKey {
            kid: None,
            family: Family::Hmac,
            key: DecodingKey::from_secret(secret),
        })
    }

    /// A PEM public key of the family the algorithms name.
    pub(crate) fn pem(pem: &[u8], family: Family) -> Result<Self, String> {
        let key = match family {
            Family::Rsa => DecodingKey::from_rsa_pem(pem),
            Family::Ec => DecodingKey::from_ec_pem(pem),
            Family::Ed => DecodingKey::from_ed_pem(pem),
            Family::Hmac => {
                return Err("an HMAC algorithm needs hs_secret, not a public key".into());
            }
        }
        .map_err(|e| format!("not a {family:?} public key in PEM: {e}"))?;
        Ok(VerifyingKey {
            kid: None,
            family,
            key,
        })
    }

    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            // Symmetric keys have no business in a published key set.
            AlgorithmParameters::OctetKey(_) => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(VerifyingKey {
            kid: jwk.common.key_id.clone(),
            family,
            key,
        })
    }
}

/// Does the token's header carry `crit` (with anything in it, or even an
/// empty list, which RFC 7515 forbids)? An unreadable header counts as one.
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return true;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    match serde_json::from_slice::<Map<String, Value>>(&bytes) {
        Ok(fields) => fields.contains_key("crit"),
        Err(_) => true,
    }
}

/// Parse a JWKS document; keys that are not usable signature keys are
/// skipped rather than failing the whole set.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("JWKS has no \"keys\" array")?;
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter_map(|k| VerifyingKey::from_jwk(&k))
        .collect())
}

#[derive(Debug)]
pub(crate) struct JwtSettings {
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) keys: KeySource,
    pub(crate) user_claim: String,
    pub(crate) copy_claims: Vec<String>,
    pub(crate) leeway_secs: u64,
    pub(crate) refresh_every: Duration,
    /// Least time between two fetches for unknown kids.
    pub(crate) min_refetch: Duration,
    /// Ticket audiences frontends may mint for.
    pub(crate) audiences: AudienceScope,
    /// `iss` and `aud` may go unchecked although the keys are a key set
    /// (the operator said so; start-up warns).
    pub(crate) insecure_skip_issuer_audience: bool,
}

#[derive(Debug)]
pub(crate) enum KeySource {
    Static(Vec<VerifyingKey>),
    /// May carry credentials, like every URL of the configuration.
    JwksUrl(SecretString),
}

#[derive(Default)]
struct KeySet {
    keys: Vec<VerifyingKey>,
    loaded: bool,
    last_fetch: Option<Instant>,
}

pub(crate) struct JwtVerifier {
    settings: JwtSettings,
    keys: RwLock<KeySet>,
    jwks_url: Option<SecretString>,
    http: reqwest::Client,
    fetch_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
enum JwtError {
    /// The token is not acceptable (401).
    Invalid(&'static str),
    /// The identity provider's keys could not be had (503).
    Unavailable,
}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Invalid(reason) => AuthError::Unauthenticated(reason),
            JwtError::Unavailable => AuthError::Unavailable("jwks_unavailable"),
        }
    }
}

impl JwtVerifier {
    pub(crate) fn new(settings: JwtSettings) -> Result<Arc<Self>, String> {
        crate::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            // A redirect could lead anywhere, https to http included: the
            // key set comes from the configured URL or not at all.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        let (keys, jwks_url) = match &settings.keys {
            KeySource::Static(k) => (
                KeySet {
                    keys: k.clone(),
                    loaded: true,
                    last_fetch: None,
                },
                None,
            ),
            KeySource::JwksUrl(u) => (KeySet::default(), Some(u.clone())),
        };
        Ok(Arc::new(JwtVerifier {
            settings,
            keys: RwLock::new(keys),
            jwks_url,
            http,
            fetch_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// Fetch the JWKS now (at start, and from the refresh task).
    pub(crate) async fn refresh(&self) -> Result<usize, String> {
        let Some(url) = &self.jwks_url else {
            return Ok(0);
        };
        let _guard = self.fetch_lock.lock().await;
        self.fetch_locked(url).await
    }

    async fn fetch_locked(&self, url: &SecretString) -> Result<usize, String> {
        self.write_keys().last_fetch = Some(Instant::now());
        let res = self
            .http
            .get(url.expose_secret())
            .send()
            .await
            .map_err(|e| format!("JWKS fetch failed: {}", describe(&e)))?;
        if !res.status().is_success() {
            return Err(format!("JWKS fetch answered {}", res.status()));
        }
        let body = read_capped(res, MAX_JWKS_BYTES).await?;
        let keys = parse_jwks(&body)?;
        let n = keys.len();
        let mut set = self.write_keys();
        set.keys = keys;
        set.loaded = true;
        Ok(n)
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, KeySet> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    fn find_key(&self, kid: Option<&str>, fam: Family) -> Result<Option<VerifyingKey>, JwtError> {
        let set = self.keys.read().unwrap_or_else(|e| e.into_inner());
        if !set.loaded {
            return Err(JwtError::Unavailable);
        }
        let candidates: Vec<&VerifyingKey> = set
            .keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            })
            .collect();
        // Without a kid, only an unambiguous key set is usable.
        match (kid, candidates.as_slice()) {
            (_, [one]) if one.family == fam => Ok(Some((*one).clone())),
            (_, [_]) => Err(JwtError::Invalid("jwt_algorithm_key_mismatch")),
            (Some(_), []) => Ok(None),
            (None, []) => Err(JwtError::Invalid("jwt_no_key")),
            (Some(_), _) => Err(JwtError::Invalid("jwt_ambiguous_kid")),
            (None, _) => {
                let same: Vec<_> = candidates.iter().filter(|k| k.family == fam).collect();
                match same.as_slice() {
                    [one] => Ok(Some((**one).clone())),
                    _ => Err(JwtError::Invalid("jwt_kid_required")),
                }
            }
        }
    }

    /// A key for `kid`, fetching the JWKS again when the kid is unknown (at
    /// most once per 30 s) or when no key set was ever loaded (at most once
    /// per 5 s).
    async fn key_for(&self, kid: Option<&str>, fam: Family) -> Result<VerifyingKey, JwtError> {
        match self.find_key(kid, fam) {
            Ok(Some(k)) => return Ok(k),
            Ok(None) | Err(JwtError::Unavailable) => {}
            Err(e) => return Err(e),
        }
        let Some(url) = &self.jwks_url else {
            return Err(JwtError::Invalid("jwt_unknown_kid"));
        };
        let _guard = self.fetch_lock.lock().await;
        // Someone else may have fetched while we waited.
        match self.find_key(kid, fam) {
            Ok(Some(k)) => return Ok(k),
            Ok(None) | Err(JwtError::Unavailable) => {}
            Err(e) => return Err(e),
        }
        let (loaded, last) = {
            let set = self.keys.read().unwrap_or_else(|e| e.into_inner());
            (set.loaded, set.last_fetch)
        };
        let min = if loaded {
            self.settings.min_refetch
        } else {
            MIN_RETRY_UNLOADED.min(self.settings.min_refetch)
        };
        if last.is_some_and(|t| t.elapsed() < min) {
            return Err(if loaded {
                JwtError::Invalid("jwt_unknown_kid")
            } else {
                JwtError::Unavailable
            });
        }
        if let Err(e) = self.fetch_locked(url).await {
            tracing::warn!(error = %e, "JWKS fetch failed");
            return Err(JwtError::Unavailable);
        }
        self.find_key(kid, fam)?
            .ok_or(JwtError::Invalid("jwt_unknown_kid"))
    }

    /// Verify a bearer JWT; a refusal is logged with its bounded reason.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.check(token).await.map_err(|e| {
            let e = AuthError::from(e);
            match e {
                AuthError::Unauthenticated(reason) => tracing::info!(reason, "JWT refused"),
                AuthError::Unavailable(reason) => {
                    tracing::warn!(
                        reason,
                        "JWT not verifiable: the identity provider's keys are unavailable"
                    )
                }
            }
            e
        })
    }

    async fn check(&self, token: &str) -> Result<Identity, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| JwtError::Invalid("jwt_malformed"))?;
        if names_critical_extensions(token) {
            // RFC 7515 4.1.11: extensions the recipient must understand;
            // wsticket understands none.
            return Err(JwtError::Invalid("jwt_crit"));
        }
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(JwtError::Invalid("jwt_algorithm_not_allowed"));
        }
        let fam = family(header.alg);
        let key = self.key_for(header.kid.as_deref(), fam).await?;
        if key.family != fam {
            return Err(JwtError::Invalid("jwt_algorithm_key_mismatch"));
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.settings.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.settings.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.settings.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind::*;
                JwtError::Invalid(match e.kind() {
                    ExpiredSignature => "jwt_expired",
                    ImmatureSignature => "jwt_not_yet_valid",
                    InvalidIssuer => "jwt_issuer",
                    InvalidAudience => "jwt_audience",
                    InvalidSignature => "jwt_signature",
                    InvalidAlgorithm => "jwt_algorithm_key_mismatch",
                    MissingRequiredClaim(_) => "jwt_missing_claim",
                    _ => "jwt_malformed",
                })
            })?;
        let claims = data.claims;
        // jsonwebtoken skips an `nbf` it cannot read as a number (and calls
        // an unreadable `exp` missing): both must be JSON numbers.
        for name in ["exp", "nbf"] {
            if claims.get(name).is_some_and(|v| !v.is_number()) {
                return Err(JwtError::Invalid("jwt_claim_type"));
            }
        }
        let user = match claims.get(&self.settings.user_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(JwtError::Invalid("jwt_no_user_claim")),
        };
        let user = UserId::parse(user).map_err(|_| JwtError::Invalid("jwt_bad_user_claim"))?;
        let copied = self
            .settings
            .copy_claims
            .iter()
            .filter_map(|name| claims.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        Ok(Identity {
            user,
            claims: copied,
        })
    }

    /// Refresh the JWKS every `refresh_every` while the process runs.
    pub(crate) fn spawn_refresh(self: &Arc<Self>) {
        if self.jwks_url.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        let every = self.settings.refresh_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(v) = weak.upgrade() else { return };
                match v.refresh().await {
                    Ok(n) => tracing::debug!(keys = n, "JWKS refreshed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "scheduled JWKS refresh failed; keeping the old keys")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const RSA_PUB: &str = include_str!("../../tests/fixtures/jwt/rsa1.pub.pem");

    fn verifier(algorithms: Vec<Algorithm>, keys: Vec<VerifyingKey>) -> Arc<JwtVerifier> {
        JwtVerifier::new(JwtSettings {
            issuer: None,
            audience: None,
            algorithms,
            keys: KeySource::Static(keys),
            user_claim: "sub".into(),
            copy_claims: vec![],
            leeway_secs: 0,
            refresh_every: Duration::from_secs(300),
            min_refetch: MIN_REFETCH_INTERVAL,
            audiences: AudienceScope::All,
            insecure_skip_issuer_audience: false,
        })
        .unwrap()
    }

    fn exp() -> u64 {
        jsonwebtoken::get_current_timestamp() + 60
    }

    /// Even if a configuration listed HS256 beside an RSA key (the config
    /// refuses that), an HMAC token keyed with the public key never verifies.
    #[tokio::test]
    async fn hmac_with_an_rsa_public_key_is_refused_at_the_key() {
        let rsa = VerifyingKey::pem(RSA_PUB.as_bytes(), Family::Rsa).unwrap();
        let v = verifier(vec![Algorithm::HS256, Algorithm::RS256], vec![rsa]);
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "admin", "exp": exp()}),
            &EncodingKey::from_secret(RSA_PUB.as_bytes()),
        )
        .unwrap();
        match v.verify(&forged).await {
            Err(AuthError::Unauthenticated(reason)) => {
                assert_eq!(reason, "jwt_algorithm_key_mismatch")
            }
            other => panic!("forged token accepted or wrong error: {:?}", other.err()),
        }
    }

    #[test]
    fn none_and_unknown_algorithms_do_not_parse() {
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("NONE").is_err());
        assert!(parse_algorithm("HS1").is_err());
        assert_eq!(parse_algorithm("ES256").unwrap(), Algorithm::ES256);
    }

    #[test]
    fn short_hmac_secrets_and_wrong_pem_families_are_refused() {
        assert!(VerifyingKey::hmac(b"short").is_err());
        assert!(VerifyingKey::pem(RSA_PUB.as_bytes(), Family::Ec).is_err());
        assert!(VerifyingKey::pem(RSA_PUB.as_bytes(), Family::Hmac).is_err());
    }

    #[test]
    fn jwks_parsing_skips_encryption_and_symmetric_keys() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "sig", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("sig"));
        assert!(parse_jwks(b"{}").is_err());
    }
}
