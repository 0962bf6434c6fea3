// Protection of the edge against bad clients (issue 5, point 6; PHOENIX.md
// §10): oversized messages close with 1009, malformed frames with 1007, a
// binary frame with a non-1000 code, and the 101st topic of one socket is
// refused; none of it harms the edge or other sockets.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, within } from './stack.mjs';

const T = { timeout: 30000 };
const KIB = 1024;

describe('protection', () => {
  let s;
  let alice;
  let room;
  let bystander; // a joined socket that must outlive every bad client
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
    alice = await s.devToken('alice');
    room = await s.createRoom(alice.token, 'guarded');
    bystander = await s.rawOpen(alice.token);
    const j = await bystander.join(`room:${room.id}`, '1');
    assert.equal(j[4].status, 'ok', JSON.stringify(j));
  });
  after(async () => {
    await s?.stop();
  });

  // A frame of exactly `size` bytes: a push to a topic not joined, padded.
  function frameOfSize(size) {
    const head = JSON.stringify(['1', '2', 'room:x', 'send_message', { content: '' }]);
    const pad = size - head.length;
    assert.ok(pad >= 0);
    const f = JSON.stringify(['1', '2', 'room:x', 'send_message', { content: 'a'.repeat(pad) }]);
    assert.equal(Buffer.byteLength(f), size);
    return f;
  }

  async function closeCode(send) {
    const c = await s.rawOpen(alice.token);
    send(c);
    const info = await within(c.closed, 5000, 'the edge to close the socket');
    return { info, frames: c.frames };
  }

  it('closes a text message over 64 KiB with 1009', T, async () => {
    const { info } = await closeCode((c) => c.send(frameOfSize(64 * KIB + 1)));
    assert.equal(info.code, 1009, JSON.stringify(info));
  });

  it('accepts a text message of exactly 64 KiB', T, async () => {
    const c = await s.rawOpen(alice.token);
    c.send(frameOfSize(64 * KIB));
    const f = await c.next((x) => x[1] === '2');
    assert.deepEqual(f[4], { status: 'error', response: { reason: 'unmatched topic' } });
    assert.equal(c.closeInfo, null);
    c.destroy();
  });

  const malformed = [
    ['invalid JSON', '["1","1","room:x","phx_join",{'],
    ['refs as numbers', '[1,1,"room:x","phx_join",{}]'],
    ['a JSON object (V1 shape)', '{"topic":"room:x","event":"phx_join","payload":{},"ref":"1"}'],
    ['four elements', '["1","1","room:x","phx_join"]'],
    ['a number as the topic', '["1","1",7,"phx_join",{}]'],
  ];
  for (const [name, text] of malformed) {
    it(`closes a frame with ${name} with 1007`, T, async () => {
      const { info } = await closeCode((c) => c.send(text));
      assert.equal(info.code, 1007, JSON.stringify(info));
    });
  }

  it('closes a text frame of invalid UTF-8 with 1007', T, async () => {
    const bytes = Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"x":"'),
      Buffer.from([0xc3, 0x28]), Buffer.from('"}]')]);
    const { info } = await closeCode((c) => c.send(bytes, { binary: false }));
    assert.equal(info.code, 1007, JSON.stringify(info));
  });

  it('answers or closes a frame whose payload is not an object, without harm', T, async () => {
    const c = await s.rawOpen(alice.token);
    c.send(['1', '1', `room:${room.id}`, 'phx_join', 'not an object']);
    const outcome = await within(Promise.race([
      c.next((x) => x[1] === '1').then((f) => ({ reply: f })),
      c.closed.then((info) => ({ info })),
    ]), 5000, 'a reply or a close');
    if (outcome.reply) {
      assert.equal(outcome.reply[4].status, 'error', JSON.stringify(outcome.reply));
      c.destroy();
    } else {
      assert.equal(outcome.info.code, 1007, JSON.stringify(outcome.info));
    }
  });

  it('closes a binary frame with a code other than 1000', T, async () => {
    const { info } = await closeCode((c) => c.send(Buffer.from([0, 1, 1, 6, 9, 49]),
      { binary: true }));
    assert.notEqual(info.code, 1000, JSON.stringify(info));
    assert.notEqual(info.code, 1006, 'the edge dropped the connection without a close frame');
    assert.notEqual(info.code, 1005, 'the close frame carried no code');
  });

  it('refuses the 101st topic of one socket with "too many channels joined"', { timeout: 60000 },
    async () => {
      // 100 rooms alice belongs to, created ten at a time.
      const ids = [];
      for (let i = 0; i < 100; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, (_, k) =>
          s.createRoom(alice.token, `many-${i + k}`)));
        ids.push(...batch.map((r) => r.id));
      }
      const c = await s.rawOpen(alice.token);
      for (let i = 0; i < ids.length; i++) {
        const ref = String(i + 1);
        const f = await c.join(`room:${ids[i]}`, ref);
        assert.equal(f[4].status, 'ok', `join ${i + 1}: ${JSON.stringify(f)}`);
      }
      const own = `user:${alice.user_id}`;
      const refused = await c.join(own, '101');
      assert.equal(refused[3], 'phx_reply');
      assert.deepEqual(refused[4],
        { status: 'error', response: { reason: 'too many channels joined' } });

      // A second join of a joined topic replaces it and does not count.
      const again = await c.join(`room:${ids[0]}`, '102');
      assert.equal(again[4].status, 'ok', JSON.stringify(again));

      // After a leave there is room for one more.
      c.send(['102', '103', `room:${ids[0]}`, 'phx_leave', {}]);
      const left = await c.reply(`room:${ids[0]}`, '103');
      assert.equal(left[4].status, 'ok');
      const fits = await c.join(own, '104');
      assert.equal(fits[4].status, 'ok', JSON.stringify(fits));
      assert.equal(c.closeInfo, null);
      c.destroy();
    });

  it('is still healthy, and the bystander socket was never disturbed', T, async () => {
    assert.equal(bystander.closeInfo, null, 'the bystander was closed');
    bystander.send([null, 'hb', 'phoenix', 'heartbeat', {}]);
    await bystander.next((x) => x[1] === 'hb');
    const sent = await s.sendRest(alice.token, room.id, 'still here');
    await bystander.next((x) => x[3] === 'message_received' && x[4].id === sent.id);
    const r = await fetch(`http://127.0.0.1:${s.edgePort}/healthz`);
    assert.equal(r.status, 200);
    assert.equal(s.edge.alive, true);
  });
});
