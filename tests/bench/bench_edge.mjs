// The WebSocket edge benchmark (`make bench-edge`, part of `make bench`; see
// docs/benchmarks.md): resident memory per idle authenticated socket with one
// joined room, measured at BENCH_SOCKETS sockets, then fan-out deliveries per
// second and send→receive latency for one room of BENCH_FANOUT_SOCKETS sockets.
// It starts its own stack in a temporary directory (nats-server with JetStream,
// auth, rooms, messages, presence, gateway, edge from $BUILD/bin), as bench_send does,
// and reports the CPU time of each process apart from the generator's own.
//
// The load generator is this process: raw Phoenix Channels v2 frames over the
// `ws` package (tests/bench/edge/package.json). Run it through
// tests/bench/edge.sh, which installs `ws` and raises the descriptor limit.
//
// Environment: BUILD (where bin/ is, default "build"), BENCH_SOCKETS (10000),
// BENCH_ROOMS (rooms the idle sockets are spread over, 100: every join gets
// the room's presence state, so one room of 10 000 measures presence's crowd
// cap rather than an idle socket), BENCH_USERS (users
// the sockets share, 10), BENCH_BATCH (sockets opened at once, 200),
// BENCH_SETTLE_MS (2000), BENCH_IDLE_MS (the window in which the idle
// sockets' heartbeats are measured, 10000), BENCH_FANOUT_SOCKETS (1000),
// BENCH_MESSAGES (200 per round), BENCH_INFLIGHT (sends in flight at once in
// the first round, 10), BENCH_PACED_RATE (messages per second of the second
// round, 20; 0: no second round), BENCH_KEEP (keep the temporary directory
// and the logs).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');

function die(msg) {
  process.stderr.write(`bench_edge: ${msg}${tmpdir ? ` (logs in ${tmpdir})` : ''}\n`);
  process.exitCode = 1;
  throw new Fatal(msg);
}
class Fatal extends Error {}
let tmpdir = '';

// `ws` comes from the bench's own package (npm ci in tests/bench/edge).
let WebSocket;
try {
  WebSocket = createRequire(path.join(HERE, 'edge', 'package.json'))('ws');
} catch {
  process.stderr.write('bench_edge: the ws package is missing: run `bash tests/bench/edge.sh`, ' +
    'which installs it (npm ci in tests/bench/edge)\n');
  process.exit(1);
}

function envInt(name, def, min, max) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`bench_edge: ${name} must be an integer from ${min} to ${max}, got '${v}'\n`);
    process.exit(1);
  }
  return n;
}

// The client ports of one address pair run out near 28 000 (32768-60999).
const N_IDLE = envInt('BENCH_SOCKETS', 10000, 1, 25000);
const N_ROOMS = envInt('BENCH_ROOMS', 100, 1, 1000);
const N_USERS = envInt('BENCH_USERS', 10, 1, 1000);
const BATCH = envInt('BENCH_BATCH', 200, 1, 5000);
const SETTLE_MS = envInt('BENCH_SETTLE_MS', 2000, 0, 60000);
const IDLE_MS = envInt('BENCH_IDLE_MS', 10000, 1000, 120000);
const N_FAN = envInt('BENCH_FANOUT_SOCKETS', 1000, 1, 25000);
const N_MSGS = envInt('BENCH_MESSAGES', 200, 1, 100000);
const INFLIGHT = envInt('BENCH_INFLIGHT', 10, 1, 1000);
const PACED_RATE = envInt('BENCH_PACED_RATE', 20, 0, 10000);
const WARM_MSGS = 10;
const JOIN_TIMEOUT_MS = 30000;
const FANOUT_TIMEOUT_MS = 90000;
// Each socket sends a heartbeat every 30 s, as the phoenix client does (the
// edge closes a socket silent for 60 s); they are spread evenly over the
// period, as a real population's are, by sending a slice every 100 ms.
const HEARTBEAT_MS = 30000;
const HB_TICK_MS = 100;
const BUILD = process.env.BUILD || 'build';
const BIN = path.resolve(ROOT, BUILD, 'bin');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

