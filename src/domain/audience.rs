use std::collections::HashSet;
use std::sync::Arc;

/// Which WebSocket service may redeem a ticket: 1–64 characters of
/// `[A-Za-z0-9._:-]`. Whether it is one of the configured audiences is the
/// policy's business, not the parser's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience(String);

impl Audience {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
            return Err("audience must be 1-64 characters of A-Z a-z 0-9 . _ : -");
        }
        Ok(Audience(s.to_owned()))
    }
}

impl AsRef<str> for Audience {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The audiences a caller may mint or redeem tickets for: all configured
/// ones, or a subset (`audiences` of a client or a frontend method).
#[derive(Debug, Clone, Default)]
pub(crate) enum AudienceScope {
    #[default]
    All,
    Only(Arc<HashSet<Audience>>),
}

impl AudienceScope {
    pub(crate) fn allows(&self, audience: &Audience) -> bool {
        match self {
            AudienceScope::All => true,
            AudienceScope::Only(set) => set.contains(audience),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_rejects_the_rest() {
        assert!(Audience::parse("chat").is_ok());
        assert!(Audience::parse("svc:chat-v2.eu_1").is_ok());
        assert!(Audience::parse("").is_err());
        assert!(Audience::parse("a b").is_err());
        assert!(Audience::parse("chat/x").is_err());
        assert!(Audience::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_scope_allows_all_or_its_members() {
        let chat = Audience::parse("chat").unwrap();
        let other = Audience::parse("other").unwrap();
        assert!(AudienceScope::All.allows(&other));
        let only = AudienceScope::Only(Arc::new(HashSet::from([chat.clone()])));
        assert!(only.allows(&chat));
        assert!(!only.allows(&other));
    }
}
