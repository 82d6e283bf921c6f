//! Where a network output may connect. Users type destination URLs, so a URL must not aim the server at its
//! own network: every address a host name resolves to is checked when an output connects (on every reconnect
//! too), and the connection then goes to the checked address itself, so a name that resolves elsewhere a
//! moment later (DNS rebinding) cannot redirect it. The URL's spelling of the host plays no part: resolving
//! reads `127.1`, `0x7f.0.0.1` or `2130706433` as the loopback address they are.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use backyard_plugin_api::url;

/// Which addresses an output may connect to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Public unicast addresses only (the default for anything a user typed).
    #[default]
    PublicOnly,
    /// Any address, private networks and loopback included: only when the operator allowed it for the
    /// destination's platform (a local RTMP server, tests).
    Any,
}

impl AddressPolicy {
    /// Whether `ip` may be connected to.
    pub fn allows(self, ip: IpAddr) -> bool {
        self == AddressPolicy::Any || !url::is_private_ip(ip)
    }
}

/// Why an output could not be given an address to connect to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The URL could not be read.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The host name did not resolve (possibly for a while: retried).
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// The host resolves to an address the policy refuses. Says no more than that, so a refused user learns
    /// nothing about the server's network (which addresses exist, which ports are open).
    #[error("could not connect: the destination's address is not allowed on this server")]
    NotAllowed,
}

/// A network output's URL with its host replaced by a checked address, and the protocol options that keep
/// the server seeing the name the user typed (RTMP `tcUrl`, TLS server name and certificate check).
#[derive(Clone, Debug)]
pub(crate) struct Pinned {
    /// `rtmp[s]://<address>:<port>/<path>?<query>`.
    pub url: String,
    /// Options for FFmpeg's protocol stack.
    pub io: Vec<(String, String)>,
    /// Every address the host resolved to (all allowed).
    pub addresses: Vec<SocketAddr>,
    /// The one connected to.
    pub address: SocketAddr,
}

/// Resolves `host`, giving up after `budget` (getaddrinfo has no timeout of its own, so it runs aside).
pub(crate) fn resolve(host: &str, port: u16, budget: Duration) -> Result<Vec<SocketAddr>, AddressError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let query = (host.to_owned(), port);
    std::thread::Builder::new()
        .name("egress-dns".into())
        .spawn(move || {
            let _ = tx.send(query.to_socket_addrs().map(Vec::from_iter));
        })
        .map_err(|e| AddressError::Dns(e.to_string()))?;
    match rx.recv_timeout(budget) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(AddressError::Dns(format!("{host} has no address"))),
        Ok(Err(e)) => Err(AddressError::Dns(format!("{host}: {e}"))),
        Err(_) => Err(AddressError::Dns(format!("{host}: timed out"))),
    }
}

/// Checks now, as a connect would, whether `url`'s host resolves only to addresses `policy` allows: for
/// refusing a destination when it is entered. The check is made again on every connect.
pub fn check(url: &str, policy: AddressPolicy, budget: Duration) -> Result<(), AddressError> {
    pin(url, policy, 0, budget).map(|_| ())
}

/// Resolves the host of an `rtmp://` or `rtmps://` URL, refuses it unless `policy` allows every address it
/// resolves to, and pins the URL to one of them (`attempt` rotates through them across reconnects).
pub(crate) fn pin(raw: &str, policy: AddressPolicy, attempt: u32, budget: Duration) -> Result<Pinned, AddressError> {
    let u = url::parse(raw).map_err(|e| AddressError::InvalidUrl(format!("the URL {e}")))?;
    let tls = match u.scheme.as_str() {
        "rtmp" => false,
        "rtmps" => true,
        other => return Err(AddressError::InvalidUrl(format!("{other}:// is not an RTMP URL"))),
    };
    let port = u.port_or_default().unwrap_or(if tls { 443 } else { 1935 });
    let mut addresses = resolve(&u.host, port, budget)?;
    if addresses.iter().any(|a| !policy.allows(a.ip())) {
        return Err(AddressError::NotAllowed);
    }
    // IPv4 first: every ingest has it, while a host's IPv6 route may be missing (and `localhost` lists ::1
    // first where servers often listen on 127.0.0.1 only). Reconnects rotate through the rest.
    addresses.sort_by_key(|a| a.is_ipv6());
    let address = addresses[attempt as usize % addresses.len()];
    let host_part = |h: &str| if h.contains(':') { format!("[{h}]") } else { h.to_owned() };
    let query = u.query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
    let pinned = format!("{}://{}:{port}{}{query}", u.scheme, host_part(&address.ip().to_string()), u.path);
    let mut io = vec![(
        "rtmp_tcurl".to_owned(),
        format!("{}://{}:{port}/{}", u.scheme, host_part(&u.host), rtmp_app(&u.path, u.query.as_deref())),
    )];
    if tls {
        // The TLS layer takes its server name (SNI) and the name the certificate must carry from here.
        io.push(("verifyhost".to_owned(), u.host.clone()));
    }
    Ok(Pinned { url: pinned, io, addresses, address })
}

