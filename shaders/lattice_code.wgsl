// Nearest lattice points, Voronoi codes and the block encoder in i32/u32 arithmetic: the WGSL twins of
// src/lattices/rationalRounding.ts, zLattice.ts, d3.ts, e8.ts (nearestScaled), voronoiCode.ts
// (encode, decode) and src/quantize/latticeEncoder.ts (encodeBlock), step for step, so that every
// tie on a Voronoi boundary is broken as on the CPU.
//
// Library file (no bindings, no entry points). The including shader
//   - sets the override constants below (src/gpu/kernels/latticeEncode.ts: latticeConstants), and
//   - declares `var<uniform> lattice: LatticeTable` at a binding of its choice, filled by
//     latticeTableBytes (the generator and its exact inverse come from the CPU Lattice object).
//
// Every `var` here has an explicit initializer: Dawn on lavapipe (Mesa 25) does not re-zero a `var`
// declared without one when its scope is re-entered in a loop, contrary to WGSL, and these functions
// are inlined into loops.
//
// Integer ranges (checked on the host): fixed-point inputs |X| ≤ 2^24, denominators den = k·2^F
// < 2^29 (< 2^24 for E8), points |P| < 2^16. Squared distances can exceed 32 bits (E8 compares 4·Σe² with e up to
// 2·den), so they are summed as 64-bit (low, high) u32 pairs.

// d: coordinates per block (≤ 8).
override LATTICE_DIMENSION: u32;
// Points are held as P = POINT_SCALE · λ (2 for E8, whose points are half-integers; else 1).
override POINT_SCALE: i32;
// The nearest-point rule: 0 = Z^d (round each coordinate), 1 = D_d (Conway–Sloane), 2 = E8.
override NEAREST_RULE: u32;

const NEAREST_Z: u32 = 0u;
const NEAREST_D: u32 = 1u;
const NEAREST_E8: u32 = 2u;

alias LatticePoint = array<i32, 8>;

// Everything about the code and its scale grid, as uniform data (arrays of vec4 for the 16-byte
// stride of the uniform address space; element k of a d×d matrix is row k / d, column k % d).
struct LatticeTable {
  q: i32,                          // nesting ratio
  determinant: i32,                // the inverse is inverse / determinant
  scale_count: u32,                // scales in the grid (1..16)
  least_error: u32,                // 1: betaSet (least error among fits); 0: ladder (first fit)
  clip_steps: i32,                 // CLIP_STEPS of latticeEncoder.ts
  fit_steps: u32,                 // 2 (see lattice_fit)
  padding1: u32,
  padding2: u32,
  basis: array<vec4<i32>, 16>,     // generator, row-major d×d, basis vectors in the columns
  inverse: array<vec4<i32>, 16>,   // numerators of its inverse, row-major d×d
  den: array<vec4<i32>, 4>,        // den_j = k_j · 2^FRACTION_BITS
  multiple: array<vec4<i32>, 4>,   // k_j
}

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

// ---- 64-bit unsigned arithmetic on vec2<u32>(low, high) ----

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

fn wide_times_four(a: vec2<u32>) -> vec2<u32> {
  return vec2<u32>(a.x << 2u, (a.y << 2u) | (a.x >> 30u));
}

