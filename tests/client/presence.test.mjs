// Presence (issue 6) with the official phoenix client's Presence class: who is
// in a room (presence_state / presence_diff, one meta per joined channel) and
// who is online anywhere (presence_update events, REST members), across tabs,
// two edge instances, an edge killed outright and the presence service killed
// and restarted. The edge and presence run with short intervals so that the
// dead-edge bound (NATTER_PRESENCE_EDGE_TIMEOUT_MS + 1 s, documented) is
// observed in seconds rather than the default's 31.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Presence } from 'phoenix';
import { RawClient, Stack, itLogged, joinReply, sleep, until } from './stack.mjs';

const EDGE_TIMEOUT_MS = 4000;
const SNAPSHOT_MS = 500;

// A channel with a Presence that records what its callbacks saw.
function watch(sock, topic, params = {}) {
  const ch = sock.channel(topic, params);
  const p = new Presence(ch);
  const w = { ch, p, syncs: 0, joins: [], leaves: [], updates: [] };
  p.onSync(() => {
    w.syncs++;
  });
  p.onJoin((id, current, joined) => w.joins.push({ id, refs: joined.metas.map((m) => m.phx_ref) }));
  p.onLeave((id, current, left) => w.leaves.push({
    id, refs: left.metas.map((m) => m.phx_ref), remaining: current.metas.length,
  }));
  ch.on('presence_update', (u) => w.updates.push(u));
  return w;
}

// {user_id: [phx_ref, ...]} of a Presence's list, refs sorted.
function listed(w) {
  const out = {};
  w.p.list((id, { metas }) => {
    out[id] = metas.map((m) => m.phx_ref).sort();
  });
  return out;
}

async function joined(w) {
  const r = await joinReply(w.ch);
  assert.equal(r.status, 'ok', `join: ${JSON.stringify(r.response)}`);
  return w;
}

