//! Browser origins: canonical form and the allowlist.
//!
//! Canonical form: lower-case `http` or `https` scheme, lower-case host (IDN
//! hosts in punycode, IPv6 in brackets), the port only when it is not the
//! scheme's default, no trailing slash. Anything that is more than an origin
//! (userinfo, a path, a query, a fragment) is refused rather than trimmed, so
//! that `https://app.example.com@evil.com` can never be read as the app.

use std::collections::HashMap;
use std::fmt;
use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    /// Not of the shape `scheme://host[:port]`.
    Malformed(&'static str),
    /// `null`, `file://…` and other schemes: valid browser values that are
    /// never allowed to hold a ticket.
    Opaque,
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginError::Malformed(why) => write!(f, "origin is malformed: {why}"),
            OriginError::Opaque => {
                f.write_str("opaque origins (null, file:, non-http schemes) are never allowed")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scheme {
    Http,
    Https,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
    is_domain: bool,
    serialized: String,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialized)
    }
}

impl AsRef<str> for Origin {
    fn as_ref(&self) -> &str {
        &self.serialized
    }
}

const MAX_ORIGIN_BYTES: usize = 1024;

impl Origin {
    pub fn parse(input: &str) -> Result<Origin, OriginError> {
        if input.len() > MAX_ORIGIN_BYTES {
            return Err(OriginError::Malformed("longer than 1024 bytes"));
        }
        if input.eq_ignore_ascii_case("null") {
            return Err(OriginError::Opaque);
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(OriginError::Malformed("expected scheme://host[:port]"));
        };
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(OriginError::Opaque);
        } else {
            return Err(OriginError::Malformed("expected scheme://host[:port]"));
        };
        // One trailing slash is what `new URL(...).origin` users often keep.
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(OriginError::Malformed("missing host"));
        }
        if authority.ends_with(':') {
            return Err(OriginError::Malformed("empty port"));
        }
        if authority.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\' | '%') || c.is_whitespace() || c.is_control()
        }) {
            return Err(OriginError::Malformed(
                "an origin has no userinfo, path, query or fragment",
            ));
        }
        let scheme_str = match scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let url = Url::parse(&format!("{scheme_str}://{authority}"))
            .map_err(|_| OriginError::Malformed("invalid host or port"))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(OriginError::Malformed(
                "an origin has no userinfo, path, query or fragment",
            ));
        }
        let (host, is_domain) = match url.host() {
            Some(Host::Domain(d)) => {
                check_domain(d)?;
                (d.to_owned(), true)
            }
            Some(Host::Ipv4(ip)) => (ip.to_string(), false),
            Some(Host::Ipv6(ip)) => (format!("[{ip}]"), false),
            None => return Err(OriginError::Malformed("missing host")),
        };
        // IDNA can make a host much longer than the input: bound what was
        // produced (DNS allows 253 bytes), so a canonical origin always
        // parses again.
        if host.trim_end_matches('.').len() > 253 {
            return Err(OriginError::Malformed("host name longer than 253 bytes"));
        }
        let port = url.port();
        let serialized = match port {
            Some(p) => format!("{scheme_str}://{host}:{p}"),
            None => format!("{scheme_str}://{host}"),
        };
        Ok(Origin {
            scheme,
            host,
            port,
            is_domain,
            serialized,
        })
    }
}

/// After IDNA the host is ASCII; allow letters, digits, `-` and `_` in
/// non-empty labels (one trailing dot is a distinct, valid host, as in
/// browsers).
fn check_domain(d: &str) -> Result<(), OriginError> {
    let body = d.strip_suffix('.').unwrap_or(d);
    let ok = !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(OriginError::Malformed("invalid host name"))
    }
}

/// `tickets.allowed_origins`: exact canonical origins, and `scheme://*.domain`
/// entries that match one or more labels in front of `domain` with the same
/// scheme and port (the apex itself is not matched).
#[derive(Debug, Clone, Default)]
pub struct OriginAllowlist {
    /// Canonical form → the parsed origin.
    exact: HashMap<String, Origin>,
    wildcards: Vec<Wildcard>,
}

#[derive(Debug, Clone)]
struct Wildcard {
    scheme: Scheme,
    /// `.example.org`, with the leading dot.
    dot_suffix: String,
    port: Option<u16>,
}

