//! Access to the local cluster started by `tests/cluster/cluster up`.

use std::path::{Path, PathBuf};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

/// The repository root (parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the repository")
        .to_path_buf()
}

#[expect(
    clippy::disallowed_methods,
    reason = "test configuration is read here only"
)]
/// The environment variable `name`, unless unset or empty: the one place test support reads
/// its configuration.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Path of the cluster's kubeconfig: `$TRELLIS_KUBECONFIG`, else `tests/cluster/.run/kubeconfig`.
pub fn kubeconfig_path() -> PathBuf {
    env("TRELLIS_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/cluster/.run/kubeconfig"))
}

/// A client for the local cluster; panics with the command to run when there is none.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!(
            "no local cluster: cannot read {} ({e}); start one with `tests/cluster/cluster up`",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("invalid kubeconfig {}: {e}", path.display()));
    let client = Client::try_from(config).expect("client from kubeconfig");
    if let Err(e) = client.apiserver_version().await {
        panic!(
            "the local cluster at {} does not answer ({e}); run `tests/cluster/cluster up` (or `status` to see what is down)",
            path.display()
        );
    }
    client
}

/// A version pin from `tests/cluster/versions`, e.g. `K8S_VERSION`.
pub fn pinned(name: &str) -> String {
    let versions = std::fs::read_to_string(repo_root().join("tests/cluster/versions"))
        .expect("read tests/cluster/versions");
    versions
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing from tests/cluster/versions"))
        .trim()
        .to_string()
}

/// Where `tests/cluster/build` caches binaries: `$TRELLIS_CACHE`, else `~/.cache/trellis`.
pub fn cache_dir() -> PathBuf {
    env("TRELLIS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env("HOME").expect("HOME is set")).join(".cache/trellis"))
}

/// The cached kubectl that matches the cluster's version.
pub fn kubectl_path() -> PathBuf {
    cache_dir()
        .join(format!("kubernetes-{}", pinned("K8S_VERSION")))
        .join("kubectl")
}

/// Runs the cluster's kubectl with the cluster's kubeconfig; returns (success, stdout, stderr).
pub async fn kubectl(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); `tests/cluster/cluster up` builds it",
                kubectl_path().display()
            )
        });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
