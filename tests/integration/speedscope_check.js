#!/usr/bin/env node
/*
 * speedscope_check.js - open a program's trace in a real trace viewer.
 *
 *   node speedscope_check.js --demo PATH --modules DIR --outdir DIR
 *                            [--trace FILE] [--stages SPEC] [--chromium PATH]
 *   node speedscope_check.js --program PATH --stages SPEC --modules DIR
 *                            --outdir DIR [--chromium PATH] [-- ARG...]
 *
 * --demo PATH runs the demo (examples/demo) as `PATH --frames 16
 * --workers 2` and expects the stages it records on its reader and first
 * worker. --program PATH runs any traced program with the ARGs after
 * "--" (passed as they are, one word each), for instance the detection
 * workflow:
 *
 *   --program detect_workflow --stages main=load_models
 *   --stages 'reader=read,decode,queue_push;worker-0=queue_pop,...'
 *   -- --frames 4 --workers 2 --input 128 --topk 1 --out DIR/detect_output
 *
 * SPEC is THREAD=STAGE,STAGE,...[;THREAD=...]: threads to look at and the
 * stage names each must show. --stages may be repeated (one thread each
 * spares CMake the semicolons); it replaces the demo's with --demo or
 * --trace. The program runs with the caller's environment minus every
 * STAGEPROF_*, WORKFLOWS_PROFILER_*, ENABLE_WORKFLOWS_PROFILING and DETECT_*
 * variable, plus STAGEPROF_ENABLE=1, STAGEPROF_BUFFER_RUNS=0 (the run ring
 * off: the trace keeps every span) and STAGEPROF_DIR in a fresh directory;
 * it must exit 0 and print "trace written to PATH". --trace FILE takes an
 * existing trace instead.
 *
 * The speedscope package's release files and the trace are served from a
 * local HTTP server on 127.0.0.1; speedscope opens in headless Chromium
 * (driven by playwright-core from DIR, the tests/browser node_modules) with
 * #profileURL= pointing at the trace, and the check asserts that the
 * profile really rendered:
 *
 *   - the page imported it as a Trace Event Format profile, with no page
 *     error and no error message;
 *   - its profile list names exactly the threads that recorded spans, each
 *     with a non-zero total time;
 *   - for each thread of SPEC, the Sandwich view lists its stage names;
 *   - the flame charts of those threads are drawn (rows of coloured
 *     pixels in the screenshot, decoded by the browser itself).
 *
 * Screenshots go to --outdir. Exit status: 0 pass, 1 fail, 2 bad usage,
 * 77 skip (no Chromium or node_modules).
 */
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');

const {CheckError, ensure, needInstalled, runCheck} =
    require('./browser_check');

/* What the demo records on its reader and first worker. */
const DEMO_STAGES = {
  reader: ['decode', 'queue_push'],
  'worker-0': ['queue_pop', 'preprocess', 'infer', 'postprocess',
               'serialize'],
};
const DEMO_ARGS = ['--frames', '16', '--workers', '2'];

function parseArgs(argv) {
  const opts = {chromium: '/usr/bin/chromium', args: null};
  const keys = ['demo', 'program', 'stages', 'modules', 'outdir', 'trace',
                'chromium'];
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--') {
      opts.args = argv.slice(i + 1);
      break;
    }
    const key = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !keys.includes(key) ||
        i + 1 >= argv.length)
      usage(`bad argument ${argv[i]}`);
    opts[key] = key === 'stages' && opts.stages ?
        `${opts.stages};${argv[i + 1]}` : argv[i + 1];
  }
  if (!opts.modules || !opts.outdir ||
      !(opts.demo || opts.program || opts.trace))
    usage('--modules, --outdir and --demo, --program or --trace ' +
          'are required');
  if (opts.demo && opts.program)
    usage('--demo and --program exclude each other');
  if (opts.program && !opts.stages)
    usage('--program needs --stages');
  if (opts.args && !opts.program)
    usage('program arguments after "--" need --program');
  opts.stages = opts.stages ? parseStages(opts.stages) : DEMO_STAGES;
  if (opts.demo) {
    opts.program = opts.demo;
    opts.args = DEMO_ARGS;
  }
  opts.args = opts.args || [];
  return opts;
}

