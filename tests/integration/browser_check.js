/*
 * browser_check.js - what the headless-browser checks share
 * (speedscope_check.js, html_check.js): their exit statuses, assertions,
 * the check that what they need is installed, and the run of a check in a
 * fresh working directory.
 *
 * Exit statuses: 0 pass, 1 fail, 77 skip.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

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

module.exports = {SKIP, skip, CheckError, ensure, needInstalled, runCheck};
