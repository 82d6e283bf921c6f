//! `cargo xtask test`: the whole suite, exactly what CI runs. Fails if the store/API suites ran zero tests on
//! either backend.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use anyhow::{Context as _, bail};

use crate::{cargo_cmd, setup};

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    setup::ensure_apt(setup::TEST_PACKAGES)?;
    let pg_url = setup::ensure_services()?;

    // Plugins are wasm32-wasip2 crates: built (with the new-plugin template check) before the host tests
    // that load them, and kept out of the host `cargo test`.
    crate::plugins::build_plugins(true)?;
    let mut child = cargo_cmd()
        .args(["test", "--workspace", "--exclude", "xtask", "--no-fail-fast"])
        .args(crate::plugins::workspace_excludes()?)
        .env("BY_TEST_PG_URL", &pg_url)
        .env("BY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut sqlite, mut postgres) = (0usize, 0usize);
    // unwrap: stdout was piped above.
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        println!("{line}");
        if line.starts_with("test sqlite::") && line.ends_with(" ok") {
            sqlite += 1;
        }
        if line.starts_with("test postgres::") && line.ends_with(" ok") {
            postgres += 1;
        }
    }
    let status = child.wait()?;
    println!("xtask: store/API suites passed: {sqlite} on SQLite, {postgres} on PostgreSQL+Redis");
    if !status.success() {
        bail!("cargo test failed");
    }
    if sqlite == 0 || postgres == 0 {
        bail!("a backend ran zero store/API tests (SQLite {sqlite}, PostgreSQL {postgres})");
    }
    // Browser end to end: real Chromium processes with fake media against a freshly started backyard.
    crate::e2e::run(&crate::root(), &["auth", "room-state", "room", "stage", "turn", "program"])?;
    println!("xtask: all suites passed");
    Ok(())
}
