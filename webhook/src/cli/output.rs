//! Everything the commands print goes through here: reports on stdout, which end
//! quietly when the reader goes away (`plate-policy test | head -1`), messages on
//! stderr, which never panic, and colour as `--color` and `NO_COLOR` say.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

/// `--color`: when to colour what is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour a stream only when it is a terminal and `NO_COLOR` is not set.
    Auto,
    Always,
    Never,
}

/// Whether stdout and stderr are coloured, decided once at start.
#[derive(Debug, Clone, Copy)]
struct Colors {
    stdout: bool,
    stderr: bool,
}

static COLORS: OnceLock<Colors> = OnceLock::new();

/// Decides colour for the process; the first call wins (main calls it once).
pub fn init(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    let auto = |terminal: bool| terminal && !no_color && !dumb;
    let colors = match choice {
        ColorChoice::Always => Colors {
            stdout: true,
            stderr: true,
        },
        ColorChoice::Never => Colors {
            stdout: false,
            stderr: false,
        },
        ColorChoice::Auto => Colors {
            stdout: auto(std::io::stdout().is_terminal()),
            stderr: auto(std::io::stderr().is_terminal()),
        },
    };
    let _ = COLORS.set(colors);
}

fn colors() -> Colors {
    COLORS.get().copied().unwrap_or(Colors {
        stdout: false,
        stderr: false,
    })
}

/// Whether log lines on stderr may carry colour.
pub fn stderr_colored() -> bool {
    colors().stderr
}

/// What a word on the screen means, and so its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Bad,
    Warning,
    Good,
    Quiet,
}

impl Tone {
    fn code(self) -> &'static str {
        match self {
            Tone::Bad => "1;31",
            Tone::Warning => "33",
            Tone::Good => "32",
            Tone::Quiet => "2",
        }
    }
}

fn paint(text: &str, tone: Tone, enabled: bool) -> String {
    if enabled {
        format!("\x1b[{}m{text}\x1b[0m", tone.code())
    } else {
        text.to_string()
    }
}

/// `text` coloured for stdout, when stdout is coloured. Pad before painting:
/// escape codes count as characters to `format!`.
pub fn tone(text: &str, tone: Tone) -> String {
    paint(text, tone, colors().stdout)
}

/// Prints a line to stdout. An error (a reader gone away is `BrokenPipe`) goes
/// back to the command, which stops printing and ends through [`finish`].
pub fn line(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Writes bytes to stdout as they are (reports, XML, completion scripts).
pub fn raw(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// `error: MESSAGE` on stderr. A stderr that cannot be written is ignored: there is
/// nowhere left to say so.
pub fn error(args: fmt::Arguments<'_>) {
    let prefix = paint("error:", Tone::Bad, colors().stderr);
    let _ = writeln!(std::io::stderr().lock(), "{prefix} {args}");
}

/// A note on stderr (what a command did, beside its report on stdout); never panics.
pub fn note(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// The exit code of a command that printed its report with `result`: its own code,
/// 0 when stdout was closed by the reader (what was wanted was written, as `head`
/// wants), 1 when stdout failed otherwise.
pub fn finish(result: std::io::Result<u8>) -> u8 {
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            error(format_args!("cannot write to standard output: {e}"));
            1
        }
    }
}

/// `outln!("...", args)`: a line on stdout, as [`line`]; evaluates to `io::Result<()>`.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::output::line(format_args!($($arg)*)) };
}

/// `errorln!("...", args)`: `error: ...` on stderr, as [`error`].
#[macro_export]
macro_rules! errorln {
    ($($arg:tt)*) => { $crate::cli::output::error(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn painting_is_only_escape_codes_around_the_text() {
        assert_eq!(paint("DENY", Tone::Bad, false), "DENY");
        assert_eq!(paint("DENY", Tone::Bad, true), "\x1b[1;31mDENY\x1b[0m");
    }

    #[test]
    fn a_closed_reader_is_a_quiet_success() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(finish(Err(closed)), 0);
        assert_eq!(finish(Ok(2)), 2);
        let full = std::io::Error::other("disk full");
        assert_eq!(finish(Err(full)), 1);
    }
}
