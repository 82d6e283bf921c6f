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

/// True for loopback, private, link-local, unspecified and unique-local addresses and for names that
/// only resolve inside a private network (`localhost`, `*.local`, `*.internal`, `*.lan`, single labels).
/// A public-looking name that resolves to a private address is caught by the host when it connects.
pub fn is_private_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = h.parse::<IpAddr>() {
        return is_private_ip(ip);
    }
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || h.ends_with(".lan")
        || h.ends_with(".home.arpa")
        || !h.contains('.')
}

/// True for addresses that are not reachable on the public internet.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6 == Ipv6Addr::LOCALHOST
                || v6 == Ipv6Addr::UNSPECIFIED
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
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
        || o[0] == 0
        // Carrier-grade NAT 100.64.0.0/10.
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
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
        for h in ["a.rtmp.youtube.com", "8.8.8.8", "2001:4860::1", "live.twitch.tv"] {
            assert!(!is_private_host(h), "{h}");
        }
    }
}
