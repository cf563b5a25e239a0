//! `OriginAllowlist::parse` and `allows` never panic, and `allows` agrees with
//! a small reference matcher written on canonical strings.
//!
//! Input: newline-separated lines; the last line is the candidate origin, the
//! lines before it are the allowlist entries (at most 8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use wsticket::domain::{Origin, OriginAllowlist};

/// `scheme://host[:port]` of a canonical origin, split into its parts.
fn split(canonical: &str) -> (&str, &str, Option<&str>) {
    let (scheme, authority) = canonical
        .split_once("://")
        .expect("canonical origin has a scheme");
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').expect("bracketed IPv6 host") + 1;
        (&authority[..end], authority[end..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    (scheme, host, port)
}

fn is_domain(host: &str) -> bool {
    !host.starts_with('[') && host.parse::<Ipv4Addr>().is_err()
}

/// Reference: an exact entry matches its canonical form only; `S://*.R`
/// matches a domain origin with the scheme and port of `S://x.R` whose host is
/// one or more labels followed by `.R` (canonicalised).
fn reference_allows(entries: &[&str], candidate: &str) -> bool {
    let (c_scheme, c_host, c_port) = split(candidate);
    entries.iter().any(|entry| match entry.split_once("://*.") {
        Some((scheme, rest)) => {
            let w = Origin::parse(&format!("{scheme}://x.{rest}")).expect("entry was accepted");
            let (w_scheme, w_host, w_port) = split(w.as_ref());
            let dot_suffix = w_host.strip_prefix('x').expect("placeholder label kept");
            w_scheme == c_scheme
                && w_port == c_port
                && is_domain(c_host)
                && c_host.len() > dot_suffix.len()
                && c_host.ends_with(dot_suffix)
        }
        None => Origin::parse(entry).expect("entry was accepted").as_ref() == candidate,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = input.split('\n').collect();
    let candidate = lines.pop().unwrap_or_default();
    lines.truncate(8);
    let entries = lines;

    let list = OriginAllowlist::parse(&entries);
    let origin = Origin::parse(candidate);
    let (Ok(list), Ok(origin)) = (list, origin) else {
        return;
    };
    let allowed = list.allows(&origin);
    assert_eq!(
        allowed,
        reference_allows(&entries, origin.as_ref()),
        "entries {entries:?}, candidate {candidate:?} ({origin:?})"
    );
    if entries.is_empty() {
        assert!(!allowed, "an empty list allows nothing");
    }
    // The answer depends only on the canonical form of the candidate...
    let canonical = Origin::parse(origin.as_ref()).expect("canonical form parses");
    assert_eq!(list.allows(&canonical), allowed);
    // ...and a list holding that canonical form always allows it.
    let own = OriginAllowlist::parse(&[origin.as_ref()]).expect("canonical form is an entry");
    assert!(own.allows(&origin), "{origin:?} not allowed by itself");
});
