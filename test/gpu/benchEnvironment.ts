import type { BenchEnvironment } from '../../bench/gpu/report.js';

/** An environment with every field empty, for reports of made-up benchmark rows; `overrides` set what a test needs. */
export function emptyBenchEnvironment(overrides: Partial<BenchEnvironment> = {}): BenchEnvironment {
  return {
    device: 'test',
    adapter: { vendor: '', architecture: '', device: '', description: '', subgroupMinSize: null, subgroupMaxSize: null },
    date: '',
    mode: 'full',
    timing: '',
    features: {},
    limits: {},
    node: '',
    commit: null,
    command: '',
    settings: {},
    skipped: [],
    complete: true,
    softwareAdapter: false,
    ...overrides,
  };
}
