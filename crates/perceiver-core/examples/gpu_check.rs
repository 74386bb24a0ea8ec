//! GPU check of the CUDA attention kernels, runnable on any machine with an NVIDIA driver: it
//! loads the driver and NVRTC at run time (cudarc's dynamic loading), so it builds on a machine
//! with no CUDA at all and is carried to the GPU machine as one binary.
//!
//! 1. Correctness of every kernel against the CPU reference (the composed attention in f64, with
//!    autograd for the gradients) on fresh random inputs with padding masks (one batch row fully
//!    masked): relative error `max|gpu − ref| / max|ref|` per output, outputs poisoned with NaN
//!    before every launch, NaN never passes. f32 kernels to 1e-4, tensor-core (bf16) forward to 3e-2.
//! 2. Timings with CUDA events (10 warm-up launches, median of 50): forward and
//!    forward+backward at the default model's shapes, the bench shape and large shapes, with
//!    TFLOP/s (forward 4·Nq·Nk·D per head, backward 2.5× forward).
//!
//! Output: a human table on stderr and one JSON object per line on stdout (for
//! `scripts/gpu-check.sh`, which adds PyTorch's SDPA on the same shapes and the ratios).
//!
//! ```sh
//! cargo build --release -p perceiver-core --features gpu-check --example gpu_check
//! LD_LIBRARY_PATH=<dir of libnvrtc.so.13> target/release/examples/gpu_check
//! ```

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg, sys,
};
use perceiver_core::attention::composed_attention;
use perceiver_core::cuda::source::{self as cuda_source, MMA_ROWS_PER_BLOCK, ROWS_PER_BLOCK};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Attention shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    b: usize,
    h: usize,
    nq: usize,
    nk: usize,
    d: usize,
}

const CHECKS: &[Shape] = &[
    Shape {
        name: "hip-l1-cross",
        b: 64,
        h: 2,
        nq: 4,
        nk: 24,
        d: 16,
    },
    Shape {
        name: "dec-cross",
        b: 128,
        h: 4,
        nq: 1,
        nk: 16,
        d: 16,
    },
    Shape {
        name: "self-d32",
        b: 4,
        h: 4,
        nq: 70,
        nk: 70,
        d: 32,
    },
    Shape {
        name: "bench",
        b: 2,
        h: 4,
        nq: 64,
        nk: 1024,
        d: 32,
    },
    Shape {
        name: "d64",
        b: 1,
        h: 2,
        nq: 300,
        nk: 517,
        d: 64,
    },
    Shape {
        name: "d128",
        b: 1,
        h: 2,
        nq: 257,
        nk: 300,
        d: 128,
    },
    Shape {
        name: "d48-f32-only",
        b: 2,
        h: 2,
        nq: 33,
        nk: 65,
        d: 48,
    },
];

const TIMINGS: &[Shape] = &[
    Shape {
        name: "model-hip-l1-cross",
        b: 512,
        h: 2,
        nq: 4,
        nk: 24,
        d: 16,
    },
    Shape {
        name: "model-dec-cross",
        b: 1024,
        h: 4,
        nq: 1,
        nk: 16,
        d: 16,
    },
    Shape {
        name: "bench",
        b: 8,
        h: 4,
        nq: 64,
        nk: 1024,
        d: 32,
    },
    Shape {
        name: "large-d64",
        b: 1,
        h: 16,
        nq: 4096,
        nk: 4096,
        d: 64,
    },
    Shape {
        name: "large-d128",
        b: 1,
        h: 16,
        nq: 4096,
        nk: 4096,
        d: 128,
    },
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 0x40) as u16;
    }
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    keep: Vec<f32>,
    d_out: Vec<f32>,
}

