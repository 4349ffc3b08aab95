//! The `vigil` command line: reads the arguments, runs the command, and
//! turns its outcome into the exit code. The commands are in [`cli`].

mod cli;

use std::io::IsTerminal;

use anyhow::Result;
use clap::Parser;

use cli::args::{Cli, Command};

fn main() {
    // A file-size limit (RLIMIT_FSIZE) must fail the write that meets it,
    // with an error saying so, not kill the process and its other streams.
    // SAFETY: setting a signal's disposition to "ignore" before any thread
    // starts has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    few_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Escape codes only for a terminal, not for journald or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let code = match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// One malloc arena per core instead of glibc's eight a core: each of vigil's
/// many threads (stages, decoders, inference) would otherwise keep freed
/// frames and tensors in an arena of its own. A detector stream peaked 16 MiB
/// lower (164 to 143) at the same speed; jemalloc and mimalloc (preloaded)
/// peaked at 163 and 168. `GLIBC_TUNABLES` with
/// `glibc.malloc.arena_max` still decides when it is set.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let told = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if !told {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
            // SAFETY: mallopt only sets a malloc parameter; it is called
            // before any thread starts.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
        }
    }
}

/// Runs the command; Ok holds the exit code.
fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run(args) => cli::run::run(args),
        Command::Serve(args) => cli::serve::serve(args),
        Command::Attach(args) => cli::remote::attach(args),
        Command::Detach(args) => cli::remote::detach(args),
        Command::Streams(args) => cli::remote::streams(args),
        Command::Check(args) => cli::check::check(args),
        Command::Events(args) => cli::events::events(args),
        Command::Ask(args) => cli::ask::ask(args),
        Command::Index(args) => cli::ask::index(args),
        Command::Cursors(args) => cli::cursors::cursors(args),
        Command::Gc(args) => cli::gc::gc(args),
        Command::Models { action } => cli::models::models(action),
        Command::Faces { action } => cli::faces::faces(action),
        Command::Clip(args) => cli::clip::clip(args),
        Command::Config(args) => cli::config::config(args),
    }
}
