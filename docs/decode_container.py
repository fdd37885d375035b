#!/usr/bin/env python3
"""Reference decoder of the lattice-matmul quantized container, versions 1 to 3.

Follows docs/FORMAT.md step by step (the section of each step is named in its comment), in plain
Python 3 with the standard library only, so that the specification can be checked without the
library. It decodes every kind of matrix to the values the library's `dequantize()` and
`WeightOnlyQuantized.decode()` return, bit for bit (§11), and prints or writes them.

    python3 docs/decode_container.py model.lmq.safetensors            # list the matrices
    python3 docs/decode_container.py model.lmq.safetensors --out DIR  # write DIR/manifest.json and
                                                                      # DIR/<k>.f32 per matrix

Each DIR/<k>.f32 holds matrix k (in the order of `matrices`) as little-endian f32 in the library's
layout: `rows` entries of column 0, then column 1, … (§11.9: rows are input features, so this is
the row-major bytes of a PyTorch (out, in) weight). manifest.json lists
{"name", "kind", "rows", "cols", "file"} per matrix.

This is a decoder, not a validator: it checks the checksums (§3) and the structure it relies on
(strict JSON: no duplicate key, no NaN; each tensor's bytes against its dtype and shape, the tensors
tiling the data; each matrix named once; the tensors of §6, codes below q^d, escape counts), not
every rule of §7. It reads regular files only. Being pure Python it is
slow on large models: it is meant for checking the specification, small files and other decoders.
Dense "haar" weight-only bases cost O(n³) to build (about 15 s at n = 512, two minutes at 1024);
§11.8 says why their values may differ from the library's in the last bits on some platforms.
"""

import json
import math
import struct
import sys
import zlib

# ─── f32 helpers ────────────────────────────────────────────────────────────────────────────────
# Python floats are IEEE binary64; fround(x) rounds one to the nearest binary32 (ties to even), as
# ECMAScript Math.fround and a Float32Array store do. For +, −, ×, ÷ of two f32 values, computing
# in binary64 and rounding once to binary32 gives the correctly rounded f32 result (53 ≥ 2·24 + 2).

_F32 = struct.Struct("<f")


def fround(x):
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:  # beyond the largest f32 after rounding: ±Infinity, as Math.fround
        return math.copysign(math.inf, x)


