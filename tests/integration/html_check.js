#!/usr/bin/env node
/*
 * html_check.js - `stageprof report --html` pages opened in a real browser.
 *
 *   node html_check.js --cli PATH --demo PATH --modules DIR --outdir DIR
 *                      [--chromium PATH]
 *
 * Two pages are made with the CLI (--cli) and opened from file:// URLs in
 * headless Chromium, driven by playwright-core from DIR (the tests/browser
 * node_modules):
 *
 *   demo     the trace of `PATH --frames 16 --workers 2` (--demo), run with
 *            STAGEPROF_ENABLE=1 and STAGEPROF_BUFFER_RUNS=0 in a fresh
 *            directory; the page must agree with `--format=json` on the
 *            same trace (stages and their order, bottleneck, hints, queues,
 *            runs).
 *   hostile  a synthetic trace whose stage, category, thread, queue and
 *            counter names are HTML and script (`<script>...</script>`,
 *            `"><img onerror=...>`, `</svg><svg onload=...>`), a control
 *            byte and a byte that is not UTF-8; every one must show as
 *            text, and nothing may run.
 *
 * For each page: no console error, no page error, no dialog, no request
 * but the file itself; the sections in order; each SVG chart with one row
 * (or bar) per stage, queue or run shown, the timeline with items and its
 * critical path; and a full-page screenshot, decoded by the browser, with
 * coloured pixels inside every chart's box. The CLI side: --html with every
 * --format gives the same page and the normal output; no FILE.tmp left; an
 * existing FILE replaced; a FILE that cannot be written is exit 1 with a
 * message and nothing written; an empty FILE is exit 2.
 *
 * Screenshots go to --outdir. Exit status: 0 pass, 1 fail, 2 bad usage,
 * 77 skip (no Chromium, no node_modules, no CLI or demo).
 */
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');

const {ensure, needInstalled, runCheck, launch, openPage} =
    require('./browser_check');

const TOP = 20; /* rows of the stage charts (html_report.c TOP_STAGES) */
const LABEL_CUT = 24; /* code points of a chart label */
/*
 * Coloured pixels a drawn chart has at least: the demo's sparsest chart
 * (stage times, one long bar and eight short ones) has about 2000, an
 * empty one has none (axes and text are grey).
 */
const MIN_COLOURED = 500;

/* The hostile names, each where the trace puts text. */
const EVIL = {
  stage: '<script>window.__pwned=1;alert(1)</script>',
  stage2: '"><img src=x onerror=alert(2)>',
  cat2: '</style><script>alert(3)</script>',
  thread: '<iframe src="javascript:alert(4)"></iframe>',
  queue: '</svg><svg onload=alert(5)>',
  counter: '<b onmouseover=alert(6)>depth</b>',
  ctrl: 'tab\there & bell\u0007 \u00e9\u6f22',
};
/* A name holding the byte 0xff, not UTF-8: shown as U+FFFD. */
const BAD_UTF8 = Buffer.from([0x62, 0x61, 0x64, 0xff, 0x62, 0x79, 0x74,
                              0x65]);
const BAD_SHOWN = 'bad\ufffdbyte';

function parseArgs(argv) {
  const opts = {chromium: '/usr/bin/chromium'};
  const keys = ['cli', 'demo', 'modules', 'outdir', 'chromium'];
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !keys.includes(key) ||
        i + 1 >= argv.length)
      usage(`bad argument ${argv[i]}`);
    opts[key] = argv[i + 1];
  }
  if (!opts.cli || !opts.demo || !opts.modules || !opts.outdir)
    usage('--cli, --demo, --modules and --outdir are required');
  return opts;
}

function usage(msg) {
  process.stderr.write(`html_check: ${msg}\nusage: node html_check.js ` +
                       '--cli PATH --demo PATH --modules DIR --outdir DIR ' +
                       '[--chromium PATH]\n');
  process.exit(2);
}

