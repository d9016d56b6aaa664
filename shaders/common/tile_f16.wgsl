// tile_f16: the element type of the tiled matmul's workgroup tiles
// (common/matmul_tiled.wgsl) in the `matmul_<group>_f16` shaders, for
// devices with SHADER_F16 (the registry puts `enable f16;` first). Weights and
// activations are rounded to f16 on their way into the tiles, as llama.cpp's
// Vulkan backend does; overflow past 65504 becomes infinity there too.
alias TS = f16;
