//! Builds the three binaries under test (locked) and finds them in the benchmark's own target
//! directory, so the figures are for exactly the code in this checkout. The operator is the
//! binary the image ships (static, musl, profile `release-image`, as `hack/build-image` builds
//! it): its memory is what a user's pod has, code pages included.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{BenchError, Result};

/// The stand-ins, built with `--release`.
const STAND_INS: [&str; 2] = ["kube-emulator", "identity-simulator"];

/// The operator's target and profile: those of the image (`hack/build-image`).
const OPERATOR_TARGET: &str = "x86_64-unknown-linux-musl";
const OPERATOR_PROFILE: &str = "release-image";

/// What the reports say the operator binary is.
pub const OPERATOR_BUILD: &str =
    "the image's binary (static, musl, profile `release-image`: LTO, no symbols)";

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

/// Builds the stand-ins (`cargo build --release --locked`, with `$CARGO` when cargo runs the
/// benchmark) and the operator as the image has it, and returns their paths.
pub fn build() -> Result<Binaries> {
    let mut stand_ins = cargo_build(&["--release"]);
    for package in STAND_INS {
        stand_ins.args(["-p", package]);
    }
    run_build(stand_ins)?;
    let mut operator = cargo_build(&["--profile", OPERATOR_PROFILE, "--target", OPERATOR_TARGET]);
    operator.args(["-p", "identity-settings-operator"]);
    run_build(operator).map_err(|e| {
        BenchError::Build(format!(
            "{e} (the operator is measured as the image ships it: `rustup target add \
             {OPERATOR_TARGET}` and musl-gcc (Debian: musl-tools) are needed)"
        ))
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Build(format!("cannot find the benchmark's executable: {e}")))?;
    // The benchmark runs from <target>/release; the operator is in <target>/<triple>/<profile>.
    let release = exe
        .parent()
        .ok_or_else(|| BenchError::Build(format!("{} has no directory", exe.display())))?;
    let operator_dir = release
        .parent()
        .map(|target| target.join(OPERATOR_TARGET).join(OPERATOR_PROFILE))
        .ok_or_else(|| BenchError::Build(format!("{} has no parent", release.display())))?;
    Ok(Binaries {
        operator: find(&operator_dir, "identity-settings-operator")?,
        emulator: find(release, "kube-emulator")?,
        simulator: find(release, "identity-simulator")?,
    })
}

/// `cargo build --locked` with these arguments, in the workspace, without the variables `cargo
/// run` gave the benchmark about its own package: build scripts (ring's) ask to be rerun when
/// those change, so with them every build from the benchmark rebuilt ring and all that depends
/// on it, the operator's LTO link included, that a build from a shell had just made.
fn cargo_build(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--locked"])
        .args(args)
        .current_dir(workspace_root());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_run_package_variable) {
            command.env_remove(name);
        }
    }
    command
}

/// The variables `cargo run` sets about the package it runs (not the user's `CARGO_*` settings).
fn is_cargo_run_package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        )
}

fn run_build(mut command: Command) -> Result<()> {
    eprintln!("• building: {command:?}");
    let status = command
        .status()
        .map_err(|e| BenchError::Build(format!("cannot run cargo: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Build(format!("cargo build failed: {status}")))
    }
}

/// `dir/name` if it is a file after the build.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::is_cargo_run_package_variable as dropped;

    #[test]
    fn nested_builds_keep_the_users_cargo_settings_and_drop_the_benchmarks_package() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_MANIFEST_DIR",
        ] {
            assert!(dropped(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_PROFILE_RELEASE_DEBUG",
        ] {
            assert!(!dropped(name), "{name}");
        }
    }
}