impl OriginAllowlist {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut list = OriginAllowlist::default();
        for entry in entries {
            list.add(entry.as_ref())?;
        }
        Ok(list)
    }

    fn add(&mut self, entry: &str) -> Result<(), String> {
        if let Some((scheme, rest)) = entry.split_once("://*.") {
            // Parse with a placeholder label, then keep what follows it.
            let o = Origin::parse(&format!("{scheme}://x.{rest}"))
                .map_err(|e| format!("{entry:?}: {e}"))?;
            if !o.is_domain {
                return Err(format!("{entry:?}: a wildcard needs a domain name"));
            }
            let suffix = o.host.strip_prefix("x.").unwrap_or(&o.host);
            if suffix.trim_end_matches('.').split('.').count() < 2 {
                return Err(format!(
                    "{entry:?}: a wildcard must name at least two labels (*.example.com)"
                ));
            }
            self.wildcards.push(Wildcard {
                scheme: o.scheme,
                dot_suffix: format!(".{suffix}"),
                port: o.port,
            });
            return Ok(());
        }
        if entry.contains('*') {
            return Err(format!(
                "{entry:?}: a wildcard is only allowed as the first label (https://*.example.com)"
            ));
        }
        let o = Origin::parse(entry).map_err(|e| format!("{entry:?}: {e}"))?;
        self.exact.insert(o.serialized.clone(), o);
        Ok(())
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.exact.contains_key(&origin.serialized)
            || (origin.is_domain
                && self.wildcards.iter().any(|w| {
                    w.scheme == origin.scheme
                        && w.port == origin.port
                        && origin.host.len() > w.dot_suffix.len()
                        && origin.host.ends_with(&w.dot_suffix)
                }))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }

    pub(crate) fn push_exact(&mut self, origin: Origin) {
        self.exact.insert(origin.serialized.clone(), origin);
    }

    /// The exact entry whose canonical form is `raw` byte for byte: the
    /// common case (browsers send canonical origins), answered without
    /// parsing. `raw` is then canonical, so `Origin::parse(raw)` would give
    /// the same origin; anything else returns `None` and must be parsed.
    pub(crate) fn exact_entry(&self, raw: &str) -> Option<&Origin> {
        self.exact.get(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Origin::parse(s).unwrap().as_ref().to_owned()
    }

    #[test]
    fn canonical_form() {
        assert_eq!(canon("https://app.example.com"), "https://app.example.com");
        assert_eq!(canon("HTTPS://APP.Example.COM"), "https://app.example.com");
        assert_eq!(
            canon("https://app.example.com:443"),
            "https://app.example.com"
        );
        assert_eq!(canon("http://app.example.com:80"), "http://app.example.com");
        assert_eq!(
            canon("https://app.example.com:8443"),
            "https://app.example.com:8443"
        );
        assert_eq!(
            canon("http://app.example.com:443"),
            "http://app.example.com:443"
        );
        assert_eq!(canon("https://app.example.com/"), "https://app.example.com");
        assert_eq!(canon("http://localhost:3000"), "http://localhost:3000");
        assert_eq!(canon("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(canon("http://[::1]:8080"), "http://[::1]:8080");
        assert_eq!(
            canon("https://bücher.example"),
            "https://xn--bcher-kva.example"
        );
        assert_eq!(
            canon("https://xn--bcher-kva.example"),
            "https://xn--bcher-kva.example"
        );
        assert_eq!(
            canon("https://app.example.com."),
            "https://app.example.com."
        );
    }

    #[test]
    fn canonicalisation_is_idempotent() {
        for s in [
            "HTTPS://APP.Example.COM:443/",
            "http://[::1]:80",
            "https://Bücher.example:8443",
        ] {
            let once = canon(s);
            assert_eq!(canon(&once), once);
        }
    }

    #[test]
    fn refuses_more_than_an_origin() {
        for s in [
            "https://a@app.example.com",
            "https://a:b@app.example.com",
            "https://app.example.com@evil.com",
            "https://app.example.com/path",
            "https://app.example.com//",
            "https://app.example.com?x=1",
            "https://app.example.com/?x=1",
            "https://app.example.com#f",
            "https://app.example.com\\@evil.com",
            "https://app example.com",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://",
            "https:app.example.com",
            "app.example.com",
            "",
            "https://a..example.com",
            "https://*.example.com",
            "https://app.exa%6dple.com",
        ] {
            assert!(
                matches!(Origin::parse(s), Err(OriginError::Malformed(_))),
                "{s:?} should be malformed, got {:?}",
                Origin::parse(s)
            );
        }
    }

    /// Found by `cargo fuzz`: 127 two-byte IDN labels fit the input limit
    /// but expand past it in punycode, so the canonical form did not parse
    /// again.
    #[test]
    fn idn_hosts_that_expand_past_the_limits_are_refused() {
        let long = format!("https://{}com", "у.".repeat(127));
        assert!(long.len() <= MAX_ORIGIN_BYTES);
        assert!(matches!(
            Origin::parse(&long),
            Err(OriginError::Malformed(_))
        ));
        let ok = format!("https://{}com", "у.".repeat(20));
        let once = canon(&ok);
        assert_eq!(canon(&once), once);
    }

    #[test]
    fn opaque_origins_are_their_own_error() {
        for s in [
            "null",
            "NULL",
            "file://",
            "file:///etc/passwd",
            "ws://app.example.com",
            "chrome-extension://abc",
        ] {
            assert_eq!(Origin::parse(s), Err(OriginError::Opaque), "{s}");
        }
    }

    fn allow(list: &[&str], origin: &str) -> bool {
        OriginAllowlist::parse(list)
            .unwrap()
            .allows(&Origin::parse(origin).unwrap())
    }

    #[test]
    fn exact_entries_and_look_alikes() {
        let list = ["https://app.example.com"];
        assert!(allow(&list, "https://app.example.com"));
        assert!(allow(&list, "HTTPS://APP.EXAMPLE.COM"));
        assert!(allow(&list, "https://app.example.com:443"));
        assert!(!allow(&list, "http://app.example.com"));
        assert!(!allow(&list, "https://app.example.com:8443"));
        assert!(!allow(&list, "https://app.example.com.evil.com"));
        assert!(!allow(&list, "https://evilapp.example.com"));
        assert!(!allow(&list, "https://app.example.com."));
        assert!(!allow(&list, "https://sub.app.example.com"));
        let parsed = OriginAllowlist::parse(&list).unwrap();
        assert!(parsed.exact_entry("https://app.example.com").is_some());
        // Not canonical: left to the parser (which then allows it).
        assert!(parsed.exact_entry("HTTPS://APP.EXAMPLE.COM").is_none());
        assert!(parsed.exact_entry("https://app.example.com:443").is_none());
    }

    #[test]
    fn wildcards_match_one_or_more_labels_only() {
        let list = ["https://*.example.org"];
        assert!(allow(&list, "https://a.example.org"));
        assert!(allow(&list, "https://a.b.example.org"));
        assert!(allow(&list, "https://A.EXAMPLE.ORG:443"));
        assert!(!allow(&list, "https://example.org"));
        assert!(!allow(&list, "https://evilexample.org"));
        assert!(!allow(&list, "https://example.org.evil.com"));
        assert!(!allow(&list, "https://a.example.org.evil.com"));
        assert!(!allow(&list, "http://a.example.org"));
        assert!(!allow(&list, "https://a.example.org:8443"));
        assert!(!allow(&list, "https://a.example.org."));
        let with_port = ["https://*.example.org:8443"];
        assert!(allow(&with_port, "https://a.example.org:8443"));
        assert!(!allow(&with_port, "https://a.example.org"));
    }

    #[test]
    fn idn_entries_and_origins_meet_in_punycode() {
        assert!(allow(
            &["https://bücher.example"],
            "https://xn--bcher-kva.example"
        ));
        assert!(allow(
            &["https://*.bücher.example"],
            "https://shop.xn--bcher-kva.example"
        ));
        assert!(allow(
            &["https://xn--bcher-kva.example"],
            "https://BÜCHER.example"
        ));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for bad in [
            "null",
            "https://*",
            "https://*.com",
            "https://a.*.example.com",
            "https://app.example.com/path",
            "*.example.com",
            "https://*.127.0.0.1",
        ] {
            let err = OriginAllowlist::parse(&[bad]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Labels that make look-alikes likely: shared suffixes, punycode, case.
    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("app".to_owned()),
            Just("example".to_owned()),
            Just("EXAMPLE".to_owned()),
            Just("org".to_owned()),
            Just("com".to_owned()),
            Just("evil".to_owned()),
            Just("xn--bcher-kva".to_owned()),
            "[a-z0-9]{1,5}",
        ]
    }

    fn host() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(label(), 1..5)
    }

    fn scheme() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("http"), Just("https"), Just("HTTPS")]
    }

    fn port() -> impl Strategy<Value = Option<u16>> {
        prop_oneof![
            Just(None),
            Just(Some(80)),
            Just(Some(443)),
            Just(Some(8443))
        ]
    }

    fn origin_string(s: &str, host: &[String], port: Option<u16>) -> String {
        match port {
            Some(p) => format!("{s}://{}:{p}", host.join(".")),
            None => format!("{s}://{}", host.join(".")),
        }
    }

    /// The reference: compare scheme, effective port and labels by hand.
    fn reference_allows(
        entry: (&str, &[String], Option<u16>, bool),
        origin: (&str, &[String], Option<u16>),
    ) -> bool {
        let norm_port = |s: &str, p: Option<u16>| {
            let default = if s.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            p.filter(|p| *p != default)
        };
        let lower = |v: &[String]| v.iter().map(|l| l.to_ascii_lowercase()).collect::<Vec<_>>();
        let (es, eh, ep, wildcard) = entry;
        let (os, oh, op) = origin;
        if !es.eq_ignore_ascii_case(os) || norm_port(es, ep) != norm_port(os, op) {
            return false;
        }
        let (eh, oh) = (lower(eh), lower(oh));
        if wildcard {
            oh.len() > eh.len() && oh[oh.len() - eh.len()..] == eh[..]
        } else {
            oh == eh
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,64}") {
            let _ = Origin::parse(&s);
        }

        #[test]
        fn parsing_url_like_input_never_panics(s in "(https?|file|ws)://[a-zA-Z0-9.:@/?#%\\[\\]_*-]{0,40}") {
            let _ = Origin::parse(&s);
            let _ = OriginAllowlist::parse(&[s.as_str()]);
        }

        #[test]
        fn canonicalisation_is_idempotent(s in scheme(), h in host(), p in port(), slash in any::<bool>()) {
            let mut text = origin_string(s, &h, p);
            if slash {
                text.push('/');
            }
            if let Ok(o) = Origin::parse(&text) {
                let again = Origin::parse(o.as_ref()).expect("a canonical origin parses");
                prop_assert_eq!(again.as_ref(), o.as_ref());
            }
        }

        #[test]
        fn the_exact_lookup_agrees_with_parsing(
            es in scheme(), eh in host(), ep in port(),
            os in scheme(), oh in host(), op in port(), same in any::<bool>(), slash in any::<bool>(),
        ) {
            // The mint fast path: a string found by exact_entry must be one
            // that parses to that very origin, and is then allowed.
            let entry = origin_string(es, &eh, ep);
            let mut raw = if same { entry.clone() } else { origin_string(os, &oh, op) };
            if slash {
                raw.push('/');
            }
            if let Ok(list) = OriginAllowlist::parse(&[entry.as_str()])
                && let Some(found) = list.exact_entry(&raw)
            {
                let parsed = Origin::parse(&raw).expect("an exact entry parses");
                prop_assert_eq!(&parsed, found);
                prop_assert!(list.allows(&parsed));
            }
        }

        #[test]
        fn the_allowlist_agrees_with_the_reference(
            es in scheme(), eh in host(), ep in port(), wildcard in any::<bool>(),
            os in scheme(), other in host(), op in port(),
            share in any::<bool>(), prefix in prop::collection::vec(label(), 0..3),
            glue in any::<bool>(),
        ) {
            // A wildcard needs at least two labels after "*.".
            prop_assume!(!wildcard || eh.len() >= 2);
            // Half the time the origin ends with the entry's host, so that
            // scheme, port and label boundaries decide.
            // Glued, the entry's first label becomes the end of a longer one
            // (`evilexample.org` against `*.example.org`).
            let oh = match (share, glue) {
                (true, false) => [prefix, eh.clone()].concat(),
                (true, true) => {
                    let mut h = [prefix, eh.clone()].concat();
                    let i = h.len() - eh.len();
                    h[i] = format!("evil{}", h[i]);
                    h
                }
                (false, _) => other,
            };
            let entry = if wildcard {
                origin_string(es, &[vec!["*".to_owned()], eh.clone()].concat(), ep)
            } else {
                origin_string(es, &eh, ep)
            };
            let origin = Origin::parse(&origin_string(os, &oh, op));
            let list = OriginAllowlist::parse(&[entry.as_str()]);
            if let (Ok(list), Ok(origin)) = (list, origin) {
                prop_assert_eq!(
                    list.allows(&origin),
                    reference_allows((es, &eh, ep, wildcard), (os, &oh, op)),
                    "entry {} origin {}", entry, origin.as_ref()
                );
            }
        }
    }
}
