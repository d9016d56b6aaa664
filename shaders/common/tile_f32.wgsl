// tile_f32: the element type of the tiled matmul's workgroup tiles
// (common/matmul_tiled.wgsl) in the portable `matmul_<group>` shaders.
alias TS = f32;
