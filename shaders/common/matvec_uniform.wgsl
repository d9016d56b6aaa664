// matvec_uniform: the decode entry point of shaders/common/matmul_generic.wgsl
// with the activations read from a uniform buffer. The registry appends it
// after matmul_generic.wgsl to make the `matmul_<group>_uniform` shaders; the
// host picks them when x fits one 64 KiB uniform binding (n_cols * n_in <=
// 16384) and its buffer allows UNIFORM, else matvec or matvec_subgroups.
//
// Every invocation reads the same activations at the same time. From a
// uniform buffer at an index that is the same for every invocation, that is
// one scalar load broadcast to all lanes on llvmpipe (a storage load is a loop
// over the lanes) and a constant-cache broadcast on a GPU; on lavapipe the
// activation loads were over half of decode time.

// 64 KiB: WebGPU's default maxUniformBufferBindingSize (the host checks the
// device's limit and binds the first 64 KiB of x).
const XU_VEC4: u32 = 4096u;
@group(0) @binding(6) var<uniform> xu: array<vec4<f32>, XU_VEC4>;

// Activations 32c..32c+31 of column `col`, a whole chunk.
fn x32(col: u32, c: u32) -> W32 {
    var v: W32;
    if !MV_PARTIAL {
        // n_in is a multiple of 32, so the chunk starts at a whole vec4.
        let base = (col * params.n_in + c * 32u) / 4u;
        for (var i = 0u; i < 8u; i++) {
            v[i] = xu[base + i];
        }
    } else {
        // A float row's columns start at any element: scalar uniform loads.
        let base = col * params.n_in + c * 32u;
        for (var i = 0u; i < 32u; i++) {
            let k = base + i;
            v[i / 4u][i % 4u] = xu[k / 4u][k % 4u];
        }
    }
    return v;
}

// The partial chunk that ends a float row, zero past n_in.
fn x32_tail(col: u32, c: u32) -> W32 {
    let base = col * params.n_in + c * 32u;
    var v: W32;
    for (var i = 0u; i < 32u; i++) {
        if c * 32u + i < params.n_in {
            let k = base + i;
            v[i / 4u][i % 4u] = xu[k / 4u][k % 4u];
        }
    }
    return v;
}

@compute @workgroup_size(64)
fn matvec_uniform(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    matvec_rows(wid, nwg, lid);
}
