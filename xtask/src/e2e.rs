//! `cargo xtask e2e`: the browser end-to-end tests in `e2e/` (`node --test` driving Debian's Chromium through
//! playwright-core) against a backyard this task builds and starts on loopback with a fresh data directory.
//!
//! Installs what is missing first: the apt packages `chromium`, `ffmpeg` (the tests make their fake-camera
//! clips with it and read back what a destination received), `nginx` + `libnginx-mod-rtmp` (the destination
//! the program test goes live to) and `coturn`, and `e2e/node_modules` from the lockfile. Screenshots land in
//! `target/e2e/`, the server's log in `target/e2e/backyard.log`, coturn's in `target/e2e/turnserver.log`.
//!
//! A coturn on the lab network's host address (REST-API credentials from a random shared secret; see `Lab`) runs
//! for the whole run: backyard is
//! configured with it (`[ice] turn_urls`, `turn_secret`), so every join hands out a TURN server, and the tests
//! get its URL and secret as `BACKYARD_E2E_TURN_URL` and `BACKYARD_E2E_TURN_SECRET`.
//!
//! The backyard under test has a third-party layout installed in its data directory's plugin folder (the
//! `new-plugin` template's layout, as an operator would install one), so the studio offers it beside the
//! first-party layouts.
//!
//! The suites: `room` (three people see, hear and chat with each other), `turn` (the same through coturn only, and
//! refused credentials), `program` (go live from the studio to nginx-rtmp), `canvases` (a vertical canvas
//! beside the main one, added and laid out from the studio's canvas tabs; three destinations, one on the vertical
//! canvas, each stream checked at its size, bitrate and tiles), `auth` (entry screens: sign in, register,
//! bad invite links), `stage` (the host's stage draws exactly the program's tiles, for every layout offered),
//! `room-state` (the studio's room state module, no browser), `studio-connection` (its protocol client against a
//! scripted socket and a mock clock: a join the server never answers fails on time), `openapi` (schemathesis, every
//! check, against `/api/openapi.json`, signed in; no browser), `plugin-author` (a plugin made, built and previewed
//! outside the checkout with the `backyard` binary, then installed into the running server and put on the program from
//! the studio), `overlays` (the studio's ticker control, on the program and the stage), `a11y` (an axe-core audit of
//! every studio screen: no serious or critical violation), `keyboard` (the host's keyboard shortcuts), `health` (the
//! server starved of CPU while live: the studio warns, and clears the warning once the CPU is back; it gets the
//! server's pid as `BACKYARD_E2E_PID`), `backstage` (a guest waits backstage with the program as return feed, unheard
//! on air until admitted and put on stage), `simulcast` (a 720p camera in three layers: each viewer and the program get
//! the layer their tile needs), `watch` (a viewer without an account plays the live show's HLS stream on its watch
//! page), `slate` (a slate the host shows, and the one the program shows by itself while live with nobody on stage,
//! cover the program and the stage), `recordings` (a host's own recording beside the program's, on its timeline, through
//! a `kill -9` of a server of the suite's own, started from `BACKYARD_E2E_BIN`), `local-recordings` (a guest's browser
//! records and uploads with tus through a cut connection; the kept file lasts what was recorded; an upload past the
//! broadcast's storage is refused, on servers of the suite's own), `sources` (an encoder streams through the RTMP ingest with a key made in the
//! Sources panel, relayed to nginx; the server's ingest listens on a free port, given as `BACKYARD_E2E_RTMP_PORT`),
//! `nodes` (the administrators' Nodes page; the instance's administrator, its first account, is registered before any
//! suite and reaches them as `BACKYARD_E2E_ADMIN_EMAIL` / `_PASSWORD`), `cluster` (three nodes of its own on one
//! PostgreSQL database and Redis prefix, behind nginx: three browsers each pinned to a node see each other, the program
//! reaches nginx-rtmp, and, with `BACKYARD_E2E_CLUSTER_FAILOVER=1`, a guest's node killed with `kill -9` is left for
//! another with the guest's seat (measured, not yet a gate); it gets PostgreSQL's and Redis's addresses as
//! `BACKYARD_E2E_PG_URL` and `BACKYARD_E2E_REDIS_URL`, the node logs land in `target/e2e/cluster/`), `networks` (a
//! guest in the lab namespace on a capped, lossy link; measured, not yet in `cargo xtask test`).
//!
//! Schemathesis comes from PyPI at a pinned version, into a virtualenv under `target/tools/` (Debian's
//! `python3-venv` is installed first when `python3 -m venv` cannot make one); its path reaches the tests as
//! `BACKYARD_E2E_SCHEMATHESIS`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{cargo_cmd, ensure_apt, root, status};

