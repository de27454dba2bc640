//! Fifty dumps of one process in continue mode: it must neither hang nor
//! crash, every image must verify, and the last one must restore and finish.

use migrate_tests::*;

const DUMPS: u64 = 50;

#[test]
fn fifty_dumps_continue() {
    let dir = TestDir::new("fifty");
    let program = Program::cloop();
    let expected = reference(&program);
    let mut original = spawn_numbered(&dir, &program);
    original.wait_for_step(1);
    dump_repeatedly(&dir, &mut original, &expected, DUMPS);
    original.kill();
    check_numbered_images(&dir, DUMPS, &original);
    let last = numbered_image(&dir, DUMPS);
    restore_and_check(&dir, &program, "restored", &last, &original, &expected);
}