/* "reader=read,decode;worker-0=queue_pop" -> {reader: [...], ...}. */
function parseStages(spec) {
  const stages = Object.create(null);
  for (const part of spec.split(';')) {
    const m = /^\s*([^=\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(part);
    const names = m ? m[2].split(',').map((n) => n.trim()) : [];
    if (!m || names.some((n) => !n) || m[1] in stages)
      usage(`bad --stages part "${part}": want THREAD=STAGE,STAGE,... ` +
            'once per thread');
    stages[m[1]] = names;
  }
  return stages;
}

function usage(msg) {
  process.stderr.write(`speedscope_check: ${msg}\nusage: node ` +
                       'speedscope_check.js --demo PATH --modules DIR ' +
                       '--outdir DIR [--trace FILE] [--stages SPEC] ' +
                       '[--chromium PATH]\n       node speedscope_check.js ' +
                       '--program PATH --stages SPEC --modules DIR ' +
                       '--outdir DIR [--chromium PATH] [-- ARG...]\n' +
                       '  SPEC: THREAD=STAGE,STAGE,...[;THREAD=...]\n');
  process.exit(2);
}

/*
 * Run @program with @args and tracing on into a fresh directory; the
 * trace's path, as the program prints it.
 */
function runProgram(program, args, dir) {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(STAGEPROF_|WORKFLOWS_PROFILER_|DETECT_)/.test(k) &&
        k !== 'ENABLE_WORKFLOWS_PROFILING')
      env[k] = v;
  env.STAGEPROF_ENABLE = '1';
  env.STAGEPROF_BUFFER_RUNS = '0';
  env.STAGEPROF_DIR = path.join(dir, 'traces');
  const name = path.basename(program);
  const r = childProcess.spawnSync(program, args,
                                   {env, encoding: 'utf8', timeout: 60000});
  ensure(r.status === 0, `${name} exited with ${r.status} ` +
                         `${r.signal || r.error || ''}` +
                         `\n${r.stdout}\n${r.stderr}`);
  const m = /trace written to (.*)\n/.exec(r.stdout);
  ensure(m, `${name} printed no trace path:\n${r.stdout}\n${r.stderr}`);
  return m[1];
}

/* Threads with spans in the trace: [{tid, name}], and the process name. */
function describeTrace(file) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    /* Not our business here: the viewer must cope or visibly fail. */
    return {threads: null, process: null};
  }
  const events = Array.isArray(doc) ? doc : doc && doc.traceEvents;
  if (!Array.isArray(events))
    return {threads: null, process: null};
  const names = new Map();
  let proc = null;
  const tids = new Set();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'thread_name')
      names.set(e.tid, e.args.name);
    else if (e.ph === 'M' && e.name === 'process_name')
      proc = e.args.name;
    else if (e.ph === 'X' || e.ph === 'B')
      tids.add(e.tid);
  }
  return {threads: [...tids].map((tid) => ({tid, name: names.get(tid)})),
          process: proc};
}

const TYPES = {'.html': 'text/html', '.js': 'text/javascript',
               '.css': 'text/css', '.json': 'application/json',
               '.png': 'image/png', '.wasm': 'application/wasm',
               '.woff2': 'font/woff2', '.ico': 'image/x-icon'};

