//! `backyard plugin render` and `backyard plugin new` as an author runs them: the binary, its flags, its
//! output. Renders are compared with committed snapshots in `gateway/tests/snapshots/render/` (open them to
//! review a change; a missing one is written on a developer machine and fails under `CI=true`;
//! `UPDATE_SNAPSHOTS=1` rewrites them all), and the pairs that must differ are checked to differ.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backyard_core::plugin_host::Rgba;

/// The snapshot comparison core's plugin tests use.
#[path = "../../core/tests/plugin_support/snapshot.rs"]
mod snapshot;
use snapshot::TOLERANCE;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A first-party plugin folder (`cargo xtask plugins` builds them).
fn plugin(name: &str) -> String {
    root().join("target/plugins").join(name).display().to_string()
}

/// A test fixture plugin folder (`cargo xtask test` builds them, the new-plugin templates among them).
fn fixture(name: &str) -> String {
    let dir = root().join("target/plugin-fixtures").join(name);
    assert!(dir.join("plugin.wasm").is_file(), "{} is missing: `cargo xtask test` builds it", dir.display());
    dir.display().to_string()
}

/// A scratch folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backyard-plugin-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `backyard <args>` in `dir` with no `BACKYARD_*` variables from the test's environment.
fn backyard(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backyard"));
    c.current_dir(dir).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BACKYARD_")) {
        c.env_remove(k);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Renders with `args` into `<dir>/<name>.png`, checks it against its snapshot and returns it.
fn render(dir: &Path, name: &str, args: &[&str], failures: &mut Vec<String>) -> Rgba {
    let out = dir.join(format!("{name}.png"));
    let mut all = vec!["plugin", "render"];
    all.extend_from_slice(args);
    let out_arg = out.display().to_string();
    all.extend_from_slice(&["--size", "640x360", "--out", &out_arg]);
    let o = backyard(dir, &all);
    assert!(o.status.success(), "{name}: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrote"), "{name}: {}", text(&o));
    let img = Rgba::from_png(&std::fs::read(&out).unwrap()).unwrap();
    failures.extend(check(name, &img));
    img
}

fn check(name: &str, img: &Rgba) -> Option<String> {
    snapshot::check(&root().join("gateway/tests/snapshots/render"), name, img)
}

/// The share of pixels that differ between two renders.
fn differ(a: &Rgba, b: &Rgba) -> f64 {
    a.diff_fraction(b, TOLERANCE).expect("same size")
}

