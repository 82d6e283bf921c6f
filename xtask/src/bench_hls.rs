//! `cargo xtask bench hls`: what serving the watch page's HLS stream costs. A release `backyard` goes live (no
//! destination, the show open to viewers); 200 simulated viewers then play it as hls.js does: each keeps one
//! HTTP/1.1 connection, reloads the playlist every second and fetches each new segment once. The same viewers
//! then play the same folder served by nginx (`sendfile on`, one worker), side by side in the same run.
//!
//! The cost is the CPU of the threads that serve HTTP: for backyard its tokio threads (workers and the blocking
//! pool that reads files), less what they use over the same time with no viewer (the program's status messages);
//! for nginx its worker process. The program's own threads (compositor, encoder, HLS muxer) are not serving
//! and are left out; `server total` shows the whole process for reference.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{Api, curl, free_port, start_server};
use crate::bench_sfu::{clock_ticks, cpu_seconds, stat_cpu_seconds};
use crate::{cargo_cmd, root, setup, status};

const VIEWERS: usize = 200;
const WINDOW: Duration = Duration::from_secs(20);
/// Goal: serving 200 viewers costs at most this share of one core.
const GOAL_CORE_SHARE: f64 = 0.05;

/// CPU seconds of the threads of `pid` whose name starts with `prefix`.
fn threads_cpu(pid: u32, prefix: &str, ticks: f64) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let name = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map_or("", |(n, _)| n);
        if name.starts_with(prefix) {
            total += stat_cpu_seconds(&stat, ticks)?;
        }
    }
    Ok(total)
}

/// One keep-alive HTTP/1.1 connection that GETs bodies with a Content-Length.
struct Conn {
    addr: String,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn get(&mut self, path: &str) -> anyhow::Result<(u16, usize, Vec<u8>)> {
        if self.reader.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.set_nodelay(true)?;
            self.reader = Some(BufReader::new(s));
        }
        let result = (|| {
            let reader = self.reader.as_mut().context("connected")?;
            write!(reader.get_mut(), "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let code: u16 = line.split_whitespace().nth(1).context("status line")?.parse()?;
            let mut length = None;
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = Some(v.trim().parse::<usize>()?);
                }
            }
            let n = length.context("no Content-Length")?;
            let mut body = vec![0; n];
            reader.read_exact(&mut body)?;
            Ok((code, n, body))
        })();
        if result.is_err() {
            self.reader = None;
        }
        result
    }
}

