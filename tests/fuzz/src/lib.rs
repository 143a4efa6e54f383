//! Shared pieces of the fuzz targets: the one runtime the async parsers run on, and the
//! in-process application and client the HTTP entry points are driven with.

pub mod http;

use std::sync::OnceLock;

/// A current-thread runtime with time and I/O, built once per fuzzing process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}
