//! Where log lines go: a buffer in memory, written to stderr by a thread of
//! its own, so that a request never waits for whoever reads the log.
//!
//! A logging thread appends its line to one shared buffer under a mutex
//! (a copy of ~200 bytes, no allocation, no system call) and wakes the
//! writer only if it is asleep. The writer swaps the buffer for an empty one
//! and writes all of it with one `write`. A line alone (the service is
//! quiet) is written at once; after a batch of several, the writer naps for
//! [`NAP`] first, so that under load one `write` carries that many
//! milliseconds of lines (hundreds) and the writer wakes at most 100 times a
//! second, whatever the rate of lines. If the reader of stderr falls behind
//! (a stalled pipe, a slow disk), at most [`MAX_PENDING_LINES`] lines wait;
//! lines beyond are dropped and counted ([`dropped_lines`]), never waited
//! for.
//!
//! Why not `tracing-appender`'s non-blocking writer, which this replaced:
//! it allocates every line and sends it through a channel whose receiver,
//! once empty, spins with `sched_yield` and then parks on a futex, so every
//! short lull costs a wake-up on both sides. Profiled under load (mint, 64
//! connections), its thread spent 39 % of its CPU in `sched_yield` and futex
//! waits and 13 % copying lines into its buffer; see the commit that brought
//! this file back for the A/B.

use super::format::Output;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::Duration;

/// Lines that may wait for the writer: about 2 MiB at ~250 bytes a line,
/// 0.1 s of a busy instance's log.
pub(crate) const MAX_PENDING_LINES: usize = 8192;

/// A buffer the writer keeps for reuse at most this large.
const KEEP_CAPACITY: usize = 2 * 1024 * 1024;

/// The writer's pause after a batch of more than one line: how late a line
/// may be written under load.
const NAP: Duration = Duration::from_millis(10);

/// How long [`SinkGuard`]'s drop waits for the lines still pending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped since start because [`MAX_PENDING_LINES`] were
/// already waiting.
pub(crate) fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

struct Pending {
    buf: Vec<u8>,
    lines: usize,
    writer_asleep: bool,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    /// A panic while holding the lock (none is expected) loses nothing
    /// that matters here: go on with the buffer as it is.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The logging threads' end.
pub(crate) struct Sink {
    shared: Arc<Shared>,
}

/// Stops the writer when dropped, after it has written what was pending
/// (waiting at most [`DRAIN_TIMEOUT`]).
pub(crate) struct SinkGuard {
    shared: Arc<Shared>,
    done: mpsc::Receiver<()>,
}

impl Sink {
    /// Starts the writer thread; `None` if the thread cannot be started.
    pub(crate) fn start<W: Write + Send + 'static>(out: W) -> Option<(Sink, SinkGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 * 1024),
                lines: 0,
                writer_asleep: false,
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let (done_tx, done) = mpsc::channel();
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("wsticket-log".into())
            .spawn(move || {
                write_until_closed(&writer, out);
                let _ = done_tx.send(());
            })
            .ok()?;
        Some((
            Sink {
                shared: shared.clone(),
            },
            SinkGuard { shared, done },
        ))
    }
}

impl Output for Sink {
    fn line(&self, line: &[u8]) {
        let mut p = self.shared.lock();
        if p.lines >= MAX_PENDING_LINES {
            drop(p);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.buf.extend_from_slice(line);
        p.lines += 1;
        if p.writer_asleep {
            p.writer_asleep = false;
            drop(p);
            self.shared.wake.notify_one();
        }
    }
}

fn write_until_closed<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let mut p = shared.lock();
        while p.buf.is_empty() && !p.closed {
            p.writer_asleep = true;
            p = shared
                .wake
                .wait(p)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if p.buf.is_empty() {
            return; // closed, and everything written
        }
        std::mem::swap(&mut p.buf, &mut batch);
        let lines = std::mem::take(&mut p.lines);
        let closed = p.closed;
        drop(p);
        // A batch that cannot be written (stderr closed) is lost.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            batch = Vec::with_capacity(64 * 1024);
        }
        if lines > 1 && !closed {
            std::thread::sleep(NAP);
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        let _ = self.done.recv_timeout(DRAIN_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that says when a write begins and holds it until told to
    /// go on.
    struct Gate {
        out: Arc<Mutex<Vec<u8>>>,
        entered: mpsc::Sender<()>,
        go: mpsc::Receiver<()>,
    }

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.go.recv();
            self.out.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_costs_lines_not_waits_and_then_writes_the_rest() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (entered_tx, entered) = mpsc::channel();
        let (go, gate) = mpsc::channel();
        let (sink, guard) = Sink::start(Gate {
            out: out.clone(),
            entered: entered_tx,
            go: gate,
        })
        .unwrap();
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        // The writer takes the first line and stalls in its write.
        sink.line(&line);
        entered.recv().unwrap();
        // The rest pile up to the limit; beyond it, lines are dropped.
        let before = dropped_lines();
        let fit = MAX_PENDING_LINES;
        for _ in 0..fit + 1000 {
            sink.line(&line);
        }
        assert_eq!(dropped_lines() - before, 1000);
        for _ in 0..10 {
            go.send(()).unwrap();
        }
        drop(guard);
        assert_eq!(out.lock().unwrap().len(), (1 + fit) * line.len());
    }
}
