// kv_write: cache[pos0 + t][e] = src[src_offset + t * src_stride + e]
//           for t < n_tokens, e < row_len (row_len = n_head_kv * head_dim)
//
// Writes the K (or V) rows of a step's new tokens into one layer's cache at
// absolute positions pos0.., converting to the cache's element type. The cache
// is [n_ctx][n_head_kv][head_dim], bound as raw u32 words so one binding serves
// both element types: an f32 element is one word (bit-copied, exact); f16
// elements are packed two per word, low half first, rounded by pack2x16float,
// which needs no SHADER_F16. The host guarantees row_len is even, so a word
// never straddles two tokens and each invocation owns whole words: no races.
//
// The source may be a view into a wider tensor (src_stride > row_len), e.g. the
// K part of a fused QKV projection. One word per invocation, 256 per
// workgroup, folded to 2-D past 65535 workgroups like the elementwise kernels.

struct KvWriteParams {
    n_tokens: u32,
    row_len: u32,
    pos0: u32,
    src_stride: u32,
    src_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> cache: array<u32>;
@group(0) @binding(2) var<uniform> params: KvWriteParams;

fn word_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn src_index(t: u32, e: u32) -> u32 {
    return params.src_offset + t * params.src_stride + e;
}

// One f32 element per invocation.
@compute @workgroup_size(256)
fn kv_write_f32(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = word_index(wid, nwg, lid);
    if i >= params.n_tokens * params.row_len {
        return;
    }
    let t = i / params.row_len;
    let e = i % params.row_len;
    cache[(params.pos0 + t) * params.row_len + e] = bitcast<u32>(src[src_index(t, e)]);
}

// Two f16 elements (one word) per invocation.
@compute @workgroup_size(256)
fn kv_write_f16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = word_index(wid, nwg, lid);
    let words_per_row = params.row_len / 2u;
    if i >= params.n_tokens * words_per_row {
        return;
    }
    let t = i / words_per_row;
    let e = (i % words_per_row) * 2u;
    let s = src_index(t, e);
    let pair = vec2<f32>(src[s], src[s + 1u]);
    cache[(params.pos0 + t) * words_per_row + e / 2u] = pack2x16float(pair);
}
