#![forbid(unsafe_code)]

// mimalloc: the request path allocates and frees many small buffers from two
// worker threads; glibc's malloc/free were ~7 % of the CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wsticket::cli::run()
}
