//! `Origin::parse` never panics, and canonicalisation is idempotent: the
//! canonical form parses again to an equal `Origin` with the same string.
//! The canonical form is also checked for the shape the module documents:
//! `http` or `https`, a host, an optional port, nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsticket::domain::Origin;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(origin) = Origin::parse(input) else {
        return;
    };
    let canonical: &str = origin.as_ref();
    let again = Origin::parse(canonical)
        .unwrap_or_else(|e| panic!("{input:?} -> {canonical:?} does not parse again: {e}"));
    assert_eq!(
        again.as_ref(),
        canonical,
        "{input:?}: canonicalisation is not idempotent"
    );
    assert_eq!(again, origin, "{input:?}: re-parsed origin differs");

    let rest = canonical
        .strip_prefix("https://")
        .or_else(|| canonical.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("{input:?} -> {canonical:?}: scheme is not http(s)"));
    assert!(!rest.is_empty(), "{input:?} -> {canonical:?}: empty host");
    assert!(
        rest.bytes().all(|b| b.is_ascii_graphic()
            && !b.is_ascii_uppercase()
            && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\' | b'%')),
        "{input:?} -> {canonical:?}: canonical form has more than scheme://host[:port]"
    );
});
