//! `make gen`: compiles `proto/proto/*.proto` with protox (pure Rust, no protoc) and writes the
//! prost code to `proto/src/gen/`, the tonic clients and servers to `proto/src/gen/grpc/` and the
//! encoded descriptor set (for gRPC reflection) to `proto/src/gen/grpc/descriptors.bin`. All of it
//! is committed so that building needs no code generation.

use std::path::{Path, PathBuf};

use prost::Message;

/// The packages of `proto/proto`, as `roost.<name>.v1`; the gRPC code refers to their messages in
/// the prost modules of `roost-proto` instead of generating them twice.
const PACKAGES: &[&str] = &[
    "common",
    "auth",
    "catalog",
    "query",
    "ingest",
    "jobs",
    "scheduler",
];

fn main() -> anyhow::Result<()> {
    // `cargo run` sets the variable at run time too: prefer that, since a build directory shared
    // by several checkouts may hand this checkout a binary built in another.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let root = PathBuf::from(manifest_dir).join("..");
    let proto_dir = root.join("proto");
    let out_dir = root.join("src/gen");
    let grpc_dir = out_dir.join("grpc");
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
        .compile_fds(descriptors.clone())?;
    println!("wrote {}", out_dir.display());

    if grpc_dir.exists() {
        std::fs::remove_dir_all(&grpc_dir)?;
    }
    std::fs::create_dir_all(&grpc_dir)?;
    let mut grpc = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .bytes(".")
        .out_dir(&grpc_dir);
    for package in PACKAGES {
        grpc = grpc.extern_path(
            format!(".roost.{package}.v1"),
            format!("crate::{package}::v1"),
        );
    }
    grpc.compile_fds(descriptors.clone())?;
    remove_empty_files(&grpc_dir)?;
    std::fs::write(
        grpc_dir.join("descriptors.bin"),
        descriptors.encode_to_vec(),
    )?;
    println!("wrote {}", grpc_dir.display());
    Ok(())
}

/// Packages without a service (`roost.common.v1`) come out as empty files; they are not kept.
fn remove_empty_files(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::read_to_string(&path)?.trim().is_empty() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
