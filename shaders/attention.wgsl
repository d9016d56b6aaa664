// attention: causal grouped-query attention over a KV cache, flash-attention
// style (online softmax over key tiles; the [n_q x n_kv] scores never exist in
// device memory).
//
//   out[t, h, :] = sum_{j <= pos0 + t} softmax_j(scale * q[t, h, :] . k[j, h / G, :]) v[j, h / G, :]
//
// Layout: q and out are [n_tokens][n_head][HEAD_DIM] f32; the caches are
// [n_ctx][n_head_kv][HEAD_DIM], bound as raw u32 words: f32 bit patterns, or
// (KV_F16) f16 pairs unpacked with unpack2x16float, so no SHADER_F16 is needed.
// Token t of the step sits at absolute position pos0 + t and sees keys
// 0..=pos0+t; keys 0..pos0+n_tokens must already be in the cache. G = n_head /
// n_head_kv query heads share a KV head.
//
// Tiling. A workgroup owns one KV head and 16 "rows": consecutive (token, head
// in group) pairs of that KV head, so the G heads that read the same K/V share
// every tile load, and even a single decode token fills G rows. 16 lanes serve
// a row; lane g owns output dims g, g+16, ... (HEAD_DIM / 16 registers, hence
// HEAD_DIM a multiple of 16, at most 256). Per key tile of BC keys (BC * HEAD_DIM
// = 2048 floats, chosen by the host): load K into workgroup memory, each lane
// computes BC/16 scores of its row, load V over K, then every lane rescales its
// accumulators by the running max (online softmax) and adds p * v. Workgroup
// memory stays at 12 KiB, under the 16 KiB every WebGPU device offers.
//
// Split-K (attention_split + attention_combine) is for decode at long context,
// where 16-row tiles over a few KV heads give too few workgroups: workgroup z
// covers keys [z * kv_chunk, (z+1) * kv_chunk) and writes its unnormalized
// accumulators, running max and sum to scratch; attention_combine rescales and
// sums the splits. Masked keys get p = 0 by index, so a split with no visible
// key contributes (m = NEG, l = 0) and weight exp(NEG - M) = 0.

struct AttentionParams {
    n_tokens: u32,
    n_head: u32,
    n_head_kv: u32,
    group: u32,
    pos0: u32,
    kv_chunk: u32,
    n_splits: u32,
    scale: f32,
}

override HEAD_DIM: u32 = 64u;
override BC: u32 = 32u;
override KV_F16: bool = false;

const ROWS: u32 = 16u;
const LANES: u32 = 16u;
const WG: u32 = 256u;
const KV_TILE: u32 = 2048u;
const MAX_BC: u32 = 64u;
const MAX_DIMS_PER_LANE: u32 = 16u;
// A finite "minus infinity": exp(NEG - m) is 0 and NEG - NEG is not NaN.
const NEG: f32 = -1e30;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<u32>;
@group(0) @binding(2) var<storage, read> v_cache: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial_o: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial_ml: array<f32>;
@group(0) @binding(6) var<uniform> params: AttentionParams;

var<workgroup> kv_tile: array<f32, KV_TILE>;
var<workgroup> scores: array<f32, 1024>; // ROWS * MAX_BC

var<private> acc: array<f32, MAX_DIMS_PER_LANE>;
var<private> m_run: f32;
var<private> l_run: f32;

struct Row {
    valid: bool,
    // Index of (token, head) in out: token * n_head + head.
    index: u32,
    // The last key position this row sees.
    limit: u32,
}

fn row_of(tile: u32, kvh: u32, r: u32) -> Row {
    let rr = tile * ROWS + r;
    let t = rr / params.group;
    let head = kvh * params.group + rr % params.group;
    return Row(rr < params.n_tokens * params.group, t * params.n_head + head, params.pos0 + t);
}

// Cache elements e and e + 1 (e even) of K or V.
fn cache_pair(is_v: bool, e: u32) -> vec2<f32> {
    if KV_F16 {
        if is_v {
            return unpack2x16float(v_cache[e / 2u]);
        }
        return unpack2x16float(k_cache[e / 2u]);
    }
    if is_v {
        return vec2<f32>(bitcast<f32>(v_cache[e]), bitcast<f32>(v_cache[e + 1u]));
    }
    return vec2<f32>(bitcast<f32>(k_cache[e]), bitcast<f32>(k_cache[e + 1u]));
}

// Keys j0..j0+n_valid of KV head kvh into kv_tile; the rest of the tile is
// zeroed, since p = 0 times a stale NaN would still be NaN.
fn load_tile(is_v: bool, kvh: u32, j0: u32, n_valid: u32, lid: u32) {
    let half = HEAD_DIM / 2u;
    for (var w = lid; w < BC * half; w += WG) {
        let j = w / half;
        let d = (w % half) * 2u;
        var pair = vec2<f32>(0.0);
        if j < n_valid {
            pair = cache_pair(is_v, ((j0 + j) * params.n_head_kv + kvh) * HEAD_DIM + d);
        }
        kv_tile[j * HEAD_DIM + d] = pair.x;
        kv_tile[j * HEAD_DIM + d + 1u] = pair.y;
    }
}

