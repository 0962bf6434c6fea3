// The load check of issue 5 (not a timed assertion): 1000 raw sockets join one
// room, 100 messages are sent, and every one of the 100 000 deliveries must
// arrive, once each, in order on every socket. The deadline only guards
// against a hang.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, until } from './stack.mjs';

const SOCKETS = 1000;
const MESSAGES = 100;
const USERS = 4;

describe('load', () => {
  let s;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
  });
  after(async () => {
    await s?.stop();
  });

  it(`delivers ${MESSAGES} messages to each of ${SOCKETS} sockets in one room`,
    { timeout: 120000 }, async () => {
      const users = [];
      for (let i = 0; i < USERS; i++) users.push(await s.devToken(`load-${i}`));
      const room = await s.createRoom(users[0].token, 'crowd');
      for (const u of users.slice(1)) await s.joinRoom(u.token, room.id);
      const topic = `room:${room.id}`;

      // Sockets are opened and joined 50 at a time; each counts only its
      // message_received frames (presence and other events are skipped
      // without parsing most of them).
      const clients = [];
      const perSocket = [];
      for (let i = 0; i < SOCKETS; i += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, SOCKETS - i) },
          async (_, k) => {
            const c = await s.rawOpen(users[(i + k) % USERS].token);
            const ids = [];
            c.ws.removeAllListeners('message');
            c.ws.on('message', (data, isBinary) => {
              if (isBinary) return;
              const text = data.toString();
              if (text.includes('"message_received"')) {
                const f = JSON.parse(text);
                if (f[2] === topic && f[3] === 'message_received') ids.push(f[4].id);
              } else if (text.includes('"phx_reply"')) {
                c.frames.push(JSON.parse(text));
                c.notify();
              }
            });
            const j = await c.join(topic, '1', {}, 20000);
            assert.equal(j[4].status, 'ok', JSON.stringify(j));
            return { c, ids };
          }));
        for (const b of batch) {
          clients.push(b.c);
          perSocket.push(b.ids);
        }
      }
      assert.equal(clients.length, SOCKETS);

      // 100 messages from the users in turn, 10 in flight at a time.
      const sent = [];
      for (let i = 0; i < MESSAGES; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, (_, k) =>
          s.sendRest(users[(i + k) % USERS].token, room.id, `load ${i + k}`)));
        sent.push(...batch.map((m) => m.id));
      }
      assert.equal(new Set(sent).size, MESSAGES);

      const total = () => perSocket.reduce((n, ids) => n + ids.length, 0);
      try {
        await until(() => total() >= SOCKETS * MESSAGES, 90000, 'every delivery');
      } finally {
        const short = perSocket.filter((ids) => ids.length < MESSAGES).length;
        const closed = clients.filter((c) => c.closeInfo !== null).length;
        process.stderr.write(`load: ${total()} of ${SOCKETS * MESSAGES} deliveries; ` +
          `${short} sockets short; ${closed} sockets closed\n`);
      }
      const order = [...sent].sort();
      for (let i = 0; i < SOCKETS; i++) {
        const ids = perSocket[i];
        assert.equal(ids.length, MESSAGES, `socket ${i}: ${ids.length} deliveries`);
        assert.equal(new Set(ids).size, MESSAGES, `socket ${i}: duplicate deliveries`);
        assert.deepEqual(ids, order, `socket ${i}: deliveries out of commit order`);
      }
      assert.equal(clients.filter((c) => c.closeInfo !== null).length, 0, 'sockets were closed');
      for (const c of clients) c.destroy();
    });
});
