// The studio's protocol client (studio/js/protocol.js) without a browser or a server: a scripted WebSocket stands
// in for the socket, and the clock is Node's mock timers, so a join the server never answers is failed on time
// without waiting for it.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { JOIN_TIMEOUT_MS, StudioConnection } from '../../studio/js/protocol.js';

/** A WebSocket whose other end is the test: `accept()` opens it, `deliver()` sends it an event. */
class ScriptedSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;
  static last = null;

  constructor(url) {
    this.url = url;
    this.readyState = ScriptedSocket.CONNECTING;
    this.sent = [];
    this.closed = null;
    ScriptedSocket.last = this;
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.readyState = ScriptedSocket.CLOSED;
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }

  accept() {
    this.readyState = ScriptedSocket.OPEN;
    this.onopen?.();
  }

  deliver(event, data) {
    this.onmessage?.({ data: JSON.stringify({ event, data }) });
  }
}

/** A connection whose socket is open. */
async function connected() {
  const c = new StudioConnection({ url: 'ws://studio.test/ws', iceTransportPolicy: 'all' });
  const opened = c.open();
  ScriptedSocket.last.accept();
  await opened;
  return { c, socket: ScriptedSocket.last };
}

/** What a promise has come to so far: 'pending', or its value or error (after the microtasks queued now ran). */
async function settled(promise) {
  let out = 'pending';
  promise.then(
    (value) => (out = { value }),
    (error) => (out = { error }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return out;
}

describe('studio connection: joining', () => {
  beforeEach(() => {
    globalThis.WebSocket = ScriptedSocket;
    mock.timers.enable({ apis: ['setTimeout'] });
  });
  afterEach(() => {
    mock.timers.reset();
    delete globalThis.WebSocket;
  });

  it('a join the server answers resolves with `joined`, and no timer fires later', async () => {
    const { c, socket } = await connected();
    const joining = c.join({ broadcastId: 'b1', audioEnabled: true, videoEnabled: false });
    assert.deepEqual(socket.sent, [{ event: 'join-broadcast', data: { broadcastId: 'b1', audioEnabled: true, videoEnabled: false } }]);
    socket.deliver('joined', { participantId: 'p1', role: 'guest', iceServers: [] });
    const joined = await joining;
    assert.equal(joined.participantId, 'p1');
    mock.timers.tick(JOIN_TIMEOUT_MS * 2);
    assert.equal(socket.closed, null, 'the socket stays open');
  });

  it('a join the server never answers fails after the timeout, closing the socket; a late `joined` seats nobody', async () => {
    const { c, socket } = await connected();
    const joining = c.join({ broadcastId: 'b1', audioEnabled: true, videoEnabled: true, participantId: 'p0' });
    assert.equal(socket.sent[0].data.participantId, 'p0', 'a rejoin asks for its seat');
    mock.timers.tick(JOIN_TIMEOUT_MS - 1);
    assert.equal(await settled(joining), 'pending', 'still waiting just before the timeout');
    mock.timers.tick(1);
    const out = await settled(joining);
    assert.ok(out.error, 'the join failed');
    assert.equal(out.error.code, 'timeout');
    assert.match(out.error.message, /did not answer in time/);
    assert.deepEqual(socket.sent.at(-1), { event: 'leave-broadcast', data: {} }, 'the server is told we left');
    assert.deepEqual(socket.closed, { code: 1000, reason: 'left' });
    socket.deliver('joined', { participantId: 'late', role: 'guest' });
    assert.equal(c.pendingJoin, null);
  });

  it('a join the server refuses fails at once with its error, and the timer is cleared', async () => {
    const { c, socket } = await connected();
    const joining = c.join({ broadcastId: 'b1', audioEnabled: true, videoEnabled: true });
    socket.deliver('error', { code: 'not_found', message: 'no such broadcast', event: 'join-broadcast' });
    const out = await settled(joining);
    assert.equal(out.error?.code, 'not_found');
    mock.timers.tick(JOIN_TIMEOUT_MS * 2);
    assert.equal(socket.closed, null, 'the timeout does not close the socket afterwards');
  });
});
