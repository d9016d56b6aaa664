// matmul_generic: the part of every matmul_<group>.wgsl that does not depend
// on the weight type: params, bindings, byte readers and the body of the
// decode kernels (matvec). WGSL has no includes, so the shader registry
// (kernels/src/shaders/mod.rs) appends this file to each group's decoders at
// build time, then one decode entry point with its activation loads (x32):
// matvec_portable.wgsl (after matmul_tiled.wgsl, the prefill and dequantize
// entry points), matvec_subgroups.wgsl, matvec_uniform.wgsl or
// matvec_split.wgsl; alone it does not validate. The entry points see the
// weights only through what every group defines:
//   fn dequant8(row: u32, g: u32) -> W8    elements 8g..8g+7 of a row
//   fn dequant32(row: u32, c: u32) -> W32  elements 32c..32c+31 of a row
//   const MV_PARTIAL: bool  whether n_in may end mid-chunk (float types), so
//     that the quantized groups compile no tail checks at all
//   const MV_UNIT: u32 and fn matvec_unit(row, u, acc): accumulate elements
//     MV_UNIT u.. of a row into acc through accumulate32 (weights) or
//     accumulate32_scaled/_affine (codes and per-half scales)
//     (matvec_unit_by32 does it with dequant32 for MV_UNIT = 32)
// (dequant32 may return anything past n_in; the callers mask it).

struct MatMulParams {
    n_in: u32,
    n_out: u32,
    n_cols: u32,
    row_bytes: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: MatMulParams;
// The same two buffers as weights and x, read 16 bytes at a time by matvec
// (bound by the host to matvec only). On llvmpipe every storage load is a
// loop over the SIMD lanes whatever its width, so one vec4 load costs about
// what one u32 load does: reading aligned blocks as vec4 is what brings
// decode near the copy kernel's bandwidth (copy itself moves vec4s).
@group(0) @binding(4) var<storage, read> weights4: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;

// Eight consecutive values: elements 8g..8g+3 in a, 8g+4..8g+7 in b.
struct W8 {
    a: vec4<f32>,
    b: vec4<f32>,
}

// Thirty-two consecutive values: elements 32c + 4i + j in [i][j] (dequant32).
alias W32 = array<vec4<f32>, 8>;

// dequant32 from four dequant8: for the types that have no whole-block decoder.
fn dequant32_by8(row: u32, c: u32) -> W32 {
    var w: W32;
    for (var k = 0u; k < 4u; k++) {
        let v = dequant8(row, 4u * c + k);
        w[2u * k] = v.a;
        w[2u * k + 1u] = v.b;
    }
    return w;
}

// The low 32 bits of the 64-bit value hi:lo shifted right by sh (0..31).
// Written without a branch (a shift by 32 is taken mod 32 in WGSL, so
// `hi << (32 - sh)` would be wrong for sh = 0): a branch on a per-row
// offset diverges across invocations, and both sides would run.
fn funnel(lo: u32, hi: u32, sh: u32) -> u32 {
    return (lo >> sh) | ((hi << 1u) << (31u - sh));
}

// The little-endian u32 at any byte offset of `weights` (two loads; the word
// after a row's last byte may be read, which the host allows for).
fn read_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    return funnel(weights[i], weights[i + 1u], (byte & 3u) * 8u);
}

// The eight little-endian u32 at any byte offset: 32 bytes from nine aligned
// loads, where read_u32 would take sixteen.
fn read_words8(byte: u32) -> array<u32, 8> {
    let i = byte >> 2u;
    let sh = (byte & 3u) * 8u;
    var out: array<u32, 8>;
    var lo = weights[i];
    for (var k = 0u; k < 8u; k++) {
        let hi = weights[i + k + 1u];
        out[k] = funnel(lo, hi, sh);
        lo = hi;
    }
    return out;
}

// matvec reads a block through a window: the vec4s of weights4 from the
// 16-byte boundary at or below the block's first byte (one storage load per
// 16 bytes, where read_u32 takes two per word), unpacked into `win`;
// `win_at` is the block's offset in it (0..15, per row). win_u32(rel) is the
// u32 at byte rel of the block, picked with selects: the word index depends
// on the row, and an array index that varies across invocations would be a
// per-lane access. Callers pass constant `n` and `rel` (after inlining and
// unrolling, every `win` index is then a constant).
var<private> win: array<u32, 64>;
var<private> win_at: u32;

fn load_window(byte: u32, n: u32) {
    let v = byte >> 4u;
    for (var i = 0u; i < 16u; i++) {
        if i < n {
            let q = weights4[v + i];
            win[4u * i] = q.x;
            win[4u * i + 1u] = q.y;
            win[4u * i + 2u] = q.z;
            win[4u * i + 3u] = q.w;
        }
    }
    win_at = byte & 15u;
}

// win[lo + d] for d in 0..4.
fn win_pick(lo: u32, d: u32) -> u32 {
    var v = win[lo];
    v = select(v, win[lo + 1u], d >= 1u);
    v = select(v, win[lo + 2u], d >= 2u);
    v = select(v, win[lo + 3u], d >= 3u);
    return select(v, win[lo + 4u], d >= 4u);
}