async function until(cond, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) die(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// ---- processes ----

// Children die with this process even when it is killed outright: setpriv asks
// the kernel to send them SIGKILL when their parent goes (as bench_send's prctl).
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
const procs = [];

function spawnProc(name, file, args, env) {
  const log = path.join(tmpdir, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const [cmd, argv] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args]]
    : [file, args];
  const child = spawn(cmd, argv, { env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const p = { name, child, log, alive: true };
  p.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    p.alive = false;
    resolve({ code, signal });
  }));
  child.on('error', (e) => fs.appendFileSync(log, `spawn ${file}: ${e.message}\n`));
  procs.push(p);
  return p;
}

async function stopProc(p) {
  if (!p.alive) return;
  p.child.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      resolve();
    }, 15000);
  });
  await Promise.race([p.exited, late]);
  clearTimeout(timer);
}

function killAllNow() {
  for (const p of procs) if (p.alive) p.child.kill('SIGKILL');
}
process.once('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAllNow();
    process.exit(128 + os.constants.signals[sig]);
  });
}

function binary(name) {
  const file = path.join(BIN, name);
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    die(`${file} is missing: build it first (make bins BUILD=${BUILD})`);
  }
  return file;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// ---- /proc ----

// utime + stime of the whole process (every thread), in ms.
function cpuMs(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

// VmRSS, RssAnon and RssFile in bytes.
function memOf(pid) {
  const out = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(VmRSS|RssAnon|RssFile|VmHWM):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

const MEASURED = ['edge', 'nats-server', 'rooms', 'messages', 'presence', 'auth', 'gateway'];

function cpuSnap() {
  const s = {};
  for (const p of procs) if (p.alive && MEASURED.includes(p.name)) s[p.name] = cpuMs(p.child.pid);
  const g = process.cpuUsage();
  s.generator = (g.user + g.system) / 1000;
  return s;
}

function cpuDiff(a, b) {
  const d = {};
  for (const k of Object.keys(b)) if (k in a) d[k] = b[k] - a[k];
  return d;
}

// ---- the stack ----

const stack = {};

async function httpJson(method, url, token, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await r.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the message.
  }
  return { status: r.status, body: parsed };
}

async function httpStatus(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

async function api(token, method, p, body) {
  const r = await httpJson(method, `${stack.base}${p}`, token, body);
  if (r.status < 200 || r.status > 299) die(`${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.data;
}

async function edgeHealth() {
  const r = await httpJson('GET', `http://127.0.0.1:${stack.edgePort}/healthz`);
  return r.body;
}

async function edgeDeliveries() {
  const r = await fetch(`http://127.0.0.1:${stack.edgePort}/metrics`);
  const m = /^natter_edge_deliveries_total (\d+)$/m.exec(await r.text());
  return m ? Number(m[1]) : NaN;
}

async function startStack() {
  tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'natter-bench-edge-'));
  const natsPort = await freePort();
  spawnProc('nats-server', 'nats-server',
    ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', path.join(tmpdir, 'nats')],
    process.env);
  await until(() => portOpen(natsPort), 10000, `nats-server on port ${natsPort}`);

  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || tmpdir,
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
    NATTER_DATA_DIR: path.join(tmpdir, 'data'),
    NATTER_MIGRATIONS_DIR: path.join(ROOT, 'schemas/migrations'),
    NATTER_WEB_DIR: '/nonexistent',
    NATTER_LOG_LEVEL: 'info',
  };
  spawnProc('auth', binary('auth'), [], env);
  spawnProc('rooms', binary('rooms'), [], env);
  spawnProc('presence', binary('presence'), [], env);
  // The per-user send limit is not what is measured (as in bench_send).
  spawnProc('messages', binary('messages'), [], {
    ...env,
    NATTER_MESSAGES_RATE: '1000000',
    NATTER_MESSAGES_BURST: '1000000',
  });
  stack.httpPort = await freePort();
  stack.base = `http://127.0.0.1:${stack.httpPort}`;
  // Set-up makes its REST calls from one address: the gateway's limits are
  // lifted so they cannot refuse it.
  spawnProc('gateway', binary('gateway'), [], {
    ...env,
    NATTER_HTTP_ADDR: '127.0.0.1',
    NATTER_HTTP_PORT: String(stack.httpPort),
    NATTER_RATE_IP_PER_S: '100000',
    NATTER_RATE_IP_BURST: '100000',
    NATTER_RATE_USER_PER_S: '100000',
    NATTER_RATE_USER_BURST: '100000',
  });
  stack.edgePort = await freePort();
  // The per-socket inbound frame limit (50/s) would pace the one sender
  // socket of the fan-out; it is not what is measured.
  stack.edgeEnv = { EDGE_FRAME_RATE: '100000', EDGE_FRAME_BURST: '100000' };
  stack.edge = spawnProc('edge', binary('edge'), [], {
    ...env,
    EDGE_ADDR: '127.0.0.1',
    EDGE_PORT: String(stack.edgePort),
    ...stack.edgeEnv,
  });

  await until(async () => (await httpStatus(`${stack.base}/readyz`)) === 200, 30000,
    'gateway /readyz 200');
  // /readyz speaks for auth; rooms and messages are ready when the gateway no
  // longer answers 503 (no instance listening) for their routes.
  const probe = await api(null, 'POST', '/api/dev/token', { username: 'bench-probe' });
  await until(async () => (await httpJson('GET', `${stack.base}/api/rooms`, probe.token)).status === 200,
    30000, 'rooms to answer');
  const missing = '/api/rooms/01890000-0000-7000-8000-000000000000/messages';
  await until(async () => (await httpJson('GET', `${stack.base}${missing}`, probe.token)).status !== 503,
    30000, 'messages to answer');
  await until(async () => {
    if (!stack.edge.alive) die('the edge exited during start-up');
    return (await httpStatus(`http://127.0.0.1:${stack.edgePort}/healthz`)) === 200;
  }, 30000, 'edge /healthz 200');
}

