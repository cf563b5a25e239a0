//! The ticket string: `wst_<kid>_<43 base64url chars>`.
//!
//! A `Ticket` holds the 32 secret bytes. It has no `Display`, its `Debug`
//! prints `***`, and the only way to get the string back is `expose`, which
//! the mint handler calls once to answer the caller.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use std::fmt;
use zeroize::Zeroizing;

pub const TICKET_PREFIX: &str = "wst_";
const TAIL_CHARS: usize = 43;

/// The id of a server secret: `[a-z0-9]{1,16}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty()
            || s.len() > 16
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err("a key id is 1-16 characters of a-z and 0-9");
        }
        Ok(KeyId(s.to_owned()))
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ticket syntax is invalid")]
pub struct TicketSyntaxError;

pub struct Ticket {
    kid: KeyId,
    secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket(***)")
    }
}

impl Ticket {
    /// 32 fresh bytes from the operating system's CSPRNG.
    pub(crate) fn generate(kid: KeyId) -> Result<Self, rand::rand_core::OsError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng.try_fill_bytes(secret.as_mut())?;
        Ok(Ticket { kid, secret })
    }

    /// Strict: exactly one string spells each ticket (canonical base64url,
    /// no padding, no trailing bits).
    pub fn parse(s: &str) -> Result<Self, TicketSyntaxError> {
        let rest = s.strip_prefix(TICKET_PREFIX).ok_or(TicketSyntaxError)?;
        let (kid, tail) = rest.split_once('_').ok_or(TicketSyntaxError)?;
        let kid = KeyId::parse(kid).map_err(|_| TicketSyntaxError)?;
        if tail.len() != TAIL_CHARS {
            return Err(TicketSyntaxError);
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        let n = URL_SAFE_NO_PAD
            .decode_slice(tail, secret.as_mut())
            .map_err(|_| TicketSyntaxError)?;
        if n != 32 {
            return Err(TicketSyntaxError);
        }
        Ok(Ticket { kid, secret })
    }

    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The wire form, for the mint response only.
    pub fn expose(&self) -> String {
        format!(
            "{TICKET_PREFIX}{}_{}",
            self.kid.0,
            URL_SAFE_NO_PAD.encode(self.secret.as_ref())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid() -> KeyId {
        KeyId::parse("k1").unwrap()
    }

    #[test]
    fn round_trips_and_has_the_documented_shape() {
        let t = Ticket::generate(kid()).unwrap();
        let s = t.expose();
        assert!(s.starts_with("wst_k1_"));
        assert_eq!(s.len(), "wst_k1_".len() + 43);
        let back = Ticket::parse(&s).unwrap();
        assert_eq!(back.secret_bytes(), t.secret_bytes());
        assert_eq!(back.kid(), t.kid());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = Ticket::generate(kid()).unwrap();
        let s = t.expose();
        let tail = &s[7..];
        assert_eq!(format!("{t:?}"), "Ticket(***)");
        assert!(!format!("{t:?}").contains(tail));
    }

    #[test]
    fn rejects_every_other_shape() {
        let good = Ticket::generate(kid()).unwrap().expose();
        let tail = &good[7..];
        let cases = [
            String::new(),
            "wst_".into(),
            format!("wst__{tail}"),
            format!("WST_k1_{tail}"),
            format!("wsk_k1_{tail}"),
            format!("wst_K1_{tail}"),
            format!("wst_{}_{tail}", "a".repeat(17)),
            format!("wst_k1_{}", &tail[..42]),
            format!("wst_k1_{tail}A"),
            format!("wst_k1_{}=", &tail[..42]),
            format!("wst_k1_{}+", &tail[..42]),
            format!("wst_k1_{} ", &tail[..42]),
            format!(" wst_k1_{tail}"),
            // 'B' after 42 chars leaves non-zero trailing bits: not canonical.
            format!("wst_k1_{}B", &"A".repeat(42)),
        ];
        for c in cases {
            assert!(Ticket::parse(&c).is_err(), "{c:?} parsed");
        }
        assert!(Ticket::parse(&format!("wst_k1_{}A", "A".repeat(42))).is_ok());
    }

    #[test]
    fn two_tickets_never_share_bytes() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(*Ticket::generate(kid()).unwrap().secret_bytes()));
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = Ticket::parse(&s);
        }

        #[test]
        fn parsing_ticket_shaped_input_never_panics(s in "wst_[a-z0-9_]{0,18}_[A-Za-z0-9_=+/-]{40,46}") {
            let _ = Ticket::parse(&s);
        }

        /// One spelling per ticket: whatever parses prints back unchanged.
        #[test]
        fn what_parses_round_trips(kid in "[a-z0-9]{1,16}", tail in "[A-Za-z0-9_-]{43}") {
            let s = format!("wst_{kid}_{tail}");
            if let Ok(t) = Ticket::parse(&s) {
                prop_assert_eq!(t.expose(), s);
            }
        }

        #[test]
        fn every_ticket_round_trips(kid in "[a-z0-9]{1,16}", bytes in any::<[u8; 32]>()) {
            let s = format!("wst_{kid}_{}", URL_SAFE_NO_PAD.encode(bytes));
            let t = Ticket::parse(&s).expect("a canonical ticket parses");
            prop_assert_eq!(t.secret_bytes(), &bytes);
            prop_assert_eq!(t.expose(), s);
        }
    }
}
