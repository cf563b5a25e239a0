// The package as shipped: no runtime dependencies, a module a browser can
// load as it is, exports and types that resolve, declarations that agree
// with the implementation, and the files CI relies on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as byPath from '../index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (file) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
const pkg = JSON.parse(read('package.json'));

test('has no runtime dependencies: none declared, none locked, none imported', () => {
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies', 'bundledDependencies']) {
    assert.equal(pkg[field], undefined, `package.json has no ${field}`);
  }
  assert.deepEqual(Object.keys(pkg.devDependencies), ['typescript']);
  const lock = JSON.parse(read('package-lock.json'));
  assert.deepEqual(lock.packages[''].devDependencies, pkg.devDependencies, 'the lockfile matches package.json');
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path !== '') assert.equal(entry.dev, true, `${path} is a dev dependency`);
  }
  const source = read('index.js');
  assert.doesNotMatch(source, /^\s*import\b|\bimport\s*\(|\brequire\s*\(|^\s*export\s+(\*|\{[^}]*\})\s+from\b/m, 'imports nothing');
});

test('index.js is a plain browser module: no Node globals, no console', () => {
  const code = read('index.js').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ''); // without comments
  for (const name of ['process', 'Buffer', 'require', '__dirname', 'global', 'console', 'setImmediate']) {
    assert.doesNotMatch(code, new RegExp(`\\b${name}\\b(?!\\s*:)`), `does not use ${name}`);
  }
});

test('package.json: an ES module with "types" and "exports" that resolve', async () => {
  assert.equal(pkg.name, 'wsticket-client');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.types, './index.d.ts');
  assert.deepEqual(pkg.exports['.'], { types: './index.d.ts', default: './index.js' });
  assert.equal(Object.keys(pkg.exports['.'])[0], 'types', '"types" comes first, as TypeScript requires');
  for (const file of [pkg.main, pkg.types, ...Object.values(pkg.exports['.'])]) {
    assert.ok(existsSync(new URL(`../${file}`, import.meta.url)), file);
  }
  const byName = await import('wsticket-client'); // the package's own "exports"
  assert.equal(byName.WsTicketSocket, byPath.WsTicketSocket);
  assert.deepEqual(Object.keys(byName).sort(), ['MintError', 'WsTicketSocket']);
  assert.match(pkg.scripts.test, /^node --test\b/);
  assert.match(pkg.scripts.typecheck, /\btsc\b/);
});

test('the packed package holds the module, its types, the README and nothing else', () => {
  const run = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const [{ files }] = JSON.parse(run.stdout);
  assert.deepEqual(files.map((f) => f.path).sort(), ['README.md', 'index.d.ts', 'index.js', 'package.json']);
});

test('index.d.ts type-checks against the implementation (npm run typecheck)', () => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  assert.ok(existsSync(tsc), 'typescript is installed (npm ci)');
  for (const project of ['tsconfig.impl.json', 'tsconfig.json']) {
    const run = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, encoding: 'utf8' });
    assert.equal(run.status, 0, `tsc -p ${project}\n${run.stdout}${run.stderr}`);
  }
});

test('ci.sh is executable and strict', () => {
  accessSync(new URL('../ci.sh', import.meta.url), constants.X_OK);
  const script = read('ci.sh');
  assert.match(script, /^#!\/usr\/bin\/env bash\n/);
  assert.match(script, /^set -euo pipefail$/m);
  assert.match(script, /npm ci\b/);
});
