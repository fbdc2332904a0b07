#!/usr/bin/env node
/*
 * diff_html_check.js - `stageprof diff --html` pages opened in a real
 * browser.
 *
 *   node diff_html_check.js --cli PATH --modules DIR --outdir DIR
 *                           [--chromium PATH]
 *
 * Traces written here (8 repetitions a side, seeded durations; the NEW
 * side's "infer" stage 30% slower), one of the stages named with HTML and
 * script. The page of `stageprof diff --html` is opened from a file://
 * URL in headless Chromium (playwright-core from DIR) and must agree with
 * `--format json` on the same inputs: the two interval charts (p50, p95)
 * with one row per compared stage and the runs, in the JSON's order, each
 * row's verdict and its label; the before/after table; the gate. Nothing
 * may run, load or be fetched; the hostile name shows as text; every chart
 * has coloured pixels in a full-page screenshot.
 *
 * Exit status: 0 pass, 1 fail, 2 bad usage, 77 skip (no Chromium, no
 * node_modules, no CLI).
 */
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');

const {ensure, needInstalled, runCheck, launch, openPage} =
    require('./browser_check');

const EVIL = '<script>window.__pwned=1;alert(1)</script>';
const STAGES = [['read', 'io', 2], ['decode', 'data', 6], ['infer', 'compute',
                30], ['post', 'postprocess', 1.5]];

function parseArgs(argv) {
  const opts = {chromium: '/usr/bin/chromium'};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!['cli', 'modules', 'outdir', 'chromium'].includes(key) ||
        i + 1 >= argv.length) {
      process.stderr.write(`diff_html_check: bad argument ${argv[i]}\n`);
      process.exit(2);
    }
    opts[key] = argv[i + 1];
  }
  if (!opts.cli || !opts.modules || !opts.outdir) {
    process.stderr.write('usage: node diff_html_check.js --cli PATH ' +
                         '--modules DIR --outdir DIR [--chromium PATH]\n');
    process.exit(2);
  }
  return opts;
}

/* A seeded generator (mulberry32) and a log-normal factor. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function lognormal(r, sigma) {
  const u = Math.max(r(), 1e-12), v = r();
  return Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) *
                  Math.cos(2 * Math.PI * v));
}

/* One repetition: 40 runs through STAGES, "infer" times @slow. */
function writeTrace(file, seed, slow) {
  const r = rng(seed);
  const ev = [{ph: 'M', name: 'thread_name', pid: 1, tid: 1,
               args: {name: 'worker'}}];
  let t = 1000;
  for (let run = 1; run <= 40; run++) {
    ev.push({ph: 'b', name: 'request', cat: 'run', id: '0x' +
             run.toString(16), ts: t, pid: 1, tid: 1, args: {run}});
    for (const [name, cat, ms] of STAGES) {
      const dur = ms * 1000 * lognormal(r, 0.15) * (name === 'infer' ? slow :
                                                    1);
      ev.push({ph: 'X', name: name === 'decode' ? EVIL : name, cat, ts: t,
               dur: Math.round(dur * 1000) / 1000, pid: 1, tid: 1,
               args: {run}});
      t += dur + 5;
    }
    ev.push({ph: 'e', name: 'request', cat: 'run', id: '0x' +
             run.toString(16), ts: t, pid: 1, tid: 1, args: {run}});
    t += 100;
  }
  fs.writeFileSync(file, JSON.stringify({
    stageprof: {format: 1, version: '0.1.0', host: 'box', cores: 2,
                clock: {source: 'tsc'}},
    traceEvents: ev,
  }));
}

function side(dir, seed0, slow) {
  fs.mkdirSync(dir);
  for (let i = 0; i < 8; i++)
    writeTrace(path.join(dir, `rep${i}.json`), seed0 + i, slow);
  return dir;
}

function run(cli, args) {
  const r = childProcess.spawnSync(cli, args, {encoding: 'utf8',
                                               timeout: 60000});
  return {status: r.status, stdout: r.stdout || '', stderr: r.stderr || ''};
}