/// How long a freshly started backyard may take to answer `/healthz` (migrations on a new SQLite file included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `cargo xtask e2e [suite...]`: every suite, or only the named ones (`room`, `turn`, `program`, `canvases`, `auth`,
/// `stage`, `room-state`, `studio-connection`, `openapi`, `plugin-author`, `overlays`, `a11y`, `keyboard`,
/// `health`, `backstage`, `simulcast`, `watch`, `slate`, `recordings`, `local-recordings`, `sources`, `nodes`,
/// `cluster`, `networks`).
/// With `--shared`, the server keeps its state in PostgreSQL and Redis instead of SQLite and memory.
pub fn cmd(args: &[String]) -> Result<()> {
    let shared = args.iter().any(|a| a == "--shared");
    let suites: Vec<&str> = args.iter().map(String::as_str).filter(|a| *a != "--shared").collect();
    run_on(&root(), &suites, if shared { Backend::Shared } else { Backend::Embedded })
}

/// Where the e2e server keeps its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and this process's memory: what `backyard` starts with.
    Embedded,
    /// PostgreSQL and Redis (a database and a key prefix of its own, dropped and deleted afterwards), as a node
    /// of a cluster runs.
    Shared,
}

/// Runs the browser suites named in `suites` (e.g. `["room"]`: `e2e/tests/room.test.mjs`), or all of them when
/// `suites` is empty, against a server with embedded state. `root` is the workspace root.
pub fn run(root: &Path, suites: &[&str]) -> Result<()> {
    run_on(root, suites, Backend::Embedded)
}

