//! `cargo xtask bench cluster`: forwarding across nodes against forwarding on one node, same load, same run.
//!
//! One publisher (a str0m client sending ~1.2 Mb/s of video in 5 kB frames at 30 fps, plus audio) and
//! `BENCH_SUBSCRIBERS` subscribers (default 4): first all on one media node ("local"), then the publisher on node A
//! and the subscribers on node B, joined by the QUIC relay ("relayed"). The media nodes (and their relays) run on a
//! runtime of their own whose threads are named `node`; the clients on another. CPU is read per thread from /proc
//! over `BENCH_SECS` (default 20) after 5 s of warm-up, so only the nodes' work counts. Each video payload
//! carries its send time, so every subscriber measures each frame's latency on the process's one clock.
//! Table on stdout, JSON in `target/bench/cluster.json`. Goals: CPU per forwarded Mbit/s relayed ≤ 1.3× local;
//! added latency ≤ 5 ms.

#[path = "../tests/router_support/mod.rs"]
mod router_support;

use std::time::Duration;

use anyhow::{Context, Result};
use backyard_core::relay::{Relay, RelayConfig};
use backyard_core::rtc::{MediaNode, NodeConfig};
use router_support::{Client, Source, wait_for};
use str0m::media::MediaKind;

/// One phase's measurements.
struct Phase {
    name: &'static str,
    /// Cores the node threads used.
    cores: f64,
    /// What the subscribers received of the publisher, Mbit/s (all of them together).
    forwarded_mbps: f64,
    /// Frame latency, publisher write → subscriber receive, ms: median and 90th percentile.
    median_ms: f64,
    p90_ms: f64,
    frames: usize,
}

impl Phase {
    fn cores_per_gbit(&self) -> f64 {
        self.cores / (self.forwarded_mbps / 1000.0)
    }
}

/// CPU seconds used so far by this process's threads named `prefix…` (from /proc/self/task).
fn threads_cpu(prefix: &str) -> Result<f64> {
    let ticks = 100.0; // the kernel's fixed USER_HZ
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let dir = entry?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        total += (field(11) + field(12)) / ticks;
    }
    Ok(total)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Bytes the subscribers received of `from` so far (audio and video).
fn bytes_received(subscribers: &[Client], from: &str) -> u64 {
    subscribers
        .iter()
        .map(|s| s.received(from, MediaKind::Audio).bytes + s.received(from, MediaKind::Video).bytes)
        .sum()
}

/// Each subscriber's video latencies of `from` so far, in µs, in arrival order.
fn latencies(subscribers: &[Client], from: &str) -> Vec<Vec<u32>> {
    subscribers.iter().map(|s| s.received(from, MediaKind::Video).latency_us).collect()
}

