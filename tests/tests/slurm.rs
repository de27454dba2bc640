//! `scripts/slurm/migrate-job.sh` under a real single-node Slurm (Debian's
//! slurm-wlm, with munge for its credentials), configured and started by
//! the test in its own directory: its own munge key and socket, its own
//! slurm.conf, state and spool directories and ports. Nothing of the
//! machine's Slurm or munge setup is read or changed.
//!
//! A job with a one-minute limit is signalled (`--signal=B:USR1@50`),
//! dumped by the script, requeued, restored on its next run, and its
//! output file ends as an uninterrupted run's would. Slurm holds a
//! requeued job for two minutes before it may start again; the test, as
//! the cluster's operator, lets it start three seconds later (`scontrol update
//! StartTime=now+3`), which changes nothing the script does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrate_tests::command::migrate;
use migrate_tests::*;

const TOOLS: [(&str, &str); 7] = [
    ("/usr/sbin/slurmctld", "slurmctld"),
    ("/usr/sbin/slurmd", "slurmd"),
    ("/usr/bin/sbatch", "slurm-client"),
    ("/usr/bin/scontrol", "slurm-client"),
    ("/usr/bin/sinfo", "slurm-client"),
    ("/usr/sbin/munged", "munge"),
    ("/usr/sbin/mungekey", "munge"),
];

/// The daemons, ended when dropped (after the job, if still there).
struct Cluster {
    conf: PathBuf,
    daemons: Vec<(String, Child)>,
    job: Option<String>,
    dir: PathBuf,
}

impl Cluster {
    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        c
    }

    /// Runs a Slurm command to its end; its stdout (panics on failure).
    fn run(&self, tool: &str, args: &[&str]) -> String {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(&mut self, name: &str, cmd: &mut Command) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.daemons.push((name.to_string(), child));
    }

    /// The daemons' logs, for failure messages.
    fn logs(&self) -> String {
        let mut s = String::new();
        for name in [
            "munged.out",
            "slurmctld.out",
            "slurmd.out",
            "slurmctld.log",
            "slurmd.log",
        ] {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            s.push_str(&format!("--- {name}:\n{tail}\n"));
        }
        s
    }

    /// `scontrol show job` as key=value pairs.
    fn job(&self, id: &str) -> Vec<(String, String)> {
        self.run("/usr/bin/scontrol", &["show", "job", "-o", id])
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(job) = &self.job {
            let _ = self
                .command("/usr/bin/scancel")
                .arg(job)
                .stderr(Stdio::null())
                .status();
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0, "gethostname");
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    name.split('.').next().unwrap_or(&name).to_string()
}

