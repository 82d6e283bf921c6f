//! `cargo xtask bench program`: the program (compositor + encode once + 3 RTMP + fMP4) against the ffmpeg
//! CLI doing the same job, both on real nginx-rtmp servers. The bench itself is `core/benches/program.rs`;
//! `BENCH_SECS` sets each phase's length.

use anyhow::{Context as _, bail};

use crate::{cargo_cmd, setup};

pub fn run() -> anyhow::Result<()> {
    // The layout plugin's per-call time is part of the table.
    crate::plugins::build_plugins(false)?;
    core_bench("program")
}

/// `cargo xtask bench sync`: A/V sync of two sources with clocks ±0.1 % off over `BENCH_SECS` (default
/// 600) real seconds, measured in what nginx received (`core/benches/sync.rs`).
pub fn sync() -> anyhow::Result<()> {
    core_bench("sync")
}

/// `cargo xtask bench latency`: RTMP encoder → studio over WebRTC (forwarded and transcoded) and → program →
/// WHEP viewer, read from a frame counter (`gateway/benches/latency.rs`).
pub fn latency() -> anyhow::Result<()> {
    crate::plugins::build_plugins(false)?;
    bench("backyard", "latency")
}

/// `cargo xtask bench cluster`: forwarding across two nodes over the QUIC relay against one node, same load
/// (`core/benches/cluster.rs`); then five `kill -9`s of a live show's home node, timed (two `backyard`
/// processes on PostgreSQL and Redis, nginx-rtmp as the destination: `bench_failover_after_kill_9` in
/// `gateway/tests/cluster.rs`, run only here).
pub fn cluster() -> anyhow::Result<()> {
    core_bench("cluster")?;
    crate::plugins::build_plugins(false)?;
    let pg_url = setup::ensure_services()?;
    let status = cargo_cmd()
        .args(["test", "-p", "backyard", "--test", "cluster", "--", "--ignored", "--exact"])
        .args(["bench_failover_after_kill_9", "--nocapture"])
        .env("BY_TEST_PG_URL", &pg_url)
        .env("BY_TEST_REDIS_URL", setup::REDIS_URL)
        .status()
        .context("starting the failover bench")?;
    if !status.success() {
        bail!("bench failover failed");
    }
    Ok(())
}

fn core_bench(name: &str) -> anyhow::Result<()> {
    bench("backyard-core", name)
}

fn bench(package: &str, name: &str) -> anyhow::Result<()> {
    setup::ensure_apt(&["ffmpeg", "nginx", "libnginx-mod-rtmp"])?;
    let status =
        cargo_cmd().args(["bench", "-p", package, "--bench", name]).status().context("starting cargo bench")?;
    if !status.success() {
        bail!("bench {name} failed");
    }
    Ok(())
}