async function stopStack() {
  for (const p of [...procs].reverse()) await stopProc(p);
  if (process.env.BENCH_KEEP) {
    process.stderr.write(`bench_edge: logs kept in ${tmpdir}\n`);
  } else if (tmpdir) {
    fs.rmSync(tmpdir, { recursive: true, force: true });
  }
}

function dumpLogs(lines = 30) {
  for (const p of procs) {
    let text;
    try {
      text = fs.readFileSync(p.log, 'utf8');
    } catch {
      text = '(no log)';
    }
    process.stderr.write(`---- ${p.name} ----\n${text.split('\n').slice(-lines - 1).join('\n')}\n`);
  }
}

// ---- sockets ----

const live = new Set(); // open sockets, for heartbeats
const closeCodes = new Map(); // unexpected closes by code
let hbRef = 0;

function wsUrl(token) {
  const q = new URLSearchParams({ token, vsn: '2.0.0' }).toString();
  return `ws://127.0.0.1:${stack.edgePort}/socket/websocket?${q}`;
}

// Opens a socket as token, joins topic with join_ref "1", and resolves with the
// socket once the join is acknowledged; onText then gets every text frame.
function openJoined(token, topic, onText) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(token), {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: JOIN_TIMEOUT_MS,
    });
    let joined = false;
    const fail = (e) => {
      clearTimeout(timer);
      ws.terminate();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`join of ${topic} not acknowledged within ${
      JOIN_TIMEOUT_MS} ms`)), JOIN_TIMEOUT_MS);
    ws.on('error', (e) => {
      if (!joined) fail(e);
    });
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      fail(new Error(`upgrade refused: HTTP ${res.statusCode}`));
    });
    ws.once('open', () => ws.send(JSON.stringify(['1', '1', topic, 'phx_join', {}])));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      if (joined) {
        if (onText) onText(text);
        return;
      }
      if (!text.includes('"phx_reply"')) return;
      const f = JSON.parse(text);
      if (f[1] !== '1' || f[2] !== topic) return;
      if (f[4]?.status !== 'ok') {
        fail(new Error(`join refused: ${text}`));
        return;
      }
      joined = true;
      clearTimeout(timer);
      live.add(ws);
      ws.once('close', (code) => {
        live.delete(ws);
        if (!ws.benchClosing) closeCodes.set(code, (closeCodes.get(code) || 0) + 1);
      });
      resolve(ws);
    });
  });
}

// Opens n joined sockets, BATCH at a time; mk(i) opens the i-th.
async function openMany(n, mk, label) {
  const out = [];
  let shown = now();
  for (let i = 0; i < n; i += BATCH) {
    const k = Math.min(BATCH, n - i);
    const batch = await Promise.all(Array.from({ length: k }, (_, j) => mk(i + j)));
    out.push(...batch);
    if (now() - shown > 5000) {
      process.stderr.write(`bench_edge: ${label}: ${out.length}/${n} sockets joined\n`);
      shown = now();
    }
  }
  return out;
}

