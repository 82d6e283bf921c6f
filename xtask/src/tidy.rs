//! `cargo xtask tidy`: the repository's own conventions, checked (in the manner of rust-analyzer's tidy test).
//! `cargo xtask test` runs it before the suites.
//!
//! - Code, comments, docs and test names speak of the product: no pointers to documents outside the
//!   repository or to issue numbers.
//! - Every `.unwrap()` outside tests says why it cannot fail, in a `// unwrap:` comment on its line or in
//!   the eight lines above.
//! - `cargo xtask help` lists every command xtask answers to.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::root;

/// Files whose text is checked, by extension.
const TEXT: &[&str] = &["rs", "js", "mjs", "md", "toml", "html", "css", "sh", "sql", "wit"];
/// Folders never looked into.
const SKIP: &[&str] = &["target", "node_modules", ".git", "data", "vendor"];
/// How far above an unwrap its justification may stand.
const UNWRAP_WINDOW: usize = 8;

pub fn run() -> Result<()> {
    let root = root();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    walk(&root, &mut files);
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let rel = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        if rel == "xtask/src/tidy.rs" {
            // It names what it looks for.
            continue;
        }
        outside_references(&rel, &text, &mut problems);
        if rel.ends_with(".rs") && !is_test_code(&rel) {
            unjustified_unwraps(&rel, &text, &mut problems);
        }
    }
    help_lists_every_command(&root, &mut problems)?;
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("{} tidy problem(s)", problems.len());
    }
    println!("xtask: tidy: {} files follow the conventions", files.len());
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !SKIP.contains(&name.as_str()) {
                walk(&path, out);
            }
        } else if path.extension().and_then(|x| x.to_str()).is_some_and(|x| TEXT.contains(&x)) {
            out.push(path);
        }
    }
}

/// Test files, benches and examples: their unwraps need no justification.
fn is_test_code(rel: &str) -> bool {
    rel.contains("/tests/") || rel.contains("/benches/") || rel.contains("/examples/")
}

/// Pointers a reader of the repository cannot follow.
fn outside_references(rel: &str, text: &str, problems: &mut Vec<String>) {
    // Built from parts so that this file does not name them itself.
    let docs =
        [["..", "/shared/"].concat(), ["DESIGN", ".md"].concat(), ["DESIGN", " §"].concat(), ["STYLE", ".md"].concat()];
    for (n, line) in text.lines().enumerate() {
        for d in &docs {
            if line.contains(d.as_str()) {
                problems.push(format!("{rel}:{}: names a document outside the repository ({d})", n + 1));
            }
        }
        if let Some(at) = issue_number(line) {
            problems.push(format!("{rel}:{}: names an issue number ({at}); say what the code does instead", n + 1));
        }
    }
}

/// The word "issue" followed by a number (`<issue> 6`, `<issue> #6`, `<Issue> 12`, `<issue>_6_`) in a line, if any.
fn issue_number(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("issue") {
        let after = rest[i + 5..].trim_start_matches([' ', '#', '_']);
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        if before_ok && after.starts_with(|c: char| c.is_ascii_digit()) && rest[i + 5..].starts_with([' ', '#', '_']) {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            return Some(format!("issue {digits}"));
        }
        rest = &rest[i + 5..];
    }
    None
}

fn unjustified_unwraps(rel: &str, text: &str, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            // Test modules close the file by convention.
            break;
        }
        if !line.contains(".unwrap()") || line.trim_start().starts_with("//") {
            continue;
        }
        let from = n.saturating_sub(UNWRAP_WINDOW);
        if !lines[from..=n].iter().any(|l| l.contains("// unwrap")) {
            problems.push(format!("{rel}:{}: an unwrap outside tests without a `// unwrap:` reason", n + 1));
        }
    }
}

/// Every `"name" =>` arm of xtask's command `match` appears in its help text.
fn help_lists_every_command(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let main = std::fs::read_to_string(root.join("xtask/src/main.rs"))?;
    let Some(help) = main.lines().find(|l| l.contains("usage: cargo xtask")) else {
        problems.push("xtask/src/main.rs: no `usage: cargo xtask` help line".into());
        return Ok(());
    };
    let start = main.find("match cmd {").unwrap_or(0);
    for line in main[start..].lines().take_while(|l| !l.contains("other =>")) {
        let arm = line.trim_start();
        if let Some(name) = arm.strip_prefix('"').and_then(|a| a.split('"').next())
            && arm.contains("=>")
            && !["help", "--help", "-h"].contains(&name)
            && !help.contains(name)
        {
            problems.push(format!("xtask/src/main.rs: `cargo xtask help` does not list `{name}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_numbers_are_found_and_words_are_not() {
        // Spelled from parts, so this file does not carry what it looks for.
        let w = |rest: &str| format!("{}{rest}", ["iss", "ue"].concat());
        assert_eq!(issue_number(&format!("// see {} for why", w(" 6"))), Some(w(" 6")));
        assert_eq!(issue_number(&format!("fn {}program_goes_live()", w("_6_"))), Some(w(" 6")));
        assert_eq!(issue_number(&format!("{}: program", w(" #12")).replacen('i', "I", 1)), Some(w(" 12")));
        assert_eq!(issue_number(&format!("the {} this solves", w("s"))), None);
        assert_eq!(issue_number(&format!("an {} with 6 people", w(""))), None);
    }
}
