// Joining and leaving (PHOENIX.md §0, §4, §5, §6): which topics a user may
// join and the exact refusals, a second join replacing the first, the
// "unmatched topic" error for pushes without a join, and leave then close.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, joinReply, pushReply, sleep, until, within } from './stack.mjs';

const T = { timeout: 30000 };
const MISSING_ROOM = '01890000-0000-7000-8000-0000000000aa';

describe('join', () => {
  let s;
  let alice;
  let bob;
  let pub; // alice's public room; bob is not in it
  let priv; // alice's private room
  let shared; // a public room both are in
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
    alice = await s.devToken('alice');
    bob = await s.devToken('bob');
    pub = await s.createRoom(alice.token, 'public-alice');
    priv = await s.createRoom(alice.token, 'private-alice', { isPrivate: true });
    shared = await s.createRoom(alice.token, 'shared');
    await s.joinRoom(bob.token, shared.id);
  });
  after(async () => {
    await s?.stop();
  });

  describe('authorisation of topics', () => {
    let sock;
    before(async () => {
      sock = await s.connect(bob.token);
    });
    after(() => sock?.disconnect());

    it('joins room:<id> of a room the user is a member of', T, async () => {
      const ch = sock.channel(`room:${shared.id}`, {});
      const r = await joinReply(ch);
      assert.equal(r.status, 'ok', JSON.stringify(r));
      assert.equal(ch.state, 'joined');
      await leave(ch);
    });

    it('joins room:<id> of the room its creator made (admin)', T, async () => {
      const other = await s.connect(alice.token);
      const r = await joinReply(other.channel(`room:${priv.id}`, {}));
      assert.equal(r.status, 'ok', JSON.stringify(r));
      other.disconnect();
    });

    it('refuses a foreign private room with not_found', T, async () => {
      const r = await joinReply(sock.channel(`room:${priv.id}`, {}));
      assert.deepEqual(r, { status: 'error', response: { reason: 'not_found' } });
    });

    it('refuses a room that does not exist with not_found, as a private one', T, async () => {
      const r = await joinReply(sock.channel(`room:${MISSING_ROOM}`, {}));
      assert.deepEqual(r, { status: 'error', response: { reason: 'not_found' } });
    });

    it('refuses a public room the user has not joined with forbidden', T, async () => {
      const r = await joinReply(sock.channel(`room:${pub.id}`, {}));
      assert.deepEqual(r, { status: 'error', response: { reason: 'forbidden' } });
    });

    it('joins user:<own id>', T, async () => {
      const ch = sock.channel(`user:${bob.user_id}`, {});
      const r = await joinReply(ch);
      assert.equal(r.status, 'ok', JSON.stringify(r));
      await leave(ch);
    });

    it('refuses user:<other id> with forbidden', T, async () => {
      const r = await joinReply(sock.channel(`user:${alice.user_id}`, {}));
      assert.deepEqual(r, { status: 'error', response: { reason: 'forbidden' } });
    });

    it('refuses an unknown topic with "unmatched topic"', T, async () => {
      const r = await joinReply(sock.channel('lobby:1', {}));
      assert.deepEqual(r, { status: 'error', response: { reason: 'unmatched topic' } });
    });

    it('joins a public room after joining it over REST', T, async () => {
      const room = await s.createRoom(alice.token, 'joined-later');
      const refused = await joinReply(sock.channel(`room:${room.id}`, {}));
      assert.deepEqual(refused, { status: 'error', response: { reason: 'forbidden' } });
      await s.joinRoom(bob.token, room.id);
      const r = await joinReply(sock.channel(`room:${room.id}`, {}));
      assert.equal(r.status, 'ok', JSON.stringify(r));
    });

    it('delivers invitations on user:<own id>', T, async () => {
      const ch = sock.channel(`user:${bob.user_id}`, {});
      const events = [];
      ch.on('room_invited', (p) => events.push(p));
      assert.equal((await joinReply(ch)).status, 'ok');
      const room = await s.createRoom(alice.token, 'invite-only', { isPrivate: true });
      await s.data(alice.token, 'POST', `/api/rooms/${room.id}/invite`, { user_id: bob.user_id });
      await within(waitFor(() => events.length >= 1), 5000, 'room_invited on user:<id>');
      assert.equal(JSON.stringify(events[0]).includes(room.id), true, JSON.stringify(events[0]));
      await leave(ch);
    });
  });

  describe('raw frames', () => {
    it('replaces a joined channel on a second join: reply, then phx_close of the old join_ref',
      T, async () => {
        const topic = `room:${shared.id}`;
        const c = await s.rawOpen(alice.token);
        const first = await c.join(topic, '1');
        assert.deepEqual(first.slice(0, 4), ['1', '1', topic, 'phx_reply']);
        assert.equal(first[4].status, 'ok', JSON.stringify(first));

        const mark = c.frames.length;
        c.send(['2', '2', topic, 'phx_join', {}]);
        const close = await c.next((f) => f[3] === 'phx_close', 5000, mark);
        const reply = await c.next((f) => f[1] === '2' && f[3] === 'phx_reply', 5000, mark);
        assert.deepEqual(reply.slice(0, 4), ['2', '2', topic, 'phx_reply']);
        assert.equal(reply[4].status, 'ok', JSON.stringify(reply));
        assert.deepEqual(close, ['1', '1', topic, 'phx_close', {}]);
        assert.ok(c.frames.indexOf(reply) < c.frames.indexOf(close),
          'the new join\'s reply must come before the old join\'s phx_close');

        // The socket is in the room once, not twice.
        const sent = await s.sendRest(bob.token, shared.id, 'once please');
        await c.next((f) => f[3] === 'message_received' && f[4].id === sent.id, 5000);
        await sleep(500);
        const got = c.events(topic, 'message_received').filter((f) => f[4].id === sent.id);
        assert.equal(got.length, 1, `received ${got.length} copies`);
        assert.equal(got[0][0], null, 'a broadcast has a null join_ref');
        assert.equal(got[0][1], null, 'a broadcast has a null ref');
        c.destroy();
      });

    it('answers a push to a topic not joined with "unmatched topic" and a null join_ref', T,
      async () => {
        const topic = `room:${shared.id}`;
        const c = await s.rawOpen(alice.token);
        c.send(['9', '10', topic, 'send_message', { content: 'hi', client_ref: 'unmatched-1' }]);
        const f = await c.next((x) => x[1] === '10');
        assert.deepEqual(f, [null, '10', topic, 'phx_reply',
          { status: 'error', response: { reason: 'unmatched topic' } }]);
        // The same for a null join_ref and for a topic of no known kind.
        c.send([null, '11', 'lobby:1', 'shout', {}]);
        const g = await c.next((x) => x[1] === '11');
        assert.deepEqual(g, [null, '11', 'lobby:1', 'phx_reply',
          { status: 'error', response: { reason: 'unmatched topic' } }]);
        // Nothing was sent into the room.
        const hist = await s.data(alice.token, 'GET', `/api/rooms/${shared.id}/messages`);
        assert.equal(hist.messages.some((m) => m.client_ref === 'unmatched-1'), false);
        c.destroy();
      });

    it('answers phx_leave with ok, then phx_close with the join_ref; then no more events',
      T, async () => {
        const topic = `room:${shared.id}`;
        const c = await s.rawOpen(alice.token);
        const control = await s.rawOpen(bob.token);
        assert.equal((await c.join(topic, '3'))[4].status, 'ok');
        assert.equal((await control.join(topic, '1'))[4].status, 'ok');

        const mark = c.frames.length;
        c.send(['3', '4', topic, 'phx_leave', {}]);
        const reply = await c.next((f) => f[1] === '4', 5000, mark);
        assert.deepEqual(reply, ['3', '4', topic, 'phx_reply', { status: 'ok', response: {} }]);
        const close = await c.next((f) => f[3] === 'phx_close', 5000, mark);
        assert.deepEqual(close, ['3', '3', topic, 'phx_close', {}]);
        assert.ok(c.frames.indexOf(reply) < c.frames.indexOf(close));

        const sent = await s.sendRest(bob.token, shared.id, 'after the leave');
        await control.next((f) => f[3] === 'message_received' && f[4].id === sent.id);
        await sleep(500);
        // Events of the room may come while the join still stands (presence
        // announces the two users coming online just then); once phx_close
        // is out, nothing more of the topic.
        const late = c.frames.slice(c.frames.indexOf(close) + 1).filter((f) => f[2] === topic &&
          !['phx_reply', 'phx_close'].includes(f[3]));
        assert.deepEqual(late, [], 'frames for a left topic');

        // A push after the leave is unmatched again.
        c.send(['3', '5', topic, 'send_message', { content: 'x' }]);
        const un = await c.next((f) => f[1] === '5');
        assert.deepEqual(un[4], { status: 'error', response: { reason: 'unmatched topic' } });
        c.destroy();
        control.destroy();
      });

    it('answers phx_leave of a topic not joined with ok and nothing else', T, async () => {
      const topic = `room:${shared.id}`;
      const c = await s.rawOpen(alice.token);
      c.send([null, '7', topic, 'phx_leave', {}]);
      const reply = await c.next((f) => f[1] === '7');
      assert.deepEqual(reply, [null, '7', topic, 'phx_reply', { status: 'ok', response: {} }]);
      await sleep(300);
      assert.equal(c.frames.filter((f) => f[3] === 'phx_close').length, 0);
      c.destroy();
    });
  });

  describe('phoenix client', () => {
    it('leaves with ok, stops receiving, and disconnects cleanly', T, async () => {
      const sock = await s.connect(alice.token);
      const ch = sock.channel(`room:${shared.id}`, {});
      const got = [];
      ch.on('message_received', (m) => got.push(m.id));
      assert.equal((await joinReply(ch)).status, 'ok');

      const first = await s.sendRest(bob.token, shared.id, 'before leaving');
      await within(waitFor(() => got.includes(first.id)), 5000, 'the message before leaving');

      // phoenix.js resolves leave()'s "ok" locally at once (the channel is
      // already "leaving", so it cannot push); the server's answer is read
      // from the socket's message stream instead.
      const frames = [];
      sock.onMessage((m) => frames.push(m));
      const leavePush = ch.leave();
      const local = await within(new Promise((resolve) => {
        leavePush.receive('ok', () => resolve('ok')).receive('timeout', () => resolve('timeout'));
      }), 12000, 'the leave');
      assert.equal(local, 'ok');
      assert.equal(ch.state, 'closed');
      const topic = `room:${shared.id}`;
      await until(() => frames.some((m) => m.event === 'phx_close'), 5000, 'the phx_close');
      const reply = frames.find((m) => m.event === 'phx_reply' && m.ref === leavePush.ref);
      assert.ok(reply, `no reply to the leave: ${JSON.stringify(frames)}`);
      assert.deepEqual(reply.payload, { status: 'ok', response: {} });
      const close = frames.find((m) => m.event === 'phx_close');
      assert.deepEqual(close, { join_ref: reply.join_ref, ref: reply.join_ref, topic,
        event: 'phx_close', payload: {} });
      assert.ok(frames.indexOf(reply) < frames.indexOf(close), 'phx_close before the reply');

      // No other frame for the topic arrives after the leave.
      const control = await s.rawOpen(bob.token);
      assert.equal((await control.join(topic, '1'))[4].status, 'ok');
      const second = await s.sendRest(bob.token, shared.id, 'after leaving');
      await control.next((f) => f[3] === 'message_received' && f[4].id === second.id);
      await sleep(500);
      // Room events may come before the leave is done (the join's presence
      // diff goes out on the edge's next tick); after phx_close, none.
      assert.deepEqual(frames.slice(frames.indexOf(close) + 1).filter((m) => m.topic === topic), []);
      assert.deepEqual(got, [first.id]);
      control.destroy();

      const closed = new Promise((resolve) => sock.onClose((e) => resolve(e)));
      const done = new Promise((resolve) => sock.disconnect(resolve));
      await within(done, 5000, 'disconnect callback');
      const e = await within(closed, 5000, 'onClose');
      // disconnect() sends a close frame without a code, so the echo has none
      // either (1005), as in a browser; a clean close is the point.
      assert.equal(e.wasClean, true, 'the close handshake did not complete');
      assert.ok([1000, 1005].includes(e.code), `close code ${e.code}`);
      assert.equal(sock.isConnected(), false);
    });

    it('disconnect with code 1000 is echoed with 1000', T, async () => {
      const sock = await s.connect(alice.token);
      assert.equal((await joinReply(sock.channel(`user:${alice.user_id}`, {}))).status, 'ok');
      const closed = new Promise((resolve) => sock.onClose((e) => resolve(e)));
      sock.disconnect(null, 1000, 'bye');
      const e = await within(closed, 5000, 'onClose');
      assert.equal(e.wasClean, true);
      assert.equal(e.code, 1000);
    });

    it('replies ok to pushes on a joined channel and errors to unknown events', T, async () => {
      const sock = await s.connect(alice.token);
      const ch = sock.channel(`room:${shared.id}`, {});
      assert.equal((await joinReply(ch)).status, 'ok');
      const r = await pushReply(ch, 'no_such_event', {}, 3000);
      // Phoenix would crash the channel or not answer; an explicit error is
      // what a client can use. Either way the socket must stay usable.
      assert.notEqual(r.status, 'ok', JSON.stringify(r));
      const rtt = await within(new Promise((resolve) => sock.ping(resolve)), 5000, 'ping');
      assert.equal(typeof rtt, 'number');
      sock.disconnect();
    });
  });
});

// Resolves when cond() holds (polling every 10 ms).
function waitFor(cond) {
  return new Promise((resolve) => {
    const tick = () => (cond() ? resolve() : setTimeout(tick, 10));
    tick();
  });
}

// Leaves a phoenix channel and waits for the reply.
function leave(ch) {
  return within(new Promise((resolve) => {
    ch.leave().receive('ok', resolve).receive('timeout', resolve);
  }), 12000, 'the leave');
}