/// As [`run`], against a server on `backend`.
pub fn run_on(root: &Path, suites: &[&str], backend: Backend) -> Result<()> {
    ensure_apt(&["chromium", "ffmpeg", "nginx", "libnginx-mod-rtmp", "coturn", "redis-tools"])?;
    require_node()?;
    // The cluster suite starts nodes of its own on PostgreSQL and Redis.
    let pg_url = crate::setup::ensure_services()?;
    let e2e = root.join("e2e");
    ensure_node_modules(&e2e)?;
    let schemathesis = ensure_schemathesis(root)?;
    let bin = build_backyard(root)?;
    // A second run on another backend keeps its screenshots and server log apart.
    let out = match backend {
        Backend::Embedded => root.join("target").join("e2e"),
        Backend::Shared => root.join("target").join("e2e").join("shared"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lab = Lab::create()?;
    println!("e2e: lab network {} ({} ↔ {})", lab.namespace, lab.host_ip, lab.guest_ip);
    let turn = Turn::start(&out, lab.host_ip)?;
    println!("e2e: coturn at {} (log: {})", turn.url, turn.log.display());
    let shared = match backend {
        Backend::Embedded => None,
        Backend::Shared => Some(SharedState::create(&pg_url)?),
    };
    let server = Backyard::start(root, &bin, &out, &turn, &lab, shared.as_ref())?;
    match &shared {
        Some(s) => println!(
            "e2e: backyard at {} on PostgreSQL ({}) and Redis (prefix {}) (log: {})",
            server.url,
            s.database,
            s.prefix,
            server.log.display()
        ),
        None => println!("e2e: backyard at {} (log: {})", server.url, server.log.display()),
    }
    register_admin(&server.url)?;
    if let Some(shared) = &shared {
        shared.check_used()?;
    }
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
        .env("BACKYARD_E2E_RTMP_PORT", server.rtmp_port.to_string())
        .env("BACKYARD_E2E_TURN_URL", &turn.url)
        .env("BACKYARD_E2E_TURN_SECRET", &turn.secret)
        .env("BACKYARD_E2E_PG_URL", &pg_url)
        .env("BACKYARD_E2E_REDIS_URL", crate::setup::REDIS_URL)
        .env("BACKYARD_E2E_SCHEMATHESIS", &schemathesis)
        // The instance's administrator (its first account), for the screens only an administrator sees.
        .env("BACKYARD_E2E_ADMIN_EMAIL", ADMIN.0)
        .env("BACKYARD_E2E_ADMIN_PASSWORD", ADMIN.1)
        // The plugin-author suite runs the binary as an author would and installs into the server's plugin folder.
        .env("BACKYARD_E2E_BIN", &bin)
        .env("BACKYARD_E2E_PLUGIN_DIR", server.data_dir.join("plugins"))
        // The health suite starves the server of CPU (lowers its priority, loads the cores) and restores it.
        .env("BACKYARD_E2E_PID", server.child.id().to_string())
        // The networks suite runs a participant inside the lab namespace and impairs its link.
        .env("BACKYARD_E2E_LAB_NS", &lab.namespace)
        .env("BACKYARD_E2E_LAB_HOST_IP", lab.host_ip.to_string())
        .env("BACKYARD_E2E_LAB_HOST_DEV", &lab.host_dev)
        .env("BACKYARD_E2E_LAB_GUEST_DEV", &lab.guest_dev)
        .status()
        .context("running node --test")?;
    drop(server);
    drop(shared);
    drop(turn);
    drop(lab);
    if !status.success() {
        bail!("browser end-to-end tests failed ({status}); screenshots and the server log are in {}", out.display());
    }
    Ok(())
}

pub(crate) fn require_node() -> Result<()> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => {
            ensure_apt(&["nodejs", "npm"])?;
            Ok(())
        }
    }
}

/// `npm ci` from the lockfile when playwright-core or axe-core is not installed yet (it never downloads a
/// browser: the tests use Debian's /usr/bin/chromium).
pub(crate) fn ensure_node_modules(e2e: &Path) -> Result<()> {
    let installed = |package: &str| e2e.join("node_modules").join(package).join("package.json").exists();
    if installed("playwright-core") && installed("axe-core") {
        return Ok(());
    }
    println!("e2e: installing node modules in {}", e2e.display());
    status(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(e2e))
}

/// The schemathesis version the `openapi` suite runs (its checks and generation change between versions).
const SCHEMATHESIS: &str = "4.32.5";

/// Installs schemathesis (pinned) into `target/tools/schemathesis-<version>` unless it is there; returns the
/// path of its `st` command.
fn ensure_schemathesis(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target").join("tools").join(format!("schemathesis-{SCHEMATHESIS}"));
    let st = venv.join("bin").join("st");
    if st.exists() {
        return Ok(st);
    }
    println!("e2e: installing schemathesis {SCHEMATHESIS} into {}", venv.display());
    let make_venv = || Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
    if !make_venv().is_ok_and(|s| s.success()) {
        ensure_apt(&["python3", "python3-venv"])?;
        let _ = std::fs::remove_dir_all(&venv);
        status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    status(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS}")),
    )?;
    Ok(st)
}

/// Builds the `backyard` binary (with the shared linker settings) and returns its path.
fn build_backyard(root: &Path) -> Result<PathBuf> {
    status(cargo_cmd().args(["build", "-p", "backyard", "--bin", "backyard"]))?;
    Ok(root.join("target").join("debug").join("backyard"))
}

