//! The workspace's own binaries (`trellis-proxy`, `trellis-proxy-init`, `trellis-operator`)
//! for tests and benchmarks that run them as processes.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// Binaries that [`path`] builds.
const BINARIES: [&str; 3] = ["trellis-proxy", "trellis-proxy-init", "trellis-operator"];

/// The profile directory (`target/debug` or `target/release`) of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash>, or target/<profile>/<bench> for some harnesses.
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    dir.to_path_buf()
}

/// The `trellis-proxy` the meshed pods run: `TRELLIS_BENCH_PROXY` when set (the benchmark
/// measures another build that way, such as a baseline), else this checkout's ([`path`]).
pub fn proxy() -> PathBuf {
    crate::cluster::env("TRELLIS_BENCH_PROXY").map_or_else(|| path("trellis-proxy"), PathBuf::from)
}

/// Builds every binary in [`BINARIES`] once per process with the same profile as the running
/// test, then returns the path of `name`.
pub fn path(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    assert!(
        BINARIES.contains(&name),
        "{name} is not one of {BINARIES:?}"
    );
    let dir = BUILT.get_or_init(|| {
        let dir = profile_dir();
        let cargo = crate::cluster::env("CARGO").unwrap_or_else(|| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        // Select the packages and targets of the cargo command that built this test (`cargo
        // test --workspace`, or `cargo bench -p trellis-tests`), so dependency features
        // resolve the same way and its artifacts are reused instead of a second copy of every
        // dependency being built for a narrower feature set.
        cmd.arg("build").current_dir(crate::cluster::repo_root());
        without_cargo_run_env(&mut cmd);
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.args(["--release", "-p", "trellis-tests", "-p", "trellis-proxy"]);
            cmd.args(["-p", "trellis-operator", "--bins"]);
        } else {
            cmd.args(["--workspace", "--bins", "--tests"]);
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(status.success(), "{cmd:?} failed");
        dir
    });
    let path = dir.join(name);
    assert!(exists(&path), "{} was not built", path.display());
    path
}

/// Removes the variables cargo sets for the test or bench it runs (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, ...). Build scripts such as ring's declare `rerun-if-env-changed` on
/// some of them, so a nested cargo that inherited them would see another environment than the
/// shell's, rebuild those crates and everything above them, and leave the next `cargo test`
/// or `cargo bench` to rebuild them back.
fn without_cargo_run_env(cmd: &mut Command) {
    const PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"];
    const NAMES: [&str; 5] = [
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name) {
            cmd.env_remove(name);
        }
    }
}

fn exists(path: &Path) -> bool {
    path.is_file()
}
