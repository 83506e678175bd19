//! The lab (source material 003), every question:
//!
//! 1.2 rank-2 factorisation of the 3x3 matrix by the lab's SGD (1000 epochs,
//!     lr 0.01) and its reconstruction loss `||A - U V^T||_F^2`;
//! 2.1 the truncated SVD with the last singular value zeroed and its loss
//!     (Eckart-Young: the best rank-2 approximation, SGD cannot beat it);
//! 3.2 the masked factorisation of the matrix with two missing entries, the
//!     completed matrix printed beside the original.
//!
//! Run: `cargo run --release -p lowrank --example lab [-- SEED]`.

use faer::Mat;
use lowrank::data::synth;
use lowrank::solve::sgd::{
    LAB_EPOCHS, LAB_LR, masked_loss, nan_mask, reconstruction_loss, sgd_factorise, sgd_factorise_masked,
    truncated_svd_reconstruction,
};

fn show(name: &str, a: &Mat<f64>) {
    println!("{name}:");
    for i in 0..a.nrows() {
        let row: Vec<String> = (0..a.ncols())
            .map(|j| if a[(i, j)].is_nan() { format!("{:>8}", "--") } else { format!("{:8.4}", a[(i, j)]) })
            .collect();
        println!("  [{}]", row.join(" "));
    }
}

fn side_by_side(left: (&str, &Mat<f64>), right: (&str, &Mat<f64>)) {
    println!("{:<30}{}", left.0, right.0);
    for i in 0..left.1.nrows() {
        let fmt = |a: &Mat<f64>| (0..a.ncols()).map(|j| format!("{:8.4}", a[(i, j)])).collect::<Vec<_>>().join(" ");
        println!("  [{}]    [{}]", fmt(left.1), fmt(right.1));
    }
}

fn main() -> lowrank::Result<()> {
    let seed: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let a = synth::lab_matrix();
    println!("== 1.2  rank-2 SGD factorisation ({LAB_EPOCHS} epochs, lr {LAB_LR}, U(0,1) init, seed {seed})");
    show("A", &a);
    let (u, v) = sgd_factorise(&a, 2, LAB_EPOCHS, LAB_LR, seed)?;
    show("U", &u);
    show("V", &v);
    show("U V^T", &(&u * v.transpose()));
    let sgd_loss = reconstruction_loss(&a, &u, &v);
    println!("reconstruction loss ||A - U V^T||_F^2 = {sgd_loss:.6}");

    println!("\n== 2.1  truncated SVD (last singular value set to zero)");
    let (rec, s) = truncated_svd_reconstruction(&a, 2)?;
    println!("singular values: {:.6?}", s);
    show("U_t S_t V_t^T", &rec);
    let svd_loss = (&a - &rec).squared_norm_l2();
    println!("reconstruction loss = {svd_loss:.6}  (= sigma_3^2 = {:.6})", s[2] * s[2]);
    println!(
        "SGD - SVD = {:.2e}: by Eckart-Young the truncated SVD is the best rank-2 approximation in Frobenius norm,\n\
         so SGD can at best match it. Constant-rate SGD from U(0,1) first has to leave a saddle; how far it\n\
         is after 1000 epochs depends on the start (seed), but it converges to the same minimiser:",
        sgd_loss - svd_loss
    );
    println!("convergence of SGD to the bound (same seed, more epochs):");
    for epochs in [1000, 2000, 5000, 20000] {
        let (u, v) = sgd_factorise(&a, 2, epochs, LAB_LR, seed)?;
        println!(
            "  {epochs:>6} epochs: loss {:.6}, above the SVD by {:.2e}",
            reconstruction_loss(&a, &u, &v),
            reconstruction_loss(&a, &u, &v) - svd_loss
        );
    }

    println!("\n== 3.2  masked factorisation (matrix completion)");
    let am = synth::lab_matrix_masked();
    let mask = nan_mask(&am);
    show("observed A (-- = missing)", &am);
    let (u, v) = sgd_factorise_masked(&am, &mask, 2, LAB_EPOCHS, LAB_LR, seed)?;
    let x = &u * v.transpose();
    side_by_side(("completed U V^T", &x), ("original A", &a));
    println!("loss on the 7 observed entries = {:.2e}", masked_loss(&am, &mask, &u, &v));
    for &(i, j) in &[(1usize, 0usize), (2, 1)] {
        println!("missing ({i}, {j}): estimate {:8.4}, original {:8.4}", x[(i, j)], a[(i, j)]);
    }
    println!(
        "The observed entries are fitted almost exactly; the two missing ones are guesses that are\n\
         consistent with a rank-2 structure. With 7 observations and 8 degrees of freedom the fill-in is\n\
         not unique (it depends on the seed), which is why matrix completion needs many observations per\n\
         latent factor: a low-rank model can only impute what the observed entries determine."
    );
    Ok(())
}
