// The edge's per-socket limits with small settings (issue 5, point 6): a
// client that stops reading is closed and slows nobody else; a socket that
// sends nothing is closed after the idle timeout while one that heartbeats
// stays; frames over the per-socket rate get rate_limited replies, and a
// socket that keeps sending into the refusal is closed. None of these closes
// is 1000, so phoenix.js would reconnect.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, sleep, until } from './stack.mjs';

async function metric(s, name) {
  const r = await fetch(`http://127.0.0.1:${s.edgePort}/metrics`);
  const m = (await r.text()).match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

describe('limits', () => {
  let s;
  let alice;
  let room;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start({
      env: {
        EDGE_MAX_QUEUE_BYTES: '262144',
        EDGE_IDLE_TIMEOUT_S: '5',
        EDGE_FRAME_RATE: '5',
        EDGE_FRAME_BURST: '10',
      },
    });
    alice = await s.devToken('alice');
    room = await s.createRoom(alice.token, 'limits');
  });
  after(async () => {
    await s?.stop();
  });

  it('closes a socket that stops reading, and the others get everything', { timeout: 90000 },
    async () => {
      const topic = `room:${room.id}`;
      const reader = await s.rawOpen(alice.token);
      const stalled = await s.rawOpen(alice.token);
      assert.equal((await reader.join(topic, '1'))[4].status, 'ok');
      assert.equal((await stalled.join(topic, '1'))[4].status, 'ok');
      // The stalled client stops reading: the kernel's buffers fill, then
      // the edge's queue for it, which is capped at 64 KiB here.
      stalled.ws._socket.pause();

      const before = await metric(s, 'natter_edge_slow_closed_total');
      const big = 'x'.repeat(3900);
      const ids = [];
      let n = 0;
      while ((await metric(s, 'natter_edge_slow_closed_total')) === before && n < 3000) {
        const batch = [];
        for (let i = 0; i < 10; i++, n++) {
          batch.push(s.sendRest(alice.token, room.id, `${n} ${big}`));
        }
        for (const m of await Promise.all(batch)) ids.push(m.id);
      }
      assert.equal(await metric(s, 'natter_edge_slow_closed_total'), before + 1,
        `the stalled socket was not closed after ${n} messages`);
      // The reader was never slowed into losing anything.
      await until(() => reader.events(topic, 'message_received').length >= ids.length, 30000,
        'every message at the reading socket');
      // Each once, in commit order (ids rise in it; a batch's REST calls
      // run at once, so their order is the commit's, not the calls').
      const got = reader.events(topic, 'message_received').map((f) => f[4].id);
      assert.deepEqual(got, [...ids].sort());
      assert.equal(reader.closeInfo, null, 'the reading socket stayed open');
      // The stalled socket cannot even take its close frame: it is cut after
      // the close grace (2 s).
      await until(async () => {
        const h = await (await fetch(`http://127.0.0.1:${s.edgePort}/healthz`)).json();
        return h.sockets === 1;
      }, 6000, 'the stalled socket to be gone');
    });

  it('closes a silent socket after the idle timeout, not one that heartbeats',
    { timeout: 30000 }, async () => {
      const silent = await s.rawOpen(alice.token);
      const alive = await s.rawOpen(alice.token);
      const t0 = Date.now();
      const beat = setInterval(() => alive.send([null, String(Date.now()), 'phoenix',
        'heartbeat', {}]), 1000);
      try {
        const info = await silent.closed;
        const took = Date.now() - t0;
        assert.equal(info.code, 1001, JSON.stringify(info));
        assert.ok(took >= 4500 && took <= 9000, `closed after ${took} ms`);
        await sleep(2000);
        assert.equal(alive.closeInfo, null, 'a heartbeating socket was closed');
      } finally {
        clearInterval(beat);
      }
    });

  it('answers frames over the rate with rate_limited, then closes a socket that keeps on',
    { timeout: 30000 }, async () => {
      const topic = `room:${room.id}`;
      const c = await s.rawOpen(alice.token);
      assert.equal((await c.join(topic, '1'))[4].status, 'ok');
      // The join took one token of 10; 15 more frames at once: 9 pass, 6 do not.
      for (let i = 0; i < 15; i++) c.send(['1', `t${i}`, topic, 'typing_stop', {}]);
      const replies = [];
      for (let i = 0; i < 15; i++) replies.push(await c.reply(topic, `t${i}`));
      const limited = replies.filter((f) => f[4].status === 'error');
      assert.equal(limited.length, 6, JSON.stringify(replies.map((f) => f[4])));
      for (const f of limited) {
        assert.equal(f[4].response.reason, 'rate_limited');
        assert.ok(Number.isInteger(f[4].response.retry_after_ms) &&
          f[4].response.retry_after_ms > 0, JSON.stringify(f[4]));
      }
      // Heartbeats have their own budget and are still answered.
      c.send([null, 'hb', 'phoenix', 'heartbeat', {}]);
      assert.equal((await c.reply('phoenix', 'hb'))[4].status, 'ok');
      // After a pause the budget is back.
      await sleep(1000);
      c.send(['1', 'later', topic, 'typing_stop', {}]);
      assert.equal((await c.reply(topic, 'later'))[4].status, 'ok');
      // Sending on into the refusal for more than a whole burst closes it.
      for (let i = 0; i < 40; i++) c.send(['1', `f${i}`, topic, 'typing_stop', {}]);
      const info = await c.closed;
      assert.equal(info.code, 1008, JSON.stringify(info));
    });
});
