//! Where `libmigrate.so` is: `--lib`, else beside the `migrate` command
//! (the build tree, `target/release/`), else in `../lib/` of its install
//! prefix (`PREFIX/bin/migrate`, `PREFIX/lib/libmigrate.so`).

use std::path::PathBuf;

use crate::{EXIT_NO_LIBRARY, Failure};

pub const NAME: &str = "libmigrate.so";

/// The library to preload, made absolute: the program's children inherit
/// `LD_PRELOAD` and may run in another directory.
pub fn find(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(p) = given {
        return std::fs::canonicalize(&p)
            .map_err(|e| Failure::new(EXIT_NO_LIBRARY, format!("--lib {}: {e}", p.display())));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(EXIT_NO_LIBRARY, format!("cannot find this command: {e}")))?;
    let dir = exe.parent().unwrap_or(&exe);
    let candidates = [dir.join(NAME), dir.join("../lib").join(NAME)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| {
            Failure::new(
                EXIT_NO_LIBRARY,
                format!(
                    "cannot find {NAME} (looked in {} and {}); give it with --lib PATH",
                    candidates[0].display(),
                    candidates[1].display()
                ),
            )
        })
}

/// `LD_PRELOAD` with `lib` first, keeping what the environment had.
pub fn preload(lib: &std::path::Path) -> std::ffi::OsString {
    let mut v = lib.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}