/* @s as the page shows it: control characters as \xHH. */
function shownText(s) {
  return s.replace(/[\u0000-\u001f\u007f]/g,
                   (ch) => '\\x' + ch.charCodeAt(0).toString(16)
                                       .padStart(2, '0'));
}

/* The environment without any stageprof setting. */
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(STAGEPROF_|WORKFLOWS_PROFILER_|DETECT_)/.test(k) &&
        k !== 'ENABLE_WORKFLOWS_PROFILING')
      env[k] = v;
  return env;
}

function run(program, args, env) {
  const r = childProcess.spawnSync(program, args, {
    env: env || cleanEnv(),
    encoding: 'utf8',
    timeout: 60000,
    maxBuffer: 64 << 20,
  });
  return {status: r.status, signal: r.signal, error: r.error,
          stdout: r.stdout || '', stderr: r.stderr || ''};
}

/* The demo traced into @dir; the trace's path. */
function demoTrace(demo, dir) {
  const env = cleanEnv();
  env.STAGEPROF_ENABLE = '1';
  env.STAGEPROF_BUFFER_RUNS = '0';
  env.STAGEPROF_DIR = path.join(dir, 'traces');
  const r = run(demo, ['--frames', '16', '--workers', '2'], env);
  ensure(r.status === 0, `the demo exited with ${r.status} ${r.signal || ''}` +
                         `\n${r.stdout}\n${r.stderr}`);
  const m = /trace written to (.*)\n/.exec(r.stdout);
  ensure(m, `the demo printed no trace path:\n${r.stdout}\n${r.stderr}`);
  return m[1];
}

/*
 * 30 runs through a reader, a queue and a worker, with hostile names
 * everywhere; the script-named stage is the slowest, so it is the
 * bottleneck.
 */
function hostileTrace(file) {
  const ev = [];
  const meta = (tid, name) => ev.push({ph: 'M', name: 'thread_name', pid: 7,
                                       tid, args: {name}});
  meta(1, EVIL.thread);
  meta(2, 'worker');
  for (let r = 1; r <= 30; r++) {
    const t0 = r * 2000;
    const slow = r % 10 === 0 ? 900 : 0;
    const args = {run: r};
    ev.push({ph: 'b', name: 'frame', cat: 'run', id: `0x${r.toString(16)}`,
             pid: 7, tid: 1, ts: t0, args});
    ev.push({ph: 'X', name: EVIL.stage2, cat: EVIL.cat2, pid: 7, tid: 1,
             ts: t0, dur: 100, args});
    ev.push({ph: 'X', name: 'BAD_UTF8', cat: 'data', pid: 7, tid: 1,
             ts: t0 + 100, dur: 20, args});
    ev.push({ph: 's', name: EVIL.queue, cat: 'flow', id: r, pid: 7, tid: 1,
             ts: t0 + 120, args});
    ev.push({ph: 'f', bp: 'e', name: EVIL.queue, cat: 'flow', id: r, pid: 7,
             tid: 2, ts: t0 + 170, args});
    ev.push({ph: 'X', name: EVIL.stage, cat: 'compute', pid: 7, tid: 2,
             ts: t0 + 170, dur: 600 + slow, args});
    ev.push({ph: 'X', name: EVIL.ctrl, cat: 'postprocess', pid: 7, tid: 2,
             ts: t0 + 770 + slow, dur: 40, args});
    ev.push({ph: 'e', name: 'frame', cat: 'run', id: `0x${r.toString(16)}`,
             pid: 7, tid: 2, ts: t0 + 810 + slow, args});
    ev.push({ph: 'C', name: EVIL.counter, pid: 7, tid: 1, ts: t0,
             args: {[EVIL.counter]: r % 4}});
  }
  const parts = JSON.stringify({traceEvents: ev}).split('"BAD_UTF8"');
  ensure(parts.length > 1, 'no placeholder in the hostile trace');
  const bufs = [];
  parts.forEach((p, i) => {
    if (i)
      bufs.push(Buffer.from('"'), BAD_UTF8, Buffer.from('"'));
    bufs.push(Buffer.from(p));
  });
  fs.writeFileSync(file, Buffer.concat(bufs));
  return file;
}

