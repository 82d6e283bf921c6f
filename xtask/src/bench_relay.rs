//! `cargo xtask bench relay`: what relaying one encoder's stream to five destinations costs. ffmpeg publishes a
//! 3.2 Mb/s 720p30 H.264 + AAC stream (packets copied, in real time, looped) to a release `backyard`'s RTMP
//! ingest with a relay key; the broadcast has five RTMP destinations on one nginx-rtmp sink. The same stream then
//! goes through nginx-rtmp relaying it with five `push` directives to the same sink, side by side in the same run.
//!
//! The cost is the relaying process's CPU over the window: backyard's whole process less what it uses idle over
//! the same time, and the relaying nginx's single process (the sink's CPU is not counted for either). Backyard
//! also records what it relays (fragmented MP4), as every relay broadcast does; nginx records nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{Api, free_port, start_server};
use crate::bench_sfu::{clock_ticks, cpu_seconds};
use crate::{cargo_cmd, root, setup, status};

const OUTPUTS: usize = 5;
const WINDOW: Duration = Duration::from_secs(20);
const WARM_UP: Duration = Duration::from_secs(6);
/// Goal: backyard relays with at most this multiple of nginx-rtmp's CPU.
const GOAL_RATIO: f64 = 1.0;

/// A child process killed (and reaped) on drop.
struct Proc(Child, Option<PathBuf>);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// An nginx-rtmp with one `live` application on `port`, pushing to `push` URLs (none for the sink).
fn nginx(tag: &str, port: u16, push: &[String]) -> anyhow::Result<Proc> {
    let dir = std::env::temp_dir().join(format!("backyard-bench-relay-{tag}-{port}"));
    std::fs::create_dir_all(dir.join("logs"))?;
    let pushes: String = push.iter().map(|u| format!("      push {u};\n")).collect();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\ndaemon off;\nmaster_process off;\n\
         worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\nevents {{ worker_connections 256; }}\n\
         rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 4096;\n    application live {{\n      live on;\n      record off;\n{pushes}    }}\n  }}\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let child = Command::new("nginx")
        .args(["-p"])
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx")?;
    let proc = Proc(child, Some(dir));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(proc)
}

