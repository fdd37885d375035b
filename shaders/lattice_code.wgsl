// The block encoder in i32/u32 arithmetic: the WGSL twins of voronoiCode.ts (encode) and
// src/quantize/latticeEncoder.ts (fits: decode-and-compare; encodeBlock: ladder, betaSet, clipping),
// step for step, so that every block gets the CPU's code and scale.
//
// Library file (no bindings, no entry points), compiled after shaders/lattice_decode.wgsl, whose
// integer rules it uses (floor_div, nearest_point, code_digits, LatticePoint), and the LatticeTable
// struct (latticeCodeWgsl() in src/gpu/kernels/latticeEncode.ts writes all three). The including
// shader
//   - sets the override constants below (src/gpu/kernels/latticeEncode.ts: latticeConstants), and
//   - declares `var<uniform> lattice: LatticeTable` at a binding of its choice, filled by
//     latticeTableBytes (the generator and its exact inverse come from the CPU Lattice object).
//
// Every `var` here has an explicit initializer: Dawn on lavapipe (Mesa 25) does not re-zero a `var`
// declared without one when its scope is re-entered in a loop, contrary to WGSL, and these functions
// are inlined into loops.
//
// Integer ranges (checked on the host): fixed-point inputs |X| ≤ 2^24, denominators den = k·2^F
// < 2^29 (< 2^24 for E8), points |P| < 2^16. The errors compared across scales (Σ (s·X − den·P)²)
// can exceed 32 bits, so they are summed as 64-bit (low, high) u32 pairs.

// d: coordinates per block (≤ 8).
override LATTICE_DIMENSION: u32;
// Points are held as P = POINT_SCALE · λ (2 for E8, whose points are half-integers; else 1).
override POINT_SCALE: i32;
// The nearest-point rule of lattice_decode.wgsl: NEAREST_Z (0), NEAREST_D (1) or NEAREST_E8 (2).
override NEAREST_RULE: u32;

// struct LatticeTable (everything about the code and its scale grid: q, the determinant, the grid,
// CLIP_STEPS, the generator and its inverse numerators, denominators and multiples as arrays of vec4)
// is declared once, in src/gpu/kernels/latticeEncode.ts (a UniformLayout), which generates its WGSL in
// front of this file. Element k of a d×d matrix is row k / d, column k % d.

fn lattice_basis(k: u32) -> i32 {
  return lattice.basis[k / 4u][k % 4u];
}

fn lattice_inverse(k: u32) -> i32 {
  return lattice.inverse[k / 4u][k % 4u];
}

fn lattice_den(j: u32) -> i32 {
  return lattice.den[j / 4u][j % 4u];
}

fn lattice_multiple(j: u32) -> i32 {
  return lattice.multiple[j / 4u][j % 4u];
}

// ---- 64-bit unsigned arithmetic on vec2<u32>(low, high), for the least-error comparison ----

// v² for |v| < 2^31.
fn wide_square(v: i32) -> vec2<u32> {
  let a = u32(abs(v));
  let lo = a & 0xffffu;
  let hi = a >> 16u;
  let cross = hi * lo; // < 2^31; a² = hi²·2^32 + cross·2^17 + lo²
  let low_square = lo * lo;
  let low = low_square + (cross << 17u);
  let carry = select(0u, 1u, low < low_square);
  return vec2<u32>(low, hi * hi + (cross >> 15u) + carry);
}

fn wide_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let low = a.x + b.x;
  return vec2<u32>(low, a.y + b.y + select(0u, 1u, low < a.x));
}

fn wide_less(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.y < b.y || (a.y == b.y && a.x < b.x);
}

// ---- voronoiCode.ts: encode and lift (the generator and its inverse come from the table) ----

// VoronoiCode.encode: Σ_i (u_i mod q)·q^i with u = basis⁻¹ · P (exact: P is a lattice point).
fn voronoi_encode(point: LatticePoint) -> u32 {
  let d = LATTICE_DIMENSION;
  let q = lattice.q;
  var index = 0u;
  var weight = 1u;
  for (var i = 0u; i < d; i = i + 1u) {
    var sum = 0;
    for (var j = 0u; j < d; j = j + 1u) {
      sum = sum + lattice_inverse(i * d + j) * point[j];
    }
    let u = sum / lattice.determinant;
    index = index + u32(u - q * floor_div(u, q)) * weight; // u mod q in [0, q)
    weight = weight * u32(q);
  }
  return index;
}

