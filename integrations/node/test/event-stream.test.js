// EventStreamParser: the text/event-stream rules, in every chunking.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventStreamParser } from '../index.js';

/** @typedef {import('../index.js').EventStreamEvent} EventStreamEvent */

/**
 * Parses `chunks` with one parser; returns what it reported.
 * @param {string[]} chunks
 * @param {{lastEventId?: string, maxChars?: number}} [options]
 */
function parse(chunks, options = {}) {
  /** @type {EventStreamEvent[]} */
  const events = [];
  /** @type {number[]} */
  const retries = [];
  /** @type {string[]} */
  const comments = [];
  const parser = new EventStreamParser({
    ...options,
    onEvent: (e) => events.push(e),
    onRetry: (ms) => retries.push(ms),
    onComment: (c) => comments.push(c),
  });
  for (const chunk of chunks) parser.push(chunk);
  return { events, retries, comments, lastEventId: parser.lastEventId };
}

/**
 * Every split of `text` into two chunks, and into one-character chunks.
 * @param {string} text
 */
function chunkings(text) {
  const all = [[text], [...text]];
  for (let i = 1; i < text.length; i++) all.push([text.slice(0, i), text.slice(i)]);
  return all;
}

// The example of the contract: retry, a heartbeat, two events, a gap.
const CONTRACT_STREAM = [
  'retry: 1000',
  '',
  ': keep-alive',
  '',
  'id: 1733352000123-0',
  'event: user_revoked',
  'data: {"user_id":"alice","audience":"chat","before":"2026-12-04T22:50:00.123Z","reason":"request"}',
  '',
  'id: 1733352000456-0',
  'event: ticket_reused',
  'data: {"user_id":"alice","audience":"chat"}',
  '',
  'event: gap',
  'data: {"detail":"events after the given Last-Event-ID may have been missed"}',
  '',
  '',
];

const CONTRACT_EVENTS = [
  {
    type: 'user_revoked',
    data: '{"user_id":"alice","audience":"chat","before":"2026-12-04T22:50:00.123Z","reason":"request"}',
    lastEventId: '1733352000123-0',
  },
  { type: 'ticket_reused', data: '{"user_id":"alice","audience":"chat"}', lastEventId: '1733352000456-0' },
  // No id of its own: the last event ID string stays (as EventSource does).
  { type: 'gap', data: '{"detail":"events after the given Last-Event-ID may have been missed"}', lastEventId: '1733352000456-0' },
];

describe('line endings and chunk boundaries', () => {
  for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n'], ['CR', '\r']]) {
    test(`the contract's example with ${name}, split at every position`, () => {
      const text = CONTRACT_STREAM.join(eol);
      for (const chunks of chunkings(text)) {
        const out = parse(chunks);
        assert.deepEqual(out.events, CONTRACT_EVENTS, `chunks ${JSON.stringify(chunks.map((c) => c.length))}`);
        assert.deepEqual(out.retries, [1000]);
        assert.deepEqual(out.comments, ['keep-alive']);
        assert.equal(out.lastEventId, '1733352000456-0');
      }
    });
  }

  test('mixed line endings, and a CRLF split between two chunks counts as one line end', () => {
    const out = parse(['data: a\r', '\ndata: b\r\n', '\r', '\ndata: c\n\r\n']);
    assert.deepEqual(out.events.map((e) => e.data), ['a\nb', 'c']);
  });

  test('CR then CR is two line ends (an empty line dispatches)', () => {
    const out = parse(['data: x\r', '\r']);
    assert.deepEqual(out.events.map((e) => e.data), ['x']);
  });

  test('an event is dispatched only at its blank line; a block cut off is never dispatched', () => {
    /** @type {EventStreamEvent[]} */
    const events = [];
    const parser = new EventStreamParser({ onEvent: (e) => events.push(e) });
    parser.push('id: 7\nevent: user_revoked\ndata: {}\n');
    assert.deepEqual(events, [], 'no blank line yet');
    assert.equal(parser.lastEventId, '', 'the id of an incomplete block is not the position yet');
    parser.push('\n');
    assert.deepEqual(events, [{ type: 'user_revoked', data: '{}', lastEventId: '7' }]);
    parser.push('id: 8\ndata: half');
    assert.equal(events.length, 1);
    assert.equal(parser.lastEventId, '7');
  });
});

