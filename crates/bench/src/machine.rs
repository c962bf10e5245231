//! The machine the figures were measured on, for the report's header.

/// CPU model, core count and OS, as far as the machine tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `model name` of `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os: String,
}

/// Reads the machine's description; unknown parts say `unknown`.
pub fn describe() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| field(&text, "model name", ':'))
        .unwrap_or_else(|| "unknown".into());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| field(&text, "PRETTY_NAME", '='))
        .unwrap_or_else(|| std::env::consts::OS.into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    Machine { cpu, cores, os }
}

/// When and on what code the figures were measured: the UTC time and the checkout's commit
/// (`unknown` outside a git checkout), with `+dirty` when it has uncommitted changes.
pub fn measured_at() -> String {
    let when = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(crate::binaries::workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!(
        "{when}, commit {commit}{}",
        if dirty { "+dirty" } else { "" }
    )
}

/// The value of the first `name<sep>value` line, trimmed and unquoted.
fn field(text: &str, name: &str, sep: char) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(sep)?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_and_unquoted() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(
            field(cpuinfo, "model name", ':').as_deref(),
            Some("Some CPU @ 2.0GHz")
        );
        let release = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n";
        assert_eq!(
            field(release, "PRETTY_NAME", '=').as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(field(release, "VERSION", '='), None);
    }
}
