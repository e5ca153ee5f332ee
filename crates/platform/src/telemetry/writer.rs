//! Log output off the request path ([`BatchedWriter`]).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// How often the writer thread writes what was logged meanwhile.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Buffered bytes that wake the writer thread before its interval is up.
const LOG_WAKE_BYTES: usize = 256 * 1024;
/// Buffered bytes beyond which lines are dropped (and counted in `log_lines_dropped_total`)
/// rather than growing memory without bound behind a blocked output.
const LOG_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Log output off the request path: each line is appended to a shared buffer (one short lock,
/// no allocation, no wake-up), and one thread writes the buffer out every
/// [`LOG_FLUSH_INTERVAL`] in a single `write`.
///
/// Why not `tracing-appender`'s non-blocking writer: it copies every line into a message and
/// wakes its thread for each one; with one access-log line per request, the profile showed
/// those wake-ups and context switches costing more than formatting the lines
/// (bench/RESULTS.md). A line is never split: the formatter hands over each event in one call.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<WriterShared>,
}

struct WriterShared {
    buffer: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stopping: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl BatchedWriter {
    /// Starts the writer thread over `output`.
    pub fn start(mut output: Box<dyn std::io::Write + Send>) -> Self {
        let shared = Arc::new(WriterShared {
            buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(64 * 1024);
                loop {
                    std::thread::park_timeout(LOG_FLUSH_INTERVAL);
                    let stopping = worker.stopping.load(Ordering::Acquire);
                    std::mem::swap(&mut batch, &mut *lock(&worker.buffer));
                    if !batch.is_empty() {
                        // Nowhere to report a failing log output; the lines are lost.
                        let _ = output.write_all(&batch).and_then(|()| output.flush());
                        batch.clear();
                    }
                    if stopping {
                        return;
                    }
                }
            });
        match spawned {
            Ok(handle) => *lock(&shared.thread) = Some(handle),
            // No thread: lines accumulate up to the cap and are then counted as dropped.
            Err(error) => eprintln!("could not start the log writer thread: {error}"),
        }
        Self { shared }
    }

    /// Writes what is buffered and stops the thread.
    pub(super) fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(handle) = lock(&self.shared.thread).take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }

    fn wake(&self) {
        if let Some(handle) = lock(&self.shared.thread).as_ref() {
            handle.thread().unpark();
        }
    }

    /// Lines dropped because the buffer was full.
    pub(super) fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::io::Write for &BatchedWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let buffered = {
            let mut buffer = lock(&self.shared.buffer);
            if buffer.len() + line.len() > LOG_MAX_BYTES {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(line.len());
            }
            buffer.extend_from_slice(line);
            buffer.len()
        };
        if buffered >= LOG_WAKE_BYTES && buffered - line.len() < LOG_WAKE_BYTES {
            self.wake();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = &'a BatchedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An output whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_whole_in_order_and_all_of_them_at_stop() {
        let output = Captured::default();
        let writer = BatchedWriter::start(Box::new(output.clone()));
        for line in 0..1000 {
            (&writer)
                .write_all(format!("line {line}\n").as_bytes())
                .expect("write");
        }
        writer.stop();
        let text = String::from_utf8(lock(&output.0).clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[999], "line 999");
    }

    #[test]
    fn lines_reach_the_output_within_the_flush_interval() {
        let output = Captured::default();
        let writer = BatchedWriter::start(Box::new(output.clone()));
        (&writer).write_all(b"hello\n").expect("write");
        std::thread::sleep(LOG_FLUSH_INTERVAL * 10);
        assert_eq!(&lock(&output.0)[..], b"hello\n");
        writer.stop();
    }

    #[test]
    fn beyond_the_buffer_cap_lines_are_dropped_and_counted() {
        /// An output that blocks until released, like a pipe nobody reads.
        struct Blocked(Arc<std::sync::Barrier>);
        impl Write for Blocked {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.wait();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let release = Arc::new(std::sync::Barrier::new(2));
        let writer = BatchedWriter::start(Box::new(Blocked(release.clone())));
        let line = vec![b'x'; 1024 * 1024];
        // The writer thread takes the first batch and blocks on it; the rest piles up.
        (&writer).write_all(&line).expect("write");
        std::thread::sleep(LOG_FLUSH_INTERVAL * 5);
        for _ in 0..(LOG_MAX_BYTES / line.len() + 3) {
            (&writer).write_all(&line).expect("write");
        }
        assert!(writer.dropped_lines() >= 3, "{}", writer.dropped_lines());
        release.wait();
        std::thread::spawn(move || {
            for _ in 0..2 {
                release.wait();
            }
        });
        writer.stop();
    }
}