/// Installs the `new-plugin` template's layout (built by `cargo xtask plugins --check-template`) into
/// `<data_dir>/plugins`, where an operator's own plugins go.
fn install_third_party_layout(data_dir: &Path) -> Result<()> {
    let fixture = crate::plugins::fixtures_dir().join("new-plugin-check");
    if !fixture.join("plugin.wasm").exists() {
        crate::plugins::build_plugins(true)?;
    }
    let to = data_dir.join("plugins").join("new-plugin-check");
    std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
    for file in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(fixture.join(file), to.join(file)).with_context(|| format!("installing {file}"))?;
    }
    Ok(())
}

/// A backyard process on a free loopback port with its own data directory; killed and cleaned up on drop.
struct Backyard {
    /// What the tests open, e.g. `http://127.0.0.1:41234`.
    url: String,
    /// The RTMP ingest's port.
    rtmp_port: u16,
    /// The server's stdout and stderr.
    log: PathBuf,
    child: Child,
    data_dir: PathBuf,
}

/// The e2e server's PostgreSQL database and Redis key prefix, with the secrets a server on PostgreSQL must be
/// given; dropped and deleted on drop.
struct SharedState {
    pg_admin: String,
    database: String,
    prefix: String,
}

impl SharedState {
    fn create(pg_admin: &str) -> Result<SharedState> {
        let database = format!("backyard_e2e_{}", std::process::id());
        let psql = |sql: &str| status(Command::new("psql").args([pg_admin, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]));
        psql(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))?;
        psql(&format!("CREATE DATABASE {database}")).context("creating the e2e server's database")?;
        Ok(SharedState {
            pg_admin: pg_admin.to_owned(),
            prefix: format!("backyard-e2e-{}:", std::process::id()),
            database,
        })
    }

    /// Fails unless the server keeps its accounts in this database (the administrator registered above).
    fn check_used(&self) -> Result<()> {
        let url = self.url()?;
        let out = Command::new("psql").args([url.as_str(), "-qtAc", "SELECT count(*) FROM users"]).output()?;
        let users = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || users == "0" {
            bail!("the e2e server does not keep its accounts in {} (users: {users:?})", self.database);
        }
        Ok(())
    }

    fn url(&self) -> Result<String> {
        match self.pg_admin.rsplit_once('/') {
            Some((server, _)) => Ok(format!("{server}/{}", self.database)),
            None => bail!("the PostgreSQL URL {} names no database", self.pg_admin),
        }
    }

    /// The configuration file that points a server at this state.
    fn config(&self) -> Result<String> {
        let url = self.url()?;
        Ok(format!(
            "[database]\nurl = {url:?}\n[redis]\nurl = {redis:?}\nprefix = {prefix:?}\n[secrets]\njwt_key = {jwt:?}\n\
             stream_key_active = \"k1\"\n[secrets.stream_key_keys]\nk1 = {k1:?}\n",
            redis = crate::setup::REDIS_URL,
            prefix = self.prefix,
            jwt = random_key()?,
            k1 = random_key()?,
        ))
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        let _ = Command::new("psql").args([&self.pg_admin, "-q", "-c", &sql]).stdout(Stdio::null()).status();
        let scan = Command::new("redis-cli")
            .args(["-u", crate::setup::REDIS_URL, "--scan", "--pattern", &format!("{}*", self.prefix)])
            .output();
        if let Ok(out) = scan {
            let keys: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
            for chunk in keys.chunks(100) {
                let _ = Command::new("redis-cli")
                    .args(["-u", crate::setup::REDIS_URL, "DEL"])
                    .args(chunk)
                    .stdout(Stdio::null())
                    .status();
            }
        }
    }
}

/// 32 random bytes in base64, as the server's secrets are written.
fn random_key() -> Result<String> {
    let out = Command::new("sh")
        .args(["-c", "head -c 32 /dev/urandom | base64 -w0"])
        .output()
        .context("reading /dev/urandom through base64")?;
    let key = String::from_utf8(out.stdout)?.trim().to_owned();
    if !out.status.success() || key.len() != 44 {
        bail!("could not make a random key ({key:?})");
    }
    Ok(key)
}

