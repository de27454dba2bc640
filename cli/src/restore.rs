//! `migrate restore`: execs the program an image records with the library
//! preloaded and `MIGRATE_RESTORE` set; the library does the restore (and
//! every check) in that process. Stdio is this command's.
//!
//! The command reads only what it needs to start the program (the image's
//! framing and metadata), with the library's own code, so an image it
//! cannot read ends with the status the library would give (65 to 70).

use std::ffi::OsString;
use std::path::PathBuf;

use migrate::restore::{exit, precheck};

use crate::{Failure, LibArg, library};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to restore.
    #[arg(value_name = "IMAGE")]
    file: PathBuf,
    /// Where the restored process's next dumps go (as `run --image`)
    /// [default: where they went before].
    #[arg(long, value_name = "NEXT_PATTERN")]
    image: Option<String>,
    #[command(flatten)]
    lib: LibArg,
}

pub fn main(a: Args) -> Result<(), Failure> {
    let path = a.file.to_string_lossy().into_owned();
    let refused = |code: i32, msg: String| Failure::new(code, format!("restore {path}: {msg}"));
    // A tree image is started as its root's program.
    let img = match precheck::open_any(&path).map_err(|r| refused(r.code, r.msg))? {
        dumpfmt::Opened::Single(img) => img,
        dumpfmt::Opened::Tree(t) => t.sections.into_iter().next().expect("a tree has a root"),
    };
    let exe = OsString::from(&*img.image.exe.path);
    if !std::path::Path::new(&exe).is_file() {
        return Err(refused(
            exit::FILE_CHANGED,
            format!("its executable {} is gone", img.image.exe.path),
        ));
    }
    let pattern = img.image.settings.image.to_string();
    drop(img);
    let mut set: Vec<(&str, OsString)> = Vec::new();
    if let Some(next) = a.image {
        set.push(("MIGRATE_IMAGE", next.into()));
    }
    crate::run::check_settings(&set, Some(&pattern))?;
    let lib = library::find(a.lib.lib)?;
    set.push(("LD_PRELOAD", library::preload(&lib)));
    set.push(("MIGRATE_RESTORE", a.file.into_os_string()));
    Err(crate::exec(&exe, &exe, &[], &set, &[]))
}
