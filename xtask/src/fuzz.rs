//! `cargo xtask fuzz [target...] [--secs N]`: runs the fuzz targets (default: all, 600 s each) and prints what
//! each did; writes `target/bench/fuzz.json`. The targets are ordinary tests that replay their corpus
//! (`fuzz/corpus/<target>/`) and mutate it (`core/tests/fuzz_support`); in `cargo xtask test` they run a short,
//! fixed-seed pass. A panic fails the run and saves the input under `target/fuzz/crashes/`.

use std::process::Stdio;

use anyhow::{Context as _, Result, bail};

use crate::{cargo_cmd, root};

/// A target: its corpus name and the cargo test that runs it.
struct Target {
    name: &'static str,
    package: &'static str,
    /// `--test <file>`, or the library's unit tests when `None`.
    test_file: Option<&'static str>,
    filter: &'static str,
}

const TARGETS: &[Target] = &[
    Target { name: "signaling", package: "backyard", test_file: Some("fuzz_signaling"), filter: "signaling_messages" },
    Target { name: "sdp", package: "backyard-core", test_file: Some("fuzz_sdp"), filter: "sdp_offers" },
    Target { name: "ice-candidate", package: "backyard-core", test_file: Some("fuzz_sdp"), filter: "ice_candidate" },
    Target { name: "rtmp-ingest", package: "backyard-core", test_file: Some("fuzz_ingest"), filter: "rtmp_ingest" },
    Target { name: "plugin-output", package: "backyard-core", test_file: None, filter: "plugin_host::fuzz" },
];

pub fn cmd(args: &[String]) -> Result<()> {
    let mut secs = 600u64;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = it.next().context("--secs needs a number")?.parse().context("--secs needs a number")?,
            name if TARGETS.iter().any(|t| t.name == name) => names.push(name.to_owned()),
            other => bail!(
                "unknown fuzz target or flag {other:?}; targets: {}",
                TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let mut lines = Vec::new();
    for t in TARGETS.iter().filter(|t| names.is_empty() || names.iter().any(|n| n == t.name)) {
        println!("fuzz: {} for {secs} s", t.name);
        let mut c = cargo_cmd();
        c.args(["test", "-p", t.package]);
        match t.test_file {
            Some(f) => c.args(["--test", f]),
            None => c.arg("--lib"),
        };
        c.args(["--", t.filter, "--nocapture", "--test-threads", "1"])
            .env("BACKYARD_FUZZ_SECS", secs.to_string())
            .stdout(Stdio::piped());
        let out = c.output().with_context(|| format!("running the {} fuzz target", t.name))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // libtest prints the test's name first on the same line, so the report starts mid-line.
        let marker = format!("fuzz {}:", t.name);
        let report = stdout.lines().find_map(|l| l.find(&marker).map(|at| l[at..].to_owned()));
        let (true, Some(report)) = (out.status.success(), report) else {
            bail!("fuzz target {} failed:\n{stdout}", t.name);
        };
        println!("{report}");
        lines.push(report);
    }
    println!("\n{}", lines.join("\n"));
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir).context("creating target/bench")?;
    let json = format!(
        "{{\"secs_per_target\": {secs}, \"runs\": [{}]}}\n",
        lines.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ")
    );
    std::fs::write(dir.join("fuzz.json"), json).context("writing target/bench/fuzz.json")?;
    Ok(())
}
