// matmul_float: y[c][o] = sum_i W[o][i] * x[c][i] for weights W stored as F32,
// F16 or BF16: ggml's mul_mat with W of ne = [n_in, n_out].
//
// Layout: `weights` holds n_out rows of n_in values (any n_in: F16 and BF16
// rows of odd length start mid-word), bound as array<u32>; x is n_cols rows of
// n_in f32 (one per token), y n_cols rows of n_out f32. The conversions are
// exact (F16 subnormals included), as ggml's are.
//
// WEIGHT_TYPE (an override: the ggml type id) picks the decoder; the pipeline
// compiler folds the switch in dequant8 away. The registry appends
// common/matmul_generic.wgsl (the entry points); its matvec reads 32 values
// at a time through dequant32 (a vec4 window: rows of any length start at
// any 4-byte (F32) or 2-byte (F16, BF16) offset).

override WEIGHT_TYPE: u32;

const F32: u32 = 0u;
const F16: u32 = 1u;
const BF16: u32 = 30u;

// The 16-bit value with index `h` of a row-major array of halves.
fn half_at(h: u32) -> u32 {
    return (weights[h >> 1u] >> ((h & 1u) * 16u)) & 0xFFFFu;
}

// Value i (0..7) of the group starting at element `e`, as f32.
fn float_at(e: u32, i: u32) -> f32 {
    switch WEIGHT_TYPE {
        case F32: {
            return bitcast<f32>(weights[e + i]);
        }
        case F16: {
            return f16_bits_to_f32(half_at(e + i));
        }
        case BF16: {
            return bitcast<f32>(half_at(e + i) << 16u);
        }
        default: {
            // The host never selects another type for this shader.
            return 0.0;
        }
    }
}

// Elements 8g..8g+7 of weight row `row`, zero past n_in.
fn dequant8(row: u32, g: u32) -> W8 {
    let n_in = params.n_in;
    let e = row * n_in + g * 8u;
    var v = array<f32, 8>();
    for (var i = 0u; i < 8u; i++) {
        if g * 8u + i < n_in {
            v[i] = float_at(e, i);
        }
    }
    return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}


// Elements 32c..32c+31 of weight row `row` (anything past n_in: the caller
// masks it), read through one vec4 window: 9 loads for F32's 128 bytes at any
// 4-byte offset, 5 for 64 bytes of halves at any even offset (where u32
// loads took 32 and 17).
fn dequant32(row: u32, c: u32) -> W32 {
    let e = row * params.n_in + 32u * c;
    var w: W32;
    if WEIGHT_TYPE == F32 {
        load_window(4u * e, 9u);
        // Word-aligned: the word offset in the window is the same for all 32.
        let d = win_at >> 2u;
        for (var k = 0u; k < 8u; k++) {
            let q = vec4<u32>(win_pick(4u * k, d), win_pick(4u * k + 1u, d),
                win_pick(4u * k + 2u, d), win_pick(4u * k + 3u, d));
            w[k] = bitcast<vec4<f32>>(q);
        }
        return w;
    }
    load_window(2u * e, 5u);
    // Written out, not a loop: the loop's body is large enough that the
    // shader compiler may keep it rolled, and then `k` indexes the window
    // at run time (on llvmpipe a per-lane memory access: BF16 decode took
    // 40 ms at 2048x6144 that way).
    return W32(halves4(0u), halves4(1u), halves4(2u), halves4(3u),
        halves4(4u), halves4(5u), halves4(6u), halves4(7u));
}

// Halves 4k..4k+3 of the windowed chunk (F16 or BF16) as f32.
fn halves4(k: u32) -> vec4<f32> {
    let lo = win_u32(8u * k);
    let hi = win_u32(8u * k + 4u);
    let bits = (vec4<u32>(lo, lo, hi, hi) >> vec4<u32>(0u, 16u, 0u, 16u)) & vec4<u32>(0xFFFFu);
    if WEIGHT_TYPE == BF16 {
        return bitcast<vec4<f32>>(bits << vec4<u32>(16u));
    }
    return vec4<f32>(f16_bits_to_f32(bits.x), f16_bits_to_f32(bits.y),
        f16_bits_to_f32(bits.z), f16_bits_to_f32(bits.w));
}

// matvec's unit: one block (float rows: one chunk) of 32.
const MV_UNIT: u32 = 32u;
// Float rows may end mid-chunk (any n_in); block rows never do.
const MV_PARTIAL: bool = true;

fn matvec_unit(row: u32, u: u32, acc: ptr<function, Acc>) {
    matvec_unit_by32(row, u, acc);
}
