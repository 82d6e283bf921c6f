//! The `backyard` binary as a process: SIGTERM during a live broadcast ends it as `POST /end` would (the
//! recording whole and playable, every row final before the process exits), and what its HTTP server refuses
//! before any handler runs.

#[path = "../../core/tests/common/mod.rs"]
mod media;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

/// One HTTP/1.1 request to the server with the session cookie, if any; returns status, `Set-Cookie` values
/// and the JSON body.
fn request(
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

/// Starts `backyard serve` on a free loopback port with `data` as its data directory; returns it and its
/// address once `/healthz` answers.
fn start_server(data: &std::path::Path) -> anyhow::Result<(std::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_backyard"))
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

#[test]
fn an_oversized_request_header_is_refused_before_any_handler() -> anyhow::Result<()> {
    let data = media::TempDir::new("headers")?;
    let (mut server, addr) = start_server(data.path())?;
    let mut tcp = TcpStream::connect(&addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let big = "x".repeat(200 * 1024);
    // The server may answer and close before the whole header is written.
    let _ = write!(tcp, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    let _ = server.kill();
    let _ = server.wait();
    ensure!(!answer.starts_with("HTTP/1.1 200"), "a 200 KB header was accepted");
    ensure!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{}", answer.lines().next().unwrap_or_default());
    Ok(())
}

#[test]
fn sigterm_during_a_live_broadcast_finalises_the_recording_and_the_rows() -> anyhow::Result<()> {
    let data = media::TempDir::new("shutdown")?;
    let (mut server, addr) = start_server(data.path())?;
    let (status, cookies, _) = request(
        &addr,
        "POST",
        "/api/auth/register",
        "",
        Some(json!({"email": "stop@example.com", "password": "a long enough password", "name": "Stop"})),
    )?;
    ensure!(status == 201 || status == 200, "register: {status}");
    let cookie = cookies.join("; ");
    let (status, _, broadcast) =
        request(&addr, "POST", "/api/broadcasts", &cookie, Some(json!({"title": "Stopping show"})))?;
    ensure!(status == 201, "create: {status} {broadcast}");
    let id = broadcast["id"].as_str().context("an id")?.to_owned();
    let (status, _, live) = request(&addr, "POST", &format!("/api/broadcasts/{id}/start"), &cookie, None)?;
    ensure!(status == 200 && live["status"] == "live", "start: {status} {live}");
    std::thread::sleep(Duration::from_secs(4));

    let stopped = Command::new("kill").args(["-TERM", &server.id().to_string()]).status()?;
    ensure!(stopped.success(), "kill -TERM failed");
    let asked = Instant::now();
    let exit = loop {
        if let Some(status) = server.try_wait()? {
            break status;
        }
        if asked.elapsed() > Duration::from_secs(40) {
            let _ = server.kill();
            anyhow::bail!("the server did not stop within 40 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(exit.success(), "the server exited with {exit}");

    // The rows, read straight from the embedded database the process left (readable by its user only).
    let db = data.path().join("backyard.db");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&db)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "the database file is {mode:o}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (broadcast_status, recordings): (String, Vec<(String, f64, i64)>) = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
        let (b,): (String,) = sqlx::query_as("SELECT status FROM broadcasts").fetch_one(&pool).await?;
        let r = sqlx::query_as("SELECT status, duration, file_size FROM recordings").fetch_all(&pool).await?;
        anyhow::Ok((b, r))
    })?;
    ensure!(broadcast_status == "ended", "broadcast left {broadcast_status}");
    ensure!(recordings.len() == 1, "{recordings:?}");
    let (status, duration, size) = &recordings[0];
    ensure!(status == "ready" && *duration > 2.0 && *size > 10_000, "recording row not final: {recordings:?}");
    let files: Vec<_> = std::fs::read_dir(data.path().join("recordings"))?.flatten().map(|e| e.path()).collect();
    ensure!(files.len() == 1, "{files:?}");
    let p = media::probe(&files[0])?;
    ensure!(p.video_codec == "h264" && p.audio_codec == "aac", "{p:?}");
    ensure!(
        (p.duration - duration).abs() < 1.0 && p.duration > 2.0,
        "file plays {} s, row says {duration}",
        p.duration
    );
    Ok(())
}
