// The README's useWsTicketSocket snippet, run as written against a small
// stand-in for React's hooks (one component, effects run right after each
// render), so the snippet cannot rot.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from '../index.js';
import { FakeClock, fakeWebSocketClass, flush, manualMint } from './helpers.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The fenced js block that starts with `// <name>`. */
function snippet(name) {
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  const found = blocks.filter((b) => b.startsWith(`// ${name}\n`));
  assert.equal(found.length, 1, `one README block starts with // ${name}`);
  return found[0];
}

/** Evaluates a module-shaped snippet with its named imports taken from `modules`. */
function evaluate(source, modules, exported) {
  const body = source
    .replace(/^import \{([^}]+)\} from '([^']+)';$/gm, (_, names, from) => `const {${names}} = modules[${JSON.stringify(from)}];`)
    .replace(/^export function /gm, 'function ');
  assert.doesNotMatch(body, /^\s*(import|export)\b/m, 'only named imports and exported functions');
  return new Function('modules', `${body}\nreturn ${exported};`)(modules);
}

/** Just enough of React's hooks for one component. */
function hooksRuntime() {
  const slots = [];
  let cursor = 0;
  let queued = [];
  let rendering = false;
  let again = false;
  let component;
  let args;
  let output;
  const changed = (a, b) => !a || !b || a.length !== b.length || a.some((v, i) => !Object.is(v, b[i]));

  const React = {
    useState(initial) {
      const i = cursor++;
      if (!(i in slots)) {
        const slot = { value: initial };
        slot.set = (next) => {
          const value = typeof next === 'function' ? next(slot.value) : next;
          if (Object.is(value, slot.value)) return;
          slot.value = value;
          render();
        };
        slots[i] = slot;
      }
      return [slots[i].value, slots[i].set];
    },
    useRef(initial) {
      const i = cursor++;
      if (!(i in slots)) slots[i] = { current: initial };
      return slots[i];
    },
    useCallback(fn, deps) {
      const i = cursor++;
      if (!(i in slots) || changed(slots[i].deps, deps)) slots[i] = { fn, deps };
      return slots[i].fn;
    },
    useEffect(effect, deps) {
      const i = cursor++;
      const slot = slots[i];
      if (slot && deps !== undefined && !changed(slot.deps, deps)) return;
      queued.push(() => {
        if (typeof slot?.cleanup === 'function') slot.cleanup();
        slots[i] = { deps, cleanup: effect() };
      });
    },
  };

  function render() {
    if (rendering) {
      again = true;
      return;
    }
    rendering = true;
    do {
      again = false;
      cursor = 0;
      queued = [];
      output = component(...args);
      for (const run of queued) run();
    } while (again);
    rendering = false;
  }

  return {
    React,
    mount(hook, ...hookArgs) {
      component = hook;
      args = hookArgs;
      render();
    },
    rerender(...hookArgs) {
      args = hookArgs;
      render();
    },
    unmount() {
      for (const slot of slots) if (typeof slot?.cleanup === 'function') slot.cleanup();
    },
    get output() {
      return output;
    },
  };
}

test('the README hook: one socket per url, state in React, messages to the latest callback, closed on unmount', async () => {
  const runtime = hooksRuntime();
  const useWsTicketSocket = evaluate(snippet('useWsTicketSocket.js'), {
    react: runtime.React,
    'wsticket-client': client,
  }, 'useWsTicketSocket');

  const clock = new FakeClock();
  const WebSocket = fakeWebSocketClass();
  const m = manualMint();
  const options = () => ({
    mint: m.mint,
    WebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    globalTarget: null,
  });
  const got = [];

  runtime.mount(useWsTicketSocket, 'wss://chat.example.com/ws', options(), (data) => got.push(['first', data]));
  assert.equal(runtime.output.state, 'connecting');
  assert.equal(runtime.output.send('early'), false);
  await flush();
  m.give('wst_k1_a');
  await flush();
  const first = WebSocket.instances[0];
  first.serverOpen('wsticket');
  assert.equal(runtime.output.state, 'open');
  assert.equal(runtime.output.send('hi'), true);
  assert.deepEqual(first.sent, ['hi']);

  // New option objects and a new callback on every render: same socket, newest callback.
  runtime.rerender('wss://chat.example.com/ws', options(), (data) => got.push(['second', data]));
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(m.calls.length, 1);
  first.serverMessage('m1');
  assert.deepEqual(got, [['second', 'm1']]);

  // A new url: the old socket is closed, a new one mints.
  runtime.rerender('wss://chat.example.com/ws?room=2', options(), (data) => got.push(['third', data]));
  assert.deepEqual(first.closeCalls, [[1000, '']]);
  assert.equal(runtime.output.state, 'connecting');
  await flush();
  assert.equal(m.calls.length, 2);
  m.give('wst_k1_b');
  await flush();
  const second = WebSocket.instances[1];
  second.serverOpen('wsticket');
  assert.equal(runtime.output.state, 'open');

  // reconnect() reaches the socket; unmount closes it.
  second.serverClose(4403);
  assert.equal(runtime.output.state, 'denied');
  runtime.output.reconnect();
  assert.equal(runtime.output.state, 'connecting');
  runtime.unmount();
  assert.equal(runtime.output.send('late'), false);
  assert.ok(m.calls.at(-1).signal.aborted, 'the mint in flight is aborted');
  await flush();
  assert.deepEqual(clock.pending(), []);
});

test('every js block of the README is a valid ES module (syntax-checked by node, not run)', () => {
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 3);
  const dir = mkdtempSync(join(tmpdir(), 'wsticket-readme-'));
  try {
    blocks.forEach((block, i) => {
      const file = join(dir, `block${i}.mjs`);
      writeFileSync(file, block);
      const run = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
      assert.equal(run.status, 0, `${block.slice(0, 60)}\n${run.stderr}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
