//! Reading the shell sessions shown in the documentation: fenced ```console blocks
//! whose `$ ` lines are commands and whose other lines are what they print, with the
//! HTML comment just before the fence as the block's marker (`<!-- not run: ... -->`,
//! `<!-- cwd: DIR -->`, `<!-- walkthrough ... -->`). A test runs them against the
//! binary and compares, normalising only paths and timings.

use std::path::Path;

/// One fenced block of a markdown file.
#[derive(Debug, Clone)]
pub struct Block {
    pub file: String,
    /// The line of the opening fence.
    pub line: usize,
    /// The info string: `console`, `sh`, `text`, ...
    pub lang: String,
    /// The fence's indentation (blocks in list items).
    pub indent: usize,
    /// The comment on the line before the fence, without `<!--` and `-->`.
    pub marker: Option<String>,
    pub lines: Vec<String>,
}

/// One command of a console block and what it is shown to print.
#[derive(Debug, Clone)]
pub struct Step {
    /// The command, continuation lines (`\` at the end) joined.
    pub command: String,
    /// The line of the `$ ` in the markdown file.
    pub line: usize,
    pub output: Vec<String>,
}

pub fn blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = path.display().to_string();
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    let mut previous = String::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        match current.as_mut() {
            Some(_) if trimmed.starts_with("```") => out.extend(current.take()),
            // Blocks inside list items are indented; drop the fence's indentation.
            Some(block) => block.lines.push(
                raw.get(block.indent.min(indent)..)
                    .unwrap_or("")
                    .to_string(),
            ),
            None => {
                if let Some(lang) = trimmed.strip_prefix("```") {
                    let marker = previous
                        .trim()
                        .strip_prefix("<!--")
                        .and_then(|m| m.strip_suffix("-->"))
                        .map(|m| m.trim().to_string());
                    current = Some(Block {
                        file: file.clone(),
                        line: i + 1,
                        lang: lang.trim().to_string(),
                        indent,
                        marker,
                        lines: Vec::new(),
                    });
                }
            }
        }
        previous = raw.to_string();
    }
    out
}

/// The commands of a console block with their shown output.
pub fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continuing = false;
    for (i, line) in block.lines.iter().enumerate() {
        if continuing {
            if let Some(step) = steps.last_mut() {
                let part = line.trim();
                continuing = part.ends_with('\\');
                step.command.push(' ');
                step.command.push_str(part.trim_end_matches('\\').trim());
            }
        } else if let Some(command) = line.strip_prefix("$ ") {
            continuing = command.ends_with('\\');
            steps.push(Step {
                command: command.trim_end_matches('\\').trim().to_string(),
                line: block.line + 1 + i,
                output: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.output.push(line.clone());
        }
    }
    steps
}

/// Splits a command line as a POSIX shell would for the simple commands the docs
/// show: words, 'single' and "double" quotes, backslash escapes.
pub fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// Timings (`0.123 ms`, `1.2 s`) as `N ms`: they differ on every run.
pub fn normalise_timings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let end = from
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(from.len());
        let (number, after) = from.split_at(end);
        // `1.5 ms`, or with no space as Go prints it (`0.003s`).
        let space = usize::from(after.starts_with(' '));
        let unit = ["ms", "s", "µs"].into_iter().find(|u| {
            let a = &after[space..];
            a.starts_with(u) && !a[u.len()..].starts_with(|c: char| c.is_alphanumeric())
        });
        let preceded_by_word = out.ends_with(|c: char| c.is_alphanumeric());
        match unit {
            Some(unit) if number.contains('.') && !preceded_by_word => {
                out.push_str(if space == 1 { "N " } else { "N" });
                out.push_str(unit);
                rest = &after[space + unit.len()..];
            }
            _ => {
                out.push_str(number);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `actual` lines are what `expected` shows: equal line by line, where an
/// expected `...` line stands for any number of lines.
pub fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(a, actual_rest)| a == first && matches(rest, actual_rest)),
    }
}

/// What the documentation calls the checkout in commands and output.
pub const CHECKOUT: &str = "/path/to/plate-policy";

/// Runs `[VAR=value...] go ...` in a directory, returning what it printed.
pub type GoRunner = fn(&Path, &[&str]) -> Vec<String>;

