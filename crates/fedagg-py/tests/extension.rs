//! The extension module is built by the workspace's test build (integration tests build their
//! package's library), with the features the whole workspace unifies, so `scripts/test.sh`
//! packs it into a wheel without compiling anything again. Its behaviour is tested from Python
//! (`tests/test_fedagg.py`, run by `scripts/pytest.sh`): this checks what the wheel ships.

use std::path::PathBuf;

/// The cdylib beside this test binary, in `target/<profile>/deps` (where a test build leaves
/// it; `scripts/pytest.sh` packs it from there).
fn extension() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.with_file_name(format!("lib_fedagg{}", std::env::consts::DLL_SUFFIX))
}

#[test]
fn the_extension_module_exports_its_init_function_and_no_libpython() {
    let path = extension();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    // Python imports `fedagg._fedagg` by calling PyInit__fedagg.
    assert!(
        has("PyInit__fedagg"),
        "no PyInit__fedagg in {}",
        path.display()
    );
    // An extension module must not link libpython (Python loads it into its own process).
    assert!(!has("libpython3"), "{} links libpython", path.display());
}
