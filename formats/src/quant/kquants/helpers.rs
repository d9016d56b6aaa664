//! The search routines shared by the k-quant reference quantizers.
//!
//! These mirror ggml's `make_qx_quants`, `make_q3_quants` and
//! `make_qkx2_quants` in the order of their float operations: ggml's reference
//! output depends on every rounding, and Rust never contracts `a*b+c` into an
//! FMA, which matches a portable (non-FMA) C build.

/// Below this magnitude a group is treated as all zeros (ggml's `GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Rounds to the nearest integer, ties to even, with ggml's `nearest_int` trick.
///
/// Adding 1.5 * 2^23 pushes the integer part into the low mantissa bits under
/// the current (round-to-nearest-even) rounding. Exact for |fval| <= 4194303;
/// outside that range it returns the same garbage ggml does, never panicking.
#[inline]
pub fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Unpacks the 6-bit scale and min of sub-block `j` (0..8) from the 12 packed
/// scale bytes of a Q4_K or Q5_K block (ggml's `get_scale_min_k4`).
///
/// Sub-blocks 0..4 keep their values in the low 6 bits of bytes 0..8; sub-blocks
/// 4..8 split theirs into a nibble in bytes 8..12 and two high bits borrowed from
/// the top of bytes 0..8.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d, m)
    }
}

/// The magnitude-largest value of `x`, keeping its sign, and its magnitude.
/// The first of equal magnitudes wins, as in ggml.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// Sums for the least-squares scale of the grid `iscale`, weights x^2.
#[inline]
fn qx_sums(nmax: i32, iscale: f32, x: &[f32]) -> (f32, f32) {
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for &xi in x {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1) as f32;
        let w = xi * xi;
        sumlx += w * xi * l;
        suml2 += w * l * l;
    }
    (sumlx, suml2)
}

/// ggml's `make_qx_quants` with `rmse_type == 1` and no importance weights, the
/// only form the reference quantizers use (Q6_K): symmetric quants in
/// `0..2*nmax` (stored with the `+nmax` offset) and the scale that minimizes the
/// x^2-weighted error over 19 candidate grids.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let quantize = |iscale: f32, l: &mut [i8]| {
        for (li, &xi) in l.iter_mut().zip(x) {
            *li = (nmax + nearest_int(iscale * xi).clamp(-nmax, nmax - 1)) as i8;
        }
    };
    let iscale = -(nmax as f32) / max;
    quantize(iscale, l);
    let (sumlx, suml2) = qx_sums(nmax, iscale, x);
    // `suml2 ? .. : 0` in C: NaN counts as true.
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = qx_sums(nmax, iscale, x);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            quantize(iscale, l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse == true` (the Q3_K reference path):
/// symmetric quants in `0..2*nmax` refined one weight at a time for up to five
/// passes, each change kept only if it lowers the x^2-weighted error.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (li, &xi) in l.iter_mut().zip(x) {
        let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = q as i8;
        let w = xi * xi;
        sumlx += w * xi * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (li, &xi) in l.iter_mut().zip(x) {
            let w = xi * xi;
            let old = f32::from(*li);
            let mut slx = sumlx - w * xi * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*li) {
                    slx += w * xi * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for li in l.iter_mut() {
        *li = (i32::from(*li) + nmax) as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Parameters of the grid search in [`make_qkx2_quants`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Qkx2Search {
    /// Largest quant (3, 15 or 31).
    pub nmax: i32,
    /// Offset of the first candidate grid from `nmax` steps.
    pub rmin: f32,
    /// Step between candidate grids.
    pub rdelta: f32,
    /// Number of candidate grids beyond the first.
    pub nstep: i32,
    /// Weighted absolute error instead of weighted squared error.
    pub use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric quants `L` in `0..=nmax` with
/// `x ~ scale*L - min`; returns `(scale, min)` with `min >= 0` (ggml's
/// `the_min`). Tries `nstep + 1` grids and keeps the weighted least-squares fit
/// with the smallest error.
pub(crate) fn make_qkx2_quants(
    p: Qkx2Search,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
) -> (f32, f32) {
    let nmax = p.nmax;
    let (Some(&x0), Some(&w0)) = (x.first(), weights.first()) else {
        return (0.0, 0.0);
    };
    let mut min = x0;
    let mut max = x0;
    let mut sum_w = w0;
    let mut sum_x = sum_w * x0;
    for (&xi, &w) in x.iter().zip(weights).skip(1) {
        if xi < min {
            min = xi;
        }
        if xi > max {
            max = xi;
        }
        sum_w += w;
        sum_x += w * xi;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if p.use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((li, &xi), &w) in l.iter_mut().zip(x).zip(weights) {
        *li = nearest_int(iscale * (xi - min)).clamp(0, nmax) as u8;
        let diff = scale * f32::from(*li) + min - xi;
        best_error += w * err(diff);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for ((la, &xi), &w) in laux.iter_mut().zip(x).zip(weights) {
            let q = nearest_int(iscale * (xi - min)).clamp(0, nmax);
            *la = q as u8;
            let q = q as f32;
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * xi;
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for ((&la, &xi), &w) in laux.iter().zip(x).zip(weights) {
                let diff = this_scale * f32::from(la) + this_min - xi;
                cur_error += w * err(diff);
            }
            if cur_error < best_error {
                for (li, &la) in l.iter_mut().zip(laux.iter()) {
                    *li = la;
                }
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}