async fn measure(
    name: &'static str,
    publisher_node: &MediaNode,
    subscriber_node: &MediaNode,
    nodes: &tokio::runtime::Handle,
    subscribers: usize,
    secs: u64,
) -> Result<Phase> {
    let room = format!("bench-{name}");
    // Under the 1.5 Mb/s a new subscriber's link is first estimated at, so pacing does not queue the stream.
    let source = Source { audio_level: -30, video_frame_bytes: 5000 };
    let publisher = Client::join_on(publisher_node, Some(nodes), &room, "publisher", source).await?;
    let mut subs = vec![];
    for i in 0..subscribers {
        subs.push(Client::join_on(subscriber_node, Some(nodes), &room, &format!("sub{i}"), Source::default()).await?);
    }
    wait_for("every subscriber to get the publisher", Duration::from_secs(20), || {
        subs.iter().all(|s| s.received("publisher", MediaKind::Video).frames > 30)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let bytes0 = bytes_received(&subs, "publisher");
    let marks: Vec<usize> = latencies(&subs, "publisher").iter().map(Vec::len).collect();
    let cpu0 = threads_cpu("node")?;
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu1 = threads_cpu("node")?;
    let wall = t0.elapsed().as_secs_f64();
    let bytes1 = bytes_received(&subs, "publisher");
    let mut in_window: Vec<u32> =
        latencies(&subs, "publisher").into_iter().zip(marks).flat_map(|(l, mark)| l[mark..].to_vec()).collect();
    in_window.sort_unstable();
    for s in subs {
        s.leave().await?;
    }
    publisher.leave().await?;
    Ok(Phase {
        name,
        cores: (cpu1 - cpu0) / wall,
        forwarded_mbps: (bytes1 - bytes0) as f64 * 8.0 / wall / 1e6,
        median_ms: percentile(&in_window, 0.5),
        p90_ms: percentile(&in_window, 0.9),
        frames: in_window.len(),
    })
}

fn main() -> Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let subscribers: usize = std::env::var("BENCH_SUBSCRIBERS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let nodes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("node")
        .enable_all()
        .build()
        .context("the nodes' runtime")?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("clients")
        .enable_all()
        .build()
        .context("the clients' runtime")?;
    let handle = nodes.handle().clone();
    let bind = || MediaNode::bind(NodeConfig::new("127.0.0.1:0".parse().expect("an address")));
    let (a, b, relays) = nodes.block_on(async {
        let (a, b) = (bind().await?, bind().await?);
        let config = |node: &str| RelayConfig {
            node: node.into(),
            bind: "127.0.0.1:0".parse().expect("an address"),
            secret: b"a bench secret of the cluster".to_vec(),
        };
        let ra = Relay::start(config("node-a"), a.clone())?;
        let rb = Relay::start(config("node-b"), b.clone())?;
        ra.set_peers(&[("node-b".into(), rb.local_addr())]);
        anyhow::Ok((a, b, (ra, rb)))
    })?;
    let phases = clients.block_on(async {
        wait_for("the relays to connect", Duration::from_secs(10), || relays.0.connected() == ["node-b"]).await?;
        let local = measure("local", &a, &a, &handle, subscribers, secs).await?;
        let relayed = measure("relayed", &a, &b, &handle, subscribers, secs).await?;
        anyhow::Ok([local, relayed])
    })?;

    let [local, relayed] = &phases;
    let cost = relayed.cores_per_gbit() / local.cores_per_gbit();
    let added = relayed.median_ms - local.median_ms;
    println!(
        "\nbench cluster: 1 publisher (~1.2 Mb/s video + audio) → {subscribers} subscribers, {secs} s per phase, node threads only"
    );
    println!(
        "{:<8} {:>10} {:>14} {:>16} {:>11} {:>8} {:>8}",
        "phase", "cores", "forwarded Mb/s", "cores per Gb/s", "median ms", "p90 ms", "frames"
    );
    for p in &phases {
        println!(
            "{:<8} {:>10.4} {:>14.2} {:>16.3} {:>11.2} {:>8.2} {:>8}",
            p.name,
            p.cores,
            p.forwarded_mbps,
            p.cores_per_gbit(),
            p.median_ms,
            p.p90_ms,
            p.frames
        );
    }
    println!(
        "relayed / local CPU per forwarded Mb/s: {cost:.2}× (goal ≤ 1.3×); added median latency: {added:.2} ms (goal ≤ 5 ms)"
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    let row = |p: &Phase| {
        serde_json::json!({"phase": p.name, "cores": p.cores, "forwarded_mbps": p.forwarded_mbps,
            "cores_per_gbit": p.cores_per_gbit(), "median_ms": p.median_ms, "p90_ms": p.p90_ms, "frames": p.frames})
    };
    let json = serde_json::json!({
        "bench": "cluster",
        "subscribers": subscribers,
        "seconds": secs,
        "phases": phases.iter().map(row).collect::<Vec<_>>(),
        "relayed_over_local_cpu": cost,
        "added_median_latency_ms": added,
        "goal": {"relayed_over_local_cpu": 1.3, "added_latency_ms": 5},
    });
    std::fs::write(out.join("cluster.json"), serde_json::to_string_pretty(&json)?)?;
    println!("wrote target/bench/cluster.json");
    drop(relays);
    drop((a, b));
    nodes.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
