//! The `backyard` binary as a process, for the tests that start, signal and kill real servers: a plain
//! HTTP/1.1 client and a start that waits for `/healthz`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

/// One HTTP/1.1 request to the server with the session cookie, if any; returns status, `Set-Cookie` values
/// and the JSON body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Vec<String>, Value)> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").context("an HTTP answer")?;
    let status: u16 = head.split(' ').nth(1).context("a status")?.parse()?;
    let cookies = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    // Chunked or not, the JSON object is between the first `{` and the last `}`.
    let json = match (rest.find('{'), rest.rfind('}')) {
        (Some(a), Some(b)) => serde_json::from_str(&rest[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Ok((status, cookies, json))
}

/// Starts `backyard serve` on a free loopback port with `data` as its data directory (and `config` as its
/// configuration file, if given); returns it and its address once `/healthz` answers.
pub fn start_server(data: &Path, config: Option<&Path>) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_backyard"));
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut server = command
        .args(["--bind", &addr, "--public-url", &format!("http://{addr}"), "--data-dir"])
        .arg(data)
        .arg("serve")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let up = Instant::now();
    while request(&addr, "GET", "/healthz", "", None).ok().map(|r| r.0) != Some(200) {
        if up.elapsed() > Duration::from_secs(60) {
            let _ = server.kill();
            anyhow::bail!("the server did not come up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((server, addr))
}
