//! Error capture and sync points: how a wgpu failure or a lost device becomes an
//! [`Error`] instead of a panic or a hang.
//!
//! - Every call that creates or submits goes through [`Gpu::scoped`], which wraps it
//!   in three error scopes (validation, out of memory, internal).
//! - The device-lost callback sets a flag that every public call checks first.
//!   wgpu runs that callback only from `maintain` (inside `poll`) once the queue is
//!   empty, and it drops errors of type "device lost" instead of reporting them to
//!   scopes. So after each scoped call we poll once without blocking (a device
//!   destroyed while idle is noticed at the very next call), and after a failed
//!   one we wait for the queue to drain before deciding what the error was.
//! - `Device::poll` panics on a hal-level device error (a real GPU reset), so polls
//!   run under `catch_unwind` and such a panic marks the device lost.
//! - Waits poll in short slices, checking the flag between them, up to the
//!   configured sync timeout.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Gpu;
use crate::error::{Error, Result};

/// How long one blocking poll may take before the lost flag is checked again.
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// Uncaptured errors kept for diagnostics; older ones are dropped.
const MAX_UNCAPTURED: usize = 16;

/// State shared with wgpu's callbacks (which run on wgpu's threads or inside polls).
#[derive(Debug, Default)]
pub(crate) struct DeviceState {
    lost: AtomicBool,
    lost_reason: Mutex<Option<String>>,
    uncaptured: Mutex<Vec<String>>,
    // wgpu 30.0.1 races when two threads poll at once: a waiting poll can see
    // the queue emptied by the other one and trip an assert in Device::maintain
    // (gfx-rs/wgpu#9958). Polls are serialized until that fix is released.
    poll_lock: Mutex<()>,
}

impl DeviceState {
    pub(crate) fn mark_lost(&self, reason: String) {
        tracing::error!(target: "seldon::gpu", "device lost: {reason}");
        let mut slot = self
            .lost_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.lost.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn lost_reason(&self) -> Option<String> {
        self.lost_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn record_uncaptured(&self, message: String) {
        tracing::error!(target: "seldon::gpu", "uncaptured wgpu error: {message}");
        let mut list = self
            .uncaptured
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if list.len() >= MAX_UNCAPTURED {
            list.remove(0);
        }
        list.push(message);
    }

    pub(crate) fn uncaptured(&self) -> Vec<String> {
        self.uncaptured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Gpu {
    /// `Err(DeviceLost)` once the device is gone; every public call starts here.
    pub fn check_lost(&self) -> Result<()> {
        if self.state.is_lost() {
            Err(Error::DeviceLost)
        } else {
            Ok(())
        }
    }

    /// Whether the device has been lost (it never comes back).
    pub fn is_lost(&self) -> bool {
        self.state.is_lost()
    }

    /// The reason wgpu gave for the loss, once lost.
    pub fn lost_reason(&self) -> Option<String> {
        self.state.lost_reason()
    }

    /// wgpu errors that escaped every error scope (for diagnostics; normally empty).
    pub fn uncaptured_errors(&self) -> Vec<String> {
        self.state.uncaptured()
    }

    /// Runs `f` (wgpu calls that create, write or submit) inside validation,
    /// out-of-memory and internal error scopes, naming `op` in the error.
    pub fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        // Scopes pop in reverse order of their pushes.
        let v = pollster::block_on(validation.pop());
        let i = pollster::block_on(internal.pop());
        let o = pollster::block_on(oom.pop());
        self.poll_now();
        self.check_lost()?;
        match v.or(i).or(o) {
            None => Ok(value),
            Some(e) => {
                // Objects made on a destroyed device fail validation ("buffer is
                // invalid") before wgpu confirms the loss, which it does only once
                // the queue drains: drain it so the error names the real cause.
                if let Err(Error::DeviceLost) = self.wait(op, None) {
                    return Err(Error::DeviceLost);
                }
                Err(self.convert(op, e))
            }
        }
    }

    fn convert(&self, op: &str, e: wgpu::Error) -> Error {
        if self.state.is_lost() {
            return Error::DeviceLost;
        }
        match e {
            wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory { op: op.to_owned() },
            wgpu::Error::Validation { description, .. } => Error::Validation {
                op: op.to_owned(),
                message: description,
            },
            wgpu::Error::Internal { description, .. } => Error::Internal {
                op: op.to_owned(),
                message: description,
            },
        }
    }

    /// One `Device::poll`, with a panic inside wgpu turned into a lost device.
    fn poll_guarded(&self, poll: wgpu::PollType) -> Result<Option<wgpu::PollStatus>> {
        let _serial = self
            .state
            .poll_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match catch_unwind(AssertUnwindSafe(|| self.device.poll(poll))) {
            Ok(Ok(status)) => Ok(Some(status)),
            Ok(Err(wgpu::PollError::Timeout)) => Ok(None),
            Ok(Err(e)) => Err(Error::Internal {
                op: "poll".into(),
                message: e.to_string(),
            }),
            Err(_) => {
                self.state
                    .mark_lost("wgpu panicked while polling the device".into());
                Err(Error::DeviceLost)
            }
        }
    }

    /// A non-blocking poll: runs finished callbacks, and the lost callback if due.
    pub(crate) fn poll_now(&self) {
        // A failure here surfaces through the lost flag or at the next wait.
        let _ = self.poll_guarded(wgpu::PollType::Poll);
    }

    /// Blocks until `index` (or, with `None`, everything submitted) has finished,
    /// returning `DeviceLost` if the device goes away meanwhile and `Timeout` after
    /// the sync timeout.
    pub fn wait(&self, op: &str, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.wait_until(op, index, || true)
    }

    /// Polls until the submission finished and `done()` holds (a map callback ran).
    pub(crate) fn wait_until(
        &self,
        op: &str,
        index: Option<wgpu::SubmissionIndex>,
        done: impl Fn() -> bool,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_lost()?;
            let status = self.poll_guarded(wgpu::PollType::Wait {
                submission_index: index.clone(),
                timeout: Some(WAIT_SLICE),
            })?;
            self.check_lost()?;
            if status.is_some() {
                if done() {
                    return Ok(());
                }
                // Finished but the callback has not run yet: give wgpu a moment.
                std::thread::sleep(Duration::from_millis(1));
            }
            if start.elapsed() > self.sync_timeout {
                return Err(Error::Timeout {
                    op: op.to_owned(),
                    seconds: self.sync_timeout.as_secs(),
                });
            }
        }
    }

    /// A command encoder labelled `label` (fails only once the device is lost).
    pub fn encoder(&self, label: &str) -> Result<wgpu::CommandEncoder> {
        self.scoped(label, || {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
        })
    }

    /// Finishes `encoder` and submits it; returns without waiting.
    pub fn submit(&self, op: &str, encoder: wgpu::CommandEncoder) -> Result<wgpu::SubmissionIndex> {
        self.scoped(op, || self.queue.submit([encoder.finish()]))
    }

    /// Submits `encoder` and waits for it to finish.
    pub fn submit_and_wait(&self, op: &str, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.submit(op, encoder)?;
        self.wait(op, Some(index))
    }
}
