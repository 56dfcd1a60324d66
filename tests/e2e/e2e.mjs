// Browser end-to-end test of the labelling UI (issue 5): Debian's Chromium, headless, driven by
// playwright-core, against a real `tumorlab serve` on 127.0.0.1 with a fresh data folder seeded
// by tumorlab_e2e_seed (synthetic cases, through the real store).
//
//   node tests/e2e/e2e.mjs --tumorlab BIN --seed SEED_BIN --web web --out OUT_DIR
//
// Checks (each reported as a line; the run ends with "N passed, M failed"):
//  login; worklist rows; open a case; brush stroke with real mouse events, undo, redo, save ->
//  the new revision's voxels (read back through the API) are exactly the stroke's disc footprint
//  on the drawn slice; threshold brush changes only voxels inside the intensity range; region
//  grow changes exactly the voxels the server's grow gives for the same seed; the eraser puts
//  exactly its footprint back at 0; an annotator cannot validate (button disabled, API 403) nor
//  upload (told which role it needs), and sees the models screen (both bundled models) without
//  activate or fine-tune actions; an admin activates another version of a model there (a copy
//  of mip-pet-2d under another version name is put in $TUMORLAB_MODELS_DIR); a reviewer validates; uploads a PET MIP NIfTI (modality PET
//  chosen in the form) that the bundled mip-pet-2d model pre-segments (job succeeds, AI revision
//  in the viewer); starts a fine-tune job from the models screen and sees how it ended (the
//  seeded cases are demo cases, not trained on, so the server refuses: no validated case);
//  runs "run pre-segmentation" on the PET case (progress, job succeeds, one more AI revision in
//  the history); rejects the case with a comment (status and comment through the API).
//  Screenshots of each screen at 1920x1080 and 1366x768 go to OUT_DIR. The bundled models are
//  found by the server in the source tree's models/.
// Timings are printed, not asserted: open-to-first-slice for the 256x256x40 MR and the
// 512x512x100 CT, and save-to-acknowledgement.
// Exit codes: 0 all passed, 1 a check failed, 77 skipped (no Chromium / node_modules / dist).
import { spawn, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
)
const here = path.dirname(new URL(import.meta.url).pathname)
const repo = path.resolve(here, '..', '..')
const web = path.resolve(args.web ?? path.join(repo, 'web'))
const out = path.resolve(args.out ?? path.join(repo, 'build', 'e2e-out'))
const tumorlab = args.tumorlab
const seedBin = args.seed
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium'

function skip(why) {
  console.log(`e2e: SKIPPED: ${why}`)
  process.exit(77)
}
if (!tumorlab || !fs.existsSync(tumorlab)) skip(`tumorlab binary not found (${tumorlab}); pass --tumorlab`)
if (!seedBin || !fs.existsSync(seedBin)) skip(`seed binary not found (${seedBin}); pass --seed`)
if (!fs.existsSync(chromiumPath)) skip(`${chromiumPath} is missing (scripts/setup.sh installs Debian's chromium)`)
if (!fs.existsSync(path.join(web, 'node_modules', 'playwright-core'))) skip(`${web}/node_modules is missing (run npm ci in web/, as scripts/setup.sh does)`)
if (!fs.existsSync(path.join(web, 'dist', 'index.html'))) skip(`${web}/dist is missing (run npm run build in web/, as scripts/setup.sh does)`)

const require = createRequire(path.join(web, 'package.json'))
const { chromium } = require('playwright-core')

fs.mkdirSync(out, { recursive: true })
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tumorlab-e2e-'))
const dataDir = path.join(work, 'data')
const ADMIN_PW = 'e2e-admin-password-1'
const REVIEWER_PW = 'e2e-reviewer-pass-1'
const ANNOTATOR_PW = 'e2e-annotator-pass-1'

let passed = 0
let failed = 0
const timings = []
function check(name, ok, detail = '') {
  if (ok) passed++
  else failed++
  console.log(`e2e: ${ok ? 'PASS' : 'FAIL'}: ${name}${detail ? ' — ' + detail : ''}`)
}
function timing(name, ms) {
  timings.push([name, ms])
  console.log(`e2e: TIME: ${name}: ${Math.round(ms)} ms`)
}

// ---------- server ----------
const seedRun = spawnSync(seedBin, [dataDir], { env: { ...process.env, E2E_REVIEWER_PASSWORD: REVIEWER_PW, E2E_ANNOTATOR_PASSWORD: ANNOTATOR_PW }, encoding: 'utf8' })
if (seedRun.status !== 0) {
  console.log(`e2e: FAIL: seeding the data folder: ${seedRun.stderr}`)
  process.exit(1)
}
const seeded = JSON.parse(seedRun.stdout.trim().split('\n').pop())
// A second version of mip-pet-2d (the same weights, another version name) in $TUMORLAB_MODELS_DIR,
// which the server searches first: it registers first and becomes the active version, so the
// admin has a version to activate on the models screen.
const extraModels = path.join(work, 'models')
const copyVersion = '0-e2e-copy'
// The version of the bundled mip-pet-2d (models/mip-pet-2d/bundle.json), which the admin activates.
const bundledVersion = JSON.parse(fs.readFileSync(path.join(repo, 'models', 'mip-pet-2d', 'bundle.json'), 'utf8')).version
{
  const src = path.join(repo, 'models', 'mip-pet-2d')
  const dst = path.join(extraModels, 'mip-pet-2d-e2e-copy')
  fs.mkdirSync(dst, { recursive: true })
  for (const f of ['model.pt', 'plans.json']) fs.copyFileSync(path.join(src, f), path.join(dst, f))
  const bundle = JSON.parse(fs.readFileSync(path.join(src, 'bundle.json'), 'utf8'))
  fs.writeFileSync(path.join(dst, 'bundle.json'), JSON.stringify({ ...bundle, version: copyVersion }, null, 2))
}
const portFile = path.join(work, 'url')
const logFile = path.join(out, 'server.log')
const server = spawn(tumorlab, ['--log-level', 'info', 'serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--port-file', portFile, '--web-dir', path.join(web, 'dist')], {
  env: { ...process.env, TUMORLAB_ADMIN_PASSWORD: ADMIN_PW, TUMORLAB_MODELS_DIR: extraModels },
  stdio: ['ignore', fs.openSync(logFile, 'w'), fs.openSync(logFile, 'a')]
})
let serverExited = false
server.on('exit', () => (serverExited = true))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
for (let i = 0; i < 600 && !fs.existsSync(portFile) && !serverExited; i++) await sleep(50)
if (!fs.existsSync(portFile)) {
  console.log(`e2e: FAIL: server did not start; log:\n${fs.readFileSync(logFile, 'utf8')}`)
  process.exit(1)
}
const base = fs.readFileSync(portFile, 'utf8').trim()
console.log(`e2e: server at ${base}, data ${dataDir}, output ${out}`)