/* `stageprof report --format=json` of @trace, parsed. */
function reportJson(cli, trace) {
  const r = run(cli, ['report', '--format=json', trace]);
  ensure(r.status === 0, `report --format=json failed (${r.status}):\n` +
                         r.stderr);
  return JSON.parse(r.stdout);
}

/*
 * --html with each --format: exit 0, the usual output on stdout, one and
 * the same page, no FILE.tmp left over. Returns the page's path.
 */
function makePages(cli, trace, dir, name) {
  let first = null;
  for (const format of ['json', 'text', 'csv', 'md']) {
    const file = path.join(dir, `${name}_${format}.html`);
    const r = run(cli, ['report', `--format=${format}`, '--html', file,
                        trace]);
    ensure(r.status === 0, `report --format=${format} --html failed ` +
                           `(${r.status}):\n${r.stderr}`);
    const start = {json: '{"stages":', text: '1 file', csv: 'Stage,',
                   md: '## stageprof report'}[format];
    ensure(r.stdout.startsWith(start), `--format=${format} --html: stdout ` +
                                       `starts ${r.stdout.slice(0, 40)}`);
    ensure(!fs.existsSync(`${file}.tmp`), `${file}.tmp left behind`);
    const html = fs.readFileSync(file);
    if (first === null)
      first = {file, html};
    else
      ensure(html.equals(first.html),
             `--format=${format} wrote another page than --format=json`);
  }
  return first.file;
}

/* A FILE that cannot be written, an existing FILE, an empty FILE. */
function checkWriteErrors(cli, trace, dir) {
  const missing = path.join(dir, 'no', 'such', 'dir', 'page.html');
  let r = run(cli, ['report', '--html', missing, trace]);
  ensure(r.status === 1, `--html into a missing directory: exit ${r.status}`);
  ensure(/^stageprof report: cannot write .*page\.html: No such file/m.test(
             r.stderr),
         `--html into a missing directory: stderr ${r.stderr}`);
  ensure(r.stdout === '', `a failed --html printed the report:\n${r.stdout}`);

  const sub = path.join(dir, 'a_directory');
  fs.mkdirSync(sub);
  r = run(cli, ['report', '--format=json', '--html', sub, trace]);
  ensure(r.status === 1, `--html onto a directory: exit ${r.status}`);
  ensure(/cannot write .*a_directory: Is a directory/.test(r.stderr),
         `--html onto a directory: stderr ${r.stderr}`);
  ensure(!fs.existsSync(`${sub}.tmp`), `${sub}.tmp left behind`);
  ensure(fs.statSync(sub).isDirectory(), 'the directory was replaced');

  const old = path.join(dir, 'old.html');
  fs.writeFileSync(old, 'old contents\n');
  r = run(cli, ['report', '--html', old, trace]);
  ensure(r.status === 0, `--html over an existing file: exit ${r.status}`);
  ensure(fs.readFileSync(old, 'utf8').startsWith('<!DOCTYPE html>'),
         'an existing FILE was not replaced');

  r = run(cli, ['report', '--html=', trace]);
  ensure(r.status === 2 && /--html wants a file name/.test(r.stderr),
         `--html= : exit ${r.status}, ${r.stderr}`);
}

