//! `cargo xtask test`: the whole suite, exactly what CI runs. Fails if the store/API suites ran zero tests on
//! either backend.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::{cargo_cmd, setup, status};

/// The cargo that runs xtask.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    setup::ensure_build_tools()?;
    setup::ensure_lint_tools()?;
    setup::ensure_apt(setup::TEST_PACKAGES)?;
    let pg_url = setup::ensure_services()?;

    // Gates first: they are quick, and a red one needs no suite to tell.
    println!("xtask: cargo fmt --check");
    status(Command::new(cargo()).args(["fmt", "--all", "--", "--check"]).current_dir(crate::root()))
        .context("formatting differs: run `cargo fmt --all`")?;
    crate::tidy::run()?;
    // xtask's own tests (tidy's rules among them), built as xtask is: with the machine's defaults.
    status(
        Command::new(cargo())
            .args(["test", "-p", "xtask", "--target-dir", "target/xtask", "--quiet"])
            .current_dir(crate::root()),
    )
    .context("xtask's own tests failed")?;
    println!("xtask: cargo clippy -D warnings");
    status(
        cargo_cmd()
            .args(["clippy", "--workspace", "--exclude", "xtask", "--all-targets"])
            .args(crate::plugins::workspace_excludes()?)
            .args(["--", "-D", "warnings"]),
    )
    .context("clippy found warnings")?;
    // The SDK's kinds are cargo features: every one of them is checked (and every public item documented).
    status(cargo_cmd().args([
        "clippy",
        "-p",
        "backyard-plugin-api",
        "--all-features",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
    .context("clippy found warnings in the plugin SDK with all its features")?;

    // Plugins are wasm32-wasip2 crates: built (with the new-plugin template check) before the host tests
    // that load them, and kept out of the host `cargo test`.
    crate::plugins::build_plugins(true)?;
    let mut child = cargo_cmd()
        .args(["test", "--workspace", "--exclude", "xtask", "--no-fail-fast"])
        .args(crate::plugins::workspace_excludes()?)
        .env("BY_TEST_PG_URL", &pg_url)
        .env("BY_TEST_REDIS_URL", setup::REDIS_URL)
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
    let exit = child.wait()?;
    println!("xtask: store/API suites passed: {sqlite} on SQLite, {postgres} on PostgreSQL+Redis");
    if !exit.success() {
        bail!("cargo test failed");
    }
    if sqlite == 0 || postgres == 0 {
        bail!("a backend ran zero store/API tests (SQLite {sqlite}, PostgreSQL {postgres})");
    }
    // The SDK's drawing code (text layout, shapes) is compiled into plugins only: tested on its own, with
    // every kind's bindings so its doc examples (whole plugins) compile and run as doctests.
    status(cargo_cmd().args(["test", "-p", "backyard-plugin-api", "--all-features"]))
        .context("the plugin SDK's tests or doc examples failed")?;
    // Browser end to end: real Chromium processes with fake media against a freshly started backyard. The
    // `networks` suite (impaired links) is not here: on this machine its freeze and keyframe counts still depend on
    // how busy the browsers' CPUs are, and a gate must not flake; `cargo xtask e2e networks` runs it.
    crate::e2e::run(
        &crate::root(),
        &[
            "auth",
            "room-state",
            "studio-connection",
            "room",
            "stage",
            "turn",
            "program",
            "canvases",
            "openapi",
            "plugin-author",
            "overlays",
            "a11y",
            "keyboard",
            "health",
            "backstage",
            "simulcast",
            "watch",
            "slate",
            "recordings",
            "local-recordings",
            "sources",
            "nodes",
            "cluster",
        ],
    )?;
    // The same studio on one node keeping its state in PostgreSQL and Redis, as a cluster's nodes do: signing in,
    // joining and chatting (room events on the Redis bus), backstage, going live (the home lease in Redis),
    // slates, encoders and the watch page.
    crate::e2e::run_on(
        &crate::root(),
        &["auth", "room", "backstage", "program", "slate", "sources", "watch"],
        crate::e2e::Backend::Shared,
    )?;
    println!("xtask: all suites passed");
    Ok(())
}
