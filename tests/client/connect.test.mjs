// Connecting: a valid token opens the socket, a bad or missing one is refused
// with HTTP 403 before the upgrade (PHOENIX.md §0, §1), and heartbeats are
// answered on topic "phoenix" without any join (§3).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Stack, itLogged, probeUpgrade, sleep, until, within } from './stack.mjs';

const T = { timeout: 20000 };

describe('connect', () => {
  let s;
  let alice;
  const it = itLogged(() => s);

  before(async () => {
    s = await Stack.start();
    alice = await s.devToken('alice');
  });
  after(async () => {
    await s?.stop();
  });

  it('opens a socket with a valid token (onOpen)', T, async () => {
    const sock = s.socket(alice.token);
    const opened = new Promise((resolve) => sock.onOpen(resolve));
    sock.connect();
    await within(opened, 5000, 'onOpen');
    assert.equal(sock.isConnected(), true);
    sock.disconnect();
  });

  it('answers the upgrade of a valid token with 101', T, async () => {
    const r = await probeUpgrade(s.wsUrl({ token: alice.token, vsn: '2.0.0' }));
    assert.equal(r.status, 101);
  });

  const forged = () => {
    const [h, p, sig] = alice.token.split('.');
    const flipped = sig[5] === 'A' ? 'B' : 'A';
    return `${h}.${p}.${sig.slice(0, 5)}${flipped}${sig.slice(6)}`;
  };
  const otherClaims = () => {
    const [h, p, sig] = alice.token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    claims.sub = 'user_000000000000000000000000';
    return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
  };
  const refused = [
    ['a garbage token', () => ({ token: 'garbage', vsn: '2.0.0' })],
    ['no token', () => ({ vsn: '2.0.0' })],
    ['an empty token', () => ({ token: '', vsn: '2.0.0' })],
    ['the literal token "undefined"', () => ({ token: 'undefined', vsn: '2.0.0' })],
    ['a token with a forged signature', () => ({ token: forged(), vsn: '2.0.0' })],
    ['a token whose claims were changed', () => ({ token: otherClaims(), vsn: '2.0.0' })],
  ];
  for (const [name, query] of refused) {
    it(`refuses ${name} with 403 and no upgrade`, T, async () => {
      const r = await probeUpgrade(s.wsUrl(query()));
      assert.equal(r.status, 403, `status ${r.status}`);
      assert.equal(r.headers.upgrade, undefined, 'a refused upgrade must not carry Upgrade');
    });
  }

  it('never opens a phoenix socket with a bad token; onError fires', T, async () => {
    const sock = s.socket('garbage');
    let opened = 0;
    let errors = 0;
    const closes = [];
    sock.onOpen(() => opened++);
    sock.onError(() => errors++);
    sock.onClose((e) => closes.push(e.code));
    sock.connect();
    // The client retries at 10, 50, 100, 150 ... ms: give it a few rounds.
    await sleep(1500);
    sock.disconnect();
    assert.equal(opened, 0, 'the socket opened with a bad token');
    assert.ok(errors >= 1, 'onError never fired');
    assert.ok(closes.length >= 1 && closes.every((c) => c === 1006),
      `close codes ${JSON.stringify(closes)}`);
  });

  it('takes a fresh token from the params function on reconnect', T, async () => {
    let token = 'garbage';
    const sock = s.socket(() => token);
    let errors = 0;
    const opened = new Promise((resolve) => sock.onOpen(resolve));
    sock.onError(() => {
      errors++;
      // After the first refusal the app obtains a valid token.
      token = alice.token;
    });
    sock.connect();
    await within(opened, 5000, 'the socket to open with the refreshed token');
    assert.ok(errors >= 1);
    sock.disconnect();
  });

  it('is reported by the gateway\'s /readyz', T, async () => {
    // The gateway looks for the edge every 2 s (issue 5, point 7).
    await until(async () => {
      const r = await s.api(null, 'GET', '/readyz');
      return r.status === 200 && r.body.checks && r.body.checks.edge === 'ok';
    }, 8000, '/readyz to report "edge":"ok"');
  });

  it('answers socket.ping with a round-trip time', T, async () => {
    const sock = await s.connect(alice.token);
    const rtt = await within(new Promise((resolve) => {
      assert.equal(sock.ping(resolve), true);
    }), 5000, 'the ping reply');
    assert.equal(typeof rtt, 'number');
    assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    sock.disconnect();
  });

  it('answers a raw heartbeat exactly, with no channel joined', T, async () => {
    const c = await s.rawOpen(alice.token);
    c.send([null, '1', 'phoenix', 'heartbeat', {}]);
    const f = await c.next((x) => x[1] === '1');
    assert.deepEqual(f, [null, '1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    // Refs are opaque strings and come back byte for byte.
    const ref = 'hé:ref-42';
    c.send([null, ref, 'phoenix', 'heartbeat', {}]);
    const g = await c.next((x) => x[1] === ref);
    assert.deepEqual(g, [null, ref, 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    c.destroy();
  });

  it('answers heartbeats while a channel is joined too', T, async () => {
    const c = await s.rawOpen(alice.token);
    const j = await c.join(`user:${alice.user_id}`, '1');
    assert.equal(j[4].status, 'ok', JSON.stringify(j));
    c.send([null, '2', 'phoenix', 'heartbeat', {}]);
    const f = await c.next((x) => x[1] === '2');
    assert.deepEqual(f, [null, '2', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    c.destroy();
  });
});
