// argmax: indices[r] = the first i with x[r, i] maximal (ggml's ARGMAX);
// top_k:  indices[r, 0..k], values[r, 0..k]: the k largest x[r, i], largest first.
//
// x is rows x n f32 (logits over the vocabulary). Elements are ordered by value,
// then by lower index on ties, so both results are deterministic and greedy
// decoding picks the same token as ggml. NaNs are skipped (detected from their
// bits: WGSL may assume NaN never occurs, so v != v is not reliable); -inf is
// an ordinary, smallest value. A row with fewer than k non-NaN values pads
// with index 0xFFFFFFFF and value -inf; argmax of an all-NaN row is 0.
//
// One workgroup per row (folded to 2-D past 65535 rows). argmax: each of 256
// invocations scans a strided slice, then a tree reduction in workgroup memory.
// top_k repeats that k times, each round taking the best element strictly
// after the previous pick in the order above: k * n reads per row, which for
// k <= 64 and one row per decode step stays small next to a matvec over the
// vocabulary, and needs neither sorting nor per-invocation lists.

struct ArgmaxParams {
    n: u32,
    rows: u32,
    k: u32,
    _pad0: u32,
}

const WG: u32 = 256u;
const NONE: u32 = 0xFFFFFFFFu;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> values: array<f32>;
@group(0) @binding(3) var<uniform> params: ArgmaxParams;

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;
var<workgroup> result_v: f32;
var<workgroup> result_i: u32;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7FFFFFFFu) > 0x7F800000u;
}

// Whether (v, i) comes before (bv, bi) in the order; (bv, NONE) is "nothing yet".
fn before(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return bi == NONE || v > bv || (v == bv && i < bi);
}

// The best element of `row` after (pv, pi) (everything when pi == NONE and
// first is true), reduced over the workgroup; every invocation gets it.
fn best_after(row: u32, lid: u32, first: bool, pv: f32, pi: u32) -> vec2<u32> {
    let base = row * params.n;
    var bv = 0.0;
    var bi = NONE;
    for (var i = lid; i < params.n; i += WG) {
        let v = x[base + i];
        let allowed = first || v < pv || (v == pv && i > pi);
        if !is_nan(v) && allowed && before(v, i, bv, bi) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            let oi = best_i[lid + stride];
            if oi != NONE && before(best_v[lid + stride], oi, best_v[lid], best_i[lid]) {
                best_v[lid] = best_v[lid + stride];
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u {
        result_v = best_v[0];
        result_i = best_i[0];
    }
    // Uniform loads (with their barrier) make the result provably the same in
    // every invocation, so top_k may leave its loop on it.
    let result = vec2<u32>(bitcast<u32>(workgroupUniformLoad(&result_v)), workgroupUniformLoad(&result_i));
    return result;
}

@compute @workgroup_size(256)
fn argmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if row >= params.rows {
        return;
    }
    let best = best_after(row, lid, true, 0.0, NONE);
    if lid == 0u {
        indices[row] = select(best.y, 0u, best.y == NONE);
    }
}

@compute @workgroup_size(256)
fn top_k(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if row >= params.rows {
        return;
    }
    var pv = 0.0;
    var pi = NONE;
    for (var r = 0u; r < params.k; r++) {
        let best = best_after(row, lid, r == 0u, pv, pi);
        pv = bitcast<f32>(best.x);
        pi = best.y;
        if lid == 0u {
            indices[row * params.k + r] = pi;
            values[row * params.k + r] = select(pv, bitcast<f32>(0xFF800000u), pi == NONE);
        }
        if pi == NONE {
            // Nothing left: later rounds would find nothing either. pi is the
            // same for the whole workgroup, so leaving the loop stays uniform.
            for (var rest = r + 1u; rest < params.k; rest++) {
                if lid == 0u {
                    indices[row * params.k + rest] = NONE;
                    values[row * params.k + rest] = bitcast<f32>(0xFF800000u);
                }
            }
            break;
        }
    }
}
