// matvec_q8_dot4: decode-time y[c][o] = sum_i W[o][i] * xq[c][i] for Q8_0 or
// Q4_0 weights, where xq is x quantized to Q8_0 on the GPU, as ggml's CPU
// backend quantizes activations before its integer dot products. This is the
// integer variant of matmul_legacy's matvec for adapters with packed 4x8 dot
// products (dot4I8Packed): 4 multiply-adds per instruction on 8-bit integers,
// and the rounding of x matches llama.cpp's CPU results instead of f32.
//
// Two entry points, recorded back to back:
// - quantize_q8_0: one invocation per 32-element block of x (n_in is a
//   multiple of 32): ggml's quantize_row_q8_0_ref step by step (d = amax / 127,
//   q = roundf(x * (1 / d)), d rounded to f16). It writes XQ_WORDS u32 per
//   block: d as f32 bits (already an f16 value), then the 32 quants packed 4
//   per word, the layout dot4I8Packed takes. Blocks of a column are contiguous.
// - matvec: weights as in matmul_legacy (n_out rows of row_bytes, raw blocks
//   bound as array<u32>; blocks straddle words and read_u32 assembles them).
//   A workgroup of 64 owns MV_ROWS rows; invocation t takes groups of 8
//   elements t, t + 64, ... (two packed words of weights and of each column),
//   accumulates f32(integer dot) * d_w * d_x, and the sums meet in a tree
//   reduction in workgroup memory (portable; no subgroups). WEIGHT_TYPE (an
//   override, the ggml type id) picks the weight decoder.

override WEIGHT_TYPE: u32;

const Q4_0: u32 = 2u;
const Q8_0: u32 = 8u;
const XQ_WORDS: u32 = 9u;

struct Dot4Params {
    n_in: u32,
    n_out: u32,
    n_cols: u32,
    row_bytes: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Dot4Params;

// The little-endian u32 at any byte offset of `weights`.
fn read_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let shift = (byte & 3u) * 8u;
    let lo = weights[i];
    // A shift by 32 is taken mod 32 in WGSL: branch instead.
    if shift == 0u {
        return lo;
    }
    return (lo >> shift) | (weights[i + 1u] << (32u - shift));
}

// IEEE binary16 bits to f32, exact for every value including subnormals.
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let mag = h & 0x7FFFu;
    if mag >= 0x7C00u {
        return bitcast<f32>(sign | 0x7F800000u | ((mag & 0x3FFu) << 13u));
    }
    if mag >= 0x0400u {
        return bitcast<f32>(sign | ((mag << 13u) + 0x38000000u));
    }
    let v = f32(mag) * 0x1p-24f;
    return select(v, -v, sign != 0u);
}

// The f16 at an even byte offset, as f32.
fn read_f16(byte: u32) -> f32 {
    return f16_bits_to_f32((weights[byte >> 2u] >> ((byte & 2u) * 8u)) & 0xFFFFu);
}

// v rounded to the nearest f16 value (ties to even), as ggml's
// GGML_FP32_TO_FP16 does; written with integers because pack2x16float and
// quantizeToF16 need a device capability. v is finite and >= 0 here.
fn round_to_f16(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    if bits >= 0x477FF000u {
        // 65520 and above round to infinity.
        return bitcast<f32>(0x7F800000u);
    }
    if bits < 0x38800000u {
        // Below 2^-14 f16 is subnormal with a fixed step of 2^-24; WGSL's
        // round() rounds ties to even, and the scalings by 2^24 are exact.
        return round(v * 0x1p24f) * 0x1p-24f;
    }
    let lsb = (bits >> 13u) & 1u;
    return bitcast<f32>((bits + 0xFFFu + lsb) & 0xFFFFE000u);
}

// C's roundf: halves away from zero (WGSL's round() takes them to even).
fn round_away(v: f32) -> f32 {
    let t = trunc(v);
    return select(t, t + sign(v), abs(v - t) >= 0.5);
}

@compute @workgroup_size(64)
fn quantize_q8_0(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = (wid.x + wid.y * nwg.x) * 64u + lid;
    if b >= (params.n_in / 32u) * params.n_cols {
        return;
    }
    // Columns are contiguous and n_in is a multiple of 32, so block b of
    // the whole activation matrix is x[32b..32b+32].
    let base = b * 32u;
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(x[base + i]));
    }
    let d = amax / 127.0;
    let id = select(0.0, 1.0 / d, d != 0.0);
    for (var w = 0u; w < 8u; w++) {
        var packed = 0u;
        for (var j = 0u; j < 4u; j++) {
            let q = i32(round_away(x[base + w * 4u + j] * id));
            packed |= (bitcast<u32>(q) & 0xFFu) << (8u * j);
        }
        xq[b * XQ_WORDS + 1u + w] = packed;
    }
    xq[b * XQ_WORDS] = bitcast<u32>(round_to_f16(d));
}

