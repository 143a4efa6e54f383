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

fn exists(path: &Path) -> bool {
    path.is_file()
}
