//! The workspace's candle-core patch (`third_party/candle-core.patch`), checked where this crate
//! relies on it: a broadcast scalar made contiguous, and gradients stored on first arrival.

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
