// rope: rotary position embedding, ggml's ROPE with ext_factor = 0.
//
// x is [n_tokens][n_head][head_dim] f32; token t has position pos[t] (i32).
// The first n_dims elements of each head are rotated in pairs, the rest copied:
//   mode 0 (normal): pair i = (2i, 2i+1);   mode 2 (NeoX): pair i = (i, i + n_dims/2)
//   theta_i = freq_scale * (pos * theta_scale^i) / freq_factor[i]
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos), cos/sin scaled by attn_factor,
//   sin negated (sin_sign = -1) for the backward pass (the transposed rotation).
//
// theta is built exactly as ggml's rope cache builds it: start from pos and
// multiply by theta_scale (= freq_base^(-2/n_dims), computed on the host with
// the same powf) once per pair index, in f32. Each multiply is correctly
// rounded, so the angle is bit-identical to the CPU's. Before cos/sin the angle
// is reduced to [-pi, pi] with a three-part 2*pi (Cody-Waite): GPU cos/sin are
// only specified to 2^-11 absolute error inside [-pi, pi], and the angle of the
// first pairs grows with the position (thousands of radians at long context).
//
// One workgroup per token (folded to 2-D past 65535 tokens): the cos/sin table
// of the token's n_dims/2 angles is computed once into workgroup memory, then
// the invocations stride over every (head, pair) of the token. rope_in_place
// rotates dst in place (q and k after their projections); rope reads src.

struct RopeParams {
    n_tokens: u32,
    n_head: u32,
    head_dim: u32,
    n_dims: u32,
    mode: u32,
    has_freq_factors: u32,
    theta_scale: f32,
    freq_scale: f32,
    attn_factor: f32,
    sin_sign: f32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 128u;
const MAX_PAIRS: u32 = 256u;
const MODE_NEOX: u32 = 2u;

// 2*pi = C1 + C2 + C3: C1 has 8 significant bits, so k * C1 is exact for
// k < 2^16 (angles up to ~4e5 rad) and theta - k * C1 loses nothing.
const TWO_PI_C1: f32 = 6.28125;
const TWO_PI_C2: f32 = 0.0019353071693331003;
const TWO_PI_C3: f32 = 1.0253376273028358e-11;
const INV_TWO_PI: f32 = 0.15915493667125702;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> freq_factors: array<f32>;
@group(0) @binding(4) var<uniform> params: RopeParams;

var<workgroup> cos_table: array<f32, MAX_PAIRS>;
var<workgroup> sin_table: array<f32, MAX_PAIRS>;

fn reduce_angle(theta: f32) -> f32 {
    let k = round(theta * INV_TWO_PI);
    return ((theta - k * TWO_PI_C1) - k * TWO_PI_C2) - k * TWO_PI_C3;
}

fn fill_table(token: u32, lid: u32) {
    let p = f32(positions[token]);
    let pairs = params.n_dims / 2u;
    for (var i = lid; i < pairs; i += WG) {
        var theta = p;
        for (var k = 0u; k < i; k++) {
            theta *= params.theta_scale;
        }
        var ff = 1.0;
        if params.has_freq_factors != 0u {
            ff = freq_factors[i];
        }
        let r = reduce_angle(params.freq_scale * (theta / ff));
        cos_table[i] = cos(r) * params.attn_factor;
        sin_table[i] = sin(r) * params.attn_factor * params.sin_sign;
    }
}

// Element indices of pair `idx` (over all heads) of `token`: (x0, x1, table index).
fn pair_at(token: u32, idx: u32) -> vec3<u32> {
    let pairs = params.n_dims / 2u;
    let h = idx / pairs;
    let i = idx % pairs;
    let base = (token * params.n_head + h) * params.head_dim;
    if params.mode == MODE_NEOX {
        return vec3<u32>(base + i, base + i + pairs, i);
    }
    return vec3<u32>(base + 2u * i, base + 2u * i + 1u, i);
}

fn rotate(x0: f32, x1: f32, i: u32) -> vec2<f32> {
    let c = cos_table[i];
    let s = sin_table[i];
    return vec2<f32>(x0 * c - x1 * s, x0 * s + x1 * c);
}

@compute @workgroup_size(128)
fn rope(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let token = wid.x + wid.y * nwg.x;
    if token >= params.n_tokens {
        return;
    }
    fill_table(token, lid);
    workgroupBarrier();
    let n_pairs = params.n_head * (params.n_dims / 2u);
    for (var idx = lid; idx < n_pairs; idx += WG) {
        let at = pair_at(token, idx);
        let y = rotate(src[at.x], src[at.y], at.z);
        dst[at.x] = y.x;
        dst[at.y] = y.y;
    }
    // Elements past n_dims are copied unchanged.
    let rest = params.head_dim - params.n_dims;
    for (var idx = lid; idx < params.n_head * rest; idx += WG) {
        let e = (token * params.n_head + idx / rest) * params.head_dim + params.n_dims + idx % rest;
        dst[e] = src[e];
    }
}

@compute @workgroup_size(128)
fn rope_in_place(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let token = wid.x + wid.y * nwg.x;
    if token >= params.n_tokens {
        return;
    }
    fill_table(token, lid);
    workgroupBarrier();
    let n_pairs = params.n_head * (params.n_dims / 2u);
    for (var idx = lid; idx < n_pairs; idx += WG) {
        let at = pair_at(token, idx);
        let y = rotate(dst[at.x], dst[at.y], at.z);
        dst[at.x] = y.x;
        dst[at.y] = y.y;
    }
}
