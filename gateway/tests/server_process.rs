//! The `backyard` binary as a process: SIGTERM during a live broadcast ends it as `POST /end` would (the
//! recording whole and playable, every row final before the process exits), and what its HTTP server refuses
//! before any handler runs.

mod common;
#[path = "../../core/tests/common/mod.rs"]
mod media;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use common::process::{request, start_server};
use serde_json::json;

#[test]
fn an_oversized_request_header_is_refused_before_any_handler() -> anyhow::Result<()> {
    let data = media::TempDir::new("headers")?;
    let (mut server, addr) = start_server(data.path(), None)?;
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
    let (mut server, addr) = start_server(data.path(), None)?;
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
