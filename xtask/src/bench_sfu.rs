//! `cargo xtask bench sfu`, part (a): one publisher at ~2.5 Mb/s of video plus audio forwarded to N subscribers
//! (N = 1, 10, 50) by a release `backyard`, with the clients (str0m, `gateway/examples/sfu_load.rs`) in their
//! own process joining through the real `/ws` signaling. Reports the server's CPU (from /proc) per forwarded
//! Mbit/s and forwarded Mbit/s per core. Both processes share the machine's 2 cores, so the numbers are a lower
//! bound on what the server alone could do.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::bench::{seed, start_server};
use crate::{cargo_cmd, root, setup, status};

struct Row {
    subscribers: usize,
    forwarded_mbps: f64,
    server_cores: f64,
    frames_per_sec: f64,
}

/// CPU time a process has used, in seconds (utime + stime from /proc/<pid>/stat).
fn cpu_seconds(pid: u32, ticks_per_sec: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; fields after its closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').context("/proc stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / ticks_per_sec)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn run() -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    setup::ensure_apt(&["curl"])?;
    status(cargo_cmd().args(["build", "--release", "-p", "backyard", "--bin", "backyard", "--example", "sfu_load"]))?;
    let bin = root().join("target/release/backyard");
    let load = root().join("target/release/examples/sfu_load");
    let ticks = clock_ticks();
    let seconds = 10;
    let mut rows = vec![];
    for n in [1usize, 10, 50] {
        let server = start_server(&bin, &[("BACKYARD_LIMITS__MAX_PARTICIPANTS", "128".into())])?;
        let (token, broadcast) = seed(&server.base)?;
        let ws = format!("{}/ws", server.base.replacen("http://", "ws://", 1));
        let mut child = Command::new(&load)
            .args(["--ws", &ws, "--token", &token, "--broadcast", &broadcast, "--subscribers", &n.to_string()])
            .args(["--seconds", &seconds.to_string(), "--warmup", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting sfu_load")?;
        let stdout = child.stdout.take().context("sfu_load stdout")?;
        let pid = server.child.id();
        let (mut start, mut end) = (None, None);
        let mut result = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match line.as_str() {
                "measure-start" => start = Some((Instant::now(), cpu_seconds(pid, ticks)?)),
                "measure-end" => end = Some((Instant::now(), cpu_seconds(pid, ticks)?)),
                l if l.starts_with("result ") => result = Some(l.to_owned()),
                _ => {}
            }
        }
        let st = child.wait()?;
        let (Some((t0, c0)), Some((t1, c1)), Some(result)) = (start, end, result) else {
            bail!("sfu_load with {n} subscribers did not complete ({st})");
        };
        let field = |k: &str| -> anyhow::Result<f64> {
            let v = result.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).context(k.to_owned())?;
            Ok(v.parse()?)
        };
        rows.push(Row {
            subscribers: n,
            forwarded_mbps: field("forwarded_mbps")?,
            server_cores: (c1 - c0) / (t1 - t0).as_secs_f64(),
            frames_per_sec: field("frames_per_sec")?,
        });
        drop(server);
    }

    println!(
        "\nbench sfu (a): 1 publisher ~2.5 Mb/s VP8-typed video + Opus-typed audio -> N str0m subscribers over /ws,\n\
         release build, server and load generator sharing 2 cores, {seconds} s window"
    );
    println!(
        "{:>11} {:>14} {:>13} {:>18} {:>15} {:>12}   goal: >= 1000 Mbit/s per core",
        "subscribers", "forwarded Mb/s", "server cores", "cores per Gbit/s", "Mbit/s per core", "frames/s"
    );
    let mut json = String::from("{\n  \"bench\": \"sfu\",\n  \"part\": \"a\",\n  \"results\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let per_core = if r.server_cores > 0.0 { r.forwarded_mbps / r.server_cores } else { f64::NAN };
        let per_gbit = if r.forwarded_mbps > 0.0 { r.server_cores / (r.forwarded_mbps / 1000.0) } else { f64::NAN };
        println!(
            "{:>11} {:>14.1} {:>13.3} {:>18.3} {:>15.1} {:>12.0}",
            r.subscribers, r.forwarded_mbps, r.server_cores, per_gbit, per_core, r.frames_per_sec
        );
        json += &format!(
            "    {{\"subscribers\": {}, \"forwarded_mbps\": {:.3}, \"server_cores\": {:.4}, \"server_cores_per_gbit\": {:.4}, \"mbps_per_core\": {:.1}, \"frames_per_sec\": {:.1}}}{}\n",
            r.subscribers,
            r.forwarded_mbps,
            r.server_cores,
            per_gbit,
            per_core,
            r.frames_per_sec,
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    json +=
        "  ],\n  \"goal\": {\"mbps_per_core\": 1000, \"vs_janus_cpu\": 0.8},\n  \"janus\": \"not measured yet\"\n}\n";
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("sfu.json"), json)?;
    println!("wrote target/bench/sfu.json");
    Ok(())
}
