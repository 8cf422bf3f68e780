// Summarises a run of the HTTP caching test suite (npm package http-cache-tests) against stampede, beside
// the reverse proxies and CDN whose results the package ships in its results/ directory.
//
//   node conformance/summarize.mjs --suite DIR --results stampede.json [--out summary.md] [--note TEXT]
//                                  [--suite-label TEXT]
//
// DIR is the installed package (node_modules/http-cache-tests) or a copy of a cache-tests checkout with
// its dependencies installed (the same tests/ and results/ layout). Output is Markdown on stdout (and in
// --out): required and optimal pass/fail per test group, in two views, then stampede's failing tests.
//
// How a result is read mirrors the package's lib/display.mjs (determineTestResult), which is what
// cache-tests.fyi shows; it is re-implemented here because that module imports browser-only assets.
// A result is `true` (pass) or `[errorName, message]`: 'Assertion' is a failure of the behaviour tested,
// 'Setup' a failure while preparing it (the message 'retry' means the cache retried a request), anything
// else (e.g. 'FetchError') an error that display.mjs also counts as a failure.

import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

function usage (msg) {
  if (msg) console.error(`summarize: ${msg}`)
  console.error('usage: node summarize.mjs --suite DIR --results FILE [--out FILE] [--note TEXT] [--suite-label TEXT]')
  process.exit(2)
}

const args = { note: '' }
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i]
  const m = /^--(suite|suite-label|results|out|note)(?:=(.*))?$/.exec(a)
  if (!m) usage(`unknown argument ${a}`)
  args[m[1]] = m[2] !== undefined ? m[2] : process.argv[++i]
  if (args[m[1]] === undefined) usage(`${a} needs a value`)
}
if (!args.suite || !args.results) usage()

const suiteDir = path.resolve(args.suite)
const load = rel => import(pathToFileURL(path.join(suiteDir, rel)).href).then(m => m.default)
const readJSON = file => JSON.parse(fs.readFileSync(file, 'utf8'))

const pkg = readJSON(path.join(suiteDir, 'package.json'))
// The groups of tests/index.mjs; in the npm package 0.4.5 the CLI (cli.mjs) and cache-tests.fyi
// (index.html) also run the Surrogate-Control group, which is shown on a row of its own, outside the
// totals. Later checkouts have no such group (CDN-Cache-Control is in tests/index.mjs).
const groups = [...await load('tests/index.mjs')]
const surrogate = fs.existsSync(path.join(suiteDir, 'tests/surrogate-control.mjs'))
  ? await load('tests/surrogate-control.mjs')
  : { name: 'Surrogate-Control', id: 'surrogate-control', tests: [] }
const allGroups = [...groups, surrogate]
const suiteLabel = args['suite-label'] || `npm package \`http-cache-tests\` ${pkg.version}`
const shippedIndex = await load('results/index.mjs')

const testsById = new Map()
for (const g of allGroups) for (const t of g.tests) testsById.set(t.id, { ...t, group: g })

// --- mirror of lib/display.mjs determineTestResult -----------------------------------------------
// untested, pass, fail, optional_fail, yes, no, setup_fail, harness_fail, dependency_fail, retry
function determine (testId, results, honorDependencies) {
  const test = testsById.get(testId)
  if (!test) throw new Error(`Cannot find test ${testId}`)
  const result = results[testId]
  if (result === undefined) return 'untested'
  if (honorDependencies && test.depends_on !== undefined) {
    for (const dep of test.depends_on) {
      const d = determine(dep, results, true)
      if (d !== 'pass' && d !== 'yes') return 'dependency_fail'
    }
  }
  if (result[0] === 'Setup') return result[1] === 'retry' ? 'retry' : 'setup_fail'
  if (result === false) return 'harness_fail' // display.mjs: `result === false && result[0] !== 'Assertion'`
  if (result[0] === 'AbortError') return 'harness_fail' // later checkouts' lib/results.mjs
  const kind = test.kind || 'required'
  if (kind === 'required') return result === true ? 'pass' : 'fail'
  if (kind === 'optimal') return result === true ? 'pass' : 'optional_fail'
  if (kind === 'check') return result === true ? 'yes' : 'no'
  throw new Error(`Unrecognised test kind ${test.kind}`)
}

