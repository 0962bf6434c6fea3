// Starts and stops the real Natter stack for one test file (nats-server with
// JetStream, auth, rooms, messages, presence, gateway and edge, each on a free port in a
// temporary directory, as tests/integration/harness.c does) and gives the tests
// small helpers: REST calls, phoenix sockets over `ws`, and raw `ws` clients
// that see every frame.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it as nodeIt } from 'node:test';
import { Socket } from 'phoenix';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.NATTER_BIN || path.join(ROOT, 'build/bin');

// Children die with this process even when it is killed outright: setpriv asks
// the kernel to send them SIGKILL when their parent goes (as harness.c's prctl).
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Resolves when cond() is truthy (its value), rejects with what after timeoutMs.
export async function until(cond, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// A promise that rejects after ms unless p settles first.
export function within(p, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
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

async function httpStatus(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

// Every stack alive in this process, so that a signal or an exit still stops
// its processes.
const live = new Set();
function killAllNow() {
  for (const s of live) s.killNow();
}
process.once('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAllNow();
    process.exit(128 + os.constants.signals[sig]);
  });
}

class Proc {
  constructor(name, child, log) {
    this.name = name;
    this.child = child;
    this.log = log;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    this.alive = true;
    this.exited.then(() => {
      this.alive = false;
    });
  }

  // Sends sig and waits for the exit; SIGKILL after timeoutMs.
  async stop(sig = 'SIGTERM', timeoutMs = 10000) {
    if (!this.alive) return this.exited;
    this.child.kill(sig);
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, timeoutMs);
    });
    await Promise.race([this.exited, late]);
    clearTimeout(timer);
    return this.exited;
  }
}

export class Stack {
  // opts.messagesRate: false for the messages service's default rate limit
  //   (5/s, burst 10); otherwise 1000/s, burst 1000 so tests are not limited.
  // opts.edge: false to leave the edge out (only for checking this file by hand).
  // opts.env: extra variables for every service.
  static async start(opts = {}) {
    const s = new Stack(opts);
    live.add(s);
    try {
      await s.boot();
    } catch (e) {
      s.dumpLogs();
      await s.stop();
      throw e;
    }
    return s;
  }

