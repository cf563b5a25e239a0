//! Frontend callers known to an existing app (`[auth.forward]`): wsticket asks
//! the app's own "who am I" endpoint, forwarding the caller's `Authorization`
//! and `Cookie` headers (and any others configured), and believes its answer.
//!
//! 2xx with JSON → the user at `user_pointer` (and claims at
//! `claims_pointer`); 401/403 → 401; a timeout, a connection failure, any other
//! status or an unusable answer → 503 `auth_unavailable` (fail closed).
//! Redirects are never followed and the answer is read up to 64 KiB.

use super::http::{describe, read_capped};
use crate::domain::{Audience, UserId};
use crate::error::ApiError;
use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMethod {
    Get,
    Post,
}

pub struct ForwardSettings {
    pub url: String,
    pub method: ForwardMethod,
    /// Lower-case header names.
    pub forward_headers: Vec<String>,
    pub user_pointer: String,
    pub claims_pointer: Option<String>,
    pub timeout: Duration,
    pub audiences: Option<std::sync::Arc<HashSet<Audience>>>,
}

impl fmt::Debug for ForwardSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry credentials.
        f.debug_struct("ForwardSettings")
            .field("method", &self.method)
            .field("forward_headers", &self.forward_headers)
            .field("user_pointer", &self.user_pointer)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub struct ForwardUser {
    pub user: UserId,
    pub claims: Map<String, Value>,
}

#[derive(Debug)]
pub enum ForwardError {
    /// The app said no (401).
    Denied,
    /// The app could not be asked or gave no usable answer (503).
    Unavailable(String),
}

impl From<ForwardError> for ApiError {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::Denied => ApiError::Unauthenticated,
            ForwardError::Unavailable(_) => ApiError::AuthUnavailable,
        }
    }
}

pub struct ForwardAuth {
    settings: ForwardSettings,
    http: reqwest::Client,
}

impl ForwardAuth {
    pub fn new(settings: ForwardSettings) -> Result<Self, String> {
        crate::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the forward-auth client: {e}"))?;
        Ok(ForwardAuth { settings, http })
    }

    pub fn audiences(&self) -> Option<std::sync::Arc<HashSet<Audience>>> {
        self.settings.audiences.clone()
    }

    /// The headers to forward, copied out of the request.
    pub fn pick_headers(&self, headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        self.settings
            .forward_headers
            .iter()
            .flat_map(|name| {
                headers
                    .get_all(name.as_str())
                    .map(move |v| (name.clone(), v.as_bytes().to_vec()))
            })
            .collect()
    }

    pub async fn check(
        &self,
        forwarded: Vec<(String, Vec<u8>)>,
    ) -> Result<ForwardUser, ForwardError> {
        let mut req = match self.settings.method {
            ForwardMethod::Get => self.http.get(&self.settings.url),
            ForwardMethod::Post => self.http.post(&self.settings.url),
        };
        for (name, value) in forwarded {
            req = req.header(name, value);
        }
        let res = req
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ForwardError::Unavailable(describe(&e).to_owned()))?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ForwardError::Denied);
        }
        if !status.is_success() {
            return Err(ForwardError::Unavailable(format!("answered {status}")));
        }
        let body = read_capped(res, MAX_ANSWER_BYTES)
            .await
            .map_err(ForwardError::Unavailable)?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| ForwardError::Unavailable("the answer is not JSON".into()))?;
        let user = match answer.pointer(&self.settings.user_pointer) {
            // A 2xx that names nobody: an anonymous session.
            None | Some(Value::Null) => return Err(ForwardError::Denied),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(ForwardError::Unavailable(
                    "the user id in the answer is neither a string nor a number".into(),
                ));
            }
        };
        let user = UserId::parse(user).map_err(|e| {
            ForwardError::Unavailable(format!("the answer's user id is unusable: {e}"))
        })?;
        let claims = match self
            .settings
            .claims_pointer
            .as_deref()
            .and_then(|p| answer.pointer(p))
        {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(ForwardError::Unavailable(
                    "the claims in the answer are not a JSON object".into(),
                ));
            }
        };
        Ok(ForwardUser { user, claims })
    }
}
