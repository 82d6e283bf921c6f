// The studio's stage placements (studio/js/stage.js), checked without a browser: every layout keeps tiles
// inside the 16:9 canvas, camera tiles keep the camera's 16:9 shape, and same-layer tiles never overlap.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LAYOUTS, placements } from '../../studio/js/stage.js';

const EPS = 1e-9;
const people = (n) => Array.from({ length: n }, (_, i) => ({ id: `p${i}` }));

function overlaps(a, b) {
  return a.x < b.x + b.w - EPS && b.x < a.x + a.w - EPS && a.y < b.y + b.h - EPS && b.y < a.y + a.h - EPS;
}

describe('stage placements', () => {
  for (const { id: layout } of LAYOUTS) {
    for (let n = 1; n <= 9; n++) {
      it(`${layout} with ${n} on stage stays inside the canvas without same-layer overlap`, () => {
        const items = layout === 'screen-share' ? [{ id: 'p0:screen', screen: true }, ...people(n)] : people(n);
        const out = placements(layout, items);
        assert.ok(out.length >= 1, 'someone is visible');
        assert.equal(new Set(out.map((p) => p.id)).size, out.length, 'no item placed twice');
        for (const p of out) {
          assert.ok(items.some((i) => i.id === p.id), `${p.id} is on stage`);
          assert.ok(p.w > 0 && p.h > 0, `${p.id} has a size`);
          assert.ok(p.x >= -EPS && p.y >= -EPS && p.x + p.w <= 1 + EPS && p.y + p.h <= 1 + EPS, `${p.id} inside: ${JSON.stringify(p)}`);
          if (!p.id.endsWith(':screen')) assert.ok(Math.abs(p.w - p.h) < 1e-6, `${p.id} keeps 16:9: ${JSON.stringify(p)}`);
        }
        for (const a of out) for (const b of out) if (a !== b && a.z === b.z) assert.ok(!overlaps(a, b), `${a.id} overlaps ${b.id}`);
      });
    }
  }

  it('grid shows everyone, solo one, pip two', () => {
    assert.equal(placements('grid', people(7)).length, 7);
    assert.equal(placements('solo', people(3)).length, 1);
    assert.equal(placements('pip', people(3)).length, 2);
  });

  it('screen-share puts the screen in the big tile', () => {
    const out = placements('screen-share', [{ id: 'p0' }, { id: 'p0:screen', screen: true }, { id: 'p1' }]);
    const big = out.reduce((a, b) => (a.w * a.h >= b.w * b.h ? a : b));
    assert.equal(big.id, 'p0:screen');
  });

  it('two people in a grid sit side by side, centred vertically', () => {
    const [a, b] = placements('grid', people(2));
    assert.ok(Math.abs(a.y - b.y) < EPS && a.x < b.x);
    assert.ok(Math.abs(a.y - (1 - a.h - a.y)) < 1e-6, 'vertical margins equal');
  });

  it('an empty stage has no tiles', () => {
    for (const { id } of LAYOUTS) assert.deepEqual(placements(id, []), []);
  });
});
