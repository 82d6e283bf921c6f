//! A small, strict URL splitter for destination adapters (`rtmp://host:port/app`), and a check for
//! hosts on private networks. No dependencies, so it builds for every guest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The parts of an absolute URL that adapters look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Lower-cased, e.g. `rtmps`.
    pub scheme: String,
    /// Lower-cased host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// Path without the query, `""` or starting with `/`.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
}

impl Url {
    /// The scheme's default port for the schemes destinations use.
    pub fn port_or_default(&self) -> Option<u16> {
        self.port.or(match self.scheme.as_str() {
            "rtmp" => Some(1935),
            "rtmps" => Some(443),
            "http" => Some(80),
            "https" => Some(443),
            "srt" => None,
            _ => None,
        })
    }

    /// Path segments, skipping empty ones.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// Parse `scheme://host[:port][/path][?query]`. Rejects user info, fragments, spaces and control
/// characters with a message fit to show the user.
pub fn parse(input: &str) -> Result<Url, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let (scheme, rest) = s.split_once("://").ok_or("must start with a scheme such as rtmp://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(format!("has an invalid scheme '{scheme}'"));
    }
    if rest.contains('#') {
        return Err("must not contain a fragment (#)".into());
    }
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("must not contain a user name or password".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("has an unclosed IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has junk after the IPv6 address")?),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c)) {
        return Err(format!("has an invalid host '{host}'"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("has an invalid port '{p}'")),
            Ok(n) => Some(n),
        },
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (path_query, None),
    };
    Ok(Url {
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_ascii_lowercase(),
        port,
        path: path.to_string(),
        query,
    })
}

/// True for hosts that are not on the public internet: any IP literal that is not a public unicast address
/// (loopback, private, link-local, CGNAT, multicast, reserved, and IPv6 forms that embed such an IPv4
/// address) and names that only resolve inside a private network (`localhost`, `*.local`, `*.internal`,
/// `*.lan`, single labels). IPv4 literals are read the way resolvers read them (`127.1`, `0x7f.0.0.1`,
/// `0177.0.0.1`, `2130706433`), so no spelling slips through. A public-looking name that resolves to a
/// private address is caught by the host, which checks every resolved address when it connects.
pub fn is_private_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if let Ok(ip) = h.parse::<IpAddr>() {
        return is_private_ip(ip);
    }
    if let Some(parsed) = ipv4_literal(&h) {
        // A host that reads as a number but is no valid address is refused rather than guessed at.
        return parsed.is_none_or(|v4| is_private_ip(IpAddr::V4(v4)));
    }
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || h.ends_with(".lan")
        || h.ends_with(".home.arpa")
        || !h.contains('.')
}

/// Reads `host` as resolvers (`inet_aton`) and browsers read an IPv4 literal: one to four dot-separated
/// numbers, each decimal, octal (leading `0`) or hexadecimal (`0x`), the last filling the remaining bytes.
/// `None` when the host is a name (its last label is not a number); `Some(None)` when it looks like a
/// number but is no valid address.
pub fn ipv4_literal(host: &str) -> Option<Option<Ipv4Addr>> {
    let host = host.trim_end_matches('.');
    let parts: Vec<&str> = host.split('.').collect();
    let last = parts.last()?;
    if number(last).is_none() && !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if parts.len() > 4 {
        return Some(None);
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        match number(p) {
            Some(v) => values.push(v),
            None => return Some(None),
        }
    }
    let (head, tail) = values.split_at(values.len() - 1);
    if head.iter().any(|&v| v > 255) {
        return Some(None);
    }
    let tail_bits = 8 * (4 - head.len() as u32);
    if tail_bits < 64 && tail[0] >= 1u64 << tail_bits {
        return Some(None);
    }
    let mut addr: u64 = tail[0];
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i as u32);
    }
    Some(u32::try_from(addr).ok().map(Ipv4Addr::from))
}

/// One part of an IPv4 literal: decimal, octal with a leading `0`, or hexadecimal with `0x`.
fn number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        // `0x` alone is zero to resolvers; an empty part is not a number.
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// True for addresses that are not public unicast addresses on the internet.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address
            // that a gateway on the path may reach: judge that one.
            if s[..6] == [0; 6] && v6 != Ipv6Addr::LOCALHOST && v6 != Ipv6Addr::UNSPECIFIED {
                return is_private_v4(embedded_v4(s[6], s[7]));
            }
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
                return is_private_v4(embedded_v4(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_private_v4(embedded_v4(s[1], s[2]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10, documentation 2001:db8::/32.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        // Carrier-grade NAT 100.64.0.0/10.
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // Benchmarking 198.18.0.0/15, IETF protocol assignments 192.0.0.0/24, reserved 240.0.0.0/4.
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || o[0] >= 240
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_rtmp_urls() {
        let u = parse("RTMPS://Live.Example.com:443/app/sub?x=1").unwrap();
        assert_eq!(u.scheme, "rtmps");
        assert_eq!(u.host, "live.example.com");
        assert_eq!(u.port, Some(443));
        assert_eq!(u.path, "/app/sub");
        assert_eq!(u.query.as_deref(), Some("x=1"));
        assert_eq!(u.segments(), vec!["app", "sub"]);
        let v6 = parse("rtmp://[::1]:1935/live").unwrap();
        assert_eq!(v6.host, "::1");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in
            ["", "example.com/live", "rtmp://", "rtmp://u:p@h/x", "rtmp://h:99999/x", "rtmp://h x/", "rtmp://h/#f"]
        {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn private_hosts() {
        for h in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "localhost",
            "nas.local",
            "router",
        ] {
            assert!(is_private_host(h), "{h}");
        }
        for h in ["a.rtmp.youtube.com", "8.8.8.8", "2001:4860::1", "live.twitch.tv", "1.2.3.4.example.com"] {
            assert!(!is_private_host(h), "{h}");
        }
    }

    #[test]
    fn every_spelling_of_a_private_address_is_private() {
        for h in [
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.000.000.001",
            "2130706433",
            "0x7f000001",
            "169.254.43518",
            "0xa9.0xfe.0xa9.0xfe",
            "10.0x10.1",
            "[::1]",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "ff02::1",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            // Numbers that are no address at all are refused, not guessed at.
            "256.0.0.1",
            "1.2.3.4.5",
            "1.2.3.0x1ff",
            "099.0.0.1",
        ] {
            assert!(is_private_host(h), "{h} accepted");
        }
        assert_eq!(ipv4_literal("127.1"), Some(Some(Ipv4Addr::new(127, 0, 0, 1))));
        assert_eq!(ipv4_literal("169.254.43518"), Some(Some(Ipv4Addr::new(169, 254, 169, 254))));
        assert_eq!(ipv4_literal("0xa9.0xfe.0xa9.0xfe"), Some(Some(Ipv4Addr::new(169, 254, 169, 254))));
        assert_eq!(ipv4_literal("8.8.8.8"), Some(Some(Ipv4Addr::new(8, 8, 8, 8))));
        assert_eq!(ipv4_literal("live.example.com"), None);
    }
}