describe('fields', () => {
  test('multi-line data is joined with LF; "data" alone is an empty line of data', () => {
    const out = parse(['data: {"a":\ndata:1\ndata\ndata: }\n\n']);
    assert.deepEqual(out.events.map((e) => e.data), ['{"a":\n1\n\n}']);
  });

  test('only one space after the colon is removed', () => {
    const out = parse(['data:  two\nevent:x\n\n']);
    assert.deepEqual(out.events, [{ type: 'x', data: ' two', lastEventId: '' }]);
  });

  test('an event without "event" is a message; a block with no data is no event', () => {
    const out = parse(['data: m\n\nevent: user_revoked\n\n: comment only\n\n']);
    assert.deepEqual(out.events, [{ type: 'message', data: 'm', lastEventId: '' }]);
    assert.deepEqual(out.comments, ['comment only']);
  });

  test('a data-less block with an id still moves the position; an empty id resets it', () => {
    const out = parse(['id: 5\n\n']);
    assert.deepEqual(out.events, []);
    assert.equal(out.lastEventId, '5');
    const reset = parse(['id: 5\ndata: a\n\nid\ndata: b\n\n']);
    assert.deepEqual(reset.events.map((e) => e.lastEventId), ['5', '']);
  });

  test('an id holding NUL is ignored; the id persists to later events; the initial id is kept', () => {
    const out = parse(['id: a\0b\ndata: x\n\ndata: y\n\n'], { lastEventId: '3-0' });
    assert.deepEqual(out.events.map((e) => e.lastEventId), ['3-0', '3-0']);
  });

  test('retry: digits only; anything else is ignored', () => {
    const out = parse(['retry: 250\nretry: 1a\nretry: -5\nretry:\nretry: 3000\n\n']);
    assert.deepEqual(out.retries, [250, 3000]);
    assert.deepEqual(out.events, []);
  });

  test('unknown fields and field names with trailing spaces are ignored', () => {
    const out = parse(['foo: bar\ndata : no\ndata: yes\n\n']);
    assert.deepEqual(out.events.map((e) => e.data), ['yes']);
  });

  test('a BOM is dropped at the start of the stream only, even split from what follows', () => {
    const out = parse(['\uFEFF', 'data: a\n\n\uFEFFdata: b\n\n']);
    assert.equal(out.events[0].data, 'a');
    assert.equal(out.events.length, 1, 'a later BOM makes the field "\\uFEFFdata", which is unknown');
  });

  test('non-ASCII text is kept', () => {
    const out = parse(['data: {"user_id":"zoë ✓ 🚀"}\n\n']);
    assert.equal(JSON.parse(out.events[0].data).user_id, 'zoë ✓ 🚀');
  });
});

describe('limits', () => {
  test('a line over maxChars throws a RangeError, even when it arrives in pieces', () => {
    const parser = new EventStreamParser({ onEvent: () => {}, maxChars: 10 });
    parser.push('data: 1234');
    assert.throws(() => parser.push('5678'), RangeError);
  });

  test('data over maxChars across many lines throws a RangeError', () => {
    const parser = new EventStreamParser({ onEvent: () => {}, maxChars: 10 });
    parser.push('data: 123456\n');
    assert.throws(() => parser.push('data: 123456\n'), RangeError);
  });

  test('lines under the limit pass, however many', () => {
    const out = parse(['data: 12345\n\n'.repeat(1000)], { maxChars: 12 });
    assert.equal(out.events.length, 1000);
  });
});
