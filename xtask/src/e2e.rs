//! `cargo xtask e2e`: the browser end-to-end tests in `e2e/` (`node --test` driving Debian's Chromium through
//! playwright-core) against a backyard this task builds and starts on loopback with a fresh data directory.
//!
//! Installs what is missing first: the apt packages `chromium`, `ffmpeg` (the tests make their fake-camera
//! clips with it and read back what a destination received) and `nginx` + `libnginx-mod-rtmp` (the destination
//! the program test goes live to), and `e2e/node_modules` from the lockfile. Screenshots land in `target/e2e/`,
//! the server's log in `target/e2e/backyard.log`.
//!
//! The suites: `room` (issue 4: three people see, hear and chat with each other), `program` (issue 6: go live
//! from the studio to nginx-rtmp), `auth` (entry screens: sign in, register, bad invite links), `layout` (the
//! studio's stage placements, no browser).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{cargo_cmd, ensure_apt, root, status};

/// How long a freshly started backyard may take to answer `/healthz` (migrations on a new SQLite file included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `cargo xtask e2e [suite...]`: every suite, or only the named ones (`room`, `program`, `auth`, `layout`).
pub fn cmd(args: &[String]) -> Result<()> {
    let suites: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&root(), &suites)
}

/// Runs the browser suites named in `suites` (e.g. `["room"]`: `e2e/tests/room.test.mjs`), or all of them when
/// `suites` is empty. `root` is the workspace root.
pub fn run(root: &Path, suites: &[&str]) -> Result<()> {
    ensure_apt(&["chromium", "ffmpeg", "nginx", "libnginx-mod-rtmp"])?;
    require_node()?;
    let e2e = root.join("e2e");
    ensure_node_modules(&e2e)?;
    let bin = build_backyard(root)?;
    let out = root.join("target").join("e2e");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let server = Backyard::start(root, &bin, &out)?;
    println!("e2e: backyard at {} (log: {})", server.url, server.log.display());
    let files: Vec<String> = if suites.is_empty() {
        vec!["tests/".into()]
    } else {
        suites.iter().map(|s| format!("tests/{s}.test.mjs")).collect()
    };
    for f in &files {
        if !e2e.join(f).exists() {
            bail!("no browser suite {f} in {}", e2e.display());
        }
    }
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .args(&files)
        .current_dir(&e2e)
        .env("BACKYARD_URL", &server.url)
        .env("BACKYARD_E2E_SHOTS", &out)
        .status()
        .context("running node --test")?;
    drop(server);
    if !status.success() {
        bail!("browser end-to-end tests failed ({status}); screenshots and the server log are in {}", out.display());
    }
    Ok(())
}

fn require_node() -> Result<()> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => {
            ensure_apt(&["nodejs", "npm"])?;
            Ok(())
        }
    }
}

/// `npm ci` from the lockfile when playwright-core is not installed yet (it never downloads a browser:
/// the tests use Debian's /usr/bin/chromium).
fn ensure_node_modules(e2e: &Path) -> Result<()> {
    if e2e.join("node_modules").join("playwright-core").join("package.json").exists() {
        return Ok(());
    }
    println!("e2e: installing node modules in {}", e2e.display());
    status(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(e2e))
}

/// Builds the `backyard` binary (with the shared linker settings) and returns its path.
fn build_backyard(root: &Path) -> Result<PathBuf> {
    status(cargo_cmd().args(["build", "-p", "backyard", "--bin", "backyard"]))?;
    Ok(root.join("target").join("debug").join("backyard"))
}

/// A backyard process on a free loopback port with its own data directory; killed and cleaned up on drop.
struct Backyard {
    /// What the tests open, e.g. `http://127.0.0.1:41234`.
    url: String,
    /// The server's stdout and stderr.
    log: PathBuf,
    child: Child,
    data_dir: PathBuf,
}

impl Backyard {
    fn start(root: &Path, bin: &Path, out: &Path) -> Result<Self> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let data_dir = std::env::temp_dir().join(format!("backyard-e2e-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let log = out.join("backyard.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        // backyard reads every BACKYARD_* variable as configuration and refuses unknown ones; the test-side
        // variables (BACKYARD_URL, BACKYARD_E2E_*) are not its business.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k == "BACKYARD_URL" || k.starts_with("BACKYARD_E2E_") {
                cmd.env_remove(&key);
            }
        }
        let child = cmd
            .args(["--bind", &format!("127.0.0.1:{port}"), "--public-url", &url, "--data-dir"])
            .arg(&data_dir)
            .arg("serve")
            .current_dir(root)
            .env("BACKYARD_SERVER__STUDIO_DIR", root.join("studio"))
            // Every browser in the suites signs in from 127.0.0.1; the per-address auth limit is not under test here.
            .env("BACKYARD_LIMITS__AUTH_PER_MINUTE", "600")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log file handle")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Backyard { url, log, child, data_dir };
        server.wait_healthy(port)?;
        Ok(server)
    }

    fn wait_healthy(&mut self, port: u16) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("polling backyard")? {
                bail!("backyard exited during start-up ({status}); see {}", self.log.display());
            }
            if healthz(port) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("backyard did not answer /healthz within {START_TIMEOUT:?}; see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Backyard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A port nobody listens on right now (the OS picks it; we release it for backyard to take).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr().context("reading the free port")?.port())
}

/// True when `GET /healthz` answers 200.
fn healthz(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
