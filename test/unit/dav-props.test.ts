// Live properties: allpropLiveXml (what a listing renders for every member) is exactly the
// ALLPROP_LIVE properties as livePropertyXml gives them one by one, for files, collections,
// names that need escaping, and resources under locks.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALLPROP_LIVE, allpropLiveXml, livePropertyXml, type LivePropertySources } from '../../src/dav/props';
import { contentTypeFor } from '../../common/content-types';
import type { LockRecord } from '../../src/dav/lock-store';
import type { Entry } from '../../common/storage';

function entry(path: string, kind: 'file' | 'directory' | 'other', mtimeMs: number): Entry {
  return {
    path,
    stat: {
      kind,
      size: 12345,
      mtimeMs,
      birthtimeMs: mtimeMs - 1000,
      etag: '"1a-3039-2b"',
    },
  };
}

const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const LOCK: LockRecord = {
  token: 'opaquelocktoken:00000000-0000-4000-8000-000000000001',
  root: '/home/u/locked.txt',
  rootPath: '/locked.txt',
  principal: 'u',
  scope: 'exclusive',
  depth: 0,
  ownerXml: '<D:owner xmlns:D="DAV:">u</D:owner>',
  timeoutS: 600,
  expiresMs: NOW + 600_000,
};

describe('allpropLiveXml', () => {
  const entries = [
    entry('/report.pdf', 'file', NOW - 86_400_000.5),
    entry('/docs', 'directory', 0),
    entry('/odd/<a&b> "c".txt', 'file', -1_234_567_891.25),
    entry('/fifo', 'other', NOW),
    entry('/locked.txt', 'file', NOW),
  ];
  for (const locked of [false, true]) {
    test(`is livePropertyXml of each of ALLPROP_LIVE, in order${locked ? ', under a lock' : ''}`, () => {
      const sources: LivePropertySources = {
        nowMs: NOW,
        locksFor: (e) => (locked && e.path === '/locked.txt' ? [LOCK] : []),
        space: null,
      };
      for (const e of entries) {
        const oneByOne = ALLPROP_LIVE.map((name) => livePropertyXml(name, e, sources) ?? '').join('');
        assert.equal(allpropLiveXml(e, sources), oneByOne, e.path);
      }
      if (locked) assert.match(allpropLiveXml(entries[4]!, sources), /<D:activelock>/);
    });
  }
});

test("a content type comes from the extension in any case, never from Object's own members", () => {
  assert.equal(contentTypeFor('/a/notes.txt'), 'text/plain; charset=utf-8');
  assert.equal(contentTypeFor('/a/PHOTO.JPG'), 'image/jpeg');
  for (const name of ['/x.constructor', '/x.__proto__', '/x.toString', '/x.hasOwnProperty', '/dir.txt/file'])
    assert.equal(contentTypeFor(name), 'application/octet-stream', name);
});
