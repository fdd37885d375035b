import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/*
 * scripts/ensure-system.sh with apt-get and dpkg-query replaced by stubs on PATH (the real dpkg
 * still compares versions), the apt sources directory and os-release redirected to a temporary
 * folder: what it would install, in which order, and the apt source it writes, without touching the
 * machine. Needs bash and dpkg (the script is for Debian).
 */

const script = join(import.meta.dirname, '..', '..', 'scripts', 'ensure-system.sh');
const hasDpkg = spawnSync('sh', ['-c', 'command -v dpkg'], { encoding: 'utf8' }).status === 0;
const root = mkdtempSync(join(tmpdir(), 'ensure-system-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let caseNumber = 0;

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly aptCalls: string[];
  readonly sources: Record<string, string>;
  readonly seconds: number;
}

/**
 * Runs the script with `installed` (package → version) as the dpkg database, `codename` in
 * os-release, and `sourceFiles` already in the sources directory.
 */
function runScript(options: {
  installed: Record<string, string>;
  codename?: string;
  sourceFiles?: Record<string, string>;
  withApt?: boolean;
}): Run {
  const dir = join(root, `case-${++caseNumber}`);
  const bin = join(dir, 'bin');
  const sources = join(dir, 'sources.list.d');
  mkdirSync(bin, { recursive: true });
  mkdirSync(sources);
  for (const [name, text] of Object.entries(options.sourceFiles ?? {})) writeFileSync(join(sources, name), text);
  writeFileSync(join(dir, 'os-release'), `ID=debian\nVERSION_CODENAME=${options.codename ?? 'bookworm'}\n`);
  const log = join(dir, 'apt.log');
  const database = Object.entries(options.installed)
    .map(([name, version]) => `${name}=${version}`)
    .join(' ');
  // dpkg-query -W -f=FORMAT PACKAGE: "installed VERSION" for a package in the fake database.
  writeFileSync(
    join(bin, 'dpkg-query'),
    `#!/bin/bash\npkg="\${@: -1}"\nfor kv in ${database}; do [[ "\${kv%%=*}" == "$pkg" ]] && { echo "installed \${kv#*=}"; exit 0; }; done\nexit 1\n`,
  );
  if (options.withApt ?? true) writeFileSync(join(bin, 'apt-get'), `#!/bin/bash\necho "apt-get $*" >> "${log}"\n`);
  for (const name of readdirSync(bin)) chmodSync(join(bin, name), 0o755);
  // Without apt-get, PATH holds only the stubs and what bash itself needs to start.
  const path = options.withApt ?? true ? `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` : bin;
  const started = performance.now();
  const child = spawnSync('/bin/bash', [script], {
    encoding: 'utf8',
    env: {
      PATH: path,
      ENSURE_SYSTEM_APT_SOURCES_DIR: sources,
      ENSURE_SYSTEM_OS_RELEASE: join(dir, 'os-release'),
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const written: Record<string, string> = {};
  for (const name of readdirSync(sources)) written[name] = readFileSync(join(sources, name), 'utf8');
  return {
    status: child.status,
    stdout: child.stdout + child.stderr,
    aptCalls: existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [],
    sources: written,
    seconds,
  };
}

const everything = {
  'mesa-vulkan-drivers': '25.0.7-2~bpo12+1',
  libvulkan1: '1.3.239.0-1',
  chromium: '156.0.8078.79-1~deb12u1',
  python3: '3.11.2-1+b1',
  'spirv-tools': '2023.1-2',
  'libvulkan-dev': '1.3.239.0-1',
  gcc: '4:12.2.0-3',
};
const ISA_PACKAGES = ['spirv-tools', 'libvulkan-dev', 'gcc'] as const;
const BACKPORTS_SOURCE = `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

describe.skipIf(!hasDpkg)('scripts/ensure-system.sh', () => {
  it('does nothing, quickly and silently, when everything is installed', () => {
    const run = runScript({ installed: everything });
    expect(run.status).toBe(0);
    expect(run.aptCalls).toEqual([]);
    expect(run.sources).toEqual({});
    expect(run.stdout).toBe('');
    expect(run.seconds).toBeLessThan(1);
  });

  it('on bookworm with nothing installed: adds backports, updates once, installs Mesa from backports, chromium, python3 and the ISA tools', () => {
    const run = runScript({ installed: {} });
    expect(run.status).toBe(0);
    expect(run.sources).toEqual({ 'bookworm-backports.sources': BACKPORTS_SOURCE });
    expect(run.aptCalls).toEqual([
      'apt-get update',
      'apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1',
      'apt-get install -y chromium',
      'apt-get install -y python3',
      'apt-get install -y spirv-tools libvulkan-dev gcc',
    ]);
  });

  it('installs the three ISA tools together when any one is missing (the benchmark\'s RDNA3 counts need all three)', () => {
    for (const name of ISA_PACKAGES) {
      const installed: Record<string, string> = { ...everything };
      delete installed[name];
      const run = runScript({ installed });
      expect(run.sources).toEqual({});
      expect(run.aptCalls).toEqual(['apt-get update', 'apt-get install -y spirv-tools libvulkan-dev gcc']);
    }
  });

  it('installs only python3 when only python3 is missing (the reference decoder test needs it)', () => {
    const { python3: _python3, ...withoutPython } = everything;
    const run = runScript({ installed: withoutPython });
    expect(run.sources).toEqual({});
    expect(run.aptCalls).toEqual(['apt-get update', 'apt-get install -y python3']);
  });

  it("treats bookworm's own Mesa 22.3 as missing (Dawn refuses its lavapipe)", () => {
    const run = runScript({ installed: { ...everything, 'mesa-vulkan-drivers': '22.3.6-1+deb12u1' } });
    expect(run.aptCalls).toEqual([
      'apt-get update',
      'apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1',
    ]);
  });

  it('keeps an existing backports source (one-line format) and ignores a commented one', () => {
    const existing = { 'debian.list': 'deb http://deb.debian.org/debian bookworm-backports main\n' };
    const kept = runScript({ installed: { chromium: '156', python3: '3.11' }, sourceFiles: existing });
    expect(kept.sources).toEqual(existing);
    expect(kept.aptCalls[1]).toBe('apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1');

    const commented = { 'debian.list': '# deb http://deb.debian.org/debian bookworm-backports main\n' };
    const added = runScript({ installed: { chromium: '156', python3: '3.11' }, sourceFiles: commented });
    expect(added.sources).toEqual({ ...commented, 'bookworm-backports.sources': BACKPORTS_SOURCE });
  });

  it('installs only chromium when only chromium is missing (no apt source change)', () => {
    const { chromium: _chromium, ...vulkanOnly } = everything;
    const run = runScript({ installed: vulkanOnly });
    expect(run.sources).toEqual({});
    expect(run.aptCalls).toEqual(['apt-get update', 'apt-get install -y chromium']);
  });

  it('on another release installs from its own suite, without backports', () => {
    const run = runScript({ installed: { 'mesa-vulkan-drivers': '22.3.6', python3: '3.13' }, codename: 'trixie' });
    expect(run.sources).toEqual({});
    expect(run.aptCalls).toEqual([
      'apt-get update',
      'apt-get install -y mesa-vulkan-drivers libvulkan1',
      'apt-get install -y chromium',
      'apt-get install -y spirv-tools libvulkan-dev gcc',
    ]);
  });

  it('on this machine, when its packages are installed, the real script is a silent no-op under 3 s', (context) => {
    const packages = ['mesa-vulkan-drivers', 'libvulkan1', 'chromium', 'python3', ...ISA_PACKAGES];
    const query = spawnSync('dpkg-query', ['-W', '-f=${db:Status-Status}\\n', ...packages], { encoding: 'utf8' });
    const installed = query.stdout.split('\n').filter((status) => status === 'installed').length;
    if (installed !== packages.length) context.skip(`one of ${packages.join(', ')} is not installed here`);
    const started = performance.now();
    // Dry run: even if the version check disagreed, nothing would be installed.
    const run = spawnSync('/bin/bash', [script], { encoding: 'utf8', env: { ...process.env, ENSURE_SYSTEM_DRY_RUN: '1' } });
    // A few dpkg queries (tens of ms); 3 s leaves room for a loaded CI machine and still refuses an apt run.
    expect((performance.now() - started) / 1000).toBeLessThan(3);
    expect(run.status).toBe(0);
    expect(run.stdout + run.stderr).toBe('');
  });

  it('without apt-get prints one line and exits 0', () => {
    const run = runScript({ installed: {}, withApt: false });
    expect(run.status).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toMatch(/no apt-get/);
  });
});
