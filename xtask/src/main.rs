//! `cargo xtask <command>`: the project's chores. Builds with the machine's defaults (no clang/mold needed to
//! build xtask itself); installs what is missing, idempotently, then passes the fast linker to the cargo
//! builds it starts.
//!
//!   run     install what is missing, build and start `backyard` on embedded defaults (prints the studio URL)
//!   test    install what is missing, start PostgreSQL/Redis if needed, run the whole suite
//!   e2e     browser end-to-end tests (e2e/, Debian's Chromium) against a backyard it starts
//!   bench   benchmarks (`bench api`, ...): a table on stdout, JSON under target/bench/
//!   fuzz    the fuzz targets for minutes each (`fuzz [target...] [--secs N]`), counts in target/bench/fuzz.json
//!   tidy    the repository's conventions (no pointers outside the repo, justified unwraps, this help complete)

mod bench;
mod bench_hls;
mod bench_program;
mod bench_relay;
mod bench_sfu;
mod e2e;
mod fuzz;
mod plugins;
mod setup;
mod test;
mod tidy;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().map(|(c, r)| (c.as_str(), r)).unwrap_or(("help", &[]));
    match cmd {
        "run" => run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "setup" => setup::ensure_all(),
        "e2e" => e2e::cmd(rest),
        "fuzz" => fuzz::cmd(rest),
        "plugins" => plugins::cmd_plugins(rest),
        "new-plugin" => plugins::cmd_new_plugin(rest),
        "tidy" => tidy::run(),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <run [-- backyard args] | test | bench [api|sfu|plugins|program|sync|hls|relay|latency|cluster] | setup | e2e [--shared] [auth|room|room-state|studio-connection|stage|turn|program|openapi|plugin-author|overlays|a11y|keyboard|health|backstage|simulcast|watch|slate|sources|nodes|cluster|networks] | fuzz [signaling|sdp|ice-candidate|rtmp-ingest|plugin-output] [--secs N] | plugins [--watch] [--check-template] | new-plugin <kind> <name> [--dir D] | tidy>"
            );
            Ok(())
        }
        other => bail!("unknown xtask command {other:?}; try `cargo xtask help`"),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    // unwrap: xtask lives one level below the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `cargo` with the fast linker (clang + mold) for the host target only, so wasm builds are unaffected.
pub fn cargo_cmd() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER", "clang");
    c.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS", "-C link-arg=-fuse-ld=mold");
    c
}

/// Runs a command, failing with its name if it fails.
pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let desc = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {desc}"))?;
    if !st.success() {
        bail!("{desc} failed with {st}");
    }
    Ok(())
}

pub use setup::ensure_apt;

fn run(rest: &[String]) -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    let rest: Vec<&String> = rest.iter().skip_while(|a| *a == "--").collect();
    // Layouts, overlays and destination adapters are plugins: without them there is no program layout and
    // no platform to stream to (found on a fresh machine, where target/plugins did not exist yet).
    eprintln!("xtask: building the first-party plugins (wasm32-wasip2) into target/plugins");
    plugins::build_plugins(false)?;
    eprintln!("xtask: building and starting backyard (embedded defaults: SQLite + in-process bus under ./data)");
    status(cargo_cmd().args(["run", "-p", "backyard", "--bin", "backyard", "--"]).args(rest))
}
