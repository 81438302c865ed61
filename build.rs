//! Link settings for the extension, and the torch version it is built against.
use std::process::Command;

fn main() {
    // Installed as site-packages/crnas/_core*.so: find libtorch in site-packages/torch/lib without LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");

    // The CPU kernels run on torch's OpenMP team (src/parallel.rs): link the libgomp that torch
    // ships; at run time its SONAME resolves to the copy torch has already loaded.
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-search=native={}", lib.to_string_lossy());
    }
    println!("cargo:rustc-link-lib=dylib:+verbatim=libgomp.so.1");

    // Record the torch version torch-sys builds against, so the Python side can refuse a mismatched torch.
    let python = std::env::var("PYO3_PYTHON")
        .ok()
        .or_else(|| std::env::var("VIRTUAL_ENV").ok().map(|v| format!("{v}/bin/python")))
        .unwrap_or_else(|| "python3".to_string());
    let version = Command::new(&python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CRNAS_TORCH_VERSION={version}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=VIRTUAL_ENV");
    println!("cargo:rerun-if-changed=build.rs");
}
