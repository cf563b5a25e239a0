//! The ticket policy (`[tickets]`): which origins, audiences, lifetimes and
//! claims a ticket may have, and which secrets mint and open tickets.

use super::MintError;
use crate::auth::Caller;
use crate::crypto::Keyring;
use crate::domain::{Audience, Claims, Origin, OriginAllowlist, OriginError};

/// The hard upper bound of `tickets.max_ttl_secs`.
pub(crate) const MAX_TTL_LIMIT_SECS: u64 = 3600;

#[derive(Debug, Clone)]
pub(crate) struct TicketPolicy {
    pub(crate) default_ttl_secs: u64,
    pub(crate) max_ttl_secs: u64,
    pub(crate) allowed_origins: OriginAllowlist,
    pub(crate) audiences: Vec<Audience>,
    pub(crate) default_audience: Audience,
    pub(crate) max_claims_bytes: usize,
    pub(crate) allow_originless: bool,
    pub(crate) keyring: Keyring,
    pub(crate) on_reuse: OnReuse,
    /// `tickets.bind_ip`: bind tickets to the client address unless the
    /// mint says otherwise.
    pub(crate) bind_ip: bool,
}

/// Why an audience named in a request cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudienceRefused {
    Malformed(&'static str),
    /// Not one of `tickets.audiences`.
    Unknown,
    /// Configured, but not for this caller.
    NotPermitted,
}

impl AudienceRefused {
    pub(crate) fn detail(self) -> &'static str {
        match self {
            AudienceRefused::Malformed(e) => e,
            AudienceRefused::Unknown => "the audience is not one of tickets.audiences",
            AudienceRefused::NotPermitted => "this client may not use that audience",
        }
    }
}

/// `tickets.on_reuse`: what a reused ticket (a likely leak) does besides
/// being refused, logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OnReuse {
    /// Nothing more (and a `ticket_reused` event).
    #[default]
    Report,
    /// Revoke every outstanding ticket of the ticket's user.
    RevokeUser,
}

impl OnReuse {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "report" => Ok(OnReuse::Report),
            "revoke_user" => Ok(OnReuse::RevokeUser),
            other => Err(format!(
                "unknown value {other:?} (expected \"report\" or \"revoke_user\")"
            )),
        }
    }
}

impl TicketPolicy {
    /// An origin a ticket may be minted for: well-formed and allowed. The
    /// usual case, a canonical origin that is an exact entry, needs no parse.
    pub(crate) fn mint_origin(&self, raw: &str) -> Result<Origin, MintError> {
        if let Some(origin) = self.allowed_origins.exact_entry(raw) {
            return Ok(origin.clone());
        }
        let origin = Origin::parse(raw).map_err(|e| match e {
            OriginError::Opaque => MintError::OriginNotAllowed,
            OriginError::Malformed(_) => MintError::Invalid(e.to_string().into()),
        })?;
        if !self.allowed_origins.allows(&origin) {
            return Err(MintError::OriginNotAllowed);
        }
        Ok(origin)
    }

    /// Is `raw` (an `Origin` header) an allowed origin? For CORS.
    pub(crate) fn allows_origin(&self, raw: &str) -> bool {
        self.allowed_origins.exact_entry(raw).is_some()
            || Origin::parse(raw).is_ok_and(|o| self.allowed_origins.allows(&o))
    }

    /// The origin a ticket was bound to, as a value: `canonical` was written
    /// by [`mint_origin`](Self::mint_origin), so the allowlist usually holds
    /// it already.
    pub(crate) fn bound_origin(&self, canonical: &str) -> Option<Origin> {
        match self.allowed_origins.exact_entry(canonical) {
            Some(o) => Some(o.clone()),
            None => Origin::parse(canonical).ok(),
        }
    }

    /// The requested audience (or the default), if it is configured and the
    /// caller may use it.
    pub(crate) fn audience(
        &self,
        requested: Option<&str>,
        caller: &Caller,
    ) -> Result<Audience, MintError> {
        let refused = |r: AudienceRefused| match r {
            AudienceRefused::Malformed(e) => MintError::Invalid(e.into()),
            AudienceRefused::Unknown => MintError::Forbidden(r.detail().into()),
            AudienceRefused::NotPermitted => {
                MintError::Forbidden("this client may not mint tickets for that audience".into())
            }
        };
        match requested {
            Some(a) => self.usable_audience(a, caller).map_err(refused),
            None => self
                .permitted(self.default_audience.clone(), caller)
                .map_err(refused),
        }
    }

    /// `raw`, if it is a configured audience the caller may use.
    pub(crate) fn usable_audience(
        &self,
        raw: &str,
        caller: &Caller,
    ) -> Result<Audience, AudienceRefused> {
        let audience = Audience::parse(raw).map_err(AudienceRefused::Malformed)?;
        self.permitted(audience, caller)
    }

    fn permitted(&self, audience: Audience, caller: &Caller) -> Result<Audience, AudienceRefused> {
        if !self.audiences.contains(&audience) {
            Err(AudienceRefused::Unknown)
        } else if !caller.may_use(&audience) {
            Err(AudienceRefused::NotPermitted)
        } else {
            Ok(audience)
        }
    }

    /// The audience a ticket was bound to, as a value (usually a configured
    /// one; one removed from the configuration since still parses).
    pub(crate) fn bound_audience(&self, name: &str) -> Option<Audience> {
        match self.audiences.iter().find(|a| a.as_ref() == name) {
            Some(a) => Some(a.clone()),
            None => Audience::parse(name).ok(),
        }
    }

    pub(crate) fn ttl_secs(&self, requested: Option<u64>) -> Result<u64, MintError> {
        let ttl = requested.unwrap_or(self.default_ttl_secs);
        if (1..=self.max_ttl_secs).contains(&ttl) {
            Ok(ttl)
        } else {
            Err(MintError::Invalid(
                format!("ttl_secs must be between 1 and {}", self.max_ttl_secs).into(),
            ))
        }
    }

    pub(crate) fn check_claims(&self, claims: &Claims) -> Result<(), MintError> {
        if claims.len() > self.max_claims_bytes {
            return Err(MintError::Invalid(
                format!(
                    "claims are limited to {} serialised bytes",
                    self.max_claims_bytes
                )
                .into(),
            ));
        }
        Ok(())
    }
}
