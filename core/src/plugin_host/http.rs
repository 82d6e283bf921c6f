//! The HTTP import for destination adapters: the host makes the request, and only to hosts the
//! manifest lists in `capabilities.allowed-hosts`. A plugin never gets a socket.

use std::io::Read;
use std::time::Duration;

use super::bindings::destination::backyard::plugin::http::{Header, HttpError, Request, Response};

/// Largest response body handed to a plugin.
const MAX_BODY: u64 = 1 << 20;
/// Connect and read timeouts; a destination call's own deadline also bounds the whole call.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The hosts one plugin may call, and the client that calls them.
pub(crate) struct HttpPolicy {
    allowed: Vec<String>,
    agent: ureq::Agent,
}

impl HttpPolicy {
    pub(crate) fn new(allowed: &[String]) -> HttpPolicy {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(TIMEOUT)
            .timeout_read(TIMEOUT)
            .timeout_write(TIMEOUT)
            .redirects(0)
            .build();
        HttpPolicy { allowed: allowed.iter().map(|h| h.to_ascii_lowercase()).collect(), agent }
    }

    /// True when `host` (and `port`) matches an entry: `name` (any port), `name:port`, or `*.domain`.
    pub(crate) fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed.iter().any(|entry| {
            let (name, p) = match entry.rsplit_once(':') {
                Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, p.parse::<u16>().ok()),
                _ => (entry.as_str(), None),
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            let name_ok = match name.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == name,
            };
            name_ok && p.is_none_or(|p| p == port)
        })
    }

    pub(crate) fn send(&self, req: Request) -> Result<Response, HttpError> {
        let url = url::Url::parse(&req.url).map_err(|e| HttpError::InvalidRequest(format!("bad URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(HttpError::InvalidRequest(format!("scheme '{}' is not http or https", url.scheme())));
        }
        let host = url.host_str().ok_or_else(|| HttpError::InvalidRequest("URL has no host".into()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        if !self.allows(host, port) {
            return Err(HttpError::NotAllowed(format!("host '{host}:{port}' is not in allowed-hosts")));
        }
        let method = req.method.to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str()) {
            return Err(HttpError::InvalidRequest(format!("method '{method}' is not allowed")));
        }
        let mut r = self.agent.request_url(&method, &url);
        for h in &req.headers {
            r = r.set(&h.name, &h.value);
        }
        let result = if req.body.is_empty() { r.call() } else { r.send_bytes(&req.body) };
        let resp = match result {
            Ok(resp) => resp,
            // A non-2xx status is still a response the plugin should see.
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => return Err(HttpError::Transport(e.to_string())),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| Header { name: n.clone(), value: v.to_string() }))
            .collect();
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        if body.len() as u64 > MAX_BODY {
            return Err(HttpError::Transport(format!("response body larger than {MAX_BODY} bytes")));
        }
        Ok(Response { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matching() {
        let p = HttpPolicy::new(&["api.example.com".into(), "*.cdn.example".into(), "127.0.0.1:8080".into()]);
        assert!(p.allows("api.example.com", 443));
        assert!(p.allows("API.example.com", 80));
        assert!(!p.allows("evil.example.com", 443));
        assert!(!p.allows("api.example.com.evil", 443));
        assert!(p.allows("a.cdn.example", 443));
        assert!(!p.allows("cdn.example", 443));
        assert!(p.allows("127.0.0.1", 8080));
        assert!(!p.allows("127.0.0.1", 8081));
    }
}
