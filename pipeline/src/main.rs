//! The `xinfang` command. See `xinfang --help` and README.md.
//!
//! The command line (`cli`) and the benchmarks (`bench`) belong to this binary only: the
//! library exports neither.

mod bench;
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Tesseract must never spread one page over OpenMP threads: engines run one per core
    // instead (measured: 14.7 s against 2.1 s for a page). libgomp reads OMP_THREAD_LIMIT
    // when the library is loaded, before `main`, so setting it here would be too late:
    // when it is missing, run this same program again with it set.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        use std::os::unix::process::CommandExt;
        let err = match std::env::current_exe() {
            Ok(exe) => {
                std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("OMP_THREAD_LIMIT", "1").exec()
            }
            Err(e) => e,
        };
        eprintln!("error: cannot restart with OMP_THREAD_LIMIT=1 ({err}); set it in the environment");
        return ExitCode::from(1);
    }
    // A panic message can quote the letter being read (a string slice error prints the
    // string), and letters carry the reporter's identity: report where, never what.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map_or_else(|| "unknown place".to_string(), |l| format!("{}:{}", l.file(), l.line()));
        eprintln!("internal error at {at} (details withheld: they may quote a letter)");
    }));
    cli::main()
}
