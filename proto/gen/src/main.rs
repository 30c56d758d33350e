//! `make gen`: compiles `proto/proto/*.proto` with protox (pure Rust, no protoc) and writes the
//! prost code to `proto/src/gen/`, which is committed so that building needs no code generation.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
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