#[test]
fn render_flags_change_the_picture_as_they_should() {
    let dir = scratch("flags");
    let (layouts, overlays) = (plugin("layouts"), plugin("overlays"));
    let mut failures = Vec::new();
    let names = ["--names", "Ada,Bob,Cat,Dan"];

    // Who speaks decides the big tile of a speaker-led layout.
    let ada = render(
        &dir,
        "spotlight-ada-speaks",
        &[&layouts, "--layout", "spotlight", names[0], names[1], "--speaker", "Ada"],
        &mut failures,
    );
    let cat = render(
        &dir,
        "spotlight-cat-speaks",
        &[&layouts, "--layout", "spotlight", names[0], names[1], "--speaker", "3"],
        &mut failures,
    );
    assert!(differ(&ada, &cat) > 0.2, "the speaker did not move the spotlight");

    // A screen share is one more tile, and the screen layout makes it the big one.
    let plain = render(&dir, "grid-four", &[&layouts, "--layout", "grid", names[0], names[1]], &mut failures);
    let shared = render(
        &dir,
        "grid-bob-shares",
        &[&layouts, "--layout", "grid", names[0], names[1], "--screen", "Bob"],
        &mut failures,
    );
    assert!(differ(&plain, &shared) > 0.2, "the screen share was not placed");

    // Props reach the overlay, drawn over the layout.
    let lt = |who: &str| format!("{{\"name\":\"{who}\",\"title\":\"Guest\"}}");
    let (a, b) = (lt("Ada Lovelace"), lt("Grace Hopper"));
    let one = render(
        &dir,
        "lower-third-ada",
        &[&layouts, &overlays, names[0], names[1], "--overlay", "lower-third", "--props", &a],
        &mut failures,
    );
    let two = render(
        &dir,
        "lower-third-grace",
        &[&layouts, &overlays, names[0], names[1], "--overlay", "lower-third", "--props", &b],
        &mut failures,
    );
    let d = differ(&one, &two);
    assert!(d > 0.001 && d < 0.1, "the name changed {:.3}% of the picture", d * 100.0);

    // The operator's settings (`-c`) reach the plugin: the accent colour of a banner without a colour of its own.
    std::fs::write(dir.join("red.toml"), "[plugins.overlays]\naccent = \"#e11d48\"\n").unwrap();
    let banner = r#"{"text":"We are live"}"#;
    let blue =
        render(&dir, "banner-default-accent", &[&overlays, "--overlay", "banner", "--props", banner], &mut failures);
    let red = render(
        &dir,
        "banner-red-accent",
        &["-c", "red.toml", &overlays, "--overlay", "banner", "--props", banner],
        &mut failures,
    );
    assert!(differ(&blue, &red) > 0.01, "the accent setting changed nothing");

    assert!(failures.is_empty(), "{} snapshot(s) differ:\n{}", failures.len(), failures.join("\n"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn render_shows_the_plugins_log_lines_and_honours_its_settings() {
    let dir = scratch("logs");
    let badge = fixture("new-overlay-check");
    let mut failures = Vec::new();
    let props = r#"{"text":"Home 2 – 1 Away"}"#;
    let top = render(&dir, "badge-top-left", &[&badge, "--props", props], &mut failures);
    std::fs::write(dir.join("corner.toml"), "[plugins.new-overlay-check]\ncorner = \"bottom-right\"\n").unwrap();
    let o = backyard(
        &dir,
        &["plugin", "render", &badge, "-c", "corner.toml", "--props", props, "--size", "640x360", "--out", "b.png"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("drawing 'Home 2 – 1 Away' at bottom-right"),
        "the plugin's log line is not shown: {stderr}"
    );
    assert!(stderr.contains("new-overlay-check"), "the log line does not name the plugin: {stderr}");
    let bottom = Rgba::from_png(&std::fs::read(dir.join("b.png")).unwrap()).unwrap();
    assert!(differ(&top, &bottom) > 0.01, "the corner setting moved nothing");
    // A setting the plugin's schema refuses is an error naming the plugin and the field.
    std::fs::write(dir.join("bad.toml"), "[plugins.new-overlay-check]\ncorner = \"middle\"\n").unwrap();
    let o = backyard(&dir, &["plugin", "render", &badge, "-c", "bad.toml", "--out", "x.png"]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("new-overlay-check") && stderr.contains("corner"), "{stderr}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn render_refuses_unknown_and_wrong_kind_flags() {
    let dir = scratch("refusals");
    let (layouts, overlays, youtube) = (plugin("layouts"), plugin("overlays"), plugin("youtube"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![&layouts, "--bogus"], "--bogus"),
        (vec![&overlays, "--speaker", "Ada"], "--speaker is for a layout plugin"),
        (vec![&overlays, "--layout", "grid"], "--layout is for a layout plugin"),
        (vec![&layouts, "--props", r#"{"text":"x"}"#], "--props is for an overlay plugin"),
        (vec![&layouts, "--time-ms", "500"], "--time-ms is for an overlay plugin"),
        (vec![&layouts, "--names", "Ada,Bob", "--speaker", "Zed"], "not on stage"),
        (vec![&layouts, "--layout", "nope"], "offers no layout 'nope'"),
        (vec![&overlays, "--props", "[1]"], "must be a JSON object"),
        (vec![&overlays, "--props", r#"{"text":{"a":1}}"#], "\"text\" must be a string"),
        (vec![&overlays, "--overlay", "nope"], "no overlay plugin given offers an overlay 'nope'"),
        (vec![&layouts, "--size", "0x10"], "--size"),
        (vec![&layouts, &youtube], "only layouts and overlays render"),
        (vec!["-c", "missing.toml", &layouts], "no such file"),
        (vec!["nothing-here.wasm"], "no such file"),
    ];
    for (args, want) in cases {
        let mut all = vec!["plugin", "render"];
        all.extend_from_slice(&args);
        let o = backyard(&dir, &all);
        assert!(!o.status.success(), "{args:?} was accepted: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains(want), "{args:?}: want {want:?} in {}", text(&o));
    }
    assert!(!dir.join("scene.png").exists(), "a refused render wrote a picture");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn render_finds_the_manifest_of_a_component_in_its_crate() {
    // `cargo build` writes the component to target/wasm32-wasip2/release/, two folders under the crate that
    // holds plugin.toml: render finds it there, so the plugin keeps its name (and so its settings).
    let dir = scratch("crate");
    let release = dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&release).unwrap();
    let src = root().join("target/plugin-fixtures/new-overlay-check");
    std::fs::copy(src.join("plugin.wasm"), release.join("new_overlay_check.wasm")).unwrap();
    std::fs::copy(src.join("plugin.toml"), dir.join("plugin.toml")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"new-overlay-check\"\n").unwrap();
    std::fs::write(dir.join("backyard.toml"), "[plugins.new-overlay-check]\ncorner = \"top-right\"\n").unwrap();
    let o = backyard(
        &dir,
        &["plugin", "render", "target/wasm32-wasip2/release/new_overlay_check.wasm", "--props", r#"{"text":"Hi"}"#],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("using ") && stderr.contains("plugin.toml"), "{stderr}");
    assert!(stderr.contains("at top-right"), "backyard.toml here was not read: {stderr}");
    assert!(dir.join("scene.png").is_file());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn new_refuses_a_bad_name_or_an_existing_folder() {
    let dir = scratch("new");
    let o = backyard(&dir, &["plugin", "new", "overlay", "Bad Name"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("lower-case"), "{}", text(&o));
    let o = backyard(&dir, &["plugin", "new", "widget", "x"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("layout"), "{}", text(&o));
    let o = backyard(&dir, &["plugin", "new", "overlay", "scoreboard"]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("cargo build --release --target wasm32-wasip2"), "{stdout}");
    assert!(stdout.contains("backyard plugin render target/wasm32-wasip2/release/scoreboard.wasm"), "{stdout}");
    let o = backyard(&dir, &["plugin", "new", "overlay", "scoreboard"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("already exists"), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn render_watch_draws_again_when_the_plugin_is_rebuilt() {
    use std::io::{BufRead as _, BufReader};
    let dir = scratch("watch");
    let src = root().join("target/plugin-fixtures/new-overlay-check");
    let plugin = dir.join("badge");
    std::fs::create_dir_all(&plugin).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(src.join(f), plugin.join(f)).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_backyard"))
        .current_dir(&dir)
        .args(["plugin", "render", "badge", "--watch", "--props", r#"{"text":"Hi"}"#, "--out", "w.png"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("wrote w.png"), "{first}");
    // A rebuild: the component is written again (a new modification time).
    std::thread::sleep(std::time::Duration::from_millis(50));
    let wasm = std::fs::read(plugin.join("plugin.wasm")).unwrap();
    std::fs::write(plugin.join("plugin.wasm.tmp"), &wasm).unwrap();
    std::fs::rename(plugin.join("plugin.wasm.tmp"), plugin.join("plugin.wasm")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lines.next().and_then(Result::ok));
    });
    let again = rx.recv_timeout(std::time::Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(again.as_ref().is_ok_and(|l| l.as_deref().is_some_and(|l| l.starts_with("wrote w.png"))), "{again:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
