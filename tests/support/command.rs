//! Running the `plate-policy` binary from end-to-end tests, in the repository root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `plate-policy ARGS` in the repository root.
pub fn plate_policy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plate-policy"))
        .args(args)
        .current_dir(super::repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run plate-policy: {e}"))
}

/// Runs `plate-policy ARGS` with `input` on standard input.
pub fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plate-policy"))
        .args(args)
        .current_dir(super::repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run plate-policy: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("plate-policy did not finish: {e}"))
}

/// Runs `plate-policy ARGS` in `dir` with `input` on standard input.
pub fn with_stdin_in(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plate-policy"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run plate-policy: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("plate-policy did not finish: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// Writes `text` to `dir/name` (directories made as needed).
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Runs `plate-policy ARGS` with a real pipe as stdout whose reading end is closed
/// before the program writes (as `| head` does once it has its lines): every write
/// to stdout fails with EPIPE. Returns the exit status and stderr.
pub fn with_closed_stdout(args: &[&str]) -> Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    // The pipe's reading end is closed before the child starts, so its very first
    // write fails however fast it runs (closing it after the spawn raced the child).
    let mut fds = [-1; 2];
    // SAFETY: pipe writes two new descriptors into the array it is given.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Command::new(env!("CARGO_BIN_EXE_plate-policy"))
        .args(args)
        .current_dir(super::repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run plate-policy: {e}"))
}

/// Runs `plate-policy ARGS` with a pseudo-terminal as stdout (and `envs` set):
/// returns the exit code and what it printed there.
pub fn on_terminal(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the given integers; the
    // other arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut command = Command::new(env!("CARGO_BIN_EXE_plate-policy"));
    command
        .args(args)
        .current_dir(super::repo_root())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    // The Command owns the slave end; dropping it after spawn leaves the child's copy
    // only, so reading the master ends (EIO) when the child exits.
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run plate-policy: {e}"));
    drop(command);
    let mut master = std::fs::File::from(master);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("plate-policy did not finish: {e}"));
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Runs `plate-policy ARGS` in `dir`.
pub fn plate_policy_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plate-policy"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run plate-policy: {e}"))
}

/// Asserts the run was bad input (exit 2) and said `message` on stderr.
pub fn assert_bad_input(out: &Output, message: &str) {
    assert_eq!(code(out), 2, "{}{}", stdout(out), stderr(out));
    assert!(stderr(out).contains(message), "{}", stderr(out));
}
