//! The workspace's candle-core patch (`third_party/candle-core.patch`), checked where this crate
//! relies on it: a broadcast scalar made contiguous, gradients stored on first arrival, and a
//! matrix product written into memory that was not zero-filled.

use candle_core::{Device, Tensor, Var};

#[test]
fn a_broadcast_scalar_made_contiguous_is_that_value_repeated() {
    let cpu = &Device::Cpu;
    let x = Tensor::new(3.5f32, cpu).and_then(|t| t.broadcast_as((2, 3, 4)));
    let flat = x.and_then(|t| t.contiguous()).and_then(|t| t.flatten_all());
    assert_eq!(
        flat.and_then(|t| t.to_vec1::<f32>()).expect("copy"),
        vec![3.5; 24]
    );
    // A scalar that starts inside its storage: the value at its offset, not the first.
    let seven = Tensor::arange(0f32, 10.0, cpu)
        .and_then(|t| t.narrow(0, 7, 1))
        .and_then(|t| t.reshape(()))
        .and_then(|t| t.broadcast_as(5))
        .and_then(|t| t.contiguous());
    assert_eq!(
        seven.and_then(|t| t.to_vec1::<f32>()).expect("copy"),
        vec![7.0; 5]
    );
}

#[test]
fn the_gradient_of_a_weighted_sum_is_the_weights() {
    let cpu = &Device::Cpu;
    let x = Var::new(&[[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]], cpu).expect("var");
    let w = Tensor::new(&[[0.5f32, -1.0, 2.0], [3.0, 0.25, -4.0]], cpu).expect("weights");
    // x appears twice: the second gradient is added to the first, stored one.
    let loss = (x.as_tensor() * &w)
        .and_then(|t| t.sum_all())
        .and_then(|s| s + x.as_tensor().sum_all()?)
        .expect("loss");
    let grads = loss.backward().expect("backward");
    let g = grads.get(x.as_tensor()).expect("gradient");
    let want = [[1.5f32, 0.0, 3.0], [4.0, 1.25, -3.0]];
    assert_eq!(g.to_vec2::<f32>().expect("values"), want);
}

/// `a · b` by the definition, for `a` (batch, m, k) and `b` (batch, k, n) as nested vectors.
fn product(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> Vec<Vec<Vec<f32>>> {
    a.iter()
        .zip(b)
        .map(|(a, b)| {
            let n = b.first().map_or(0, Vec::len);
            a.iter()
                .map(|row| {
                    (0..n)
                        .map(|j| row.iter().zip(b).map(|(x, b)| x * b[j]).sum())
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Every element of a product is written: each product is computed right after a NaN-filled
/// buffer of its size is freed, which the allocator hands back as the product's output, so an
/// element gemm skipped would read NaN. Covers an empty inner dimension (zeros), a batch whose
/// right side is shared (folded into one product) and one whose left side is (not folded).
#[test]
fn a_matrix_product_writes_every_element() {
    let cpu = &Device::Cpu;
    let ramp = |shape: (usize, usize, usize), scale: f32| {
        let n = shape.0 * shape.1 * shape.2;
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * scale)
            .collect();
        Tensor::from_vec(values, shape, cpu).expect("tensor")
    };
    for (batch, m, k, n) in [(1, 3, 4, 5), (3, 2, 0, 4), (2, 17, 9, 33), (4, 64, 16, 16)] {
        let a = ramp((batch, m, k), 0.5);
        let b = ramp((batch, k, n), 0.25);
        let shared_b = ramp((1, k, n), 0.25);
        let shared_a = ramp((1, m, k), 0.5);
        let cases = [
            (a.clone(), b.clone()),
            (
                a.clone(),
                shared_b.broadcast_as((batch, k, n)).expect("broadcast"),
            ),
            (
                shared_a.broadcast_as((batch, m, k)).expect("broadcast"),
                b.clone(),
            ),
        ];
        for (lhs, rhs) in cases {
            drop(std::hint::black_box(vec![f32::NAN; batch * m * n]));
            let got = lhs
                .matmul(&rhs)
                .and_then(|t| t.to_vec3::<f32>())
                .expect("matmul");
            let want = product(
                &lhs.to_vec3::<f32>().expect("lhs"),
                &rhs.to_vec3::<f32>().expect("rhs"),
            );
            assert_eq!(got.len(), batch);
            for (g, w) in got
                .iter()
                .flatten()
                .flatten()
                .zip(want.iter().flatten().flatten())
            {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{batch}x{m}x{k}x{n}: {g} vs {w}"
                );
            }
        }
    }
}