// Closes sockets and waits until the edge counts none open.
async function closeAll(sockets) {
  for (const ws of sockets) {
    ws.benchClosing = true;
    ws.close(1000);
  }
  await until(async () => (await edgeHealth()).sockets === 0, 30000, 'the edge to see every socket closed');
  for (const ws of sockets) ws.terminate();
}

let hbIter = null;
let hbSent = 0;
let hbDue = 0; // heartbeats owed, fractions included
const heartbeat = setInterval(() => {
  hbDue += (live.size * HB_TICK_MS) / HEARTBEAT_MS;
  const k = Math.floor(hbDue);
  hbDue -= k;
  for (let j = 0; j < k; j++) {
    let r = hbIter?.next();
    if (!r || r.done) {
      hbIter = live.values();
      r = hbIter.next();
      if (r.done) return;
    }
    if (r.value.readyState === WebSocket.OPEN) {
      r.value.send(`[null,"hb${++hbRef}","phoenix","heartbeat",{}]`);
      hbSent++;
    }
  }
}, HB_TICK_MS);
heartbeat.unref();

// ---- reporting ----

const MiB = (b) => `${(b / 1048576).toFixed(1)} MiB`;
const fmtMs = (v) => (v === undefined ? '-' : v.toFixed(0));

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
}

function machine() {
  const cpus = os.cpus();
  const git = spawnSync('git', ['-C', ROOT, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' });
  const loadavg = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log('WebSocket edge benchmark (tests/bench/bench_edge.mjs)');
  console.log(`machine: ${cpus.length} CPUs (${cpus[0]?.model ?? '?'}), ` +
    `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, node ${process.version}`);
  console.log(`load average at start: ${loadavg}`);
  if (git.status === 0) {
    const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'services', 'shared'],
      { encoding: 'utf8' }).stdout.trim();
    console.log(`commit: ${git.stdout.trim()}` +
      `${dirty ? ' (the work tree has uncommitted changes under services/ or shared/)' : ''}`);
  }
  const rel = path.relative(ROOT, BIN);
  console.log(`edge: ${rel.startsWith('..') ? BIN : rel}/edge, defaults except ` +
    `${Object.entries(stack.edgeEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`);
}

// ---- a. memory per idle socket ----

async function idleSockets(users, rooms) {
  console.log(`\na. idle sockets: ${N_IDLE} sockets of ${users.length} users, each joined to one of ` +
    `${rooms.length} room(s), opened ${BATCH} at a time (load average ${os.loadavg()[0].toFixed(2)})`);
  const pid = stack.edge.child.pid;
  await sleep(500);
  const before = memOf(pid);
  const c0 = cpuSnap();
  const t0 = now();
  const sockets = await openMany(N_IDLE, (i) =>
    openJoined(users[i % users.length].token, `room:${rooms[i % rooms.length].id}`), 'idle');
  const t1 = now();
  const c1 = cpuSnap();
  await sleep(SETTLE_MS);
  const health = await edgeHealth();
  const after = memOf(pid);
  const genRss = process.memoryUsage().rss;
  if (closeCodes.size) die(`sockets closed by the edge: ${JSON.stringify([...closeCodes])}`);
  if (health.sockets !== N_IDLE) die(`the edge counts ${health.sockets} sockets, not ${N_IDLE}`);
  const cpu = cpuDiff(c0, c1);
  const secs = (t1 - t0) / 1000;
  const per = (after.VmRSS - before.VmRSS) / N_IDLE;
  console.log(`   all joined in ${secs.toFixed(1)} s (${(N_IDLE / secs).toFixed(0)} sockets/s); ` +
    `edge /healthz: ${health.sockets} sockets, ${health.topics} topics, ${health.subscriptions} NATS subscriptions`);
  console.log(`   edge VmRSS before ${MiB(before.VmRSS)}, after ${MiB(after.VmRSS)} ` +
    `(${SETTLE_MS} ms after the last join): +${MiB(after.VmRSS - before.VmRSS)}`);
  console.log(`     of which anonymous +${MiB(after.RssAnon - before.RssAnon)}, ` +
    `file-backed +${MiB(after.RssFile - before.RssFile)}`);
  console.log(`   edge memory per idle socket: ${per.toFixed(0)} bytes ` +
    `(anonymous ${((after.RssAnon - before.RssAnon) / N_IDLE).toFixed(0)} bytes)`);
  console.log(`   CPU ms while connecting and joining: edge ${fmtMs(cpu.edge)}, rooms ${fmtMs(cpu.rooms)}, ` +
    `nats-server ${fmtMs(cpu['nats-server'])}, auth ${fmtMs(cpu.auth)}; generator ${fmtMs(cpu.generator)}`);
  console.log(`   edge CPU per socket (upgrade, token check, profile, join, authorize): ` +
    `${((cpu.edge * 1000) / N_IDLE).toFixed(0)} µs; generator RSS ${MiB(genRss)}`);

  // Idle: nothing but each socket's heartbeat every 30 s.
  const h0 = hbSent;
  const i0 = cpuSnap();
  const ti0 = now();
  await sleep(IDLE_MS);
  const i1 = cpuSnap();
  const idleS = (now() - ti0) / 1000;
  const hb = hbSent - h0;
  const idle = cpuDiff(i0, i1);
  const idleHealth = await edgeHealth();
  if (idleHealth.sockets !== N_IDLE || closeCodes.size) {
    die(`sockets lost while idle: the edge counts ${idleHealth.sockets}; closes ${JSON.stringify([...closeCodes])}`);
  }
  console.log(`   idle for ${idleS.toFixed(1)} s, ${hb} heartbeats (${(hb / idleS).toFixed(0)}/s): ` +
    `edge ${fmtMs(idle.edge)} ms CPU = ${(idle.edge / idleS / 10).toFixed(1)} % of one core, ` +
    `${((idle.edge * 1000) / Math.max(hb, 1)).toFixed(0)} µs per heartbeat; ` +
    `generator ${fmtMs(idle.generator)} ms`);
  await closeAll(sockets);
  await sleep(500);
  const closed = memOf(pid);
  console.log(`   after closing them all: edge VmRSS ${MiB(closed.VmRSS)}`);
  return { n: N_IDLE, before, after, closed, per, secs, cpu, idle, idleS, hb };
}

