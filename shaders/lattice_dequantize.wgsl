// Codes → f32 values in the rotated domain: the GPU twin of decodeRotated (src/product/decodeRotated.ts)
// for lattice schemes. Compiled as shaders/lattice_decode.wgsl, the DequantizeParams struct, then this
// file (src/gpu/kernels/latticeDequantize.ts).
//
// Layout: one invocation per (column, code word): it decodes the word's `per_word` blocks and writes
// their `dim` coordinates to out[out_first + column·length + block·dim + i], for coordinates below
// `length`; coordinates at or past `kept` are written as zero. Coordinates past blocks·dim (only with
// time-sharing) are not written: the host clears the output first.
//
// Value: (ν_j · γ_j) · column_unit · k · P_i with column_unit = unit / (pointScale · √N) from the host,
// all in f32 (the CPU computes the same product in float64). With `normalize` set (products), ν_j·γ_j
// is replaced by its mantissa in [0.5, 1) and its binary exponent written to
// exponents[exponent_first + column] (see shaders/universal_dequantize.wgsl).

const THREADS: u32 = 256u;

// struct DequantizeParams is declared once, in src/gpu/kernels/latticeDequantize.ts (a UniformLayout),
// which generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: DequantizeParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> side: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> exponents: array<i32>;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let invocation = (group.y * groups.x + group.x) * THREADS + thread;
  if (invocation >= params.cols * params.code_words) {
    return;
  }
  let column = invocation / params.code_words;
  let w = invocation % params.code_words;
  let per_word = 32u / params.code_bits;
  let index_per_word = 32u / params.index_bits;
  var scale = side[column];
  if (params.has_gains != 0u) {
    scale = scale * side[params.cols + column];
  }
  if (params.normalize != 0u) {
    let split = frexp(scale);
    scale = split.fract;
    if (w == 0u) {
      exponents[params.exponent_first + column] = split.exp;
    }
  }
  scale = scale * params.column_unit;
  let word = codes[params.code_first + column * params.code_words + w];
  for (var slot = 0u; slot < per_word; slot = slot + 1u) {
    let block = w * per_word + slot;
    if (block >= params.blocks) {
      break;
    }
    let code = extractBits(word, slot * params.code_bits, params.code_bits);
    let index_word = indices[params.index_first + column * params.index_words + block / index_per_word];
    let index = min(extractBits(index_word, (block % index_per_word) * params.index_bits, params.index_bits), 15u);
    let step = scale * f32(params.multiples[index >> 2u][index & 3u]);
    let leader = decode_leader(params.lattice, code, params.q);
    for (var i = 0u; i < params.dim; i = i + 1u) {
      let k = block * params.dim + i;
      if (k < params.length) {
        out[params.out_first + column * params.length + k] = select(0.0, step * f32(leader[i]), k < params.kept);
      }
    }
  }
}
