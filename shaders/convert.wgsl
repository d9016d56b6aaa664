// convert_f32_to_f16: dst[i] = f16(clamp(src[i], -65504, 65504)) for i < n
// convert_f16_to_f32: dst[i] = f32(src[i])                      for i < n
//
// Copies between f32 tensors and f16 tensors (llama.cpp's GGML_TYPE_F16:
// plain little-endian binary16, two elements per u32 word, element 2w in the
// low half of word w). The f16 side is bound as raw u32 words and converted
// with pack2x16float/unpack2x16float, which are core WGSL: no SHADER_F16, so
// the kernel runs on every adapter.
//
// Why the clamp: WGSL leaves pack2x16float of a value outside the finite f16
// range indeterminate, so values beyond +-65504 saturate to it instead (a
// defined result; ggml's CPU conversion would give an infinity). NaN inputs
// give an unspecified value.
//
// One u32 word (two elements) per invocation, so each invocation owns its
// output word and no two invocations race on a half. With an odd n the last
// word holds one element: f32 -> f16 keeps that word's high half as it was
// (so the kernel writes exactly n elements), f16 -> f32 writes one float.
// 256 invocations per workgroup; past 65535 workgroups the host folds the
// grid into 2-D and the words past the end (the fold rounds up) return early.

struct ConvertParams {
    n: u32,
    n_words: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;
const F16_MAX: f32 = 65504.0;

@group(0) @binding(0) var<storage, read> src_f32: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst_words: array<u32>;
@group(0) @binding(2) var<storage, read> src_words: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst_f32: array<f32>;
@group(0) @binding(4) var<uniform> params: ConvertParams;

fn word_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn convert_f32_to_f16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = word_index(wid, nwg, lid);
    if w >= params.n_words {
        return;
    }
    let e = 2u * w;
    let lo = clamp(src_f32[e], -F16_MAX, F16_MAX);
    if e + 1u < params.n {
        let hi = clamp(src_f32[e + 1u], -F16_MAX, F16_MAX);
        dst_words[w] = pack2x16float(vec2<f32>(lo, hi));
    } else {
        let kept = dst_words[w] & 0xffff0000u;
        dst_words[w] = kept | (pack2x16float(vec2<f32>(lo, 0.0)) & 0xffffu);
    }
}

@compute @workgroup_size(256)
fn convert_f16_to_f32(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = word_index(wid, nwg, lid);
    if w >= params.n_words {
        return;
    }
    let e = 2u * w;
    let pair = unpack2x16float(src_words[w]);
    dst_f32[e] = pair.x;
    if e + 1u < params.n {
        dst_f32[e + 1u] = pair.y;
    }
}
