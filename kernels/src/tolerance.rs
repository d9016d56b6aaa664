//! Accuracy thresholds for GPU kernels against their CPU references, in one place.
//!
//! The metric and the values are ggml's `test-backend-ops`: normalized mean
//! squared error NMSE = sum((a-b)^2) / sum(a^2), with `a` the reference. Any
//! NaN or infinity fails regardless of the threshold, because a poisoned output
//! (filled with NaN before the run) that a kernel forgot to write must never pass.

/// Elementwise ops, copies, norms, activations.
pub const NMSE_ELEMENTWISE: f64 = 1e-7;
/// Softmax (and other ops with an exp and a reduction).
pub const NMSE_SOFTMAX: f64 = 1e-6;
/// Matrix products (matvec, matmul, any weight type).
pub const NMSE_MATMUL: f64 = 5e-4;
/// Attention (QK^T, softmax, V).
pub const NMSE_ATTENTION: f64 = 5e-4;

/// Why two outputs do not agree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MismatchError {
    /// The outputs have different lengths.
    #[error("length mismatch: reference {expected}, actual {actual}")]
    Length {
        /// Reference length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// An element is NaN or infinite.
    #[error("non-finite value at index {index}: reference {expected}, actual {actual}")]
    NonFinite {
        /// First offending index.
        index: usize,
        /// Reference value there.
        expected: f32,
        /// Actual value there.
        actual: f32,
    },
    /// NMSE above the threshold.
    #[error(
        "NMSE {nmse:e} above {limit:e}; worst index {worst_index}: reference {expected}, actual {actual}"
    )]
    Nmse {
        /// The measured NMSE.
        nmse: f64,
        /// The threshold.
        limit: f64,
        /// Index of the largest absolute difference.
        worst_index: usize,
        /// Reference value there.
        expected: f32,
        /// Actual value there.
        actual: f32,
    },
}

/// NMSE of `actual` against the reference `expected`; fails on a length
/// mismatch or any non-finite value. An all-zero reference yields the plain
/// sum of squared errors, so that zero outputs still have to match exactly-ish.
pub fn nmse(expected: &[f32], actual: &[f32]) -> Result<f64, MismatchError> {
    if expected.len() != actual.len() {
        return Err(MismatchError::Length {
            expected: expected.len(),
            actual: actual.len(),
        });
    }
    let mut err = 0.0f64;
    let mut norm = 0.0f64;
    for (index, (&e, &a)) in expected.iter().zip(actual).enumerate() {
        if !e.is_finite() || !a.is_finite() {
            return Err(MismatchError::NonFinite {
                index,
                expected: e,
                actual: a,
            });
        }
        let d = f64::from(e) - f64::from(a);
        err += d * d;
        norm += f64::from(e) * f64::from(e);
    }
    Ok(if norm > 0.0 { err / norm } else { err })
}

/// Checks `actual` against `expected` with the NMSE threshold `limit`
/// (one of the constants above); returns the NMSE when it passes.
pub fn check_nmse(expected: &[f32], actual: &[f32], limit: f64) -> Result<f64, MismatchError> {
    let value = nmse(expected, actual)?;
    if value <= limit {
        return Ok(value);
    }
    let mut worst_index = 0;
    let mut worst = -1.0f64;
    for (i, (&e, &a)) in expected.iter().zip(actual).enumerate() {
        let d = (f64::from(e) - f64::from(a)).abs();
        if d > worst {
            worst = d;
            worst_index = i;
        }
    }
    Err(MismatchError::Nmse {
        nmse: value,
        limit,
        worst_index,
        expected: expected.get(worst_index).copied().unwrap_or(f32::NAN),
        actual: actual.get(worst_index).copied().unwrap_or(f32::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_outputs_have_zero_nmse() {
        assert_eq!(
            check_nmse(&[1.0, -2.0], &[1.0, -2.0], NMSE_ELEMENTWISE),
            Ok(0.0)
        );
    }

    #[test]
    fn nmse_is_normalized_by_the_reference() {
        // err = 0.01 + 0.04 = 0.05, norm = 1 + 4 = 5.
        let v = nmse(&[1.0, 2.0], &[1.1, 1.8]).map_err(|e| e.to_string());
        let v = v.unwrap_or(f64::NAN);
        assert!((v - 0.01).abs() < 1e-6, "{v}");
        assert!(matches!(
            check_nmse(&[1.0, 2.0], &[1.1, 1.8], NMSE_MATMUL),
            Err(MismatchError::Nmse { worst_index: 1, .. })
        ));
    }

    #[test]
    fn any_nan_fails_even_with_a_loose_limit() {
        let r = check_nmse(&[1.0, 2.0, 3.0], &[1.0, f32::NAN, 3.0], f64::INFINITY);
        assert!(matches!(r, Err(MismatchError::NonFinite { index: 1, .. })));
        let r = check_nmse(&[f32::INFINITY], &[f32::INFINITY], f64::INFINITY);
        assert!(matches!(r, Err(MismatchError::NonFinite { index: 0, .. })));
    }

    #[test]
    fn length_mismatch_fails() {
        assert!(matches!(
            nmse(&[1.0], &[1.0, 2.0]),
            Err(MismatchError::Length {
                expected: 1,
                actual: 2
            })
        ));
    }

    #[test]
    fn zero_reference_uses_absolute_error() {
        assert_eq!(nmse(&[0.0, 0.0], &[0.0, 0.0]), Ok(0.0));
        assert!(check_nmse(&[0.0], &[1e-3], NMSE_ELEMENTWISE).is_err());
    }
}
