// The built component in Node through jco, a second implementation of the
// component model checking ours. Transpiles the component with the two
// draft shims, calls the typed exports against the WeCom simulator, then
// serves the HTTP front with `jco serve` for one login. Exits non-zero on the
// first failed check; prints one line per check.
//
// Usage: node check.mjs <component.wasm> <simulator base URL> <work dir> <port>

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [component, simulator, work, port] = process.argv.slice(2);
const here = fileURLToPath(new URL('.', import.meta.url));
const jco = join(here, 'node_modules', '.bin', 'jco');
const maps = ['--map', `wasi:keyvalue/*=${join(here, 'keyvalue.js')}#*`, '--map', `wasi:config/*=${join(here, 'config.js')}#*`];
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const WECOM = 'Mozilla/5.0 (Linux; Android 14; PGU110 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 Mobile Safari/537.36 wxwork/4.1.20 MicroMessenger/7.0.1 NetType/4G Language/zh';
const ORIGIN = `http://127.0.0.1:${port}`;

function ok(what) {
  console.log(`ok: ${what}`);
}

/** Logs `who` in at the simulator's page: the callback URL it redirects to. */
async function atWecom(url, who) {
  const page = new URL(url);
  page.searchParams.set('pick', who);
  // The member agrees on the consent screen of snsapi_privateinfo.
  page.searchParams.set('consent', 'agree');
  const answer = await fetch(page, { redirect: 'manual' });
  assert.equal(answer.status, 302, `the simulator's login page answered ${answer.status}`);
  return answer.headers.get('location');
}

// 1. The typed exports, in-process.
const out = join(work, 'transpiled');
execFileSync(jco, ['transpile', component, '-o', out, '--quiet', ...maps], { stdio: 'inherit' });
const { login } = await import(pathToFileURL(join(out, 'wecom_auth.js')));
const settings = {
  name: 'wecom',
  corpId: 'ww0123456789abcdef',
  agentId: '1000002',
  secret: 'app-secret-DO-NOT-LEAK-0123456789',
  origin: ORIGIN,
  autoLogin: false,
  autoSignup: true,
  apiBase: simulator,
  oauthBase: simulator,
  ssoBase: simulator,
  signingKeys: [{ id: 'k1', secret: 'signing-key-DO-NOT-LEAK-0123456789abcdef' }],
};

const browser = login.detectWecomBrowser(WECOM);
assert.equal(browser.client, 'wecom-mobile');
assert.equal(browser.platform, 'android');
assert.equal(browser.wecomVersion, '4.1.20');
ok('detect-wecom-browser');

const authorization = login.authorizeUrl(settings, { userAgent: WECOM, returnTo: '/reports?q=1' });
assert.equal(authorization.flow, 'in-client');
assert.ok(authorization.url.startsWith(`${simulator}/connect/oauth2/authorize?appid=ww0123456789abcdef&`), authorization.url);
ok('authorize-url');

const back = new URL(await atWecom(authorization.url, 'zhangsan'));
const success = login.handleCallback(settings, {
  code: back.searchParams.get('code'),
  state: back.searchParams.get('state'),
  preAuthCookie: authorization.preAuthCookie.value,
  userAgent: WECOM,
});
assert.equal(success.outcome, 'created');
assert.equal(success.member.wecomUserid, 'zhangsan');
assert.equal(success.member.mobile, '13800000000');
assert.equal(success.redirectTo, '/reports?q=1');
ok('handle-callback against the simulator (WeCom calls over real HTTP)');

const session = login.verifySession(settings, success.sessionCookie.value);
assert.equal(session.user.id, success.user.id);
ok('verify-session');

try {
  login.handleCallback(settings, {
    code: back.searchParams.get('code'),
    state: back.searchParams.get('state'),
    preAuthCookie: 'someone-else',
    userAgent: WECOM,
  });
  assert.fail('a foreign pre-auth cookie was accepted');
} catch (e) {
  assert.equal(e.payload?.category, 'login-rejected', String(e));
}
ok('handle-callback refuses a state of another browser (auth-error through jco)');

// 2. The HTTP front, served by `jco serve`, for one QR login of the now bound member.
const variables = {
  corp_id: settings.corpId,
  agent_id: settings.agentId,
  secret: settings.secret,
  origin: ORIGIN,
  signing_keys: 'k1:signing-key-DO-NOT-LEAK-0123456789abcdef',
  api_base: simulator,
  oauth_base: simulator,
  sso_base: simulator,
  auto_signup: 'true',
};
// Its own process group, killed whole at the end (`jco serve` runs the
// server in a child process of its own); its output goes to a file.
mkdirSync(work, { recursive: true });
const serverLog = join(work, 'serve.log');
const logFd = openSync(serverLog, 'w');
const server = spawn(
  jco,
  ['serve', component, '--port', port, '--host', '127.0.0.1', '--jco-dir', join(work, 'served'), '--jco-map', ...maps.filter((m) => m !== '--map')],
  {
    env: { ...process.env, WECOM_AUTH_VARIABLES: JSON.stringify(variables) },
    stdio: ['ignore', logFd, logFd],
    detached: true,
  },
);
try {
  let page;
  for (let tries = 0; ; tries += 1) {
    try {
      page = await fetch(`${ORIGIN}/auth/wecom/login`, { headers: { 'user-agent': WECOM }, redirect: 'manual' });
      break;
    } catch (e) {
      if (tries > 600) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  assert.equal(page.status, 302);
  const cookie = page.headers.get('set-cookie').split(';')[0];
  const callback = await atWecom(page.headers.get('location'), 'zhangsan');
  let done = await fetch(callback.replace(/^https?:\/\/[^/]+/, ORIGIN), {
    headers: { 'user-agent': WECOM, cookie },
    redirect: 'manual',
  });
  // A silent login of a member not bound yet goes to WeCom once more, for
  // the consent (snsapi_privateinfo) that yields the mobile.
  const consent = done.headers.get('location') ?? '';
  if (done.status === 302 && consent.includes('scope=snsapi_privateinfo')) {
    const again = await atWecom(consent, 'zhangsan');
    const preAuth = done.headers.getSetCookie().find((c) => c.startsWith('wecom_auth_login='));
    done = await fetch(again.replace(/^https?:\/\/[^/]+/, ORIGIN), {
      headers: { 'user-agent': WECOM, cookie: preAuth.split(';')[0] },
      redirect: 'manual',
    });
  }
  assert.equal(done.status, 302, await done.text());
  const setCookies = done.headers.getSetCookie();
  const sessionCookie = setCookies.find((c) => c.startsWith('wecom_auth_session='));
  assert.ok(sessionCookie, `a session cookie in ${JSON.stringify(setCookies)}: ${done.headers.get('location')}`);
  const verified = await fetch(`${ORIGIN}/auth/wecom/verify`, { headers: { cookie: sessionCookie.split(';')[0] } });
  assert.equal(verified.status, 200);
  assert.equal(verified.headers.get('x-wecom-userid'), 'zhangsan');
  ok('jco serve: login through the HTTP front, then /verify');
} catch (e) {
  console.error(readFileSync(serverLog, 'utf8'));
  throw e;
} finally {
  process.kill(-server.pid, 'SIGKILL');
}