fn inputs(s: Shape, seed: u64, masked: bool) -> Inputs {
    let mut rng = Rng(seed);
    let mut keep = vec![1.0f32; s.b * s.nk];
    if masked {
        for b in 0..s.b {
            for j in 0..s.nk {
                // Pad the tail of each row by a varying amount; batch row 0 fully masked.
                let kept = if b == 0 {
                    0
                } else {
                    s.nk - (b * 7) % s.nk.max(1) / 2
                };
                keep[b * s.nk + j] = (j < kept) as u8 as f32;
            }
        }
    }
    let n_q = s.b * s.h * s.nq * s.d;
    let n_k = s.b * s.h * s.nk * s.d;
    Inputs {
        q: rng.vec(n_q).iter().map(|x| 2.0 * x).collect(),
        k: rng.vec(n_k).iter().map(|x| 2.0 * x).collect(),
        v: rng.vec(n_k),
        keep,
        d_out: rng.vec(n_q),
    }
}

/// The f64 CPU reference: (out, dq, dk, dv).
fn reference(s: Shape, x: &Inputs) -> Res<[Vec<f64>; 4]> {
    let cpu = Device::Cpu;
    let t = |v: &[f32], n: usize| -> Res<Var> {
        Ok(Var::from_tensor(
            &Tensor::from_vec(v.to_vec(), (s.b, s.h, n, s.d), &cpu)?.to_dtype(DType::F64)?,
        )?)
    };
    let (q, k, v) = (t(&x.q, s.nq)?, t(&x.k, s.nk)?, t(&x.v, s.nk)?);
    let keep = Tensor::from_vec(x.keep.clone(), (s.b, s.nk), &cpu)?;
    let out = composed_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), Some(&keep))?;
    let g = Tensor::from_vec(x.d_out.clone(), (s.b, s.h, s.nq, s.d), &cpu)?.to_dtype(DType::F64)?;
    let grads = (&out * &g)?.sum_all()?.backward()?;
    let flat = |t: &Tensor| -> Res<Vec<f64>> { Ok(t.flatten_all()?.to_vec1::<f64>()?) };
    let grad = |v: &Var| -> Res<Vec<f64>> {
        match grads.get(v.as_tensor()) {
            Some(g) => flat(g),
            None => Ok(vec![0.0; v.elem_count()]),
        }
    };
    Ok([flat(&out)?, grad(&q)?, grad(&k)?, grad(&v)?])
}

fn relative_error(gpu: &[f32], reference: &[f64]) -> f64 {
    if gpu.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY; // NaN never passes (outputs are poisoned before each launch)
    }
    let scale = reference
        .iter()
        .fold(0.0f64, |m, x| m.max(x.abs()))
        .max(1e-30);
    gpu.iter()
        .zip(reference)
        .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b).abs()))
        / scale
}

struct Gpu {
    stream: Arc<CudaStream>,
    module: Arc<cudarc::driver::CudaModule>,
    cc: (i32, i32),
}

impl Gpu {
    fn new() -> Res<Gpu> {
        // SAFETY: only tries to open the driver library; nothing from it is called yet.
        if !unsafe { sys::is_culib_present() } {
            return Err(
                "no CUDA driver library (libcuda.so) found: this check needs an NVIDIA GPU".into(),
            );
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err("no NVRTC library (libnvrtc.so.13) found: put its folder on LD_LIBRARY_PATH (scripts/install-nvrtc.sh fetches it)".into());
        }
        let ctx = CudaContext::new(0)?;
        let cc = ctx.compute_capability()?;
        let ptx = cuda_source::compile_ptx(cc).map_err(|e| format!("NVRTC: {e:?}"))?;
        let module = ctx.load_module(ptx)?;
        Ok(Gpu {
            stream: ctx.default_stream(),
            module,
            cc,
        })
    }

    fn f(&self, name: &str) -> Res<CudaFunction> {
        Ok(self.module.load_function(name)?)
    }

    fn upload<T: cudarc::driver::DeviceRepr>(&self, x: &[T]) -> Res<CudaSlice<T>> {
        Ok(self.stream.clone_htod(x)?)
    }

    fn poisoned(&self, n: usize) -> Res<CudaSlice<f32>> {
        self.upload(&vec![f32::NAN; n])
    }

