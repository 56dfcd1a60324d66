// Upload of scans by drag and drop (or a file picker), with a progress bar per file. The route is
// taken from the server's OpenAPI document (a POST route for uploads / imports); the body is the
// file itself, its name in the `filename` query parameter, the chosen modality (for formats that
// carry none) in `modality`. The pre-segmentation job queued for a new case is followed to its end.
import type { AppContext } from './main'
import { findRouteWithRoles, getJson, modelText, type Job } from './api'
import { h, toast } from './dom'

export async function renderUpload(ctx: AppContext): Promise<void> {
  const found = await findRouteWithRoles('POST', /^\/api\/(uploads?|import|cases\/upload|cases\/import)$/)
  const allowed = !found?.roles || found.roles.includes('public') || found.roles.includes(ctx.user.role)
  const route = found && allowed ? found.path : null
  const input = h('input', { type: 'file', testid: 'upload-input', multiple: true, accept: '.nii,.nii.gz,.gz,.nrrd,.mha,.png,.zip,.dcm' })
  const list = h('div.uploads', { testid: 'upload-list' })
  // NIfTI, NRRD, MHA and PNG carry no modality; the server then guesses it from channel names
  // (often impossible), and pre-segmentation picks a model by modality and channels.
  const modalitySel = h(
    'select',
    { testid: 'upload-modality', title: 'Modality of files that carry none (DICOM has its own)' },
    h('option', { value: '' }, 'guess from the file'),
    h('option', { value: 'CT' }, 'CT'),
    h('option', { value: 'MR' }, 'MR'),
    h('option', { value: 'PT' }, 'PET')
  )
  const zone = h(
    'label.dropzone',
    { testid: 'upload-dropzone' },
    h('strong', {}, 'Drop scans here'),
    h('span.muted', {}, 'NIfTI, NRRD, MHA, PNG, DICOM (.zip) — DICOM is de-identified on the server'),
    input
  )
  const opts = h('div.upload-opts', {}, h('label.inline-l', {}, 'Modality ', modalitySel), h('span', {}, 'for files without one (NIfTI, NRRD, MHA, PNG); the AI pre-segmentation picks its model by modality and channels'))
  if (!found) {
    zone.classList.add('disabled')
    list.append(h('p.error', { testid: 'upload-unavailable' }, 'This server has no upload route yet; an admin can import scans on the server.'))
  } else if (!allowed) {
    zone.classList.add('disabled')
    list.append(
      h('p.error', { testid: 'upload-not-allowed' }, `Uploading scans needs the role ${found.roles!.join(' or ')}; you are ${ctx.user.role}.`)
    )
  }
  zone.addEventListener('dragover', (e) => {
    e.preventDefault()
    zone.classList.add('over')
  })
  zone.addEventListener('dragleave', () => zone.classList.remove('over'))
  zone.addEventListener('drop', (e) => {
    e.preventDefault()
    zone.classList.remove('over')
    for (const f of Array.from(e.dataTransfer?.files ?? [])) upload(f)
  })
  input.addEventListener('change', () => {
    for (const f of Array.from(input.files ?? [])) upload(f)
    input.value = ''
  })

  function upload(file: File): void {
    if (!route) return
    const bar = h('progress', { max: '1', value: '0' })
    const msg = h('span.muted', {}, 'uploading…')
    const row = h('div.upload-row', { testid: 'upload-row' }, h('span.fname', {}, file.name), bar, msg)
    list.prepend(row)
    const xhr = new XMLHttpRequest()
    const q = new URLSearchParams({ filename: file.name })
    if (modalitySel.value) q.set('modality', modalitySel.value)
    xhr.open('POST', `${route}?${q}`)
    const csrf = (document.cookie.match(/(?:^|;\s*)tl_csrf=([^;]+)/) ?? [])[1]
    if (csrf) xhr.setRequestHeader('X-CSRF-Token', decodeURIComponent(csrf))
    xhr.setRequestHeader('Content-Type', 'application/octet-stream')
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = e.loaded / e.total
    }
    xhr.onload = () => {
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse(xhr.responseText)
      } catch {
        /* empty */
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        bar.value = 1
        const cases = (body.cases as { id: number; name: string }[] | undefined) ?? (body.case ? [body.case as { id: number; name: string }] : [])
        msg.textContent = cases.length ? '' : 'uploaded'
        for (const c of cases) row.append(h('a', { href: `#/case/${c.id}`, testid: 'upload-case-link', 'data-case-id': c.id }, `open ${c.name}`))
        const job = (body.job as Job | undefined) ?? null
        if (job) {
          msg.textContent = `pre-segmentation job ${job.id} ${job.state}`
          row.dataset.jobId = String(job.id)
          row.dataset.jobState = job.state
          const es = new EventSource(`/api/jobs/${job.id}/events`)
          es.addEventListener('progress', (ev) => {
            const j = JSON.parse((ev as MessageEvent).data) as Job
            bar.value = j.progress ?? 0
            row.dataset.jobState = j.state
            msg.textContent = `pre-segmentation ${j.state} ${Math.round((j.progress ?? 0) * 100)}%`
          })
          es.addEventListener('end', () => {
            es.close()
            // The job's result says what happened: a revision, or why no model applied.
            getJson<Job & { result?: { revision_id?: number; model?: unknown; voxel_count?: number; skipped?: string } }>(`/api/jobs/${job.id}`)
              .then((j) => {
                const r = j.result ?? {}
                msg.textContent =
                  j.state === 'failed'
                    ? `pre-segmentation failed: ${j.error ?? ''}`
                    : r.skipped
                      ? `not pre-segmented: ${r.skipped}`
                      : r.revision_id !== undefined
                        ? `pre-segmented by ${modelText(r.model) || 'the AI'} (${r.voxel_count ?? '?'} voxels)`
                        : `pre-segmentation ${j.state}`
                row.classList.toggle('failed', j.state === 'failed')
                row.dataset.jobState = j.state
              })
              .catch(() => (msg.textContent = 'pre-segmentation finished'))
          })
          ctx.onLeave(() => es.close())
        }
        toast(`Uploaded ${file.name}`, 'ok')
      } else {
        const err = (body.error as { message?: string } | undefined)?.message ?? xhr.statusText
        msg.textContent = 'failed: ' + err
        row.classList.add('failed')
      }
    }
    xhr.onerror = () => {
      msg.textContent = 'network error'
      row.classList.add('failed')
    }
    xhr.send(file)
  }

  ctx.main.append(h('section.upload', {}, h('h2', {}, 'Upload scans'), opts, zone, list))
}