/* What the page shows, read from its DOM. */
function readPage() {
  const box = (e) => {
    const b = e.getBoundingClientRect();
    return {x: b.left + window.scrollX, y: b.top + window.scrollY,
            width: b.width, height: b.height};
  };
  const charts = {};
  for (const svg of document.querySelectorAll('svg.chart'))
    charts[svg.id] = {
      box: box(svg),
      rows: svg.querySelectorAll('g.row').length,
      labels: Array.from(svg.querySelectorAll('g.row text.label'),
                         (t) => t.textContent),
      titles: Array.from(svg.querySelectorAll('g.row > title'),
                         (t) => t.textContent),
      items: svg.querySelectorAll('rect.item').length,
      waits: svg.querySelectorAll('rect.item.wait').length,
      path: svg.querySelectorAll('rect.path').length,
      pathsegs: svg.querySelectorAll('rect.pathseg').length,
      runs: svg.querySelectorAll('rect.run').length,
      laneLabels: Array.from(svg.querySelectorAll('text.label'),
                             (t) => t.textContent),
    };
  const onAttrs = [];
  for (const e of document.querySelectorAll('*'))
    for (const a of e.attributes)
      if (/^on/i.test(a.name) || /javascript:/i.test(a.value))
        onAttrs.push(`${e.tagName} ${a.name}`);
  const verdict = document.querySelector('#verdict');
  return {
    title: document.title,
    sections: Array.from(document.querySelectorAll('main > section'),
                         (s) => s.id),
    charts,
    scripts: document.querySelectorAll('script').length,
    embedded: document.querySelectorAll(
        'img, iframe, object, embed, link, audio, video, image, foreignObject')
        .length,
    onAttrs,
    bottleneck: verdict && verdict.querySelector('.bottleneck strong') ?
        verdict.querySelector('.bottleneck strong').textContent : null,
    verdict: verdict ? verdict.innerText : '',
    text: document.body.innerText,
    pwned: window.__pwned,
  };
}

const SECTIONS = ['verdict', 'stages', 'latency', 'slowest', 'queues', 'runs',
                  'trace'];
const CHARTS = ['stage-time', 'latency', 'timeline', 'queue-chart',
                'run-chart'];

/* Structure shared by both pages, against the report's JSON. */
function checkCommon(name, seen, json) {
  ensure(JSON.stringify(seen.sections) === JSON.stringify(SECTIONS),
         `${name}: sections ${JSON.stringify(seen.sections)}`);
  ensure(seen.title === 'stageprof report', `${name}: title ${seen.title}`);
  for (const id of CHARTS)
    ensure(id in seen.charts, `${name}: no svg#${id}`);
  const shown = Math.min(TOP, json.stages.length);
  for (const id of ['stage-time', 'latency']) {
    const c = seen.charts[id];
    ensure(c.rows === shown, `${name}: ${id} has ${c.rows} rows, want ` +
                             `${shown}`);
    /* The rows in the report's order; each title names its stage. */
    json.stages.slice(0, shown).forEach((st, i) => {
      const cps = Array.from(st.name);
      const cut = cps.length > LABEL_CUT ?
          cps.slice(0, LABEL_CUT).join('') + '\u2026' : st.name;
      const want = shownText(cut);
      ensure(c.labels[i] === want,
             `${name}: ${id} row ${i} is "${c.labels[i]}", want "${want}"`);
    });
  }
  const tl = seen.charts.timeline;
  ensure(tl.items >= 2 && tl.path >= 1 && tl.pathsegs >= 1,
         `${name}: timeline with ${tl.items} items, ${tl.path} path ` +
         `outlines, ${tl.pathsegs} path segments`);
  ensure(tl.waits >= 1, `${name}: no queue wait drawn in the timeline`);
  ensure(seen.charts['queue-chart'].rows === json.queues.length,
         `${name}: ${seen.charts['queue-chart'].rows} queue rows, ` +
         `${json.queues.length} queues`);
  ensure(seen.charts['run-chart'].runs === json.runs.count,
         `${name}: ${seen.charts['run-chart'].runs} run columns, ` +
         `${json.runs.count} runs`);
  ensure(seen.verdict.includes(`Bottleneck: ${json.bottleneck.stage}`),
         `${name}: verdict without the bottleneck:\n${seen.verdict}`);
  ensure(seen.bottleneck === json.bottleneck.stage,
         `${name}: bottleneck "${seen.bottleneck}", want ` +
         `"${json.bottleneck.stage}"`);
  for (const s of [json.bottleneck.reason, ...json.hints])
    ensure(seen.verdict.includes(shownText(s)),
           `${name}: verdict lacks "${s}":\n${seen.verdict}`);
  for (const f of json.trace.files)
    ensure(seen.text.includes(f), `${name}: file ${f} not named`);
  ensure(seen.text.includes(`${json.trace.events} events`),
         `${name}: no event count`);
  /* Drawn: coloured pixels in every chart's box. */
  for (const id of CHARTS) {
    const p = seen.pixels[id];
    ensure(p && p.area > 0 && p.coloured >= MIN_COLOURED,
           `${name}: svg#${id} looks empty in the screenshot ` +
           `(${p ? p.coloured : 0} coloured pixels of ${p ? p.area : 0})`);
  }
}

