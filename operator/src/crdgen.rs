//! Prints the CustomResourceDefinitions of the operator as YAML: `make crds` writes them to
//! crds/roost.dev.yaml, and a test fails when that file is stale.

fn main() -> anyhow::Result<()> {
    print!("{}", roost_operator::crd::definitions_yaml()?);
    Ok(())
}
