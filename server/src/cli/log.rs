//! Logging to stderr that does not tear a progress bar: while a bar is shown, log lines are
//! written through it so the bar is redrawn below them.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

static ACTIVE_BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<ProgressBar>> {
    ACTIVE_BAR.get_or_init(|| Mutex::new(None))
}

/// Makes `bar` the one log lines are routed around (or none).
pub(super) fn set_active_bar(bar: Option<ProgressBar>) {
    if let Ok(mut g) = slot().lock() {
        *g = bar;
    }
}

/// Installs the global `tracing` subscriber. `RUST_LOG` wins over `filter`.
pub(super) fn init(filter: &str) {
    let env = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(BarAwareStderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

struct BarAwareStderr;

/// Buffers one event and writes it in one piece on drop.
struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let bar = slot().lock().ok().and_then(|g| g.clone());
        let write = || {
            let _ = std::io::stderr().lock().write_all(&bytes);
        };
        match bar {
            Some(b) if !b.is_hidden() => b.suspend(write),
            _ => write(),
        }
    }
}

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(Vec::with_capacity(256))
    }
}
