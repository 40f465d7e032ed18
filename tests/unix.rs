//! Unix manners of the binary: a reader that goes away (`| head -1`) ends it
//! quietly with exit 0; `--color` and NO_COLOR; shell completions; each problem
//! printed once (in the report, not again as a log line).

mod support;

use support::command::{
    code, on_terminal, plate_policy, s, stderr, stdout, temp_dir, with_closed_stdout, write,
};
use support::{Hostile, hostile_set};

fn assert_quiet_success(args: &[&str]) {
    let out = with_closed_stdout(args);
    assert_eq!(
        code(&out),
        0,
        "{args:?} with stdout closed: {}",
        stderr(&out)
    );
    assert_eq!(stderr(&out), "", "{args:?} must end quietly");
}

#[test]
fn a_closed_stdout_ends_test_quietly() {
    assert_quiet_success(&["test", "policies"]);
    assert_quiet_success(&["test", "policies", "--output", "junit", "-"]);
}

#[test]
fn a_closed_stdout_ends_check_quietly_in_every_format() {
    for format in ["text", "json", "junit", "github"] {
        assert_quiet_success(&[
            "check",
            "-f",
            "examples/plate-prod.yaml",
            "--env",
            "prod",
            "--output",
            format,
        ]);
    }
}

#[test]
fn a_closed_stdout_ends_the_other_commands_quietly() {
    assert_quiet_success(&["completions", "bash"]);
    assert_quiet_success(&["--help"]);
    let dir = temp_dir();
    assert_quiet_success(&["certs", "--out", s(dir.path())]);
}

#[test]
fn colour_is_for_terminals_unless_asked() {
    let check = ["check", "-f", "examples/plate-prod.yaml", "--env", "prod"];
    let red_deny = "\x1b[1;31mDENY \x1b[0m";
    // A pipe: no colour, unless --color always.
    let piped = plate_policy(&check);
    assert!(
        stdout(&piped).contains(": DENY  no-latest-tag"),
        "{}",
        stdout(&piped)
    );
    assert!(!stdout(&piped).contains('\x1b'), "{}", stdout(&piped));
    let always = plate_policy(&[&check[..], &["--color", "always"]].concat());
    assert!(stdout(&always).contains(red_deny), "{}", stdout(&always));
    // A terminal: colour, unless NO_COLOR or --color never.
    let (exit, text) = on_terminal(&check, &[]);
    assert_eq!(exit, 1, "{text}");
    assert!(text.contains(red_deny), "{text:?}");
    let (_, text) = on_terminal(&check, &[("NO_COLOR", "1")]);
    assert!(text.contains("DENY") && !text.contains('\x1b'), "{text:?}");
    let (_, text) = on_terminal(&[&check[..], &["--color", "never"]].concat(), &[]);
    assert!(text.contains("DENY") && !text.contains('\x1b'), "{text:?}");
    let (exit, text) = on_terminal(&["test", "policies/no-latest-tag/tests/settings.yaml"], &[]);
    assert_eq!(exit, 0, "{text}");
    assert!(text.contains("\x1b[32mPASS\x1b[0m"), "{text:?}");
}

#[test]
fn completions_are_scripts_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _plate__policy"),
        ("zsh", "#compdef plate-policy"),
        ("fish", "complete -c plate-policy"),
    ] {
        let out = plate_policy(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["check", "test", "serve", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    // bash itself reads the script and registers the completion.
    let dir = temp_dir();
    let script = write(
        dir.path(),
        "plate-policy.bash",
        &stdout(&plate_policy(&["completions", "bash"])),
    );
    let registered = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("source {} && complete -p plate-policy", s(&script)),
        ])
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    assert!(
        String::from_utf8_lossy(&registered.stdout).contains("plate-policy"),
        "{}",
        String::from_utf8_lossy(&registered.stderr)
    );
    let unknown = plate_policy(&["completions", "tcsh"]);
    assert_eq!(code(&unknown), 2);
}

#[test]
fn a_failing_policy_is_reported_once() {
    let dir = temp_dir();
    let set = hostile_set(dir.path(), &[("trapper", Hostile::Trap, "Fail")]);
    let pod = write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: plate-prod}\nspec: {containers: [{name: a, image: nginx:1.25}]}\n",
    );
    let out = plate_policy(&[
        "check",
        "-f",
        s(&pod),
        "--env",
        "prod",
        "--policies",
        s(&set),
    ]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out).matches("trapped").count(),
        1,
        "{}",
        stdout(&out)
    );
    assert_eq!(stderr(&out), "", "no second report as a log line");
}
