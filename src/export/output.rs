//! Where `export`'s manifests go: stdout as one multi-document YAML stream, or one file each in
//! a directory. Existing files are never overwritten (a filled-in Secret stub would be lost),
//! and nothing is written unless every file can be.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::error::ExportError;
use super::manifest::Manifest;

/// The manifests as one YAML stream, documents separated by `---`.
pub fn stream(manifests: &[Manifest]) -> String {
    manifests
        .iter()
        .map(|m| m.yaml.as_str())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Prints the stream on stdout.
pub fn to_stdout(manifests: &[Manifest]) -> Result<(), ExportError> {
    std::io::stdout()
        .lock()
        .write_all(stream(manifests).as_bytes())
        .map_err(|source| ExportError::Write {
            path: PathBuf::from("-"),
            source,
        })
}

/// Writes each manifest to `dir/<file_name>`, creating `dir`; answers the paths written.
/// Refuses before writing anything when one of the files exists.
pub fn to_dir(dir: &Path, manifests: &[Manifest]) -> Result<Vec<PathBuf>, ExportError> {
    let paths: Vec<PathBuf> = manifests.iter().map(|m| dir.join(&m.file_name)).collect();
    if let Some(path) = paths.iter().find(|p| p.symlink_metadata().is_ok()) {
        return Err(ExportError::Exists { path: path.clone() });
    }
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    for (path, manifest) in paths.iter().zip(manifests) {
        // create_new: a file that appeared meanwhile is not overwritten either.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(manifest.yaml.as_bytes()));
        written.map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => ExportError::Exists { path: path.clone() },
            _ => ExportError::Write {
                path: path.clone(),
                source,
            },
        })?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str) -> Manifest {
        Manifest {
            file_name: format!("{name}.yaml"),
            yaml: format!("kind: {name}\n"),
        }
    }

    #[test]
    fn a_directory_gets_one_file_each_and_an_existing_file_stops_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("new");
        let written = to_dir(&out, &[manifest("a"), manifest("b")]).expect("written");
        assert_eq!(written, [out.join("a.yaml"), out.join("b.yaml")]);
        assert_eq!(
            std::fs::read_to_string(out.join("b.yaml")).expect("b"),
            "kind: b\n"
        );
        std::fs::write(out.join("b.yaml"), "filled in").expect("fill");
        let err = to_dir(&out, &[manifest("c"), manifest("b")]).expect_err("b exists");
        assert!(matches!(err, ExportError::Exists { .. }), "{err}");
        assert!(
            !out.join("c.yaml").exists(),
            "nothing written before the refusal"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("b.yaml")).expect("b"),
            "filled in"
        );
        assert_eq!(
            stream(&[manifest("a"), manifest("b")]),
            "kind: a\n---\nkind: b\n"
        );
    }
}