  constructor(opts) {
    this.opts = { edge: true, messagesRate: true, ...opts };
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'natter-client-'));
    if (!process.env.KEEP) {
      // A runner that kills this process outright (a hang guard's SIGKILL)
      // leaves no chance to clean up: a small detached shell removes the
      // directory once this process is gone, whatever the way it went.
      spawn('sh', ['-c', 'while kill -0 "$OWNER" 2>/dev/null; do sleep 1; done; rm -rf "$DIR"'],
        { detached: true, stdio: 'ignore', env: { OWNER: String(process.pid), DIR: this.dir } })
        .unref();
    }
    this.procs = [];
    this.clients = new Set();
    this.logSeq = 0;
    this.stopped = false;
  }

  spawnProc(name, file, args, env) {
    const log = path.join(this.dir, `${name}-${++this.logSeq}.log`);
    const fd = fs.openSync(log, 'a');
    const argv = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args]] : [file, args];
    const child = spawn(argv[0], argv[1], { env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const p = new Proc(name, child, log);
    p.spawnArgs = { file, args, env };
    child.on('error', (e) => fs.appendFileSync(log, `spawn ${file}: ${e.message}\n`));
    this.procs.push(p);
    return p;
  }

  // Stops the running process called name with sig (SIGKILL: no goodbye),
  // awaits between() if given (what happens while it is down), and starts it
  // again with the same arguments; resolves with the new Proc.
  async restartProc(name, sig = 'SIGTERM', between = null) {
    const old = [...this.procs].reverse().find((p) => p.name === name && p.alive);
    if (!old) throw new Error(`no running ${name}`);
    await old.stop(sig);
    if (between) await between();
    const { file, args, env } = old.spawnArgs;
    return this.spawnProc(name, file, args, env);
  }

  binary(name) {
    const file = path.join(BIN, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      throw new Error(`binary ${file} is missing: build it first (make bins), or set NATTER_BIN`);
    }
    return file;
  }

  async boot() {
    const natsPort = await freePort();
    this.natsUrl = `nats://127.0.0.1:${natsPort}`;
    this.natsPort = natsPort;
    this.startNatsProc();
    await until(() => portOpen(natsPort), 10000, `nats-server on port ${natsPort}`);

    this.httpPort = await freePort();
    this.base = `http://127.0.0.1:${this.httpPort}`;
    this.env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME || this.dir,
      NATS_URL: this.natsUrl,
      NATTER_DATA_DIR: path.join(this.dir, 'data'),
      NATTER_MIGRATIONS_DIR: path.join(ROOT, 'schemas/migrations'),
      NATTER_WEB_DIR: '/nonexistent',
      NATTER_LOG_LEVEL: process.env.NATTER_LOG_LEVEL || 'info',
      ...(this.opts.env || {}),
    };
    this.spawnProc('auth', this.binary('auth'), [], this.env);
    this.spawnProc('rooms', this.binary('rooms'), [], this.env);
    const rate = this.opts.messagesRate
      ? { NATTER_MESSAGES_RATE: '1000', NATTER_MESSAGES_BURST: '1000' }
      : {};
    this.spawnProc('messages', this.binary('messages'), [], { ...this.env, ...rate });
    this.presence = this.spawnProc('presence', this.binary('presence'), [], this.env);
    // The tests make many REST calls from one address and one user: the
    // gateway's own limits are lifted so they measure nothing but the edge.
    this.spawnProc('gateway', this.binary('gateway'), [], {
      ...this.env,
      NATTER_HTTP_ADDR: '127.0.0.1',
      NATTER_HTTP_PORT: String(this.httpPort),
      NATTER_RATE_IP_PER_S: '100000',
      NATTER_RATE_IP_BURST: '100000',
      NATTER_RATE_USER_PER_S: '100000',
      NATTER_RATE_USER_BURST: '100000',
      NATTER_HTTP_MAX_CONN_PER_IP: '4096',
    });
    await this.waitGateway();
    // The edge starts last, as it would in production once auth answers, and
    // is ready when it accepts a valid token (its signing keys are loaded).
    if (this.opts.edge) {
      this.edgePort = await freePort();
      this.wsBase = `ws://127.0.0.1:${this.edgePort}/socket`;
      this.startEdgeProc();
      await this.waitEdge();
    }
  }

  async waitGateway() {
    await until(async () => (await httpStatus(`${this.base}/readyz`)) === 200, 20000,
      'gateway /readyz 200');
    // /readyz speaks for auth only; rooms and messages are ready when the
    // gateway no longer answers 503 (no instance listening) for their routes.
    const probe = await this.devToken('stack-probe');
    this.probeToken = probe.token;
    await until(async () => (await this.api(probe.token, 'GET', '/api/rooms')).status === 200,
      20000, 'rooms to answer');
    const missing = '/api/rooms/01890000-0000-7000-8000-000000000000/messages';
    await until(async () => (await this.api(probe.token, 'GET', missing)).status !== 503, 20000,
      'messages to answer');
  }

  startNatsProc() {
    this.nats = this.spawnProc('nats-server', 'nats-server',
      ['-a', '127.0.0.1', '-p', String(this.natsPort), '-js', '-sd', path.join(this.dir, 'nats')],
      process.env);
    return this.nats;
  }

  // Stops nats-server and starts it again on the same port and store: every
  // service (and the edge) loses its connection and reconnects by itself.
  async restartNats() {
    await this.nats.stop('SIGTERM');
    this.startNatsProc();
    await until(() => portOpen(this.natsPort), 10000, 'nats-server to come back');
  }

  startEdgeProc() {
    this.edge = this.spawnProc('edge', this.binary('edge'), [], {
      ...this.env,
      EDGE_ADDR: '127.0.0.1',
      EDGE_PORT: String(this.edgePort),
    });
    return this.edge;
  }

  async waitEdge() {
    const url = `http://127.0.0.1:${this.edgePort}/healthz`;
    await until(async () => {
      if (!this.edge.alive) throw new Error('the edge exited during start-up');
      return (await httpStatus(url)) === 200;
    }, 20000, 'edge /healthz 200');
    const ws = this.wsUrl({ token: this.probeToken, vsn: '2.0.0' });
    await until(async () => (await probeUpgrade(ws).catch(() => ({}))).status === 101, 20000,
      'the edge to accept a valid token');
  }

  // SIGTERM to the edge; resolves with its exit once it is gone.
  async stopEdge() {
    return this.edge.stop('SIGTERM');
  }

  // Starts the edge again on the same port and waits for /healthz.
  async startEdge() {
    this.startEdgeProc();
    try {
      await this.waitEdge();
    } catch (e) {
      this.dumpLogs();
      throw e;
    }
  }

  async restartEdge() {
    const exit = await this.stopEdge();
    await this.startEdge();
    return exit;
  }

  async killEdge() {
    return this.edge.stop('SIGKILL');
  }

  // Starts one more edge on its own port (a second edge instance, as behind a
  // load balancer) and resolves with {wsBase, proc} once it accepts a token.
  // Pass its wsBase to socket()/connect() as opts.wsBase.
  async addEdge(env = {}) {
    const port = await freePort();
    const proc = this.spawnProc('edge', this.binary('edge'), [], {
      ...this.env,
      EDGE_ADDR: '127.0.0.1',
      EDGE_PORT: String(port),
      ...env,
    });
    const wsBase = `ws://127.0.0.1:${port}/socket`;
    await until(async () => {
      if (!proc.alive) throw new Error('the added edge exited during start-up');
      return (await httpStatus(`http://127.0.0.1:${port}/healthz`)) === 200;
    }, 20000, 'the added edge /healthz 200');
    const url = `${wsBase}/websocket?${new URLSearchParams({ token: this.probeToken, vsn: '2.0.0' })}`;
    await until(async () => (await probeUpgrade(url).catch(() => ({}))).status === 101, 20000,
      'the added edge to accept a valid token');
    return { wsBase, port, proc };
  }

  // Stops every client, then every process (services first, the broker last),
  // and removes the temporary directory unless KEEP is set.
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const c of this.clients) {
      try {
        c.destroy();
      } catch {
        // A client that is already gone has nothing to close.
      }
    }
    this.clients.clear();
    for (const p of [...this.procs].reverse()) await p.stop('SIGTERM');
    live.delete(this);
    // Under make test the binaries are built with AddressSanitizer and UBSan:
    // a report in any process's log (a leak shows only at exit) fails the
    // file, even when every assertion passed.
    const reports = [];
    for (const p of this.procs) {
      let text = '';
      try {
        text = fs.readFileSync(p.log, 'utf8');
      } catch {
        continue;
      }
      const m = text.match(/(ERROR: (Address|Leak)Sanitizer|runtime error:)[^\n]*/);
      if (m) reports.push(`${path.basename(p.log)}: ${m[0]}`);
    }
    if (reports.length > 0) process.env.KEEP = process.env.KEEP || '1';
    if (process.env.KEEP) {
      process.stderr.write(`stack: logs kept in ${this.dir}\n`);
    } else {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    if (reports.length > 0) throw new Error(`sanitizer reports:\n${reports.join('\n')}`);
  }

  // On a signal or at exit: no waiting is possible, so SIGKILL, and retry the
  // removal while the dying processes may still write.
  killNow() {
    for (const p of this.procs) if (p.alive) p.child.kill('SIGKILL');
    if (process.env.KEEP) return;
    try {
      fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    } catch (e) {
      process.stderr.write(`stack: could not remove ${this.dir}: ${e.message}\n`);
    }
  }

  // Prints the last lines of every process's log to stderr.
  dumpLogs(lines = 40) {
    for (const p of this.procs) {
      let text = '';
      try {
        text = fs.readFileSync(p.log, 'utf8');
      } catch {
        text = '(no log)';
      }
      const tail = text.split('\n').slice(-lines - 1).join('\n');
      process.stderr.write(`---- ${p.name} (${p.log}) ----\n${tail}\n`);
    }
  }

  // --- REST ---

  // {status, headers, body}: body is the parsed JSON (or the text).
  async api(token, method, p, body) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const r = await fetch(`${this.base}${p}`, {
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
      // Not JSON: keep the text for the assertion message.
    }
    return { status: r.status, headers: r.headers, body: parsed };
  }

  // Like api, but asserts a 2xx answer and returns its data.
  async data(token, method, p, body) {
    const r = await this.api(token, method, p, body);
    if (r.status < 200 || r.status > 299) {
      throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.body.data;
  }

  // {token, user_id, username} of a local development token.
  async devToken(username) {
    return this.data(null, 'POST', '/api/dev/token', { username });
  }

  async createRoom(token, name, { isPrivate = false, description } = {}) {
    const body = { name, is_private: isPrivate };
    if (description !== undefined) body.description = description;
    return this.data(token, 'POST', '/api/rooms', body);
  }

  async joinRoom(token, roomId) {
    return this.data(token, 'POST', `/api/rooms/${roomId}/join`);
  }

  async sendRest(token, roomId, content, extra = {}) {
    return this.data(token, 'POST', `/api/rooms/${roomId}/messages`, { content, ...extra });
  }

  // --- WebSocket clients ---

  wsUrl(query) {
    const q = new URLSearchParams(query).toString();
    return `${this.wsBase}/websocket${q ? `?${q}` : ''}`;
  }

  // A phoenix Socket on the edge over `ws`; params is a function, so every
  // (re)connect asks for the token again, as an app does. Not connected yet.
  // opts.wsBase picks another edge (addEdge); the rest goes to Socket.
  socket(token, opts = {}) {
    const tokenFn = typeof token === 'function' ? token : () => token;
    const { wsBase, ...rest } = opts;
    const sock = new Socket(wsBase || this.wsBase, {
      transport: WebSocket,
      params: () => ({ token: tokenFn() }),
      ...rest,
    });
    this.clients.add({ destroy: () => sock.disconnect() });
    return sock;
  }

  // A phoenix Socket that is open.
  async connect(token, opts = {}) {
    const sock = this.socket(token, opts);
    await within(new Promise((resolve, reject) => {
      sock.onOpen(resolve);
      sock.onError((e) => reject(new Error(`socket error before open: ${e && e.message}`)));
      sock.connect();
    }), 10000, 'the phoenix socket to open');
    return sock;
  }

  // A raw ws client; query defaults to {token, vsn: "2.0.0"}.
  raw(token, query) {
    const q = query || { token, vsn: '2.0.0' };
    const c = new RawClient(this.wsUrl(q));
    this.clients.add(c);
    return c;
  }

  async rawOpen(token, query) {
    const c = this.raw(token, query);
    await c.opened;
    return c;
  }
}