/* Serve @root at /speedscope/ and @trace at /trace.json. */
function serve(root, trace) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url.split(/[?#]/)[0]);
    let file = null;
    if (url === '/trace.json') {
      file = trace;
    } else if (url.startsWith('/speedscope/')) {
      const rel = path.normalize(url.slice('/speedscope/'.length));
      if (!rel.startsWith('..') && !path.isAbsolute(rel))
        file = path.join(root, rel || 'index.html');
    }
    fs.readFile(file || '/nonexistent', (err, data) => {
      if (err) {
        res.writeHead(404, {'Content-Type': 'text/plain'});
        res.end('not found');
        return;
      }
      res.writeHead(200, {'Content-Type': TYPES[path.extname(file)] ||
                                          'application/octet-stream'});
      res.end(data);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/*
 * Horizontal 20-pixel bands of the screenshot @png (below the toolbar)
 * that are mostly coloured, i.e. rows of drawn frames: grid lines, text
 * and background are grey, white or black. Decoded by the browser.
 */
async function colouredBands(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    let bands = 0;
    for (let y = 20; y + 20 <= img.height; y += 20) {
      const d = g.getImageData(0, y, img.width, 20).data;
      let coloured = 0;
      for (let i = 0; i < d.length; i += 4) {
        const mx = Math.max(d[i], d[i + 1], d[i + 2]);
        const mn = Math.min(d[i], d[i + 1], d[i + 2]);
        if (mx - mn > 12)
          coloured++;
      }
      if (coloured > 0.3 * (d.length / 4))
        bands++;
    }
    return bands;
  }, png.toString('base64'));
}

async function check(opts, work) {
  const {chromium} = require(path.join(opts.modules, 'playwright-core'));
  const trace = opts.trace || runProgram(opts.program, opts.args, work);
  const want = describeTrace(trace);
  const server = await serve(
      path.join(opts.modules, 'speedscope', 'dist', 'release'), trace);
  const port = server.address().port;
  const context = await chromium.launchPersistentContext(
      path.join(work, 'profile'), {
        executablePath: opts.chromium,
        headless: true,
        timeout: 20000,
        viewport: {width: 1280, height: 720},
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic',
               '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync'],
      });
  try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    const logs = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => logs.push(m.text()));
    const base = `http://127.0.0.1:${port}`;
    await page.goto(`${base}/speedscope/index.html#profileURL=` +
                    encodeURIComponent(`${base}/trace.json`));

    /* Loaded: the toolbar shows "name (i/n)", or an error shows up. */
    const bar = () => page.evaluate(() => document.body.innerText);
    try {
      await page.waitForFunction(
          () => /\(\d+\/\d+\)/.test(document.body.innerText) ||
                /wrong|error|unrecognized/i.test(document.body.innerText),
          null, {timeout: 15000});
    } catch (e) {
      await page.screenshot({path: path.join(opts.outdir,
                                             'speedscope_failed.png')});
      throw new CheckError(`speedscope never showed a profile:\n${
          await bar()}\nconsole: ${logs.join(' | ')}`);
    }
    await page.waitForTimeout(300);
    const text = await bar();
    await page.screenshot({path: path.join(opts.outdir,
                                           'speedscope_first.png')});
    ensure(!/wrong|error|unrecognized|failed/i.test(text),
           `speedscope reports an error:\n${text}`);
    ensure(errors.length === 0, `page errors: ${errors.join(' | ')}`);
    ensure(logs.some((l) => /Trace Event Format/.test(l)),
           `not imported as a Trace Event Format profile: ${logs.join(' | ')}`);
    ensure(want.threads, 'the trace is not JSON, yet speedscope loaded it');

    /* The profile list: one entry per thread with spans, all non-empty. */
    const rows = await page.evaluate(() => Array.from(
        document.querySelectorAll('tr[title]'),
        (tr) => [tr.getAttribute('title'),
                 tr.lastElementChild.textContent]));
    const got = rows.map((r) => r[0]).sort();
    const names = rows.map((r) => /, (.*) \(tid \d+\)$/.exec(r[0]));
    ensure(names.every((m) => m),
           `profile names not "<process> (pid), <thread> (tid)": ${got}`);
    const shown = names.map((m) => m[1]).sort();
    const threads = want.threads.map((t) => t.name).sort();
    ensure(JSON.stringify(shown) === JSON.stringify(threads),
           `profiles ${JSON.stringify(shown)}, trace threads ` +
           JSON.stringify(threads));
    ensure(rows.every((r) => r[0].startsWith(`${want.process} (pid `)),
           `profiles not named after the process: ${got}`);
    ensure(rows.every((r) => /[1-9]/.test(r[1])),
           `a profile with zero time: ${JSON.stringify(rows)}`);
    ensure(text.includes(`(1/${threads.length})`),
           `toolbar does not count ${threads.length} profiles:\n${text}`);

    /* Per thread: the stages in the Sandwich table, the flame chart drawn. */
    for (const [thread, stages] of Object.entries(opts.stages)) {
      ensure(threads.includes(thread),
             `no ${thread} thread with spans in the trace: ${threads}`);
      /* "p" back to the first profile, then "n" until it is the one. */
      let rewound = false;
      for (let i = 0; i < 2 * threads.length + 1; i++) {
        const now = await bar();
        if (now.includes(`, ${thread} (tid`))
          break;
        rewound = rewound || now.includes('(1/');
        await page.keyboard.press(rewound ? 'n' : 'p');
        await page.waitForTimeout(100);
      }
      ensure((await bar()).includes(`, ${thread} (tid`),
             `cannot switch to the ${thread} profile`);
      await page.keyboard.press('1');
      await page.waitForTimeout(300);
      const png = await page.screenshot(
          {path: path.join(opts.outdir, `speedscope_${thread}.png`)});
      /* The minimap and at least one row of the flame chart. */
      const bands = await colouredBands(page, png);
      ensure(bands >= 3, `${thread}: flame chart looks empty (${bands} ` +
                         'coloured bands)');
      /* Sandwich: search each stage; the table must list its frames. */
      await page.keyboard.press('3');
      await page.waitForTimeout(300);
      for (const stage of stages) {
        /*
         * Type into the search box only once it has the focus: keys that
         * reach the page are shortcuts ("p" is the previous profile).
         */
        await page.keyboard.press('Control+f');
        const box = page.locator('input:focus');
        await box.waitFor({timeout: 5000});
        await box.fill(stage);
        const listed = await page.waitForFunction(
            (st) => document.body.innerText.split('\n').some(
                (l) => l.trim() === st || l.trim().startsWith(`${st} {`)),
            stage, {timeout: 5000}).then(() => true, () => false);
        ensure(listed, `${thread}: the Sandwich view lists no ${stage} ` +
                       `frame:\n${(await bar()).slice(0, 600)}`);
        ensure((await bar()).includes(`, ${thread} (tid`),
               `the ${stage} search left the ${thread} profile`);
        if (stage === stages[stages.length - 1])
          await page.screenshot({path: path.join(
                                     opts.outdir,
                                     `speedscope_${thread}_sandwich.png`)});
        await page.keyboard.press('Escape');
      }
    }
    console.log(`speedscope rendered ${threads.length} threads: ` +
                threads.join(', '));
  } finally {
    await context.close();
    server.close();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  needInstalled([['playwright-core', path.join(opts.modules, 'playwright-core')],
                 ['speedscope', path.join(opts.modules, 'speedscope', 'dist',
                                          'release', 'index.html')]],
                [['Chromium', opts.chromium]]);
  fs.mkdirSync(opts.outdir, {recursive: true});
  await runCheck('stageprof-browser-', (work) => check(opts, work));
}

main();