// The first failing dependency, for the failure list ("dependency failed: freshness-none").
function failedDependency (testId, results) {
  for (const dep of testsById.get(testId).depends_on || []) {
    const d = determine(dep, results, true)
    if (d !== 'pass' && d !== 'yes') return `${dep} (${d.replace('_', ' ')})`
  }
  return ''
}

// --- implementations ------------------------------------------------------------------------------
const ours = { name: 'stampede', version: '', results: readJSON(args.results) }
const shipped = shippedIndex
  .filter(item => item.type === 'rev-proxy' || item.type === 'cdn')
  .map(item => ({ ...item, results: readJSON(path.join(suiteDir, 'results', item.file)) }))
const impls = [ours, ...shipped]

for (const id of Object.keys(ours.results)) {
  if (!testsById.has(id)) console.error(`summarize: warning: result for unknown test ${id}`)
}

// Tests the CLI runs: it skips browser_only ones (client/runner.mjs), which are then "untested".
const cliRuns = t => t.browser_only !== true

function tally (tests, impl, kind, honour) {
  const c = { tests: 0, pass: 0, fail: 0, dependency_fail: 0, setup_fail: 0, retry: 0, harness_fail: 0, untested: 0 }
  for (const t of tests) {
    if ((t.kind || 'required') !== kind || !cliRuns(t)) continue
    c.tests++
    const r = impl.results[t.id]
    if (!honour) {
      if (r === undefined) c.untested++
      else if (r === true) c.pass++
      else c.fail++
      continue
    }
    const d = determine(t.id, impl.results, true)
    if (d === 'pass') c.pass++
    else if (d === 'fail' || d === 'optional_fail') c.fail++
    else c[d]++
  }
  return c
}

// --- Markdown ---------------------------------------------------------------------------------------
const out = []
const p = (s = '') => out.push(s)
const row = cells => p(`| ${cells.join(' | ')} |`)
const header = cols => { row(cols); row(cols.map((c, i) => (i < 1 ? '---' : '---:'))) }
const implHead = impls.map(i => (i === ours ? '**stampede**' : i.name))

function countTests (kind, set) {
  let n = 0
  let browserOnly = 0
  for (const g of set) {
    for (const t of g.tests) {
      if ((t.kind || 'required') !== kind) continue
      n++
      if (!cliRuns(t)) browserOnly++
    }
  }
  return { n, browserOnly }
}

function table (kind, honour) {
  header(['group', 'tests', ...implHead])
  const cell = (c, impl) => {
    const s = `${c.pass} / ${c.fail}`
    return impl === ours ? `**${s}**` : s
  }
  for (const g of groups) {
    const cs = impls.map(impl => tally(g.tests, impl, kind, honour))
    if (cs[0].tests === 0) continue
    row([`${g.name} (\`${g.id}\`)`, cs[0].tests, ...cs.map((c, i) => cell(c, impls[i]))])
  }
  const all = groups.flatMap(g => g.tests)
  const totals = impls.map(impl => tally(all, impl, kind, honour))
  row(['**total**', `**${totals[0].tests}**`, ...totals.map((c, i) => `**${c.pass} / ${c.fail}**`)])
  const extra = []
  if (honour) {
    extra.push(['not counted: dependency failed', 'dependency_fail'])
    extra.push(['not counted: setup failure', 'setup_fail'])
    extra.push(['not counted: retried', 'retry'])
    extra.push(['not counted: harness failure', 'harness_fail'])
  }
  extra.push(['untested (no result)', 'untested'])
  for (const [label, key] of extra) {
    if (totals.every(c => c[key] === 0)) continue
    row([`*${label}*`, '', ...totals.map(c => c[key])])
  }
  const sc = impls.map(impl => tally(surrogate.tests, impl, kind, honour))
  if (sc[0].tests > 0) {
    row([`*${surrogate.name} (\`${surrogate.id}\`), not in total*`, sc[0].tests, ...sc.map(c => `${c.pass} / ${c.fail}`)])
  }
  p()
}

