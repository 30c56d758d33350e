//! The Helm chart passes `helm lint --strict`, renders with `helm template` (defaults, and every
//! optional part on), and the rendered manifests validate against the Kubernetes schemas
//! (`kubernetes-validate --strict`): scripts/helm-check.sh, whose tools come from PyPI and are
//! cached. Without pip or network it prints `SKIPPED: ...` (ROOST_TEST_REQUIRE_HELM=1 fails instead).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_chart_lints_renders_and_validates() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/helm-check.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run helm-check.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => assert!(stdout.contains("validate"), "{stdout}"),
        Some(3) if std::env::var_os("ROOST_TEST_REQUIRE_HELM").is_none() => {
            println!(
                "SKIPPED: the_chart_lints_renders_and_validates: {}",
                stderr.trim()
            );
        }
        _ => panic!("helm-check.sh failed:\n{stdout}\n{stderr}"),
    }
}