// ---- b. fan-out ----

async function fanOut(users, room, sender) {
  const topic = `room:${room.id}`;
  console.log(`\nb. fan-out: ${N_FAN} sockets of ${users.length} users joined to one room; one more ` +
    `socket sends ${N_MSGS} messages per round (load average ${os.loadavg()[0].toFixed(2)})`);

  // What the receivers count, per round: contents are "<round> <seq> <sent at>".
  const st = { prefix: '', total: 0, received: 0, lat: null, first: null, counts: null, lastAt: 0, finish: null };
  const receivers = await openMany(N_FAN, (i) => openJoined(users[i % users.length].token, topic, (text) => {
    if (!text.includes('"message_received"')) return;
    const t = now();
    const f = JSON.parse(text);
    if (f[2] !== topic || f[3] !== 'message_received') return;
    const parts = String(f[4].content).split(' ');
    if (parts[0] !== st.prefix) return;
    const l = t - Number(parts[2]);
    if (st.received < st.total) st.lat[st.received] = l;
    const seq = Number(parts[1]);
    if (l < st.first[seq]) st.first[seq] = l;
    st.received++;
    st.counts[i]++;
    st.lastAt = t;
    if (st.received === st.total) st.finish();
  }), 'fan-out');

  // The sender: replies come back on its own socket, matched by ref.
  const snd = { pending: new Map(), lat: [], replies: 0, errors: 0, errorSample: '', onReply: null };
  const ws = await openJoined(sender.token, topic, (text) => {
    if (!text.includes('"phx_reply"')) return;
    const f = JSON.parse(text);
    const t0 = snd.pending.get(f[1]);
    if (t0 === undefined) return;
    snd.pending.delete(f[1]);
    snd.replies++;
    if (f[4]?.status === 'ok') {
      snd.lat.push(now() - t0);
    } else {
      snd.errors++;
      snd.errorSample = text.slice(0, 200);
    }
    if (snd.onReply) snd.onReply();
  });
  const send = (prefix, seq) => {
    const ref = `${prefix}-${seq}`;
    const t = now();
    snd.pending.set(ref, t);
    ws.send(JSON.stringify(['1', ref, topic, 'send_message',
      { content: `${prefix} ${seq} ${t.toFixed(3)}`, client_ref: ref }]));
  };

  // One round of m messages: {inflight} sends the next as soon as a reply
  // frees a slot; {rate} sends at that many per second whatever the replies.
  async function round(prefix, m, mode, label) {
    st.prefix = prefix;
    st.total = N_FAN * m;
    st.received = 0;
    st.lat = new Float64Array(st.total);
    st.first = new Float64Array(m).fill(Infinity); // per message, its first socket's
    st.counts = new Uint32Array(N_FAN);
    st.lastAt = 0;
    snd.pending.clear();
    snd.lat = [];
    snd.replies = 0;
    snd.errors = 0;
    let done = null;
    const finished = new Promise((resolve) => {
      st.finish = () => {
        if (done) return;
        done = { at: st.lastAt, cpu: cpuSnap() };
        resolve();
      };
    });
    const d0 = await edgeDeliveries();
    const c0 = cpuSnap();
    const t0 = now();
    const timers = [];
    let next = 0;
    let lastSend = t0;
    if (mode.rate) {
      for (let seq = 0; seq < m; seq++) {
        timers.push(setTimeout(() => {
          send(prefix, seq);
          lastSend = now();
        }, (seq * 1000) / mode.rate));
      }
    } else {
      snd.onReply = () => {
        while (next < m && next - snd.replies < mode.inflight) send(prefix, next++);
        lastSend = now();
      };
      snd.onReply();
    }
    let timedOut = false;
    timers.push(setTimeout(() => {
      timedOut = true;
      st.finish();
    }, FANOUT_TIMEOUT_MS));
    // With failed sends fewer deliveries come: finish once every reply is in
    // and every acknowledged message has reached every socket.
    while (!done) {
      if (snd.errors > 0 && snd.replies === m && st.received >= N_FAN * (m - snd.errors)) st.finish();
      await Promise.race([finished, sleep(20)]);
    }
    for (const t of timers) clearTimeout(t);
    snd.onReply = null;
    await sleep(200); // late duplicates, if any, show in the counts
    const d1 = await edgeDeliveries();
    const received = st.received;
    const expected = N_FAN * (m - snd.errors);
    const n = Math.min(received, st.total);
    const sorted = st.lat.subarray(0, n).sort();
    const sendSorted = Float64Array.from(snd.lat).sort();
    const firstSorted = st.first.filter(Number.isFinite).sort();
    let minC = Infinity;
    let maxC = 0;
    for (const c of st.counts) {
      minC = Math.min(minC, c);
      maxC = Math.max(maxC, c);
    }
    const cpu = cpuDiff(c0, done.cpu);
    const wall = (done.at - t0) / 1000;
    const r = {
      label,
      received,
      perS: received / wall,
      msgsPerS: (m - snd.errors) / wall,
      sendRate: (m / Math.max(lastSend - t0, 1)) * 1000,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted[n - 1],
      firstP50: percentile(firstSorted, 0.5),
      firstP99: percentile(firstSorted, 0.99),
      cpu,
    };
    if (label) {
      console.log(`   ${label}:`);
      console.log(`     ${received} of ${expected} deliveries in ${wall.toFixed(2)} s (first send to last ` +
        `delivery): ${r.perS.toFixed(0)} deliveries/s, ${r.msgsPerS.toFixed(0)} messages/s`);
      console.log(`     send→receive latency ms: p50 ${r.p50.toFixed(1)}, p99 ${r.p99.toFixed(1)}, ` +
        `max ${r.max.toFixed(1)}; to the first socket of each message: p50 ${r.firstP50.toFixed(1)}, ` +
        `p99 ${r.firstP99.toFixed(1)}`);
      console.log(`     send→reply ms (the sender's phx_reply): p50 ${percentile(sendSorted, 0.5).toFixed(1)}, ` +
        `p99 ${percentile(sendSorted, 0.99).toFixed(1)}`);
      console.log(`     per socket ${minC}..${maxC} messages; failed sends ${snd.errors}` +
        `${snd.errors ? ` (${snd.errorSample})` : ''}; edge deliveries_total +${d1 - d0} ` +
        '(the sender\'s socket included)');
      console.log(`     CPU ms: edge ${fmtMs(cpu.edge)}, messages ${fmtMs(cpu.messages)}, ` +
        `rooms ${fmtMs(cpu.rooms)}, nats-server ${fmtMs(cpu['nats-server'])}; generator ${fmtMs(cpu.generator)}`);
      console.log(`     CPU per delivery: edge ${((cpu.edge * 1000) / Math.max(received, 1)).toFixed(2)} µs, ` +
        `generator ${((cpu.generator * 1000) / Math.max(received, 1)).toFixed(2)} µs`);
    }
    if (received !== expected || maxC > m) {
      die(`${prefix}: ${received} deliveries, expected ${expected} (per socket ${minC}..${maxC})` +
        `${timedOut ? `; gave up after ${FANOUT_TIMEOUT_MS} ms` : ''}`);
    }
    if (snd.errors) die(`${prefix}: ${snd.errors} sends failed: ${snd.errorSample}`);
    if (closeCodes.size) die(`sockets closed by the edge: ${JSON.stringify([...closeCodes])}`);
    return r;
  }

  // A short warm-up, so that first-use costs (statements, buffers) are not in
  // the measured rounds.
  await round('warm', WARM_MSGS, { inflight: INFLIGHT }, null);
  const max = await round('max', N_MSGS, { inflight: INFLIGHT },
    `as fast as the replies allow, ${INFLIGHT} sends in flight`);
  let paced = null;
  if (PACED_RATE > 0) {
    paced = await round('paced', N_MSGS, { rate: PACED_RATE },
      `paced at ${PACED_RATE} messages/s (${PACED_RATE * N_FAN} deliveries/s offered)`);
  }
  await closeAll([...receivers, ws]);
  return { max, paced };
}