describe('presence', () => {
  let s;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start({
      env: {
        NATTER_PRESENCE_EDGE_TIMEOUT_MS: String(EDGE_TIMEOUT_MS),
        NATTER_PRESENCE_WARMUP_MS: '2000',
        EDGE_PRESENCE_INTERVAL_MS: String(SNAPSHOT_MS),
      },
    });
  });
  after(async () => {
    await s?.stop();
  });

  async function pair(name) {
    const alice = await s.devToken(`${name}-alice`);
    const bob = await s.devToken(`${name}-bob`);
    const room = await s.createRoom(alice.token, name);
    await s.joinRoom(bob.token, room.id);
    return { alice, bob, room, topic: `room:${room.id}` };
  }

  it('two users each see the other after onSync, with username and online_at', { timeout: 30000 },
    async () => {
      const { alice, bob, topic } = await pair('two-users');
      const wa = await joined(watch(await s.connect(alice.token), topic));
      await until(() => wa.syncs > 0 && listed(wa)[alice.user_id], 5000, 'alice to see herself');
      const wb = await joined(watch(await s.connect(bob.token), topic));
      await until(() => wb.syncs > 0 && listed(wb)[alice.user_id] && listed(wb)[bob.user_id], 5000,
        'bob to see both');
      await until(() => listed(wa)[bob.user_id], 5000, 'alice to see bob');
      assert.deepEqual(Object.keys(listed(wa)).sort(), [alice.user_id, bob.user_id].sort());
      assert.deepEqual(listed(wa), listed(wb), 'both see the same metas');
      const meta = wa.p.list((id, { metas }) => (id === bob.user_id ? metas[0] : null))
        .find((m) => m);
      assert.equal(meta.username, `two-users-bob`);
      assert.match(meta.online_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(typeof meta.phx_ref, 'string');
      // One join of bob's, one meta, seen once by alice.
      assert.equal(wa.joins.filter((j) => j.id === bob.user_id).length, 1);
    });

  it('a join granted before the socket\'s profile arrives still shows the username',
    { timeout: 30000 }, async () => {
      const { alice, bob, topic } = await pair('slow-profile');
      const wa = await joined(watch(await s.connect(alice.token), topic));
      // auth answers the edge's profile request only once it is continued.
      const auth = s.procs.find((p) => p.name === 'auth' && p.alive);
      auth.child.kill('SIGSTOP');
      let wb;
      try {
        wb = watch(await s.connect(bob.token), topic);
        await joined(wb);
        await sleep(300);
        assert.equal(listed(wa)[bob.user_id], undefined, 'tracked before the profile came');
      } finally {
        auth.child.kill('SIGCONT');
      }
      await until(() => listed(wa)[bob.user_id], 10000, 'bob to be tracked');
      const names = [];
      wa.p.list((id, { metas }) => names.push(...metas.map((m) => `${id}:${m.username}`)));
      assert.ok(names.includes(`${bob.user_id}:slow-profile-bob`), names.join(', '));
      await until(() => wb.syncs > 0 && listed(wb)[alice.user_id], 5000, 'bob\'s state');
    });

  it('a second tab adds a meta; closing it removes only that meta', { timeout: 30000 },
    async () => {
      const { alice, bob, topic } = await pair('tabs');
      const wa = await joined(watch(await s.connect(alice.token), topic));
      const tab1 = await joined(watch(await s.connect(bob.token), topic));
      await until(() => listed(wa)[bob.user_id]?.length === 1, 5000, 'bob\'s first tab');
      const first = listed(wa)[bob.user_id][0];

      const sock2 = await s.connect(bob.token);
      const tab2 = await joined(watch(sock2, topic));
      await until(() => listed(wa)[bob.user_id]?.length === 2, 5000, 'bob\'s second tab');
      // The new tab sees both of its user's metas in its own state.
      await until(() => listed(tab2)[bob.user_id]?.length === 2, 5000, 'tab 2 to see both tabs');
      const second = listed(wa)[bob.user_id].find((r) => r !== first);

      sock2.disconnect();
      await until(() => listed(wa)[bob.user_id]?.length === 1, 5000, 'the second meta to go');
      assert.deepEqual(listed(wa)[bob.user_id], [first], 'the first tab\'s meta stays');
      const left = wa.leaves.find((l) => l.id === bob.user_id);
      assert.deepEqual(left.refs, [second], 'the leave carries the closed tab\'s phx_ref');
      assert.equal(left.remaining, 1);
      assert.deepEqual(listed(tab1)[bob.user_id], [first]);
    });

  it('leaving the channel gives the others onLeave and takes the user off the list',
    { timeout: 30000 }, async () => {
      const { alice, bob, topic } = await pair('leave');
      const wa = await joined(watch(await s.connect(alice.token), topic));
      const wb = await joined(watch(await s.connect(bob.token), topic));
      await until(() => listed(wa)[bob.user_id], 5000, 'alice to see bob');
      const ref = listed(wa)[bob.user_id][0];
      await new Promise((resolve) => wb.ch.leave().receive('ok', resolve));
      await until(() => !listed(wa)[bob.user_id], 5000, 'bob to leave alice\'s list');
      assert.deepEqual(wa.leaves.filter((l) => l.id === bob.user_id),
        [{ id: bob.user_id, refs: [ref], remaining: 0 }]);
      assert.deepEqual(Object.keys(listed(wa)), [alice.user_id]);
    });

  it('after the edge restarts, onSync fires again with the right list', { timeout: 60000 },
    async () => {
      const { alice, bob, topic } = await pair('reconnect');
      const wa = await joined(watch(await s.connect(alice.token), topic));
      const wb = await joined(watch(await s.connect(bob.token), topic));
      await until(() => listed(wa)[bob.user_id] && listed(wb)[alice.user_id], 5000, 'both seen');
      const refsBefore = listed(wa)[bob.user_id];
      const syncsBefore = wa.syncs;
      await s.restartEdge();
      // Both rejoin by themselves; the new presence_state for alice's new join
      // holds both users with new refs (the old metas are gone with the edge).
      await until(() => wa.syncs > syncsBefore && listed(wa)[bob.user_id] &&
        listed(wa)[bob.user_id][0] !== refsBefore[0] && listed(wa)[alice.user_id], 20000,
      'alice\'s list to be rebuilt');
      await until(() => listed(wa)[bob.user_id].length === 1 &&
        listed(wa)[alice.user_id].length === 1, 5000, 'one meta each');
      assert.deepEqual(Object.keys(listed(wa)).sort(), [alice.user_id, bob.user_id].sort());
      await until(() => listed(wb)[alice.user_id]?.length === 1, 5000, 'bob\'s list rebuilt');
    });

  it('REST members carry online and last_seen', { timeout: 30000 }, async () => {
    const { alice, bob, room } = await pair('members');
    const members = async () => {
      const d = await s.data(alice.token, 'GET', `/api/rooms/${room.id}/members`);
      const list = Array.isArray(d) ? d : d.members || d.items;
      return Object.fromEntries(list.map((m) => [m.user_id, m]));
    };
    const sock = await s.connect(bob.token);
    await until(async () => (await members())[bob.user_id].online === true, 5000, 'bob online');
    assert.equal((await members())[alice.user_id].online, false);
    sock.disconnect();
    await until(async () => (await members())[bob.user_id].online === false, 5000, 'bob offline');
    assert.match((await members())[bob.user_id].last_seen, /^\d{4}-\d\d-\d\dT/);
  });

  it('two edges: a user on both stays online when one closes; a killed edge takes its users '
    + 'offline within the bound', { timeout: 60000 }, async () => {
    const carol = await s.devToken('edges-carol');
    const dave = await s.devToken('edges-dave');
    const erin = await s.devToken('edges-erin');
    const room = await s.createRoom(dave.token, 'edges');
    await s.joinRoom(carol.token, room.id);
    await s.joinRoom(erin.token, room.id);
    const topic = `room:${room.id}`;
    const e2 = await s.addEdge({ EDGE_PRESENCE_INTERVAL_MS: String(SNAPSHOT_MS) });

    const wd = await joined(watch(await s.connect(dave.token), topic));
    const carol1 = await s.connect(carol.token);
    const wc1 = await joined(watch(carol1, topic));
    const carol2 = await s.connect(carol.token, { wsBase: e2.wsBase });
    const wc2 = await joined(watch(carol2, topic));
    const erinSock = await s.connect(erin.token, { wsBase: e2.wsBase });
    const we = await joined(watch(erinSock, topic));
    // Erin's first state, from edge 2, holds the users of edge 1 (from the
    // presence service) and carol's edge-2 tab (from edge 2 itself).
    await until(() => we.syncs > 0, 5000, 'erin\'s first sync');
    assert.equal(listed(we)[dave.user_id]?.length, 1, JSON.stringify(listed(we)));
    assert.equal(listed(we)[carol.user_id]?.length, 2, JSON.stringify(listed(we)));
    assert.equal(listed(we)[erin.user_id]?.length, 1, JSON.stringify(listed(we)));
    await until(() => listed(wd)[carol.user_id]?.length === 2 && listed(wd)[erin.user_id],
      5000, 'dave to see carol twice (two edges) and erin');
    assert.deepEqual(listed(wd), listed(we), 'both edges give the same view');
    await until(() => wd.updates.some((u) => u.user_id === erin.user_id && u.online), 5000,
      'erin\'s online update');
    assert.ok(wc1 && wc2);

    // Carol closes her edge-2 socket: one meta goes, she stays online.
    carol2.disconnect();
    await until(() => listed(wd)[carol.user_id]?.length === 1, 5000, 'carol\'s edge-2 meta to go');
    await sleep(SNAPSHOT_MS * 3);
    assert.equal(wd.updates.filter((u) => u.user_id === carol.user_id && !u.online).length, 0,
      'carol went offline while still connected to edge 1');

    // Edge 2 dies without a word: erin (only there) goes offline within the
    // bound; carol (on edge 1) does not.
    const killedAt = Date.now();
    await e2.proc.stop('SIGKILL');
    const off = await until(() => wd.updates.find((u) => u.user_id === erin.user_id && !u.online),
      EDGE_TIMEOUT_MS + 1000 + 3000, 'erin\'s offline update');
    const took = Date.now() - killedAt;
    assert.ok(took <= EDGE_TIMEOUT_MS + 1000 + 1500, `offline after ${took} ms`);
    assert.ok(took >= EDGE_TIMEOUT_MS - SNAPSHOT_MS - 500,
      `offline after ${took} ms: before the edge timeout, so not by the sweep`);
    assert.match(off.last_seen, /^\d{4}-\d\d-\d\dT/);
    await until(() => !listed(wd)[erin.user_id], 8000, 'erin\'s meta to leave dave\'s list')
      .catch((e) => {
        throw new Error(`${e.message}: list ${JSON.stringify(listed(wd))} leaves ${
          JSON.stringify(wd.leaves)}`);
      });
    assert.equal(listed(wd)[carol.user_id]?.length, 1, 'carol is still in the room');
    assert.equal(wd.updates.filter((u) => u.user_id === carol.user_id && !u.online).length, 0);
  });

  it('presence killed and restarted recovers the online set without clients reconnecting',
    { timeout: 60000 }, async () => {
      const { alice, bob, room, topic } = await pair('restart-presence');
      const frank = await s.devToken('restart-presence-frank');
      await s.joinRoom(frank.token, room.id);
      const sa = await s.connect(alice.token);
      const wa = await joined(watch(sa, topic));
      const sb = await s.connect(bob.token);
      await joined(watch(sb, topic));
      const sf = await s.connect(frank.token);
      await joined(watch(sf, topic));
      let reopened = 0;
      for (const sock of [sa, sb]) sock.onOpen(() => reopened++);
      await until(() => listed(wa)[bob.user_id] && listed(wa)[frank.user_id], 5000, 'all online');

      // Frank leaves while presence is down: nobody hears his disconnect.
      await s.restartProc('presence', 'SIGKILL', async () => {
        sf.disconnect();
        await sleep(300);
      });
      const members = async () => {
        const d = await s.data(alice.token, 'GET', `/api/rooms/${room.id}/members`);
        const list = Array.isArray(d) ? d : d.members || d.items;
        return Object.fromEntries(list.map((m) => [m.user_id, m.online]));
      };
      await until(async () => {
        const m = await members();
        return m[alice.user_id] === true && m[bob.user_id] === true && m[frank.user_id] === false;
      }, 15000, 'the online set to be alice and bob again');
      // A new join gets the full room from the restarted service.
      const sb2 = await s.connect(bob.token);
      const wb2 = await joined(watch(sb2, topic));
      await until(() => wb2.syncs > 0 && listed(wb2)[alice.user_id] &&
        listed(wb2)[bob.user_id]?.length === 2, 5000, 'a new join to see alice and both of bob');
      assert.equal(listed(wb2)[frank.user_id], undefined);
      assert.equal(reopened, 0, 'a client reconnected');
      assert.equal(wa.updates.filter((u) => !u.online && u.user_id !== frank.user_id).length, 0,
        'a connected user was reported offline');
      await until(() => wa.updates.some((u) => u.user_id === frank.user_id && !u.online), 10000,
        'frank\'s offline update');
    });
});

