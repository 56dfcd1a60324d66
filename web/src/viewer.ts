// The viewer: NiiVue shows the image (one channel at a time), the AI label and the uncertainty
// map as overlays, and the working label as NiiVue's drawing layer. Painting tools (brush,
// eraser) are ours, stamped in mm into the drawing bitmap from real mouse events; threshold
// brush, region grow and the refine actions are the server's region tools (their deltas are
// applied locally). Undo/redo is our own journal of sparse deltas. Save uploads the working label
// as a new revision with If-Match on the revision the edit started from.
import { Niivue, NVImage, SLICE_TYPE, DRAG_MODE, SHOW_RENDER, MULTIPLANAR_TYPE } from '@niivue/niivue'
import type { AppContext } from './main'
import { routeStartMs } from './main'
import { api, ApiError, findRoute, getJson, jobFinished, modelText, request, type CaseDetail, type Revision, type Job } from './api'
import { h, clear, toast, fmtTime, fmtNum } from './dom'
import { IndexMap, Journal, applyRuns, labelNifti, gzip, gunzip, base64, niftiVoxels, type Delta } from './labelmap'
import { showHelp } from './help'

type Tool = 'pointer' | 'brush' | 'eraser' | 'threshold' | 'grow'
interface Preset {
  name: string
  min?: number
  max?: number
  invert?: boolean
  auto?: boolean
}

const PRESETS: Record<string, Preset[]> = {
  CT: [
    { name: 'Soft tissue', min: 40 - 200, max: 40 + 200 },
    { name: 'Brain', min: 0, max: 80 },
    { name: 'Lung', min: -600 - 750, max: -600 + 750 },
    { name: 'Bone', min: 400 - 900, max: 400 + 900 },
    { name: 'Auto', auto: true }
  ],
  MR: [{ name: 'MR auto', auto: true }],
  // "Inverted" describes the look (dark uptake on white); data stored already inverted (MIP PNGs
  // of Dataset001: white background) is detected and shown the same way.
  PT: [
    { name: 'PET inverted', auto: true, invert: true },
    { name: 'PET normal', auto: true }
  ]
}

const TOOL_KEYS: Record<string, Tool> = { v: 'pointer', b: 'brush', e: 'eraser', t: 'threshold', g: 'grow' }