async function apiLogin(username, password) {
  const r = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }) })
  if (!r.ok) throw new Error(`login ${username}: ${r.status}`)
  return (await r.json()).token
}
const call = async (token, method, p, body) => {
  const r = await fetch(base + p, { method, headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined })
  return r
}
const getJson = async (token, p) => {
  const r = await call(token, 'GET', p)
  if (!r.ok) throw new Error(`GET ${p}: ${r.status} ${await r.text()}`)
  return r.json()
}
function parseNifti(buf) {
  const b = buf[0] === 0x1f && buf[1] === 0x8b ? zlib.gunzipSync(buf) : buf
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const dims = [1, 2, 3, 4].map((d) => Math.max(1, dv.getInt16(40 + 2 * d, true)))
  const datatype = dv.getInt16(70, true)
  const off = Math.round(dv.getFloat32(108, true))
  const slope = dv.getFloat32(112, true) || 1
  const inter = dv.getFloat32(116, true)
  const n = dims[0] * dims[1] * dims[2] * dims[3]
  const data = new Float32Array(n)
  for (let p = 0; p < n; p++) {
    let v
    switch (datatype) {
      case 2: v = b[off + p]; break
      case 256: v = dv.getInt8(off + p); break
      case 4: v = dv.getInt16(off + 2 * p, true); break
      case 512: v = dv.getUint16(off + 2 * p, true); break
      case 8: v = dv.getInt32(off + 4 * p, true); break
      case 16: v = dv.getFloat32(off + 4 * p, true); break
      default: throw new Error('datatype ' + datatype)
    }
    data[p] = v * slope + inter
  }
  return { dims, data, pixdim: [1, 2, 3].map((d) => dv.getFloat32(76 + 4 * d, true)) }
}
const getNifti = async (token, p) => {
  const r = await call(token, 'GET', p)
  if (!r.ok) throw new Error(`GET ${p}: ${r.status}`)
  return parseNifti(new Uint8Array(await r.arrayBuffer()))
}
function diffLabels(a, b, dims) {
  const changed = []
  for (let n = 0; n < a.data.length; n++) {
    if (a.data[n] !== b.data[n]) {
      const i = n % dims[0]
      const j = Math.floor(n / dims[0]) % dims[1]
      const k = Math.floor(n / (dims[0] * dims[1]))
      changed.push({ n, i, j, k, before: a.data[n], after: b.data[n] })
    }
  }
  return changed
}

// ---------- browser ----------
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']
})
const consoleErrors = []
async function newPage(width, height) {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 })
  const page = await context.newPage()
  page.on('pageerror', (e) => consoleErrors.push(String(e)))
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
  page.setDefaultTimeout(60000)
  return page
}
const shot = async (page, name) => {
  const file = path.join(out, `${name}.png`)
  await page.screenshot({ path: file })
  console.log(`e2e: screenshot ${file}`)
}
async function login(page, user, pw) {
  await page.goto(base + '/#/login')
  await page.getByTestId('login-username').fill(user)
  await page.getByTestId('login-password').fill(pw)
  await page.getByTestId('login-submit').click()
  await page.getByTestId('worklist-row').first().waitFor()
}
async function openCase(page, caseId, via = null, waitReady = true) {
  const t = Date.now()
  await (via ?? page.locator(`[data-testid=worklist-row][data-case-id="${caseId}"]`)).click()
  const status = page.getByTestId('viewer-status')
  await page.waitForSelector('[data-testid=viewer-status][data-first-render-ms]', { timeout: 150000 })
  console.log(`e2e: case ${caseId} load: ${await status.getAttribute('data-load-breakdown')}`)
  const inPage = Number(await status.getAttribute('data-first-render-ms'))
  if (waitReady) await page.waitForSelector('section.viewer[data-ready="1"]', { timeout: 150000 })
  return { inPage, outside: Date.now() - t }
}
const canvasBox = async (page) => page.getByTestId('viewer-canvas').boundingBox()
async function voxelUnder(page, x, y) {
  await page.getByTestId('tool-pointer').click()
  await page.mouse.click(x, y)
  await page.waitForFunction(() => document.querySelector('[data-testid=cursor-info]')?.dataset.voxel)
  const info = page.getByTestId('cursor-info')
  return { voxel: (await info.getAttribute('data-voxel')).split(',').map(Number), text: await info.textContent() }
}

