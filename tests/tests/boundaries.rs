//! Crate boundaries that Cargo alone does not enforce (see style.md, "Boundaries").

use std::process::Command;

use trellis_tests::cluster::repo_root;

/// The normal and build dependency tree of a workspace package, one crate name per line.
fn dependencies(package: &str) -> Vec<String> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// True when crate `name` matches `pattern`: an exact name, or a prefix ending in `*`.
fn matches(name: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let deps = dependencies(package);
    assert!(
        deps.iter().any(|d| d == package),
        "cargo tree did not list {package}: {deps:?}"
    );
    let found: Vec<&String> = deps
        .iter()
        .filter(|d| forbidden.iter().any(|f| matches(d, f)))
        .collect();
    assert!(found.is_empty(), "{package} must not depend on {found:?}");
}

#[test]
fn pattern_matching_finds_forbidden_crates() {
    assert!(matches("kube-runtime", "kube*"));
    assert!(matches("k8s-openapi", "k8s-openapi"));
    assert!(!matches("k8s-openapi-ext", "k8s-openapi"));
}

#[test]
fn proxy_does_not_depend_on_kubernetes_or_the_control_plane() {
    assert_free_of(
        "trellis-proxy",
        &[
            "kube*",
            "k8s-openapi",
            "trellis-crds",
            "trellis-operator",
            "trellis-webhooks",
        ],
    );
}

#[test]
fn api_is_kube_free() {
    assert_free_of(
        "trellis-api",
        &[
            "kube*",
            "k8s-openapi",
            "trellis-crds",
            "trellis-operator",
            "trellis-webhooks",
            "trellis-proxy",
        ],
    );
}

#[test]
fn crds_have_no_grpc() {
    assert_free_of(
        "trellis-crds",
        &[
            "tonic",
            "prost",
            "trellis-api",
            "trellis-operator",
            "trellis-proxy",
        ],
    );
}

#[test]
fn demo_app_is_a_plain_workload() {
    assert_free_of(
        "trellis-demo",
        &[
            "kube*",
            "k8s-openapi",
            "trellis-api",
            "trellis-crds",
            "trellis-operator",
            "trellis-proxy",
            "trellis-webhooks",
        ],
    );
}
