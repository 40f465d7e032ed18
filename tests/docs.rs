//! Docs that cannot drift: every ```console block of README.md and docs/*.md is run
//! against the binary and its shown output compared (paths and timings
//! normalised); every other block that shows a plate-policy command says why it is
//! not run (it needs a cluster or a running server). Inputs live under examples/.

mod support;

use std::path::PathBuf;
use support::docs::{self, Block, Session};

fn markdown_files() -> Vec<PathBuf> {
    let root = support::repo_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap_or_else(|e| panic!("docs/: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.insert(0, root.join("README.md"));
    files
}

fn all_blocks() -> Vec<Block> {
    markdown_files()
        .iter()
        .flat_map(|f| docs::blocks(f))
        .collect()
}

fn marker_starts(block: &Block, prefix: &str) -> bool {
    block
        .marker
        .as_deref()
        .is_some_and(|m| m.starts_with(prefix))
}

/// A block's shell commands that invoke the binary.
fn binary_commands(block: &Block) -> Vec<String> {
    block
        .lines
        .iter()
        .map(|l| l.trim_start_matches("$ ").trim())
        .filter(|l| l.starts_with("plate-policy ") || l.starts_with("cargo run -p plate-policy"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_console_block_prints_what_it_shows() {
    let root = support::repo_root();
    let mut problems = Vec::new();
    let mut run = 0;
    for block in all_blocks() {
        if block.lang != "console"
            || marker_starts(&block, "not run:")
            || marker_starts(&block, "walkthrough")
        {
            continue;
        }
        let scratch = support::command::temp_dir();
        let cwd = match block.marker.as_deref().and_then(|m| m.strip_prefix("cwd:")) {
            Some(dir) if dir.trim() == "temp" => scratch.path().to_path_buf(),
            Some(dir) => root.join(dir.trim()),
            None => root.clone(),
        };
        let mut session = Session::new(cwd);
        problems.extend(docs::run_block(&block, &mut session));
        run += 1;
    }
    assert!(run >= 10, "only {run} console blocks found");
    assert!(
        problems.is_empty(),
        "{} drift(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_command_shown_is_run_or_says_why_not() {
    let mut unexplained = Vec::new();
    for block in all_blocks() {
        let commands = binary_commands(&block);
        if commands.is_empty() || block.lang == "text" {
            continue;
        }
        let explained = marker_starts(&block, "not run:")
            && block
                .marker
                .as_deref()
                .is_some_and(|m| m.len() > "not run:".len() + 3);
        let run = block.lang == "console" && !marker_starts(&block, "not run:");
        if !run && !explained {
            unexplained.push(format!(
                "{}:{}: {}",
                block.file,
                block.line,
                commands.join("; ")
            ));
        }
    }
    assert!(
        unexplained.is_empty(),
        "commands shown but neither run (a ```console block) nor marked <!-- not run: why -->:\n{}",
        unexplained.join("\n")
    );
}

#[test]
fn the_docs_parser_reads_sessions_as_a_shell_would() {
    assert_eq!(
        docs::words(r#"plate-policy run x --settings '{"a": 1}' "two words" a\ b"#),
        [
            "plate-policy",
            "run",
            "x",
            "--settings",
            r#"{"a": 1}"#,
            "two words",
            "a b"
        ]
    );
    assert_eq!(
        docs::normalise_timings("loaded in 1.234 ms, median 0.5 ms; 200 evaluations, 3 s"),
        "loaded in N ms, median N ms; 200 evaluations, 3 s"
    );
    let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    assert!(docs::matches(&lines("a\n...\nd"), &lines("a\nb\nc\nd")));
    assert!(docs::matches(&lines("a\n...\nd"), &lines("a\nd")));
    assert!(!docs::matches(&lines("a\nd"), &lines("a\nb\nd")));
    assert!(!docs::matches(&lines("a"), &lines("a\nb")));
}