const req = countTests('required', groups)
const opt = countTests('optimal', groups)
p(`## HTTP caching conformance: stampede beside other caches`)
p()
p(`Suite: ${suiteLabel} (the tests behind cache-tests.fyi). ` +
  `stampede: this repository's \`conformance/proxy\` (stampede in front of \`httputil.ReverseProxy\`, ` +
  `configured as in the README's quick start)${args.note ? `, ${args.note}` : ''}. ` +
  'Other columns: the results the suite ships in its `results/` directory, recorded by the suite\'s ' +
  'authors with the versions below; tests those files have no result for count as untested.' +
  (shipped.some(s => /caddy/i.test(s.name)) ? '' : ' This suite ships no results for Caddy (Souin), so it has no column here.'))
p()
p(shipped.map(s => `${s.name} ${s.version}`).join(', ') + '.')
p()
p(`Each cell is **pass / fail**. tests/index.mjs has ${req.n} required and ${opt.n} optimal tests; ` +
  `the command-line client skips the browser-only ones (${req.browserOnly} required, ${opt.browserOnly} optimal), ` +
  `so a cache can pass or fail at most ${req.n - req.browserOnly} required and ${opt.n - opt.browserOnly} optimal tests. ` +
  '"Required" failures are conformance problems; "optimal" failures are missed caching opportunities.')
p()
p('### Raw (dependencies ignored: every test that does not pass is a fail)')
p()
p('#### Required tests')
p()
table('required', false)
p('#### Optimal tests')
p()
table('optimal', false)
p('### Dependencies honoured (as cache-tests.fyi shows it)')
p()
p('A test whose `depends_on` test did not pass is not counted (⚪️ on cache-tests.fyi), nor is a setup ' +
  'failure (🔹) or a retried request (↻); the "not counted" rows say how many.')
p()
p('#### Required tests')
p()
table('required', true)
p('#### Optimal tests')
p()
table('optimal', true)

function failures (kind) {
  const list = []
  for (const g of allGroups) {
    for (const t of g.tests) {
      if ((t.kind || 'required') !== kind || !cliRuns(t)) continue
      const r = ours.results[t.id]
      if (r === true) continue
      const d = determine(t.id, ours.results, true)
      let msg
      if (r === undefined) msg = 'no result'
      else if (r === false) msg = 'harness failure'
      else msg = `${r[0]}: ${r[1]}`
      let honoured = ''
      if (d === 'dependency_fail') honoured = ` — *not counted when dependencies are honoured: depends on ${failedDependency(t.id, ours.results)}*`
      else if (d === 'setup_fail') honoured = ' — *setup failure*'
      else if (d === 'retry') honoured = ' — *retried*'
      list.push(`- \`${t.id}\` (${g.id}): ${t.name.replace(/\s+/g, ' ')} — ${msg.replace(/\s+/g, ' ').trim()}${honoured}`)
    }
  }
  return list
}

const fr = failures('required')
const fo = failures('optimal')
p(`### stampede's failing required tests (${fr.length})`)
p()
fr.forEach(l => p(l))
p()
p(`### stampede's failing optimal tests (${fo.length})`)
p()
fo.forEach(l => p(l))
p()

const text = out.join('\n')
process.stdout.write(text)
if (args.out) {
  fs.writeFileSync(args.out, text)
  console.error(`summarize: wrote ${args.out}`)
}
