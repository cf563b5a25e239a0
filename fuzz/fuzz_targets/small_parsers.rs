//! The small boundary parsers never panic and accept only what they document:
//! `UserId` (1-256 bytes of UTF-8, no control characters), `Audience` (1-64
//! characters of `[A-Za-z0-9._:-]`) and `ServerSecret::parse(id, secret)`
//! (the input is split at the first newline into id and secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsticket::crypto::ServerSecret;
use wsticket::domain::{Audience, UserId};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(user) = UserId::parse(input.to_owned()) {
        assert_eq!(user.as_ref(), input);
        assert!((1..=UserId::MAX_BYTES).contains(&input.len()));
        assert!(!input.chars().any(char::is_control));
    }

    if let Ok(audience) = Audience::parse(input) {
        assert_eq!(audience.as_ref(), input);
        assert!((1..=64).contains(&input.len()));
        assert!(
            input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        );
    }

    let (id, secret) = input.split_once('\n').unwrap_or((input, ""));
    if let Ok(s) = ServerSecret::parse(id, secret) {
        // The key id rules: 1-16 of [a-z0-9].
        assert!((1..=16).contains(&id.len()));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(s.id().as_ref(), id);
        // The key round-trips through its canonical base64url form.
        let exposed = s.expose_base64();
        let again = ServerSecret::parse(id, &exposed).expect("exposed key must parse");
        assert_eq!(again.expose_base64(), exposed);
        // Debug shows the id, never the key.
        let debug = format!("{s:?}");
        assert!(debug.ends_with("key: *** }"), "{debug}");
    }
});
