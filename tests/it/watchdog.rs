//! A test that hangs must fail, with where it hung, rather than hold CI
//! until its own time limit (as a hung `serve::` test once did, leaving
//! nothing to read). The first `vigil()` command arms a watchdog: if this
//! test binary still runs after [`LIMIT`] (or `VIGIL_TEST_WATCHDOG`
//! seconds), it prints the stack of every thread of this process (libtest
//! names each test's thread after the test) and of every child process
//! (the `vigil` runs under test), kills the children and aborts.

use std::io::Write;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

/// Far past the whole suite's run on a 2-core machine (about 8 min).
const LIMIT: Duration = Duration::from_secs(30 * 60);

pub fn arm() {
    static ARMED: Once = Once::new();
    ARMED.call_once(|| {
        let limit = std::env::var("VIGIL_TEST_WATCHDOG")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(LIMIT, Duration::from_secs);
        let _ = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                std::thread::sleep(limit);
                bark(limit);
            });
    });
}

/// To the real stderr: `eprintln!` in a thread a test spawned goes to
/// that test's captured output, which an abort never shows.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

fn bark(limit: Duration) -> ! {
    let me = std::process::id();
    say!("\n== watchdog: the tests still run after {limit:?}; what each thread is doing:");
    say!("{}", stacks(me));
    for child in children(me) {
        say!(
            "\n== watchdog: child process {child}: {}",
            command_line(child)
        );
        say!("{}", stacks(child));
        let _ = Command::new("kill")
            .args(["-9", &child.to_string()])
            .status();
    }
    say!("== watchdog: aborting the tests");
    std::process::abort()
}

/// Every thread's stack of process `pid` (gdb), or, without gdb, each
/// thread's name and where in the kernel it waits.
pub fn stacks(pid: u32) -> String {
    let gdb = Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx", "-q"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt 30"])
        .output();
    match gdb {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten();
            let mut out = String::new();
            for task in tasks.flatten() {
                let p = task.path();
                let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
                out += &format!("{}: waits in {}\n", read("comm").trim(), read("wchan"));
            }
            out
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}