// Runs the online softmax of this invocation's row over keys [begin, end),
// leaving the result in acc, m_run and l_run. Called in uniform control flow:
// the loop bounds depend only on the workgroup.
fn attend(tile: u32, kvh: u32, begin: u32, end: u32, lid: u32) -> Row {
    let r = lid / LANES;
    let g = lid % LANES;
    let row = row_of(tile, kvh, r);
    let q_base = row.index * HEAD_DIM;
    let n_rows = params.n_tokens * params.group;
    // The tile's last row sees the most keys.
    let last_token = min(tile * ROWS + ROWS - 1u, n_rows - 1u) / params.group;
    let stop = min(end, params.pos0 + last_token + 1u);

    m_run = NEG;
    l_run = 0.0;
    for (var t = 0u; t < MAX_DIMS_PER_LANE; t++) {
        acc[t] = 0.0;
    }
    for (var j0 = begin; j0 < stop; j0 += BC) {
        let n_valid = min(BC, stop - j0);
        load_tile(false, kvh, j0, n_valid, lid);
        workgroupBarrier();
        for (var j = g; j < BC; j += LANES) {
            var s = NEG;
            if row.valid && j < n_valid && j0 + j <= row.limit {
                var dot = 0.0;
                for (var d = 0u; d < HEAD_DIM; d++) {
                    dot += q[q_base + d] * kv_tile[j * HEAD_DIM + d];
                }
                s = dot * params.scale;
            }
            scores[r * MAX_BC + j] = s;
        }
        workgroupBarrier();
        load_tile(true, kvh, j0, n_valid, lid);
        workgroupBarrier();
        var m_new = m_run;
        for (var j = 0u; j < n_valid; j++) {
            m_new = max(m_new, scores[r * MAX_BC + j]);
        }
        let alpha = exp(m_run - m_new);
        l_run *= alpha;
        for (var t = 0u; t < HEAD_DIM / LANES; t++) {
            acc[t] *= alpha;
        }
        for (var j = 0u; j < n_valid; j++) {
            let p = select(0.0, exp(scores[r * MAX_BC + j] - m_new), j0 + j <= row.limit);
            l_run += p;
            for (var t = 0u; t < HEAD_DIM / LANES; t++) {
                acc[t] += p * kv_tile[j * HEAD_DIM + g + LANES * t];
            }
        }
        m_run = m_new;
        // The next tile overwrites kv_tile and scores.
        workgroupBarrier();
    }
    return row;
}

// One pass over every visible key: out = acc / l.
@compute @workgroup_size(256)
fn attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = attend(wid.x, wid.y, 0u, params.pos0 + params.n_tokens, lid);
    if row.valid {
        let inv = 1.0 / l_run;
        let base = row.index * HEAD_DIM + lid % LANES;
        for (var t = 0u; t < HEAD_DIM / LANES; t++) {
            out[base + LANES * t] = acc[t] * inv;
        }
    }
}

// Split z of the keys: unnormalized acc to partial_o[z][row][:], (m, l) to
// partial_ml[z][row][0..2].
@compute @workgroup_size(256)
fn attention_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let begin = wid.z * params.kv_chunk;
    let end = min(begin + params.kv_chunk, params.pos0 + params.n_tokens);
    let row = attend(wid.x, wid.y, begin, end, lid);
    if row.valid {
        let slot = wid.z * params.n_tokens * params.n_head + row.index;
        let g = lid % LANES;
        let base = slot * HEAD_DIM + g;
        for (var t = 0u; t < HEAD_DIM / LANES; t++) {
            partial_o[base + LANES * t] = acc[t];
        }
        if g == 0u {
            partial_ml[2u * slot] = m_run;
            partial_ml[2u * slot + 1u] = l_run;
        }
    }
}

// One workgroup per output row (token, head), folded to 2-D: merges the splits.
@compute @workgroup_size(256)
fn attention_combine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let index = wid.x + wid.y * nwg.x;
    let n_rows = params.n_tokens * params.n_head;
    if index >= n_rows {
        return;
    }
    var m = NEG;
    for (var s = 0u; s < params.n_splits; s++) {
        m = max(m, partial_ml[2u * (s * n_rows + index)]);
    }
    var l = 0.0;
    for (var s = 0u; s < params.n_splits; s++) {
        let slot = s * n_rows + index;
        l += exp(partial_ml[2u * slot] - m) * partial_ml[2u * slot + 1u];
    }
    let inv = 1.0 / l;
    for (var d = lid; d < HEAD_DIM; d += WG) {
        var o = 0.0;
        for (var s = 0u; s < params.n_splits; s++) {
            let slot = s * n_rows + index;
            o += exp(partial_ml[2u * slot] - m) * partial_o[slot * HEAD_DIM + d];
        }
        out[index * HEAD_DIM + d] = o * inv;
    }
}
