//! The `palisade` binary: a shim over [`palisade_server::cli`].

fn main() -> std::process::ExitCode {
    palisade_server::cli::main()
}