/* The page as the test needs it (runs in the page). */
function readPage() {
  const box = (e) => {
    const b = e.getBoundingClientRect();
    return {x: b.left + window.scrollX, y: b.top + window.scrollY,
            width: b.width, height: b.height};
  };
  const charts = {};
  for (const svg of document.querySelectorAll('svg.chart.interval'))
    charts[svg.dataset.stat] = {
      box: box(svg),
      rows: Array.from(svg.querySelectorAll('g.row'), (g) => ({
        verdict: g.dataset.verdict,
        label: g.querySelector('text').textContent,
        ci: g.querySelectorAll('line.ci').length,
        est: g.querySelectorAll('circle.est').length,
      })),
    };
  const onAttrs = [];
  for (const e of document.querySelectorAll('*'))
    for (const a of e.attributes)
      if (/^on/i.test(a.name) || /javascript:/i.test(a.value))
        onAttrs.push(`${e.tagName} ${a.name}`);
  return {
    title: document.title,
    charts,
    tableRows: document.querySelectorAll('table.figures tr[data-verdict]')
                   .length,
    gate: Array.from(document.querySelectorAll('ul.gate li'),
                     (li) => li.className + ': ' + li.textContent),
    scripts: document.querySelectorAll('script').length,
    embedded: document.querySelectorAll(
        'img, iframe, object, embed, link, audio, video, image, foreignObject')
        .length,
    onAttrs,
    text: document.body.innerText,
    pwned: window.__pwned,
  };
}

async function check(opts, work) {
  const {chromium} = require(path.join(opts.modules, 'playwright-core'));
  const base = side(path.join(work, 'base'), 100, 1);
  const slow = side(path.join(work, 'new'), 200, 1.3);
  const file = path.join(work, 'diff.html');
  const args = ['diff', base, slow, '--fail-on', 'p95:+5%'];
  const h = run(opts.cli, args.concat(['--html', file]));
  ensure(h.status === 1, `diff --html: exit ${h.status}\n${h.stderr}`);
  const j = run(opts.cli, args.concat(['--format', 'json']));
  ensure(j.status === 1, `diff --format json: exit ${j.status}\n${j.stderr}`);
  const doc = JSON.parse(j.stdout);
  const want = doc.stages.concat([doc.runs]);
  const label = (s) => s === doc.runs ? 'runs (end to end)' :
      `${s.name} (${s.category})`;

  const context = await launch(chromium, opts.chromium, work);
  try {
    const decoder = await context.newPage();
    const shot = path.join(opts.outdir, 'diff.png');
    const seen = await openPage(context, decoder, file, shot, readPage);
    ensure(seen.title === 'stageprof diff', `title ${seen.title}`);
    ensure(!seen.pwned && seen.scripts === 0 && seen.embedded === 0 &&
           seen.onAttrs.length === 0,
           `something could run: ${JSON.stringify(seen.onAttrs)}`);
    ensure(seen.text.includes(EVIL), 'the hostile name is not shown as text');
    for (const stat of ['p50', 'p95']) {
      const c = seen.charts[stat];
      ensure(c, `no ${stat} chart: ${Object.keys(seen.charts)}`);
      ensure(c.rows.length === want.length,
             `${stat}: ${c.rows.length} rows for ${want.length} stages`);
      c.rows.forEach((row, i) => {
        /* Labels are cut at 34 code points, with an ellipsis. */
        const full = label(want[i]);
        const cut = Array.from(full).length > 34 ?
            Array.from(full).slice(0, 34).join('') + '\u2026' : full;
        ensure(row.label === full || row.label.startsWith(cut.slice(0, 34)),
               `${stat} row ${i}: ${row.label}, JSON ${full}`);
        ensure(row.verdict === want[i].changes[stat].verdict ||
               row.verdict === want[i].verdict && stat === 'p50',
               `${stat} row ${i}: verdict ${row.verdict}, JSON ` +
               `${want[i].changes[stat].verdict}`);
        ensure(row.ci === 1 && row.est === 1, `${stat} row ${i}: no interval`);
      });
      ensure(seen.pixels[stat].coloured > 300,
             `${stat} chart: ${seen.pixels[stat].coloured} coloured pixels`);
    }
    ensure(seen.charts.p50.rows[0].label === 'infer (compute)' &&
           seen.charts.p50.rows[0].verdict === 'slower',
           `first row ${JSON.stringify(seen.charts.p50.rows[0])}`);
    ensure(seen.tableRows === want.length, `table rows ${seen.tableRows}`);
    ensure(seen.gate.length === 1 && seen.gate[0].startsWith('fired') &&
           seen.gate[0].includes('infer'), `gate ${seen.gate}`);
    console.log(`diff page: ${want.length} rows a chart, first ` +
                `${seen.charts.p50.rows[0].label} ` +
                `${seen.charts.p50.rows[0].verdict}; coloured pixels p50 ` +
                `${seen.pixels.p50.coloured}, p95 ` +
                `${seen.pixels.p95.coloured}; screenshot ${shot}`);
  } finally {
    await context.close();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  needInstalled([['playwright-core',
                  path.join(opts.modules, 'playwright-core')]],
                [['Chromium', opts.chromium], ['the CLI', opts.cli]]);
  fs.mkdirSync(opts.outdir, {recursive: true});
  await runCheck('stageprof-diff-html-', (work) => check(opts, work));
}

main();
