//! Crash safety through the binary: training is killed with SIGKILL at pseudo-random moments
//! (during steps, validations and checkpoint writes alike) and resumed each time; the final
//! weights, optimiser state, log and test metrics are bit-identical to an uninterrupted run.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts the binary with its stderr going to `stderr`, so a failure can be shown.
fn spawn(args: &[&str], stderr: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_power-perceiver"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("spawn power-perceiver")
}

#[test]
fn runs_killed_at_random_moments_resume_bit_identically() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut config = common::tiny_config();
    config.train.steps = 24;
    config.eval.every_steps = 2;
    let config_path = tmp.path().join("tiny.toml");
    std::fs::write(&config_path, toml::to_string(&config).expect("toml")).expect("write");
    let config_arg = config_path.to_str().expect("utf-8");

    let straight = tmp.path().join("straight");
    let clock = std::time::Instant::now();
    let stderr = tmp.path().join("stderr.txt");
    let shown = |status: std::process::ExitStatus| {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        format!("{status}; its stderr:\n{text}")
    };
    let status = spawn(
        &[
            "train",
            "--config",
            config_arg,
            "--out",
            straight.to_str().expect("utf-8"),
        ],
        &stderr,
    )
    .wait()
    .expect("wait");
    assert!(
        status.success(),
        "uninterrupted run failed: {}",
        shown(status)
    );
    let life_ms = clock.elapsed().as_millis() as u64;

    let killed = tmp.path().join("killed");
    let killed_arg = killed.to_str().expect("utf-8");
    // CRASH_SEED picks other moments, for stress runs.
    let mut seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x2545_f491_4f6c_dd1d)
        | 1;
    // A round kills after pseudo-random delays between 5 % and 40 % of the uninterrupted run's
    // life (times `scale`), so kills land in start-up, steps, validations and checkpoint writes
    // alike, and resumes until one finishes by itself. Every round must end bit-identical. A
    // round with fewer than 3 kills proved little (a slow first run, cold caches on CI, makes
    // the delays long), so the next round halves the delays.
    let mut scale = 1.0;
    let mut rounds = 0;
    let interrupted = loop {
        rounds += 1;
        let _ = std::fs::remove_dir_all(&killed);
        let mut delay = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let ms = life_ms / 20 + seed % (life_ms * 7 / 20 + 1);
            Duration::from_millis((ms as f64 * scale) as u64)
        };
        let mut interrupted = 0;
        let mut finished = false;
        for attempt in 0..20 {
            let mut child = if attempt == 0 || !killed.join("config.toml").exists() {
                // Killed before even the config was written: start again.
                let _ = std::fs::remove_dir_all(&killed);
                spawn(
                    &["train", "--config", config_arg, "--out", killed_arg],
                    &stderr,
                )
            } else {
                spawn(&["train", "--resume", killed_arg], &stderr)
            };
            std::thread::sleep(delay());
            match child.try_wait().expect("try_wait") {
                Some(status) => {
                    assert!(
                        status.success(),
                        "round {rounds}, attempt {attempt} (after {interrupted} kills) failed on its own: {}",
                        shown(status)
                    );
                    finished = true;
                    break;
                }
                None => {
                    child.kill().expect("SIGKILL"); // SIGKILL on Unix
                    child.wait().expect("reap");
                    interrupted += 1;
                }
            }
        }
        if !finished {
            let status = spawn(&["train", "--resume", killed_arg], &stderr)
                .wait()
                .expect("wait");
            assert!(status.success(), "final resume failed: {}", shown(status));
        }
        common::assert_same_run(
            &straight,
            &killed,
            &format!("after {interrupted} kills (round {rounds})"),
        );
        if interrupted >= 3 {
            break interrupted;
        }
        assert!(
            rounds < 5,
            "only {interrupted} kills landed mid-run in round {rounds}, even with delays scaled by {scale}"
        );
        scale /= 2.0;
    };
    eprintln!(
        "{interrupted} kills over a {life_ms} ms run (round {rounds}), final results bit-identical"
    );
}