impl Backyard {
    fn start(
        root: &Path,
        bin: &Path,
        out: &Path,
        turn: &Turn,
        lab: &Lab,
        shared: Option<&SharedState>,
    ) -> Result<Self> {
        let port = free_port()?;
        let rtmp_port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let data_dir = std::env::temp_dir().join(format!("backyard-e2e-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        install_third_party_layout(&data_dir)?;
        let log = out.join("backyard.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        if let Some(shared) = shared {
            let config = data_dir.join("backyard.toml");
            std::fs::write(&config, shared.config()?).with_context(|| format!("writing {}", config.display()))?;
            cmd.arg("--config").arg(&config);
        }
        // backyard reads every BACKYARD_* variable as configuration and refuses unknown ones; the test-side
        // variables (BACKYARD_URL, BACKYARD_E2E_*) are not its business.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k == "BACKYARD_URL" || k.starts_with("BACKYARD_E2E_") {
                cmd.env_remove(&key);
            }
        }
        // Every address, so a browser in the lab namespace reaches it at the lab's host address too; media is
        // announced there (the host's own browsers reach that address as well).
        let child = cmd
            .args(["--bind", &format!("0.0.0.0:{port}"), "--public-url", &url, "--data-dir"])
            .arg(&data_dir)
            .arg("serve")
            .current_dir(root)
            .env("BACKYARD_SERVER__STUDIO_DIR", root.join("studio"))
            // Every browser in the suites signs in from 127.0.0.1; the per-address auth limit is not under test here.
            .env("BACKYARD_LIMITS__AUTH_PER_MINUTE", "600")
            // A list in figment's environment syntax.
            .env("BACKYARD_ICE__TURN_URLS", format!("[\"{}\"]", turn.url))
            .env("BACKYARD_ICE__TURN_SECRET", &turn.secret)
            .env("BACKYARD_MEDIA__ADVERTISED_IP", lab.host_ip.to_string())
            // The program suite pushes to nginx-rtmp on loopback through the custom RTMP adapter.
            .env("BACKYARD_DESTINATIONS__RTMP__ALLOW-PRIVATE-HOSTS", "true")
            // The sources suite's encoder publishes here.
            .env("BACKYARD_INGEST__RTMP_BIND", format!("127.0.0.1:{rtmp_port}"))
            // `BACKYARD_E2E_RUST_LOG` (e.g. `info,backyard_core::router=debug`) to look closer at a failure.
            .env("RUST_LOG", std::env::var("BACKYARD_E2E_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log file handle")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Backyard { url, rtmp_port, log, child, data_dir };
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

/// A network namespace joined to this machine by a veth pair, where the networks suite runs a participant whose
/// link it caps (`tc tbf`) and makes lossy (nftables); removed on drop. The kernel here has no `netem`, so these
/// are the impairments there are.
struct Lab {
    namespace: String,
    /// The address of this machine's end of the pair (the server is reached there from the namespace).
    host_ip: Ipv4Addr,
    guest_ip: Ipv4Addr,
    host_dev: String,
    guest_dev: String,
}

impl Lab {
    fn create() -> Result<Lab> {
        ensure_apt(&["iproute2", "nftables"])?;
        let id = std::process::id();
        // A /30 of its own per run: 10.231.<a>.<b*4>.
        let (a, b) = ((id / 64) % 250, (id % 64) * 4);
        let lab = Lab {
            namespace: format!("byl{id}"),
            host_ip: Ipv4Addr::new(10, 231, a as u8, b as u8 + 1),
            guest_ip: Ipv4Addr::new(10, 231, a as u8, b as u8 + 2),
            host_dev: format!("byh{id}"),
            guest_dev: format!("byg{id}"),
        };
        let ip = |args: &[&str]| -> Result<()> {
            let out = Command::new("ip").args(args).output().context("running ip")?;
            if !out.status.success() {
                bail!(
                    "ip {} failed: {} (the lab network needs root: network namespaces and veth pairs)",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        };
        let (ns, host, guest) = (lab.namespace.as_str(), lab.host_dev.as_str(), lab.guest_dev.as_str());
        ip(&["netns", "add", ns])?;
        ip(&["link", "add", host, "type", "veth", "peer", "name", guest])?;
        ip(&["link", "set", guest, "netns", ns])?;
        ip(&["addr", "add", &format!("{}/30", lab.host_ip), "dev", host])?;
        ip(&["link", "set", host, "up"])?;
        ip(&["-n", ns, "addr", "add", &format!("{}/30", lab.guest_ip), "dev", guest])?;
        ip(&["-n", ns, "link", "set", guest, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_dev]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).output();
    }
}

/// coturn on a free loopback port, checking TURN REST API credentials against a random shared secret; killed
/// on drop.
struct Turn {
    /// `turn:<lab host address>:<port>?transport=udp`.
    url: String,
    /// Its `static-auth-secret`.
    secret: String,
    /// Its stdout and stderr.
    log: PathBuf,
    child: Child,
    /// Its pid file (coturn wants one; the default is under /var/run).
    pid_file: PathBuf,
}

impl Turn {
    /// coturn on `ip` (the lab's host address: the server announces its media there, and coturn relays from a
    /// loopback address to no other address).
    fn start(out: &Path, ip: Ipv4Addr) -> Result<Self> {
        // The TCP port is free now and its UDP twin almost surely too; coturn listens on both.
        let port = free_port()?;
        // Not all digits, or figment would read the environment value as a number.
        let secret = format!("e2e-{}", random_hex(16)?);
        let log = out.join("turnserver.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let pid_file = std::env::temp_dir().join(format!("backyard-e2e-turn-{}-{port}.pid", std::process::id()));
        let child = Command::new("turnserver")
            .arg("-n") // no turnserver.conf: only these flags
            .args([format!("--listening-ip={ip}"), format!("--relay-ip={ip}"), format!("--listening-port={port}")])
            .args(["--use-auth-secret", &format!("--static-auth-secret={secret}"), "--realm=backyard.test"])
            .args(["--no-tls", "--no-dtls", "--no-cli", "--log-file=stdout", "--simple-log"])
            .arg(format!("--pidfile={}", pid_file.display()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log file handle")?)
            .stderr(log_file)
            .spawn()
            .context("starting turnserver (Debian package coturn)")?;
        let url = format!("turn:{ip}:{port}?transport=udp");
        let mut turn = Turn { url, secret, log, child, pid_file };
        turn.wait_ready(ip, port)?;
        Ok(turn)
    }

    /// Until a STUN Binding request over UDP gets a Binding success response.
    fn wait_ready(&mut self, ip: Ipv4Addr, port: u16) -> Result<()> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("binding a UDP socket")?;
        socket.set_read_timeout(Some(Duration::from_millis(200))).context("setting a UDP read timeout")?;
        // Binding request (0x0001), no attributes, the RFC 5389 magic cookie, a fixed transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"backyard-e2e");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("polling turnserver")? {
                bail!("turnserver exited during start-up ({status}); see {}", self.log.display());
            }
            let _ = socket.send_to(&request, (ip, port));
            let mut buf = [0u8; 512];
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 20
                && buf[..2] == [0x01, 0x01]
                && buf[8..20] == request[8..20]
            {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("turnserver did not answer STUN within {START_TIMEOUT:?}; see {}", self.log.display());
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// `bytes` random bytes from the OS, hex-encoded.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A port nobody listens on right now (the OS picks it; we release it for backyard to take).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr().context("reading the free port")?.port())
}

/// The e2e server's administrator: its first account, registered before any suite runs.
const ADMIN: (&str, &str) = ("operator@e2e.test", "the operator's long password");

/// Registers [`ADMIN`] as the server's first account (which makes it the instance administrator).
fn register_admin(url: &str) -> Result<()> {
    let body = format!(r#"{{"email":"{}","password":"{}","name":"Operator"}}"#, ADMIN.0, ADMIN.1);
    let out = Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "-H", "content-type: application/json", "-d", &body])
        .arg(format!("{url}/api/auth/register"))
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!("registering the e2e administrator: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
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