export async function renderViewer(ctx: AppContext, caseId: number): Promise<void> {
  const t0 = routeStartMs || performance.now()
  const isReviewer = ctx.user.role === 'reviewer' || ctx.user.role === 'admin'

  // ---------- layout ----------
  const canvas = h('canvas', { testid: 'viewer-canvas', tabindex: 0 })
  const canvasWrap = h('div.canvas-wrap', {}, canvas)
  const title = h('h2.case-title', { testid: 'case-title' }, `Case ${caseId}`)
  const statusLine = h('div.statusbar', { testid: 'viewer-status' }, 'Loading…')
  const cursorInfo = h('span.cursor-info', { testid: 'cursor-info' })
  const editInfo = h('span.edit-info', { testid: 'edit-info' })
  const left = h('aside.tools')
  const right = h('aside.panel')
  const screen = h('section.viewer', {}, h('div.viewer-head', {}, h('a.back', { href: '#/worklist', title: 'Back to the worklist (Esc)' }, '◂ Worklist'), title, h('span.spacer'), editInfo), left, canvasWrap, right, h('footer.viewer-foot', {}, statusLine, cursorInfo))
  ctx.main.append(screen)

  let detail: CaseDetail
  try {
    detail = await api.detail(caseId)
  } catch (e) {
    statusLine.textContent = 'Cannot open this case: ' + (e as Error).message
    return
  }
  const modality = (detail.image.modality || '').toUpperCase().startsWith('PT') || detail.image.modality === 'PET' ? 'PT' : detail.image.modality === 'CT' ? 'CT' : 'MR'
  title.textContent = detail.name
  title.append(h('span.badge.mod', {}, detail.image.modality || '?'), h('span.badge.st-' + detail.status, { testid: 'case-status' }, detail.status.replace('_', ' ')))
  if (detail.demo) title.append(h('span.badge.demo', {}, 'synthetic demo'))

  // ---------- NiiVue ----------
  const nv = new Niivue({
    backColor: [0.05, 0.06, 0.08, 1],
    crosshairColor: [0.2, 0.8, 1, 0.6],
    show3Dcrosshair: true,
    isRadiologicalConvention: true,
    dragAndDropEnabled: false,
    multiplanarShowRender: SHOW_RENDER.NEVER,
    isColorbar: false,
    textHeight: 0.03,
    isOrientationTextVisible: true
  } as never)
  await nv.attachToCanvas(canvas)
  nv.setMultiplanarLayout(MULTIPLANAR_TYPE.GRID)
  nv.setMouseEventConfig({
    leftButton: { primary: DRAG_MODE.crosshair, withShift: DRAG_MODE.windowing, withCtrl: DRAG_MODE.pan },
    rightButton: DRAG_MODE.windowing,
    centerButton: DRAG_MODE.pan
  } as never)
  ctx.onLeave(() => {
    try {
      ;(nv.gl?.getExtension('WEBGL_lose_context') as { loseContext(): void } | null)?.loseContext()
    } catch {
      /* ignore */
    }
  })

  const tFetch = performance.now()
  const imageBuf = await api.image(caseId)
  const fetchMs = performance.now() - tFetch
  const imageHeader = (await gunzipHead(imageBuf)).slice(0, 348)
  const tParse = performance.now()
  const image = await NVImage.loadFromUrl({ url: 'image.nii.gz', name: `case-${caseId}.nii.gz`, buffer: imageBuf, colormap: 'gray' } as never)
  const parseMs = performance.now() - tParse
  const headerDims = [1, 2, 3].map((d) => new DataView(imageHeader.buffer).getInt16(40 + 2 * d, true))
  nv.setSliceType(headerDims[2] === 1 ? SLICE_TYPE.AXIAL : SLICE_TYPE.MULTIPLANAR)
  const tGpu = performance.now()
  nv.addVolume(image)
  const back = nv.volumes[0]
  const map = new IndexMap({
    dims: [back.hdr!.dims[1], back.hdr!.dims[2], back.hdr!.dims[3]],
    img2RASstart: back.img2RASstart as number[],
    img2RASstep: back.img2RASstep as number[],
    dimsRAS: back.dimsRAS as number[],
    pixDimsRAS: back.pixDimsRAS as number[],
    permRAS: back.permRAS as number[]
  })
  const is2D = map.dims[2] === 1
  const autoRange = { min: back.cal_min ?? 0, max: back.cal_max ?? 1 }
  // Stored inverted when the corners of the first slice (background) are bright.
  const storedInverted = (() => {
    const img = back.img as ArrayLike<number> | undefined
    const [nx, ny] = [back.hdr!.dims[1], back.hdr!.dims[2]]
    if (!img || !nx || !ny) return false
    const corners = [0, nx - 1, (ny - 1) * nx, ny * nx - 1].map((n) => Number(img[n]))
    return corners.reduce((a, b) => a + b, 0) / 4 > (autoRange.min + autoRange.max) / 2
  })()
  nv.createEmptyDrawing()
  nv.setDrawOpacity(0.55)
  await nextFrame()
  const firstRenderMs = performance.now() - t0
  statusLine.dataset.firstRenderMs = firstRenderMs.toFixed(0)
  statusLine.dataset.loadBreakdown = `download ${fetchMs.toFixed(0)} ms, decode ${parseMs.toFixed(0)} ms, upload+draw ${(performance.now() - tGpu).toFixed(0)} ms`
  statusLine.textContent = `Image shown in ${firstRenderMs.toFixed(0)} ms (${statusLine.dataset.loadBreakdown})`

  // ---------- working label, AI label, uncertainty ----------
  const bitmap = (): Uint8Array => nv.drawBitmap!
  const journal = new Journal(bitmap())
  let parentRevisionId: number | null = detail.current_revision_id
  let loadedFromRevision: number | null = null // the working label equals this stored revision
  let editSeconds = 0
  let lastEditAt = 0
  let serverTools = false

  async function loadRevisionIntoDrawing(revId: number): Promise<void> {
    const nii = await gunzip(await api.label(caseId, revId))
    const { dims, data } = niftiVoxels(nii)
    if (dims[0] * dims[1] * dims[2] !== map.n) throw new Error(`revision ${revId} is not on the image grid`)
    map.fromNative(data, bitmap())
    nv.refreshDrawing(true)
  }
  if (parentRevisionId !== null) {
    await loadRevisionIntoDrawing(parentRevisionId)
    loadedFromRevision = parentRevisionId
  }
  journal.reset(bitmap())

  // The AI label and the uncertainty map are loaded the first time they are shown (each overlay
  // costs a texture pass over the whole volume; the working label starts as the AI label anyway).
  let aiVol: NVImage | null = null
  let uncVol: NVImage | null = null
  const overlayState = {
    ai: { on: false, opacity: 0.5 },
    work: { on: true, opacity: 0.55 },
    unc: { on: false, opacity: 0.6 }
  }
  let aiLoading: Promise<void> | null = null
  let uncLoading: Promise<void> | null = null
  function ensureOverlays(): Promise<void> {
    const jobs: Promise<void>[] = []
    if (overlayState.ai.on && detail.ai_revision_id !== null && !aiVol) {
      aiLoading ??= api
        .label(caseId, detail.ai_revision_id)
        .then((buf) => NVImage.loadFromUrl({ url: 'ai.nii.gz', name: 'ai.nii.gz', buffer: buf, colormap: 'green', opacity: 0, cal_min: 0.5, cal_max: 1.5 } as never))
        .then((v) => {
          aiVol = v
          nv.addVolume(v)
        })
        .catch((e) => toast('AI label not available: ' + (e as Error).message, 'error'))
      jobs.push(aiLoading)
    }
    if (overlayState.unc.on && detail.has_uncertainty && !uncVol) {
      uncLoading ??= api
        .uncertainty(caseId)
        .then((buf) => NVImage.loadFromUrl({ url: 'unc.nii.gz', name: 'uncertainty.nii.gz', buffer: buf, colormap: 'warm', opacity: 0, cal_min: 0.05, cal_max: 1 } as never))
        .then((v) => {
          uncVol = v
          nv.addVolume(v)
        })
        .catch((e) => toast('Uncertainty map not available: ' + (e as Error).message, 'error'))
      jobs.push(uncLoading)
    }
    return Promise.all(jobs).then(() => undefined)
  }
  async function applyOverlays(): Promise<void> {
    await ensureOverlays()
    if (aiVol) nv.setOpacity(nv.volumes.indexOf(aiVol), overlayState.ai.on ? overlayState.ai.opacity : 0)
    if (uncVol) nv.setOpacity(nv.volumes.indexOf(uncVol), overlayState.unc.on ? overlayState.unc.opacity : 0)
    nv.setDrawOpacity(overlayState.work.on ? overlayState.work.opacity : 0)
    nv.drawScene()
    screen.dataset.overlays = `${aiVol && overlayState.ai.on ? 'ai ' : ''}${uncVol && overlayState.unc.on ? 'uncertainty ' : ''}${overlayState.work.on ? 'working' : ''}`
  }
  void applyOverlays()

  // ---------- state display ----------
  let tool: Tool = 'pointer'
  let brushMm = Math.max(2, 3 * Math.min(...map.spacingNative().slice(0, 2)))
  let brush3D = false
  const range = Math.max(1, autoRange.max - autoRange.min)
  let thrLower = Math.round(autoRange.min + 0.5 * range)
  let thrUpper = Math.round(autoRange.max + range)
  let growTol = Math.max(1, Math.round(0.1 * range))
  let grow3D = false
  let channel = 0
  let viewAxis = 0 // last slice view used (0 axial, 1 coronal, 2 sagittal)

  function updateEditInfo(): void {
    const dirty = journal.canUndo || loadedFromRevision !== parentRevisionId
    editInfo.textContent = `${dirty ? '● unsaved changes' : 'saved'} · parent revision ${parentRevisionId ?? 'none'}`
    editInfo.classList.toggle('dirty', dirty)
    undoBtn.toggleAttribute('disabled', !journal.canUndo)
    redoBtn.toggleAttribute('disabled', !journal.canRedo)
    undoBtn.title = journal.canUndo ? `Undo ${journal.undoName} (Ctrl+Z)` : 'Nothing to undo'
    redoBtn.title = journal.canRedo ? `Redo ${journal.redoName} (Ctrl+Shift+Z)` : 'Nothing to redo'
  }
  function noteEdit(d: Delta | null): void {
    if (!d) return
    const now = performance.now()
    if (lastEditAt && now - lastEditAt < 120000) editSeconds += (now - lastEditAt) / 1000
    lastEditAt = now
    loadedFromRevision = null
    statusLine.textContent = `${d.name}: ${d.idx.length} voxels changed`
    updateEditInfo()
    showCursor()
  }

  // ---------- tools ----------
  const toolButtons = new Map<Tool, HTMLButtonElement>()
  function toolButton(t: Tool, label: string, key: string, testid: string): HTMLButtonElement {
    const b = h('button.tool', { testid, title: `${label} (${key})`, onclick: () => setTool(t) }, h('span.tool-label', {}, label), h('kbd', {}, key))
    toolButtons.set(t, b)
    return b
  }
  function setTool(t: Tool): void {
    tool = t
    for (const [k, b] of toolButtons) b.classList.toggle('active', k === t)
    canvasWrap.dataset.tool = t
    toolOptions.querySelectorAll<HTMLElement>('[data-for]').forEach((el) => (el.hidden = !el.dataset.for!.split(' ').includes(t)))
  }
  const undoBtn = h('button', { testid: 'undo', onclick: () => undo() }, '↶ Undo')
  const redoBtn = h('button', { testid: 'redo', onclick: () => redo() }, '↷ Redo')
  const numInput = (testid: string, value: number, step: number, onchange: (v: number) => void) => {
    const i = h('input', { type: 'number', testid, value: String(+value.toFixed(2)), step: String(step) })
    i.addEventListener('change', () => onchange(Number(i.value)))
    return i
  }
  const brushSizeInput = numInput('brush-size', brushMm, 0.5, (v) => (brushMm = Math.max(0.1, v)))
  const sphereBox = h('input', { type: 'checkbox', testid: 'brush-3d' })
  const growBox = h('input', { type: 'checkbox', testid: 'grow-3d' })
  growBox.addEventListener('change', () => (grow3D = growBox.checked))
  sphereBox.addEventListener('change', () => (brush3D = sphereBox.checked))
  const toolOptions = h(
    'div.tool-options',
    {},
    h('label', { 'data-for': 'brush eraser threshold' }, 'Radius (mm) ', brushSizeInput),
    h('label.check', { 'data-for': 'brush eraser threshold' }, sphereBox, ' 3D sphere'),
    h('label', { 'data-for': 'threshold' }, 'Lower ', numInput('threshold-lower', thrLower, 1, (v) => (thrLower = v))),
    h('label', { 'data-for': 'threshold' }, 'Upper ', numInput('threshold-upper', thrUpper, 1, (v) => (thrUpper = v))),
    h('label', { 'data-for': 'grow' }, 'Tolerance ', numInput('grow-tolerance', growTol, 1, (v) => (growTol = v))),
    h('label.check', { 'data-for': 'grow' }, growBox, ' 3D (all slices)'),
    h('p.hint', { 'data-for': 'pointer' }, 'Click: crosshair · Shift/right drag: window/level · Ctrl/middle drag: pan · wheel: slice')
  )
  left.append(
    h('h3', {}, 'Tools'),
    toolButton('pointer', 'Navigate', 'V', 'tool-pointer'),
    toolButton('brush', 'Brush', 'B', 'tool-brush'),
    toolButton('eraser', 'Eraser', 'E', 'tool-eraser'),
    toolButton('threshold', 'Threshold brush', 'T', 'tool-threshold'),
    toolButton('grow', 'Region grow', 'G', 'tool-grow'),
    toolOptions,
    h('div.row', {}, undoBtn, redoBtn),
    h('h3', {}, 'Refine'),
    h('button', { testid: 'refine-fill', title: 'Fill holes in the current slice (F)', onclick: () => void refine('fill_holes') }, 'Fill holes (slice)'),
    h('button', { testid: 'refine-islands', title: 'Remove islands smaller than 20 voxels (I)', onclick: () => void refine('remove_islands') }, 'Remove small islands'),
    h('button', { testid: 'refine-interpolate', title: 'Interpolate between edited slices (P)', onclick: () => void refine('interpolate') }, 'Interpolate slices')
  )
  setTool('pointer')

  // ---------- layouts, presets, channels, overlays ----------
  // The 3D render is the expensive part with a software GL; it is shown only when asked for.
  const layout = (st: SLICE_TYPE, render = false) => () => {
    nv.opts.multiplanarShowRender = render ? SHOW_RENDER.ALWAYS : SHOW_RENDER.NEVER
    nv.setSliceType(st)
  }
  const layouts: [string, string, () => void][] = [
    ['Axial', '1', layout(SLICE_TYPE.AXIAL)],
    ['Coronal', '2', layout(SLICE_TYPE.CORONAL)],
    ['Sagittal', '3', layout(SLICE_TYPE.SAGITTAL)],
    ['MPR', '4', layout(SLICE_TYPE.MULTIPLANAR)],
    ['MPR + 3D', '5', layout(SLICE_TYPE.MULTIPLANAR, true)],
    ['3D', '6', layout(SLICE_TYPE.RENDER)]
  ]
  const layoutRow = h('div.seg', { testid: 'layouts' }, ...layouts.map(([n, k, f]) => h('button', { title: `${n} (${k})`, testid: 'layout-' + n.toLowerCase().replace(/[^a-z0-9]+/g, ''), onclick: f }, n)))
  const presetSel = h('select', { testid: 'wl-preset' }, ...(PRESETS[modality] ?? PRESETS.MR).map((p, n) => h('option', { value: String(n) }, p.name)))
  function applyPreset(n: number): void {
    const p = (PRESETS[modality] ?? PRESETS.MR)[n]
    back.cal_min = p.auto ? autoRange.min : p.min!
    back.cal_max = p.auto ? autoRange.max : p.max!
    back.colormapInvert = modality === 'PT' && storedInverted ? !p.invert : !!p.invert
    nv.updateGLVolume()
  }
  presetSel.addEventListener('change', () => applyPreset(Number(presetSel.value)))
  applyPreset(0)
  const nFrames = (back as unknown as { nFrame4D?: number }).nFrame4D ?? 1
  const channelNames = detail.image.channels?.length ? detail.image.channels : ['image']
  const channelSel = h('select', { testid: 'channel' }, ...channelNames.map((c, n) => h('option', { value: String(n) }, c)))
  channelSel.disabled = nFrames < 2
  function setChannel(c: number): void {
    channel = Math.max(0, Math.min(nFrames - 1, c))
    channelSel.value = String(channel)
    nv.setFrame4D(back.id, channel)
  }
  channelSel.addEventListener('change', () => setChannel(Number(channelSel.value)))

  function overlayRow(key: 'ai' | 'work' | 'unc', label: string, testid: string, available: boolean): HTMLElement {
    const st = overlayState[key]
    const box = h('input', { type: 'checkbox', testid, checked: st.on, disabled: !available })
    const slider = h('input', { type: 'range', min: '0', max: '1', step: '0.05', value: String(st.opacity), testid: testid + '-opacity', disabled: !available })
    box.addEventListener('change', () => {
      st.on = box.checked
      void applyOverlays()
    })
    slider.addEventListener('input', () => {
      st.opacity = Number(slider.value)
      st.on = true
      box.checked = true
      void applyOverlays()
    })
    const row = h('div.overlay-row' + (available ? '' : '.unavailable'), {}, h('label.check', {}, box, ' ', h('span.swatch.' + key), label), slider)
    ;(row as unknown as { sync: () => void }).sync = () => (box.checked = st.on)
    ;(row as unknown as { enable: () => void }).enable = () => {
      box.disabled = false
      slider.disabled = false
      row.classList.remove('unavailable')
    }
    return row
  }
  const overlayRows = [overlayRow('work', 'Working label', 'toggle-working', true), overlayRow('ai', 'AI label', 'toggle-ai', detail.ai_revision_id !== null), overlayRow('unc', 'Uncertainty', 'toggle-uncertainty', detail.has_uncertainty)]
  const syncOverlays = () => overlayRows.forEach((r) => (r as unknown as { sync: () => void }).sync())
  let compare = false
  const compareBtn = h(
    'button',
    {
      testid: 'compare',
      title: 'Compare the AI label and the working label (X)',
      disabled: detail.ai_revision_id === null,
      onclick: () => {
        compare = !compare
        overlayState.ai.on = compare
        overlayState.work.on = !compare
        compareBtn.classList.toggle('active', compare)
        compareBtn.textContent = compare ? 'Showing AI label' : 'Compare with AI'
        syncOverlays()
        void applyOverlays()
      }
    },
    'Compare with AI'
  )

  // ---------- review ----------
  const saveBtn = h('button.primary', { testid: 'save-label', title: 'Save a new revision (Ctrl+S)', onclick: () => void save() }, 'Save')
  const submitBtn = h('button', { testid: 'submit-case', title: 'Submit for review', onclick: () => void setStatus('submitted') }, 'Submit')
  const validateBtn = h('button.ok', { testid: 'validate-case', disabled: !isReviewer, title: isReviewer ? 'Validate this case (with the comment, if any)' : 'Only reviewers can validate', onclick: () => void setStatus('validated', commentBox.value.trim() || undefined) }, 'Validate')
  // The comment goes with a rejection (required) and optionally with a validation.
  const commentBox = h('textarea.status-comment', { testid: 'status-comment', rows: 2, placeholder: isReviewer ? 'Comment (required to reject)' : 'Comment', disabled: !isReviewer, maxlength: 2000 })
  const rejectBtn = h(
    'button.danger',
    {
      testid: 'reject-case',
      disabled: !isReviewer,
      title: isReviewer ? 'Reject with the comment above' : 'Only reviewers can reject',
      onclick: () => {
        const comment = commentBox.value.trim()
        if (!comment) {
          toast('Write the reason for the rejection in the comment box first', 'error')
          commentBox.focus()
          return
        }
        void setStatus('rejected', comment)
      }
    },
    'Reject'
  )
  const commentShown = h('p.comment', { testid: 'status-comment-shown', hidden: !detail.status_comment }, 'Comment: ', h('span', {}, detail.status_comment ?? ''))
  const revList = h('tbody', { testid: 'revisions' })
  const jobsBox = h('div.jobs', { testid: 'jobs' })
  const preseg = h('div')

  right.append(
    h('h3', {}, 'Layout'),
    layoutRow,
    h('h3', {}, 'Display'),
    h('label.inline', {}, 'Window ', presetSel),
    h('label.inline', {}, 'Channel ', channelSel),
    ...overlayRows,
    compareBtn,
    h('h3', {}, 'Review'),
    h('div.row', {}, saveBtn, submitBtn),
    commentBox,
    h('div.row', {}, validateBtn, rejectBtn),
    commentShown,
    h('h3', {}, 'AI'),
    preseg,
    jobsBox,
    h('h3', {}, 'Revisions'),
    h('div.rev-wrap', {}, h('table.revs', {}, h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'kind · by'), h('th', {}, 'when'), h('th', { title: 'labelled voxels' }, 'vox'), h('th', { title: 'Dice against the AI original' }, 'Dice'), h('th', { title: 'voxels changed against the AI original' }, 'Δvox'))), revList))
  )

  async function refreshRevisions(): Promise<void> {
    let revs: Revision[] = []
    try {
      revs = await api.revisions(caseId)
    } catch (e) {
      toast('Could not list revisions: ' + (e as Error).message, 'error')
    }
    clear(revList)
    for (const r of [...revs].reverse()) {
      const dice = h('td.num', {}, '…')
      const changed = h('td.num', {}, '…')
      const who = r.author?.username ?? (r.model ? `${r.model.name}` : '—')
      revList.append(
        h(
          'tr' + (r.id === parentRevisionId ? '.current' : ''),
          { testid: 'revision-row', 'data-revision-id': r.id, title: `${r.kind} revision ${r.id}${r.note ? ': ' + r.note : ''}. Click to load it as the working label.`, onclick: () => void loadRevisionAsEdit(r.id) },
          h('td', {}, String(r.id)),
          h('td', {}, h('span.badge.kind-' + r.kind, {}, r.kind), ' ', who),
          h('td', { title: fmtTime(r.created_ms) }, fmtTime(r.created_ms).slice(5)),
          h('td.num', {}, String(r.voxel_count)),
          dice,
          changed
        )
      )
      api
        .stats(caseId, r.id)
        .then((s) => {
          dice.textContent = fmtNum(s.dice, 3)
          changed.textContent = s.changed_voxels === null ? '—' : String(s.changed_voxels)
        })
        .catch(() => {
          dice.textContent = '—'
          changed.textContent = '—'
        })
    }
    if (!revs.length) revList.append(h('tr', {}, h('td.muted', { colspan: 6 }, 'No revisions yet.')))
  }
  async function loadRevisionAsEdit(revId: number): Promise<void> {
    const before = bitmap().slice()
    await loadRevisionIntoDrawing(revId)
    const next = bitmap().slice()
    bitmap().set(before)
    const d = journal.commit(`Load revision ${revId}`, next)
    bitmap().set(next)
    nv.refreshDrawing(true)
    noteEdit(d)
  }

  async function save(): Promise<void> {
    saveBtn.setAttribute('disabled', '')
    try {
      const native = map.toNative(bitmap())
      const gz = await gzip(labelNifti(imageHeader, native))
      const tSend = performance.now()
      const rev = await api.saveRevision(caseId, gz, parentRevisionId, serverTools ? 'refined' : 'manual', editSeconds)
      const ackMs = performance.now() - tSend
      parentRevisionId = rev.id
      loadedFromRevision = rev.id
      journal.reset(bitmap())
      editSeconds = 0
      serverTools = false
      statusLine.dataset.saveAckMs = ackMs.toFixed(0)
      statusLine.dataset.savedRevision = String(rev.id)
      statusLine.textContent = `Saved revision ${rev.id} (${rev.voxel_count} voxels, ${fmtNum(rev.volume_ml, 2)} mL) — acknowledged in ${ackMs.toFixed(0)} ms`
      toast(`Saved revision ${rev.id}`, 'ok')
      updateEditInfo()
      await refreshRevisions()
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        toast('Someone saved a newer revision of this case. Your edit is kept here; reload the case to see theirs.', 'error', 8000)
        statusLine.textContent = 'Conflict: ' + e.message
      } else {
        toast('Save failed: ' + (e as Error).message, 'error')
        statusLine.textContent = 'Save failed: ' + (e as Error).message
      }
    } finally {
      saveBtn.removeAttribute('disabled')
    }
  }

  async function setStatus(status: string, comment?: string): Promise<void> {
    try {
      if (status === 'submitted' && (journal.canUndo || (loadedFromRevision === null && parentRevisionId === null))) await save()
      const c = (await api.status(caseId, status, comment)) as { status?: string }
      const s = c?.status ?? status
      const badge = title.querySelector('[data-testid=case-status]')!
      badge.className = 'badge st-' + s
      badge.textContent = s.replace('_', ' ')
      statusLine.textContent = `Case is now ${s.replace('_', ' ')}`
      if (comment) {
        commentShown.hidden = false
        commentShown.querySelector('span')!.textContent = comment
        commentBox.value = ''
      }
      toast(`Case ${s.replace('_', ' ')}`, 'ok')
    } catch (e) {
      statusLine.textContent = `Cannot set ${status}: ${(e as Error).message}`
      toast(`Cannot set ${status}: ${(e as Error).message}`, 'error')
    }
  }

  // ---------- jobs (progress over server-sent events) ----------
  const streams: EventSource[] = []
  ctx.onLeave(() => streams.forEach((s) => s.close()))
  function showJob(job: Job): void {
    const bar = h('progress', { max: '1', value: String(job.progress ?? 0) })
    const label = h('span', {}, `${job.type} · ${job.state}`)
    const cancel = h('button.small', { testid: 'job-cancel', onclick: () => api.cancelJob(job.id).catch((e) => toast((e as Error).message, 'error')) }, 'Cancel')
    const outcome = h('span.job-outcome', { testid: 'job-outcome' })
    const row = h('div.job', { testid: 'job-row', 'data-job-id': job.id, 'data-state': job.state }, label, bar, cancel, outcome)
    jobsBox.append(row)
    const es = new EventSource(`/api/jobs/${job.id}/events`)
    streams.push(es)
    es.addEventListener('progress', (ev) => {
      const j = JSON.parse((ev as MessageEvent).data) as Job
      bar.value = j.progress ?? 0
      // The terminal state is set by the 'end' handler once the outcome is shown.
      if (!jobFinished(j.state)) row.dataset.state = j.state
      label.textContent = `${j.type} · ${j.state} ${Math.round((j.progress ?? 0) * 100)}%${j.message ? ' · ' + j.message : ''}`
    })
    es.addEventListener('end', () => {
      es.close()
      cancel.remove()
      void getJson<Job & { result?: Record<string, unknown> }>(`/api/jobs/${job.id}`)
        .then(async (j) => {
          const r = j.result ?? {}
          label.textContent = `${j.type} · ${j.state}`
          if (j.state === 'succeeded') bar.value = 1
          outcome.textContent =
            j.state === 'failed'
              ? `failed: ${j.error ?? j.message ?? ''}`
              : r.skipped
                ? `skipped: ${String(r.skipped)}`
                : r.revision_id !== undefined
                  ? `AI revision ${r.revision_id}${r.model ? ' by ' + modelText(r.model) : ''}${r.voxel_count !== undefined ? ` · ${r.voxel_count} voxels` : ''}`
                  : j.state
          outcome.classList.toggle('error', j.state === 'failed')
          await afterJob()
          row.dataset.state = j.state // last: the revision list and the overlays are up to date
        })
        .catch(() => {
          row.dataset.state = 'ended'
          void refreshRevisions()
        })
    })
  }
  // After a job on this case: a new AI revision becomes the AI overlay (and the working label when
  // it has no unsaved edit), the uncertainty map is reloaded, the revision history refreshed.
  async function afterJob(): Promise<void> {
    const nd = await api.detail(caseId).catch(() => null)
    if (nd) {
      if (nd.ai_revision_id !== detail.ai_revision_id) {
        if (aiVol) nv.removeVolume(aiVol)
        aiVol = null
        aiLoading = null
        if (uncVol) nv.removeVolume(uncVol)
        uncVol = null
        uncLoading = null
        detail.ai_revision_id = nd.ai_revision_id
        detail.has_uncertainty = nd.has_uncertainty
        if (nd.ai_revision_id !== null) {
          ;(overlayRows[1] as unknown as { enable: () => void }).enable()
          compareBtn.disabled = false
        }
        if (nd.has_uncertainty) (overlayRows[2] as unknown as { enable: () => void }).enable()
      }
      const clean = !journal.canUndo && loadedFromRevision === parentRevisionId
      if (nd.current_revision_id !== null && nd.current_revision_id !== parentRevisionId) {
        if (clean) {
          await loadRevisionIntoDrawing(nd.current_revision_id)
          parentRevisionId = nd.current_revision_id
          loadedFromRevision = parentRevisionId
          journal.reset(bitmap())
          updateEditInfo()
          statusLine.textContent = `Loaded the new revision ${parentRevisionId} as the working label`
        } else toast(`Revision ${nd.current_revision_id} was added while you edit; your unsaved edit is kept (saving will report the conflict).`, 'info', 8000)
      }
      if (nd.status !== detail.status) {
        detail.status = nd.status
        const badge = title.querySelector('[data-testid=case-status]')!
        badge.className = 'badge st-' + nd.status
        badge.textContent = nd.status.replace('_', ' ')
      }
      await applyOverlays()
    }
    await refreshRevisions()
  }
  api
    .jobs(`case_id=${caseId}&limit=20`)
    .then((jobs) => jobs.filter((j) => j.state === 'queued' || j.state === 'running').forEach(showJob))
    .catch(() => undefined)
  findRoute('POST', /presegment|\/infer/)
    .then((path) => {
      if (!path || !path.includes('{case_id}')) {
        preseg.append(h('p.muted', {}, detail.ai_revision_id ? 'AI pre-segmentation loaded.' : 'No AI pre-segmentation for this case.'))
        return
      }
      preseg.append(
        h(
          'button',
          {
            testid: 'run-presegment',
            onclick: async () => {
              try {
                const res = await request('POST', path.replace('{case_id}', String(caseId)), {})
                const job = (await res.json()) as Job | { job: Job }
                showJob('job' in job ? job.job : job)
              } catch (e) {
                toast('Could not start pre-segmentation: ' + (e as Error).message, 'error')
              }
            }
          },
          'Run AI pre-segmentation'
        )
      )
    })
    .catch(() => undefined)

  // ---------- painting with real mouse events ----------
  const dpr = () => (nv.uiData as { dpr?: number }).dpr ?? window.devicePixelRatio ?? 1
  function tileAt(px: number, py: number): number {
    for (const s of nv.screenSlices) {
      const [l, t, w, hh] = s.leftTopWidthHeight
      if (px >= l && px <= l + w && py >= t && py <= t + hh) return s.axCorSag as number
    }
    return -1
  }
  function voxelAt(e: MouseEvent): { ras: number[]; view: number } | null {
    const r = canvas.getBoundingClientRect()
    const px = (e.clientX - r.left) * dpr()
    const py = (e.clientY - r.top) * dpr()
    const view = tileAt(px, py)
    if (view < 0 || view > 2) return null
    const frac = nv.canvasPos2frac([px, py])
    if (frac[0] < 0) return null
    const vox = nv.frac2vox(frac)
    return { ras: [vox[0], vox[1], vox[2]], view }
  }
  const pix = back.pixDimsRAS as number[]
  const dr = back.dimsRAS as number[]
  function stamp(center: number[], view: number, value: number, out: Uint8Array): void {
    const inPlane = view === 0 ? [0, 1] : view === 1 ? [0, 2] : [1, 2]
    const axes = brush3D && !is2D ? [0, 1, 2] : inPlane
    const rad = [0, 0, 0]
    for (const a of axes) rad[a] = Math.floor(brushMm / pix[a + 1])
    for (let dz = -rad[2]; dz <= rad[2]; dz++)
      for (let dy = -rad[1]; dy <= rad[1]; dy++)
        for (let dx = -rad[0]; dx <= rad[0]; dx++) {
          const mm2 = (dx * pix[1]) ** 2 + (dy * pix[2]) ** 2 + (dz * pix[3]) ** 2
          if (mm2 > brushMm * brushMm && (dx || dy || dz)) continue
          const x = center[0] + dx
          const y = center[1] + dy
          const z = center[2] + dz
          if (x < 0 || y < 0 || z < 0 || x >= dr[1] || y >= dr[2] || z >= dr[3]) continue
          out[x + dr[1] * (y + dr[2] * z)] = value
        }
  }
  let stroke: { view: number; last: number[]; points: number[][]; value: number } | null = null
  let refreshPending = false
  function scheduleRefresh(): void {
    if (refreshPending) return
    refreshPending = true
    requestAnimationFrame(() => {
      refreshPending = false
      nv.refreshDrawing(true)
    })
  }
  function strokeTo(ras: number[]): void {
    if (!stroke) return
    const [a, b] = [stroke.last, ras]
    const dist = Math.max(Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]), Math.abs(b[2] - a[2]))
    for (let s = 1; s <= dist; s++) {
      const p = [0, 1, 2].map((n) => Math.round(a[n] + ((b[n] - a[n]) * s) / dist))
      stamp(p, stroke.view, stroke.value, bitmap())
      stroke.points.push(p)
    }
    stroke.last = ras
    scheduleRefresh()
  }
  const paintTools: Tool[] = ['brush', 'eraser', 'threshold', 'grow']
  canvasWrap.addEventListener(
    'mousedown',
    (e) => {
      if (e.button !== 0 || !paintTools.includes(tool) || e.shiftKey || e.ctrlKey) return
      e.stopPropagation()
      e.preventDefault()
      canvas.focus()
      const v = voxelAt(e)
      if (!v) return
      viewAxis = v.view
      if (tool === 'grow') {
        void grow(map.rasToNative(v.ras))
        return
      }
      stroke = { view: v.view, last: v.ras, points: [v.ras], value: tool === 'eraser' ? 0 : tool === 'threshold' ? 3 : 1 }
      stamp(v.ras, v.view, stroke.value, bitmap())
      scheduleRefresh()
    },
    true
  )
  canvasWrap.addEventListener(
    'mousemove',
    (e) => {
      if (stroke) {
        e.stopPropagation()
        const v = voxelAt(e)
        if (v && v.view === stroke.view) strokeTo(v.ras)
      } else if (paintTools.includes(tool) && e.buttons === 1 && !e.shiftKey && !e.ctrlKey) {
        e.stopPropagation()
      }
    },
    true
  )
  const endStroke = (e: MouseEvent) => {
    if (!stroke) return
    e.stopPropagation()
    const s = stroke
    stroke = null
    if (tool === 'threshold') {
      journal.revert(bitmap())
      nv.refreshDrawing(true)
      void thresholdBrush(s.points, s.view)
    } else {
      nv.refreshDrawing(true)
      noteEdit(journal.commit(tool === 'eraser' ? 'Eraser' : 'Brush', bitmap()))
    }
  }
  canvasWrap.addEventListener('mouseup', endStroke, true)
  window.addEventListener('mouseup', endStroke)
  ctx.onLeave(() => window.removeEventListener('mouseup', endStroke))

  let lastLoc: { vox: number[]; axCorSag: number; values: { value: number }[] } | null = null
  function showCursor(): void {
    if (!lastLoc) return
    const l = lastLoc
    const [i, j, k] = map.rasToNative(l.vox)
    const v = l.values?.[0]?.value
    cursorInfo.textContent = `voxel [${i}, ${j}, ${k}] · value ${v === undefined ? '—' : +Number(v).toFixed(2)} · label ${bitmap()[map.bitmapIndex(i, j, k)]}`
    cursorInfo.dataset.voxel = `${i},${j},${k}`
  }
  nv.onLocationChange = (loc: unknown) => {
    lastLoc = loc as typeof lastLoc
    if (lastLoc!.axCorSag >= 0 && lastLoc!.axCorSag <= 2) viewAxis = lastLoc!.axCorSag
    showCursor()
  }

  // ---------- server region tools ----------
  async function labelSource(): Promise<object> {
    if (loadedFromRevision !== null && !journal.canUndo) return { revision_id: loadedFromRevision }
    if (parentRevisionId === null && !journal.canUndo && loadedFromRevision === null && !bitmapHasLabel()) return {}
    const gz = await gzip(labelNifti(imageHeader, map.toNative(bitmap())))
    return { label: base64(gz) }
  }
  function bitmapHasLabel(): boolean {
    const b = bitmap()
    for (let n = 0; n < b.length; n++) if (b[n]) return true
    return false
  }
  async function runTool(name: string, tool: string, body: object): Promise<void> {
    statusLine.textContent = `${name}…`
    try {
      const src = await labelSource()
      const t = performance.now()
      const delta = await api.tool(caseId, tool, { ...src, ...body })
      const d = applyRuns(map, bitmap(), name, delta.box, delta.runs)
      journal.push(d)
      nv.refreshDrawing(true)
      serverTools = true
      noteEdit(d.idx.length ? d : null)
      statusLine.textContent = `${name}: ${delta.changed_voxels} voxels changed (${(performance.now() - t).toFixed(0)} ms)`
      statusLine.dataset.lastTool = tool
      statusLine.dataset.lastToolChanged = String(delta.changed_voxels)
    } catch (e) {
      statusLine.textContent = `${name} failed: ${(e as Error).message}`
      toast(`${name} failed: ${(e as Error).message}`, 'error')
    }
  }
  function thresholdBrush(pointsRas: number[][], view: number): Promise<void> {
    const seen = new Set<string>()
    const points: number[][] = []
    for (const p of pointsRas) {
      const n = map.rasToNative(p)
      const key = n.join(',')
      if (!seen.has(key)) {
        seen.add(key)
        points.push(n)
      }
    }
    return runTool('Threshold brush', 'threshold_brush', {
      points,
      radius_mm: brushMm,
      shape: brush3D && !is2D ? 'sphere' : 'disc',
      axis: map.nativeAxisOfView(view),
      lower: thrLower,
      upper: thrUpper,
      channel,
      label_value: 1
    })
  }
  function grow(seed: number[]): Promise<void> {
    const body: Record<string, unknown> = { seed, tolerance: growTol, channel, connectivity: 'face', label_value: 1, max_voxels: 2000000 }
    if (!grow3D && !is2D) body.slice_axis = map.nativeAxisOfView(viewAxis)
    return runTool('Region grow', 'grow', body)
  }
  function crosshairNative(): number[] {
    return map.rasToNative(nv.frac2vox(nv.scene.crosshairPos as never) as unknown as number[])
  }
  async function refine(kind: 'fill_holes' | 'remove_islands' | 'interpolate'): Promise<void> {
    const axis = map.nativeAxisOfView(viewAxis)
    if (kind === 'fill_holes') return runTool('Fill holes', 'fill_holes', { mode: 'slice', axis, slice_index: crosshairNative()[axis] })
    if (kind === 'remove_islands') return runTool('Remove islands', 'remove_islands', { label_value: 0, min_voxels: 20, connectivity: 'face' })
    return runTool('Interpolate', 'interpolate', { axis })
  }

  function undo(): void {
    const d = journal.undo(bitmap())
    if (d) {
      nv.refreshDrawing(true)
      statusLine.textContent = `Undid ${d.name}`
    }
    updateEditInfo()
    showCursor()
  }
  function redo(): void {
    const d = journal.redo(bitmap())
    if (d) {
      nv.refreshDrawing(true)
      statusLine.textContent = `Redid ${d.name}`
    }
    updateEditInfo()
    showCursor()
  }

  // ---------- keyboard ----------
  function moveSlice(n: number): void {
    if (viewAxis === 0) nv.moveCrosshairInVox(0, 0, n)
    else if (viewAxis === 1) nv.moveCrosshairInVox(0, n, 0)
    else nv.moveCrosshairInVox(n, 0, 0)
  }
  function zoom(f: number): void {
    const p = nv.scene.pan2Dxyzmm as unknown as number[]
    p[3] = Math.min(20, Math.max(0.2, p[3] * f))
    nv.drawScene()
  }
  const onKey = (e: KeyboardEvent) => {
    const tag = (e.target as HTMLElement).tagName
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return
    const k = e.key
    const ctrl = e.ctrlKey || e.metaKey
    let handled = true
    if (ctrl && (k === 'z' || k === 'Z')) e.shiftKey ? redo() : undo()
    else if (ctrl && (k === 'y' || k === 'Y')) redo()
    else if (ctrl && (k === 's' || k === 'S')) void save()
    else if (ctrl) handled = false
    else if (TOOL_KEYS[k]) setTool(TOOL_KEYS[k])
    else if (k === 'ArrowUp') moveSlice(1)
    else if (k === 'ArrowDown') moveSlice(-1)
    else if (k === 'PageUp') moveSlice(10)
    else if (k === 'PageDown') moveSlice(-10)
    else if (k >= '1' && k <= '6') layouts[Number(k) - 1][2]()
    else if (k === 'u' || k === 'a' || k === 'l') {
      const key = k === 'u' ? 'unc' : k === 'a' ? 'ai' : 'work'
      overlayState[key].on = !overlayState[key].on
      syncOverlays()
      void applyOverlays()
    } else if (k === 'x') compareBtn.click()
    else if (k === 'c') setChannel((channel + 1) % Math.max(1, nFrames))
    else if (k === '[') brushSizeInput.value = String((brushMm = Math.max(0.5, brushMm - 0.5)))
    else if (k === ']') brushSizeInput.value = String((brushMm = brushMm + 0.5))
    else if (k === '+' || k === '=') zoom(1.2)
    else if (k === '-') zoom(1 / 1.2)
    else if (k === 'r') {
      ;(nv.scene.pan2Dxyzmm as unknown as number[]).splice(0, 4, 0, 0, 0, 1)
      applyPreset(Number(presetSel.value))
      nv.drawScene()
    } else if (k === 'w') {
      presetSel.value = String((Number(presetSel.value) + 1) % presetSel.options.length)
      applyPreset(Number(presetSel.value))
    } else if (k === 'f') void refine('fill_holes')
    else if (k === 'i') void refine('remove_islands')
    else if (k === 'p') void refine('interpolate')
    else if (k === '?') showHelp()
    else if (k === 'Escape' && !document.querySelector('.help-overlay')) location.hash = '#/worklist'
    else handled = false
    if (handled) {
      e.preventDefault()
      e.stopPropagation()
    }
  }
  document.addEventListener('keydown', onKey, true)
  ctx.onLeave(() => document.removeEventListener('keydown', onKey, true))
  const beforeUnload = (e: BeforeUnloadEvent) => {
    if (journal.canUndo) e.preventDefault()
  }
  window.addEventListener('beforeunload', beforeUnload)
  ctx.onLeave(() => window.removeEventListener('beforeunload', beforeUnload))

  updateEditInfo()
  await refreshRevisions()
  screen.dataset.ready = '1'
  ;(window as unknown as Record<string, unknown>).__tumorlabViewer = { caseId, firstRenderMs, nFrames, dims: map.dims }
}

function nextFrame(): Promise<void> {
  return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r())))
}

// The first bytes of a (possibly gzipped) file, without inflating all of it.
async function gunzipHead(buf: ArrayBuffer): Promise<Uint8Array> {
  const u = new Uint8Array(buf)
  if (u[0] !== 0x1f || u[1] !== 0x8b) return u.slice(0, 352)
  const reader = new Blob([u as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip')).getReader()
  const parts: Uint8Array[] = []
  let n = 0
  while (n < 352) {
    const { value, done } = await reader.read()
    if (done || !value) break
    parts.push(value)
    n += value.length
  }
  void reader.cancel().catch(() => undefined)
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
