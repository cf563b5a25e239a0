//! Whether the process is draining: set by the shutdown signal handler in
//! `startup`, read by `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}