#[derive(Default)]
struct Counts {
    playlists: AtomicU64,
    segments: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

/// `VIEWERS` threads playing `playlist` (segments are named relative to it) on `addr` for `window`.
fn play(addr: &str, playlist: &str, window: Duration) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let dir = playlist.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
    let mut threads = Vec::new();
    for i in 0..VIEWERS {
        let (addr, playlist, dir, counts, stop) =
            (addr.to_owned(), playlist.to_owned(), dir.clone(), counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            // Viewers arrive over the first second.
            std::thread::sleep(Duration::from_millis((i * 1000 / VIEWERS) as u64));
            let mut conn = Conn { addr, reader: None };
            let mut last = String::new();
            let mut init = false;
            while !stop.load(Ordering::Relaxed) {
                let tick = Instant::now();
                match conn.get(&playlist) {
                    Ok((200, _, body)) => {
                        counts.playlists.fetch_add(1, Ordering::Relaxed);
                        let text = String::from_utf8_lossy(&body);
                        let newest = text.lines().rfind(|l| l.ends_with(".m4s")).unwrap_or("").to_owned();
                        let mut wanted = Vec::new();
                        if !init {
                            wanted.push("init.mp4".to_owned());
                        }
                        if !newest.is_empty() && newest != last {
                            wanted.push(newest.clone());
                        }
                        for name in wanted {
                            match conn.get(&format!("{dir}/{name}")) {
                                Ok((200, n, _)) => {
                                    counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
                                    if name == "init.mp4" {
                                        init = true;
                                    } else {
                                        counts.segments.fetch_add(1, Ordering::Relaxed);
                                        last = name;
                                    }
                                }
                                _ => {
                                    counts.errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    _ => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
            }
        }));
    }
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    counts
}

struct Row {
    server: &'static str,
    serving_cpu: f64,
    total_cpu: f64,
    counts: Arc<Counts>,
}

impl Row {
    fn core_share(&self) -> f64 {
        self.serving_cpu / WINDOW.as_secs_f64()
    }
    fn mbps(&self) -> f64 {
        self.counts.bytes.load(Ordering::Relaxed) as f64 * 8.0 / 1e6 / WINDOW.as_secs_f64()
    }
}

/// An nginx serving `root` at `/hls/` on a free port, one worker, killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_nginx(root_dir: &Path) -> anyhow::Result<Nginx> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("backyard-bench-nginx-{port}"));
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n  client_body_temp_path {dir};\n\
           types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; video/mp4 mp4; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location /hls/ {{ alias {root}/; add_header Cache-Control no-cache; }}\n  }}\n}}\n",
        dir = dir.display(),
        root = root_dir.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let child = Command::new("nginx")
        .args(["-p", &dir.display().to_string(), "-c", &dir.join("nginx.conf").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx")?;
    let nginx = Nginx { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(nginx)
}

/// nginx's worker processes (children of the master).
fn nginx_workers(master: u32) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-P", &master.to_string()]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

pub fn run() -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    setup::ensure_apt(&["curl", "nginx", "procps"])?;
    status(cargo_cmd().args(["build", "--release", "-p", "backyard", "--bin", "backyard"]))?;
    let bin = root().join("target/release/backyard");
    let ticks = clock_ticks();
    let server = start_server(&bin, &[])?;
    let pid = server.child.id();
    let (api, id) = Api::seeded(&server.base)?;
    api.send("PATCH", &format!("/api/broadcasts/{id}"), Some(r#"{"settings":{"watch":"public"}}"#))?;
    api.send("POST", &format!("/api/broadcasts/{id}/start"), None)?;
    let playlist = format!("/api/watch/{id}/hls/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = curl(&["-fsS", &format!("{}{playlist}", server.base)]).unwrap_or_default();
        if text.lines().filter(|l| l.ends_with(".m4s")).count() >= 3 {
            break;
        }
        if Instant::now() > deadline {
            bail!("no HLS playlist with 3 segments after 30 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let addr = server.base.trim_start_matches("http://").to_owned();

    // What the serving threads use with nobody watching, over the same time.
    let (idle0, total0) = (threads_cpu(pid, "tokio", ticks)?, cpu_seconds(pid, ticks)?);
    std::thread::sleep(WINDOW);
    let idle = threads_cpu(pid, "tokio", ticks)? - idle0;
    let idle_total = cpu_seconds(pid, ticks)? - total0;

    let (s0, t0) = (threads_cpu(pid, "tokio", ticks)?, cpu_seconds(pid, ticks)?);
    let counts = play(&addr, &playlist, WINDOW);
    let backyard = Row {
        server: "backyard",
        serving_cpu: (threads_cpu(pid, "tokio", ticks)? - s0 - idle).max(0.0),
        total_cpu: cpu_seconds(pid, ticks)? - t0 - idle_total,
        counts,
    };

    let hls_dir = server.dir.join("hls").join(&id);
    let nginx = start_nginx(&hls_dir)?;
    let workers = nginx_workers(nginx.child.id());
    let nginx_cpu = |ws: &[u32]| -> f64 { ws.iter().filter_map(|w| cpu_seconds(*w, ticks).ok()).sum() };
    let n0 = nginx_cpu(&workers);
    let counts = play(&format!("127.0.0.1:{}", nginx.port), "/hls/index.m3u8", WINDOW);
    let n1 = nginx_cpu(&workers);
    let peer = Row { server: "nginx", serving_cpu: n1 - n0, total_cpu: n1 - n0, counts };
    drop(nginx);
    drop(server);

    println!(
        "\nbench hls: {VIEWERS} viewers (playlist every 1 s, each new segment once, keep-alive), {} s, release build, \
         720p30 program at 3 Mb/s; 2 cores shared by the server, the program's encode and the viewers",
        WINDOW.as_secs()
    );
    println!(
        "{:<10} {:>10} {:>10} {:>9} {:>8} {:>14} {:>16}   goal: serving <= {:.0} % of a core",
        "server",
        "playlists",
        "segments",
        "Mb/s",
        "errors",
        "serving core%",
        "process % > idle",
        GOAL_CORE_SHARE * 100.0
    );
    let mut json = String::from("{\n  \"bench\": \"hls\",\n  \"viewers\": 200,\n  \"results\": [\n");
    for (i, r) in [&backyard, &peer].iter().enumerate() {
        let c = &r.counts;
        println!(
            "{:<10} {:>10} {:>10} {:>9.1} {:>8} {:>14.2} {:>16.2}",
            r.server,
            c.playlists.load(Ordering::Relaxed),
            c.segments.load(Ordering::Relaxed),
            r.mbps(),
            c.errors.load(Ordering::Relaxed),
            r.core_share() * 100.0,
            r.total_cpu / WINDOW.as_secs_f64() * 100.0
        );
        json += &format!(
            "    {{\"server\": \"{}\", \"playlists\": {}, \"segments\": {}, \"mbps\": {:.1}, \"errors\": {}, \"serving_core_share\": {:.4}}}{}\n",
            r.server,
            c.playlists.load(Ordering::Relaxed),
            c.segments.load(Ordering::Relaxed),
            r.mbps(),
            c.errors.load(Ordering::Relaxed),
            r.core_share(),
            if i == 0 { "," } else { "" }
        );
    }
    json += &format!("  ],\n  \"goal\": {{\"serving_core_share\": {GOAL_CORE_SHARE}}}\n}}\n");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("hls.json"), json)?;
    println!("wrote target/bench/hls.json");
    Ok(())
}
