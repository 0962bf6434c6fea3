// Events lost while the edge was away from NATS (issue 5, point 5): a
// silent gap is what a client cannot detect. When the edge's NATS
// connection comes back, every join gets phx_error (PHOENIX.md §5), which
// makes phoenix.js rejoin with its params, so a client that passes
// {after: last id} receives what was sent while events could not flow.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, joinReply, sleep, until } from './stack.mjs';

describe('gap', () => {
  let s;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
  });
  after(async () => {
    await s?.stop();
  });

  it('a NATS restart makes every join rejoin and catch up', { timeout: 90000 }, async () => {
    const erin = await s.devToken('erin');
    const room = await s.createRoom(erin.token, 'gap');
    const topic = `room:${room.id}`;
    const sock = await s.connect(erin.token);
    let lastId = null;
    const seen = [];
    const errors = [];
    const ch = sock.channel(topic, () => (lastId ? { after: lastId } : {}));
    ch.on('message_received', (m) => {
      seen.push(m.id);
      lastId = m.id;
    });
    ch.onError((reason) => errors.push(reason));
    let joins = 0;
    await new Promise((resolve) => {
      ch.join().receive('ok', () => {
        joins++;
        resolve();
      });
    });
    const first = await s.sendRest(erin.token, room.id, 'before the gap');
    await until(() => seen.includes(first.id), 5000, 'the first message');

    await s.restartNats();
    // The services reconnect too; a message sent as soon as messages is back
    // may beat the edge's own reconnect, and must not be lost either way.
    let during = null;
    await until(async () => {
      const r = await s.api(erin.token, 'POST', `/api/rooms/${room.id}/messages`,
        { content: 'around the gap' });
      if (r.status === 201 || r.status === 200) during = r.body.data;
      return during !== null;
    }, 30000, 'messages to accept a send again');

    await until(() => errors.length >= 1, 30000, 'phx_error after the reconnect');
    await until(() => joins >= 2, 30000, 'the rejoin');
    await until(() => seen.includes(during.id), 10000, 'the message sent around the gap');
    await sleep(500);
    assert.deepEqual(seen, [first.id, during.id], 'each message once, in order');
    assert.equal(sock.isConnected(), true, 'the socket itself stayed open');

    const later = await s.sendRest(erin.token, room.id, 'after the gap');
    await until(() => seen.includes(later.id), 10000, 'live messages after the rejoin');
  });
});
