//! Lets this package's tests and examples find libtorch at run time with nothing exported: torch-sys
//! links against `$LIBTORCH/lib`, and an rpath to the same folder makes the loader look there.
//! (`LIBTORCH` reaches build scripts from the environment or from `.cargo/config.toml`'s `[env]`.)

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
}
