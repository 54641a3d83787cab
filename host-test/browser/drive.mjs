// Drives the wecom-auth demo in a real headless Chromium (Debian's
// /usr/bin/chromium, or $CHROMIUM) through playwright-core. Run by
// host-test/tests/browser.rs, which starts the demo first:
//
//   node drive.mjs <app-url> <simulator-url> <artifacts-dir>
//
// Each scenario runs in its own fresh browser context and leaves a screenshot
// of its final page in <artifacts-dir> (<name>.png; <name>-failure.png when it
// failed). Exits 0 when every scenario passed.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [app, simulator, artifacts] = process.argv.slice(2).map((a) => a?.replace(/\/+$/, ''));
if (!app || !simulator || !artifacts) {
  console.error('usage: node drive.mjs <app-url> <simulator-url> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const PREFIX = '/auth/wecom';
const SESSION_COOKIE = 'wecom_auth_session';
const PRE_AUTH_COOKIE = 'wecom_auth_login';
const DESKTOP_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
// The WeCom client on Android, English UI.
const WECOM_UA =
  'Mozilla/5.0 (Linux; Android 14; PGU110 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 ' +
  '(KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 Mobile Safari/537.36 ' +
  'wxwork/4.1.20 MicroMessenger/7.0.1 NetType/WIFI Language/en';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
// Playwright runs Chromium headless with a fresh temporary profile of its own.
const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---- helpers ----

const path = (url) => new URL(url).pathname;
const origin = (url) => new URL(url).origin;

/** Every main-frame document response of a page, redirects included, in order. */
function trackNavigations(page) {
  const trail = [];
  page.on('response', (response) => {
    const request = response.request();
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
      trail.push({ url: response.url(), status: response.status() });
    }
  });
  return trail;
}

/** The trail from `from` on, as "STATUS path" lines, for assertions and logs. */
function steps(trail, from = 0) {
  return trail.slice(from).map((s) => `${s.status} ${origin(s.url) === app ? '' : origin(s.url)}${path(s.url)}`);
}

/** The app's cookie of that name, whatever its path (cookies ignore ports). */
async function cookie(context, name) {
  const host = new URL(app).hostname;
  const found = (await context.cookies()).filter((c) => c.name === name && c.domain === host);
  assert.ok(found.length <= 1, `one ${name} cookie, not ${found.length}`);
  return found[0];
}

function assertSessionCookie(c) {
  assert.ok(c, `the ${SESSION_COOKIE} cookie is set`);
  assert.equal(c.httpOnly, true, 'session cookie HttpOnly');
  assert.equal(c.sameSite, 'Lax', 'session cookie SameSite=Lax');
  assert.equal(c.path, '/', 'session cookie Path=/');
  assert.equal(c.secure, false, 'session cookie not Secure on an http origin');
  assert.ok(c.value.length > 20, 'session token present');
  assert.ok(c.expires > Date.now() / 1000, 'session cookie persistent (Max-Age)');
}

function assertPreAuthCookie(c) {
  assert.ok(c, `the ${PRE_AUTH_COOKIE} cookie is set before leaving for WeCom`);
  assert.equal(c.httpOnly, true, 'pre-auth cookie HttpOnly');
  assert.equal(c.sameSite, 'Lax', 'pre-auth cookie SameSite=Lax');
  assert.equal(c.path, PREFIX, `pre-auth cookie Path=${PREFIX}`);
}

/** `/auth/wecom/me` fetched by the browser itself, in a second tab of the context. */
async function me(context) {
  const tab = await context.newPage();
  try {
    const response = await tab.goto(`${app}${PREFIX}/me`);
    return { status: response.status(), body: await response.json() };
  } finally {
    await tab.close();
  }
}

/** Clicks a link or button and waits for the navigation to settle at `target`. */
async function clickAndLand(page, locator, target) {
  await Promise.all([page.waitForURL(target, { waitUntil: 'load' }), locator.click()]);
}

const atApp = (p) => (url) => url.origin === app && url.pathname === p;
const atSimulator = (p) => (url) => url.origin === simulator && url.pathname === p;
const QR_PAGE = '/wwlogin/sso/login';
const OAUTH_PAGE = '/connect/oauth2/authorize';

// Desktop: `/` goes to the login route, which (one authenticator) goes
// straight on to the QR page with the pre-auth cookie; pick 张三 there.
async function qrLoginAsZhangsan(page, trail) {
  const landing = await page.goto(`${app}/`);
  assert.equal(landing.status(), 200);
  assert.ok(atSimulator(QR_PAGE)(new URL(page.url())), `on the QR page, not ${page.url()}`);
  assert.deepEqual(steps(trail).map((s) => s.replace(/\?.*/, '')), [
    '302 /',
    `302 ${PREFIX}/login`,
    `200 ${simulator}${QR_PAGE}`,
  ]);
  assert.match(await page.title(), /扫码登录/);
  assertPreAuthCookie(await cookie(page.context(), PRE_AUTH_COOKIE));
  const mark = trail.length;
  await clickAndLand(page, page.getByRole('link', { name: '张三 (zhangsan)' }), atApp('/'));
  assert.deepEqual(steps(trail, mark), [
    `302 ${simulator}${QR_PAGE}`,
    `302 ${PREFIX}/callback`,
    '200 /',
  ]);
}

/** Every Content-Security-Policy violation the page reports, as console text. */
function watchCsp(page) {
  const violations = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  return violations;
}

const PANEL = '#wecom-login-panel';
const PANEL_SCRIPT = '/node/open/js/wecom-jssdk-2.0.2.js';

/**
 * The login page with WeCom's login panel (doc 98478), drawn in place by the
 * simulator's stand-in JS-SDK: its frame shows the web login page with the
 * page's own state and `redirect_type=callback`, the fallback button hidden.
 * Leaves a screenshot `<shot>.png` of the page with the panel.
 */
async function openLoginPanel(page, lang, shot) {
  const asked = Date.now();
  const landing = await page.goto(`${app}${PREFIX}/?return_to=%2F`);
  assert.equal(landing.status(), 200);
  const panel = page.frameLocator(`${PANEL} iframe`);
  await panel.getByRole('link', { name: '张三 (zhangsan)' }).waitFor();
  console.log(`     the panel (${lang}) showed ${Date.now() - asked} ms after the page was asked for`);
  // The button became a small link under the panel: WeCom's page for the same login.
  const link = page.locator(`${PANEL} a.alt`);
  assert.ok(await link.isVisible(), 'a link to WeCom\'s login page under the panel');
  const fallback = new URL(await link.getAttribute('href'));
  const src = new URL(await page.locator(`${PANEL} iframe`).getAttribute('src'));
  assert.equal(src.origin + src.pathname, `${simulator}${QR_PAGE}`);
  assert.equal(src.searchParams.get('redirect_type'), 'callback');
  assert.equal(src.searchParams.get('redirect_uri'), `${app}${PREFIX}/callback`);
  assert.equal(src.searchParams.get('lang'), lang);
  assert.ok(src.searchParams.get('state'), 'the page started a login of its own');
  assert.equal(fallback.origin + fallback.pathname, `${simulator}${QR_PAGE}`);
  assert.equal(fallback.searchParams.get('state'), src.searchParams.get('state'), 'the link is the same login');
  assertPreAuthCookie(await cookie(page.context(), PRE_AUTH_COOKIE));
  await page.screenshot({ path: join(artifacts, `${shot}.png`) });
  return panel;
}

// ---- scenarios ----

const scenarios = [];
const scenario = (name, screenshot, device, run) => scenarios.push({ name, screenshot, device, run });
const DESKTOP = { userAgent: DESKTOP_UA, viewport: { width: 800, height: 600 } };
const DESKTOP_ZH = { ...DESKTOP, locale: 'zh-CN' };
const PHONE = { userAgent: WECOM_UA, viewport: { width: 390, height: 700 }, isMobile: true, hasTouch: true };

scenario('desktop QR login of a bound member (张三 → alice)', 'qr-login', DESKTOP, async ({ page, context, trail }) => {
  await qrLoginAsZhangsan(page, trail);
  assert.equal(page.url(), `${app}/`);
  const text = await page.locator('main').innerText();
  // The name is WeCom's (张三): a login refreshes the provisioned profile.
  assert.match(text, /Signed in as\s+张三\s+\(zhangsan\)/);
  await assert.doesNotReject(page.getByRole('button', { name: 'Log out' }).waitFor());
  assertSessionCookie(await cookie(context, SESSION_COOKIE));
  assert.equal(await cookie(context, PRE_AUTH_COOKIE), undefined, 'pre-auth cookie cleared by the callback');
  const session = await me(context);
  assert.equal(session.status, 200);
  assert.equal(session.body.user.id, 'alice');
  assert.equal(session.body.user.name, '张三');
  assert.equal(session.body.wecom_userid, 'zhangsan');
  assert.equal(session.body.authenticator, 'wecom');
});

scenario('login panel on the login page, in Chinese (张三 → alice)', 'login-panel-zh-signed-in', DESKTOP_ZH, async ({ page, context, trail }) => {
  const violations = watchCsp(page);
  const panel = await openLoginPanel(page, 'zh', 'login-panel-zh');
  assert.equal(await page.locator('h1').innerText(), '企业微信登录');
  const mark = trail.length;
  // Logged in inside the panel: its code goes to the callback, in place of a page of WeCom's.
  await Promise.all([page.waitForURL(atApp('/'), { waitUntil: 'load' }), panel.getByRole('link', { name: '张三 (zhangsan)' }).click()]);
  assert.deepEqual(steps(trail, mark), [`302 ${PREFIX}/callback`, '200 /']);
  assert.match(await page.locator('main').innerText(), /当前登录\s+张三\s+\(zhangsan\)/);
  assertSessionCookie(await cookie(context, SESSION_COOKIE));
  assert.equal(await cookie(context, PRE_AUTH_COOKIE), undefined, 'pre-auth cookie cleared by the callback');
  assert.equal((await me(context)).body.user.id, 'alice');
  assert.deepEqual(violations, [], 'the CSP allows what the panel needs');
});

/**
 * The login page when the JS-SDK does not run (`answer` is how its request
 * ends): the button stays, and goes to WeCom's page for the page's login.
 */
async function withoutPanel(page, trail, answer) {
  const violations = watchCsp(page);
  await page.route(`**${PANEL_SCRIPT}`, answer);
  await page.goto(`${app}${PREFIX}/?return_to=%2F`);
  const button = page.locator(`${PANEL} a.btn`);
  await button.waitFor();
  // Give a script that did load the time to (not) draw the panel.
  await page.waitForTimeout(300);
  assert.equal(await page.locator(`${PANEL} iframe`).count(), 0, 'no panel');
  assert.ok(await button.isVisible(), 'the button stays');
  assert.equal(await page.evaluate(() => window.tampered), undefined, 'no other script ran');
  await clickAndLand(page, button, atSimulator(QR_PAGE));
  await clickAndLand(page, page.getByRole('link', { name: '张三 (zhangsan)' }), atApp('/'));
  assert.deepEqual(steps(trail).map((s) => s.replace(/\?.*/, '')), [
    `200 ${PREFIX}/`,
    `200 ${simulator}${QR_PAGE}`,
    `302 ${simulator}${QR_PAGE}`,
    `302 ${PREFIX}/callback`,
    '200 /',
  ]);
  assert.match(await page.locator('main').innerText(), /Signed in as\s+张三\s+\(zhangsan\)/);
  return violations;
}

scenario('login panel in English', 'login-panel-en-signed-in', DESKTOP, async ({ page, context, trail }) => {
  const violations = watchCsp(page);
  const panel = await openLoginPanel(page, 'en', 'login-panel-en');
  assert.equal(await page.locator('h1').innerText(), 'Log in with WeCom');
  await Promise.all([page.waitForURL(atApp('/'), { waitUntil: 'load' }), panel.getByRole('link', { name: '张三 (zhangsan)' }).click()]);
  assert.match(await page.locator('main').innerText(), /Signed in as\s+张三\s+\(zhangsan\)/);
  assert.equal((await me(context)).status, 200);
  assert.deepEqual(violations, [], 'the CSP allows what the panel needs');
});

scenario('the login panel\'s button when the JS-SDK cannot load', 'login-panel-unreachable', DESKTOP, async ({ page, trail }) => {
  await withoutPanel(page, trail, (route) => route.abort());
});

scenario('the login panel\'s button when the JS-SDK is not the pinned one', 'login-panel-tampered', DESKTOP, async ({ page, trail }) => {
  // A CDN serving something else: Subresource Integrity refuses to run it.
  const violations = await withoutPanel(page, trail, async (route) => {
    const original = await route.fetch();
    await route.fulfill({ response: original, body: `${await original.text()}\nwindow.tampered = true;` });
  });
  assert.deepEqual(violations, []);
});

scenario('first in-client login via auto-login (李四 → bob by mobile)', 'in-client-auto-login', PHONE, async ({ page, context, trail }) => {
  const before = await me(context);
  assert.equal(before.status, 401, 'no session yet');
  const landing = await page.goto(`${app}/`);
  assert.equal(landing.status(), 200);
  // Straight to the in-client OAuth page: no login page, no login route.
  assert.deepEqual(steps(trail).map((s) => s.replace(/\?.*/, '')), ['302 /', `200 ${simulator}${OAUTH_PAGE}`]);
  const oauth = new URL(page.url());
  // Silent first (静默授权): no page of WeCom's for a member already bound.
  assert.equal(oauth.searchParams.get('scope'), 'snsapi_base');
  assert.equal(oauth.searchParams.get('redirect_uri'), `${app}${PREFIX}/callback`);
  assert.match(await page.title(), /网页授权/);
  assertPreAuthCookie(await cookie(context, PRE_AUTH_COOKIE));
  const mark = trail.length;
  // 李四 is not bound yet: the silent login comes back, and the component
  // sends the browser to WeCom once more with snsapi_privateinfo, whose
  // consent screen yields the mobile (手动授权, doc 91022). (The simulator
  // asks who is signed in to the client again: its picker stands for that.)
  await clickAndLand(page, page.getByRole('link', { name: '李四 (lisi)' }), atSimulator(OAUTH_PAGE));
  assert.equal(new URL(page.url()).searchParams.get('scope'), 'snsapi_privateinfo');
  await clickAndLand(page, page.getByRole('link', { name: '李四 (lisi)' }), atSimulator(OAUTH_PAGE));
  assert.match(await page.title(), /授权确认/);
  await clickAndLand(page, page.getByRole('link', { name: '同意 (Agree)' }), atApp('/'));
  assert.deepEqual(steps(trail, mark), [
    `302 ${simulator}${OAUTH_PAGE}`,
    `302 ${PREFIX}/callback`,
    `200 ${simulator}${OAUTH_PAGE}`,
    `200 ${simulator}${OAUTH_PAGE}`,
    `302 ${simulator}${OAUTH_PAGE}`,
    `302 ${PREFIX}/callback`,
    '200 /',
  ]);
  assert.equal(page.url(), `${app}/`);
  assert.match(await page.locator('main').innerText(), /Signed in as\s+李四\s+\(lisi\)/);
  assertSessionCookie(await cookie(context, SESSION_COOKIE));
  assert.equal(await cookie(context, PRE_AUTH_COOKIE), undefined, 'pre-auth cookie cleared by the callback');
  const session = await me(context);
  assert.equal(session.status, 200);
  assert.equal(session.body.user.id, 'bob', 'bound to the provisioned user by mobile');
  assert.equal(session.body.wecom_userid, 'lisi');
  assert.equal(session.body.user.name, '李四');
  assert.equal(session.body.user.mobile, '13900000001', 'the provisioned mobile, normalized');
});

scenario('a non-member is refused (外部访客)', 'non-member', DESKTOP, async ({ page, context, trail }) => {
  await page.goto(`${app}/`);
  assert.ok(atSimulator(QR_PAGE)(new URL(page.url())), `on the QR page, not ${page.url()}`);
  const mark = trail.length;
  await clickAndLand(page, page.getByRole('link', { name: '外部访客 (outsider)' }), atApp(`${PREFIX}/callback`));
  assert.deepEqual(steps(trail, mark), [`302 ${simulator}${QR_PAGE}`, `403 ${PREFIX}/callback`]);
  assert.match(await page.title(), /Cannot log in/);
  const text = await page.locator('main').innerText();
  assert.match(text, /You are not a member of this company in WeCom, so you cannot log in here\./);
  assert.match(text, /HTTP 403/);
  assert.equal(await cookie(context, SESSION_COOKIE), undefined, 'no session cookie');
  assert.equal((await me(context)).status, 401);
});

scenario('logout', 'logout', DESKTOP, async ({ page, context, trail }) => {
  await qrLoginAsZhangsan(page, trail);
  const token = (await cookie(context, SESSION_COOKIE))?.value;
  assert.ok(token, 'signed in first');
  const mark = trail.length;
  // The signed-in page's form: POST /auth/wecom/logout, 303 to the login page.
  await clickAndLand(page, page.getByRole('button', { name: 'Log out' }), atApp(`${PREFIX}/`));
  assert.deepEqual(steps(trail, mark), [`303 ${PREFIX}/logout`, `200 ${PREFIX}/`]);
  assert.equal(await cookie(context, SESSION_COOKIE), undefined, 'session cookie cleared');
  const after = await me(context);
  assert.equal(after.status, 401);
  assert.equal(after.body.error.category, 'session-invalid');
  // The login page, with WeCom's login panel to log in again.
  assert.equal(page.url(), `${app}${PREFIX}/`);
  assert.equal(await page.title(), 'Log in');
  assert.equal(await page.locator('h1').innerText(), 'Log in with WeCom');
  await page.frameLocator(`${PANEL} iframe`).getByRole('link', { name: '张三 (zhangsan)' }).waitFor();
  // Under it, WeCom's login page for the same login.
  const again = page.locator(`${PANEL} a.alt`);
  assert.ok((await again.getAttribute('href')).startsWith(`${simulator}${QR_PAGE}?`));
  assert.equal(await again.textContent(), "Trouble with the QR code? Open WeCom's login page");
  // Back at `/`, no session: off to log in again.
  const tab = await context.newPage();
  await tab.goto(`${app}/`);
  assert.ok(atSimulator(QR_PAGE)(new URL(tab.url())), `/ sends to the QR page again, not ${tab.url()}`);
  await tab.close();
  // Logout ends the user's sessions on the server too: a copied token is dead.
  const replay = await fetch(`${app}${PREFIX}/me`, { headers: { cookie: `${SESSION_COOKIE}=${token}` } });
  assert.equal(replay.status, 401, 'the signed-out token no longer verifies');
});

scenario('a member deleted in WeCom\'s console loses the session (李四)', 'leaver', PHONE, async ({ page, context }) => {
  // Signed in silently: 李四 was bound by the in-client scenario.
  await page.goto(`${app}/`);
  if (atSimulator(OAUTH_PAGE)(new URL(page.url()))) {
    await clickAndLand(page, page.getByRole('link', { name: '李四 (lisi)' }), atApp('/'));
  }
  assert.equal((await me(context)).status, 200, 'signed in');
  // The admin deletes 李四 in the console: WeCom sends delete_user to the app.
  const console_ = await context.newPage();
  await console_.goto(`${simulator}/console`);
  await Promise.all([
    console_.waitForURL((url) => url.pathname === '/console' && url.searchParams.has('done')),
    console_.locator('li', { hasText: '李四 (lisi)' }).getByRole('button').click(),
  ]);
  assert.match(await console_.locator('#done').innerText(), /lisi removed; delete_user sent \(app 1000002: HTTP 200/);
  await console_.screenshot({ path: join(artifacts, 'console-removed.png') });
  await console_.close();
  const after = await me(context);
  assert.equal(after.status, 401, 'the session ended with the delete_user');
});

// ---- run ----

const started = Date.now();
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args,
});
let failed = 0;
try {
  console.log(`Chromium ${browser.version()} (${executablePath}); app ${app}; simulator ${simulator}`);
  for (const { name, screenshot, device, run } of scenarios) {
    const t0 = Date.now();
    const context = await browser.newContext({ locale: 'en-US', ...device });
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    const trail = trackNavigations(page);
    try {
      await run({ page, context, trail });
      await page.screenshot({ path: join(artifacts, `${screenshot}.png`), fullPage: true });
      console.log(`ok   ${name} (${Date.now() - t0} ms) → ${screenshot}.png`);
    } catch (error) {
      failed += 1;
      console.log(`FAIL ${name}: ${error.stack ?? error}`);
      console.log(`  at ${page.url()}\n  navigations:\n    ${steps(trail).join('\n    ')}`);
      await page
        .screenshot({ path: join(artifacts, `${screenshot}-failure.png`), fullPage: true })
        .catch(() => {});
    } finally {
      await context.close();
    }
  }
} finally {
  await browser.close();
}
console.log(`browser: ${scenarios.length - failed} passed, ${failed} failed (${Date.now() - started} ms); screenshots in ${artifacts}`);
process.exit(failed === 0 ? 0 : 1);
