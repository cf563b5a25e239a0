#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    wsticket::cli::run()
}
