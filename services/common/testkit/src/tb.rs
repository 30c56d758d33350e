//! The released Tinybird CLI (`tinybird-cli`, installed by `make clients`), run as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the classic `tb` is: `ROOST_TB_BIN`, else the cache `make clients` fills. Panics with the
/// command that installs it when it is missing, so a test never passes without the real client.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("ROOST_TB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/roost/clients/tb/bin/tb")
        });
    assert!(
        path.is_file(),
        "the tb CLI is not installed at {}: run `make clients` (or set ROOST_TB_BIN)",
        path.display()
    );
    path
}

/// Runs `tb args...` in `project` (where `tb auth` keeps its `.tinyb`), returning whether it
/// succeeded and what it printed on stdout and stderr.
pub fn tb(project: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(binary())
        .args(args)
        .current_dir(project)
        .env("TB_CLI_TELEMETRY_OPTOUT", "1")
        .env("TB_VERSION_WARNING", "0")
        .env_remove("TB_TOKEN")
        .env_remove("TB_HOST")
        .output()
        .expect("tb runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs `tb args...` and asserts it succeeded; returns what it printed.
pub fn tb_ok(project: &Path, args: &[&str]) -> String {
    let (ok, text) = tb(project, args);
    assert!(ok, "tb {args:?} failed:\n{text}");
    text
}
