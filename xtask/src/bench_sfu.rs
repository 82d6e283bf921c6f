//! `cargo xtask bench sfu`: the SFU's forwarding cost beside Janus, and the browser's join time, in two parts.
//!
//! (a) One publisher at ~2.5 Mb/s of video plus audio forwarded to N subscribers (N = 1, 10, 50), with the
//! clients (str0m, `gateway/examples/sfu_load.rs`) in their own process; the same load through a release
//! `backyard` (joining through the real `/ws` signaling, each as a guest through an invite, so no host starts the
//! room's program) and, side by side, through Janus 1.1's videoroom plugin
//! (Debian package `janus`, started here on loopback with only the videoroom plugin and the HTTP transport).
//! Each server's CPU is read from /proc around the same measured window; the forwarded rate is what the
//! subscribers received, so a server that forwards less than asked shows it (the `delivered` column: forwarded
//! over N × what the publisher sent). Both the server and the load generator share the machine's 2 cores, so
//! the numbers are a lower bound on what a server alone could do.
//!
//! (b) Chromium join → first remote frame (`e2e/bench/join.mjs`): a publisher page stays in the room, a second,
//! already open Chromium joins and leaves 10 times; from the click on Join to the first decoded frame of the
//! publisher's video, measured in the page.
//!
//! Table on stdout, JSON in `target/bench/sfu.json`. Environment: `BENCH_QUICK=1` (N = 1, 10; 5 s windows;
//! 5 joins), `BENCH_SFU_N=1,10,50`, `BENCH_SECS=10`, `BENCH_JOINS=10`, `BENCH_SFU_SKIP=janus|join` (comma list).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{curl, free_port, seed, start_server};
use crate::{cargo_cmd, root, setup, status};

/// The peer SFU's row for one subscriber count, or why it has none.
type PeerRow = Result<Row, String>;

/// One server at one N.
struct Row {
    forwarded_mbps: f64,
    /// What the publisher sent, so `forwarded / (N × sent)` is the share delivered.
    sent_mbps: f64,
    server_cores: f64,
    frames_per_sec: f64,
}

impl Row {
    fn per_core(&self) -> f64 {
        if self.server_cores > 0.0 { self.forwarded_mbps / self.server_cores } else { f64::NAN }
    }
    fn cores_per_gbit(&self) -> f64 {
        if self.forwarded_mbps > 0.0 { self.server_cores / (self.forwarded_mbps / 1000.0) } else { f64::NAN }
    }
    fn delivered(&self, n: usize) -> f64 {
        self.forwarded_mbps / (n as f64 * self.sent_mbps)
    }
    fn json(&self, n: usize) -> String {
        format!(
            "\"subscribers\": {n}, \"forwarded_mbps\": {:.3}, \"server_cores\": {:.4}, \"server_cores_per_gbit\": {:.4}, \"mbps_per_core\": {:.1}, \"frames_per_sec\": {:.1}, \"publisher_sent_mbps\": {:.3}, \"delivered\": {:.4}",
            self.forwarded_mbps,
            self.server_cores,
            self.cores_per_gbit(),
            self.per_core(),
            self.frames_per_sec,
            self.sent_mbps,
            self.delivered(n)
        )
    }
}

/// CPU time a process has used, in seconds (utime + stime of all its threads, from /proc/<pid>/stat).
pub(crate) fn cpu_seconds(pid: u32, ticks_per_sec: f64) -> anyhow::Result<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?, ticks_per_sec)
}

/// utime + stime of one `/proc/.../stat` line (a process's or, under `task/`, a thread's), in seconds.
pub(crate) fn stat_cpu_seconds(stat: &str, ticks_per_sec: f64) -> anyhow::Result<f64> {
    // The command name may contain spaces; fields after its closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').context("/proc stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / ticks_per_sec)
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Runs the load generator with `args` and measures the server `pid`'s CPU over its measured window.
fn measure(load: &Path, args: &[String], pid: u32, what: &str) -> anyhow::Result<Row> {
    let ticks = clock_ticks();
    let mut child = Command::new(load)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting sfu_load")?;
    let stdout = child.stdout.take().context("sfu_load stdout")?;
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
        bail!("sfu_load against {what} did not complete ({st})");
    };
    let field = |k: &str| -> anyhow::Result<f64> {
        let v = result.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).context(k.to_owned())?;
        Ok(v.parse()?)
    };
    Ok(Row {
        forwarded_mbps: field("forwarded_mbps")?,
        sent_mbps: field("sent_mbps")?,
        server_cores: (c1 - c0) / (t1 - t0).as_secs_f64(),
        frames_per_sec: field("frames_per_sec")?,
    })
}

