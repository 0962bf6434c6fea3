// Reconnecting after the edge restarts (issue 5, points 1 and 5; PHOENIX.md
// §1): SIGTERM makes the edge close sockets with 1012, the phoenix client
// reconnects and rejoins by itself, its join params (re-evaluated on every
// rejoin) carry {after: last id seen}, and it receives exactly the messages
// sent while it was away, once each and in order, then live ones again.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, joinReply, pushReply, sleep, until } from './stack.mjs';

describe('reconnect', () => {
  let s;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
  });
  after(async () => {
    await s?.stop();
  });

  it('catches up exactly the messages missed while the edge restarted', { timeout: 60000 },
    async () => {
      const alice = await s.devToken('alice');
      const bob = await s.devToken('bob');
      const room = await s.createRoom(alice.token, 'restart');
      await s.joinRoom(bob.token, room.id);
      const topic = `room:${room.id}`;

      const sa = await s.connect(alice.token);
      const sb = await s.connect(bob.token);
      const closes = [];
      let opens = 0;
      sb.onClose((e) => closes.push(e.code));
      sb.onOpen(() => opens++);

      const cha = sa.channel(topic, {});
      assert.equal((await joinReply(cha)).status, 'ok');

      // Bob's app remembers the newest message it saw and asks for what came
      // after it whenever the channel (re)joins.
      let lastId = null;
      const seen = [];
      const chb = sb.channel(topic, () => (lastId ? { after: lastId } : {}));
      chb.on('message_received', (m) => {
        seen.push(m.id);
        lastId = m.id;
      });
      let joinOks = 0;
      // The join push's hooks stay registered, so 'ok' fires again on every rejoin.
      const firstJoin = new Promise((resolve) => {
        chb.join().receive('ok', () => {
          joinOks++;
          resolve();
        });
      });
      await firstJoin;

      // Two live messages before the restart.
      const before1 = await pushReply(cha, 'send_message', { content: 'before 1' });
      const before2 = await pushReply(cha, 'send_message', { content: 'before 2' });
      assert.equal(before1.status, 'ok');
      assert.equal(before2.status, 'ok');
      await until(() => seen.length >= 2, 5000, 'the messages before the restart');
      assert.deepEqual(seen, [before1.response.id, before2.response.id]);
      assert.equal(lastId, before2.response.id);

      // The edge drains: sockets are closed with 1012 (Service Restart).
      const exit = await s.stopEdge();
      assert.equal(exit.code, 0, `the edge exited with ${JSON.stringify(exit)}`);
      await until(() => closes.length >= 1, 5000, 'bob\'s socket to close');
      assert.equal(closes[0], 1012, `close codes ${JSON.stringify(closes)}`);
      assert.equal(chb.state === 'joined', false);

      // Messages sent while the edge is down.
      const missed = [];
      for (let i = 1; i <= 4; i++) {
        missed.push((await s.sendRest(alice.token, room.id, `while down ${i}`)).id);
      }
      assert.deepEqual([...missed].sort(), missed, 'ids rise in commit order');
      const seenBefore = seen.length;

      await s.startEdge();
      // The client reconnects by itself (at most 5 s apart) and rejoins.
      await until(() => joinOks >= 2, 15000, 'bob to reconnect and rejoin');
      assert.ok(opens >= 1, 'the socket did not reopen');
      await until(() => seen.length >= seenBefore + missed.length, 10000,
        'the missed messages');
      await sleep(700);
      const caught = seen.slice(seenBefore);
      assert.deepEqual(caught, missed, 'exactly the missed messages, once each, in order');

      // Live messages continue, once each.
      const live = await s.sendRest(alice.token, room.id, 'after the restart');
      await until(() => seen.includes(live.id), 10000, 'the live message after the restart');
      await sleep(300);
      assert.deepEqual(seen.slice(seenBefore), [...missed, live.id]);
      assert.deepEqual(seen, [before1.response.id, before2.response.id, ...missed, live.id]);
      const ids = [...seen];
      assert.deepEqual(ids, [...ids].sort(), 'ids ascending');

      // Alice's client came back as well and can send again.
      await until(() => cha.state === 'joined', 15000, 'alice to rejoin');
      const again = await pushReply(cha, 'send_message', { content: 'alice is back' });
      assert.equal(again.status, 'ok', JSON.stringify(again));
      await until(() => seen.includes(again.response.id), 5000, 'alice\'s message after rejoin');
    });

  it('catches up nothing and duplicates nothing when nothing was missed', { timeout: 60000 },
    async () => {
      const carol = await s.devToken('carol');
      const room = await s.createRoom(carol.token, 'quiet');
      const topic = `room:${room.id}`;
      const sock = await s.connect(carol.token);
      let lastId = null;
      const seen = [];
      const ch = sock.channel(topic, () => (lastId ? { after: lastId } : {}));
      ch.on('message_received', (m) => {
        seen.push(m.id);
        lastId = m.id;
      });
      assert.equal((await joinReply(ch)).status, 'ok');
      const m1 = await s.sendRest(carol.token, room.id, 'one');
      await until(() => seen.includes(m1.id), 5000, 'the first message');

      const closes = [];
      sock.onClose((e) => closes.push(e.code));
      await s.restartEdge();
      await until(() => closes.length >= 1, 5000, 'the close');
      assert.equal(closes[0], 1012);
      await until(() => ch.state === 'joined', 15000, 'the rejoin');
      await sleep(700);
      assert.deepEqual(seen, [m1.id]);
      const m2 = await s.sendRest(carol.token, room.id, 'two');
      await until(() => seen.includes(m2.id), 5000, 'the live message');
      await sleep(300);
      assert.deepEqual(seen, [m1.id, m2.id]);
    });

  it('a rejoin after a hard kill (no drain) also catches up', { timeout: 60000 }, async () => {
    const dave = await s.devToken('dave');
    const room = await s.createRoom(dave.token, 'killed');
    const topic = `room:${room.id}`;
    const sock = await s.connect(dave.token);
    let lastId = null;
    const seen = [];
    const ch = sock.channel(topic, () => (lastId ? { after: lastId } : {}));
    ch.on('message_received', (m) => {
      seen.push(m.id);
      lastId = m.id;
    });
    assert.equal((await joinReply(ch)).status, 'ok');
    const m1 = await s.sendRest(dave.token, room.id, 'one');
    await until(() => seen.includes(m1.id), 5000, 'the first message');

    await s.killEdge();
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push((await s.sendRest(dave.token, room.id, `m${i}`)).id);
    await s.startEdge();
    await until(() => seen.length >= 1 + missed.length, 15000, 'the missed messages');
    await sleep(700);
    assert.deepEqual(seen, [m1.id, ...missed]);
  });
});
