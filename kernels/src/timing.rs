//! GPU timestamp queries: kernel times measured by the GPU itself, not by the
//! host clock around a submit (which would include submission, scheduling and
//! the readback).
//!
//! Kernel wrappers record their own compute passes, so a [`GpuTimer`] cannot
//! put timestamps inside them. Instead [`GpuTimer::mark`] records an empty
//! compute pass whose only job is to write a timestamp at its beginning;
//! marks placed between recorded kernels bracket them. wgpu writes pass
//! timestamps at the bottom of the pipe, so a mark is taken once everything
//! recorded before it has finished, which is what a kernel time needs.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Bytes per resolved timestamp.
const TIMESTAMP_BYTES: u64 = 8;
/// How long one batch of timed runs should take at most, judged from the
/// warm-up (far below the default sync timeout of two minutes).
pub const BATCH_TARGET: Duration = Duration::from_secs(5);

/// A set of timestamp queries with the buffer they resolve into.
#[derive(Debug)]
pub struct GpuTimer {
    query_set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    capacity: u32,
    period_ns: f64,
}

impl GpuTimer {
    /// The most timestamps one timer holds (wgpu's cap on a query set).
    pub const MAX_QUERIES: u32 = wgpu::QUERY_SET_MAX_QUERIES;

    /// A timer with room for `capacity` timestamps (at least 2, at most
    /// [`GpuTimer::MAX_QUERIES`]). Fails on a device without TIMESTAMP_QUERY.
    pub fn new(gpu: &Gpu, capacity: u32) -> Result<Self> {
        let op = "gpu_timer";
        if !gpu.features().timestamps {
            return Err(Error::invalid(
                op,
                "the device was created without TIMESTAMP_QUERY",
            ));
        }
        if !(2..=Self::MAX_QUERIES).contains(&capacity) {
            return Err(Error::invalid(
                op,
                format!(
                    "{capacity} timestamps; a timer holds 2..={}",
                    Self::MAX_QUERIES
                ),
            ));
        }
        let query_set = gpu.scoped(op, || {
            gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("seldon.timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            })
        })?;
        let resolved = gpu.scoped(op, || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("seldon.timestamps.resolved"),
                size: u64::from(capacity) * TIMESTAMP_BYTES,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })?;
        let period_ns = f64::from(gpu.queue().get_timestamp_period());
        if !(period_ns.is_finite() && period_ns > 0.0) {
            return Err(Error::invalid(
                op,
                format!("the queue reports a timestamp period of {period_ns} ns"),
            ));
        }
        Ok(Self {
            query_set,
            resolved,
            capacity,
            period_ns,
        })
    }

    /// How many timestamps this timer holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Nanoseconds per timestamp tick on this queue.
    pub fn period_ns(&self) -> f64 {
        self.period_ns
    }

    /// Records timestamp `index`, taken once everything recorded before it
    /// in `encoder` (and in earlier submissions) has finished.
    pub fn mark(&self, encoder: &mut wgpu::CommandEncoder, index: u32) -> Result<()> {
        self.check_index("mark", index, 1)?;
        // The pass is empty on purpose: a timestamp write needs a pass.
        let _pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("seldon.timestamp"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &self.query_set,
                beginning_of_pass_write_index: Some(index),
                end_of_pass_write_index: None,
            }),
        });
        Ok(())
    }

    /// Records the copy of timestamps `0..count` into the timer's buffer;
    /// [`GpuTimer::read_ticks`] reads them after the submit.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder, count: u32) -> Result<()> {
        self.check_index("resolve", 0, count)?;
        encoder.resolve_query_set(&self.query_set, 0..count, &self.resolved, 0);
        Ok(())
    }

    /// The raw ticks of timestamps `0..count`, as resolved by the last
    /// submitted [`GpuTimer::resolve`] (waits for it).
    pub fn read_ticks(&self, gpu: &Gpu, count: u32) -> Result<Vec<u64>> {
        self.check_index("read", 0, count)?;
        let bytes = gpu.read_bytes("seldon.timestamps", &self.resolved)?;
        Ok(bytes
            .chunks_exact(TIMESTAMP_BYTES as usize)
            .take(count as usize)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }

    /// The nanoseconds between consecutive timestamps of `ticks`. A pair that
    /// runs backwards (a counter that wrapped or a driver that reordered) is
    /// an error, not a zero, so that it cannot pass for a fast kernel.
    pub fn intervals_ns(&self, ticks: &[u64]) -> Result<Vec<f64>> {
        ticks
            .windows(2)
            .map(|w| match w[1].checked_sub(w[0]) {
                Some(d) => Ok(d as f64 * self.period_ns),
                None => Err(Error::invalid(
                    "gpu_timer",
                    format!("timestamp {} is before the previous one {}", w[1], w[0]),
                )),
            })
            .collect()
    }

    fn check_index(&self, what: &str, first: u32, count: u32) -> Result<()> {
        match first.checked_add(count) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(Error::invalid(
                "gpu_timer",
                format!(
                    "{what}: timestamps {first}..{first}+{count} exceed the capacity {}",
                    self.capacity
                ),
            )),
        }
    }
}

