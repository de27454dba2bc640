//! `migrate verify`: every problem a restore of the image would meet
//! before teardown, one line each, found by the restore's own checks
//! (`migrate::restore::precheck`). Exits with the status the restore
//! would give for the first one, 0 when there is none.
//!
//! Unlike a restore, verify has no program to compare the image with:
//! its executable missing or changed is a changed file (69), not
//! another program (68).

use std::path::PathBuf;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to verify.
    image: PathBuf,
}

pub fn main(a: Args) -> Result<(), Failure> {
    let path = a.image.to_string_lossy().into_owned();
    let problems = migrate::restore::precheck::all(&path);
    for p in &problems {
        eprintln!("migrate: verify {path}: {}", p.msg);
    }
    match problems.first() {
        Some(first) => Err(Failure::new(first.code, "")),
        None => {
            println!("{path}: good{}", chain_note(&a.image));
            Ok(())
        }
    }
}

/// For an incremental image, the chain it needs (checked by the restore's
/// checks above): `, incremental over PARENT, ...`.
fn chain_note(image: &std::path::Path) -> String {
    let Ok(img) = dumpfmt::ImageFile::open(image) else {
        return String::new();
    };
    let chain = &img.image.minor4.incremental;
    if chain.is_standalone() {
        return String::new();
    }
    let names: Vec<String> = chain
        .ancestors
        .iter()
        .map(|a| dumpfmt::chain::resolve(image, a).display().to_string())
        .collect();
    format!(
        ", incremental: {} inherited run(s) over {}",
        chain.inherited.len(),
        names.join(" <- ")
    )
}