// node:test's `it`, but a failing test prints the tail of the stack's logs
// (getStack() gives the file's stack, which before() starts).
export function itLogged(getStack) {
  return (name, opts, fn) => nodeIt(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      getStack()?.dumpLogs();
      throw e;
    }
  });
}

// Sends a phoenix push and resolves with {status, response} ("timeout" included).
export function pushReply(channel, event, payload, timeout = 10000) {
  return new Promise((resolve) => {
    const push = channel.push(event, payload, timeout);
    for (const status of ['ok', 'error', 'timeout']) {
      push.receive(status, (response) => resolve({ status, response }));
    }
  });
}

// Joins channel and resolves with {status, response}. On anything but ok the
// channel is left, so that the client stops retrying the join.
export function joinReply(channel, timeout = 10000) {
  return new Promise((resolve) => {
    const push = channel.join(timeout);
    push.receive('ok', (response) => resolve({ status: 'ok', response }));
    for (const status of ['error', 'timeout']) {
      push.receive(status, (response) => {
        channel.leave();
        resolve({ status, response });
      });
    }
  });
}

// A raw WebSocket client that records every text frame, parsed.
export class RawClient {
  constructor(url) {
    this.url = url;
    this.frames = [];
    this.binary = 0;
    this.waiters = [];
    this.ws = new WebSocket(url);
    this.closeInfo = null;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (req, res) => {
        reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
        req.destroy();
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        this.notify();
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binary++;
        return;
      }
      const text = data.toString();
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { unparsable: text };
      }
      this.frames.push(frame);
      this.notify();
    });
  }

  notify() {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  // Sends a frame: an array is JSON-encoded, a string or Buffer goes as is.
  send(frame, opts) {
    const data = Array.isArray(frame) ? JSON.stringify(frame) : frame;
    this.ws.send(data, opts);
  }

  // Resolves with the first frame (from index `from`) matching pred.
  async next(pred, timeoutMs = 5000, from = 0) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.frames.length; i++) {
        if (pred(this.frames[i])) return this.frames[i];
      }
      const left = end - Date.now();
      if (left <= 0) {
        throw new Error(`no matching frame within ${timeoutMs} ms; got ${
          JSON.stringify(this.frames.slice(-10))} close=${JSON.stringify(this.closeInfo)}`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  // The reply to ref on topic.
  reply(topic, ref, timeoutMs = 5000) {
    return this.next((f) => Array.isArray(f) && f[1] === ref && f[2] === topic &&
      f[3] === 'phx_reply', timeoutMs);
  }

  // Joins topic with join_ref = ref and resolves with the reply frame.
  async join(topic, ref, payload = {}, timeoutMs = 5000) {
    this.send([ref, ref, topic, 'phx_join', payload]);
    return this.reply(topic, ref, timeoutMs);
  }

  // Frames of one event on one topic.
  events(topic, event) {
    return this.frames.filter((f) => Array.isArray(f) && f[2] === topic && f[3] === event);
  }

  destroy() {
    this.ws.terminate();
  }
}

// Opens a WebSocket to url and reports what the upgrade got:
// {status: 101} when it opened, or the refused answer {status, headers, body}.
export function probeUpgrade(url, timeoutMs = 5000) {
  return within(new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (req, res) => {
      const chunks = [];
      const done = () => {
        req.destroy();
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
      };
      res.on('data', (c) => chunks.push(c));
      res.on('end', done);
      res.on('error', done);
      // A body that never ends must not hang the test: take what came.
      setTimeout(done, 1000).unref();
    });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 101 });
    });
    ws.on('error', reject);
  }), timeoutMs, `the upgrade of ${url.replace(/token=[^&]*/, 'token=…')}`);
}