def u32s(raw):
    return list(struct.unpack("<%dI" % (len(raw) // 4), raw))


def i32s(raw):
    return list(struct.unpack("<%di" % (len(raw) // 4), raw))


def f32s(raw):
    return list(struct.unpack("<%df" % (len(raw) // 4), raw))


class FormatError(Exception):
    pass


def require(condition, message):
    if not condition:
        raise FormatError(message)


# ─── §1 framing, §2 metadata, §3 checksums ──────────────────────────────────────────────────────


# Bytes per element of the safetensors dtypes a container holds (§6).
DTYPE_BYTES = {"F32": 4, "I32": 4, "U32": 4, "U8": 1, "F8_E4M3": 1}


def strict_json(text):
    """JSON as §1 and §2 read it: no duplicate key, no NaN or Infinity (Python's json takes both)."""
    def pairs(items):
        seen = set()
        for k, _ in items:
            require(k not in seen, "duplicate JSON key %r" % k)
            seen.add(k)
        return dict(items)

    def constant(name):
        raise FormatError("%s in JSON" % name)

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


def read_file(path):
    """The whole file, if it is a regular one (not a FIFO or a device, which could block or never end)."""
    import os
    import stat

    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer (a regular file ignores the flag).
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
        require(stat.S_ISREG(os.fstat(f.fileno()).st_mode), "not a regular file")
        return f.read()


def is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def read_container(path):
    """Returns [(name, description, {field: (dtype, shape, raw bytes)})] in the order of `matrices`."""
    data = read_file(path)
    require(len(data) >= 8, "shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", data, 0)
    require(8 + n <= len(data), "header length beyond the file")
    header = strict_json(data[8:8 + n].decode("utf-8"))
    require(isinstance(header, dict), "the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    require(isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()), "no __metadata__ of strings")
    require(meta.get("format") == "lattice-matmul.quantized", "not a lattice-matmul quantized container")
    version = meta.get("format_version")
    require(version in ("1", "2", "3"), "format_version %s: this decoder reads versions \"1\" to \"3\"" % json.dumps(version))
    # §3: CRC-32 of every metadata entry but `checksum`, ordered by the UTF-8 bytes of the key.
    entries = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in meta.items() if k != "checksum")
    blob = b"".join(struct.pack("<I", len(x)) + x for pair in entries for x in pair)
    require("%08x" % zlib.crc32(blob) == meta.get("checksum"), "metadata checksum mismatch")
    base = 8 + n
    tensors = {}
    spans = []
    for tname, t in header.items():
        # §1: a dtype, a shape and offsets whose span holds exactly the shape's elements.
        require(isinstance(t, dict) and t.get("dtype") in DTYPE_BYTES, "tensor %s: no dtype this format uses" % tname)
        shape, offsets = t.get("shape"), t.get("data_offsets")
        require(isinstance(shape, list) and all(is_count(x) for x in shape), "tensor %s: bad shape" % tname)
        require(isinstance(offsets, list) and len(offsets) == 2 and all(is_count(x) for x in offsets), "tensor %s: bad data_offsets" % tname)
        begin, end = offsets
        require(begin <= end <= len(data) - base, "tensor %s: data_offsets beyond the file" % tname)
        require(end - begin == math.prod(shape) * DTYPE_BYTES[t["dtype"]],
                "tensor %s: %d bytes for %s %s" % (tname, end - begin, t["dtype"], shape))
        spans.append((begin, end, tname))
        tensors[tname] = (t["dtype"], shape, data[base + begin: base + end])
    # The tensors tile the data: no overlap, no gap, nothing after the last.
    at = 0
    for begin, end, tname in sorted(spans):
        require(begin == at, "tensor %s starts at %d, expected %d (overlap or gap)" % (tname, begin, at))
        at = end
    require(base + at == len(data), "%d bytes after the last tensor" % (len(data) - base - at))
    out = []
    used = set()
    names = strict_json(meta.get("matrices", "null"))
    require(isinstance(names, list) and all(isinstance(x, str) for x in names), "matrices is not a list of names")
    require(len(set(names)) == len(names), "matrices names a matrix twice")
    for name in names:
        d = strict_json(meta["matrix." + name])
        require(isinstance(d, dict) and isinstance(d.get("tensors"), dict), "matrix %s: no tensors in its description" % name)
        fields = {}
        for field, crc in d["tensors"].items():
            tname = name + "." + field
            require(tname in tensors, "tensor %s is missing" % tname)
            dtype, shape, raw = tensors[tname]
            require("%08x" % zlib.crc32(raw) == crc, "tensor %s: CRC-32 mismatch" % tname)
            fields[field] = (dtype, shape, raw)
            used.add(tname)
        out.append((name, d, fields))
    require(used == set(tensors), "tensors that belong to no matrix: %s" % sorted(set(tensors) - used))
    return int(version), out


def expect_tensor(fields, field, dtype, shape):
    """§6: the dtype and shape a description implies."""
    got_dtype, got_shape, raw = fields[field]
    require(got_dtype == dtype and list(got_shape) == list(shape),
            "%s is %s %s, expected %s %s" % (field, got_dtype, got_shape, dtype, shape))
    return raw


def ceil_div(a, b):
    return -(-a // b)


# ─── §5 bit streams ─────────────────────────────────────────────────────────────────────────────
# A little-endian stream of u32 words is the little-endian integer of its bytes: field k of b bits is
# (stream >> k·b) & (2^b − 1), whether or not it straddles two words.


def stream_fields(raw, count, bits):
    require(count * bits <= 8 * len(raw), "a stream of %d bytes holds fewer than %d fields of %d bits" % (len(raw), count, bits))
    mask = (1 << bits) - 1
    span = (bits + 7) // 8 + 1  # the bytes a field can touch
    # Field by field from its own bytes: shifting one big integer per field is quadratic in the stream.
    return [(int.from_bytes(raw[(k * bits) >> 3:((k * bits) >> 3) + span], "little") >> ((k * bits) & 7)) & mask
            for k in range(count)]


def column_streams(raw, cols, count, bits):
    """Per-column streams (§5): column j is the j-th run of len(raw)/cols bytes."""
    per = len(raw) // cols if cols > 0 else 0
    require(per * cols == len(raw), "%d bytes of streams do not split into %d columns" % (len(raw), cols))
    return [stream_fields(raw[j * per:(j + 1) * per], count, bits) for j in range(cols)]


def pack_field_values(raw, cols, count, bits):
    """`packField` (§5): ⌊32/b⌋ fields per word, none straddling, each column on a fresh word."""
    words = u32s(raw)
    per_word = 32 // bits
    per_column = ceil_div(count, per_word)
    mask = (1 << bits) - 1
    return [[(words[j * per_column + i // per_word] >> ((i % per_word) * bits)) & mask for i in range(count)]
            for j in range(cols)]


def code_bits(q, d):
    """§11.5: c = ⌈d·log2 q⌉, computed exactly: the smallest c ≥ 1 with 2^c ≥ q^d."""
    c = 1
    while (1 << c) < q ** d:
        c += 1
    return c


# ─── §11.1 hashes ───────────────────────────────────────────────────────────────────────────────
M32 = 0xFFFFFFFF


def mix32(x):
    """lowbias32: xorshift-multiply with constants 0x7feb352d, 0x846ca68b, shifts 16, 15, 16."""
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def counter_hash(seed, stream, index, sub):
    h = mix32(seed ^ 0x9E3779B9)
    h = mix32(h ^ stream)
    h = mix32(h ^ index)
    return mix32(h ^ sub)


STREAM_ROTATION_SIGNS = 1
STREAM_DITHER = 2
STREAM_SECOND_DITHER = 6


# ─── §11.2 the rotation ─────────────────────────────────────────────────────────────────────────


def paley_hadamard(q):
    """Paley construction I of order q + 1 (q prime, q ≡ 3 mod 4): H = I + [[0, 1ᵀ], [−1, Q]],
    Q[i][j] = χ(j − i), χ the quadratic character mod q. Row-major list of rows."""
    squares = {(x * x) % q for x in range(1, q)}

    def chi(a):
        a %= q
        return 0 if a == 0 else (1 if a in squares else -1)

    m = q + 1
    h = [[1] * m for _ in range(m)]
    for i in range(1, m):
        h[i][0] = -1
        for j in range(1, m):
            h[i][j] = (1 if i == j else 0) + chi(j - i)
    return h


PALEY = {12: paley_hadamard(11), 20: paley_hadamard(19)}


def hadamard_lengths_upto(n):
    """All m·2^k ≤ n, m ∈ {1, 12, 20}."""
    out = []
    for m in (1, 12, 20):
        v = m
        while v <= n:
            out.append(v)
            v *= 2
    return out


def smallest_hadamard_length(n):
    best = None
    for m in (1, 12, 20):
        v = m
        while v < n:
            v *= 2
        best = v if best is None else min(best, v)
    return best


MAX_PADDED_ROTATION_N = 1024  # the longest n (not a Hadamard length) with a padded, one-stage rotation
MAX_DEFAULT_PADDED_ROTATION_N = 256  # the longest n (not a Hadamard length) without an unpadded one


def is_rotation_length(n, N):
    """§11.2: whether n entries rotate to N: N = n when n is a Hadamard length or n > 256 (two windows
    if it is not one), or N = the smallest Hadamard length ≥ n when n ≤ 1024 (one stage, padded)."""
    nxt = smallest_hadamard_length(n)
    if N == nxt:
        return nxt == n or n <= MAX_PADDED_ROTATION_N
    return N == n and n > MAX_DEFAULT_PADDED_ROTATION_N


def is_short_windowed(n, N):
    """§9: the two-window rotation of n ≤ 1024 entries, which only format version 3 holds."""
    return N == n and n <= MAX_PADDED_ROTATION_N and smallest_hadamard_length(n) != n


def rotation_plan(n, N):
    """§11.2: (N, [(offset, L), …]) — one stage [0, N) when N > n or n is a Hadamard length, else two
    windows [0, L) and [n − L, n), L the largest Hadamard length ≤ n. Other pairs are refused."""
    require(is_count(n) and n >= 1 and is_count(N) and is_rotation_length(n, N),
            "no rotation of n = %s entries to length %s: it is n (a Hadamard length, or n > %d) or the smallest "
            "Hadamard length ≥ n (for n ≤ %d)" % (n, N, MAX_DEFAULT_PADDED_ROTATION_N, MAX_PADDED_ROTATION_N))
    if N > n or smallest_hadamard_length(n) == n:
        return N, [(0, N)]
    window = max(hadamard_lengths_upto(n))
    return n, [(0, window), (n - window, window)]


def check_rotation(kind, d, version):
    """§4, §9: a rotated matrix's (n, N) is a pair of §11.2 (weight-only `hadamard`: N = n), and the
    unpadded two-window rotation of n ≤ 1024 needs format version 3 (earlier versions pad such n).
    Its seed is a u32 (§11.6's hashes take 32-bit words)."""
    rotated = d.get("rotation", "none") != "none" if kind == "weight-only" else d.get("rotate") is True
    if rotated:
        seed = d.get("seed")
        require(is_count(seed) and seed < 2 ** 32, "seed must be an integer in [0, 2^32), got %r" % (seed,))
    if kind == "weight-only":
        if d["rotation"] != "hadamard":
            return
        n = N = d["n"]
        what = "rotation hadamard of n = %s" % n
        require(is_count(n) and n >= 1 and is_rotation_length(n, N),
                "%s: hadamard rotation needs rotationLength(n) = n (a Hadamard length, or n > %d)" % (what, MAX_DEFAULT_PADDED_ROTATION_N))
        older = "has only the dense haar basis for such n"
    else:
        n, N = d["rows"], d["length"]
        what = "length is %s for %s rows" % (N, n)
        if not d["rotate"]:
            require(N == n, "%s: an unrotated matrix has length = rows" % what)
            return
        _, stages = rotation_plan(n, N)  # refuses other pairs
        # §4: time-sharing keeps a prefix of the rotated coordinates, which needs one stage.
        require(len(stages) == 1 or d.get("keptLength", N) == N,
                "keptLength %s < length %s (time-sharing) needs a one-stage rotation, but %d rows are rotated in two windows" % (d.get("keptLength"), N, n))
        older = "rotates %d rows padded, to %d" % (n, smallest_hadamard_length(n))
    require(version >= 3 or not is_short_windowed(n, N),
            "%s: a container of format version %d %s (the unpadded rotation of n ≤ 1024 is format version 3)" % (what, version, older))


def hadamard_factor(length):
    """length = m·2^k with m ∈ {1, 12, 20}: returns m."""
    for m in (1, 12, 20):
        if length % m == 0:
            p = length // m
            if p & (p - 1) == 0:
                return m
    raise FormatError("%d is not a Hadamard length" % length)


def hadamard_transpose(x):
    """Unnormalized H_Lᵀ·x in place, H_L = H_{2^k} ⊗ H_m, index a·m + b, in the f32 order of §11.2."""
    length = len(x)
    m = hadamard_factor(length)
    if m > 1:
        h = PALEY[m]
        for base in range(0, length, m):
            block = x[base:base + m]
            for b in range(m):
                acc = h[0][b] * block[0]  # (H_mᵀ)[b][0] = H_m[0][b]; ±x is exact
                for bb in range(1, m):
                    acc = fround(acc + h[bb][b] * block[bb])
                x[base + b] = acc
    half = m
    while half < length:
        for start in range(0, length, 2 * half):
            for i in range(start, start + half):
                u, v = x[i], x[i + half]
                x[i] = fround(u + v)
                x[i + half] = fround(u - v)
        half *= 2


def inverse_rotation(y, n, seed):
    """§11.2: the first n entries of the inverse randomized Hadamard rotation of y (N = len(y) f32 values)."""
    _, stages = rotation_plan(n, len(y))
    t = list(y)
    for k in range(len(stages) - 1, -1, -1):
        offset, length = stages[k]
        window = t[offset:offset + length]
        hadamard_transpose(window)
        c = fround(1 / math.sqrt(length))
        for i in range(length):
            negative = counter_hash(seed, STREAM_ROTATION_SIGNS, offset + i, k) >> 31
            v = fround(window[i] * c)
            t[offset + i] = -v if negative else v
    return t[:n]


# ─── §11.4 nearest points (exact integer rules; the tie rules are part of the format) ───────────


def round_rational(p, den):
    """Nearest integer to p/den, ties upward: ⌊(2p + den) / (2·den)⌋."""
    return (2 * p + den) // (2 * den)


def nearest_dn(p, den):
    """Conway–Sloane D_n rule on p/den: round every coordinate (ties up); if the sum is odd, move the
    first coordinate of largest |error| one step the other way (upward when its error is 0)."""
    f = [round_rational(pi, den) for pi in p]
    worst, worst_abs = 0, -1
    for i, pi in enumerate(p):
        e = pi - den * f[i]
        if abs(e) > worst_abs:
            worst, worst_abs = i, abs(e)
    if sum(f) % 2:
        f[worst] += -1 if p[worst] - den * f[worst] < 0 else 1
    return f


def nearest_e8(p, den):
    """E8 = D8 ∪ (D8 + ½): the closer of the two candidates, the D8 one on a tie; point coordinates."""
    a = nearest_dn(p, den)
    b = nearest_dn([2 * pi - den for pi in p], 2 * den)
    d1 = 4 * sum((pi - den * ai) ** 2 for pi, ai in zip(p, a))
    d2 = sum((2 * pi - den * (2 * bi + 1)) ** 2 for pi, bi in zip(p, b))
    if d1 <= d2:
        return [2 * ai for ai in a]
    return [2 * bi + 1 for bi in b]


def nearest_z(p, den):
    return [round_rational(pi, den) for pi in p]


# ─── §11.3 lattices and the Voronoi code ────────────────────────────────────────────────────────
# Point coordinates P = s·λ (s = 1 for D3 and Z^8, 2 for E8); gens[v] is the generator vector g_v.
E8_GENERATORS = ([[4, 0, 0, 0, 0, 0, 0, 0]]
                 + [[0] * (v - 1) + [-2, 2] + [0] * (7 - v) for v in range(1, 7)]  # −2·e_(v−1) + 2·e_v
                 + [[1, 1, 1, 1, 1, 1, 1, 1]])
LATTICES = {
    # name: (d, s, generator vectors, nearest point in point coordinates, contains)
    "D3": (3, 1, [[1, -1, 0], [0, 1, -1], [0, 1, 1]], nearest_dn, lambda P: sum(P) % 2 == 0),
    "E8": (8, 2, E8_GENERATORS, nearest_e8,
           lambda P: len({x % 2 for x in P}) == 1 and sum(P) % 4 == 0),
    "Z": (8, 1, [[1 if i == v else 0 for i in range(8)] for v in range(8)], nearest_z, lambda P: True),
}


def leader(lattice, code, q):
    """§11.3: the coset leader of `code`, point coordinates: L = P − q·N, P = Σ u_v·g_v with u the
    base-q digits of the code (least significant first), N the nearest point to P/(s·q)."""
    d, s, gens, nearest, _ = LATTICES[lattice]
    u = []
    for _ in range(d):
        u.append(code % q)
        code //= q
    P = [sum(gens[v][i] * u[v] for v in range(d)) for i in range(d)]
    N = nearest(P, s * q)
    return [P[i] - q * N[i] for i in range(d)]


# ─── §11.4 escapes ──────────────────────────────────────────────────────────────────────────────
_TABLES = {}


def extended_table(lattice):
    """Every lattice point with 0 < ‖P‖² ≤ 16 (point coordinates), by ‖P‖², then lexicographically
    (ascending, signed, first coordinate most significant). The roots are the first entries."""
    if lattice not in _TABLES:
        d, _, _, _, contains = LATTICES[lattice]
        points = []

        def visit(prefix, norm2):
            if len(prefix) == d:
                if norm2 > 0 and contains(prefix):
                    points.append(tuple(prefix))
                return
            for v in range(-4, 5):
                if norm2 + v * v <= 16:
                    visit(prefix + [v], norm2 + v * v)

        visit([], 0)
        points.sort(key=lambda p: (sum(x * x for x in p), p))
        root_norm = sum(x * x for x in points[0])
        roots = [p for p in points if sum(x * x for x in p) == root_norm]
        _TABLES[lattice] = (points, roots)
    return _TABLES[lattice]


def root_of_rank(lattice, L, rank):
    """The root of rank r (1-based) given the leader L: roots by ⟨L, root⟩ ascending, ties by index."""
    _, roots = extended_table(lattice)
    order = sorted(range(len(roots)), key=lambda r: (sum(a * b for a, b in zip(L, roots[r])), r))
    return roots[order[rank - 1]]


# ─── §11.6 dither ───────────────────────────────────────────────────────────────────────────────
# (word, shift, bits) of each coordinate's field in the block's hash words.
DITHER_FIELDS = {
    "D3": (1, [(0, 0, 8), (0, 8, 8), (0, 23, 9)]),
    "E8": (2, [(1, 16, 7), (0, 0, 8), (0, 8, 8), (0, 16, 8), (0, 24, 8), (1, 0, 8), (1, 8, 8), (1, 23, 9)]),
}


def block_dither(lattice, keys, block):
    """Z of block b: h_t = mix32(keys[t] ^ (b·words + t)); Z_v = field_v − 2^(bits_v − 1)."""
    words, fields = DITHER_FIELDS[lattice]
    h = [mix32(keys[t] ^ ((block * words + t) & M32)) for t in range(words)]
    return [((h[w] >> shift) & ((1 << bits) - 1)) - (1 << (bits - 1)) for w, shift, bits in fields]


# ─── §11.7 the kinds ────────────────────────────────────────────────────────────────────────────


def finish(d, fields, rotated):
    """§11.2, §11.7: inverse rotation of each rotated column (f32), first `rows` entries, + mean."""
    rows, cols = d["rows"], d["cols"]
    means = f32s(expect_tensor(fields, "means", "F32", [cols])) if d["centred"] else [0.0] * cols
    out = []
    for j in range(cols):
        column = inverse_rotation(rotated[j], rows, d["seed"]) if d["rotate"] else rotated[j][:rows]
        out.append([fround(x + means[j]) for x in column])  # + 0 when not centred: −0 becomes +0
    return out


def decode_universal(d, fields, version):
    scheme = d["scheme"]
    lattice, q, beta = scheme["lattice"], scheme["q"], scheme["beta"]
    dim, s = LATTICES[lattice][0], LATTICES[lattice][1]
    cols, length, kept = d["cols"], d["length"], d["keptLength"]
    B = ceil_div(kept, dim)
    c = code_bits(q, dim)
    E, L_count, H = d["escapes"], d["longEscapes"], d["explicitEscapes"]
    # §6: the tensors and their shapes.
    codes = column_streams(expect_tensor(fields, "codes", "U32", [cols, ceil_div(B * c, 32)]), cols, B, c)
    escaped = column_streams(expect_tensor(fields, "escape_bits", "U32", [cols, ceil_div(B, 32)]), cols, B, 1)
    ranks = stream_fields(expect_tensor(fields, "escape_ranks", "U32", [ceil_div(4 * E, 32)]), E, 4)
    longs = stream_fields(expect_tensor(fields, "long_escapes", "U32", [ceil_div(16 * L_count, 32)]), L_count, 16)
    explicit = i32s(expect_tensor(fields, "explicit_escapes", "I32", [H, dim]))
    norms = f32s(expect_tensor(fields, "norms", "F32", [cols]))
    table, roots = extended_table(lattice)
    nonce = int(d["nonce"])
    nonce_lo, nonce_hi = nonce & M32, nonce >> 32
    next_rank = next_long = next_explicit = 0
    rotated = []
    for j in range(cols):
        # §11.6: E8's second hash word has a key of its own from version 2 on.
        first = counter_hash(nonce_lo, STREAM_DITHER, nonce_hi, j)
        keys = [first, counter_hash(nonce_lo, STREAM_SECOND_DITHER, nonce_hi, j) if version >= 2 else first]
        # §11.7: both steps in binary64, each entry rounded once to f32.
        point_step = (norms[j] / math.sqrt(length)) * (beta / s)
        dither_step = (norms[j] / math.sqrt(length)) * (beta / 256)
        column = [0.0] * length  # entries past keptLength stay +0
        for b in range(B):
            require(codes[j][b] < q ** dim, "code %d of column %d is not below q^d" % (codes[j][b], j))
            L = leader(lattice, codes[j][b], q)
            mu = [0] * dim
            if escaped[j][b]:  # §6: rank, long index, or explicit μ
                require(next_rank < E, "more escape bits than escapes")
                rank = ranks[next_rank]
                next_rank += 1
                if rank != 0:
                    require(rank <= min(15, len(roots)), "rank %d out of range" % rank)
                    mu = list(root_of_rank(lattice, L, rank))
                else:
                    require(next_long < L_count, "more long escapes than announced")
                    index = longs[next_long]
                    next_long += 1
                    if index == 0xFFFF:
                        require(next_explicit < H, "more explicit escapes than announced")
                        mu = explicit[next_explicit * dim:(next_explicit + 1) * dim]
                        next_explicit += 1
                    else:
                        require(index < len(table), "long escape index %d beyond the table" % index)
                        mu = list(table[index])
            lam = [L[v] + q * mu[v] for v in range(dim)]
            Z = block_dither(lattice, keys, b)
            for v in range(dim):
                k = b * dim + v
                if k < kept:
                    column[k] = fround(point_step * lam[v] - dither_step * Z[v])
        rotated.append(column)
    require((next_rank, next_long, next_explicit) == (E, L_count, H), "escape counts disagree with the description")
    return finish(d, fields, rotated)


def decode_deterministic(d, fields):
    scheme = d["scheme"]
    lattice, q = scheme["lattice"], scheme["q"]
    dim, s = LATTICES[lattice][0], LATTICES[lattice][1]
    cols, length, kept = d["cols"], d["length"], d["keptLength"]
    B = ceil_div(kept, dim)
    c = code_bits(q, dim)
    multiples = d["multiples"]
    ib = code_bits(len(multiples), 1)  # §11.5: max(1, ⌈log2 k⌉)
    codes = pack_field_values(expect_tensor(fields, "codes", "U32", [cols, ceil_div(B, 32 // c)]), cols, B, c)
    indices = pack_field_values(expect_tensor(fields, "scale_indices", "U32", [cols, ceil_div(B, 32 // ib)]), cols, B, ib)
    norms = f32s(expect_tensor(fields, "norms", "F32", [cols]))
    gains = f32s(expect_tensor(fields, "gains", "F32", [cols])) if d["gains"] else None
    rotated = []
    for j in range(cols):
        gain = gains[j] if gains is not None else 1
        column_scale = ((norms[j] / math.sqrt(length)) * gain) * (d["unit"] / s)  # §11.7, binary64
        column = [0.0] * length
        for b in range(B):
            require(codes[j][b] < q ** dim and indices[j][b] < len(multiples), "code or scale index out of range")
            L = leader(lattice, codes[j][b], q)
            step = column_scale * multiples[indices[j][b]]
            for v in range(dim):
                k = b * dim + v
                if k < kept:
                    column[k] = fround(step * L[v])
                elif lattice == "D3":  # §7: 0 past keptLength (D3's inner-product table cannot drop it)
                    require(L[v] == 0, "a last block's leader is nonzero past keptLength")
        rotated.append(column)
    return finish(d, fields, rotated)


E2M1_MAGNITUDES = [0, 0.5, 1, 1.5, 2, 3, 4, 6]


def e2m1(code):
    """FP4 E2M1 code (0…15): sign·8 + index into {0, 0.5, 1, 1.5, 2, 3, 4, 6}; code 8 is −0."""
    return (-1 if code & 8 else 1) * float(E2M1_MAGNITUDES[code & 7])


def e4m3(byte):
    """OCP FP8 E4M3FN: sign, 4 exponent bits (bias 7), 3 mantissa bits; 0x7F / 0xFF are NaN."""
    require(byte & 0x7F != 0x7F, "E4M3 NaN block scale")
    sign = -1 if byte & 0x80 else 1
    exponent, mantissa = (byte >> 3) & 15, byte & 7
    if exponent == 0:
        return sign * (mantissa * 2.0 ** -9)
    return sign * ((1 + mantissa / 8) * 2.0 ** (exponent - 7))


def decode_scalar(d, fields):
    scheme = d["scheme"]
    cols, length = d["cols"], d["length"]
    if scheme["kind"] == "int":
        bits = scheme["bits"]
        group = length if scheme["groupSize"] == "column" else scheme["groupSize"]
        G = ceil_div(length, group)
        scales = f32s(expect_tensor(fields, "scales", "F32", [cols, G]))
    else:
        bits, group = 4, 16
        G = ceil_div(length, group)
        scales = list(expect_tensor(fields, "scales", "F8_E4M3", [cols, G]))
    codes = column_streams(expect_tensor(fields, "codes", "U32", [cols, ceil_div(length * bits, 32)]), cols, length, bits)
    rotated = []
    for j in range(cols):
        column = []
        for i in range(length):
            k, S = codes[j][i], scales[j * G + i // group]  # entry i is in group ⌊i / groupSize⌋
            if scheme["kind"] == "nvfp4":
                value = e2m1(k) * e4m3(S) * d["tensorScale"]
            elif scheme["grid"] == "midrise":
                value = S * ((2 * k + 1 - 2 ** bits) / 2 ** bits)
            else:
                require(k != 0, "symmetric INT code 0")
                value = S * (k - 2 ** (bits - 1))
            column.append(fround(value))
        rotated.append(column)
    return finish(d, fields, rotated)


# ─── §11.8 weight-only ──────────────────────────────────────────────────────────────────────────


class Rng:
    """xoshiro128** seeded by four splitmix32 outputs; Gaussians by Box–Muller (binary64)."""

    def __init__(self, seed):
        self.weyl = seed
        self.s = [self._splitmix32() for _ in range(4)]
        self.cached = None

    def _splitmix32(self):
        self.weyl = (self.weyl + 0x9E3779B9) & M32
        z = self.weyl
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M32
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
        return z ^ (z >> 16)

    def next_u32(self):
        s0, s1, s2, s3 = self.s
        m = (s1 * 5) & M32
        result = ((((m << 7) | (m >> 25)) & M32) * 9) & M32
        t = (s1 << 9) & M32
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 11) | (s3 >> 21)) & M32
        self.s = [s0, s1, s2, s3]
        return result

    def next_double(self):
        high = self.next_u32() >> 6  # 26 bits
        low = self.next_u32() >> 5  # 27 bits
        return (high * 134217728 + low) * 2.0 ** -53

    def next_gaussian(self):
        if self.cached is not None:
            value, self.cached = self.cached, None
            return value
        u1 = 1 - self.next_double()
        u2 = self.next_double()
        r = math.sqrt(-2 * math.log(u1))
        angle = 2 * math.pi * u2
        self.cached = r * math.sin(angle)
        return r * math.cos(angle)


def haar_orthogonal(n, seed):
    """§11.8: Q of the Householder QR of an n × n Gaussian matrix, columns times sign(R_jj); row-major."""
    if n > 256:
        print("decode_container.py: building a dense %d × %d Haar basis in pure Python (O(n³), slow)" % (n, n), file=sys.stderr)
    rng = Rng(seed)
    cols = [fround(rng.next_gaussian()) for _ in range(n * n)]  # cols[j·n + i] = G(i, j)
    vs, betas, signs = [], [], []
    for k in range(n):
        ck = k * n
        norm2 = 0.0
        for i in range(k, n):
            norm2 += cols[ck + i] * cols[ck + i]
        norm = math.sqrt(norm2)
        x0 = cols[ck + k]
        alpha = -norm if x0 >= 0 else norm
        v = cols[ck + k:ck + n]
        v[0] = x0 - alpha
        v_norm2 = 0.0
        for x in v:
            v_norm2 += x * x
        beta = 2 / v_norm2 if v_norm2 > 0 else 0
        vs.append(v)
        betas.append(beta)
        signs.append((1 if x0 >= 0 else -1) if beta == 0 else (1 if alpha >= 0 else -1))
        for j in range(k + 1, n):
            cj = j * n
            dot = 0.0
            for i in range(k, n):
                dot += v[i - k] * cols[cj + i]
            f = beta * dot
            for i in range(k, n):
                cols[cj + i] = cols[cj + i] - f * v[i - k]
    q = [0.0] * (n * n)  # column-major while building
    for j in range(n):
        q[j * n + j] = 1.0
    for k in range(n - 1, -1, -1):
        v, beta = vs[k], betas[k]
        if beta == 0:
            continue
        for j in range(k, n):
            cj = j * n
            dot = 0.0
            for i in range(k, n):
                dot += v[i - k] * q[cj + i]
            f = beta * dot
            if f == 0:
                continue
            for i in range(k, n):
                q[cj + i] = q[cj + i] - f * v[i - k]
    out = [0.0] * (n * n)
    for j in range(n):
        for i in range(n):
            out[i * n + j] = signs[j] * q[j * n + i]
    return out


def decode_weight_only(d, fields):
    n, outputs, R = d["n"], d["outputs"], d["rowVec4s"]
    raw = expect_tensor(fields, "codes", "U32", [outputs, 4 * R])
    widths = list(expect_tensor(fields, "code_widths", "U8", [n]))
    s = f32s(expect_tensor(fields, "column_scales", "F32", [n]))
    t = f32s(expect_tensor(fields, "row_scales", "F32", [outputs])) if d["rowScales"] else [1.0] * outputs
    require(all(1 <= b <= 25 for b in widths), "code width outside 1…25")
    require(R == max(1, ceil_div(sum(widths), 128)), "rowVec4s is not what the widths need")
    row_bytes = 16 * R
    rotated = []
    for j in range(outputs):
        stream = int.from_bytes(raw[j * row_bytes:(j + 1) * row_bytes], "little")  # §6: one stream per row
        row, bit = [], 0
        for i in range(n):
            z = (stream >> bit) & ((1 << widths[i]) - 1)
            if z >> (widths[i] - 1):  # two's complement
                z -= 1 << widths[i]
            bit += widths[i]
            row.append(fround(fround(z * s[i]) * t[j]))
        rotated.append(row)
    rotation = d["rotation"]
    if rotation == "none":
        return rotated
    if rotation == "hadamard":
        require(is_rotation_length(n, n), "hadamard rotation needs rotationLength(n) = n (a Hadamard length, or n > 256)")
        return [inverse_rotation(row, n, d["seed"]) for row in rotated]
    # haar: Ŵ row j = Qᵀ·Ŵ' row j, summed over k in order in binary64, then rounded to f32.
    Q = haar_orthogonal(n, d["seed"])
    out = []
    for row in rotated:
        acc = [0.0] * n
        for k in range(n):
            xk = row[k]
            base = k * n
            for i in range(n):
                acc[i] = acc[i] + Q[base + i] * xk
        out.append([fround(x) for x in acc])
    return out


DECODERS = {
    "universal": decode_universal,
    "deterministic": decode_deterministic,
    "scalar": decode_scalar,
    "weight-only": decode_weight_only,
}


def decode_file(path):
    """[(name, description, rows, cols, columns)]: columns[j] is column j (`rows` f32 values)."""
    out = []
    version, entries = read_container(path)
    for name, d, fields in entries:
        kind = d["kind"]
        require(kind in DECODERS, "unknown kind %r" % kind)
        check_rotation(kind, d, version)  # before decoding: a wrong rotation fails fast
        columns = decode_universal(d, fields, version) if kind == "universal" else DECODERS[kind](d, fields)
        rows, cols = (d["n"], d["outputs"]) if kind == "weight-only" else (d["rows"], d["cols"])
        out.append((name, d, rows, cols, columns))
    return out


def main(argv):
    # argparse (standard library): --help, usage errors with exit code 2.
    import argparse
    import os

    parser = argparse.ArgumentParser(
        prog="decode_container.py",
        description="Decodes a lattice-matmul quantized container (docs/FORMAT.md) to f32 matrices.",
    )
    parser.add_argument("file", help="the container (.safetensors)")
    parser.add_argument("--out", metavar="DIR", help="write DIR/manifest.json and DIR/<k>.f32 per matrix (else list them)")
    args = parser.parse_args(argv[1:])
    try:
        decoded = decode_file(args.file)
    except (FormatError, KeyError, ValueError, OSError, TypeError, AttributeError, IndexError) as error:
        # TypeError and the like: a description whose fields have the wrong types (FormatError says
        # what the decoder checks; it is not a validator of every rule, see above).
        print("decode_container.py: %s: %s" % (args.file, error), file=sys.stderr)
        return 1
    if args.out is not None:
        os.makedirs(args.out, exist_ok=True)
    manifest = []
    for k, (name, d, rows, cols, columns) in enumerate(decoded):
        if args.out is None:
            # As `lattice-matmul inspect` shows a shape: outputs × inputs, a weight's (out, in).
            print("%s\t%s\t%d × %d (out × in)" % (name, d["kind"], cols, rows))
            continue
        file = "%d.f32" % k
        with open(os.path.join(args.out, file), "wb") as f:
            for column in columns:
                f.write(struct.pack("<%df" % rows, *column))
        manifest.append({"name": name, "kind": d["kind"], "rows": rows, "cols": cols, "file": file})
    if args.out is not None:
        with open(os.path.join(args.out, "manifest.json"), "w") as f:
            json.dump(manifest, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
