//! The `xinfang` command. See `xinfang --help` and README.md.

fn main() -> std::process::ExitCode {
    // Tesseract must never spread one page over several OpenMP threads: engines run one per
    // core instead. Set before any thread exists, so the C runtime sees it.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        std::env::set_var("OMP_THREAD_LIMIT", "1");
    }
    xinfang::cli::main()
}
