//! Whether the process is draining: set by the shutdown signal handler in
//! `startup`, read by `/readyz` and awaited by the event streams (which end
//! then, so that their subscribers reconnect elsewhere and shutdown does not
//! wait on them).

use tokio::sync::watch;

#[derive(Debug)]
pub(crate) struct Lifecycle {
    draining: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            draining: watch::Sender::new(false),
        }
    }
}

impl Lifecycle {
    pub(crate) fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    pub(crate) fn start_draining(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves once draining has started.
    pub(crate) fn drained(&self) -> impl Future<Output = ()> + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            let _ = rx.wait_for(|draining| *draining).await;
        }
    }
}
