// Listing entries on the worker → web channel: what entryToWire writes, entryFromWire gives back
// exactly (times included, whose wire form is whole microseconds), and anything else is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryFromWire, entryToWire } from '../../common/protocol';
import type { Entry } from '../../common/storage';

function entry(mtimeMs: number, props?: Record<string, string>): Entry {
  const value: Entry = {
    path: '/dir/naïve "name" <&>',
    stat: {
      kind: 'file',
      size: 2 ** 40 + 7,
      mtimeMs,
      // A Stat's times are whole microseconds over 1000 (nsToMs): so are these.
      birthtimeMs: (Math.round(mtimeMs * 1000) - 1) / 1000,
      etag: '"1a-2b-3c"',
    },
  };
  if (props !== undefined) value.props = props;
  return value;
}

test('entries come back as they were sent, to the microsecond, before 1970 too', () => {
  const times = [0, 0.001, -1234567891.234, 1764237909123.456, 4102444800999.999];
  for (let i = 0; i < 2000; i++) times.push(Math.floor((Math.random() - 0.3) * 4e15) / 1000);
  for (const mtimeMs of times) {
    const sent = entry(mtimeMs);
    assert.deepEqual(entryFromWire(JSON.parse(entryToWire(sent))), sent, String(mtimeMs));
  }
  const withProps = entry(1.5, { '{urn:x}p': '<p xmlns="urn:x">v</p>' });
  assert.deepEqual(entryFromWire(JSON.parse(entryToWire(withProps))), withProps);
  const emptyProps = entry(1.5, {});
  assert.deepEqual(entryFromWire(JSON.parse(entryToWire(emptyProps))), emptyProps);
});

test('the web process refuses anything not shaped like an entry', () => {
  const good = JSON.parse(entryToWire(entry(1))) as unknown[];
  const broken = (index: number, value: unknown): unknown[] => good.map((v, i) => (i === index ? value : v));
  for (const bad of [
    null,
    {},
    good.slice(0, 5),
    [...good, {}, 'extra'],
    broken(0, 'relative'),
    broken(1, 'socket'),
    broken(2, '12'),
    broken(3, null),
    broken(5, '"tab\tinside"'),
    broken(4, Number.POSITIVE_INFINITY),
    [...good, ['not', 'an', 'object']],
  ]) {
    assert.equal(entryFromWire(bad), null, JSON.stringify(bad));
  }
});
