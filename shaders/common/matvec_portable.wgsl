// matvec_portable: the decode entry point of shaders/common/matmul_generic.wgsl
// for any device, and its activation loads. The registry appends it after
// matmul_generic.wgsl to make the `matmul_<group>` shaders;
// matvec_subgroups.wgsl is the variant for devices with subgroups.
//
// Every invocation loads the same 32 activations per chunk. On a GPU that is
// one broadcast from L1; on llvmpipe a load inside a loop is a per-lane
// gather even at a uniform address, which is what the subgroup variant avoids.

// Activations 32c..32c+31 of column `col`, a whole chunk: vec4 loads where
// n_in is a multiple of 32 (block types), else element by element (a float
// row's columns may start at any element).
fn x32(col: u32, c: u32) -> W32 {
    let base = col * params.n_in + c * 32u;
    var v: W32;
    if !MV_PARTIAL {
        for (var i = 0u; i < 8u; i++) {
            v[i] = x4[base / 4u + i];
        }
    } else {
        for (var i = 0u; i < 8u; i++) {
            let k = base + 4u * i;
            v[i] = vec4<f32>(x[k], x[k + 1u], x[k + 2u], x[k + 3u]);
        }
    }
    return v;
}

// The partial chunk that ends a float row, zero past n_in (once per row).
fn x32_tail(col: u32, c: u32) -> W32 {
    return x32_masked(col, c);
}

@compute @workgroup_size(64)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    matvec_rows(wid, nwg, lid);
}
