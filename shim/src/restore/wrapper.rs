//! Which program this is: the image's, a wrapper that will run it, or
//! another one.
//!
//! `LD_PRELOAD` loads the shim into every program it reaches, so with
//! `MIGRATE_RESTORE=app.img LD_PRELOAD=libmigrate.so timeout 60 ./app` the
//! first process to see the image is `timeout`, not `app`. A process whose
//! executable is not the image's is taken for a wrapper that will run the
//! image's program when one of its arguments names that executable:
//!
//! - an argument after `argv[0]` (from `/proc/self/cmdline`), or one
//!   whitespace-separated word of one, shell quotes and separators
//!   (`'"`;&|()`) trimmed off its ends (`sh -c 'exec ./app args'`);
//! - a word with a `/` is a path, relative to the working directory; one
//!   without is a command, looked up in `PATH` as `execvp` does (unset:
//!   `/bin:/usr/bin`; an empty entry is the working directory);
//! - the file found, symlinks followed (`python3` is `python3.11`), is
//!   compared with the image's executable exactly as the program itself
//!   will compare its own (same size and ELF build-id; size and mtime for
//!   a file that is not ELF); a script (`timeout 60 ./app.py`) runs it
//!   when its `#!` line's interpreter, or a word of that line's argument
//!   (`#!/usr/bin/env python3`), does, followed 4 scripts deep.
//!
//! A wrapper does nothing at all: no restore and no dump handler (a dump
//! signal sent to it does what the wrapper does with that signal), and
//! the environment stays as it is, so the program it runs gets
//! `LD_PRELOAD` and `MIGRATE_*` and restores itself. Each link of an exec
//! chain (`env nice ./app`) decides the same way. The dynamic loader run
//! as a command (`ld.so ./app`) is never a wrapper: the program it loads
//! runs in its process, after this constructor, so it is refused (68). A program that merely
//! names the executable without running it (`cat ./app`) runs as usual;
//! another program such a wrapper runs first (`sh -c 'date; exec ./app'`)
//! is refused like any other.
//!
//! A process whose arguments name no such file is another program, and
//! is refused (68) with a message that names both executables and points
//! to `migrate restore IMAGE` (which runs the image's program) or to a
//! wrapper placed before `env LD_PRELOAD=...`. Not recognized: a program
//! named in a script file (`bash run.sh`) or made up at run time.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dumpfmt::FileId;

use super::{Refusal, differs, exit, identity, refuse};

/// Most words of the command line looked at (a `bash -c` script can be long).
const MAX_WORDS: usize = 256;

/// Most `#!` scripts followed from an argument to the program they run.
const MAX_INTERPRETERS: usize = 4;

/// What this process is to the image.
#[derive(Debug, PartialEq, Eq)]
pub enum Role {
    /// The image's program: restore it.
    Program,
    /// A wrapper whose argument `word` names the image's program: leave it be.
    Wrapper { exe: String, word: String },
}

/// Compares this process's executable with the image's (`image_exe`), and
/// when they differ looks for a wrapper's argument naming it. `path` is
/// the image, for the message of a refusal.
pub fn role(image_exe: &FileId<'_>, path: &str) -> Result<Role, Refusal> {
    let exe_path = std::fs::read_link("/proc/self/exe").map_err(|e| {
        refuse(
            exit::UNSUPPORTED,
            format!("cannot read /proc/self/exe: {e}"),
        )
    })?;
    let exe_str = exe_path.to_string_lossy().into_owned();
    let exe = File::open(&exe_path).and_then(|f| identity(&f, &exe_str));
    let exe = exe.map_err(|e| refuse(exit::UNSUPPORTED, format!("cannot read {exe_str}: {e}")))?;
    let Some(why) = differs(image_exe, &exe) else {
        return Ok(Role::Program);
    };
    // SAFETY: getauxval has no preconditions.
    let loader_run_as_command = unsafe { libc::getauxval(libc::AT_BASE) } == 0;
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_default();
    let path_var = std::env::var_os("PATH");
    let search = path_dirs(path_var.as_deref().map(|p| p.as_encoded_bytes()), &cwd);
    // The dynamic loader run as a command (`ld.so ./app`, no interpreter
    // loaded by the kernel: AT_BASE is 0) loads the program it names into
    // this very process, after this constructor: nothing is exec'd that
    // could restore, so it is another program, not a wrapper.
    let named = words(&cmdline)
        .filter(|_| !loader_run_as_command)
        .find(|w| {
            candidate(w, &cwd, &search)
                .is_some_and(|file| runs_image(&file, image_exe, &cwd, &search, MAX_INTERPRETERS))
        });
    if let Some(word) = named {
        return Ok(Role::Wrapper {
            exe: exe_str,
            word: String::from_utf8_lossy(word).into_owned(),
        });
    }
    let image_exe = &image_exe.path;
    Err(refuse(
        exit::OTHER_PROGRAM,
        format!(
            "image is of {image_exe}, this program is {exe_str} ({why}); `migrate restore {path}` \
             runs the image's program, and a wrapper (timeout, nice, env, sh -c ...) passes the \
             image on when its arguments name {image_exe} (or put it before `env LD_PRELOAD=...`)"
        ),
    ))
}