fn wait_until(what: &str, cluster: &Cluster, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// munged and a one-node Slurm, all in `dir`.
fn cluster(dir: &Path) -> Cluster {
    let munge = dir.join("munge");
    std::fs::create_dir_all(&munge).unwrap();
    let key = munge.join("munge.key");
    let st = Command::new("/usr/sbin/mungekey")
        .arg("--create")
        .arg(format!("--keyfile={}", key.display()))
        .status()
        .expect("run mungekey");
    assert!(st.success(), "mungekey failed");
    let socket = munge.join("socket");
    let mut c = Cluster {
        conf: dir.join("slurm.conf"),
        daemons: Vec::new(),
        job: None,
        dir: dir.to_path_buf(),
    };
    c.start(
        "munged",
        Command::new("/usr/sbin/munged")
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", munge.join("pid").display()))
            .arg(format!("--log-file={}", munge.join("log").display()))
            .arg(format!("--seed-file={}", munge.join("seed").display())),
    );
    wait_until("munged's socket", &c, TIMEOUT, || socket.exists());
    for d in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let host = hostname();
    let (ctld_port, d_port) = (sshd_port(), sshd_port());
    let d = dir.display();
    std::fs::write(
        &c.conf,
        format!(
            "ClusterName=migratetest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             SchedulerType=sched/builtin\n\
             SchedulerParameters=sched_interval=1\n\
             ReturnToService=2\n\
             JobRequeue=1\n\
             PlugStackConfig=/dev/null\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
             PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display()
        ),
    )
    .unwrap();
    let conf = c.conf.clone();
    c.start(
        "slurmctld",
        Command::new("/usr/sbin/slurmctld")
            .args(["-D", "-i", "-f"])
            .arg(&conf)
            .env("SLURM_CONF", &conf),
    );
    c.start(
        "slurmd",
        Command::new("/usr/sbin/slurmd")
            .args(["-D", "-f"])
            .arg(&conf)
            .env("SLURM_CONF", &conf),
    );
    wait_until("the node to be idle", &c, TIMEOUT, || {
        c.command("/usr/bin/sinfo")
            .args(["-h", "-o", "%T"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    });
    c
}

fn sshd_port() -> u16 {
    migrate_tests::sshd::free_port()
}

#[test]
fn slurm_job_is_requeued_mid_run_and_ends_with_the_right_output() {
    let test = "slurm_job_is_requeued_mid_run_and_ends_with_the_right_output";
    if !skip::is_root() {
        skip(test, "root (slurmd runs the job as its user)");
        return;
    }
    if let Some((path, package)) = TOOLS.iter().find(|(p, _)| !Path::new(p).exists()) {
        skip(
            test,
            &format!("{path} (package {package}; .ci/run installs slurm-wlm and munge)"),
        );
        return;
    }
    let dir = TestDir::new("slurm");
    let mut cluster = cluster(dir.path());
    // 50 s of 100 ms steps: longer than the first run gets (slurmctld
    // looks at time limits every few seconds, so the signal comes 10 s
    // or a little more into a run).
    let program = Program::mem(8, 500, 100);
    let expected = reference(&program);
    let script = crate_dir().join("../scripts/slurm/migrate-job.sh");
    let out = dir.join("job.out");
    let err = dir.join("job.err");
    let mut sbatch = cluster.command("/usr/bin/sbatch");
    sbatch
        .args([
            "--parsable",
            "--time=1",
            "--signal=B:USR1@50",
            "-J",
            "migrate-test",
        ])
        .arg("-o")
        .arg(&out)
        .arg("-e")
        .arg(&err)
        .arg("-D")
        .arg(dir.path())
        // The script's image goes to the submit directory.
        .current_dir(dir.path())
        .env("MIGRATE", migrate())
        .arg(&script)
        .args(&program.argv);
    let o = sbatch.output().expect("run sbatch");
    assert!(
        o.status.success(),
        "sbatch: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        cluster.logs()
    );
    let id = String::from_utf8_lossy(&o.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    cluster.job = Some(id.clone());
    let get = |job: &[(String, String)], k: &str| {
        job.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut expedited = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let job = loop {
        let job = cluster.job(&id);
        let state = get(&job, "JobState");
        let restarts: u32 = get(&job, "Restarts").parse().unwrap_or(0);
        if [
            "COMPLETED",
            "FAILED",
            "TIMEOUT",
            "CANCELLED",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
        ]
        .contains(&state.as_str())
        {
            break job;
        }
        // Requeued: Slurm's two-minute hold, lifted by the operator (not
        // to the very second of the requeue: Slurm refuses to launch a job
        // again within the second its last credential was revoked).
        if state == "PENDING" && restarts > expedited && get(&job, "Reason") == "BeginTime" {
            cluster.run(
                "/usr/bin/scontrol",
                &["update", &format!("JobId={id}"), "StartTime=now+3"],
            );
            expedited = restarts;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not end: {job:?}\nstderr:\n{}\n{}",
            std::fs::read_to_string(&err).unwrap_or_default(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let job_err = std::fs::read_to_string(&err).unwrap_or_default();
    let context = format!(
        "job {id}: {job:?}\nits stderr:\n{job_err}\n{}",
        cluster.logs()
    );
    assert_eq!(get(&job, "JobState"), "COMPLETED", "{context}");
    assert_eq!(get(&job, "ExitCode"), "0:0", "{context}");
    let restarts: u32 = get(&job, "Restarts").parse().unwrap_or(0);
    assert!(restarts >= 1, "the job was never requeued: {context}");
    // (The script's own `requeued` line may not get out: the requeue ends
    // the job at once.)
    assert!(job_err.contains("restoring"), "{context}");
    let lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, expected, "the job's output: {context}");
    // The image is gone once the program has ended.
    assert!(
        !dir.join(&format!("migrate-job-{id}.img")).exists(),
        "{context}"
    );
}

/// A run of the job whose restore fails (here: the image is not an image;
/// on another node, a missing file or another CPU) keeps the image, the
/// only copy of the program's progress, and says so: the script used to
/// remove it as after a finished program. No Slurm needed: the script
/// runs as its restoring run would, with the job's variables set.
#[test]
fn slurm_script_keeps_the_image_when_the_restore_fails() {
    let dir = TestDir::new("slurm-restore-fails");
    let image = dir.join("migrate-job-4242.img");
    std::fs::write(&image, b"not an image, but the only copy").unwrap();
    let script = crate_dir().join("../scripts/slurm/migrate-job.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("SLURM_JOB_ID", "4242")
        .env("SLURM_SUBMIT_DIR", dir.path())
        .env("MIGRATE", migrate())
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .output()
        .expect("run the script");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(image.is_file(), "the image after a failed restore: {err}");
    assert!(err.contains("stays"), "{err}");
}
