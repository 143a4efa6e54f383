//! Fails when `config/crds/` differs from what the Rust types generate.

use std::{collections::BTreeSet, fs};

use trellis_crds::manifest::{self, HEADER};

const FIX: &str = "run `cargo run -p trellis-crds --bin crdgen` and commit config/crds/";

#[test]
fn committed_crds_match_the_types() {
    let dir = manifest::repo_root().join(manifest::CRD_DIR);
    let manifests = manifest::render_all().expect("render CRDs");
    let mut stale = Vec::new();
    for m in &manifests {
        let path = dir.join(&m.file_name);
        match fs::read_to_string(&path) {
            Ok(committed) if committed == m.contents => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    let wanted: BTreeSet<_> = manifests.iter().map(|m| m.file_name.clone()).collect();
    let first_header_line = HEADER.lines().next().unwrap_or_default();
    for entry in fs::read_dir(&dir).expect("read config/crds") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let generated = fs::read_to_string(&path).is_ok_and(|s| s.starts_with(first_header_line));
        if generated && !wanted.contains(&name) {
            stale.push(format!("{} is no longer generated", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "config/crds is out of date ({FIX}):\n{}",
        stale.join("\n")
    );
}

#[test]
fn file_names_are_plural_dot_group() {
    for m in manifest::render_all().expect("render CRDs") {
        assert!(
            m.contents.starts_with(HEADER),
            "{} lacks the generated header",
            m.file_name
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(&m.contents).expect("valid YAML");
        let plural = doc["spec"]["names"]["plural"].as_str().expect("plural");
        let group = doc["spec"]["group"].as_str().expect("group");
        assert_eq!(m.file_name, format!("{plural}.{group}.yaml"));
    }
}