/// The RTMP application FFmpeg reads from a URL path (`/app/key` → `app`; `/app/instance/key` →
/// `app/instance`, unless the part after the first segment is a `prefix:name` playpath), so the pinned
/// connection sends the `tcUrl` it would have sent for the name.
fn rtmp_app(path: &str, query: Option<&str>) -> String {
    let path = path.strip_prefix('/').unwrap_or(path);
    let app = match path.split_once('/') {
        None => path.to_owned(),
        Some((first, rest)) => match rest.split_once('/') {
            Some((second, _)) if !second.contains(':') => format!("{first}/{second}"),
            _ => first.to_owned(),
        },
    };
    // A query on a one-segment path belongs to the application, as FFmpeg reads it.
    match query {
        Some(q) if !path.contains('/') => format!("{app}?{q}"),
        _ => app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(5);

    #[test]
    fn every_spelling_of_loopback_is_refused_after_resolving() {
        for host in ["127.0.0.1", "127.1", "0x7f.0.0.1", "0177.0.0.1", "127.000.000.001", "2130706433", "localhost"] {
            let url = format!("rtmp://{host}:1935/live/key");
            assert_eq!(pin(&url, AddressPolicy::PublicOnly, 0, BUDGET).unwrap_err(), AddressError::NotAllowed, "{url}");
        }
        for url in ["rtmp://[::1]/live/key", "rtmp://[::ffff:127.0.0.1]/live/key", "rtmp://169.254.43518/live/key"] {
            assert_eq!(pin(url, AddressPolicy::PublicOnly, 0, BUDGET).unwrap_err(), AddressError::NotAllowed, "{url}");
        }
    }

    #[test]
    fn an_allowed_url_is_pinned_to_the_address_with_the_name_kept_for_the_server() {
        let p = pin("rtmp://localhost:19350/live/secret", AddressPolicy::Any, 0, BUDGET).unwrap();
        assert!(p.address.ip().is_loopback());
        assert!(p.url.ends_with(":19350/live/secret"), "{}", p.url);
        assert!(!p.url.contains("localhost"), "{}", p.url);
        assert_eq!(p.io, vec![("rtmp_tcurl".to_owned(), "rtmp://localhost:19350/live".to_owned())]);

        let p = pin("rtmps://localhost/app/inst/key", AddressPolicy::Any, 0, BUDGET).unwrap();
        assert_eq!(p.address.port(), 443);
        assert!(p.io.contains(&("rtmp_tcurl".to_owned(), "rtmps://localhost:443/app/inst".to_owned())));
        assert!(p.io.contains(&("verifyhost".to_owned(), "localhost".to_owned())));
    }

    #[test]
    fn rtmp_application_is_read_as_ffmpeg_reads_it() {
        assert_eq!(rtmp_app("/live2/abcd-efgh", None), "live2");
        assert_eq!(rtmp_app("/app/instance/key", None), "app/instance");
        assert_eq!(rtmp_app("/vod/mp4:file/x", None), "vod");
        assert_eq!(rtmp_app("/live", Some("a=1")), "live?a=1");
    }

    #[test]
    fn an_unresolvable_name_is_a_dns_error_not_a_refusal() {
        let e = pin("rtmp://no-such-host.invalid/live/key", AddressPolicy::PublicOnly, 0, BUDGET).unwrap_err();
        assert!(matches!(e, AddressError::Dns(_)), "{e:?}");
    }
}
