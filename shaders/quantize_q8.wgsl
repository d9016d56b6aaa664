// quantize_q8: activations x (n_cols columns of n_in f32, contiguous) to the
// 8-bit block formats ggml's CPU backend quantizes a matmul's input to before
// its integer dot products, bit for bit as seldon-formats' quantize_row_q8_*
// (ggml's *_ref quantizers). matvec_q8_dot4 reads the result. One entry point
// per format; blocks of a column are contiguous, and since n_in is a multiple
// of the block size, block b of the whole matrix starts at element b * size.
//
// - quantize_q8_0 (Q4_0, Q5_0, Q8_0 weights): one invocation per 32 values;
//   d = amax / 127, q = roundf(x * (1 / d)), d rounded to f16. 9 words per
//   block: d as f32 bits (already an f16 value), then the 32 quants packed 4
//   per word (the operand layout of dot4I8Packed).
// - quantize_q8_1 (Q4_1, Q5_1): as Q8_0 plus s = f16(d * sum(q)), with the
//   unrounded d, which the weights' minimum multiplies. 9 words: ggml's 36-byte
//   block_q8_1 exactly (f16 d and s in word 0, then the quants).
// - quantize_q8_k (k-quants, TQ1_0, TQ2_0): one workgroup of 64 per 256
//   values, 4 per invocation. max is the value of largest magnitude (the
//   first on ties), iscale = -127 / max, q = min(127, nearest_int(iscale * x))
//   (ties to even, WGSL's round()), d = 1 / iscale, and the sums of each 16
//   quants. 73 words: ggml's 292-byte block_q8_K exactly (d as f32, 256
//   quants, 16 i16 sums). A block of zeros is all zero bits, as in
//   seldon-formats. The largest magnitude and its index meet in a tree
//   reduction in workgroup memory; so do the per-16 sums.
//
// Divisions (amax / 127, 1 / d, -127 / max) must be correctly rounded for
// bit-exact output; Vulkan allows 2.5 ulp. Lavapipe (LLVM) divides exactly.

struct Dot4Params {
    n_in: u32,
    n_out: u32,
    n_cols: u32,
    row_bytes: u32,
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(4) var<uniform> params: Dot4Params;

const Q8_0_WORDS: u32 = 9u;
const Q8_1_WORDS: u32 = 9u;
const Q8_K_WORDS: u32 = 73u;

// |v| rounded to the nearest f16 value (ties to even), as f32, as ggml's
// GGML_FP32_TO_FP16 does; written with integers because pack2x16float and
// quantizeToF16 need a device capability. 65520 and above become infinity.
fn round_to_f16(v: f32) -> f32 {
    let bits = bitcast<u32>(v) & 0x7FFFFFFFu;
    if bits >= 0x477FF000u {
        return bitcast<f32>(0x7F800000u);
    }
    if bits < 0x38800000u {
        // Below 2^-14 f16 is subnormal with a fixed step of 2^-24; WGSL's
        // round() rounds ties to even, and the scalings by 2^24 are exact.
        return round(bitcast<f32>(bits) * 0x1p24f) * 0x1p-24f;
    }
    let lsb = (bits >> 13u) & 1u;
    return bitcast<f32>((bits + 0xFFFu + lsb) & 0xFFFFE000u);
}

// The IEEE binary16 bits of v rounded to f16 (v finite).
fn f16_bits(v: f32) -> u32 {
    let sign = (bitcast<u32>(v) >> 16u) & 0x8000u;
    let r = round_to_f16(v);
    let bits = bitcast<u32>(r);
    if bits == 0x7F800000u {
        return sign | 0x7C00u;
    }
    if bits < 0x38800000u {
        // A subnormal: r * 2^24 is its integer mantissa (1024 is 2^-14 itself).
        return sign | u32(r * 0x1p24f);
    }
    // Rebias the exponent from 127 to 15: subtract (127 - 15) << 10.
    return sign | ((bits >> 13u) - 0x1C000u);
}

// C's roundf: halves away from zero (WGSL's round() takes them to even).
fn round_away(v: f32) -> f32 {
    let t = trunc(v);
    return select(t, t + sign(v), abs(v - t) >= 0.5);
}

// The block of 32 at x[base..]: roundf(x * id) in 8 packed words at xq[out..],
// returning the sum of the quants.
fn quantize32(base: u32, id: f32, out: u32) -> i32 {
    var sum = 0;
    for (var w = 0u; w < 8u; w++) {
        let v = vec4<f32>(x[base + 4u * w], x[base + 4u * w + 1u], x[base + 4u * w + 2u], x[base + 4u * w + 3u]);
        let r = vec4<f32>(round_away(v.x * id), round_away(v.y * id), round_away(v.z * id), round_away(v.w * id));
        let q = vec4<i32>(r);
        xq[out + w] = pack4xI8(q);
        sum += q.x + q.y + q.z + q.w;
    }
    return sum;
}

// d = amax / 127 of the 32 values at x[base..].
fn scale32(base: u32) -> f32 {
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(x[base + i]));
    }
    return amax / 127.0;
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
    let d = scale32(b * 32u);
    quantize32(b * 32u, select(0.0, 1.0 / d, d != 0.0), b * Q8_0_WORDS + 1u);
    xq[b * Q8_0_WORDS] = bitcast<u32>(round_to_f16(d));
}