// The little-endian u32 at byte `rel` of the windowed block (rel + 4 <= the
// bytes loaded past win_at; bytes past the window are not ours).
fn win_u32(rel: u32) -> u32 {
    let b = win_at + rel;
    let lo = rel >> 2u;
    let d = (b >> 2u) - lo;
    return funnel(win_pick(lo, d), win_pick(lo + 1u, d), (b & 3u) * 8u);
}

// The 64 bytes from byte `rel` of a windowed block as two 32-byte halves,
// read in one loop so that every `win` index is a constant once unrolled;
// half_words picks one by an outer loop's index with selects (indexing by it
// would keep the arrays in memory, a per-lane access on llvmpipe).
struct Halves {
    lo: array<u32, 8>,
    hi: array<u32, 8>,
}

fn win_halves(rel: u32) -> Halves {
    var w: Halves;
    for (var m = 0u; m < 8u; m++) {
        w.lo[m] = win_u32(rel + 4u * m);
        w.hi[m] = win_u32(rel + 32u + 4u * m);
    }
    return w;
}

fn half_words(w: Halves, h: u32) -> array<u32, 8> {
    var q: array<u32, 8>;
    for (var m = 0u; m < 8u; m++) {
        q[m] = select(w.lo[m], w.hi[m], h == 1u);
    }
    return q;
}

// The u16 at an even byte offset.
fn read_u16(byte: u32) -> u32 {
    return (weights[byte >> 2u] >> ((byte & 2u) * 8u)) & 0xFFFFu;
}

// IEEE binary16 bits to f32, exact for every value including subnormals
// (unpack2x16float may flush those to zero, and ggml does not).
// Selects, not branches: on llvmpipe both sides of a branch inside a loop
// run under a mask anyway, and the branches cost more than the selects.
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let mag = h & 0x7FFFu;
    let special = bitcast<f32>(sign | 0x7F800000u | ((mag & 0x3FFu) << 13u));
    // Rebias the exponent from 15 to 127: add (127 - 15) << 23.
    let normal = bitcast<f32>(sign | ((mag << 13u) + 0x38000000u));
    let v = f32(mag) * 0x1p-24f;
    let subnormal = select(v, -v, sign != 0u);
    return select(select(subnormal, normal, mag >= 0x0400u), special, mag >= 0x7C00u);
}

// The f16 at an even byte offset, as f32.
fn read_f16(byte: u32) -> f32 {
    return f16_bits_to_f32(read_u16(byte));
}

