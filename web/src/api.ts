// The REST API of `tumorlab serve` (docs/api.md). Cookies carry the session; every call that is
// not GET sends the CSRF token in X-CSRF-Token. Errors become ApiError with the server's code.

export interface UserRef {
  id: number
  username: string
}
export interface User extends UserRef {
  role: 'admin' | 'reviewer' | 'annotator'
}
export interface CaseItem {
  id: number
  name: string
  image_id: number
  status: string
  assignee: UserRef | null
  editing_seconds: number
  uncertainty: number | null
  al_rank: number | null
  current_revision_id: number | null
  status_comment: string
  demo: boolean
  created_ms: number
  updated_ms: number
  modality?: string // not in every server version's list items
  image?: ImageInfo
}
export interface ImageInfo {
  id: number
  modality: string
  channels: string[]
  size: number[]
  spacing_mm: number[]
  demo: boolean
}
export interface CaseDetail extends CaseItem {
  image: ImageInfo
  ai_revision_id: number | null
  has_uncertainty: boolean
  revision_count: number
}
export interface Revision {
  id: number
  case_id: number
  parent_id: number | null
  author: UserRef | null
  model: { name: string; version: string } | null
  kind: string
  created_ms: number
  voxel_count: number
  volume_ml: number
  note: string
}
export interface RevisionStats {
  revision_id: number
  ai_revision_id: number | null
  dice: number | null
  changed_voxels: number | null
  volume_change_ml: number | null
  hd95_mm: number | null
}
export interface ToolDelta {
  changed_voxels: number
  foreground_change: number
  grid_size: number[]
  box: { begin: number[]; end: number[] }
  runs: number[][]
}
export interface Job {
  id: number
  type: string
  state: string
  progress: number
  message?: string
  error?: string
  case_id?: number | null
}

// A job in one of these states will not change again (the server's terminal job states).
export function jobFinished(state: string): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled'
}

// A job result's model: {name, version} (or a plain name from older servers) as "name@version".
export function modelText(m: unknown): string {
  if (m && typeof m === 'object') {
    const o = m as { name?: string; version?: string }
    return o.version ? `${o.name}@${o.version}` : String(o.name ?? '')
  }
  return m === undefined || m === null ? '' : String(m)
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string
  ) {
    super(message)
  }
}

