//! `cargo xtask bench <name>`: benchmarks against real peers on loopback. Each prints a table and writes JSON
//! under `target/bench/`. Goals are targets to report against, not gates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{cargo_cmd, root, setup, status};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let which = args.first().map(String::as_str).unwrap_or("api");
    match which {
        "api" => api(),
        "sfu" => crate::bench_sfu::run(),
        "plugins" => crate::plugins::bench(),
        "program" => crate::bench_program::run(),
        "sync" => crate::bench_program::sync(),
        "hls" => crate::bench_hls::run(),
        "relay" => crate::bench_relay::run(),
        "latency" => crate::bench_program::latency(),
        "cluster" => crate::bench_program::cluster(),
        other => {
            bail!("unknown bench {other:?}; available: api, sfu, plugins, program, sync, hls, relay, latency, cluster")
        }
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A `backyard` process for the bench, killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn start_server(bin: &Path, envs: &[(&str, String)]) -> anyhow::Result<Server> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("backyard-bench-{port}"));
    std::fs::create_dir_all(&dir)?;
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.current_dir(root())
        .args(["--bind", &format!("127.0.0.1:{port}"), "--public-url", &base, "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .env("BACKYARD_LIMITS__AUTH_PER_MINUTE", "100000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().context("starting backyard")?;
    let server = Server { child, base, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if curl(&["-fsS", &format!("{}/healthz", server.base)]).is_ok() {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("backyard did not become healthy at {}", server.base)
}

pub(crate) fn curl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("curl").args(args).output().context("running curl")?;
    if !out.status.success() {
        bail!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A host signed in to a bench's server: JSON requests with the host's cookie and the server's origin.
pub(crate) struct Api {
    base: String,
    cookie: String,
    origin: String,
}

impl Api {
    /// Registers a host and creates a broadcast; returns the host's API and the broadcast id.
    pub(crate) fn seeded(base: &str) -> anyhow::Result<(Api, String)> {
        let (cookie, id) = seed(base)?;
        let api = Api {
            base: base.to_owned(),
            cookie: format!("Cookie: by_access={cookie}"),
            origin: format!("Origin: {base}"),
        };
        Ok((api, id))
    }

    /// `method path` with a JSON `body` (or none); the answer's body, or an error naming the request.
    pub(crate) fn send(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut args = vec!["-fsS", "-X", method, "-H", &self.cookie, "-H", &self.origin];
        if let Some(body) = body {
            args.extend(["-H", "content-type: application/json", "-d", body]);
        }
        args.push(&url);
        curl(&args)
    }
}

/// Registers a host, creates a broadcast; returns (access cookie, broadcast id).
pub(crate) fn seed(base: &str) -> anyhow::Result<(String, String)> {
    let jar = std::env::temp_dir().join(format!("backyard-bench-jar-{}", std::process::id()));
    let jar_s = jar.to_string_lossy().into_owned();
    curl(&[
        "-fsS",
        "-c",
        &jar_s,
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"email":"bench@example.com","password":"bench password","name":"Bench"}"#,
        &format!("{base}/api/auth/register"),
    ])?;
    let created = curl(&[
        "-fsS",
        "-b",
        &jar_s,
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"title":"bench"}"#,
        &format!("{base}/api/broadcasts"),
    ])?;
    let id = created.split("\"id\":\"").nth(1).and_then(|s| s.split('"').next()).context("broadcast id in response")?;
    let jar_text = std::fs::read_to_string(&jar)?;
    let _ = std::fs::remove_file(&jar);
    let access = jar_text
        .lines()
        .find_map(|l| {
            l.split('\t').collect::<Vec<_>>().windows(2).find(|w| w[0] == "by_access").map(|w| w[1].to_owned())
        })
        .context("access cookie")?;
    Ok((access, id.to_owned()))
}

struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn to_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

fn wrk(url: &str, cookie: &str, secs: u32) -> anyhow::Result<WrkResult> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{secs}s"), "--latency", "-H", &format!("Cookie: by_access={cookie}"), url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut r = WrkResult { rps: 0.0, p50_ms: f64::NAN, p99_ms: f64::NAN, errors: 0 };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => r.p50_ms = to_ms(v).unwrap_or(f64::NAN),
            ["99%", v] => r.p99_ms = to_ms(v).unwrap_or(f64::NAN),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    if r.rps == 0.0 {
        bail!("wrk produced no result:\n{text}");
    }
    Ok(r)
}

/// `GET /api/broadcasts/:id` with an authenticated cookie, wrk with one thread, on SQLite and on PostgreSQL.
fn api() -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    setup::ensure_apt(&["wrk", "curl"])?;
    let pg_url = setup::ensure_services()?;
    status(cargo_cmd().args(["build", "--release", "-p", "backyard", "--bin", "backyard"]))?;
    let bin = root().join("target/release/backyard");
    let secs = 10;
    let mut rows = Vec::new();

    for backend in ["sqlite", "postgres"] {
        let mut envs = vec![];
        let mut pg_db = None;
        if backend == "postgres" {
            let db = format!("backyard_bench_{}", std::process::id());
            let _ =
                Command::new("psql").args([pg_url.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {db}")]).status();
            status(Command::new("psql").args([pg_url.as_str(), "-qc", &format!("CREATE DATABASE {db}")]))?;
            let url = format!("{}/{db}", pg_url.rsplit_once('/').map(|p| p.0).unwrap_or(&pg_url));
            envs.push(("BACKYARD_DATABASE__URL", url));
            envs.push(("BACKYARD_SECRETS__JWT_KEY", "YmVuY2hiZW5jaGJlbmNoYmVuY2hiZW5jaGJlbmNoYmVuY2g=".into()));
            envs.push(("BACKYARD_SECRETS__STREAM_KEY_KEYS__K1", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into()));
            pg_db = Some(db);
        }
        let result = (|| -> anyhow::Result<WrkResult> {
            let server = start_server(&bin, &envs)?;
            let (cookie, id) = seed(&server.base)?;
            let url = format!("{}/api/broadcasts/{id}", server.base);
            // Warm up connections and caches.
            wrk(&url, &cookie, 2)?;
            wrk(&url, &cookie, secs)
        })();
        if let Some(db) = pg_db {
            let _ = Command::new("psql")
                .args([pg_url.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")])
                .status();
        }
        rows.push((backend, result?));
    }

    println!(
        "\nbench api: GET /api/broadcasts/:id, wrk -t1 -c32 -d{secs}s, release build, 2 cores shared by server and wrk"
    );
    println!(
        "{:<10} {:>12} {:>10} {:>10} {:>8}   goal (SQLite): >= 20000 req/s, p99 <= 10 ms",
        "backend", "req/s", "p50 ms", "p99 ms", "non-2xx"
    );
    let mut json =
        String::from("{\n  \"bench\": \"api\",\n  \"endpoint\": \"GET /api/broadcasts/:id\",\n  \"results\": [\n");
    for (i, (backend, r)) in rows.iter().enumerate() {
        println!("{:<10} {:>12.0} {:>10.2} {:>10.2} {:>8}", backend, r.rps, r.p50_ms, r.p99_ms, r.errors);
        json += &format!(
            "    {{\"backend\": \"{backend}\", \"requests_per_sec\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"non_2xx\": {}}}{}\n",
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    json += "  ],\n  \"goal\": {\"sqlite_requests_per_sec\": 20000, \"sqlite_p99_ms\": 10}\n}\n";
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("api.json"), json)?;
    println!("wrote target/bench/api.json");
    Ok(())
}
