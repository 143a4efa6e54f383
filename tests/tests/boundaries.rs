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

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The module path of a source file relative to `src/`: `reconciler/mesh/mod.rs` →
/// `["reconciler", "mesh"]`, `pki/cert/tests.rs` → `["pki", "cert", "tests"]`.
fn module_of(relative: &std::path::Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The first segment after each `crate::` or `super::` path in `source` (comments skipped),
/// resolved to a top-level module of the crate; `module` is the file's own module path.
/// A braced group (`crate::{a::x, b}`) yields each of its items.
fn crate_paths(source: &str, module: &[String]) -> Vec<String> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(['c', 's']) {
        let tail = &rest[at..];
        let boundary = at == 0 || {
            let before = rest[..at].chars().last().unwrap_or(' ');
            !(before.is_alphanumeric() || before == '_' || before == ':')
        };
        let (base, after): (Vec<String>, &str) = if !boundary {
            (Vec::new(), "")
        } else if let Some(after) = tail.strip_prefix("crate::") {
            (Vec::new(), after)
        } else if tail.starts_with("super::") {
            let mut base = module.to_vec();
            let mut after = tail;
            while let Some(next) = after.strip_prefix("super::") {
                base.pop();
                after = next;
            }
            (base, after)
        } else {
            (Vec::new(), "")
        };
        rest = &rest[at + 1..];
        if after.is_empty() {
            continue;
        }
        // `crate::{..}` at the top level lists several modules; deeper braces don't matter.
        let firsts: Vec<String> = match (base.first(), after.strip_prefix('{')) {
            (None, Some(group)) => {
                let mut depth = 0;
                let mut items = vec![String::new()];
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => items.push(String::new()),
                        _ => items.last_mut().expect("one item").push(c),
                    }
                }
                items.iter().map(|i| ident(i)).collect()
            }
            (None, None) => vec![ident(after)],
            (Some(top), _) => vec![top.clone()],
        };
        out.extend(firsts.into_iter().filter(|f| !f.is_empty()));
    }
    out
}

/// Files of the operator under `src/<side>/` that refer to any module in `forbidden`.
fn operator_imports(side: &str, forbidden: &[&str]) -> Vec<String> {
    let src = repo_root().join("operator/src");
    let mut found = Vec::new();
    for file in rust_files(&src.join(side)) {
        let relative = file.strip_prefix(&src).expect("under src");
        let source = std::fs::read_to_string(&file).expect("read source");
        for top in crate_paths(&source, &module_of(relative)) {
            if forbidden.contains(&top.as_str()) {
                found.push(format!("{} uses crate::{top}", relative.display()));
            }
        }
    }
    found
}

#[test]
fn crate_paths_resolve_groups_and_super() {
    let module = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
    let source = "use crate::{\n    admin::Readiness,\n    pki::{cert, csr},\n};\n\
                  // crate::reconciler in a comment does not count\n\
                  use super::super::control_plane::tls;\nfn f() { crate::config::x(); }\n";
    assert_eq!(
        crate_paths(source, &module("reconciler/mesh/status")),
        ["admin", "pki", "reconciler", "config"]
    );
    assert_eq!(
        crate_paths("use super::Context;", &module("reconciler/mesh")),
        ["reconciler"]
    );
    assert_eq!(
        crate_paths("use super::control_plane::tls;", &module("reconciler")),
        ["control_plane"],
        "super of a top-level module is the crate root"
    );
    assert!(crate_paths("use my_crate::x; let supers::y;", &module("pki")).is_empty());
    assert_eq!(
        module_of(std::path::Path::new("control_plane/index/mod.rs")),
        ["control_plane", "index"]
    );
}

#[test]
fn operator_roles_import_one_way() {
    let reconciler = operator_imports("reconciler", &["control_plane"]);
    assert!(
        reconciler.is_empty(),
        "the reconciler must not import the control plane: {reconciler:?}"
    );
    let control_plane = operator_imports("control_plane", &["reconciler"]);
    assert!(
        control_plane.is_empty(),
        "the control plane must not import the reconciler: {control_plane:?}"
    );
    let pki = operator_imports("pki", &["reconciler", "control_plane"]);
    assert!(
        pki.is_empty(),
        "pki is shared by both roles and imports neither: {pki:?}"
    );
}
