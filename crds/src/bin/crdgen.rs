//! Writes every Trellis CRD to `config/crds/<plural>.<group>.yaml` and removes stale files.
//!
//! Run it after changing a type in `crds/src/`: `cargo run -p trellis-crds --bin crdgen`.
//! An optional argument names another output directory.

use std::{collections::BTreeSet, fs, io, path::PathBuf, process::ExitCode};

use trellis_crds::manifest::{self, HEADER};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest::repo_root().join(manifest::CRD_DIR));
    fs::create_dir_all(&dir).map_err(|e| with_path(e, &dir))?;
    let manifests = manifest::render_all()?;
    let wanted: BTreeSet<&str> = manifests.iter().map(|m| m.file_name.as_str()).collect();
    for entry in fs::read_dir(&dir).map_err(|e| with_path(e, &dir))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let generated = fs::read_to_string(&path)
            .is_ok_and(|s| s.starts_with(HEADER.lines().next().unwrap_or_default()));
        if generated && !wanted.contains(name) {
            fs::remove_file(&path).map_err(|e| with_path(e, &path))?;
            eprintln!("removed {}", path.display());
        }
    }
    for m in &manifests {
        let path = dir.join(&m.file_name);
        fs::write(&path, &m.contents).map_err(|e| with_path(e, &path))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn with_path(e: io::Error, path: &std::path::Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
