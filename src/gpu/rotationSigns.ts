import { counted } from '../errors.js';
import { packedStageSigns } from '../rotation/randomizedHadamard.js';
import { BufferUsage, createBufferWithData } from './buffers.js';

/*
 * The rotation's random signs, packed one bit per position and kept on the GPU per device, so that
 * the rotation kernel (shaders/hadamard.wgsl) reads a bit where it used to hash each element: the
 * counter hash is four mix32 rounds, ≈ 35 integer instructions per element on the decode step's
 * critical path (one column of 4096–28672 entries, on one or a few workgroups), against a load and a
 * few shifts. The signs depend only on the seed and the stages' windows, so a model's rotations share a few
 * small buffers (N / 8 bytes each).
 *
 * The buffers are never destroyed by the library: recorded command buffers and bind groups (prepared
 * decode steps) keep referring to them. At most MAX_ENTRIES are kept per device; past that the least
 * recently used is dropped from the cache (not destroyed: whatever still binds it keeps it alive, and
 * it is garbage-collected with them).
 */

/** Entries kept per device: a model uses one seed and a handful of widths. */
const MAX_ENTRIES = 64;

/** One stage's window of column positions (HadamardStagePlan's offset and length). */
export interface SignWindow {
  readonly offset: number;
  readonly length: number;
}

/** The packed signs of every stage of one rotation: the buffer and the first word of each stage. */
export interface RotationSigns {
  readonly buffer: GPUBuffer;
  /** Word of `buffer` where stage k's bits start (bit i: position offset_k + i). */
  readonly stageFirstWord: readonly number[];
}

const cache = new WeakMap<GPUDevice, Map<string, RotationSigns>>();

/**
 * The packed signs of the rotation with `seed` whose stage k covers `stages[k]`: from the device's
 * cache, or computed on the CPU (`packedStageSigns`) and uploaded on first use.
 *
 * @example
 * const signs = rotationSigns(device, 42, [{ offset: 0, length: 4096 }]); // 128 words of stage 0
 */
export function rotationSigns(device: GPUDevice, seed: number, stages: readonly SignWindow[]): RotationSigns {
  const key = `${seed}:${stages.map((s) => `${s.offset}+${s.length}`).join(',')}`;
  let entries = cache.get(device);
  if (entries === undefined) {
    entries = new Map();
    cache.set(device, entries);
  }
  const found = entries.get(key);
  if (found !== undefined) {
    // Most recently used last: the eviction below drops the least recently used.
    entries.delete(key);
    entries.set(key, found);
    return found;
  }
  const words = stages.map((stage, k) => packedStageSigns(seed, k, stage.offset, stage.length));
  const stageFirstWord: number[] = [];
  let total = 0;
  for (const w of words) {
    stageFirstWord.push(total);
    total += w.length;
  }
  const data = new Uint32Array(Math.max(total, 1));
  words.forEach((w, k) => data.set(w, stageFirstWord[k]));
  const buffer = createBufferWithData(device, `rotation signs (seed ${seed}, ${counted(stages.length, 'stage')}, N = ${stages.reduce((n, s) => Math.max(n, s.offset + s.length), 0)})`, data, BufferUsage.STORAGE);
  const signs: RotationSigns = { buffer, stageFirstWord };
  if (entries.size >= MAX_ENTRIES) {
    const oldest = entries.keys().next().value;
    if (oldest !== undefined) entries.delete(oldest);
  }
  entries.set(key, signs);
  return signs;
}
