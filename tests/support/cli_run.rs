//! Running the operator binary as a pipeline runs it, for the CLI tests (`diff`, `export`):
//! with the given arguments and environment, and none of the caller's `IDENTITY_SETTINGS_*`
//! variables, so a developer's shell cannot change what a test sees.

/// What a run of the binary printed, and its exit code.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the operator binary with `args`, and `env` added to an environment without
/// `IDENTITY_SETTINGS_*` variables.
pub async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_identity-settings-operator"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("IDENTITY_SETTINGS_") {
            command.env_remove(name);
        }
    }
    let out = command
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
