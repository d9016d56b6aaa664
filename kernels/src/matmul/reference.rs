//! The CPU oracle for [`super::MatMul`]: weights dequantized by
//! seldon-formats (bit-exact with ggml), dot products in f64.

use rayon::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::dequantize_to_vec;

use super::MatMulShape;
use crate::error::{Error, Result};

const OP: &str = "matmul reference";

fn to_usize(what: &str, v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::invalid(OP, format!("{what} = {v} exceeds usize")))
}

fn product(what: &str, a: u64, b: u64) -> Result<usize> {
    let p = a
        .checked_mul(b)
        .ok_or_else(|| Error::invalid(OP, format!("{what} overflows u64")))?;
    to_usize(what, p)
}

/// `n_out` rows of `n_in` weights of type `ty` (the first bytes of `weights`)
/// as f32, exactly as ggml's `to_float` produces them.
pub fn dequantize_reference(
    ty: GgmlType,
    weights: &[u8],
    n_in: u64,
    n_out: u64,
) -> Result<Vec<f32>> {
    let row_bytes = ty.bytes_for(n_in).ok_or_else(|| {
        Error::invalid(
            OP,
            format!(
                "n_in = {n_in} is not a multiple of the {ty} block size {}",
                ty.block_size()
            ),
        )
    })?;
    let bytes = product("weight bytes", row_bytes, n_out)?;
    let Some(src) = weights.get(..bytes) else {
        return Err(Error::invalid(
            OP,
            format!(
                "weights hold {} bytes, the shape needs {bytes}",
                weights.len()
            ),
        ));
    };
    dequantize_to_vec(ty, src).map_err(|e| Error::invalid(OP, e.to_string()))
}

/// `y[c][o] = sum_i W[o][i] * x[c][i]`: `weights` holds `shape.n_out` rows of
/// `shape.n_in` weights of type `ty`, `x` holds `shape.n_cols` rows of `n_in`
/// values; the result has `n_cols` rows of `n_out`. Sums are taken in f64 and
/// rounded once, so the oracle's own error is far below any GPU tolerance.
pub fn reference(ty: GgmlType, weights: &[u8], x: &[f32], shape: MatMulShape) -> Result<Vec<f32>> {
    let w = dequantize_reference(ty, weights, shape.n_in, shape.n_out)?;
    let n_in = to_usize("n_in", shape.n_in)?;
    let n_out = to_usize("n_out", shape.n_out)?;
    let outputs = product("n_cols * n_out", shape.n_cols, shape.n_out)?;
    let x_len = product("n_cols * n_in", shape.n_cols, shape.n_in)?;
    let Some(x) = x.get(..x_len) else {
        return Err(Error::invalid(
            OP,
            format!("x holds {} values, the shape needs {x_len}", x.len()),
        ));
    };
    if n_in == 0 {
        return Ok(vec![0.0; outputs]);
    }
    Ok((0..outputs)
        .into_par_iter()
        .map(|idx| {
            let (c, o) = (idx / n_out, idx % n_out);
            let row = &w[o * n_in..(o + 1) * n_in];
            let col = &x[c * n_in..(c + 1) * n_in];
            let sum: f64 = row
                .iter()
                .zip(col)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            sum as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seldon_formats::quant::quantize_to_vec;

    fn shape(n_in: u64, n_out: u64, n_cols: u64) -> MatMulShape {
        MatMulShape {
            n_in,
            n_out,
            n_cols,
        }
    }

    #[test]
    fn f32_reference_is_a_plain_matrix_product() {
        // W = [[1, 2], [3, 4], [5, 6]], x = [[1, 1], [1, -1]].
        let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let x = [1.0, 1.0, 1.0, -1.0];
        let y = reference(GgmlType::F32, &w, &x, shape(2, 3, 2)).unwrap();
        assert_eq!(y, [3.0, 7.0, 11.0, -1.0, -1.0, -1.0]);
    }

    #[test]
    fn quantized_reference_uses_the_dequantized_weights() {
        let data: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
        let q = quantize_to_vec(GgmlType::Q8_0, &data).unwrap();
        let w = dequantize_reference(GgmlType::Q8_0, &q, 32, 2).unwrap();
        let mut x = vec![0.0f32; 32];
        x[5] = 1.0;
        let y = reference(GgmlType::Q8_0, &q, &x, shape(32, 2, 1)).unwrap();
        assert_eq!(y, [w[5], w[32 + 5]]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let q = vec![0u8; 34];
        assert!(reference(GgmlType::Q8_0, &q, &[0.0; 31], shape(31, 1, 1)).is_err());
        assert!(reference(GgmlType::Q8_0, &q, &[0.0; 64], shape(32, 2, 1)).is_err());
        assert!(reference(GgmlType::Q8_0, &q, &[0.0; 31], shape(32, 1, 1)).is_err());
        assert!(reference(GgmlType::Q8_0, &q, &[], shape(32, u64::MAX, 2)).is_err());
        assert!(reference(GgmlType::I32, &[0; 4], &[0.0], shape(1, 1, 1)).is_err());
    }
}
