//! Mutation fuzzing on the stable toolchain (libFuzzer's sanitizer coverage needs nightly): each target replays
//! its corpus (`fuzz/corpus/<target>/`), then mutates corpus entries (bit flips, byte edits, deletions,
//! duplications, splices, dictionary tokens, interesting numbers) and feeds them to the code under test. The
//! feedback is the outcome: every input whose outcome class (what the target reports: an event name, an error
//! code and field...) was not seen before joins the in-memory corpus, so mutation spreads into new answers.
//!
//! A panic is a finding: the input is written to `target/fuzz/crashes/<target>-<n>` and the test fails naming it
//! and the seed. By default a target runs its corpus and a fixed-seed 3,000 mutations (a normal test, the same
//! every run); `BACKYARD_FUZZ_SECS=600` runs it for that long with a fresh seed (`BACKYARD_FUZZ_SEED` replays
//! one), which is what `cargo xtask fuzz` does.

#![allow(dead_code)] // each test binary uses the part it needs

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutations in a default (non-timed) run.
const DEFAULT_CASES: u64 = 3_000;
/// Largest input a mutation may grow to.
const MAX_LEN: usize = 64 * 1024;
/// The seed of a default run.
const DEFAULT_SEED: u64 = 20_261_205;

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub cases: u64,
    pub outcomes: usize,
    pub corpus: usize,
    pub elapsed: Duration,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the kept corpus of `target` lives.
pub fn corpus_dir(target: &str) -> PathBuf {
    workspace().join("fuzz").join("corpus").join(target)
}

/// The kept corpus of `target`: every file in `fuzz/corpus/<target>/`.
fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus of {target} is missing ({}): {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(!corpus.is_empty(), "the corpus of {target} ({}) is empty", dir.display());
    corpus
}

const INTERESTING: &[&str] = &[
    "0",
    "-1",
    "1e309",
    "-0",
    "NaN",
    "4294967296",
    "18446744073709551616",
    "-9223372036854775809",
    "1.5",
    "null",
    "true",
    "\"\"",
    "[]",
    "{}",
];

fn mutate(rng: &mut StdRng, input: &[u8], corpus: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] = rng.r#gen();
            }
            2 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                out.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 256));
                let chunk = out[a..b].to_vec();
                let at = rng.gen_range(0..=out.len());
                out.splice(at..at, chunk.iter().copied().cycle().take(chunk.len() * rng.gen_range(1..=8)));
            }
            4 if !dict.is_empty() => {
                let t = dict[rng.gen_range(0..dict.len())].as_bytes();
                let at = rng.gen_range(0..=len);
                out.splice(at..at, t.iter().copied());
            }
            5 => {
                let t = INTERESTING[rng.gen_range(0..INTERESTING.len())].as_bytes();
                let at = rng.gen_range(0..=len);
                let end = (at + rng.gen_range(0..4)).min(len);
                out.splice(at..end, t.iter().copied());
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                let at = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => out.truncate(rng.gen_range(0..len)),
            _ => {
                let at = rng.gen_range(0..=len);
                out.insert(at, rng.r#gen());
            }
        }
    }
    out.truncate(MAX_LEN);
    out
}

/// Fuzzes `check` (which returns the input's outcome class and panics on a broken property) with the corpus of
/// `target` and mutations of it; `dict` holds tokens of the input language worth inserting.
pub fn run(target: &str, dict: &[&str], mut check: impl FnMut(&[u8]) -> String) -> Report {
    let secs: Option<u64> = std::env::var("BACKYARD_FUZZ_SECS").ok().and_then(|s| s.parse().ok());
    let seed = std::env::var("BACKYARD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        if secs.is_some() {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        } else {
            DEFAULT_SEED
        }
    });
    // Panics the code under test catches itself are expected on some inputs: keep the hook quiet and remember the
    // last message, printed only when a panic reaches this harness.
    let last_panic = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    // Other tests running beside this one on other threads keep the usual report.
    let seen = last_panic.clone();
    let fuzz_thread = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != fuzz_thread {
            previous(info);
        } else if let Ok(mut m) = seen.lock() {
            *m = info.to_string();
        }
    }));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut corpus = load_corpus(target);
    let mut outcomes = HashSet::new();
    let started = Instant::now();
    let mut cases = 0u64;
    let mut try_one = |input: &[u8], cases: &mut u64| -> Option<String> {
        *cases += 1;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input)));
        match result {
            Ok(outcome) => Some(outcome),
            Err(_) => {
                let dir = workspace().join("target").join("fuzz").join("crashes");
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("{target}-{cases}"));
                let _ = std::fs::write(&path, input);
                let _ = std::panic::take_hook();
                let why = last_panic.lock().map(|m| m.clone()).unwrap_or_default();
                panic!(
                    "{target}: input {cases} broke a property (seed {seed}): {why}; the input is saved at {}",
                    path.display()
                );
            }
        }
    };
    // `BACKYARD_FUZZ_VERBOSE=1` prints each outcome class when it is first seen.
    let verbose = std::env::var_os("BACKYARD_FUZZ_VERBOSE").is_some();
    for input in corpus.clone() {
        if let Some(o) = try_one(&input, &mut cases) {
            if verbose && !outcomes.contains(&o) {
                println!("fuzz {target}: new outcome {o:?}");
            }
            outcomes.insert(o);
        }
    }
    let deadline = secs.map(|s| started + Duration::from_secs(s));
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if cases >= DEFAULT_CASES + corpus.len() as u64 => break,
            _ => {}
        }
        let base = corpus[rng.gen_range(0..corpus.len())].clone();
        let input = mutate(&mut rng, &base, &corpus, dict);
        if let Some(o) = try_one(&input, &mut cases)
            && !outcomes.contains(&o)
        {
            if verbose {
                println!("fuzz {target}: new outcome {o:?}");
            }
            outcomes.insert(o);
            if corpus.len() < 10_000 {
                corpus.push(input);
            }
        }
    }
    let _ = std::panic::take_hook();
    let report = Report {
        target: target.into(),
        seed,
        cases,
        outcomes: outcomes.len(),
        corpus: corpus.len(),
        elapsed: started.elapsed(),
    };
    println!(
        "fuzz {}: {} cases in {:.0} s, {} outcome classes, corpus {} (seed {}), 0 crashes",
        report.target,
        report.cases,
        report.elapsed.as_secs_f64(),
        report.outcomes,
        report.corpus,
        report.seed
    );
    report
}

/// Reads structured values out of fuzz bytes (zeros once they run out), for targets whose input is not text.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Any f32 bit pattern (NaN and infinities included) a quarter of the time, else a value in a useful range.
    pub fn f32(&mut self) -> f32 {
        let kind = self.u8();
        let bits = self.u32();
        if kind.is_multiple_of(4) { f32::from_bits(bits) } else { (bits % 4_000_000) as f32 / 1000.0 - 500.0 }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