/// Where a shown session runs and what it has done.
pub struct Session {
    pub cwd: std::path::PathBuf,
    pub last_code: i32,
    /// Runs `cargo build` of a policy crate in the given directory (the
    /// walkthrough of docs/authoring.md); None: `cargo` is not a shown command here.
    pub cargo_build: Option<fn(&Path)>,
    /// Runs `[VAR=value...] go ...` in the given directory as shown, returning what
    /// it printed (the walkthrough of docs/authoring-go.md).
    pub go: Option<GoRunner>,
}

impl Session {
    pub fn new(cwd: std::path::PathBuf) -> Self {
        Session {
            cwd,
            last_code: 0,
            cargo_build: None,
            go: None,
        }
    }
}

fn checkout() -> String {
    super::repo_root()
        .canonicalize()
        .unwrap_or_else(|_| super::repo_root())
        .display()
        .to_string()
}

/// Runs one shown command; returns what it printed (stdout, then stderr).
fn execute(step: &Step, session: &mut Session) -> Result<Vec<String>, String> {
    let root = checkout();
    let words: Vec<String> = words(&step.command)
        .into_iter()
        .map(|w| w.replace(CHECKOUT, &root))
        .collect();
    let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
    // The commands run with an empty standard input anyway.
    if args.ends_with(&["<", "/dev/null"]) {
        args.truncate(args.len() - 2);
    }
    let binary_args = match args.as_slice() {
        ["plate-policy", rest @ ..] => Some(rest.to_vec()),
        ["cargo", "run", "-p", "plate-policy", "--", rest @ ..] => Some(rest.to_vec()),
        _ => None,
    };
    if let Some(rest) = binary_args {
        let out = super::command::plate_policy_in(&session.cwd, &rest);
        session.last_code = super::command::code(&out);
        let mut text = super::command::stdout(&out);
        text.push_str(&super::command::stderr(&out));
        return Ok(text.lines().map(str::to_string).collect());
    }
    match args.as_slice() {
        ["echo", "$?"] => Ok(vec![session.last_code.to_string()]),
        ["cat", file] => std::fs::read_to_string(session.cwd.join(file))
            .map(|text| text.lines().map(str::to_string).collect())
            .map_err(|e| format!("cat {file}: {e}")),
        ["cd", dir] => {
            session.cwd = session.cwd.join(dir);
            Ok(Vec::new())
        }
        ["cp", from, to] => {
            let from = session.cwd.join(from);
            let mut to = session.cwd.join(to);
            if to.is_dir() {
                to = to.join(from.file_name().unwrap_or_default());
            }
            std::fs::copy(&from, &to).map_err(|e| format!("cp: {e}"))?;
            Ok(Vec::new())
        }
        ["cargo", "build", ..] => match &session.cargo_build {
            Some(build) => {
                build(&session.cwd);
                Ok(Vec::new())
            }
            None => Err("cargo build is not run here".into()),
        },
        words
            if words.contains(&"go")
                && words
                    .iter()
                    .take_while(|w| **w != "go")
                    .all(|w| w.contains('=')) =>
        {
            match &session.go {
                Some(go) => Ok(go(&session.cwd, &args)),
                None => Err("go is not run here".into()),
            }
        }
        _ => Err(format!("the docs test cannot run `{}`", step.command)),
    }
}

/// Runs every command of a console block and compares what it prints with what the
/// block shows; one message per difference.
pub fn run_block(block: &Block, session: &mut Session) -> Vec<String> {
    let root = checkout();
    let cwd_text = session.cwd.display().to_string();
    let mut problems = Vec::new();
    for step in steps(block) {
        let actual = match execute(&step, session) {
            Ok(lines) => lines,
            Err(e) => {
                problems.push(format!("{}:{}: {e}", block.file, step.line));
                continue;
            }
        };
        let normal =
            |line: &str| normalise_timings(&line.replace(&root, CHECKOUT).replace(&cwd_text, "."));
        let actual: Vec<String> = actual.iter().map(|l| normal(l)).collect();
        let expected: Vec<String> = step.output.iter().map(|l| normalise_timings(l)).collect();
        if !matches(&expected, &actual) {
            problems.push(format!(
                "{}:{}: `{}` prints\n{}\n--- but the doc shows\n{}\n",
                block.file,
                step.line,
                step.command,
                excerpt(&actual),
                expected.join("\n")
            ));
        }
    }
    problems
}

/// The start and end of a long output, for messages.
fn excerpt(lines: &[String]) -> String {
    if lines.len() <= 24 {
        return lines.join("\n");
    }
    format!(
        "{}\n[... {} lines ...]\n{}",
        lines[..16].join("\n"),
        lines.len() - 22,
        lines[lines.len() - 6..].join("\n")
    )
}