// Activations k..k+7 of column `col`, zero past n_in (only float weights
// allow an n_in that is not a multiple of 8).
fn load_x8(col: u32, k: u32) -> W8 {
    let n_in = params.n_in;
    let base = col * n_in + k;
    if k + 8u <= n_in {
        return W8(
            vec4<f32>(x[base], x[base + 1u], x[base + 2u], x[base + 3u]),
            vec4<f32>(x[base + 4u], x[base + 5u], x[base + 6u], x[base + 7u]),
        );
    }
    var v = array<f32, 8>();
    for (var i = 0u; i < 8u; i++) {
        if k + i < n_in {
            v[i] = x[base + i];
        }
    }
    return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// matvec (decode, 1..8 columns): one invocation per weight row, MV_WG rows
// per workgroup. Each invocation walks its whole row one unit at a time
// (matvec_unit, from the group: a legacy block of 32, a k-quant or ternary
// super-block of 256, read through a vec4 window with its scales decoded
// once), so there is no reduction across invocations: no workgroup memory and
// no barrier (a barrier is a coroutine switch per invocation on llvmpipe).
// Rows sit across SIMD lanes on a CPU driver (lavapipe: 8 invocations per
// AVX2 vector), where every storage load is a loop over the lanes whatever
// its width: the decoders minimise load instructions (vec4s through
// load_window), and indices into the window must be constants once loops
// are unrolled. All invocations use the same activations at the same time;
// x32, from the file appended last (matvec_uniform.wgsl, else
// matvec_subgroups.wgsl or matvec_portable.wgsl), fetches them.
// Measured on lavapipe, Q8_0 2048x6144: u32 loads 15.5 ms, vec4 windows 9.7,
// activations as a uniform 6.5, constant window indices 4.5.
// On a GPU the rows of a warp are row_bytes apart, so each load touches one
// line per row, and the next words of those lines are L1 hits.
// MV_COLS is the exact number of columns (an override, one pipeline per
// count), so the accumulators are registers and decode (1 column) has no
// column loop. No branch in the hot loop depends on data: llvmpipe runs both
// sides of a branch inside a loop under a mask, so the tail checks exist only
// where MV_PARTIAL (float rows) asks for them (dropping them for block types
// made decode 3-5x faster) and the decoders use select(). Past 65535
// workgroups the grid folds into 2-D.
const MV_WG: u32 = 64u;
const MV_MAX_COLS: u32 = 8u;
override MV_COLS: u32 = 1u;

alias Acc = array<f32, MV_MAX_COLS>;

// acc[col] += w . x[col][32c..32c+31] for every column: a whole chunk (the
// row's last, partial one goes through matvec_tail).
fn accumulate32(acc: ptr<function, Acc>, w: W32, c: u32) {
    for (var col = 0u; col < MV_COLS; col++) {
        (*acc)[col] += dot32(w, x32(col, c));
    }
}

fn dot32(w: W32, xv: W32) -> f32 {
    let s = dot_halves(w, xv);
    return s.x + s.y;
}

fn hsum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// q . x over elements 0..15 (.x) and 16..31 (.y) of a chunk, by fma (one
// instruction where the device fuses it; llvmpipe 22.3 emits a multiply and
// an add either way).
fn dot_halves(q: W32, xv: W32) -> vec2<f32> {
    var s0 = q[0] * xv[0];
    var s1 = q[4] * xv[4];
    for (var i = 1u; i < 4u; i++) {
        s0 = fma(q[i], xv[i], s0);
        s1 = fma(q[i + 4u], xv[i + 4u], s1);
    }
    return vec2<f32>(hsum4(s0), hsum4(s1));
}

// The block decoders' matvec step, for weights w = d q (+ m) with codes q
// (as f32) and one scale d (and offset m) per half chunk of 16 (.x for
// elements 0..15, .y for 16..31; types with one scale per block pass it
// twice): acc[col] += d . (q . x) (+ m . sum x), per half. The scale and the
// offset are applied once per half instead of once per weight, as
// llama.cpp's kernels do (d * sum(q y) + m * sum(y)): two operations fewer
// per weight, which is what decode on llvmpipe spends its time on.
fn accumulate32_scaled(acc: ptr<function, Acc>, q: W32, c: u32, d: vec2<f32>) {
    for (var col = 0u; col < MV_COLS; col++) {
        let r = d * dot_halves(q, x32(col, c));
        (*acc)[col] += r.x + r.y;
    }
}

fn accumulate32_affine(acc: ptr<function, Acc>, q: W32, c: u32, d: vec2<f32>, m: vec2<f32>) {
    for (var col = 0u; col < MV_COLS; col++) {
        let xv = x32(col, c);
        var t0 = xv[0];
        var t1 = xv[4];
        for (var i = 1u; i < 4u; i++) {
            t0 += xv[i];
            t1 += xv[i + 4u];
        }
        let r = d * dot_halves(q, xv) + m * vec2<f32>(hsum4(t0), hsum4(t1));
        (*acc)[col] += r.x + r.y;
    }
}

// Activations 32c.. of column `col` from the storage binding, zero past n_in
// (x32_tail of the storage variants).
fn x32_masked(col: u32, c: u32) -> W32 {
    let base = col * params.n_in + c * 32u;
    var v: W32;
    for (var i = 0u; i < 32u; i++) {
        if c * 32u + i < params.n_in {
            v[i / 4u][i % 4u] = x[base + i];
        }
    }
    return v;
}

// The partial chunk c that ends a float row (MV_PARTIAL), masked past n_in
// (what dequant32 read there is not ours). Called once per row, outside the
// unit loop: llvmpipe runs both sides of a branch inside a loop, so tail
// checks in the hot loop cost every chunk (3x on F32 decode).
fn matvec_tail(row: u32, c: u32, acc: ptr<function, Acc>) {
    var w = dequant32(row, c);
    for (var i = 0u; i < 32u; i++) {
        if c * 32u + i >= params.n_in {
            w[i / 4u][i % 4u] = 0.0;
        }
    }
    for (var col = 0u; col < MV_COLS; col++) {
        (*acc)[col] += dot32(w, x32_tail(col, c));
    }
}

// matvec_unit for groups whose unit is one chunk of 32 (MV_UNIT = 32).
fn matvec_unit_by32(row: u32, c: u32, acc: ptr<function, Acc>) {
    accumulate32(acc, dequant32(row, c), c);
}

// The body of both matvec entry points.
fn matvec_rows(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    // Every group's matvec uses all six bindings, whichever its decoders read,
    // so that the host binds them alike for every type (a phony `_ = &v`
    // does not count as a use in naga). n_cols is never 0 here.
    if params.n_cols == 0u {
        y[0] = f32(weights[0] + weights4[0].x) + x[0] + x4[0].x;
    }
    let n_out = params.n_out;
    let row = (wid.x + wid.y * nwg.x) * MV_WG + lid;
    // Rows past the end decode the last row again and store nothing: an early
    // return would leave lanes inactive, and the subgroup variant needs them.
    let r = min(row, n_out - 1u);
    var acc = Acc();
    // Whole units (block rows always end on one); a float row's last
    // partial chunk after the loop.
    let units = params.n_in / MV_UNIT;
    for (var u = 0u; u < units; u++) {
        matvec_unit(r, u, &acc);
    }
    if MV_PARTIAL && units * MV_UNIT < params.n_in {
        matvec_tail(r, units, &acc);
    }
    if row < n_out {
        for (var col = 0u; col < MV_COLS; col++) {
            y[col * n_out + row] = acc[col];
        }
    }
}
