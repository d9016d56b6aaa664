//! A 1 KiB hostile file cannot make the reader allocate more than a little:
//! measured with a counting global allocator. This file holds a single test so
//! that no other test allocates while it measures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gguf_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use gguf_common::{Raw, ty};
use seldon_formats::GgmlType;
use seldon_formats::gguf::{GgufFile, MAX_ARRAY_LEN, MAX_KEY_LEN, MAX_STRING_LEN};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
    TOTAL.fetch_add(n, Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (peak live bytes above the start, total bytes allocated) while parsing.
fn measure(bytes: Vec<u8>) -> (usize, usize) {
    let start = LIVE.load(Relaxed);
    PEAK.store(start, Relaxed);
    let total = TOTAL.load(Relaxed);
    let r = GgufFile::from_bytes(bytes);
    let peak = PEAK.load(Relaxed) - start;
    let allocated = TOTAL.load(Relaxed) - total;
    drop(r);
    (peak, allocated)
}

/// Pads or cuts `r` to exactly 1 KiB with `fill`.
fn kib(mut r: Raw, fill: u8) -> Vec<u8> {
    r.0.resize(1024, fill);
    r.0
}

fn hostile_files() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for fill in [0u8, 1, 0xff] {
        files.push(kib(Raw::header(3, u64::MAX, u64::MAX), fill));
        files.push(kib(Raw::header(3, 1 << 40, 0), fill));
        files.push(kib(Raw::header(3, 0, 1 << 40), fill));
        // As many key/values as could fit, each claiming a huge value.
        let mut r = Raw::header(3, 0, 76);
        r.u64(MAX_KEY_LEN).u64(MAX_STRING_LEN);
        files.push(kib(r, fill));
        for (elem, count) in [
            (ty::U8, MAX_ARRAY_LEN),
            (ty::STRING, MAX_ARRAY_LEN),
            (ty::ARRAY, MAX_ARRAY_LEN),
            (ty::U64, u64::MAX),
            (ty::STRING, 120),
            (ty::U8, 970),
            (ty::ARRAY, 80),
        ] {
            let mut r = Raw::header(3, 0, 1);
            r.str(b"k").u32(ty::ARRAY).u32(elem).u64(count);
            files.push(kib(r, fill));
        }
        let mut r = Raw::header(3, 0, 1);
        r.str(b"k").u32(ty::STRING).u64(u64::MAX);
        files.push(kib(r, fill));
        // Tensor infos claiming enormous shapes (nothing is allocated for data).
        let mut r = Raw::header(3, 30, 0);
        for i in 0..30u64 {
            r.tensor(
                format!("t{i}").as_bytes(),
                &[1 << 20, 1 << 20],
                GgmlType::F32.id(),
                i << 45,
            );
        }
        files.push(kib(r, fill));
    }
    // Deterministic pseudo-random bodies behind a valid header.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let mut r = Raw::header(3, 0, 0);
        r.0.truncate(8);
        while r.0.len() < 1024 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Mostly small numbers, so that counts and lengths are plausible.
            let small = (state >> 8).is_multiple_of(8);
            r.u64(if small {
                state % 64
            } else {
                state >> (state % 64)
            });
        }
        r.0.truncate(1024);
        files.push(r.0);
    }
    files
}

#[test]
fn hostile_1kib_files_allocate_little() {
    // Generous against the real worst case (a 1 KiB array of u8 becomes ~32
    // KiB of `Value`s) yet far below what any count in these files claims.
    const MAX_PEAK: usize = 1 << 20;
    const MAX_TOTAL: usize = 2 << 20;
    let files = hostile_files();
    let (mut worst_peak, mut worst_total) = (0, 0);
    for (i, f) in files.into_iter().enumerate() {
        assert_eq!(f.len(), 1024);
        let (peak, total) = measure(f);
        assert!(peak <= MAX_PEAK, "file {i}: peak {peak} bytes");
        assert!(total <= MAX_TOTAL, "file {i}: allocated {total} bytes");
        worst_peak = worst_peak.max(peak);
        worst_total = worst_total.max(total);
    }
    // The counter works: the u8 array of 970 elements really was allocated.
    assert!(
        worst_peak > 10_000,
        "peak {worst_peak}: allocator not counting?"
    );
    eprintln!("worst peak {worst_peak} bytes, worst total {worst_total} bytes");
}