/// The encoder's stream: 30 s of 720p30 H.264 (High, B-frames, 2 s GOP) at 3 Mb/s and AAC at 160 kb/s.
fn clip() -> anyhow::Result<PathBuf> {
    let path = root().join("target/bench/relay-clip.flv");
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(path.parent().context("a folder")?)?;
    status(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2", "-g", "60"])
            .args(["-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "6000k", "-x264-params", "nal-hrd=cbr"])
            .args(["-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2", "-f", "flv"])
            .arg(&path),
    )?;
    Ok(path)
}

fn publish(clip: &Path, url: &str) -> anyhow::Result<Proc> {
    let child = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting ffmpeg")?;
    Ok(Proc(child, None))
}

/// CPU seconds `pid` spends over `window`.
fn cpu_over(pid: u32, window: Duration, ticks: f64) -> anyhow::Result<f64> {
    let start = cpu_seconds(pid, ticks)?;
    std::thread::sleep(window);
    Ok(cpu_seconds(pid, ticks)? - start)
}

/// Publishes seen by the sink so far (from its log at `info`: here counted from its connections instead).
fn sink_publishers(port: u16) -> usize {
    // `ss` lists the sink's established connections: one per output.
    let out = Command::new("ss").args(["-Htn", "state", "established", &format!("( sport = :{port} )")]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().count()).unwrap_or(0)
}

pub fn run() -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    setup::ensure_apt(&["curl", "nginx", "libnginx-mod-rtmp", "ffmpeg", "iproute2", "procps"])?;
    status(cargo_cmd().args(["build", "--release", "-p", "backyard", "--bin", "backyard"]))?;
    let bin = root().join("target/release/backyard");
    let ticks = clock_ticks();
    let clip = clip()?;
    let sink_port = free_port()?;
    let _sink = nginx("sink", sink_port, &[])?;

    // Backyard: an ingest key in relay mode, five destinations on the sink.
    let ingest_port = free_port()?;
    let server = start_server(
        &bin,
        &[
            ("BACKYARD_INGEST__RTMP_BIND", format!("127.0.0.1:{ingest_port}")),
            ("BACKYARD_DESTINATIONS__RTMP__ALLOW-PRIVATE-HOSTS", "true".into()),
        ],
    )?;
    let pid = server.child.id();
    let (api, id) = Api::seeded(&server.base)?;
    let post = |path: &str, body: &str| api.send("POST", path, Some(body));
    for i in 0..OUTPUTS {
        post(
            &format!("/api/broadcasts/{id}/destinations"),
            &format!(
                r#"{{"platform":"rtmp","name":"out {i}","rtmpUrl":"rtmp://127.0.0.1:{sink_port}/live","streamKey":"by{i}"}}"#
            ),
        )?;
    }
    let created = post(&format!("/api/broadcasts/{id}/ingest-keys"), r#"{"label":"bench"}"#)?;
    let key = created.split("\"key\":\"").nth(1).and_then(|s| s.split('"').next()).context("the key in the answer")?;

    let idle = cpu_over(pid, WINDOW, ticks)?;
    let encoder = publish(&clip, &format!("rtmp://127.0.0.1:{ingest_port}/live/{key}"))?;
    std::thread::sleep(WARM_UP);
    let outs_backyard = sink_publishers(sink_port);
    let busy = cpu_over(pid, WINDOW, ticks)?;
    drop(encoder);
    drop(server);
    let backyard = (busy - idle).max(0.0) / WINDOW.as_secs_f64();

    // nginx-rtmp relaying the same stream to the same sink.
    std::thread::sleep(Duration::from_secs(2));
    let relay_port = free_port()?;
    let pushes: Vec<String> = (0..OUTPUTS).map(|i| format!("rtmp://127.0.0.1:{sink_port}/live/ng{i}")).collect();
    let relay = nginx("relay", relay_port, &pushes)?;
    let encoder = publish(&clip, &format!("rtmp://127.0.0.1:{relay_port}/live/in"))?;
    std::thread::sleep(WARM_UP);
    let outs_nginx = sink_publishers(sink_port);
    let nginx_cpu = cpu_over(relay.0.id(), WINDOW, ticks)? / WINDOW.as_secs_f64();
    drop(encoder);
    drop(relay);

    let ratio = if nginx_cpu > 0.0 { backyard / nginx_cpu } else { f64::INFINITY };
    println!(
        "\nbench relay: 1 RTMP stream in (720p30 H.264 High + AAC, 3.2 Mb/s, packets copied) → {OUTPUTS} RTMP outputs, \
         {} s after {} s of warm-up, release build, 2 cores shared by encoder, relay and sink",
        WINDOW.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "{:<10} {:>8} {:>14}   goal: backyard <= {GOAL_RATIO:.1}x nginx-rtmp",
        "relay", "outputs", "core % (busy)"
    );
    println!("{:<10} {:>8} {:>14.2}", "backyard", outs_backyard, backyard * 100.0);
    println!("{:<10} {:>8} {:>14.2}", "nginx", outs_nginx, nginx_cpu * 100.0);
    println!("backyard / nginx: {ratio:.2}x");
    let json = format!(
        "{{\n  \"bench\": \"relay\",\n  \"outputs\": {OUTPUTS},\n  \"window_secs\": {},\n  \"results\": [\n    \
         {{\"server\": \"backyard\", \"outputs_seen\": {outs_backyard}, \"core_share\": {backyard:.4}}},\n    \
         {{\"server\": \"nginx\", \"outputs_seen\": {outs_nginx}, \"core_share\": {nginx_cpu:.4}}}\n  ],\n  \
         \"ratio\": {ratio:.3},\n  \"goal_ratio\": {GOAL_RATIO}\n}}\n",
        WINDOW.as_secs()
    );
    let out = root().join("target/bench/relay.json");
    std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
