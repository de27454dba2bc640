//! Compiles the C test programs in `programs/` with gcc into `OUT_DIR` and
//! hands their paths to the crate as `MIGRATE_TEST_<NAME>` (e.g.
//! `env!("MIGRATE_TEST_CPROG")`). The threaded ones get `-pthread`. All of
//! them share `programs/testprog.h`.

use std::path::PathBuf;
use std::process::Command;

/// Each program and the extra gcc flags it needs.
const PROGRAMS: &[(&str, &[&str])] = &[
    ("cprog", &[]),
    ("cloop", &[]),
    ("dlprog", &[]),
    ("cthreads", &["-pthread"]),
    ("cmutex", &["-pthread"]),
    ("cchurn", &["-pthread"]),
    ("cblock", &["-pthread"]),
    ("cfilecopy", &[]),
    ("cpipeq", &[]),
    ("cunlinked", &[]),
    ("csigown", &["-pthread"]),
    ("cpeer", &[]),
    ("curing", &[]),
    ("cfdkinds", &[]),
    ("cfileattrs", &[]),
    ("cbigfiles", &[]),
    ("cprocstate", &[]),
    ("cprocattrs", &["-pthread"]),
    ("csmallstack", &["-pthread"]),
    ("cforker", &["-pthread"]),
    ("csigwait", &[]),
    ("cstdinpoll", &[]),
    ("cfdregress", &[]),
    ("cdefects", &["-pthread", "-lrt"]),
    ("cmem", &[]),
    ("cbigheap", &["-pthread"]),
    ("cincr", &[]),
    ("ctext", &["-pthread"]),
    ("ctimerid", &[]),
    ("cvector", &[]),
    ("cnoids", &[]),
    ("cforktimer", &[]),
    ("cchildren", &[]),
    ("ctree", &[]),
    ("cshared", &["-pthread"]),
    ("ctreefds", &[]),
    ("cmembers", &[]),
    ("cends", &[]),
    ("cjobctl", &[]),
    ("cexec", &[]),
    ("cexecee", &[]),
    ("cstatic", &["-static"]),
    ("csnap", &["-pthread"]),
    ("csockets", &[]),
    ("csignals", &["-pthread"]),
    ("cinotify", &[]),
    ("crseq", &["-pthread"]),
    ("ctimers", &["-pthread"]),
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for (name, flags) in PROGRAMS {
        let src = manifest.join("programs").join(format!("{name}.c"));
        let exe = out.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let status = Command::new("gcc")
            .args([
                "-O1",
                "-g",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-Wl,--build-id",
                "-o",
            ])
            .arg(&exe)
            .args(*flags)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("cannot run gcc (is it installed?): {e}"));
        assert!(status.success(), "gcc failed on {}", src.display());
        println!(
            "cargo:rustc-env=MIGRATE_TEST_{}={}",
            name.to_uppercase(),
            exe.display()
        );
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("programs/testprog.h").display()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
