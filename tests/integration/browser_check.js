/*
 * browser_check.js - what the headless-browser checks share
 * (speedscope_check.js, html_check.js, diff_html_check.js): their exit
 * statuses, assertions, the check that what they need is installed, the
 * run of a check in a fresh working directory, and for the HTML pages the
 * browser launch and the opening of a page (errors, requests, screenshot,
 * coloured pixels of its charts).
 *
 * Exit statuses: 0 pass, 1 fail, 77 skip.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const url = require('url');

const SKIP = 77;

function skip(msg) {
  console.log(`SKIP: ${msg}`);
  process.exit(SKIP);
}

class CheckError extends Error {}

function ensure(cond, msg) {
  if (!cond)
    throw new CheckError(msg);
}

/*
 * Skip unless every file of @files ([what, path]) exists, and every one
 * of @programs ([what, path]) is executable.
 */
function needInstalled(files, programs) {
  for (const [what, p] of files)
    if (!fs.existsSync(p))
      skip(`${what} (${p}) missing: run scripts/deps.sh (make deps)`);
  for (const [what, p] of programs) {
    try {
      fs.accessSync(p, fs.constants.X_OK);
    } catch (e) {
      skip(`${what} (${p}) missing`);
    }
  }
}

/*
 * Run `await check(work)` in a fresh directory named after @prefix, print
 * PASS or FAIL, remove the directory and exit with the status.
 */
async function runCheck(prefix, check) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  let status = 0;
  try {
    await check(work);
    console.log('PASS');
  } catch (e) {
    console.log(`FAIL: ${e instanceof CheckError ? e.message : e.stack}`);
    status = 1;
  }
  fs.rmSync(work, {recursive: true, force: true});
  process.exit(status);
}

/* Headless Chromium (@chromium: playwright-core's) at @executable, with a
 * profile under @work: no sandbox, GPU, network chatter or first run. */
async function launch(chromium, executable, work) {
  return chromium.launchPersistentContext(path.join(work, 'profile'), {
    executablePath: executable,
    headless: true,
    timeout: 20000,
    viewport: {width: 1100, height: 800},
    deviceScaleFactor: 1,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
}

/* Coloured pixels (not white, grey or black) inside each box of @png. */
async function colouredPixels(page, png, boxes) {
  return page.evaluate(async ([b64, bs]) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const out = {};
    for (const [id, b] of Object.entries(bs)) {
      const x = Math.max(0, Math.floor(b.x));
      const y = Math.max(0, Math.floor(b.y));
      const w = Math.min(img.width - x, Math.ceil(b.width));
      const h = Math.min(img.height - y, Math.ceil(b.height));
      if (w <= 0 || h <= 0) {
        out[id] = {coloured: 0, area: 0};
        continue;
      }
      const d = g.getImageData(x, y, w, h).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4)
        if (Math.max(d[i], d[i + 1], d[i + 2]) -
            Math.min(d[i], d[i + 1], d[i + 2]) > 40)
          n++;
      out[id] = {coloured: n, area: w * h};
    }
    return out;
  }, [png.toString('base64'), boxes]);
}

/*
 * Open @file; fail on any console error, page error, dialog or request
 * but the file's own. The page as @reader (run in the page) sees it, with
 * .charts[id].box for each chart, its screenshot and the coloured pixels
 * of each chart's box (.pixels[id]).
 */
async function openPage(context, decoder, file, shot, reader) {
  const page = await context.newPage();
  const problems = [];
  const requests = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning')
      problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('request', (r) => requests.push(r.url()));
  const href = url.pathToFileURL(file).href;
  await page.goto(href, {waitUntil: 'load'});
  await page.waitForTimeout(200);
  const seen = await page.evaluate(reader);
  const png = await page.screenshot({path: shot, fullPage: true});
  await page.close();
  ensure(problems.length === 0, `${path.basename(file)}: ` +
                                problems.join(' | '));
  ensure(requests.length === 1 && requests[0] === href,
         `${path.basename(file)}: requests ${JSON.stringify(requests)}`);
  const boxes = {};
  for (const [id, c] of Object.entries(seen.charts))
    boxes[id] = c.box;
  seen.pixels = await colouredPixels(decoder, png, boxes);
  return seen;
}

module.exports = {SKIP, skip, CheckError, ensure, needInstalled, runCheck,
                  launch, openPage};
