//! One workload, for counting instructions under callgrind (`cargo xtask bench instructions`):
//! `bench-instructions <workload> [--reps N]` sets the workload up, then runs it N times (one by
//! default) between callgrind's START and STOP_INSTRUMENTATION client requests. Under
//! `valgrind --tool=callgrind --instr-atstart=no` only those runs are counted, on every thread
//! (rayon's pool threads included), and setup runs uninstrumented, several times faster.
//! `--toggle-collect` would need no client request, but it toggles collection per thread, and
//! the work runs on pool threads that never enter the toggled function. Outside valgrind the
//! requests are no-ops.
//!
//! `bench-instructions --list` names the workloads.

use std::hint::black_box;
use std::process::ExitCode;

use perceiver_core::AttentionImpl;
use power_perceiver_benches::{ATTENTION_SHAPES, AttentionFixture, TrainStepFixture};

/// Callgrind's client requests (valgrind/callgrind.h: `VG_USERREQ_TOOL_BASE('C', 'T') + n`).
const START_INSTRUMENTATION: u64 = 0x4354_0000 + 4;
const STOP_INSTRUMENTATION: u64 = 0x4354_0000 + 5;

/// Valgrind's client request: a no-op instruction sequence natively, a call into the tool under
/// valgrind (the amd64 sequence of valgrind.h's `VALGRIND_DO_CLIENT_REQUEST_EXPR`).
#[cfg(target_arch = "x86_64")]
fn client_request(request: u64) {
    let args: [u64; 6] = [request, 0, 0, 0, 0, 0];
    let _result: u64;
    // SAFETY: the four rotations of rdi add up to 128 bits (rdi is unchanged) and `xchg rbx, rbx`
    // changes nothing; natively the sequence only leaves the default (0) in rdx. Under valgrind
    // the tool reads the six words at rax, which live until the asm returns.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") 0u64 => _result,
            options(nostack),
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(_request: u64) {
    compile_error!("bench-instructions: callgrind client requests are written for x86_64 only");
}

/// Runs `f` `reps` times, instrumented by callgrind.
fn measured<R>(reps: usize, mut f: impl FnMut() -> R) {
    client_request(START_INSTRUMENTATION);
    for _ in 0..reps {
        black_box(f());
    }
    client_request(STOP_INSTRUMENTATION);
}

const WORKLOADS: &[&str] = &[
    "attention_fused_fwd_hip_cross",
    "attention_fused_fwd_bwd_hip_cross",
    "attention_fused_fwd_bwd_b8_h4_q64_k1024_d32",
    "train_step_b16",
];

fn attention(shape: &str, backward: bool, reps: usize) {
    let shape = ATTENTION_SHAPES
        .iter()
        .find(|s| s.name == shape)
        .expect("known shape");
    let fixture = AttentionFixture::new(shape);
    if backward {
        measured(reps, || fixture.forward_backward(AttentionImpl::Fused));
    } else {
        measured(reps, || fixture.forward(AttentionImpl::Fused));
    }
}

fn main() -> ExitCode {
    // SAFETY: first statement of `main`: no other thread exists yet.
    unsafe { trainer::configure_process() };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(workload) = args.first() else {
        eprintln!(
            "usage: bench-instructions <{}> [--reps N] | --list",
            WORKLOADS.join(" | ")
        );
        return ExitCode::from(2);
    };
    let reps = match args.get(1).map(String::as_str) {
        None => 1,
        Some("--reps") => match args.get(2).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                eprintln!("--reps needs a count");
                return ExitCode::from(2);
            }
        },
        Some(other) => {
            eprintln!("unknown argument {other:?}");
            return ExitCode::from(2);
        }
    };
    match workload.as_str() {
        "--list" => WORKLOADS.iter().for_each(|w| println!("{w}")),
        "attention_fused_fwd_hip_cross" => attention("hip_cross_b512_h2_q4_k24_d16", false, reps),
        "attention_fused_fwd_bwd_hip_cross" => {
            attention("hip_cross_b512_h2_q4_k24_d16", true, reps)
        }
        "attention_fused_fwd_bwd_b8_h4_q64_k1024_d32" => {
            attention("b8_h4_q64_k1024_d32", true, reps)
        }
        "train_step_b16" => {
            // The default model at batch 16 rather than 64: the same code, a quarter of the
            // instructions, so the gate stays near a minute in CI.
            let mut fixture = TrainStepFixture::with_batch_size(16);
            // The first step allocates the optimiser moments; the counted one is a steady step.
            fixture.step();
            measured(reps, || fixture.step());
        }
        other => {
            eprintln!("unknown workload {other:?}; try --list");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
