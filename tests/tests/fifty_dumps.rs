//! Fifty dumps of one process in continue mode: it must neither hang nor
//! crash, every image must verify, and the last one must restore and finish.

use migrate_tests::*;

const DUMPS: u64 = 50;

#[test]
fn fifty_dumps_continue() {
    let dir = TestDir::new("fifty");
    let program = Program::cloop();
    let expected = reference(&program);
    let pattern = dir.join("img-%n.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", pattern.to_str().unwrap())],
    );
    original.wait_for_step(1);
    let mut summaries = Vec::new();
    for n in 1..=DUMPS {
        let before = original.stdout_lines().len();
        if before + 1 >= expected.len() {
            panic!(
                "the program finished its {} lines before dump {n} of {DUMPS}: dumps are too slow\n{}",
                expected.len(),
                original.describe()
            );
        }
        original.dump_signal();
        let img = dir.join(&format!("img-{n}.img"));
        summaries.push(original.wait_for_image(&img, false));
        // It goes on after the dump (and does not hang): a new line comes.
        original.wait_for_lines(before);
        assert!(
            original.poll_exit().is_none(),
            "the process exited after dump {n}\n{}",
            original.describe()
        );
    }
    original.kill();
    let images: Vec<String> = list_files(dir.path());
    assert_eq!(
        images.len() as u64,
        DUMPS,
        "expected img-1.img..img-{DUMPS}.img only, found {images:?}\n{}",
        original.describe()
    );
    for n in 1..=DUMPS {
        let img = dir.join(&format!("img-{n}.img"));
        // Verified when it appeared; verify again now that no dump is running.
        verify_image(&img, &original.describe());
        assert_eq!(
            image_meta(&img).image.sequence,
            n,
            "%n of img-{n}.img and its sequence differ\n{}",
            original.describe()
        );
    }
    let last = dir.join(&format!("img-{DUMPS}.img"));
    restore_and_check(&dir, &program, "restored", &last, &original, &expected);
}