// ---- main ----

async function main() {
  const ulimit = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
  if (Number(ulimit) < Math.max(N_IDLE, N_FAN) + 200) {
    process.stderr.write(`bench_edge: the descriptor limit is ${ulimit}; run through tests/bench/edge.sh, ` +
      'which raises it (ulimit -n)\n');
    process.exit(1);
  }
  await startStack();
  machine();
  const users = [];
  for (let i = 0; i < N_USERS; i++) {
    users.push(await api(null, 'POST', '/api/dev/token', { username: `bench${String(i).padStart(3, '0')}` }));
  }
  const sender = await api(null, 'POST', '/api/dev/token', { username: 'bench-sender' });
  const rooms = [];
  for (let i = 0; i < N_ROOMS; i++) rooms.push(await api(users[0].token, 'POST', '/api/rooms', { name: `idle-${i}` }));
  const fanRoom = await api(users[0].token, 'POST', '/api/rooms', { name: 'fanout' });
  for (const u of [...users.slice(1), sender]) {
    for (const r of [...rooms, fanRoom]) await api(u.token, 'POST', `/api/rooms/${r.id}/join`);
  }

  const a = await idleSockets(users, rooms);
  const b = await fanOut(users, fanRoom, sender);

  console.log('\nsummary');
  console.log(`  memory per idle socket (${a.n} sockets, one joined room): ${a.per.toFixed(0)} bytes ` +
    `(edge VmRSS ${MiB(a.before.VmRSS)} -> ${MiB(a.after.VmRSS)})`);
  for (const r of [b.max, b.paced]) {
    if (!r) continue;
    console.log(`  fan-out to ${N_FAN} sockets, ${r.label}: ${r.perS.toFixed(0)} deliveries/s, ` +
      `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, edge ` +
      `${((r.cpu.edge * 1000) / Math.max(r.received, 1)).toFixed(2)} µs CPU per delivery`);
  }
  console.log(`  idle ${a.n} sockets, ${(a.hb / a.idleS).toFixed(0)} heartbeats/s: edge ` +
    `${(a.idle.edge / a.idleS / 10).toFixed(1)} % of one core`);
  console.log(`  CPU ms           connect ${`idle ${a.idleS.toFixed(0)} s`.padStart(9)}  fan-out` +
    `${b.paced ? '    paced' : ''}`);
  for (const k of ['edge', 'rooms', 'messages', 'presence', 'nats-server', 'auth', 'gateway',
    'generator']) {
    console.log(`  ${k.padEnd(15)}${fmtMs(a.cpu[k]).padStart(8)} ${fmtMs(a.idle[k]).padStart(9)} ` +
      `${fmtMs(b.max.cpu[k]).padStart(8)}${b.paced ? ` ${fmtMs(b.paced.cpu[k]).padStart(8)}` : ''}`);
  }
  console.log(`  load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

try {
  await main();
} catch (e) {
  if (!(e instanceof Fatal)) process.stderr.write(`bench_edge: ${e.stack || e}\n`);
  if (procs.length) dumpLogs();
  process.exitCode = 1;
} finally {
  clearInterval(heartbeat);
  for (const ws of live) ws.terminate();
  await stopStack();
}
