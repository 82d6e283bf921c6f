//! Installs what a fresh Debian machine lacks, only when it is missing: Debian packages, the wasm32-wasip2
//! target, and the local PostgreSQL and Redis the tests use.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Packages the build needs: the fast linker and FFmpeg's headers for ffmpeg-next.
pub const BUILD_PACKAGES: &[&str] = &[
    "clang",
    "mold",
    "pkg-config",
    "libavcodec-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswscale-dev",
    "libswresample-dev",
    "libavfilter-dev",
    "libavdevice-dev",
];

/// Real peers the tests and benches start on loopback.
pub const TEST_PACKAGES: &[&str] =
    &["ffmpeg", "nginx", "libnginx-mod-rtmp", "libnginx-mod-stream", "curl", "wrk", "coturn"];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the Debian packages that are not installed yet (one `apt-get update` first, only if needed).
pub fn ensure_apt(pkgs: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let sudo = if is_root() { vec![] } else { vec!["sudo"] };
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let mut all: Vec<&str> = sudo.clone();
        all.extend_from_slice(args);
        let st = Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("running {}", all.join(" ")))?;
        if !st.success() {
            bail!("{} failed ({st})", all.join(" "));
        }
        Ok(())
    };
    run(&["apt-get", "update", "-q"])?;
    let mut args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run(&args)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The wasm32-wasip2 target for plugins.
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output().context("running rustup")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") {
        return Ok(());
    }
    eprintln!("xtask: adding the wasm32-wasip2 target");
    crate::status(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))
}

pub fn ensure_build_tools() -> anyhow::Result<()> {
    ensure_apt(BUILD_PACKAGES)?;
    ensure_wasm_target()
}

/// rustfmt and clippy, which the test suite's gates run (rustup's default profile has them; a minimal one
/// does not).
pub fn ensure_lint_tools() -> anyhow::Result<()> {
    for (tool, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        let present = Command::new("cargo")
            .args([tool, "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            eprintln!("xtask: adding the {component} component");
            crate::status(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

pub fn ensure_all() -> anyhow::Result<()> {
    ensure_build_tools()?;
    ensure_apt(TEST_PACKAGES)?;
    ensure_services()?;
    Ok(())
}

fn tcp_open(addr: &str) -> bool {
    // unwrap: callers pass literal socket addresses.
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), std::time::Duration::from_secs(2)).is_ok()
}

fn wait_for(addr: &str, secs: u64) -> bool {
    for _ in 0..secs * 4 {
        if tcp_open(addr) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    false
}

/// The Redis the tests use (started by [`ensure_services`] when absent).
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// PostgreSQL on 127.0.0.1:5432 (user postgres, trust or password `postgres`) and Redis on 127.0.0.1:6379:
/// used if running, started if installed, installed if absent. Fails loudly if they still cannot be reached.
/// Returns the PostgreSQL URL the tests should use.
pub fn ensure_services() -> anyhow::Result<String> {
    if !tcp_open("127.0.0.1:6379") {
        ensure_apt(&["redis-server"])?;
        eprintln!("xtask: starting Redis on 127.0.0.1:6379");
        let _ = Command::new("redis-server")
            .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"])
            .status();
        if !wait_for("127.0.0.1:6379", 15) {
            bail!("Redis is required at 127.0.0.1:6379 and could not be started");
        }
    }
    if !tcp_open("127.0.0.1:5432") {
        ensure_apt(&["postgresql"])?;
        eprintln!("xtask: starting PostgreSQL on 127.0.0.1:5432");
        let versions =
            std::fs::read_dir("/etc/postgresql").context("no /etc/postgresql after installing postgresql")?;
        for v in versions.flatten() {
            let v = v.file_name().to_string_lossy().into_owned();
            let _ = Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &v, "main", "start"]).status();
        }
        if !wait_for("127.0.0.1:5432", 30) {
            bail!("PostgreSQL is required at 127.0.0.1:5432 and could not be started");
        }
    }
    // The checks below speak to the server through psql: a machine whose PostgreSQL runs elsewhere (a
    // container, another host's port) may not have the client yet.
    ensure_apt(&["postgresql-client"])?;
    let trust = "postgres://postgres@127.0.0.1:5432/postgres";
    if psql_ok(trust) {
        return Ok(trust.into());
    }
    let with_password = "postgres://postgres:postgres@127.0.0.1:5432/postgres";
    if psql_ok(with_password) {
        return Ok(with_password.into());
    }
    // A fresh Debian cluster: local peer auth works for the postgres OS user; give it a known password.
    let set =
        Command::new("su").args(["postgres", "-c", "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""]).status();
    if set.map(|s| s.success()).unwrap_or(false) && psql_ok(with_password) {
        return Ok(with_password.into());
    }
    bail!("PostgreSQL at 127.0.0.1:5432 refuses user postgres (tried trust and password); fix its pg_hba.conf")
}

fn psql_ok(url: &str) -> bool {
    Command::new("psql")
        .args([url, "-qtAc", "SELECT 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
