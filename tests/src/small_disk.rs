//! A small tmpfs for the tests of a dump onto a full disk (mounting needs
//! root; CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `app.img` holds before the dump that must leave it alone.
pub const PREVIOUS: &[u8] = b"the previous image";

/// A 1 MiB tmpfs mounted for one test, unmounted when dropped.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    /// Mounts it at `at` (made if missing); `None` if `mount` fails.
    pub fn mount(at: PathBuf) -> Option<SmallDisk> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1M", "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(at))
    }

    /// The disk mounted at `at`, holding `app.img` with [`PREVIOUS`] in
    /// it, and that image's path.
    pub fn with_previous_image(at: PathBuf) -> (SmallDisk, PathBuf) {
        let disk = SmallDisk::mount(at).expect("mount a 1 MiB tmpfs");
        let image = disk.0.join("app.img");
        std::fs::write(&image, PREVIOUS).unwrap();
        (disk, image)
    }

    /// Checks that `image` (its `app.img`) still holds [`PREVIOUS`] and
    /// that nothing else is left on the disk.
    pub fn assert_previous_image_kept(&self, image: &Path) {
        assert_eq!(
            std::fs::read(image).unwrap(),
            PREVIOUS,
            "the previous image changed"
        );
        assert_eq!(
            crate::list_files(&self.0),
            ["app.img"],
            "a temporary file was left behind"
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