    fn poisoned_bf16(&self, n: usize) -> Res<CudaSlice<u16>> {
        self.upload(&vec![0x7fc0u16; n])
    }

    fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        x: &CudaSlice<T>,
    ) -> Res<Vec<T>> {
        Ok(self.stream.clone_dtoh(x)?)
    }
}

/// The launch geometry the op uses (`cuda_source::launch_dims`).
fn cfg(rows: usize, per_block: u32, bh: usize) -> LaunchConfig {
    let (grid_dim, block_dim) = cuda_source::launch_dims(rows, per_block, bh);
    LaunchConfig {
        grid_dim,
        block_dim,
        shared_mem_bytes: 0,
    }
}

/// Device buffers of one problem.
struct Problem {
    s: Shape,
    q: CudaSlice<f32>,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    qb: CudaSlice<u16>,
    kb: CudaSlice<u16>,
    vb: CudaSlice<u16>,
    keep: CudaSlice<f32>,
    d_out: CudaSlice<f32>,
    out: CudaSlice<f32>,
    out_b: CudaSlice<u16>,
    lse: CudaSlice<f32>,
    delta: CudaSlice<f32>,
    dq: CudaSlice<f32>,
    dk: CudaSlice<f32>,
    dv: CudaSlice<f32>,
}

impl Problem {
    fn new(gpu: &Gpu, s: Shape, x: &Inputs) -> Res<Problem> {
        let bf = |v: &[f32]| v.iter().map(|&x| to_bf16(x)).collect::<Vec<u16>>();
        let (nq, nk) = (s.b * s.h * s.nq * s.d, s.b * s.h * s.nk * s.d);
        Ok(Problem {
            s,
            q: gpu.upload(&x.q)?,
            k: gpu.upload(&x.k)?,
            v: gpu.upload(&x.v)?,
            qb: gpu.upload(&bf(&x.q))?,
            kb: gpu.upload(&bf(&x.k))?,
            vb: gpu.upload(&bf(&x.v))?,
            keep: gpu.upload(&x.keep)?,
            d_out: gpu.upload(&x.d_out)?,
            out: gpu.poisoned(nq)?,
            out_b: gpu.poisoned_bf16(nq)?,
            lse: gpu.poisoned(s.b * s.h * s.nq)?,
            delta: gpu.poisoned(s.b * s.h * s.nq)?,
            dq: gpu.poisoned(nq)?,
            dk: gpu.poisoned(nk)?,
            dv: gpu.poisoned(nk)?,
        })
    }

    fn ints(&self) -> (i32, i32, i32, i32, f32) {
        let s = self.s;
        (
            s.h as i32,
            s.nq as i32,
            s.nk as i32,
            s.d as i32,
            1.0 / (s.d as f32).sqrt(),
        )
    }

    fn forward_f32(&mut self, gpu: &Gpu) -> Res<()> {
        let (h, nq, nk, d, scale) = self.ints();
        let f = gpu.f(cuda_source::FWD_F32)?;
        let mut b = gpu.stream.launch_builder(&f);
        b.arg(&self.q)
            .arg(&self.k)
            .arg(&self.v)
            .arg(&self.keep)
            .arg(&mut self.out);
        b.arg(&mut self.lse)
            .arg(&h)
            .arg(&nq)
            .arg(&nk)
            .arg(&d)
            .arg(&scale);
        // SAFETY: arguments as attn_fwd_f32 declares them; buffers sized by Problem::new.
        unsafe { b.launch(cfg(self.s.nq, ROWS_PER_BLOCK, self.s.b * self.s.h)) }?;
        Ok(())
    }

