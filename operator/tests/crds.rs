//! The committed CRD YAML (crds/ and the chart's copy) must be what `crdgen` prints now: a change
//! to the Rust types without `make crds` fails here.

use std::path::PathBuf;

#[test]
fn committed_crds_are_up_to_date() {
    let generated = roost_operator::crd::definitions_yaml().expect("the CRDs serialize");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for committed in ["crds/roost.dev.yaml", "helm/roost/crds/roost.dev.yaml"] {
        let text = std::fs::read_to_string(root.join(committed))
            .unwrap_or_else(|e| panic!("{committed}: {e}"));
        assert!(
            text == generated,
            "{committed} is stale: run `make crds` and commit the result"
        );
    }
}
