//! Five restores in a chain: every restored process is dumped, killed and
//! restored again, and the pieces together make the uninterrupted output.

use migrate_tests::*;

#[test]
fn chain_of_five() {
    let dir = TestDir::new("chain");
    let program = Program::c();
    let expected = reference(&program);
    // Steps after which each stage is dumped; the 3rd and 4th dumps land in
    // the 20000-frame recursion (steps 30..50), the 4th restores into it.
    let targets = [5u64, 20, 33, 45, 62];
    let image = |i: usize| dir.join(&format!("stage-{i}.img"));

    let first = image(1);
    let mut procs = vec![dir.spawn(
        &program,
        "stage-0",
        &[("MIGRATE_IMAGE", first.to_str().unwrap())],
    )];
    for (i, &step) in targets.iter().enumerate() {
        let stage = i + 1;
        let img = image(stage);
        let current = procs.last_mut().unwrap();
        current.wait_for_step(step);
        current.dump_signal();
        current.wait_for_image(&img, false);
        current.kill();
        let meta = image_meta(&img);
        assert_eq!(
            meta.image.sequence,
            stage as u64,
            "image {stage}'s sequence should count the dumps of its ancestors\n{}",
            current.describe()
        );
        // The relaunch's MIGRATE_IMAGE overrides the restored setting.
        let next = image(stage + 1);
        procs.push(dir.restore(
            &program,
            &format!("stage-{stage}"),
            &img,
            &[("MIGRATE_IMAGE", next.to_str().unwrap())],
        ));
    }
    procs.last_mut().unwrap().wait();
    let all: Vec<&Proc> = procs.iter().collect();
    let context = describe_all(&all);
    let last = procs.last().unwrap();
    let status = last.exit_status().expect("exited");
    assert!(
        status.success(),
        "the last restored process failed ({})\n{context}",
        describe_status(status)
    );

    let mut prev: Option<(usize, usize)> = None;
    for (i, p) in procs.iter().enumerate() {
        let out = p.stdout_lines();
        let what = format!("stage {i} ({})", p.label);
        let k = check_segment(&expected, &out, &what, &context);
        match prev {
            None => assert_eq!(k, 0, "{what} did not start at the start\n{context}"),
            Some((pk, plen)) => {
                assert!(
                    k > pk && k <= pk + plen,
                    "{what} resumed at line {k}, but the previous stage printed lines {pk}..{}\n{context}",
                    pk + plen
                );
            }
        }
        prev = Some((k, out.len()));
    }
    let (k, len) = prev.unwrap();
    assert_eq!(
        k + len,
        expected.len(),
        "the last stage did not finish the output\n{context}"
    );
    assert!(
        !image(targets.len() + 1).exists(),
        "the last stage dumped without a signal\n{context}"
    );
}