// A crowd larger than the state cap: each join would cost a state of the
// room's size, so past EDGE_PRESENCE_STATE_MAX_BYTES the state is {} and the
// client learns the room from the diffs that follow.
describe('presence in a crowd', () => {
  let s;
  const it = itLogged(() => s);
  const CAP = 4096; // some 40 metas

  before(async () => {
    s = await Stack.start({ env: { EDGE_PRESENCE_STATE_MAX_BYTES: String(CAP) } });
  });
  after(async () => {
    await s?.stop();
  });

  it('past the cap a join gets {} and then every change', { timeout: 60000 }, async () => {
    const owner = await s.devToken('crowd-owner');
    const room = await s.createRoom(owner.token, 'crowd');
    const topic = `room:${room.id}`;
    const users = [];
    for (let i = 0; i < 6; i++) users.push(await s.devToken(`crowd-${i}`));
    for (const u of users) await s.joinRoom(u.token, room.id);
    const states = [];
    // 60 channels of 6 users (10 sockets each), one after another.
    for (let i = 0; i < 60; i++) {
      const c = await s.rawOpen(users[i % 6].token);
      const reply = await c.join(topic, '1');
      assert.equal(reply[4].status, 'ok');
      const st = await c.next((f) => f[2] === topic && f[3] === 'presence_state', 5000);
      assert.equal(st[0], '1', 'presence_state carries the join_ref');
      const metas = Object.values(st[4]).reduce((n, p) => n + p.metas.length, 0);
      states.push({ c, metas, bytes: JSON.stringify(st[4]).length });
    }
    // Early joins see everyone before them; once the crowd passes the cap
    // the state is empty rather than too large.
    assert.equal(states[0].metas, 1);
    assert.equal(states[9].metas, 10);
    for (const st of states) assert.ok(st.bytes <= CAP, `a state of ${st.bytes} bytes`);
    const last = states[59];
    assert.equal(last.metas, 0, 'the 60th join got a non-empty state');
    // The crowd still hears a newcomer join and leave.
    const late = await s.rawOpen(owner.token);
    await late.join(topic, '9');
    const joinDiff = await last.c.next((f) => f[2] === topic && f[3] === 'presence_diff' &&
      f[4].joins[owner.user_id], 5000);
    const ref = joinDiff[4].joins[owner.user_id].metas[0].phx_ref;
    late.destroy();
    await last.c.next((f) => f[2] === topic && f[3] === 'presence_diff' &&
      f[4].leaves[owner.user_id]?.metas[0].phx_ref === ref, 5000);
    // On another edge, where this room has nobody yet, presence refuses the
    // crowd and the joiner gets {} too, not a list of that edge's own.
    const e2 = await s.addEdge({ EDGE_PRESENCE_STATE_MAX_BYTES: String(CAP) });
    const other = new RawClient(`${e2.wsBase}/websocket?${new URLSearchParams({
      token: users[0].token, vsn: '2.0.0' })}`);
    s.clients.add(other);
    await other.opened;
    assert.equal((await other.join(topic, '1'))[4].status, 'ok');
    const st2 = await other.next((f) => f[2] === topic && f[3] === 'presence_state', 5000);
    assert.deepEqual(st2[4], {});
    // Every socket is still open: nothing was closed for its queue.
    for (const st of states) assert.equal(st.c.closeInfo, null);
  });
});