/// Janus 1.1 on this host: a generated config folder with only the videoroom plugin and the HTTP transport (on
/// 127.0.0.1), logging to a file. Killed on drop.
///
/// ICE: libnice never gathers loopback candidates (with `ice_enforce_list = "lo"` Janus still offers only the
/// machine's other addresses, and checks against a client on 127.0.0.1 fail), so Janus is pinned to the host's
/// own IPv4 address (`ice_enforce_list`) and the load generator's clients bind to the same address. Packets to
/// one's own address never leave the host: the kernel delivers them through the loopback device, as for
/// backyard on 127.0.0.1.
struct Janus {
    child: Child,
    /// The HTTP API, e.g. `http://127.0.0.1:PORT/janus`.
    url: String,
    /// The address ICE runs on.
    ice_ip: String,
    dir: PathBuf,
}

/// The host's first non-loopback IPv4 address (`hostname -I`).
fn host_ipv4() -> anyhow::Result<String> {
    let out = Command::new("hostname").arg("-I").output().context("running hostname -I")?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .map(str::to_owned)
        .context("no non-loopback IPv4 address on this host for Janus's ICE (libnice skips loopback)")
}

impl Janus {
    fn start(log: &Path) -> anyhow::Result<Janus> {
        let ice_ip = host_ipv4()?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("backyard-bench-janus-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["conf", "plugins", "transports", "events", "loggers"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        // Only these two modules in the folders Janus loads everything from.
        let files = Command::new("dpkg-query").args(["-L", "janus"]).output().context("listing the janus package")?;
        let files = String::from_utf8_lossy(&files.stdout).into_owned();
        for (name, sub) in [("libjanus_videoroom.so", "plugins"), ("libjanus_http.so", "transports")] {
            let lib = files
                .lines()
                .find(|l| l.ends_with(&format!("/{name}")))
                .with_context(|| format!("{name} in the janus package"))?;
            std::os::unix::fs::symlink(lib, dir.join(sub).join(name))?;
        }
        let d = dir.display();
        std::fs::write(
            dir.join("conf/janus.jcfg"),
            format!(
                r#"general: {{
	configs_folder = "{d}/conf"
	plugins_folder = "{d}/plugins"
	transports_folder = "{d}/transports"
	events_folder = "{d}/events"
	loggers_folder = "{d}/loggers"
	debug_level = 4
	session_timeout = 60
	server_name = "backyard-bench"
}}
media: {{
	rtp_port_range = "10000-20000"
}}
nat: {{
	ice_enforce_list = "{ice_ip}"
	ignore_mdns = true
}}
plugins: {{}}
transports: {{}}
events: {{}}
loggers: {{}}
"#
            ),
        )?;
        std::fs::write(dir.join("conf/janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
        std::fs::write(
            dir.join("conf/janus.transport.http.jcfg"),
            format!(
                "general: {{\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n\tport = {port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\nadmin: {{\n\tadmin_http = false\n}}\n"
            ),
        )?;
        let _ = std::fs::remove_file(log);
        let child = Command::new("janus")
            .arg(format!("--configs-folder={d}/conf"))
            .arg(format!("--config={d}/conf/janus.jcfg"))
            .arg(format!("--log-file={}", log.display()))
            .args(["--disable-stdout", "--disable-colors"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting janus")?;
        let mut janus = Janus { child, url: format!("http://127.0.0.1:{port}/janus"), ice_ip, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = janus.child.try_wait()? {
                bail!("janus exited during start-up ({st}); see {}", log.display());
            }
            if curl(&["-fsS", &format!("{}/info", janus.url)]).is_ok_and(|b| b.contains("server_info")) {
                return Ok(janus);
            }
            if Instant::now() > deadline {
                bail!("janus did not answer {}/info within 30 s; see {}", janus.url, log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// Part (b)'s outcome: join → first remote frame, in ms.
struct Joins {
    samples: Vec<f64>,
    median: f64,
    p90: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Runs `e2e/bench/join.mjs` against a release backyard serving the studio.
fn join_bench(bin: &Path, joins: usize) -> anyhow::Result<Joins> {
    setup::ensure_apt(&["chromium", "ffmpeg"])?;
    crate::e2e::require_node()?;
    let e2e = root().join("e2e");
    crate::e2e::ensure_node_modules(&e2e)?;
    let server = start_server(bin, &[("BACKYARD_SERVER__STUDIO_DIR", root().join("studio").display().to_string())])?;
    let out = Command::new("node")
        .arg("bench/join.mjs")
        .current_dir(&e2e)
        .env("BACKYARD_URL", &server.base)
        .env("BENCH_JOINS", joins.to_string())
        .env("BACKYARD_E2E_SHOTS", root().join("target/bench"))
        .stderr(Stdio::inherit())
        .output()
        .context("running node bench/join.mjs")?;
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        bail!("e2e/bench/join.mjs failed ({})", out.status);
    }
    let mut samples: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("join-ms "))
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .context("join-ms lines")?;
    if samples.len() != joins {
        bail!("join.mjs reported {} joins, {joins} asked", samples.len());
    }
    let measured = samples.clone();
    samples.sort_by(f64::total_cmp);
    Ok(Joins { median: percentile(&samples, 50.0), p90: percentile(&samples, 90.0), samples: measured })
}

pub fn run() -> anyhow::Result<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let skip = env_list("BENCH_SFU_SKIP");
    let with_janus = !skip.iter().any(|s| s == "janus");
    let with_join = !skip.iter().any(|s| s == "join");
    let ns: Vec<usize> = match env_list("BENCH_SFU_N") {
        l if !l.is_empty() => l.iter().map(|s| s.parse()).collect::<Result<_, _>>().context("BENCH_SFU_N")?,
        _ if quick => vec![1, 10],
        _ => vec![1, 10, 50],
    };
    let seconds: u64 = match std::env::var("BENCH_SECS") {
        Ok(s) => s.parse().context("BENCH_SECS")?,
        Err(_) if quick => 5,
        Err(_) => 10,
    };
    let joins: usize = match std::env::var("BENCH_JOINS") {
        Ok(s) => s.parse().context("BENCH_JOINS")?,
        Err(_) if quick => 5,
        Err(_) => 10,
    };

    setup::ensure_build_tools()?;
    setup::ensure_apt(&["curl"])?;
    if with_janus {
        setup::ensure_apt(&["janus"])?;
    }
    status(cargo_cmd().args(["build", "--release", "-p", "backyard", "--bin", "backyard", "--example", "sfu_load"]))?;
    let bin = root().join("target/release/backyard");
    let load = root().join("target/release/examples/sfu_load");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    let common = |n: usize| {
        vec![
            "--subscribers".to_owned(),
            n.to_string(),
            "--seconds".into(),
            seconds.to_string(),
            "--warmup".into(),
            "2".into(),
            "--kbps".into(),
            "2500".into(),
        ]
    };

    // (a) Each server fresh for each N, one after the other, so they never share the machine.
    // Per subscriber count: Backyard's row and Janus's (if it ran; its error otherwise).
    let mut rows: Vec<(usize, Row, Option<PeerRow>)> = vec![];
    for &n in &ns {
        let server = start_server(&bin, &[("BACKYARD_LIMITS__MAX_PARTICIPANTS", (n + 8).to_string())])?;
        let (cookie, broadcast) = seed(&server.base)?;
        // Every client is a guest through an invite: no host in the room, so no program runs beside the SFU.
        let created = curl(&[
            "-fsS",
            "-H",
            &format!("cookie: by_access={cookie}"),
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"role":"guest"}"#,
            &format!("{}/api/broadcasts/{broadcast}/invites", server.base),
        ])?;
        let invite = created
            .split("\"token\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .context("invite token in response")?
            .to_owned();
        let ws = format!("{}/ws", server.base.replacen("http://", "ws://", 1));
        let mut args = vec!["--ws".to_owned(), ws, "--invite".into(), invite, "--broadcast".into(), broadcast];
        args.extend(common(n));
        let backyard = measure(&load, &args, server.child.id(), "backyard")?;
        drop(server);

        let janus = with_janus.then(|| {
            let log = out.join(format!("janus-n{n}.log"));
            let r = Janus::start(&log).and_then(|janus| {
                let mut args = vec!["--janus".to_owned(), janus.url.clone(), "--bind-ip".into(), janus.ice_ip.clone()];
                args.extend(common(n));
                measure(&load, &args, janus.child.id(), "janus")
            });
            r.map_err(|e| {
                eprintln!("bench sfu: Janus with {n} subscribers failed: {e:#} (log: {})", log.display());
                format!("{e:#}")
            })
        });
        rows.push((n, backyard, janus));
    }

    // (b)
    let join = with_join.then(|| join_bench(&bin, joins).map_err(|e| format!("{e:#}")));

    println!(
        "\nbench sfu (a): 1 publisher ~2.5 Mb/s VP8-typed video + Opus-typed audio -> N str0m subscribers; backyard \
         over /ws, Janus 1.1 videoroom over its HTTP API;\nrelease build, server and load generator sharing 2 cores, \
         {seconds} s window; delivered = forwarded / (N x publisher's rate)"
    );
    println!(
        "{:<9} {:>4} {:>10} {:>10} {:>8} {:>12} {:>10} {:>9}",
        "server", "N", "fwd Mb/s", "delivered", "cores", "cores/Gbit", "Mb/s/core", "frames/s"
    );
    let line = |name: &str, n: usize, r: &Row| {
        println!(
            "{:<9} {:>4} {:>10.1} {:>9.1}% {:>8.3} {:>12.3} {:>10.1} {:>9.0}",
            name,
            n,
            r.forwarded_mbps,
            r.delivered(n) * 100.0,
            r.server_cores,
            r.cores_per_gbit(),
            r.per_core(),
            r.frames_per_sec
        )
    };
    let mut ratios = vec![];
    for (n, by, janus) in &rows {
        line("backyard", *n, by);
        match janus {
            Some(Ok(j)) => {
                line("janus", *n, j);
                let ratio = by.cores_per_gbit() / j.cores_per_gbit();
                println!(
                    "{:<9} {:>4} backyard CPU per forwarded Gbit/s = {ratio:.2} x Janus's (goal <= 0.8)",
                    "ratio", n
                );
                ratios.push((*n, ratio));
            }
            Some(Err(e)) => println!("{:<9} {:>4} failed: {e}", "janus", n),
            None => {}
        }
    }
    println!("goals: backyard >= 1000 Mbit/s forwarded per core; <= 0.8 x Janus's CPU for the same forwarded load");
    match &join {
        Some(Ok(j)) => println!(
            "\nbench sfu (b): Chromium, browser open, click Join -> first remote frame decoded, {} joins: median {:.0} ms, \
             p90 {:.0} ms (goal: median <= 1000 ms)",
            j.samples.len(),
            j.median,
            j.p90
        ),
        Some(Err(e)) => println!("\nbench sfu (b): failed: {e}"),
        None => {}
    }

    let list = |items: Vec<String>| items.join(",\n");
    let mut json = String::from("{\n  \"bench\": \"sfu\",\n  \"part\": \"a+b\",\n");
    json += &format!("  \"seconds\": {seconds},\n  \"results\": [\n");
    json += &list(rows.iter().map(|(n, by, _)| format!("    {{{}}}", by.json(*n))).collect());
    json += "\n  ],\n  \"janus\": [\n";
    json += &list(
        rows.iter()
            .filter_map(|(n, _, j)| match j {
                Some(Ok(j)) => Some(format!("    {{{}}}", j.json(*n))),
                Some(Err(e)) => Some(format!("    {{\"subscribers\": {n}, \"error\": {}}}", json_str(e))),
                None => None,
            })
            .collect(),
    );
    json += "\n  ],\n  \"backyard_cpu_vs_janus\": [\n";
    json += &list(
        ratios.iter().map(|(n, r)| format!("    {{\"subscribers\": {n}, \"cpu_per_gbit_ratio\": {r:.4}}}")).collect(),
    );
    json += "\n  ],\n";
    match &join {
        Some(Ok(j)) => {
            json += &format!(
                "  \"join_first_frame_ms\": {{\"joins\": {}, \"median\": {:.1}, \"p90\": {:.1}, \"samples\": [{}]}},\n",
                j.samples.len(),
                j.median,
                j.p90,
                j.samples.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(", ")
            )
        }
        Some(Err(e)) => json += &format!("  \"join_first_frame_ms\": {{\"error\": {}}},\n", json_str(e)),
        None => {}
    }
    json += "  \"goal\": {\"mbps_per_core\": 1000, \"vs_janus_cpu\": 0.8, \"join_first_frame_median_ms\": 1000}\n}\n";
    std::fs::write(out.join("sfu.json"), json)?;
    println!("wrote target/bench/sfu.json");
    Ok(())
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o + "\""
}