let csrfToken = ''
export function setCsrf(token: string): void {
  csrfToken = token
}
function cookieCsrf(): string {
  const m = document.cookie.match(/(?:^|;\s*)tl_csrf=([^;]+)/)
  return m ? decodeURIComponent(m[1]) : ''
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = 'HTTP' + res.status
  let message = res.statusText || 'request failed'
  try {
    const body = await res.json()
    if (body && body.error) {
      code = body.error.code ?? code
      message = body.error.message ?? message
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, message)
}

export async function request(method: string, path: string, body?: BodyInit | object | null, headers: Record<string, string> = {}): Promise<Response> {
  const h: Record<string, string> = { ...headers }
  let payload: BodyInit | undefined
  if (body instanceof Blob || body instanceof ArrayBuffer || body instanceof Uint8Array || typeof body === 'string') {
    payload = body as BodyInit
  } else if (body !== undefined && body !== null) {
    payload = JSON.stringify(body)
    h['Content-Type'] = 'application/json'
  }
  if (method !== 'GET') h['X-CSRF-Token'] = csrfToken || cookieCsrf()
  const res = await fetch(path, { method, body: payload, headers: h, credentials: 'same-origin' })
  if (!res.ok) throw await errorOf(res)
  return res
}

export async function getJson<T>(path: string): Promise<T> {
  return (await request('GET', path)).json() as Promise<T>
}
export async function postJson<T>(path: string, body: object | null): Promise<T> {
  const res = await request('POST', path, body ?? {})
  if (res.status === 204) return undefined as T
  return res.json() as Promise<T>
}
export async function getBytes(path: string): Promise<ArrayBuffer> {
  return (await request('GET', path)).arrayBuffer()
}

export const api = {
  async login(username: string, password: string): Promise<User> {
    const r = await postJson<{ csrf_token: string; user: User }>('/api/auth/login', { username, password })
    setCsrf(r.csrf_token)
    return r.user
  },
  async me(): Promise<User | null> {
    try {
      const r = await getJson<{ user: User; csrf_token: string }>('/api/auth/me')
      setCsrf(r.csrf_token)
      return r.user
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null
      throw e
    }
  },
  logout: () => postJson<void>('/api/auth/logout', {}),
  cases: (query: string) => getJson<{ items: CaseItem[]; total: number }>('/api/cases?' + query),
  next: () => getJson<{ case: CaseItem | null }>('/api/cases/next'),
  detail: (id: number) => getJson<CaseDetail>(`/api/cases/${id}`),
  revisions: (id: number) => getJson<Revision[] | { items: Revision[] }>(`/api/cases/${id}/revisions`).then((r) => (Array.isArray(r) ? r : r.items)),
  stats: (id: number, rev: number) => getJson<RevisionStats>(`/api/cases/${id}/revisions/${rev}/stats`),
  image: (id: number) => getBytes(`/api/cases/${id}/image`),
  uncertainty: (id: number) => getBytes(`/api/cases/${id}/uncertainty`),
  label: (id: number, rev: number) => getBytes(`/api/cases/${id}/revisions/${rev}/label`),
  async saveRevision(id: number, niiGz: Uint8Array, parent: number | null, kind: string, editingSeconds: number, note = ''): Promise<Revision> {
    const q = new URLSearchParams({ kind, editing_seconds: editingSeconds.toFixed(1) })
    if (note) q.set('note', note)
    const res = await request('POST', `/api/cases/${id}/revisions?${q}`, new Blob([niiGz as BlobPart], { type: 'application/gzip' }), {
      'If-Match': `"${parent === null ? 'none' : parent}"`,
      'Content-Type': 'application/gzip'
    })
    const body = await res.json()
    return (body.revision ?? body) as Revision
  },
  status: (id: number, status: string, comment?: string) => postJson<unknown>(`/api/cases/${id}/status`, comment ? { status, comment } : { status }),
  assign: (id: number, userId: number | null) => postJson<unknown>(`/api/cases/${id}/assign`, { user_id: userId }),
  tool: (id: number, tool: string, body: object) => postJson<ToolDelta>(`/api/cases/${id}/tools/${tool}`, body),
  metrics: () => getJson<Record<string, unknown>>('/api/metrics/summary'),
  jobs: (query: string) => getJson<{ items: Job[] } | Job[]>('/api/jobs?' + query).then((r) => (Array.isArray(r) ? r : r.items)),
  cancelJob: (jobId: number) => postJson<unknown>(`/api/jobs/${jobId}/cancel`, {}),
  openapi: () => getJson<{ paths: Record<string, Record<string, unknown>> }>('/api/openapi.json')
}

// Routes that appear in later server versions (upload, pre-segmentation) are looked up in the
// OpenAPI document, so the UI offers them only when the server has them.
let openapiCache: Promise<{ paths: Record<string, Record<string, unknown>> }> | null = null
export function findRoute(method: string, pattern: RegExp): Promise<string | null> {
  return findRouteWithRoles(method, pattern).then((r) => r?.path ?? null)
}

// The route and the roles that may call it (the server's `x-roles`: "public" or "admin, reviewer", ...).
export function findRouteWithRoles(method: string, pattern: RegExp): Promise<{ path: string; roles: string[] | null } | null> {
  openapiCache ??= api.openapi().catch(() => ({ paths: {} }))
  return openapiCache.then((doc) => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const op = ops[method.toLowerCase()] as { 'x-roles'?: string | string[] } | undefined
      if (!pattern.test(path) || !op) continue
      const raw = op['x-roles']
      const roles = raw === undefined ? null : Array.isArray(raw) ? raw : raw.split(/[,\s]+/).filter(Boolean)
      return { path, roles }
    }
    return null
  })
}