    fn forward_mma(&mut self, gpu: &Gpu, bf16_inputs: bool) -> Res<()> {
        let (h, nq, nk, _, scale) = self.ints();
        let name = cuda_source::fwd_mma(self.s.d, bf16_inputs).ok_or("no mma kernel for this D")?;
        let f = gpu.f(&name)?;
        let mut b = gpu.stream.launch_builder(&f);
        if bf16_inputs {
            b.arg(&self.qb)
                .arg(&self.kb)
                .arg(&self.vb)
                .arg(&self.keep)
                .arg(&mut self.out_b);
        } else {
            b.arg(&self.q)
                .arg(&self.k)
                .arg(&self.v)
                .arg(&self.keep)
                .arg(&mut self.out);
        }
        b.arg(&mut self.lse).arg(&h).arg(&nq).arg(&nk).arg(&scale);
        // SAFETY: arguments as the attn_fwd_mma_* entry declares them.
        unsafe { b.launch(cfg(self.s.nq, MMA_ROWS_PER_BLOCK, self.s.b * self.s.h)) }?;
        Ok(())
    }

    fn backward(&mut self, gpu: &Gpu) -> Res<()> {
        let (h, nq, nk, d, scale) = self.ints();
        let s = self.s;
        let rows = (s.b * s.h * s.nq) as i64;
        let f = gpu.f(cuda_source::BWD_DELTA_F32)?;
        let mut b = gpu.stream.launch_builder(&f);
        b.arg(&self.out)
            .arg(&self.d_out)
            .arg(&mut self.delta)
            .arg(&rows)
            .arg(&d);
        // SAFETY: arguments as attn_bwd_delta_f32 declares them.
        unsafe { b.launch(cfg(rows as usize, ROWS_PER_BLOCK, 1)) }?;
        let f = gpu.f(cuda_source::BWD_DQ_F32)?;
        let mut b = gpu.stream.launch_builder(&f);
        b.arg(&self.q)
            .arg(&self.k)
            .arg(&self.v)
            .arg(&self.keep)
            .arg(&self.d_out);
        b.arg(&self.lse).arg(&self.delta).arg(&mut self.dq);
        b.arg(&h).arg(&nq).arg(&nk).arg(&d).arg(&scale);
        // SAFETY: arguments as attn_bwd_dq_f32 declares them.
        unsafe { b.launch(cfg(s.nq, ROWS_PER_BLOCK, s.b * s.h)) }?;
        let f = gpu.f(cuda_source::BWD_DKV_F32)?;
        let mut b = gpu.stream.launch_builder(&f);
        b.arg(&self.q)
            .arg(&self.k)
            .arg(&self.v)
            .arg(&self.keep)
            .arg(&self.d_out);
        b.arg(&self.lse)
            .arg(&self.delta)
            .arg(&mut self.dk)
            .arg(&mut self.dv);
        b.arg(&h).arg(&nq).arg(&nk).arg(&d).arg(&scale);
        // SAFETY: arguments as attn_bwd_dkv_f32 declares them.
        unsafe { b.launch(cfg(s.nk, ROWS_PER_BLOCK, s.b * s.h)) }?;
        Ok(())
    }
}

