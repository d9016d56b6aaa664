//! Timing a prepared case: GPU timestamps where the device has them, the
//! host clock around each submit where it does not (and the results say which).

use std::time::Instant;

use anyhow::Result;
use seldon_kernels::Gpu;
use seldon_kernels::timing::{GpuTimer, RunTimes, time_runs};

use super::setup::Recorder;

/// Timestamps per timer: up to 64 runs per submit.
const TIMER_CAPACITY: u32 = 65;

/// How kernel times were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamp queries around each run.
    Timestamps,
    /// Host wall clock around a submit-and-wait of each run.
    WallClock,
}

impl Clock {
    /// The name the results carry.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timestamps => "gpu_timestamp",
            Self::WallClock => "wall_clock",
        }
    }
}

/// Times cases on one device.
#[derive(Debug)]
pub struct Timer<'a> {
    gpu: &'a Gpu,
    timer: Option<GpuTimer>,
}

impl<'a> Timer<'a> {
    /// GPU timestamps if the device has TIMESTAMP_QUERY, else the wall clock.
    pub fn new(gpu: &'a Gpu) -> Result<Self> {
        let timer = if gpu.features().timestamps {
            Some(GpuTimer::new(gpu, TIMER_CAPACITY)?)
        } else {
            None
        };
        Ok(Self { gpu, timer })
    }

    /// Which clock [`Timer::time`] uses.
    pub fn clock(&self) -> Clock {
        if self.timer.is_some() {
            Clock::Timestamps
        } else {
            Clock::WallClock
        }
    }

    /// `warmup` untimed runs, then `runs` timed ones.
    pub fn time(&self, record: &mut Recorder<'_>, warmup: u32, runs: u32) -> Result<RunTimes> {
        let gpu = self.gpu;
        if let Some(timer) = &self.timer {
            return Ok(time_runs(gpu, timer, warmup, runs, |enc, i| {
                record(enc, i)
            })?);
        }
        let mut ns = Vec::with_capacity(runs as usize);
        for i in 0..warmup + runs {
            let mut encoder = gpu.encoder("bench")?;
            record(&mut encoder, i)?;
            let start = Instant::now();
            gpu.submit_and_wait("bench", encoder)?;
            if i >= warmup {
                ns.push(start.elapsed().as_nanos() as f64);
            }
        }
        Ok(RunTimes { ns })
    }
}