// λ' = basis · (the base-q digits of `index`): the lattice point whose coset code `index` is.
fn voronoi_lift(index: u32) -> LatticePoint {
  let d = LATTICE_DIMENSION;
  let digits = code_digits(index, u32(lattice.q), d);
  var lifted = LatticePoint();
  for (var i = 0u; i < d; i = i + 1u) {
    var sum = 0;
    for (var j = 0u; j < d; j = j + 1u) {
      sum = sum + lattice_basis(i * d + j) * digits[j];
    }
    lifted[i] = sum;
  }
  return lifted;
}

// ---- latticeEncoder.ts ----

struct LatticeFit {
  fits: bool,
  code: u32,
}

// LatticeBlockEncoder.fits: the nearest point of x/den into `point`; it fits when it is its own
// coset leader λ' − q·Q(λ'/(s·q)) (decode-and-compare, coset_leader of lattice_decode.wgsl written
// out). Step 0 finds the point and its code, step 1 decodes the code and compares: the two
// nearest-point searches share one call site, which halves the compiled size of the encoder. The step
// count comes from the uniform table (always 2) so that the loop is not unrolled back into two copies.
fn lattice_fit(x: LatticePoint, den: i32, point: ptr<function, LatticePoint>) -> LatticeFit {
  let q = lattice.q;
  var search = x;
  var search_den = den;
  var code = 0u;
  var lifted = LatticePoint();
  var fits = true;
  for (var step = 0u; step < lattice.fit_steps; step = step + 1u) {
    let nearest = nearest_point(NEAREST_RULE, search, search_den, LATTICE_DIMENSION);
    if (step == 0u) {
      *point = nearest;
      code = voronoi_encode(nearest);
      lifted = voronoi_lift(code);
      search = lifted;
      search_den = POINT_SCALE * q;
    } else {
      for (var i = 0u; i < LATTICE_DIMENSION; i = i + 1u) {
        fits = fits && lifted[i] - q * nearest[i] == (*point)[i];
      }
    }
  }
  return LatticeFit(fits, code);
}

struct BlockCode {
  code: u32,
  scale_index: u32,
  clipped: bool,
  // The chosen lattice point (point coordinates) at scale scale_index.
  point: LatticePoint,
}

// LatticeBlockEncoder.encodeBlock on the fixed-point block x. The scales j = 0 … count − 1 and then
// the clipping fallback run as one sequence of attempts, so the shader has a single copy of the
// (large) fit test: attempt t < count tries x at scale t; attempt count + c, c = 0 … CLIP_STEPS − 1,
// tries x·(CLIP_STEPS − 1 − c)/CLIP_STEPS (truncated) at the largest scale, which only happens when
// no scale fitted. The last clipping step is the origin, which always fits.
fn encode_block(x: ptr<function, LatticePoint>) -> BlockCode {
  let d = LATTICE_DIMENSION;
  let count = lattice.scale_count;
  let attempts = count + u32(lattice.clip_steps);
  var best_index = -1;
  var best_error = vec2<u32>(0xffffffffu, 0xffffffffu);
  var best_code = 0u;
  var best = LatticePoint();
  var point = LatticePoint();
  var candidate = LatticePoint();
  var clipped = false;
  for (var t = 0u; t < attempts; t = t + 1u) {
    let scale = min(t, count - 1u);
    let den = lattice_den(scale);
    if (t < count) {
      candidate = *x;
    } else {
      if (best_index >= 0) {
        break; // a scale fitted: no clipping
      }
      // Every scale overloads: shrink toward the origin at the largest scale.
      clipped = true;
      let j = lattice.clip_steps - 1 - i32(t - count);
      for (var i = 0u; i < d; i = i + 1u) {
        candidate[i] = ((*x)[i] * j) / lattice.clip_steps;
      }
    }
    let fit = lattice_fit(candidate, den, &point);
    if (!fit.fits) {
      continue;
    }
    if (clipped || lattice.least_error == 0u) {
      // Ladder: the first scale that fits; clipping: the first shrink that fits.
      best_index = i32(scale);
      best_code = fit.code;
      best = point;
      break;
    }
    // Error in units of 1/(s·2^F·unit): s·X − den·P, comparable across scales.
    var error = vec2<u32>(0u, 0u);
    for (var i = 0u; i < d; i = i + 1u) {
      error = wide_add(error, wide_square(POINT_SCALE * (*x)[i] - den * point[i]));
    }
    if (wide_less(error, best_error)) {
      best_error = error;
      best_index = i32(scale);
      best_code = fit.code;
      best = point;
    }
  }
  return BlockCode(best_code, u32(best_index), clipped, best);
}