fn check(gpu: &Gpu) -> Res<bool> {
    let mut all_ok = true;
    let mut report = |name: &str, what: &str, err: f64, tol: f64| {
        let ok = err <= tol;
        all_ok &= ok;
        eprintln!(
            "  {name:<14} {what:<22} rel err {err:>10.3e} (tol {tol:.0e}) {}",
            if ok { "ok" } else { "FAIL" }
        );
        println!(
            "{{\"kind\":\"check\",\"shape\":\"{name}\",\"what\":\"{what}\",\"rel_err\":{},\"tol\":{tol},\"ok\":{ok}}}",
            if err.is_finite() {
                format!("{err:e}")
            } else {
                "null".into()
            }
        );
    };
    for (i, &s) in CHECKS.iter().enumerate() {
        let x = inputs(s, 1000 + i as u64, true);
        let [out, dq, dk, dv] = reference(s, &x)?;
        let mut p = Problem::new(gpu, s, &x)?;
        p.forward_f32(gpu)?;
        p.backward(gpu)?;
        report(
            s.name,
            "f32 forward",
            relative_error(&gpu.download(&p.out)?, &out),
            1e-4,
        );
        report(
            s.name,
            "f32 dQ",
            relative_error(&gpu.download(&p.dq)?, &dq),
            1e-4,
        );
        report(
            s.name,
            "f32 dK",
            relative_error(&gpu.download(&p.dk)?, &dk),
            1e-4,
        );
        report(
            s.name,
            "f32 dV",
            relative_error(&gpu.download(&p.dv)?, &dv),
            1e-4,
        );
        if gpu.cc.0 >= 8 && cuda_source::fwd_mma(s.d, false).is_some() {
            for bf16_inputs in [false, true] {
                let mut p = Problem::new(gpu, s, &x)?;
                p.forward_mma(gpu, bf16_inputs)?;
                let got: Vec<f32> = if bf16_inputs {
                    gpu.download(&p.out_b)?.into_iter().map(from_bf16).collect()
                } else {
                    gpu.download(&p.out)?
                };
                let what = if bf16_inputs {
                    "mma forward (bf16 in)"
                } else {
                    "mma forward (f32 in)"
                };
                report(s.name, what, relative_error(&got, &out), 3e-2);
            }
        }
    }
    Ok(all_ok)
}

fn median_ms(gpu: &Gpu, mut run: impl FnMut() -> Res<()>) -> Res<f64> {
    for _ in 0..10 {
        run()?;
    }
    let mut times = Vec::with_capacity(50);
    for _ in 0..50 {
        let start = gpu
            .stream
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?;
        run()?;
        let end = gpu
            .stream
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?;
        end.synchronize()?;
        times.push(start.elapsed_ms(&end)? as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn timings(gpu: &Gpu) -> Res<()> {
    eprintln!("\ntimings (median of 50, CUDA events):");
    for &s in TIMINGS {
        let x = inputs(s, 7, false);
        let mut p = Problem::new(gpu, s, &x)?;
        let flops = 4.0 * (s.b * s.h * s.nq * s.nk * s.d) as f64;
        let line = |kernel: &str, ms: f64, flops: f64| {
            let tflops = flops / (ms * 1e-3) / 1e12;
            eprintln!(
                "  {:<20} {kernel:<24} {ms:>9.4} ms {tflops:>7.2} TFLOP/s",
                s.name
            );
            println!(
                "{{\"kind\":\"time\",\"shape\":\"{}\",\"b\":{},\"h\":{},\"nq\":{},\"nk\":{},\"d\":{},\"kernel\":\"{kernel}\",\"ms\":{ms},\"tflops\":{tflops}}}",
                s.name, s.b, s.h, s.nq, s.nk, s.d
            );
        };
        let fwd = median_ms(gpu, || p.forward_f32(gpu))?;
        line("f32 forward", fwd, flops);
        let both = median_ms(gpu, || {
            p.forward_f32(gpu)?;
            p.backward(gpu)
        })?;
        line("f32 forward+backward", both, 3.5 * flops);
        if gpu.cc.0 >= 8 && cuda_source::fwd_mma(s.d, true).is_some() {
            let ms = median_ms(gpu, || p.forward_mma(gpu, true))?;
            line("bf16 mma forward", ms, flops);
            let ms = median_ms(gpu, || p.forward_mma(gpu, false))?;
            line("f32-in mma forward", ms, flops);
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let run = || -> Res<bool> {
        let gpu = Gpu::new()?;
        eprintln!("device 0: compute capability {}.{}", gpu.cc.0, gpu.cc.1);
        println!(
            "{{\"kind\":\"device\",\"cc\":\"{}.{}\"}}",
            gpu.cc.0, gpu.cc.1
        );
        eprintln!("correctness against the f64 CPU reference (outputs poisoned with NaN):");
        let ok = check(&gpu)?;
        timings(&gpu)?;
        Ok(ok)
    };
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("gpu_check: some kernels are WRONG (see FAIL above)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("gpu_check: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
