//! What the limits of `[limits]` are made of: a rate (`10/s`, `600/m`,
//! `3600/h`), a CIDR block of trusted proxies, and the client address a
//! request comes from behind them.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// So many requests per period, as configured (`"10/s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: u32,
    pub(crate) period: Duration,
}

impl Rate {
    /// `N/s`, `N/m` or `N/h`, N from 1 to 1,000,000.
    pub(crate) fn parse(s: &str) -> Result<Self, &'static str> {
        const SHAPE: &str = "a rate is N/s, N/m or N/h (N from 1 to 1000000), or \"off\"";
        let (n, unit) = s.trim().split_once('/').ok_or(SHAPE)?;
        let count: u32 = n.trim().parse().map_err(|_| SHAPE)?;
        if !(1..=1_000_000).contains(&count) {
            return Err(SHAPE);
        }
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(SHAPE),
        };
        Ok(Rate { count, period })
    }

    /// The time one request "costs": the period divided by the count.
    pub(crate) fn interval(self) -> Duration {
        self.period / self.count
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A block of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Result<Self, &'static str> {
        const SHAPE: &str = "a CIDR block such as 10.0.0.0/8 or fd00::/8, or one address";
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| SHAPE)?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| SHAPE)?,
            None => max,
        };
        if prefix > max {
            return Err(SHAPE);
        }
        let cidr = Cidr { net, prefix };
        if cidr.masked(net) != net {
            return Err(
                "host bits are set: write the network address (10.0.0.0/8, not 10.1.2.3/8)",
            );
        }
        Ok(cidr)
    }

    fn masked(self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    pub(crate) fn contains(self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`), as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    }
}

/// The address a request comes from: the socket peer, unless the peer is a
/// trusted proxy; then the rightmost address of the forwarding header that
/// is not itself trusted (the leftmost is whatever the client wrote). A
/// header that cannot be read gives the last trusted hop: never an address
/// the client chose.
pub(crate) fn client_ip(
    peer: IpAddr,
    forwarded_for: &[&str],
    forwarded: &[&str],
    trusted: &[Cidr],
) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Every hop, in order, from X-Forwarded-For, else from Forwarded.
    let hops: Option<Vec<IpAddr>> = if !forwarded_for.is_empty() {
        forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().parse().ok())
            .collect()
    } else if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(forwarded_for_param)
            .collect()
    } else {
        Some(Vec::new())
    };
    let mut nearest = peer;
    for hop in hops.unwrap_or_default().into_iter().rev().map(canonical) {
        if !is_trusted(hop) {
            return hop;
        }
        nearest = hop;
    }
    nearest
}

/// The address of a `Forwarded` element's `for=` (`for=192.0.2.1`,
/// `for="[2001:db8::1]:4711"`); `None` if there is none usable.
fn forwarded_for_param(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })?;
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    match value.parse() {
        Ok(ip) => Some(ip),
        // IPv4 with a port.
        Err(_) => value.rsplit_once(':')?.0.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rates_parse_and_say_their_interval() {
        let r = Rate::parse("10/s").unwrap();
        assert_eq!(r.interval(), Duration::from_millis(100));
        assert_eq!(
            Rate::parse("600/m").unwrap().interval(),
            Duration::from_millis(100)
        );
        assert_eq!(
            Rate::parse(" 3600 / h ").unwrap().interval(),
            Duration::from_secs(1)
        );
        assert_eq!(Rate::parse("5/m").unwrap().to_string(), "5/m");
        for bad in ["", "10", "0/s", "-1/s", "10/d", "x/s", "1000001/s", "10/"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs_contain_their_addresses_only() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.1.2.3/8",
            "10.0.0.0/33",
            "fd00::/129",
            "nonsense",
            "10.0.0.0/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let from = |peer: &str, xff: &[&str], fwd: &[&str]| client_ip(ip(peer), xff, fwd, &trusted);
        // An untrusted peer's headers are ignored, whatever they say.
        assert_eq!(
            from("203.0.113.9", &["1.2.3.4"], &["for=1.2.3.4"]),
            ip("203.0.113.9")
        );
        // Behind a trusted proxy: the rightmost untrusted address, never
        // the leftmost (which the client wrote).
        assert_eq!(
            from("10.0.0.2", &["6.6.6.6, 198.51.100.7"], &[]),
            ip("198.51.100.7")
        );
        assert_eq!(
            from("10.0.0.2", &["6.6.6.6, 198.51.100.7, 10.0.0.5"], &[]),
            ip("198.51.100.7")
        );
        assert_eq!(
            from("10.0.0.2", &["6.6.6.6", "198.51.100.7"], &[]),
            ip("198.51.100.7")
        );
        // Forwarded, when there is no X-Forwarded-For.
        assert_eq!(
            from(
                "10.0.0.2",
                &[],
                &["for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https"]
            ),
            ip("2001:db8::7")
        );
        assert_eq!(
            from("10.0.0.2", &[], &["for=198.51.100.7:8080"]),
            ip("198.51.100.7")
        );
        // Nothing but trusted hops, no header, or one that does not read:
        // the nearest trusted hop.
        assert_eq!(from("10.0.0.2", &["10.0.0.9"], &[]), ip("10.0.0.9"));
        assert_eq!(from("10.0.0.2", &[], &[]), ip("10.0.0.2"));
        assert_eq!(from("10.0.0.2", &["6.6.6.6, garbage"], &[]), ip("10.0.0.2"));
        assert_eq!(from("10.0.0.2", &[], &["for=unknown"]), ip("10.0.0.2"));
    }
}
