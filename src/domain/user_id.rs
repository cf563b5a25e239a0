/// The user a ticket is minted for: 1–256 bytes of UTF-8 without control
/// characters (docs/contract.md, "Mint").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub const MAX_BYTES: usize = 256;

    pub fn parse(s: String) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("user_id must not be empty");
        }
        if s.len() > Self::MAX_BYTES {
            return Err("user_id is longer than 256 bytes");
        }
        if s.chars().any(char::is_control) {
            return Err("user_id must not contain control characters");
        }
        Ok(UserId(s))
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_multibyte_text() {
        assert!(UserId::parse("alice".into()).is_ok());
        assert!(UserId::parse("ünïcødé 用户".into()).is_ok());
        assert!(UserId::parse("x".repeat(256)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_control_characters() {
        assert!(UserId::parse(String::new()).is_err());
        assert!(UserId::parse("x".repeat(257)).is_err());
        // 129 two-byte characters: 258 bytes although only 129 chars.
        assert!(UserId::parse("é".repeat(129)).is_err());
        assert!(UserId::parse("a\nb".into()).is_err());
        assert!(UserId::parse("a\u{0}b".into()).is_err());
        assert!(UserId::parse("a\u{85}b".into()).is_err());
    }
}