/// The words of a NUL-separated command line after `argv[0]`: each
/// argument split at whitespace, with shell quotes and separators trimmed
/// from the ends of each word; at most [`MAX_WORDS`].
fn words(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trim: &[u8] = b"'\"`;&|()";
    cmdline
        .split(|&b| b == 0)
        .skip(1)
        .flat_map(|arg| arg.split(|b| b.is_ascii_whitespace()))
        .map(move |w| {
            let start = w.iter().position(|b| !trim.contains(b)).unwrap_or(w.len());
            let end = w
                .iter()
                .rposition(|b| !trim.contains(b))
                .map_or(start, |e| e + 1);
            &w[start..end]
        })
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
}

/// The directories `execvp` searches for a command without a `/`, given
/// the value of `PATH`.
fn path_dirs(path: Option<&[u8]>, cwd: &Path) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    path.unwrap_or(b"/bin:/usr/bin")
        .split(|&b| b == b':')
        .map(|d| {
            if d.is_empty() {
                cwd.to_path_buf()
            } else {
                cwd.join(std::ffi::OsStr::from_bytes(d))
            }
        })
        .collect()
}

/// The regular, executable file `word` would run: a path with a `/`, or
/// the first match in `search`.
fn candidate(word: &[u8], cwd: &Path, search: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(word);
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if word.contains(&b'/') {
        let p = cwd.join(name);
        return runnable(&p).then_some(p);
    }
    search.iter().map(|d| d.join(name)).find(|p| runnable(p))
}

/// Whether running `file` runs the image's executable: it is that file
/// ([`names_image`]), or a script whose `#!` line's interpreter, or a word
/// of its argument (`#!/usr/bin/env python3`), runs it, `depth` scripts
/// deep at most (the kernel follows 4).
fn runs_image(
    file: &Path,
    image_exe: &FileId<'_>,
    cwd: &Path,
    search: &[PathBuf],
    depth: usize,
) -> bool {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    if names_image(file, image_exe) {
        return true;
    }
    // Not opened unless a regular file: a FIFO named as an interpreter
    // would block the open.
    if depth == 0 || !std::fs::metadata(file).is_ok_and(|m| m.is_file()) {
        return false;
    }
    // The kernel reads at most this much of a script for its `#!` line.
    let mut head = [0u8; 256];
    let Ok(n) = File::open(file).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return false;
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let Some(interpreter) = parts.next() else {
        return false;
    };
    // The interpreter is a path (relative to the working directory, no
    // `PATH` search); the words of its argument are what `env` runs.
    let interpreter = cwd.join(std::ffi::OsStr::from_bytes(interpreter));
    runs_image(&interpreter, image_exe, cwd, search, depth - 1)
        || parts.any(|w| {
            candidate(w, cwd, search)
                .is_some_and(|f| runs_image(&f, image_exe, cwd, search, depth - 1))
        })
}

/// Whether `file` (symlinks followed) is the image's executable, by the
/// comparison the restore applies to the program itself.
fn names_image(file: &Path, image_exe: &FileId<'_>) -> bool {
    // Size first: most words name something else, and it costs one stat.
    if std::fs::metadata(file).map(|m| m.size()).ok() != Some(image_exe.size) {
        return false;
    }
    let shown = file.to_string_lossy();
    File::open(file)
        .and_then(|f| identity(&f, &shown))
        .is_ok_and(|now| differs(image_exe, &now).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(args: &[&str]) -> Vec<String> {
        let cmdline: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
        words(&cmdline)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    #[test]
    fn words_of_a_command_line() {
        assert_eq!(all(&["timeout", "60", "./app", "x"]), ["60", "./app", "x"]);
        assert_eq!(
            all(&["bash", "-c", "cd /tmp && exec './app' a;"]),
            ["-c", "cd", "/tmp", "exec", "./app", "a"]
        );
        assert!(all(&["only-argv0"]).is_empty());
        assert_eq!(all(&["sh", &"x ".repeat(1000)]).len(), MAX_WORDS);
    }

    #[test]
    fn path_search_as_execvp() {
        let cwd = Path::new("/w");
        assert_eq!(
            path_dirs(Some(b"/usr/bin::bin"), cwd),
            [
                PathBuf::from("/usr/bin"),
                PathBuf::from("/w"),
                PathBuf::from("/w/bin")
            ]
        );
        assert_eq!(
            path_dirs(None, cwd),
            [PathBuf::from("/bin"), PathBuf::from("/usr/bin")]
        );
    }

    #[test]
    fn candidates() {
        let cwd = Path::new("/");
        let search = path_dirs(Some(b"/usr/bin:/bin"), cwd);
        assert_eq!(
            candidate(b"env", cwd, &search),
            Some(PathBuf::from("/usr/bin/env"))
        );
        assert_eq!(
            candidate(b"usr/bin/env", cwd, &search),
            Some(PathBuf::from("/usr/bin/env"))
        );
        assert_eq!(candidate(b"60", cwd, &search), None);
        assert_eq!(candidate(b"/etc/passwd", cwd, &search), None);
    }
}
