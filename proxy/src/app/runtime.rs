//! The proxy's runtimes: data-plane workers, and one thread for control work.
//!
//! As in linkerd2-proxy, one core runs a single-threaded runtime (a one-worker threaded
//! scheduler is slower), and more cores run a threaded one. Admin, identity and the
//! identity client's connection live on their own OS thread with its own runtime, so a
//! scrape or a certificate renewal never takes a data worker.

use std::{io, thread::JoinHandle};

use tokio::{
    runtime::{Builder, Handle, Runtime},
    sync::oneshot,
};

/// Name of the control thread.
pub const CONTROL_THREAD_NAME: &str = "trellis-control";
/// Name of data-plane worker threads.
pub const WORKER_THREAD_NAME: &str = "trellis-worker";

/// The data-plane runtime for `cores` workers: single-threaded for one core.
pub fn data(cores: usize) -> io::Result<Runtime> {
    if cores <= 1 {
        Builder::new_current_thread().enable_all().build()
    } else {
        Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name(WORKER_THREAD_NAME)
            .enable_all()
            .build()
    }
}

/// A single-threaded runtime on its own OS thread, running until [`Control::stop`].
#[derive(Debug)]
pub struct Control {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Control {
    /// Starts the control thread.
    pub fn start() -> io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(CONTROL_THREAD_NAME.into())
            .spawn(move || {
                // Dropped senders count as a stop too.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            stop,
            thread,
        })
    }

    /// Where control tasks are spawned.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops the runtime (dropping its tasks) and joins the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::warn!("The control thread panicked");
        }
    }
}