@compute @workgroup_size(64)
fn quantize_q8_1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = (wid.x + wid.y * nwg.x) * 64u + lid;
    if b >= (params.n_in / 32u) * params.n_cols {
        return;
    }
    let d = scale32(b * 32u);
    let sum = quantize32(b * 32u, select(0.0, 1.0 / d, d != 0.0), b * Q8_1_WORDS + 1u);
    xq[b * Q8_1_WORDS] = f16_bits(d) | (f16_bits(f32(sum) * d) << 16u);
}

var<workgroup> qk_amax: array<f32, 64>;
var<workgroup> qk_index: array<u32, 64>;
var<workgroup> qk_sums: array<i32, 64>;

@compute @workgroup_size(64)
fn quantize_q8_k(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // One block per workgroup: b is uniform, so the early return is too.
    let b = wid.x + wid.y * nwg.x;
    if b >= (params.n_in / 256u) * params.n_cols {
        return;
    }
    let base = b * 256u + 4u * lid;
    let v = vec4<f32>(x[base], x[base + 1u], x[base + 2u], x[base + 3u]);
    // The first of this invocation's largest magnitudes (strictly larger
    // replaces, as ggml's loop does); index 4 * lid when all are zero.
    var amax = 0.0;
    var index = 4u * lid;
    for (var j = 0u; j < 4u; j++) {
        if abs(v[j]) > amax {
            amax = abs(v[j]);
            index = 4u * lid + j;
        }
    }
    qk_amax[lid] = amax;
    qk_index[lid] = index;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if lid < stride {
            let a = qk_amax[lid + stride];
            let i = qk_index[lid + stride];
            if a > qk_amax[lid] || (a == qk_amax[lid] && i < qk_index[lid]) {
                qk_amax[lid] = a;
                qk_index[lid] = i;
            }
        }
        workgroupBarrier();
    }
    let out = b * Q8_K_WORDS;
    let max_value = x[b * 256u + qk_index[0]];
    var q = vec4<i32>();
    if qk_amax[0] != 0.0 {
        let iscale = -127.0 / max_value;
        q = min(vec4<i32>(round(iscale * v)), vec4<i32>(127));
        if lid == 0u {
            xq[out] = bitcast<u32>(1.0 / iscale);
        }
    } else if lid == 0u {
        xq[out] = 0u;
    }
    xq[out + 1u + lid] = pack4xI8(q);
    qk_sums[lid] = q.x + q.y + q.z + q.w;
    workgroupBarrier();
    if lid < 8u {
        // Sums 2 lid and 2 lid + 1: invocations 8 lid..8 lid + 7.
        let s = 8u * lid;
        let lo = qk_sums[s] + qk_sums[s + 1u] + qk_sums[s + 2u] + qk_sums[s + 3u];
        let hi = qk_sums[s + 4u] + qk_sums[s + 5u] + qk_sums[s + 6u] + qk_sums[s + 7u];
        xq[out + 65u + lid] = (bitcast<u32>(lo) & 0xFFFFu) | (bitcast<u32>(hi) << 16u);
    }
}
