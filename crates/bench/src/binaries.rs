//! Builds the three binaries under test (release, locked) and finds them next to the
//! benchmark's own executable, so the figures are for exactly the code in this checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{BenchError, Result};

/// The packages built before measuring.
const PACKAGES: [&str; 3] = [
    "identity-settings-operator",
    "kube-emulator",
    "identity-simulator",
];

/// Where the three binaries are.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The operator.
    pub operator: PathBuf,
    /// The Kubernetes API emulator.
    pub emulator: PathBuf,
    /// The identity simulator.
    pub simulator: PathBuf,
}

/// The workspace root: two levels above this crate's manifest.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cargo build --release --locked` for the three packages (with `$CARGO` when cargo runs
/// the benchmark) and returns their paths in the benchmark's own target directory.
pub fn build() -> Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--locked"])
        .current_dir(workspace_root());
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    eprintln!("• building: {command:?}");
    let status = command
        .status()
        .map_err(|e| BenchError::Build(format!("cannot run {cargo:?}: {e}")))?;
    if !status.success() {
        return Err(BenchError::Build(format!("cargo build failed: {status}")));
    }
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Build(format!("cannot find the benchmark's executable: {e}")))?;
    let dir = exe
        .parent()
        .ok_or_else(|| BenchError::Build(format!("{} has no directory", exe.display())))?;
    let find = |name: &str| {
        let path = dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(BenchError::Build(format!(
                "{} is missing after the build (is the benchmark running from another target \
                 directory than cargo builds into?)",
                path.display()
            )))
        }
    };
    Ok(Binaries {
        operator: find("identity-settings-operator")?,
        emulator: find("kube-emulator")?,
        simulator: find("identity-simulator")?,
    })
}

/// The control-plane binaries: `CONTROL_PLANE_BIN`, else what `tests/control-plane/build`
/// builds (cached; its last line is the directory).
pub fn control_plane() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CONTROL_PLANE_BIN").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let script = workspace_root().join("tests/control-plane/build");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| BenchError::process("tests/control-plane/build", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(dir) if out.status.success() => Ok(PathBuf::from(dir.trim())),
        _ => Err(BenchError::process(
            "tests/control-plane/build",
            format!("failed ({})", out.status),
        )),
    }
}

/// `<binary> --version`'s last word (e.g. `v1.34.4`), or `unknown`.
pub fn version_of(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .last()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}
