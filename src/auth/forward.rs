//! Frontend callers known to an existing app (`[auth.forward]`): wsticket asks
//! the app's own "who am I" endpoint, forwarding the caller's `Authorization`
//! and `Cookie` headers (and any others configured), and believes its answer.
//!
//! 2xx with JSON → the user at `user_pointer` (and claims at
//! `claims_pointer`); 401/403 → 401; a timeout, a connection failure, any other
//! status or an unusable answer → 503 `auth_unavailable` (fail closed).
//! Redirects are never followed and the answer is read up to 64 KiB.

use super::http::{describe, read_capped};
use super::{AuthError, Identity};
use crate::domain::{AudienceScope, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::time::Duration;

const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardMethod {
    Get,
    Post,
}

#[derive(Debug)]
pub(crate) struct ForwardSettings {
    /// May carry credentials, like every URL of the configuration.
    pub(crate) url: SecretString,
    pub(crate) method: ForwardMethod,
    /// Lower-case header names.
    pub(crate) forward_headers: Vec<String>,
    pub(crate) user_pointer: String,
    pub(crate) claims_pointer: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) audiences: AudienceScope,
}

pub(crate) struct ForwardAuth {
    settings: ForwardSettings,
    http: reqwest::Client,
}

/// The app's answer could not be used: logged with `why`, answered 503.
fn unavailable(why: &str) -> AuthError {
    tracing::warn!(why, "forward auth unavailable");
    AuthError::Unavailable("forward_unavailable")
}

fn denied() -> AuthError {
    tracing::info!("forward auth refused the caller");
    AuthError::Unauthenticated("forward_denied")
}

impl ForwardAuth {
    pub(crate) fn new(settings: ForwardSettings) -> Result<Self, String> {
        crate::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the forward-auth client: {e}"))?;
        Ok(ForwardAuth { settings, http })
    }

    pub(crate) fn forward_headers(&self) -> &[String] {
        &self.settings.forward_headers
    }

    /// Ask the app about the caller presenting `forwarded` (the headers named
    /// by [`forward_headers`](Self::forward_headers)).
    pub(crate) async fn check(
        &self,
        forwarded: Vec<(String, Vec<u8>)>,
    ) -> Result<Identity, AuthError> {
        let url = self.settings.url.expose_secret();
        let mut req = match self.settings.method {
            ForwardMethod::Get => self.http.get(url),
            ForwardMethod::Post => self.http.post(url),
        };
        for (name, value) in forwarded {
            req = req.header(name, value);
        }
        let res = req
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(denied());
        }
        if !status.is_success() {
            return Err(unavailable(&format!("answered {status}")));
        }
        let body = read_capped(res, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| unavailable(&e))?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|_| unavailable("the answer is not JSON"))?;
        let user = match answer.pointer(&self.settings.user_pointer) {
            // A 2xx that names nobody: an anonymous session.
            None | Some(Value::Null) => return Err(denied()),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(unavailable(
                    "the user id in the answer is neither a string nor a number",
                ));
            }
        };
        let user = UserId::parse(user)
            .map_err(|e| unavailable(&format!("the answer's user id is unusable: {e}")))?;
        let claims = match self
            .settings
            .claims_pointer
            .as_deref()
            .and_then(|p| answer.pointer(p))
        {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(unavailable(
                    "the claims in the answer are not a JSON object",
                ));
            }
        };
        Ok(Identity { user, claims })
    }
}
