// The messages service's per-user send limit seen through the edge: with the
// default rate (5/s, burst 10) a burst of sends gets some `rate_limited`
// replies carrying retry_after_ms, and sending works again after waiting.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, joinReply, pushReply, sleep, until } from './stack.mjs';

describe('rate limit', () => {
  let s;
  const it = itLogged(() => s);

  before(async () => {
    // The default limit of the messages service, not the tests' raised one.
    s = await Stack.start({ messagesRate: false });
  });
  after(async () => {
    await s?.stop();
  });

  it('answers a fast burst of 20 sends with some rate_limited errors', { timeout: 30000 },
    async () => {
      const alice = await s.devToken('alice');
      const bob = await s.devToken('bob');
      const room = await s.createRoom(alice.token, 'busy');
      await s.joinRoom(bob.token, room.id);
      const sa = await s.connect(alice.token);
      const sb = await s.connect(bob.token);
      const ch = sa.channel(`room:${room.id}`, {});
      const watch = sb.channel(`room:${room.id}`, {});
      const seen = [];
      watch.on('message_received', (m) => seen.push(m.id));
      assert.equal((await joinReply(ch)).status, 'ok');
      assert.equal((await joinReply(watch)).status, 'ok');

      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        pushReply(ch, 'send_message', { content: `burst ${i}`, client_ref: `burst-${i}` })));
      const ok = replies.filter((r) => r.status === 'ok');
      const limited = replies.filter((r) => r.status === 'error' &&
        r.response.reason === 'rate_limited');
      assert.equal(ok.length + limited.length, 20,
        `other replies: ${JSON.stringify(replies.filter((r) => !ok.includes(r) &&
          !limited.includes(r)))}`);
      assert.ok(ok.length >= 1, 'no send got through');
      assert.ok(ok.length <= 12, `${ok.length} sends passed a burst of 10`);
      assert.ok(limited.length >= 1, 'no send was rate limited');
      for (const r of limited) {
        assert.equal(typeof r.response.retry_after_ms, 'number', JSON.stringify(r));
        assert.ok(r.response.retry_after_ms > 0 && r.response.retry_after_ms <= 60000,
          JSON.stringify(r));
      }

      // Only the accepted sends were announced.
      await until(() => seen.length >= ok.length, 5000, 'the accepted messages');
      await sleep(300);
      assert.deepEqual([...seen].sort(), ok.map((r) => r.response.id).sort());

      // After the advertised wait, sending works again.
      const wait = Math.max(...limited.map((r) => r.response.retry_after_ms));
      await sleep(wait + 50);
      const later = await pushReply(ch, 'send_message', { content: 'after waiting' });
      assert.equal(later.status, 'ok', JSON.stringify(later));
    });
});