function checkHostile(seen, json) {
  ensure(seen.scripts === 0, `hostile: ${seen.scripts} script elements`);
  ensure(seen.embedded === 0, `hostile: ${seen.embedded} embedded elements`);
  ensure(seen.onAttrs.length === 0,
         `hostile: event-handler attributes ${seen.onAttrs.join(', ')}`);
  ensure(seen.pwned === undefined, 'hostile: a script ran');
  ensure(json.bottleneck.stage === EVIL.stage,
         `hostile: the report's bottleneck is ${json.bottleneck.stage}`);
  /* Each name as text, whole somewhere (tables, tooltips, verdict). */
  const titles = Object.values(seen.charts).flatMap((c) => c.titles).join('\n');
  for (const [key, s] of Object.entries(EVIL)) {
    const shown = shownText(s);
    ensure(seen.text.includes(shown) || titles.includes(shown),
           `hostile: ${key} name not shown as text: ${shown}`);
  }
  ensure(seen.text.includes(BAD_SHOWN) || titles.includes(BAD_SHOWN),
         'hostile: the name with a byte not UTF-8 is not shown with U+FFFD');
  ensure(seen.charts['stage-time'].titles.some((t) => t.startsWith(
             `${EVIL.stage} (compute): total`)),
         'hostile: no stage-time row titled with the script name');
  ensure(seen.charts.timeline.laneLabels.some(
             (l) => l.startsWith('wait: </svg><svg')),
         `hostile: timeline lanes ${seen.charts.timeline.laneLabels}`);
}

async function check(opts, work) {
  const {chromium} = require(path.join(opts.modules, 'playwright-core'));
  const demo = demoTrace(opts.demo, work);
  const evil = hostileTrace(path.join(work, 'hostile.json'));
  const pages = {
    demo: {trace: demo, json: reportJson(opts.cli, demo)},
    hostile: {trace: evil, json: reportJson(opts.cli, evil)},
  };
  for (const [name, p] of Object.entries(pages))
    p.file = makePages(opts.cli, p.trace, work, name);
  checkWriteErrors(opts.cli, demo, work);
  /* The text report prints the names as they are: the trace is read. */
  const text = run(opts.cli, ['report', evil]);
  ensure(text.status === 0 && text.stdout.includes(EVIL.stage),
         `hostile: report --format=text: ${text.status}\n${text.stdout}`);

  const context = await launch(chromium, opts.chromium, work);
  try {
    /* PNGs are decoded on a blank page of their own, not the report's. */
    const decoder = await context.newPage();
    for (const [name, p] of Object.entries(pages)) {
      const shot = path.join(opts.outdir, `html_${name}.png`);
      const seen = await openPage(context, decoder, p.file, shot, readPage);
      checkCommon(name, seen, p.json);
      if (name === 'hostile')
        checkHostile(seen, p.json);
      const px = CHARTS.map((id) => `${id} ${seen.pixels[id].coloured}`);
      console.log(`${name}: ${p.json.stages.length} stages, bottleneck ` +
                  `${JSON.stringify(p.json.bottleneck.stage)}, coloured ` +
                  `pixels: ${px.join(', ')}; screenshot ${shot}`);
    }
  } finally {
    await context.close();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  needInstalled([['playwright-core', path.join(opts.modules, 'playwright-core')]],
                [['Chromium', opts.chromium], ['the CLI', opts.cli],
                 ['the demo', opts.demo]]);
  fs.mkdirSync(opts.outdir, {recursive: true});
  await runCheck('stageprof-html-', (work) => check(opts, work));
}

main();