fn wide_less(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn wide_less_equal(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.y < b.y || (a.y == b.y && a.x <= b.x);
}

// ---- rationalRounding.ts ----

// floor(a / b) for b > 0 (WGSL's i32 `/` truncates toward zero).
fn floor_div(a: i32, b: i32) -> i32 {
  let quotient = a / b;
  return select(quotient, quotient - 1, a - quotient * b < 0);
}

// roundRational: nearest integer to p / den, ties upward.
fn round_rational(p: i32, den: i32) -> i32 {
  return floor_div(2 * p + den, 2 * den);
}

// nearestDnRational: round every coordinate; on an odd sum re-round the coordinate with the largest
// error (first index on ties) the other way (upward when its error is 0).
fn nearest_dn(p: ptr<function, LatticePoint>, den: i32, out: ptr<function, LatticePoint>) {
  var parity = 0;
  var worst = 0u;
  var worst_abs = -1;
  var worst_error = 0;
  for (var i = 0u; i < LATTICE_DIMENSION; i = i + 1u) {
    let pi = (*p)[i];
    let f = round_rational(pi, den);
    (*out)[i] = f;
    parity = parity + f;
    let e = pi - den * f;
    let magnitude = abs(e);
    if (magnitude > worst_abs) {
      worst_abs = magnitude;
      worst = i;
      worst_error = e;
    }
  }
  if ((parity & 1) != 0) {
    (*out)[worst] = (*out)[worst] + select(1, -1, worst_error < 0);
  }
}

// E8.nearestScaled: the closer of Q_D8(p/den) (doubled) and Q_D8((2p − den)/(2den)) doubled + 1,
// distances compared in units of 1/(2den); the D8 candidate wins a tie.
fn nearest_e8(p: ptr<function, LatticePoint>, den: i32, out: ptr<function, LatticePoint>) {
  var even = LatticePoint();
  nearest_dn(p, den, &even);
  var shifted = LatticePoint();
  for (var i = 0u; i < 8u; i = i + 1u) {
    shifted[i] = 2 * (*p)[i] - den;
  }
  var odd = LatticePoint();
  nearest_dn(&shifted, 2 * den, &odd);
  var d1 = vec2<u32>(0u, 0u);
  var d2 = vec2<u32>(0u, 0u);
  for (var i = 0u; i < 8u; i = i + 1u) {
    d1 = wide_add(d1, wide_square((*p)[i] - den * even[i]));
    d2 = wide_add(d2, wide_square(2 * (*p)[i] - den * (2 * odd[i] + 1)));
  }
  let use_even = wide_less_equal(wide_times_four(d1), d2);
  for (var i = 0u; i < 8u; i = i + 1u) {
    (*out)[i] = select(2 * odd[i] + 1, 2 * even[i], use_even);
  }
}

// Lattice.nearestScaled: the nearest point to p / den (λ units), in point coordinates.
fn nearest_point(p: ptr<function, LatticePoint>, den: i32, out: ptr<function, LatticePoint>) {
  if (NEAREST_RULE == NEAREST_E8) {
    nearest_e8(p, den, out);
  } else if (NEAREST_RULE == NEAREST_D) {
    nearest_dn(p, den, out);
  } else {
    for (var i = 0u; i < LATTICE_DIMENSION; i = i + 1u) {
      (*out)[i] = round_rational((*p)[i], den);
    }
  }
}

// ---- voronoiCode.ts ----

// VoronoiCode.encode: Σ_i (u_i mod q)·q^i with u = basis⁻¹ · P (exact: P is a lattice point).
fn voronoi_encode(point: ptr<function, LatticePoint>) -> u32 {
  let d = LATTICE_DIMENSION;
  let q = lattice.q;
  var index = 0u;
  var weight = 1u;
  for (var i = 0u; i < d; i = i + 1u) {
    var sum = 0;
    for (var j = 0u; j < d; j = j + 1u) {
      sum = sum + lattice_inverse(i * d + j) * (*point)[j];
    }
    let u = sum / lattice.determinant;
    index = index + u32(u - q * floor_div(u, q)) * weight; // u mod q in [0, q)
    weight = weight * u32(q);
  }
  return index;
}

// λ' = basis · (the base-q digits of `index`): the lattice point whose coset code `index` is.
fn voronoi_lift(index: u32, lifted: ptr<function, LatticePoint>) {
  let d = LATTICE_DIMENSION;
  let q = u32(lattice.q);
  var digits = LatticePoint();
  var rest = index;
  for (var i = 0u; i < d; i = i + 1u) {
    let next = rest / q;
    digits[i] = i32(rest - next * q);
    rest = next;
  }
  for (var i = 0u; i < d; i = i + 1u) {
    var sum = 0;
    for (var j = 0u; j < d; j = j + 1u) {
      sum = sum + lattice_basis(i * d + j) * digits[j];
    }
    (*lifted)[i] = sum;
  }
}

// VoronoiCode.decode: the coset leader λ' − q·Q_Λ(λ'/q) of code `index`.
fn voronoi_decode(index: u32, leader: ptr<function, LatticePoint>) {
  let q = lattice.q;
  var lifted = LatticePoint();
  voronoi_lift(index, &lifted);
  var nearest = LatticePoint();
  nearest_point(&lifted, POINT_SCALE * q, &nearest);
  for (var i = 0u; i < LATTICE_DIMENSION; i = i + 1u) {
    (*leader)[i] = lifted[i] - q * nearest[i];
  }
}

// ---- latticeEncoder.ts ----

struct LatticeFit {
  fits: bool,
  code: u32,
}

// LatticeBlockEncoder.fits: the nearest point of x/den into `point`; it fits when it is its own
// coset leader (decode-and-compare, as voronoi_decode). Step 0 finds the point and its code, step 1
// decodes the code and compares: the two nearest-point searches share one call site, which halves
// the compiled size of the encoder. The step count comes from the uniform table (always 2) so that
// the loop is not unrolled back into two copies.
fn lattice_fit(x: ptr<function, LatticePoint>, den: i32, point: ptr<function, LatticePoint>) -> LatticeFit {
  let q = lattice.q;
  var search = *x;
  var search_den = den;
  var code = 0u;
  var lifted = LatticePoint();
  var fits = true;
  for (var step = 0u; step < lattice.fit_steps; step = step + 1u) {
    var nearest = LatticePoint();
    nearest_point(&search, search_den, &nearest);
    if (step == 0u) {
      *point = nearest;
      code = voronoi_encode(&nearest);
      voronoi_lift(code, &lifted);
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
    let fit = lattice_fit(&candidate, den, &point);
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
