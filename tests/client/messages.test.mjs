// Messages and typing over the edge (issue 5, points 3 and 4): two clients
// exchange messages both ways and both see every broadcast, REST sends reach
// sockets, invalid sends get the service's error, and typing indicators are
// debounced and stopped automatically, on typing_stop, on leave and on
// disconnect.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, joinReply, pushReply, sleep, until } from './stack.mjs';

const T = { timeout: 30000 };
const MESSAGE_FIELDS = ['id', 'room_id', 'user_id', 'username', 'content', 'message_type',
  'created_at'];

describe('messages and typing', () => {
  let s;
  let alice;
  let bob;
  let sa; // alice's socket
  let sb; // bob's socket
  let roomSeq = 0;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
    alice = await s.devToken('alice');
    bob = await s.devToken('bob');
    sa = await s.connect(alice.token);
    sb = await s.connect(bob.token);
  });
  after(async () => {
    await s?.stop();
  });

  // A fresh public room with alice and bob in it, both channels joined, and
  // every event each of them receives recorded with its arrival time.
  async function pair(sockA = sa, sockB = sb) {
    const room = await s.createRoom(alice.token, `room-${++roomSeq}`);
    await s.joinRoom(bob.token, room.id);
    const topic = `room:${room.id}`;
    const a = { ch: sockA.channel(topic, {}), got: [] };
    const b = { ch: sockB.channel(topic, {}), got: [] };
    for (const side of [a, b]) {
      for (const ev of ['message_received', 'typing_indicator']) {
        side.ch.on(ev, (payload) => side.got.push({ ev, payload, at: Date.now() }));
      }
      const r = await joinReply(side.ch);
      assert.equal(r.status, 'ok', `join: ${JSON.stringify(r)}`);
    }
    return { room, topic, a, b };
  }

  const received = (side, id) => side.got.filter((g) => g.ev === 'message_received' &&
    g.payload.id === id);
  const typing = (side, userId) => side.got.filter((g) => g.ev === 'typing_indicator' &&
    g.payload.user_id === userId);

  function assertMessage(m, want) {
    for (const f of MESSAGE_FIELDS) assert.ok(f in m, `message lacks ${f}: ${JSON.stringify(m)}`);
    for (const [k, v] of Object.entries(want)) assert.equal(m[k], v, `${k} in ${JSON.stringify(m)}`);
  }

  describe('exchange', () => {
    it('two clients exchange messages both ways; both receive every broadcast', T, async () => {
      const { room, a, b } = await pair();
      const r1 = await pushReply(a.ch, 'send_message', { content: 'hello bob', client_ref: 'a-1' });
      assert.equal(r1.status, 'ok', JSON.stringify(r1));
      assertMessage(r1.response, { room_id: room.id, user_id: alice.user_id, username: 'alice',
        content: 'hello bob', message_type: 'text', client_ref: 'a-1' });

      const r2 = await pushReply(b.ch, 'send_message', { content: 'hello alice', client_ref: 'b-1' });
      assert.equal(r2.status, 'ok', JSON.stringify(r2));
      assertMessage(r2.response, { room_id: room.id, user_id: bob.user_id, username: 'bob',
        content: 'hello alice', message_type: 'text', client_ref: 'b-1' });

      for (const [side, who] of [[a, 'alice'], [b, 'bob']]) {
        for (const sent of [r1.response, r2.response]) {
          await until(() => received(side, sent.id).length >= 1, 5000,
            `${who} to receive ${sent.content}`);
          assert.deepEqual(received(side, sent.id)[0].payload, sent,
            'the broadcast is the stored message');
        }
      }
      await sleep(300);
      for (const side of [a, b]) {
        const ids = side.got.filter((g) => g.ev === 'message_received').map((g) => g.payload.id);
        assert.deepEqual(ids, [r1.response.id, r2.response.id], 'once each, in order');
      }
    });

    it('delivers a message sent over REST as message_received', T, async () => {
      const { room, a, b } = await pair();
      const sent = await s.sendRest(alice.token, room.id, 'over REST', { client_ref: 'rest-1' });
      for (const side of [a, b]) {
        await until(() => received(side, sent.id).length >= 1, 5000, 'the REST message');
        assert.deepEqual(received(side, sent.id)[0].payload, sent);
      }
    });

    it('accepts message_type and 4000 code points', T, async () => {
      const { b } = await pair();
      const long = '€'.repeat(4000);
      const r = await pushReply(b.ch, 'send_message', { content: long, message_type: 'text' });
      assert.equal(r.status, 'ok', JSON.stringify(r).slice(0, 300));
      assert.equal(r.response.content, long);
      const img = await pushReply(b.ch, 'send_message',
        { content: 'https://example.com/a.png', message_type: 'image' });
      assert.equal(img.status, 'ok', JSON.stringify(img));
      assert.equal(img.response.message_type, 'image');
    });

    it('a retried client_ref returns the first message and announces nothing', T, async () => {
      const { a, b } = await pair();
      const first = await pushReply(a.ch, 'send_message', { content: 'once', client_ref: 'retry-1' });
      assert.equal(first.status, 'ok', JSON.stringify(first));
      const again = await pushReply(a.ch, 'send_message', { content: 'once', client_ref: 'retry-1' });
      assert.equal(again.status, 'ok', JSON.stringify(again));
      assert.equal(again.response.id, first.response.id);
      await until(() => received(b, first.response.id).length >= 1, 5000, 'the broadcast');
      await sleep(500);
      assert.equal(received(b, first.response.id).length, 1);
    });

    it('the sender\'s message arrives on every socket of the same user too', T, async () => {
      const { room, a } = await pair();
      const second = await s.connect(alice.token);
      const ch = second.channel(`room:${room.id}`, {});
      const got = [];
      ch.on('message_received', (m) => got.push(m.id));
      assert.equal((await joinReply(ch)).status, 'ok');
      const r = await pushReply(a.ch, 'send_message', { content: 'to my other tab' });
      assert.equal(r.status, 'ok');
      await until(() => got.includes(r.response.id), 5000, 'the other tab to receive it');
      second.disconnect();
    });
  });

  describe('send_message errors', () => {
    const cases = [
      ['empty content', { content: '' }],
      ['white space only', { content: ' \n\t ' }],
      ['4001 code points', { content: 'a'.repeat(4001) }],
      ['no content', {}],
      ['content of the wrong type', { content: 42 }],
      ['an unknown field', { content: 'x', colour: 'red' }],
      ['a bad client_ref', { content: 'x', client_ref: 'has space' }],
      ['a bad message_type', { content: 'x', message_type: 'video' }],
    ];
    for (const [name, payload] of cases) {
      it(`answers ${name} with error invalid_request and a message`, T, async () => {
        const { room, a, b } = await pair();
        const r = await pushReply(a.ch, 'send_message', payload);
        assert.equal(r.status, 'error', JSON.stringify(r));
        assert.equal(r.response.reason, 'invalid_request', JSON.stringify(r));
        assert.equal(typeof r.response.message, 'string');
        assert.ok(r.response.message.length > 0);
        await sleep(200);
        assert.equal(b.got.filter((g) => g.ev === 'message_received').length, 0);
        const hist = await s.data(alice.token, 'GET', `/api/rooms/${room.id}/messages`);
        assert.equal(hist.messages.length, 0);
      });
    }

    it('ignores a room_id in the payload: the topic decides the room', T, async () => {
      const { room, a } = await pair();
      const other = await s.createRoom(alice.token, 'elsewhere');
      const r = await pushReply(a.ch, 'send_message', { content: 'here', room_id: other.id });
      if (r.status === 'ok') {
        assert.equal(r.response.room_id, room.id, 'the message went to another room');
      } else {
        assert.equal(r.response.reason, 'invalid_request', JSON.stringify(r));
      }
      const hist = await s.data(alice.token, 'GET', `/api/rooms/${other.id}/messages`);
      assert.equal(hist.messages.length, 0, 'the payload\'s room_id chose the room');
    });
  });

  describe('typing', () => {
    it('typing_start reaches the other member; a second start within 2 s is debounced; ' +
      'typing_stop ends it at once', T, async () => {
      const { a, b } = await pair();
      a.ch.push('typing_start', {});
      await until(() => typing(b, alice.user_id).length >= 1, 3000, 'typing_indicator');
      const ev = typing(b, alice.user_id)[0].payload;
      assert.equal(ev.user_id, alice.user_id);
      assert.equal(ev.username, 'alice');
      assert.equal(ev.typing, true);

      a.ch.push('typing_start', {});
      await sleep(1000);
      assert.equal(typing(b, alice.user_id).length, 1, 'a second start within 2 s was announced');

      const t0 = Date.now();
      a.ch.push('typing_stop', {});
      await until(() => typing(b, alice.user_id).length >= 2, 2000, 'typing:false');
      const stop = typing(b, alice.user_id)[1];
      assert.equal(stop.payload.typing, false);
      assert.equal(stop.payload.user_id, alice.user_id);
      assert.ok(stop.at - t0 < 1000, `typing_stop took ${stop.at - t0} ms`);
      await sleep(300);
      assert.equal(typing(b, alice.user_id).length, 2, 'more typing events than start and stop');
    });

    it('stops automatically about 6 s after a start without refresh', { timeout: 20000 },
      async () => {
        const { a, b } = await pair();
        const t0 = Date.now();
        a.ch.push('typing_start', {});
        await until(() => typing(b, alice.user_id).length >= 1, 3000, 'typing:true');
        assert.equal(typing(b, alice.user_id)[0].payload.typing, true);
        await until(() => typing(b, alice.user_id).length >= 2, 10000, 'the automatic stop');
        const stop = typing(b, alice.user_id)[1];
        assert.equal(stop.payload.typing, false);
        const took = stop.at - t0;
        assert.ok(took >= 5000 && took <= 9000, `automatic stop after ${took} ms`);
      });

    it('leaving the channel while typing announces typing:false', T, async () => {
      const { a, b } = await pair();
      a.ch.push('typing_start', {});
      await until(() => typing(b, alice.user_id).length >= 1, 3000, 'typing:true');
      const t0 = Date.now();
      a.ch.leave();
      await until(() => typing(b, alice.user_id).length >= 2, 4000, 'typing:false on leave');
      const stop = typing(b, alice.user_id)[1];
      assert.equal(stop.payload.typing, false);
      assert.ok(stop.at - t0 < 2000, `typing:false ${stop.at - t0} ms after the leave`);
    });

    it('disconnecting while typing announces typing:false', T, async () => {
      const own = await s.connect(alice.token);
      const { a, b } = await pair(own, sb);
      a.ch.push('typing_start', {});
      await until(() => typing(b, alice.user_id).length >= 1, 3000, 'typing:true');
      const t0 = Date.now();
      own.disconnect();
      await until(() => typing(b, alice.user_id).length >= 2, 4000, 'typing:false on disconnect');
      const stop = typing(b, alice.user_id)[1];
      assert.equal(stop.payload.typing, false);
      assert.ok(stop.at - t0 < 2000, `typing:false ${stop.at - t0} ms after the disconnect`);
    });

    it('is per user and room: two tabs of one user start once and stop when both stop', T,
      async () => {
        const tab2 = await s.connect(alice.token);
        const { topic, a, b } = await pair();
        const a2 = tab2.channel(topic, {});
        assert.equal((await joinReply(a2)).status, 'ok');
        a.ch.push('typing_start', {});
        await until(() => typing(b, alice.user_id).length >= 1, 3000, 'typing:true');
        a2.push('typing_start', {}); // the second tab, within the debounce
        await sleep(800);
        assert.equal(typing(b, alice.user_id).length, 1, 'the second tab announced again');
        a.ch.push('typing_stop', {}); // one tab stops; the user still types in the other
        await sleep(800);
        assert.equal(typing(b, alice.user_id).length, 1, 'a stop while another tab types');
        a2.push('typing_stop', {});
        await until(() => typing(b, alice.user_id).length >= 2, 2000, 'typing:false');
        assert.equal(typing(b, alice.user_id)[1].payload.typing, false);
        // The payload is exactly the schema's (json/event-typing-indicator).
        assert.deepEqual(Object.keys(typing(b, alice.user_id)[1].payload).sort(),
          ['typing', 'user_id', 'username']);
        tab2.disconnect();
      });

    it('typing in one room is not announced in another', T, async () => {
      const one = await pair();
      const two = await pair();
      one.a.ch.push('typing_start', {});
      await until(() => typing(one.b, alice.user_id).length >= 1, 3000, 'typing:true');
      await sleep(300);
      assert.equal(two.b.got.filter((g) => g.ev === 'typing_indicator').length, 0);
      one.a.ch.push('typing_stop', {});
    });
  });
});
