use unicode_general_category::{GeneralCategory, get_general_category};

/// The user a ticket is minted for: 1–256 bytes of UTF-8 without control
/// characters, Unicode format characters (`Cf`: bidi overrides, zero-width
/// characters) or line and paragraph separators (docs/contract.md, "Mint"):
/// a user id is shown to people in logs and must read as what it is.
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
        let invisible = |c: char| {
            matches!(
                get_general_category(c),
                GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
        };
        if s.chars().any(invisible) {
            return Err(
                "user_id must not contain format characters or line or paragraph separators",
            );
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

    #[test]
    fn rejects_format_characters_and_separators() {
        for c in [
            '\u{202e}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{200b}',  // zero-width space
            '\u{200d}',  // zero-width joiner
            '\u{feff}',  // byte order mark
            '\u{00ad}',  // soft hyphen
            '\u{2028}',  // line separator
            '\u{2029}',  // paragraph separator
            '\u{e0041}', // tag latin capital letter a
        ] {
            assert!(UserId::parse(format!("alice{c}x")).is_err(), "{c:?}");
        }
        // Spaces, punctuation and other scripts are fine.
        assert!(UserId::parse("mallory audience=admin \"x\"".into()).is_ok());
        assert!(UserId::parse("محمد".into()).is_ok());
    }
}