// Distance (mm, in-plane) of voxel (i, j) from the segment p->q (voxel coordinates), spacing sp.
function segDistMm(p, q, sp, i, j) {
  const [ax, ay] = [p[0] * sp[0], p[1] * sp[1]]
  const [bx, by] = [q[0] * sp[0], q[1] * sp[1]]
  const [px, py] = [i * sp[0], j * sp[1]]
  const L = (bx - ax) ** 2 + (by - ay) ** 2
  const t = L ? Math.max(0, Math.min(1, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / L)) : 0
  return Math.hypot(px - ax - t * (bx - ax), py - ay - t * (by - ay))
}
async function waitJob(token, jobId, timeoutMs = 240000) {
  const t = Date.now()
  for (;;) {
    const j = await getJson(token, `/api/jobs/${jobId}`)
    if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j
    if (Date.now() - t > timeoutMs) throw new Error(`job ${jobId} still ${j.state} after ${timeoutMs} ms`)
    await sleep(250)
  }
}

const brainId = seeded.cases['DEMO-brain-1']
const ctId = seeded.cases['DEMO-ct-1']
let exitCode = 0
try {
  const annaToken = await apiLogin('anna', ANNOTATOR_PW)
  const page = await newPage(1920, 1080)

  // login + worklist
  await page.goto(base + '/')
  await page.getByTestId('login-username').waitFor()
  await shot(page, '01-login-1920')
  await login(page, 'anna', ANNOTATOR_PW)
  const rows = await page.getByTestId('worklist-row').count()
  check('worklist shows every seeded case after login', rows === Object.keys(seeded.cases).length, `${rows} rows`)
  await shot(page, '02-worklist-1920')
  await page.getByTestId('worklist-search').fill('ct')
  const filtered = await page.getByTestId('worklist-row').count()
  check('worklist search filters by case name', filtered === 1, `${filtered} row(s) for "ct"`)
  await page.getByTestId('worklist-search').fill('')

  // open the MR case with "next case" (it has the best active-learning rank)
  const mrOpen = await openCase(page, brainId, page.getByTestId('next-case'))
  check('"next case" opens the case with the best active-learning rank', page.url().endsWith(`#/case/${brainId}`), page.url())
  timing('MR 256x256x40 (2 channels): open case -> first slice rendered (in page)', mrOpen.inPage)
  timing('MR 256x256x40: click -> viewer ready with overlays and revisions', mrOpen.outside)
  const detail = await getJson(annaToken, `/api/cases/${brainId}`)
  check('viewer shows the case name', (await page.getByTestId('case-title').textContent()).includes('DEMO-brain-1'))
  check('channel switch offers FLAIR and T1c', (await page.getByTestId('channel').locator('option').count()) === 2 && !(await page.getByTestId('channel').isDisabled()))
  await page.getByTestId('toggle-uncertainty').check()
  await page.waitForSelector('section.viewer[data-overlays*=uncertainty]')
  check('the uncertainty heatmap loads and shows when toggled on', true)
  await sleep(300)
  await shot(page, '03-viewer-mpr-uncertainty-1920')
  await page.getByTestId('toggle-uncertainty').uncheck()
  await page.getByTestId('layout-axial').click()
  await sleep(300)

  // brush stroke with real mouse events
  const box = await canvasBox(page)
  const cx = box.x + box.width / 2
  const cy = box.y + box.height / 2
  const a = await voxelUnder(page, cx - 60, cy - 40)
  const b = await voxelUnder(page, cx + 60, cy - 40)
  check('pointer clicks on one axial slice report voxels on that slice', a.voxel[2] === b.voxel[2] && a.voxel[0] !== b.voxel[0], `${a.voxel} -> ${b.voxel}`)
  const radiusMm = 3
  await page.getByTestId('tool-brush').click()
  await page.getByTestId('brush-size').fill(String(radiusMm))
  await page.getByTestId('brush-size').dispatchEvent('change')
  await page.mouse.move(cx - 60, cy - 40)
  await page.mouse.down()
  await page.mouse.move(cx + 60, cy - 40, { steps: 12 })
  await page.mouse.up()
  await page.waitForFunction(() => /Brush: \d+ voxels changed/.test(document.querySelector('[data-testid=viewer-status]')?.textContent ?? ''))
  const brushStatus = await page.getByTestId('viewer-status').textContent()
  await shot(page, '04-viewer-brush-1920')
  await page.getByTestId('undo').click()
  const afterUndo = await voxelUnder(page, cx, cy - 40)
  check('undo removes the stroke (label 0 under it)', /label 0$/.test(afterUndo.text.trim()), afterUndo.text)
  await page.getByTestId('redo').click()
  const afterRedo = await voxelUnder(page, cx, cy - 40)
  check('redo restores the stroke (label 1 under it)', /label 1$/.test(afterRedo.text.trim()), afterRedo.text)
  await page.getByTestId('save-label').click()
  await page.waitForSelector('[data-testid=viewer-status][data-saved-revision]')
  const status = page.getByTestId('viewer-status')
  const rev1 = Number(await status.getAttribute('data-saved-revision'))
  timing('save (MR label) -> server acknowledgement', Number(await status.getAttribute('data-save-ack-ms')))
  const revs = (await getJson(annaToken, `/api/cases/${brainId}/revisions`)).items
  const last = revs[revs.length - 1]
  check('save created a new manual revision whose parent is the AI revision', last.id === rev1 && last.parent_id === detail.ai_revision_id && last.kind === 'manual', JSON.stringify({ id: last.id, parent: last.parent_id, kind: last.kind }))
  const aiLabel = await getNifti(annaToken, `/api/cases/${brainId}/revisions/${detail.ai_revision_id}/label`)
  const l1 = await getNifti(annaToken, `/api/cases/${brainId}/revisions/${rev1}/label`)
  const dims = l1.dims
  const sp = l1.pixdim
  const ch = diffLabels(aiLabel, l1, dims)
  // Expected: every voxel of the slice within radius (mm) of the segment a->b (in-plane), set to 1.
  const k0 = a.voxel[2]
  const segDist = (i, j) => segDistMm(a.voxel, b.voxel, sp, i, j)
  const offSlice = ch.filter((c) => c.k !== k0).length
  const wrongValue = ch.filter((c) => c.after !== 1).length
  const outside = ch.filter((c) => segDist(c.i, c.j) > radiusMm + 0.5).length
  let missing = 0
  for (let j = 0; j < dims[1]; j++)
    for (let i = 0; i < dims[0]; i++) {
      const n = i + dims[0] * (j + dims[1] * k0)
      if (segDist(i, j) <= radiusMm - 0.5 && l1.data[n] !== 1) missing++
    }
  check('saved revision = AI label + the brush footprint (on slice k, value 1, within the radius of the stroke, none missing)', ch.length > 0 && offSlice === 0 && wrongValue === 0 && outside === 0 && missing === 0, `${ch.length} changed, off-slice ${offSlice}, wrong value ${wrongValue}, outside ${outside}, missing ${missing}; UI said "${brushStatus}"`)

  // threshold brush: only voxels within [lower, upper] of channel 0 change
  const img = await getNifti(annaToken, `/api/cases/${brainId}/image`)
  const lower = 40
  const upper = 75
  await page.getByTestId('tool-threshold').click()
  await page.getByTestId('threshold-lower').fill(String(lower))
  await page.getByTestId('threshold-lower').dispatchEvent('change')
  await page.getByTestId('threshold-upper').fill(String(upper))
  await page.getByTestId('threshold-upper').dispatchEvent('change')
  await page.getByTestId('brush-size').fill('5')
  await page.getByTestId('brush-size').dispatchEvent('change')
  await page.mouse.move(cx - 80, cy + 50)
  await page.mouse.down()
  await page.mouse.move(cx + 80, cy + 50, { steps: 12 })
  await page.mouse.up()
  await page.waitForFunction(() => document.querySelector('[data-testid=viewer-status]')?.dataset.lastTool === 'threshold_brush')
  const thrChanged = Number(await status.getAttribute('data-last-tool-changed'))
  await page.getByTestId('save-label').click()
  await page.waitForFunction((r) => Number(document.querySelector('[data-testid=viewer-status]')?.dataset.savedRevision) > r, rev1)
  const rev2 = Number(await status.getAttribute('data-saved-revision'))
  const l2 = await getNifti(annaToken, `/api/cases/${brainId}/revisions/${rev2}/label`)
  const ch2 = diffLabels(l1, l2, dims)
  const outOfRange = ch2.filter((c) => img.data[c.n] < lower || img.data[c.n] > upper).length
  check('threshold brush changed only voxels inside the intensity range, to label 1', ch2.length > 0 && outOfRange === 0 && ch2.every((c) => c.after === 1), `${ch2.length} changed (server reported ${thrChanged}), ${outOfRange} out of range`)
  check('threshold brush: the saved change equals what the server tool reported', ch2.length === thrChanged)
  const rev2Meta = (await getJson(annaToken, `/api/cases/${brainId}/revisions`)).items.find((r) => r.id === rev2)
  check('a save after server tools is a "refined" revision', rev2Meta?.kind === 'refined', rev2Meta?.kind)

  // region grow: exactly the server's grow from the same seed on the same label
  const seedPt = await voxelUnder(page, cx + 30, cy + 120)
  const tol = 6
  await page.getByTestId('tool-grow').click()
  await page.getByTestId('grow-tolerance').fill(String(tol))
  await page.getByTestId('grow-tolerance').dispatchEvent('change')
  await page.mouse.click(cx + 30, cy + 120)
  await page.waitForFunction(() => document.querySelector('[data-testid=viewer-status]')?.dataset.lastTool === 'grow')
  await shot(page, '05-viewer-tools-1920')
  await page.getByTestId('save-label').click()
  await page.waitForFunction((r) => Number(document.querySelector('[data-testid=viewer-status]')?.dataset.savedRevision) > r, rev2)
  const rev3 = Number(await status.getAttribute('data-saved-revision'))
  const l3 = await getNifti(annaToken, `/api/cases/${brainId}/revisions/${rev3}/label`)
  const expected = await (await call(annaToken, 'POST', `/api/cases/${brainId}/tools/grow`, { revision_id: rev2, seed: seedPt.voxel, tolerance: tol, channel: 0, connectivity: 'face', label_value: 1, max_voxels: 2000000, slice_axis: 2, return_label: true })).json()
  const expLabel = parseNifti(new Uint8Array(Buffer.from(expected.label, 'base64')))
  const mismatch = diffLabels(expLabel, l3, dims).length
  const ch3 = diffLabels(l2, l3, dims)
  check('region grow (in the slice) in the browser changed exactly the voxels of the server grow from that seed', ch3.length > 0 && mismatch === 0 && ch3.length === expected.changed_voxels, `${ch3.length} changed, server ${expected.changed_voxels}, mismatching voxels ${mismatch}, seed ${seedPt.voxel}`)

  // revision history, help
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=revision-row]').length >= n, 4)
  check('revision history lists the AI revision and the three saves', (await page.getByTestId('revision-row').count()) === 4)
  // eraser: a short vertical stroke across the brush stroke; the saved revision has exactly the
  // voxels of its footprint on that slice back at 0, nothing else changed
  {
    const e0 = await voxelUnder(page, cx - 10, cy - 70)
    const e1 = await voxelUnder(page, cx - 10, cy - 10)
    const eraseMm = 2
    await page.getByTestId('tool-eraser').click()
    await page.getByTestId('brush-size').fill(String(eraseMm))
    await page.getByTestId('brush-size').dispatchEvent('change')
    await page.mouse.move(cx - 10, cy - 70)
    await page.mouse.down()
    await page.mouse.move(cx - 10, cy - 10, { steps: 10 })
    await page.mouse.up()
    await page.waitForFunction(() => /Eraser: \d+ voxels changed/.test(document.querySelector('[data-testid=viewer-status]')?.textContent ?? ''))
    const eraseStatus = await status.textContent()
    await shot(page, '07-viewer-eraser-1920')
    await page.getByTestId('save-label').click()
    await page.waitForFunction((r) => Number(document.querySelector('[data-testid=viewer-status]')?.dataset.savedRevision) > r, rev3)
    const rev4 = Number(await status.getAttribute('data-saved-revision'))
    const l4 = await getNifti(annaToken, `/api/cases/${brainId}/revisions/${rev4}/label`)
    const ch4 = diffLabels(l3, l4, dims)
    const ek = e0.voxel[2]
    const d = (i, j) => segDistMm(e0.voxel, e1.voxel, sp, i, j)
    const notZero = ch4.filter((c) => c.after !== 0).length
    const offSl = ch4.filter((c) => c.k !== ek).length
    const outsideE = ch4.filter((c) => d(c.i, c.j) > eraseMm + 0.5).length
    let left = 0
    let erasedStroke = 0
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++) {
        const n = i + dims[0] * (j + dims[1] * ek)
        if (d(i, j) <= eraseMm - 0.5 && l4.data[n] !== 0) left++
        if (d(i, j) <= eraseMm + 0.5 && l3.data[n] === 1 && segDist(i, j) <= radiusMm - 0.5 && l4.data[n] === 0) erasedStroke++
      }
    check(
      'eraser: the saved revision has exactly the eraser footprint back at 0 (on slice k, within the radius of the stroke, none left, nothing else changed)',
      e0.voxel[2] === k0 && ch4.length > 0 && notZero === 0 && offSl === 0 && outsideE === 0 && left === 0 && erasedStroke > 0,
      `${ch4.length} changed (${erasedStroke} of them from the brush stroke), not zero ${notZero}, off-slice ${offSl}, outside ${outsideE}, left labelled ${left}; UI said "${eraseStatus}"`
    )
  }

  await page.keyboard.press('?')
  await page.getByTestId('help-overlay').waitFor()
  await shot(page, '06-help-1920')
  await page.keyboard.press('Escape')

  // annotator cannot validate; submit works
  check('validate button is disabled for an annotator', await page.getByTestId('validate-case').isDisabled())
  const denied = await call(annaToken, 'POST', `/api/cases/${brainId}/status`, { status: 'validated' })
  check('the API refuses validation by an annotator (403)', denied.status === 403, `status ${denied.status}`)
  await page.getByTestId('submit-case').click()
  await page.waitForFunction(() => document.querySelector('[data-testid=case-status]')?.textContent === 'submitted')
  check('annotator submits the case', (await getJson(annaToken, `/api/cases/${brainId}`)).status === 'submitted')

  // dashboard
  await page.goto(base + '/#/dashboard')
  await page.getByTestId('chart-status').waitFor()
  await sleep(500)
  await shot(page, '08-dashboard-1920')
  check('dashboard shows the status and Dice charts', (await page.locator('[data-testid=chart-status] canvas, [data-testid=chart-dice] canvas').count()) === 2)

  // upload: an annotator is told the role it needs (the server answers 403 as well)
  await page.goto(base + '/#/upload')
  await page.getByTestId('upload-dropzone').waitFor()
  check('the upload screen tells an annotator that uploading needs another role', (await page.getByTestId('upload-not-allowed').count()) === 1)

  // models screen (annotator): both bundled models listed, no activate nor fine-tune action
  await page.getByTestId('nav-models').click()
  await page.getByTestId('model-row').first().waitFor()
  {
    const names = await page.getByTestId('model-row').evaluateAll((rows) => rows.map((r) => r.dataset.modelName))
    check('models screen lists both bundled models (lgg-flair-3d, mip-pet-2d)', names.includes('lgg-flair-3d') && names.includes('mip-pet-2d'), names.join(', '))
    const apiModels = (await getJson(annaToken, '/api/models')).items
    check('models screen has one row per registered model version', names.length === apiModels.length, `${names.length} rows, ${apiModels.length} in the API`)
    check('an annotator sees no activate button and no fine-tune action', (await page.getByTestId('activate-model').count()) === 0 && (await page.getByTestId('train-model').count()) === 0 && (await page.getByTestId('train-not-allowed').count()) === 1)
    await shot(page, '16-models-annotator-1920')
  }

  // models screen (admin): activate the bundled mip-pet-2d (bundledVersion) instead of the copy
  {
    const adminPage = await newPage(1920, 1080)
    await login(adminPage, 'admin', ADMIN_PW)
    await adminPage.getByTestId('nav-models').click()
    await adminPage.getByTestId('model-row').first().waitFor()
    const rowsN = await adminPage.getByTestId('model-row').count()
    const buttons = await adminPage.getByTestId('activate-model').count()
    const copyActive = (await adminPage.locator(`[data-testid=model-row][data-model-name="mip-pet-2d"][data-model-version="${copyVersion}"]`).getAttribute('data-active')) === '1'
    await adminPage.locator(`[data-testid=model-row][data-model-name="mip-pet-2d"][data-model-version="${bundledVersion}"] [data-testid=activate-model]`).click()
    await adminPage.waitForSelector(`[data-testid=model-row][data-model-name="mip-pet-2d"][data-model-version="${bundledVersion}"][data-active="1"]`)
    const after = (await getJson(annaToken, '/api/models')).items.filter((m) => m.name === 'mip-pet-2d')
    const bundled = after.find((m) => m.version === bundledVersion)
    const cp = after.find((m) => m.version === copyVersion)
    check(
      `an admin sees an activate button per version and activates the bundled mip-pet-2d@${bundledVersion} (the API then has it active and the other version not)`,
      buttons === rowsN && copyActive && bundled?.active === true && cp?.active === false,
      `${buttons} buttons for ${rowsN} rows; before: copy active ${copyActive}; after: ${after.map((m) => `${m.version} ${m.active ? 'active' : 'inactive'}`).join(', ')}`
    )
    await shot(adminPage, '21-models-admin-1920')
    await adminPage.context().close()
  }

  // reviewer validates, at 1366x768
  const small = await newPage(1366, 768)
  await small.goto(base + '/')
  await small.getByTestId('login-username').waitFor()
  await shot(small, '10-login-1366')
  await login(small, 'rita', REVIEWER_PW)
  await shot(small, '11-worklist-1366')
  await openCase(small, brainId)
  await shot(small, '12-viewer-1366')
  check('validate button is enabled for a reviewer', !(await small.getByTestId('validate-case').isDisabled()))
  await small.getByTestId('validate-case').click()
  await small.waitForFunction(() => document.querySelector('[data-testid=case-status]')?.textContent === 'validated')
  check('reviewer validates the submitted case', (await getJson(annaToken, `/api/cases/${brainId}`)).status === 'validated')
  await small.goto(base + '/#/dashboard')
  await small.getByTestId('chart-status').waitFor()
  await sleep(500)
  await shot(small, '13-dashboard-1366')

  // upload (reviewer): a PET MIP NIfTI (a synthetic demo PNG converted by `tumorlab convert`; NIfTI
  // carries no modality, so "PET" is chosen in the form) becomes a case, the bundled mip-pet-2d
  // model pre-segments it, and the AI revision shows in the viewer
  await small.goto(base + '/#/upload')
  await small.getByTestId('upload-dropzone').waitFor()
  {
    const demoDir = path.join(work, 'demo')
    spawnSync(tumorlab, ['demo-data', demoDir], { encoding: 'utf8' })
    const petDir = path.join(demoDir, 'Dataset902_DEMO_PetMip', 'imagesTr')
    const pngs = fs.readdirSync(petDir).filter((f) => f.endsWith('_0000.png'))
    // The k-th demo PET PNG, converted to NIfTI and uploaded from the upload screen as PET: the
    // new case's id and its pre-segmentation job's id.
    const uploadPet = async (k, name) => {
      const nii = path.join(work, name + '.nii.gz')
      const conv = spawnSync(tumorlab, ['convert', path.join(petDir, pngs[k]), nii], { encoding: 'utf8' })
      if (conv.status !== 0) throw new Error(`tumorlab convert ${pngs[k]}: ${conv.stderr}`)
      await small.getByTestId('upload-modality').selectOption('PT')
      await small.getByTestId('upload-input').setInputFiles(nii)
      await small.getByTestId('upload-case-link').first().waitFor({ timeout: 120000 })
      const row = small.getByTestId('upload-row').first()
      const job = Number(await row.getAttribute('data-job-id'))
      if (!job) throw new Error(`the upload queued no pre-segmentation job: "${await row.textContent()}"`)
      return [Number(await small.getByTestId('upload-case-link').first().getAttribute('data-case-id')), job]
    }
    const [newId, jobId] = await uploadPet(0, 'UPLOAD-pet-mip')
    await small.waitForFunction(() => ['succeeded', 'failed', 'cancelled'].includes(document.querySelector('[data-testid=upload-row]')?.dataset.jobState ?? ''), null, { timeout: 240000 })
    await small.waitForFunction(() => !/%|queued|running/.test(document.querySelector('[data-testid=upload-row] .muted')?.textContent ?? '%'), null, { timeout: 30000 }).catch(() => undefined)
    await shot(small, '09-upload-1366')
    const job = await getJson(annaToken, `/api/jobs/${jobId}`)
    const up = await getJson(annaToken, `/api/cases/${newId}`)
    check('an uploaded PET MIP NIfTI (modality PET chosen in the form) becomes a PT case', up.image?.modality === 'PT', JSON.stringify({ modality: up.image?.modality, channels: up.image?.channels }))
    check(
      "the uploaded NIfTI's pre-segmentation job succeeds with the bundled mip-pet-2d model and records an AI revision",
      job.state === 'succeeded' && job.result?.revision_id > 0 && (job.result?.model?.name ?? job.result?.model) === 'mip-pet-2d' && up.ai_revision_id === job.result.revision_id,
      JSON.stringify({ state: job.state, error: job.error, result: job.result, ai_revision_id: up.ai_revision_id })
    )
    await small.getByTestId('upload-case-link').first().click()
    await small.waitForSelector('section.viewer[data-ready="1"]')
    const aiRow = small.locator(`[data-testid=revision-row][data-revision-id="${job.result?.revision_id}"]`)
    check('the uploaded case opens in the viewer with its AI revision in the history and the AI overlay available', (await aiRow.count()) === 1 && (await aiRow.locator('.kind-ai').count()) === 1 && !(await small.getByTestId('toggle-ai').isDisabled()), `AI revision ${job.result?.revision_id}, ${job.result?.voxel_count} voxels`)
    await small.getByTestId('compare').click()
    await sleep(400)
    await shot(small, '17-viewer-uploaded-pet-ai-1366')

    // a second uploaded PET case, then both validated by the reviewer (through the API: the
    // validate button itself is exercised above), so fine-tuning below has real cases to train on
    await small.goto(base + '/#/upload')
    await small.getByTestId('upload-dropzone').waitFor()
    const [newId2, jobId2] = await uploadPet(1, 'UPLOAD-pet-mip-2')
    await waitJob(annaToken, jobId2)
    const ritaToken = await apiLogin('rita', REVIEWER_PW)
    for (const id of [newId, newId2])
      for (const st of ['in_progress', 'submitted', 'validated']) {
        const r = await call(ritaToken, 'POST', `/api/cases/${id}/status`, { status: st })
        if (!r.ok) throw new Error(`case ${id} status ${st}: ${r.status} ${await r.text()}`)
      }
  }

  // models screen (reviewer, 1366x768): fine-tune action offered, no activate; a short fine-tune
  // of mip-pet-2d on the two validated uploaded cases streams its progress, succeeds and registers
  // a new inactive version; a second, long one is cancelled from its job row
  await small.goto(base + '/#/models')
  await small.getByTestId('model-row').first().waitFor()
  {
    check('a reviewer is offered fine-tuning but not activation', (await small.getByTestId('train-model').count()) >= 2 && (await small.getByTestId('activate-model').count()) === 0)
    const heldOutText = await small.locator('[data-testid=model-row][data-model-name="lgg-flair-3d"] [data-testid=model-heldout]').textContent()
    const lggBundle = JSON.parse(fs.readFileSync(path.join(path.dirname(web), 'models', 'lgg-flair-3d', 'bundle.json'), 'utf8'))
    check(
      "the models screen shows a bundle's recorded held-out Dice",
      lggBundle.evaluation ? heldOutText.includes(lggBundle.evaluation.patients_mean_dice.toFixed(3)) : /model card/.test(heldOutText),
      `"${heldOutText}", bundle.json evaluation ${JSON.stringify(lggBundle.evaluation ?? null)}`
    )
    await small.waitForFunction(() => /^2 validated/.test(document.querySelector('[data-testid=train-validated]')?.textContent ?? ''), null, { timeout: 10000 }).catch(() => undefined)
    await small.getByTestId('train-epochs').fill('2')
    await small.getByTestId('train-iterations').fill('3')
    const versionsBefore = await small.locator('[data-testid=model-row][data-model-name="mip-pet-2d"]').count()
    await small.locator(`[data-testid=model-row][data-model-name="mip-pet-2d"][data-model-version="${bundledVersion}"] [data-testid=train-model]`).click()
    const jobRow = small.getByTestId('job-row').first()
    await jobRow.waitFor()
    const trainJobId = Number(await jobRow.getAttribute('data-job-id'))
    await small.waitForFunction((id) => ['succeeded', 'failed', 'cancelled'].includes(document.querySelector(`[data-testid=job-row][data-job-id="${id}"]`)?.dataset.state ?? ''), trainJobId, { timeout: 300000 })
    await small.waitForFunction((id) => (document.querySelector(`[data-testid=job-row][data-job-id="${id}"] [data-testid=job-outcome]`)?.textContent ?? '') !== '', trainJobId)
    const tj = await getJson(annaToken, `/api/jobs/${trainJobId}`)
    const shownOutcome = await jobRow.getByTestId('job-outcome').textContent()
    await small.waitForFunction((n) => document.querySelectorAll('[data-testid=model-row][data-model-name="mip-pet-2d"]').length > n, versionsBefore, { timeout: 10000 }).catch(() => undefined)
    const newVersionRow = small.locator(`[data-testid=model-row][data-model-name="mip-pet-2d"][data-model-version="${tj.result?.version}"]`)
    check(
      'fine-tune from the models screen (2 epochs x 3 iterations) trains on the 2 validated cases, succeeds, and its new inactive version appears',
      tj.type === 'train' && tj.state === 'succeeded' && tj.result?.cases === 2 && tj.result?.epochs_done === 2 && tj.result?.curve?.length === 2 && /succeeded/.test(shownOutcome) && shownOutcome.includes(tj.result.version) && (await newVersionRow.count()) === 1 && (await newVersionRow.getAttribute('data-active')) === '0',
      `job ${trainJobId} ${tj.state} ${tj.error ?? ''}: UI says "${shownOutcome}"; result ${JSON.stringify({ version: tj.result?.version, cases: tj.result?.cases, epochs: tj.result?.epochs_done, curve: tj.result?.curve?.length })}`
    )
    await shot(small, '18-models-reviewer-1366')

    // cancel: a long fine-tune, cancelled from its row while it runs
    await small.getByTestId('train-epochs').fill('200')
    await small.getByTestId('train-iterations').fill('')
    await small.locator(`[data-testid=model-row][data-model-name="mip-pet-2d"][data-model-version="${bundledVersion}"] [data-testid=train-model]`).click()
    await small.waitForFunction((prev) => Number(document.querySelector('[data-testid=job-row]')?.dataset.jobId) !== prev, trainJobId)
    const longRow = small.getByTestId('job-row').first()
    const longId = Number(await longRow.getAttribute('data-job-id'))
    await small.waitForFunction((id) => document.querySelector(`[data-testid=job-row][data-job-id="${id}"]`)?.dataset.state === 'running', longId, { timeout: 60000 })
    await longRow.getByTestId('job-cancel').click()
    await small.waitForFunction((id) => ['succeeded', 'failed', 'cancelled'].includes(document.querySelector(`[data-testid=job-row][data-job-id="${id}"]`)?.dataset.state ?? ''), longId, { timeout: 120000 })
    const cj = await getJson(annaToken, `/api/jobs/${longId}`)
    const cancelShown = await longRow.getByTestId('job-outcome').textContent()
    check(
      'a running fine-tune job is cancelled from its row: the job ends "cancelled", the row says so and loses its cancel button',
      cj.state === 'cancelled' && /cancelled/.test(cancelShown) && (await longRow.getByTestId('job-cancel').count()) === 0,
      `job ${longId} ${cj.state}: UI says "${cancelShown}"`
    )

    // the dashboard now draws the training curve and the Dice trend per model version
    await small.goto(base + '/#/dashboard')
    await small.getByTestId('chart-status').waitFor()
    await sleep(500)
    check(
      "dashboard draws the fine-tune job's training curve and the Dice-over-time chart",
      (await small.locator('[data-testid=chart-training] canvas').count()) === 1 && (await small.locator('[data-testid=chart-dice-time] canvas').count()) === 1
    )
    await shot(small, '22-dashboard-training-1366')
  }

  // PET MIP (2D): inverted grayscale by default
  await small.goto(base + '/#/worklist')
  await small.getByTestId('worklist-row').first().waitFor()
  const petOpen = await openCase(small, Object.entries(seeded.cases).find(([n]) => n.startsWith('DEMO-pet'))[1])
  timing('PET MIP 400x600 (2D): open case -> first slice rendered (in page)', petOpen.inPage)
  check('PET opens with the inverted grayscale preset', (await small.getByTestId('wl-preset').locator('option:checked').textContent()).startsWith('PET inverted'))
  await shot(small, '14-viewer-pet-1366')

  // "run pre-segmentation" on the PET case: progress shows, the job succeeds, a new AI revision
  // appears in the history
  {
    const petId = Object.entries(seeded.cases).find(([n]) => n.startsWith('DEMO-pet'))[1]
    const before = await small.getByTestId('revision-row').count()
    await small.getByTestId('run-presegment').click()
    const jr = small.getByTestId('job-row').last()
    await jr.waitFor()
    const pjId = Number(await jr.getAttribute('data-job-id'))
    const sawProgress = await small
      .waitForFunction((id) => {
        const r = document.querySelector(`[data-testid=job-row][data-job-id="${id}"]`)
        return r && (Number(r.querySelector('progress')?.value) > 0 || r.dataset.state !== 'queued')
      }, pjId, { timeout: 120000 })
      .then(() => true)
      .catch(() => false)
    await small.waitForFunction((id) => ['succeeded', 'failed', 'cancelled'].includes(document.querySelector(`[data-testid=job-row][data-job-id="${id}"]`)?.dataset.state ?? ''), pjId, { timeout: 240000 })
    const pj = await getJson(annaToken, `/api/jobs/${pjId}`)
    await small.waitForFunction((n) => document.querySelectorAll('[data-testid=revision-row]').length > n, before, { timeout: 10000 }).catch(() => undefined)
    const after = await small.getByTestId('revision-row').count()
    const newRow = small.locator(`[data-testid=revision-row][data-revision-id="${pj.result?.revision_id}"] .kind-ai`)
    check(
      '"run pre-segmentation" shows the job\'s progress, the job succeeds and its AI revision is added to the revision history',
      sawProgress && pj.state === 'succeeded' && pj.result?.revision_id > 0 && after === before + 1 && (await newRow.count()) === 1,
      `job ${pjId} ${pj.state} ${pj.error ?? ''} model ${JSON.stringify(pj.result?.model)}, ${pj.result?.voxel_count} voxels; revision rows ${before} -> ${after}; UI: "${await small.getByTestId('job-outcome').last().textContent()}"`
    )
    timing('PET MIP pre-segmentation job (queued -> finished, server side)', (pj.finished_ms ?? pj.updated_ms ?? 0) - (pj.created_ms ?? 0))
    await shot(small, '19-viewer-pet-presegmented-1366')

    // reviewer rejects the (submitted) PET case with a comment
    const ritaToken = await apiLogin('rita', REVIEWER_PW)
    for (const st of ['in_progress', 'submitted']) {
      const r = await call(ritaToken, 'POST', `/api/cases/${petId}/status`, { status: st })
      if (!r.ok) throw new Error(`status ${st}: ${r.status} ${await r.text()}`)
    }
    const comment = 'Lesion boundary misses the upper uptake; please redo (e2e)'
    await small.getByTestId('status-comment').fill(comment)
    await small.getByTestId('reject-case').click()
    await small.waitForFunction(() => document.querySelector('[data-testid=case-status]')?.textContent === 'rejected')
    const rej = await getJson(annaToken, `/api/cases/${petId}`)
    const hist = await getJson(annaToken, `/api/cases/${petId}/history`)
    const histItems = Array.isArray(hist) ? hist : hist.items ?? []
    check(
      'reviewer rejects a submitted case with a comment: status rejected, the comment in the case and its status history',
      rej.status === 'rejected' && rej.status_comment === comment && JSON.stringify(histItems).includes(comment) && (await small.getByTestId('status-comment-shown').textContent()).includes(comment),
      JSON.stringify({ status: rej.status, status_comment: rej.status_comment })
    )
    await shot(small, '20-viewer-rejected-1366')
  }

  // CT load time (last: with a software GL on a busy machine it can take minutes)
  try {
    await small.goto(base + '/#/worklist')
    await small.getByTestId('worklist-row').first().waitFor()
    const ctOpen = await openCase(small, ctId, null, false)
    timing('CT 512x512x100: open case -> first slice rendered (in page)', ctOpen.inPage)
    await small.getByTestId('wl-preset').selectOption({ label: 'Lung' })
    await sleep(500)
    await shot(small, '15-viewer-ct-lung-1366')
  } catch (e) {
    console.log(`e2e: NOTE: CT 512x512x100 load not measured: ${String(e).split('\n')[0]}`)
  }

  const ident = consoleErrors.filter((e) => !/favicon|WebGL|GPU stall|GL Driver/i.test(e))
  check('no uncaught page errors', ident.length === 0, ident.slice(0, 5).join(' | '))
} catch (e) {
  failed++
  console.log(`e2e: FAIL: ${e.stack ?? e}`)
} finally {
  await browser.close().catch(() => undefined)
  server.kill('SIGTERM')
  for (let i = 0; i < 100 && !serverExited; i++) await sleep(50)
  if (!serverExited) server.kill('SIGKILL')
  fs.rmSync(work, { recursive: true, force: true })
  fs.writeFileSync(path.join(out, 'timings.json'), JSON.stringify(Object.fromEntries(timings), null, 2))
}
console.log(`e2e: ${passed} passed, ${failed} failed`)
exitCode = failed ? 1 : 0
process.exit(exitCode)
