//! Workgroup counts: a 1-D count folded into 2-D when it exceeds the per-dimension limit.
//!
//! WebGPU caps each dimension at `max_compute_workgroups_per_dimension` (65535
//! almost everywhere), while a row-per-workgroup kernel over a long prompt or an
//! elementwise kernel over a big tensor needs more. Kernels that accept a fold
//! compute their linear workgroup index as `wid.x + wid.y * num_workgroups.x`
//! and return early past the end, since the fold may round up.

use crate::error::{Error, Result};

/// A dispatch size, `dispatch_workgroups(x, y, z)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workgroups {
    /// Workgroups along x.
    pub x: u32,
    /// Workgroups along y (above 1 only when folded).
    pub y: u32,
    /// Workgroups along z (always 1 here).
    pub z: u32,
}

impl Workgroups {
    /// Total workgroups dispatched (at least the count asked for).
    pub fn total(&self) -> u64 {
        u64::from(self.x) * u64::from(self.y) * u64::from(self.z)
    }

    /// Records this dispatch into `pass`; a zero-sized dispatch records nothing.
    pub fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.total() > 0 {
            pass.dispatch_workgroups(self.x, self.y, self.z);
        }
    }
}

/// Folds `count` workgroups into at most `max_per_dim` per dimension, using as
/// few extra (idle) workgroups as possible. `None` when even `max_per_dim^2`
/// is too few, or `max_per_dim` is 0 with work to do.
pub fn fold_workgroups(count: u64, max_per_dim: u32) -> Option<Workgroups> {
    let max = u64::from(max_per_dim);
    if count == 0 {
        return Some(Workgroups { x: 0, y: 1, z: 1 });
    }
    if max == 0 {
        return None;
    }
    if count <= max {
        return Some(Workgroups {
            x: u32::try_from(count).ok()?,
            y: 1,
            z: 1,
        });
    }
    let y = count.div_ceil(max);
    if y > max {
        return None;
    }
    // x = ceil(count / y) <= max because y = ceil(count / max).
    let x = count.div_ceil(y);
    Some(Workgroups {
        x: u32::try_from(x).ok()?,
        y: u32::try_from(y).ok()?,
        z: 1,
    })
}

/// Workgroups for `items` work items at `per_group` items per workgroup,
/// folded against `max_per_dim`; the error names `op`.
pub fn workgroups_for(
    op: &str,
    items: u64,
    per_group: u32,
    max_per_dim: u32,
) -> Result<Workgroups> {
    if per_group == 0 {
        return Err(Error::invalid(op, "zero items per workgroup"));
    }
    let count = items.div_ceil(u64::from(per_group));
    fold_workgroups(count, max_per_dim).ok_or_else(|| Error::DispatchTooLarge {
        op: op.to_owned(),
        workgroups: count,
        limit: u64::from(max_per_dim).saturating_mul(u64::from(max_per_dim)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_counts_stay_one_dimensional() {
        assert_eq!(
            fold_workgroups(1, 65535),
            Some(Workgroups { x: 1, y: 1, z: 1 })
        );
        assert_eq!(
            fold_workgroups(65535, 65535),
            Some(Workgroups {
                x: 65535,
                y: 1,
                z: 1
            })
        );
        assert_eq!(fold_workgroups(0, 65535).map(|w| w.total()), Some(0));
    }

    #[test]
    fn large_counts_fold_and_overflow_is_an_error() {
        assert_eq!(
            fold_workgroups(65536, 65535),
            Some(Workgroups {
                x: 32768,
                y: 2,
                z: 1
            })
        );
        assert!(fold_workgroups(65535 * 65535, 65535).is_some());
        assert!(fold_workgroups(65535 * 65535 + 1, 65535).is_none());
        assert!(fold_workgroups(u64::MAX, 65535).is_none());
        assert!(fold_workgroups(1, 0).is_none());
        match workgroups_for("rms_norm", 1 << 40, 1, 65535) {
            Err(Error::DispatchTooLarge {
                op,
                workgroups,
                limit,
            }) => {
                assert_eq!(
                    (op.as_str(), workgroups, limit),
                    ("rms_norm", 1 << 40, 65535 * 65535)
                );
            }
            other => panic!("expected DispatchTooLarge, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn fold_covers_the_count_within_limits(count in 1u64..5_000_000, max in 1u32..70_000) {
            match fold_workgroups(count, max) {
                Some(w) => {
                    prop_assert!(w.x <= max && w.y <= max && w.z == 1);
                    prop_assert!(w.total() >= count);
                    // Idle workgroups are fewer than one row of the fold.
                    prop_assert!(w.total() - count < u64::from(w.x));
                }
                None => prop_assert!(count > u64::from(max) * u64::from(max)),
            }
        }
    }
}