/// What one timed series measured, in nanoseconds per run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTimes {
    /// Each timed run, in recording order.
    pub ns: Vec<f64>,
}

impl RunTimes {
    /// The median run time (the mean of the middle two for an even count);
    /// `None` when there are no runs.
    pub fn median_ns(&self) -> Option<f64> {
        let mut sorted = self.ns.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(sorted[n / 2]),
            _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
        }
    }

    /// The fastest run.
    pub fn min_ns(&self) -> Option<f64> {
        self.ns.iter().copied().min_by(f64::total_cmp)
    }

    /// The slowest run.
    pub fn max_ns(&self) -> Option<f64> {
        self.ns.iter().copied().max_by(f64::total_cmp)
    }
}

/// Runs `record` `warmup` times untimed, then `runs` times between
/// timestamps, and returns each timed run's GPU time. `record(encoder, i)`
/// records run `i` (counting warm-up runs) into `encoder`. Timed runs go in
/// batches, one submit each, of at most the timer's capacity less one and
/// at most what the warm-up suggests finishes in [`BATCH_TARGET`], so that
/// slow kernels on slow devices stay far from the sync timeout (without a
/// warm-up, one run per batch).
pub fn time_runs(
    gpu: &Gpu,
    timer: &GpuTimer,
    warmup: u32,
    runs: u32,
    mut record: impl FnMut(&mut wgpu::CommandEncoder, u32) -> Result<()>,
) -> Result<RunTimes> {
    let mut per_batch = 1;
    if warmup > 0 {
        let mut encoder = gpu.encoder("seldon.warmup")?;
        for i in 0..warmup {
            record(&mut encoder, i)?;
        }
        let start = Instant::now();
        gpu.submit_and_wait("seldon.warmup", encoder)?;
        let per_run = start.elapsed().as_secs_f64() / f64::from(warmup);
        // Saturates to u32::MAX for an instant warm-up; clamped below.
        per_batch = (BATCH_TARGET.as_secs_f64() / per_run.max(1e-9)) as u32;
    }
    // A batch of b runs uses b + 1 timestamps.
    let per_batch = per_batch.clamp(1, timer.capacity() - 1);
    let mut ns = Vec::with_capacity(runs as usize);
    let mut done = 0u32;
    while done < runs {
        let batch = (runs - done).min(per_batch);
        let mut encoder = gpu.encoder("seldon.timed")?;
        timer.mark(&mut encoder, 0)?;
        for j in 0..batch {
            record(&mut encoder, warmup + done + j)?;
            timer.mark(&mut encoder, j + 1)?;
        }
        timer.resolve(&mut encoder, batch + 1)?;
        gpu.submit("seldon.timed", encoder)?;
        let ticks = timer.read_ticks(gpu, batch + 1)?;
        ns.extend(timer.intervals_ns(&ticks)?);
        done += batch;
    }
    Ok(RunTimes { ns })
}

#[cfg(test)]
mod tests {
    use super::RunTimes;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = RunTimes {
            ns: vec![5.0, 1.0, 3.0],
        };
        assert_eq!(odd.median_ns(), Some(3.0));
        let even = RunTimes {
            ns: vec![4.0, 1.0, 3.0, 2.0],
        };
        assert_eq!(even.median_ns(), Some(2.5));
        assert_eq!(even.min_ns(), Some(1.0));
        assert_eq!(even.max_ns(), Some(4.0));
        assert_eq!(RunTimes { ns: vec![] }.median_ns(), None);
    }
}
