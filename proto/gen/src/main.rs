//! `make gen`: compiles `proto/proto/*.proto` with protox (pure Rust, no protoc) and writes the
//! prost code to `proto/src/gen/`, which is committed so that building needs no code generation.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    // `cargo run` sets the variable at run time too: prefer that, since a build directory shared
    // by several checkouts may hand this checkout a binary built in another.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let root = PathBuf::from(manifest_dir).join("..");
    let proto_dir = root.join("proto");
    let out_dir = root.join("src/gen");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&proto_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    let descriptors = protox::compile(&files, [&proto_dir])?;
    std::fs::create_dir_all(&out_dir)?;
    prost_build::Config::new()
        .bytes(["."])
        .out_dir(&out_dir)
        .compile_fds(descriptors)?;
    println!("wrote {}", out_dir.display());
    Ok(())
}