// Group g (elements 8g..8g+7) of weight row `row`: two words of packed
// 8-bit quants, the block scale, and what to subtract per unit of the
// activations' quant sum (Q4_0 stores q + 8, and sum((q + 8) * x) - 8 sum(x)
// keeps everything in dot4I8Packed).
struct WeightGroup {
    q0: u32,
    q1: u32,
    d: f32,
    offset: i32,
}

fn weight_group(row: u32, g: u32) -> WeightGroup {
    let sub = g & 3u;
    switch WEIGHT_TYPE {
        case Q4_0: {
            // 18 bytes: d, qs[16]; byte j holds element j (low nibble) and j + 16.
            let blk = row * params.row_bytes + (g >> 2u) * 18u;
            let off = blk + 2u + 8u * (sub & 1u);
            let shift = select(0u, 4u, sub >= 2u);
            let q0 = (read_u32(off) >> shift) & 0x0F0F0F0Fu;
            let q1 = (read_u32(off + 4u) >> shift) & 0x0F0F0F0Fu;
            return WeightGroup(q0, q1, read_f16(blk), 8i);
        }
        case Q8_0: {
            // 34 bytes: d, qs[32] (i8).
            let blk = row * params.row_bytes + (g >> 2u) * 34u;
            let off = blk + 2u + 8u * sub;
            return WeightGroup(read_u32(off), read_u32(off + 4u), read_f16(blk), 0i);
        }
        default: {
            // The host never selects another type for this shader.
            return WeightGroup(0u, 0u, 0.0, 0i);
        }
    }
}

const MV_WG: u32 = 64u;
const MV_ROWS: u32 = 2u;
const MV_COLS: u32 = 8u;
const MV_SUMS: u32 = 16u;

var<workgroup> mv_partial: array<f32, 1024>;

@compute @workgroup_size(64)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first_row = (wid.x + wid.y * nwg.x) * MV_ROWS;
    if first_row >= params.n_out {
        return;
    }
    let n_cols = params.n_cols;
    let blocks = params.n_in / 32u;
    var acc = array<f32, MV_SUMS>();
    for (var g = lid; g < params.n_in / 8u; g += MV_WG) {
        var w: array<WeightGroup, MV_ROWS>;
        for (var r = 0u; r < MV_ROWS; r++) {
            // Past the last row, decode the last row again; its sums are dropped.
            w[r] = weight_group(min(first_row + r, params.n_out - 1u), g);
        }
        for (var c = 0u; c < MV_COLS; c++) {
            if c < n_cols {
                let xb = (c * blocks + (g >> 2u)) * XQ_WORDS;
                let dx = bitcast<f32>(xq[xb]);
                let x0 = xq[xb + 1u + 2u * (g & 3u)];
                let x1 = xq[xb + 2u + 2u * (g & 3u)];
                let xsum = dot4I8Packed(0x01010101u, x0) + dot4I8Packed(0x01010101u, x1);
                for (var r = 0u; r < MV_ROWS; r++) {
                    let dot = dot4I8Packed(w[r].q0, x0) + dot4I8Packed(w[r].q1, x1);
                    acc[r * MV_COLS + c] += f32(dot - w[r].offset * xsum) * (w[r].d * dx);
                }
            }
        }
    }
    for (var k = 0u; k < MV_SUMS; k++) {
        mv_partial[k * MV_WG + lid] = acc[k];
    }
    workgroupBarrier();
    for (var stride = MV_WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var k = 0u; k < MV_SUMS; k++) {
                if k % MV_COLS < n_cols {
                    mv_partial[k * MV_WG + lid] += mv_partial[k * MV_WG + lid + stride];
                }
            }
        }
        workgroupBarrier();
    }
    if lid < MV_SUMS {
        let row = first_row + lid / MV_COLS;
        let c = lid % MV_COLS;
        if row < params.n_out && c < n_cols {
            y[c * params.n_out + row] = mv_partial[lid * MV_WG];
        }
    }
}
